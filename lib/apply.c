/*
 * apply.c -- evaluating and applying writes inside a write transaction:
 * one operation (read the record, evaluate the conditions, write), and a
 * batch of them in one transaction, split when it fails (DESIGN §4).
 *
 * Each operation is evaluated against the state the earlier operations of
 * its batch left, so every outcome equals that of a serial execution in
 * queue order.  An operation's own failure (a 412, a 404) writes nothing and
 * so cannot affect its neighbours.  A store-level failure is never pinned
 * on the wrong operation: the batch is abandoned (nothing of it is visible)
 * and, after growing the map if it ran out of room, retried; if it fails
 * again, each operation is retried alone so that each gets its own
 * truthful status.  No operation is acknowledged before its transaction
 * committed.
 *
 * Waiting writes.  A write with a wait (etagkv_request.wait_ms) whose
 * conditions fail is not answered: it waits in s->waiting, out of the
 * queue, and every later transaction that changes its key (a put, a
 * delete, a transaction's write, a lease's expiry: whatever appends to the
 * change log) evaluates it again, in that same transaction, right after
 * the operation that changed the key -- waiting writes of one key in
 * arrival order.  The first time its conditions hold it is applied there,
 * and acknowledged with that transaction; when its wait ends first, the
 * next transaction (commit.c runs an empty one, a tick, when nobody
 * writes) evaluates it a last time and its answer stands, a 412 against
 * the state then.  So a lock's release and the next acquire commit
 * together, with one sync, and nobody polls.  The list is the
 * transaction's business like everything it writes: a transaction that
 * fails or is run again leaves it as it was (waiting_undo()).
 *
 * Storage goes through backend.h only; commit.c decides which operations
 * form a batch.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "store.h"

/* Writes waiting at once, at most: past it, a write's 412 is answered
 * at once, as without a wait.  Every change of a key looks through them. */
#define WAITING_MAX 4096
_Static_assert((EKV_WAITING_BUCKETS & (EKV_WAITING_BUCKETS - 1)) == 0,
               "a power of two");

void (*ekv_test_after_expire)(etagkv_store *s);

/* ---- one operation inside a transaction ---------------------------------- */

void ekv_op_drop_current(struct ekv_op *op)
{
    free(op->current);
    op->current = NULL;
    op->current_len = 0;
}

/* Write op's new record over `old` (NULL when absent) at revision rev. */
static etagkv_status op_put(etagkv_store *s, ekv_txn *txn, struct ekv_op *op,
                            const ekv_record *old, uint64_t rev)
{
    uint64_t now = ekv_now_ns(s);
    ekv_record r;
    char ctype[ETAGKV_CONTENT_TYPE_MAX];
    void *dst;
    etagkv_status st;

    ekv_record_successor(&r, old, now, rev);
    memcpy(r.hash, op->value_hash, EKV_HASH_BYTES);
    r.content_type = op->content_type;
    r.content_type_len = op->content_type_len;
    if (op->keep_content_type && old != NULL) {
        /* Copied: old points into a page that the put may rearrange. */
        memcpy(ctype, old->content_type, old->content_type_len);
        r.content_type = ctype;
        r.content_type_len = old->content_type_len;
    }
    r.value = op->value;
    r.value_len = op->value_len;

    st = ekv_record_reserve(txn, op->key, op->key_len,
                            ekv_record_size(r.content_type_len, r.value_len),
                            &dst);
    if (st != ETAGKV_OK)
        return st;
    ekv_record_encode(dst, &r);
    ekv_record_meta(&r, &op->meta);
    memcpy(op->meta_hash, r.hash, EKV_HASH_BYTES);
    op->status = old != NULL ? ETAGKV_OK : ETAGKV_CREATED;
    return ETAGKV_OK;
}

/* A put naming a lease that is unknown or dead, or full (max_lease_keys),
 * is a conflict (409) before its conditions are looked at: the
 * unconditional request would fail too (RFC 9110 §13.2.1).  op->status is
 * ETAGKV_OK when the lease takes the key. */
static etagkv_status lease_check(etagkv_store *s, ekv_txn *txn,
                                 struct ekv_op *op)
{
    enum ekv_lease_verdict v;
    etagkv_status st =
        ekv_lease_admit(s, txn, op->lease, op->key, op->key_len, 0, &v);

    op->status = ETAGKV_OK;
    if (st == ETAGKV_OK && v == EKV_LEASE_DEAD) {
        op->status = ETAGKV_CONFLICT;
        snprintf(op->detail, sizeof(op->detail),
                 "lease %llu is unknown, revoked or expired",
                 (unsigned long long)op->lease);
    } else if (st == ETAGKV_OK && v == EKV_LEASE_FULL) {
        op->status = ETAGKV_CONFLICT;
        snprintf(op->detail, sizeof(op->detail),
                 "lease %llu holds its most keys (max_lease_keys %llu): "
                 "attach this one to another lease",
                 (unsigned long long)op->lease,
                 (unsigned long long)s->opts.max_lease_keys);
    }
    return st;
}

/* A 412 asked for the current value (ETAGKV_WRITE_RETURN_CURRENT): copy
 * it now, from the record the conditions were evaluated against.  Without
 * memory the 412 stands, with no value (etagkv.h). */
static void keep_current(struct ekv_op *op, const ekv_record *old)
{
    /* malloc(0) may return NULL: one byte more keeps "empty" apart from
     * "no memory". */
    op->current = malloc(old->value_len + 1);
    if (op->current == NULL)
        return;
    memcpy(op->current, old->value, old->value_len);
    op->current_len = old->value_len;
}

int ekv_op_refuse_early(etagkv_store *s, struct ekv_op *op)
{
    ekv_txn txn;
    ekv_record old;
    etagkv_meta meta;
    etagkv_status st;
    int refused = 0;

    /* A lease is checked before the conditions (409 first); an
     * idempotency key records even a 412; a read-only store answers
     * ETAGKV_READ_ONLY to any write; in pipelined mode the latest
     * committed state may not be durable yet (commit.c). */
    if (op->txn != NULL || op->lease_verb != EKV_LEASE_NONE || op->lease != 0 ||
        op->idem_len > 0 || op->cond == NULL || op->wait_until_ns != 0 ||
        s->opts.read_only || s->opts.sync_mode == ETAGKV_SYNC_PIPELINED)
        return 0;
    /* Nor before this thread's own submitted writes are done: its writes
     * are applied in the order it made them (ekv_queue.pending). */
    if (!op->independent &&
        atomic_load(&s->queue.pending[ekv_thread_slot()]) > 0)
        return 0;
    /* On etcd this read is a round trip of its own, while the batch reads
     * the record in its first read anyway (batch_prefetch()) and answers a
     * 412 from it without committing: refusing early would make every
     * write that passes cost three round trips instead of two. */
    if (ekv_env_remote(s->env))
        return 0;
    if (ekv_read_begin(s->env, &txn) != ETAGKV_OK)
        return 0;
    st = ekv_record_get(&txn, op->key, op->key_len, &old);
    if (st == ETAGKV_OK)
        ekv_record_meta(&old, &meta);
    else
        memset(&meta, 0, sizeof(meta));
    if ((st == ETAGKV_OK || st == ETAGKV_NOT_FOUND) &&
        etagkv_cond_evaluate(op->cond, op->method, &meta) ==
            ETAGKV_PRECONDITION_FAILED) {
        op->meta = meta;
        if (meta.exists)
            memcpy(op->meta_hash, old.hash, EKV_HASH_BYTES);
        op->status = ETAGKV_PRECONDITION_FAILED;
        if (op->want_current && meta.exists)
            keep_current(op, &old);
        refused = 1;
    }
    ekv_read_end(&txn);
    return refused;
}

/* Execute op in txn at the store revision *rev (advanced when op writes):
 * read the record, evaluate the conditions against it (cond.c), and only
 * then write.  The outcome goes to op->status and op->meta; the return value
 * is not ETAGKV_OK when the transaction must be abandoned. */
static etagkv_status op_execute(etagkv_store *s, ekv_txn *txn,
                                struct ekv_op *op, uint64_t *rev)
{
    ekv_record old;
    etagkv_status st;

    if (op->txn != NULL)
        return ekv_txn_execute(s, txn, op, rev);
    if (op->lease_verb != EKV_LEASE_NONE)
        return ekv_lease_execute(s, txn, op, rev);
    st = ekv_record_get(txn, op->key, op->key_len, &old);
    if (st == ETAGKV_OK) {
        ekv_record_meta(&old, &op->meta);
        memcpy(op->meta_hash, old.hash, EKV_HASH_BYTES);
    } else if (st != ETAGKV_NOT_FOUND) {
        if (txn->conflict)
            return st;   /* the batch runs again (etcd_txn.c, overtaken()) */
        op->status = st; /* a corrupt record: this op's failure alone */
        snprintf(op->detail, sizeof(op->detail), "%s",
                 etagkv_last_error_detail());
        return ETAGKV_OK;
    }
    if (op->lease != 0) {
        st = lease_check(s, txn, op);
        if (st != ETAGKV_OK || op->status != ETAGKV_OK)
            return st;
    }
    op->status = etagkv_cond_evaluate(op->cond, op->method, &op->meta);
    if (op->status == ETAGKV_PRECONDITION_FAILED && op->want_current &&
        op->meta.exists)
        keep_current(op, &old);
    if (op->status != ETAGKV_OK)
        return ETAGKV_OK;
    if (op->method == ETAGKV_METHOD_PUT) {
        st = op_put(s, txn, op, op->meta.exists ? &old : NULL, *rev + 1);
    } else {
        st = ekv_record_delete(txn, op->key, op->key_len);
        if (st == ETAGKV_OK) {
            memset(&op->meta, 0, sizeof(op->meta));
            op->meta.mod_revision = *rev + 1;
        }
    }
    /* The change log entry, in this same transaction (DESIGN §8): it
     * commits if and only if the write does. */
    if (st == ETAGKV_OK)
        st = ekv_changes_append(s, txn, op->key, op->key_len, &op->meta,
                                op->meta_hash);
    /* A put attaches the key to its lease, or detaches it; a delete
     * detaches it (DESIGN §9). */
    if (st == ETAGKV_OK)
        st = ekv_lease_attach(txn, op->key, op->key_len,
                              op->method == ETAGKV_METHOD_PUT ? op->lease : 0);
    if (st == ETAGKV_OK) {
        op->wrote = 1;
        *rev += 1;
    }
    return st;
}

/* The outcomes worth replaying: what the request itself decided (a
 * transaction's conflict too, DESIGN §7).  Errors of the store are not
 * recorded, so a retry after one executes afresh. */
static int recordable(etagkv_status st)
{
    return st == ETAGKV_OK || st == ETAGKV_CREATED ||
           st == ETAGKV_PRECONDITION_FAILED || st == ETAGKV_NOT_FOUND ||
           st == ETAGKV_CONFLICT;
}

/* Apply op: answer it from its idempotency entry if it has a live one,
 * else execute it and record the outcome in the same transaction. */
static etagkv_status op_apply(etagkv_store *s, ekv_txn *txn, struct ekv_op *op,
                              uint64_t *rev)
{
    etagkv_status st;
    int handled = 0;

    memset(&op->meta, 0, sizeof(op->meta));
    ekv_op_drop_current(op); /* of an earlier run of the batch */
    op->wrote = op->dirty = op->replayed = op->recorded = 0;
    op->detail[0] = '\0';
    if (op->tick) {
        op->status = ETAGKV_OK; /* commit.c's tick: nothing to do */
        return ETAGKV_OK;
    }
    if (op->idem_len > 0) {
        st = ekv_idem_check(s, txn, op, &handled);
        if (st != ETAGKV_OK || handled)
            return st;
    }
    st = op_execute(s, txn, op, rev);
    if (st == ETAGKV_OK && op->idem_len > 0 && recordable(op->status)) {
        st = ekv_idem_record(s, txn, op);
        op->dirty = op->recorded = st == ETAGKV_OK;
    }
    op->dirty |= op->wrote;
    return st;
}

/* ---- waiting writes (see the top of this file) ----------------------------
 */

static unsigned waiting_bucket(const void *key, size_t key_len)
{
    return (unsigned)XXH3_64bits(key, key_len) & (EKV_WAITING_BUCKETS - 1);
}

void ekv_waiting_touch(etagkv_store *s, const void *key, size_t key_len)
{
    struct ekv_op *p = s->waiting.bucket[waiting_bucket(key, key_len)];

    for (; p != NULL; p = p->wait_same)
        if (!p->wait_done && p->key_len == key_len &&
            memcmp(p->key, key, key_len) == 0)
            p->wait_hit = s->waiting.any_hit = s->waiting.marked = 1;
}

/* Whether op, just evaluated, goes on waiting: it has a wait that has not
 * ended, and its conditions failed. */
static int keeps_waiting(const etagkv_store *s, const struct ekv_op *op)
{
    return op->wait_until_ns != 0 && op->status == ETAGKV_PRECONDITION_FAILED &&
           !atomic_load(&s->waiting.expire_all) &&
           ekv_mono_ns() < op->wait_until_ns;
}

/* op of the running batch failed its conditions and has a wait: it waits
 * (unless WAITING_MAX are waiting); its 412 is not an answer yet. */
static void waiting_add(etagkv_store *s, struct ekv_op *op)
{
    if (!keeps_waiting(s, op) || s->waiting.n >= WAITING_MAX)
        return;
    ekv_op_drop_current(op);
    op->wait_new = 1;
    op->wait_hit = op->wait_done = 0;
    op->wait_next = NULL;
    op->wait_bucket = waiting_bucket(op->key, op->key_len);
    if (s->waiting.tail != NULL)
        s->waiting.tail->wait_next = op;
    else
        s->waiting.head = op;
    s->waiting.tail = op;
    s->waiting.n++;
    op->wait_same = s->waiting.bucket[op->wait_bucket];
    s->waiting.bucket[op->wait_bucket] = op;
    s->waiting.marked = 1;
}

/* At the start of a transaction: the waits that have ended are evaluated
 * a last time (all of them when closing), and every waiting write again
 * when another handle committed (ekv_waiting_recheck()): its key may have
 * changed there. */
static void waiting_expire(etagkv_store *s)
{
    uint64_t now = ekv_mono_ns();
    int all = atomic_load(&s->waiting.expire_all);

    s->waiting.rechecking = atomic_exchange(&s->waiting.recheck, 0);
    if (!all && !s->waiting.rechecking &&
        now < atomic_load(&s->waiting.next_deadline))
        return; /* no wait has ended: the earliest is still to come */
    for (struct ekv_op *p = s->waiting.head; p != NULL; p = p->wait_next)
        if (all || s->waiting.rechecking || p->wait_until_ns <= now)
            p->wait_hit = s->waiting.any_hit = s->waiting.marked = 1;
}

/* Evaluate again, in arrival order, every waiting write whose key changed
 * or whose wait ended, until none is left: one applied may change the key
 * for those behind it.  *dirty, *changed and *recorded as run_batch()
 * counts them. */
static etagkv_status waiting_run(etagkv_store *s, ekv_txn *txn, uint64_t *rev,
                                 int *dirty, size_t *changed, size_t *recorded)
{
    while (s->waiting.any_hit) {
        struct ekv_op *p = s->waiting.head;
        etagkv_status st;

        while (p != NULL && !(p->wait_hit && !p->wait_done))
            p = p->wait_next;
        if (p == NULL)
            break;
        p->wait_hit = 0;
        st = op_apply(s, txn, p, rev);
        if (st != ETAGKV_OK) {
            /* Its own failure (its value does not fit, say), not the
             * failure of the write that changed its key. */
            s->waiting.culprit = p;
            return st;
        }
        *dirty |= p->dirty;
        *changed += (size_t)p->wrote;
        *recorded += (size_t)p->recorded;
        if (keeps_waiting(s, p))
            ekv_op_drop_current(p);
        else
            p->wait_done = 1;
        p->wait_hit = 0; /* its own write, if it wrote */
    }
    s->waiting.any_hit = 0;
    return ETAGKV_OK;
}

static void waiting_unlink(struct ekv_waiting *w, struct ekv_op *prev,
                           struct ekv_op *p)
{
    if (prev != NULL)
        prev->wait_next = p->wait_next;
    else
        w->head = p->wait_next;
    if (w->tail == p)
        w->tail = prev;
    p->wait_next = NULL;
    w->n--;
    for (struct ekv_op **q = &w->bucket[p->wait_bucket]; *q != NULL;
         q = &(*q)->wait_same)
        if (*q == p) {
            *q = p->wait_same;
            break;
        }
    p->wait_same = NULL;
}

/* p leaves the list decided: for commit.c to acknowledge with the batch,
 * unless it is one of the batch's own ops (acknowledged as such). */
static void waiting_decided(struct ekv_waiting *w, struct ekv_op *p)
{
    p->waiting = 0;
    if (p->in_batch)
        return;
    p->decided_next = NULL;
    if (w->decided_tail != NULL)
        w->decided_tail->decided_next = p;
    else
        w->decided = p;
    w->decided_tail = p;
}

/* The earliest deadline of the waiting writes, for the committer. */
static void waiting_publish(struct ekv_waiting *w)
{
    uint64_t next_deadline = 0;

    for (const struct ekv_op *p = w->head; p != NULL; p = p->wait_next)
        if (next_deadline == 0 || p->wait_until_ns < next_deadline)
            next_deadline = p->wait_until_ns;
    atomic_store(&w->next_deadline, next_deadline);
    atomic_store(&w->count, (uint64_t)w->n);
}

/* p, decided with status st (no state: the write did not happen, or may
 * have), leaves the list. */
static void waiting_answer(struct ekv_waiting *w, struct ekv_op *prev,
                           struct ekv_op *p, etagkv_status st)
{
    waiting_unlink(w, prev, p);
    memset(&p->meta, 0, sizeof(p->meta));
    ekv_op_drop_current(p);
    p->wrote = 0;
    p->status = st;
    snprintf(p->detail, sizeof(p->detail), "%s", etagkv_last_error_detail());
    waiting_decided(w, p);
}

/* The transaction failed with st (nothing of it is visible): the list as
 * it was before it -- but a waiting write it decided is answered with st
 * when the commit's outcome is unknown (it may have been applied: waiting
 * on, it would see its own write). */
static void waiting_undo(etagkv_store *s, etagkv_status st)
{
    struct ekv_waiting *w = &s->waiting;
    struct ekv_op *prev = NULL, *p = w->head;

    if (w->rechecking) /* for the transaction run in its place */
        atomic_store(&w->recheck, 1);
    w->rechecking = w->any_hit = w->marked = 0;
    while (p != NULL) {
        struct ekv_op *next = p->wait_next;

        if (p->wait_new) {
            waiting_unlink(w, prev, p); /* the batch's own: it reruns */
        } else if (st == ETAGKV_OUTCOME_UNKNOWN && p->wait_done) {
            waiting_answer(w, prev, p, st);
        } else {
            prev = p;
        }
        p->wait_new = p->wait_hit = p->wait_done = 0;
        p = next;
    }
    waiting_publish(w);
}

/* A transaction failed for good with st while the waits are ending
 * (closing, etagkv_end_waits()): no transaction may come that can end
 * them, so every waiting write is answered with st. */
static void waiting_fail_all(etagkv_store *s, etagkv_status st)
{
    struct ekv_waiting *w = &s->waiting;

    if (!atomic_load(&w->expire_all))
        return;
    while (w->head != NULL)
        waiting_answer(w, NULL, w->head, st);
    waiting_publish(w);
}

/* The transaction has its outcome (committed, or nothing to commit): the
 * writes it decided leave the list (waiting_decided()), and those it put
 * there now wait (op->waiting, which tells commit.c to hold back their
 * acknowledgement). */
static void waiting_settle(etagkv_store *s)
{
    struct ekv_waiting *w = &s->waiting;
    struct ekv_op *prev = NULL, *p = w->head;

    w->rechecking = w->any_hit = 0;
    if (!w->marked)
        return; /* nothing added, nothing evaluated: nothing changed */
    w->marked = 0;
    while (p != NULL) {
        struct ekv_op *next = p->wait_next;

        if (p->wait_done) {
            waiting_unlink(w, prev, p);
            waiting_decided(w, p);
        } else {
            p->waiting = 1;
            prev = p;
        }
        p->wait_new = p->wait_done = p->wait_hit = 0;
        p = next;
    }
    waiting_publish(w);
}

struct ekv_op *ekv_waiting_take_decided(etagkv_store *s)
{
    struct ekv_op *d = s->waiting.decided;

    s->waiting.decided = s->waiting.decided_tail = NULL;
    return d;
}

/* ---- a batch in one transaction ------------------------------------------ */

/* Announce what the batch will read (backend.h, ekv_prefetch()), so that an
 * engine whose reads are round trips (etcd) fetches it all in the
 * transaction's first read: the record and idempotency entry of every
 * single write, the change log's oldest events when the trim looks due,
 * the idempotency purge's page.  A multi-key transaction or a lease operation
 * reads its keys when it runs.  Nothing to do on LMDB. */
static etagkv_status batch_prefetch(etagkv_store *s, ekv_txn *txn,
                                    struct ekv_op **ops, size_t n)
{
    size_t keyed = 0;
    etagkv_status st = ETAGKV_OK;

    if (!ekv_env_remote(s->env))
        return ETAGKV_OK;
    for (size_t i = 0; i < n && st == ETAGKV_OK; i++) {
        const struct ekv_op *op = ops[i];

        if (op->idem_len > 0) {
            keyed++;
            st = ekv_prefetch(txn, EKV_TABLE_IDEMPOTENCY, op->idem_key,
                              op->idem_len, NULL, 0, 0);
        }
        if (st == ETAGKV_OK && op->txn == NULL &&
            op->lease_verb == EKV_LEASE_NONE)
            st = ekv_prefetch(txn, EKV_TABLE_RECORDS, op->key, op->key_len,
                              NULL, 0, 0);
    }
    /* The waiting writes it evaluates first (waiting_expire()). */
    for (const struct ekv_op *p = s->waiting.any_hit ? s->waiting.head : NULL;
         p != NULL && st == ETAGKV_OK; p = p->wait_next)
        if (p->wait_hit)
            st = ekv_prefetch(txn, EKV_TABLE_RECORDS, p->key, p->key_len, NULL,
                              0, 0);
    if (st == ETAGKV_OK)
        st = ekv_changes_prefetch(s, txn, n);
    if (st == ETAGKV_OK)
        st = ekv_idem_prefetch(s, txn, keyed);
    return st;
}

/* Apply ops[0..n) in one transaction, which the caller has begun and this
 * function ends.  ETAGKV_OK when every op has its outcome (committed, or
 * nothing to commit; *committed says which), else the status that made
 * the transaction fail (nothing of it is visible). */
static etagkv_status run_batch(etagkv_store *s, ekv_txn *txn,
                               struct ekv_op **ops, size_t n, int *committed)
{
    struct ekv_changes_view view;
    uint64_t rev = 0, sync_start;
    uint64_t start = ekv_mono_ns(); /* the writer lock held: work only */
    int dirty = 0;
    size_t recorded = 0, changed = 0;
    etagkv_status st;

    if (s->waiting.head != NULL)
        waiting_expire(s);
    if (ekv_test_after_expire != NULL)
        ekv_test_after_expire(s);
    st = batch_prefetch(s, txn, ops, n);
    if (st == ETAGKV_OK)
        st = ekv_revision_get(txn, &rev);

    ekv_changes_begin(s);
    if (st == ETAGKV_OK && s->waiting.head != NULL)
        st = waiting_run(s, txn, &rev, &dirty, &changed, &recorded);
    for (size_t i = 0; i < n && st == ETAGKV_OK; i++) {
        st = op_apply(s, txn, ops[i], &rev);
        dirty |= ops[i]->dirty;
        changed += (size_t)ops[i]->wrote;
        recorded += (size_t)ops[i]->recorded;
        if (st == ETAGKV_OK && ops[i]->wait_until_ns != 0)
            waiting_add(s, ops[i]);
        if (st == ETAGKV_OK && s->waiting.head != NULL)
            st = waiting_run(s, txn, &rev, &dirty, &changed, &recorded);
    }
    if (st == ETAGKV_OK && !dirty) {
        /* Only failed preconditions or missing keys: nothing to sync,
         * once the engine has made sure they were decided on the store's
         * state (etcd's remembered keys, backend.h). */
        return ekv_write_settle(txn);
    }
    if (st == ETAGKV_OK && changed > 0)
        st = ekv_revision_put(txn, rev);
    if (st == ETAGKV_OK)
        st = ekv_idem_maintain(s, txn, recorded); /* purge a little */
    /* Trim a little: as many events as were appended (a transaction or a
     * revoked lease appends one per key), and a few more.  Last: on etcd
     * it takes what room the commit has left (changes.c). */
    if (st == ETAGKV_OK && changed > 0)
        st = ekv_changes_trim(s, txn, s->changes.appended);
    if (st != ETAGKV_OK) {
        ekv_write_abort(txn);
        return st;
    }
    ekv_changes_pending(s, &view); /* the transaction is still ours */
    sync_start = ekv_mono_ns();
    st = ekv_write_commit(txn);
    *committed = st == ETAGKV_OK;
    if (*committed) {
        uint64_t end = ekv_mono_ns();

        /* Another writer may be inside its transaction already. */
        ekv_changes_committed(s, &view);

        ekv_hist_observe(&s->queue.commit_ns, end - start);
        ekv_hist_observe(&s->queue.sync_ns, end - sync_start);
    }
    return st;
}

static void fail_all(struct ekv_op **ops, size_t n, etagkv_status st)
{
    for (size_t i = 0; i < n; i++) {
        memset(&ops[i]->meta, 0, sizeof(ops[i]->meta));
        ekv_op_drop_current(ops[i]);
        ops[i]->wrote = 0;
        ops[i]->status = st;
        snprintf(ops[i]->detail, sizeof(ops[i]->detail), "%s",
                 etagkv_last_error_detail());
    }
}

/* A batch whose optimistic commit lost to another writer (txn.conflict)
 * runs again, up to this many times before it fails as unavailable: under
 * contention some writer always wins, so the cap only bounds how long one
 * unlucky batch can lose in a row. */
#define CONFLICT_RETRIES 10000

/* After the n-th conflict in a row, wait a little, and more each time (up
 * to about 2 ms, randomised), so that writers that keep colliding spread
 * out instead of colliding again. */
static void conflict_pause(unsigned n)
{
    static _Thread_local unsigned seed;
    struct timespec ts = {0, 0};
    unsigned cap_us = n < 4 ? 0 : (n < 11 ? 1u << n : 2048u);

    if (cap_us == 0)
        return;
    seed = seed * 1103515245u + 12345u + (unsigned)(uintptr_t)&ts;
    ts.tv_nsec = (long)(seed % cap_us) * 1000;
    (void)nanosleep(&ts, NULL);
}

int ekv_apply_batch(etagkv_store *s, struct ekv_op **ops, size_t n)
{
    unsigned conflicts = 0;

    for (;;) {
        ekv_txn txn;
        int committed = 0;
        etagkv_status st = ekv_write_begin(s->env, &txn);

        if (st == ETAGKV_OK) {
            struct ekv_op *culprit;

            s->waiting.culprit = NULL;
            st = run_batch(s, &txn, ops, n, &committed);
            if (st == ETAGKV_OK) {
                waiting_settle(s);
                return committed;
            }
            /* A waiting write that failed the transaction by itself, not
             * one of the batch's, which the batch's own retries judge. */
            culprit =
                s->waiting.culprit != NULL && !s->waiting.culprit->wait_new
                    ? s->waiting.culprit
                    : NULL;
            waiting_undo(s, st);
            if (txn.conflict && ++conflicts <= CONFLICT_RETRIES) {
                conflict_pause(conflicts);
                continue; /* evaluate the whole batch afresh */
            }
            if (st == ETAGKV_TXN_TOO_LARGE && s->changes.trim_wide &&
                !s->changes.trim_tight) {
                /* etcd refused it, unapplied: its trim took the room of
                 * a default --max-txn-ops that this cluster has lowered.
                 * Trim as before the room was looked at, from now on. */
                s->changes.trim_tight = 1;
                continue;
            }
            if (txn.out_of_room) {
                st = ekv_env_grow(s->env, &txn);
                if (st == ETAGKV_OK)
                    continue; /* evaluate the whole batch afresh */
            }
            if (culprit != NULL) {
                /* Its failure is its answer; the batch runs without it. */
                struct ekv_op *prev = NULL, *p = s->waiting.head;

                while (p != NULL && p != culprit) {
                    prev = p;
                    p = p->wait_next;
                }
                if (p != NULL) {
                    waiting_answer(&s->waiting, prev, p, st);
                    waiting_publish(&s->waiting);
                    continue;
                }
            }
        }
        if (n == 1 || st == ETAGKV_OUTCOME_UNKNOWN) {
            /* A commit whose outcome is unknown may have been applied:
             * running any of it again could apply it twice, or answer a
             * 412 caused by its own first run.  Say so, do not guess. */
            fail_all(ops, n, st);
            waiting_fail_all(s, st);
            return 0;
        }
        /* Which operation is to blame?  Each alone finds out. */
        committed = 0;
        for (size_t i = 0; i < n; i++)
            committed += ekv_apply_batch(s, &ops[i], 1);
        return committed;
    }
}
