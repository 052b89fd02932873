/*
 * lmdb_env.h -- the LMDB backend's state, shared by its files (lmdb_env.c,
 * lmdb_txn.c, lmdb_table.c, lmdb_create.c).  Not API; the only header in lib/
 * that includes lmdb.h.
 *
 * Layout of the environment: the named database "records" maps each key to
 * its encoded record (record.c); "idempotency" maps an idempotency key to
 * its entry (idem.c); "changes" is the change log, (revision, sequence) ->
 * event (changes.c); "leases" holds the leases and their links to keys
 * (lease.c); LMDB's main database holds, next to the entries for
 * those three, the format marker, the store-wide revision counter and the
 * change log's floor.
 * Keeping the counter there costs no extra page per commit: the main
 * database's page is rewritten by every commit anyway, because it holds the
 * root of "records".
 */
#ifndef ETAGKV_LMDB_ENV_H
#define ETAGKV_LMDB_ENV_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "backend.h"

/* Reset read-only transactions kept for reuse (lmdb_txn.c): mdb_txn_renew()
 * of a reset transaction keeps its reader slot and skips the reader-table
 * mutex that a fresh mdb_txn_begin() takes. */
#define EKV_READER_SLOTS 8
struct ekv_readers {
    /* Lock-free slots first: a thread takes and gives back the reset
     * transaction of "its" slot (one of them, picked per thread) with one
     * atomic exchange each; the locked pool holds the rest. */
    _Atomic(MDB_txn *) slot[EKV_READER_SLOTS];
    size_t n_slots; /* slots in use: at most the pool's capacity */
    pthread_mutex_t lock;
    MDB_txn **pool; /* NULL until ekv_readers_init() succeeded */
    size_t len, cap;
};

/* The map and the lock that guards its size (lmdb_txn.c).  Every
 * transaction runs under resize_lock held shared; growing the map takes it
 * exclusively, because LMDB allows mdb_env_set_mapsize() only while the
 * process has no transaction active.  Writer-preferring, so a steady
 * stream of readers cannot starve a resize.  map_bytes is written only
 * with the lock held exclusively. */
struct ekv_map {
    pthread_rwlock_t resize_lock;
    int ready; /* resize_lock initialised */
    size_t map_bytes;
    size_t max_bytes;
    /* A remap failed after LMDB had unmapped the old map: LMDB holds no
     * map, and every transaction would fault, so none begins. */
    int broken;
};

/* What every call on a broken map (ekv_map.broken) answers. */
static inline etagkv_status ekv_map_lost(void)
{
    return ekv_fail(ETAGKV_NO_MEMORY,
                    "the store lost its memory map when growing it failed: "
                    "close it and open it again");
}

struct ekv_lmdb_env {
    struct ekv_env base; /* first: the seam's handle (backend.h) */
    MDB_env *mdb;
    MDB_dbi records; /* key -> encoded record (record.c) */
    MDB_dbi main;    /* LMDB's main database: format, revision */
    MDB_dbi idem;    /* idempotency key -> recorded outcome (idem.c) */
    MDB_dbi changes; /* revision, sequence -> event (changes.c) */
    MDB_dbi leases;  /* leases, deadlines and key links (lease.c) */
    size_t page_bytes;
    int read_only; /* MDB_RDONLY: ekv_write_begin() refuses */
    /* A store last written before the change log existed, opened
     * read-only: there is no "changes" database to open, and its log is
     * empty up to the store's revision (its floor). */
    int changes_absent;
    int leases_absent; /* likewise, a store from before leases */
    struct ekv_map map;
    struct ekv_readers readers;
    struct ekv_registration registration; /* registry.c */
};

/* The LMDB state behind the seam's handle. */
static inline struct ekv_lmdb_env *ekv_lmdb_of(struct ekv_env *env)
{
    return (struct ekv_lmdb_env *)(void *)env;
}

/* The engine's versions of backend.h's functions, gathered in ekv_lmdb_ops
 * (lmdb_env.c). */
etagkv_status ekv_lmdb_env_open(const char *dir, const etagkv_options *opts,
                                size_t page_bytes, struct ekv_env **out);
void ekv_lmdb_env_close(struct ekv_env *env);
etagkv_status ekv_lmdb_env_copy_fd(struct ekv_env *env, int fd);
etagkv_status ekv_lmdb_env_copy_dir(struct ekv_env *env, const char *dir);
etagkv_status ekv_lmdb_env_stats(ekv_txn *txn, etagkv_stats *out);
etagkv_status ekv_lmdb_read_begin(struct ekv_env *env, ekv_txn *txn);
void ekv_lmdb_read_end(ekv_txn *txn);
etagkv_status ekv_lmdb_write_begin(struct ekv_env *env, ekv_txn *txn);
void ekv_lmdb_write_abort(ekv_txn *txn);
etagkv_status ekv_lmdb_write_commit(ekv_txn *txn);
etagkv_status ekv_lmdb_env_grow(struct ekv_env *env, const ekv_txn *failed);
etagkv_status ekv_lmdb_env_flush(struct ekv_env *env);
etagkv_status ekv_lmdb_record_get(ekv_txn *txn, const void *key, size_t key_len,
                                  ekv_record *r);
etagkv_status ekv_lmdb_record_reserve(ekv_txn *txn, const void *key,
                                      size_t key_len, size_t bytes, void **dst);
etagkv_status ekv_lmdb_record_delete(ekv_txn *txn, const void *key,
                                     size_t key_len);
etagkv_status ekv_lmdb_revision_get(ekv_txn *txn, uint64_t *rev);
etagkv_status ekv_lmdb_revision_put(ekv_txn *txn, uint64_t rev);
etagkv_status ekv_lmdb_idem_entry_get(ekv_txn *txn, const void *key,
                                      size_t key_len, ekv_val *entry);
etagkv_status ekv_lmdb_idem_entry_reserve(ekv_txn *txn, const void *key,
                                          size_t key_len, size_t bytes,
                                          void **dst);
etagkv_status ekv_lmdb_idem_entry_count(ekv_txn *txn, uint64_t *n);
etagkv_status ekv_lmdb_change_reserve(ekv_txn *txn, const void *key,
                                      size_t key_len, size_t bytes, void **dst);
etagkv_status ekv_lmdb_change_count(ekv_txn *txn, uint64_t *n);
etagkv_status ekv_lmdb_change_floor_get(ekv_txn *txn, uint64_t *floor);
etagkv_status ekv_lmdb_change_floor_put(ekv_txn *txn, uint64_t floor);
etagkv_status ekv_lmdb_lease_entry_get(ekv_txn *txn, const void *key,
                                       size_t key_len, ekv_val *entry);
etagkv_status ekv_lmdb_lease_entry_reserve(ekv_txn *txn, const void *key,
                                           size_t key_len, size_t bytes,
                                           void **dst);
etagkv_status ekv_lmdb_lease_entry_delete(ekv_txn *txn, const void *key,
                                          size_t key_len);
etagkv_status ekv_lmdb_lease_entry_count(ekv_txn *txn, uint64_t *n);
etagkv_status ekv_lmdb_cursor_open(ekv_txn *txn, enum ekv_table table,
                                   ekv_cursor *cur);
void ekv_lmdb_cursor_close(ekv_cursor *cur);
etagkv_status ekv_lmdb_cursor_seek(ekv_cursor *cur, const void *key,
                                   size_t key_len, ekv_val *k, ekv_val *v);
etagkv_status ekv_lmdb_cursor_next(ekv_cursor *cur, ekv_val *k, ekv_val *v);
etagkv_status ekv_lmdb_cursor_delete(ekv_cursor *cur);

/* Where the change log's floor lives in the main database. */
#define EKV_CHANGES_FLOOR_KEY "etagkv.changes_floor"

/* THE mapping of an LMDB or errno code to a status (lmdb_env.c). */
etagkv_status ekv_mdb_map(int rc);

/* ekv_mdb_map(rc), recording `what` and the code's text as this thread's
 * diagnostic. */
etagkv_status ekv_mdb_status(int rc, const char *what);

/* The status for a write transaction whose commit failed with rc: as
 * ekv_mdb_status(), except that a full file system is ETAGKV_STORE_FULL
 * however LMDB reported it (lmdb_env.c). */
etagkv_status ekv_mdb_commit_status(struct ekv_lmdb_env *env, int rc);

/* The map and the reader pool, each initialised all or nothing and shut
 * down whatever state it is in (lmdb_txn.c). */
etagkv_status ekv_map_init(struct ekv_map *m, size_t max_bytes);
void ekv_map_shutdown(struct ekv_map *m);
etagkv_status ekv_readers_init(struct ekv_readers *r, size_t cap);
void ekv_readers_shutdown(struct ekv_readers *r);

/* lmdb_create.c: right after mdb_env_open() of directory dir succeeded,
 * make a new store (one that never committed a transaction) durable: flush
 * its meta pages, then fsync dir and dir's parent.  ETAGKV_OK (also for an
 * existing store, untouched), or the status of the failed step. */
etagkv_status ekv_create_durable(MDB_env *env, const char *dir);

/* lmdb_create.c: fsync the directory at path (a file system that cannot
 * sync a directory is not an error). */
etagkv_status ekv_sync_dir(const char *path);

/* lmdb_create.c: after mdb_env_open() of dir refused data.mdb
 * (MDB_INVALID), ETAGKV_TORN_STORE, with a diagnostic, if the file holds
 * nothing but what creating a store writes before its first commit;
 * otherwise ETAGKV_OK (the file holds something else: not for this
 * function to name). */
etagkv_status ekv_torn_store(const char *dir);

#endif /* ETAGKV_LMDB_ENV_H */
