/*
 * library.c -- what belongs to the library as a whole: the version of the
 * code actually linked, and the release of memory it hands to callers.
 */
#include <stdlib.h>

#include "internal.h"

const char *etagkv_version(int *major, int *minor, int *patch)
{
    if (major != NULL)
        *major = ETAGKV_VERSION_MAJOR;
    if (minor != NULL)
        *minor = ETAGKV_VERSION_MINOR;
    if (patch != NULL)
        *patch = ETAGKV_VERSION_PATCH;
    return ETAGKV_VERSION_STRING;
}

/* The values the library hands out are malloc'd here; a caller linked
 * against another C runtime (or a wrapper language) cannot call our free()
 * directly, so it calls this. */
void etagkv_free(void *p)
{
    free(p);
}
