/*
 * relay.c -- a TCP relay on loopback that can lose etcd's answers to
 * commits (see relay.h).
 */
#define _GNU_SOURCE /* memmem */
#include "relay.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct relay_conn {
    struct tu_relay *r;
    int client, server;
    int in_txn;   /* the request being sent is a POST /v3/kv/txn */
    int dropping; /* the answer now coming is to be lost */
    int garbling; /* the answer now coming is to be garbled */
};

/* Connection threads still running: tu_relay_stop() waits for them, so
 * that none outlives the struct tu_relay it reads. */
static atomic_int live_conns;

/* relay.h, mangle_keys: buf[0..n) with each "key":"X... made "key":"Y...
 * (an answer split between two reads may keep one). */
static void mangle(char *buf, size_t n)
{
    static const char field[] = "\"key\":\"";
    char *p = buf;

    while ((p = memmem(p, n - (size_t)(p - buf), field, sizeof field - 1)) !=
           NULL) {
        p += sizeof field - 1;
        if (p == buf + n)
            break;
        *p = *p == 'A' ? 'B' : 'A';
    }
}

/* Pass what arrives on one side on; 0, or -1 when the connection ends. */
static int relay_step(struct relay_conn *p, const struct pollfd *fds)
{
    static const char txn[] = "POST /v3/kv/txn ";
    char buf[65536];
    ssize_t n;

    if (fds[0].revents != 0) {
        n = read(p->client, buf, sizeof(buf));
        if (n <= 0 || write(p->server, buf, (size_t)n) != n)
            return -1;
        if (n >= 5 && memcmp(buf, "POST ", 5) == 0) {
            p->in_txn = (size_t)n >= sizeof(txn) - 1 &&
                        memcmp(buf, txn, sizeof(txn) - 1) == 0;
            p->dropping = 0;
            p->garbling = 0;
            atomic_fetch_add(&p->r->requests, 1);
            if (p->in_txn)
                atomic_fetch_add(&p->r->txns, 1);
        }
        if (p->in_txn && !p->dropping && atomic_load(&p->r->drop_txn_answers) &&
            memmem(buf, (size_t)n, "\"request_put\"", 13) != NULL) {
            p->dropping = 1;
            atomic_fetch_add(&p->r->txns_withheld, 1);
        }
        if (p->in_txn && atomic_load(&p->r->garble_txn_answers) &&
            memmem(buf, (size_t)n, "\"request_put\"", 13) != NULL)
            p->garbling = 1;
    }
    if (fds[1].revents != 0) {
        n = read(p->server, buf, sizeof(buf));
        if (n <= 0)
            return -1;
        if (atomic_load(&p->r->mangle_keys))
            mangle(buf, (size_t)n);
        for (ssize_t i = 0; p->garbling && i < n; i++)
            if (buf[i] == '"')
                buf[i] = '\'';
        if (p->dropping) {
            atomic_fetch_add(&p->r->answers_dropped, 1);
            if (atomic_load(&p->r->close_on_drop)) {
                atomic_store(&p->r->drop_txn_answers, 0);
                return -1;
            }
        } else if (write(p->client, buf, (size_t)n) != n)
            return -1;
    }
    return 0;
}

static void *relay_conn_main(void *arg)
{
    struct relay_conn *p = arg;

    while (!atomic_load(&p->r->stop)) {
        int hold = atomic_load(&p->r->hold_answers);
        struct pollfd fds[2] = {{p->client, POLLIN, 0},
                                {p->server, hold ? 0 : POLLIN, 0}};
        int n = poll(fds, 2, hold ? 10 : 100);

        if (n < 0 || (n > 0 && relay_step(p, fds) != 0))
            break;
    }
    close(p->client);
    close(p->server);
    free(p);
    atomic_fetch_sub(&live_conns, 1);
    return NULL;
}

static int connect_local(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void *relay_main(void *arg)
{
    struct tu_relay *r = arg;

    while (!atomic_load(&r->stop)) {
        struct pollfd pfd = {r->listen_fd, POLLIN, 0};
        struct relay_conn *p;
        pthread_t th;

        if (poll(&pfd, 1, 100) <= 0)
            continue;
        p = calloc(1, sizeof(*p));
        if (p == NULL)
            break;
        p->r = r;
        p->client = accept(r->listen_fd, NULL, NULL);
        p->server = p->client >= 0 ? connect_local(r->target_port) : -1;
        atomic_fetch_add(&live_conns, 1);
        if (p->server < 0 ||
            pthread_create(&th, NULL, relay_conn_main, p) != 0) {
            atomic_fetch_sub(&live_conns, 1);
            if (p->client >= 0)
                close(p->client);
            if (p->server >= 0)
                close(p->server);
            free(p);
            continue;
        }
        (void)pthread_detach(th);
    }
    return NULL;
}

void tu_relay_start(struct tu_relay *r, int target_port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);

    r->target_port = target_port;
    atomic_init(&r->drop_txn_answers, 0);
    atomic_init(&r->txns_withheld, 0);
    atomic_init(&r->answers_dropped, 0);
    atomic_init(&r->close_on_drop, 0);
    atomic_init(&r->mangle_keys, 0);
    atomic_init(&r->garble_txn_answers, 0);
    atomic_init(&r->hold_answers, 0);
    atomic_init(&r->requests, 0);
    atomic_init(&r->txns, 0);
    atomic_init(&r->stop, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(r->listen_fd, 0);
    ck_assert_int_eq(bind(r->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(r->listen_fd, 16), 0);
    ck_assert_int_eq(getsockname(r->listen_fd, (struct sockaddr *)&a, &len), 0);
    r->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&r->th, NULL, relay_main, r), 0);
}

void tu_relay_stop(struct tu_relay *r)
{
    atomic_store(&r->stop, 1);
    ck_assert_int_eq(pthread_join(r->th, NULL), 0);
    close(r->listen_fd);
    /* Each connection thread sees stop within its 100 ms poll. */
    while (atomic_load(&live_conns) > 0)
        (void)nanosleep(&(struct timespec){0, 10000000}, NULL);
}
