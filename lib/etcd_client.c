/*
 * etcd_client.c -- the etcd backend's transport: etcd's v3 JSON gateway
 * (POST /v3/kv/range, /v3/kv/txn; keys and values base64) over libcurl,
 * with jansson for the JSON.
 *
 * Connections: a pool of curl easy handles, each keeping its connection
 * alive, taken by one call at a time; the pool grows to as many as calls
 * run at once (bounded by POOL_MAX kept).  Endpoints: the list given at
 * open; every call starts at the endpoint that last answered and moves to
 * the next on a connection error, so a dead member costs one connect
 * timeout once, not per call.
 *
 * What a failure means depends on whether the request may have reached
 * the cluster.  Nothing sent (no connection) is always safe to send to the
 * next endpoint.  Sent with no answer (a timeout, a reset, etcd's own
 * "request timed out" or "leader changed"): a read is simply sent again
 * elsewhere; a write may or may not have been applied, and the call
 * returns ETAGKV_OUTCOME_UNKNOWN rather than guess (DESIGN §2's rule on
 * retries applies to the store itself).  Every endpoint unreachable is
 * ETAGKV_UNAVAILABLE.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_env.h"

#define POOL_MAX 32
#define CONNECT_TIMEOUT_MS 1000L
/* Longer than etcd's own request timeout (about 5 s plus an election), so
 * that etcd, which knows, reports a stuck proposal before we give up. */
#define REQUEST_TIMEOUT_MS 15000L
#define ENDPOINT_MAX 256

struct ekv_etcd_client {
    char **endpoints; /* "http://host:port" */
    size_t n_endpoints;
    _Atomic size_t current; /* the endpoint that last answered */
    long timeout_ms, connect_timeout_ms;
    pthread_mutex_t lock; /* guards the pool */
    CURL *pool[POOL_MAX];
    size_t n_pool;
    /* Coalesced reads (ekv_etcd_read()): those waiting to be sent, in
     * arrival order, and how many are on their way; under reads_lock. */
    pthread_mutex_t reads_lock;
    struct read_wait *reads_head, **reads_tail;
    size_t reads_busy; /* on their way: EKV_ETCD_READS_ON_THE_WAY at most */
};

/* ---- base64 (lib/base64.c), as the gateway's JSON carries bytes ---------
 */

etagkv_status ekv_b64_decode(const char *s, uint8_t **out, size_t *len)
{
    int rc = ekv_base64_decode(s, strlen(s), out, len);

    if (rc == -2)
        return ETAGKV_NO_MEMORY;
    return rc == 0 ? ETAGKV_OK
                   : ekv_fail(ETAGKV_CORRUPT, "etcd sent invalid base64");
}

/* ---- JSON helpers ---------------------------------------------------------
 */

int64_t ekv_etcd_int(const json_t *j)
{
    /* The gateway writes int64 fields as strings (proto3 JSON); accept a
     * number too.  Absent (a zero value is omitted) is 0. */
    if (json_is_integer(j))
        return (int64_t)json_integer_value(j);
    if (json_is_string(j))
        return strtoll(json_string_value(j), NULL, 10);
    return 0;
}

etagkv_status ekv_etcd_set_bytes(json_t *obj, const char *field,
                                 const void *data, size_t len)
{
    char *b = ekv_base64_encode(data, len, NULL);
    int rc;

    if (b == NULL)
        return ETAGKV_NO_MEMORY;
    rc = json_object_set_new(obj, field, json_string(b));
    free(b);
    return rc == 0 ? ETAGKV_OK : ETAGKV_NO_MEMORY;
}

/* ---- the client -----------------------------------------------------------
 */

size_t ekv_etcd_endpoint_count(const struct ekv_etcd_client *c)
{
    return c->n_endpoints;
}

const char *ekv_etcd_endpoint(const struct ekv_etcd_client *c, size_t i)
{
    return c->endpoints[i % c->n_endpoints];
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Append "http://" + endpoint [p, p + len) to c's list. */
static etagkv_status add_endpoint(struct ekv_etcd_client *c, const char *p,
                                  size_t len)
{
    char *e;

    if (len == 0 || len > ENDPOINT_MAX || memchr(p, '/', len) != NULL ||
        memchr(p, '@', len) != NULL)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "etcd endpoint \"%.*s\": want HOST:PORT", (int)len, p);
    e = malloc(len + sizeof("http://"));
    if (e == NULL)
        return ETAGKV_NO_MEMORY;
    memcpy(e, "http://", 7);
    memcpy(e + 7, p, len);
    e[7 + len] = '\0';
    c->endpoints[c->n_endpoints++] = e;
    return ETAGKV_OK;
}

etagkv_status ekv_etcd_client_new(const char *endpoints, size_t len,
                                  long timeout_ms, struct ekv_etcd_client **out)
{
    struct ekv_etcd_client *c;
    size_t n = 1, start = 0;
    etagkv_status st = ETAGKV_OK;

    *out = NULL;
    (void)pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return ekv_fail(ETAGKV_INTERNAL, "curl_global_init: %s",
                        curl_easy_strerror(curl_init_rc));
    for (size_t i = 0; i < len; i++)
        n += endpoints[i] == ',';
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return ETAGKV_NO_MEMORY;
    c->endpoints = calloc(n, sizeof(*c->endpoints));
    if (c->endpoints == NULL || pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c->endpoints);
        free(c);
        return ETAGKV_NO_MEMORY;
    }
    if (pthread_mutex_init(&c->reads_lock, NULL) != 0) {
        (void)pthread_mutex_destroy(&c->lock);
        free(c->endpoints);
        free(c);
        return ETAGKV_NO_MEMORY;
    }
    c->reads_tail = &c->reads_head;
    atomic_init(&c->current, 0);
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : REQUEST_TIMEOUT_MS;
    c->connect_timeout_ms =
        c->timeout_ms < CONNECT_TIMEOUT_MS ? c->timeout_ms : CONNECT_TIMEOUT_MS;
    for (size_t i = 0; i <= len && st == ETAGKV_OK; i++) {
        if (i == len || endpoints[i] == ',') {
            st = add_endpoint(c, endpoints + start, i - start);
            start = i + 1;
        }
    }
    if (st != ETAGKV_OK) {
        ekv_etcd_client_free(c);
        return st;
    }
    *out = c;
    return ETAGKV_OK;
}

void ekv_etcd_client_free(struct ekv_etcd_client *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_pool; i++)
        curl_easy_cleanup(c->pool[i]);
    for (size_t i = 0; i < c->n_endpoints; i++)
        free(c->endpoints[i]);
    free(c->endpoints);
    (void)pthread_mutex_destroy(&c->lock);
    (void)pthread_mutex_destroy(&c->reads_lock);
    free(c);
}

static CURL *handle_take(struct ekv_etcd_client *c)
{
    CURL *h = NULL;

    (void)pthread_mutex_lock(&c->lock);
    if (c->n_pool > 0)
        h = c->pool[--c->n_pool];
    (void)pthread_mutex_unlock(&c->lock);
    return h != NULL ? h : curl_easy_init();
}

static void handle_give(struct ekv_etcd_client *c, CURL *h)
{
    (void)pthread_mutex_lock(&c->lock);
    if (c->n_pool < POOL_MAX) {
        c->pool[c->n_pool++] = h;
        h = NULL;
    }
    (void)pthread_mutex_unlock(&c->lock);
    if (h != NULL)
        curl_easy_cleanup(h);
}

/* The body of a reply, as it arrives. */
struct body {
    char *p;
    size_t len, cap;
};

static size_t on_data(char *data, size_t size, size_t n, void *ctx)
{
    struct body *b = ctx;
    size_t add = size * n;

    if (b->len + add + 1 > b->cap) {
        size_t cap = (b->len + add + 1) * 2;
        char *p = realloc(b->p, cap);

        if (p == NULL)
            return 0; /* curl fails the transfer: CURLE_WRITE_ERROR */
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, add);
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

/* How one attempt ended. */
enum attempt {
    ANSWERED,    /* an HTTP answer: *code and the body are set */
    NOT_SENT,    /* no connection: safe to send elsewhere */
    NO_ANSWER,   /* sent, no (complete) answer */
    LOCAL_ERROR, /* out of memory and the like: *st says */
};

/* A write's body, handed to curl through its read callback, once. */
struct once {
    const char *p;
    size_t len, off;
};

static size_t on_read(char *buf, size_t size, size_t n, void *ctx)
{
    struct once *o = ctx;
    size_t give = size * n < o->len - o->off ? size * n : o->len - o->off;

    memcpy(buf, o->p + o->off, give);
    o->off += give;
    return give;
}

/* curl asks to rewind a body only to send it again: when a kept-alive
 * connection dies after the request went out and before any answer, it
 * resends on a fresh one, which for a write would apply it twice, or make
 * it fail its own compare and be run again (a 412 for a write that
 * succeeded).  A write is sent once: the transfer then fails
 * (CURLE_SEND_FAIL_REWIND), an unknown outcome. */
static int on_seek(void *ctx, curl_off_t offset, int origin)
{
    (void)ctx;
    (void)offset;
    (void)origin;
    return CURL_SEEKFUNC_FAIL;
}

static enum attempt attempt(const struct ekv_etcd_client *c, CURL *h,
                            const char *url, const char *req, int write,
                            struct body *b, long *code, etagkv_status *st)
{
    /* "Expect:": no 100-continue round trip before a large body. */
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: "
                                                     "application/json");
    struct curl_slist *more =
        hdr != NULL ? curl_slist_append(hdr, "Expect:") : NULL;
    struct once body = {req, strlen(req), 0};
    CURLcode rc;
    long sent = 0;

    b->len = 0;
    if (more == NULL) {
        curl_slist_free_all(hdr);
        *st = ETAGKV_NO_MEMORY;
        return LOCAL_ERROR;
    }
    (void)curl_easy_setopt(h, CURLOPT_URL, url);
    (void)curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    /* A read may be sent again by curl (above); a write never. */
    (void)curl_easy_setopt(h, CURLOPT_POST, 1L);
    (void)curl_easy_setopt(h, CURLOPT_POSTFIELDS, write ? NULL : req);
    (void)curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                           (curl_off_t)body.len);
    (void)curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    (void)curl_easy_setopt(h, CURLOPT_READDATA, &body);
    (void)curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
    (void)curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    (void)curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    (void)curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    (void)curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    (void)curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    (void)curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    rc = curl_easy_perform(h);
    (void)curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    (void)curl_easy_setopt(h, CURLOPT_READDATA, NULL);
    curl_slist_free_all(hdr);
    if (rc == CURLE_OK) {
        (void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, code);
        return ANSWERED;
    }
    /* Nothing of the request left this process: no connection was made
     * (refused, unresolvable, connect timeout).  A connection found dead
     * before anything was written is replaced by curl without a rewind.
     * An answer that could not be kept (CURLE_WRITE_ERROR) came to a
     * request that went out. */
    if (rc == CURLE_SEND_FAIL_REWIND || rc == CURLE_WRITE_ERROR ||
        curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent) != CURLE_OK)
        sent = 1;
    if (rc == CURLE_OUT_OF_MEMORY || rc == CURLE_WRITE_ERROR) {
        *st = ekv_fail(ETAGKV_NO_MEMORY, "etcd at %s: %s", url,
                       curl_easy_strerror(rc));
        /* A write that went out may have been applied all the same. */
        return write && sent != 0 ? NO_ANSWER : LOCAL_ERROR;
    }
    *st = ekv_fail(ETAGKV_UNAVAILABLE, "etcd at %s: %s", url,
                   curl_easy_strerror(rc));
    return sent == 0 ? NOT_SENT : NO_ANSWER;
}

/* A gRPC status code and message from the gateway's error body. */
static void error_of(const json_t *reply, long *grpc, const char **msg)
{
    const json_t *m = json_object_get(reply, "message");

    if (m == NULL)
        m = json_object_get(reply, "error");
    *grpc = (long)ekv_etcd_int(json_object_get(reply, "code"));
    *msg = json_is_string(m) ? json_string_value(m) : "(no message)";
}

/* A gRPC code with which etcd refuses a request before applying it:
 * INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED,
 * RESOURCE_EXHAUSTED (no space, too many requests), FAILED_PRECONDITION,
 * OUT_OF_RANGE, UNIMPLEMENTED, UNAUTHENTICATED. */
static int refused_unapplied(long grpc)
{
    switch (grpc) {
    case 3:
    case 5:
    case 6:
    case 7:
    case 8:
    case 9:
    case 11:
    case 12:
    case 16: return 1;
    default: return 0;
    }
}

/* The outcome of an HTTP answer other than 200: the gateway's error body
 * names a gRPC code.  *retry: the request may be sent to another member
 * (only when it is certain it did nothing, or it is a read). */
static etagkv_status answer_error(long code, const struct body *b, int write,
                                  int *retry)
{
    json_t *reply = json_loadb(b->p != NULL ? b->p : "", b->len, 0, NULL);
    const char *msg = "(no message)";
    long grpc = 0;
    etagkv_status st;

    if (reply != NULL)
        error_of(reply, &grpc, &msg);
    *retry = 0;
    /* 3 INVALID_ARGUMENT: etcd refused the request as too large or with
     * too many operations, before proposing it (--max-request-bytes,
     * --max-txn-ops). */
    if (grpc == 3 && (strstr(msg, "too large") != NULL ||
                      strstr(msg, "too many operations") != NULL))
        st = ekv_fail(ETAGKV_TXN_TOO_LARGE, "etcd: %s", msg);
    else if (grpc == 11) /* OUT_OF_RANGE: the revision was compacted */
        st = ekv_fail(ETAGKV_COMPACTED, "etcd: %s", msg);
    else if (grpc == 14 || grpc == 4 || code >= 500) {
        /* UNAVAILABLE, DEADLINE_EXCEEDED: no leader, leader changed,
         * request timed out.  A write may have been proposed. */
        *retry = !write;
        st = write ? ekv_fail(ETAGKV_OUTCOME_UNKNOWN, "etcd: %s", msg)
                   : ekv_fail(ETAGKV_UNAVAILABLE, "etcd: %s", msg);
    } else if (write && !refused_unapplied(grpc)) {
        /* No gateway error body, or a code that does not say the write
         * was refused before it was applied (a proxy's answer, UNKNOWN,
         * INTERNAL, ABORTED): it may have been. */
        st = ekv_fail(ETAGKV_OUTCOME_UNKNOWN, "etcd: HTTP %ld, %s", code, msg);
    } else {
        st = ekv_fail(ETAGKV_IO_ERROR, "etcd: HTTP %ld, %s", code, msg);
    }
    json_decref(reply);
    return st;
}

etagkv_status ekv_etcd_call(struct ekv_etcd_client *c, const char *path,
                            json_t *req, int write, json_t **reply)
{
    char *body = json_dumps(req, JSON_COMPACT);
    char url[ENDPOINT_MAX + 64];
    struct body b = {NULL, 0, 0};
    size_t first = atomic_load(&c->current) % c->n_endpoints;
    etagkv_status st = ETAGKV_UNAVAILABLE;
    int sent_once = 0;
    CURL *h;

    *reply = NULL;
    if (body == NULL)
        return ETAGKV_NO_MEMORY;
    h = handle_take(c);
    if (h == NULL) {
        free(body);
        return ETAGKV_NO_MEMORY;
    }
    for (size_t i = 0; i < c->n_endpoints; i++) {
        size_t e = (first + i) % c->n_endpoints;
        long code = 0;
        int retry = 0;
        enum attempt a;

        (void)snprintf(url, sizeof(url), "%s%s", c->endpoints[e], path);
        a = attempt(c, h, url, body, write, &b, &code, &st);
        if (a == LOCAL_ERROR)
            break;
        if (a == NOT_SENT)
            continue;
        if (a == NO_ANSWER) {
            sent_once = 1;
            if (write)
                break;
            continue;
        }
        if (code == 200) {
            *reply = json_loadb(b.p != NULL ? b.p : "", b.len, 0, NULL);
            /* Every answer of etcd's carries the store's revision (1 at
             * least); without it, it is not etcd's, or not whole. */
            if (*reply != NULL &&
                ekv_etcd_int(json_object_get(json_object_get(*reply, "header"),
                                             "revision")) > 0) {
                st = ETAGKV_OK;
                atomic_store(&c->current, e);
                break;
            }
            json_decref(*reply);
            *reply = NULL;
            st = ekv_fail(ETAGKV_IO_ERROR,
                          "etcd at %s: an answer that is not etcd's JSON", url);
            sent_once = write; /* a write it may have applied */
            break;
        }
        st = answer_error(code, &b, write, &retry);
        if (!retry)
            break;
    }
    /* A write that reached some member and got no answer may have been
     * applied: never report it as simply failed. */
    if (write && sent_once && st != ETAGKV_OK) {
        char why[160];

        (void)snprintf(why, sizeof(why), "%s", etagkv_last_error_detail());
        st = ekv_fail(ETAGKV_OUTCOME_UNKNOWN, "%s", why);
    }
    handle_give(c, h);
    free(body);
    free(b.p);
    return st;
}

/* ---- coalesced reads -------------------------------------------------------
 *
 * On etcd each point read costs its own gateway request (JSON, a gRPC call
 * on loopback) and its own ReadIndex round: through a front end, more of
 * etcd's CPU per GET than a Range from a lean client.  So reads are
 * grouped, as writes are.  A read
 * goes at once, alone, as the plain Range it always was, while fewer than
 * EKV_ETCD_READS_ON_THE_WAY are on their way (no wait without contention).
 * Past that, reads queue; when a read on its way returns, the first queued
 * takes its place with the queue (up to READ_BATCH_MAX) and sends it as one
 * read-only Txn of Ranges, which etcd serves as one linearizable read at
 * one revision, with no Raft proposal.  Each read in it is as linearizable
 * as if it had gone alone: the Txn was sent after every one of them was
 * asked for, and none is answered before the Txn is, so the revision it
 * read lies within each read's own span.
 *
 * Measured (bench/run_http.sh --etcd-only, one front end; docs/
 * benchmarks.md): the front end's CPU per GET down a quarter, etcd's a
 * quarter to a third.  With one read on its way instead of four, the
 * read-modify-writes lost what the reads gained (a GET that waits a round
 * trip makes the commits smaller, and etcd's cost per update is mostly
 * its commit's); with a condition variable, a woken read waited for the
 * lock its waker held (6 % of the front end's samples).
 */

/* Ranges per Txn: well under etcd's default --max-txn-ops (128); a
 * cluster run with less answers TXN_TOO_LARGE, and the batch goes one by
 * one. */
#define READ_BATCH_MAX 64

enum read_state { READ_QUEUED, READ_LEADS, READ_DONE };

struct read_wait {
    json_t *req, *reply;
    etagkv_status st;
    enum read_state state; /* under reads_lock */
    sem_t wake;            /* posted once: to lead, or done */
    char why[256];         /* the failure's text, for the asker's thread */
    struct read_wait *next;
};

/* Send w's batch (w and those linked from it) and fill in every answer: a
 * read alone as the plain Range, a batch as one Txn, and its reads one by
 * one if etcd finds the Txn too large. */
static void read_batch(struct ekv_etcd_client *c, struct read_wait *w)
{
    json_t *ops = w->next != NULL ? json_array() : NULL, *txn = NULL;
    json_t *answer = NULL, *res;
    size_t n = 0;
    int64_t rev;
    etagkv_status st = ETAGKV_NO_MEMORY;
    int one_by_one = w->next == NULL;

    for (struct read_wait *x = w; x != NULL && ops != NULL; x = x->next, n++)
        if (json_array_append_new(
                ops, json_pack("{s:O}", "request_range", x->req)) != 0) {
            json_decref(ops);
            ops = NULL;
        }
    if (ops != NULL)
        txn = json_pack("{s:o}", "success", ops);
    if (txn != NULL)
        st = ekv_etcd_call(c, "/v3/kv/txn", txn, 0, &answer);
    else if (!one_by_one)
        st = ekv_fail(ETAGKV_NO_MEMORY, "no memory for a Txn of %zu ranges", n);
    json_decref(txn);
    one_by_one |= st == ETAGKV_TXN_TOO_LARGE;
    res = json_object_get(answer, "responses");
    if (st == ETAGKV_OK && json_array_size(res) != n)
        st = ekv_fail(ETAGKV_IO_ERROR, "etcd: a Txn of %zu ranges answered %zu",
                      n, json_array_size(res));
    rev = ekv_etcd_int(
        json_object_get(json_object_get(answer, "header"), "revision"));
    for (size_t i = 0; w != NULL; w = w->next, i++) {
        json_t *r = json_object_get(json_array_get(res, i), "response_range");

        w->st = st;
        if (one_by_one) {
            w->st = ekv_etcd_call(c, "/v3/kv/range", w->req, 0, &w->reply);
        } else if (st == ETAGKV_OK) {
            /* The Txn's revision, where a Range has it. */
            if (r == NULL)
                w->st = ekv_fail(ETAGKV_IO_ERROR, "etcd: a Txn without range");
            else if (json_object_set_new(
                         r, "header",
                         json_pack("{s:I}", "revision", (json_int_t)rev)) != 0)
                w->st = ekv_fail(ETAGKV_NO_MEMORY, "no memory for a reply");
            else
                w->reply = json_incref(r);
        }
        if (w->st != ETAGKV_OK)
            (void)snprintf(w->why, sizeof(w->why), "%s",
                           etagkv_last_error_detail());
    }
    json_decref(answer);
}

void ekv_etcd_reads_count(struct ekv_etcd_client *c, size_t *waiting,
                          size_t *on_their_way)
{
    (void)pthread_mutex_lock(&c->reads_lock);
    *waiting = 0;
    for (const struct read_wait *w = c->reads_head; w != NULL; w = w->next)
        (*waiting)++;
    *on_their_way = c->reads_busy;
    (void)pthread_mutex_unlock(&c->reads_lock);
}

/* Cut the next batch off the queue's head (up to READ_BATCH_MAX, linked
 * from its first) and make its first read the leader; under reads_lock.
 * Cut here, by the read that hands its place on, so that a second read
 * returning before the new leader runs finds the queue past that batch. */
static struct read_wait *batch_cut(struct ekv_etcd_client *c)
{
    struct read_wait *first = c->reads_head, *last = first;

    for (size_t n = 1; n < READ_BATCH_MAX && last->next != NULL; n++)
        last = last->next;
    c->reads_head = last->next;
    if (c->reads_head == NULL)
        c->reads_tail = &c->reads_head;
    last->next = NULL;
    first->state = READ_LEADS;
    return first;
}

/* Lead: send me's batch (me, then those linked from it; me alone when it
 * went at once), answer them and hand this place on the way to the next
 * batch, if any read is queued. */
static void read_lead(struct ekv_etcd_client *c, struct read_wait *me)
{
    struct read_wait *lead = NULL;

    read_batch(c, me);
    (void)pthread_mutex_lock(&c->reads_lock);
    for (struct read_wait *x = me->next; x != NULL; x = x->next)
        x->state = READ_DONE;
    if (c->reads_head != NULL)
        lead = batch_cut(c);
    else
        c->reads_busy--;
    (void)pthread_mutex_unlock(&c->reads_lock);
    /* Posted after the lock, so that a woken read has no lock to wait for
     * (a context switch more); a read_wait is gone once posted (its asker
     * returns), hence next first. */
    for (struct read_wait *x = me->next, *next; x != NULL; x = next) {
        next = x->next;
        (void)sem_post(&x->wake);
    }
    if (lead != NULL)
        (void)sem_post(&lead->wake);
}

etagkv_status ekv_etcd_read(struct ekv_etcd_client *c, json_t *req,
                            json_t **reply)
{
    struct read_wait me = {.req = req, .state = READ_LEADS};

    /* A semaphore, which glibc lets the waiter destroy as soon as its
     * sem_wait() returns, though the post may not have returned yet. */
    if (sem_init(&me.wake, 0, 0) != 0)
        return ekv_fail(ETAGKV_NO_MEMORY, "sem_init: %s", strerror(errno));
    (void)pthread_mutex_lock(&c->reads_lock);
    if (c->reads_busy < EKV_ETCD_READS_ON_THE_WAY) {
        c->reads_busy++; /* on its way at once, alone */
        (void)pthread_mutex_unlock(&c->reads_lock);
    } else {
        /* Wait to be answered, or to lead the next batch: one wake-up
         * either way, a wake-up being a context switch, the cost that
         * matters here.  What the post says was written before it. */
        me.state = READ_QUEUED;
        *c->reads_tail = &me;
        c->reads_tail = &me.next;
        (void)pthread_mutex_unlock(&c->reads_lock);
        while (sem_wait(&me.wake) != 0)
            ; /* EINTR */
    }
    if (me.state == READ_LEADS)
        read_lead(c, &me);
    (void)sem_destroy(&me.wake);
    *reply = me.reply;
    return me.st == ETAGKV_OK ? ETAGKV_OK : ekv_fail(me.st, "%s", me.why);
}
