/*
 * admit.c -- admission: everything decided from a request's headers before
 * anything executes, and its body gathered within the limit.
 *
 * srv_admit() runs the checks in the order their statuses win:
 *  1. the request-target: a NUL byte is 400;
 *  2. the framing (RFC 9112 §6): what libmicrohttpd lets through but a
 *     proxy may read differently is 400 or 501, and the connection closes;
 *  3. the route: an unknown path is 404 (after authentication);
 *     /healthz is open even when a token is configured;
 *  4. the bearer token: 401;
 *  5. per route, the method (405); for /kv/{key} then the key (400, 414),
 *     the precondition headers (400), the Idempotency-Key (400), the
 *     require-conditions mode (428) and the announced length (413).
 * It only decides: a refusal is left in the request (srv_refuse_*, reply.c)
 * and handler.c sends it when libmicrohttpd lets it.  Everything it accepts
 * is stored in the request: route, key, conditions, Idempotency-Key.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char allow_kv[] = "GET, HEAD, PUT, DELETE";
static const char allow_read[] = "GET, HEAD";
static const char allow_txn[] = "POST";

/* Body bytes read and dropped after a refusal before the connection is cut:
 * MHD cannot answer in the middle of a body, so a refused chunked body is
 * drained to its end, but not forever. */
#define DISCARD_MAX_BYTES ((uint64_t)16 << 20)

/* Largest body buffer reserved from Content-Length alone. */
#define BODY_PREALLOC_MAX ((size_t)1 << 20)

/* ---- the request line ---------------------------------------------------- */

static enum srv_method method_of(const char *m)
{
    if (strcmp(m, MHD_HTTP_METHOD_GET) == 0)
        return SRV_GET;
    if (strcmp(m, MHD_HTTP_METHOD_HEAD) == 0)
        return SRV_HEAD;
    if (strcmp(m, MHD_HTTP_METHOD_PUT) == 0)
        return SRV_PUT;
    if (strcmp(m, MHD_HTTP_METHOD_DELETE) == 0)
        return SRV_DELETE;
    if (strcmp(m, MHD_HTTP_METHOD_POST) == 0)
        return SRV_POST;
    return SRV_OTHER;
}

static int is_read(enum srv_method m)
{
    return m == SRV_GET || m == SRV_HEAD;
}

/* 1 if the request-target held a NUL byte.  libmicrohttpd 0.9.75 hands
 * the handler C strings, so "PUT /kv/a<NUL>b" would arrive as the key "a".
 * It parses the request line in place: the target runs from url to the
 * byte before the version, which srv_uri_log measured with strlen() before
 * the query was split off.  A shorter length then means a NUL inside.  The
 * check applies only where that layout holds (same pointer, version right
 * after the target); otherwise it is skipped, never guessed. */
static int target_has_nul(const struct srv_req *r, const char *url,
                          const char *version)
{
    uintptr_t u = (uintptr_t)url, v = (uintptr_t)version;

    if (r->uri == NULL || r->uri != url || v <= u || v - u > 1 << 20)
        return 0;
    return v - u - 1 != r->uri_len;
}

/* ---- message framing ---------------------------------------------------- */

struct framing {
    const char *length; /* the first Content-Length */
    size_t length_len;
    int lengths_differ;
    const char *coding; /* the first Transfer-Encoding */
    size_t coding_len;
    int codings; /* Transfer-Encoding lines */
};

static enum MHD_Result framing_one(void *cls, enum MHD_ValueKind kind,
                                   const char *key, size_t key_size,
                                   const char *value, size_t value_size)
{
    static const char cl[] = "Content-Length", te[] = "Transfer-Encoding";
    struct framing *f = cls;

    (void)kind;
    if (key_size == sizeof cl - 1 && strncasecmp(key, cl, key_size) == 0) {
        if (f->length == NULL) {
            f->length = value;
            f->length_len = value_size;
        } else if (value_size != f->length_len ||
                   memcmp(value, f->length, value_size) != 0) {
            f->lengths_differ = 1;
        }
    } else if (key_size == sizeof te - 1 &&
               strncasecmp(key, te, key_size) == 0) {
        if (f->codings == 0) {
            f->coding = value;
            f->coding_len = value_size;
        }
        f->codings++;
    }
    return MHD_YES;
}

/* Refuse the framings that RFC 9112 §6 rules out but libmicrohttpd 0.9.75
 * lets through, since a proxy in front of us may frame such a message
 * differently (request smuggling): Content-Length fields that disagree
 * (§6.3: 400), Transfer-Encoding together with Content-Length (§6.1: may
 * be rejected; we do, 400), several Transfer-Encoding lines (libmicrohttpd
 * reads only the first, so "chunked" then "gzip" would be read as chunked:
 * 400), and a transfer coding other than chunked (§6.1: 501).  The answer
 * goes out at once and the connection is closed: where the body ends is
 * unknown.  Returns 0, or -1 after deciding a refusal. */
static int check_framing(struct MHD_Connection *c, struct srv_req *r)
{
    struct framing f = {0};
    const char *detail = NULL;

    (void)MHD_get_connection_values_n(c, MHD_HEADER_KIND, framing_one, &f);
    if (f.lengths_differ)
        detail = "the request has Content-Length fields that disagree";
    else if (f.coding != NULL && f.length != NULL)
        detail = "the request has both Transfer-Encoding and Content-Length";
    else if (f.codings > 1)
        detail = "the request has more than one Transfer-Encoding field";
    if (detail != NULL) {
        r->must_close = 1;
        srv_refuse_problem(r, MHD_HTTP_BAD_REQUEST, "bad-framing", detail);
        return -1;
    }
    if (f.coding != NULL &&
        (f.coding_len != 7 || strncasecmp(f.coding, "chunked", 7) != 0)) {
        r->must_close = 1;
        srv_refuse_problem(r, MHD_HTTP_NOT_IMPLEMENTED,
                           "unsupported-transfer-coding",
                           "the only transfer coding this server reads is "
                           "chunked");
        return -1;
    }
    return 0;
}

int srv_announces_body(struct MHD_Connection *c)
{
    const char *cl = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                    MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL)
        return 1;
    return cl != NULL && strcmp(cl, "0") != 0;
}

/* ---- authentication ------------------------------------------------------ */

/* Compare the presented token with the configured one.  The time taken
 * depends only on the presented length, never on the configured token or
 * on where the two first differ. */
static int token_equal(const char *want, size_t want_len, const char *got,
                       size_t got_len)
{
    volatile unsigned char diff = got_len != want_len;
    size_t i;

    for (i = 0; i < got_len; i++)
        diff |= (unsigned char)(got[i] ^ want[i % want_len]);
    return diff == 0;
}

/* 1 if the request may proceed: no token configured, or
 * "Authorization: Bearer <token>" (RFC 6750 §2.1; the scheme is
 * case-insensitive, RFC 9110 §11.1).  *presented tells whether an
 * Authorization header was sent at all. */
static int authorized(const struct srv *s, struct MHD_Connection *c,
                      int *presented)
{
    const char *v = NULL;
    size_t len = 0;

    *presented = 0;
    if (s->token == NULL)
        return 1;
    if (MHD_lookup_connection_value_n(
            c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION,
            strlen(MHD_HTTP_HEADER_AUTHORIZATION), &v, &len) != MHD_YES ||
        v == NULL)
        return 0;
    *presented = 1;
    if (len < 7 || strncasecmp(v, "Bearer ", 7) != 0)
        return 0;
    v += 7;
    len -= 7;
    while (len > 0 && *v == ' ') {
        v++;
        len--;
    }
    return token_equal(s->token, s->token_len, v, len);
}

/* ---- the key and its headers --------------------------------------------- */

/* Decode the key into r; returns 0, or -1 after deciding a refusal. */
static int decode_key(struct srv_req *r, const char *key_enc)
{
    ssize_t n = srv_pct_decode(key_enc, strlen(key_enc), r->key, sizeof r->key);

    if (n == -1) {
        srv_refuse_problem(r, MHD_HTTP_BAD_REQUEST, "invalid-percent-encoding",
                           "the key's percent-encoding is invalid: every "
                           "'%' must start a %XX escape");
        return -1;
    }
    if (n == -2) {
        srv_refuse_status(r, ETAGKV_KEY_TOO_LONG, NULL);
        return -1;
    }
    r->key_len = (size_t)n;
    return 0;
}

/* The four precondition headers and ETagKV-If-Revision (DESIGN §2), every
 * line of each, as raw values. */
static const struct {
    const char *name;
    etagkv_header h;
} cond_headers[] = {
    {MHD_HTTP_HEADER_IF_MATCH, ETAGKV_IF_MATCH},
    {MHD_HTTP_HEADER_IF_NONE_MATCH, ETAGKV_IF_NONE_MATCH},
    {MHD_HTTP_HEADER_IF_MODIFIED_SINCE, ETAGKV_IF_MODIFIED_SINCE},
    {MHD_HTTP_HEADER_IF_UNMODIFIED_SINCE, ETAGKV_IF_UNMODIFIED_SINCE},
    {"ETagKV-If-Revision", ETAGKV_IF_REVISION},
};

struct collect {
    etagkv_cond *cond;
    etagkv_status st;
};

static enum MHD_Result collect_one(void *cls, enum MHD_ValueKind kind,
                                   const char *key, size_t key_size,
                                   const char *value, size_t value_size)
{
    struct collect *col = cls;
    size_t i;

    (void)kind;
    for (i = 0; i < sizeof cond_headers / sizeof cond_headers[0]; i++) {
        if (strlen(cond_headers[i].name) != key_size ||
            strncasecmp(key, cond_headers[i].name, key_size) != 0)
            continue;
        /* Each line extends the header's list (RFC 9110 §5.3). */
        col->st =
            etagkv_cond_add(col->cond, cond_headers[i].h, value, value_size);
        return col->st == ETAGKV_OK ? MHD_YES : MHD_NO;
    }
    return MHD_YES;
}

/* Build r->cond; returns 0, or -1 after deciding a refusal (400 for a
 * malformed entity-tag list, 500 when out of memory).  The values are
 * handed to the library raw: it parses them and decides 304 and 412. */
static int collect_conditions(struct MHD_Connection *c, struct srv_req *r)
{
    struct collect col = {NULL, ETAGKV_OK};
    etagkv_status st = etagkv_cond_new(&col.cond);

    if (st != ETAGKV_OK) {
        srv_refuse_status(r, st, NULL);
        return -1;
    }
    r->cond = col.cond;
    if (MHD_get_connection_values_n(c, MHD_HEADER_KIND, collect_one, &col) <
            0 ||
        col.st != ETAGKV_OK) {
        srv_refuse_status(r, col.st != ETAGKV_OK ? col.st : ETAGKV_INTERNAL,
                          col.st == ETAGKV_INVALID_HEADER
                              ? "If-Match or If-None-Match is not a valid "
                                "entity-tag list (RFC 9110 §13.1.1), or "
                                "ETagKV-If-Revision not one revision number"
                              : NULL);
        return -1;
    }
    return 0;
}

/* The value of Idempotency-Key (draft-ietf-httpapi-idempotency-key-header
 * §2.1) is a Structured Field sf-string: DQUOTE, printable ASCII with \"
 * and \\ escaped, DQUOTE (RFC 8941 §3.3.3).  Many clients send the bare
 * token instead (Stripe's style), so a run of visible ASCII without DQUOTE,
 * comma or backslash is accepted too.  The key is the decoded string.
 * Returns its length, or -1 if the value is neither form, empty or longer
 * than ETAGKV_IDEMPOTENCY_KEY_MAX. */
static ssize_t parse_idem(const char *v, size_t len, unsigned char *out)
{
    size_t n = 0, i = 0;

    if (len >= 2 && v[0] == '"') {
        for (i = 1; i < len - 1; i++) {
            unsigned char ch = (unsigned char)v[i];

            if (ch == '\\') {
                i++; /* the escaped character */
                if (i == len - 1 || (v[i] != '"' && v[i] != '\\'))
                    return -1;
                ch = (unsigned char)v[i];
            } else if (ch == '"' || ch < 0x20 || ch > 0x7e) {
                return -1;
            }
            if (n == ETAGKV_IDEMPOTENCY_KEY_MAX)
                return -1;
            out[n++] = ch;
        }
        return v[len - 1] == '"' && n > 0 ? (ssize_t)n : -1;
    }
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];

        if (ch <= 0x20 || ch > 0x7e || ch == '"' || ch == ',' || ch == '\\' ||
            n == ETAGKV_IDEMPOTENCY_KEY_MAX)
            return -1;
        out[n++] = ch;
    }
    return n > 0 ? (ssize_t)n : -1;
}

struct idem_scan {
    struct srv_req *r;
    int lines; /* Idempotency-Key lines seen */
    int bad;
};

static enum MHD_Result idem_one(void *cls, enum MHD_ValueKind kind,
                                const char *key, size_t key_size,
                                const char *value, size_t value_size)
{
    static const char name[] = "Idempotency-Key";
    struct idem_scan *sc = cls;
    ssize_t n;

    (void)kind;
    if (key_size != sizeof name - 1 || strncasecmp(key, name, key_size) != 0)
        return MHD_YES;
    /* One key per request: a second line is ambiguous, not a list. */
    sc->lines++;
    n = sc->lines == 1 ? parse_idem(value, value_size, sc->r->idem) : -1;
    if (n < 0) {
        sc->bad = 1;
        return MHD_NO;
    }
    sc->r->idem_len = (size_t)n;
    return MHD_YES;
}

/* Read the request's Idempotency-Key into r; returns 0, or -1 after
 * deciding a 400. */
static int collect_idempotency_key(struct MHD_Connection *c, struct srv_req *r)
{
    struct idem_scan sc = {r, 0, 0};

    (void)MHD_get_connection_values_n(c, MHD_HEADER_KIND, idem_one, &sc);
    if (!sc.bad)
        return 0;
    r->idem_len = 0;
    srv_refuse_status(r, ETAGKV_INVALID_HEADER,
                      "Idempotency-Key must appear once, as a quoted string "
                      "or a token of 1 to 255 visible ASCII characters");
    return -1;
}

/* ---- the body and its limit ---------------------------------------------- */

/* The body limit of r: a value's for PUT, the transaction body's for
 * POST /txn. */
static uint64_t body_limit(const struct srv *s, const struct srv_req *r)
{
    return r->route == SRV_ROUTE_TXN ? s->max_txn_body_bytes
                                     : s->max_value_bytes;
}

/* Refuse a PUT or POST whose Content-Length is over the limit, before its
 * body is read; otherwise size the body buffer once. */
static void check_length(const struct srv *s, struct MHD_Connection *c,
                         struct srv_req *r)
{
    uint64_t limit = body_limit(s, r);
    const char *cl = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long n;
    char detail[96], *end;

    if (cl == NULL)
        return; /* chunked, or no body: checked while it arrives */
    n = strtoull(cl, &end, 10);
    if (end == cl || *end != '\0')
        return; /* MHD frames the body; it refuses a bad length itself */
    if (n > limit) {
        snprintf(detail, sizeof detail,
                 "the body is larger than this server's limit of %llu "
                 "bytes",
                 (unsigned long long)limit);
        srv_refuse_status(r,
                          r->route == SRV_ROUTE_TXN ? ETAGKV_TXN_TOO_LARGE
                                                    : ETAGKV_VALUE_TOO_LARGE,
                          detail);
        return;
    }
    /* Size the buffer once, but do not let a mere announcement reserve
     * more than 1 MiB: the rest is allocated as the bytes arrive. */
    if (n > 0) {
        size_t want = n < BODY_PREALLOC_MAX ? (size_t)n : BODY_PREALLOC_MAX;

        r->body = malloc(want);
        r->body_cap = r->body != NULL ? want : 0;
    }
}

/* Append to the body, growing the buffer geometrically; 0 or -1. */
static int body_append(struct srv_req *r, const char *data, size_t n)
{
    if (r->body_cap - r->body_len < n) {
        size_t cap = r->body_cap > 0 ? r->body_cap : 4096;
        char *grown;

        while (cap - r->body_len < n)
            cap *= 2;
        grown = realloc(r->body, cap);
        if (grown == NULL)
            return -1;
        r->body = grown;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    return 0;
}

static void drop_body(struct srv_req *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
}

enum MHD_Result srv_admit_body(const struct srv *s, struct srv_req *r,
                               const char *data, size_t *size)
{
    size_t n = *size;

    *size = 0;
    if (r->pending_status == 0 &&
        (r->method == SRV_PUT || r->route == SRV_ROUTE_TXN)) {
        /* Only a chunked body can get past the limit here: a
         * Content-Length over it was refused at the headers. */
        if (n > body_limit(s, r) - r->body_len) {
            drop_body(r);
            srv_refuse_status(r,
                              r->route == SRV_ROUTE_TXN
                                  ? ETAGKV_TXN_TOO_LARGE
                                  : ETAGKV_VALUE_TOO_LARGE,
                              "the chunked body grew larger than this "
                              "server's limit");
        } else if (body_append(r, data, n) != 0) {
            drop_body(r);
            srv_refuse_status(r, ETAGKV_NO_MEMORY, NULL);
        } else {
            return MHD_YES;
        }
    }
    /* Refused, or a body on a method that takes none: drop it. */
    r->discarded_bytes += n;
    return r->discarded_bytes > DISCARD_MAX_BYTES ? MHD_NO : MHD_YES;
}

/* ---- admission ----------------------------------------------------------- */

/* The checks of a /kv/{key} request, in the order their statuses win. */
static void admit_kv(const struct srv *s, struct MHD_Connection *c,
                     struct srv_req *r, const char *key_enc)
{
    int writes = r->method == SRV_PUT || r->method == SRV_DELETE;

    if (r->method == SRV_OTHER || r->method == SRV_POST) {
        srv_refuse_method(r, allow_kv);
        return;
    }
    if (decode_key(r, key_enc) != 0 || collect_conditions(c, r) != 0 ||
        (writes && collect_idempotency_key(c, r) != 0))
        return;
    /* Require-conditions mode (DESIGN §5); whether the set is conditional
     * is the library's call. */
    if (writes && s->require_conditions &&
        !etagkv_cond_is_conditional(r->cond)) {
        srv_refuse_status(r, ETAGKV_PRECONDITION_REQUIRED,
                          "this server requires conditional writes: send "
                          "If-Match, If-None-Match or If-Unmodified-Since");
        return;
    }
    if (r->method == SRV_PUT)
        check_length(s, c, r);
}

/* 1 if the request carries any of the precondition headers or
 * ETagKV-If-Revision. */
static int has_condition_header(struct MHD_Connection *c)
{
    for (size_t i = 0; i < sizeof cond_headers / sizeof cond_headers[0]; i++)
        if (MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                        cond_headers[i].name) != NULL)
            return 1;
    return 0;
}

/* 1 if the Content-Type is application/json, parameters allowed
 * (RFC 8259 §11; media types are case-insensitive, RFC 9110 §8.3.1). */
static int is_json(struct MHD_Connection *c)
{
    static const char json[] = "application/json";
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    size_t n = sizeof json - 1;

    return ct != NULL && strncasecmp(ct, json, n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

/* The checks of a POST /txn (DESIGN §7), in the order their statuses
 * win.  Conditions live in the body, so request header conditions are a
 * client error rather than silently ignored. */
static void admit_txn(const struct srv *s, struct MHD_Connection *c,
                      struct srv_req *r)
{
    if (r->method != SRV_POST) {
        srv_refuse_method(r, allow_txn);
        return;
    }
    if (has_condition_header(c)) {
        srv_refuse_status(r, ETAGKV_INVALID_HEADER,
                          "request header conditions do not apply to /txn: "
                          "give each operation its if_match, if_none_match, "
                          "if_modified_since, if_unmodified_since or "
                          "if_revision");
        return;
    }
    if (collect_idempotency_key(c, r) != 0)
        return;
    if (!is_json(c)) {
        srv_refuse_problem(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                           "unsupported-media-type",
                           "POST /txn takes Content-Type: application/json");
        return;
    }
    check_length(s, c, r);
}

void srv_admit(const struct srv *s, struct MHD_Connection *c, struct srv_req *r,
               const char *url, const char *method, const char *version)
{
    const char *key_enc = NULL;
    int presented;

    r->method = method_of(method);
    if (target_has_nul(r, url, version)) {
        srv_refuse_problem(r, MHD_HTTP_BAD_REQUEST, "invalid-request-target",
                           "the request-target contains a NUL byte: send it "
                           "as %00");
        return;
    }
    if (check_framing(c, r) != 0)
        return;
    r->route = srv_route_of(url, &key_enc);
    if (r->route == SRV_ROUTE_HEALTHZ) { /* open even with a token */
        if (!is_read(r->method))
            srv_refuse_method(r, allow_read);
        return;
    }
    if (!authorized(s, c, &presented)) {
        srv_refuse_unauthorized(r, presented);
        return;
    }
    switch (r->route) {
    case SRV_ROUTE_KV: admit_kv(s, c, r, key_enc); return;
    case SRV_ROUTE_TXN: admit_txn(s, c, r); return;
    case SRV_ROUTE_LIST:
        if (r->method == SRV_PUT || r->method == SRV_DELETE)
            srv_refuse_status(r, ETAGKV_INVALID_KEY,
                              "the key is empty: use /kv/{key}");
        else if (!is_read(r->method))
            srv_refuse_method(r, allow_read);
        return;
    case SRV_ROUTE_METRICS:
        if (!is_read(r->method))
            srv_refuse_method(r, allow_read);
        return;
    case SRV_ROUTE_HEALTHZ:
    case SRV_ROUTE_NONE: break;
    }
    srv_refuse_problem(r, MHD_HTTP_NOT_FOUND, "no-such-resource",
                       "no such path: use /kv/{key}, /kv/, /txn, /healthz "
                       "or /metrics");
}
