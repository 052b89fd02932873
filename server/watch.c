/*
 * watch.c -- waiting for changes over HTTP (DESIGN §8): GET /kv/{key} held
 * while it would be 304, and GET /changes, a JSON page of the change log
 * held while it would be empty, both with Prefer: wait=N (RFC 7240).
 *
 * A held request costs no thread.  Its connection is suspended
 * (MHD_suspend_connection) and the request put on a list; one watcher
 * thread sleeps in poll() on an etagkv_notify_open() descriptor, which the
 * library makes readable after each durable commit, and on its own
 * eventfd (a request was held, or the server is stopping), with the
 * nearest deadline as timeout.  After a commit it asks, for each held
 * request, the question the request asked (would this GET still be 304?
 * does the page have an event now?) and resumes those whose answer
 * changed; at a deadline it resumes the request as timed out.  MHD then
 * calls the handler again, which reads afresh and answers.  The watcher
 * never answers itself: every response is built on a request thread, by
 * the same code as an unheld request's.
 *
 * After a commit the new events are read once, and each held request
 * matched against their keys in memory: only a request that one of them
 * concerns is asked its question (a read of its own).  An idle watcher of
 * a quiet key thus costs a comparison per event, not a read transaction
 * per commit, and a thousand of them do not slow the writers down.
 *
 * Held requests count in srv.suspended, as suspended writes do, so that
 * the daemon never stops with one still suspended (main.c).
 */
#define _GNU_SOURCE /* eventfd flags */
#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define CHANGES_LIMIT_DEFAULT 100
#define CHANGES_LIMIT_MAX 1000

/* The events since the last commit sweep, their keys copied. */
#define SWEEP_EVENTS 4096

struct sweep_events {
    size_t n;
    uint64_t rev[SWEEP_EVENTS];
    uint16_t key_len[SWEEP_EVENTS];
    size_t key_at[SWEEP_EVENTS];
    char keys[SWEEP_EVENTS * 64]; /* a longer key ends the batch */
    size_t used;
};

struct srv_watch {
    pthread_mutex_t lock;
    struct srv_req *held; /* doubly linked through watch_prev/next */
    size_t n_held;
    int releasing; /* SIGTERM: resume everything, hold nothing more */
    int stop;      /* the thread exits */
    int notify_fd; /* the library's: readable after a commit */
    int wake_fd;   /* ours: a new hold, or stop */
    int hangup_fd; /* epoll: the held requests' sockets, for a hang-up */
    /* The sockets of writes waiting for their conditions, for a hang-up
     * (srv_watch_write_held()), under a lock of their own: a write's
     * completion, on the thread that commits, never waits for a sweep,
     * and nobody holds it while the library works (write_ended).  A
     * thread of their own ends the waits (write_main()): an
     * etagkv_end_wait() may take a batch's sync, on etcd a round trip,
     * which the held reads and streams do not wait for. */
    pthread_mutex_t write_lock;
    pthread_cond_t write_ended; /* an etagkv_end_wait() returned */
    int write_lock_ready;
    int lock_ready; /* lock was initialised (srv_watch_stop() after a
                       failed start) */
    int write_hangup_fd;
    int write_wake_fd; /* the thread stops */
    int write_stop;    /* under write_lock */
    pthread_t write_thread;
    int write_started;
    uint64_t swept; /* revision up to which the held requests were matched */
    /* A commit came while nothing was held, and its events were not read
     * (sweep()): swept may be behind, so every stream held is fresh until
     * a sweep reads the events again. */
    int unswept;
    uint64_t nearest_ns;    /* the deadline the watcher sleeps until, or max */
    struct sweep_events ev; /* the watcher thread's, for sweep() */
    pthread_t thread;
    int started;
    size_t n_streams;     /* SSE streams open */
    size_t n_stream_held; /* of them, held now (also in n_held) */
    /* Writes with Prefer: wait submitted and not yet done: added under
     * lock (srv_watch_write_admit()), taken away by the done callback
     * without it, which so never waits for a sweep. */
    atomic_size_t n_writes_waiting;
    atomic_uint_fast64_t events_sent;
    atomic_uint_fast64_t compacted;
    atomic_uint_fast64_t dropped;
};

/* ---- the held list (lock held) ------------------------------------------- */

static void unlink_held(struct srv_watch *w, struct srv_req *r)
{
    /* A stream's socket stays registered, disarmed or not (watch_hangup()
     * re-arms it at the next hold, srv_watch_ended() removes it). */
    if (r->watch_fd >= 0 && !r->stream) {
        (void)epoll_ctl(w->hangup_fd, EPOLL_CTL_DEL, r->watch_fd, NULL);
        r->watch_fd = -1;
    }
    if (r->watch_prev != NULL)
        r->watch_prev->watch_next = r->watch_next;
    else
        w->held = r->watch_next;
    if (r->watch_next != NULL)
        r->watch_next->watch_prev = r->watch_prev;
    r->watch_prev = r->watch_next = NULL;
    w->n_held--;
    w->n_stream_held -= (size_t)r->stream;
}

/* Take r off the held list to be resumed (lock held), onto *out, a list
 * through watch_next that only the caller sees: once off the held list a
 * suspended request is nobody else's, so it can be resumed after the lock
 * is released (resume_all()), and the request threads that hold streams
 * again meanwhile are not kept waiting while a thousand are resumed. */
static void take(struct srv_watch *w, struct srv_req *r, int timed_out,
                 struct srv_req **out)
{
    unlink_held(w, r);
    r->watch_timed_out = timed_out;
    r->watch_next = *out;
    *out = r;
}

/* Resume every request of a take() list (lock not held): MHD calls the
 * handler again on a request thread.  From here on the watcher does not
 * touch them. */
static void resume_all(struct srv *s, struct srv_req *list)
{
    while (list != NULL) {
        struct srv_req *r = list;

        list = r->watch_next;
        r->watch_next = NULL;
        MHD_resume_connection(r->conn);
        atomic_fetch_sub(&s->suspended, 1);
    }
}

/* Would r be answered differently now?  Asked with r suspended, so no
 * request thread touches r meanwhile. */
static int stop_at_first(void *ctx, const etagkv_event *ev)
{
    (void)ctx;
    (void)ev;
    return 1;
}

static int changed(struct srv *s, struct srv_req *r)
{
    etagkv_changes_page page;
    etagkv_status st;

    if (r->route == SRV_ROUTE_KV)
        return etagkv_get(s->store, r->key, r->key_len, r->cond, NULL, NULL,
                          NULL) != ETAGKV_NOT_MODIFIED;
    do {
        st = etagkv_changes(s->store, r->key, r->key_len, r->changes_flags,
                            r->watch_scanned, 1, stop_at_first, NULL, &page);
        /* Nothing for r up to page.next: the next look starts there, so a
         * watcher of a quiet key costs the new events only, not every
         * event since it last had one.  A read that stopped at its scan
         * bound with nothing found goes on from there. */
        if (st == ETAGKV_OK && page.events == 0)
            r->watch_scanned = page.next;
    } while (st == ETAGKV_OK && page.events == 0 && page.more);
    return st != ETAGKV_OK || page.events > 0;
}

static int collect(void *ctx, const etagkv_event *ev)
{
    struct sweep_events *e = ctx;

    if (e->n == SWEEP_EVENTS || ev->key_len > sizeof e->keys - e->used)
        return 1; /* full: the sweep asks every request instead */
    e->rev[e->n] = ev->revision;
    e->key_len[e->n] = (uint16_t)ev->key_len;
    e->key_at[e->n] = e->used;
    memcpy(e->keys + e->used, ev->key, ev->key_len);
    e->used += ev->key_len;
    e->n++;
    return 0;
}

/* Read the events after w->swept into *e: 1 when *e holds all of them up
 * to *rev, 0 when there were too many or the read failed (then every
 * held request is asked). */
static int read_events(struct srv *s, struct sweep_events *e, uint64_t *rev)
{
    etagkv_changes_page page;
    etagkv_status st;

    e->n = e->used = 0;
    st = etagkv_changes(s->store, NULL, 0, 0, s->watch->swept, 0, collect, e,
                        &page);
    *rev = page.revision;
    return st == ETAGKV_OK && !page.more;
}

/* Does one of the events concern r?  A GET /kv/{key}: an event of its
 * key; /changes: one of its key or prefix, newer than what it scanned. */
static int concerns(const struct srv_req *r, const struct sweep_events *e)
{
    int exact = r->route == SRV_ROUTE_KV ||
                (r->changes_flags & ETAGKV_CHANGES_KEY) != 0;

    for (size_t i = 0; i < e->n; i++) {
        const char *k = e->keys + e->key_at[i];

        if (r->route != SRV_ROUTE_KV && e->rev[i] <= r->watch_scanned)
            continue;
        if (exact ? e->key_len[i] == r->key_len &&
                        memcmp(k, r->key, r->key_len) == 0
                  : e->key_len[i] >= r->key_len &&
                        memcmp(k, r->key, r->key_len) == 0)
            return 1;
    }
    return 0;
}

/* After a commit, for a request not fresh: its answer from the events
 * alone when they hold it.  1: resume r (a /changes request that one of
 * the events concerns: its page has that event, no read needed); 0: keep
 * it held (no event concerns it; a /changes request then also knows the
 * log has nothing for it up to rev); -1: ask r its question (every held
 * request when the events were too many to hold, and a GET /kv/{key}
 * whose key was written, which may still be 304: the same value again).
 */
static int answer_from_events(struct srv_req *r, const struct sweep_events *e,
                              int all, uint64_t rev)
{
    if (all)
        return -1;
    if (concerns(r, e))
        return r->route == SRV_ROUTE_KV ? -1 : 1;
    if (r->route != SRV_ROUTE_KV && r->watch_scanned < rev)
        r->watch_scanned = rev;
    return 0;
}

/* One pass over the held requests: after a commit (all), after a new hold
 * (the fresh ones), and at deadlines.  Returns the time to the nearest
 * deadline in ms, -1 when none is held. */
static int sweep(struct srv *s, int commit)
{
    struct srv_watch *w = s->watch;
    struct sweep_events *ev = &w->ev;
    struct srv_req *r, *next, *ready = NULL;
    uint64_t now = srv_now_ns(), nearest = UINT64_MAX, rev = 0;
    int all = 0;

    if (commit) {
        /* With nothing held, the events concern nobody: not read (on etcd
         * a read of the log is three requests, on every commit).  A
         * request held from now on is fresh (park()). */
        (void)pthread_mutex_lock(&w->lock);
        if (w->held == NULL) {
            w->unswept = 1;
            commit = 0;
        }
        (void)pthread_mutex_unlock(&w->lock);
    }
    if (commit)
        all = !read_events(s, ev, &rev);
    (void)pthread_mutex_lock(&w->lock);
    for (r = w->held; r != NULL; r = next) {
        next = r->watch_next;
        if (w->releasing || r->deadline_ns <= now) {
            take(w, r, 1, &ready);
            continue;
        }
        int answer = r->watch_fresh ? -1
                     : commit       ? answer_from_events(r, ev, all, rev)
                                    : 0;

        if (answer > 0 || (answer < 0 && changed(s, r))) {
            take(w, r, 0, &ready);
            continue;
        }
        r->watch_fresh = 0;
        if (r->deadline_ns < nearest)
            nearest = r->deadline_ns;
    }
    if (commit && rev != 0) { /* read: every event up to rev was matched */
        if (rev > w->swept)
            w->swept = rev;
        w->unswept = 0;
    }
    w->nearest_ns = nearest;
    (void)pthread_mutex_unlock(&w->lock);
    resume_all(s, ready);
    if (nearest == UINT64_MAX)
        return -1;
    /* Round up, so that the deadline has passed when poll() returns. */
    return (int)((nearest - now + 999999u) / 1000000u);
}

/* Resume every held request whose client hung up (asked under the lock,
 * so each one reported is still held: unlink_held() removes a socket
 * under it).
 * Suspended, a connection is not polled by libmicrohttpd: without this
 * a client that went away would stay held until its deadline or the next
 * heartbeat, and be looked at on every commit meanwhile.  Resumed as
 * timed out, its answer goes nowhere and libmicrohttpd closes it. */
static void reap_hangups(struct srv *s)
{
    struct epoll_event ev[64];
    struct srv_req *gone = NULL;
    int n;

    (void)pthread_mutex_lock(&s->watch->lock);
    n = epoll_wait(s->watch->hangup_fd, ev, 64, 0);
    for (int i = 0; i < n; i++) {
        struct srv_req *r = ev[i].data.ptr;

        /* A stream that is sending, not held: MHD sees the hang-up itself
         * when it sends, or the re-armed registration reports it again
         * when the stream is next held. */
        if (r->watch_prev != NULL || s->watch->held == r) {
            r->watch_hung_up = 1;
            take(s->watch, r, 1, &gone);
        }
    }
    (void)pthread_mutex_unlock(&s->watch->lock);
    resume_all(s, gone);
}

/* End the wait of every held write whose client hung up (on the hang-up
 * thread, write_main()): its answer goes nowhere, but it is not applied
 * later for nobody.  etagkv_end_wait() may wait for a batch's sync, so it
 * is called without write_lock (a worker registering a write takes that
 * lock); r->write_ending keeps r alive meanwhile: its completion waits
 * for it (srv_watch_write_done()). */
static void reap_write_hangups(struct srv *s)
{
    struct srv_watch *w = s->watch;
    struct epoll_event ev;

    /* One at a time: an event is valid only while write_lock is held
     * from its epoll_wait() on (a write done meanwhile is unregistered,
     * and then freed), and the lock is let go for each end. */
    (void)pthread_mutex_lock(&w->write_lock);
    while (epoll_wait(w->write_hangup_fd, &ev, 1, 0) == 1) {
        struct srv_req *r = ev.data.ptr;

        if (r->write_finished)
            continue;
        r->write_ending = 1;
        (void)pthread_mutex_unlock(&w->write_lock);
        (void)etagkv_end_wait(s->store, r);
        (void)pthread_mutex_lock(&w->write_lock);
        r->write_ending = 0;
        (void)pthread_cond_broadcast(&w->write_ended);
    }
    (void)pthread_mutex_unlock(&w->write_lock);
}

static void drain_fd(int fd)
{
    uint64_t n;
    ssize_t got = read(fd, &n, sizeof n);

    (void)got; /* EAGAIN: already drained */
}

/* The least time between two commit sweeps, per request held: a sweep
 * walks the held list, about 0.1 µs a request, so at most a tenth of a
 * core goes to it however fast the commits come; a thousand watchers
 * wait up to 1 ms more for an event, fewer than fifty never. */
#define SWEEP_GAP_NS_PER_HELD 1000u

/* After a commit: wait until the gap since the last commit sweep has
 * passed (commits meanwhile join this sweep). */
static void pace(struct srv_watch *w, uint64_t *last_ns)
{
    uint64_t gap, now = srv_now_ns();

    (void)pthread_mutex_lock(&w->lock);
    gap = (uint64_t)w->n_held * SWEEP_GAP_NS_PER_HELD;
    (void)pthread_mutex_unlock(&w->lock);
    /* Shorter waits are not worth a sleep, which the kernel's timer
     * slack stretches to some 50 µs anyway. */
    if (now - *last_ns + 50000u < gap) {
        struct timespec ts = {0, (long)(gap - (now - *last_ns))};

        (void)nanosleep(&ts, NULL);
        drain_fd(w->notify_fd);
    }
    *last_ns = srv_now_ns();
}

static void *watch_main(void *arg)
{
    struct srv *s = arg;
    struct srv_watch *w = s->watch;
    int timeout_ms = -1;
    uint64_t last_commit_sweep = 0;

    for (;;) {
        struct pollfd p[3] = {{.fd = w->notify_fd, .events = POLLIN},
                              {.fd = w->wake_fd, .events = POLLIN},
                              {.fd = w->hangup_fd, .events = POLLIN}};
        int n, stop, commit;

        /* With nothing held a commit concerns nobody, so the notifier is
         * left out of the poll and a commit wakes no thread here (on a
         * busy store, a wake-up per commit for nothing).  Its count is not
         * drained meanwhile: once park() has held a request and woken
         * this thread through wake_fd, the next poll finds the commits
         * that went by and the sweep reads their events from w->swept,
         * as if it had been awake. */
        (void)pthread_mutex_lock(&w->lock);
        if (w->held == NULL)
            p[0].fd = -1; /* poll() ignores it */
        (void)pthread_mutex_unlock(&w->lock);
        n = poll(p, 3, timeout_ms);
        commit = n > 0 && (p[0].revents & POLLIN);

        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && (p[2].revents & POLLIN))
            reap_hangups(s);
        if (commit) {
            drain_fd(w->notify_fd);
            pace(w, &last_commit_sweep);
        }
        if (n > 0 && (p[1].revents & POLLIN))
            drain_fd(w->wake_fd);
        timeout_ms = sweep(s, commit);
        (void)pthread_mutex_lock(&w->lock);
        stop = w->stop;
        (void)pthread_mutex_unlock(&w->lock);
        if (stop)
            break;
    }
    return NULL;
}

/* The hang-up thread: ends the waits of held writes whose clients hung
 * up, until srv_watch_stop(). */
static void *write_main(void *arg)
{
    struct srv *s = arg;
    struct srv_watch *w = s->watch;

    for (;;) {
        struct pollfd p[2] = {{.fd = w->write_hangup_fd, .events = POLLIN},
                              {.fd = w->write_wake_fd, .events = POLLIN}};
        int n = poll(p, 2, -1), stop;

        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && (p[0].revents & POLLIN))
            reap_write_hangups(s);
        (void)pthread_mutex_lock(&w->write_lock);
        stop = w->write_stop;
        (void)pthread_mutex_unlock(&w->write_lock);
        if (stop)
            break;
    }
    return NULL;
}

static void wake_fd(int fd)
{
    uint64_t one = 1;
    ssize_t put = write(fd, &one, sizeof one);

    (void)put; /* EAGAIN: already awake */
}

static void wake(struct srv_watch *w)
{
    wake_fd(w->wake_fd);
}

/* ---- life ---------------------------------------------------------------- */

int srv_watch_start(struct srv *s)
{
    struct srv_watch *w = calloc(1, sizeof *w);

    if (w == NULL)
        return -1;
    w->notify_fd = w->wake_fd = w->hangup_fd = -1;
    w->write_hangup_fd = w->write_wake_fd = -1;
    w->nearest_ns = UINT64_MAX;
    s->watch = w;
    if (pthread_mutex_init(&w->lock, NULL) != 0)
        return -1;
    w->lock_ready = 1;
    if (pthread_mutex_init(&w->write_lock, NULL) != 0)
        return -1;
    if (pthread_cond_init(&w->write_ended, NULL) != 0) {
        (void)pthread_mutex_destroy(&w->write_lock);
        return -1;
    }
    w->write_lock_ready = 1;
    if (etagkv_notify_open(s->store, &w->notify_fd) != ETAGKV_OK)
        return -1;
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0)
        return -1;
    w->hangup_fd = epoll_create1(EPOLL_CLOEXEC);
    if (w->hangup_fd < 0)
        return -1;
    w->write_hangup_fd = epoll_create1(EPOLL_CLOEXEC);
    if (w->write_hangup_fd < 0)
        return -1;
    w->write_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->write_wake_fd < 0)
        return -1;
    if (pthread_create(&w->thread, NULL, watch_main, s) != 0)
        return -1;
    w->started = 1;
    if (pthread_create(&w->write_thread, NULL, write_main, s) != 0)
        return -1;
    w->write_started = 1;
    return 0;
}

void srv_watch_release_all(struct srv *s)
{
    if (s->watch == NULL)
        return;
    (void)pthread_mutex_lock(&s->watch->lock);
    s->watch->releasing = 1;
    (void)pthread_mutex_unlock(&s->watch->lock);
    wake(s->watch);
}

void srv_watch_stop(struct srv *s)
{
    struct srv_watch *w = s->watch;

    if (w == NULL)
        return;
    if (w->started) {
        (void)pthread_mutex_lock(&w->lock);
        w->stop = w->releasing = 1;
        (void)pthread_mutex_unlock(&w->lock);
        wake(w);
        (void)pthread_join(w->thread, NULL);
    }
    if (w->write_started) {
        (void)pthread_mutex_lock(&w->write_lock);
        w->write_stop = 1;
        (void)pthread_mutex_unlock(&w->write_lock);
        wake_fd(w->write_wake_fd);
        (void)pthread_join(w->write_thread, NULL);
    }
    if (w->wake_fd >= 0)
        (void)close(w->wake_fd);
    if (w->write_wake_fd >= 0)
        (void)close(w->write_wake_fd);
    if (w->hangup_fd >= 0)
        (void)close(w->hangup_fd);
    if (w->write_hangup_fd >= 0)
        (void)close(w->write_hangup_fd);
    etagkv_notify_close(s->store, w->notify_fd);
    if (w->write_lock_ready) {
        (void)pthread_cond_destroy(&w->write_ended);
        (void)pthread_mutex_destroy(&w->write_lock);
    }
    if (w->lock_ready)
        (void)pthread_mutex_destroy(&w->lock);
    free(w);
    s->watch = NULL;
}

void srv_watch_counters(const struct srv *s, struct srv_watch_figures *f)
{
    struct srv_watch *w = s->watch;

    memset(f, 0, sizeof *f);
    if (w == NULL)
        return;
    (void)pthread_mutex_lock(&w->lock);
    f->held = w->n_held;
    f->streams = w->n_streams;
    (void)pthread_mutex_unlock(&w->lock);
    f->events = atomic_load(&w->events_sent);
    f->compacted = atomic_load(&w->compacted);
    f->dropped = atomic_load(&w->dropped);
}

void srv_watch_ended(struct srv *s, struct srv_req *r,
                     enum MHD_RequestTerminationCode toe)
{
    if (r->stream && s->watch != NULL) {
        (void)pthread_mutex_lock(&s->watch->lock);
        /* Before libmicrohttpd closes the socket, whose number another
         * connection may get next. */
        if (r->watch_fd >= 0)
            (void)epoll_ctl(s->watch->hangup_fd, EPOLL_CTL_DEL, r->watch_fd,
                            NULL);
        r->watch_fd = -1;
        s->watch->n_streams--;
        (void)pthread_mutex_unlock(&s->watch->lock);
        if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
            atomic_fetch_add(&s->watch->dropped, 1);
    }
    free(r->sbuf);
    r->sbuf = NULL;
}

/* ---- holding a request --------------------------------------------------- */

int srv_watch_wants(struct srv *s, struct MHD_Connection *c, struct srv_req *r)
{
    if (s->watch == NULL || atomic_load(&s->draining) || r->watch_timed_out)
        return 0;
    if (!r->watch_held) {
        struct srv_prefer p;

        srv_prefer_parse(c, s->max_wait_s, &p);
        r->wait_s = p.wait_s;
    }
    return r->wait_s > 0;
}

int srv_add_preference_applied(struct MHD_Response *resp, unsigned wait_s)
{
    char buf[32];

    snprintf(buf, sizeof buf, "wait=%u", wait_s);
    return srv_add_header(resp, "Preference-Applied", buf);
}

/* Watchers counted against --max-watchers (lock held): held long-polls,
 * open streams and writes that may wait for their conditions, each once. */
static size_t watchers(struct srv_watch *w)
{
    return w->n_held - w->n_stream_held + w->n_streams +
           atomic_load(&w->n_writes_waiting);
}

/* Add c's socket to the epoll set epfd, one shot, for the client hanging
 * up, the event naming r; the socket, or -1 when that failed. */
static int add_hangup_watch(int epfd, struct MHD_Connection *c,
                            struct srv_req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLONESHOT,
                             .data.ptr = r};

    if (ci == NULL || epoll_ctl(epfd, EPOLL_CTL_ADD, ci->connect_fd, &ev) != 0)
        return -1;
    return ci->connect_fd;
}

/* Watch r's socket for the client hanging up (lock held).  Best effort:
 * should it fail, the deadline or the heartbeat still ends r.  One shot,
 * so that a stream's socket can stay registered while it sends (one
 * epoll_ctl per hold, not two): re-arming it reports a hang-up that came
 * meanwhile, the condition being a level. */
static void watch_hangup(struct srv_watch *w, struct MHD_Connection *c,
                         struct srv_req *r)
{
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLONESHOT,
                             .data.ptr = r};

    if (r->watch_fd >= 0) {
        if (epoll_ctl(w->hangup_fd, EPOLL_CTL_MOD, r->watch_fd, &ev) == 0)
            return;
        (void)epoll_ctl(w->hangup_fd, EPOLL_CTL_DEL, r->watch_fd, NULL);
    }
    r->watch_fd = add_hangup_watch(w->hangup_fd, c, r);
}

int srv_watch_write_admit(struct srv *s, struct srv_req *r)
{
    struct srv_watch *w = s->watch;
    int full;

    if (w == NULL)
        return 0;
    (void)pthread_mutex_lock(&w->lock);
    full = watchers(w) >= s->max_watchers;
    if (!full) {
        atomic_fetch_add(&w->n_writes_waiting, 1);
        r->write_counted = 1;
    }
    (void)pthread_mutex_unlock(&w->lock);
    return full;
}

void srv_watch_write_held(struct srv *s, struct MHD_Connection *c,
                          struct srv_req *r)
{
    struct srv_watch *w = s->watch;

    if (w == NULL)
        return;
    /* c stays valid: a resumed connection is handled by this thread, once
     * the handler has returned. */
    (void)pthread_mutex_lock(&w->write_lock);
    if (!r->write_finished)
        r->watch_fd = add_hangup_watch(w->write_hangup_fd, c, r);
    (void)pthread_mutex_unlock(&w->write_lock);
}

void srv_watch_write_done(struct srv *s, struct srv_req *r)
{
    struct srv_watch *w = s->watch;

    if (w == NULL)
        return;
    (void)pthread_mutex_lock(&w->write_lock);
    r->write_finished = 1;
    if (r->watch_fd >= 0)
        (void)epoll_ctl(w->write_hangup_fd, EPOLL_CTL_DEL, r->watch_fd, NULL);
    r->watch_fd = -1;
    /* The watcher is ending r's wait (reap_write_hangups()): r must
     * outlive that call, which names it.  A done callback runs outside
     * the library's locks, so etagkv_end_wait() can finish meanwhile. */
    while (r->write_ending)
        (void)pthread_cond_wait(&w->write_ended, &w->write_lock);
    (void)pthread_mutex_unlock(&w->write_lock);
    if (r->write_counted) {
        r->write_counted = 0;
        atomic_fetch_sub(&w->n_writes_waiting, 1);
    }
}

/* Put r on the held list and suspend its connection; a new watcher (not a
 * stream already admitted, nor a request held before) only within
 * --max-watchers.  0, 1 when full, -1 when shutting down. */
static int park(struct srv *s, struct MHD_Connection *c, struct srv_req *r)
{
    struct srv_watch *w = s->watch;
    int rc = 0, wake_watcher, was_idle;

    atomic_fetch_add(&s->suspended, 1);
    (void)pthread_mutex_lock(&w->lock);
    if (w->releasing || atomic_load(&s->stopping))
        rc = -1;
    else if (!r->stream && !r->watch_held && watchers(w) >= s->max_watchers)
        rc = 1;
    if (rc != 0) {
        (void)pthread_mutex_unlock(&w->lock);
        atomic_fetch_sub(&s->suspended, 1);
        return rc;
    }
    if (r->stream)
        r->deadline_ns = srv_now_ns() + (uint64_t)s->heartbeat_s * 1000000000u;
    else if (!r->watch_held)
        r->deadline_ns = srv_now_ns() + (uint64_t)r->wait_s * 1000000000u;
    r->watch_held = 1;
    r->watch_timed_out = 0;
    r->watch_scanned = r->after;
    /* Fresh: asked its question at the next sweep, since a commit may have
     * come after it read and been swept before it was held.  Not needed
     * for a stream, whose read (sse_fill) left nothing for it up to
     * r->after: the sweeps up to w->swept saw it not held, but the next
     * one matches it against every event after w->swept, under this
     * lock; so only when w->swept has passed r->after are there events it
     * may have missed.  (A sweep between its read and this lock reads its
     * events first, then takes the lock: either it finds r held, or it
     * has moved w->swept on before r looks at it.)  And when a sweep
     * skipped its read with nothing held (w->unswept), w->swept may be
     * behind commits that r did not see either. */
    r->watch_fresh = !r->stream || w->unswept || w->swept > r->watch_scanned;
    r->conn = c;
    watch_hangup(w, c, r);
    was_idle = w->held == NULL;
    r->watch_prev = NULL;
    r->watch_next = w->held;
    if (w->held != NULL)
        w->held->watch_prev = r;
    w->held = r;
    w->n_held++;
    w->n_stream_held += (size_t)r->stream;
    MHD_suspend_connection(c);
    /* The watcher must look now if r is to be asked, or to sleep less
     * long; a stream held again after an event usually needs neither, and
     * a thousand of them then cost the watcher no pass over the list.
     * With nothing held before r it polls without the notifier
     * (watch_main()): woken, it polls with it again and finds the commits
     * that went by. */
    wake_watcher = r->watch_fresh || was_idle || r->deadline_ns < w->nearest_ns;
    (void)pthread_mutex_unlock(&w->lock);
    if (wake_watcher)
        wake(w);
    return 0;
}

/* 503 with Retry-After: too many watchers, or shutting down.  A client
 * turned away for too many watchers leaves the connection too: it would
 * otherwise keep one of those the limit keeps for writers. */
static enum MHD_Result unavailable(struct srv *s, struct MHD_Connection *c,
                                   struct srv_req *r, int full)
{
    struct MHD_Response *resp;

    r->must_close |= full;
    resp = full ? srv_retry_after(srv_problem(MHD_HTTP_SERVICE_UNAVAILABLE,
                                              "too-many-watchers",
                                              "too many requests are waiting "
                                              "for changes",
                                              NULL),
                                  SRV_RETRY_AFTER_S)
                : srv_draining_problem();

    return srv_queue(s, c, r, MHD_HTTP_SERVICE_UNAVAILABLE, resp);
}

enum MHD_Result srv_watch_hold(struct srv *s, struct MHD_Connection *c,
                               struct srv_req *r)
{
    int rc = park(s, c, r);

    return rc == 0 ? MHD_YES : unavailable(s, c, r, rc > 0);
}

/* ---- GET /changes -------------------------------------------------------- */

/* The event as JSON (DESIGN §8): "key" when it is UTF-8, else
 * "key_base64"; NULL on allocation failure. */
static json_t *event_json(const etagkv_event *ev)
{
    int put = ev->type == ETAGKV_EVENT_PUT;
    json_t *j;

    if (srv_utf8_valid(ev->key, ev->key_len)) {
        j = json_pack("{s:I,s:s,s:s%}", "revision", (json_int_t)ev->revision,
                      "type", put ? "put" : "delete", "key",
                      (const char *)ev->key, ev->key_len);
    } else {
        json_t *k64 = srv_json_base64(ev->key, ev->key_len);

        j = k64 == NULL ? NULL
                        : json_pack("{s:I,s:s,s:o}", "revision",
                                    (json_int_t)ev->revision, "type",
                                    put ? "put" : "delete", "key_base64", k64);
    }
    if (j != NULL &&
        (json_object_set_new(j, "etag",
                             put ? json_string(ev->etag) : json_null()) ||
         json_object_set_new(j, "mod_revision",
                             json_integer((json_int_t)ev->mod_revision)) ||
         json_object_set_new(j, "create_revision",
                             json_integer((json_int_t)ev->create_revision)) ||
         json_object_set_new(j, "version",
                             json_integer((json_int_t)ev->version)) ||
         json_object_set_new(j, "modified_ns",
                             json_integer((json_int_t)ev->modified_ns)))) {
        json_decref(j);
        return NULL;
    }
    return j;
}

struct events {
    json_t *list;
    int failed;
};

static int add_event(void *ctx, const etagkv_event *ev)
{
    struct events *e = ctx;
    json_t *j = event_json(ev);

    if (j == NULL || json_array_append_new(e->list, j) != 0) {
        e->failed = 1;
        return 1;
    }
    return 0;
}

/* Query argument name as a revision (decimal digits, at most 19): 0 and
 * *rev when present, 0 with *rev untouched when absent (or empty, when
 * empty_is_absent), -1 when malformed. */
static int query_revision(const struct srv_req *r, const char *name,
                          int empty_is_absent, uint64_t *rev)
{
    const char *v;
    size_t vlen;

    if (!srv_query_arg(r, name, &v, &vlen) || (vlen == 0 && empty_is_absent))
        return 0;
    return srv_decimal(v, vlen, INT64_MAX, rev) == 0 ? 0 : -1;
}

/* after=: a decimal revision, default 0.  0, or -1 when malformed. */
static int query_after(const struct srv_req *r, uint64_t *after)
{
    *after = 0;
    return query_revision(r, "after", 0, after);
}

/* The query of /changes into r (key, changes_flags, after) and *limit; a
 * problem to answer, or NULL. */
static const char *changes_query(struct srv_req *r, size_t *limit)
{
    /* lastEventId: where a stream resumes, from EventSource polyfills that
     * send it in the query instead of the Last-Event-ID header (which
     * wins; start_stream()); ignored by a page.  _: jQuery's cache: false,
     * ignored. */
    static const char *const names[] = {"key",   "prefix",      "after",
                                        "limit", "lastEventId", "_"};
    const char *v;
    size_t len;

    /* As the listing's: a name misspelt or repeated would be ignored, and
     * the feed follow more than asked for ("PREFIX=a/" every key). */
    if (srv_query_names_known(r, names, sizeof names / sizeof *names) != 0)
        return "/changes takes only key or prefix, after and limit, each at "
               "most once (names are case-sensitive; also lastEventId, where a "
               "stream resumes, and _, ignored)";
    if (srv_query_arg(r, "key", &v, &len)) {
        if (srv_query_arg(r, "prefix", &v, &len))
            return "key and prefix exclude each other: key=K follows one "
                   "key, prefix=P the keys under P";
        if (len == 0)
            return "key is empty: name the key to follow (or leave key out "
                   "to follow every key)";
    }
    if (srv_query_bytes(r, "key", r->key, sizeof r->key, &len) != ETAGKV_OK)
        return "key has invalid percent-encoding or is too long";
    r->changes_flags = len > 0 ? ETAGKV_CHANGES_KEY : 0;
    if (len == 0 &&
        srv_query_bytes(r, "prefix", r->key, sizeof r->key, &len) != ETAGKV_OK)
        return "prefix has invalid percent-encoding or is too long";
    r->key_len = len;
    if (query_after(r, &r->after) != 0)
        return "after must be a revision (a decimal integer)";
    if (srv_query_limit(r, CHANGES_LIMIT_DEFAULT, CHANGES_LIMIT_MAX, limit) !=
        0)
        return "limit must be a positive integer (at most 1000)";
    return NULL;
}

static enum MHD_Result compacted(struct srv *s, struct MHD_Connection *c,
                                 struct srv_req *r,
                                 const etagkv_changes_page *page)
{
    char detail[160];

    atomic_fetch_add(&s->watch->compacted, 1);
    snprintf(detail, sizeof detail,
             "events after revision %" PRIu64 " are no longer in the change "
             "log: re-list and watch from min_after (%" PRIu64 ") or later",
             r->after, page->min_after);
    return srv_queue(s, c, r, 410,
                     srv_problem(410, "compacted", detail,
                                 json_pack("{s:I}", "min_after",
                                           (json_int_t)page->min_after)));
}

/* An after (or Last-Event-ID) beyond the store's revision: a position in
 * another history -- a store restored from an older copy, or another
 * store.  Waiting until the store passes it would lose the events in
 * between, and reading on from the store's revision would send events the
 * client takes for ones it has: 410, as for a position compacted away, so
 * that the client re-lists (the library's etagkv_changes() answers such
 * an after with an empty page whose next is the store's revision). */
static enum MHD_Result ahead(struct srv *s, struct MHD_Connection *c,
                             struct srv_req *r, uint64_t asked,
                             const etagkv_changes_page *page)
{
    char detail[256];

    snprintf(detail, sizeof detail,
             "after %" PRIu64 " is beyond the store's revision (%" PRIu64
             "): this store's history never reached it (restored from an "
             "older copy, or another store): re-list, then watch from the "
             "listing's revision",
             asked, page->revision);
    return srv_queue(
        s, c, r, 410,
        srv_problem(410, "ahead-of-store", detail,
                    json_pack("{s:I,s:I}", "revision",
                              (json_int_t)page->revision, "min_after",
                              (json_int_t)page->min_after)));
}

/* ---- Server-Sent Events -------------------------------------------------- */

/* Events per page of a stream, and the bytes its buffer is filled to at
 * most (beyond one event): a transaction larger than that goes out in
 * parts, its id with its last event.  A buffer grown past SSE_KEEP_BYTES
 * is freed once sent, so that an idle stream holds no more. */
#define SSE_PAGE 64
#define SSE_FILL_BYTES (64 * 1024)
#define SSE_KEEP_BYTES (64 * 1024)
#define SSE_RETRY_MS 2000

/* Append n bytes to the stream's buffer.  0, or -1 out of memory. */
static int sbuf_add(struct srv_req *r, const char *p, size_t n)
{
    if (r->slen + n > r->scap) {
        size_t cap = r->scap > 0 ? r->scap : 4096;
        char *b;

        while (cap < r->slen + n)
            cap *= 2;
        b = realloc(r->sbuf, cap);
        if (b == NULL)
            return -1;
        r->sbuf = b;
        r->scap = cap;
    }
    memcpy(r->sbuf + r->slen, p, n);
    r->slen += n;
    return 0;
}

/* An event's SSE lines, "event: put|delete\ndata: JSON\n", without the id
 * and the blank line that end its block.  Formatted once per request
 * thread, not once per stream: a commit that a thousand streams follow
 * sends them one event, and a thread serving hundreds of them builds its
 * JSON once.  The cache is the thread's own (no lock), the last
 * SSE_CACHED events it formatted, compared field by field (two events of
 * one revision may share a key). */
#define SSE_CACHED 8
#define SSE_CACHED_TEXT 2048

struct sse_cached {
    etagkv_event ev; /* its key pointer unused: key[] holds the key */
    unsigned char key[ETAGKV_KEY_MAX];
    size_t len; /* of text; 0: an empty slot */
    char text[SSE_CACHED_TEXT];
};

static _Thread_local struct sse_cached sse_cache[SSE_CACHED];
static _Thread_local unsigned sse_cache_next;

static int same_event(const struct sse_cached *c, const etagkv_event *ev)
{
    return c->len > 0 && c->ev.revision == ev->revision &&
           c->ev.type == ev->type && c->ev.key_len == ev->key_len &&
           c->ev.version == ev->version &&
           c->ev.mod_revision == ev->mod_revision &&
           c->ev.create_revision == ev->create_revision &&
           c->ev.modified_ns == ev->modified_ns &&
           strcmp(c->ev.etag, ev->etag) == 0 &&
           memcmp(c->key, ev->key, ev->key_len) == 0;
}

/* Append ev's SSE lines to r's buffer.  0, or -1 out of memory. */
static int sse_lines(struct srv_req *r, const etagkv_event *ev)
{
    const char *head = ev->type == ETAGKV_EVENT_PUT ? "event: put\ndata: "
                                                    : "event: delete\ndata: ";
    struct sse_cached *c;
    json_t *j;
    char *data;
    size_t n;
    int rc;

    for (unsigned i = 0; i < SSE_CACHED; i++)
        if (same_event(&sse_cache[i], ev))
            return sbuf_add(r, sse_cache[i].text, sse_cache[i].len);
    j = event_json(ev);
    data = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (data == NULL)
        return -1;
    c = &sse_cache[sse_cache_next++ % SSE_CACHED];
    n = strlen(data);
    c->len = 0;
    if (strlen(head) + n + 1 < sizeof c->text && /* + "\n" + NUL */
        ev->key_len <= sizeof c->key) {
        c->len =
            (size_t)snprintf(c->text, sizeof c->text, "%s%s\n", head, data);
        c->ev = *ev;
        c->ev.key = NULL;
        memcpy(c->key, ev->key, ev->key_len);
        rc = sbuf_add(r, c->text, c->len);
    } else {
        rc = sbuf_add(r, head, strlen(head)) || sbuf_add(r, data, n) ||
             sbuf_add(r, "\n", 1);
    }
    free(data);
    return rc;
}

/* End an event's block: "id: rev\n" when it is the last event of its
 * revision (rev > 0), so that a resume from the id never skips part of a
 * transaction (DESIGN §8), then the blank line.  0 or -1. */
static int sse_end(struct srv_req *r, uint64_t rev)
{
    char id[32];

    if (rev > 0 && sbuf_add(r, id,
                            (size_t)snprintf(id, sizeof id, "id: %" PRIu64 "\n",
                                             rev)) != 0)
        return -1;
    return sbuf_add(r, "\n", 1);
}

struct sse_page {
    struct srv_req *r;
    uint64_t open; /* the revision of the block not yet ended */
    size_t open_n; /* events of it in the buffer */
    size_t n;
    size_t skipped; /* of r->sent_rev's events, sent before */
    uint64_t cut;   /* the revision of the event the fill stopped at */
    int failed;
};

static int sse_add(void *ctx, const etagkv_event *ev)
{
    struct sse_page *p = ctx;

    if (ev->revision == p->r->sent_rev && p->skipped < p->r->sent_n) {
        p->skipped++; /* out in an earlier part */
        return 0;
    }
    if (p->n > 0 && p->r->slen >= SSE_FILL_BYTES) {
        p->cut = ev->revision; /* not added: the next fill starts here */
        return 1;
    }
    if ((p->n > 0 &&
         sse_end(p->r, ev->revision != p->open ? p->open : 0) != 0) ||
        sse_lines(p->r, ev) != 0) {
        p->failed = 1;
        return 1;
    }
    p->open_n = ev->revision == p->open ? p->open_n + 1 : 1;
    p->open = ev->revision;
    p->n++;
    return 0;
}

/* Read the next page of the stream's events into its buffer, and move
 * r->after past them.  ETAGKV_OK (maybe no events), or the status that
 * ends the stream (ETAGKV_COMPACTED: the reader fell behind the log).  A
 * page ends with a whole revision (etagkv_changes() never splits one), so
 * its last block carries an id. */
static etagkv_status sse_fill(struct srv *s, struct srv_req *r)
{
    etagkv_changes_page page;
    struct sse_page p = {r, 0, 0, 0, 0, 0, 0};
    etagkv_status st;
    int split;

    /* While the stream was held, the watcher found nothing for it up to
     * watch_scanned: read on from there.  Not from r->after, which on a
     * quiet prefix falls behind the log, and the trim of other keys'
     * events would end the stream as compacted though it missed nothing. */
    if (r->sent_rev == 0 && r->watch_scanned > r->after)
        r->after = r->watch_scanned;
    do { /* past a scan bound with nothing found, on from where it got */
        st = etagkv_changes(s->store, r->key, r->key_len, r->changes_flags,
                            r->after, SSE_PAGE, sse_add, &p, &page);
        if (st == ETAGKV_OK && p.n == 0 && page.more)
            r->after = page.next;
    } while (st == ETAGKV_OK && !p.failed && p.n == 0 && page.more);
    /* Stopped inside a transaction: its last block so far has no id, and
     * the next fill reads it again (page.next is its revision - 1),
     * passing over what went out. */
    split = p.cut != 0 && p.cut == p.open;
    if (st == ETAGKV_OK &&
        (p.failed || (p.n > 0 && sse_end(r, split ? 0 : p.open) != 0)))
        st = ETAGKV_NO_MEMORY;
    if (st == ETAGKV_OK) {
        r->sent_n =
            split ? (p.open == r->sent_rev ? r->sent_n : 0) + p.open_n : 0;
        r->sent_rev = split ? p.open : 0;
        r->after = page.next;
        r->caught_up = !page.more;
        atomic_fetch_add(&s->watch->events_sent, p.n);
    }
    return st;
}

/* The buffer is all sent: empty it, and free it if a large transaction
 * grew it. */
static void sbuf_sent(struct srv_req *r)
{
    r->spos = r->slen = 0;
    if (r->scap > SSE_KEEP_BYTES) {
        free(r->sbuf);
        r->sbuf = NULL;
        r->scap = 0;
    }
}

/* libmicrohttpd's content reader of a stream: the buffer, then the next
 * page, a heartbeat when the watcher resumed it at its deadline, or, with
 * nothing to send, the stream is held (suspended from here, as the API
 * allows) until a commit or the heartbeat is due.  A buffer that held
 * everything up to r->after is followed by the hold at once, not by a
 * read that would find nothing: a commit since that read is one the
 * watcher asks the stream about (park(): fresh). */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct srv_req *r = cls;
    struct srv *s = r->srv;
    size_t n;

    (void)pos;
    /* A client that hung up, or half-closed (which EventSource never
     * does): the stream ends.  A heartbeat instead would be held again,
     * and the hang-up, still pending, reported again at once. */
    if (r->watch_hung_up)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (r->spos == r->slen && r->caught_up && r->slen > 0 &&
        !atomic_load(&s->draining)) {
        sbuf_sent(r);
        r->caught_up = 0;
        return park(s, r->conn, r) == 0 ? 0 : MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (r->spos == r->slen) {
        sbuf_sent(r);
        if (atomic_load(&s->draining) || sse_fill(s, r) != ETAGKV_OK)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (r->slen == 0 && r->watch_timed_out &&
            sbuf_add(r, ": heartbeat\n\n", 13) != 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        r->watch_timed_out = 0;
        if (r->slen == 0)
            return park(s, r->conn, r) == 0 ? 0
                                            : MHD_CONTENT_READER_END_OF_STREAM;
    }
    n = r->slen - r->spos < max ? r->slen - r->spos : max;
    memcpy(buf, r->sbuf + r->spos, n);
    r->spos += n;
    return (ssize_t)n;
}

/* Accept: text/event-stream (the EventSource request). */
static int wants_stream(struct MHD_Connection *c)
{
    const char *a =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);

    return a != NULL && strstr(a, "text/event-stream") != NULL;
}

/* Last-Event-ID (the resume of an EventSource): wins over after=. */
static int last_event_id(struct MHD_Connection *c, const struct srv_req *r,
                         uint64_t *after)
{
    const char *v =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");

    size_t len = v != NULL ? srv_field_len(v, strlen(v)) : 0;

    /* A polyfill that cannot send the header (it would cost a CORS
     * preflight) sends ?lastEventId= (empty before the first event); an
     * empty header says the same (no event yet), as an empty lastEventId
     * does. */
    if (len == 0)
        return query_revision(r, "lastEventId", 1, after);
    return srv_decimal(v, len, INT64_MAX, after) == 0 ? 0 : -1;
}

static enum MHD_Result start_stream(struct srv *s, struct MHD_Connection *c,
                                    struct srv_req *r)
{
    struct srv_watch *w = s->watch;
    struct MHD_Response *resp;
    char retry[32];
    uint64_t asked;
    etagkv_status st;
    int full;

    if (last_event_id(c, r, &r->after) != 0)
        return srv_queue(
            s, c, r, 400,
            srv_status_problem(ETAGKV_INVALID_ARGUMENT,
                               "Last-Event-ID (or lastEventId) must be a "
                               "revision"));
    (void)pthread_mutex_lock(&w->lock);
    full = watchers(w) >= s->max_watchers;
    if (!full) {
        w->n_streams++;
        r->stream = 1;
    }
    (void)pthread_mutex_unlock(&w->lock);
    if (full)
        return unavailable(s, c, r, 1);
    r->srv = s;
    r->conn = c;
    asked = r->after;
    snprintf(retry, sizeof retry, "retry: %d\n\n", SSE_RETRY_MS);
    st = sbuf_add(r, retry, strlen(retry)) == 0 ? sse_fill(s, r)
                                                : ETAGKV_NO_MEMORY;
    /* The first page's next is at least the after asked for, unless that
     * lies beyond the store's revision. */
    if (st == ETAGKV_OK && r->after < asked) {
        etagkv_changes_page page = {0};

        /* The page's revision and min_after, for the problem. */
        (void)etagkv_changes(s->store, NULL, 0, 0, r->after, 1, stop_at_first,
                             NULL, &page);
        return ahead(s, c, r, asked, &page);
    }
    if (st == ETAGKV_COMPACTED) {
        etagkv_changes_page page = {0};

        /* The page's min_after, for the problem: read it once more. */
        (void)etagkv_changes(s->store, NULL, 0, 0, r->after, 1, stop_at_first,
                             NULL, &page);
        return compacted(s, c, r, &page);
    }
    if (st != ETAGKV_OK)
        return srv_queue(s, c, r, (unsigned)etagkv_status_http(st),
                         srv_status_problem(st, NULL));
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read,
                                             r, NULL);
    if (resp != NULL && (srv_add_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                        "text/event-stream") != 0 ||
                         srv_add_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                                        "no-cache") != 0)) {
        MHD_destroy_response(resp);
        resp = NULL;
    }
    return srv_queue(s, c, r, MHD_HTTP_OK, resp);
}

enum MHD_Result srv_changes(struct srv *s, struct MHD_Connection *c,
                            struct srv_req *r)
{
    etagkv_changes_page page;
    struct events e = {json_array(), 0};
    const char *bad;
    size_t limit;
    etagkv_status st;

    if (e.list == NULL)
        return MHD_NO;
    bad = r->uri_seen ? changes_query(r, &limit) : "out of memory";
    if (bad != NULL) {
        json_decref(e.list);
        return srv_queue(s, c, r, 400,
                         srv_status_problem(ETAGKV_INVALID_ARGUMENT, bad));
    }
    if (r->method == SRV_GET && wants_stream(c) && !r->watch_held) {
        json_decref(e.list);
        return start_stream(s, c, r);
    }
    /* A request held before reads on from where the watcher found nothing
     * for it (watch_scanned): the events in between are none of its, and
     * a long run of them would otherwise fill its scan bound. */
    st = etagkv_changes(s->store, r->key, r->key_len, r->changes_flags,
                        r->watch_held && r->watch_scanned > r->after
                            ? r->watch_scanned
                            : r->after,
                        limit, add_event, &e, &page);
    /* An empty page that stopped at the scan bound is answered at once:
     * its next moves the reader on (holding it would read the same bound
     * again at every look). */
    if (st == ETAGKV_OK && page.revision < r->after) {
        json_decref(e.list);
        return ahead(s, c, r, r->after, &page);
    }
    if (st == ETAGKV_OK && !e.failed && page.events == 0 && !page.more &&
        srv_watch_wants(s, c, r)) {
        json_decref(e.list);
        return srv_watch_hold(s, c, r);
    }
    if (st == ETAGKV_COMPACTED) {
        json_decref(e.list);
        return compacted(s, c, r, &page);
    }
    if (st != ETAGKV_OK || e.failed) {
        json_decref(e.list);
        st = e.failed ? ETAGKV_NO_MEMORY : st;
        return srv_queue(s, c, r, (unsigned)etagkv_status_http(st),
                         srv_status_problem(st, NULL));
    }
    atomic_fetch_add(&s->watch->events_sent, page.events);
    /* Up to 1,000 events of keys up to 511 bytes: charged when large. */
    return srv_queue_json_read(
        s, c, r,
        json_pack("{s:I,s:o,s:I}", "revision", (json_int_t)page.revision,
                  "events", e.list, "next", (json_int_t)page.next));
}
