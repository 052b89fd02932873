/*
 * test_waits.c -- writes that wait for their conditions
 * (etagkv_request.wait_ms): a create-only put waits for the delete of its
 * key and commits in the delete's transaction, at the next revision; a
 * wait that ends is answered with the 412 of the state then; waiters of
 * one key go in arrival order; a lease's revoke hands a lock over; bad
 * waits are refused; closing ends every wait, etagkv_end_wait() one of
 * them; many writes waiting on keys
 * of their own are each applied by their own key's change; and a lock
 * taken and given back by threads through waits alone excludes them all.
 *
 * A waiting write is known to wait when etagkv_store_stats() counts it
 * (writes_waiting), polled with a bound: the test never sleeps to make two
 * things overlap.  Each case runs in sync and in nosync mode (in nosync a
 * lone writer commits outside the queue, another path to the waiters).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "store.h"
#include "testutil.h"

static char *dir;
static etagkv_store *store;
static etagkv_sync_mode mode;

static void open_store(etagkv_sync_mode m)
{
    mode = m;
    dir = tu_mkdtemp();
    store = tu_open_mode(dir, m);
}

static void setup_pipelined(void)
{
    open_store(ETAGKV_SYNC_PIPELINED);
}

/* A new store whose map cannot grow past 1 MiB: a 2 MiB value never
 * fits (LMDB only). */
static void reopen_small(void)
{
    etagkv_options o;

    etagkv_store_close(store);
    tu_rmdir_free(dir);
    etagkv_options_init(&o);
    o.sync_mode = mode;
    o.map_size_bytes = o.map_max_bytes = 1u << 20;
    dir = tu_mkdtemp();
    store = tu_open(dir, &o);
}

static void setup_sync(void)
{
    open_store(ETAGKV_SYNC);
}

static void setup_nosync(void)
{
    open_store(ETAGKV_NOSYNC);
}

static void teardown(void)
{
    if (store != NULL)
        etagkv_store_close(store);
    store = NULL;
    tu_rmdir_free(dir);
    dir = NULL;
}

static etagkv_stats stats(void)
{
    etagkv_stats s;

    ck_assert_int_eq(etagkv_store_stats(store, &s), ETAGKV_OK);
    return s;
}

/* Poll until n writes wait (bounded: 20 s, then the test fails). */
static void until_waiting(uint64_t n)
{
    double end = tu_now_s() + 20;
    struct timespec ts = {0, 200000};

    while (stats().writes_waiting != n) {
        ck_assert_msg(tu_now_s() < end, "%llu writes wait, not %llu",
                      (unsigned long long)stats().writes_waiting,
                      (unsigned long long)n);
        (void)nanosleep(&ts, NULL);
    }
}

static void put(const char *k, const char *v, etagkv_meta *meta)
{
    etagkv_status rc =
        etagkv_put(store, k, strlen(k), v, strlen(v), NULL, NULL, meta);

    ck_assert_msg(rc == ETAGKV_OK || rc == ETAGKV_CREATED, "put %s: %s", k,
                  etagkv_strerror(rc));
}

static etagkv_meta del(const char *k)
{
    etagkv_meta m;

    ck_assert_int_eq(etagkv_delete(store, k, strlen(k), NULL, &m), ETAGKV_OK);
    return m;
}

/* The value of k, NUL-terminated (the caller frees it), or NULL. */
static char *value_of(const char *k)
{
    void *v = NULL;
    size_t len = 0;
    char *out;
    etagkv_status rc = etagkv_get(store, k, strlen(k), NULL, &v, &len, NULL);

    if (rc == ETAGKV_NOT_FOUND)
        return NULL;
    ck_assert_int_eq(rc, ETAGKV_OK);
    out = malloc(len + 1);
    ck_assert_ptr_nonnull(out);
    memcpy(out, v, len);
    out[len] = '\0';
    etagkv_free(v);
    return out;
}

/* A create-only put of key = value that waits up to wait_ms, on a thread
 * of its own; its outcome in res. */
struct waiter {
    const char *key, *value;
    uint32_t wait_ms;
    unsigned flags;
    uint64_t lease;
    etagkv_result res;
    double took_s;
    pthread_t thread;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    etagkv_cond *c = NULL;
    double start = tu_now_s();
    etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                          .key = w->key,
                          .key_len = strlen(w->key),
                          .value = w->value,
                          .value_len = strlen(w->value),
                          .flags = w->flags,
                          .lease = w->lease,
                          .wait_ms = w->wait_ms};

    if (etagkv_cond_create_only(&c) != ETAGKV_OK)
        return NULL;
    req.cond = c;
    (void)etagkv_write(store, &req, &w->res);
    w->took_s = tu_now_s() - start;
    etagkv_cond_free(c);
    return NULL;
}

static void waiter_start(struct waiter *w)
{
    ck_assert_int_eq(pthread_create(&w->thread, NULL, waiter_main, w), 0);
}

static void waiter_join(struct waiter *w)
{
    ck_assert_int_eq(pthread_join(w->thread, NULL), 0);
}

START_TEST(a_create_only_put_waits_for_the_delete_and_commits_with_it)
{
    struct waiter w = {.key = "lock", .value = "next", .wait_ms = 30000};
    etagkv_meta gone;
    uint64_t txns;
    char *v;

    put("lock", "holder", NULL);
    waiter_start(&w);
    until_waiting(1);
    v = value_of("lock");
    ck_assert_str_eq(v, "holder"); /* a waiting write has written nothing */
    free(v);
    txns = stats().write_txns;
    gone = del("lock");
    waiter_join(&w);
    ck_assert_int_eq(w.res.status, ETAGKV_CREATED);
    /* Applied right after the delete, at the next revision, in the same
     * transaction: one commit for both. */
    ck_assert_uint_eq(w.res.meta.create_revision, gone.mod_revision + 1);
    ck_assert_uint_eq(w.res.meta.mod_revision, gone.mod_revision + 1);
    ck_assert_uint_eq(stats().write_txns, txns + 1);
    ck_assert_uint_eq(stats().writes_waiting, 0);
    v = value_of("lock");
    ck_assert_str_eq(v, "next");
    free(v);
}
END_TEST

START_TEST(the_wait_ends_with_the_412_of_the_state_then)
{
    struct waiter w = {.key = "k",
                       .value = "mine",
                       /* time for the put below (a Raft commit, a
                        * sanitizer build) well within the wait */
                       .wait_ms = 2000,
                       .flags = ETAGKV_WRITE_RETURN_CURRENT};
    etagkv_meta now;

    put("k", "v1", NULL);
    waiter_start(&w);
    until_waiting(1);
    /* A change that does not make the conditions hold: it goes on
     * waiting, and its 412 at the end is of this state. */
    put("k", "v2", &now);
    ck_assert_uint_eq(stats().writes_waiting, 1);
    waiter_join(&w);
    ck_assert_int_eq(w.res.status, ETAGKV_PRECONDITION_FAILED);
    ck_assert(w.took_s >= 2.0);
    ck_assert_str_eq(w.res.meta.etag, now.etag);
    ck_assert_uint_eq(w.res.meta.mod_revision, now.mod_revision);
    ck_assert_uint_eq(w.res.current_len, 2);
    ck_assert_mem_eq(w.res.current_value, "v2", 2);
    etagkv_free(w.res.current_value);
    ck_assert_uint_eq(stats().writes_waiting, 0);
}
END_TEST

START_TEST(waiters_of_one_key_go_in_arrival_order)
{
    struct waiter w[3] = {{.key = "q", .value = "first", .wait_ms = 30000},
                          {.key = "q", .value = "second", .wait_ms = 30000},
                          {.key = "q", .value = "third", .wait_ms = 30000}};
    const char *names[3] = {"first", "second", "third"};

    put("q", "holder", NULL);
    for (int i = 0; i < 3; i++) {
        waiter_start(&w[i]);
        until_waiting((uint64_t)i + 1);
    }
    for (int i = 0; i < 3; i++) {
        char *v;

        (void)del("q");
        waiter_join(&w[i]);
        ck_assert_int_eq(w[i].res.status, ETAGKV_CREATED);
        v = value_of("q");
        ck_assert_str_eq(v, names[i]);
        free(v);
        until_waiting((uint64_t)(2 - i));
    }
}
END_TEST

START_TEST(a_revoked_lease_hands_the_lock_over)
{
    uint64_t lease = 0, rev = 0;
    struct waiter holder = {.key = "l", .value = "a", .wait_ms = 30000};
    struct waiter next = {.key = "l", .value = "b", .wait_ms = 30000};

    ck_assert_int_eq(etagkv_lease_grant(store, 60000, &lease), ETAGKV_OK);
    holder.lease = lease;
    waiter_start(&holder); /* absent: it takes the lock at once */
    waiter_join(&holder);
    ck_assert_int_eq(holder.res.status, ETAGKV_CREATED);
    waiter_start(&next);
    until_waiting(1);
    ck_assert_int_eq(etagkv_lease_revoke(store, lease, &rev), ETAGKV_OK);
    waiter_join(&next);
    ck_assert_int_eq(next.res.status, ETAGKV_CREATED);
    ck_assert_uint_eq(next.res.meta.create_revision, rev + 1);
}
END_TEST

START_TEST(bad_waits_are_refused_and_write_nothing)
{
    etagkv_cond *c = NULL;
    etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                          .key = "b",
                          .key_len = 1,
                          .value = "v",
                          .value_len = 1,
                          .wait_ms = ETAGKV_WAIT_MAX_MS + 1};
    etagkv_result res;

    ck_assert_int_eq(etagkv_cond_create_only(&c), ETAGKV_OK);
    req.cond = c;
    ck_assert_int_eq(etagkv_write(store, &req, &res), ETAGKV_INVALID_ARGUMENT);
    req.wait_ms = 1000;
    req.idempotency_key = "idem-1";
    req.idempotency_key_len = 6;
    ck_assert_int_eq(etagkv_write(store, &req, &res), ETAGKV_INVALID_ARGUMENT);
    ck_assert_ptr_null(value_of("b"));
    ck_assert_uint_eq(stats().revision, 0);
    etagkv_cond_free(c);
}
END_TEST

START_TEST(a_write_whose_conditions_hold_does_not_wait)
{
    struct waiter w = {.key = "free", .value = "v", .wait_ms = 600000};

    waiter_start(&w);
    waiter_join(&w);
    ck_assert_int_eq(w.res.status, ETAGKV_CREATED);
    ck_assert(w.took_s < 60);
}
END_TEST

struct outcome {
    atomic_int calls;
    _Atomic etagkv_status status;
};

static void on_done(void *ctx, const etagkv_result *res)
{
    struct outcome *o = ctx;

    atomic_store(&o->status, res->status);
    atomic_fetch_add(&o->calls, 1);
}

static void submit_waiting(const char *k, const etagkv_cond *c,
                           struct outcome *o)
{
    etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                          .key = k,
                          .key_len = strlen(k),
                          .value = "w",
                          .value_len = 1,
                          .cond = c,
                          .wait_ms = 600000};

    ck_assert_int_eq(etagkv_submit(store, &req, on_done, o), ETAGKV_OK);
}

/* Put a holder at k and submit a create-only put of k that waits for it
 * to go (with o), once it waits; the condition is the caller's to free
 * once o is called. */
static etagkv_cond *park_one(const char *k, struct outcome *o)
{
    etagkv_cond *c = NULL;

    put(k, "holder", NULL);
    ck_assert_int_eq(etagkv_cond_create_only(&c), ETAGKV_OK);
    submit_waiting(k, c, o);
    until_waiting(1);
    return c;
}

START_TEST(a_submitted_waiting_write_completes_when_applied)
{
    struct outcome o = {0};
    etagkv_cond *c = NULL;
    double end;

    c = park_one("s", &o);
    ck_assert_int_eq(atomic_load(&o.calls), 0);
    (void)del("s");
    end = tu_now_s() + 20;
    while (atomic_load(&o.calls) == 0)
        ck_assert(tu_now_s() < end);
    ck_assert_int_eq(atomic_load(&o.calls), 1);
    ck_assert_int_eq(atomic_load(&o.status), ETAGKV_CREATED);
    etagkv_cond_free(c);
}
END_TEST

START_TEST(closing_the_store_ends_every_wait)
{
    struct outcome o = {0};
    etagkv_cond *c = NULL;
    char *v;

    c = park_one("c", &o);
    etagkv_store_close(store); /* returns once every submitted write is done */
    store = NULL;
    ck_assert_int_eq(atomic_load(&o.calls), 1);
    ck_assert_int_eq(atomic_load(&o.status), ETAGKV_PRECONDITION_FAILED);
    etagkv_cond_free(c);
    store = tu_open_mode(dir, ETAGKV_NOSYNC);
    v = value_of("c");
    ck_assert_str_eq(v, "holder");
    free(v);
}
END_TEST

START_TEST(ending_the_waits_answers_them_and_later_writes_do_not_wait)
{
    struct outcome o = {0};
    struct waiter late = {.key = "e", .value = "late", .wait_ms = 600000};
    etagkv_cond *c = NULL;
    double end = tu_now_s() + 20;

    c = park_one("e", &o);
    ck_assert_int_eq(etagkv_end_waits(store), ETAGKV_OK);
    while (atomic_load(&o.calls) == 0)
        ck_assert(tu_now_s() < end);
    ck_assert_int_eq(atomic_load(&o.status), ETAGKV_PRECONDITION_FAILED);
    waiter_start(&late); /* answered at once, without waiting */
    waiter_join(&late);
    ck_assert_int_eq(late.res.status, ETAGKV_PRECONDITION_FAILED);
    ck_assert_uint_eq(stats().writes_waiting, 0);
    ck_assert_int_eq(etagkv_end_waits(NULL), ETAGKV_INVALID_ARGUMENT);
    etagkv_cond_free(c);
}
END_TEST

/* ekv_test_before_batch: hold the first batch until hold_for writes have
 * queued (the hook clears itself: later batches go at once). */
static size_t hold_for;

static void hold_first_batch(etagkv_store *s)
{
    double end = tu_now_s() + 60;

    ekv_test_before_batch = NULL;
    while (ekv_queue_waiting(s) < hold_for) {
        ck_assert_msg(tu_now_s() < end, "%zu of %zu writes queued",
                      ekv_queue_waiting(s), hold_for);
        usleep(1000);
    }
}

static void until_called(struct outcome *o, int n)
{
    double end = tu_now_s() + 20;

    while (atomic_load(&o->calls) < n)
        ck_assert_msg(tu_now_s() < end, "%d of %d callbacks",
                      atomic_load(&o->calls), n);
}

/* A batch that fails (a value too big for the map) is split and its
 * writes run one by one; a write that waited in the first of those runs
 * and was applied by a later one is acknowledged once, with the batch,
 * and so is everything else of it. */
START_TEST(a_split_batch_acknowledges_each_of_its_writes_once)
{
    struct outcome w = {0}, d = {0}, x = {0};
    etagkv_cond *c = NULL;
    etagkv_request del_req = {
        .method = ETAGKV_METHOD_DELETE, .key = "k", .key_len = 1};
    etagkv_request big = {.method = ETAGKV_METHOD_PUT,
                          .key = "big",
                          .key_len = 3,
                          .value_len = 2u << 20};
    void *bytes = calloc(1, big.value_len);

    if (tu_on_etcd()) {
        free(bytes);
        return; /* a map that cannot grow: LMDB's */
    }
    ck_assert_ptr_nonnull(bytes);
    big.value = bytes;
    reopen_small();
    put("k", "holder", NULL);
    ck_assert_int_eq(etagkv_cond_create_only(&c), ETAGKV_OK);
    hold_for = 3;
    ekv_test_before_batch = hold_first_batch;
    submit_waiting("k", c, &w);
    ck_assert_int_eq(etagkv_submit(store, &del_req, on_done, &d), ETAGKV_OK);
    ck_assert_int_eq(etagkv_submit(store, &big, on_done, &x), ETAGKV_OK);
    until_called(&w, 1);
    until_called(&d, 1);
    until_called(&x, 1);
    ck_assert_ptr_null(ekv_test_before_batch); /* the hook ran */
    ck_assert_int_eq(atomic_load(&w.status), ETAGKV_CREATED);
    ck_assert_int_eq(atomic_load(&d.status), ETAGKV_OK);
    ck_assert_int_eq(atomic_load(&x.status), ETAGKV_STORE_FULL);
    etagkv_store_close(store); /* nothing is left to call back */
    store = NULL;
    ck_assert_int_eq(atomic_load(&w.calls), 1);
    ck_assert_int_eq(atomic_load(&d.calls), 1);
    ck_assert_int_eq(atomic_load(&x.calls), 1);
    etagkv_cond_free(c);
    free(bytes);
}
END_TEST

/* A waiting write whose own value does not fit fails alone, with
 * ETAGKV_STORE_FULL, when the key is freed: the delete that freed it
 * succeeds. */
static void *big_waiter_main(void *arg)
{
    struct waiter *w = arg;
    size_t len = 2u << 20;
    void *bytes = calloc(1, len);
    etagkv_cond *c = NULL;

    if (bytes == NULL || etagkv_cond_create_only(&c) != ETAGKV_OK) {
        free(bytes);
        return NULL;
    }
    etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                          .key = w->key,
                          .key_len = strlen(w->key),
                          .value = bytes,
                          .value_len = len,
                          .cond = c,
                          .wait_ms = w->wait_ms};
    (void)etagkv_write(store, &req, &w->res);
    etagkv_cond_free(c);
    free(bytes);
    return NULL;
}

START_TEST(a_waiting_write_that_cannot_fit_fails_alone)
{
    struct waiter w = {.key = "k", .wait_ms = 30000};

    if (tu_on_etcd())
        return;
    reopen_small();
    put("k", "holder", NULL);
    ck_assert_int_eq(pthread_create(&w.thread, NULL, big_waiter_main, &w), 0);
    until_waiting(1);
    (void)del("k"); /* asserts ETAGKV_OK: not blamed for the waiter */
    waiter_join(&w);
    ck_assert_int_eq(w.res.status, ETAGKV_STORE_FULL);
    ck_assert_ptr_null(value_of("k"));
    ck_assert_uint_eq(stats().writes_waiting, 0);
}
END_TEST

/* Pipelined: a batch held for the flush of the next commit is flushed
 * and acknowledged when the batch behind it is one write that waits
 * (and commits nothing), not when that wait ends. */
#define HELD_PUTS 256 /* a full batch (commit.c's BATCH_MAX_OPS) */

START_TEST(a_held_batch_is_not_kept_behind_a_write_that_waits)
{
    static char keys[HELD_PUTS][16];
    struct outcome puts = {0}, w = {0};
    etagkv_cond *c = NULL;

    put("k", "holder", NULL);
    ck_assert_int_eq(etagkv_cond_create_only(&c), ETAGKV_OK);
    hold_for = HELD_PUTS + 1;
    ekv_test_before_batch = hold_first_batch;
    for (int i = 0; i < HELD_PUTS; i++) {
        etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                              .key = keys[i],
                              .value = "v",
                              .value_len = 1};

        req.key_len = (size_t)snprintf(keys[i], sizeof keys[i], "p%d", i);
        ck_assert_int_eq(etagkv_submit(store, &req, on_done, &puts), ETAGKV_OK);
    }
    submit_waiting("k", c, &w); /* the next batch, alone: it waits */
    until_called(&puts, HELD_PUTS);
    ck_assert_int_eq(atomic_load(&puts.status), ETAGKV_CREATED);
    ck_assert_int_eq(atomic_load(&w.calls), 0);
    until_waiting(1);
    (void)del("k");
    until_called(&w, 1);
    ck_assert_int_eq(atomic_load(&w.status), ETAGKV_CREATED);
    etagkv_cond_free(c);
}
END_TEST

/* Threads take a lock (a create-only put that waits), add one to a counter
 * with an unconditional read and write -- a lost update unless they
 * exclude each other -- and give the lock back with a delete If-Match on
 * their acquire. */
#define LOCK_THREADS 6
#define LOCK_CYCLES 40

static void *locker_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < LOCK_CYCLES; i++) {
        etagkv_cond *create = NULL, *mine = NULL;
        etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                              .key = "mutex",
                              .key_len = 5,
                              .value = "held",
                              .value_len = 4,
                              .wait_ms = 60000};
        etagkv_result res;
        void *v = NULL;
        size_t len = 0;
        char buf[32];
        int n;

        if (etagkv_cond_create_only(&create) != ETAGKV_OK)
            return "cond";
        req.cond = create;
        if (etagkv_write(store, &req, &res) != ETAGKV_CREATED) {
            etagkv_cond_free(create);
            return "acquire";
        }
        etagkv_cond_free(create);
        if (etagkv_get(store, "count", 5, NULL, &v, &len, NULL) != ETAGKV_OK ||
            len >= sizeof(buf))
            return "read";
        memcpy(buf, v, len);
        buf[len] = '\0';
        etagkv_free(v);
        n = snprintf(buf, sizeof(buf), "%d", atoi(buf) + 1);
        if (etagkv_put(store, "count", 5, buf, (size_t)n, NULL, NULL, NULL) !=
            ETAGKV_OK)
            return "write";
        if (etagkv_cond_if_match(res.meta.etag, &mine) != ETAGKV_OK)
            return "cond";
        if (etagkv_delete(store, "mutex", 5, mine, NULL) != ETAGKV_OK) {
            etagkv_cond_free(mine);
            return "release";
        }
        etagkv_cond_free(mine);
    }
    return NULL;
}

START_TEST(a_lock_through_waits_alone_excludes_every_holder)
{
    pthread_t t[LOCK_THREADS];
    char *v;

    put("count", "0", NULL);
    for (int i = 0; i < LOCK_THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, locker_main, NULL), 0);
    for (int i = 0; i < LOCK_THREADS; i++) {
        void *err = NULL;

        ck_assert_int_eq(pthread_join(t[i], &err), 0);
        ck_assert_msg(err == NULL, "thread %d: %s failed", i, (char *)err);
    }
    v = value_of("count");
    ck_assert_int_eq(atoi(v), LOCK_THREADS * LOCK_CYCLES);
    free(v);
    ck_assert_uint_eq(stats().writes_waiting, 0);
}
END_TEST

/* etagkv_end_wait() ends one write's wait: it is answered with the 412
 * of the state then, the other write waiting on the key still waits and
 * takes the key at the delete; a ctx that no write waits with is
 * NOT_FOUND. */
START_TEST(ending_one_wait_answers_that_write_alone)
{
    struct outcome a = {0}, b = {0};
    etagkv_cond *c = NULL;
    char *v;

    put("e", "holder", NULL);
    ck_assert_int_eq(etagkv_cond_create_only(&c), ETAGKV_OK);
    submit_waiting("e", c, &a);
    submit_waiting("e", c, &b);
    until_waiting(2);
    ck_assert_int_eq(etagkv_end_wait(store, &a), ETAGKV_OK);
    until_called(&a, 1);
    ck_assert_int_eq(atomic_load(&a.status), ETAGKV_PRECONDITION_FAILED);
    until_waiting(1);
    ck_assert_int_eq(atomic_load(&b.calls), 0);
    ck_assert_int_eq(etagkv_end_wait(store, &a), ETAGKV_NOT_FOUND);
    ck_assert_int_eq(etagkv_end_wait(store, c), ETAGKV_NOT_FOUND);
    ck_assert_int_eq(etagkv_end_wait(NULL, &b), ETAGKV_INVALID_ARGUMENT);
    (void)del("e");
    until_called(&b, 1);
    ck_assert_int_eq(atomic_load(&b.status), ETAGKV_CREATED);
    v = value_of("e");
    ck_assert_str_eq(v, "w");
    free(v);
    ck_assert_int_eq(atomic_load(&a.calls), 1);
    etagkv_cond_free(c);
}
END_TEST

/* ekv_test_before_batch: end the wait of end_ctx's write while it is
 * queued, not evaluated yet. */
static struct outcome *end_ctx;
static _Atomic etagkv_status end_rc;

static void end_wait_before_batch(etagkv_store *s)
{
    ekv_test_before_batch = NULL;
    atomic_store(&end_rc, etagkv_end_wait(s, end_ctx));
}

/* A write whose wait ends before its first evaluation never waits: its
 * first failure is its answer. */
START_TEST(a_wait_ended_before_the_write_is_evaluated_never_starts)
{
    struct outcome o = {0};
    etagkv_cond *c = NULL;

    put("q", "holder", NULL);
    ck_assert_int_eq(etagkv_cond_create_only(&c), ETAGKV_OK);
    end_ctx = &o;
    atomic_store(&end_rc, ETAGKV_IO_ERROR);
    ekv_test_before_batch = end_wait_before_batch;
    submit_waiting("q", c, &o);
    until_called(&o, 1);
    ck_assert_int_eq(atomic_load(&end_rc), ETAGKV_OK);
    ck_assert_int_eq(atomic_load(&o.status), ETAGKV_PRECONDITION_FAILED);
    ck_assert_uint_eq(stats().writes_waiting, 0);
    etagkv_cond_free(c);
}
END_TEST

/* ekv_test_after_expire: end every wait just after the running batch
 * looked at them, and let the committer see it while that batch leads
 * (it goes back to sleep, until the wait's deadline) before the batch
 * ends. */
static void end_waits_too_late(etagkv_store *s)
{
    double end = tu_now_s() + 20;
    uint64_t naps;

    ekv_test_after_expire = NULL;
    (void)pthread_mutex_lock(&s->queue.lock);
    naps = s->queue.committer_naps;
    (void)pthread_mutex_unlock(&s->queue.lock);
    ck_assert_int_eq(etagkv_end_waits(s), ETAGKV_OK);
    for (;;) {
        uint64_t now;

        (void)pthread_mutex_lock(&s->queue.lock);
        now = s->queue.committer_naps;
        (void)pthread_mutex_unlock(&s->queue.lock);
        if (now > naps)
            break;
        ck_assert_msg(tu_now_s() < end, "the committer never slept again");
        usleep(1000);
    }
}

/* The waits ended while a blocking writer's batch runs, too late for it:
 * the committer, which slept again meanwhile, is woken when the batch
 * ends and commits the transaction that answers them, long before their
 * deadline.  (A leader in sync and pipelined mode; in nosync the writer
 * commits alone and nobody leads.) */
START_TEST(waits_ended_during_a_batch_are_answered_after_it)
{
    struct outcome o = {0};
    etagkv_cond *c = NULL;
    double end;

    c = park_one("late", &o); /* a wait of ten minutes */
    ekv_test_after_expire = end_waits_too_late;
    put("other", "v", NULL);
    end = tu_now_s() + 20;
    while (atomic_load(&o.calls) == 0)
        ck_assert_msg(tu_now_s() < end, "the ended wait was not answered");
    ck_assert_int_eq(atomic_load(&o.status), ETAGKV_PRECONDITION_FAILED);
    etagkv_cond_free(c);
}
END_TEST

/* Many writes wait, each on a key of its own, three of them on keys of
 * one hash bucket (apply.c finds a changed key's waiters through their
 * bucket): each is applied exactly when its own key is deleted, in an
 * order unrelated to their arrival, and no other. */
#define MANY_KEYS 300
#define SAME_BUCKET 3

static unsigned bucket_of(const char *k)
{
    return (unsigned)XXH3_64bits(k, strlen(k)) & (EKV_WAITING_BUCKETS - 1);
}

START_TEST(many_waiting_writes_each_wait_for_their_own_key)
{
    enum { N = MANY_KEYS + SAME_BUCKET };
    static char keys[N][16];
    static struct outcome o[N];
    size_t order[N];
    etagkv_cond *c = NULL;
    unsigned seed = 12345;
    int same = 0;

    for (int i = 0; i < MANY_KEYS; i++)
        snprintf(keys[i], sizeof keys[i], "m%d", i);
    for (int i = 0; same < SAME_BUCKET; i++) {
        char k[16];

        snprintf(k, sizeof k, "b%d", i);
        if (bucket_of(k) == bucket_of(keys[0]))
            memcpy(keys[MANY_KEYS + same++], k, sizeof k);
    }
    ck_assert_int_eq(etagkv_cond_create_only(&c), ETAGKV_OK);
    for (size_t i = 0; i < N; i++) {
        put(keys[i], "holder", NULL);
        atomic_init(&o[i].calls, 0);
        submit_waiting(keys[i], c, &o[i]);
        order[i] = i;
    }
    until_waiting(N);
    /* The keys of the bucket first (the middle of its chain, then its
     * ends), then the rest shuffled. */
    order[0] = MANY_KEYS + 1;
    order[1] = MANY_KEYS + 2;
    order[2] = 0;
    order[MANY_KEYS + 1] = 1;
    order[MANY_KEYS + 2] = 2;
    for (size_t i = N - 1; i > 3; i--) {
        size_t j = 3 + (seed = seed * 1103515245u + 12345u) % (i - 2), t;

        t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t n = 0; n < N; n++) {
        size_t k = order[n];
        double end = tu_now_s() + 20;
        char *v;

        (void)del(keys[k]);
        while (atomic_load(&o[k].calls) == 0)
            ck_assert_msg(tu_now_s() < end, "%s's waiter not applied", keys[k]);
        ck_assert_int_eq(atomic_load(&o[k].status), ETAGKV_CREATED);
        v = value_of(keys[k]);
        ck_assert_str_eq(v, "w");
        free(v);
        for (size_t m = n + 1; m < N; m++)
            ck_assert_msg(atomic_load(&o[order[m]].calls) == 0,
                          "%s's waiter applied by the delete of %s",
                          keys[order[m]], keys[k]);
        ck_assert_uint_eq(stats().writes_waiting, N - n - 1);
    }
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(atomic_load(&o[i].calls), 1);
    etagkv_cond_free(c);
}
END_TEST

static void add_cases(TCase *tc)
{
    tcase_add_test(tc,
                   a_create_only_put_waits_for_the_delete_and_commits_with_it);
    tcase_add_test(tc, the_wait_ends_with_the_412_of_the_state_then);
    tcase_add_test(tc, waiters_of_one_key_go_in_arrival_order);
    tcase_add_test(tc, a_revoked_lease_hands_the_lock_over);
    tcase_add_test(tc, bad_waits_are_refused_and_write_nothing);
    tcase_add_test(tc, a_write_whose_conditions_hold_does_not_wait);
    tcase_add_test(tc, a_submitted_waiting_write_completes_when_applied);
    tcase_add_test(tc, many_waiting_writes_each_wait_for_their_own_key);
    tcase_add_test(tc, ending_one_wait_answers_that_write_alone);
    tcase_add_test(tc, a_wait_ended_before_the_write_is_evaluated_never_starts);
    tcase_add_test(tc, a_lock_through_waits_alone_excludes_every_holder);
    tcase_add_test(tc,
                   ending_the_waits_answers_them_and_later_writes_do_not_wait);
    tcase_add_test(tc, a_split_batch_acknowledges_each_of_its_writes_once);
    tcase_add_test(tc, a_waiting_write_that_cannot_fit_fails_alone);
}

int main(void)
{
    Suite *s = suite_create("waits");
    TCase *sync = tcase_create("sync");
    TCase *nosync = tcase_create("nosync");
    TCase *pipelined = tcase_create("pipelined");

    tcase_add_checked_fixture(sync, setup_sync, teardown);
    add_cases(sync);
    tcase_add_test(sync, waits_ended_during_a_batch_are_answered_after_it);
    suite_add_tcase(s, sync);
    tcase_add_checked_fixture(nosync, setup_nosync, teardown);
    add_cases(nosync);
    tcase_add_test(nosync, closing_the_store_ends_every_wait);
    suite_add_tcase(s, nosync);
    tcase_add_checked_fixture(pipelined, setup_pipelined, teardown);
    add_cases(pipelined);
    tcase_add_test(pipelined,
                   a_held_batch_is_not_kept_behind_a_write_that_waits);
    tcase_add_test(pipelined, waits_ended_during_a_batch_are_answered_after_it);
    suite_add_tcase(s, pipelined);
    return tu_run(s);
}
