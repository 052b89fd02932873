/*
 * commit.c -- group commit (DESIGN §4): the queue of writers, the leader
 * protocol, and the committer thread for submitted writes.
 *
 * LMDB has one writer at a time and a durable commit costs a sync, so one
 * transaction per write caps a store at a few thousand writes per second
 * however many threads wait.  Here concurrent writers queue in arrival
 * order; the writer at the head of the queue (the leader) takes every
 * operation queued behind it, up to a cap, and has them applied in order in
 * one transaction with one sync (apply.c), then wakes them.  Nobody waits
 * for company: a lone writer commits at once, and a batch is whatever
 * queued while the previous commit ran (LevelDB's writer queue, in C).
 *
 * In nosync mode a commit syncs nothing and costs a few µs, about what it
 * costs to wake the thread that would lead the next batch; so there the
 * leader, once its own write is done, leads up to LEAD_MORE_NOSYNC further
 * batches of blocking writes itself, waking each batch's writers to
 * return, instead of handing the queue to the next head and waiting for
 * that thread to be scheduled.  Queue order and outcomes are unchanged;
 * the thread running a batch differs, and batches come smaller, the queue
 * being drained sooner.
 *
 * Also in nosync mode, a blocking writer that finds nobody queued does not
 * queue at all: it takes LMDB's writer lock itself and commits alone, as a
 * caller of raw LMDB would (DESIGN §4: batching is the means, not the
 * promise).  LMDB's lock then orders it against any leader, each
 * transaction still one serial step, and everything a transaction touches
 * beyond LMDB (the change log's position, the idempotency purge cursor) is
 * touched only while that lock is held.  Submitted writes, and blocking
 * ones that find writes queued, queue and batch as always; since a
 * thread's own submitted writes count as queued until they are done, its
 * next blocking write never overtakes them.
 *
 * Refused early.  A single conditional write (no transaction, lease or
 * idempotency key, which a batch must see) is first evaluated against the
 * latest committed state, in a read transaction on the caller's thread;
 * if its conditions fail there, that is its answer, a 412, without a
 * place in any batch or a wait for a sync.  This is still a serial order:
 * the write takes its place just after the last commit, before the
 * writes queued meanwhile, which nobody has been told of yet; and the
 * state it was refused on is durable (in sync mode readers see a commit
 * only once it is; in nosync mode it is as durable as that mode makes
 * anything).  A write whose conditions hold there queues as usual and
 * is evaluated again in its batch.  Under contention most conditional
 * writes fail: a hot key's losers no longer fill the batches and wait for
 * their syncs.  Not in pipelined mode, below: there a reader may see a
 * commit before it is durable, so a 412 decided on it waits, in a batch,
 * for the flush like the writes it was refused on (ekv_op_refuse_early()
 * declines).  Nor on etcd: there the read is a round trip of its own,
 * while the batch fetches the record with its first read anyway, so a
 * write that passes would pay three round trips instead of two.
 *
 * One flush per commit (ETAGKV_SYNC_PIPELINED, opt-in; docs/design.md has
 * the argument, and why it is not the default).  The store is opened with
 * MDB_NOMETASYNC: a commit flushes its data pages (fdatasync) and then
 * writes its meta page without a flush, so the commit is visible but not
 * yet durable; the next flush of the file makes it so.  The next batch's
 * commit begins with exactly such a flush.  So a batch's writers are not
 * acknowledged when its transaction commits: the batch is held until the
 * next batch's commit has flushed (pipelining: one flush per batch while
 * writers keep coming), or, when nobody is queued behind it, until its
 * leader has flushed (ekv_env_flush()) -- after handing the lead over, so
 * that a batch arriving meanwhile commits alongside that flush instead of
 * waiting for it.  Acknowledgements, and the watchers' wake-up, come each
 * after a flush that began after the batch's commit.  Readers are another
 * matter: LMDB shows them a commit as soon as its meta page is written,
 * so a reader may see a batch whose writers are still held.  In the
 * default sync mode no batch is held: LMDB publishes a transaction to
 * readers only after its synchronous meta page write, and the batch is
 * acknowledged when its commit returns.
 *
 * Waiting writes (etagkv_request.wait_ms; apply.c decides which wait and
 * when their wait is over).  A write that waits leaves the queue with its
 * batch but is not acknowledged with it; the batch whose transaction
 * decides it acknowledges it, as one of its own.  The hand-over is under
 * apply_lock, held from a batch's transaction until its waiters are sorted
 * into its acknowledgement chain (dequeue_batch()): so a write that waits
 * is out of its own batch's chain before any other batch -- a nosync
 * writer committing alone may run one while the leader settles -- can
 * decide it and acknowledge (and free) it.  When nobody
 * writes, the committer thread sleeps until the first wait ends and then
 * commits a tick, an operation that does nothing, so that a transaction
 * evaluates the writes whose wait has ended; on shutdown it ends them all
 * that way.
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

/* pipelined: batches in a row that commit nothing (only 412s, say,
 * decided on held batches) and are held for the next commit rather than
 * flushed for, while writers are queued.  A bound, so that a stream of them
 * cannot hold acknowledgements indefinitely. */
#define HOLD_IDLE_MAX 2

void (*ekv_test_before_batch)(etagkv_store *s);
int ekv_test_ack_before_flush;

/* Bucket bounds of the commit and sync times (ns), and of batch sizes. */
static const uint64_t latency_le[] = {
    10000,     25000,     50000,     100000,    250000,   500000,
    1000000,   2500000,   5000000,   10000000,  25000000, 50000000,
    100000000, 250000000, 500000000, 1000000000};
static const uint64_t batch_le[] = {1, 2, 4, 8, 16, 32, 64, 128, BATCH_MAX_OPS};
#define N_LATENCY_LE (sizeof latency_le / sizeof latency_le[0])
#define N_BATCH_LE (sizeof batch_le / sizeof batch_le[0])
_Static_assert(N_LATENCY_LE <= ETAGKV_HISTOGRAM_BOUNDS &&
                   N_BATCH_LE <= ETAGKV_HISTOGRAM_BOUNDS,
               "the bounds fit an etagkv_histogram");

struct ekv_waiter {
    struct ekv_op *op;
    pthread_cond_t cv;       /* a blocking writer waits on it */
    struct ekv_async *async; /* a submitted write: its completion */
    int done;                /* acknowledged: its outcome is final */
    struct ekv_waiter *next;
};

/* ---- the queue ----------------------------------------------------------- */

/* Whether a batch's acknowledgements wait for a flush after its commit
 * (pipelined mode; see "One flush per commit" at the top of this file). */
static int acks_wait_for_flush(const etagkv_store *s)
{
    return s->opts.sync_mode == ETAGKV_SYNC_PIPELINED &&
           !ekv_test_ack_before_flush;
}

/* With apply_lock held: apply ops[0..n) (apply.c) and count it for
 * etagkv_store_stats() and etagkv_store_commit_stats(); *decided: the
 * waiting writes it decided (ekv_waiting_take_decided()).  When the commit
 * is as durable as the mode makes it (sync, nosync), wake the watchers
 * (wait.c) now, before any writer is acknowledged, so that a watcher never
 * learns of a change after the writer's own caller could have; in
 * pipelined mode release_held() does, once a flush covered it.  Returns
 * the transactions committed. */
static int commit_batch(etagkv_store *s, struct ekv_op **ops, size_t n,
                        struct ekv_op **decided)
{
    int committed;
    uint64_t wrote = 0;

    for (size_t i = 0; i < n; i++)
        ops[i]->in_batch = 1;
    committed = ekv_apply_batch(s, ops, n);
    for (size_t i = 0; i < n; i++)
        ops[i]->in_batch = 0;

    *decided = ekv_waiting_take_decided(s);
    for (const struct ekv_op *d = *decided; d != NULL; d = d->decided_next)
        wrote += (uint64_t)d->wrote;

    if (committed > 0 && !acks_wait_for_flush(s))
        ekv_notify_commit(&s->notify);
    for (size_t i = 0; i < n; i++)
        wrote += (uint64_t)ops[i]->wrote;
    if (!(n == 1 && ops[0]->tick))
        ekv_hist_observe(&s->queue.batch_ops, n);
    atomic_fetch_add_explicit(&s->queue.write_txns, (uint64_t)committed,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&s->queue.write_ops, wrote, memory_order_relaxed);
    return committed;
}

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

/* With the queue lock held: wake whoever leads the queue's head next -- its
 * own thread for a blocking write, the committer thread for a submitted
 * one. */
static void wake_head(etagkv_store *s)
{
    struct ekv_waiter *h = s->queue.head;

    if (h == NULL)
        return;
    if (h->async != NULL)
        (void)pthread_cond_signal(&s->queue.committer_cv);
    else
        (void)pthread_cond_signal(&h->cv);
}

/* With the queue lock held: acknowledge the waiters of the chain p (linked
 * by next, ending in NULL), in order.  Blocking waiters other than `self`
 * (the leader's own, or NULL) are woken (a woken writer returns and its
 * waiter, on its stack, goes away: safe, as it cannot run before we
 * unlock); submitted ones are appended to *finished, in order, for their
 * callbacks, to be called unlocked. */
static void release(struct ekv_waiter *p, struct ekv_waiter **finished,
                    const struct ekv_waiter *self)
{
    struct ekv_waiter **tail = finished;

    while (*tail != NULL)
        tail = &(*tail)->next;
    while (p != NULL) {
        struct ekv_waiter *next = p->next;

        p->done = 1;
        if (p->async != NULL) {
            *tail = p;
            tail = &p->next;
        } else if (p != self) {
            (void)pthread_cond_signal(&p->cv);
        }
        p = next;
    }
    *tail = NULL;
}

/* The chain w (linked by next, ending in NULL) without the waiters whose
 * write now waits (apply.c), which leave the queue unacknowledged, and
 * then the waiters of the writes `decided` after waiting; *last: its new
 * tail, NULL when it is empty. */
static struct ekv_waiter *acknowledged(struct ekv_waiter *w,
                                       const struct ekv_op *decided,
                                       struct ekv_waiter **last)
{
    struct ekv_waiter *head = NULL, **tail = &head;

    *last = NULL;
    while (w != NULL) {
        struct ekv_waiter *next = w->next;

        if (!w->op->waiting) {
            *tail = *last = w;
            tail = &w->next;
        }
        w = next;
    }
    for (; decided != NULL; decided = decided->decided_next) {
        struct ekv_waiter *d = decided->waiter;

        *tail = *last = d;
        tail = &d->next;
    }
    *tail = NULL;
    return head;
}

/* With the queue lock held, after a batch: when writes wait, the
 * committer may have to wake earlier than it planned (committer_main()):
 * when the earliest deadline is now before the one it sleeps until, or
 * when the waits are to end or be rechecked (etagkv_end_waits(),
 * ekv_waiting_recheck()) -- it may have seen the flag while this batch
 * was under way, too late for it, and gone back to sleep until the
 * deadline.  Not otherwise: a batch that leaves the waits as they were
 * costs no wake-up, and an awake committer (asleep_until 0) looks at
 * everything again before it sleeps. */
static void poke_committer(etagkv_store *s)
{
    uint64_t due = atomic_load(&s->waiting.next_deadline);
    uint64_t asleep_until = s->queue.committer_asleep_until;

    if (due == 0 || asleep_until == 0)
        return; /* nothing waits, or the committer is awake */
    if (due < asleep_until || atomic_load(&s->waiting.expire_all) ||
        atomic_load(&s->waiting.recheck))
        (void)pthread_cond_signal(&s->queue.committer_cv);
}

/* With the queue lock held: acknowledge the waiters of *h once a flush
 * covered their commits (st: ETAGKV_OK), or fail them with st when the
 * flush failed -- their writes are visible but may not survive a power
 * loss, so they may not be acknowledged -- wake the watchers, and empty
 * *h. */
static void release_held(etagkv_store *s, struct ekv_held *h, etagkv_status st,
                         struct ekv_waiter **finished,
                         const struct ekv_waiter *self)
{
    struct ekv_waiter *held = h->head;

    if (held == NULL)
        return;
    for (struct ekv_waiter *p = held; p != NULL && st != ETAGKV_OK;
         p = p->next) {
        memset(&p->op->meta, 0, sizeof(p->op->meta));
        ekv_op_drop_current(p->op);
        p->op->status = st;
        snprintf(p->op->detail, sizeof(p->op->detail),
                 "committed, but the flush that makes it durable failed: %s",
                 etagkv_last_error_detail());
    }
    if (h->commits > 0)
        ekv_notify_commit(&s->notify);
    memset(h, 0, sizeof(*h));
    release(held, finished, self);
}

/* With the queue lock held and leadership: after the batch w..last (as
 * dequeue_batch() left it: NULL when all of it waits), which made
 * `committed` transactions, acknowledge what may be acknowledged.  In pipelined
 * mode a commit's own data flush makes the meta pages of the commits before it
 * durable, not its own: so it releases the batches held before it and is held
 * itself, until the next batch's commit or, when nobody is queued to make one,
 * a flush: then the held batches move to *flush, for the caller to flush and
 * release.  A batch that committed nothing is held too while others are held or
 * being flushed: its outcomes (a 412) were decided on their unflushed state; it
 * flushed nothing, so after HOLD_IDLE_MAX of them in a row its leader
 * flushes. */
static void settle(etagkv_store *s, struct ekv_waiter *w,
                   struct ekv_waiter *last, int committed,
                   struct ekv_waiter **finished, const struct ekv_waiter *self,
                   struct ekv_held *flush)
{
    struct ekv_held *h = &s->queue.held;

    if (!acks_wait_for_flush(s)) {
        release(w, finished, self);
        return;
    }
    /* A commit counted here changed pages (run_batch() aborts a
     * transaction that changed nothing), so LMDB flushed its data file
     * after every earlier commit's meta page. */
    if (committed > 0)
        release_held(s, h, ETAGKV_OK, finished, self);
    if (w != NULL && committed == 0 && h->head == NULL &&
        s->queue.flushing == 0) {
        release(w, finished, self);
        return;
    }
    if (w != NULL) { /* NULL: the batch's writes all wait */
        if (h->tail != NULL)
            h->tail->next = w;
        else
            h->head = w;
        h->tail = last;
    }
    h->commits += (unsigned)committed;
    h->idle = committed > 0 ? 0 : h->idle + 1;
    /* Held batches are flushed when nobody is queued to commit after
     * them -- also after a batch that is not held itself. */
    if (h->head == NULL || (s->queue.head != NULL && h->idle <= HOLD_IDLE_MAX))
        return;
    *flush = *h;
    memset(h, 0, sizeof(*h));
    s->queue.flushing++;
}

/* With the queue lock and apply_lock held, after the batch w..last ran:
 * take it out of the queue, and return its acknowledgement chain -- the
 * batch without the writes that now wait, then the waiting writes it
 * decided (acknowledged()); *last gets the chain's tail. */
static struct ekv_waiter *dequeue_batch(etagkv_store *s, struct ekv_waiter *w,
                                        struct ekv_waiter *last,
                                        const struct ekv_op *decided,
                                        struct ekv_waiter **new_last)
{
    s->queue.head = last->next;
    if (s->queue.head == NULL)
        s->queue.tail = NULL;
    last->next = NULL;
    poke_committer(s);
    return acknowledged(w, decided, new_last);
}

/* With the queue lock held and leadership: commit one batch for the head
 * of the queue and the writes queued behind it; `self` is the leader's own
 * waiter (NULL for the committer thread).  The lock is released while the
 * transaction runs, so that more writes can queue for the next batch
 * meanwhile.  *flush: batches to flush, see settle(). */
static void lead(etagkv_store *s, struct ekv_waiter **finished,
                 const struct ekv_waiter *self, struct ekv_held *flush)
{
    struct ekv_op *ops[BATCH_MAX_OPS], *decided;
    struct ekv_waiter *w = s->queue.head, *last;
    size_t n = 0;
    int committed;

    if (ekv_test_before_batch != NULL) {
        /* Tests only: writers may queue behind w while the hook holds it. */
        (void)pthread_mutex_unlock(&s->queue.lock);
        ekv_test_before_batch(s);
        (void)pthread_mutex_lock(&s->queue.lock);
    }
    last = take_batch(w, ops, &n);
    (void)pthread_mutex_unlock(&s->queue.lock);
    (void)pthread_mutex_lock(&s->queue.apply_lock);
    committed = commit_batch(s, ops, n, &decided);
    (void)pthread_mutex_lock(&s->queue.lock);
    w = dequeue_batch(s, w, last, decided, &last);
    (void)pthread_mutex_unlock(&s->queue.apply_lock);
    settle(s, w, last, committed, finished, self, flush);
    atomic_fetch_sub_explicit(&s->queue.queued, n, memory_order_relaxed);
}

/* With the queue lock held, nobody leading and a write at the head: take
 * the lead, commit the head's batch -- a blocking writer `self` in nosync
 * mode also up to LEAD_MORE_NOSYNC further batches of blocking writes (see
 * the top of this file) -- then hand the lead to the next head.  If the
 * batch left held batches to flush, flush them after handing the lead
 * over: the next batch's commit may run meanwhile (its data flush covers
 * them too, and its own flush does not wait for this one), but these are
 * acknowledged here, after a flush that began after their commits. */
static void lead_turn(etagkv_store *s, struct ekv_waiter **finished,
                      const struct ekv_waiter *self)
{
    int more = self != NULL && s->opts.sync_mode == ETAGKV_NOSYNC
                   ? LEAD_MORE_NOSYNC
                   : 0;
    struct ekv_held flush = {0};
    etagkv_status st;

    s->queue.leading = 1;
    lead(s, finished, self, &flush);
    while (more-- > 0 && s->queue.head != NULL && s->queue.head->async == NULL)
        lead(s, finished, self, &flush);
    s->queue.leading = 0;
    wake_head(s);
    if (s->queue.committer_stop)
        (void)pthread_cond_signal(&s->queue.committer_cv);
    if (flush.head == NULL)
        return;
    (void)pthread_mutex_unlock(&s->queue.lock);
    st = ekv_env_flush(s->env);
    (void)pthread_mutex_lock(&s->queue.lock);
    s->queue.flushing--;
    release_held(s, &flush, st, finished, self);
}

static void enqueue(etagkv_store *s, struct ekv_waiter *w)
{
    w->op->waiter = w;
    if (s->queue.tail != NULL)
        s->queue.tail->next = w;
    else
        s->queue.head = w;
    s->queue.tail = w;
    atomic_fetch_add_explicit(&s->queue.queued, 1, memory_order_relaxed);
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

unsigned ekv_thread_slot(void)
{
    /* Dealt out in turn as threads first submit: a thread keeps its slot
     * for life, and threads that share one only refuse early less. */
    static atomic_uint next;
    static _Thread_local unsigned slot; /* 1 + the slot, 0: none yet */

    if (slot == 0)
        slot = 1 + atomic_fetch_add(&next, 1) % EKV_THREAD_SLOTS;
    return slot - 1;
}

/* etagkv_store *s: the submitted write a is done (its commit, if any,
 * visible), so its thread's next writes may be refused early again. */
static void pending_done(etagkv_store *s, struct ekv_async *a)
{
    if (a->op.pending_slot != 0)
        atomic_fetch_sub(&s->queue.pending[a->op.pending_slot - 1], 1);
    a->op.pending_slot = 0;
}

/* Call the callbacks of finished submitted writes, in submission order
 * (the queue lock not held).  During each, etagkv_last_error_detail() on this
 * thread describes that write's failure, as after a blocking call. */
static void notify(etagkv_store *s, struct ekv_waiter *finished)
{
    while (finished != NULL) {
        struct ekv_async *a = finished->async;
        etagkv_result res;

        finished = finished->next;
        res.status = a->op.status;
        res.meta = a->op.meta;
        res.replayed = a->op.replayed;
        res.step = a->op.txn != NULL
                       ? ETAGKV_STEP_NONE
                       : ekv_cond_step_of(a->op.cond, a->op.method, res.status,
                                          &res.meta);
        /* The callback owns the current value of a 412 (etagkv.h). */
        res.current_value = a->op.current;
        res.current_len = a->op.current_len;
        if (a->op.detail[0] != '\0')
            (void)ekv_fail(a->op.status, "%s", a->op.detail);
        else
            ekv_clear_error();
        pending_done(s, a);
        a->fn(a->ctx, &res);
        free(a);
    }
}

/* A tick that failed (its transaction could not run: the disk, or etcd
 * out of reach) is not tried again at once: the waits it was to end are
 * still due, and the committer would spin. */
#define TICK_RETRY_NS 100000000u

static void tick_done(void *ctx, const etagkv_result *res)
{
    etagkv_store *s = ctx;

    if (res->status != ETAGKV_OK)
        atomic_store(&s->waiting.tick_after, ekv_mono_ns() + TICK_RETRY_NS);
}

/* With the queue lock held: queue a tick (see the top of this file).  0,
 * or -1 without memory. */
static int enqueue_tick(etagkv_store *s)
{
    struct ekv_async *a = ekv_async_new(tick_done, s);

    if (a == NULL)
        return -1;
    a->op.tick = 1;
    enqueue(s, &a->w);
    return 0;
}

/* With the queue lock held: sleep on the committer's condition variable
 * (CLOCK_MONOTONIC) until woken or, when due is not 0, until due. */
static void committer_sleep(struct ekv_queue *q, uint64_t due)
{
    struct timespec ts = ekv_mono_deadline(due);

    q->committer_asleep_until = due == 0 ? UINT64_MAX : due;
    q->committer_naps++;
    if (due == 0)
        (void)pthread_cond_wait(&q->committer_cv, &q->lock);
    else
        (void)pthread_cond_timedwait(&q->committer_cv, &q->lock, &ts);
    q->committer_asleep_until = 0;
}

/* The committer thread: leads every batch whose head is a submitted write
 * (a blocking writer at the head leads its own), and queues a tick when a
 * waiting write's wait ends with nobody writing.  On shutdown it drains
 * what was submitted, ends every wait, and exits. */
static void *committer_main(void *arg)
{
    etagkv_store *s = arg;
    struct ekv_queue *q = &s->queue;

    (void)pthread_mutex_lock(&q->lock);
    for (;;) {
        struct ekv_waiter *finished = NULL;

        /* Another thread leading is waited out, stopping or not: it may
         * leave submitted writes at the head. */
        while (q->leading || !(q->head != NULL && q->head->async != NULL)) {
            uint64_t due = atomic_load(&s->waiting.next_deadline);
            uint64_t after = atomic_load(&s->waiting.tick_after);

            if (due != 0 && after > ekv_mono_ns() && !q->committer_stop) {
                committer_sleep(q, after); /* a tick failed: not yet */
                continue;
            }
            if (!q->leading && q->head == NULL && due != 0 &&
                (q->committer_stop || atomic_load(&s->waiting.expire_all) ||
                 atomic_load(&s->waiting.recheck) || ekv_mono_ns() >= due)) {
                if (q->committer_stop)
                    atomic_store(&s->waiting.expire_all, 1);
                if (enqueue_tick(s) == 0)
                    continue;
                due = ekv_mono_ns() + 10000000u; /* no memory: later */
            } else if (!q->leading && q->committer_stop) {
                break;
            } else if (due != 0 && ekv_mono_ns() >= due) {
                /* A batch is under way or queued: it ends the waits
                 * due, and pokes us (poke_committer()). */
                due = 0;
            }
            committer_sleep(q, due);
        }
        if (q->head == NULL || q->head->async == NULL)
            break; /* stopping, and nothing of ours is queued */
        lead_turn(s, &finished, NULL);
        if (finished != NULL) {
            (void)pthread_mutex_unlock(&q->lock);
            notify(s, finished);
            (void)pthread_mutex_lock(&q->lock);
        }
    }
    (void)pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* With the queue lock held: start the committer thread if it is not
 * running. */
static etagkv_status committer_start(etagkv_store *s)
{
    if (s->queue.committer_started)
        return ETAGKV_OK;
    if (pthread_create(&s->queue.committer, NULL, committer_main, s) != 0)
        return ekv_fail(ETAGKV_NO_MEMORY, "cannot start the committer");
    s->queue.committer_started = 1;
    return ETAGKV_OK;
}

etagkv_status ekv_commit_async(etagkv_store *s, struct ekv_async *a)
{
    etagkv_status st;
    unsigned slot;

    if (ekv_op_refuse_early(s, &a->op)) {
        /* Done at once, on this thread (see "Refused early" above). */
        a->w.next = NULL;
        notify(s, &a->w);
        return ETAGKV_OK;
    }
    /* Counted even when independent: the thread's later writes that are
     * not must still come after it. */
    slot = ekv_thread_slot();
    atomic_fetch_add(&s->queue.pending[slot], 1);
    a->op.pending_slot = slot + 1;
    (void)pthread_mutex_lock(&s->queue.lock);
    st = committer_start(s);
    if (st == ETAGKV_OK) {
        enqueue(s, &a->w);
        if (s->queue.head == &a->w)
            wake_head(s);
    }
    (void)pthread_mutex_unlock(&s->queue.lock);
    if (st != ETAGKV_OK)
        pending_done(s, a);
    return st;
}

void ekv_waiting_recheck(etagkv_store *s)
{
    if (atomic_load(&s->waiting.next_deadline) == 0)
        return; /* nobody waits */
    atomic_store(&s->waiting.recheck, 1);
    (void)pthread_mutex_lock(&s->queue.lock);
    (void)pthread_cond_signal(&s->queue.committer_cv);
    (void)pthread_mutex_unlock(&s->queue.lock);
}

etagkv_status etagkv_end_waits(etagkv_store *s)
{
    if (s == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    atomic_store(&s->waiting.expire_all, 1);
    (void)pthread_mutex_lock(&s->queue.lock);
    (void)pthread_cond_signal(&s->queue.committer_cv);
    (void)pthread_mutex_unlock(&s->queue.lock);
    return ETAGKV_OK;
}

/* The submitted write whose done context is ctx, if it has a wait: w's
 * op, or NULL. */
static struct ekv_op *submitted_with(struct ekv_waiter *w, const void *ctx)
{
    if (w == NULL || w->async == NULL || w->async->ctx != ctx ||
        w->op->wait_until_ns == 0)
        return NULL;
    return w->op;
}

etagkv_status etagkv_end_wait(etagkv_store *s, const void *ctx)
{
    struct ekv_op *op = NULL;

    if (s == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    /* With apply_lock no batch runs, and with the queue lock no leader
     * takes one: the write's op is the queue's or the waiting list's, to
     * change.  A wait that ended is evaluated at the next transaction
     * (apply.c's waiting_expire()), whose tick the committer queues when
     * nobody writes; one not evaluated yet never starts (keeps_waiting()). */
    (void)pthread_mutex_lock(&s->queue.apply_lock);
    (void)pthread_mutex_lock(&s->queue.lock);
    for (struct ekv_waiter *w = s->queue.head; w != NULL && op == NULL;
         w = w->next)
        op = submitted_with(w, ctx);
    for (struct ekv_op *p = s->waiting.head; p != NULL && op == NULL;
         p = p->wait_next)
        op = submitted_with(p->waiter, ctx);
    if (op != NULL) {
        op->wait_until_ns = 1; /* long past, and still a wait */
        if (op->waiting)
            atomic_store(&s->waiting.next_deadline, 1);
        (void)pthread_cond_signal(&s->queue.committer_cv);
    }
    (void)pthread_mutex_unlock(&s->queue.lock);
    (void)pthread_mutex_unlock(&s->queue.apply_lock);
    return op != NULL ? ETAGKV_OK : ETAGKV_NOT_FOUND;
}

/* ---- the queue's life ---------------------------------------------------- */

etagkv_status ekv_queue_init(struct ekv_queue *q)
{
    if (pthread_mutex_init(&q->lock, NULL) != 0)
        return ETAGKV_NO_MEMORY;
    if (pthread_mutex_init(&q->apply_lock, NULL) != 0) {
        (void)pthread_mutex_destroy(&q->lock);
        return ETAGKV_NO_MEMORY;
    }
    /* The committer sleeps until a wait ends: a monotonic deadline. */
    if (ekv_cond_init_mono(&q->committer_cv) != 0) {
        (void)pthread_mutex_destroy(&q->apply_lock);
        (void)pthread_mutex_destroy(&q->lock);
        return ETAGKV_NO_MEMORY;
    }
    q->committer_asleep_until = 0;
    atomic_init(&q->queued, 0);
    atomic_init(&q->write_txns, 0);
    atomic_init(&q->write_ops, 0);
    ekv_hist_init(&q->commit_ns, latency_le, N_LATENCY_LE);
    ekv_hist_init(&q->sync_ns, latency_le, N_LATENCY_LE);
    ekv_hist_init(&q->batch_ops, batch_le, N_BATCH_LE);
    q->ready = 1;
    return ETAGKV_OK;
}

void ekv_queue_shutdown(etagkv_store *s)
{
    struct ekv_queue *q = &s->queue;
    int started;

    if (!q->ready)
        return;
    (void)pthread_mutex_lock(&q->lock);
    started = q->committer_started;
    q->committer_stop = 1;
    (void)pthread_cond_signal(&q->committer_cv);
    (void)pthread_mutex_unlock(&q->lock);
    if (started)
        (void)pthread_join(q->committer, NULL);
    (void)pthread_mutex_destroy(&q->lock);
    (void)pthread_mutex_destroy(&q->apply_lock);
    (void)pthread_cond_destroy(&q->committer_cv);
    q->ready = 0;
}

size_t ekv_queue_waiting(etagkv_store *s)
{
    size_t n = 0;

    (void)pthread_mutex_lock(&s->queue.lock);
    for (const struct ekv_waiter *p = s->queue.head; p != NULL; p = p->next)
        n++;
    (void)pthread_mutex_unlock(&s->queue.lock);
    return n;
}

void ekv_queue_counters(etagkv_store *s, uint64_t *txns, uint64_t *ops)
{
    *txns = atomic_load_explicit(&s->queue.write_txns, memory_order_relaxed);
    *ops = atomic_load_explicit(&s->queue.write_ops, memory_order_relaxed);
}

void ekv_queue_histograms(etagkv_store *s, etagkv_commit_stats *out)
{
    ekv_hist_read(&s->queue.commit_ns, &out->commit_ns);
    ekv_hist_read(&s->queue.sync_ns, &out->sync_ns);
    ekv_hist_read(&s->queue.batch_ops, &out->batch_ops);
}

/* ---- blocking writes ---------------------------------------------------- */

/* Queue op and wait until it is acknowledged, leading batches whenever
 * it reaches the head of the queue with nobody leading.  0, or -1 if it
 * could not wait. */
static int commit_queued(etagkv_store *s, struct ekv_op *op)
{
    struct ekv_waiter w = {.op = op};

    if (pthread_cond_init(&w.cv, NULL) != 0)
        return -1;
    (void)pthread_mutex_lock(&s->queue.lock);
    enqueue(s, &w);
    for (;;) {
        struct ekv_waiter *finished = NULL;

        /* s->queue.leading: another thread is leading batches; it
         * acknowledges this waiter, or wakes the head when it stops.  A
         * waiter held for a flush is out of the queue: a later leader
         * acknowledges it. */
        while (!w.done && (s->queue.head != &w || s->queue.leading))
            (void)pthread_cond_wait(&w.cv, &s->queue.lock);
        if (w.done)
            break;
        lead_turn(s, &finished, &w);
        if (finished != NULL) {
            /* Submitted writes that rode in this thread's batches. */
            (void)pthread_mutex_unlock(&s->queue.lock);
            notify(s, finished);
            (void)pthread_mutex_lock(&s->queue.lock);
        }
    }
    (void)pthread_mutex_unlock(&s->queue.lock);
    (void)pthread_cond_destroy(&w.cv);
    return 0;
}

/* Commit op alone, outside the queue (nosync), and acknowledge the
 * waiting writes its transaction decided. */
static void commit_alone(etagkv_store *s, struct ekv_op *op)
{
    struct ekv_waiter *finished = NULL, *chain, *last;
    struct ekv_op *decided;

    (void)pthread_mutex_lock(&s->queue.apply_lock);
    (void)commit_batch(s, &op, 1, &decided);
    if (decided == NULL) {
        (void)pthread_mutex_unlock(&s->queue.apply_lock);
        return;
    }
    (void)pthread_mutex_lock(&s->queue.lock);
    (void)pthread_mutex_unlock(&s->queue.apply_lock);
    chain = acknowledged(NULL, decided, &last);
    release(chain, &finished, NULL);
    poke_committer(s);
    (void)pthread_mutex_unlock(&s->queue.lock);
    notify(s, finished);
}

etagkv_status ekv_commit(etagkv_store *s, struct ekv_op *op)
{
    op->detail[0] = '\0';
    if (op->wait_until_ns != 0) {
        /* Its wait may outlast every writer: the committer ends it. */
        etagkv_status st;

        (void)pthread_mutex_lock(&s->queue.lock);
        st = committer_start(s);
        (void)pthread_mutex_unlock(&s->queue.lock);
        if (st != ETAGKV_OK)
            return st;
    }
    if (s->opts.sync_mode == ETAGKV_NOSYNC &&
        op->lease_verb != EKV_LEASE_SWEEP && op->wait_until_ns == 0 &&
        atomic_load_explicit(&s->queue.queued, memory_order_relaxed) == 0) {
        /* Nobody queued and no sync to share: commit alone (see the top
         * of this file).  This thread's own earlier submitted writes, if
         * not done, are still counted in queued.  The lease sweeper's
         * expiries always queue: committing alone one after another, it
         * would hold LMDB's writer lock, which is not fair, against every
         * writer for the whole of a long sweep; queued, the writers that
         * arrive meanwhile go in the next batches.  No early refusal
         * first: the write transaction evaluates the conditions against
         * the same latest state, and a refused one ends in an abort,
         * which costs less than the read transaction that would have
         * tried it (about 2,500 instructions of a 31,000-instruction
         * put). */
        commit_alone(s, op);
    } else if (ekv_op_refuse_early(s, op)) {
        /* Refused at the latest committed state: see "Refused early" at
         * the top of this file. */
        ekv_clear_error();
        return op->status;
    } else if (commit_queued(s, op) != 0) {
        return ekv_fail(ETAGKV_NO_MEMORY, "pthread_cond_init");
    }
    /* The diagnostic belongs to the caller's thread, whichever thread
     * committed. */
    if (op->detail[0] != '\0')
        (void)ekv_fail(op->status, "%s", op->detail);
    else
        ekv_clear_error();
    return op->status;
}
