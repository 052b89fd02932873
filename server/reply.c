/*
 * reply.c -- responses: building them, refusing, and queueing.
 *
 * Every error is application/problem+json (RFC 9457) built with jansson.
 * The HTTP status of a library outcome always comes from
 * etagkv_status_http(); nothing here chooses between 304, 412 and 200.
 * A refusal decided at admission is kept in the request until handler.c
 * sends it (srv_send_refusal); everything goes out through srv_queue.
 */
#include "server.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- headers ------------------------------------------------------------- */

int srv_add_header(struct MHD_Response *resp, const char *name,
                   const char *value)
{
    return MHD_add_response_header(resp, name, value) == MHD_YES ? 0 : -1;
}

static int add_u64_header(struct MHD_Response *resp, const char *name,
                          uint64_t v)
{
    char buf[24];

    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return srv_add_header(resp, name, buf);
}

struct MHD_Response *srv_with_revision(struct MHD_Response *resp, uint64_t rev)
{
    if (resp != NULL && rev > 0 &&
        add_u64_header(resp, "ETagKV-Revision", rev) != 0) {
        MHD_destroy_response(resp);
        resp = NULL;
    }
    return resp;
}

int srv_add_validators(struct MHD_Response *resp, const etagkv_meta *m)
{
    char date[ETAGKV_HTTPDATE_SIZE];

    if (srv_add_header(resp, MHD_HTTP_HEADER_ETAG, m->etag) != 0)
        return -1;
    /* A date outside years 1..9999 cannot be written as an HTTP-date;
     * then the response simply has no Last-Modified. */
    if (etagkv_httpdate_format(ETAGKV_META_LAST_MODIFIED(m), date) ==
            ETAGKV_OK &&
        srv_add_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, date) != 0)
        return -1;
    return 0;
}

int srv_add_meta_headers(struct MHD_Response *resp, const etagkv_meta *m)
{
    if (srv_add_validators(resp, m) != 0)
        return -1;
    if (add_u64_header(resp, "ETagKV-Revision", m->mod_revision) != 0 ||
        add_u64_header(resp, "ETagKV-Create-Revision", m->create_revision) !=
            0 ||
        add_u64_header(resp, "ETagKV-Version", m->version) != 0)
        return -1;
    return 0;
}

/* ---- responses ----------------------------------------------------------- */

/* A response owning the malloc'd text (len bytes), with Content-Type ct.
 * The text is freed on every path. */
static struct MHD_Response *owned_text_response(char *text, size_t len,
                                                const char *ct)
{
    struct MHD_Response *resp;

    resp = MHD_create_response_from_buffer_with_free_callback(len, text, free);
    if (resp == NULL) {
        free(text);
        return NULL;
    }
    if (srv_add_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ct) != 0) {
        MHD_destroy_response(resp);
        return NULL;
    }
    return resp;
}

/* j (consumed) as the text of a reply (malloc'd), or NULL. */
static char *json_text(json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_INDENT(2)) : NULL;

    json_decref(j);
    return text;
}

/* Serialise j (consumed) into a response of media type ct. */
static struct MHD_Response *json_response_as(json_t *j, const char *ct)
{
    char *text = json_text(j);

    return text != NULL ? owned_text_response(text, strlen(text), ct) : NULL;
}

struct MHD_Response *srv_json_response(json_t *j)
{
    return json_response_as(j, "application/json");
}

struct MHD_Response *srv_json_charged(struct srv *s, json_t *j, const char *ct,
                                      int must, int *busy)
{
    struct MHD_Response *resp;
    char *text = json_text(j);

    *busy = 0;
    if (text == NULL)
        return NULL;
    resp = srv_charged_response(s->budget, text, strlen(text), must, busy);
    if (resp != NULL &&
        srv_add_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ct) != 0) {
        MHD_destroy_response(resp);
        resp = NULL;
    }
    return resp;
}

enum MHD_Result srv_queue_sending_busy(struct srv *s, struct MHD_Connection *c,
                                       struct srv_req *r)
{
    return srv_queue(s, c, r, MHD_HTTP_SERVICE_UNAVAILABLE,
                     srv_busy_problem("the server is sending as many values "
                                      "as its memory budget allows: retry "
                                      "later"));
}

enum MHD_Result srv_queue_json_read(struct srv *s, struct MHD_Connection *c,
                                    struct srv_req *r, json_t *j)
{
    int busy;
    struct MHD_Response *resp =
        srv_json_charged(s, j, "application/json", 0, &busy);

    if (busy)
        return srv_queue_sending_busy(s, c, r);
    return srv_queue(s, c, r, MHD_HTTP_OK, resp);
}

struct MHD_Response *srv_text_response(const char *ct, const char *text)
{
    size_t len = strlen(text);
    char *copy = malloc(len + 1);

    if (copy == NULL)
        return NULL;
    memcpy(copy, text, len + 1);
    return owned_text_response(copy, len, ct);
}

struct MHD_Response *srv_empty_response(void)
{
    return MHD_create_response_from_buffer(0, (void *)"",
                                           MHD_RESPMEM_PERSISTENT);
}

/* Content reader of srv_headers_only_response: MHD never asks for content
 * of a HEAD or 304 response; if it ever did, failing is the honest answer. */
static ssize_t no_content(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    (void)buf;
    (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

struct MHD_Response *srv_headers_only_response(uint64_t len)
{
    return MHD_create_response_from_callback(len, 4096, no_content, NULL, NULL);
}

/* ---- problem details (RFC 9457) ------------------------------------------ */

json_t *srv_problem_json(unsigned http, const char *type_slug,
                         const char *detail, json_t *ext)
{
    const char *title = MHD_get_reason_phrase_for(http);
    char type[96], *text;
    json_t *j = json_object();
    int bad;

    if (j == NULL) {
        json_decref(ext);
        return NULL;
    }
    snprintf(type, sizeof type, "urn:etagkv:problem:%s", type_slug);
    /* A detail may quote what a client sent (the library's error detail
     * does), which need not be UTF-8. */
    text =
        detail != NULL ? srv_utf8_text(detail, strlen(detail), SIZE_MAX) : NULL;
    bad = text == NULL || json_object_set_new(j, "type", json_string(type)) ||
          json_object_set_new(j, "title", json_string(title)) ||
          json_object_set_new(j, "status", json_integer(http)) ||
          json_object_set_new(j, "detail", json_string(text));
    free(text);
    if (ext != NULL) {
        bad = bad || json_object_update(j, ext);
        json_decref(ext);
    }
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

struct MHD_Response *srv_problem(unsigned http, const char *type_slug,
                                 const char *detail, json_t *ext)
{
    return json_response_as(srv_problem_json(http, type_slug, detail, ext),
                            "application/problem+json");
}

/* "PRECONDITION_FAILED" -> "precondition-failed". */
static void status_slug(etagkv_status st, char *out, size_t cap)
{
    const char *name = etagkv_status_name(st);
    size_t i;

    for (i = 0; name[i] != '\0' && i + 1 < cap; i++)
        out[i] = name[i] == '_' ? '-' : (char)tolower((unsigned char)name[i]);
    out[i] = '\0';
}

/* A problem for a library status; ext as in srv_problem().  "code" names
 * the library status so that clients can tell the 400s apart. */
static struct MHD_Response *status_problem_ext(etagkv_status st,
                                               const char *detail, json_t *ext)
{
    unsigned http = (unsigned)etagkv_status_http(st);
    struct MHD_Response *resp;
    char slug[64];

    if (ext == NULL)
        ext = json_object();
    if (ext == NULL)
        return NULL;
    if (json_object_set_new(ext, "code", json_string(etagkv_status_name(st))) !=
        0) {
        json_decref(ext);
        return NULL;
    }
    status_slug(st, slug, sizeof slug);
    resp = srv_problem(http, slug,
                       detail != NULL ? detail : etagkv_strerror(st), ext);
    /* Every 503 says when to come back (RFC 9110 §10.2.3): a full
     * Idempotency-Key table empties only as keys expire; the rest (lease
     * limit, closing, an etcd cluster unreachable or electing, an unknown
     * outcome to be read back) are worth a retry within a second. */
    if (http == MHD_HTTP_SERVICE_UNAVAILABLE)
        resp = srv_retry_after(resp, st == ETAGKV_IDEMPOTENCY_FULL
                                         ? SRV_RETRY_AFTER_IDEM_S
                                         : SRV_RETRY_AFTER_S);
    return resp;
}

struct MHD_Response *srv_status_problem(etagkv_status st, const char *detail)
{
    return status_problem_ext(st, detail, NULL);
}

int srv_json_set_key(json_t *obj, const void *key, size_t key_len)
{
    char *pct = srv_pct_encode(key, key_len);
    json_t *name;

    if (pct == NULL)
        return -1;
    name =
        srv_utf8_valid(key, key_len) ? json_stringn(key, key_len) : json_null();
    if (json_object_set_new(obj, "key", name) != 0 ||
        json_object_set_new(obj, "key_pct", json_string(pct)) != 0) {
        free(pct);
        return -1;
    }
    free(pct);
    return 0;
}

/* The current state members of a 412/409 body; -1 on allocation failure.
 * Every member is set even after a failure, because json_object_set_new()
 * takes ownership of its value either way. */
static int set_state_members(json_t *j, const etagkv_meta *m)
{
    char date[ETAGKV_HTTPDATE_SIZE];
    int exists = m != NULL && m->exists;
    int dated = exists && etagkv_httpdate_format(ETAGKV_META_LAST_MODIFIED(m),
                                                 date) == ETAGKV_OK;
    int bad = 0;

    bad |= json_object_set_new(j, "exists", json_boolean(exists));
    bad |= json_object_set_new(j, "etag",
                               exists ? json_string(m->etag) : json_null());
    bad |= json_object_set_new(j, "last_modified",
                               dated ? json_string(date) : json_null());
    bad |= json_object_set_new(
        j, "mod_revision",
        exists ? json_integer((json_int_t)m->mod_revision) : json_null());
    return bad ? -1 : 0;
}

struct MHD_Response *srv_state_problem(etagkv_status st, const void *key,
                                       size_t key_len, const etagkv_meta *m,
                                       json_t *diag, const char *detail)
{
    static const char detail_412[] =
        "A precondition was false; nothing was changed.  The current state "
        "of the key is included: rebase on its etag and retry.";
    /* A single write's 409: its lease (kv.c). */
    static const char detail_409[] =
        "The lease named by ETagKV-Lease is unknown, revoked or expired; "
        "nothing was written.  Grant a new lease (POST /leases) and write "
        "again.";
    json_t *ext = diag != NULL ? diag : json_object();
    struct MHD_Response *resp;

    if (ext == NULL || srv_json_set_key(ext, key, key_len) != 0 ||
        set_state_members(ext, m) != 0) {
        json_decref(ext);
        return NULL;
    }
    if (detail == NULL)
        detail = st == ETAGKV_PRECONDITION_FAILED ? detail_412
                 : st == ETAGKV_CONFLICT          ? detail_409
                                                  : NULL;
    resp = status_problem_ext(st, detail, ext);
    if (resp != NULL && m != NULL && m->exists &&
        srv_add_header(resp, MHD_HTTP_HEADER_ETAG, m->etag) != 0) {
        MHD_destroy_response(resp);
        return NULL;
    }
    return resp;
}

/* ---- queueing and refusals ----------------------------------------------- */

/* What the access log says of r (access.c), read while the request and
 * its response are at hand. */
static void remember_for_log(struct MHD_Connection *c, struct srv_req *r,
                             struct MHD_Response *resp)
{
    const char *sent = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_IF_MATCH);
    const char *etag = MHD_get_response_header(resp, MHD_HTTP_HEADER_ETAG);
    const char *rev = MHD_get_response_header(resp, "ETagKV-Revision");

    if (sent == NULL)
        sent = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                           MHD_HTTP_HEADER_IF_NONE_MATCH);
    snprintf(r->etag_sent, sizeof r->etag_sent, "%s", sent != NULL ? sent : "");
    snprintf(r->etag_out, sizeof r->etag_out, "%s", etag != NULL ? etag : "");
    snprintf(r->revision_out, sizeof r->revision_out, "%s",
             rev != NULL ? rev : "");
}

enum MHD_Result srv_queue(struct srv *s, struct MHD_Connection *c,
                          struct srv_req *r, unsigned status,
                          struct MHD_Response *resp)
{
    enum MHD_Result ret;

    if (resp == NULL)
        return MHD_NO;
    /* A request that was held (watch.c), or a write that could wait for
     * its conditions (kv.c) and was answered by them (not a 503, say),
     * says for how long it could be. */
    if (r->wait_s > 0 &&
        (r->watch_held ||
         (r->write_waits && (status / 100 == 2 || status == 412))) &&
        srv_add_preference_applied(resp, r->wait_s) != 0) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    /* A replayed outcome says so, and is otherwise the original answer. */
    if (r->replayed &&
        srv_add_header(resp, "Idempotent-Replayed", "true") != 0) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    /* While draining, each connection closes after its response, so that
     * keep-alive clients leave and the drain ends; so does one whose
     * request framing is unknown, since its next bytes cannot be trusted
     * to start a request. */
    if ((atomic_load(&s->draining) || r->must_close) &&
        srv_add_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") != 0) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    if (s->access_log != NULL)
        remember_for_log(c, r, resp);
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES)
        r->status = status;
    return ret;
}

/* Remember a refusal to send at the right moment; resp may be NULL when it
 * could not be built, and then the connection is closed instead. */
static void refuse(struct srv_req *r, unsigned status,
                   struct MHD_Response *resp)
{
    if (r->pending != NULL)
        MHD_destroy_response(r->pending);
    r->pending = resp;
    r->pending_status = status;
}

void srv_refuse_problem(struct srv_req *r, unsigned http, const char *type_slug,
                        const char *detail)
{
    refuse(r, http, srv_problem(http, type_slug, detail, NULL));
}

void srv_refuse_status(struct srv_req *r, etagkv_status st, const char *detail)
{
    refuse(r, (unsigned)etagkv_status_http(st), srv_status_problem(st, detail));
}

void srv_refuse_method(struct srv_req *r, const char *allow)
{
    char detail[96];
    struct MHD_Response *resp;

    snprintf(detail, sizeof detail, "this resource allows only %s", allow);
    resp = srv_problem(MHD_HTTP_METHOD_NOT_ALLOWED, "method-not-allowed",
                       detail, NULL);
    if (resp != NULL &&
        srv_add_header(resp, MHD_HTTP_HEADER_ALLOW, allow) != 0) {
        MHD_destroy_response(resp);
        resp = NULL;
    }
    refuse(r, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
}

void srv_refuse_unauthorized(struct srv_req *r, int presented)
{
    const char *challenge = presented ? "Bearer realm=\"etagkv\", "
                                        "error=\"invalid_token\""
                                      : "Bearer realm=\"etagkv\"";
    struct MHD_Response *resp;

    resp = srv_problem(MHD_HTTP_UNAUTHORIZED, "unauthorized",
                       presented ? "the bearer token is wrong"
                                 : "send Authorization: Bearer <token>",
                       NULL);
    if (resp != NULL && srv_add_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                       challenge) != 0) {
        MHD_destroy_response(resp);
        resp = NULL;
    }
    refuse(r, MHD_HTTP_UNAUTHORIZED, resp);
}

struct MHD_Response *srv_retry_after(struct MHD_Response *resp,
                                     const char *seconds)
{
    if (resp != NULL &&
        srv_add_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, seconds) != 0) {
        MHD_destroy_response(resp);
        return NULL;
    }
    return resp;
}

struct MHD_Response *srv_draining_problem(void)
{
    return srv_retry_after(srv_problem(MHD_HTTP_SERVICE_UNAVAILABLE, "draining",
                                       "the server is shutting down", NULL),
                           SRV_RETRY_AFTER_S);
}

struct MHD_Response *srv_busy_problem(const char *detail)
{
    return srv_retry_after(srv_problem(MHD_HTTP_SERVICE_UNAVAILABLE,
                                       "memory-budget", detail, NULL),
                           SRV_RETRY_AFTER_S);
}

void srv_refuse_busy(struct srv_req *r, const char *detail)
{
    refuse(r, MHD_HTTP_SERVICE_UNAVAILABLE, srv_busy_problem(detail));
}

enum MHD_Result srv_send_refusal(struct srv *s, struct MHD_Connection *c,
                                 struct srv_req *r)
{
    struct MHD_Response *resp = r->pending;

    r->pending = NULL;
    return srv_queue(s, c, r, r->pending_status, resp);
}
