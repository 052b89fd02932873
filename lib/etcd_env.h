/*
 * etcd_env.h -- the etcd backend's state, shared by its files (etcd_env.c:
 * open, close, statistics; etcd_txn.c: transactions, their read and write
 * sets, commit; etcd_table.c: the tables and cursors; etcd_client.c: the
 * transport).  Not API; the only header in lib/ that includes jansson.h.
 *
 * Layout under the user's prefix P (docs/design.md): every table of the
 * LMDB backend is a key prefix, and the entries' bytes are the same as
 * there (record.c, idem.c, changes.c, lease.c own them):
 *
 *   P/r/<key>        a record
 *   P/i/<key>        an idempotency entry
 *   P/c/<key>        a change log entry (revision, sequence: big-endian)
 *   P/l/<key>        a lease table entry
 *   P/m/format       "etagkv/1"
 *   P/m/revision     the store revision, u64 little-endian
 *   P/m/floor        the change log's floor, u64 little-endian
 *   P/m/count/i      the number of entries under P/i/, u64 little-endian
 *   P/m/count/c      ... under P/c/
 *   P/m/count/l      ... under P/l/
 *
 * The counts are counters because etcd (3.4, 3.5) counts a range by
 * walking every key of it, deleted ones too until it compacts: a count per
 * commit cost etcd work proportional to the table.  Every write
 * transaction that changes a counted table reads its counter (the first
 * read brings them) and writes it in the commit with the entries, so the
 * compare on it keeps two front ends exact.  A store written before the
 * counters has none: the first transaction that needs one counts the
 * table once and writes it (etcd_table.c).
 *
 * The store revision is our own counter, not etcd's: every layer above the
 * seam works unchanged, and one etagkv revision is one etcd Txn that also
 * writes the change log.  Every write transaction reads the counter and
 * every one that changes a record writes it, so two of them on one prefix
 * always conflict: writers are serialised by etcd's compare, as LMDB's
 * writer lock serialises them in one file.
 */
#ifndef ETAGKV_ETCD_ENV_H
#define ETAGKV_ETCD_ENV_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "base64.h"
#include "backend.h"

/* ---- etcd_client.c ---------------------------------------------------------
 */

struct ekv_etcd_client;

/* A client for the comma-separated HOST:PORT list endpoints[0..len), whose
 * requests time out after timeout_ms (0: the default, 15 s).
 * ETAGKV_INVALID_ARGUMENT for a malformed list; *out NULL on failure. */
etagkv_status ekv_etcd_client_new(const char *endpoints, size_t len,
                                  long timeout_ms,
                                  struct ekv_etcd_client **out);
void ekv_etcd_client_free(struct ekv_etcd_client *c);

/* POST req (not consumed) to the gateway's path ("/v3/kv/range") and parse
 * the 200 answer into *reply (the caller's, json_decref).  write: the
 * request changes the cluster, so a request sent without an answer is
 * ETAGKV_OUTCOME_UNKNOWN instead of being sent again.  Other failures:
 * ETAGKV_UNAVAILABLE (no member reachable or answering), ETAGKV_COMPACTED,
 * ETAGKV_TXN_TOO_LARGE (etcd's request limits), ETAGKV_IO_ERROR. */
etagkv_status ekv_etcd_call(struct ekv_etcd_client *c, const char *path,
                            json_t *req, int write, json_t **reply);

/* The Range req (not consumed; one key, no revision: a linearizable read
 * at the latest revision), answered in *reply as ekv_etcd_call() would,
 * its header's revision included.  Reads asked for while
 * EKV_ETCD_READS_ON_THE_WAY are on their way to etcd wait for one of them
 * to return, then go together as one read-only Txn (etcd_client.c says
 * why that is as linearizable as going alone). */
etagkv_status ekv_etcd_read(struct ekv_etcd_client *c, json_t *req,
                            json_t **reply);

/* Reads on their way to etcd at once before more wait for one of them. */
#define EKV_ETCD_READS_ON_THE_WAY 4

/* Reads waiting for one on its way, and reads on their way (for the
 * tests). */
void ekv_etcd_reads_count(struct ekv_etcd_client *c, size_t *waiting,
                          size_t *on_their_way);

/* The number of endpoints, and the i-th as "http://host:port". */
size_t ekv_etcd_endpoint_count(const struct ekv_etcd_client *c);
const char *ekv_etcd_endpoint(const struct ekv_etcd_client *c, size_t i);

/* An int64 field of the gateway's JSON (a string or a number; absent 0). */
int64_t ekv_etcd_int(const json_t *j);

/* obj[field] = base64 of data[0..len).  ETAGKV_OK or ETAGKV_NO_MEMORY. */
etagkv_status ekv_etcd_set_bytes(json_t *obj, const char *field,
                                 const void *data, size_t len);

/* ekv_base64_decode() of the NUL-terminated s (base64.h), as a status:
 * ETAGKV_CORRUPT for invalid input, ETAGKV_NO_MEMORY. */
etagkv_status ekv_b64_decode(const char *s, uint8_t **out, size_t *len);

/* ---- what the handle's write transactions last saw (etcd_known.c) ---------
 */

struct ekv_etcd_known;

struct ekv_etcd_known_item {
    const char *key; /* the full etcd key */
    size_t key_len;
    const uint8_t *val;
    size_t val_len;
    int present;
    int64_t mod_revision; /* 0 when absent */
};

etagkv_status ekv_etcd_known_new(struct ekv_etcd_known **out);
void ekv_etcd_known_free(struct ekv_etcd_known *k); /* accepts NULL */

/* key's entry (valid until the next put, forget or clear), or NULL. */
const struct ekv_etcd_known_item *
ekv_etcd_known_get(struct ekv_etcd_known *k, const char *key, size_t key_len);

/* Remember key's state (a value too large, or no memory: forget it). */
void ekv_etcd_known_put(struct ekv_etcd_known *k, const char *key,
                        size_t key_len, const void *val, size_t val_len,
                        int present, int64_t mod_revision);
void ekv_etcd_known_forget(struct ekv_etcd_known *k, const char *key,
                           size_t key_len);
void ekv_etcd_known_clear(struct ekv_etcd_known *k); /* accepts NULL */

/* The keys remembered, and in *bytes the memory they take. */
size_t ekv_etcd_known_count(const struct ekv_etcd_known *k, size_t *bytes);

/* The bounds (etcd_known.c). */
#define EKV_ETCD_KNOWN_MAX_ENTRIES 65536
#define EKV_ETCD_KNOWN_MAX_BYTES ((size_t)64 << 20)
#define EKV_ETCD_KNOWN_VAL_MAX ((size_t)64 << 10)

/* ---- the environment (etcd_env.c) ------------------------------------------
 */

struct ekv_etcd_watch;

struct ekv_etcd_env {
    struct ekv_env base; /* first: the seam's handle (backend.h) */
    struct ekv_etcd_client *client;
    struct ekv_etcd_watch *watch; /* etcd_watch.c; NULL when not started */
    char *prefix;                 /* P, without a trailing '/' */
    size_t prefix_len;
    int read_only;
    /* Held from ekv_write_begin() to commit or abort: one write
     * transaction at a time in this process, as with LMDB, because the
     * layers above touch per-store state inside it (changes.c, idem.c). */
    pthread_mutex_t write_lock;
    int lock_ready;
    /* Under write_lock: what this handle's commits left (etcd_txn.c takes
     * from it while known_skip is 0).  After a commit that lost on a
     * remembered key (another writer on the prefix), the next known_skip
     * write transactions read afresh, as many as known_backoff says,
     * which doubles at each such loss in a row up to KNOWN_BACKOFF_MAX:
     * two front ends on one prefix always conflict on P/m/revision, and a
     * lost write Txn costs etcd a Raft round where a read costs a read. */
    struct ekv_etcd_known *known;
    unsigned known_skip, known_backoff;
};

static inline struct ekv_etcd_env *ekv_etcd_of(struct ekv_env *env)
{
    return (struct ekv_etcd_env *)(void *)env;
}

/* The tables' one-letter names in the layout above; EKV_ETCD_META is the
 * counters and the format marker. */
#define EKV_ETCD_META 'm'
/* The store revision's name in that table: P/m/revision. */
#define EKV_ETCD_REVISION_NAME "revision"
char ekv_etcd_table_letter(enum ekv_table table);

/* ---- wake-ups from other writers (etcd_watch.c) ---------------------------
 */

/* Call fn(ctx) from a thread of its own whenever the store revision may
 * have moved (a commit by any handle or process on the prefix), until
 * ekv_etcd_watch_stop(). */
etagkv_status ekv_etcd_watch_start(struct ekv_env *env, void (*fn)(void *),
                                   void *ctx);
void ekv_etcd_watch_stop(struct ekv_env *env);

/* ---- transactions (etcd_txn.c) ---------------------------------------------
 */

/* A key's state as a transaction sees it: in its read set (what etcd held
 * at the pinned revision; present 0 = absent, mod_revision 0) or its write
 * set (present 0 = a buffered delete). */
struct ekv_etcd_item {
    char *key; /* the full etcd key, P/t/... */
    size_t key_len;
    uint8_t *val;
    size_t val_len;
    int present;
    int64_t mod_revision;
};

struct ekv_etcd_set {
    struct ekv_etcd_item *v; /* sorted by key */
    size_t n, cap;
};

/* A read announced before a write transaction's first read
 * (ekv_etcd_prefetch()), and what the first read found: a point (limit 0),
 * whose answer goes to the transaction's cache, or a page of a table from
 * key on, which a cursor seeked at key uses instead of asking etcd.  A
 * page announced later is read when a cursor seeks at its key
 * (ekv_etcd_page()). */
struct ekv_etcd_hint {
    char *key; /* the full etcd key, P/t/... */
    size_t key_len;
    char *end; /* a page below this full key (NULL: the table's end) */
    size_t end_len;
    size_t limit;
    int fetched; /* answered by the first read: the page below is valid */
    struct ekv_etcd_item *page;
    size_t n;
    int more;
};

/* The engine's transaction (ekv_txn.handle). */
struct ekv_etcd_txn {
    int write;
    int64_t revision; /* etcd's, pinned by the first read; 0 before */
    struct ekv_etcd_set reads, writes;
    /* Points fetched by the first read on a hint and not read since: a
     * lookup moves its item to the read set, so that the commit compares
     * only what the transaction really read. */
    struct ekv_etcd_set cache;
    struct ekv_etcd_hint *hints;
    size_t n_hints, cap_hints;
    /* Per table, its entries at the pinned revision, before this
     * transaction's writes: the counter's value, or etcd's count when
     * there is no counter (uncounted 1: the commit writes one); -1 not
     * read yet. */
    int64_t counts[4];
    int uncounted[4];
    /* The store revision as the transaction last read it (the change
     * log's cursors read in windows below it, etcd_table.c). */
    uint64_t store_revision;
    int store_revision_known;
    /* A write transaction that may take keys from env->known, and how
     * many its read set holds from there. */
    int use_known;
    size_t n_known;
    /* A cursor found a key in etcd otherwise than the read set had it
     * from the handle's memory: the commit is lost (etcd_txn.c). */
    int torn;
    void **blocks; /* everything allocated for the transaction */
    size_t n_blocks, cap_blocks;
};

static inline struct ekv_etcd_txn *ekv_etcd_txn_of(const ekv_txn *txn)
{
    return txn->handle;
}

/* Memory that lives until the transaction ends (the pointers handed up
 * through backend.h stay valid that long); NULL without memory. */
void *ekv_etcd_alloc(struct ekv_etcd_txn *t, size_t bytes);

/* The full key P/<letter>/<key> in transaction memory. */
etagkv_status ekv_etcd_key(ekv_txn *txn, char letter, const void *key,
                           size_t key_len, char **out, size_t *out_len);

/* The item of full key k as the transaction sees it: its own buffered
 * write, else what etcd holds at the pinned revision (read once, then
 * remembered in the read set, whose mod_revision the commit compares). */
etagkv_status ekv_etcd_lookup(ekv_txn *txn, const char *k, size_t k_len,
                              const struct ekv_etcd_item **out);

/* [*start, *end): the keys of table, P/t/ up to P/t0 (transaction memory,
 * both *len bytes long). */
etagkv_status ekv_etcd_table_bounds(ekv_txn *txn, enum ekv_table table,
                                    char **start, char **end, size_t *len);

/* Announce a read (backend.h, ekv_prefetch()). */
etagkv_status ekv_etcd_prefetch(ekv_txn *txn, enum ekv_table table,
                                const void *key, size_t key_len,
                                const void *end, size_t end_len, size_t limit);

/* Announce the point read of the full key k (P/m/...: counters). */
etagkv_status ekv_etcd_prefetch_key(ekv_txn *txn, char letter,
                                    const char *name);

/* Make sure the read set holds every key of the write set under [start,
 * start + len) as etcd has it at the pinned revision: from the first
 * read's cache, as absent when the caller says so (its commit then
 * compares that), else read, all in one round trip.  A count needs it: the
 * transaction's own write of a key must not hide whether it was there. */
etagkv_status ekv_etcd_learn(ekv_txn *txn, const char *start, size_t len,
                             int absent);

/* The change the write set makes to the number of keys from [start,
 * start + len) on (keys beginning with those len bytes): +1 for a put of a
 * key the read set has absent or lacks, -1 for a delete of a key it has
 * present. */
int64_t ekv_etcd_write_delta(const struct ekv_etcd_txn *t, const char *start,
                             size_t len);

/* In *out, the page of a hint for a cursor seeked at the full key from:
 * the one the first read fetched, or, for a hint given after it (or left
 * out of it), read now within the hint's bounds; NULL when no hint has
 * that key. */
etagkv_status ekv_etcd_page(ekv_txn *txn, const char *from, size_t from_len,
                            const struct ekv_etcd_hint **out);

/* Buffer a put of `bytes` (written by the caller at *dst) or a delete. */
etagkv_status ekv_etcd_put(ekv_txn *txn, const char *k, size_t k_len,
                           size_t bytes, void **dst);
etagkv_status ekv_etcd_delete(ekv_txn *txn, const char *k, size_t k_len);

/* Index of the first item of set with key >= k (inclusive) or > k. */
size_t ekv_etcd_set_find(const struct ekv_etcd_set *set, const char *k,
                         size_t k_len, int inclusive);

/* Remember an item read by a cursor in the read set (no effect when the
 * key is already there). */
etagkv_status ekv_etcd_remember(struct ekv_etcd_txn *t,
                                const struct ekv_etcd_item *it);

/* A Range request at the transaction's revision (pinning it if this is the
 * first), for [key, range_end) with limit (0: none), or only its count.
 * The answer's kvs are decoded into *items (transaction memory), *n of
 * them; *more says whether the range has more; *count the total. */
etagkv_status ekv_etcd_range(ekv_txn *txn, const char *key, size_t key_len,
                             const char *end, size_t end_len, size_t limit,
                             int count_only, struct ekv_etcd_item **items,
                             size_t *n, int *more, int64_t *count);

etagkv_status ekv_etcd_read_begin(struct ekv_env *env, ekv_txn *txn);
void ekv_etcd_read_end(ekv_txn *txn);
void ekv_etcd_read_release(ekv_txn *txn);
etagkv_status ekv_etcd_write_begin(struct ekv_env *env, ekv_txn *txn);
void ekv_etcd_write_abort(ekv_txn *txn);
etagkv_status ekv_etcd_write_commit(ekv_txn *txn);

/* End a write transaction that writes nothing (backend.h,
 * ekv_write_settle()): when it took keys from the handle's memory, one
 * read-only Txn compares its whole read set first. */
etagkv_status ekv_etcd_write_settle(ekv_txn *txn);

/* etcd's default --max-txn-ops.  etcd refuses a Txn whose compares, or
 * whose operations, are more than it (each list on its own). */
#define EKV_ETCD_TXN_OPS 128

/* Operations the write transaction may still buffer within
 * EKV_ETCD_TXN_OPS (backend.h, ekv_write_room()). */
size_t ekv_etcd_write_room(ekv_txn *txn);

/* ---- tables and cursors (etcd_table.c) -------------------------------------
 */

etagkv_status ekv_etcd_record_get(ekv_txn *txn, const void *key, size_t key_len,
                                  ekv_record *r);
/* backend.h, ekv_record_before(): etcd's own history of the key, the
 * positions etcd's revisions (a Range at the revision before the last
 * write seen; etcd_txn.c). */
etagkv_status ekv_etcd_record_before(ekv_txn *txn, const void *key,
                                     size_t key_len, uint64_t *at,
                                     ekv_record *r);
etagkv_status ekv_etcd_record_reserve(ekv_txn *txn, const void *key,
                                      size_t key_len, size_t bytes, void **dst);
etagkv_status ekv_etcd_record_delete(ekv_txn *txn, const void *key,
                                     size_t key_len);
etagkv_status ekv_etcd_revision_get(ekv_txn *txn, uint64_t *rev);
etagkv_status ekv_etcd_revision_put(ekv_txn *txn, uint64_t rev);
etagkv_status ekv_etcd_idem_entry_get(ekv_txn *txn, const void *key,
                                      size_t key_len, ekv_val *entry);
etagkv_status ekv_etcd_idem_entry_reserve(ekv_txn *txn, const void *key,
                                          size_t key_len, size_t bytes,
                                          void **dst);
etagkv_status ekv_etcd_idem_entry_count(ekv_txn *txn, uint64_t *n);
etagkv_status ekv_etcd_change_reserve(ekv_txn *txn, const void *key,
                                      size_t key_len, size_t bytes, void **dst);
etagkv_status ekv_etcd_change_count(ekv_txn *txn, uint64_t *n);
etagkv_status ekv_etcd_change_floor_get(ekv_txn *txn, uint64_t *floor);
etagkv_status ekv_etcd_change_floor_put(ekv_txn *txn, uint64_t floor);
etagkv_status ekv_etcd_lease_entry_get(ekv_txn *txn, const void *key,
                                       size_t key_len, ekv_val *entry);
etagkv_status ekv_etcd_lease_entry_reserve(ekv_txn *txn, const void *key,
                                           size_t key_len, size_t bytes,
                                           void **dst);
etagkv_status ekv_etcd_lease_entry_delete(ekv_txn *txn, const void *key,
                                          size_t key_len);
etagkv_status ekv_etcd_lease_entry_count(ekv_txn *txn, uint64_t *n);
etagkv_status ekv_etcd_table_count(ekv_txn *txn, enum ekv_table table,
                                   uint64_t *n);
/* Announce the counters and the change log's floor (the first read brings
 * them: every write transaction looks at them). */
etagkv_status ekv_etcd_prefetch_meta(ekv_txn *txn);
/* In a new store: every counter 0. */
etagkv_status ekv_etcd_counters_zero(ekv_txn *txn);
/* Before the commit: write the counter of every counted table whose entries
 * the transaction changed (or that it counted, having no counter). */
etagkv_status ekv_etcd_counters_update(ekv_txn *txn);
etagkv_status ekv_etcd_cursor_open(ekv_txn *txn, enum ekv_table table,
                                   ekv_cursor *cur);
void ekv_etcd_cursor_close(ekv_cursor *cur);
etagkv_status ekv_etcd_cursor_seek(ekv_cursor *cur, const void *key,
                                   size_t key_len, ekv_val *k, ekv_val *v);
etagkv_status ekv_etcd_cursor_next(ekv_cursor *cur, ekv_val *k, ekv_val *v);
etagkv_status ekv_etcd_cursor_delete(ekv_cursor *cur);

/* Tests only (tests/lib/test_etcd.c): when set, an etcd transaction
 * calls it just before each read pinned at the revision of its first
 * read, with 1 in a write transaction, so that a test can have etcd
 * compact that revision away in between.  Atomic: the lease sweeper's
 * transactions read it while a test sets it. */
extern void (*_Atomic ekv_test_before_pinned_read)(int write);

#endif /* ETAGKV_ETCD_ENV_H */
