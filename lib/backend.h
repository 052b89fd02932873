/*
 * backend.h -- the seam between the store's logic and its storage.  Not API.
 *
 * Above this header: argument checks, condition evaluation, batches,
 * idempotency, group commit and the public API (read.c, apply.c, idem.c,
 * commit.c, write.c, store.c).  Below it: a storage engine, chosen when
 * the store is opened: LMDB for a directory (lmdb_env.c, lmdb_txn.c,
 * lmdb_table.c, lmdb_create.c, sharing lmdb_env.h, the only header that
 * includes lmdb.h), or etcd for "etcd://ENDPOINTS/prefix" (etcd_env.c,
 * etcd_txn.c, etcd_table.c over etcd_client.c, sharing etcd_env.h).  Each
 * engine fills a struct ekv_backend_ops (below) with its versions of these
 * functions; the functions declared here are thin dispatchers through it
 * (backend.c), so nothing above the seam knows which engine it runs on.
 * docs/design.md has the etcd mapping.
 *
 * Every function returns an etagkv_status, and a failure has recorded its
 * diagnostic (ekv_fail()) on the calling thread.  The storage engine's own
 * codes never cross this line.
 */
#ifndef ETAGKV_BACKEND_H
#define ETAGKV_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

struct ekv_backend_ops;

/* The backend's state for one open store: every engine's own state
 * (struct ekv_lmdb_env, struct ekv_etcd_env) begins with this. */
struct ekv_env {
    const struct ekv_backend_ops *ops;
};

/* A transaction, on the caller's stack.  Its fields belong to the backend,
 * except that after a failed write the caller reads out_of_room and
 * conflict. */
typedef struct ekv_txn {
    struct ekv_env *env;
    void *handle;     /* the engine's transaction (LMDB: MDB_txn *) */
    size_t map_bytes; /* the room the transaction began with */
    /* A write failed only for want of room that ekv_env_grow() can add:
     * abandon the transaction, grow, and run it again. */
    int out_of_room;
    /* An optimistic commit (etcd) failed because another writer changed
     * something this transaction read: nothing was written; run the
     * transaction again from its first read, so that the conditions are
     * evaluated against the state the next commit is conditional on. */
    int conflict;
} ekv_txn;

/* Bytes owned by the backend, valid until the transaction changes or ends. */
typedef struct ekv_val {
    const void *data;
    size_t len;
} ekv_val;

/* ---- environment ----------------------------------------------------------
 */

/* Open (creating it if need be, unless opts->read_only) the store at
 * `where` with checked options (ekv_options_check()): an etcd prefix when
 * it begins with "etcd://" (etcd_env.c), else an LMDB directory
 * (lmdb_env.c); page_bytes is the system page size.  On failure *out is
 * NULL and nothing is held. */
etagkv_status ekv_env_open(const char *where, const etagkv_options *opts,
                           size_t page_bytes, struct ekv_env **out);

/* Flush and close; accepts NULL and a half-opened environment. */
void ekv_env_close(struct ekv_env *env);

/* Call fn(ctx), from a thread of the backend's, whenever a commit by some
 * other handle may have moved the store's revision (etcd: other front
 * ends on the prefix), until ekv_env_unwatch(); ETAGKV_OK doing nothing
 * when the engine has no such writers to hear of.  Unwatch accepts NULL
 * and an environment never watched. */
etagkv_status ekv_env_watch(struct ekv_env *env, void (*fn)(void *ctx),
                            void *ctx);
void ekv_env_unwatch(struct ekv_env *env);

/* Write a compacted copy of one read snapshot of the store: to fd (the
 * caller's, not flushed), or as a new store file in directory dir
 * (flushed, with dir; never overwriting one, and removed on failure).
 * ETAGKV_UNSUPPORTED on etcd (etcd's own snapshots back it up). */
etagkv_status ekv_env_copy_fd(struct ekv_env *env, int fd);
etagkv_status ekv_env_copy_dir(struct ekv_env *env, const char *dir);

/* Fill the storage figures of *out (records, idempotency_keys,
 * change_events, map_size_bytes, map_used_bytes) as seen by the read
 * transaction txn. */
etagkv_status ekv_env_stats(ekv_txn *txn, etagkv_stats *out);

/* ---- transactions ---------------------------------------------------------
 */

/* The tables, for cursors (below) and ekv_prefetch(). */
enum ekv_table {
    EKV_TABLE_RECORDS,
    EKV_TABLE_IDEMPOTENCY,
    EKV_TABLE_CHANGES,
    EKV_TABLE_LEASES
};

/* Begin a read transaction; on success end it with ekv_read_end(). */
etagkv_status ekv_read_begin(struct ekv_env *env, ekv_txn *txn);
void ekv_read_end(ekv_txn *txn);

/* Let go of everything the read transaction txn has handed up so far --
 * every pointer and cursor obtained from it becomes invalid -- while it
 * keeps its snapshot: a walk over a whole store calls it between pages so
 * that its memory stays bounded (etcd keeps what it read until the
 * transaction ends; LMDB hands up pointers into its map and holds
 * nothing, so there it does nothing). */
void ekv_read_release(ekv_txn *txn);

/* Begin a write transaction (one at a time per store; a second writer
 * waits); ETAGKV_READ_ONLY in a store opened read-only.  On success end it with
 * ekv_write_commit() or ekv_write_abort(). */
etagkv_status ekv_write_begin(struct ekv_env *env, ekv_txn *txn);
void ekv_write_abort(ekv_txn *txn);

/* End a write transaction that wrote nothing but whose reads decided
 * answers (412s, missing keys): ETAGKV_OK when what it read was the
 * store's state at some point after it began, so the answers stand;
 * otherwise, as a commit that lost, txn->conflict set and the batch is run
 * again.  An engine whose reads are of one snapshot taken at the begin
 * (LMDB) only aborts; etcd may have read some keys from what the handle
 * remembers (etcd_known.c) and compares them first.  Ends txn either
 * way. */
etagkv_status ekv_write_settle(ekv_txn *txn);

/* Say, before a write transaction's first read, what it is about to read:
 * the entry under key in table (limit 0), or up to limit entries of table
 * from key on, in key order, as a cursor seeked there walks them (key_len
 * 0: from the first), below end (end_len 0: to the table's end; a walk
 * past end reads on).  A caller that knows where its walk stops says so:
 * etcd walks a range up to its end even for a few entries.  Only a hint,
 * which changes no answer: an engine
 * whose every read is a round trip (etcd) fetches all of them with the
 * transaction's first read; LMDB ignores it.  A hint given after the
 * first read, or beyond what the engine takes into one request, costs a
 * round trip of its own: a page is read within its bounds when a cursor
 * seeks at its key, a point is read when looked up.  ETAGKV_OK or
 * ETAGKV_NO_MEMORY. */
etagkv_status ekv_prefetch(ekv_txn *txn, enum ekv_table table, const void *key,
                           size_t key_len, const void *end, size_t end_len,
                           size_t limit);

/* Operations a write transaction may still buffer before its commit is
 * more than the engine takes in one (etcd: --max-txn-ops at its default,
 * less what is buffered and the few writes the commit adds itself);
 * SIZE_MAX when the engine has no such bound (LMDB). */
size_t ekv_write_room(ekv_txn *txn);

/* 1 when every read of env is a round trip to another process (etcd), so
 * that a read made only to spare local work (ekv_op_refuse_early()) costs
 * more than it saves; 0 for LMDB. */
int ekv_env_remote(const struct ekv_env *env);

/* Commit: ETAGKV_OK once committed: visible to later transactions, and in
 * sync and nosync modes as durable as they make it.  In pipelined mode its
 * data is durable but the commit itself only once ekv_env_flush() or the
 * next commit that returns ETAGKV_OK has run (LMDB's MDB_NOMETASYNC,
 * docs/design.md, "One flush per commit").  On
 * failure nothing of the transaction is visible; a full file system is
 * ETAGKV_STORE_FULL however the engine reported it; out_of_room says
 * whether growing would help, conflict whether running the transaction
 * again would (another writer got in first); ETAGKV_OUTCOME_UNKNOWN when
 * the commit was sent and no answer came: it may or may not have been
 * applied, and must not be retried blindly. */
etagkv_status ekv_write_commit(ekv_txn *txn);

/* Make every transaction committed so far durable (one flush of the data
 * file), with no write transaction of this thread active.  ETAGKV_OK, or
 * ETAGKV_IO_ERROR (and kin) when the flush failed: then whether the
 * commits since the last successful flush survive a power loss is
 * unknown. */
etagkv_status ekv_env_flush(struct ekv_env *env);

/* Add room after a write transaction `failed` ran out of it (out_of_room),
 * with no transaction of this thread active.  ETAGKV_OK when there is now
 * more room (added by this thread or another), ETAGKV_STORE_FULL at the
 * ceiling (map_max_bytes). */
etagkv_status ekv_env_grow(struct ekv_env *env, const ekv_txn *failed);

/* ---- tables ---------------------------------------------------------------
 */

/* A step back through key's history, in read transaction txn: the record
 * of key just before the engine's position *at (0: the transaction's
 * snapshot, so its current record) into *r, and that record's own
 * position into *at, for the next step.  Records stay valid until the
 * transaction ends, several at once.  ETAGKV_NOT_FOUND when the key was
 * absent there (never written, deleted, or not yet created);
 * ETAGKV_UNSUPPORTED when the engine keeps no history (LMDB);
 * ETAGKV_COMPACTED when it has let that part go (etcd). */
etagkv_status ekv_record_before(ekv_txn *txn, const void *key, size_t key_len,
                                uint64_t *at, ekv_record *r);

/* Read and decode the record of key.  ETAGKV_OK with *r set (pointers valid
 * until the transaction changes or ends), ETAGKV_NOT_FOUND, or an error. */
etagkv_status ekv_record_get(ekv_txn *txn, const void *key, size_t key_len,
                             ekv_record *r);

/* Reserve `bytes` for key's new record; the caller encodes it at *dst
 * before the next call on txn. */
etagkv_status ekv_record_reserve(ekv_txn *txn, const void *key, size_t key_len,
                                 size_t bytes, void **dst);

/* Delete key's record (it exists). */
etagkv_status ekv_record_delete(ekv_txn *txn, const void *key, size_t key_len);

/* The store-wide revision counter (0 in a new store), and its update. */
etagkv_status ekv_revision_get(ekv_txn *txn, uint64_t *rev);
etagkv_status ekv_revision_put(ekv_txn *txn, uint64_t rev);

/* The idempotency table (idem.c owns the entries' layout): the entry of a
 * key (ETAGKV_NOT_FOUND when absent), room for a new one (encoded at *dst
 * as for ekv_record_reserve()), and the number of entries. */
etagkv_status ekv_idem_entry_get(ekv_txn *txn, const void *key, size_t key_len,
                                 ekv_val *entry);
etagkv_status ekv_idem_entry_reserve(ekv_txn *txn, const void *key,
                                     size_t key_len, size_t bytes, void **dst);
etagkv_status ekv_idem_entry_count(ekv_txn *txn, uint64_t *n);

/* The change log (changes.c owns the entries' layout and key order): room
 * for a new entry under a key that is not in the log (a revision above
 * every entry's: an engine that counts entries counts it as added without
 * looking) (encoded at *dst as for ekv_record_reserve()),
 * the number of entries, and the floor -- the highest revision whose events
 * were trimmed.  A store whose log never had a floor written (one opened
 * read-only since before the log existed) reports its revision as the
 * floor: nothing before it is in the log.  Reading and trimming walk the
 * table EKV_TABLE_CHANGES with a cursor, in key order. */
etagkv_status ekv_change_reserve(ekv_txn *txn, const void *key, size_t key_len,
                                 size_t bytes, void **dst);
etagkv_status ekv_change_count(ekv_txn *txn, uint64_t *n);
etagkv_status ekv_change_floor_get(ekv_txn *txn, uint64_t *floor);
etagkv_status ekv_change_floor_put(ekv_txn *txn, uint64_t floor);

/* The lease table (lease.c owns the entries' layout and key order: the
 * leases, their deadline index, and the links between leases and keys):
 * the entry under a key (ETAGKV_NOT_FOUND when absent), room for one
 * (encoded at *dst as for ekv_record_reserve()), and deleting one
 * (ETAGKV_NOT_FOUND when absent).  A store opened read-only that was last
 * written before leases existed has no such table: it reads as empty.
 * Walks use a cursor over EKV_TABLE_LEASES.  An etcd backend would keep
 * these entries as keys under a prefix of its own, written in the same
 * etcd transaction as the records (docs/design.md). */
etagkv_status ekv_lease_entry_get(ekv_txn *txn, const void *key, size_t key_len,
                                  ekv_val *entry);
etagkv_status ekv_lease_entry_reserve(ekv_txn *txn, const void *key,
                                      size_t key_len, size_t bytes, void **dst);
etagkv_status ekv_lease_entry_delete(ekv_txn *txn, const void *key,
                                     size_t key_len);
/* The number of lease entries (0 when the table does not exist): cheap,
 * no walk, so a write can tell that no key is linked to any lease. */
etagkv_status ekv_lease_entry_count(ekv_txn *txn, uint64_t *n);

/* A walk over a table in key order, on the caller's stack (the tables:
 * above, with ekv_prefetch()). */
typedef struct ekv_cursor {
    ekv_txn *txn;
    void *handle; /* the engine's cursor (LMDB: MDB_cursor *) */
} ekv_cursor;

/* Open a cursor; on success close it with ekv_cursor_close() before the
 * transaction ends.  ETAGKV_NOT_FOUND when the table does not exist at all
 * (the change log or the lease table of an older store opened read-only):
 * read it as empty. */
etagkv_status ekv_cursor_open(ekv_txn *txn, enum ekv_table table,
                              ekv_cursor *cur);
void ekv_cursor_close(ekv_cursor *cur);

/* Move to the first entry whose key is >= key (the very first when
 * key_len is 0), or to the next entry; ETAGKV_OK with *k and *v set, or
 * ETAGKV_NOT_FOUND past the last. */
etagkv_status ekv_cursor_seek(ekv_cursor *cur, const void *key, size_t key_len,
                              ekv_val *k, ekv_val *v);
etagkv_status ekv_cursor_next(ekv_cursor *cur, ekv_val *k, ekv_val *v);

/* Delete the entry the cursor is on (write transactions); the next
 * ekv_cursor_next() yields the entry that followed it. */
etagkv_status ekv_cursor_delete(ekv_cursor *cur);

/* ---- the engines ------------------------------------------------------------
 */

/* One engine's versions of the functions above, same meanings; `open` is
 * ekv_env_open() for that engine's form of `where`. */
struct ekv_backend_ops {
    const char *name; /* "lmdb", "etcd" */
    int remote;       /* ekv_env_remote() */
    etagkv_status (*open)(const char *where, const etagkv_options *opts,
                          size_t page_bytes, struct ekv_env **out);
    void (*close)(struct ekv_env *env);
    etagkv_status (*copy_fd)(struct ekv_env *env, int fd);
    etagkv_status (*copy_dir)(struct ekv_env *env, const char *dir);
    etagkv_status (*stats)(ekv_txn *txn, etagkv_stats *out);
    etagkv_status (*read_begin)(struct ekv_env *env, ekv_txn *txn);
    void (*read_end)(ekv_txn *txn);
    void (*read_release)(ekv_txn *txn); /* NULL: nothing to let go of */
    etagkv_status (*write_begin)(struct ekv_env *env, ekv_txn *txn);
    void (*write_abort)(ekv_txn *txn);
    etagkv_status (*write_commit)(ekv_txn *txn);
    /* NULL: write_abort, every read being of the transaction's own
     * snapshot (LMDB). */
    etagkv_status (*write_settle)(ekv_txn *txn);
    /* NULL when a commit takes any number of writes (LMDB). */
    size_t (*write_room)(ekv_txn *txn);
    /* NULL when the engine takes no hints (LMDB). */
    etagkv_status (*prefetch)(ekv_txn *txn, enum ekv_table table,
                              const void *key, size_t key_len, const void *end,
                              size_t end_len, size_t limit);
    etagkv_status (*grow)(struct ekv_env *env, const ekv_txn *failed);
    etagkv_status (*flush)(struct ekv_env *env);
    /* NULL when the engine keeps no history (LMDB). */
    etagkv_status (*record_before)(ekv_txn *txn, const void *key,
                                   size_t key_len, uint64_t *at, ekv_record *r);
    etagkv_status (*record_get)(ekv_txn *txn, const void *key, size_t key_len,
                                ekv_record *r);
    etagkv_status (*record_reserve)(ekv_txn *txn, const void *key,
                                    size_t key_len, size_t bytes, void **dst);
    etagkv_status (*record_delete)(ekv_txn *txn, const void *key,
                                   size_t key_len);
    etagkv_status (*revision_get)(ekv_txn *txn, uint64_t *rev);
    etagkv_status (*revision_put)(ekv_txn *txn, uint64_t rev);
    etagkv_status (*idem_entry_get)(ekv_txn *txn, const void *key,
                                    size_t key_len, ekv_val *entry);
    etagkv_status (*idem_entry_reserve)(ekv_txn *txn, const void *key,
                                        size_t key_len, size_t bytes,
                                        void **dst);
    etagkv_status (*idem_entry_count)(ekv_txn *txn, uint64_t *n);
    etagkv_status (*change_reserve)(ekv_txn *txn, const void *key,
                                    size_t key_len, size_t bytes, void **dst);
    etagkv_status (*change_count)(ekv_txn *txn, uint64_t *n);
    etagkv_status (*change_floor_get)(ekv_txn *txn, uint64_t *floor);
    etagkv_status (*change_floor_put)(ekv_txn *txn, uint64_t floor);
    etagkv_status (*lease_entry_get)(ekv_txn *txn, const void *key,
                                     size_t key_len, ekv_val *entry);
    etagkv_status (*lease_entry_reserve)(ekv_txn *txn, const void *key,
                                         size_t key_len, size_t bytes,
                                         void **dst);
    etagkv_status (*lease_entry_delete)(ekv_txn *txn, const void *key,
                                        size_t key_len);
    etagkv_status (*lease_entry_count)(ekv_txn *txn, uint64_t *n);
    etagkv_status (*cursor_open)(ekv_txn *txn, enum ekv_table table,
                                 ekv_cursor *cur);
    void (*cursor_close)(ekv_cursor *cur);
    etagkv_status (*cursor_seek)(ekv_cursor *cur, const void *key,
                                 size_t key_len, ekv_val *k, ekv_val *v);
    etagkv_status (*cursor_next)(ekv_cursor *cur, ekv_val *k, ekv_val *v);
    etagkv_status (*cursor_delete)(ekv_cursor *cur);
    /* NULL when the engine needs none (LMDB: every writer of a store is a
     * handle that wakes its own watchers, commit.c). */
    etagkv_status (*watch)(struct ekv_env *env, void (*fn)(void *ctx),
                           void *ctx);
    void (*unwatch)(struct ekv_env *env);
};

extern const struct ekv_backend_ops ekv_lmdb_ops; /* lmdb_env.c */
extern const struct ekv_backend_ops ekv_etcd_ops; /* etcd_env.c */

#endif /* ETAGKV_BACKEND_H */
