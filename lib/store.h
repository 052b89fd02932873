/*
 * store.h -- the store handle and its LMDB plumbing, shared by store.c
 * (lifecycle, reads) and write.c (the write path).  Not API; the only
 * internal header that includes lmdb.h.
 */
#ifndef ETAGKV_STORE_H
#define ETAGKV_STORE_H

#include <lmdb.h>
#include <pthread.h>
#include <sys/types.h>

#include "internal.h"

/* One write waiting for, or being applied by, the group committer. */
struct ekv_waiter;

struct etagkv_store {
    MDB_env *env;
    MDB_dbi records; /* key -> encoded record (record.c) */
    MDB_dbi meta;    /* LMDB's main database: format, revision */
    MDB_dbi idem;    /* idempotency key -> recorded outcome (idem.c) */
    etagkv_options opts;
    size_t page_size;

    /* Every transaction runs under resize_lock held shared; growing the map
     * takes it exclusively, because LMDB allows mdb_env_set_mapsize() only
     * while the process has no transaction active.  Writer-preferring, so
     * a steady stream of readers cannot starve a resize.  map_size is
     * written only with the lock held exclusively. */
    pthread_rwlock_t resize_lock;
    size_t map_size;

    /* Reset read-only transactions kept for reuse: mdb_txn_renew() of a
     * reset transaction keeps its reader slot and skips the reader-table
     * mutex that a fresh mdb_txn_begin() takes. */
    pthread_mutex_t pool_lock;
    MDB_txn **pool;
    size_t pool_len, pool_cap;

    /* Group commit (commit.c): writers queue here in arrival order; the
     * one at the head commits a batch for everyone queued behind it. */
    pthread_mutex_t queue_lock;
    struct ekv_waiter *queue_head, *queue_tail;
    pthread_cond_t committer_cv; /* wakes the committer thread */
    pthread_t committer;         /* leads batches headed by async writes */
    int committer_started, committer_stop; /* (queue_lock) */
    int leading;         /* a blocking writer is leading batches (queue_lock) */
    uint64_t write_txns; /* committed write transactions (queue_lock) */
    uint64_t write_ops;  /* operations that changed the store (queue_lock) */

    /* Where the incremental purge of expired idempotency keys resumes.
     * Touched only inside a write transaction, so by one thread at a
     * time, ordered by LMDB's writer lock. */
    uint8_t purge_key[ETAGKV_IDEMPOTENCY_KEY_MAX];
    size_t purge_len;

    /* The process-wide list of open stores (store.c, open_lock). */
    dev_t dev;
    ino_t ino;
    int registered;
    etagkv_store *next_open;
};

/* A put or delete, with everything computed that can be computed outside a
 * transaction; commit.c fills in the outcome. */
struct ekv_op {
    etagkv_method method; /* ETAGKV_METHOD_PUT or ETAGKV_METHOD_DELETE */
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    const char *content_type;
    size_t content_type_len;
    int keep_content_type; /* a replaced record keeps its content type */
    uint8_t hash[EKV_HASH_BYTES];
    const etagkv_cond *cond;
    const void *idem_key; /* idempotency key, or NULL */
    size_t idem_len;
    uint8_t fingerprint[EKV_HASH_BYTES]; /* of the request, with idem_key */
    etagkv_status status;                /* the outcome, once applied */
    etagkv_meta meta; /* the key's state after the operation */
    int wrote;        /* the operation changed a record */
    int dirty;        /* the transaction must commit for this op */
    int replayed;     /* the outcome is a recorded one (idem.c) */
    int recorded;     /* its outcome was recorded under idem_key */
    char detail[128]; /* diagnostic of a failure */
};

/* idem.c, all inside a write transaction; each returns an LMDB code. */
int ekv_idem_check(etagkv_store *s, MDB_txn *txn, struct ekv_op *op,
                   int *handled);
int ekv_idem_record(etagkv_store *s, MDB_txn *txn, const struct ekv_op *op);
int ekv_idem_purge(etagkv_store *s, MDB_txn *txn, size_t look, size_t drop);
int ekv_idem_maintain(etagkv_store *s, MDB_txn *txn, size_t recorded);

/* An asynchronous write: its op and its completion (commit.c). */
struct ekv_async;
struct ekv_async *ekv_async_new(etagkv_done_fn fn, void *ctx);
struct ekv_op *ekv_async_op(struct ekv_async *a);
void ekv_async_free(struct ekv_async *a);

/* Queue a prepared asynchronous write; its callback will be called once.
 * Returns ETAGKV_OK, or ETAGKV_NO_MEMORY when the committer thread cannot
 * be started (then a is still the caller's). */
etagkv_status ekv_commit_async(etagkv_store *s, struct ekv_async *a);

/* Complete every queued asynchronous write and stop the committer thread
 * (etagkv_store_close()). */
void ekv_commit_shutdown(etagkv_store *s);

/* Apply op durably: evaluated and written in a write transaction, batched
 * with concurrent writers, acknowledged (returned) only after its
 * transaction has committed in the store's sync mode.  Returns op->status.
 * Must be called with no transaction of this thread active. */
etagkv_status ekv_commit(etagkv_store *s, struct ekv_op *op);

/* Map an LMDB or errno code to a status, recording `what` and the code's
 * text as this thread's diagnostic. */
etagkv_status ekv_mdb_status(int rc, const char *what);

/* The status for a write transaction that failed with LMDB code rc: as
 * ekv_mdb_status(), except that a full file system is ETAGKV_STORE_FULL
 * however LMDB reported it. */
etagkv_status ekv_write_status(etagkv_store *s, int rc);

/* Check a key's length (and pointer); ETAGKV_OK or the status to return. */
etagkv_status ekv_check_key(const void *key, size_t key_len);

/* Begin a transaction (flags 0 or MDB_RDONLY) with resize_lock held shared;
 * handles MDB_MAP_RESIZED (another process grew the map).  On success the
 * caller ends it with ekv_txn_end(); on failure the lock is not held. */
etagkv_status ekv_txn_begin(etagkv_store *s, unsigned flags, MDB_txn **txn);

/* End txn without committing: a read-only one (flags MDB_RDONLY) is reset
 * and pooled, a write one aborted.  Releases the lock. */
void ekv_txn_end(etagkv_store *s, MDB_txn *txn, unsigned flags);

/* Commit a write txn and release the lock; returns mdb_txn_commit()'s code
 * so that the caller can grow the map on MDB_MAP_FULL and retry. */
int ekv_txn_commit(etagkv_store *s, MDB_txn *txn);

/* The map size, for a caller holding a transaction (the lock is held). */
size_t ekv_map_size(etagkv_store *s);

/* Grow the map after MDB_MAP_FULL seen with map size `seen` (no
 * transaction of this thread active).  ETAGKV_OK when the map is now larger
 * (by this thread or another), ETAGKV_STORE_FULL at the ceiling. */
etagkv_status ekv_grow(etagkv_store *s, size_t seen);

/* Read and decode the record of key in txn.  ETAGKV_OK with *r set
 * (pointers into the map, valid until the txn changes or ends),
 * ETAGKV_NOT_FOUND, or an error. */
etagkv_status ekv_record_get(etagkv_store *s, MDB_txn *txn, const void *key,
                             size_t key_len, ekv_record *r);

/* The store's revision counter as seen by txn. */
etagkv_status ekv_revision_get(etagkv_store *s, MDB_txn *txn, uint64_t *rev);

/* Store rev as the revision counter in txn; returns mdb_put()'s code. */
int ekv_revision_put(etagkv_store *s, MDB_txn *txn, uint64_t rev);

/* Wall clock, through the store's clock option. */
uint64_t ekv_now_ns(const etagkv_store *s);

/* create.c: right after mdb_env_open() of directory dir succeeded, make a
 * new store (one that never committed a transaction) durable: flush its
 * meta pages, then fsync dir and dir's parent.  ETAGKV_OK (also for an
 * existing store, untouched), or the status of the failed step. */
etagkv_status ekv_create_durable(MDB_env *env, const char *dir);

/* create.c: after mdb_env_open() of dir refused data.mdb (MDB_INVALID),
 * ETAGKV_TORN_STORE, with a diagnostic, if the file holds nothing but what
 * creating a store writes before its first commit; otherwise ETAGKV_OK
 * (the file holds something else: not for this function to name). */
etagkv_status ekv_torn_store(const char *dir);

#endif /* ETAGKV_STORE_H */
