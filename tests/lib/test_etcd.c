/*
 * test_etcd.c -- what only the etcd backend has: several handles (as
 * several front ends would be) racing on one prefix, endpoint failover,
 * and a write whose outcome is unknown.  Run by tests/etcd/with_etcd.sh
 * against a real etcd (ETAGKV_TEST_STORE); the library suites that make
 * sense on both backends run there too, unchanged (tests/CMakeLists.txt).
 *
 * The unknown outcome is made real, not mocked: a TCP relay between the
 * store and etcd passes requests on and, when told to, drops etcd's
 * answers -- a network that fails after the request arrived
 * (tests/common/relay.c, shared with tests/server/test_ha.c).
 *
 * The counts the engine keeps as counters under P/m/ are checked against
 * etcd's own count of the keys, read through its gateway with libcurl.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "base64.h"
#include "etcd_env.h"
#include "etcdutil.h"
#include "relay.h"
#include "store.h" /* ekv_leases_stop(): no sweeper in a count */
#include "testutil.h"

static char *dir;
static char where[1024];

static void setup(void)
{
    ck_assert_msg(tu_on_etcd(), "run me with tests/etcd/with_etcd.sh");
    dir = tu_mkdtemp();
    (void)tu_store_where(dir, where, sizeof(where));
}

static void teardown(void)
{
    tu_rmdir_free(dir);
}

/* where, with the endpoint list replaced by `endpoints` and `query`
 * appended. */
static void where_via(const char *endpoints, const char *query, char *out,
                      size_t cap)
{
    const char *path = strchr(where + strlen("etcd://"), '/');
    int n = snprintf(out, cap, "etcd://%s%s%s", endpoints, path, query);

    ck_assert(n > 0 && (size_t)n < cap);
}

/* The HOST:PORT of the test's etcd. */
static void real_endpoint(char *out, size_t cap)
{
    const char *e = getenv("ETAGKV_TEST_STORE") + strlen("etcd://");
    size_t n = strcspn(e, "/");

    ck_assert(n < cap);
    memcpy(out, e, n);
    out[n] = '\0';
}

/* Start relay r in front of the test's etcd; *list its HOST:PORT. */
static void relay_to_etcd(struct tu_relay *r, char *list, size_t cap)
{
    char real[256];

    real_endpoint(real, sizeof(real));
    tu_relay_start(r, atoi(strchr(real, ':') + 1));
    ck_assert(snprintf(list, cap, "127.0.0.1:%d", r->port) > 0);
}

/* Open the test's store through a relay started here, with query. */
static etagkv_store *open_via_relay(struct tu_relay *r, const char *query)
{
    char list[300], w[1200];
    etagkv_store *s = NULL;

    relay_to_etcd(r, list, sizeof(list));
    where_via(list, query, w, sizeof(w));
    ck_assert_int_eq(etagkv_store_open(w, NULL, &s), ETAGKV_OK);
    return s;
}

static uint64_t read_counter(etagkv_store *s, const char *key, etagkv_meta *m)
{
    void *v = NULL;
    size_t len = 0;
    char buf[32];
    etagkv_status st = etagkv_get(s, key, strlen(key), NULL, &v, &len, m);

    if (st == ETAGKV_NOT_FOUND)
        return 0;
    ck_assert_int_eq(st, ETAGKV_OK);
    ck_assert_uint_lt(len, sizeof(buf));
    memcpy(buf, v, len);
    buf[len] = '\0';
    etagkv_free(v);
    return strtoull(buf, NULL, 10);
}

/* ---- two handles on one prefix
 * ----------------------------------------------- */

struct racer {
    etagkv_store *s;
    int increments;
    int acknowledged;
    int lost_races; /* 412s: another writer got in between */
};

/* Compare-and-set increments of "counter": read, put If-Match the ETag
 * read (create-only when absent), on 412 read again. */
static void *race(void *arg)
{
    struct racer *r = arg;

    while (r->acknowledged < r->increments) {
        etagkv_meta m;
        etagkv_cond *c = NULL;
        uint64_t n = read_counter(r->s, "counter", &m);
        char buf[32];
        int len = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)n + 1);
        etagkv_status st = m.exists ? etagkv_cond_if_match(m.etag, &c)
                                    : etagkv_cond_create_only(&c);

        ck_assert_int_eq(st, ETAGKV_OK);
        st = etagkv_put(r->s, "counter", 7, buf, (size_t)len, NULL, c, NULL);
        etagkv_cond_free(c);
        if (st == ETAGKV_PRECONDITION_FAILED) {
            r->lost_races++;
            continue;
        }
        ck_assert_msg(st == ETAGKV_OK || st == ETAGKV_CREATED, "put: %s (%s)",
                      etagkv_strerror(st), etagkv_last_error_detail());
        r->acknowledged++;
    }
    return NULL;
}

START_TEST(two_handles_racing_cas_increments_lose_no_update)
{
    enum { THREADS = 4, EACH = 40 };
    etagkv_store *a = tu_open(dir, NULL), *b = tu_open(dir, NULL);
    struct racer r[THREADS];
    pthread_t th[THREADS];
    int acknowledged = 0, lost = 0;
    etagkv_meta m;

    for (int i = 0; i < THREADS; i++) {
        r[i] = (struct racer){.s = i % 2 ? b : a, .increments = EACH};
        ck_assert_int_eq(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        acknowledged += r[i].acknowledged;
        lost += r[i].lost_races;
    }
    printf("two handles: %d increments acknowledged, %d lost races retried\n",
           acknowledged, lost);
    /* No lost update: every acknowledged increment is in the counter, as
     * seen through either handle. */
    ck_assert_uint_eq(read_counter(a, "counter", &m), THREADS * EACH);
    ck_assert_uint_eq(m.version, THREADS * EACH);
    ck_assert_uint_eq(read_counter(b, "counter", &m), THREADS * EACH);
    etagkv_store_close(a);
    etagkv_store_close(b);
}
END_TEST

START_TEST(a_write_through_one_handle_is_seen_through_the_other)
{
    etagkv_store *a = tu_open(dir, NULL), *b = tu_open(dir, NULL);
    etagkv_meta ma, mb;
    etagkv_stats sa, sb;

    ck_assert_int_eq(etagkv_put(a, "k", 1, "v1", 2, "text/plain", NULL, &ma),
                     ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_get(b, "k", 1, NULL, NULL, NULL, &mb), ETAGKV_OK);
    ck_assert_str_eq(mb.etag, ma.etag);
    ck_assert_str_eq(mb.content_type, "text/plain");
    ck_assert_uint_eq(mb.mod_revision, ma.mod_revision);
    /* One store revision, whichever handle wrote. */
    ck_assert_int_eq(etagkv_put(b, "j", 1, "w", 1, NULL, NULL, &mb),
                     ETAGKV_CREATED);
    ck_assert_uint_eq(mb.mod_revision, ma.mod_revision + 1);
    ck_assert_int_eq(etagkv_store_stats(a, &sa), ETAGKV_OK);
    ck_assert_int_eq(etagkv_store_stats(b, &sb), ETAGKV_OK);
    ck_assert_uint_eq(sa.revision, mb.mod_revision);
    ck_assert_uint_eq(sb.revision, mb.mod_revision);
    ck_assert_uint_eq(sa.records, 2);
    etagkv_store_close(a);
    etagkv_store_close(b);
}
END_TEST

/* DESIGN §2: after A -> B -> A the ETag is A's again, and only
 * ETagKV-If-Revision tells that the key was written in between. */
START_TEST(a_to_b_to_a_is_caught_by_if_revision_not_by_if_match)
{
    etagkv_store *a = tu_open(dir, NULL), *b = tu_open(dir, NULL);
    etagkv_meta first, last;
    etagkv_cond *by_etag = NULL, *by_rev = NULL;

    ck_assert_int_eq(etagkv_put(a, "k", 1, "A", 1, NULL, NULL, &first),
                     ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_put(b, "k", 1, "B", 1, NULL, NULL, NULL),
                     ETAGKV_OK);
    ck_assert_int_eq(etagkv_put(b, "k", 1, "A", 1, NULL, NULL, &last),
                     ETAGKV_OK);
    ck_assert_str_eq(last.etag, first.etag);
    ck_assert_int_eq(etagkv_cond_new(&by_rev), ETAGKV_OK);
    ck_assert_int_eq(etagkv_cond_set_if_revision(by_rev, first.mod_revision),
                     ETAGKV_OK);
    ck_assert_int_eq(etagkv_put(a, "k", 1, "C", 1, NULL, by_rev, NULL),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(etagkv_cond_if_match(first.etag, &by_etag), ETAGKV_OK);
    ck_assert_int_eq(etagkv_put(a, "k", 1, "C", 1, NULL, by_etag, NULL),
                     ETAGKV_OK);
    etagkv_cond_free(by_etag);
    etagkv_cond_free(by_rev);
    etagkv_store_close(a);
    etagkv_store_close(b);
}
END_TEST

/* A handle takes the keys its own last commit wrote from memory
 * (etcd_known.c) instead of reading them, and the commit's compares catch
 * what another handle changed since: every answer, a 412 and its current
 * state included, is the one a fresh read would have given. */
START_TEST(answers_on_what_a_handle_remembers_are_those_of_a_fresh_read)
{
    etagkv_store *a = tu_open(dir, NULL), *b = tu_open(dir, NULL);
    etagkv_meta ma, mb, m;
    etagkv_cond *c = NULL;

    ck_assert_int_eq(etagkv_put(a, "k", 1, "v1", 2, NULL, NULL, &ma),
                     ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_put(b, "k", 1, "v2", 2, NULL, NULL, &mb),
                     ETAGKV_OK);
    /* a remembers v1: If-Match on v2's ETag holds all the same. */
    ck_assert_int_eq(etagkv_cond_if_match(mb.etag, &c), ETAGKV_OK);
    ck_assert_int_eq(etagkv_put(a, "k", 1, "v3", 2, NULL, c, &ma), ETAGKV_OK);
    ck_assert_uint_eq(ma.version, 3);
    etagkv_cond_free(c);
    /* a remembers v3, b wrote v4: a 412 that carries v4's state. */
    ck_assert_int_eq(etagkv_put(b, "k", 1, "v4", 2, NULL, NULL, &mb),
                     ETAGKV_OK);
    ck_assert_int_eq(etagkv_cond_if_match(ma.etag, &c), ETAGKV_OK);
    ck_assert_int_eq(etagkv_put(a, "k", 1, "v5", 2, NULL, c, &m),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_str_eq(m.etag, mb.etag);
    ck_assert_uint_eq(m.mod_revision, mb.mod_revision);
    etagkv_cond_free(c);
    /* a remembers the key present, b deleted it: create-only creates. */
    ck_assert_int_eq(etagkv_put(a, "j", 1, "x", 1, NULL, NULL, NULL),
                     ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_delete(b, "j", 1, NULL, NULL), ETAGKV_OK);
    ck_assert_int_eq(etagkv_cond_create_only(&c), ETAGKV_OK);
    ck_assert_int_eq(etagkv_put(a, "j", 1, "y", 1, NULL, c, &m),
                     ETAGKV_CREATED);
    ck_assert_uint_eq(m.version, 1);
    etagkv_cond_free(c);
    /* a remembers the key absent (its delete), b created it: a's delete
     * finds it, and a's create-only does not. */
    ck_assert_int_eq(etagkv_delete(a, "j", 1, NULL, NULL), ETAGKV_OK);
    ck_assert_int_eq(etagkv_put(b, "j", 1, "z", 1, NULL, NULL, &mb),
                     ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_cond_create_only(&c), ETAGKV_OK);
    ck_assert_int_eq(etagkv_put(a, "j", 1, "w", 1, NULL, c, &m),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_str_eq(m.etag, mb.etag);
    etagkv_cond_free(c);
    ck_assert_int_eq(etagkv_delete(b, "j", 1, NULL, NULL), ETAGKV_OK);
    ck_assert_int_eq(etagkv_delete(a, "j", 1, NULL, NULL), ETAGKV_NOT_FOUND);
    /* And the store revision: a remembers its own, b moved it. */
    ck_assert_int_eq(etagkv_put(a, "k", 1, "v6", 2, NULL, NULL, &ma),
                     ETAGKV_OK);
    ck_assert_uint_eq(ma.mod_revision, mb.mod_revision + 2);
    etagkv_store_close(a);
    etagkv_store_close(b);
}
END_TEST

/* What a handle remembers (etcd_known.c) stays within its bounds, in keys
 * and in bytes, and holds the latest state it was told of each key. */
START_TEST(a_handles_memory_is_bounded_and_keeps_the_latest)
{
    static char val[1024];
    static char big[EKV_ETCD_KNOWN_VAL_MAX + 1];
    struct ekv_etcd_known *k = NULL;
    const struct ekv_etcd_known_item *it;
    char key[32];
    size_t bytes, n;

    ck_assert_int_eq(ekv_etcd_known_new(&k), ETAGKV_OK);
    memset(val, 'v', sizeof val);
    /* 100,000 keys of 1 KiB: past both bounds. */
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "P/r/%d", i);
        ekv_etcd_known_put(k, key, strlen(key), val, sizeof val, 1, i + 1);
        n = ekv_etcd_known_count(k, &bytes);
        ck_assert_uint_le(n, EKV_ETCD_KNOWN_MAX_ENTRIES);
        ck_assert_uint_le(bytes, EKV_ETCD_KNOWN_MAX_BYTES);
    }
    ck_assert_uint_gt(n, 1000);
    it = ekv_etcd_known_get(k, "P/r/99999", 9);
    ck_assert_ptr_nonnull(it);
    ck_assert_int_eq(it->mod_revision, 100000);
    ck_assert_uint_eq(it->val_len, sizeof val);
    ck_assert_int_eq(memcmp(it->val, val, sizeof val), 0);
    /* A delete replaces the value; a value too large is forgotten. */
    ekv_etcd_known_put(k, "P/r/99999", 9, NULL, 0, 0, 0);
    it = ekv_etcd_known_get(k, "P/r/99999", 9);
    ck_assert_ptr_nonnull(it);
    ck_assert_int_eq(it->present, 0);
    ck_assert_uint_eq(it->val_len, 0);
    ekv_etcd_known_put(k, "P/r/99999", 9, big, sizeof big, 1, 7);
    ck_assert_ptr_null(ekv_etcd_known_get(k, "P/r/99999", 9));
    ekv_etcd_known_forget(k, "P/r/99998", 9);
    ck_assert_ptr_null(ekv_etcd_known_get(k, "P/r/99998", 9));
    ekv_etcd_known_clear(k);
    ck_assert_uint_eq(ekv_etcd_known_count(k, &bytes), 0);
    ck_assert_uint_eq(bytes, 0);
    ekv_etcd_known_free(k);
}
END_TEST

/* Drain fd until it stays quiet for quiet_ms; 1 if it was ever readable. */
static int drain(int fd, int quiet_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    int woke = 0;
    uint64_t n;

    while (poll(&p, 1, quiet_ms) == 1) {
        ck_assert_int_eq(read(fd, &n, sizeof(n)), (ssize_t)sizeof(n));
        woke = 1;
    }
    return woke;
}

START_TEST(a_commit_through_another_handle_wakes_this_ones_watchers)
{
    etagkv_store *a = tu_open(dir, NULL), *b = tu_open(dir, NULL);
    uint64_t rev = 0;
    int fd;
    double t0;

    ck_assert_int_eq(etagkv_notify_open(a, &fd), ETAGKV_OK);
    /* The watch's own start may wake it once, later on a loaded machine. */
    (void)drain(fd, 1000);
    ck_assert_int_eq(drain(fd, 300), 0); /* quiet with nobody writing */
    ck_assert_int_eq(etagkv_put(b, "k", 1, "v", 1, NULL, NULL, NULL),
                     ETAGKV_CREATED);
    t0 = tu_now_s();
    {
        struct pollfd p = {fd, POLLIN, 0};

        ck_assert_int_eq(poll(&p, 1, 5000), 1);
    }
    printf("woken %.1f ms after the other handle's commit\n",
           (tu_now_s() - t0) * 1e3);
    /* etagkv_wait() on a sees it too, without a commit of a's own. */
    ck_assert_int_eq(etagkv_wait(a, 0, 5000, &rev), ETAGKV_OK);
    ck_assert_uint_eq(rev, 1);
    etagkv_notify_close(a, fd);
    etagkv_store_close(a);
    etagkv_store_close(b);
}
END_TEST

/* A create-only put through handle a that waits (wait_ms), on a thread. */
struct held {
    etagkv_store *s;
    etagkv_result res;
    double took_s;
};

static void *held_put(void *arg)
{
    struct held *h = arg;
    etagkv_cond *c = NULL;
    double t0 = tu_now_s();
    etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                          .key = "lock",
                          .key_len = 4,
                          .value = "a's",
                          .value_len = 3,
                          .wait_ms = 30000};

    if (etagkv_cond_create_only(&c) != ETAGKV_OK)
        return NULL;
    req.cond = c;
    (void)etagkv_write(h->s, &req, &h->res);
    h->took_s = tu_now_s() - t0;
    etagkv_cond_free(c);
    return NULL;
}

/* A write waiting through one handle is evaluated again when another
 * handle changes its key (the watch of other commits), not only when its
 * wait ends. */
START_TEST(a_write_waiting_on_one_handle_sees_another_handles_delete)
{
    etagkv_store *a = tu_open(dir, NULL), *b = tu_open(dir, NULL);
    struct held h = {.s = a};
    etagkv_stats st;
    pthread_t t;
    double end = tu_now_s() + 20;

    ck_assert_int_eq(etagkv_put(b, "lock", 4, "b's", 3, NULL, NULL, NULL),
                     ETAGKV_CREATED);
    ck_assert_int_eq(pthread_create(&t, NULL, held_put, &h), 0);
    do {
        ck_assert(tu_now_s() < end);
        ck_assert_int_eq(etagkv_store_stats(a, &st), ETAGKV_OK);
    } while (st.writes_waiting != 1);
    ck_assert_int_eq(etagkv_delete(b, "lock", 4, NULL, NULL), ETAGKV_OK);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(h.res.status, ETAGKV_CREATED);
    ck_assert_msg(h.took_s < 25, "applied after %.1f s: at its wait's end",
                  h.took_s);
    printf("a waiting write applied %.1f s after it began, once the other "
           "handle deleted the key\n",
           h.took_s);
    etagkv_store_close(a);
    etagkv_store_close(b);
}
END_TEST

/* ---- endpoints
 * ------------------------------------------------------------------ */

START_TEST(a_dead_endpoint_fails_over_to_the_next)
{
    char real[256], list[300], w[1200];
    etagkv_store *s;
    etagkv_meta m;

    real_endpoint(real, sizeof(real));
    /* Port 1 on loopback: nothing listens, the connection is refused. */
    snprintf(list, sizeof(list), "127.0.0.1:1,%s", real);
    where_via(list, "", w, sizeof(w));
    ck_assert_int_eq(etagkv_store_open(w, NULL, &s), ETAGKV_OK);
    ck_assert_int_eq(etagkv_put(s, "k", 1, "v", 1, NULL, NULL, NULL),
                     ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_get(s, "k", 1, NULL, NULL, NULL, &m), ETAGKV_OK);
    etagkv_store_close(s);
}
END_TEST

START_TEST(no_reachable_endpoint_is_unavailable_and_a_bad_list_invalid)
{
    char w[1200];
    etagkv_store *s = (etagkv_store *)1;

    where_via("127.0.0.1:1", "", w, sizeof(w));
    ck_assert_int_eq(etagkv_store_open(w, NULL, &s), ETAGKV_UNAVAILABLE);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(etagkv_status_http(ETAGKV_UNAVAILABLE), 503);
    ck_assert_int_eq(etagkv_store_open("etcd://127.0.0.1:1,/p", NULL, &s),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_store_open("etcd://u@h:1/p", NULL, &s),
                     ETAGKV_INVALID_ARGUMENT);
    where_via("127.0.0.1:1", "?timeout_ms=0", w, sizeof(w));
    ck_assert_int_eq(etagkv_store_open(w, NULL, &s), ETAGKV_INVALID_ARGUMENT);
}
END_TEST

START_TEST(what_only_a_file_has_is_unsupported_and_says_so)
{
    etagkv_store *s = tu_open(dir, NULL);
    etagkv_stats st;

    ck_assert_int_eq(etagkv_store_backup_fd(s, 1), ETAGKV_UNSUPPORTED);
    ck_assert_int_eq(etagkv_status_http(ETAGKV_UNSUPPORTED), 501);
    ck_assert_int_eq(etagkv_store_backup(s, dir), ETAGKV_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(etagkv_last_error_detail(), "etcdctl"));
    ck_assert_int_eq(etagkv_store_stats(s, &st), ETAGKV_OK);
    ck_assert_uint_eq(st.map_size_bytes, 0);
    etagkv_store_close(s);
}
END_TEST

/* A prefix whose keys are not an etagkv store's (here: the records and
 * the counters of a store one level up) is refused and left alone. */
START_TEST(a_prefix_holding_other_data_is_incompatible)
{
    char w[1200];
    etagkv_store *s = tu_open(dir, NULL), *other = (etagkv_store *)1;

    ck_assert_int_eq(etagkv_put(s, "x", 1, "v", 1, NULL, NULL, NULL),
                     ETAGKV_CREATED);
    etagkv_store_close(s);
    snprintf(w, sizeof(w), "%s/r", where);
    ck_assert_int_eq(etagkv_store_open(w, NULL, &other), ETAGKV_INCOMPATIBLE);
    ck_assert_ptr_null(other);
    snprintf(w, sizeof(w), "%s/m", where);
    ck_assert_int_eq(etagkv_store_open(w, NULL, &other), ETAGKV_INCOMPATIBLE);
    s = tu_open(dir, NULL);
    ck_assert_int_eq(etagkv_get(s, "x", 1, NULL, NULL, NULL, NULL), ETAGKV_OK);
    etagkv_store_close(s);
}
END_TEST

/* ---- counts kept as counters
 * ------------------------------------------------- */

/* POST body (consumed) to etcd's gateway at path; its answer. */
static json_t *etcd_post(const char *path, json_t *body)
{
    char ep[256];

    real_endpoint(ep, sizeof(ep));
    return tu_etcd_post(ep, path, body);
}

/* The range [P/<name>, P/<name with its last byte + 1>) as a request. */
static json_t *prefix_range(const char *name)
{
    const char *prefix = strchr(where + strlen("etcd://"), '/');
    char k[80 * 1024];
    char *key, *end;
    int n = snprintf(k, sizeof(k), "%s/%s", prefix, name);
    json_t *req;

    ck_assert(n > 0 && (size_t)n < sizeof(k));
    key = ekv_base64_encode(k, (size_t)n, NULL);
    k[n - 1]++;
    end = ekv_base64_encode(k, (size_t)n, NULL);
    req = json_pack("{s:s, s:s}", "key", key, "range_end", end);
    free(key);
    free(end);
    ck_assert_ptr_nonnull(req);
    return req;
}

/* etcd's own count of the keys under P/<letter>/, a walk over them. */
static uint64_t etcd_count(const char *table)
{
    json_t *req = prefix_range(table), *j;
    uint64_t n;

    ck_assert_int_eq(json_object_set_new(req, "count_only", json_true()), 0);
    j = etcd_post("/v3/kv/range", req);
    n = strtoull(json_string_value(json_object_get(j, "count")) != NULL
                     ? json_string_value(json_object_get(j, "count"))
                     : "0",
                 NULL, 10);
    json_decref(j);
    return n;
}

/* Whether the counter P/m/count/<letter> exists, and *v its value. */
static int etcd_counter(char letter, uint64_t *v)
{
    char name[] = "m/count/?";
    json_t *req, *j, *kv;
    const char *val;
    uint8_t *bytes = NULL;
    size_t len = 0;
    int found;

    name[sizeof(name) - 2] = letter;
    req = prefix_range(name);
    json_object_del(req, "range_end"); /* the key alone */
    j = etcd_post("/v3/kv/range", req);
    kv = json_array_get(json_object_get(j, "kvs"), 0);
    found = kv != NULL;
    *v = 0;
    if (found) {
        val = json_string_value(json_object_get(kv, "value"));
        ck_assert_int_eq(ekv_base64_decode(val, strlen(val), &bytes, &len), 0);
        ck_assert_uint_eq(len, 8);
        for (size_t i = 0; i < 8; i++)
            *v |= (uint64_t)bytes[i] << (8 * i);
        free(bytes);
    }
    json_decref(j);
    return found;
}

/* Put value v under P/<name> of the test's prefix, straight into etcd. */
static void etcd_put_raw(const char *name, const char *v)
{
    json_t *req = prefix_range(name), *ans;
    char *b = ekv_base64_encode(v, strlen(v), NULL);

    json_object_del(req, "range_end");
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(json_object_set_new(req, "value", json_string(b)), 0);
    free(b);
    ans = etcd_post("/v3/kv/put", req);
    ck_assert_ptr_nonnull(ans);
    json_decref(ans);
}

/* Any etcd client can write under the prefix: an idempotency entry whose
 * key is longer than any Idempotency-Key is garbage, purged like the
 * others, and the purge that stops on it must not copy it into its
 * 255-byte position (found by review: it overwrote the store's handle;
 * ASan sees it). */
START_TEST(an_overlong_idempotency_entry_is_purged_without_overflow)
{
    etagkv_store *s = tu_open(dir, NULL);
    /* Long enough to run past the whole store handle, not only into the
     * fields after the position (which ASan cannot see). */
    size_t long_len = 64 * 1024;
    char *name = malloc(long_len + 1);

    ck_assert_ptr_nonnull(name);
    /* Eight short garbage entries, then the long one: the purge of one
     * keyed write drops eight and stops on the ninth. */
    for (int i = 0; i < 8; i++) {
        snprintf(name, long_len, "i/0%c", 'a' + i);
        etcd_put_raw(name, "junk");
    }
    memset(name, 'z', long_len);
    name[long_len] = '\0';
    memcpy(name, "i/0", 3);
    etcd_put_raw(name, "junk");
    free(name);
    for (int i = 0; i < 4; i++) {
        char k[8];
        etagkv_request rq = {.method = ETAGKV_METHOD_PUT,
                             .key = "k",
                             .key_len = 1,
                             .value = "v",
                             .value_len = 1,
                             .idempotency_key = k,
                             .idempotency_key_len = 2};
        etagkv_result r;

        snprintf(k, sizeof k, "k%d", i);
        ck_assert_int_eq(etagkv_write(s, &rq, &r),
                         i == 0 ? ETAGKV_CREATED : ETAGKV_OK);
    }
    ck_assert_uint_eq(etcd_count("i/0"), 0); /* all purged */
    ck_assert_int_eq(etagkv_put(s, "after", 5, "v", 1, NULL, NULL, NULL),
                     ETAGKV_CREATED);
    etagkv_store_close(s);
}
END_TEST

/* Make the prefix a store written before the counters: none of them. */
static void etcd_drop_counters(void)
{
    json_decref(etcd_post("/v3/kv/deleterange", prefix_range("m/count/")));
}

/* The counters agree with etcd's own count of what they count. */
static void assert_counters_exact(etagkv_store *s)
{
    static const char letters[] = "icl";
    static const char *const tables[] = {"i/", "c/", "l/"};
    etagkv_stats st;

    for (size_t i = 0; i < 3; i++) {
        uint64_t v;

        ck_assert_msg(etcd_counter(letters[i], &v), "no counter for %s",
                      tables[i]);
        ck_assert_uint_eq(v, etcd_count(tables[i]));
    }
    ck_assert_int_eq(etagkv_store_stats(s, &st), ETAGKV_OK);
    ck_assert_uint_eq(st.change_events, etcd_count("c/"));
    ck_assert_uint_eq(st.idempotency_keys, etcd_count("i/"));
}

struct keyed_writer {
    etagkv_store *s;
    int id;
    uint64_t lease;
    pthread_barrier_t *start;
};

/* Puts and deletes over a few keys shared by every writer, some attached
 * to a lease, most with an idempotency key of their own, every 8th a retry
 * of the 7th (a replay when it had a key). */
static void *write_keyed(void *arg)
{
    struct keyed_writer *w = arg;

    (void)pthread_barrier_wait(w->start);
    for (int n = 0; n < 48; n++) {
        int i = n % 8 == 7 ? n - 1 : n; /* the 8th repeats the 7th */
        char key[16], idem[32];
        etagkv_request rq = {.method = i % 5 == 4 ? ETAGKV_METHOD_DELETE
                                                  : ETAGKV_METHOD_PUT,
                             .key = key,
                             .value = "v",
                             .value_len = 1};
        etagkv_result r;
        etagkv_status st;

        rq.key_len = (size_t)snprintf(key, sizeof(key), "k%d", i % 6);
        if (rq.method == ETAGKV_METHOD_DELETE)
            rq.value_len = 0;
        else if (i % 3 == 0)
            rq.lease = w->lease; /* links in the lease table */
        if (i % 4 != 3) {
            rq.idempotency_key = idem;
            rq.idempotency_key_len =
                (size_t)snprintf(idem, sizeof(idem), "w%d-%d", w->id, i);
        }
        st = etagkv_write(w->s, &rq, &r);
        ck_assert_msg(
            st == ETAGKV_OK || st == ETAGKV_CREATED || st == ETAGKV_NOT_FOUND,
            "write: %s (%s)", etagkv_strerror(st), etagkv_last_error_detail());
    }
    return NULL;
}

/* Two handles (two front ends) write and trim on one prefix at once: every
 * commit's counters are compared, so they end equal to etcd's count. */
START_TEST(counts_stay_exact_with_two_handles_on_one_prefix)
{
    enum { THREADS = 4 };
    etagkv_options o;
    etagkv_store *a, *b;
    struct keyed_writer w[THREADS];
    pthread_t th[THREADS];
    pthread_barrier_t start;
    uint64_t lease;

    etagkv_options_init(&o);
    o.changes_max_events = 64; /* trimmed while they write */
    a = tu_open(dir, &o);
    b = tu_open(dir, &o);
    /* Long enough to outlive the test on any machine. */
    ck_assert_int_eq(etagkv_lease_grant(a, 600000, &lease), ETAGKV_OK);
    ck_assert_int_eq(pthread_barrier_init(&start, NULL, THREADS), 0);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct keyed_writer){
            .s = i % 2 ? b : a, .id = i, .lease = lease, .start = &start};
        ck_assert_int_eq(pthread_create(&th[i], NULL, write_keyed, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    (void)pthread_barrier_destroy(&start);
    ck_assert_uint_le(etcd_count("c/"), 64 + 1);
    ck_assert_uint_gt(etcd_count("i/"), 0);
    ck_assert_uint_gt(etcd_count("l/"), 1);
    assert_counters_exact(a);
    assert_counters_exact(b);
    etagkv_store_close(a);
    etagkv_store_close(b);
}
END_TEST

/* A prefix written before the counters (none under P/m/count/): the first
 * commit that needs a count counts the table once and writes its counter,
 * from then on kept; reads count the table meanwhile. */
START_TEST(a_store_without_counters_counts_once_and_keeps_them)
{
    etagkv_store *s = tu_open(dir, NULL);
    etagkv_stats st;
    uint64_t v;

    for (int i = 0; i < 10; i++) {
        char key[8], idem[8];
        etagkv_request rq = {
            .method = ETAGKV_METHOD_PUT,
            .key = key,
            .key_len = (size_t)snprintf(key, sizeof(key), "k%d", i % 3),
            .value = "v",
            .value_len = 1,
            .idempotency_key = idem,
            .idempotency_key_len =
                (size_t)snprintf(idem, sizeof(idem), "i%d", i)};
        etagkv_result r;

        ck_assert_int_le(etagkv_write(s, &rq, &r), ETAGKV_CREATED);
    }
    etagkv_store_close(s);
    etcd_drop_counters();
    ck_assert(!etcd_counter('c', &v));

    s = tu_open(dir, NULL);
    ck_assert_int_eq(etagkv_store_stats(s, &st), ETAGKV_OK);
    ck_assert_uint_eq(st.change_events, 10);
    ck_assert_uint_eq(st.idempotency_keys, 10);
    ck_assert_int_eq(etagkv_put(s, "k0", 2, "w", 1, NULL, NULL, NULL),
                     ETAGKV_OK);
    ck_assert_msg(etcd_counter('c', &v), "the commit wrote no counter");
    ck_assert_uint_eq(v, 11);
    /* The idempotency table's count is looked at by a keyed write. */
    {
        etagkv_request rq = {.method = ETAGKV_METHOD_PUT,
                             .key = "k9",
                             .key_len = 2,
                             .value = "v",
                             .value_len = 1,
                             .idempotency_key = "fresh",
                             .idempotency_key_len = 5};
        etagkv_result r;

        ck_assert_int_eq(etagkv_write(s, &rq, &r), ETAGKV_CREATED);
    }
    ck_assert_msg(etcd_counter('i', &v), "the commit wrote no counter");
    ck_assert_uint_eq(v, 11);
    ck_assert_int_eq(etagkv_delete(s, "k1", 2, NULL, NULL), ETAGKV_OK);
    ck_assert(etcd_counter('l', &v)); /* a delete looks at the leases */
    assert_counters_exact(s);
    etagkv_store_close(s);
}
END_TEST

START_TEST(a_write_sent_without_an_answer_is_outcome_unknown_never_guessed)
{
    struct tu_relay r;
    etagkv_store *direct = tu_open(dir, NULL);
    etagkv_store *s = open_via_relay(&r, "?timeout_ms=3000");
    etagkv_meta m;
    etagkv_cond *c = NULL;

    ck_assert_int_eq(etagkv_put(s, "k", 1, "1", 1, NULL, NULL, &m),
                     ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_cond_if_match(m.etag, &c), ETAGKV_OK);

    atomic_store(&r.drop_txn_answers, 1);
    ck_assert_int_eq(etagkv_put(s, "k", 1, "2", 1, NULL, c, NULL),
                     ETAGKV_OUTCOME_UNKNOWN);
    ck_assert_int_eq(etagkv_status_http(ETAGKV_OUTCOME_UNKNOWN), 503);
    /* It was applied.  Had the store run it again, its own first run
     * would have failed the If-Match: a 412 for a write that succeeded. */
    ck_assert_uint_eq(read_counter(direct, "k", &m), 2);
    ck_assert_int_eq(etagkv_put(direct, "k", 1, "2", 1, NULL, c, NULL),
                     ETAGKV_PRECONDITION_FAILED);
    /* A read through the same relay still works: reads are answered. */
    ck_assert_uint_eq(read_counter(s, "k", &m), 2);
    etagkv_cond_free(c);
    etagkv_store_close(s);
    tu_relay_stop(&r);
    etagkv_store_close(direct);
}
END_TEST

/* The same when the connection dies instead, after the commit went out
 * and before a byte of its answer: libcurl would take it for a kept-alive
 * connection gone stale and send the commit again on a new one (found by
 * review: a create-only put that succeeded answered 412, an unconditional
 * one was applied twice).  A write goes out once. */
START_TEST(a_write_whose_connection_dies_unanswered_is_not_sent_again)
{
    struct tu_relay r;
    etagkv_store *direct = tu_open(dir, NULL);
    etagkv_store *s = open_via_relay(&r, "");
    etagkv_cond *create_only = NULL;

    ck_assert_int_eq(etagkv_cond_create_only(&create_only), ETAGKV_OK);
    /* Create-only (sent again, it would fail its compare and be refused
     * on the second run: 412), then unconditional (sent again, applied
     * twice). */
    for (int i = 0; i < 2; i++) {
        const char *key = i == 0 ? "once" : "twice";
        etagkv_meta m;

        /* Warm: the commits' connection is kept alive. */
        ck_assert_int_eq(etagkv_put(s, "warm", 4, "w", 1, NULL, NULL, NULL),
                         i == 0 ? ETAGKV_CREATED : ETAGKV_OK);
        atomic_store(&r.close_on_drop, 1);
        atomic_store(&r.drop_txn_answers, 1);
        ck_assert_int_eq(etagkv_put(s, key, strlen(key), "1", 1, NULL,
                                    i == 0 ? create_only : NULL, NULL),
                         ETAGKV_OUTCOME_UNKNOWN);
        ck_assert_int_eq(atomic_load(&r.answers_dropped), i + 1);
        /* Applied once. */
        ck_assert_int_eq(
            etagkv_get(direct, key, strlen(key), NULL, NULL, NULL, &m),
            ETAGKV_OK);
        ck_assert_uint_eq(m.version, 1);
    }
    etagkv_cond_free(create_only);
    etagkv_store_close(s);
    tu_relay_stop(&r);
    etagkv_store_close(direct);
}
END_TEST

/* A commit answered with something other than etcd's JSON (a proxy gone
 * wrong, a reply cut short) may have been applied: an unknown outcome,
 * never a failure.  Taken for one, a batch was split and each write run
 * again: applied twice, or a 412 caused by its own first run (found by
 * review). */
START_TEST(a_commit_answered_with_something_not_json_is_outcome_unknown)
{
    struct tu_relay r;
    etagkv_store *direct = tu_open(dir, NULL);
    etagkv_store *s = open_via_relay(&r, "");
    etagkv_cond *create_only = NULL;

    ck_assert_int_eq(etagkv_cond_create_only(&create_only), ETAGKV_OK);
    atomic_store(&r.garble_txn_answers, 1);
    for (int i = 0; i < 2; i++) {
        const char *key = i == 0 ? "once" : "twice";
        etagkv_meta m;

        ck_assert_int_eq(etagkv_put(s, key, strlen(key), "1", 1, NULL,
                                    i == 0 ? create_only : NULL, NULL),
                         ETAGKV_OUTCOME_UNKNOWN);
        ck_assert_int_eq(
            etagkv_get(direct, key, strlen(key), NULL, NULL, NULL, &m),
            ETAGKV_OK);
        ck_assert_uint_eq(m.version, 1); /* applied once */
    }
    atomic_store(&r.garble_txn_answers, 0);
    ck_assert_int_eq(etagkv_put(s, "once", 4, "2", 1, NULL, NULL, NULL),
                     ETAGKV_OK);
    etagkv_cond_free(create_only);
    etagkv_store_close(s);
    tu_relay_stop(&r);
    etagkv_store_close(direct);
}
END_TEST

/* etcd answering a range of one key with another key (a gateway or proxy
 * gone wrong) is an I/O error, never filed under the key asked for (found
 * by review: a NULL dereference). */
START_TEST(an_answer_about_another_key_is_an_io_error)
{
    struct tu_relay r;
    etagkv_store *s = open_via_relay(&r, "");
    etagkv_stats stats;

    ck_assert_int_eq(etagkv_put(s, "k", 1, "v", 1, NULL, NULL, NULL),
                     ETAGKV_CREATED);
    atomic_store(&r.mangle_keys, 1);
    ck_assert_int_eq(etagkv_get(s, "k", 1, NULL, NULL, NULL, NULL),
                     ETAGKV_IO_ERROR);
    ck_assert_int_eq(etagkv_store_stats(s, &stats), ETAGKV_IO_ERROR);
    atomic_store(&r.mangle_keys, 0);
    ck_assert_int_eq(etagkv_get(s, "k", 1, NULL, NULL, NULL, NULL), ETAGKV_OK);
    etagkv_store_close(s);
    tu_relay_stop(&r);
}
END_TEST

/* Put a key outside the store, then compact etcd's history up to that
 * put: a read pinned before it has lost its snapshot. */
static void compact_etcd_now(void)
{
    json_t *a =
        etcd_post("/v3/kv/put", json_pack("{s:s,s:s}", "key",
                                          "b3V0c2lkZQ==", "value", "eA=="));
    int64_t rev =
        (int64_t)strtoll(json_string_value(json_object_get(
                             json_object_get(a, "header"), "revision")),
                         NULL, 10);

    json_decref(a);
    ck_assert_int_gt(rev, 0);
    json_decref(etcd_post(
        "/v3/kv/compaction",
        json_pack("{s:I,s:b}", "revision", (json_int_t)rev, "physical", 1)));
}

static int compact_at_first_record(void *ctx, const void *key, size_t key_len,
                                   const etagkv_meta *meta)
{
    int *calls = ctx;

    (void)key;
    (void)key_len;
    (void)meta;
    if ((*calls)++ == 0)
        compact_etcd_now();
    return 0;
}

static int compact_at_first_event(void *ctx, const etagkv_event *ev)
{
    int *calls = ctx;

    (void)ev;
    if ((*calls)++ == 0)
        compact_etcd_now();
    return 0;
}

/* etcd compacting its history past the revision a long read is pinned at
 * (found by review): the read fails to be retried, UNAVAILABLE, not
 * COMPACTED, which etagkv_changes() gives only for an after behind the
 * change log's floor (and /changes turns into a 410 with that floor). */
START_TEST(an_etcd_compaction_overtaking_a_read_is_unavailable_not_compacted)
{
    etagkv_store *s = tu_open(dir, NULL);
    etagkv_changes_page page;
    int calls = 0;

    for (int i = 0; i < 300; i++) {
        char k[16];

        snprintf(k, sizeof k, "k%03d", i);
        ck_assert_int_eq(etagkv_put(s, k, strlen(k), "v", 1, NULL, NULL, NULL),
                         ETAGKV_CREATED);
    }
    ck_assert_int_eq(etagkv_list(s, NULL, 0, NULL, 0, 0,
                                 compact_at_first_record, &calls, NULL),
                     ETAGKV_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(etagkv_last_error_detail(), "compacted"));
    ck_assert_int_lt(calls, 300);
    calls = 0;
    ck_assert_int_eq(etagkv_changes(s, NULL, 0, 0, 10, 0,
                                    compact_at_first_event, &calls, &page),
                     ETAGKV_UNAVAILABLE);
    /* Retried (calls past the first compact no more), it reads on. */
    calls = 1;
    ck_assert_int_eq(etagkv_changes(s, NULL, 0, 0, 10, 0,
                                    compact_at_first_event, &calls, &page),
                     ETAGKV_OK);
    etagkv_store_close(s);
}
END_TEST

static atomic_int pinned_writes;

/* ekv_test_before_pinned_read: the first read a write transaction pins at
 * its first read's revision finds that revision compacted away. */
static void compact_before_first_pinned_write(int write)
{
    if (write && atomic_fetch_add(&pinned_writes, 1) == 0)
        compact_etcd_now();
}

/* The write half of the above (found by review; a per-key read had turned
 * it into that one operation's failure): a write transaction whose pinned
 * snapshot etcd compacts away while it reads runs again at a fresh
 * revision, once, and succeeds; nothing is applied twice.  A lease grant
 * reads at its pinned revision after its first read. */
START_TEST(an_etcd_compaction_overtaking_a_write_runs_it_again)
{
    etagkv_store *s = tu_open(dir, NULL);
    etagkv_lease l;
    uint64_t id = 0, next = 0;

    ck_assert_int_eq(etagkv_put(s, "k", 1, "v", 1, NULL, NULL, NULL),
                     ETAGKV_CREATED);
    atomic_store(&pinned_writes, 0);
    ekv_test_before_pinned_read = compact_before_first_pinned_write;
    ck_assert_msg(etagkv_lease_grant(s, 60000, &id) == ETAGKV_OK, "%s",
                  etagkv_last_error_detail());
    ekv_test_before_pinned_read = NULL;
    /* Compacted at its first pinned read, then read afresh. */
    ck_assert_int_ge(atomic_load(&pinned_writes), 2);
    ck_assert_int_eq(etagkv_lease_info(s, id, &l, NULL, NULL), ETAGKV_OK);
    ck_assert_uint_eq(l.ttl_ms, 60000);
    /* One grant: the next id is the one after it. */
    ck_assert_int_eq(etagkv_lease_grant(s, 60000, &next), ETAGKV_OK);
    ck_assert_uint_eq(next, id + 1);
    ck_assert_int_eq(etagkv_get(s, "k", 1, NULL, NULL, NULL, NULL), ETAGKV_OK);
    etagkv_store_close(s);
}
END_TEST

/* A 412's diagnosis on etcd walks the key's own history: for a validator
 * two writes old, on a key written again since the refusal, with 600
 * revisions between the validator's supersession and the refusal, a few
 * Ranges (the change log would take a dozen, each of 128 events), and
 * the log's own answer.  The lease sweeper is stopped first: its
 * once-a-second read of the deadlines would pass through the relay too
 * (a 6 for 5 in CI). */
START_TEST(a_diagnosis_walks_the_keys_history_not_the_change_log)
{
    char other[16];
    struct tu_relay r;
    etagkv_store *s = open_via_relay(&r, "");
    etagkv_meta a, b, c;
    etagkv_cond *held = NULL;
    etagkv_supersession sup;
    int before, used;

    ck_assert_int_eq(etagkv_put(s, "k", 1, "a", 1, NULL, NULL, &a),
                     ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_put(s, "k", 1, "b", 1, NULL, NULL, &b), ETAGKV_OK);
    for (int i = 0; i < 600; i++) {
        etagkv_status st;

        snprintf(other, sizeof other, "o%d", i % 50);
        st = etagkv_put(s, other, strlen(other), "x", 1, NULL, NULL, NULL);
        ck_assert(st == ETAGKV_OK || st == ETAGKV_CREATED);
    }
    ck_assert_int_eq(etagkv_put(s, "k", 1, "c", 1, NULL, NULL, &c), ETAGKV_OK);
    ck_assert_int_eq(etagkv_put(s, "k", 1, "d", 1, NULL, NULL, NULL),
                     ETAGKV_OK);
    ck_assert_int_eq(etagkv_cond_if_match(a.etag, &held), ETAGKV_OK);

    /* Refused on c, the key at d since. */
    ekv_leases_stop(s);
    before = atomic_load(&r.requests);
    ck_assert_int_eq(etagkv_cond_superseded(s, "k", 1, held, ETAGKV_STEP_NONE,
                                            ETAGKV_METHOD_PUT, c.mod_revision,
                                            &sup),
                     ETAGKV_OK);
    used = atomic_load(&r.requests) - before;
    ck_assert_uint_eq(sup.revision, b.mod_revision);
    ck_assert_uint_eq(sup.modified_ns, b.modified_ns);
    ck_assert_uint_eq(sup.held_revision, a.mod_revision);
    /* the floor, then d, c, b and a */
    ck_assert_int_le(used, 5);
    etagkv_cond_free(held);
    etagkv_store_close(s);
    tu_relay_stop(&r);
}
END_TEST

/* ---- reads that go together ---------------------------------------------
 */

#define N_READERS (EKV_ETCD_READS_ON_THE_WAY + 8)

struct reader {
    struct ekv_etcd_client *c;
    char key[64];
    etagkv_status st;
    char why[256];
    json_t *reply;
    pthread_t th;
};

static void *read_one(void *arg)
{
    struct reader *r = arg;
    json_t *req = json_object();
    char *b = ekv_base64_encode(r->key, strlen(r->key), NULL);

    ck_assert(req != NULL && b != NULL);
    ck_assert_int_eq(json_object_set_new(req, "key", json_string(b)), 0);
    free(b);
    r->st = ekv_etcd_read(r->c, req, &r->reply);
    /* The failure's text is on this thread, whoever sent the read. */
    snprintf(r->why, sizeof r->why, "%s", etagkv_last_error_detail());
    json_decref(req);
    return NULL;
}

static size_t reads_waiting(struct ekv_etcd_client *c)
{
    size_t waiting, on_their_way;

    ekv_etcd_reads_count(c, &waiting, &on_their_way);
    return waiting;
}

/* Start reader i and, with etcd's answers held, wait until it is on its
 * way (the relay saw its request: the first EKV_ETCD_READS_ON_THE_WAY) or
 * queued behind those; base: the relay's requests before the first. */
static void start_reader(struct reader *rd, int i, struct tu_relay *r,
                         struct ekv_etcd_client *c, const char *tag, int base)
{
    snprintf(rd[i].key, sizeof rd[i].key, "%s/k%d", tag, i);
    rd[i].c = c;
    ck_assert_int_eq(pthread_create(&rd[i].th, NULL, read_one, &rd[i]), 0);
    while (i < EKV_ETCD_READS_ON_THE_WAY
               ? atomic_load(&r->requests) < base + i + 1
               : reads_waiting(c) < (size_t)(i + 1 - EKV_ETCD_READS_ON_THE_WAY))
        (void)poll(NULL, 0, 1);
}

/* Every place on the way given back, none waiting: the client is idle. */
static void assert_reads_idle(struct ekv_etcd_client *c)
{
    size_t waiting, on_their_way;

    ekv_etcd_reads_count(c, &waiting, &on_their_way);
    ck_assert_uint_eq(waiting, 0);
    ck_assert_uint_eq(on_their_way, 0);
}

/* The value of the answer's only key, and the answer's revision. */
static const char *answered(const json_t *reply, int64_t *rev)
{
    const json_t *kv = json_array_get(json_object_get(reply, "kvs"), 0);
    const char *v = json_string_value(json_object_get(kv, "value"));
    static char out[64];
    uint8_t *d = NULL;
    size_t n = 0;

    *rev = ekv_etcd_int(
        json_object_get(json_object_get(reply, "header"), "revision"));
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(ekv_base64_decode(v, strlen(v), &d, &n), 0);
    ck_assert_uint_lt(n, sizeof out);
    memcpy(out, d, n);
    out[n] = '\0';
    free(d);
    return out;
}

/* Write the readers' keys under tag straight to etcd (key i holds "vi"),
 * then start relay r in front of etcd (*list its HOST:PORT) and a client
 * *c through it; the revision of the last write. */
static int64_t readers_ready(const char *tag, struct tu_relay *r, char *list,
                             size_t cap, struct ekv_etcd_client **c)
{
    char real[256], key[80], val[16];
    int64_t written = 0;

    real_endpoint(real, sizeof(real));

    for (int i = 0; i < N_READERS; i++) {
        char *kb, *vb;
        json_t *a;

        snprintf(key, sizeof key, "%s/k%d", tag, i);
        snprintf(val, sizeof val, "v%d", i);
        kb = ekv_base64_encode(key, strlen(key), NULL);
        vb = ekv_base64_encode(val, strlen(val), NULL);
        a = tu_etcd_post(real, "/v3/kv/put",
                         json_pack("{s:s, s:s}", "key", kb, "value", vb));
        written = ekv_etcd_int(
            json_object_get(json_object_get(a, "header"), "revision"));
        json_decref(a);
        free(kb);
        free(vb);
    }
    relay_to_etcd(r, list, cap);
    ck_assert_int_eq(ekv_etcd_client_new(list, strlen(list), 0, c), ETAGKV_OK);
    return written;
}

/* Start N_READERS readers with etcd's answers held (the first
 * EKV_ETCD_READS_ON_THE_WAY on their way, the others queued behind them),
 * let the answers go, and check that each reader got its own key at a
 * revision no older than `written`. */
static void read_all_held_then_released(struct reader *rd, struct tu_relay *r,
                                        struct ekv_etcd_client *c,
                                        const char *tag, int64_t written)
{
    char val[16];
    int64_t rev;

    atomic_store(&r->hold_answers, 1);
    for (int i = 0; i < N_READERS; i++)
        start_reader(rd, i, r, c, tag, 0);
    /* the others wait */
    ck_assert_int_eq(atomic_load(&r->requests), EKV_ETCD_READS_ON_THE_WAY);
    atomic_store(&r->hold_answers, 0);
    for (int i = 0; i < N_READERS; i++) {
        ck_assert_int_eq(pthread_join(rd[i].th, NULL), 0);
        ck_assert_msg(rd[i].st == ETAGKV_OK, "read %d: %s", i, rd[i].why);
        snprintf(val, sizeof val, "v%d", i);
        ck_assert_str_eq(answered(rd[i].reply, &rev), val);
        ck_assert_int_ge(rev, written);
        json_decref(rd[i].reply);
        rd[i].reply = NULL;
    }
    /* The four returned together, one handing its place to the batch:
     * the others give theirs back (a place handed on twice would be lost
     * for good, and reads would queue forever once all four were). */
    assert_reads_idle(c);
}

/* Point reads asked for while EKV_ETCD_READS_ON_THE_WAY are on their way
 * go to etcd together: one read-only Txn for the eight that waited, each
 * answered with its own key and the Txn's revision (at least that of the
 * writes made before any of them was asked for). */
START_TEST(reads_that_wait_for_others_on_their_way_go_together)
{
    char list[300], tag[64];
    struct reader rd[N_READERS] = {0};
    struct ekv_etcd_client *c = NULL;
    struct tu_relay r;
    int64_t written;
    int sent, txns;

    snprintf(tag, sizeof tag, "reads-%d", (int)getpid());
    written = readers_ready(tag, &r, list, sizeof(list), &c);

    read_all_held_then_released(rd, &r, c, tag, written);
    sent = atomic_load(&r.requests); /* Ranges, then one Txn */
    txns = atomic_load(&r.txns);
    ck_assert_int_eq(sent, EKV_ETCD_READS_ON_THE_WAY + 1);
    ck_assert_int_eq(txns, 1);

    /* A batch that fails fails each of its reads, with its cause on each
     * reader's thread: the connections of the reads on their way end
     * unanswered, and the relay takes no more. */
    atomic_store(&r.hold_answers, 1);
    for (int i = 0; i < EKV_ETCD_READS_ON_THE_WAY + 2; i++)
        start_reader(rd, i, &r, c, tag, EKV_ETCD_READS_ON_THE_WAY + 1);
    tu_relay_stop(&r);
    for (int i = 0; i < EKV_ETCD_READS_ON_THE_WAY + 2; i++) {
        ck_assert_int_eq(pthread_join(rd[i].th, NULL), 0);
        ck_assert_int_eq(rd[i].st, ETAGKV_UNAVAILABLE);
        ck_assert_ptr_null(rd[i].reply);
        ck_assert_msg(strstr(rd[i].why, list) != NULL, "read %d: \"%s\"", i,
                      rd[i].why);
    }
    assert_reads_idle(c);
    ekv_etcd_client_free(c);
}
END_TEST

/* Run against an etcd whose --max-txn-ops (4; ETCD_LIMITS=small
 * tests/etcd/with_etcd.sh, ctest's etcd_small_limits) is under a batch of
 * eight: etcd refuses the batch's Txn (TXN_TOO_LARGE) and its reads go one
 * by one, each still answered with its own key; no place on the way is
 * lost. */
START_TEST(reads_in_a_batch_too_large_for_etcd_go_one_by_one)
{
    char list[300], tag[64];
    struct reader rd[N_READERS] = {0};
    struct ekv_etcd_client *c = NULL;
    struct tu_relay r;
    int64_t written;

    snprintf(tag, sizeof tag, "small-%d", (int)getpid());
    written = readers_ready(tag, &r, list, sizeof(list), &c);

    read_all_held_then_released(rd, &r, c, tag, written);
    /* The four Ranges, the refused Txn, then the batch's eight Ranges. */
    ck_assert_int_eq(atomic_load(&r.txns), 1);
    ck_assert_int_eq(atomic_load(&r.requests), N_READERS + 1);
    tu_relay_stop(&r);
    ekv_etcd_client_free(c);
}
END_TEST

/* ---- within etcd's own limits --------------------------------------------
 */

/* Run with etcd's default --max-txn-ops (128; ETCD_LIMITS=default
 * tests/etcd/with_etcd.sh, ctest's etcd_default_limits).  A change log
 * that passes its slack (changes_max_events / 64, at most 256) is trimmed
 * back by the commits that follow, a few events each (changes.c): trimmed
 * in one commit, as on LMDB, the slack's deletes and their compares would
 * make that commit an etcd Txn of more than 128 operations, refused
 * (TXN_TOO_LARGE) on every try, so that no write could commit any more. */
/* A transaction of 128 create-only puts on keys the handle wrote (and so
 * remembers) is refused by every operation: with nothing to write, its
 * reads of memory are compared alone before the answer, 129 compares,
 * over etcd's default --max-txn-ops.  That must cost a fresh read, not
 * the answer (a 413, TXN_TOO_LARGE). */
START_TEST(a_refused_transaction_of_128_keys_is_a_conflict_within_the_limits)
{
    etagkv_store *s = tu_open(dir, NULL);
    etagkv_cond *c = NULL;
    etagkv_txn *t = NULL;
    etagkv_txn_outcome out;
    char k[16];

    for (int i = 0; i < 128; i++) {
        snprintf(k, sizeof k, "k%d", i);
        ck_assert_int_eq(etagkv_put(s, k, strlen(k), "v", 1, NULL, NULL, NULL),
                         ETAGKV_CREATED);
    }
    ck_assert_int_eq(etagkv_cond_create_only(&c), ETAGKV_OK);
    ck_assert_int_eq(etagkv_txn_new(&t), ETAGKV_OK);
    for (int i = 0; i < 128; i++) {
        snprintf(k, sizeof k, "k%d", i);
        ck_assert_int_eq(etagkv_txn_put(t, k, strlen(k), "w", 1, NULL, c),
                         ETAGKV_OK);
    }
    ck_assert_int_eq(etagkv_txn_commit(s, t), ETAGKV_CONFLICT);
    etagkv_txn_report(t, &out);
    ck_assert_uint_eq(out.failed, 0);
    etagkv_txn_free(t);
    etagkv_cond_free(c);
    etagkv_store_close(s);
}
END_TEST

/* A store whose change log keeps max events. */
static etagkv_store *open_with_log_max(uint64_t max)
{
    etagkv_options o;

    etagkv_options_init(&o);
    o.changes_max_events = max;
    return tu_open(dir, &o);
}

/* Commit one transaction of n puts of "<prefix><i>" (attached to lease,
 * unless 0); it must succeed (round: for the message). */
static void put_in_one_txn(etagkv_store *s, const char *prefix, int n,
                           uint64_t lease, int round)
{
    etagkv_txn *t = NULL;
    etagkv_status st;
    char k[16];

    ck_assert_int_eq(etagkv_txn_new(&t), ETAGKV_OK);
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "%s%d", prefix, i);
        ck_assert_int_eq(
            etagkv_txn_put_lease(t, k, strlen(k), "v", 1, NULL, NULL, lease),
            ETAGKV_OK);
    }
    st = etagkv_txn_commit(s, t);
    ck_assert_msg(st == ETAGKV_OK, "round %d, %d puts: %s (%s)", round, n,
                  etagkv_strerror(st), etagkv_last_error_detail());
    etagkv_txn_free(t);
}

/* Transactions of `puts` puts each, every one of which must commit,
 * until the change log (bound 6,400, slack 100) has taken `slacks`
 * slacks past its bound; then it holds at most bound + slack. */
static void puts_past_the_slack(int puts, int slacks)
{
    enum { MAX = 6400, SLACK = MAX / 64 };
    etagkv_store *s = open_with_log_max(MAX);
    etagkv_stats stats;

    for (int round = 0; round < (MAX + slacks * SLACK) / puts; round++)
        put_in_one_txn(s, "t", puts, 0, round);
    ck_assert_int_eq(etagkv_store_stats(s, &stats), ETAGKV_OK);
    ck_assert_uint_le(stats.change_events, MAX + SLACK);
    ck_assert_uint_gt(stats.changes_min_after, 0);
    etagkv_store_close(s);
}

/* 36: the largest transaction of plain puts whose commit, trimming,
 * fitted in 128 operations before the trim took the room it finds (stop
 * 41: 3 x 36 + 19 = 127), which must never leave less than before. */
START_TEST(a_change_log_past_its_slack_is_trimmed_within_etcds_default_limits)
{
    puts_past_the_slack(36, 2);
}
END_TEST

/* A lease's keys are attached, then revoked, with the log at the end of
 * its slack: each of those commits writes three entries per key and
 * trims as much as it finds room for, within the limits. */
START_TEST(revokes_at_a_full_change_log_are_within_etcds_default_limits)
{
    enum { MAX = 6400, SLACK = MAX / 64, FILL = 50, KEYS = 20, ROUNDS = 8 };
    etagkv_store *s = open_with_log_max(MAX);
    etagkv_stats stats;

    for (int round = 0; round < (MAX + SLACK) / FILL; round++)
        put_in_one_txn(s, "f", FILL, 0, round);
    ck_assert_int_eq(etagkv_store_stats(s, &stats), ETAGKV_OK);
    ck_assert_uint_eq(stats.change_events, MAX + SLACK);
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t lease = 0, rev = 0;
        etagkv_status st;

        ck_assert_int_eq(etagkv_lease_grant(s, 60000, &lease), ETAGKV_OK);
        put_in_one_txn(s, "l", KEYS, lease, round);
        st = etagkv_lease_revoke(s, lease, &rev);
        ck_assert_msg(st == ETAGKV_OK, "round %d: revoke: %s (%s)", round,
                      etagkv_strerror(st), etagkv_last_error_detail());
        ck_assert_uint_gt(rev, 0);
    }
    ck_assert_int_eq(etagkv_store_stats(s, &stats), ETAGKV_OK);
    ck_assert_uint_le(stats.change_events, MAX + MAX / 64);
    etagkv_store_close(s);
}
END_TEST

/* Against an etcd run with --max-txn-ops 64 (ctest's etcd_lowered_limits):
 * a trim that takes the room of the default 128 is refused there, and
 * the handle trims as before from then on: no write is refused for it,
 * and the log keeps its bound. */
START_TEST(a_cluster_with_lowered_limits_gets_the_trims_of_before)
{
    puts_past_the_slack(10, 4);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("etcd");
    TCase *tc = tcase_create("etcd");
    TCase *limits = tcase_create("default_limits");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, two_handles_racing_cas_increments_lose_no_update);
    tcase_add_test(tc, a_write_through_one_handle_is_seen_through_the_other);
    tcase_add_test(tc, a_to_b_to_a_is_caught_by_if_revision_not_by_if_match);
    tcase_add_test(
        tc, answers_on_what_a_handle_remembers_are_those_of_a_fresh_read);
    tcase_add_test(tc, a_handles_memory_is_bounded_and_keeps_the_latest);
    tcase_add_test(tc,
                   a_write_waiting_on_one_handle_sees_another_handles_delete);
    tcase_add_test(tc,
                   a_commit_through_another_handle_wakes_this_ones_watchers);
    tcase_add_test(tc, a_dead_endpoint_fails_over_to_the_next);
    tcase_add_test(tc, a_diagnosis_walks_the_keys_history_not_the_change_log);
    tcase_add_test(tc, reads_that_wait_for_others_on_their_way_go_together);
    tcase_add_test(tc,
                   no_reachable_endpoint_is_unavailable_and_a_bad_list_invalid);
    tcase_add_test(tc, what_only_a_file_has_is_unsupported_and_says_so);
    tcase_add_test(tc, a_prefix_holding_other_data_is_incompatible);
    tcase_add_test(tc, counts_stay_exact_with_two_handles_on_one_prefix);
    tcase_add_test(tc,
                   an_overlong_idempotency_entry_is_purged_without_overflow);
    tcase_add_test(tc, a_store_without_counters_counts_once_and_keeps_them);
    tcase_add_test(
        tc, a_write_sent_without_an_answer_is_outcome_unknown_never_guessed);
    tcase_add_test(tc,
                   a_write_whose_connection_dies_unanswered_is_not_sent_again);
    tcase_add_test(tc, an_answer_about_another_key_is_an_io_error);
    tcase_add_test(
        tc, a_commit_answered_with_something_not_json_is_outcome_unknown);
    tcase_add_test(
        tc, an_etcd_compaction_overtaking_a_read_is_unavailable_not_compacted);
    tcase_add_test(tc, an_etcd_compaction_overtaking_a_write_runs_it_again);
    suite_add_tcase(s, tc);
    /* Also run alone against an etcd with its default limits (ctest's
     * etcd_default_limits). */
    tcase_add_checked_fixture(limits, setup, teardown);
    tcase_set_timeout(limits, 300);
    tcase_add_test(
        limits,
        a_change_log_past_its_slack_is_trimmed_within_etcds_default_limits);
    tcase_add_test(
        limits,
        a_refused_transaction_of_128_keys_is_a_conflict_within_the_limits);
    tcase_add_test(
        limits, revokes_at_a_full_change_log_are_within_etcds_default_limits);
    suite_add_tcase(s, limits);
    /* Only against an etcd with --max-txn-ops lowered to 64 (ctest's
     * etcd_lowered_limits): the default's room would be too much. */
    if (getenv("ETCD_LIMITS") != NULL &&
        strcmp(getenv("ETCD_LIMITS"), "lowered") == 0) {
        TCase *lowered = tcase_create("lowered_limits");

        tcase_add_checked_fixture(lowered, setup, teardown);
        tcase_set_timeout(lowered, 300);
        tcase_add_test(lowered,
                       a_cluster_with_lowered_limits_gets_the_trims_of_before);
        suite_add_tcase(s, lowered);
    }
    /* Only against an etcd with --max-txn-ops under a batch of reads
     * (ctest's etcd_small_limits): any other runs the batch whole. */
    if (getenv("ETCD_LIMITS") != NULL &&
        strcmp(getenv("ETCD_LIMITS"), "small") == 0) {
        TCase *small = tcase_create("small_limits");

        tcase_add_checked_fixture(small, setup, teardown);
        tcase_set_timeout(small, 300);
        tcase_add_test(small,
                       reads_in_a_batch_too_large_for_etcd_go_one_by_one);
        suite_add_tcase(s, small);
    }
    return tu_run(s);
}
