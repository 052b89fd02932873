/*
 * store.h -- the store handle and the write path's internal interfaces,
 * above the storage seam (backend.h).  Not API; it does not include
 * lmdb.h.
 *
 * The handle is composed of one piece of state per subsystem, each owned
 * by one file: the options (options.c), the storage backend (backend.h),
 * the group-commit queue (commit.c), the idempotency purge cursor (idem.c).
 * store.c opens and closes them in order.
 */
#ifndef ETAGKV_STORE_H
#define ETAGKV_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "backend.h"

/* ---- commit.c: the group-commit queue ------------------------------------ */

/* One write waiting for, or being applied by, the group committer. */
struct ekv_waiter;

/* Waiters whose batches have their outcomes but wait, in queue order, for
 * a flush to cover their commits before they are acknowledged (sync
 * mode, commit.c); commits counts the transactions among them, for the
 * watchers, idle the batches at the end that committed nothing. */
struct ekv_held {
    struct ekv_waiter *head, *tail;
    unsigned commits;
    unsigned idle; /* batches that committed nothing since the last commit */
};

/* Writers queue here in arrival order; the one at the head commits a batch
 * for everyone queued behind it.  Every field but the atomics is guarded
 * by lock. */
#define EKV_THREAD_SLOTS 64

struct ekv_queue {
    pthread_mutex_t lock;
    /* Held while a batch is applied and until the writes it made wait
     * are out of its acknowledgement chain (commit.c, "Waiting writes");
     * taken before lock, never while holding it. */
    pthread_mutex_t apply_lock;
    int ready; /* lock and committer_cv initialised */
    struct ekv_waiter *head, *tail;
    pthread_cond_t committer_cv; /* wakes the committer thread */
    /* While the committer sleeps on committer_cv: until when
     * (ekv_mono_ns(); UINT64_MAX: until woken); 0 while it is awake.
     * committer_naps: how many times it went to sleep (for tests). */
    uint64_t committer_asleep_until;
    uint64_t committer_naps;
    pthread_t committer; /* leads batches headed by async writes */
    int committer_started, committer_stop;
    /* A thread is leading batches (a blocking writer or the committer);
     * nobody else leads meanwhile, so batches, and the flushes that make
     * them durable, run one at a time. */
    int leading;
    /* Batches held for the next commit or flush (commit.c), and the
     * flushes running meanwhile for batches held before them. */
    struct ekv_held held;
    unsigned flushing;
    /* Waiters in the queue: changed with lock held, read without it by a
     * nosync writer deciding whether to commit alone (commit.c). */
    atomic_size_t queued;
    /* Submitted writes not yet done, per submitting thread (a hash of it:
     * threads that share a slot only refuse early less).  A thread's
     * write is not refused early while its earlier ones are pending, so
     * it never overtakes them (etagkv_submit(): one thread's writes are
     * applied in order), unless it says it is independent of them
     * (ETAGKV_WRITE_INDEPENDENT). */
    atomic_uint pending[EKV_THREAD_SLOTS];
    /* Statistics, counted by whoever committed (a leader or a writer
     * committing alone), without the lock. */
    _Atomic uint64_t write_txns; /* committed write transactions */
    _Atomic uint64_t write_ops;  /* operations that changed the store */
    /* etagkv_store_commit_stats(): per committed transaction, its time
     * and its engine commit's (apply.c), and per batch its size. */
    struct ekv_hist commit_ns, sync_ns, batch_ops;
};

/* ---- idem.c: the incremental purge --------------------------------------- */

/* Where the incremental purge of expired idempotency keys resumes (zeroed:
 * at the start).  Touched only inside a write transaction, so by one
 * thread at a time, ordered by the backend's single writer. */
struct ekv_idem {
    uint8_t purge_key[ETAGKV_IDEMPOTENCY_KEY_MAX];
    size_t purge_len;
    /* Commits that skip counting the table, last found empty (idem.c). */
    unsigned empty_skips;
};

/* ---- changes.c: appending to the change log ------------------------------ */

/* The position of the next event within its revision.  Touched only inside
 * a write transaction (one thread at a time, like struct ekv_idem). */
struct ekv_changes {
    uint64_t rev;    /* the revision of the last event appended */
    uint32_t seq;    /* the sequence number of the next event of rev */
    size_t appended; /* events appended by this write transaction */
    /* What the last committed trim saw, kept to skip work (hints: a stale
     * one costs an extra look or read, never an answer):
     *  - aged_at_ns: when the oldest event comes of age
     *    (changes_retention_s; 0: unknown, look); the trim skips the log's
     *    start until then;
     *  - the log's count and floor (seen 0: unknown): whether the next
     *    trim will look at the log's start, and where that is, guessed
     *    before the transaction's first read (ekv_changes_prefetch());
     *    another handle's commits can make the guess wrong.
     * Published after a commit, when LMDB's writer lock (or the etcd
     * engine's) is no longer held, and read by the next writer: atomics,
     * each a hint of its own.  The working copies below are this
     * transaction's, touched only inside it (ekv_changes_begin(),
     * ekv_changes_trim(), ekv_changes_pending()). */
    _Atomic uint64_t aged_at_ns, count_seen, floor_seen;
    atomic_int seen;
    uint64_t aging_ns, next_count, next_floor;
    int next_seen;
    /* etcd: this transaction's trim took more than TRIM_EXTRA (changes.c);
     * and, for good once a commit so trimmed was refused as too large (a
     * cluster whose --max-txn-ops is under the default), it no longer
     * does.  Under queue.apply_lock, which every batch runs under
     * (commit.c: apply.c sets trim_tight after its transaction ended). */
    int trim_wide, trim_tight;
};

/* A write transaction's view of the change log's start, taken before it
 * commits and published once it has (ekv_changes_committed()). */
struct ekv_changes_view {
    uint64_t aged_at_ns, count, floor;
    int seen;
};

/* ---- wait.c: waking watchers after a commit ------------------------------ */

/* Commits counted for watchers: etagkv_wait() sleeps on cv until commits
 * moves, etagkv_notify_open() descriptors are signalled.  Guarded by
 * lock. */
struct ekv_notify {
    pthread_mutex_t lock;
    pthread_cond_t cv;      /* a commit, or closing (CLOCK_MONOTONIC) */
    pthread_cond_t idle_cv; /* the last waiter left, while closing */
    int ready;              /* lock and the condition variables set up */
    uint64_t commits;       /* durable write transactions so far */
    int closing;
    unsigned waiters; /* threads inside etagkv_wait() */
    int *fds;         /* etagkv_notify_open() descriptors */
    size_t n_fds, cap_fds;
};

/* ---- lease.c: the sweeper and the lease counters ------------------------- */

/* The thread that expires leases, and figures for etagkv_store_stats().
 * Guarded by lock, except open_ns (set before the thread starts). */
struct ekv_leases {
    pthread_mutex_t lock;
    pthread_cond_t cv; /* a grant or keepalive (a new deadline), or stop */
    pthread_t sweeper;
    int ready;   /* lock and cv set up */
    int started; /* the sweeper runs */
    int stop, poked;
    /* The store's clock at open: a lease's deadline is never earlier than
     * open_ns + its TTL (the restart rule, DESIGN §9). */
    uint64_t open_ns;
    uint64_t granted, revoked, expired;
};

/* ---- apply.c: writes waiting for their conditions -------------------------
 */

/* Writes that wait for their conditions (etagkv_request.wait_ms; apply.c,
 * "Waiting writes"), in arrival order, linked by wait_next.  Guarded by
 * queue.apply_lock, except the atomics: next_deadline, which commit.c's
 * committer reads to sleep until it, count and expire_all. */
#define EKV_WAITING_BUCKETS 4096u
struct ekv_waiting {
    struct ekv_op *head, *tail;
    size_t n;
    /* The same writes by the hash of their key (apply.c,
     * waiting_bucket()), each bucket linked by wait_same: a change of a
     * key looks at the writes of its bucket, not at the whole list. */
    struct ekv_op *bucket[EKV_WAITING_BUCKETS];
    /* The running transaction marked some of them (added, or to be
     * evaluated again): waiting_settle() has work to do. */
    int marked;
    /* Decided by the last transaction (linked by decided_next), for
     * commit.c to acknowledge with it: ekv_waiting_take_decided(). */
    struct ekv_op *decided, *decided_tail;
    atomic_int expire_all; /* closing: every wait ends at the next one */
    /* Another handle committed (etcd): every waiting write is evaluated
     * again by the next transaction; `rechecking`: this one took it. */
    atomic_int recheck;
    int rechecking;
    int any_hit; /* some waiting write is marked to be evaluated */
    /* The waiting write whose own evaluation failed the transaction
     * (apply.c: it is answered with that failure, and the transaction
     * runs again without it). */
    struct ekv_op *culprit;
    /* commit.c: no tick before this (ekv_mono_ns()), after one failed. */
    _Atomic uint64_t tick_after;
    _Atomic uint64_t next_deadline; /* ekv_mono_ns(); 0: nobody waits */
    _Atomic uint64_t count;         /* n, for etagkv_store_stats() */
};

struct etagkv_store {
    etagkv_options opts; /* checked (options.c) */
    struct ekv_env *env; /* the storage backend */
    struct ekv_queue queue;
    struct ekv_idem idem;
    struct ekv_changes changes;
    struct ekv_notify notify;
    struct ekv_leases leases;
    struct ekv_waiting waiting;
};

/* The calling thread's slot in ekv_queue.pending (commit.c). */
unsigned ekv_thread_slot(void);

/* s seconds in nanoseconds, saturating at UINT64_MAX (a retention of
 * "forever" from an option). */
static inline uint64_t ekv_s_to_ns(uint64_t s)
{
    return s > UINT64_MAX / 1000000000u ? UINT64_MAX : s * 1000000000u;
}

/* Wall clock, through the store's clock option. */
static inline uint64_t ekv_now_ns(const etagkv_store *s)
{
    struct timespec ts;

    if (s->opts.clock != NULL)
        return s->opts.clock(s->opts.clock_ctx);
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A monotonic clock, for durations (not the clock option: a test's clock
 * need not advance). */
static inline uint64_t ekv_mono_ns(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Initialise *cv for timed waits until ekv_mono_ns() instants
 * (ekv_mono_deadline()).  0, or -1. */
static inline int ekv_cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    int rc;

    if (pthread_condattr_init(&attr) != 0)
        return -1;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cv, &attr);
    (void)pthread_condattr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}

/* The ekv_mono_ns() instant ns, as the deadline of a timed wait on a
 * condition variable of ekv_cond_init_mono(). */
static inline struct timespec ekv_mono_deadline(uint64_t ns)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    return ts;
}

/* What a lease operation of the commit queue does (lease.c). */
enum ekv_lease_verb {
    EKV_LEASE_NONE, /* not a lease operation */
    EKV_LEASE_GRANT,
    EKV_LEASE_KEEPALIVE,
    EKV_LEASE_REVOKE,
    EKV_LEASE_SWEEP /* expire a few leases past their deadline */
};

/* A put or delete, with everything computed that can be computed outside a
 * transaction (write.c); apply.c fills in the outcome.  Or a whole
 * multi-key transaction (txn != NULL, txn.c): one entry of a batch, whose
 * operations and results live in the etagkv_txn; then value_len is its
 * byte total (for the batch's cap) and status its outcome. */
struct ekv_op {
    etagkv_method method; /* ETAGKV_METHOD_PUT or ETAGKV_METHOD_DELETE */
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    const char *content_type;
    size_t content_type_len;
    int keep_content_type; /* a replaced record keeps its content type */
    uint8_t value_hash[EKV_HASH_BYTES];
    const etagkv_cond *cond;
    const void *idem_key; /* idempotency key, or NULL */
    size_t idem_len;
    uint8_t fingerprint[EKV_HASH_BYTES]; /* of the request, with idem_key */
    etagkv_status status;                /* the outcome, once applied */
    etagkv_meta meta; /* the key's state after the operation */
    /* meta.etag in binary, when meta.exists: what idem.c records. */
    uint8_t meta_hash[EKV_HASH_BYTES];
    int wrote;    /* the operation changed a record */
    int dirty;    /* the transaction must commit for this op */
    int replayed; /* the outcome is a recorded one (idem.c) */
    int recorded; /* its outcome was recorded under idem_key */
    /* ETAGKV_WRITE_RETURN_CURRENT: on a 412 of a present key, a malloc'd
     * copy of its value (apply.c), handed to whoever receives the result. */
    int want_current;
    /* ETAGKV_WRITE_INDEPENDENT (it may be refused early ahead of the
     * thread's pending writes; it is counted among them all the same);
     * and, submitted and not done, 1 + the thread slot it counts in
     * (ekv_queue.pending), else 0. */
    int independent;
    unsigned pending_slot;
    void *current;
    size_t current_len;
    char detail[128];       /* diagnostic of a failure */
    struct etagkv_txn *txn; /* a multi-key transaction, or NULL */
    /* A put: the lease its key is attached to (0: none).  A lease
     * operation (verb not NONE): the lease, and what it did. */
    uint64_t lease;
    enum ekv_lease_verb lease_verb;
    uint64_t lease_ttl_ms;       /* grant: asked; keepalive: the lease's */
    uint64_t lease_expired;      /* revoke, sweep: leases expired */
    uint64_t lease_remaining_ms; /* keepalive */
    /* A write that waits for its conditions (apply.c, "Waiting writes"):
     * until when (ekv_mono_ns()), or 0. */
    uint64_t wait_until_ns;
    int waiting;   /* in s->waiting: failed so far, not acknowledged */
    int wait_new;  /* put there by the running transaction */
    int wait_hit;  /* its key changed, or its wait ended: evaluate again */
    int wait_done; /* decided by the running transaction */
    unsigned wait_bucket;     /* its key's in s->waiting.bucket */
    struct ekv_op *wait_same; /* the next in that bucket */
    struct ekv_op *wait_next, *decided_next;
    void *waiter; /* commit.c's waiter of this op */
    int tick;     /* commit.c's tick: does nothing, lets the waits end */
    int in_batch; /* one of the ops of the batch being applied */
};

/* ---- idem.c, all inside a write transaction ------------------------------ */

/* Before applying op: if its idempotency key has a live entry, answer op
 * from it (replay, or mismatch) and set *handled.  A new key that does not
 * fit the table is refused (handled, ETAGKV_IDEMPOTENCY_FULL).  A status
 * other than ETAGKV_OK fails the transaction. */
etagkv_status ekv_idem_check(etagkv_store *s, ekv_txn *txn, struct ekv_op *op,
                             int *handled);

/* After applying op: record its outcome under its idempotency key. */
etagkv_status ekv_idem_record(etagkv_store *s, ekv_txn *txn,
                              const struct ekv_op *op);

/* Purge a little, in a transaction that commits anyway; `recorded` is the
 * number of entries the transaction recorded. */
etagkv_status ekv_idem_maintain(etagkv_store *s, ekv_txn *txn, size_t recorded);

/* Before a batch's first read: announce the page ekv_idem_maintain() will
 * look at (ekv_prefetch()), for a batch of which `keyed` operations carry
 * an idempotency key. */
etagkv_status ekv_idem_prefetch(etagkv_store *s, ekv_txn *txn, size_t keyed);

/* ---- changes.c, inside a write transaction --------------------------------
 */

/* A write transaction begins (or is run again): its first event will be
 * the first of its revision, and it has appended none. */
void ekv_changes_begin(etagkv_store *s);

/* Append the change of key, whose state after the write is *meta (exists:
 * a put, with the record's binary hash in hash; else a delete, at
 * meta->mod_revision), to the change log, after the events already
 * appended in this transaction.  Every write that changes a record calls
 * this in the same transaction, with the revision it commits under in
 * meta->mod_revision; the events of one revision keep their call order. */
etagkv_status ekv_changes_append(etagkv_store *s, ekv_txn *txn, const void *key,
                                 size_t key_len, const etagkv_meta *meta,
                                 const uint8_t hash[EKV_HASH_BYTES]);

/* Trim a little, in a transaction that commits anyway: the oldest events
 * while the log holds more than changes_max_events or its oldest event is
 * older than changes_retention_s, at most appended + 16 of them -- but
 * only once the count passes changes_max_events by its slack
 * (max / 64, at most 256; 0 below 64 events), and then at most appended + 16 +
 * the slack (on a remote engine, appended + 16, and the commits after it go
 * on). */
etagkv_status ekv_changes_trim(etagkv_store *s, ekv_txn *txn, size_t appended);

/* The view the write transaction's trim left, before the commit (while
 * the transaction is still this thread's), and its publication once the
 * commit succeeded. */
void ekv_changes_pending(const etagkv_store *s, struct ekv_changes_view *v);
void ekv_changes_committed(etagkv_store *s, const struct ekv_changes_view *v);

/* etagkv_changes(), walking no event after revision upto (0: to the
 * end; before a later one the page ends, more 1, next upto): the 412's
 * diagnosis (diagnose.c) wants a key's events up to the refusal's state, and
 * the log goes on past that, all keys mixed. */
etagkv_status ekv_changes_upto(etagkv_store *s, const void *prefix,
                               size_t prefix_len, unsigned flags,
                               uint64_t after, uint64_t upto, size_t limit,
                               etagkv_event_fn fn, void *ctx,
                               etagkv_changes_page *page);

/* Before a batch's first read: announce the oldest events ekv_changes_trim()
 * will look at (ekv_prefetch()) after appending about `appended`, when the
 * trim looks like being due. */
etagkv_status ekv_changes_prefetch(etagkv_store *s, ekv_txn *txn,
                                   size_t appended);

/* ---- wait.c -------------------------------------------------------------- */

/* Set up and take down the notifier (all or nothing; safe on a zeroed
 * one).  ekv_notify_close() wakes etagkv_wait() callers, waits for them to
 * leave and closes the descriptors. */
etagkv_status ekv_notify_init(struct ekv_notify *n);
void ekv_notify_close(struct ekv_notify *n);

/* A write transaction committed durably: wake the watchers. */
void ekv_notify_commit(struct ekv_notify *n);

/* The 64-byte meta block of an entry (both kinds): value_bytes, times,
 * revisions, version, ETag hash.  Decoding formats the ETag and zeroes the
 * content type (the caller copies it). */
#define EKV_IDEM_META_BYTES 64
void ekv_idem_meta_encode(uint8_t *p, const etagkv_meta *m,
                          const uint8_t hash[EKV_HASH_BYTES]);
void ekv_idem_meta_decode(const uint8_t *p, int exists, etagkv_meta *m,
                          uint8_t hash[EKV_HASH_BYTES]);

/* ---- txn.c, inside a write transaction ----------------------------------- */

/* Execute the transaction op->txn in txn at the store revision *rev
 * (advanced by one when it writes): evaluate every operation against the
 * store overlaid with the writes of those before it, then, if none failed,
 * write.  The outcome (ETAGKV_OK or ETAGKV_CONFLICT, or this transaction's
 * own store failure) goes to op->status and the results to op->txn; the
 * return value is not ETAGKV_OK when the batch must be abandoned. */
etagkv_status ekv_txn_execute(etagkv_store *s, ekv_txn *txn, struct ekv_op *op,
                              uint64_t *rev);

/* Add to t a put of the record r, copied from another store under key
 * (etagkv_store_copy()): created only (If-None-Match: *, so a key that
 * exists fails the transaction with ETAGKV_CONFLICT), and keeping r's
 * content type, created_ns and modified_ns rather than taking the clock's.
 * Its ETag is computed again from r's value; revisions and version are the
 * destination's, as for any new record.  A transaction holding such puts
 * is bounded by its builder's pages, not by max_txn_ops and max_txn_bytes.
 * Returns as etagkv_txn_put(). */
etagkv_status ekv_txn_put_restored(etagkv_txn *t, const void *key,
                                   size_t key_len, const ekv_record *r);

/* A transaction's recorded outcome, after the entry header (idem.c):
 * its size, encoding, and decoding into op->txn (0, or -1 when the bytes
 * do not fit the transaction). */
size_t ekv_txn_entry_size(const struct ekv_op *op);
void ekv_txn_entry_encode(const struct ekv_op *op, uint8_t *p);
int ekv_txn_entry_decode(struct ekv_op *op, const uint8_t *p, size_t len);

/* ---- lease.c, inside a write transaction --------------------------------- */

/* Execute the lease operation op (op->lease_verb) at the store revision
 * *rev (advanced by one for each lease whose keys it deletes).  Outcome
 * and return value as for ekv_txn_execute(). */
etagkv_status ekv_lease_execute(etagkv_store *s, ekv_txn *txn,
                                struct ekv_op *op, uint64_t *rev);

/* May a put attach key to lease id?  EKV_LEASE_DEAD: the lease is unknown
 * or past its deadline.  EKV_LEASE_FULL: it holds max_lease_keys keys,
 * counting `pending` that earlier operations of the same transaction are
 * to attach, and key is not one of them. */
enum ekv_lease_verdict { EKV_LEASE_ADMITTED, EKV_LEASE_DEAD, EKV_LEASE_FULL };
etagkv_status ekv_lease_admit(etagkv_store *s, ekv_txn *txn, uint64_t id,
                              const void *key, size_t key_len, uint64_t pending,
                              enum ekv_lease_verdict *v);

/* *id: the lease key is attached to, or 0 for none (any transaction). */
etagkv_status ekv_lease_of(ekv_txn *txn, const void *key, size_t key_len,
                           uint64_t *id);

/* Attach key to lease id (0: detach it from any), after a write of key
 * (a delete detaches). */
etagkv_status ekv_lease_attach(ekv_txn *txn, const void *key, size_t key_len,
                               uint64_t id);

/* ---- lease.c: the sweeper ------------------------------------------------ */

/* Set up the lease state and start the sweeper (not in a read-only
 * store), all or nothing; stop the sweeper; take the state down.  Stop
 * and free are safe on a zeroed state.  Stop before the commit queue
 * shuts down (the sweeper commits through it), free after it (the lease
 * calls it still commits finish under the lease state's lock). */
etagkv_status ekv_leases_start(etagkv_store *s);
void ekv_leases_stop(etagkv_store *s);
void ekv_leases_free(etagkv_store *s);

/* The counters of etagkv_stats, and the number of leases stored. */
etagkv_status ekv_leases_stats(etagkv_store *s, ekv_txn *txn,
                               etagkv_stats *out);

/* ---- apply.c ------------------------------------------------------------- */

/* Evaluate and apply ops[0..n) in order in one write transaction (several
 * when a failure must be pinned on one op); every op gets its outcome.
 * Returns the number of transactions that committed. */
int ekv_apply_batch(etagkv_store *s, struct ekv_op **ops, size_t n);

/* Free op->current, if any, and clear it. */
void ekv_op_drop_current(struct ekv_op *op);

/* Inside a write transaction (changes.c): key changed; the writes waiting
 * on it are evaluated again after the operation that changed it. */
void ekv_waiting_touch(etagkv_store *s, const void *key, size_t key_len);

/* Another handle committed (backend.h's watch, etcd): the waiting writes,
 * if any, are evaluated again by a transaction soon (commit.c). */
void ekv_waiting_recheck(etagkv_store *s);

/* After ekv_apply_batch(): the waiting writes its transactions decided
 * (applied, or their wait ended), in arrival order, linked by
 * decided_next, to be acknowledged with the batch; the list is emptied.
 * Called by whoever ran the batch, before another batch runs. */
struct ekv_op *ekv_waiting_take_decided(etagkv_store *s);

/* Whether op, a single conditional write, fails its conditions against
 * the latest committed state: then its outcome is set (412, the meta, the
 * current value if asked for) and it needs no batch.  0 when it must be
 * queued: it passes, or it is not that kind of write (a transaction, a
 * lease call or a write with a lease, an idempotency key, no conditions,
 * a read-only store, pipelined mode), or the read failed. */
int ekv_op_refuse_early(etagkv_store *s, struct ekv_op *op);

/* ---- backup.c ------------------------------------------------------------ */

/* The first bytes of a key for a diagnostic, NUL-terminated in out (cap
 * bytes): printable ASCII as is, '%' and every other byte as %XX, as the
 * server's URLs would show it. */
void ekv_key_text(const void *key, size_t len, char *out, size_t cap);

/* ---- commit.c ------------------------------------------------------------ */

/* The queue's locks, all or nothing; ETAGKV_OK or ETAGKV_NO_MEMORY. */
etagkv_status ekv_queue_init(struct ekv_queue *q);

/* Complete every queued asynchronous write, stop the committer thread and
 * release the queue (etagkv_store_close()); safe on a queue whose init
 * failed or never ran (zeroed). */
void ekv_queue_shutdown(etagkv_store *s);

/* The committed write transactions and changing operations so far. */
void ekv_queue_counters(etagkv_store *s, uint64_t *txns, uint64_t *ops);

/* The histograms of etagkv_store_commit_stats(). */
void ekv_queue_histograms(etagkv_store *s, etagkv_commit_stats *out);

/* The writes queued now, a leader's batch included (tests). */
size_t ekv_queue_waiting(etagkv_store *s);

/* Tests only (tests/lib/test_commit.c): when set, every leader calls it
 * just before taking its batch, with the queue unlocked and its own write
 * still at the head, so that a test can hold the batch open until the
 * writers it expects have queued behind it, making batching independent
 * of the disk's speed.  NULL, the default, costs one predictable branch
 * per batch.  Set and clear it only while no write is in flight. */
extern void (*ekv_test_before_batch)(etagkv_store *s);

/* Tests only (tests/lib/test_waits.c): when set, a transaction calls it
 * right after it has looked at the waits that ended (apply.c), its
 * apply_lock held, so that a test can end the waits just too late for
 * it.  Set and clear it only while no write is in flight. */
extern void (*ekv_test_after_expire)(etagkv_store *s);

/* Tests only (tests/power): when set, pipelined mode acknowledges a batch as
 * soon as its transaction committed, before any flush covers its meta page
 * -- the mistake the power-loss test must catch.  Set it before the store
 * is opened. */
extern int ekv_test_ack_before_flush;

/* An asynchronous write: its op and its completion. */
struct ekv_async;
struct ekv_async *ekv_async_new(etagkv_done_fn fn, void *ctx);
struct ekv_op *ekv_async_op(struct ekv_async *a);
void ekv_async_free(struct ekv_async *a);

/* Queue a prepared asynchronous write; its callback will be called once.
 * Returns ETAGKV_OK, or ETAGKV_NO_MEMORY when the committer thread cannot
 * be started (then a is still the caller's). */
etagkv_status ekv_commit_async(etagkv_store *s, struct ekv_async *a);

/* Apply op durably: evaluated and written in a write transaction, batched
 * with concurrent writers, acknowledged (returned) only after its
 * transaction has committed in the store's sync mode.  Returns op->status.
 * Must be called with no transaction of this thread active. */
etagkv_status ekv_commit(etagkv_store *s, struct ekv_op *op);

#endif /* ETAGKV_STORE_H */
