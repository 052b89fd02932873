/*
 * bench_contended.c -- embedded, contended: N threads each doing
 * read -> conditional write -> retry on 412, against raw LMDB with one
 * write transaction per read-modify-write, same threads, same run.
 *
 * Keys: one hot key, or 1,000 keys picked at random.  Values: 100 B or
 * 4 KiB.  Modes: sync, pipelined (opt-in, ETAGKV_SYNC_PIPELINED; raw LMDB
 * runs in its sync mode there too, the durable baseline) and nosync.
 * Threads: 1, 4, 16, 64.  Each cell runs
 * for a fixed time (default 1 s; argv[1] overrides, in seconds) and prints
 * successful commits/s, 412s/s, p50/p99 latency of a successful
 * read-modify-write (first read to acknowledged write, retries included),
 * and for etagkv the mean group-commit batch size.
 */
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "etagkv.h"

#define MAX_THREADS 64
#define NKEYS_MANY 1000
#define LAT_CAP 200000

/* The sync modes, in the order measured, with their names in a scenario. */
static const struct {
    etagkv_sync_mode mode;
    const char *name;
} modes[] = {{ETAGKV_SYNC, "sync"},
             {ETAGKV_SYNC_PIPELINED, "pipelined"},
             {ETAGKV_NOSYNC, "nosync"}};

struct cell {
    int threads, nkeys, mode; /* mode: an index into modes[] */
    size_t len;
    double seconds;
};

struct worker {
    pthread_t tid;
    const struct cell *c;
    unsigned seed;
    long ok, failed;
    double *lat; /* seconds, one per success, up to LAT_CAP */
    long nlat;
    /* raw */
    MDB_env *env;
    MDB_dbi dbi;
    /* etagkv */
    etagkv_store *s;
};

static atomic_int stop_flag;

static int pick(struct worker *w)
{
    return w->c->nkeys == 1 ? 0
                            : (int)(rand_r(&w->seed) % (unsigned)w->c->nkeys);
}

static void key_of(int k, char *buf, size_t n)
{
    snprintf(buf, n, "key-%05d", k);
}

static void record(struct worker *w, double t0)
{
    if (w->nlat < LAT_CAP)
        w->lat[w->nlat++] = bu_now() - t0;
    w->ok++;
}

/* Raw LMDB: the whole read-modify-write in one write transaction; LMDB's
 * writer lock serialises them, so none ever fails. */
static void *raw_work(void *arg)
{
    struct worker *w = arg;
    char *v = malloc(w->c->len), key[16];

    BU_CHECK(v != NULL);
    memset(v, 'r', w->c->len);
    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
        MDB_txn *txn;
        MDB_val k, old, nv = {w->c->len, v};
        double t0 = bu_now();

        key_of(pick(w), key, sizeof(key));
        k.mv_size = strlen(key);
        k.mv_data = key;
        BU_CHECK(mdb_txn_begin(w->env, NULL, 0, &txn) == 0);
        BU_CHECK(mdb_get(txn, w->dbi, &k, &old) == 0);
        v[0] = (char)(((const char *)old.mv_data)[0] + 1);
        BU_CHECK(mdb_put(txn, w->dbi, &k, &nv, 0) == 0);
        BU_CHECK(mdb_txn_commit(txn) == 0);
        record(w, t0);
    }
    free(v);
    return NULL;
}

/* etagkv: read (metadata + value), compute, put If-Match; on 412 read
 * again and retry with the fresh validator. */
static void *kv_work(void *arg)
{
    struct worker *w = arg;
    char *v = malloc(w->c->len), key[16];

    BU_CHECK(v != NULL);
    memset(v, 'e', w->c->len);
    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
        double t0 = bu_now();

        key_of(pick(w), key, sizeof(key));
        for (;;) {
            void *old;
            size_t n;
            etagkv_meta m;
            etagkv_cond *c;
            etagkv_status st;

            BU_CHECK(etagkv_get(w->s, key, strlen(key), NULL, &old, &n, &m) ==
                     ETAGKV_OK);
            v[0] = (char)(((char *)old)[0] + 1);
            etagkv_free(old);
            BU_CHECK(etagkv_cond_if_match(m.etag, &c) == ETAGKV_OK);
            st =
                etagkv_put(w->s, key, strlen(key), v, w->c->len, NULL, c, NULL);
            etagkv_cond_free(c);
            if (st == ETAGKV_OK)
                break;
            BU_CHECK(st == ETAGKV_PRECONDITION_FAILED);
            w->failed++;
            if (atomic_load_explicit(&stop_flag, memory_order_relaxed))
                goto out;
        }
        record(w, t0);
    }
out:
    free(v);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

struct result {
    double ok_rate, fail_rate, p50_ms, p99_ms;
};

static void run_workers(struct worker *w, int n, void *(*fn)(void *),
                        double seconds, struct result *r)
{
    static double all[MAX_THREADS * LAT_CAP / 8];
    long nall = 0, ok = 0, failed = 0;
    double t0;

    atomic_store(&stop_flag, 0);
    t0 = bu_now();
    for (int i = 0; i < n; i++)
        BU_CHECK(pthread_create(&w[i].tid, NULL, fn, &w[i]) == 0);
    bu_sleep_until(t0, seconds);
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < n; i++)
        BU_CHECK(pthread_join(w[i].tid, NULL) == 0);
    t0 = bu_now() - t0;
    for (int i = 0; i < n; i++) {
        ok += w[i].ok;
        failed += w[i].failed;
        for (long j = 0;
             j < w[i].nlat && nall < (long)(sizeof(all) / sizeof(all[0])); j++)
            all[nall++] = w[i].lat[j];
    }
    qsort(all, (size_t)nall, sizeof(double), cmp_double);
    r->ok_rate = (double)ok / t0;
    r->fail_rate = (double)failed / t0;
    r->p50_ms = nall ? all[nall / 2] * 1e3 : 0;
    r->p99_ms = nall ? all[(nall * 99) / 100] * 1e3 : 0;
}

static void init_workers(struct worker *w, const struct cell *c)
{
    for (int i = 0; i < c->threads; i++) {
        double *lat = w[i].lat;

        memset(&w[i], 0, sizeof(w[i]));
        w[i].c = c;
        w[i].seed = 12345u + (unsigned)i;
        w[i].lat = lat;
    }
}

static void run_cell(const struct cell *c, struct worker *w)
{
    char *rawdir = bu_mkdtemp(), *kvdir = bu_mkdtemp(), key[16];
    char *v = calloc(1, c->len);
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn;
    etagkv_store *s;
    etagkv_options o;
    etagkv_stats before, after;
    struct result raw, kv;
    char name[96];
    double batch;

    BU_CHECK(v != NULL);
    BU_CHECK(mdb_env_create(&env) == 0);
    BU_CHECK(mdb_env_set_mapsize(env, (size_t)1 << 32) == 0);
    BU_CHECK(mdb_env_set_maxreaders(env, 256) == 0);
    BU_CHECK(
        mdb_env_open(
            env, rawdir,
            MDB_NOTLS | (modes[c->mode].mode == ETAGKV_NOSYNC ? MDB_NOSYNC : 0),
            0644) == 0);
    BU_CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    BU_CHECK(mdb_dbi_open(txn, NULL, 0, &dbi) == 0);
    etagkv_options_init(&o);
    o.sync_mode = modes[c->mode].mode;
    o.map_size_bytes = (uint64_t)1 << 32;
    BU_CHECK(etagkv_store_open(kvdir, &o, &s) == ETAGKV_OK);
    for (int k = 0; k < c->nkeys; k++) {
        MDB_val mk, mv = {c->len, v};

        key_of(k, key, sizeof(key));
        mk.mv_size = strlen(key);
        mk.mv_data = key;
        BU_CHECK(mdb_put(txn, dbi, &mk, &mv, 0) == 0);
        BU_CHECK(etagkv_put(s, key, strlen(key), v, c->len, NULL, NULL, NULL) ==
                 ETAGKV_CREATED);
    }
    BU_CHECK(mdb_txn_commit(txn) == 0);

    init_workers(w, c);
    for (int i = 0; i < c->threads; i++) {
        w[i].env = env;
        w[i].dbi = dbi;
    }
    run_workers(w, c->threads, raw_work, c->seconds, &raw);

    init_workers(w, c);
    for (int i = 0; i < c->threads; i++)
        w[i].s = s;
    BU_CHECK(etagkv_store_stats(s, &before) == ETAGKV_OK);
    run_workers(w, c->threads, kv_work, c->seconds, &kv);
    BU_CHECK(etagkv_store_stats(s, &after) == ETAGKV_OK);
    batch = after.write_txns > before.write_txns
                ? (double)(after.write_ops - before.write_ops) /
                      (double)(after.write_txns - before.write_txns)
                : 0;

    snprintf(name, sizeof(name), "contended/%s/%zuB/%s/%dt",
             c->nkeys == 1 ? "hot" : "1000keys", c->len, modes[c->mode].name,
             c->threads);
    printf("%-34s %10.0f %9.0f %8.3f %8.3f %6.1f | %10.0f %8.3f %8.3f | "
           "%6.2fx\n",
           name, kv.ok_rate, kv.fail_rate, kv.p50_ms, kv.p99_ms, batch,
           raw.ok_rate, raw.p50_ms, raw.p99_ms, kv.ok_rate / raw.ok_rate);
    fprintf(stderr,
            "{\"scenario\":\"%s\",\"etagkv_commits_per_s\":%.0f,"
            "\"etagkv_412_per_s\":%.0f,\"etagkv_p50_ms\":%.3f,"
            "\"etagkv_p99_ms\":%.3f,\"mean_batch\":%.2f,"
            "\"baseline\":\"raw LMDB one txn per RMW\","
            "\"baseline_commits_per_s\":%.0f,\"baseline_p50_ms\":%.3f,"
            "\"baseline_p99_ms\":%.3f,\"ratio\":%.3f}\n",
            name, kv.ok_rate, kv.fail_rate, kv.p50_ms, kv.p99_ms, batch,
            raw.ok_rate, raw.p50_ms, raw.p99_ms, kv.ok_rate / raw.ok_rate);
    fflush(stdout);

    etagkv_store_close(s);
    mdb_env_close(env);
    bu_rmdir(rawdir);
    bu_rmdir(kvdir);
    free(v);
}

int main(int argc, char **argv)
{
    static const int threads[] = {1, 4, 16, 64};
    static struct worker w[MAX_THREADS];
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    /* e.g. "sync", "pipelined" */
    const char *only = getenv("ETAGKV_BENCH_ONLY");
    /* One cell, e.g. "contended/hot/100B/sync/64t": A/B runs of two builds
     * interleave cell by cell, so that a shared disk's drift hits both. */
    const char *cell = getenv("ETAGKV_BENCH_CELL");

    if (seconds <= 0)
        seconds = 1.0;
    for (int i = 0; i < MAX_THREADS; i++) {
        w[i].lat = malloc(sizeof(double) * LAT_CAP);
        BU_CHECK(w[i].lat != NULL);
    }
    printf("%-34s %10s %9s %8s %8s %6s | %10s %8s %8s | %7s\n",
           "scenario (etagkv | raw LMDB)", "commits/s", "412/s", "p50 ms",
           "p99 ms", "batch", "commits/s", "p50 ms", "p99 ms", "ratio");
    for (int m = 0; m < (int)(sizeof modes / sizeof modes[0]); m++) {
        if (only != NULL && strcmp(only, modes[m].name) != 0)
            continue;
        for (int keys = 0; keys < 2; keys++)
            for (int sz = 0; sz < 2; sz++)
                for (size_t t = 0; t < 4; t++) {
                    struct cell c = {threads[t], keys ? NKEYS_MANY : 1, m,
                                     sz ? 4096 : 100, seconds};
                    char name[96];

                    snprintf(name, sizeof(name), "contended/%s/%dB/%s/%dt",
                             keys ? "1000keys" : "hot", sz ? 4096 : 100,
                             modes[m].name, threads[t]);
                    if (cell == NULL || strcmp(cell, name) == 0)
                        run_cell(&c, w);
                }
    }
    for (int i = 0; i < MAX_THREADS; i++)
        free(w[i].lat);
    return 0;
}
