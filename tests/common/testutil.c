/*
 * testutil.c -- small helpers shared by the Check suites.
 */
#define _XOPEN_SOURCE 700
#include "testutil.h"
#include "tmpdir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *tu_mkdtemp(void)
{
    char *path = td_make("ETAGKV_TEST_TMP", "etagkv");

    if (path == NULL)
        ck_abort_msg("temporary directory: %s", strerror(errno));
    return path;
}

void tu_rmdir_free(char *path)
{
    td_remove(path);
}

const char *tu_store_where(const char *dir, char *buf, size_t cap)
{
    const char *store = getenv("ETAGKV_TEST_STORE");
    int n;

    if (store == NULL || store[0] == '\0')
        return dir;
    /* The directory's path is unique: the same directory gives the same
     * prefix (a reopen finds its store), another a fresh one. */
    n = snprintf(buf, cap, "%s/etagkv-test%s%s", store,
                 dir[0] == '/' ? "" : "/", dir);
    ck_assert_msg(n > 0 && (size_t)n < cap, "store location too long");
    return buf;
}

int tu_on_etcd(void)
{
    const char *store = getenv("ETAGKV_TEST_STORE");

    return store != NULL && strncmp(store, "etcd://", 7) == 0;
}

etagkv_store *tu_open(const char *dir, const etagkv_options *opts)
{
    etagkv_store *s = NULL;
    char buf[1024];
    const char *where = tu_store_where(dir, buf, sizeof(buf));
    etagkv_status st = etagkv_store_open(where, opts, &s);

    ck_assert_msg(st == ETAGKV_OK, "etagkv_store_open(%s): %s (%s)", where,
                  etagkv_strerror(st), etagkv_last_error_detail());
    ck_assert_ptr_nonnull(s);
    return s;
}

etagkv_store *tu_open_mode(const char *dir, etagkv_sync_mode mode)
{
    etagkv_options o;

    etagkv_options_init(&o);
    o.sync_mode = mode;
    return tu_open(dir, &o);
}

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

double tu_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t tu_rng_next(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));

    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}
