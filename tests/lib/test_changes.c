/*
 * test_changes.c -- the change log and waiting (DESIGN §8): events for
 * committed changes only, in commit order, never split or repeated; the
 * bounded window and ETAGKV_COMPACTED; etagkv_wait() and the notification
 * descriptor; list-then-watch under concurrent writers.  A fresh store per
 * test, on a real LMDB environment.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"

static char *dir;
static etagkv_store *store;
/* Read by the library's threads too (the committer, the lease sweeper). */
static _Atomic uint64_t fake_now;

static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static void open_with(uint64_t max_events, uint64_t retention_s)
{
    etagkv_options o;

    etagkv_options_init(&o);
    o.sync_mode = ETAGKV_NOSYNC;
    o.clock = fake_clock;
    o.changes_max_events = max_events;
    o.changes_retention_s = retention_s;
    store = tu_open(dir, &o);
}

static void setup(void)
{
    fake_now = 1700000000ull * 1000000000ull;
    dir = tu_mkdtemp();
    open_with(0, 0);
}

static void teardown(void)
{
    etagkv_store_close(store);
    store = NULL;
    tu_rmdir_free(dir);
    dir = NULL;
}

static void put(const char *k, const char *v)
{
    etagkv_status rc =
        etagkv_put(store, k, strlen(k), v, strlen(v), NULL, NULL, NULL);

    ck_assert_msg(rc == ETAGKV_OK || rc == ETAGKV_CREATED, "put %s: %s", k,
                  etagkv_strerror(rc));
}

/* Events as read, copied out. */
#define MAX_SEEN 4096
struct seen {
    size_t n;
    etagkv_event ev[MAX_SEEN];
    char key[MAX_SEEN][64];
    size_t stop_at; /* return non-zero at this event (0: never) */
};

static int collect(void *ctx, const etagkv_event *ev)
{
    struct seen *s = ctx;

    ck_assert_uint_lt(s->n, MAX_SEEN);
    s->ev[s->n] = *ev;
    snprintf(s->key[s->n], sizeof(s->key[0]), "%.*s", (int)ev->key_len,
             (const char *)ev->key);
    s->n++;
    return s->stop_at != 0 && s->n == s->stop_at;
}

static etagkv_status read_changes(const char *prefix, unsigned flags,
                                  uint64_t after, size_t limit, struct seen *s,
                                  etagkv_changes_page *page)
{
    s->n = 0;
    return etagkv_changes(store, prefix, prefix != NULL ? strlen(prefix) : 0,
                          flags, after, limit, collect, s, page);
}

START_TEST(puts_and_deletes_are_logged_in_commit_order_with_their_state)
{
    static struct seen s;
    etagkv_changes_page page;
    etagkv_meta m1, m2;

    ck_assert_int_eq(etagkv_put(store, "a", 1, "x", 1, NULL, NULL, &m1),
                     ETAGKV_CREATED);
    fake_now += 1000;
    ck_assert_int_eq(etagkv_put(store, "a", 1, "yy", 2, NULL, NULL, &m2),
                     ETAGKV_OK);
    fake_now += 1000;
    ck_assert_int_eq(etagkv_delete(store, "a", 1, NULL, NULL), ETAGKV_OK);
    ck_assert_int_eq(read_changes(NULL, 0, 0, 0, &s, &page), ETAGKV_OK);
    ck_assert_uint_eq(s.n, 3);
    ck_assert_uint_eq(page.revision, 3);
    ck_assert_uint_eq(page.next, 3);
    ck_assert_uint_eq(page.min_after, 0);
    ck_assert_int_eq(page.more, 0);
    ck_assert_uint_eq(page.events, 3);
    /* A put carries the record's state after it. */
    ck_assert_int_eq(s.ev[0].type, ETAGKV_EVENT_PUT);
    ck_assert_uint_eq(s.ev[0].revision, 1);
    ck_assert_str_eq(s.key[0], "a");
    ck_assert_str_eq(s.ev[0].etag, m1.etag);
    ck_assert_uint_eq(s.ev[0].create_revision, 1);
    ck_assert_uint_eq(s.ev[0].version, 1);
    ck_assert_uint_eq(s.ev[0].modified_ns, m1.modified_ns);
    ck_assert_str_eq(s.ev[1].etag, m2.etag);
    ck_assert_uint_eq(s.ev[1].mod_revision, 2);
    ck_assert_uint_eq(s.ev[1].create_revision, 1);
    ck_assert_uint_eq(s.ev[1].version, 2);
    /* A delete: no etag, zero create_revision and version, the time of
     * the delete. */
    ck_assert_int_eq(s.ev[2].type, ETAGKV_EVENT_DELETE);
    ck_assert_uint_eq(s.ev[2].revision, 3);
    ck_assert_str_eq(s.ev[2].etag, "");
    ck_assert_uint_eq(s.ev[2].create_revision, 0);
    ck_assert_uint_eq(s.ev[2].version, 0);
    ck_assert_uint_eq(s.ev[2].modified_ns, fake_now);
    /* after= skips what was seen. */
    ck_assert_int_eq(read_changes(NULL, 0, 2, 0, &s, &page), ETAGKV_OK);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_uint_eq(s.ev[0].revision, 3);
    ck_assert_int_eq(read_changes(NULL, 0, 3, 0, &s, &page), ETAGKV_OK);
    ck_assert_uint_eq(s.n, 0);
    ck_assert_uint_eq(page.next, 3);
}
END_TEST

START_TEST(failed_preconditions_and_missing_keys_log_nothing)
{
    static struct seen s;
    etagkv_cond *c;
    etagkv_stats stats;

    put("k", "v");
    ck_assert_int_eq(etagkv_cond_create_only(&c), ETAGKV_OK);
    /* A 412, also for the same bytes (DESIGN §2), and a 404. */
    ck_assert_int_eq(etagkv_put(store, "k", 1, "v", 1, NULL, c, NULL),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(etagkv_delete(store, "nope", 4, NULL, NULL),
                     ETAGKV_NOT_FOUND);
    etagkv_cond_free(c);
    ck_assert_int_eq(read_changes(NULL, 0, 0, 0, &s, NULL), ETAGKV_OK);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_int_eq(etagkv_store_stats(store, &stats), ETAGKV_OK);
    ck_assert_uint_eq(stats.change_events, 1);
    ck_assert_uint_eq(stats.revision, 1);
}
END_TEST

START_TEST(prefix_and_key_filters_select_events)
{
    static struct seen s;

    put("a/1", "x");
    put("b/1", "x");
    put("a", "x");
    put("a/2", "x");
    put("ab", "x");
    ck_assert_int_eq(read_changes("a/", 0, 0, 0, &s, NULL), ETAGKV_OK);
    ck_assert_uint_eq(s.n, 2);
    ck_assert_str_eq(s.key[0], "a/1");
    ck_assert_str_eq(s.key[1], "a/2");
    ck_assert_int_eq(read_changes("a", ETAGKV_CHANGES_KEY, 0, 0, &s, NULL),
                     ETAGKV_OK);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_uint_eq(s.ev[0].revision, 3);
    /* Bad arguments. */
    ck_assert_int_eq(read_changes(NULL, ETAGKV_CHANGES_KEY, 0, 0, &s, NULL),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(read_changes("a", 0x80, 0, 0, &s, NULL),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_changes(store, NULL, 0, 0, 0, 0, NULL, NULL, NULL),
                     ETAGKV_INVALID_ARGUMENT);
}
END_TEST

/* Commit one revision that writes n keys, as a multi-key transaction does:
 * every write of it appends through ekv_changes_append() with the same
 * mod_revision. */
static void commit_one_revision(const char *const *keys, size_t n)
{
    ekv_txn txn;
    uint64_t rev;
    uint8_t hash[EKV_HASH_BYTES] = {0};

    ck_assert_int_eq(ekv_write_begin(store->env, &txn), ETAGKV_OK);
    ck_assert_int_eq(ekv_revision_get(&txn, &rev), ETAGKV_OK);
    ekv_changes_begin(store);
    for (size_t i = 0; i < n; i++) {
        etagkv_meta m = {.exists = 1, .mod_revision = rev + 1, .version = 1};

        ck_assert_int_eq(
            ekv_changes_append(store, &txn, keys[i], strlen(keys[i]), &m, hash),
            ETAGKV_OK);
    }
    ck_assert_int_eq(ekv_revision_put(&txn, rev + 1), ETAGKV_OK);
    ck_assert_int_eq(ekv_write_commit(&txn), ETAGKV_OK);
}

START_TEST(a_page_never_splits_the_events_of_one_revision)
{
    static struct seen s;
    static const char *const three[] = {"t/x", "t/y", "t/z"};
    etagkv_changes_page page;

    put("t/a", "1");               /* revision 1 */
    commit_one_revision(three, 3); /* revision 2, three events */
    put("t/b", "1");               /* revision 3 */
    ck_assert_int_eq(read_changes("t/", 0, 0, 2, &s, &page), ETAGKV_OK);
    /* limit 2 reached inside revision 2: its third event comes too. */
    ck_assert_uint_eq(s.n, 4);
    ck_assert_str_eq(s.key[1], "t/x");
    ck_assert_str_eq(s.key[2], "t/y");
    ck_assert_str_eq(s.key[3], "t/z");
    ck_assert_uint_eq(s.ev[3].revision, 2);
    ck_assert_int_eq(page.more, 1);
    ck_assert_uint_eq(page.next, 2);
    ck_assert_int_eq(read_changes("t/", 0, page.next, 2, &s, &page), ETAGKV_OK);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_str_eq(s.key[0], "t/b");
    ck_assert_int_eq(page.more, 0);
    ck_assert_uint_eq(page.next, 3);
    /* Stopping inside a revision resumes before it: a repeat, not a loss. */
    s.stop_at = 2;
    s.n = 0;
    ck_assert_int_eq(
        etagkv_changes(store, NULL, 0, 0, 0, 0, collect, &s, &page), ETAGKV_OK);
    ck_assert_int_eq(page.more, 1);
    ck_assert_uint_eq(page.next, 1);
}
END_TEST

START_TEST(the_window_is_bounded_and_older_reads_are_compacted)
{
    static struct seen s;
    etagkv_changes_page page;
    etagkv_stats stats;
    char k[16];

    etagkv_store_close(store);
    open_with(5, 0);
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof k, "k%d", i);
        put(k, "v");
        ck_assert_int_eq(etagkv_store_stats(store, &stats), ETAGKV_OK);
        ck_assert_uint_le(stats.change_events, 5);
    }
    ck_assert_uint_eq(stats.changes_min_after, 15);
    ck_assert_int_eq(read_changes(NULL, 0, 0, 0, &s, &page), ETAGKV_COMPACTED);
    ck_assert_uint_eq(s.n, 0);
    ck_assert_uint_eq(page.min_after, 15);
    ck_assert_int_eq(read_changes(NULL, 0, 14, 0, &s, &page), ETAGKV_COMPACTED);
    /* after = min_after is served, and has everything since. */
    ck_assert_int_eq(read_changes(NULL, 0, 15, 0, &s, &page), ETAGKV_OK);
    ck_assert_uint_eq(s.n, 5);
    ck_assert_uint_eq(s.ev[0].revision, 16);
    /* The window and its floor survive a reopen. */
    etagkv_store_close(store);
    open_with(5, 0);
    ck_assert_int_eq(read_changes(NULL, 0, 14, 0, &s, &page), ETAGKV_COMPACTED);
    ck_assert_uint_eq(page.min_after, 15);
}
END_TEST

/* One transaction putting t0 ... t<n-1>: n events under one revision. */
static void put_in_one_txn(int n)
{
    etagkv_txn *t = NULL;
    char k[16];

    ck_assert_int_eq(etagkv_txn_new(&t), ETAGKV_OK);
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "t%d", i);
        ck_assert_int_eq(etagkv_txn_put(t, k, strlen(k), "v", 1, NULL, NULL),
                         ETAGKV_OK);
    }
    ck_assert_int_eq(etagkv_txn_commit(store, t), ETAGKV_OK);
    etagkv_txn_free(t);
}

struct counted {
    size_t n;
    uint64_t last_rev;
};

static int count_event(void *ctx, const etagkv_event *ev)
{
    struct counted *c = ctx;

    c->n++;
    c->last_rev = ev->revision;
    return 0;
}

/* A page for a rare key far behind looks at ETAGKV_CHANGES_SCAN_MAX
 * events at most, not at the whole window: it comes back empty with
 * more = 1, and the reader reads on from next.  The bound never splits a
 * revision; without a limit there is none.  Revisions of 100 events each
 * (put_in_one_txn()). */
START_TEST(one_read_looks_at_a_bounded_part_of_the_log)
{
    static struct seen s;
    etagkv_changes_page page;
    struct counted all = {0, 0};
    uint64_t txns = ETAGKV_CHANGES_SCAN_MAX / 100 + 2, after = 0;
    uint64_t per_call = ETAGKV_CHANGES_SCAN_MAX / 100 + 1;
    int calls = 0;

    for (uint64_t i = 0; i < txns; i++)
        put_in_one_txn(100); /* revisions 1 .. txns */
    put("rare", "1");        /* revision txns + 1 */
    do {
        ck_assert_int_eq(
            read_changes("rare", ETAGKV_CHANGES_KEY, after, 10, &s, &page),
            ETAGKV_OK);
        calls++;
        ck_assert_uint_gt(page.next, after);
        ck_assert_uint_le(page.next - after, per_call);
        after = page.next;
    } while (s.n == 0 && page.more);
    ck_assert_int_eq(calls, 2);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_str_eq(s.key[0], "rare");
    ck_assert_uint_eq(s.ev[0].revision, txns + 1);
    ck_assert_int_eq(page.more, 0);
    ck_assert_uint_eq(page.next, txns + 1);
    /* Every key, a limit beyond the bound: whole revisions up to the one
     * the bound fell in, then the rest from next. */
    ck_assert_int_eq(
        etagkv_changes(store, NULL, 0, 0, 0, 100000, count_event, &all, &page),
        ETAGKV_OK);
    ck_assert_int_eq(page.more, 1);
    ck_assert_uint_eq(all.n, per_call * 100);
    ck_assert_uint_eq(page.next, per_call);
    ck_assert_uint_eq(all.last_rev, per_call);
    ck_assert_int_eq(etagkv_changes(store, NULL, 0, 0, page.next, 100000,
                                    count_event, &all, &page),
                     ETAGKV_OK);
    ck_assert_int_eq(page.more, 0);
    ck_assert_uint_eq(all.n, txns * 100 + 1);
    /* No limit: to the end in one call. */
    all.n = 0;
    ck_assert_int_eq(
        etagkv_changes(store, NULL, 0, 0, 0, 0, count_event, &all, &page),
        ETAGKV_OK);
    ck_assert_int_eq(page.more, 0);
    ck_assert_uint_eq(all.n, txns * 100 + 1);
}
END_TEST

/* A larger log is not trimmed on every commit: it may pass
 * changes_max_events by its slack (max / 64, here 100), and the commit
 * that passes the slack trims it back to max in one go.  Transactions of
 * 100 events each (revision r holds events 100 (r - 1) + 1 ... 100 r), so
 * that the suite stays quick on etcd too. */
/* Revision r's keys in the log below: single puts, and two revisions of
 * more events than a page of a cursor holds (etcd reads the log in pages
 * of 128 events, each within a window of 128 revisions). */
#define LONG_LOG_REVS 452
static size_t long_log_keys(uint64_t r)
{
    return r == 301 ? 200 : r == 402 ? 130 : 1;
}

static void long_log_key(uint64_t r, size_t i, char *out, size_t size)
{
    snprintf(out, size, "w/%llu/%zu", (unsigned long long)r, i);
}

START_TEST(reads_from_far_behind_see_every_event_once_in_order)
{
    static struct seen s;
    static char names[200][32];
    const char *keys[200];
    static const uint64_t afters[] = {0, 1, 127, 250, 300, 301, 350, 401, 451};
    etagkv_changes_page page;

    for (uint64_t r = 1; r <= LONG_LOG_REVS; r++) {
        for (size_t i = 0; i < long_log_keys(r); i++) {
            long_log_key(r, i, names[i], sizeof names[i]);
            keys[i] = names[i];
        }
        commit_one_revision(keys, long_log_keys(r));
    }
    for (size_t a = 0; a < sizeof afters / sizeof afters[0]; a++) {
        size_t at = 0;

        ck_assert_int_eq(read_changes(NULL, 0, afters[a], 0, &s, &page),
                         ETAGKV_OK);
        for (uint64_t r = afters[a] + 1; r <= LONG_LOG_REVS; r++) {
            for (size_t i = 0; i < long_log_keys(r); i++, at++) {
                char want[32];

                ck_assert_uint_lt(at, s.n);
                long_log_key(r, i, want, sizeof want);
                ck_assert_uint_eq(s.ev[at].revision, r);
                ck_assert_str_eq(s.key[at], want);
            }
        }
        ck_assert_uint_eq(s.n, at);
        ck_assert_int_eq(page.more, 0);
        ck_assert_uint_eq(page.next, LONG_LOG_REVS);
    }
    /* And one key's events alone, as a 412's diagnosis reads them. */
    ck_assert_int_eq(
        read_changes("w/402/129", ETAGKV_CHANGES_KEY, 100, 0, &s, &page),
        ETAGKV_OK);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_uint_eq(s.ev[0].revision, 402);
}
END_TEST

START_TEST(a_large_window_is_trimmed_back_once_it_passes_its_slack)
{
    etagkv_stats stats;
    etagkv_changes_page page;
    static struct seen s;

    etagkv_store_close(store);
    open_with(6400, 0);
    for (int round = 0; round < 65; round++)
        put_in_one_txn(100);
    ck_assert_int_eq(etagkv_store_stats(store, &stats), ETAGKV_OK);
    ck_assert_uint_eq(stats.change_events, 6500); /* within the slack */
    ck_assert_uint_eq(stats.changes_min_after, 0);
    /* One event more: 6,501, past the slack; the 101 oldest go, the whole
     * of revision 1 and the first event of revision 2.  On etcd, 65 (one
     * appended, plus 64) per commit, from this one on (changes.c: the
     * slack's deletes in one etcd Txn would pass its default
     * --max-txn-ops): 6,436 (65 of revision 1's 100 gone), then 6,400
     * at the next put, which trims 37. */
    put("one-more", "v");
    ck_assert_int_eq(etagkv_store_stats(store, &stats), ETAGKV_OK);
    if (tu_on_etcd()) {
        ck_assert_uint_eq(stats.change_events, 6436);
        ck_assert_uint_eq(stats.changes_min_after, 1);
        put("one-more", "v");
        ck_assert_int_eq(etagkv_store_stats(store, &stats), ETAGKV_OK);
    }
    ck_assert_uint_eq(stats.change_events, 6400);
    ck_assert_uint_eq(stats.changes_min_after, 2);
    ck_assert_int_eq(read_changes(NULL, 0, 1, 0, &s, &page), ETAGKV_COMPACTED);
    ck_assert_uint_eq(page.min_after, 2);
}
END_TEST

START_TEST(writes_that_log_many_events_each_keep_the_window_bounded)
{
    etagkv_stats stats;
    char k[16];
    uint64_t lease;

    etagkv_store_close(store);
    open_with(5, 0);
    /* Each transaction logs 40 events under its one revision. */
    for (int round = 0; round < 10; round++) {
        put_in_one_txn(40);
        ck_assert_int_eq(etagkv_store_stats(store, &stats), ETAGKV_OK);
        ck_assert_uint_le(stats.change_events, 5);
    }
    /* So does revoking a lease with 40 keys. */
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(etagkv_lease_grant(store, 60000, &lease), ETAGKV_OK);
        for (int i = 0; i < 40; i++) {
            etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                                  .key = k,
                                  .value = "v",
                                  .value_len = 1,
                                  .lease = lease};

            snprintf(k, sizeof k, "l%d", i);
            req.key_len = strlen(k);
            ck_assert_int_ge(etagkv_write(store, &req, NULL), ETAGKV_OK);
        }
        ck_assert_int_eq(etagkv_lease_revoke(store, lease, NULL), ETAGKV_OK);
        ck_assert_int_eq(etagkv_store_stats(store, &stats), ETAGKV_OK);
        ck_assert_uint_le(stats.change_events, 5);
    }
}
END_TEST

START_TEST(after_the_last_revision_there_is_nothing_even_at_the_largest)
{
    static struct seen s;
    etagkv_changes_page page;

    put("a", "1");
    put("b", "2");
    ck_assert_int_eq(read_changes(NULL, 0, 2, 0, &s, &page), ETAGKV_OK);
    ck_assert_uint_eq(s.n, 0);
    ck_assert_int_eq(read_changes(NULL, 0, UINT64_MAX, 0, &s, &page),
                     ETAGKV_OK);
    ck_assert_uint_eq(s.n, 0);
    ck_assert_uint_eq(page.next, 2);
}
END_TEST

START_TEST(events_older_than_the_retention_are_trimmed)
{
    static struct seen s;
    etagkv_changes_page page;

    etagkv_store_close(store);
    open_with(0, 60);
    put("old1", "v");
    put("old2", "v");
    fake_now += 61ull * 1000000000u;
    put("new", "v");
    ck_assert_int_eq(read_changes(NULL, 0, 2, 0, &s, &page), ETAGKV_OK);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_str_eq(s.key[0], "new");
    ck_assert_int_eq(read_changes(NULL, 0, 1, 0, &s, &page), ETAGKV_COMPACTED);
    ck_assert_uint_eq(page.min_after, 2);
}
END_TEST

/* A retention of centuries keeps events by count alone: its conversion to
 * nanoseconds saturates instead of wrapping (18,446,744,074 s wrapped to
 * about 0.29 s and trimmed every event a second old). */
START_TEST(a_retention_of_centuries_does_not_wrap_to_a_short_one)
{
    static struct seen s;
    etagkv_changes_page page;

    etagkv_store_close(store);
    open_with(0, 18446744074ull);
    for (int i = 0; i < 5; i++) {
        put("k", i % 2 ? "a" : "b");
        fake_now += 1000000000u;
    }
    ck_assert_int_eq(read_changes(NULL, 0, 0, 0, &s, &page), ETAGKV_OK);
    ck_assert_uint_eq(s.n, 5);
    etagkv_store_close(store);
    open_with(0, UINT64_MAX);
    put("k", "c");
    ck_assert_int_eq(read_changes(NULL, 0, 0, 0, &s, &page), ETAGKV_OK);
    ck_assert_uint_eq(s.n, 6);
}
END_TEST

/* ---- waiting ------------------------------------------------------------- */

struct waiter {
    uint64_t after;
    int64_t timeout_ms;
    etagkv_status st;
    uint64_t rev;
    pthread_t t;
};

static void *wait_main(void *arg)
{
    struct waiter *w = arg;

    w->st = etagkv_wait(store, w->after, w->timeout_ms, &w->rev);
    return NULL;
}

/* Until n threads are inside etagkv_wait(): the overlap the test needs,
 * made certain rather than hoped for by sleeping. */
static void until_waiting(unsigned n)
{
    for (;;) {
        unsigned k;

        (void)pthread_mutex_lock(&store->notify.lock);
        k = store->notify.waiters;
        (void)pthread_mutex_unlock(&store->notify.lock);
        if (k >= n)
            return;
        usleep(1000);
    }
}

START_TEST(wait_returns_after_a_commit_of_another_thread)
{
    struct waiter w[4];
    uint64_t rev;

    put("k", "1");
    for (int i = 0; i < 4; i++) {
        w[i] = (struct waiter){.after = 1, .timeout_ms = -1};
        ck_assert_int_eq(pthread_create(&w[i].t, NULL, wait_main, &w[i]), 0);
    }
    until_waiting(4);
    put("k", "2");
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_join(w[i].t, NULL), 0);
        ck_assert_int_eq(w[i].st, ETAGKV_OK);
        ck_assert_uint_eq(w[i].rev, 2);
    }
    /* Already past: at once. */
    ck_assert_int_eq(etagkv_wait(store, 1, 0, &rev), ETAGKV_OK);
    ck_assert_uint_eq(rev, 2);
}
END_TEST

START_TEST(wait_times_out_with_not_modified)
{
    uint64_t rev = 99;
    double t0 = tu_now_s();

    put("k", "1");
    ck_assert_int_eq(etagkv_wait(store, 1, 50, &rev), ETAGKV_NOT_MODIFIED);
    ck_assert_uint_eq(rev, 1);
    ck_assert(tu_now_s() - t0 >= 0.045);
    ck_assert_int_eq(etagkv_wait(NULL, 1, 0, &rev), ETAGKV_INVALID_ARGUMENT);
}
END_TEST

START_TEST(close_wakes_waiters_with_closing)
{
    struct waiter w = {.after = 100, .timeout_ms = -1};

    ck_assert_int_eq(pthread_create(&w.t, NULL, wait_main, &w), 0);
    until_waiting(1);
    etagkv_store_close(store);
    store = NULL;
    ck_assert_int_eq(pthread_join(w.t, NULL), 0);
    ck_assert_int_eq(w.st, ETAGKV_CLOSING);
}
END_TEST

static int readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* On etcd: read fd's wake-ups until none comes for a second.  The etcd
 * Watch that brings other handles' commits wakes it when its stream
 * opens, and for our own commits too, a little later (under load, late). */
static void drain_late_wakeups(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    uint64_t n;

    while (tu_on_etcd() && poll(&p, 1, 1000) == 1)
        ck_assert_int_eq(read(fd, &n, sizeof n), (ssize_t)sizeof n);
}

START_TEST(the_notify_descriptor_becomes_readable_after_each_commit)
{
    int fd1, fd2;
    uint64_t n;
    etagkv_cond *c;

    ck_assert_int_eq(etagkv_notify_open(store, &fd1), ETAGKV_OK);
    ck_assert_int_eq(etagkv_notify_open(store, &fd2), ETAGKV_OK);
    drain_late_wakeups(fd1); /* the watch's start (failed once in CI) */
    drain_late_wakeups(fd2);
    ck_assert(!readable(fd1));
    put("k", "1");
    put("k", "2");
    ck_assert(readable(fd1));
    ck_assert(readable(fd2));
    ck_assert_int_eq(read(fd1, &n, sizeof n), (ssize_t)sizeof n);
    if (tu_on_etcd()) {
        ck_assert_uint_ge(n, 2); /* at least one wake-up per commit */
        drain_late_wakeups(fd1);
    } else {
        ck_assert_uint_eq(n, 2);
    }
    ck_assert(!readable(fd1));
    /* A 412 commits nothing and notifies nobody. */
    ck_assert_int_eq(etagkv_cond_create_only(&c), ETAGKV_OK);
    ck_assert_int_eq(etagkv_put(store, "k", 1, "x", 1, NULL, c, NULL),
                     ETAGKV_PRECONDITION_FAILED);
    etagkv_cond_free(c);
    ck_assert(!readable(fd1));
    etagkv_notify_close(store, fd1);
    /* fd2 is closed by etagkv_store_close() in teardown. */
    ck_assert_int_eq(etagkv_notify_open(NULL, &fd1), ETAGKV_INVALID_ARGUMENT);
}
END_TEST

/* ---- list, then watch ---------------------------------------------------- */

#define WRITERS 16
#define KEYS_PER_WRITER 8
#define WRITES_PER_WRITER 100

static struct {
    pthread_barrier_t go;
    atomic_int done; /* writers finished */
} lw;

static void *writer_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    char k[32], v[32];

    (void)pthread_barrier_wait(&lw.go);
    for (int i = 0; i < WRITES_PER_WRITER; i++) {
        snprintf(k, sizeof k, "w/%02d/%d", id, i % KEYS_PER_WRITER);
        snprintf(v, sizeof v, "%d", i);
        if (i % 7 == 6)
            (void)etagkv_delete(store, k, strlen(k), NULL, NULL);
        else
            put(k, v);
    }
    atomic_fetch_add(&lw.done, 1);
    return NULL;
}

/* The state of the keys: etag per key ("" when absent). */
#define NKEYS (WRITERS * KEYS_PER_WRITER)
struct state {
    char etag[NKEYS][ETAGKV_ETAG_SIZE];
    uint64_t last_rev;
    int repeated;
};

static int key_slot(const void *key, size_t len)
{
    int w, k;
    char buf[32];

    snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)key);
    if (sscanf(buf, "w/%d/%d", &w, &k) != 2)
        return -1;
    return w * KEYS_PER_WRITER + k;
}

static int list_into(void *ctx, const void *key, size_t key_len,
                     const etagkv_meta *m)
{
    struct state *s = ctx;

    memcpy(s->etag[key_slot(key, key_len)], m->etag, ETAGKV_ETAG_SIZE);
    return 0;
}

static int apply_event(void *ctx, const etagkv_event *ev)
{
    struct state *s = ctx;

    /* One write per revision here: a revision seen twice is a repeat. */
    s->repeated |= ev->revision <= s->last_rev;
    s->last_rev = ev->revision;
    memcpy(s->etag[key_slot(ev->key, ev->key_len)], ev->etag, ETAGKV_ETAG_SIZE);
    return 0;
}

START_TEST(list_then_watch_sees_every_later_change_exactly_once)
{
    static struct state watched, final;
    pthread_t t[WRITERS];
    etagkv_changes_page page;
    uint64_t rev, after;
    int more;

    memset(&watched, 0, sizeof watched);
    memset(&final, 0, sizeof final);
    atomic_store(&lw.done, 0);
    ck_assert_int_eq(pthread_barrier_init(&lw.go, NULL, WRITERS + 1), 0);
    for (int i = 0; i < WRITERS; i++)
        ck_assert_int_eq(
            pthread_create(&t[i], NULL, writer_main, (void *)(intptr_t)i), 0);
    (void)pthread_barrier_wait(&lw.go);
    /* List while the writers run, then follow the log from the listing's
     * revision, in small pages, waiting when caught up. */
    while (etagkv_wait(store, 0, -1, NULL) != ETAGKV_OK)
        ;
    ck_assert_int_eq(etagkv_list_revision(store, "w/", 2, NULL, 0, 0, list_into,
                                          &watched, &more, &rev),
                     ETAGKV_OK);
    ck_assert_uint_gt(rev, 0);
    watched.last_rev = rev;
    after = rev;
    for (;;) {
        etagkv_stats stats;
        int done = atomic_load(&lw.done) == WRITERS;

        ck_assert_int_eq(etagkv_changes(store, "w/", 2, 0, after, 7,
                                        apply_event, &watched, &page),
                         ETAGKV_OK);
        after = page.next;
        if (page.more)
            continue;
        ck_assert_int_eq(etagkv_store_stats(store, &stats), ETAGKV_OK);
        if (done && after == stats.revision)
            break;
        (void)etagkv_wait(store, after, 1000, NULL);
    }
    for (int i = 0; i < WRITERS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    ck_assert_int_eq(watched.repeated, 0);
    ck_assert_int_eq(
        etagkv_list(store, "w/", 2, NULL, 0, 0, list_into, &final, NULL),
        ETAGKV_OK);
    for (int i = 0; i < NKEYS; i++)
        ck_assert_str_eq(watched.etag[i], final.etag[i]);
    (void)pthread_barrier_destroy(&lw.go);
}
END_TEST

/* Writers that overlap: in nosync mode each commits alone when nobody is
 * queued (commit.c), ordered by LMDB's writer lock alone; the log must
 * still hold one event per revision, in order, and wake the watchers. */
#define ALONE_THREADS 4
#define ALONE_WRITES 25

static pthread_barrier_t alone_barrier;

static void *alone_writer(void *arg)
{
    char key[16];

    pthread_barrier_wait(&alone_barrier);
    for (int i = 0; i < ALONE_WRITES; i++) {
        snprintf(key, sizeof key, "t%d-%02d", (int)(intptr_t)arg, i);
        ck_assert_int_eq(
            etagkv_put(store, key, strlen(key), "v", 1, NULL, NULL, NULL),
            ETAGKV_CREATED);
    }
    return NULL;
}

START_TEST(overlapping_writers_committing_alone_log_every_change_once)
{
    static struct seen s;
    etagkv_changes_page page;
    pthread_t t[ALONE_THREADS];
    uint64_t rev;

    ck_assert_int_eq(pthread_barrier_init(&alone_barrier, NULL, ALONE_THREADS),
                     0);
    for (int i = 0; i < ALONE_THREADS; i++)
        ck_assert_int_eq(
            pthread_create(&t[i], NULL, alone_writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < ALONE_THREADS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&alone_barrier);
    ck_assert_int_eq(read_changes(NULL, 0, 0, 0, &s, &page), ETAGKV_OK);
    ck_assert_uint_eq(s.n, ALONE_THREADS * ALONE_WRITES);
    for (size_t i = 0; i < s.n; i++) {
        ck_assert_uint_eq(s.ev[i].revision, i + 1);
        ck_assert_uint_eq(s.ev[i].mod_revision, i + 1);
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(s.key[i], s.key[j]);
    }
    ck_assert_int_eq(etagkv_wait(store, s.n - 1, 0, &rev), ETAGKV_OK);
    ck_assert_uint_eq(rev, s.n);
}
END_TEST

START_TEST(list_revision_reports_the_snapshot_revision)
{
    uint64_t rev = 99;
    int more;
    struct state s;

    ck_assert_int_eq(etagkv_list_revision(store, NULL, 0, NULL, 0, 0, list_into,
                                          &s, &more, &rev),
                     ETAGKV_OK);
    ck_assert_uint_eq(rev, 0);
    put("w/00/1", "x");
    put("w/00/2", "x");
    ck_assert_int_eq(etagkv_list_revision(store, NULL, 0, NULL, 0, 1, list_into,
                                          &s, &more, &rev),
                     ETAGKV_OK);
    ck_assert_uint_eq(rev, 2);
    ck_assert_int_eq(more, 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("changes");
    TCase *tc = tcase_create("changes");

    tcase_add_checked_fixture(tc, setup, teardown);
    /* Check's 4 s is too short for 1,600 commits through etcd on a loaded
     * machine (list_then_watch timed out with a second suite beside it);
     * every case here ends by its own progress, and a hang still fails. */
    tcase_set_timeout(tc, 60);
    tcase_add_test(
        tc, puts_and_deletes_are_logged_in_commit_order_with_their_state);
    tcase_add_test(tc, failed_preconditions_and_missing_keys_log_nothing);
    tcase_add_test(tc, prefix_and_key_filters_select_events);
    tcase_add_test(tc, reads_from_far_behind_see_every_event_once_in_order);
    tcase_add_test(tc, a_page_never_splits_the_events_of_one_revision);
    tcase_add_test(tc, one_read_looks_at_a_bounded_part_of_the_log);
    tcase_add_test(tc, the_window_is_bounded_and_older_reads_are_compacted);
    tcase_add_test(tc, a_large_window_is_trimmed_back_once_it_passes_its_slack);
    tcase_add_test(tc,
                   writes_that_log_many_events_each_keep_the_window_bounded);
    tcase_add_test(
        tc, after_the_last_revision_there_is_nothing_even_at_the_largest);
    tcase_add_test(tc, events_older_than_the_retention_are_trimmed);
    tcase_add_test(tc, a_retention_of_centuries_does_not_wrap_to_a_short_one);
    tcase_add_test(tc, wait_returns_after_a_commit_of_another_thread);
    tcase_add_test(tc, wait_times_out_with_not_modified);
    tcase_add_test(tc, close_wakes_waiters_with_closing);
    tcase_add_test(tc,
                   the_notify_descriptor_becomes_readable_after_each_commit);
    tcase_add_test(tc, list_then_watch_sees_every_later_change_exactly_once);
    tcase_add_test(tc, list_revision_reports_the_snapshot_revision);
    tcase_add_test(tc,
                   overlapping_writers_committing_alone_log_every_change_once);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
