/*
 * commit.c -- applying writes: one operation inside a transaction, and
 * group commit (DESIGN §4).
 *
 * LMDB has one writer at a time and a durable commit costs a sync, so one
 * transaction per write caps a store at a few thousand writes per second
 * however many threads wait.  Here concurrent writers queue in arrival
 * order; the writer at the head of the queue (the leader) takes every
 * operation queued behind it, up to a cap, and applies them in order in one
 * transaction with one sync, then wakes them.  Nobody waits for company:
 * a lone writer commits at once, and a batch is whatever queued while the
 * previous commit ran (LevelDB's writer queue, in C).
 *
 * Each operation is evaluated against the state the earlier operations of
 * its batch left, so every outcome equals that of a serial execution in
 * queue order.  An operation's own failure (a 412, a 404) writes nothing and
 * so cannot affect its neighbours.  A store-level failure is never pinned
 * on the wrong operation: the batch is abandoned (nothing of it is visible)
 * and, after growing the map if it was full, retried; if it fails again,
 * each operation is retried alone so that each gets its own truthful
 * status.  No operation is acknowledged before its transaction committed.
 *
 * In nosync mode a commit syncs nothing and costs a few µs, about what it
 * costs to wake the thread that would lead the next batch; so there the
 * leader, once its own write is done, leads up to LEAD_MORE_NOSYNC further
 * batches of blocking writes itself, waking each batch's writers to
 * return, instead of handing the queue to the next head and waiting for
 * that thread to be scheduled.  Queue order and outcomes are unchanged;
 * the thread running a batch differs, and batches come smaller, the queue
 * being drained sooner.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* A batch holds at most this many operations, and at most this many value
 * bytes unless its first operation alone is larger. */
#define BATCH_MAX_OPS 256
#define BATCH_MAX_BYTES ((size_t)16 << 20)

/* nosync: further batches a blocking leader leads before handing over.  A
 * bound, because its own caller waits meanwhile (about 10 µs a batch). */
#define LEAD_MORE_NOSYNC 8

struct ekv_waiter {
    struct ekv_op *op;
    pthread_cond_t cv;       /* a blocking writer waits on it */
    struct ekv_async *async; /* a submitted write: its completion */
    int done;
    struct ekv_waiter *next;
};

/* ---- one operation inside a transaction ------------------------------------
 */

/* Write op's new record over `old` (NULL when absent) at revision rev. */
static int op_put(etagkv_store *s, MDB_txn *txn, struct ekv_op *op,
                  const ekv_record *old, uint64_t rev)
{
    uint64_t now = ekv_now_ns(s);
    ekv_record r;
    MDB_val k = {op->key_len, (void *)op->key}, v;
    char ctype[ETAGKV_CONTENT_TYPE_MAX];
    int rc;

    /* DESIGN §1: modified never goes backwards for a key, whatever the
     * wall clock does: max(now, previous + 1), and at the very end of the
     * range it stays there rather than wrap to 0. */
    r.modified_ns = old != NULL && old->modified_ns >= now
                        ? old->modified_ns + (old->modified_ns < UINT64_MAX)
                        : now;
    r.created_ns = old != NULL ? old->created_ns : r.modified_ns;
    r.create_revision = old != NULL ? old->create_revision : rev;
    r.mod_revision = rev;
    r.version = old != NULL ? old->version + 1 : 1;
    memcpy(r.hash, op->hash, EKV_HASH_BYTES);
    r.content_type = op->content_type;
    r.content_type_len = op->content_type_len;
    if (op->keep_content_type && old != NULL) {
        /* Copied: old points into a page that mdb_put() may rearrange. */
        memcpy(ctype, old->content_type, old->content_type_len);
        r.content_type = ctype;
        r.content_type_len = old->content_type_len;
    }
    r.value = op->value;
    r.value_len = op->value_len;

    /* MDB_RESERVE: encode straight into the page, one copy of the value. */
    v.mv_size = ekv_record_size(r.content_type_len, r.value_len);
    v.mv_data = NULL;
    rc = mdb_put(txn, s->records, &k, &v, MDB_RESERVE);
    if (rc != 0)
        return rc;
    ekv_record_encode(v.mv_data, &r);
    ekv_record_meta(&r, &op->meta);
    op->status = old != NULL ? ETAGKV_OK : ETAGKV_CREATED;
    return 0;
}

/* Execute op in txn at the store revision *rev (advanced when op writes):
 * read the record, evaluate the conditions against it (cond.c), and only
 * then write.  The outcome goes to op->status and op->meta; the return value
 * is an LMDB code, non-zero when the transaction must be abandoned. */
static int op_execute(etagkv_store *s, MDB_txn *txn, struct ekv_op *op,
                      uint64_t *rev)
{
    ekv_record old;
    etagkv_status st;
    int rc = 0;

    st = ekv_record_get(s, txn, op->key, op->key_len, &old);
    if (st == ETAGKV_OK) {
        ekv_record_meta(&old, &op->meta);
    } else if (st != ETAGKV_NOT_FOUND) {
        op->status = st; /* a corrupt record: this op's failure alone */
        snprintf(op->detail, sizeof(op->detail), "%s",
                 etagkv_last_error_detail());
        return 0;
    }
    op->status = etagkv_cond_evaluate(op->cond, op->method, &op->meta);
    if (op->status != ETAGKV_OK)
        return 0;
    if (op->method == ETAGKV_METHOD_PUT) {
        rc = op_put(s, txn, op, op->meta.exists ? &old : NULL, *rev + 1);
    } else {
        MDB_val k = {op->key_len, (void *)op->key};

        rc = mdb_del(txn, s->records, &k, NULL);
        if (rc == 0) {
            memset(&op->meta, 0, sizeof(op->meta));
            op->meta.mod_revision = *rev + 1;
        }
    }
    if (rc == 0) {
        op->wrote = 1;
        *rev += 1;
    }
    return rc;
}

/* The outcomes worth replaying: what the request itself decided.  Errors
 * of the store are not recorded, so a retry after one executes afresh. */
static int recordable(etagkv_status st)
{
    return st == ETAGKV_OK || st == ETAGKV_CREATED ||
           st == ETAGKV_PRECONDITION_FAILED || st == ETAGKV_NOT_FOUND;
}

/* Apply op: answer it from its idempotency entry if it has a live one,
 * else execute it and record the outcome in the same transaction. */
static int op_apply(etagkv_store *s, MDB_txn *txn, struct ekv_op *op,
                    uint64_t *rev)
{
    int rc, handled = 0;

    memset(&op->meta, 0, sizeof(op->meta));
    op->wrote = op->dirty = op->replayed = op->recorded = 0;
    op->detail[0] = '\0';
    if (op->idem_len > 0) {
        rc = ekv_idem_check(s, txn, op, &handled);
        if (rc != 0 || handled)
            return rc;
    }
    rc = op_execute(s, txn, op, rev);
    if (rc == 0 && op->idem_len > 0 && recordable(op->status)) {
        rc = ekv_idem_record(s, txn, op);
        op->dirty = op->recorded = rc == 0;
    }
    op->dirty |= op->wrote;
    return rc;
}

/* ---- a batch in one transaction --------------------------------------------
 */

/* Apply ops[0..n) in one transaction.  Returns 0 when every op has its
 * outcome (committed, or nothing to commit), else the LMDB code that made
 * the transaction fail (nothing of it is visible), or -1 with *st set when
 * it could not even begin; *seen is the map size it ran with. */
static int try_batch(etagkv_store *s, struct ekv_op **ops, size_t n,
                     size_t *seen, int *wrote, etagkv_status *st)
{
    MDB_txn *txn;
    uint64_t rev;
    int rc = 0, dirty = 0, changed = 0;
    size_t recorded = 0;

    *wrote = 0; /* becomes 1 when the transaction commits */
    if ((*st = ekv_txn_begin(s, 0, &txn)) != ETAGKV_OK)
        return -1;
    *seen = ekv_map_size(s);
    if ((*st = ekv_revision_get(s, txn, &rev)) != ETAGKV_OK) {
        ekv_txn_end(s, txn, 0);
        return -1;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = op_apply(s, txn, ops[i], &rev);
        dirty |= ops[i]->dirty;
        changed |= ops[i]->wrote;
        recorded += (size_t)ops[i]->recorded;
    }
    if (rc == 0 && !dirty) {
        /* Only failed preconditions or missing keys: nothing to sync. */
        ekv_txn_end(s, txn, 0);
        return 0;
    }
    *wrote = 1;
    if (rc == 0 && changed)
        rc = ekv_revision_put(s, txn, rev);
    if (rc == 0)
        rc = ekv_idem_maintain(s, txn, recorded); /* purge a little */
    if (rc == 0)
        return ekv_txn_commit(s, txn);
    ekv_txn_end(s, txn, 0);
    return rc;
}

static void fail_all(struct ekv_op **ops, size_t n, etagkv_status st)
{
    for (size_t i = 0; i < n; i++) {
        memset(&ops[i]->meta, 0, sizeof(ops[i]->meta));
        ops[i]->wrote = 0;
        ops[i]->status = st;
        snprintf(ops[i]->detail, sizeof(ops[i]->detail), "%s",
                 etagkv_last_error_detail());
    }
}

/* Apply a batch; every op gets its outcome.  Returns the number of
 * transactions that committed (more than one when a failed batch was
 * split). */
static int apply_batch(etagkv_store *s, struct ekv_op **ops, size_t n)
{
    for (;;) {
        size_t seen = 0;
        etagkv_status st = ETAGKV_OK;
        int wrote, rc = try_batch(s, ops, n, &seen, &wrote, &st);

        if (rc == 0)
            return wrote;
        if (rc == -1) {
            /* st says why the transaction could not begin. */
        } else if (rc == MDB_MAP_FULL) {
            st = ekv_grow(s, seen);
            if (st == ETAGKV_OK)
                continue; /* evaluate the whole batch afresh */
        } else {
            st = ekv_write_status(s, rc);
        }
        if (n == 1) {
            fail_all(ops, 1, st);
            return 0;
        }
        /* Which operation is to blame?  Each alone finds out. */
        wrote = 0;
        for (size_t i = 0; i < n; i++)
            wrote += apply_batch(s, &ops[i], 1);
        return wrote;
    }
}

/* ---- the queue -------------------------------------------------------------
 */

/* Collect the batch the leader w commits: w and those queued behind it, in
 * order, up to the caps.  Returns the last waiter taken. */
static struct ekv_waiter *take_batch(struct ekv_waiter *w, struct ekv_op **ops,
                                     size_t *n)
{
    struct ekv_waiter *last = w;
    size_t bytes = 0;

    *n = 0;
    for (struct ekv_waiter *p = w; p != NULL && *n < BATCH_MAX_OPS;
         p = p->next) {
        if (*n > 0 && bytes + p->op->value_len > BATCH_MAX_BYTES)
            break;
        bytes += p->op->value_len;
        ops[(*n)++] = p->op;
        last = p;
    }
    return last;
}

/* With queue_lock held: wake whoever leads the queue's head next -- its own
 * thread for a blocking write, the committer thread for a submitted one. */
static void wake_head(etagkv_store *s)
{
    struct ekv_waiter *h = s->queue_head;

    if (h == NULL)
        return;
    if (h->async != NULL)
        (void)pthread_cond_signal(&s->committer_cv);
    else
        (void)pthread_cond_signal(&h->cv);
}

/* With queue_lock held: dequeue w..last and mark them done.  Blocking
 * waiters other than `self` (the leader's own, or NULL) are woken (a woken
 * writer returns and its waiter, on its stack, goes away: safe, as it
 * cannot run before we unlock); submitted ones are appended to *finished,
 * in queue order, for their callbacks, to be called unlocked.  The caller
 * then leads the next batch or wakes whoever leads it (wake_head). */
static void finish_batch(etagkv_store *s, struct ekv_waiter *w,
                         struct ekv_waiter *last, struct ekv_waiter **finished,
                         const struct ekv_waiter *self)
{
    struct ekv_waiter *p = w, *next;
    struct ekv_waiter **tail = finished;

    while (*tail != NULL)
        tail = &(*tail)->next;
    for (;;) {
        next = p->next;
        p->done = 1;
        if (p->async != NULL) {
            /* p->next was the queue link, already read into next. */
            *tail = p;
            tail = &p->next;
        } else if (p != self) {
            (void)pthread_cond_signal(&p->cv);
        }
        if (p == last)
            break;
        p = next;
    }
    *tail = NULL;
    s->queue_head = next;
    if (next == NULL)
        s->queue_tail = NULL;
}

/* With queue_lock held and w at the head: commit one batch for w and the
 * writes queued behind it; `self` is the leader's own waiter (NULL for the
 * committer thread).  The lock is released while the transaction runs, so
 * that more writes can queue for the next batch meanwhile. */
static void lead(etagkv_store *s, struct ekv_waiter *w,
                 struct ekv_waiter **finished, const struct ekv_waiter *self)
{
    struct ekv_op *ops[BATCH_MAX_OPS];
    struct ekv_waiter *last;
    size_t n = 0, wrote = 0;
    int committed;

    last = take_batch(w, ops, &n);
    (void)pthread_mutex_unlock(&s->queue_lock);
    committed = apply_batch(s, ops, n);
    for (size_t i = 0; i < n; i++)
        wrote += (size_t)ops[i]->wrote;
    (void)pthread_mutex_lock(&s->queue_lock);
    s->write_txns += (uint64_t)committed;
    s->write_ops += wrote;
    finish_batch(s, w, last, finished, self);
}

static void enqueue(etagkv_store *s, struct ekv_waiter *w)
{
    if (s->queue_tail != NULL)
        s->queue_tail->next = w;
    else
        s->queue_head = w;
    s->queue_tail = w;
}

/* ---- asynchronous writes ------------------------------------------------ */

struct ekv_async {
    struct ekv_waiter w;
    struct ekv_op op;
    etagkv_done_fn fn;
    void *ctx;
};

struct ekv_async *ekv_async_new(etagkv_done_fn fn, void *ctx)
{
    struct ekv_async *a = calloc(1, sizeof(*a));

    if (a != NULL) {
        a->fn = fn;
        a->ctx = ctx;
        a->w.op = &a->op;
        a->w.async = a;
    }
    return a;
}

struct ekv_op *ekv_async_op(struct ekv_async *a)
{
    return &a->op;
}

void ekv_async_free(struct ekv_async *a)
{
    free(a);
}

/* Call the callbacks of finished submitted writes, in submission order
 * (queue_lock not held).  During each, etagkv_last_error_detail() on this
 * thread describes that write's failure, as after a blocking call. */
static void notify(struct ekv_waiter *finished)
{
    while (finished != NULL) {
        struct ekv_async *a = finished->async;
        etagkv_result res;

        finished = finished->next;
        res.status = a->op.status;
        res.meta = a->op.meta;
        res.replayed = a->op.replayed;
        if (a->op.detail[0] != '\0')
            (void)ekv_fail(a->op.status, "%s", a->op.detail);
        else
            ekv_clear_error();
        a->fn(a->ctx, &res);
        free(a);
    }
}

/* The committer thread: leads every batch whose head is a submitted write
 * (a blocking writer at the head leads its own).  On shutdown it drains
 * what was submitted before exiting. */
static void *committer_main(void *arg)
{
    etagkv_store *s = arg;

    (void)pthread_mutex_lock(&s->queue_lock);
    for (;;) {
        struct ekv_waiter *finished = NULL;

        while (!(s->queue_head != NULL && s->queue_head->async != NULL) &&
               !s->committer_stop)
            (void)pthread_cond_wait(&s->committer_cv, &s->queue_lock);
        if (s->queue_head == NULL || s->queue_head->async == NULL)
            break; /* stopping, and nothing of ours is queued */
        /* No blocking leader is active here: one leads only while the
         * head is its batch's blocking writer (commit_queued). */
        lead(s, s->queue_head, &finished, NULL);
        wake_head(s);
        if (finished != NULL) {
            (void)pthread_mutex_unlock(&s->queue_lock);
            notify(finished);
            (void)pthread_mutex_lock(&s->queue_lock);
        }
    }
    (void)pthread_mutex_unlock(&s->queue_lock);
    return NULL;
}

etagkv_status ekv_commit_async(etagkv_store *s, struct ekv_async *a)
{
    etagkv_status st = ETAGKV_OK;

    (void)pthread_mutex_lock(&s->queue_lock);
    if (!s->committer_started) {
        if (pthread_create(&s->committer, NULL, committer_main, s) != 0)
            st = ekv_fail(ETAGKV_NO_MEMORY, "cannot start the committer");
        else
            s->committer_started = 1;
    }
    if (st == ETAGKV_OK) {
        enqueue(s, &a->w);
        if (s->queue_head == &a->w)
            wake_head(s);
    }
    (void)pthread_mutex_unlock(&s->queue_lock);
    return st;
}

void ekv_commit_shutdown(etagkv_store *s)
{
    int started;

    (void)pthread_mutex_lock(&s->queue_lock);
    started = s->committer_started;
    s->committer_stop = 1;
    (void)pthread_cond_signal(&s->committer_cv);
    (void)pthread_mutex_unlock(&s->queue_lock);
    if (started)
        (void)pthread_join(s->committer, NULL);
}

/* ---- blocking writes ---------------------------------------------------- */

/* Queue op and wait until it has its outcome, leading a batch if it
 * reaches the head of the queue with no batch being led.  0, or -1 if it
 * could not wait. */
static int commit_queued(etagkv_store *s, struct ekv_op *op)
{
    struct ekv_waiter w = {.op = op};
    struct ekv_waiter *finished = NULL;

    if (pthread_cond_init(&w.cv, NULL) != 0)
        return -1;
    (void)pthread_mutex_lock(&s->queue_lock);
    enqueue(s, &w);
    /* s->leading: another thread is leading batches; it marks this
     * waiter done if it leads its batch, or wakes the head when it stops. */
    while (!w.done && (s->queue_head != &w || s->leading))
        (void)pthread_cond_wait(&w.cv, &s->queue_lock);
    if (!w.done) {
        int more = s->opts.sync_mode == ETAGKV_NOSYNC ? LEAD_MORE_NOSYNC : 0;

        s->leading = 1;
        lead(s, &w, &finished, &w);
        /* nosync: lead the next batches too while blocking writers head
         * the queue (see the top of this file). */
        while (more-- > 0 && s->queue_head != NULL &&
               s->queue_head->async == NULL)
            lead(s, s->queue_head, &finished, &w);
        s->leading = 0;
        wake_head(s);
    }
    (void)pthread_mutex_unlock(&s->queue_lock);
    (void)pthread_cond_destroy(&w.cv);
    /* Submitted writes that rode in this thread's batches. */
    notify(finished);
    return 0;
}

etagkv_status ekv_commit(etagkv_store *s, struct ekv_op *op)
{
    op->detail[0] = '\0';
    if (commit_queued(s, op) != 0)
        return ekv_fail(ETAGKV_NO_MEMORY, "pthread_cond_init");
    /* The diagnostic belongs to the caller's thread, whichever thread
     * committed. */
    if (op->detail[0] != '\0')
        (void)ekv_fail(op->status, "%s", op->detail);
    else
        ekv_clear_error();
    return op->status;
}
