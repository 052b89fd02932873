/*
 * accept.c -- the server's own accept loop, which deals new connections
 * out in turn between libmicrohttpd's worker threads.
 *
 * Left to itself, every worker of an epoll daemon with a thread pool
 * watches the listen socket, and the one that wakes first accepts up to
 * ten connections in a row (libmicrohttpd 0.9.75, MHD_epoll()).  A burst
 * of connections, such as a client's pool opening, lands on one or two
 * workers.  On a store on etcd that matters: a GET waits for etcd's answer
 * in its worker (docs/http.md, --threads), so the connections sharing that
 * worker wait too, however many workers sit idle.
 *
 * Here one thread accepts and deals the connections out in turn.
 * MHD_add_connection() cannot be told a worker: it takes the worker the
 * socket's number picks (number mod workers, or the next with room, and
 * the daemon never fills one: below).  Consecutive numbers would do, but
 * the lowest free number is not the next one whenever another thread
 * opened or closed a descriptor meanwhile (an etcd connection, a
 * connection's end), and then two of a burst share a worker while others
 * idle.  So the loop gives each connection a number of its turn's worker
 * (renumber()), at the cost of a dup and a close for most connections
 * (a few more when the numbers above are crowded).
 * The per-client limit and the accept policy apply as before:
 * libmicrohttpd checks both in MHD_add_connection(), which closes a
 * connection it refuses.  The cost is a thread hop per connection, not
 * per request.
 *
 * The loop, not libmicrohttpd, keeps --max-connections: it counts the
 * connections it hands over and stops accepting at the limit, as
 * libmicrohttpd did, so that new connections wait in the listen backlog;
 * a connection's end (srv_acceptor_notify(), from the daemon's connection
 * notifications) makes room again.  The daemon itself is given a limit
 * it can never reach (main.c).  It must not be reached: libmicrohttpd
 * 0.9.75 checks a worker's limit before queueing a connection handed to
 * it, against a count without the connections already queued, and its
 * second check, in the worker, deadlocks that worker (its path for a
 * connection over the limit takes a lock it already holds).
 */
#define _GNU_SOURCE /* accept4, pipe2 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* After accept() fails for want of descriptors or memory: wait this long
 * before trying again (the backlog keeps the connections meanwhile), and
 * say so at most once in LOG_EVERY_NS. */
#define PAUSE_MS 100
#define LOG_EVERY_NS (10ULL * 1000 * 1000 * 1000)

/* While full, how long without a connection's end before the count is
 * checked against the daemon's (recount()). */
#define RECOUNT_MS 1000

struct srv_acceptor {
    struct MHD_Daemon *daemon;
    int listen_fd;
    unsigned workers; /* the daemon's worker threads */
    unsigned turn;    /* the worker the next connection goes to */
    long capacity;    /* --max-connections */
    atomic_long open; /* handed over and not yet closed */
    int room;         /* eventfd: open fell below capacity */
    int stop[2];      /* a pipe: a byte in it ends the loop */
    pthread_t thread;
    int running;
    uint64_t logged_ns; /* when a failure was last reported */
};

/* Tries of renumber() before it settles for the number a socket has. */
#define RENUMBER_TRIES 8

/* The lowest number at or above fd that picks worker out of n. */
static long next_of(long fd, unsigned worker, unsigned n)
{
    return fd + (long)((worker + n - (unsigned long)fd % n) % n);
}

/* fd, or a duplicate of it in its place, whose number is worker modulo
 * a->workers (MHD_add_connection()'s choice of worker).  F_DUPFD_CLOEXEC
 * gives the lowest free number at or above the one asked for, and accept()
 * gave fd the lowest free one: asked for the candidates above fd in turn,
 * it mostly finds one at the first or second.  Past RENUMBER_TRIES
 * (numbers above fd taken by the dozen), or when a dup fails (no
 * descriptor left), fd stays as it is, on another worker: still served,
 * only not in turn. */
static int renumber(const struct srv_acceptor *a, int fd, unsigned worker)
{
    unsigned n = a->workers;
    long want = next_of(fd, worker, n);

    for (int i = 0; i < RENUMBER_TRIES && (unsigned long)fd % n != worker &&
                    want <= INT_MAX;
         i++) {
        int dup = fcntl(fd, F_DUPFD_CLOEXEC, (int)want);

        if (dup < 0)
            break;
        if ((unsigned long)dup % n == worker) {
            (void)close(fd);
            return dup;
        }
        (void)close(dup);
        want = next_of(dup, worker, n); /* above the one found in use */
    }
    return fd;
}

/* Accept what the backlog holds, while there is room.  0, or a pause in
 * ms after a failure that accepting again at once would only repeat. */
static int accept_all(struct srv_acceptor *a)
{
    while (atomic_load(&a->open) < a->capacity) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(a->listen_fd, (struct sockaddr *)&ss, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        uint64_t now;

        if (fd >= 0) {
            /* Counted before it is handed over: its end may be notified
             * before MHD_add_connection() returns.  One refused at once
             * (the per-client limit, the policy, no memory) is closed by
             * libmicrohttpd and never notified. */
            atomic_fetch_add(&a->open, 1);
            if (a->workers > 1) {
                fd = renumber(a, fd, a->turn);
                a->turn = (a->turn + 1) % a->workers;
            }
            if (MHD_add_connection(a->daemon, fd, (struct sockaddr *)&ss,
                                   len) != MHD_YES)
                srv_acceptor_notify(a, MHD_CONNECTION_NOTIFY_CLOSED);
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            return 0;
        case EINTR:
        case ECONNABORTED: /* the client gave up while in the backlog */
        /* The new connection's pending network errors: accept(2) says to
         * treat them as EAGAIN, that is, to accept the next. */
        case EPROTO:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case ENONET:
        case EHOSTUNREACH:
        case EOPNOTSUPP:
        case ENETDOWN:
        case ENETUNREACH: continue;
        default: /* EMFILE, ENFILE, ENOBUFS, ENOMEM, ... */
            now = srv_now_ns();
            if (a->logged_ns == 0 || now - a->logged_ns >= LOG_EVERY_NS) {
                fprintf(stderr,
                        "etagkv-server: accept: %s; new connections "
                        "wait in the backlog\n",
                        strerror(errno));
                a->logged_ns = now;
            }
            return PAUSE_MS;
        }
    }
    return 0;
}

/* Full, and no connection has ended for RECOUNT_MS: compare the count
 * with the daemon's.  A connection libmicrohttpd drops after taking it
 * but before starting it (a worker out of memory for its pool) is never
 * notified, and without this the loop would wait for its end forever.
 * The daemon's figure lacks the connections still queued for a worker,
 * so the limit may be passed by those for a moment; the daemon's own
 * limit is far away (main.c). */
static void recount(struct srv_acceptor *a)
{
    /* Loaded first: a connection that ends after it fails the exchange,
     * where one loaded after the daemon's figure could be counted twice. */
    long was = atomic_load(&a->open);
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

    /* Only if no connection ended meanwhile: its decrement must not be
     * overwritten, and it made room anyway. */
    if (info != NULL && (long)info->num_connections < was &&
        atomic_compare_exchange_strong(&a->open, &was,
                                       (long)info->num_connections)) {
        fprintf(stderr,
                "etagkv-server: %ld connections ended unnoticed; "
                "accepting again\n",
                was - (long)info->num_connections);
    }
}

static void *accept_loop(void *arg)
{
    struct srv_acceptor *a = arg;
    int pause = 0;

    for (;;) {
        /* The stop pipe always; the listen socket unless pausing after a
         * failure (it would be ready again at once) or full (the room
         * eventfd then says when a connection has ended). */
        int full = atomic_load(&a->open) >= a->capacity;
        struct pollfd p[2] = {{a->stop[0], POLLIN, 0},
                              {full ? a->room : a->listen_fd, POLLIN, 0}};
        uint64_t n;

        int ready = poll(p, pause > 0 ? 1 : 2,
                         pause > 0 ? pause
                         : full    ? RECOUNT_MS
                                   : -1);

        if (ready < 0) {
            if (errno != EINTR) {
                fprintf(stderr, "etagkv-server: accept loop: poll: %s\n",
                        strerror(errno));
                pause = PAUSE_MS; /* ENOMEM: try again, never give up */
            }
            continue;
        }
        if (p[0].revents != 0)
            return NULL;
        if (full && ready == 0 && pause == 0)
            recount(a);
        if (full) {
            if (p[1].revents != 0 && read(a->room, &n, sizeof n) < 0 &&
                errno != EAGAIN)
                pause = PAUSE_MS; /* not reached: an eventfd reads */
            else
                pause = 0;
            continue;
        }
        pause = accept_all(a);
    }
}

int srv_acceptor_new(int listen_fd, long capacity, struct srv_acceptor **out)
{
    struct srv_acceptor *a = calloc(1, sizeof(*a));

    *out = NULL;
    if (a == NULL)
        return -1;
    a->listen_fd = listen_fd;
    a->capacity = capacity > 0 ? capacity : 1;
    atomic_init(&a->open, 0);
    a->room = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (a->room < 0) {
        free(a);
        return -1;
    }
    if (pipe2(a->stop, O_CLOEXEC) != 0) {
        close(a->room);
        free(a);
        return -1;
    }
    *out = a;
    return 0;
}

int srv_acceptor_run(struct srv_acceptor *a, struct MHD_Daemon *d,
                     unsigned workers)
{
    int rc;

    a->daemon = d;
    a->workers = workers > 0 ? workers : 1;
    rc = pthread_create(&a->thread, NULL, accept_loop, a);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    a->running = 1;
    return 0;
}

void srv_acceptor_notify(struct srv_acceptor *a,
                         enum MHD_ConnectionNotificationCode toe)
{
    static const uint64_t one = 1;

    if (a == NULL || toe != MHD_CONNECTION_NOTIFY_CLOSED)
        return;
    if (atomic_fetch_sub(&a->open, 1) == a->capacity) {
        /* From full to one free: wake the loop.  An eventfd write fails
         * only when its counter would overflow, and then it is set. */
        (void)!write(a->room, &one, sizeof one);
    }
}

void srv_acceptor_stop(struct srv_acceptor *a)
{
    ssize_t n;

    if (a == NULL || !a->running)
        return;
    do
        n = write(a->stop[1], "x", 1);
    while (n < 0 && errno == EINTR);
    /* A pipe with room (nothing else writes to it) takes the byte; if it
     * did not, the loop must still end before the daemon goes: poll() is
     * a cancellation point. */
    if (n != 1)
        (void)pthread_cancel(a->thread);
    (void)pthread_join(a->thread, NULL);
    a->running = 0;
}

void srv_acceptor_free(struct srv_acceptor *a)
{
    if (a == NULL)
        return;
    srv_acceptor_stop(a);
    close(a->room);
    close(a->stop[0]);
    close(a->stop[1]);
    free(a);
}
