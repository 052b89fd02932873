/*
 * bench_waits.c -- what writes waiting on keys of their own cost the
 * writes that do not concern them.  4,000 conditional puts are submitted
 * with a long wait_ms and an If-Match no ETag can match, so they all wait
 * (as 4,000 held lock acquires would); then 16 threads put keys none of
 * them waits for, nosync, for a fixed time.  The baseline is the same
 * threads on the same store with no write waiting, measured in the same
 * run; the ratio should be about 1 (docs/design.md, "Waiting writes":
 * before the waiting writes were indexed by key, it was about 0.3).
 *
 * Usage: bench_waits [SECONDS]  (per measurement, default 1)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "etagkv.h"

#define WAITERS 4000
#define THREADS 16

static etagkv_store *store;
static atomic_int stop;
static atomic_long puts_done;

static void answered(void *ctx, const etagkv_result *res)
{
    (void)ctx;
    (void)res;
}

static void *putter(void *arg)
{
    long id = (long)arg, n = 0;
    char key[32];

    while (!atomic_load(&stop)) {
        etagkv_status st;

        snprintf(key, sizeof(key), "w%ld-%ld", id, n % 500);
        st = etagkv_put(store, key, strlen(key), "v", 1, NULL, NULL, NULL);
        BU_CHECK(st == ETAGKV_OK || st == ETAGKV_CREATED);
        n++;
    }
    atomic_fetch_add(&puts_done, n);
    return NULL;
}

/* Puts per second of THREADS threads over `seconds`. */
static double measure(double seconds)
{
    pthread_t th[THREADS];
    double t0;

    atomic_store(&stop, 0);
    atomic_store(&puts_done, 0);
    t0 = bu_now();
    for (long i = 0; i < THREADS; i++)
        BU_CHECK(pthread_create(&th[i], NULL, putter, (void *)i) == 0);
    bu_sleep_until(t0, seconds);
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++)
        BU_CHECK(pthread_join(th[i], NULL) == 0);
    return (double)atomic_load(&puts_done) / (bu_now() - t0);
}

/* Submit WAITERS writes that wait, each on a key of its own, and return
 * once the store counts them all as waiting.  Their keys and `never` must
 * live until they are answered. */
static void park_waiters(etagkv_cond **never_out)
{
    static char keys[WAITERS][16];
    etagkv_cond *never;
    etagkv_stats st;

    BU_CHECK(etagkv_cond_new(&never) == ETAGKV_OK);
    BU_CHECK(etagkv_cond_add(never, ETAGKV_IF_MATCH, "\"nope\"", 6) ==
             ETAGKV_OK);
    for (int i = 0; i < WAITERS; i++) {
        etagkv_request rq;

        snprintf(keys[i], sizeof(keys[i]), "lock%d", i);
        rq = (etagkv_request){.method = ETAGKV_METHOD_PUT,
                              .key = keys[i],
                              .key_len = strlen(keys[i]),
                              .value = "x",
                              .value_len = 1,
                              .cond = never,
                              .wait_ms = ETAGKV_WAIT_MAX_MS};
        BU_CHECK(etagkv_submit(store, &rq, answered, NULL) == ETAGKV_OK);
    }
    do
        BU_CHECK(etagkv_store_stats(store, &st) == ETAGKV_OK);
    while (st.writes_waiting < WAITERS);
    *never_out = never;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    char *dir = bu_mkdtemp();
    etagkv_options opt;
    etagkv_cond *never;
    double none, waiting;
    char label[64];

    if (seconds <= 0)
        seconds = 1.0;
    etagkv_options_init(&opt);
    opt.sync_mode = ETAGKV_NOSYNC;
    BU_CHECK(etagkv_store_open(dir, &opt, &store) == ETAGKV_OK);
    /* A first pass creates the putters' keys, so that both measured
     * passes overwrite existing ones. */
    (void)measure(seconds / 4);
    none = measure(seconds);
    park_waiters(&never);
    waiting = measure(seconds);
    BU_CHECK(etagkv_end_waits(store) == ETAGKV_OK);
    etagkv_store_close(store); /* returns once every wait is answered */
    etagkv_cond_free(never);
    bu_rmdir(dir);

    bu_header();
    snprintf(label, sizeof(label), "16 thr, %d writes waiting", WAITERS);
    bu_report("puts-beside-waiters", label, waiting, "16 thr, none waiting",
              none);
    return 0;
}
