/*
 * handler.c -- the libmicrohttpd access handler: one request's way through
 * the server, top to bottom:
 *
 *   admit (admit.c) -> route (dispatch) -> library call (kv.c, list.c,
 *   metrics.c) -> reply (reply.c)
 *
 * MHD calls the handler several times per request:
 *  1. once with the headers: srv_admit() decides any refusal;
 *  2. zero or more times with pieces of the body (srv_admit_body());
 *  3. once more with no data: send the refusal, or route the request to its
 *     one library call, which replies.
 * A refusal of a request that carries a body is sent at step 1, so the body
 * is never read (MHD then closes the connection), and so is one whose
 * framing is unknown.  Every other answer is queued at step 3: on this
 * libmicrohttpd (0.9.75) a response queued at step 1 also closes the
 * connection, which costs keep-alive clients dearly.  A PUT or DELETE
 * suspends its connection at step 3 until the write is durable (kv.c);
 * MHD then calls step 3 again and the write replies.  A write the library
 * refuses at once (a 412 at the latest committed state) replies in the
 * same call, never suspended.
 */
#include "server.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t srv_now_ns(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A request's record, counted in s->requests_held until req_free(). */
static struct srv_req *req_new(struct srv *s)
{
    struct srv_req *r = calloc(1, sizeof *r);

    if (r == NULL)
        return NULL;
    r->watch_fd = -1;
    r->srv = s;
    atomic_fetch_add(&s->requests_held, 1);
    return r;
}

/* The end of every record req_new() made, and of what srv_uri_log() put
 * in it: the rest of what a record may own is srv_completed()'s. */
static void req_free(struct srv_req *r)
{
    atomic_fetch_sub(&r->srv->requests_held, 1);
    free(r->query);
    free(r);
}

void srv_req_discard(struct srv_req *r)
{
    if (r != NULL)
        req_free(r);
}

void *srv_uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct srv *s = cls;
    struct srv_req *r = req_new(s);
    const char *q;

    if (r != NULL)
        srv_conn_hold_request(c, r);
    if (r != NULL && uri != NULL) {
        r->uri = uri;
        r->uri_len = strlen(uri);
        /* Checked here: libmicrohttpd rewrites the query in place next. */
        r->uri_bad = !srv_target_chars_ok(uri, r->uri_len);
        q = memchr(uri, '?', r->uri_len);
        r->query = q != NULL ? strdup(q + 1) : NULL;
        r->uri_seen = q == NULL || r->query != NULL;
    }
    return r; /* NULL: on_headers allocates it, and admission refuses */
}

/* Step 1: admit. */
static enum MHD_Result on_headers(struct srv *s, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, void **con_cls)
{
    struct srv_req *r = *con_cls;

    srv_conn_claim_request(c, r);
    if (r == NULL) /* srv_uri_log could not allocate it */
        r = req_new(s);
    if (r == NULL)
        return MHD_NO;
    r->started = 1;
    r->start_ns = srv_now_ns();
    *con_cls = r;
    atomic_fetch_add(&s->inflight, 1);
    srv_admit(s, c, r, url, method, version);
    if (r->pending_status != 0 && (srv_announces_body(c) || r->must_close)) {
        srv_deadline_request_done(c);
        return srv_send_refusal(s, c, r);
    }
    /* The body, if any, is due within --body-timeout (deadline.c). */
    srv_deadline_headers_done(c, srv_announces_body(c));
    return MHD_YES;
}

/* Step 3: route an admitted request to its library call. */
static enum MHD_Result dispatch(struct srv *s, struct MHD_Connection *c,
                                struct srv_req *r)
{
    switch (r->route) {
    case SRV_ROUTE_KV: return srv_kv(s, c, r);
    case SRV_ROUTE_LIST: return srv_list(s, c, r);
    case SRV_ROUTE_METRICS: return srv_metrics_scrape(s, c, r);
    case SRV_ROUTE_CHANGES: return srv_changes(s, c, r);
    case SRV_ROUTE_HEALTHZ: return srv_healthz(s, c, r);
    case SRV_ROUTE_TXN: return srv_txn(s, c, r);
    case SRV_ROUTE_LEASES:
    case SRV_ROUTE_LEASE: return srv_lease(s, c, r);
    case SRV_ROUTE_NONE:
    case SRV_ROUTE_COUNT: break;
    }
    return MHD_NO; /* not reached: refused at the headers */
}

enum MHD_Result srv_access(void *cls, struct MHD_Connection *c, const char *url,
                           const char *method, const char *version,
                           const char *upload_data, size_t *upload_data_size,
                           void **con_cls)
{
    struct srv *s = cls;
    struct srv_req *r = *con_cls;

    if (r == NULL || !r->started)
        return on_headers(s, c, url, method, version, con_cls);
    r->bytes_in += *upload_data_size;
    if (r->status != 0) { /* answered already: drop anything more */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0)
        return srv_admit_body(s, r, upload_data, upload_data_size);
    srv_deadline_request_done(c); /* the whole request is in */
    if (r->pending_status != 0)
        return srv_send_refusal(s, c, r);
    return dispatch(s, c, r);
}

void srv_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                   enum MHD_RequestTerminationCode toe)
{
    struct srv *s = cls;
    struct srv_req *r = *con_cls;

    /* A kept-alive connection's next request is due (deadline.c). */
    srv_deadline_next_request(c);
    if (r == NULL)
        return;
    srv_conn_claim_request(c, r); /* freed here, not with the connection */
    /* A request refused by libmicrohttpd itself (431, 400) never reached
     * the handler: nothing to count. */
    if (r->started) {
        uint64_t duration_ns = srv_now_ns() - r->start_ns;

        srv_metrics_record(s->metrics, r->route, r->method, r->status,
                           duration_ns);
        srv_access_log_write(s->access_log, c, r, duration_ns);
        atomic_fetch_sub(&s->inflight, 1);
    }
    srv_watch_ended(s, r, toe);
    if (r->pending != NULL)
        MHD_destroy_response(r->pending);
    etagkv_cond_free(r->cond);
    etagkv_free(r->write_res.current_value); /* a 412 not answered */
    srv_txn_req_free(r->txn);
    free(r->content_type);
    srv_body_free(s, r);
    req_free(r);
    *con_cls = NULL;
}
