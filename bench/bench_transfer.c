/*
 * bench_transfer.c -- embedded transfers (issue 12): T threads each moving
 * one unit between two random accounts of N, against raw LMDB with one
 * write transaction per transfer, same threads, same run.
 *
 *   bench_transfer [SCALE] [-t THREADS] [-n ACCOUNTS] [-d SECONDS]
 *                  [--nosync]
 *
 * (A bare number is a SCALE, as bench/run.sh passes to every embedded
 * benchmark: the run lasts 2 s times SCALE.)
 * etagkv: read both (etagkv_get: value and ETag), then one transaction of
 * two puts, each If-Match on the ETag read; on ETAGKV_CONFLICT read again
 * and retry.  Raw LMDB: begin a write transaction, get both, put both,
 * commit; LMDB's writer lock serialises them, so none ever conflicts.
 * Defaults: 64 threads, 1,000 accounts, 2 s, sync.
 *
 * Prints successful transfers/s, conflicts/s, p50/p99 latency of a
 * successful transfer (first read to acknowledged commit, retries
 * included) and the mean group-commit batch, for both, with the ratio; and
 * a JSON line on stderr.  At the end of each run the balances must sum to
 * what they started at, or the benchmark fails: a figure from a broken run
 * is worse than none.
 */
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "etagkv.h"

#define MAX_THREADS 256
#define LAT_CAP 200000
#define START_BALANCE 1000000L

static struct {
    int threads, accounts, nosync;
    double seconds;
} cfg = {64, 1000, 0, 2.0};

struct worker {
    pthread_t tid;
    unsigned seed;
    long ok, conflicts;
    double *lat;
    long nlat;
    MDB_env *env; /* raw */
    MDB_dbi dbi;
    etagkv_store *s; /* etagkv */
};

static atomic_int stop_flag;

static void key_of(int a, char *buf, size_t n)
{
    snprintf(buf, n, "acct-%06d", a);
}

/* Two distinct accounts. */
static void pick(struct worker *w, int *a, int *b)
{
    *a = (int)(rand_r(&w->seed) % (unsigned)cfg.accounts);
    *b = (int)(rand_r(&w->seed) % (unsigned)(cfg.accounts - 1));
    *b += *b >= *a;
}

static long parse_balance(const void *p, size_t n)
{
    char tmp[32];

    BU_CHECK(n > 0 && n < sizeof(tmp));
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    return strtol(tmp, NULL, 10);
}

static void record(struct worker *w, double t0)
{
    if (w->nlat < LAT_CAP)
        w->lat[w->nlat++] = bu_now() - t0;
    w->ok++;
}

static int stopping(void)
{
    return atomic_load_explicit(&stop_flag, memory_order_relaxed);
}

/* Raw LMDB: the whole transfer in one write transaction. */
static void *raw_work(void *arg)
{
    struct worker *w = arg;

    while (!stopping()) {
        char ka[16], kb[16], va[32], vb[32];
        MDB_val k1, k2, v1, v2;
        MDB_txn *txn;
        int a, b;
        double t0 = bu_now();

        pick(w, &a, &b);
        key_of(a, ka, sizeof(ka));
        key_of(b, kb, sizeof(kb));
        k1 = (MDB_val){strlen(ka), ka};
        k2 = (MDB_val){strlen(kb), kb};
        BU_CHECK(mdb_txn_begin(w->env, NULL, 0, &txn) == 0);
        BU_CHECK(mdb_get(txn, w->dbi, &k1, &v1) == 0);
        BU_CHECK(mdb_get(txn, w->dbi, &k2, &v2) == 0);
        v1.mv_size = (size_t)snprintf(
            va, sizeof(va), "%ld", parse_balance(v1.mv_data, v1.mv_size) - 1);
        v2.mv_size = (size_t)snprintf(
            vb, sizeof(vb), "%ld", parse_balance(v2.mv_data, v2.mv_size) + 1);
        v1.mv_data = va;
        v2.mv_data = vb;
        BU_CHECK(mdb_put(txn, w->dbi, &k1, &v1, 0) == 0);
        BU_CHECK(mdb_put(txn, w->dbi, &k2, &v2, 0) == 0);
        BU_CHECK(mdb_txn_commit(txn) == 0);
        record(w, t0);
    }
    return NULL;
}

/* One etagkv attempt: read both, commit both puts If-Match on what was
 * read.  ETAGKV_OK or ETAGKV_CONFLICT. */
static etagkv_status kv_attempt(struct worker *w, const char *ka,
                                const char *kb)
{
    void *pa, *pb;
    size_t na, nb;
    etagkv_meta ma, mb;
    etagkv_cond *ca, *cb;
    etagkv_txn *t;
    char va[32], vb[32];
    etagkv_status st;

    BU_CHECK(etagkv_get(w->s, ka, strlen(ka), NULL, &pa, &na, &ma) ==
             ETAGKV_OK);
    BU_CHECK(etagkv_get(w->s, kb, strlen(kb), NULL, &pb, &nb, &mb) ==
             ETAGKV_OK);
    snprintf(va, sizeof(va), "%ld", parse_balance(pa, na) - 1);
    snprintf(vb, sizeof(vb), "%ld", parse_balance(pb, nb) + 1);
    etagkv_free(pa);
    etagkv_free(pb);
    BU_CHECK(etagkv_cond_if_match(ma.etag, &ca) == ETAGKV_OK);
    BU_CHECK(etagkv_cond_if_match(mb.etag, &cb) == ETAGKV_OK);
    BU_CHECK(etagkv_txn_new(&t) == ETAGKV_OK);
    BU_CHECK(etagkv_txn_put(t, ka, strlen(ka), va, strlen(va), NULL, ca) ==
             ETAGKV_OK);
    BU_CHECK(etagkv_txn_put(t, kb, strlen(kb), vb, strlen(vb), NULL, cb) ==
             ETAGKV_OK);
    st = etagkv_txn_commit(w->s, t);
    BU_CHECK(st == ETAGKV_OK || st == ETAGKV_CONFLICT);
    etagkv_txn_free(t);
    etagkv_cond_free(ca);
    etagkv_cond_free(cb);
    return st;
}

static void *kv_work(void *arg)
{
    struct worker *w = arg;

    while (!stopping()) {
        char ka[16], kb[16];
        int a, b;
        double t0 = bu_now();

        pick(w, &a, &b);
        key_of(a, ka, sizeof(ka));
        key_of(b, kb, sizeof(kb));
        while (kv_attempt(w, ka, kb) == ETAGKV_CONFLICT) {
            w->conflicts++;
            if (stopping())
                return NULL;
        }
        record(w, t0);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

struct result {
    double ok_rate, conflict_rate, p50_ms, p99_ms;
};

static void run_workers(struct worker *w, void *(*fn)(void *), struct result *r)
{
    static double all[MAX_THREADS * LAT_CAP / 16];
    long nall = 0, ok = 0, conflicts = 0;
    double t0;

    atomic_store(&stop_flag, 0);
    t0 = bu_now();
    for (int i = 0; i < cfg.threads; i++)
        BU_CHECK(pthread_create(&w[i].tid, NULL, fn, &w[i]) == 0);
    bu_sleep_until(t0, cfg.seconds);
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < cfg.threads; i++)
        BU_CHECK(pthread_join(w[i].tid, NULL) == 0);
    t0 = bu_now() - t0;
    for (int i = 0; i < cfg.threads; i++) {
        ok += w[i].ok;
        conflicts += w[i].conflicts;
        for (long j = 0;
             j < w[i].nlat && nall < (long)(sizeof(all) / sizeof(all[0])); j++)
            all[nall++] = w[i].lat[j];
    }
    qsort(all, (size_t)nall, sizeof(double), cmp_double);
    r->ok_rate = (double)ok / t0;
    r->conflict_rate = (double)conflicts / t0;
    r->p50_ms = nall ? all[nall / 2] * 1e3 : 0;
    r->p99_ms = nall ? all[(nall * 99) / 100] * 1e3 : 0;
}

static void init_workers(struct worker *w)
{
    for (int i = 0; i < cfg.threads; i++) {
        double *lat = w[i].lat;

        memset(&w[i], 0, sizeof(w[i]));
        w[i].seed = 4242u + (unsigned)i;
        w[i].lat = lat;
    }
}

/* The sum of all balances, through raw LMDB or etagkv (env NULL). */
static long total(MDB_env *env, MDB_dbi dbi, etagkv_store *s)
{
    long sum = 0;

    for (int a = 0; a < cfg.accounts; a++) {
        char key[16];

        key_of(a, key, sizeof(key));
        if (env != NULL) {
            MDB_txn *txn;
            MDB_val k = {strlen(key), key}, v;

            BU_CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0);
            BU_CHECK(mdb_get(txn, dbi, &k, &v) == 0);
            sum += parse_balance(v.mv_data, v.mv_size);
            mdb_txn_abort(txn);
        } else {
            void *v;
            size_t n;

            BU_CHECK(etagkv_get(s, key, strlen(key), NULL, &v, &n, NULL) ==
                     ETAGKV_OK);
            sum += parse_balance(v, n);
            etagkv_free(v);
        }
    }
    return sum;
}

static void seed(MDB_env *env, MDB_dbi *dbi, etagkv_store *s)
{
    MDB_txn *txn;
    etagkv_txn *t = NULL;
    char v[32];

    snprintf(v, sizeof(v), "%ld", START_BALANCE);
    BU_CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    BU_CHECK(mdb_dbi_open(txn, NULL, 0, dbi) == 0);
    for (int a = 0; a < cfg.accounts; a++) {
        char key[16];
        MDB_val mk, mv = {strlen(v), v};

        key_of(a, key, sizeof(key));
        mk = (MDB_val){strlen(key), key};
        BU_CHECK(mdb_put(txn, *dbi, &mk, &mv, 0) == 0);
        if (t == NULL)
            BU_CHECK(etagkv_txn_new(&t) == ETAGKV_OK);
        BU_CHECK(etagkv_txn_put(t, key, strlen(key), v, strlen(v), NULL,
                                NULL) == ETAGKV_OK);
        if (etagkv_txn_count(t) == ETAGKV_TXN_MAX_OPS_DEFAULT ||
            a == cfg.accounts - 1) {
            BU_CHECK(etagkv_txn_commit(s, t) == ETAGKV_OK);
            etagkv_txn_free(t);
            t = NULL;
        }
    }
    BU_CHECK(mdb_txn_commit(txn) == 0);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_transfer [SCALE] [-t THREADS] [-n ACCOUNTS] "
                    "[-d SECONDS] [--nosync]\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (i == 1 && argv[i][0] >= '0' && argv[i][0] <= '9')
            cfg.seconds = atof(argv[i]) * 2.0;
        else if (strcmp(argv[i], "--nosync") == 0)
            cfg.nosync = 1;
        else if (i + 1 < argc && strcmp(argv[i], "-t") == 0)
            cfg.threads = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "-n") == 0)
            cfg.accounts = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "-d") == 0)
            cfg.seconds = atof(argv[++i]);
        else
            usage();
    }
    if (cfg.threads < 1 || cfg.threads > MAX_THREADS || cfg.accounts < 2 ||
        cfg.seconds <= 0)
        usage();
}

int main(int argc, char **argv)
{
    static struct worker w[MAX_THREADS];
    char *rawdir = bu_mkdtemp(), *kvdir = bu_mkdtemp(), name[96];
    long expected;
    MDB_env *env;
    MDB_dbi dbi;
    etagkv_store *s;
    etagkv_options o;
    etagkv_stats before, after;
    struct result raw, kv;
    double batch;

    parse_args(argc, argv);
    for (int i = 0; i < cfg.threads; i++) {
        w[i].lat = malloc(sizeof(double) * LAT_CAP);
        BU_CHECK(w[i].lat != NULL);
    }
    BU_CHECK(mdb_env_create(&env) == 0);
    BU_CHECK(mdb_env_set_mapsize(env, (size_t)1 << 32) == 0);
    BU_CHECK(mdb_env_set_maxreaders(env, MAX_THREADS + 8) == 0);
    BU_CHECK(mdb_env_open(env, rawdir,
                          MDB_NOTLS | (cfg.nosync ? MDB_NOSYNC : 0),
                          0644) == 0);
    etagkv_options_init(&o);
    o.sync_mode = cfg.nosync ? ETAGKV_NOSYNC : ETAGKV_SYNC;
    o.map_size_bytes = (uint64_t)1 << 32;
    BU_CHECK(etagkv_store_open(kvdir, &o, &s) == ETAGKV_OK);
    seed(env, &dbi, s);
    expected = (long)cfg.accounts * START_BALANCE;

    init_workers(w);
    for (int i = 0; i < cfg.threads; i++) {
        w[i].env = env;
        w[i].dbi = dbi;
    }
    run_workers(w, raw_work, &raw);
    BU_CHECK(total(env, dbi, NULL) == expected);

    init_workers(w);
    for (int i = 0; i < cfg.threads; i++)
        w[i].s = s;
    BU_CHECK(etagkv_store_stats(s, &before) == ETAGKV_OK);
    run_workers(w, kv_work, &kv);
    BU_CHECK(etagkv_store_stats(s, &after) == ETAGKV_OK);
    BU_CHECK(total(NULL, 0, s) == expected);
    batch = after.write_txns > before.write_txns
                ? (double)(after.write_ops - before.write_ops) /
                      (double)(after.write_txns - before.write_txns)
                : 0;

    snprintf(name, sizeof(name), "transfer/%daccts/%s/%dt", cfg.accounts,
             cfg.nosync ? "nosync" : "sync", cfg.threads);
    printf("%-30s %11s %11s %8s %8s %6s | %11s %8s %8s | %7s\n",
           "scenario (etagkv | raw LMDB)", "transfers/s", "conflicts/s",
           "p50 ms", "p99 ms", "batch", "transfers/s", "p50 ms", "p99 ms",
           "ratio");
    printf("%-30s %11.0f %11.0f %8.3f %8.3f %6.1f | %11.0f %8.3f %8.3f | "
           "%6.2fx\n",
           name, kv.ok_rate, kv.conflict_rate, kv.p50_ms, kv.p99_ms, batch,
           raw.ok_rate, raw.p50_ms, raw.p99_ms, kv.ok_rate / raw.ok_rate);
    printf("invariant: both stores sum to %ld\n", expected);
    fprintf(stderr,
            "{\"scenario\":\"%s\",\"etagkv_transfers_per_s\":%.0f,"
            "\"etagkv_conflicts_per_s\":%.0f,\"etagkv_p50_ms\":%.3f,"
            "\"etagkv_p99_ms\":%.3f,\"mean_batch\":%.2f,"
            "\"baseline\":\"raw LMDB one write txn per transfer\","
            "\"baseline_transfers_per_s\":%.0f,\"baseline_p50_ms\":%.3f,"
            "\"baseline_p99_ms\":%.3f,\"ratio\":%.3f,\"invariant\":true}\n",
            name, kv.ok_rate, kv.conflict_rate, kv.p50_ms, kv.p99_ms, batch,
            raw.ok_rate, raw.p50_ms, raw.p99_ms, kv.ok_rate / raw.ok_rate);

    etagkv_store_close(s);
    mdb_env_close(env);
    bu_rmdir(rawdir);
    bu_rmdir(kvdir);
    for (int i = 0; i < cfg.threads; i++)
        free(w[i].lat);
    return 0;
}
