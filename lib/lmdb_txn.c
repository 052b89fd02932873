/*
 * lmdb_txn.c -- the LMDB backend's transactions: the resize lock every
 * transaction holds shared, the pool of reset read transactions, commit,
 * and map growth.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np: writer preference */
#include <errno.h>
#include <sys/mman.h>
#include <stdlib.h>

#include "lmdb_env.h"

/* ---- the map ------------------------------------------------------------- */

etagkv_status ekv_map_init(struct ekv_map *m, size_t max_bytes)
{
    pthread_rwlockattr_t attr;
    int rc;

    m->max_bytes = max_bytes;
    if (pthread_rwlockattr_init(&attr) != 0)
        return ETAGKV_NO_MEMORY;
    (void)pthread_rwlockattr_setkind_np(
        &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    rc = pthread_rwlock_init(&m->resize_lock, &attr);
    (void)pthread_rwlockattr_destroy(&attr);
    if (rc != 0)
        return ETAGKV_NO_MEMORY;
    m->ready = 1;
    return ETAGKV_OK;
}

void ekv_map_shutdown(struct ekv_map *m)
{
    if (m->ready)
        (void)pthread_rwlock_destroy(&m->resize_lock);
    m->ready = 0;
}

/* Adopt a map grown by another process (MDB_MAP_RESIZED): LMDB asks for
 * mdb_env_set_mapsize(env, 0) with no transaction active. */
static etagkv_status adopt_resize(struct ekv_lmdb_env *env)
{
    MDB_envinfo info;
    int rc;

    (void)pthread_rwlock_wrlock(&env->map.resize_lock);
    rc = mdb_env_set_mapsize(env->mdb, 0);
    if (rc != 0 && rc != EINVAL)
        env->map.broken = 1; /* it unmaps first; EINVAL: before that */
    if (rc == 0)
        rc = mdb_env_info(env->mdb, &info);
    if (rc == 0)
        env->map.map_bytes = info.me_mapsize;
    (void)pthread_rwlock_unlock(&env->map.resize_lock);
    return rc == 0 ? ETAGKV_OK : ekv_mdb_status(rc, "mdb_env_set_mapsize");
}

/* 1 if bytes of address space can be mapped now.  mdb_env_set_mapsize()
 * unmaps the old map before it maps the new one, and if that mmap fails
 * (RLIMIT_AS, a full address space) LMDB is left with no map at all; so
 * the new size is tried first, beside the old map, which asks for more
 * than LMDB will. */
static int can_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

    if (p == MAP_FAILED)
        return 0;
    (void)munmap(p, bytes);
    return 1;
}

etagkv_status ekv_lmdb_env_grow(struct ekv_env *base, const ekv_txn *failed)
{
    struct ekv_lmdb_env *env = ekv_lmdb_of(base);
    struct ekv_map *m = &env->map;
    size_t seen = failed->map_bytes, max = m->max_bytes;
    etagkv_status st = ETAGKV_OK;

    (void)pthread_rwlock_wrlock(&m->resize_lock);
    if (m->map_bytes == seen) {
        if (seen >= max) {
            st = ekv_fail(ETAGKV_STORE_FULL,
                          "map size ceiling of %zu bytes reached", max);
        } else {
            size_t want = seen <= max / 2 ? seen * 2 : max;
            int rc = can_map(want) ? mdb_env_set_mapsize(env->mdb, want) : -1;

            if (rc == 0) {
                m->map_bytes = want;
            } else if (rc == -1) {
                st = ekv_fail(ETAGKV_STORE_FULL,
                              "the map cannot grow from %zu to %zu bytes: the "
                              "process has no room for it (ulimit -v?)",
                              seen, want);
            } else {
                m->broken = 1;
                st = ekv_mdb_status(rc, "mdb_env_set_mapsize");
            }
        }
    }
    (void)pthread_rwlock_unlock(&m->resize_lock);
    return st;
}

/* ---- the reader pool ----------------------------------------------------- */

etagkv_status ekv_readers_init(struct ekv_readers *r, size_t cap)
{
    r->n_slots = cap < EKV_READER_SLOTS ? cap : EKV_READER_SLOTS;
    cap -= r->n_slots;
    for (size_t i = 0; i < EKV_READER_SLOTS; i++)
        atomic_init(&r->slot[i], NULL);
    if (pthread_mutex_init(&r->lock, NULL) != 0)
        return ETAGKV_NO_MEMORY;
    r->pool = calloc(cap > 0 ? cap : 1, sizeof(*r->pool));
    if (r->pool == NULL) {
        (void)pthread_mutex_destroy(&r->lock);
        return ETAGKV_NO_MEMORY;
    }
    r->len = 0;
    r->cap = cap;
    return ETAGKV_OK;
}

void ekv_readers_shutdown(struct ekv_readers *r)
{
    if (r->pool == NULL)
        return;
    for (size_t i = 0; i < r->n_slots; i++) {
        MDB_txn *t = atomic_exchange(&r->slot[i], NULL);

        if (t != NULL)
            mdb_txn_abort(t);
    }
    for (size_t i = 0; i < r->len; i++)
        mdb_txn_abort(r->pool[i]);
    (void)pthread_mutex_destroy(&r->lock);
    free(r->pool);
    r->pool = NULL;
    r->len = r->cap = 0;
}

/* The slot of the calling thread: threads are dealt slots in turn, once. */
static _Atomic unsigned next_slot;
static _Thread_local unsigned my_slot_plus_one;

static _Atomic(MDB_txn *) *my_slot(struct ekv_readers *r)
{
    if (r->n_slots == 0)
        return NULL;
    if (my_slot_plus_one == 0)
        my_slot_plus_one =
            atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed) + 1;
    return &r->slot[(my_slot_plus_one - 1) % r->n_slots];
}

static MDB_txn *pool_take(struct ekv_readers *r)
{
    _Atomic(MDB_txn *) *slot = my_slot(r);
    MDB_txn *txn = NULL;

    if (slot != NULL) {
        /* Acquire: the giver's reset happens before our renew. */
        txn = atomic_exchange_explicit(slot, NULL, memory_order_acquire);
        if (txn != NULL)
            return txn;
    }
    (void)pthread_mutex_lock(&r->lock);
    if (r->len > 0)
        txn = r->pool[--r->len];
    (void)pthread_mutex_unlock(&r->lock);
    return txn;
}

/* Keep a read transaction, reset, for reuse: in the thread's slot if it
 * is empty, else in the pool; abort it if the pool is full. */
static void pool_give(struct ekv_readers *r, MDB_txn *txn)
{
    _Atomic(MDB_txn *) *slot = my_slot(r);
    MDB_txn *empty = NULL;

    mdb_txn_reset(txn);
    /* Release: the reset happens before the next taker's renew. */
    if (slot != NULL &&
        atomic_compare_exchange_strong_explicit(
            slot, &empty, txn, memory_order_release, memory_order_relaxed))
        return;
    (void)pthread_mutex_lock(&r->lock);
    if (r->len < r->cap) {
        r->pool[r->len++] = txn;
        txn = NULL;
    }
    (void)pthread_mutex_unlock(&r->lock);
    if (txn != NULL)
        mdb_txn_abort(txn);
}

/* ---- transactions -------------------------------------------------------- */

/* With resize_lock held shared: a pooled read transaction renewed, or a new
 * one.  Returns an LMDB code. */
static int begin_locked(struct ekv_lmdb_env *env, unsigned flags, MDB_txn **txn)
{
    int rc;

    if (flags & MDB_RDONLY) {
        MDB_txn *t = pool_take(&env->readers);

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
    return mdb_txn_begin(env->mdb, NULL, flags, txn);
}

/* Begin a transaction with resize_lock held shared, adopting a map that
 * another process grew (MDB_MAP_RESIZED).  On failure the lock is not
 * held. */
static etagkv_status begin(struct ekv_lmdb_env *env, unsigned flags,
                           ekv_txn *txn)
{
    txn->env = &env->base;
    txn->out_of_room = 0;
    txn->conflict = 0;
    for (;;) {
        MDB_txn *t;
        int rc;
        etagkv_status st;

        (void)pthread_rwlock_rdlock(&env->map.resize_lock);
        if (env->map.broken) {
            (void)pthread_rwlock_unlock(&env->map.resize_lock);
            return ekv_map_lost();
        }
        rc = begin_locked(env, flags, &t);
        if (rc == 0) {
            txn->handle = t;
            /* Stable while the lock is held shared. */
            txn->map_bytes = env->map.map_bytes;
            return ETAGKV_OK;
        }
        (void)pthread_rwlock_unlock(&env->map.resize_lock);
        if (rc != MDB_MAP_RESIZED)
            return ekv_mdb_status(rc, "mdb_txn_begin");
        st = adopt_resize(env);
        if (st != ETAGKV_OK)
            return st;
    }
}

etagkv_status ekv_lmdb_read_begin(struct ekv_env *env, ekv_txn *txn)
{
    return begin(ekv_lmdb_of(env), MDB_RDONLY, txn);
}

void ekv_lmdb_read_end(ekv_txn *txn)
{
    pool_give(&ekv_lmdb_of(txn->env)->readers, txn->handle);
    (void)pthread_rwlock_unlock(&ekv_lmdb_of(txn->env)->map.resize_lock);
}

etagkv_status ekv_lmdb_write_begin(struct ekv_env *base, ekv_txn *txn)
{
    struct ekv_lmdb_env *env = ekv_lmdb_of(base);

    if (env->read_only)
        return ekv_fail(ETAGKV_READ_ONLY, "the store was opened read-only");
    return begin(env, 0, txn);
}

void ekv_lmdb_write_abort(ekv_txn *txn)
{
    mdb_txn_abort(txn->handle);
    (void)pthread_rwlock_unlock(&ekv_lmdb_of(txn->env)->map.resize_lock);
}

etagkv_status ekv_lmdb_write_commit(ekv_txn *txn)
{
    int rc = mdb_txn_commit(txn->handle);

    (void)pthread_rwlock_unlock(&ekv_lmdb_of(txn->env)->map.resize_lock);
    if (rc == 0)
        return ETAGKV_OK;
    txn->out_of_room = rc == MDB_MAP_FULL;
    return ekv_mdb_commit_status(ekv_lmdb_of(txn->env), rc);
}

etagkv_status ekv_lmdb_env_flush(struct ekv_env *env)
{
    /* fdatasync() of the data file: the meta pages that commits since the
     * last flush wrote without syncing (MDB_NOMETASYNC) reach the disk
     * with it.  LMDB's writer lock is not needed (mdb_env_sync()). */
    int rc = mdb_env_sync(ekv_lmdb_of(env)->mdb, 1);

    return rc == 0 ? ETAGKV_OK : ekv_mdb_status(rc, "mdb_env_sync");
}
