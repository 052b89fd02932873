/*
 * deadline.c -- request deadlines: a client gets --header-timeout seconds to
 * send a request's headers and then --body-timeout seconds to send its
 * body, however steadily it trickles bytes.
 *
 * libmicrohttpd 0.9.75 has only an idle timeout, reset by every byte
 * received, so a client sending one header line every few seconds holds
 * its connection for ever (slowloris), and it offers no way to close a
 * connection that has not reached the access handler.  So a watchdog
 * thread does: every connection is recorded when it starts (its socket and
 * a deadline), the handler moves the deadline as the request advances, and
 * the watchdog shuts down the socket of a connection past its deadline.
 * libmicrohttpd then reads EOF and closes it as it closes any connection
 * the client dropped; the client gets no response (as with the idle
 * timeout), since libmicrohttpd may be writing on the socket itself.
 *
 * The clock of the headers starts when the connection opens and, on a
 * kept-alive connection, when the previous response is complete; so an
 * idle kept-alive connection is closed after --header-timeout too.  No
 * deadline runs while the request executes or while the response is sent
 * (the idle timeout still applies there).
 *
 * shutdown(2), never close(2): the socket stays libmicrohttpd's.  It
 * calls the CLOSED notification before it closes the socket, and the
 * record leaves the list there, under the same lock the watchdog holds
 * while it shuts sockets down, so a socket number is never reused under
 * the watchdog.
 */
#include "server.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

/* How often the watchdog looks: the deadlines are this late at most. */
#define TICK_NS (200ull * 1000 * 1000)

struct conn {
    struct conn *prev, *next;
    struct srv_deadlines *w;
    int fd;
    int shut;                      /* shut down already */
    atomic_uint_fast64_t deadline; /* srv_now_ns() value; 0: none */
    /* The request srv_uri_log() made and the access handler has not yet
     * taken (srv_conn_hold_request()); the connection's thread only. */
    struct srv_req *unclaimed;
};

struct srv_deadlines {
    uint64_t header_ns, body_ns; /* 0: no deadline */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct conn *conns;
    int stop;
    pthread_t thread;
    int running;
};

struct srv_deadlines *srv_deadlines_new(unsigned header_s, unsigned body_s)
{
    struct srv_deadlines *w = calloc(1, sizeof *w);
    pthread_condattr_t attr;

    if (w == NULL)
        return NULL;
    w->header_ns = (uint64_t)header_s * 1000000000u;
    w->body_ns = (uint64_t)body_s * 1000000000u;
    if (pthread_condattr_init(&attr) != 0) {
        free(w);
        return NULL;
    }
    if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&w->wake, &attr) != 0) {
        pthread_condattr_destroy(&attr);
        free(w);
        return NULL;
    }
    pthread_condattr_destroy(&attr);
    if (pthread_mutex_init(&w->lock, NULL) != 0) {
        pthread_cond_destroy(&w->wake);
        free(w);
        return NULL;
    }
    return w;
}

/* Shut down the sockets past their deadline; the lock held. */
static void expire_locked(struct srv_deadlines *w, uint64_t now)
{
    struct conn *c;

    for (c = w->conns; c != NULL; c = c->next) {
        uint64_t d = atomic_load(&c->deadline);

        if (d == 0 || d > now || c->shut)
            continue;
        c->shut = 1;
        (void)shutdown(c->fd, SHUT_RDWR);
    }
}

static void *watch_main(void *arg)
{
    struct srv_deadlines *w = arg;
    struct timespec until;

    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        uint64_t now = srv_now_ns(), at = now + TICK_NS;

        expire_locked(w, now);
        until.tv_sec = (time_t)(at / 1000000000u);
        until.tv_nsec = (long)(at % 1000000000u);
        (void)pthread_cond_timedwait(&w->wake, &w->lock, &until);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int srv_deadlines_start(struct srv_deadlines *w)
{
    if (w->header_ns == 0 && w->body_ns == 0)
        return 0; /* nothing to watch */
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0)
        return -1;
    w->running = 1;
    return 0;
}

void srv_deadlines_free(struct srv_deadlines *w)
{
    if (w == NULL)
        return;
    if (w->running) {
        pthread_mutex_lock(&w->lock);
        w->stop = 1;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
    }
    /* MHD_stop_daemon() closed every connection: the list is empty. */
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/* Start the clock of the next request's headers. */
static void arm_headers(struct conn *c)
{
    uint64_t ns = c->w->header_ns;

    atomic_store(&c->deadline, ns > 0 ? srv_now_ns() + ns : 0);
}

void srv_deadline_notify(void *cls, struct MHD_Connection *mc,
                         void **socket_context,
                         enum MHD_ConnectionNotificationCode code)
{
    struct srv_deadlines *w = cls;
    struct conn *c = *socket_context;
    const union MHD_ConnectionInfo *info;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        info = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        c = info != NULL ? calloc(1, sizeof *c) : NULL;
        if (c == NULL)
            return; /* unwatched: the idle timeout still applies */
        c->w = w;
        c->fd = info->connect_fd;
        atomic_init(&c->deadline, 0);
        arm_headers(c);
        pthread_mutex_lock(&w->lock);
        c->next = w->conns;
        if (w->conns != NULL)
            w->conns->prev = c;
        w->conns = c;
        pthread_mutex_unlock(&w->lock);
        *socket_context = c;
        return;
    }
    if (c == NULL)
        return;
    srv_req_discard(c->unclaimed);
    pthread_mutex_lock(&w->lock);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&w->lock);
    free(c);
    *socket_context = NULL;
}

/* The record of a connection, or NULL when it is not watched. */
static struct conn *conn_of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return info != NULL ? info->socket_context : NULL;
}

void srv_deadline_headers_done(struct MHD_Connection *mc, int body_follows)
{
    struct conn *c = conn_of(mc);
    uint64_t ns;

    if (c == NULL)
        return;
    ns = body_follows ? c->w->body_ns : 0;
    atomic_store(&c->deadline, ns > 0 ? srv_now_ns() + ns : 0);
}

void srv_deadline_request_done(struct MHD_Connection *mc)
{
    struct conn *c = conn_of(mc);

    if (c != NULL)
        atomic_store(&c->deadline, 0);
}

void srv_deadline_next_request(struct MHD_Connection *mc)
{
    struct conn *c = conn_of(mc);

    if (c != NULL)
        arm_headers(c);
}

/* libmicrohttpd 0.9.75 may call neither the access handler nor the
 * completion for a request whose URI log callback made its record: a
 * query of a few hundred arguments fills the connection's pool while the
 * request line is parsed, its error answer cannot be built either, and the
 * second error closes the connection directly (connection.c, "stop with
 * error"), skipping the completion.  The record would leak, some KiB a
 * request, at a hostile client's will.  So the connection's own record
 * holds it until the handler or the completion takes it, and the
 * connection's end frees what was never taken.  (A connection whose own
 * record could not be allocated, out of memory, is not covered.) */
void srv_conn_hold_request(struct MHD_Connection *mc, struct srv_req *r)
{
    struct conn *c = conn_of(mc);

    if (c == NULL)
        return;                    /* unwatched (out of memory at its start) */
    srv_req_discard(c->unclaimed); /* never taken: nothing refers to it */
    c->unclaimed = r;
}

void srv_conn_claim_request(struct MHD_Connection *mc, struct srv_req *r)
{
    struct conn *c = conn_of(mc);

    if (c != NULL && r != NULL && c->unclaimed == r)
        c->unclaimed = NULL;
}
