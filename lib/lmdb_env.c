/*
 * lmdb_env.c -- the LMDB backend's environment: open and close, the format
 * marker, statistics, and the one mapping of LMDB and errno codes to
 * statuses (with the diagnosis of a full disk).  Layout in lmdb_env.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lmdb_env.h"

#define FORMAT_KEY "etagkv.format"
#define FORMAT_VALUE "etagkv/1"

/* ---- statuses ------------------------------------------------------------ */

etagkv_status ekv_mdb_map(int rc)
{
    switch (rc) {
    case MDB_MAP_FULL:
    case ENOSPC: /* the file system is full */
    case EDQUOT:
    case EFBIG: /* RLIMIT_FSIZE or the file system's largest file */
        return ETAGKV_STORE_FULL;
    case ENOMEM: return ETAGKV_NO_MEMORY;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND: return ETAGKV_CORRUPT;
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE: return ETAGKV_INCOMPATIBLE;
    default: return ETAGKV_IO_ERROR;
    }
}

etagkv_status ekv_mdb_status(int rc, const char *what)
{
    return ekv_fail(ekv_mdb_map(rc), "%s: %s", what, mdb_strerror(rc));
}

#define DISK_FULL_MARGIN ((uint64_t)1 << 20)

etagkv_status ekv_mdb_commit_status(struct ekv_env *env, int rc)
{
    struct statvfs fs;
    struct rlimit lim;
    struct stat sb;
    int fd;

    /* LMDB reports a short write as EIO, and a write that runs into a full
     * file system or the process's file size limit is usually short first
     * (some pages fit).  Tell those cases apart by asking, so the caller
     * sees a full disk as the full store it is rather than as an
     * unexplained I/O error.  A best effort: what a file system calls free
     * is approximate (ext4 reserves blocks for root, btrfs allocates in
     * chunks), so "full" is less than DISK_FULL_MARGIN left, counting the
     * reserved blocks when we are root, who may use them. */
    if (rc != EIO || mdb_env_get_fd(env->mdb, &fd) != 0)
        return ekv_mdb_status(rc, "write transaction");
    if (fstatvfs(fd, &fs) == 0 &&
        (geteuid() == 0 ? fs.f_bfree : fs.f_bavail) * fs.f_frsize <
            DISK_FULL_MARGIN)
        return ekv_fail(ETAGKV_STORE_FULL,
                        "write transaction: %s, and the file system holding "
                        "the store has no free space",
                        mdb_strerror(rc));
    if (getrlimit(RLIMIT_FSIZE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
        fstat(fd, &sb) == 0 &&
        (uint64_t)sb.st_size + env->page_bytes > (uint64_t)lim.rlim_cur)
        return ekv_fail(ETAGKV_STORE_FULL,
                        "write transaction: %s, and the store's file reached "
                        "the process's file size limit (RLIMIT_FSIZE) of "
                        "%llu bytes",
                        mdb_strerror(rc), (unsigned long long)lim.rlim_cur);
    return ekv_mdb_status(rc, "write transaction");
}

/* ---- open and close ------------------------------------------------------ */

/* In txn, check the format marker or, in an empty main database, write
 * it.  An environment whose main database holds anything but our own
 * entries is some other program's LMDB: refuse it rather than write into
 * it. */
static etagkv_status check_format(struct ekv_env *env, MDB_txn *txn)
{
    MDB_stat main_stat;
    MDB_val k = {sizeof(FORMAT_KEY) - 1, FORMAT_KEY}, v;
    int rc;

    rc = mdb_stat(txn, env->main, &main_stat);
    if (rc != 0)
        return ekv_mdb_status(rc, "main database");
    rc = mdb_get(txn, env->main, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return ekv_mdb_status(rc, "mdb_get(format)");
    if (rc == MDB_NOTFOUND && main_stat.ms_entries == 0) {
        v.mv_size = sizeof(FORMAT_VALUE) - 1;
        v.mv_data = FORMAT_VALUE;
        rc = mdb_put(txn, env->main, &k, &v, 0);
        return rc == 0 ? ETAGKV_OK : ekv_mdb_status(rc, "mdb_put(format)");
    }
    if (rc != 0 || v.mv_size != sizeof(FORMAT_VALUE) - 1 ||
        memcmp(v.mv_data, FORMAT_VALUE, v.mv_size) != 0)
        return ekv_fail(ETAGKV_INCOMPATIBLE,
                        "not an etagkv store, or an unknown format");
    return ETAGKV_OK;
}

/* A store made before the change log existed holds records whose changes
 * were never logged: its log starts at its current revision.  Writing the
 * floor once (with the revision, 0 in a new store) makes that explicit,
 * so a request for older events is ETAGKV_COMPACTED, not a silent gap. */
static etagkv_status start_change_log(struct ekv_env *env, MDB_txn *mtxn)
{
    ekv_txn txn = {.env = env, .handle = mtxn};
    MDB_val k = {sizeof(EKV_CHANGES_FLOOR_KEY) - 1, EKV_CHANGES_FLOOR_KEY}, v;
    uint64_t rev;
    etagkv_status st;
    int rc = mdb_get(mtxn, env->main, &k, &v);

    if (rc == 0)
        return ETAGKV_OK;
    if (rc != MDB_NOTFOUND)
        return ekv_mdb_status(rc, "mdb_get(changes floor)");
    st = ekv_revision_get(&txn, &rev);
    return st == ETAGKV_OK ? ekv_change_floor_put(&txn, rev) : st;
}

/* Check (or write) the format marker and open the named databases. */
static etagkv_status open_dbs(struct ekv_env *env)
{
    MDB_txn *txn;
    etagkv_status st = ETAGKV_OK;
    int rc;

    rc = mdb_txn_begin(env->mdb, NULL, 0, &txn);
    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_txn_begin");
    rc = mdb_dbi_open(txn, NULL, 0, &env->main);
    if (rc != 0) {
        st = ekv_mdb_status(rc, "main database");
        goto out;
    }
    st = check_format(env, txn);
    if (st != ETAGKV_OK)
        goto out;
    rc = mdb_dbi_open(txn, "records", MDB_CREATE, &env->records);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "idempotency", MDB_CREATE, &env->idem);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "changes", MDB_CREATE, &env->changes);
    if (rc != 0) {
        st = ekv_mdb_status(rc, "mdb_dbi_open");
        goto out;
    }
    st = start_change_log(env, txn);
    if (st != ETAGKV_OK)
        goto out;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        st = ekv_mdb_status(rc, "mdb_txn_commit");
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    return st;
}

/* Size the environment before mdb_env_open(). */
static int configure(struct ekv_env *env, const etagkv_options *opts)
{
    int rc = mdb_env_set_maxdbs(env->mdb, 4);

    if (rc == 0)
        rc = mdb_env_set_maxreaders(env->mdb, opts->max_readers);
    if (rc == 0)
        rc = mdb_env_set_mapsize(env->mdb, (size_t)opts->map_size_bytes);
    return rc;
}

static etagkv_status open_mdb(struct ekv_env *env, const char *dir,
                              const etagkv_options *opts)
{
    unsigned flags = MDB_NOTLS;
    MDB_envinfo info;
    etagkv_status st;
    int rc;

    if (opts->sync_mode == ETAGKV_NOSYNC)
        flags |= MDB_NOSYNC;
    rc = mdb_env_create(&env->mdb);
    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_env_create");
    rc = configure(env, opts);
    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_env_set");
    rc = mdb_env_open(env->mdb, dir, flags, 0644);
    if (rc == MDB_INVALID && ekv_torn_store(dir) != ETAGKV_OK)
        return ETAGKV_TORN_STORE;
    if (rc != 0)
        return ekv_fail(ekv_mdb_map(rc), "mdb_env_open(%s): %s", dir,
                        mdb_strerror(rc));
    if (mdb_env_get_maxkeysize(env->mdb) < ETAGKV_KEY_MAX)
        return ekv_fail(ETAGKV_INCOMPATIBLE, "LMDB built with max key size %d",
                        mdb_env_get_maxkeysize(env->mdb));
    /* An existing store may already be larger than the initial size. */
    rc = mdb_env_info(env->mdb, &info);
    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_env_info");
    env->map.map_bytes = info.me_mapsize;
    st = ekv_create_durable(env->mdb, dir);
    return st != ETAGKV_OK ? st : open_dbs(env);
}

etagkv_status ekv_env_open(const char *dir, const etagkv_options *opts,
                           size_t page_bytes, struct ekv_env **out)
{
    struct ekv_env *env = calloc(1, sizeof(*env));
    etagkv_status st;

    *out = NULL;
    if (env == NULL)
        return ETAGKV_NO_MEMORY;
    env->page_bytes = page_bytes;
    st = ekv_map_init(&env->map, (size_t)opts->map_max_bytes);
    if (st != ETAGKV_OK)
        goto fail;
    st = ekv_readers_init(&env->readers, opts->max_readers / 2);
    if (st != ETAGKV_OK)
        goto fail;
    st = ekv_registry_add(&env->registration, dir);
    if (st != ETAGKV_OK)
        goto fail;
    st = open_mdb(env, dir, opts);
    if (st != ETAGKV_OK)
        goto fail;
    *out = env;
    return ETAGKV_OK;
fail:
    ekv_env_close(env);
    return st;
}

void ekv_env_close(struct ekv_env *env)
{
    if (env == NULL)
        return;
    /* The pooled read transactions go before the environment. */
    ekv_readers_shutdown(&env->readers);
    if (env->mdb != NULL) {
        /* In nosync mode this makes a clean shutdown as durable as sync
         * mode; in sync mode it is a no-op. */
        (void)mdb_env_sync(env->mdb, 1);
        mdb_env_close(env->mdb);
    }
    ekv_registry_remove(&env->registration);
    ekv_map_shutdown(&env->map);
    free(env);
}

etagkv_status ekv_env_stats(ekv_txn *txn, etagkv_stats *out)
{
    struct ekv_env *env = txn->env;
    MDB_stat records_stat, idem_stat, changes_stat;
    MDB_envinfo info;
    int rc;

    rc = mdb_stat(txn->handle, env->records, &records_stat);
    if (rc == 0)
        rc = mdb_stat(txn->handle, env->idem, &idem_stat);
    if (rc == 0)
        rc = mdb_stat(txn->handle, env->changes, &changes_stat);
    if (rc == 0)
        rc = mdb_env_info(env->mdb, &info);
    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_stat");
    out->records = records_stat.ms_entries;
    out->idempotency_keys = idem_stat.ms_entries;
    out->change_events = changes_stat.ms_entries;
    out->map_size_bytes = info.me_mapsize;
    out->map_used_bytes =
        (uint64_t)(info.me_last_pgno + 1) * records_stat.ms_psize;
    return ETAGKV_OK;
}
