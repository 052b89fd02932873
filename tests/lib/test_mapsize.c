/*
 * test_mapsize.c -- the map grows by itself up to its ceiling; past it a
 * write fails with ETAGKV_STORE_FULL, earlier data stays intact and the
 * store stays usable (DESIGN §4).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define VALUE_BYTES (64 * 1024)

static char *dir;

static void setup(void)
{
    dir = tu_mkdtemp();
}

static void teardown(void)
{
    tu_rmdir_free(dir);
}

/* Value i: VALUE_BYTES bytes that differ per i, so each has its own ETag. */
static void fill(char *buf, int i)
{
    for (int j = 0; j < VALUE_BYTES; j++)
        buf[j] = (char)((i * 131 + j * 7) & 0xff);
}

static etagkv_store *open_small(uint64_t initial, uint64_t ceiling)
{
    etagkv_options o;

    etagkv_options_init(&o);
    o.sync_mode = ETAGKV_NOSYNC;
    o.map_size_bytes = initial;
    o.map_max_bytes = ceiling;
    return tu_open(dir, &o);
}

START_TEST(map_grows_past_its_initial_size)
{
    etagkv_store *store = open_small(1 << 20, 64 << 20);
    char *buf = malloc(VALUE_BYTES);
    etagkv_stats s;
    char key[16];

    ck_assert_ptr_nonnull(buf);
    for (int i = 0; i < 64; i++) { /* 4 MiB of values into a 1 MiB map */
        fill(buf, i);
        snprintf(key, sizeof(key), "k%02d", i);
        ck_assert_int_eq(etagkv_put(store, key, strlen(key), buf, VALUE_BYTES,
                                    NULL, NULL, NULL),
                         ETAGKV_CREATED);
    }
    ck_assert_int_eq(etagkv_store_stats(store, &s), ETAGKV_OK);
    ck_assert_uint_gt(s.map_size_bytes, 1 << 20);
    ck_assert_uint_eq(s.records, 64);
    ck_assert_uint_eq(s.revision, 64);
    etagkv_store_close(store);

    /* Reopened with the small initial size, the grown map is kept. */
    store = open_small(1 << 20, 64 << 20);
    ck_assert_int_eq(etagkv_store_stats(store, &s), ETAGKV_OK);
    ck_assert_uint_gt(s.map_size_bytes, 1 << 20);
    ck_assert_uint_eq(s.records, 64);
    etagkv_store_close(store);
    free(buf);
}
END_TEST

START_TEST(past_the_ceiling_writes_fail_cleanly_and_data_stays_intact)
{
    etagkv_store *store = open_small(1 << 20, 4 << 20);
    char *buf = malloc(VALUE_BYTES);
    char etags[128][ETAGKV_ETAG_SIZE];
    char key[16];
    etagkv_stats before, after;
    etagkv_meta m;
    etagkv_status r = ETAGKV_OK;
    int n = 0;

    ck_assert_ptr_nonnull(buf);
    while (n < 128) {
        fill(buf, n);
        snprintf(key, sizeof(key), "k%03d", n);
        r = etagkv_put(store, key, strlen(key), buf, VALUE_BYTES, NULL, NULL,
                       &m);
        if (r != ETAGKV_CREATED)
            break;
        strcpy(etags[n], m.etag);
        n++;
    }
    ck_assert_int_eq(r, ETAGKV_STORE_FULL);
    ck_assert_int_eq(etagkv_status_http(r), 507);
    ck_assert_int_gt(n, 16); /* it did grow from 1 MiB towards 4 MiB */
    ck_assert_int_eq(m.exists, 0);

    /* Nothing of the failed write is visible; the revision did not move. */
    ck_assert_int_eq(etagkv_store_stats(store, &before), ETAGKV_OK);
    ck_assert_uint_eq(before.revision, (uint64_t)n);
    ck_assert_uint_eq(before.records, (uint64_t)n);
    ck_assert_uint_eq(before.map_size_bytes, 4 << 20);
    ck_assert_int_eq(etagkv_get(store, key, strlen(key), NULL, NULL, NULL, &m),
                     ETAGKV_NOT_FOUND);

    /* Still usable: every earlier record reads back with its ETag; it
     * fails again the same way; a delete frees room for a new write. */
    for (int i = 0; i < n; i++) {
        void *v;
        size_t len;
        char etag[ETAGKV_ETAG_SIZE];

        snprintf(key, sizeof(key), "k%03d", i);
        ck_assert_int_eq(
            etagkv_get(store, key, strlen(key), NULL, &v, &len, &m), ETAGKV_OK);
        etagkv_etag_compute(v, len, etag);
        ck_assert_str_eq(etag, etags[i]);
        ck_assert_str_eq(m.etag, etags[i]);
        etagkv_free(v);
    }
    fill(buf, 999);
    ck_assert_int_eq(
        etagkv_put(store, "extra", 5, buf, VALUE_BYTES, NULL, NULL, NULL),
        ETAGKV_STORE_FULL);
    /* Deletes work at the ceiling.  LMDB reuses the pages they free only
     * from a later transaction on (and needs a few for its free list), so
     * free room for several values before writing one. */
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "k%03d", i);
        ck_assert_int_eq(etagkv_delete(store, key, strlen(key), NULL, NULL),
                         ETAGKV_OK);
    }
    ck_assert_int_eq(
        etagkv_put(store, "extra", 5, buf, VALUE_BYTES, NULL, NULL, NULL),
        ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_store_stats(store, &after), ETAGKV_OK);
    ck_assert_uint_eq(after.revision, before.revision + 9);
    ck_assert_uint_eq(after.map_size_bytes, 4 << 20);
    etagkv_store_close(store);
    free(buf);
}
END_TEST

/* Events of revisions after `after`, as (revision, key, version). */
struct logged {
    int n;
    uint64_t rev[16], version[16];
    char key[16][16];
};

static int log_event(void *ctx, const etagkv_event *ev)
{
    struct logged *l = ctx;

    ck_assert_int_lt(l->n, 16);
    l->rev[l->n] = ev->revision;
    l->version[l->n] = ev->version;
    snprintf(l->key[l->n], sizeof(l->key[0]), "%.*s", (int)ev->key_len,
             (const char *)ev->key);
    l->n++;
    return 0;
}

/* A transaction that runs out of map is run again after the map grew: its
 * change-log events, its revision and its lease links are those of one
 * run; past the ceiling nothing of it is left. */
START_TEST(a_transaction_retried_after_growth_logs_its_changes_once)
{
    etagkv_store *store = open_small(1 << 20, 3 << 20);
    char *buf = malloc(VALUE_BYTES);
    uint64_t lease, rev = 0;
    etagkv_lease info;
    etagkv_stats s;
    etagkv_status r = ETAGKV_OK;
    int grown = 0;

    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(etagkv_lease_grant(store, 600000, &lease), ETAGKV_OK);
    for (int i = 0; r == ETAGKV_OK; i++) {
        etagkv_txn *t = NULL;
        struct logged l = {0};
        char a[16], b[16];

        /* New keys every time, so that the store fills up. */
        snprintf(a, sizeof(a), "a%d", i);
        snprintf(b, sizeof(b), "b%d", i);

        ck_assert_int_eq(etagkv_txn_new(&t), ETAGKV_OK);
        fill(buf, 3 * i);
        ck_assert_int_eq(etagkv_txn_put_lease(t, a, strlen(a), buf, VALUE_BYTES,
                                              NULL, NULL, lease),
                         ETAGKV_OK);
        fill(buf, 3 * i + 1);
        ck_assert_int_eq(etagkv_txn_put_lease(t, a, strlen(a), buf, VALUE_BYTES,
                                              NULL, NULL, lease),
                         ETAGKV_OK);
        fill(buf, 3 * i + 2);
        ck_assert_int_eq(
            etagkv_txn_put(t, b, strlen(b), buf, VALUE_BYTES, NULL, NULL),
            ETAGKV_OK);
        r = etagkv_txn_commit(store, t);
        etagkv_txn_free(t);
        ck_assert_int_eq(etagkv_store_stats(store, &s), ETAGKV_OK);
        ck_assert_int_eq(
            etagkv_changes(store, NULL, 0, 0, rev, 0, log_event, &l, NULL),
            ETAGKV_OK);
        if (r != ETAGKV_OK) {
            ck_assert_int_eq(r, ETAGKV_STORE_FULL);
            ck_assert_uint_eq(s.revision, rev);
            ck_assert_int_eq(l.n, 0);
            break;
        }
        grown |= s.map_size_bytes > (1 << 20);
        ck_assert_uint_eq(s.revision, rev + 1);
        rev = s.revision;
        ck_assert_int_eq(l.n, 3);
        for (int e = 0; e < 3; e++)
            ck_assert_uint_eq(l.rev[e], rev);
        ck_assert_str_eq(l.key[0], a);
        ck_assert_str_eq(l.key[1], a);
        ck_assert_str_eq(l.key[2], b);
        ck_assert_uint_eq(l.version[0], 1);
        ck_assert_uint_eq(l.version[1], 2);
        ck_assert_uint_eq(l.version[2], 1);
    }
    ck_assert_int_eq(grown, 1);
    ck_assert_uint_gt(rev, 3);
    ck_assert_int_eq(etagkv_lease_info(store, lease, &info, NULL, NULL),
                     ETAGKV_OK);
    ck_assert_uint_eq(info.keys, rev);
    etagkv_store_close(store);
    free(buf);
}
END_TEST

/* The process's address space in bytes (/proc/self/status), or 0. */
static long vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;

    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "VmSize:", 7) == 0)
            kb = atol(line + 7);
    if (f != NULL)
        (void)fclose(f);
    return kb * 1024;
}

/* In a child: with the address space limited (RLIMIT_AS) just above what
 * the process uses, fill a store whose ceiling (the default, 1 TiB) is
 * far away.  Returns the child's exit status: 0, or a code saying what
 * went wrong (printed). */
static int fill_under_rlimit_as(void)
{
    static char value[100000];
    etagkv_options o;
    etagkv_store *s = NULL;
    struct rlimit rl;
    etagkv_status st;
    char key[16];

    etagkv_options_init(&o);
    o.sync_mode = ETAGKV_NOSYNC;
    o.map_size_bytes = 4 << 20;
    if (etagkv_store_open(dir, &o, &s) != ETAGKV_OK ||
        etagkv_put(s, "warm", 4, "v", 1, NULL, NULL, NULL) != ETAGKV_CREATED)
        return 10;
    if (getrlimit(RLIMIT_AS, &rl) != 0)
        return 11;
    memset(value, 'a', sizeof value);
    for (int i = 0; i < 200; i++) {
        /* The limit is set again before every put: address space freed
         * since (a thread's stack, a malloc heap) must not leave the map
         * room to grow (it did once in CI: exit 14). */
        rl.rlim_cur = (rlim_t)vm_size() + (2 << 20);
        if (rl.rlim_cur > rl.rlim_max || setrlimit(RLIMIT_AS, &rl) != 0)
            return 11;
        snprintf(key, sizeof key, "k%03d", i);
        st = etagkv_put(s, key, strlen(key), value, sizeof value, NULL, NULL,
                        NULL);
        if (st == ETAGKV_CREATED)
            continue;
        if (st != ETAGKV_STORE_FULL) {
            printf("put %d: %s (%s)\n", i, etagkv_status_name(st),
                   etagkv_last_error_detail());
            return 12;
        }
        /* Full, and still a store: it reads, and a write fails cleanly
         * (before the fix, the map was gone and this faulted). */
        st = etagkv_put(s, key, strlen(key), value, sizeof value, NULL, NULL,
                        NULL);
        if (st != ETAGKV_STORE_FULL ||
            etagkv_get(s, "warm", 4, NULL, NULL, NULL, NULL) != ETAGKV_OK)
            return 13;
        etagkv_store_close(s);
        return 0;
    }
    return 14; /* the limit never bit */
}

/* A map the process cannot grow (found by review: LMDB unmapped the old
 * map, failed to map the new one, and the next transaction faulted) is
 * the ceiling: STORE_FULL, and the store stays usable.  Not under the
 * sanitizers or Valgrind, whose own mappings a small RLIMIT_AS breaks. */
START_TEST(a_map_the_process_cannot_grow_is_full_not_a_crash)
{
    const char *preload = getenv("LD_PRELOAD");
    pid_t pid;
    int status = 0;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    return;
#endif
#endif
    if (preload != NULL && strstr(preload, "vgpreload") != NULL)
        return;
    (void)fflush(stdout);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(fill_under_rlimit_as());
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "the child died of signal %d",
                  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("mapsize");
    TCase *tc = tcase_create("growth");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, map_grows_past_its_initial_size);
    tcase_add_test(tc,
                   past_the_ceiling_writes_fail_cleanly_and_data_stays_intact);
    tcase_add_test(tc,
                   a_transaction_retried_after_growth_logs_its_changes_once);
    tcase_add_test(tc, a_map_the_process_cannot_grow_is_full_not_a_crash);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
