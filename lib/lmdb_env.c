/*
 * lmdb_env.c -- the LMDB backend's environment: open (read-write or
 * read-only) and close, the format marker, statistics, compacted copies,
 * and the one mapping of LMDB and errno codes to statuses (with the
 * diagnosis of a full disk).  Layout in lmdb_env.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
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

etagkv_status ekv_mdb_commit_status(struct ekv_lmdb_env *env, int rc)
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
static etagkv_status check_format(struct ekv_lmdb_env *env, MDB_txn *txn)
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
    if (rc == MDB_NOTFOUND && main_stat.ms_entries == 0 && env->read_only)
        return ekv_fail(ETAGKV_INCOMPATIBLE,
                        "an empty LMDB environment, not yet an etagkv store "
                        "(a read-only open does not make it one)");
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
static etagkv_status start_change_log(struct ekv_lmdb_env *env, MDB_txn *mtxn)
{
    ekv_txn txn = {.env = &env->base, .handle = mtxn};
    MDB_val k = {sizeof(EKV_CHANGES_FLOOR_KEY) - 1, EKV_CHANGES_FLOOR_KEY}, v;
    uint64_t rev;
    etagkv_status st;
    int rc = mdb_get(mtxn, env->main, &k, &v);

    if (rc == 0)
        return ETAGKV_OK;
    if (rc != MDB_NOTFOUND)
        return ekv_mdb_status(rc, "mdb_get(changes floor)");
    st = ekv_lmdb_revision_get(&txn, &rev);
    return st == ETAGKV_OK ? ekv_lmdb_change_floor_put(&txn, rev) : st;
}

/* Check (or write) the format marker and open the named databases (in a
 * read-only store, without creating anything: a store with the marker has
 * records and idempotency; one last written before the change log existed
 * has no changes database, see lmdb_env.h).  Committing the transaction,
 * read-only too, keeps the handles. */
static etagkv_status open_dbs(struct ekv_lmdb_env *env)
{
    unsigned create = env->read_only ? 0 : MDB_CREATE;
    MDB_txn *txn;
    etagkv_status st = ETAGKV_OK;
    int rc;

    rc = mdb_txn_begin(env->mdb, NULL, env->read_only ? MDB_RDONLY : 0, &txn);
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
    rc = mdb_dbi_open(txn, "records", create, &env->records);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "idempotency", create, &env->idem);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "changes", create, &env->changes);
        if (rc == MDB_NOTFOUND && env->read_only) {
            env->changes_absent = 1;
            rc = 0;
        }
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "leases", create, &env->leases);
        if (rc == MDB_NOTFOUND && env->read_only) {
            env->leases_absent = 1;
            rc = 0;
        }
    }
    if (rc != 0) {
        st = ekv_mdb_status(rc, "mdb_dbi_open");
        goto out;
    }
    if (!env->read_only) {
        st = start_change_log(env, txn);
        if (st != ETAGKV_OK)
            goto out;
    }
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
static int configure(struct ekv_lmdb_env *env, const etagkv_options *opts)
{
    int rc = mdb_env_set_maxdbs(env->mdb, 8);

    if (rc == 0)
        rc = mdb_env_set_maxreaders(env->mdb, opts->max_readers);
    if (rc == 0)
        rc = mdb_env_set_mapsize(env->mdb, (size_t)opts->map_size_bytes);
    return rc;
}

/* "dir/name" into path; -1 if it does not fit. */
static int path_in(char *path, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(path, cap, "%s/%s", dir, name);

    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* Before anything is registered or opened: a missing directory is
 * ETAGKV_NOT_FOUND with a plain message, not LMDB's "No such file or
 * directory" after the fact; so, for a read-only open, is a directory
 * without a store, which a read-write open would create and a read-only
 * open must not. */
static etagkv_status check_dir(const char *dir, int read_only)
{
    char path[PATH_MAX];
    struct stat sb;

    if (stat(dir, &sb) != 0)
        return errno == ENOENT
                   ? ekv_fail(ETAGKV_NOT_FOUND,
                              "%s: directory does not exist (the library "
                              "does not create it)",
                              dir)
                   : ekv_fail(ETAGKV_IO_ERROR, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return ekv_fail(ETAGKV_IO_ERROR, "%s: not a directory", dir);
    if (!read_only)
        return ETAGKV_OK;
    if (path_in(path, sizeof(path), dir, "data.mdb") != 0)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT, "%s: path too long", dir);
    if (stat(path, &sb) != 0)
        return errno == ENOENT
                   ? ekv_fail(ETAGKV_NOT_FOUND,
                              "%s: no store here (no data.mdb), and a "
                              "read-only open creates none",
                              dir)
                   : ekv_fail(ETAGKV_IO_ERROR, "%s: %s", path, strerror(errno));
    return ETAGKV_OK;
}

/* The MDB_* flags that open dir.  Read-only: MDB_RDONLY, and MDB_NOLOCK
 * unless this process may write lock.mdb.  LMDB would create a missing
 * lock file, which a read-only open must not, and cannot open one it may
 * not write (another user's store): it maps the reader table writable.
 * (On a read-only file system LMDB itself goes on without the lock file;
 * asking first makes the three cases one.) */
static unsigned open_flags(const char *dir, const etagkv_options *opts)
{
    unsigned flags = MDB_NOTLS;
    char lock[PATH_MAX];

    /* pipelined: a commit flushes its data pages but writes its meta page
     * without a flush of its own; the next flush, a later commit's or
     * ekv_env_flush(), makes it durable, and commit.c acknowledges a batch
     * only then (docs/design.md, "One flush per commit").  sync: LMDB's
     * own, a flush of the data and one of the meta page per commit. */
    if (opts->sync_mode == ETAGKV_NOSYNC)
        flags |= MDB_NOSYNC;
    else if (opts->sync_mode == ETAGKV_SYNC_PIPELINED)
        flags |= MDB_NOMETASYNC;
    if (!opts->read_only)
        return flags;
    flags |= MDB_RDONLY;
    if (path_in(lock, sizeof(lock), dir, "lock.mdb") != 0 ||
        faccessat(AT_FDCWD, lock, R_OK | W_OK, AT_EACCESS) != 0)
        flags |= MDB_NOLOCK;
    return flags;
}

/* The file must hold every page its newest meta page says is in use: a
 * copy cut short (a backup killed half-way, a restore from a broken pipe)
 * is shorter, and LMDB, which reads pages through its map, would die of
 * SIGBUS at the first page past the end.  Checked before any page but the
 * meta pages is read. */
static etagkv_status check_length(struct ekv_lmdb_env *env, const char *dir,
                                  const MDB_envinfo *info)
{
    MDB_stat st;
    struct stat sb;
    mdb_filehandle_t fd;
    uint64_t need;
    int rc = mdb_env_stat(env->mdb, &st);

    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_env_stat");
    rc = mdb_env_get_fd(env->mdb, &fd);
    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_env_get_fd");
    if (fstat(fd, &sb) != 0)
        return ekv_fail(ekv_mdb_map(errno), "fstat(%s/data.mdb): %s", dir,
                        strerror(errno));
    need = ((uint64_t)info->me_last_pgno + 1) * st.ms_psize;
    if (sb.st_size < 0 || (uint64_t)sb.st_size < need)
        return ekv_fail(ETAGKV_CORRUPT,
                        "%s/data.mdb is truncated: %lld bytes, but its pages "
                        "in use end at byte %llu (a copy or backup cut "
                        "short, or a store without sync after a power "
                        "loss?)",
                        dir, (long long)sb.st_size, (unsigned long long)need);
    return ETAGKV_OK;
}

static etagkv_status open_mdb(struct ekv_lmdb_env *env, const char *dir,
                              const etagkv_options *opts)
{
    unsigned flags = open_flags(dir, opts);
    MDB_envinfo info;
    etagkv_status st;
    int rc;

    rc = mdb_env_create(&env->mdb);
    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_env_create");
    rc = configure(env, opts);
    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_env_set");
    rc = mdb_env_open(env->mdb, dir, flags, (mdb_mode_t)opts->file_mode);
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
    st = check_length(env, dir, &info);
    if (st == ETAGKV_OK && !env->read_only)
        st = ekv_create_durable(env->mdb, dir);
    if (st == ETAGKV_OK)
        st = open_dbs(env);
    /* What open_dbs() committed (a new store's databases, its format
     * marker) is durable when the open returns, as every acknowledged
     * write is: in sync mode LMDB's commit made it so, in pipelined mode
     * its meta page needs this flush; in nosync mode it is flushed with
     * the rest at close. */
    if (st == ETAGKV_OK && !env->read_only &&
        opts->sync_mode == ETAGKV_SYNC_PIPELINED)
        st = ekv_lmdb_env_flush(&env->base);
    return st;
}

etagkv_status ekv_lmdb_env_open(const char *dir, const etagkv_options *opts,
                                size_t page_bytes, struct ekv_env **out)
{
    struct ekv_lmdb_env *env = calloc(1, sizeof(*env));
    etagkv_status st;

    *out = NULL;
    if (env == NULL)
        return ETAGKV_NO_MEMORY;
    env->base.ops = &ekv_lmdb_ops;
    env->page_bytes = page_bytes;
    env->read_only = opts->read_only != 0;
    st = check_dir(dir, env->read_only);
    if (st != ETAGKV_OK)
        goto fail;
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
    *out = &env->base;
    return ETAGKV_OK;
fail:
    ekv_lmdb_env_close(&env->base);
    return st;
}

void ekv_lmdb_env_close(struct ekv_env *base)
{
    struct ekv_lmdb_env *env = ekv_lmdb_of(base);

    if (env == NULL)
        return;
    /* The pooled read transactions go before the environment. */
    ekv_readers_shutdown(&env->readers);
    if (env->mdb != NULL && !env->read_only) {
        /* In nosync mode this makes a clean shutdown as durable as sync
         * mode; in sync mode it is a no-op; in pipelined mode everything
         * acknowledged is durable already, and this flushes at most the
         * meta page of a last commit whose batch was never acknowledged
         * (commit.c). */
        (void)mdb_env_sync(env->mdb, 1);
    }
    if (env->mdb != NULL)
        mdb_env_close(env->mdb);
    ekv_registry_remove(&env->registration);
    ekv_map_shutdown(&env->map);
    free(env);
}

etagkv_status ekv_lmdb_env_stats(ekv_txn *txn, etagkv_stats *out)
{
    struct ekv_lmdb_env *env = ekv_lmdb_of(txn->env);
    MDB_stat records_stat, idem_stat, changes_stat;
    MDB_envinfo info;
    int rc;

    /* A read-only store from before the change log has no such database:
     * env->changes is then 0, LMDB's free list, which mdb_stat() accepts
     * and would count. */
    memset(&changes_stat, 0, sizeof(changes_stat));
    rc = mdb_stat(txn->handle, env->records, &records_stat);
    if (rc == 0)
        rc = mdb_stat(txn->handle, env->idem, &idem_stat);
    if (rc == 0 && !env->changes_absent)
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

/* ---- compacted copies ---------------------------------------------------- */

/* The transaction id of the newest meta page, as on the disk: another
 * process's commits show in the shared map. */
static int last_txnid(MDB_env *mdb, size_t *out)
{
    MDB_envinfo info;
    int rc = mdb_env_info(mdb, &info);

    if (rc == 0)
        *out = info.me_last_txnid;
    return rc;
}

etagkv_status ekv_lmdb_env_copy_fd(struct ekv_env *base, int fd)
{
    struct ekv_lmdb_env *env = ekv_lmdb_of(base);
    unsigned flags = 0;
    size_t before = 0, after = 0;
    int rc, unlocked;

    /* Opened without the lock file (open_flags()), the copy's reader is
     * registered nowhere, and a writer in another process may reuse the
     * pages it is reading: a commit during the copy makes it suspect,
     * whether it finished or failed on a page it found rewritten. */
    /* mdb_env_copyfd2() runs its own read transaction, so it holds the
     * resize lock shared like every other one (lmdb_txn.c): the map must
     * not be resized under it, nor be gone (ekv_map.broken). */
    (void)pthread_rwlock_rdlock(&env->map.resize_lock);
    if (env->map.broken) {
        (void)pthread_rwlock_unlock(&env->map.resize_lock);
        return ekv_map_lost();
    }
    rc = mdb_env_get_flags(env->mdb, &flags);
    if (rc == 0 && (flags & MDB_NOLOCK))
        rc = last_txnid(env->mdb, &before);
    if (rc != 0) {
        (void)pthread_rwlock_unlock(&env->map.resize_lock);
        return ekv_mdb_status(rc, "mdb_env_get_flags/mdb_env_info");
    }
    unlocked = (flags & MDB_NOLOCK) != 0;
    rc = mdb_env_copyfd2(env->mdb, fd, MDB_CP_COMPACT);
    (void)pthread_rwlock_unlock(&env->map.resize_lock);
    if (!unlocked || last_txnid(env->mdb, &after) != 0)
        after = before;
    if (after == before && rc != 0)
        return ekv_mdb_map(rc) == ETAGKV_STORE_FULL
                   ? ekv_fail(ETAGKV_STORE_FULL,
                              "the backup's destination is full, not the "
                              "store: %s",
                              mdb_strerror(rc))
                   : ekv_mdb_status(rc, "mdb_env_copyfd2");
    if (after != before)
        return ekv_fail(ETAGKV_IO_ERROR,
                        "the store was written during a backup made without "
                        "its lock file (lock.mdb missing or not writable "
                        "here), so the copy may hold pages the writer "
                        "reused: back up as a user who may write lock.mdb, "
                        "or while nothing writes");
    return ETAGKV_OK;
}

/* a and b name one file (not a symlink to it). */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;

    return lstat(a, &sa) == 0 && lstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Give the finished copy tmp its name path, never replacing a file
 * there: link() fails with EEXIST where rename() would overwrite (over
 * NFS also when a retransmitted link() finds the link it made: then both
 * names are one file).  A file system without hard links gets rename()
 * after a check (a store created in between could then be replaced;
 * nothing else can).  0, or -1 with errno. */
static int publish(const char *tmp, const char *path)
{
    struct stat sb;

    if (link(tmp, path) == 0 || (errno == EEXIST && same_file(tmp, path))) {
        (void)unlink(tmp); /* left behind, it only refuses a next backup */
        return 0;
    }
    if (errno != EPERM && errno != ENOTSUP && errno != EOPNOTSUPP &&
        errno != EMLINK && errno != ENOSYS)
        return -1;
    if (lstat(path, &sb) == 0) {
        errno = EEXIST;
        return -1;
    }
    return errno == ENOENT ? rename(tmp, path) : -1;
}

/* The copy is written as DIR/data.mdb.partial and takes its name only once
 * it is complete and flushed: a backup killed half-way (a signal, a file
 * size limit, a power cut) leaves no data.mdb to pass for a store, and its
 * .partial file says what it is. */
etagkv_status ekv_lmdb_env_copy_dir(struct ekv_env *env, const char *dir)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    struct stat sb;
    etagkv_status st;
    int fd;

    if (path_in(path, sizeof(path), dir, "data.mdb") != 0 ||
        path_in(tmp, sizeof(tmp), dir, "data.mdb.partial") != 0)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT, "%s: path too long", dir);
    if (lstat(path, &sb) == 0)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "%s exists: a backup never overwrites a store", path);
    /* O_EXCL: never two backups into one file, nor follow a planted
     * symlink. */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == EEXIST
                   ? ekv_fail(ETAGKV_INVALID_ARGUMENT,
                              "%s exists: another backup into %s is running, "
                              "or one was cut short (then remove it)",
                              tmp, dir)
               : errno == ENOENT ? ekv_fail(ETAGKV_NOT_FOUND,
                                            "%s: directory does not exist", dir)
                                 : ekv_fail(ekv_mdb_map(errno), "%s: %s", tmp,
                                            strerror(errno));
    st = ekv_lmdb_env_copy_fd(env, fd);
    if (st == ETAGKV_OK && fsync(fd) != 0)
        st =
            ekv_fail(ekv_mdb_map(errno), "fsync(%s): %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == ETAGKV_OK)
        st =
            ekv_fail(ekv_mdb_map(errno), "close(%s): %s", tmp, strerror(errno));
    if (st == ETAGKV_OK && publish(tmp, path) != 0)
        st = errno == EEXIST
                 ? ekv_fail(ETAGKV_INVALID_ARGUMENT,
                            "%s appeared during the backup: a backup never "
                            "overwrites a store",
                            path)
                 : ekv_fail(ekv_mdb_map(errno), "naming %s: %s", path,
                            strerror(errno));
    if (st != ETAGKV_OK) {
        (void)unlink(tmp); /* a partial copy must not pass for a store */
        return st;
    }
    st = ekv_sync_dir(dir);
    if (st != ETAGKV_OK)
        (void)unlink(path); /* its name may not last: nothing is left */
    return st;
}

/* ---- the engine ------------------------------------------------------------
 */

const struct ekv_backend_ops ekv_lmdb_ops = {
    .name = "lmdb",
    .open = ekv_lmdb_env_open,
    .close = ekv_lmdb_env_close,
    .copy_fd = ekv_lmdb_env_copy_fd,
    .copy_dir = ekv_lmdb_env_copy_dir,
    .stats = ekv_lmdb_env_stats,
    .read_begin = ekv_lmdb_read_begin,
    .read_end = ekv_lmdb_read_end,
    .write_begin = ekv_lmdb_write_begin,
    .write_abort = ekv_lmdb_write_abort,
    .write_commit = ekv_lmdb_write_commit,
    .grow = ekv_lmdb_env_grow,
    .flush = ekv_lmdb_env_flush,
    .record_get = ekv_lmdb_record_get,
    .record_reserve = ekv_lmdb_record_reserve,
    .record_delete = ekv_lmdb_record_delete,
    .revision_get = ekv_lmdb_revision_get,
    .revision_put = ekv_lmdb_revision_put,
    .idem_entry_get = ekv_lmdb_idem_entry_get,
    .idem_entry_reserve = ekv_lmdb_idem_entry_reserve,
    .idem_entry_count = ekv_lmdb_idem_entry_count,
    .change_reserve = ekv_lmdb_change_reserve,
    .change_count = ekv_lmdb_change_count,
    .change_floor_get = ekv_lmdb_change_floor_get,
    .change_floor_put = ekv_lmdb_change_floor_put,
    .lease_entry_get = ekv_lmdb_lease_entry_get,
    .lease_entry_reserve = ekv_lmdb_lease_entry_reserve,
    .lease_entry_delete = ekv_lmdb_lease_entry_delete,
    .lease_entry_count = ekv_lmdb_lease_entry_count,
    .cursor_open = ekv_lmdb_cursor_open,
    .cursor_close = ekv_lmdb_cursor_close,
    .cursor_seek = ekv_lmdb_cursor_seek,
    .cursor_next = ekv_lmdb_cursor_next,
    .cursor_delete = ekv_lmdb_cursor_delete,
};
