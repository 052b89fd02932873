/*
 * kv.c -- one library call per /kv request, and its response.
 *
 * The library evaluates the preconditions and says what happened; this
 * file only turns that outcome into headers and a body.  The HTTP status
 * always comes from etagkv_status_http(), except that a successful DELETE
 * is 204, which is the HTTP layer's choice (etagkv.h).
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- responses shared by the methods ------------------------------------- */

/* Headers of a representation (GET, HEAD): validators, revisions,
 * Content-Type and Cache-Control: no-cache, which makes caches revalidate
 * with the ETag before each reuse. */
static const char *content_type_of(const etagkv_meta *m)
{
    return m->content_type[0] != '\0' ? m->content_type
                                      : ETAGKV_CONTENT_TYPE_DEFAULT;
}

static int add_representation_headers(struct MHD_Response *resp,
                                      const etagkv_meta *m)
{
    if (srv_add_meta_headers(resp, m) != 0 ||
        srv_add_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                       content_type_of(m)) != 0 ||
        srv_add_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") != 0)
        return -1;
    return 0;
}

/* 304 (RFC 9110 §15.4.5): the validators, Content-Type and Cache-Control,
 * no content; Content-Length is that of the 200 representation (§8.6).
 * Content-Type is sent because the ETag hashes the content only: a PUT of
 * the same bytes with another type keeps the ETag, and a cache refreshing
 * its stored response from this 304 (RFC 9111 §4.3.4) must take the new
 * type. */
static struct MHD_Response *not_modified(const etagkv_meta *m)
{
    struct MHD_Response *resp = srv_headers_only_response(m->value_bytes);

    if (resp != NULL && (srv_add_validators(resp, m) != 0 ||
                         srv_add_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                        content_type_of(m)) != 0 ||
                         srv_add_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                                        "no-cache") != 0)) {
        MHD_destroy_response(resp);
        return NULL;
    }
    return resp;
}

/* The detail of a problem for statuses whose generic message is vague. */
static const char *detail_for(etagkv_status st, enum srv_method method)
{
    switch (st) {
    case ETAGKV_NOT_FOUND: return "no record under this key";
    case ETAGKV_INVALID_HEADER:
        /* The conditions were parsed at the headers, so a put that says
         * this is about the content type. */
        return method == SRV_PUT ? "the Content-Type must be 1 to 255 bytes of "
                                   "visible ASCII, spaces and tabs"
                                 : NULL;
    default: return NULL;
    }
}

/* 412: the current state, and what was sent, which condition decided and
 * when the sent validator was superseded (diagnose.c); logged. */
static enum MHD_Result answer_412(struct srv *s, struct MHD_Connection *c,
                                  struct srv_req *r, const etagkv_meta *m)
{
    json_t *diag = srv_diagnose_412(s, c, r, m);
    struct MHD_Response *resp;

    /* Without its diagnosis (no memory) still the 412 and the state. */
    resp = srv_state_problem(ETAGKV_PRECONDITION_FAILED, r->key, r->key_len, m,
                             json_incref(diag), NULL);
    if (resp != NULL && diag != NULL)
        srv_diagnose_log(srv_method_name(r->method), diag);
    json_decref(diag);
    return srv_queue(s, c, r, MHD_HTTP_PRECONDITION_FAILED, resp);
}

/* Answer any outcome other than the method's success. */
static enum MHD_Result answer_outcome(struct srv *s, struct MHD_Connection *c,
                                      struct srv_req *r, etagkv_status st,
                                      const etagkv_meta *m)
{
    unsigned http = (unsigned)etagkv_status_http(st);

    switch (st) {
    case ETAGKV_NOT_MODIFIED: return srv_queue(s, c, r, http, not_modified(m));
    case ETAGKV_PRECONDITION_FAILED: return answer_412(s, c, r, m);
    case ETAGKV_CONFLICT: /* its lease: dead, or full (DESIGN §9) */
        return srv_queue(
            s, c, r, http,
            srv_state_problem(
                st, r->key, r->key_len, m, NULL,
                r->write_state == SRV_WRITE_DONE &&
                        strstr(r->write_detail, "max_lease_keys") != NULL
                    ? "The lease named by ETagKV-Lease holds "
                      "its most keys (--max-lease-keys); "
                      "nothing was written.  Attach this key "
                      "to another lease, or detach one of its "
                      "keys first."
                    : NULL));
    default: break;
    }
    if (http >= 500 && http != MHD_HTTP_SERVICE_UNAVAILABLE)
        fprintf(stderr, "etagkv-server: %s: %s (%s)\n", etagkv_status_name(st),
                etagkv_strerror(st),
                r->write_state == SRV_WRITE_DONE ? r->write_detail
                                                 : etagkv_last_error_detail());
    return srv_queue(s, c, r, http,
                     srv_status_problem(st, detail_for(st, r->method)));
}

/* ---- the four methods ---------------------------------------------------- */

/* The value comes from budget.c: a large one is one copy per record
 * version, shared by every response that sends it and charged to the
 * memory budget while any does; a GET whose copy does not fit is 503. */
static enum MHD_Result kv_get(struct srv *s, struct MHD_Connection *c,
                              struct srv_req *r)
{
    etagkv_meta m;
    struct srv_value *v = NULL;
    const void *data;
    size_t len = 0;
    struct MHD_Response *resp;
    etagkv_status st;
    int busy = 0;

    memset(&m, 0, sizeof m);
    st = srv_value_get(s, r, &m, &v, &busy);
    if (busy)
        return srv_queue_sending_busy(s, c, r);
    /* Prefer: wait (DESIGN §8): a 304 waits for a change instead. */
    if (st == ETAGKV_NOT_MODIFIED && srv_watch_wants(s, c, r))
        return srv_watch_hold(s, c, r);
    if (st != ETAGKV_OK)
        return answer_outcome(s, c, r, st, &m);
    data = srv_value_data(v, &len);
    r->bytes_out = len;
    /* MHD only reads the buffer: the cast drops const for its API. */
    resp = MHD_create_response_from_buffer_with_free_callback_cls(
        len, (void *)data, srv_value_release, v);
    if (resp == NULL) {
        srv_value_release(v);
        return MHD_NO;
    }
    if (add_representation_headers(resp, &m) != 0) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    return srv_queue(s, c, r, (unsigned)etagkv_status_http(st), resp);
}

static enum MHD_Result kv_head(struct srv *s, struct MHD_Connection *c,
                               struct srv_req *r)
{
    etagkv_meta m;
    struct MHD_Response *resp;
    etagkv_status st;

    memset(&m, 0, sizeof m);
    st = etagkv_get(s->store, r->key, r->key_len, r->cond, NULL, NULL, &m);
    if (st != ETAGKV_OK)
        return answer_outcome(s, c, r, st, &m);
    resp = srv_headers_only_response(m.value_bytes);
    if (resp != NULL && add_representation_headers(resp, &m) != 0) {
        MHD_destroy_response(resp);
        resp = NULL;
    }
    return srv_queue(s, c, r, (unsigned)etagkv_status_http(st), resp);
}

/* 201 carries Location (RFC 9110 §15.3.2), a representation
 * Content-Location (§8.7): the key's URI, canonically encoded. */
static int add_location(struct MHD_Response *resp, const struct srv_req *r,
                        const char *header)
{
    char *pct = srv_pct_encode(r->key, r->key_len);
    char *loc;
    int rc;

    if (pct == NULL)
        return -1;
    loc = malloc(strlen(pct) + sizeof "/kv/");
    if (loc == NULL) {
        free(pct);
        return -1;
    }
    strcpy(loc, "/kv/");
    strcat(loc, pct);
    rc = srv_add_header(resp, header, loc);
    free(loc);
    free(pct);
    return rc;
}

/* Called by the library when a submitted write is durable (or failed): on
 * a library thread, or inside the submit on the handler's own thread for a
 * write refused at once.  Keep the outcome; then, if the submitter has not
 * suspended the connection (SRV_WRITE_SUBMITTING), it answers itself
 * (srv_write_submitted()), the state's compare-and-swap ordering our
 * stores before its reads; if it has (SRV_WRITE_PENDING), resume the
 * connection and libmicrohttpd calls the handler again, the mutex inside
 * MHD_resume_connection() ordering them. */
void srv_write_done(void *ctx, const etagkv_result *res)
{
    struct srv_req *r = ctx;
    struct srv *s = r->srv; /* r may be freed once the connection resumes */
    int submitting = SRV_WRITE_SUBMITTING;

    if (r->write_waits)
        srv_watch_write_done(s, r);
    r->write_res = *res;
    /* The failure's text is readable here only, on the library's thread:
     * the 5xx are logged, and a 409 says which of its causes it is. */
    if (etagkv_status_http(res->status) >= 500 ||
        res->status == ETAGKV_CONFLICT)
        snprintf(r->write_detail, sizeof r->write_detail, "%s",
                 etagkv_last_error_detail());
    if (atomic_compare_exchange_strong(&r->write_state, &submitting,
                                       SRV_WRITE_DONE))
        return;
    r->write_state = SRV_WRITE_DONE;
    MHD_resume_connection(r->conn);
    /* Resumed: MHD_stop_daemon() handles the connection from here on. */
    atomic_fetch_sub(&s->suspended, 1);
}

enum MHD_Result srv_write_begin(struct srv *s, struct MHD_Connection *c,
                                struct srv_req *r)
{
    r->conn = c;
    r->srv = s;
    atomic_fetch_add(&s->suspended, 1);
    if (atomic_load(&s->stopping)) {
        /* The drain is over and the daemon is about to stop: a request
         * that started after it gets no write. */
        atomic_fetch_sub(&s->suspended, 1);
        return srv_queue(s, c, r, MHD_HTTP_SERVICE_UNAVAILABLE,
                         srv_draining_problem());
    }
    r->write_state = SRV_WRITE_SUBMITTING;
    return MHD_YES;
}

int srv_write_submitted(struct srv *s, struct MHD_Connection *c,
                        struct srv_req *r)
{
    int submitting = SRV_WRITE_SUBMITTING;

    if (r->write_state == SRV_WRITE_DONE) {
        /* Answered at once: no suspend, no resume, no second pass of
         * libmicrohttpd's loop (most 412s under contention). */
        atomic_fetch_sub(&s->suspended, 1);
        return 1;
    }
    /* Suspended before it is published as such, so that the completion
     * never resumes a connection not yet suspended. */
    MHD_suspend_connection(c);
    if (atomic_compare_exchange_strong(&r->write_state, &submitting,
                                       SRV_WRITE_PENDING))
        return 0;
    /* Done in between, on another thread, which left the answer to us:
     * resume here what it did not know was suspended. */
    MHD_resume_connection(c);
    atomic_fetch_sub(&s->suspended, 1);
    return 0;
}

/* The connection is suspended before the submit, so the completion can
 * never resume it too early. */
enum MHD_Result srv_write_suspend(struct srv *s, struct MHD_Connection *c,
                                  struct srv_req *r)
{
    enum MHD_Result ret = srv_write_begin(s, c, r);

    if (r->write_state == SRV_WRITE_SUBMITTING) {
        MHD_suspend_connection(c);
        r->write_state = SRV_WRITE_PENDING;
    }
    return ret;
}

/* The preferences of a PUT or DELETE (RFC 7240): return=representation
 * (a PUT's), and wait=N: a conditional write waits up to N seconds
 * (capped by --max-wait, and by the library's ten minutes) for its
 * conditions to hold instead of answering 412 (docs/http.md, "Writes that
 * wait").  Not with an Idempotency-Key, whose retry could not tell a wait
 * from its outcome: the preference is ignored then, as RFC 7240 allows. */
static void write_preferences(struct srv *s, struct MHD_Connection *c,
                              struct srv_req *r, etagkv_method method)
{
    struct srv_prefer p;

    srv_prefer_parse(c, s->max_wait_s, &p);
    r->prefer_repr = method == ETAGKV_METHOD_PUT && p.return_representation;
    r->write_waits =
        p.wait_s > 0 && etagkv_cond_is_conditional(r->cond) && r->idem_len == 0;
    r->wait_s = 0;
    if (r->write_waits)
        r->wait_s = p.wait_s < ETAGKV_WAIT_MAX_MS / 1000u
                        ? p.wait_s
                        : ETAGKV_WAIT_MAX_MS / 1000u;
}

/* Start the write of a PUT or DELETE: one etagkv_submit(), with the
 * request's Idempotency-Key when it has one.  Returns 1 when the write is
 * done already (a write refused at once completes inside the submit) and
 * the handler answers now; 0 when *ret is what the handler returns (the
 * connection suspended, or a 503 queued). */
static int kv_submit(struct srv *s, struct MHD_Connection *c, struct srv_req *r,
                     etagkv_method method, const char *ct, enum MHD_Result *ret)
{
    etagkv_request rq = {
        .method = method,
        .key = r->key,
        .key_len = r->key_len,
        .value = r->body,
        .value_len = r->body_len,
        .content_type = ct,
        .cond = r->cond,
        .idempotency_key = r->idem_len > 0 ? r->idem : NULL,
        .idempotency_key_len = r->idem_len,
        .lease = r->lease,
        /* Independent: this worker's other writes are other clients';
         * a connection's own requests are answered one after another. */
        .flags = ETAGKV_WRITE_INDEPENDENT |
                 (r->prefer_repr ? ETAGKV_WRITE_RETURN_CURRENT : 0u),
    };
    etagkv_status st;

    *ret = srv_write_begin(s, c, r);
    if (r->write_state != SRV_WRITE_SUBMITTING)
        return 0; /* answered 503 */
    /* A write that may wait holds its connection as a long-poll does, so
     * it counts against --max-watchers (DESIGN §8).  Past it, the
     * preference is ignored (RFC 7240): the write is answered at once, a
     * 412 if its conditions fail, without Preference-Applied. */
    if (r->write_waits && srv_watch_write_admit(s, r) != 0) {
        r->write_waits = 0;
        r->wait_s = 0;
    }
    rq.wait_ms = r->write_waits ? r->wait_s * 1000u : 0;
    st = etagkv_submit(s->store, &rq, srv_write_done, r);
    if (st != ETAGKV_OK) {
        etagkv_result res = {.status = st};

        srv_write_done(r, &res);
    }
    *ret = MHD_YES;
    if (srv_write_submitted(s, c, r))
        return 1;
    if (r->write_waits)
        srv_watch_write_held(s, c, r);
    return 0;
}

/* The outcome of a finished write, counted for the metrics. */
static etagkv_status write_outcome(struct srv_req *r, etagkv_meta *m)
{
    etagkv_status st = r->write_res.status;

    *m = r->write_res.meta;
    r->replayed = r->write_res.replayed;
    if (r->idem_len > 0)
        srv_metrics_idempotency(r->srv->metrics, r->write_res.replayed,
                                st == ETAGKV_IDEMPOTENCY_MISMATCH);
    return st;
}

/* Prefer: return=representation (RFC 7240 §4.2, DESIGN §3): a PUT's
 * 2xx carries the stored representation and its 412 the current one, with
 * the headers of a GET, Content-Location (the key's URI: RFC 9110 §8.7,
 * the content is that resource's representation) and Preference-Applied.
 * Takes resp (built on the value); NULL on failure. */
static struct MHD_Response *as_representation(struct MHD_Response *resp,
                                              const struct srv_req *r,
                                              const etagkv_meta *m)
{
    if (resp != NULL &&
        (add_representation_headers(resp, m) != 0 ||
         add_location(resp, r, MHD_HTTP_HEADER_CONTENT_LOCATION) != 0 ||
         srv_add_header(resp, "Preference-Applied", "return=representation") !=
             0)) {
        MHD_destroy_response(resp);
        resp = NULL;
    }
    return resp;
}

/* The 412 of a PUT that asked for the representation: the current value
 * the library returned with it, handed to the response and charged to the
 * memory budget as a GET's would be.  A replayed 412, one whose copy
 * failed, or one whose value does not fit the budget now, has none:
 * problem+json then, as without the preference. */
static enum MHD_Result current_412(struct srv *s, struct MHD_Connection *c,
                                   struct srv_req *r, const etagkv_meta *m)
{
    void *v = r->write_res.current_value;
    struct MHD_Response *resp;
    int busy;

    r->write_res.current_value = NULL;
    resp = srv_owned_response(s->budget, v, r->write_res.current_len,
                              etagkv_free, 0, &busy);
    if (busy)
        return answer_outcome(s, c, r, ETAGKV_PRECONDITION_FAILED, m);
    if (resp == NULL)
        return MHD_NO;
    return srv_queue(s, c, r, MHD_HTTP_PRECONDITION_FAILED,
                     as_representation(resp, r, m));
}

/* The 2xx of a PUT that asked for the representation: the stored bytes
 * are the request's content, so the body goes to the response with what
 * it was charged. */
static struct MHD_Response *
stored_representation(struct srv *s, struct srv_req *r, const etagkv_meta *m)
{
    struct MHD_Response *resp;
    int busy;

    if (r->body == NULL) {
        resp = srv_empty_response();
    } else {
        resp = srv_owned_response(s->budget, r->body, r->body_len, free,
                                  r->reserved, &busy);
        r->body = NULL;
        r->body_len = r->body_cap = 0;
        r->reserved = 0;
    }
    return as_representation(resp, r, m);
}

static enum MHD_Result kv_put(struct srv *s, struct MHD_Connection *c,
                              struct srv_req *r)
{
    const char *ct =
        r->content_type != NULL
            ? r->content_type
            : MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                          MHD_HTTP_HEADER_CONTENT_TYPE);
    etagkv_meta m;
    struct MHD_Response *resp;
    etagkv_status st;

    if (r->write_state == SRV_WRITE_NONE) {
        enum MHD_Result ret;

        write_preferences(s, c, r, ETAGKV_METHOD_PUT);
        if (!kv_submit(s, c, r, ETAGKV_METHOD_PUT, ct, &ret))
            return ret;
    }
    st = write_outcome(r, &m);
    if (st == ETAGKV_PRECONDITION_FAILED && r->write_res.current_value != NULL)
        return current_412(s, c, r, &m);
    if (st != ETAGKV_OK && st != ETAGKV_CREATED)
        return answer_outcome(s, c, r, st, &m);
    if (r->prefer_repr) {
        resp = stored_representation(s, r, &m);
        if (resp != NULL && st == ETAGKV_CREATED &&
            add_location(resp, r, MHD_HTTP_HEADER_LOCATION) != 0) {
            MHD_destroy_response(resp);
            resp = NULL;
        }
        return srv_queue(s, c, r, (unsigned)etagkv_status_http(st), resp);
    }
    /* The stored bytes are exactly the request's content, so the new ETag
     * may be sent (RFC 9110 §9.3.4). */
    resp = srv_empty_response();
    if (resp != NULL &&
        (srv_add_meta_headers(resp, &m) != 0 ||
         (st == ETAGKV_CREATED &&
          add_location(resp, r, MHD_HTTP_HEADER_LOCATION) != 0))) {
        MHD_destroy_response(resp);
        resp = NULL;
    }
    return srv_queue(s, c, r, (unsigned)etagkv_status_http(st), resp);
}

static enum MHD_Result kv_delete(struct srv *s, struct MHD_Connection *c,
                                 struct srv_req *r)
{
    etagkv_meta m;
    etagkv_status st;
    enum MHD_Result ret;

    if (r->write_state == SRV_WRITE_NONE) {
        write_preferences(s, c, r, ETAGKV_METHOD_DELETE);
        if (!kv_submit(s, c, r, ETAGKV_METHOD_DELETE, NULL, &ret))
            return ret;
    }
    st = write_outcome(r, &m);
    if (st != ETAGKV_OK)
        return answer_outcome(s, c, r, st, &m);
    return srv_queue(s, c, r, MHD_HTTP_NO_CONTENT,
                     srv_with_revision(srv_empty_response(), m.mod_revision));
}

enum MHD_Result srv_kv(struct srv *s, struct MHD_Connection *c,
                       struct srv_req *r)
{
    switch (r->method) {
    case SRV_GET: return kv_get(s, c, r);
    case SRV_HEAD: return kv_head(s, c, r);
    case SRV_PUT: return kv_put(s, c, r);
    case SRV_DELETE: return kv_delete(s, c, r);
    case SRV_POST:
    case SRV_OTHER: break;
    }
    return MHD_NO; /* not reached: refused with 405 at the headers */
}
