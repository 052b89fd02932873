/*
 * registry.c -- the process-wide list of open store directories.
 *
 * LMDB: "Do not have open an LMDB database twice in the same process at the
 * same time": closing the second handle would drop the first one's fcntl
 * locks and let another process open the store as if nobody used it.  So
 * the directories open in this process are registered, by device and
 * inode, and a second open is refused.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ekv_registration *registry_head;

etagkv_status ekv_registry_add(struct ekv_registration *r, const char *dir)
{
    struct stat sb;
    etagkv_status st = ETAGKV_OK;

    if (stat(dir, &sb) != 0)
        return ekv_fail(ETAGKV_IO_ERROR, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return ekv_fail(ETAGKV_IO_ERROR, "%s: not a directory", dir);
    (void)pthread_mutex_lock(&registry_lock);
    for (struct ekv_registration *o = registry_head; o != NULL; o = o->next)
        if (o->dev == sb.st_dev && o->ino == sb.st_ino)
            st = ekv_fail(ETAGKV_INVALID_ARGUMENT,
                          "%s is already open in this process", dir);
    if (st == ETAGKV_OK) {
        r->dev = sb.st_dev;
        r->ino = sb.st_ino;
        r->registered = 1;
        r->next = registry_head;
        registry_head = r;
    }
    (void)pthread_mutex_unlock(&registry_lock);
    return st;
}

void ekv_registry_remove(struct ekv_registration *r)
{
    if (!r->registered)
        return;
    (void)pthread_mutex_lock(&registry_lock);
    for (struct ekv_registration **p = &registry_head; *p != NULL;
         p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    (void)pthread_mutex_unlock(&registry_lock);
    r->registered = 0;
}
