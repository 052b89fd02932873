/*
 * bench_flush.c -- what one durable commit costs on this disk, against
 * what an append-only log pays for one durable write (Redis's AOF with
 * appendfsync always, etcd's WAL): the floor under every synchronous
 * write of etagkv, and why a lock cycle over HTTP trails Redis's
 * (docs/benchmarks.md, "Lock cycles over HTTP").  All three in one
 * fresh directory under $TMPDIR, in the same run, interleaved in thirds:
 *
 *   lmdb     a raw LMDB write transaction of one 100-byte put, committed
 *            with LMDB's default durability: the dirty pages written and
 *            fdatasync'ed, then the meta page written through an O_DSYNC
 *            descriptor -- two ordered flushes
 *   pages    the same two flushes without LMDB: 3 pages pwrite +
 *            fdatasync, then 120 bytes pwrite through O_DSYNC
 *   append   the baseline: 150 bytes appended + fdatasync (one flush)
 *
 * Usage: bench_flush [SCALE]  (SCALE x 1,000 commits each, default 1)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "benchutil.h"

#define PAGE 4096

static char buf[3 * PAGE];

static double lmdb_commits(const char *dir, long n)
{
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn;
    char key[16], value[100];
    double t0;

    memset(value, 'v', sizeof(value));
    BU_CHECK(mdb_env_create(&env) == 0);
    BU_CHECK(mdb_env_set_mapsize(env, (size_t)1 << 28) == 0);
    BU_CHECK(mdb_env_open(env, dir, MDB_NOTLS, 0600) == 0);
    BU_CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    BU_CHECK(mdb_dbi_open(txn, NULL, 0, &dbi) == 0);
    BU_CHECK(mdb_txn_commit(txn) == 0);
    t0 = bu_now();
    for (long i = 0; i < n; i++) {
        MDB_val k = {0, key}, v = {sizeof(value), value};

        k.mv_size = (size_t)snprintf(key, sizeof(key), "k%04ld", i % 1000);
        BU_CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
        BU_CHECK(mdb_put(txn, dbi, &k, &v, 0) == 0);
        BU_CHECK(mdb_txn_commit(txn) == 0);
    }
    t0 = bu_now() - t0;
    mdb_env_close(env);
    return (double)n / t0;
}

static double page_flushes(const char *dir, long n)
{
    char path[4096];
    int fd, meta;
    double t0;

    BU_CHECK(snprintf(path, sizeof(path), "%s/pages", dir) < (int)sizeof(path));
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    BU_CHECK(fd >= 0);
    meta = open(path, O_RDWR | O_DSYNC | O_CLOEXEC);
    BU_CHECK(meta >= 0);
    BU_CHECK(ftruncate(fd, 64 * PAGE) == 0 && fsync(fd) == 0);
    t0 = bu_now();
    for (long i = 0; i < n; i++) {
        BU_CHECK(pwrite(fd, buf, 3 * PAGE, PAGE * (2 + i % 50)) == 3 * PAGE);
        BU_CHECK(fdatasync(fd) == 0);
        BU_CHECK(pwrite(meta, buf, 120, 32) == 120);
    }
    t0 = bu_now() - t0;
    BU_CHECK(close(meta) == 0 && close(fd) == 0);
    return (double)n / t0;
}

static double appends(const char *dir, long n)
{
    char path[4096];
    int fd;
    double t0;

    BU_CHECK(snprintf(path, sizeof(path), "%s/log", dir) < (int)sizeof(path));
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0600);
    BU_CHECK(fd >= 0);
    t0 = bu_now();
    for (long i = 0; i < n; i++) {
        BU_CHECK(write(fd, buf, 150) == 150);
        BU_CHECK(fdatasync(fd) == 0);
    }
    t0 = bu_now() - t0;
    BU_CHECK(close(fd) == 0);
    return (double)n / t0;
}

int main(int argc, char **argv)
{
    long scale = argc > 1 ? atol(argv[1]) : 1, n;
    char *dir = bu_mkdtemp();
    double lmdb, pages, append;

    n = (scale > 0 ? scale : 1) * 1000;
    memset(buf, 1, sizeof(buf));
    /* Interleaved thirds, so that a change in the disk's mood meanwhile
     * touches all three alike. */
    lmdb = pages = append = 0;
    for (int round = 0; round < 3; round++) {
        lmdb += lmdb_commits(dir, n / 3) / 3;
        pages += page_flushes(dir, n / 3) / 3;
        append += appends(dir, n / 3) / 3;
    }
    bu_rmdir(dir);
    bu_header();
    bu_report("durable-commit", "LMDB commit, 1 put (2 flushes)", lmdb,
              "append 150 B + fdatasync", append);
    bu_report("durable-commit", "3 pages+fdatasync, O_DSYNC meta", pages,
              "append 150 B + fdatasync", append);
    return 0;
}
