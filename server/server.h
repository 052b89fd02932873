/*
 * server.h -- declarations shared between the files of server/.  Not API.
 *
 * etagkv-server is thin (DESIGN §5).  A request goes through the files in
 * this order (handler.c calls the others in turn):
 *
 *   handler.c  the libmicrohttpd access handler: one request's state,
 *              from its request line to its completion
 *   admit.c    admission at the headers: framing, bearer token, route and
 *              method, key, precondition headers, Idempotency-Key, limits
 *              (and for /txn: JSON Content-Type, no header conditions);
 *              then the body, within the limit
 *   url.c      routes and UTF-8 (pure helpers)
 *   pct.c      percent-encoding of keys (pure; the CLI compiles it too)
 *   kv.c       the one library call of /kv/{key}, and its response
 *   txn.c      the one library call of POST /txn (DESIGN §7), its reply
 *   txn_json.c the /txn body parsed into a transaction, the results as
 *              JSON (pure: jansson and the library only; fuzzed)
 *   list.c     the one library call of /kv/?prefix=, a JSON page
 *   metrics.c  /metrics (the request counters) and /healthz
 *   diagnose.c what a 412 or 409 adds: sent, decided_by, superseded; the
 *              rate-limited refusal log line
 *   access.c   the access log (--access-log), one line per request
 *   reply.c    responses: problem+json, refusals, headers, queueing
 *   budget.c   the memory budget: buffered bodies, shared GET values
 *   deadline.c request deadlines (headers, body) for slow clients
 *   auth.c     bearer tokens, client identities, secret files
 *   main.c     options, the listening socket, TLS, signals, shutdown
 *
 * No file here parses an ETag or a date, or decides 304 or 412: the
 * library does.  Below, each file's declarations under its name.
 */
#ifndef ETAGKV_SERVER_H
#define ETAGKV_SERVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <microhttpd.h>

#include "etagkv.h"
#include "pct.h"
#include "txn_json.h"

/* ---- shared state -------------------------------------------------------- */

/* The memory pool libmicrohttpd gives each connection for its request's
 * header section and its response's header block: set by main.c
 * (MHD_OPTION_CONNECTION_MEMORY_LIMIT) and measured against by admit.c's
 * 431 check, so the two cannot drift apart.  32 KiB, libmicrohttpd's own
 * default. */
#define SRV_CONN_MEMORY_BYTES ((size_t)32 << 10)

/* The request counters of /metrics (metrics.c owns the layout). */
struct srv_metrics;
/* The memory budget and the shared GET values (budget.c). */
struct srv_budget;
/* The configured bearer tokens (auth.c). */
struct srv_tokens;

/* Bytes of a client identity (auth.c), the prefix of its scoped
 * Idempotency-Keys. */
#define SRV_IDENTITY_BYTES 16

/* Everything the request threads share.  Set up by main.c before the daemon
 * starts and read-only afterwards, except the atomics. */
struct srv {
    etagkv_store *store;
    struct srv_metrics *metrics; /* the counters of /metrics (atomics) */
    uint64_t max_value_bytes;
    uint64_t max_txn_body_bytes; /* largest POST /txn body */
    size_t max_txn_ops;          /* operations per transaction */
    int require_conditions;
    struct srv_tokens *tokens; /* bearer tokens, NULL when none */
    struct srv_budget *budget; /* bodies and GET values in memory */
    atomic_int draining;       /* shutting down: ask clients to close */
    atomic_long inflight;      /* requests between first call and completion */
    atomic_long requests_held; /* request records alive (handler.c) */
    /* MHD_stop_daemon() aborts the process if a connection is still
     * suspended, so stopping and suspending exclude each other: a write
     * counts itself in `suspended` and then checks `stopping`; the stopper
     * sets `stopping` and then waits for `suspended` to reach 0.  With
     * sequentially consistent atomics one of the two sees the other. */
    atomic_int stopping;
    atomic_long suspended;   /* writes in flight (their connections
                              * suspended, or about to be) and held
                              * requests */
    struct srv_watch *watch; /* held requests (watch.c) */
    unsigned max_wait_s;     /* cap on Prefer: wait */
    unsigned max_watchers;   /* held requests at once; past it 503 */
    unsigned heartbeat_s;    /* SSE comment line after this much quiet */
    struct srv_access_log *access_log; /* --access-log, or NULL */
    uint64_t idem_max_keys; /* --idempotency-max-keys, for /metrics */
};

/* The request methods the server tells apart; the rest is SRV_OTHER. */
enum srv_method { SRV_GET, SRV_HEAD, SRV_PUT, SRV_DELETE, SRV_POST, SRV_OTHER };

/* What a path names. */
enum srv_route {
    SRV_ROUTE_NONE,    /* unknown path: 404 */
    SRV_ROUTE_KV,      /* /kv/{key} */
    SRV_ROUTE_LIST,    /* /kv or /kv/ */
    SRV_ROUTE_HEALTHZ, /* /healthz */
    SRV_ROUTE_METRICS, /* /metrics */
    SRV_ROUTE_CHANGES, /* /changes */
    SRV_ROUTE_TXN,     /* /txn */
    SRV_ROUTE_LEASES,  /* /leases */
    SRV_ROUTE_LEASE,   /* /leases/{id}, /leases/{id}/keepalive */
    SRV_ROUTE_COUNT    /* not a route: the number of them (tables per route) */
};

/* A parsed POST /txn body (txn_json.h). */
struct srv_txn_req;

/* One request, from its request line (srv_uri_log) or its first
 * access-handler call to its completion callback (handler.c owns it). */
struct srv_req {
    int started;        /* the access handler has seen it */
    const char *uri;    /* the request-target as srv_uri_log saw it */
    size_t uri_len;     /* its length then, up to a NUL byte */
    int uri_seen;       /* srv_uri_log saw it, and query is its query */
    int uri_bad;        /* it holds '#' or a byte outside visible ASCII */
    char *content_type; /* PUT: the Content-Type without its trailing
                         * whitespace, when it had some (malloc'd), or
                         * NULL: use the header's */
    char *query;        /* a copy of the raw query (after '?'), or NULL:
                         * libmicrohttpd turns '+' into ' ' in its own
                         * copy, before any unescape callback */
    uint64_t start_ns;
    enum srv_method method;
    enum srv_route route;
    unsigned char key[ETAGKV_KEY_MAX];
    size_t key_len;
    etagkv_cond *cond; /* the four precondition headers, raw */
    unsigned char idem[ETAGKV_IDEMPOTENCY_KEY_MAX]; /* Idempotency-Key */
    size_t idem_len;                                /* 0: none */
    int replayed; /* the answer is a recorded outcome (Idempotent-Replayed) */
    const unsigned char *identity; /* the client's token identity
                                    * (SRV_IDENTITY_BYTES), or NULL */
    /* A PUT or DELETE is submitted to the library (etagkv_submit) and the
     * connection suspended until the write is durable: no worker thread
     * waits for the disk, and one group commit serves writes from every
     * connection.  The completion stores the outcome and resumes.  A
     * write answered at once (refused early) never suspends: see
     * srv_write_begin().  An enum srv_write_state. */
    atomic_int write_state;
    etagkv_result write_res; /* its current_value is ours to free */
    int prefer_repr;         /* PUT or POST /txn with Prefer:
                                return=representation */
    struct MHD_Connection *conn;
    struct srv *srv;        /* for the completion, which runs off-thread */
    char write_detail[256]; /* etagkv_last_error_detail() of the write */
    int must_close; /* framing unknown: answer and close the connection */
    struct srv_txn_req *txn; /* POST /txn: the parsed transaction */
    /* PUT /kv/{key}: ETagKV-Lease (0: none); /leases/{id}: the id, and
     * whether the path ends in /keepalive. */
    uint64_t lease;
    int lease_keepalive;
    etagkv_lease lease_res; /* a submitted lease call's outcome (lease.c) */
    char *body;             /* PUT or POST body so far (malloc'd) */
    size_t body_len, body_cap;
    uint64_t reserved;        /* bytes charged to the memory budget for it */
    uint64_t discarded_bytes; /* body bytes dropped after a refusal */
    uint64_t bytes_in;        /* body bytes received, for the access log */
    struct MHD_Response *pending; /* refusal decided at admission, not yet
                                   * sent (NULL: could not be built) */
    unsigned pending_status;
    unsigned status; /* HTTP status queued, 0 while none */
    /* For the access log (access.c), taken when the response is queued:
     * the If-Match (else If-None-Match) sent, truncated; the ETag and
     * ETagKV-Revision answered; the bytes of a value sent. */
    char etag_sent[128];
    char etag_out[ETAGKV_ETAG_SIZE];
    char revision_out[24];
    uint64_t bytes_out;
    /* Held until a change (watch.c): a GET /kv/{key} that would be 304,
     * or an empty page of /changes, with Prefer: wait. */
    unsigned wait_s; /* the wait applied (capped), 0: none asked */
    int watch_held;  /* it was held at least once */
    /* A conditional PUT or DELETE with Prefer: wait: it waits for its
     * conditions (etagkv_request.wait_ms), wait_s at most; its client's
     * hang-up ends the wait (watch.c, srv_watch_write_held()), until the
     * write is done (write_finished, under the watcher's write_lock). */
    int write_waits;
    int write_counted; /* counted against --max-watchers (watch.c) */
    int write_finished;
    int write_ending;     /* in etagkv_end_wait() on the hang-up thread */
    int watch_timed_out;  /* resumed by its deadline or by shutdown */
    int watch_hung_up;    /* resumed because its client hung up */
    int watch_fresh;      /* held since the watcher last looked */
    uint64_t deadline_ns; /* srv_now_ns() at which it answers anyway */
    struct srv_req *watch_prev, *watch_next;
    /* While held (a long-poll, a stream, or a write waiting for its
     * conditions): the socket the watcher watches for the client hanging
     * up (-1: none), and /changes: the revision up to which the log had
     * no event for it. */
    int watch_fd;
    uint64_t watch_scanned;
    uint64_t after; /* /changes: events after this revision */
    unsigned changes_flags;
    /* A Server-Sent Events stream of /changes (watch.c): the text not yet
     * taken by libmicrohttpd, at most one page of events. */
    int stream;
    int retry_sent;
    int caught_up; /* the buffer holds every event up to r->after */
    char *sbuf;
    size_t slen, spos, scap;
    /* A transaction too large for one buffer is sent in parts: the first
     * sent_n events of revision sent_rev are out (its id is not yet), and
     * r->after is sent_rev - 1.  sent_rev 0: none cut. */
    uint64_t sent_rev;
    size_t sent_n;
};

/* ---- handler.c ----------------------------------------------------------- */

/* MHD's access handler (cls is the struct srv): admits, routes and answers
 * one request over libmicrohttpd's several calls. */
enum MHD_Result srv_access(void *cls, struct MHD_Connection *c, const char *url,
                           const char *method, const char *version,
                           const char *upload_data, size_t *upload_data_size,
                           void **con_cls);

/* MHD's completion callback: counts the request and frees its srv_req. */
void srv_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                   enum MHD_RequestTerminationCode toe);

/* MHD's URI log callback, called with the request-target before
 * libmicrohttpd splits off the query: starts the request's srv_req. */
void *srv_uri_log(void *cls, const char *uri, struct MHD_Connection *c);

/* Free r, made by srv_uri_log() and never seen by the access handler (so
 * holding nothing but its query); NULL is fine. */
void srv_req_discard(struct srv_req *r);

/* Monotonic clock in nanoseconds. */
uint64_t srv_now_ns(void);

/* ---- accept.c -------------------------------------------------------------
 */

/* The accept loop: a thread that accepts on listen_fd (non-blocking) and
 * hands each connection to the daemon (started with
 * MHD_USE_NO_LISTEN_SOCKET), dealing them out in turn between its
 * workers, while fewer than capacity connections are open.  new: 0, or -1
 * (errno set); run starts the thread once the daemon is up, given its
 * number of worker threads (0, or -1, errno set).  notify: called with every
 * connection notification of the daemon (MHD_OPTION_NOTIFY_CONNECTION), which
 * keeps the count; NULL is a no-op.  stop: end the loop, before the daemon
 * stops.  free: after the daemon stopped (its last notifications come then);
 * the listen socket is the caller's.  stop and free take NULL. */
struct srv_acceptor;
int srv_acceptor_new(int listen_fd, long capacity, struct srv_acceptor **out);
int srv_acceptor_run(struct srv_acceptor *a, struct MHD_Daemon *d,
                     unsigned workers);
void srv_acceptor_notify(struct srv_acceptor *a,
                         enum MHD_ConnectionNotificationCode toe);
void srv_acceptor_stop(struct srv_acceptor *a);
void srv_acceptor_free(struct srv_acceptor *a);

/* ---- admit.c ------------------------------------------------------------- */

/* Admit a request at its headers: set r's method, route, key, conditions
 * and Idempotency-Key, or decide its refusal (left in r->pending). */
void srv_admit(const struct srv *s, struct MHD_Connection *c, struct srv_req *r,
               const char *url, const char *method, const char *version);

/* 1 if the request announces a body (RFC 9112 §6.3), else 0. */
int srv_announces_body(struct MHD_Connection *c);

/* Take *size bytes of body (and set *size to 0): appended within the
 * limit, or dropped after a refusal.  MHD_NO closes the connection when too
 * much was dropped. */
enum MHD_Result srv_admit_body(const struct srv *s, struct srv_req *r,
                               const char *data, size_t *size);

/* Free r's body and release what it reserved from the memory budget. */
void srv_body_free(const struct srv *s, struct srv_req *r);

/* ---- budget.c ------------------------------------------------------------ */

/* A budget of limit bytes, or NULL when out of memory. */
struct srv_budget *srv_budget_new(uint64_t limit);

/* Free b (NULL is fine); nothing may be charged any more. */
void srv_budget_free(struct srv_budget *b);

/* Charge n bytes: 0, or -1 (nothing charged) when they do not fit. */
int srv_budget_reserve(struct srv_budget *b, uint64_t n);

/* Give back n bytes charged earlier. */
void srv_budget_release(struct srv_budget *b, uint64_t n);

/* A response whose content is the malloc'd v (len bytes), released with
 * free_fn when libmicrohttpd is done with it, together with `charged`
 * bytes of b already charged for it; a value as large as a shared GET
 * value is charged in full (what `charged` does not cover is charged
 * here).  NULL (v freed, the charge given back) when out of memory, or
 * with *busy set when the charge does not fit. */
struct MHD_Response *srv_owned_response(struct srv_budget *b, void *v,
                                        size_t len, void (*free_fn)(void *),
                                        uint64_t charged, int *busy);

/* A response owning the malloc'd text (len bytes, freed with free()).  A
 * text as large as a shared GET value is charged to b -- at most b's
 * whole limit, so that one larger than the budget goes out once the
 * budget is idle -- until libmicrohttpd is done with it.  When the charge
 * does not fit: with must, charged all the same, over the limit (the
 * answer to a committed write is never withheld, and what it holds keeps
 * everything else out until it is sent); else NULL with *busy set.  NULL
 * (text freed) when out of memory too. */
struct MHD_Response *srv_charged_response(struct srv_budget *b, char *text,
                                          size_t len, int must, int *busy);

/* The bytes charged now, and the limit (for /metrics). */
uint64_t srv_budget_used(struct srv_budget *b);
uint64_t srv_budget_limit(const struct srv_budget *b);

/* A value being served by GET responses (shared, reference-counted). */
struct srv_value;

/* GET r's key with its conditions: ETAGKV_OK and *out (one reference,
 * released by srv_value_release()), or another status with *out NULL and
 * m holding what etagkv_view() reports.  *busy is set (status OK, *out
 * NULL) when the value's copy does not fit the memory budget. */
etagkv_status srv_value_get(struct srv *s, const struct srv_req *r,
                            etagkv_meta *m, struct srv_value **out, int *busy);

/* The bytes of v and their length. */
const void *srv_value_data(const struct srv_value *v, size_t *len);

/* Drop one reference to v (a struct srv_value *; an MHD free callback). */
void srv_value_release(void *v);

/* ---- deadline.c -------------------------------------------------------------
 */

/* Request deadlines (0: none). */
struct srv_deadlines;

/* A watchdog with these deadlines in seconds, or NULL (out of memory). */
struct srv_deadlines *srv_deadlines_new(unsigned header_s, unsigned body_s);

/* Start its thread (none when both deadlines are 0); 0 or -1. */
int srv_deadlines_start(struct srv_deadlines *w);

/* Stop its thread and free it, after MHD_stop_daemon(); NULL is fine. */
void srv_deadlines_free(struct srv_deadlines *w);

/* MHD_OPTION_NOTIFY_CONNECTION (cls is the watch): records connections. */
void srv_deadline_notify(void *cls, struct MHD_Connection *c,
                         void **socket_context,
                         enum MHD_ConnectionNotificationCode code);

/* The headers are in: the body deadline starts if a body follows, else no
 * deadline runs. */
void srv_deadline_headers_done(struct MHD_Connection *c, int body_follows);

/* The request is complete: no deadline while it executes and answers. */
void srv_deadline_request_done(struct MHD_Connection *c);

/* The response is sent: the next request's headers are due. */
void srv_deadline_next_request(struct MHD_Connection *c);

/* srv_uri_log() made r for c: held by c's record until the access handler
 * claims it, and freed with the connection if it never does (a request
 * libmicrohttpd refused while parsing its request line). */
void srv_conn_hold_request(struct MHD_Connection *c, struct srv_req *r);

/* The access handler or the completion has r (the completion frees it,
 * including for a request libmicrohttpd refused after its headers). */
void srv_conn_claim_request(struct MHD_Connection *c, struct srv_req *r);

/* ---- auth.c -------------------------------------------------------------- */

/* Overwrite n bytes at p with zeros (a secret no longer needed). */
void srv_wipe(void *p, size_t n);

/* Read a whole file (at most 1 MiB), NUL-terminated, into a malloc'd
 * buffer, *len its length; with secret, refuse a file that anyone but its
 * owner may access.  NULL on failure (reported on stderr). */
char *srv_read_file(const char *path, int secret, size_t *len);

/* Load the token file (one token per line); 0, or -1 (reported). */
int srv_tokens_load(const char *file, struct srv_tokens **out);

/* Free t (NULL is fine), wiping the tokens. */
void srv_tokens_free(struct srv_tokens *t);

/* The identity (SRV_IDENTITY_BYTES) of the token equal to got, or NULL.
 * Constant time in the sense of auth.c. */
const unsigned char *srv_tokens_match(const struct srv_tokens *t,
                                      const char *got, size_t got_len);

/* ---- url.c --------------------------------------------------------------- */

/* The route of the raw path; for /kv/... *key_enc points at the encoded
 * key after "/kv/" (empty for the listing). */
enum srv_route srv_route_of(const char *path, const char **key_enc);

/* srv_pct_decode() and srv_pct_encode(): pct.h (shared with the CLI). */

/* 1 if the bytes are well-formed UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), else 0. */
int srv_utf8_valid(const void *src, size_t len);

/* The len bytes as text for a JSON string (jansson refuses what is not
 * UTF-8): well-formed UTF-8 kept, every other byte replaced by U+FFFD, cut
 * at a character boundary to at most max bytes.  For what a client sent
 * in a header (obs-text, RFC 9110 §5.5, is legal there) and texts that may
 * quote it.  malloc'd and NUL-terminated, or NULL without memory. */
char *srv_utf8_text(const void *src, size_t len, size_t max);

/* v[0..len) as a decimal number, digits only (no sign, no spaces): 0 with
 * the value in *out; 1 when it is above cap, with cap in *out; -1 when it
 * is empty or holds anything but digits. */
int srv_decimal(const char *v, size_t len, uint64_t cap, uint64_t *out);

/* The length of the field value v[0..len) without its trailing spaces
 * and tabs, which RFC 9110 §5.5 says are not part of it (libmicrohttpd
 * drops the leading ones, not these). */
size_t srv_field_len(const char *v, size_t len);

/* 1 if the len bytes are all visible ASCII (0x21..0x7e) other than '#',
 * as a request-target must be (RFC 9112 §3.2, RFC 3986 §2: a fragment is
 * never sent, and a '#' in a key is sent as %23), else 0. */
int srv_target_chars_ok(const char *s, size_t len);

/* MHD_OPTION_UNESCAPE_CALLBACK that leaves the URL as received, so that the
 * key is decoded once, strictly, by srv_pct_decode. */
size_t srv_unescape_none(void *cls, struct MHD_Connection *c, char *s);

/* ---- kv.c ---------------------------------------------------------------- */

/* GET, HEAD, PUT or DELETE /kv/{key}: the one library call, and its
 * response.  A write suspends the connection and answers when resumed. */
enum MHD_Result srv_kv(struct srv *s, struct MHD_Connection *c,
                       struct srv_req *r);

/* Where a request's write is (srv_req.write_state). */
enum srv_write_state {
    SRV_WRITE_NONE,       /* not submitted */
    SRV_WRITE_SUBMITTING, /* submitted, the connection not suspended */
    SRV_WRITE_PENDING,    /* submitted, the connection suspended */
    SRV_WRITE_DONE        /* the outcome is in write_res */
};

/* Called by the library when a submitted write (or transaction) of r is
 * done: keeps the outcome in r->write_res and resumes the connection, or,
 * when it is not suspended yet, leaves the answer to the submitter
 * (srv_write_submitted()). */
void srv_write_done(void *ctx, const etagkv_result *res);

/* Before submitting a write of r without suspending the connection first:
 * count it as in flight (srv.suspended, which the daemon's stop waits
 * out); r->write_state becomes SRV_WRITE_SUBMITTING.  When the server is
 * stopping it answers 503 instead and the write state stays as it was:
 * nothing is to be submitted.  Returns what the handler returns. */
enum MHD_Result srv_write_begin(struct srv *s, struct MHD_Connection *c,
                                struct srv_req *r);

/* After the submit that srv_write_begin() began: 1 when the write is done
 * already (refused at once, or done on another thread meanwhile) and the
 * handler answers now, the connection never suspended; 0 when the
 * handler returns MHD_YES with nothing queued: the connection is
 * suspended until the completion resumes it, or, when the completion came
 * between the suspend and this thread's compare-and-swap, already resumed
 * here, and MHD calls the handler again to answer. */
int srv_write_submitted(struct srv *s, struct MHD_Connection *c,
                        struct srv_req *r);

/* Before submitting a write of r: count the connection as suspended and
 * suspend it (r->write_state becomes SRV_WRITE_PENDING; submit then, with
 * srv_write_done as the callback).  When the server is stopping it answers
 * 503 instead and the write state stays as it was: nothing is to be
 * submitted.  Returns what the handler returns. */
enum MHD_Result srv_write_suspend(struct srv *s, struct MHD_Connection *c,
                                  struct srv_req *r);

/* ---- txn.c --------------------------------------------------------------- */

/* POST /txn: parse, submit (the connection suspended), reply 200 or 409. */
/* ---- lease.c ------------------------------------------------------------- */

/* POST /leases, GET and DELETE /leases/{id}, POST /leases/{id}/keepalive
 * (DESIGN §9), admitted (admit.c): one library call each, answered. */
enum MHD_Result srv_lease(struct srv *s, struct MHD_Connection *c,
                          struct srv_req *r);

enum MHD_Result srv_txn(struct srv *s, struct MHD_Connection *c,
                        struct srv_req *r);

/* ---- list.c -------------------------------------------------------------- */

/* GET /kv/?prefix=&after=&limit=: one JSON page of keys. */
enum MHD_Result srv_list(struct srv *s, struct MHD_Connection *c,
                         struct srv_req *r);

/* ---- watch.c ------------------------------------------------------------- */

/* Start the watcher: one thread that holds requests until a commit (an
 * etagkv_notify_open() descriptor) or their deadline, and one that ends
 * the waits of held writes whose clients hang up.  0, or -1. */
int srv_watch_start(struct srv *s);

/* Answer every held request now, as at its deadline, and refuse new holds
 * (SIGTERM). */
void srv_watch_release_all(struct srv *s);

/* Stop the threads and free the watcher (after MHD_stop_daemon()). */
void srv_watch_stop(struct srv *s);

/* For a request whose answer would be "nothing new" (304, an empty page):
 * 1 if it should be held -- it asked Prefer: wait (r->wait_s is then set,
 * capped by --max-wait), has not timed out, and the server is not
 * draining -- else 0. */
int srv_watch_wants(struct srv *s, struct MHD_Connection *c, struct srv_req *r);

/* Hold r: suspend the connection until the watcher resumes it; MHD then
 * calls the handler again, which reads afresh.  Past --max-watchers, 503
 * with Retry-After. */
enum MHD_Result srv_watch_hold(struct srv *s, struct MHD_Connection *c,
                               struct srv_req *r);

/* A write about to be submitted with Prefer: wait: 0, counted against
 * --max-watchers until srv_watch_write_done(); 1 when they are all taken,
 * and then it must not wait (the preference is ignored). */
int srv_watch_write_admit(struct srv *s, struct srv_req *r);

/* A write waiting for its conditions (r->write_waits), its connection
 * suspended: watch its socket, and when the client hangs up end its wait
 * (etagkv_end_wait()), so that it is answered, not applied for nobody.
 * Best effort: should the watch fail, the write waits as asked. */
void srv_watch_write_held(struct srv *s, struct MHD_Connection *c,
                          struct srv_req *r);

/* r's write is done (srv_write_done(), before the connection resumes):
 * stop watching its socket; from now on its hang-up ends nothing. */
void srv_watch_write_done(struct srv *s, struct srv_req *r);

/* ---- prefer.c ------------------------------------------------------------ */

/* The preferences of a request's Prefer header(s) that this server
 * honours (RFC 7240). */
struct srv_prefer {
    unsigned wait_s;           /* wait=N, capped; 0: none */
    int return_representation; /* return=representation */
};

/* Read every Prefer line of c into *p (zeroed first); wait capped at
 * wait_cap. */
void srv_prefer_parse(struct MHD_Connection *c, unsigned wait_cap,
                      struct srv_prefer *p);

/* One field value, after the lines before it; *seen (0 for the first
 * line) remembers which preferences were given already, since only the
 * first instance of each counts. */
void srv_prefer_parse_value(const char *v, unsigned wait_cap,
                            struct srv_prefer *p, unsigned *seen);

/* ---- watch.c, continued -------------------------------------------------- */

/* Preference-Applied: wait=N (RFC 7240 §3).  0 or -1. */
int srv_add_preference_applied(struct MHD_Response *resp, unsigned wait_s);

/* GET /changes?prefix=|key=&after=&limit=: a JSON page of the change log
 * (DESIGN §8), held while empty with Prefer: wait. */
enum MHD_Result srv_changes(struct srv *s, struct MHD_Connection *c,
                            struct srv_req *r);

/* Gauges and counters for /metrics. */
struct srv_watch_figures {
    uint64_t held;      /* requests held (long-polls and idle streams) */
    uint64_t streams;   /* SSE streams open */
    uint64_t events;    /* events sent, pages and streams */
    uint64_t compacted; /* 410s */
    uint64_t dropped;   /* streams closed on a reader that did not keep up */
};
void srv_watch_counters(const struct srv *s, struct srv_watch_figures *f);

/* A request ended (srv_completed): a stream leaves the count, and one cut
 * by the connection timeout (a reader that stopped reading) is counted as
 * dropped.  Frees the stream's buffer. */
void srv_watch_ended(struct srv *s, struct srv_req *r,
                     enum MHD_RequestTerminationCode toe);

/* ---- list.c: query arguments, shared with watch.c ------------------------ */

/* 0 if every query argument is one of the n names, each at most once; -1
 * otherwise: a misspelt name would otherwise be ignored and the answer
 * cover more than asked for ("PREFIX=a" lists every key), and a repeated
 * one is ambiguous.  Empty arguments ("a=1&&b=2") are skipped. */
int srv_query_names_known(const struct srv_req *r, const char *const *names,
                          size_t n);

/* The raw value of query argument name: 1 and (*v, *vlen), or 0. */
int srv_query_arg(const struct srv_req *r, const char *name, const char **v,
                  size_t *vlen);

/* Decode query argument name into out (cap bytes); absent: length 0.
 * ETAGKV_OK, ETAGKV_INVALID_ARGUMENT (encoding) or ETAGKV_KEY_TOO_LONG. */
etagkv_status srv_query_bytes(const struct srv_req *r, const char *name,
                              unsigned char *out, size_t cap, size_t *len);

/* limit=: 0 and *limit (default dflt, capped at max), or -1 when it is not
 * a positive integer. */
int srv_query_limit(const struct srv_req *r, size_t dflt, size_t max,
                    size_t *limit);

/* ---- metrics.c ----------------------------------------------------------- */

/* A set of zeroed counters, or NULL when out of memory. */
struct srv_metrics *srv_metrics_new(void);

/* Free m (NULL is fine). */
void srv_metrics_free(struct srv_metrics *m);

/* Count one finished request: route, method, HTTP status (0 when the
 * request ended without a response) and duration.  Thread-safe. */
void srv_metrics_record(struct srv_metrics *m, enum srv_route route,
                        enum srv_method method, unsigned status,
                        uint64_t duration_ns);

/* Count a write with an Idempotency-Key: a replay, or a key reused for a
 * different request (422).  Thread-safe. */
void srv_metrics_idempotency(struct srv_metrics *m, int replayed, int mismatch);

/* Count an admitted POST /txn by outcome, and, when it was evaluated (OK
 * or CONFLICT), its number of operations.  Thread-safe. */
void srv_metrics_txn(struct srv_metrics *m, etagkv_status outcome, size_t ops);

/* GET /metrics: the Prometheus text exposition of the counters and the
 * store's figures. */
enum MHD_Result srv_metrics_scrape(struct srv *s, struct MHD_Connection *c,
                                   struct srv_req *r);

/* GET /healthz: 200 "ok", or 503 while draining. */
enum MHD_Result srv_healthz(struct srv *s, struct MHD_Connection *c,
                            struct srv_req *r);

/* "GET", "PUT", ... ("OTHER" for SRV_OTHER). */
const char *srv_method_name(enum srv_method m);

/* Count a 412 by the condition that decided it, and the age of the
 * superseded validator: age_ms, or, when negative, never current within
 * the change log's window -- unless unknown (not searched).  Thread-safe. */
void srv_metrics_precondition(struct srv_metrics *m, etagkv_cond_step step,
                              int unknown, int64_t age_ms);

/* ---- access.c ------------------------------------------------------------ */

/* The access log (--access-log FILE|-, --access-log-format). */
struct srv_access_log;

/* Open the log at path ("-": stdout) in format "json" (NULL too) or
 * "combined".  0 and *out, or -1 (reported on stderr). */
int srv_access_log_open(const char *path, const char *format,
                        struct srv_access_log **out);

/* Reopen the file after a rotation (SIGHUP); stdout stays. */
void srv_access_log_reopen(struct srv_access_log *l);

/* Close and free l (NULL is fine). */
void srv_access_log_free(struct srv_access_log *l);

/* Write r's line (l NULL: nothing).  Thread-safe. */
void srv_access_log_write(struct srv_access_log *l, struct MHD_Connection *c,
                          const struct srv_req *r, uint64_t duration_ns);

/* ---- diagnose.c ---------------------------------------------------------- */

/* Wall clock in nanoseconds since the epoch. */
uint64_t srv_wall_ns(void);

/* The members a 412 of r on state m adds to its problem body: "sent",
 * "decided_by", "superseded" (and "superseded_detail"), also counted for
 * /metrics.  A new object, or NULL when out of memory. */
json_t *srv_diagnose_412(struct srv *s, struct MHD_Connection *c,
                         const struct srv_req *r, const etagkv_meta *m);

/* The same for a transaction's 409 of outcome o, added to its ext: the
 * failing operation's condition members ("sent"), "decided_by" (null for
 * a 404) and, for a 412, "superseded".  0, or -1 when out of memory. */
int srv_diagnose_txn(struct srv *s, struct srv_txn_req *q,
                     const etagkv_txn_outcome *o, json_t *ext);

/* Log a refusal's body (412, 409) as one JSON line on stderr with the
 * method and the count of lines dropped before it: at most a few lines a
 * second are written, the rest only counted. */
void srv_diagnose_log(const char *method, const json_t *body);

/* ---- reply.c ------------------------------------------------------------- */

/* Queue resp (NULL: allocation failed, close the connection) with status,
 * remember the status for the metrics, and release resp.  Returns what
 * MHD_queue_response returned, or MHD_NO when resp is NULL. */
enum MHD_Result srv_queue(struct srv *s, struct MHD_Connection *c,
                          struct srv_req *r, unsigned status,
                          struct MHD_Response *resp);

/* Decide a refusal of r (replacing any earlier one): a problem of HTTP
 * status http with type urn:etagkv:problem:type_slug and detail. */
void srv_refuse_problem(struct srv_req *r, unsigned http, const char *type_slug,
                        const char *detail);

/* Decide a refusal with the problem of a library status (detail NULL: the
 * status's message). */
void srv_refuse_status(struct srv_req *r, etagkv_status st, const char *detail);

/* Decide a 405 with Allow: allow. */
void srv_refuse_method(struct srv_req *r, const char *allow);

/* Decide a 401 with the challenge of RFC 6750 §3; error="invalid_token"
 * when a token was presented but is wrong. */
void srv_refuse_unauthorized(struct srv_req *r, int presented);

/* resp with Retry-After: seconds (RFC 9110 §10.2.3: when a 503 may be
 * tried again).  Takes resp; NULL if resp was NULL or on failure. */
struct MHD_Response *srv_retry_after(struct MHD_Response *resp,
                                     const char *seconds);

/* The 503 of a server shutting down (type draining), with Retry-After:
 * SRV_RETRY_AFTER_S (a restart, or another instance).  NULL on failure. */
struct MHD_Response *srv_draining_problem(void);

/* A 503 problem (type memory-budget) with Retry-After: SRV_RETRY_AFTER_S.
 * NULL on failure. */
struct MHD_Response *srv_busy_problem(const char *detail);

/* Decide the refusal srv_busy_problem() builds. */
void srv_refuse_busy(struct srv_req *r, const char *detail);

/* Seconds a 503 asks the client to wait (Retry-After). */
#define SRV_RETRY_AFTER_S "1"
/* ... and for a full Idempotency-Key table, where keys must expire. */
#define SRV_RETRY_AFTER_IDEM_S "60"

/* Queue the refusal decided for r (srv_queue's return value). */
enum MHD_Result srv_send_refusal(struct srv *s, struct MHD_Connection *c,
                                 struct srv_req *r);

/* An application/problem+json response (RFC 9457) with type, title (the
 * reason phrase of http), status and detail.  ext (may be NULL) holds extra
 * members; it is consumed in every case.  Returns NULL on allocation
 * failure. */
struct MHD_Response *srv_problem(unsigned http, const char *type_slug,
                                 const char *detail, json_t *ext);

/* srv_problem()'s body, as JSON (a new reference), or NULL. */
json_t *srv_problem_json(unsigned http, const char *type_slug,
                         const char *detail, json_t *ext);

/* j (consumed) serialised into a response of media type ct, charged to the
 * memory budget as srv_charged_response() says (must, *busy as there). */
struct MHD_Response *srv_json_charged(struct srv *s, json_t *j, const char *ct,
                                      int must, int *busy);

/* A problem response for a library status, with its HTTP status from
 * etagkv_status_http() and the type named after the status. */
struct MHD_Response *srv_status_problem(etagkv_status st, const char *detail);

/* The 412/409 response (DESIGN §3): problem body extended with key, exists,
 * etag, last_modified and mod_revision of the current record, and the ETag
 * header when the key exists.  diag (may be NULL; consumed) holds further
 * members (diagnose.c), to which those are added.  detail: NULL for the
 * status's usual one. */
struct MHD_Response *srv_state_problem(etagkv_status st, const void *key,
                                       size_t key_len, const etagkv_meta *m,
                                       json_t *diag, const char *detail);

/* The key as JSON members: "key" (string, or null when the key is not
 * valid UTF-8) and "key_pct" (percent-encoded, always).  Returns 0, or -1
 * on allocation failure (obj may then hold some of them). */
int srv_json_set_key(json_t *obj, const void *key, size_t key_len);

/* A 200 application/json response of j (consumed).  NULL on failure. */
struct MHD_Response *srv_json_response(json_t *j);

/* Queue the 503 (Retry-After) of a reply that does not fit the memory
 * budget: a value, or a reply carrying values or keys. */
enum MHD_Result srv_queue_sending_busy(struct srv *s, struct MHD_Connection *c,
                                       struct srv_req *r);

/* Queue a 200 application/json reply of j (consumed) to a read, charged
 * to the memory budget when large (a listing, a lease's keys): 503 with
 * Retry-After when it does not fit, as a GET's value would be. */
enum MHD_Result srv_queue_json_read(struct srv *s, struct MHD_Connection *c,
                                    struct srv_req *r, json_t *j);

/* A response of the NUL-terminated text with Content-Type ct.  The text is
 * copied.  NULL on failure. */
struct MHD_Response *srv_text_response(const char *ct, const char *text);

/* A response with no content.  NULL on failure. */
struct MHD_Response *srv_empty_response(void);

/* A response whose Content-Length is len but whose content is never sent:
 * for HEAD and 304, where RFC 9110 §8.6 wants the length of the 200
 * representation.  NULL on failure. */
struct MHD_Response *srv_headers_only_response(uint64_t len);

/* Add the record's validators: ETag and Last-Modified.  Returns 0, or -1
 * if a header could not be added. */
int srv_add_validators(struct MHD_Response *resp, const etagkv_meta *m);

/* Add the validators and the revision headers ETagKV-Revision,
 * ETagKV-Create-Revision and ETagKV-Version.  Returns 0 or -1. */
int srv_add_meta_headers(struct MHD_Response *resp, const etagkv_meta *m);

/* Add one header; returns 0 or -1. */
int srv_add_header(struct MHD_Response *resp, const char *name,
                   const char *value);

/* resp with ETagKV-Revision: rev when rev > 0 (the revision of a commit,
 * as a DELETE's or a lease revoke's answer carries it); NULL, resp
 * destroyed, when the header cannot be added; NULL stays NULL. */
struct MHD_Response *srv_with_revision(struct MHD_Response *resp, uint64_t rev);

#endif
