/*
 * tmpdir.c -- fresh temporary directories (see tmpdir.h).
 */
#define _XOPEN_SOURCE 700
#include "tmpdir.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *td_make(const char *env, const char *prefix)
{
    const char *base = env != NULL ? getenv(env) : NULL;
    char *path;
    size_t n;

    if (base == NULL || *base == '\0')
        base = "/tmp";
    if (mkdir(base, 0700) != 0 && errno != EEXIST)
        return NULL;
    n = strlen(base) + 1 + strlen(prefix) + sizeof("-XXXXXX");
    path = malloc(n);
    if (path == NULL)
        return NULL;
    snprintf(path, n, "%s/%s-XXXXXX", base, prefix);
    if (mkdtemp(path) == NULL) {
        int saved = errno;

        free(path);
        errno = saved;
        return NULL;
    }
    return path;
}

static int remove_one(const char *p, const struct stat *sb, int flag,
                      struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

void td_remove(char *path)
{
    if (path == NULL)
        return;
    (void)nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    free(path);
}
