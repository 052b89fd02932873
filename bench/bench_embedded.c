/*
 * bench_embedded.c -- one thread, embedded: etagkv against raw LMDB in the
 * same process, same machine, same run, so the ratio survives a noisy box.
 *
 *  put:  etagkv_put() under etagkv_cond_if_match() of the current ETag
 *        (the read, the RFC 9110 evaluation and the write in one
 *        transaction) vs a raw LMDB
 *        read-modify-write transaction (mdb_get + mdb_put + commit).
 *  get:  etagkv_get() (value copy + metadata) and etagkv_view() (zero-copy)
 *        vs raw mdb_get in a reused read transaction (reset/renew), on
 *        LMDB's main database and, the fairer baseline since etagkv's
 *        records live in one, on a named database (issue 14).
 *
 * For 100-byte and 4-KiB values, in nosync and sync mode, and the put alone
 * in pipelined mode (ETAGKV_SYNC_PIPELINED, opt-in: one writer pays two
 * flushes there too; raw LMDB in its sync mode).  Prints a table
 * and one JSON line per scenario.  Usage: bench_embedded [SCALE] where
 * SCALE multiplies the operation counts (default 1).
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "etagkv.h"

#define NKEYS 1000

static char key_of[NKEYS][16];

/* ---- raw LMDB baselines ----------------------------------------------------
 */

struct raw {
    MDB_env *env;
    MDB_dbi dbi;   /* the main database: read-modify-writes and reads */
    MDB_dbi named; /* a named database: the same records, for reads */
};

static void raw_open(struct raw *r, const char *dir, int nosync)
{
    MDB_txn *txn;

    BU_CHECK(mdb_env_create(&r->env) == 0);
    BU_CHECK(mdb_env_set_mapsize(r->env, (size_t)1 << 30) == 0);
    BU_CHECK(mdb_env_set_maxdbs(r->env, 1) == 0);
    BU_CHECK(mdb_env_open(r->env, dir, MDB_NOTLS | (nosync ? MDB_NOSYNC : 0),
                          0644) == 0);
    BU_CHECK(mdb_txn_begin(r->env, NULL, 0, &txn) == 0);
    BU_CHECK(mdb_dbi_open(txn, NULL, 0, &r->dbi) == 0);
    BU_CHECK(mdb_dbi_open(txn, "records", MDB_CREATE, &r->named) == 0);
    BU_CHECK(mdb_txn_commit(txn) == 0);
}

/* The named database holds the same values as the main one. */
static void raw_fill_named(struct raw *r, const char *value, size_t len)
{
    MDB_txn *txn;

    BU_CHECK(mdb_txn_begin(r->env, NULL, 0, &txn) == 0);
    for (int k = 0; k < NKEYS; k++) {
        MDB_val key = {strlen(key_of[k]), key_of[k]};
        MDB_val val = {len, (void *)value};

        BU_CHECK(mdb_put(txn, r->named, &key, &val, 0) == 0);
    }
    BU_CHECK(mdb_txn_commit(txn) == 0);
}

/* One read-modify-write transaction: read the current value (as a CAS
 * would, to compare), write the new one, commit. */
static void raw_rmw(struct raw *r, int k, char *value, size_t len)
{
    MDB_txn *txn;
    MDB_val key = {strlen(key_of[k]), key_of[k]}, old, val = {len, value};
    int rc;

    BU_CHECK(mdb_txn_begin(r->env, NULL, 0, &txn) == 0);
    rc = mdb_get(txn, r->dbi, &key, &old);
    BU_CHECK(rc == 0 || rc == MDB_NOTFOUND);
    if (rc == 0)
        value[0] = (char)(((const char *)old.mv_data)[0] + 1);
    BU_CHECK(mdb_put(txn, r->dbi, &key, &val, 0) == 0);
    BU_CHECK(mdb_txn_commit(txn) == 0);
}

static double raw_put_rate(struct raw *r, char *value, size_t len, long ops)
{
    double t0 = bu_now();

    for (long i = 0; i < ops; i++)
        raw_rmw(r, (int)(i % NKEYS), value, len);
    return (double)ops / (bu_now() - t0);
}

static double raw_get_rate(struct raw *r, MDB_dbi dbi, long ops,
                           unsigned long *sink)
{
    MDB_txn *txn;
    double t0;

    BU_CHECK(mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn) == 0);
    mdb_txn_reset(txn);
    t0 = bu_now();
    for (long i = 0; i < ops; i++) {
        int k = (int)(i % NKEYS);
        MDB_val key = {strlen(key_of[k]), key_of[k]}, v;

        BU_CHECK(mdb_txn_renew(txn) == 0);
        BU_CHECK(mdb_get(txn, dbi, &key, &v) == 0);
        *sink += ((const unsigned char *)v.mv_data)[0];
        mdb_txn_reset(txn);
    }
    t0 = (double)ops / (bu_now() - t0);
    mdb_txn_abort(txn);
    return t0;
}

/* ---- etagkv
 * ------------------------------------------------------------------ */

static double kv_put_rate(etagkv_store *s, char etags[][ETAGKV_ETAG_SIZE],
                          char *value, size_t len, long ops)
{
    double t0 = bu_now();

    for (long i = 0; i < ops; i++) {
        int k = (int)(i % NKEYS);
        etagkv_meta m;
        etagkv_cond *c;

        value[0]++; /* a new value each time, as in the raw loop */
        BU_CHECK(etagkv_cond_if_match(etags[k], &c) == ETAGKV_OK);
        BU_CHECK(etagkv_put(s, key_of[k], strlen(key_of[k]), value, len, NULL,
                            c, &m) == ETAGKV_OK);
        etagkv_cond_free(c);
        memcpy(etags[k], m.etag, ETAGKV_ETAG_SIZE);
    }
    return (double)ops / (bu_now() - t0);
}

static double kv_get_rate(etagkv_store *s, long ops, unsigned long *sink)
{
    double t0 = bu_now();

    for (long i = 0; i < ops; i++) {
        int k = (int)(i % NKEYS);
        void *v;
        size_t n;
        etagkv_meta m;

        BU_CHECK(etagkv_get(s, key_of[k], strlen(key_of[k]), NULL, &v, &n,
                            &m) == ETAGKV_OK);
        *sink += ((unsigned char *)v)[0] + m.version;
        etagkv_free(v);
    }
    return (double)ops / (bu_now() - t0);
}

static void view_fn(void *ctx, const void *value, size_t len,
                    const etagkv_meta *m)
{
    (void)len;
    *(unsigned long *)ctx += ((const unsigned char *)value)[0] + m->version;
}

static double kv_view_rate(etagkv_store *s, long ops, unsigned long *sink)
{
    double t0 = bu_now();

    for (long i = 0; i < ops; i++) {
        int k = (int)(i % NKEYS);

        BU_CHECK(etagkv_view(s, key_of[k], strlen(key_of[k]), NULL, view_fn,
                             sink) == ETAGKV_OK);
    }
    return (double)ops / (bu_now() - t0);
}

/* ---- one scenario
 * ------------------------------------------------------------ */

static void scenario(size_t len, etagkv_sync_mode mode, long scale)
{
    int nosync = mode == ETAGKV_NOSYNC;
    const char *mode_name = nosync                          ? "nosync"
                            : mode == ETAGKV_SYNC_PIPELINED ? "pipelined"
                                                            : "sync";
    char *rawdir = bu_mkdtemp(), *kvdir = bu_mkdtemp();
    char *value = malloc(len);
    static char etags[NKEYS][ETAGKV_ETAG_SIZE];
    long put_ops = (nosync ? 100000 : 1500) * scale;
    long get_ops = 1000000 * scale;
    unsigned long sink = 0;
    struct raw r;
    etagkv_store *s;
    etagkv_options o;
    double raw_put, kv_put, raw_get, raw_named, kv_get, kv_view;
    char name[64];

    BU_CHECK(value != NULL);
    memset(value, 'v', len);
    raw_open(&r, rawdir, nosync);
    etagkv_options_init(&o);
    o.sync_mode = mode;
    o.map_size_bytes = (uint64_t)1 << 30;
    BU_CHECK(etagkv_store_open(kvdir, &o, &s) == ETAGKV_OK);
    for (int k = 0; k < NKEYS; k++) {
        etagkv_meta m;

        raw_rmw(&r, k, value, len);
        BU_CHECK(etagkv_put(s, key_of[k], strlen(key_of[k]), value, len, NULL,
                            NULL, &m) == ETAGKV_CREATED);
        memcpy(etags[k], m.etag, ETAGKV_ETAG_SIZE);
    }
    raw_fill_named(&r, value, len);
    /* Interleave the two so drift on the machine hits both alike. */
    raw_put = raw_put_rate(&r, value, len, put_ops / 2);
    kv_put = kv_put_rate(s, etags, value, len, put_ops / 2);
    raw_put = (raw_put + raw_put_rate(&r, value, len, put_ops / 2)) / 2;
    kv_put = (kv_put + kv_put_rate(s, etags, value, len, put_ops / 2)) / 2;
    snprintf(name, sizeof(name), "embedded/%zuB/%s", len, mode_name);
    bu_report(name, "conditional put (If-Match)", kv_put,
              "raw LMDB read-modify-write txn", raw_put);
    if (mode == ETAGKV_SYNC_PIPELINED)
        goto done; /* reads are those of sync mode */
    raw_get = raw_get_rate(&r, r.dbi, get_ops, &sink);
    raw_named = raw_get_rate(&r, r.named, get_ops, &sink);
    kv_get = kv_get_rate(s, get_ops, &sink);
    kv_view = kv_view_rate(s, get_ops, &sink);

    bu_report(name, "get value+metadata (copy)", kv_get,
              "raw mdb_get (txn renew/reset)", raw_get);
    bu_report(name, "view value+metadata (zero-copy)", kv_view,
              "raw mdb_get (txn renew/reset)", raw_get);
    bu_report(name, "get value+metadata (copy)", kv_get,
              "raw mdb_get, named db (txn renew/reset)", raw_named);
    bu_report(name, "view value+metadata (zero-copy)", kv_view,
              "raw mdb_get, named db (txn renew/reset)", raw_named);
done:
    etagkv_store_close(s);
    mdb_env_close(r.env);
    bu_rmdir(rawdir);
    bu_rmdir(kvdir);
    free(value);
    if (sink == 42)
        puts(""); /* keep the reads from being optimised away */
}

int main(int argc, char **argv)
{
    long scale = argc > 1 ? atol(argv[1]) : 1;

    if (scale < 1)
        scale = 1;
    for (int k = 0; k < NKEYS; k++)
        snprintf(key_of[k], sizeof(key_of[k]), "key-%05d", k);
    bu_header();
    scenario(100, ETAGKV_NOSYNC, scale);
    scenario(4096, ETAGKV_NOSYNC, scale);
    scenario(100, ETAGKV_SYNC, scale);
    scenario(4096, ETAGKV_SYNC, scale);
    scenario(100, ETAGKV_SYNC_PIPELINED, scale);
    scenario(4096, ETAGKV_SYNC_PIPELINED, scale);
    return 0;
}
