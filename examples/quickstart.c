/* quickstart.c -- write a record, then write it again only if nobody else
 * has since (If-Match), the way two clients of one store would. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <etagkv.h>

int main(void)
{
    etagkv_store *s = NULL;
    etagkv_cond *if_match = NULL;
    etagkv_meta m;
    etagkv_status st;
    void *value = NULL;
    size_t len;
    int rc = 1;

    /* etagkv_store_open() creates the store's files, not the directory. */
    if (mkdir("data", 0700) != 0 && errno != EEXIST) {
        perror("mkdir data");
        return 1;
    }
    st = etagkv_store_open("data", NULL, &s);
    if (st != ETAGKV_OK) {
        fprintf(stderr, "open: %s\n", etagkv_strerror(st));
        return 1;
    }

    /* Unconditional: ETAGKV_CREATED the first time, ETAGKV_OK after. */
    st = etagkv_put(s, "k", 1, "v1", 2, "text/plain", NULL, &m);
    if (st != ETAGKV_CREATED && st != ETAGKV_OK)
        goto done;
    printf("put v1: %s, ETag %s\n", etagkv_strerror(st), m.etag);

    /* Two writers both read v1 and both write If-Match its ETag: the first
     * wins, the second gets PRECONDITION_FAILED and m holds the record it
     * lost to, to rebase on without another read. */
    st = etagkv_cond_if_match(m.etag, &if_match);
    if (st != ETAGKV_OK)
        goto done;
    st = etagkv_put(s, "k", 1, "v2", 2, "text/plain", if_match, &m);
    if (st != ETAGKV_OK)
        goto done;
    printf("put v2 if-match v1: %s, ETag %s\n", etagkv_strerror(st), m.etag);
    st = etagkv_put(s, "k", 1, "v3", 2, "text/plain", if_match, &m);
    if (st != ETAGKV_PRECONDITION_FAILED)
        goto done;
    printf("put v3 if-match v1: %s, current ETag %s\n", etagkv_strerror(st),
           m.etag);

    st = etagkv_get(s, "k", 1, NULL, &value, &len, &m);
    if (st != ETAGKV_OK)
        goto done;
    printf("get: %.*s\n", (int)len, (const char *)value);
    etagkv_free(value);
    rc = 0;
done:
    if (rc != 0)
        fprintf(stderr, "unexpected: %s\n", etagkv_strerror(st));
    etagkv_cond_free(if_match);
    etagkv_store_close(s);
    return rc;
}
