/*
 * store.c -- the store's lifecycle on LMDB, transactions, map growth, and
 * the read operations (get, head, view, list, stats).
 *
 * Writes live in write.c.  Layout of the environment: the named database
 * "records" maps each key to its encoded record (record.c); LMDB's main
 * database holds, next to the entry for "records", the format marker and
 * the store-wide revision counter.  Keeping the counter there costs no
 * extra page per commit: the main database's page is rewritten by every
 * commit anyway, because it holds the root of "records".
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np: writer preference */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store.h"

#define FORMAT_KEY "etagkv.format"
#define FORMAT_VALUE "etagkv/1"
#define REVISION_KEY "etagkv.revision"

#define MAP_SIZE_DEFAULT ((uint64_t)64 << 20)
#define MAP_MAX_DEFAULT ((uint64_t)1 << 40)
#define MAP_SIZE_MIN ((uint64_t)1 << 20)
#define MAX_READERS_DEFAULT 512u
/* LMDB's lock file holds 64 bytes per reader and our pool a pointer per two
 * readers: far above any sane count, far below a huge file. */
#define MAX_READERS_LIMIT 65536u

void etagkv_options_init(etagkv_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof(*o));
    o->sync_mode = ETAGKV_SYNC;
    o->max_value_bytes = ETAGKV_MAX_VALUE_BYTES_DEFAULT;
    o->map_size_bytes = MAP_SIZE_DEFAULT;
    o->map_max_bytes = MAP_MAX_DEFAULT;
    o->max_readers = MAX_READERS_DEFAULT;
    o->idempotency_retention_s = ETAGKV_IDEMPOTENCY_RETENTION_S_DEFAULT;
    o->idempotency_max_keys = ETAGKV_IDEMPOTENCY_MAX_KEYS_DEFAULT;
    o->file_mode = ETAGKV_FILE_MODE_DEFAULT;
}

etagkv_status ekv_mdb_status(int rc, const char *what)
{
    etagkv_status st;

    switch (rc) {
    case MDB_MAP_FULL:
    case ENOSPC: /* the file system is full */
    case EDQUOT:
    case EFBIG: /* RLIMIT_FSIZE or the file system's largest file */
        st = ETAGKV_STORE_FULL;
        break;
    case ENOMEM: st = ETAGKV_NO_MEMORY; break;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND: st = ETAGKV_CORRUPT; break;
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE: st = ETAGKV_INCOMPATIBLE; break;
    default: st = ETAGKV_IO_ERROR; break;
    }
    return ekv_fail(st, "%s: %s", what, mdb_strerror(rc));
}

etagkv_status ekv_check_key(const void *key, size_t key_len)
{
    if (key_len == 0)
        return ETAGKV_INVALID_KEY;
    if (key == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    if (key_len > ETAGKV_KEY_MAX)
        return ETAGKV_KEY_TOO_LONG;
    return ETAGKV_OK;
}

uint64_t ekv_now_ns(const etagkv_store *s)
{
    struct timespec ts;

    if (s->opts.clock != NULL)
        return s->opts.clock(s->opts.clock_ctx);
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- transactions and map growth ----------------------------------------- */

/* Adopt a map grown by another process (MDB_MAP_RESIZED): LMDB asks for
 * mdb_env_set_mapsize(env, 0) with no transaction active. */
static etagkv_status adopt_resize(etagkv_store *s)
{
    MDB_envinfo info;
    int rc;

    (void)pthread_rwlock_wrlock(&s->resize_lock);
    rc = mdb_env_set_mapsize(s->env, 0);
    if (rc == 0 && (rc = mdb_env_info(s->env, &info)) == 0)
        s->map_size = info.me_mapsize;
    (void)pthread_rwlock_unlock(&s->resize_lock);
    return rc == 0 ? ETAGKV_OK : ekv_mdb_status(rc, "mdb_env_set_mapsize");
}

static MDB_txn *pool_take(etagkv_store *s)
{
    MDB_txn *txn = NULL;

    (void)pthread_mutex_lock(&s->pool_lock);
    if (s->pool_len > 0)
        txn = s->pool[--s->pool_len];
    (void)pthread_mutex_unlock(&s->pool_lock);
    return txn;
}

/* Keep a reset read transaction for reuse; abort it if the pool is full. */
static void pool_give(etagkv_store *s, MDB_txn *txn)
{
    (void)pthread_mutex_lock(&s->pool_lock);
    if (s->pool_len < s->pool_cap) {
        mdb_txn_reset(txn);
        s->pool[s->pool_len++] = txn;
        txn = NULL;
    }
    (void)pthread_mutex_unlock(&s->pool_lock);
    if (txn != NULL)
        mdb_txn_abort(txn);
}

static int begin_locked(etagkv_store *s, unsigned flags, MDB_txn **txn)
{
    int rc;

    if (flags & MDB_RDONLY) {
        MDB_txn *t = pool_take(s);

        if (t != NULL) {
            rc = mdb_txn_renew(t);
            if (rc == 0) {
                *txn = t;
                return 0;
            }
            mdb_txn_abort(t);
            if (rc != MDB_MAP_RESIZED)
                return rc;
        }
    }
    return mdb_txn_begin(s->env, NULL, flags, txn);
}

etagkv_status ekv_txn_begin(etagkv_store *s, unsigned flags, MDB_txn **txn)
{
    for (;;) {
        int rc;
        etagkv_status st;

        (void)pthread_rwlock_rdlock(&s->resize_lock);
        rc = begin_locked(s, flags, txn);
        if (rc == 0)
            return ETAGKV_OK;
        (void)pthread_rwlock_unlock(&s->resize_lock);
        if (rc != MDB_MAP_RESIZED)
            return ekv_mdb_status(rc, "mdb_txn_begin");
        st = adopt_resize(s);
        if (st != ETAGKV_OK)
            return st;
    }
}

void ekv_txn_end(etagkv_store *s, MDB_txn *txn, unsigned flags)
{
    if (flags & MDB_RDONLY)
        pool_give(s, txn);
    else
        mdb_txn_abort(txn);
    (void)pthread_rwlock_unlock(&s->resize_lock);
}

int ekv_txn_commit(etagkv_store *s, MDB_txn *txn)
{
    int rc = mdb_txn_commit(txn);

    (void)pthread_rwlock_unlock(&s->resize_lock);
    return rc;
}

#define DISK_FULL_MARGIN ((uint64_t)1 << 20)

etagkv_status ekv_write_status(etagkv_store *s, int rc)
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
    if (rc != EIO || mdb_env_get_fd(s->env, &fd) != 0)
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
        (uint64_t)sb.st_size + s->page_size > (uint64_t)lim.rlim_cur)
        return ekv_fail(ETAGKV_STORE_FULL,
                        "write transaction: %s, and the store's file reached "
                        "the process's file size limit (RLIMIT_FSIZE) of "
                        "%llu bytes",
                        mdb_strerror(rc), (unsigned long long)lim.rlim_cur);
    return ekv_mdb_status(rc, "write transaction");
}

size_t ekv_map_size(etagkv_store *s)
{
    /* Called with resize_lock held shared, so map_size cannot change. */
    return s->map_size;
}

etagkv_status ekv_grow(etagkv_store *s, size_t seen)
{
    etagkv_status st = ETAGKV_OK;
    size_t max = (size_t)s->opts.map_max_bytes;

    (void)pthread_rwlock_wrlock(&s->resize_lock);
    if (s->map_size == seen) {
        if (seen >= max) {
            st = ekv_fail(ETAGKV_STORE_FULL,
                          "map size ceiling of %zu bytes reached", max);
        } else {
            size_t want = seen <= max / 2 ? seen * 2 : max;
            int rc = mdb_env_set_mapsize(s->env, want);

            if (rc == 0)
                s->map_size = want;
            else
                st = ekv_mdb_status(rc, "mdb_env_set_mapsize");
        }
    }
    (void)pthread_rwlock_unlock(&s->resize_lock);
    return st;
}

/* ---- records and the revision counter ----------------------------------- */

etagkv_status ekv_record_get(etagkv_store *s, MDB_txn *txn, const void *key,
                             size_t key_len, ekv_record *r)
{
    MDB_val k = {key_len, (void *)key}, v;
    int rc = mdb_get(txn, s->records, &k, &v);

    if (rc == MDB_NOTFOUND)
        return ETAGKV_NOT_FOUND;
    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_get");
    if (ekv_record_decode(v.mv_data, v.mv_size, r) != ETAGKV_OK)
        return ekv_fail(ETAGKV_CORRUPT, "record of %zu bytes fails to decode",
                        v.mv_size);
    return ETAGKV_OK;
}

etagkv_status ekv_revision_get(etagkv_store *s, MDB_txn *txn, uint64_t *rev)
{
    MDB_val k = {sizeof(REVISION_KEY) - 1, REVISION_KEY}, v;
    int rc = mdb_get(txn, s->meta, &k, &v);

    if (rc == MDB_NOTFOUND) {
        *rev = 0;
        return ETAGKV_OK;
    }
    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_get(revision)");
    if (v.mv_size != 8)
        return ekv_fail(ETAGKV_CORRUPT, "revision counter of %zu bytes",
                        v.mv_size);
    *rev = ekv_get_le64(v.mv_data);
    return ETAGKV_OK;
}

int ekv_revision_put(etagkv_store *s, MDB_txn *txn, uint64_t rev)
{
    uint8_t buf[8];
    MDB_val k = {sizeof(REVISION_KEY) - 1, REVISION_KEY}, v = {8, buf};

    ekv_put_le64(buf, rev);
    return mdb_put(txn, s->meta, &k, &v, 0);
}

/* ---- open and close --------------------------------------------------------
 */

/* LMDB: "Do not have open an LMDB database twice in the same process at the
 * same time": closing the second handle would drop the first one's fcntl
 * locks and let another process open the store as if nobody used it.  So
 * the directories open in this process are registered, by device and
 * inode, and a second open is refused. */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static etagkv_store *open_stores;

static etagkv_status register_dir(etagkv_store *s, const char *dir)
{
    struct stat sb;
    etagkv_status st = ETAGKV_OK;

    if (stat(dir, &sb) != 0)
        return ekv_fail(ETAGKV_IO_ERROR, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return ekv_fail(ETAGKV_IO_ERROR, "%s: not a directory", dir);
    (void)pthread_mutex_lock(&open_lock);
    for (etagkv_store *o = open_stores; o != NULL; o = o->next_open)
        if (o->dev == sb.st_dev && o->ino == sb.st_ino)
            st = ekv_fail(ETAGKV_INVALID_ARGUMENT,
                          "%s is already open in this process", dir);
    if (st == ETAGKV_OK) {
        s->dev = sb.st_dev;
        s->ino = sb.st_ino;
        s->registered = 1;
        s->next_open = open_stores;
        open_stores = s;
    }
    (void)pthread_mutex_unlock(&open_lock);
    return st;
}

static void unregister_dir(etagkv_store *s)
{
    if (!s->registered)
        return;
    (void)pthread_mutex_lock(&open_lock);
    for (etagkv_store **p = &open_stores; *p != NULL; p = &(*p)->next_open) {
        if (*p == s) {
            *p = s->next_open;
            break;
        }
    }
    (void)pthread_mutex_unlock(&open_lock);
}

/* Round n up to a multiple of the page size p (a power of two). */
static size_t round_up(uint64_t n, size_t p)
{
    return (size_t)((n + p - 1) & ~(uint64_t)(p - 1));
}

/* Can the process map `bytes` at all?  Asked with a reservation that
 * costs no memory, before LMDB creates any file, so that a map larger than
 * the address space (or RLIMIT_AS) is a clear refusal that leaves a new
 * directory empty, not an I/O error after data.mdb exists. */
static etagkv_status check_address_space(uint64_t bytes)
{
    void *p = mmap(NULL, (size_t)bytes, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

    if (p == MAP_FAILED)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "map_size_bytes: cannot reserve %llu bytes of "
                        "address space: %s",
                        (unsigned long long)bytes, strerror(errno));
    (void)munmap(p, (size_t)bytes);
    return ETAGKV_OK;
}

static etagkv_status check_options(etagkv_options *o, size_t page)
{
    if (o->sync_mode != ETAGKV_SYNC && o->sync_mode != ETAGKV_NOSYNC)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT, "unknown sync_mode %d",
                        (int)o->sync_mode);
    if (o->max_value_bytes == 0)
        o->max_value_bytes = ETAGKV_MAX_VALUE_BYTES_DEFAULT;
    if (o->max_value_bytes > ETAGKV_MAX_VALUE_BYTES_LIMIT)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "max_value_bytes above the limit of %llu",
                        (unsigned long long)ETAGKV_MAX_VALUE_BYTES_LIMIT);
    if (o->map_size_bytes == 0)
        o->map_size_bytes = MAP_SIZE_DEFAULT;
    if (o->map_max_bytes == 0)
        o->map_max_bytes = MAP_MAX_DEFAULT;
    if (o->max_readers == 0)
        o->max_readers = MAX_READERS_DEFAULT;
    if (o->idempotency_retention_s == 0)
        o->idempotency_retention_s = ETAGKV_IDEMPOTENCY_RETENTION_S_DEFAULT;
    if (o->idempotency_max_keys == 0)
        o->idempotency_max_keys = ETAGKV_IDEMPOTENCY_MAX_KEYS_DEFAULT;
    if (o->file_mode == 0)
        o->file_mode = ETAGKV_FILE_MODE_DEFAULT;
    /* LMDB needs to read and write both files; anything beyond the
     * permission bits (setuid, sticky) has no business on a store. */
    if ((o->file_mode & 0600u) != 0600u || (o->file_mode & ~0777u) != 0)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "file_mode %04o: must include 0600 and stay within "
                        "0777",
                        o->file_mode);
    if (o->max_readers > MAX_READERS_LIMIT)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "max_readers above the limit of %u", MAX_READERS_LIMIT);
    if (o->map_size_bytes > SIZE_MAX / 4 || o->map_max_bytes > SIZE_MAX / 4)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT, "map size too large");
    /* Below this an empty store does not even fit its own metadata. */
    if (o->map_size_bytes < MAP_SIZE_MIN)
        o->map_size_bytes = MAP_SIZE_MIN;
    o->map_size_bytes = round_up(o->map_size_bytes, page);
    o->map_max_bytes = round_up(o->map_max_bytes, page);
    if (o->map_max_bytes < o->map_size_bytes)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "map_max_bytes is below map_size_bytes");
    return check_address_space(o->map_size_bytes);
}

/* Check (or, in a new environment, write) the format marker and open
 * "records".  An environment whose main database holds anything but our
 * own entries is some other program's LMDB: refuse it rather than write
 * into it. */
static etagkv_status open_dbs(etagkv_store *s)
{
    MDB_txn *txn;
    MDB_stat st_main;
    MDB_val k = {sizeof(FORMAT_KEY) - 1, FORMAT_KEY}, v;
    etagkv_status st = ETAGKV_OK;
    int rc;

    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_txn_begin");
    if ((rc = mdb_dbi_open(txn, NULL, 0, &s->meta)) != 0 ||
        (rc = mdb_stat(txn, s->meta, &st_main)) != 0) {
        st = ekv_mdb_status(rc, "main database");
        goto out;
    }
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        st = ekv_mdb_status(rc, "mdb_get(format)");
        goto out;
    }
    if (rc == MDB_NOTFOUND && st_main.ms_entries == 0) {
        v.mv_size = sizeof(FORMAT_VALUE) - 1;
        v.mv_data = FORMAT_VALUE;
        rc = mdb_put(txn, s->meta, &k, &v, 0);
        if (rc != 0) {
            st = ekv_mdb_status(rc, "mdb_put(format)");
            goto out;
        }
    } else if (rc != 0 || v.mv_size != sizeof(FORMAT_VALUE) - 1 ||
               memcmp(v.mv_data, FORMAT_VALUE, v.mv_size) != 0) {
        st = ekv_fail(ETAGKV_INCOMPATIBLE,
                      "not an etagkv store, or an unknown format");
        goto out;
    }
    rc = mdb_dbi_open(txn, "records", MDB_CREATE, &s->records);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "idempotency", MDB_CREATE, &s->idem);
    if (rc != 0) {
        st = ekv_mdb_status(rc, "mdb_dbi_open");
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

static etagkv_status open_env(etagkv_store *s, const char *dir)
{
    unsigned flags = MDB_NOTLS;
    MDB_envinfo info;
    int rc;

    if (s->opts.sync_mode == ETAGKV_NOSYNC)
        flags |= MDB_NOSYNC;
    if ((rc = mdb_env_create(&s->env)) != 0)
        return ekv_mdb_status(rc, "mdb_env_create");
    if ((rc = mdb_env_set_maxdbs(s->env, 4)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, s->opts.max_readers)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, (size_t)s->opts.map_size_bytes)) != 0)
        return ekv_mdb_status(rc, "mdb_env_set");
    if ((rc = mdb_env_open(s->env, dir, flags,
                           (mdb_mode_t)s->opts.file_mode)) != 0)
        return ekv_fail(rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH
                            ? ETAGKV_INCOMPATIBLE
                        : rc == ENOSPC || rc == EDQUOT || rc == EFBIG
                            ? ETAGKV_STORE_FULL
                            : ETAGKV_IO_ERROR,
                        "mdb_env_open(%s): %s", dir, mdb_strerror(rc));
    if (mdb_env_get_maxkeysize(s->env) < ETAGKV_KEY_MAX)
        return ekv_fail(ETAGKV_INCOMPATIBLE, "LMDB built with max key size %d",
                        mdb_env_get_maxkeysize(s->env));
    /* An existing store may already be larger than the initial size. */
    if ((rc = mdb_env_info(s->env, &info)) != 0)
        return ekv_mdb_status(rc, "mdb_env_info");
    s->map_size = info.me_mapsize;
    return open_dbs(s);
}

etagkv_status etagkv_store_open(const char *dir, const etagkv_options *opts,
                                etagkv_store **out)
{
    etagkv_store *s;
    pthread_rwlockattr_t attr;
    etagkv_status st;
    long page = sysconf(_SC_PAGESIZE);

    ekv_clear_error();
    if (out == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    *out = NULL;
    if (dir == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ETAGKV_NO_MEMORY;
    if (opts != NULL)
        s->opts = *opts;
    else
        etagkv_options_init(&s->opts);
    s->page_size = page > 0 ? (size_t)page : 4096;
    st = check_options(&s->opts, s->page_size);
    if (st != ETAGKV_OK) {
        free(s);
        return st;
    }
    s->pool_cap = s->opts.max_readers / 2;
    s->pool = calloc(s->pool_cap ? s->pool_cap : 1, sizeof(*s->pool));
    if (s->pool == NULL || pthread_rwlockattr_init(&attr) != 0) {
        free(s->pool);
        free(s);
        return ETAGKV_NO_MEMORY;
    }
    (void)pthread_rwlockattr_setkind_np(
        &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    if (pthread_rwlock_init(&s->resize_lock, &attr) != 0 ||
        pthread_mutex_init(&s->pool_lock, NULL) != 0 ||
        pthread_mutex_init(&s->queue_lock, NULL) != 0 ||
        pthread_cond_init(&s->committer_cv, NULL) != 0) {
        (void)pthread_rwlockattr_destroy(&attr);
        free(s->pool);
        free(s);
        return ETAGKV_NO_MEMORY;
    }
    (void)pthread_rwlockattr_destroy(&attr);
    st = register_dir(s, dir);
    if (st == ETAGKV_OK)
        st = open_env(s, dir);
    if (st != ETAGKV_OK) {
        etagkv_store_close(s);
        return st;
    }
    *out = s;
    return ETAGKV_OK;
}

void etagkv_store_close(etagkv_store *s)
{
    if (s == NULL)
        return;
    ekv_commit_shutdown(s);
    for (size_t i = 0; i < s->pool_len; i++)
        mdb_txn_abort(s->pool[i]);
    if (s->env != NULL) {
        /* In nosync mode this makes a clean shutdown as durable as sync
         * mode; in sync mode it is a no-op. */
        (void)mdb_env_sync(s->env, 1);
        mdb_env_close(s->env);
    }
    unregister_dir(s);
    (void)pthread_rwlock_destroy(&s->resize_lock);
    (void)pthread_mutex_destroy(&s->pool_lock);
    (void)pthread_mutex_destroy(&s->queue_lock);
    (void)pthread_cond_destroy(&s->committer_cv);
    free(s->pool);
    free(s);
}

etagkv_status etagkv_store_stats(etagkv_store *s, etagkv_stats *out)
{
    MDB_txn *txn;
    MDB_stat ms, mi;
    MDB_envinfo info;
    etagkv_status st;
    int rc;

    ekv_clear_error();
    if (s == NULL || out == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    st = ekv_txn_begin(s, MDB_RDONLY, &txn);
    if (st != ETAGKV_OK)
        return st;
    memset(out, 0, sizeof(*out));
    rc = mdb_stat(txn, s->records, &ms);
    if (rc == 0)
        rc = mdb_stat(txn, s->idem, &mi);
    if (rc == 0)
        rc = mdb_env_info(s->env, &info);
    if (rc != 0)
        st = ekv_mdb_status(rc, "mdb_stat");
    else
        st = ekv_revision_get(s, txn, &out->revision);
    if (st == ETAGKV_OK) {
        out->records = ms.ms_entries;
        out->idempotency_keys = mi.ms_entries;
        out->map_size_bytes = info.me_mapsize;
        out->map_max_bytes = s->opts.map_max_bytes;
        out->map_used_bytes = (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize;
        out->max_value_bytes = s->opts.max_value_bytes;
        (void)pthread_mutex_lock(&s->queue_lock);
        out->write_txns = s->write_txns;
        out->write_ops = s->write_ops;
        (void)pthread_mutex_unlock(&s->queue_lock);
    }
    ekv_txn_end(s, txn, MDB_RDONLY);
    return st;
}

/* ---- reads ------------------------------------------------------------------
 */

/* The common part of get and view: look the key up in a read
 * transaction and evaluate the conditions as for `method`.  *meta (never
 * NULL) gets the current metadata, or zeroes when the key is absent or the
 * call fails.  On ETAGKV_OK the transaction stays open with *r valid; on
 * any other status it is ended.  The metadata is written once, straight
 * into the caller's struct: on this path copying 344 bytes around costs as
 * much as the B-tree lookup. */
static etagkv_status read_begin(etagkv_store *s, const void *key,
                                size_t key_len, const etagkv_cond *c,
                                etagkv_method method, MDB_txn **txn,
                                ekv_record *r, etagkv_meta *meta)
{
    etagkv_status st;

    if (s == NULL)
        st = ETAGKV_INVALID_ARGUMENT;
    else if ((st = ekv_check_key(key, key_len)) == ETAGKV_OK)
        st = ekv_txn_begin(s, MDB_RDONLY, txn);
    if (st != ETAGKV_OK) {
        memset(meta, 0, sizeof(*meta));
        return st;
    }
    st = ekv_record_get(s, *txn, key, key_len, r);
    if (st == ETAGKV_OK) {
        ekv_record_meta(r, meta);
        st = etagkv_cond_evaluate(c, method, meta);
    } else {
        memset(meta, 0, sizeof(*meta));
        if (st == ETAGKV_NOT_FOUND)
            st = etagkv_cond_evaluate(c, method, meta);
    }
    if (st != ETAGKV_OK)
        ekv_txn_end(s, *txn, MDB_RDONLY);
    return st;
}

etagkv_status etagkv_get(etagkv_store *s, const void *key, size_t key_len,
                         const etagkv_cond *c, void **value_out,
                         size_t *value_len_out, etagkv_meta *meta_out)
{
    MDB_txn *txn;
    ekv_record r;
    etagkv_meta local;
    etagkv_status st;
    etagkv_method m =
        value_out != NULL ? ETAGKV_METHOD_GET : ETAGKV_METHOD_HEAD;

    ekv_clear_error();
    if (value_out != NULL)
        *value_out = NULL;
    if (value_len_out != NULL)
        *value_len_out = 0;
    st = read_begin(s, key, key_len, c, m, &txn, &r,
                    meta_out != NULL ? meta_out : &local);
    if (st != ETAGKV_OK)
        return st;
    if (value_out != NULL) {
        /* malloc(0) may return NULL; an empty value is still a value. */
        void *copy = malloc(r.value_len > 0 ? r.value_len : 1);

        if (copy == NULL) {
            st = ETAGKV_NO_MEMORY;
        } else {
            if (r.value_len > 0)
                memcpy(copy, r.value, r.value_len);
            *value_out = copy;
            if (value_len_out != NULL)
                *value_len_out = r.value_len;
        }
    }
    ekv_txn_end(s, txn, MDB_RDONLY);
    return st;
}

etagkv_status etagkv_view(etagkv_store *s, const void *key, size_t key_len,
                          const etagkv_cond *c, etagkv_view_fn fn, void *ctx)
{
    MDB_txn *txn;
    ekv_record r;
    etagkv_meta meta;
    etagkv_status st;

    ekv_clear_error();
    if (fn == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    st = read_begin(s, key, key_len, c, ETAGKV_METHOD_GET, &txn, &r, &meta);
    if (st != ETAGKV_OK)
        return st;
    fn(ctx, r.value, r.value_len, &meta);
    ekv_txn_end(s, txn, MDB_RDONLY);
    return ETAGKV_OK;
}

/* Position cur on the first key > after (or >= prefix, whichever is later)
 * and return mdb_cursor_get()'s code. */
static int list_seek(MDB_cursor *cur, const void *prefix, size_t prefix_len,
                     const void *after, size_t after_len, MDB_val *k,
                     MDB_val *v)
{
    int rc;
    size_t n = prefix_len < after_len ? prefix_len : after_len;
    int cmp = n > 0 ? memcmp(prefix, after, n) : 0;
    int after_first =
        after_len > 0 && (cmp < 0 || (cmp == 0 && prefix_len <= after_len));

    if (!after_first) {
        k->mv_size = prefix_len;
        k->mv_data = (void *)prefix;
        return prefix_len > 0 ? mdb_cursor_get(cur, k, v, MDB_SET_RANGE)
                              : mdb_cursor_get(cur, k, v, MDB_FIRST);
    }
    k->mv_size = after_len;
    k->mv_data = (void *)after;
    rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
    if (rc == 0 && k->mv_size == after_len &&
        memcmp(k->mv_data, after, after_len) == 0)
        rc = mdb_cursor_get(cur, k, v, MDB_NEXT);
    return rc;
}

static int has_prefix(const MDB_val *k, const void *prefix, size_t prefix_len)
{
    return k->mv_size >= prefix_len &&
           (prefix_len == 0 || memcmp(k->mv_data, prefix, prefix_len) == 0);
}

static etagkv_status list_walk(etagkv_store *s, MDB_cursor *cur,
                               const void *prefix, size_t prefix_len,
                               const void *after, size_t after_len,
                               size_t limit, etagkv_list_fn fn, void *ctx,
                               int *more)
{
    MDB_val k, v;
    size_t n = 0;
    int rc = list_seek(cur, prefix, prefix_len, after, after_len, &k, &v);

    (void)s;
    for (; rc == 0 && has_prefix(&k, prefix, prefix_len);
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        ekv_record r;
        etagkv_meta meta;

        if (limit > 0 && n == limit) {
            *more = 1;
            return ETAGKV_OK;
        }
        if (ekv_record_decode(v.mv_data, v.mv_size, &r) != ETAGKV_OK)
            return ekv_fail(ETAGKV_CORRUPT, "record fails to decode");
        ekv_record_meta(&r, &meta);
        n++;
        if (fn(ctx, k.mv_data, k.mv_size, &meta) != 0) {
            /* Stopped early: say whether a matching record follows. */
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            *more = rc == 0 && has_prefix(&k, prefix, prefix_len);
            return rc == 0 || rc == MDB_NOTFOUND
                       ? ETAGKV_OK
                       : ekv_mdb_status(rc, "mdb_cursor_get");
        }
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        return ekv_mdb_status(rc, "mdb_cursor_get");
    return ETAGKV_OK;
}

etagkv_status etagkv_list(etagkv_store *s, const void *prefix,
                          size_t prefix_len, const void *after,
                          size_t after_len, size_t limit, etagkv_list_fn fn,
                          void *ctx, int *more_out)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    etagkv_status st;
    int more = 0, rc;

    ekv_clear_error();
    if (more_out != NULL)
        *more_out = 0;
    if (s == NULL || fn == NULL || (prefix == NULL && prefix_len > 0) ||
        (after == NULL && after_len > 0))
        return ETAGKV_INVALID_ARGUMENT;
    if (prefix_len > ETAGKV_KEY_MAX || after_len > ETAGKV_KEY_MAX)
        return ETAGKV_KEY_TOO_LONG;
    if ((st = ekv_txn_begin(s, MDB_RDONLY, &txn)) != ETAGKV_OK)
        return st;
    rc = mdb_cursor_open(txn, s->records, &cur);
    if (rc != 0) {
        st = ekv_mdb_status(rc, "mdb_cursor_open");
    } else {
        st = list_walk(s, cur, prefix, prefix_len, after, after_len, limit, fn,
                       ctx, &more);
        mdb_cursor_close(cur);
    }
    ekv_txn_end(s, txn, MDB_RDONLY);
    if (st == ETAGKV_OK && more_out != NULL)
        *more_out = more;
    return st;
}
