/*
 * relay.h -- a TCP relay on loopback that can lose etcd's answers to
 * commits, shared by the suites that make an unknown outcome real rather
 * than mocked: the client (a store, or an etagkv-server) talks to the
 * relay's port, the relay to one etcd member.  test_etcd.c loses the
 * answer and watches the store report OUTCOME_UNKNOWN; test_ha.c loses it
 * and kills the front end that is waiting for it.
 *
 * The relay knows HTTP/1.1 only enough for etcd's JSON gateway as libcurl
 * speaks to it: one request at a time on a connection, so what the client
 * sent since its last request line tells what is answered next.
 */
#ifndef ETAGKV_RELAY_H
#define ETAGKV_RELAY_H

#include <pthread.h>
#include <stdatomic.h>

struct tu_relay {
    int listen_fd;
    int port;        /* where clients connect (127.0.0.1) */
    int target_port; /* the etcd member on 127.0.0.1 */
    /* Set: the answer to every Txn that writes (a commit: it has a
     * request_put) is read from etcd and dropped; etcd applied the write,
     * the client hears nothing.  Read-only Txns still pass. */
    atomic_int drop_txn_answers;
    /* Writing Txns passed on to etcd while drop_txn_answers was set, and
     * answers to them dropped (etcd had answered, so it had applied or
     * refused the write): a test waits for these instead of sleeping. */
    atomic_int txns_withheld;
    atomic_int answers_dropped;
    /* Set with drop_txn_answers: the first answer dropped also closes the
     * client's connection, and drop_txn_answers is cleared (a connection
     * that dies after the request and before its answer, which libcurl
     * may take for a stale kept-alive one and resend on). */
    atomic_int close_on_drop;
    /* Set: in etcd's answers, the first base64 character of every "key"
     * is changed (the length kept), so that a range answers with a key
     * other than the one asked for. */
    atomic_int mangle_keys;
    /* Set: the answer to every Txn that writes reaches the client with
     * each '"' made '\'' (its length kept): etcd applied or refused the
     * write, and the client gets a 200 that is not JSON. */
    atomic_int garble_txn_answers;
    /* Set: etcd's answers wait in the relay's sockets until it is
     * cleared (nothing is lost), so that a request stays on its way for
     * as long as a test needs. */
    atomic_int hold_answers;
    /* Requests passed on (POST lines), and of them POST /v3/kv/txn. */
    atomic_int requests, txns;
    atomic_int stop;
    pthread_t th;
};

/* Listen on a free loopback port (r->port) and relay every connection to
 * 127.0.0.1:target_port, on threads of its own.  Fails the test (Check)
 * on error; main thread only. */
void tu_relay_start(struct tu_relay *r, int target_port);

/* Stop accepting and close the listening socket; connections still open
 * end within 100 ms, on their own threads. */
void tu_relay_stop(struct tu_relay *r);

#endif
