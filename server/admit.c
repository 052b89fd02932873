/*
 * admit.c -- admission: everything decided from a request's headers before
 * anything executes, and its body gathered within the limit.
 *
 * srv_admit() runs the checks in the order their statuses win:
 *  1. the request line and target (RFC 9112 §3): 400, connection closed;
 *  2. the header lines and Host (RFC 9112 §3.2, §5; RFC 9110 §5): what
 *     libmicrohttpd reads leniently is 400, and the connection closes;
 *  3. room for the response in libmicrohttpd's connection memory: 431;
 *  4. the framing (RFC 9112 §6): what libmicrohttpd lets through but a
 *     proxy may read differently is 400 or 501, and the connection closes;
 *     then an absolute-form target is reduced to its path (or 400), and
 *     a target that is not a path is 400 (OPTIONS *: 501);
 *  5. the route: an unknown path is 404 (after authentication);
 *     /healthz is open even when a token is configured;
 *  6. the bearer token: 401;
 *  7. per route, the method (405); for /kv/{key} then the key (400, 414),
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
#include <time.h>

static const char allow_kv[] = "GET, HEAD, PUT, DELETE";
static const char allow_read[] = "GET, HEAD";
static const char allow_txn[] = "POST";
static const char allow_lease[] = "GET, HEAD, DELETE";

/* The most a POST /leases body needs: {"ttl_ms": N}. */
#define LEASE_BODY_MAX 4096

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

/* RFC 9110 §5.6.2 tchar. */
static int is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* 1 if s is a token: one or more tchar. */
static int is_token(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (!is_tchar((unsigned char)*s))
            return 0;
    return 1;
}

/* Check the request line: "method SP request-target SP version", with one
 * space each (RFC 9112 §3), a method that is a token (RFC 9110 §9.1;
 * libmicrohttpd takes any bytes up to the first space), and a
 * request-target of visible ASCII only, without '#' (§3.2: control bytes,
 * spaces, tabs and bytes >= 0x80 must be percent-encoded; a fragment is
 * never sent).  libmicrohttpd 0.9.75 skips repeated spaces, takes the
 * version from the last space (so a target may hold spaces and tabs) and
 * hands the handler C strings (so "PUT /kv/a<NUL>b" would arrive as the
 * key "a").  It parses the line in place: the method, target and version
 * lie one byte apart, and srv_uri_log measured the target (with strlen(),
 * before the query was split off) and checked its bytes.  Returns 0, or -1
 * after deciding a refusal. */
static int check_request_line(struct srv_req *r, const char *url,
                              const char *method, const char *version)
{
    const char *detail = NULL;

    if (r->uri == NULL) { /* srv_uri_log could not allocate r */
        srv_refuse_status(r, ETAGKV_NO_MEMORY, NULL);
        return -1;
    }
    if (r->uri != url || method + strlen(method) + 1 != url ||
        url + r->uri_len + 1 > version)
        detail = "the request line is not method, one space, the "
                 "request-target, one space and the version";
    else if (!is_token(method))
        detail = "the method is not a token (RFC 9110 §9.1)";
    else if (url + r->uri_len + 1 < version) /* strlen() stopped early */
        detail = "the request-target contains a NUL byte: send it as %00";
    else if (r->uri_bad)
        detail = "the request-target contains a control byte, space, tab, "
                 "'#' or a byte of 0x80 or more: percent-encode it";
    if (detail == NULL)
        return 0;
    r->must_close = 1;
    srv_refuse_problem(r, MHD_HTTP_BAD_REQUEST, "invalid-request-target",
                       detail);
    return -1;
}

/* ---- the header section -------------------------------------------------- */

/* RFC 9110 §5.5: a field value is visible ASCII, obs-text, SP and HTAB;
 * any other control byte (CR, LF, NUL included) is refused. */
static int field_value_ok(const char *v, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];

        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 0;
    }
    return 1;
}

/* 1 if the len bytes at p are all NUL and lo <= len <= hi. */
static int nul_run(const char *p, size_t len, size_t lo, size_t hi)
{
    size_t i;

    if (len < lo || len > hi)
        return 0;
    for (i = 0; i < len; i++)
        if (p[i] != '\0')
            return 0;
    return 1;
}

/* The walk over the header lines, in the order they arrived.  libmicrohttpd
 * 0.9.75 parses the request line and the header lines in place in one
 * buffer: each line terminator becomes NUL bytes (CRLF two, a bare LF one),
 * the colon becomes NUL, the whitespace after it stays, and the name and
 * value point into that buffer.  So the lines must tile the buffer exactly:
 * after the version (and after each value) come 1 or 2 NUL bytes and then
 * the next name, and after the last value the empty line, 2 to 4 NUL bytes
 * up to the end of the header section.  Any other layout is a line that
 * libmicrohttpd read leniently:
 *  - a NUL inside a value (libmicrohttpd cuts the value there: bytes are
 *    left over before the next line);
 *  - an obs-folded line (RFC 9112 §5.2; libmicrohttpd glues the
 *    continuation onto the field *name* in a new buffer: the name is not
 *    where it should be), so "Transfer-Encoding:\r\n chunked" would lose
 *    its framing;
 *  - a line that starts with a NUL (read as the empty line: the rest of the
 *    header section would be taken for the body or the next request).
 * The names must be tokens (RFC 9110 §5.1), which refuses whitespace
 * before the colon (RFC 9112 §5.1: "Content-Length : 41" would otherwise be
 * a field named "Content-Length " and not frame the body), and the values
 * must hold no control bytes but HTAB (a bare CR).  Host is counted for
 * RFC 9112 §3.2. */
struct lines {
    const char *next; /* where the next name must start */
    const char *end;  /* the end of the header section */
    int bad;          /* the layout or a name or value is not as above */
    int hosts;        /* Host lines */
    const char *host; /* the first Host value */
    size_t host_len;
    const char *twice; /* a field that may appear once, seen again */
    unsigned seen;     /* of singletons[], by bit */
};

/* Fields that take one value (RFC 9110 §5.3: no list), besides Host: a
 * second line is ambiguous -- libmicrohttpd's lookup takes the first, a
 * proxy may take the last -- so it is refused rather than resolved.
 * (Idempotency-Key's lines are counted where it is parsed.) */
static const char *const singletons[] = {"Content-Type", "Authorization",
                                         "ETagKV-Lease"};
#define N_SINGLETONS (sizeof singletons / sizeof *singletons)

/* 1 if the field (key, value) lies where l expects the next line and is
 * well-formed, else 0. */
static int line_well_formed(const struct lines *l, const char *key,
                            size_t key_size, const char *value,
                            size_t value_size)
{
    const char *p;
    size_t i;

    if (key < l->next || key > l->next + 2 || key + key_size >= l->end ||
        !nul_run(l->next, (size_t)(key - l->next), 1, 2) || key_size == 0 ||
        key[key_size] != '\0' || value <= key + key_size ||
        value + value_size >= l->end || value[value_size] != '\0')
        return 0;
    for (i = 0; i < key_size; i++)
        if (!is_tchar((unsigned char)key[i]))
            return 0;
    /* Between the colon (now NUL) and the value: only the OWS skipped. */
    for (p = key + key_size + 1; p < value; p++)
        if (*p != ' ' && *p != '\t')
            return 0;
    return field_value_ok(value, value_size);
}

static enum MHD_Result line_one(void *cls, enum MHD_ValueKind kind,
                                const char *key, size_t key_size,
                                const char *value, size_t value_size)
{
    struct lines *l = cls;

    (void)kind;
    if (!line_well_formed(l, key, key_size, value, value_size)) {
        l->bad = 1;
        return MHD_NO;
    }
    for (size_t i = 0; i < N_SINGLETONS; i++) {
        if (key_size != strlen(singletons[i]) ||
            strncasecmp(key, singletons[i], key_size) != 0)
            continue;
        if ((l->seen & (1u << i)) != 0 && l->twice == NULL)
            l->twice = singletons[i];
        l->seen |= 1u << i;
        break;
    }
    if (key_size == 4 && strncasecmp(key, "Host", 4) == 0 && l->hosts++ == 0) {
        /* libmicrohttpd keeps the whitespace after a value (RFC 9110 §5.5:
         * not part of it). */
        l->host = value;
        l->host_len = value_size;
        while (l->host_len > 0 && (value[l->host_len - 1] == ' ' ||
                                   value[l->host_len - 1] == '\t'))
            l->host_len--;
    }
    l->next = value + value_size;
    return MHD_YES;
}

/* RFC 3986 §3.2.2-3.2.3: the characters of a Host value (uri-host [ ":"
 * port ]), without judging their arrangement. */
static int host_ok(const char *v, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') ||
              (ch != '\0' && strchr("-._~!$&'()*+,;=%:[]", ch) != NULL)))
            return 0;
    }
    return 1;
}

/* Check the header section as described above struct lines, and Host: a
 * request with two Host lines, with an invalid one, or an HTTP/1.1 request
 * with none, is 400 (RFC 9112 §3.2).  On success *host is the Host value
 * (NULL when absent).  Every refusal closes the connection: the section
 * was not read the way a proxy in front of us may have read it.  Returns
 * 0, or -1 after deciding a refusal. */
static int check_header_section(struct MHD_Connection *c, struct srv_req *r,
                                const char *method, const char *version,
                                const char **host, size_t *host_len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    struct lines l = {NULL, NULL, 0, 0, NULL, 0, NULL, 0};
    const char *detail = NULL;
    char twice[64];

    r->must_close = 1;
    if (ci == NULL) { /* not reached: the headers are complete */
        srv_refuse_status(r, ETAGKV_INTERNAL, NULL);
        return -1;
    }
    l.end = method + ci->header_size;
    l.next = version + strlen(version);
    if (l.next >= l.end) {
        l.bad = 1;
    } else {
        (void)MHD_get_connection_values_n(c, MHD_HEADER_KIND, line_one, &l);
        if (!l.bad && !nul_run(l.next, (size_t)(l.end - l.next), 2, 4))
            l.bad = 1;
    }
    if (l.bad)
        detail = "a header line is malformed: a field name must be a token "
                 "followed directly by ':' (no whitespace before it), a value "
                 "holds no control bytes but tab (no CR, LF or NUL), and a "
                 "line may not be folded (obs-fold)";
    else if (l.hosts > 1)
        detail = "the request has more than one Host field";
    else if (l.twice != NULL) {
        snprintf(twice, sizeof twice, "the request has more than one %s field",
                 l.twice);
        detail = twice;
    } else if (l.hosts == 0 && strcmp(version, MHD_HTTP_VERSION_1_0) != 0)
        detail = "an HTTP/1.1 request must have a Host field";
    else if (l.hosts == 1 && !host_ok(l.host, l.host_len))
        detail = "the Host field is not a valid host[:port]";
    if (detail != NULL) {
        srv_refuse_problem(r, MHD_HTTP_BAD_REQUEST, "bad-header", detail);
        return -1;
    }
    r->must_close = 0;
    *host = l.host;
    *host_len = l.host_len;
    return 0;
}

/* The request-target's form (RFC 9112 §3.2).  The origin-form, "/path",
 * is routed as it is.  A server must accept the absolute-form,
 * "http://authority/path" (§3.2.2).  This server has no name of its own:
 * the authority names it when it is the Host field's value (a client must
 * send the two alike, §3.2; an HTTP/1.0 request may lack Host), and then
 * *url is advanced to the path, routed as usual.  Another authority is
 * 400: a proxy that routed by one and us by the other would disagree about
 * which server the request is for.  The asterisk-form, "*", is for OPTIONS
 * only (§3.2.4), which this server does not implement: 501; any other
 * target (the authority-form of CONNECT, a bare path) is 400.  Returns 0,
 * or -1 after deciding a refusal. */
static int target_form(struct srv_req *r, const char *method, const char *host,
                       size_t host_len, const char **url)
{
    const char *auth, *path;

    if ((*url)[0] == '/')
        return 0;
    if (strncasecmp(*url, "http://", 7) == 0) {
        auth = *url + 7;
    } else if (strncasecmp(*url, "https://", 8) == 0) {
        auth = *url + 8;
    } else if (strcmp(*url, "*") == 0 &&
               strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0) {
        srv_refuse_problem(r, MHD_HTTP_NOT_IMPLEMENTED, "not-implemented",
                           "this server implements no OPTIONS: see "
                           "docs/http.md for its resources and methods");
        return -1;
    } else {
        srv_refuse_problem(r, MHD_HTTP_BAD_REQUEST, "invalid-request-target",
                           strcmp(*url, "*") == 0
                               ? "the request-target * is for OPTIONS only "
                                 "(RFC 9112 §3.2.4)"
                               : "the request-target is neither a path "
                                 "(/...) nor an absolute URI (http://...)");
        return -1;
    }
    /* libmicrohttpd split the query off at '?' already. */
    path = auth + strcspn(auth, "/");
    if (host != NULL && ((size_t)(path - auth) != host_len ||
                         strncasecmp(auth, host, host_len) != 0)) {
        srv_refuse_problem(r, MHD_HTTP_BAD_REQUEST, "invalid-request-target",
                           "the absolute-form request-target names another "
                           "host than the Host field");
        return -1;
    }
    *url = path;
    return 0;
}

/* ---- room for the response --------------------------------------------- */

/* libmicrohttpd 0.9.75 keeps a request's header section, one record per
 * field, query argument and cookie, and a copy of the Cookie value in one
 * memory pool per connection (SRV_CONN_MEMORY_BYTES, which main.c sets as
 * MHD_OPTION_CONNECTION_MEMORY_LIMIT), and then builds the response's
 * header block in what is left.  A header section that leaves too little
 * is accepted by it all the same, and the response then cannot be built:
 * the request is executed and the client gets an empty reply.  So the
 * request is refused here, before anything executes, when what it takes
 * plus the largest header block this server sends could exceed the pool. */
#define CONN_MEMORY SRV_CONN_MEMORY_BYTES

/* What one record costs: struct MHD_HTTP_Req_Header (56 bytes on 64-bit),
 * rounded up. */
#define RECORD_BYTES ((size_t)64)

/* The largest response header block: the status line, Date, Connection,
 * Content-Length, Content-Type (up to ETAGKV_CONTENT_TYPE_MAX), ETag,
 * Last-Modified, the three ETagKV revision fields, Cache-Control,
 * Idempotent-Replayed, Location (up to "/kv/" and 3 * ETAGKV_KEY_MAX) and
 * Allow or WWW-Authenticate come to about 2.5 KiB. */
#define RESPONSE_HEADER_RESERVE ((size_t)4 << 10)

/* Returns 0, or -1 after deciding a 431 (RFC 6585 §5). */
static int check_room(struct MHD_Connection *c, struct srv_req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    int records = MHD_get_connection_values(
        c, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND | MHD_COOKIE_KIND, NULL,
        NULL);
    const char *cookie =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE);
    size_t used;

    if (ci == NULL || records < 0) {
        srv_refuse_status(r, ETAGKV_INTERNAL, NULL);
        return -1;
    }
    used = ci->header_size + (size_t)records * RECORD_BYTES +
           (cookie != NULL ? strlen(cookie) + 1 : 0);
    if (used + RESPONSE_HEADER_RESERVE <= CONN_MEMORY)
        return 0;
    srv_refuse_problem(r, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                       "header-fields-too-large",
                       "the request's header section leaves too little of "
                       "this server's 32 KiB per connection for the response: "
                       "keep it under about 28 KiB");
    return -1;
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
 * 400), Transfer-Encoding in an HTTP/1.0 request (§6.1: faulty framing;
 * libmicrohttpd would decode it: 400), and a transfer coding other than
 * chunked (§6.1: 501).  The answer goes out at once and the connection is
 * closed: where the body ends is unknown.
 *
 * An accepted chunked body closes the connection after its answer too.
 * Its trailer section ends it, and libmicrohttpd reads trailer lines as
 * leniently as header lines -- a line starting with NUL or ':' is taken
 * for the empty line that ends the section -- without leaving the layout
 * that check_header_section() inspects for the headers (a line it took
 * for the end leaves no field at all).  So the bytes after a chunked body
 * cannot be trusted to start the next request the way a proxy in front
 * of us would read them.  Returns 0, or -1 after deciding a refusal. */
static int check_framing(struct MHD_Connection *c, struct srv_req *r,
                         const char *version)
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
    else if (f.coding != NULL && strcmp(version, MHD_HTTP_VERSION_1_0) == 0)
        detail = "an HTTP/1.0 request cannot have Transfer-Encoding";
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
    if (f.coding != NULL)
        r->must_close = 1;
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

/* 1 if the request may proceed: no token configured, or
 * "Authorization: Bearer <token>" with one of the tokens (RFC 6750 §2.1;
 * the scheme is case-insensitive, RFC 9110 §11.1); r->identity is then
 * the token's identity (auth.c).  *presented tells whether an
 * Authorization header was sent at all. */
static int authorized(const struct srv *s, struct MHD_Connection *c,
                      struct srv_req *r, int *presented)
{
    const char *v = NULL;
    size_t len = 0;

    *presented = 0;
    if (s->tokens == NULL)
        return 1;
    if (MHD_lookup_connection_value_n(
            c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION,
            strlen(MHD_HTTP_HEADER_AUTHORIZATION), &v, &len) != MHD_YES ||
        v == NULL)
        return 0;
    *presented = 1;
    len = srv_field_len(v, len);
    if (len < 7 || strncasecmp(v, "Bearer ", 7) != 0)
        return 0;
    v += 7;
    len -= 7;
    while (len > 0 && *v == ' ') {
        v++;
        len--;
    }
    r->identity = srv_tokens_match(s->tokens, v, len);
    return r->identity != NULL;
}

/* ---- the key and its headers --------------------------------------------- */

/* 1 if the encoded key has a segment that is exactly "." or "..", sent
 * as such (not as %2E). */
static int has_dot_segment(const char *p)
{
    for (;;) {
        size_t n = strcspn(p, "/");

        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return 1;
        if (p[n] == '\0')
            return 0;
        p += n + 1;
    }
}

/* Decode the key into r; returns 0, or -1 after deciding a refusal. */
static int decode_key(struct srv_req *r, const char *key_enc)
{
    ssize_t n;

    /* A proxy, a cache or a client library that normalises the path
     * removes such a segment (RFC 3986 §5.2.4) and so names another key
     * than this server would: an access rule on "public/" would pass
     * "/kv/secret/../public/x", which would write under "secret/".  The
     * key in canonical form (key_pct) sends the dots as %2E -- which a
     * proxy that decodes before it normalises still resolves away
     * (docs/http.md says so). */
    if (has_dot_segment(key_enc)) {
        srv_refuse_problem(r, MHD_HTTP_BAD_REQUEST, "dot-segment",
                           "a path segment '.' or '..' is removed by URL "
                           "normalisation on the way (RFC 3986 5.2.4): send "
                           "the dots of such a key segment as %2E");
        return -1;
    }
    n = srv_pct_decode(key_enc, strlen(key_enc), r->key, sizeof r->key);
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

/* Every line of If-Match, or of If-None-Match, joined with commas into
 * one field value before the library parses it: RFC 9110 §5.3 makes the
 * lines of a list-based field one list, so a line with no element of its
 * own ("If-Match: ,") beside one with tags is valid, while lines with no
 * element between them are still no list, and "*" beside anything is
 * still invalid.  The library checks one value at a time. */
struct joined {
    char *p;
    size_t len, cap;
    int seen;
};

struct collect {
    etagkv_cond *cond;
    etagkv_status st;
    struct joined if_match, if_none_match;
};

/* Append value as one more line of j; -1 without memory. */
static int join_line(struct joined *j, const char *value, size_t len)
{
    size_t need = j->len + (j->seen ? 2 : 0) + len + 1;

    if (need > j->cap) {
        size_t cap = need * 2;
        char *p = realloc(j->p, cap);

        if (p == NULL)
            return -1;
        j->p = p;
        j->cap = cap;
    }
    if (j->seen) {
        memcpy(j->p + j->len, ", ", 2);
        j->len += 2;
    }
    if (len > 0)
        memcpy(j->p + j->len, value, len);
    j->len += len;
    j->p[j->len] = '\0';
    j->seen = 1;
    return 0;
}

static enum MHD_Result collect_one(void *cls, enum MHD_ValueKind kind,
                                   const char *key, size_t key_size,
                                   const char *value, size_t value_size)
{
    struct collect *col = cls;
    size_t i;

    (void)kind;
    for (i = 0; i < sizeof cond_headers / sizeof cond_headers[0]; i++) {
        struct joined *j = NULL;

        if (strlen(cond_headers[i].name) != key_size ||
            strncasecmp(key, cond_headers[i].name, key_size) != 0)
            continue;
        if (cond_headers[i].h == ETAGKV_IF_MATCH)
            j = &col->if_match;
        else if (cond_headers[i].h == ETAGKV_IF_NONE_MATCH)
            j = &col->if_none_match;
        if (j != NULL) {
            col->st = join_line(j, value, value_size) == 0 ? ETAGKV_OK
                                                           : ETAGKV_NO_MEMORY;
            return col->st == ETAGKV_OK ? MHD_YES : MHD_NO;
        }
        /* The others: each line as the library defines it (a second date
         * line makes the header invalid and ignored; revision lines must
         * agree). */
        col->st =
            etagkv_cond_add(col->cond, cond_headers[i].h, value, value_size);
        return col->st == ETAGKV_OK ? MHD_YES : MHD_NO;
    }
    return MHD_YES;
}

/* Hand j, if the request had the header, to the library as header h. */
static etagkv_status add_joined(etagkv_cond *cond, etagkv_header h,
                                const struct joined *j)
{
    return j->seen ? etagkv_cond_add(cond, h, j->p, j->len) : ETAGKV_OK;
}

/* Build r->cond; returns 0, or -1 after deciding a refusal (400 for a
 * malformed entity-tag list, 500 when out of memory).  The values are
 * handed to the library raw: it parses them and decides 304 and 412. */
static int collect_conditions(struct MHD_Connection *c, struct srv_req *r)
{
    struct collect col = {NULL, ETAGKV_OK, {NULL, 0, 0, 0}, {NULL, 0, 0, 0}};
    etagkv_status st = etagkv_cond_new(&col.cond);
    int got;

    if (st != ETAGKV_OK) {
        srv_refuse_status(r, st, NULL);
        return -1;
    }
    r->cond = col.cond;
    got = MHD_get_connection_values_n(c, MHD_HEADER_KIND, collect_one, &col);
    if (got >= 0 && col.st == ETAGKV_OK)
        col.st = add_joined(col.cond, ETAGKV_IF_MATCH, &col.if_match);
    if (got >= 0 && col.st == ETAGKV_OK)
        col.st = add_joined(col.cond, ETAGKV_IF_NONE_MATCH, &col.if_none_match);
    free(col.if_match.p);
    free(col.if_none_match.p);
    if (got < 0 || col.st != ETAGKV_OK) {
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
    value_size = srv_field_len(value, value_size);
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

/* With tokens, recorded outcomes are per client: the key handed to the
 * library is the token's identity followed by the client's key, so a
 * client never replays, or collides with, another's.  Returns 0, or -1
 * after deciding a 400 for a key too long to carry the prefix. */
static int scope_idempotency_key(struct srv_req *r)
{
    if (r->identity == NULL || r->idem_len == 0)
        return 0;
    if (r->idem_len > ETAGKV_IDEMPOTENCY_KEY_MAX - SRV_IDENTITY_BYTES) {
        r->idem_len = 0;
        srv_refuse_status(r, ETAGKV_INVALID_HEADER,
                          "with bearer tokens, an Idempotency-Key is at most "
                          "239 characters");
        return -1;
    }
    memmove(r->idem + SRV_IDENTITY_BYTES, r->idem, r->idem_len);
    memcpy(r->idem, r->identity, SRV_IDENTITY_BYTES);
    r->idem_len += SRV_IDENTITY_BYTES;
    return 0;
}

/* ---- the body and its limit ---------------------------------------------- */

/* The body limit of r: a value's for PUT, the transaction body's for
 * POST /txn. */
static uint64_t body_limit(const struct srv *s, const struct srv_req *r)
{
    if (r->route == SRV_ROUTE_LEASES)
        return LEASE_BODY_MAX;
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
    /* The whole announced length is charged to the memory budget now, so
     * that a refusal comes before any of the body is read (budget.c). */
    if (srv_budget_reserve(s->budget, n) != 0) {
        srv_refuse_busy(r, "the server is buffering as many bodies as its "
                           "memory budget allows: retry later");
        return;
    }
    r->reserved = n;
    /* Size the buffer once, but do not let a mere announcement reserve
     * more than 1 MiB: the rest is allocated as the bytes arrive. */
    if (n > 0) {
        size_t want = n < BODY_PREALLOC_MAX ? (size_t)n : BODY_PREALLOC_MAX;

        r->body = malloc(want);
        r->body_cap = r->body != NULL ? want : 0;
    }
}

/* Append to the body, growing the buffer geometrically but never past
 * what is reserved for it when that suffices (the announced length).  A
 * chunked body reserves each growth.  0, -1 when out of memory, -2 when
 * the growth does not fit the memory budget. */
static int body_append(const struct srv *s, struct srv_req *r, const char *data,
                       size_t n)
{
    if (r->body_cap - r->body_len < n) {
        size_t cap = r->body_cap > 0 ? r->body_cap : 4096;
        size_t need = r->body_len + n;
        char *grown;

        while (cap < need)
            cap *= 2;
        /* Never more than the body may take: a chunked body within its
         * limit must fit a budget that fits the limit. */
        if (cap > body_limit(s, r) && need <= body_limit(s, r))
            cap = (size_t)body_limit(s, r);
        if (r->reserved >= need && cap > r->reserved)
            cap = (size_t)r->reserved;
        if (cap > r->reserved) {
            if (srv_budget_reserve(s->budget, cap - r->reserved) != 0)
                return -2;
            r->reserved = cap;
        }
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

void srv_body_free(const struct srv *s, struct srv_req *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
    srv_budget_release(s->budget, r->reserved);
    r->reserved = 0;
}

enum MHD_Result srv_admit_body(const struct srv *s, struct srv_req *r,
                               const char *data, size_t *size)
{
    size_t n = *size;
    int rc;

    *size = 0;
    if (r->pending_status == 0 &&
        (r->method == SRV_PUT || r->route == SRV_ROUTE_TXN ||
         r->route == SRV_ROUTE_LEASES)) {
        /* Only a chunked body can get past the limit here: a
         * Content-Length over it was refused at the headers. */
        if (n > body_limit(s, r) - r->body_len) {
            srv_body_free(s, r);
            srv_refuse_status(r,
                              r->route == SRV_ROUTE_TXN
                                  ? ETAGKV_TXN_TOO_LARGE
                                  : ETAGKV_VALUE_TOO_LARGE,
                              "the chunked body grew larger than this "
                              "server's limit");
        } else {
            rc = body_append(s, r, data, n);
            if (rc == 0)
                return MHD_YES;
            srv_body_free(s, r);
            if (rc == -2)
                srv_refuse_busy(r, "the chunked body outgrew the server's "
                                   "memory budget: retry later");
            else
                srv_refuse_status(r, ETAGKV_NO_MEMORY, NULL);
        }
    }
    /* Refused, or a body on a method that takes none: drop it. */
    r->discarded_bytes += n;
    return r->discarded_bytes > DISCARD_MAX_BYTES ? MHD_NO : MHD_YES;
}

/* ---- admission ----------------------------------------------------------- */

/* ETagKV-Lease on a PUT (DESIGN §9): one lease id.  0, or -1 after
 * deciding a 400 (malformed, or on another method). */
static int collect_lease(struct MHD_Connection *c, struct srv_req *r)
{
    const char *v =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "ETagKV-Lease");

    if (v == NULL)
        return 0;
    if (r->method != SRV_PUT) {
        srv_refuse_status(r, ETAGKV_INVALID_HEADER,
                          "ETagKV-Lease applies to PUT only");
        return -1;
    }
    if (srv_lease_id_parse(v, srv_field_len(v, strlen(v)), &r->lease) != 0) {
        srv_refuse_status(r, ETAGKV_INVALID_HEADER,
                          "ETagKV-Lease must be one lease id (digits), as "
                          "POST /leases gave it");
        return -1;
    }
    return 0;
}

/* A PUT's Content-Type with trailing whitespace: keep it without (RFC 9110
 * §5.5), for the library, which refuses whitespace at either end of a
 * content type.  0, or -1 after deciding a 503 (no memory). */
static int collect_content_type(struct MHD_Connection *c, struct srv_req *r)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_CONTENT_TYPE);
    size_t len = v != NULL ? strlen(v) : 0;

    if (r->method != SRV_PUT || srv_field_len(v, len) == len)
        return 0;
    r->content_type = strndup(v, srv_field_len(v, len));
    if (r->content_type != NULL)
        return 0;
    srv_refuse_status(r, ETAGKV_NO_MEMORY, NULL);
    return -1;
}

/* No write takes a query: one sent (a misspelt condition, say) would be
 * ignored, and the write done without what the client meant.  Checked
 * once the method (405) and the resource (404, and a key's 400 and 414)
 * are known to be right.  0, or -1 after deciding a refusal. */
static int no_query_on_write(struct srv_req *r)
{
    if (r->query == NULL || r->query[0] == '\0')
        return 0;
    srv_refuse_status(r, ETAGKV_INVALID_ARGUMENT,
                      "a write takes no query string: conditions are headers "
                      "(or, in /txn, members of the body)");
    return -1;
}

/* The checks of a /kv/{key} request, in the order their statuses win. */
static void admit_kv(const struct srv *s, struct MHD_Connection *c,
                     struct srv_req *r, const char *key_enc)
{
    int writes = r->method == SRV_PUT || r->method == SRV_DELETE;

    if (r->method == SRV_OTHER || r->method == SRV_POST) {
        srv_refuse_method(r, allow_kv);
        return;
    }
    if (decode_key(r, key_enc) != 0 || (writes && no_query_on_write(r)) ||
        collect_conditions(c, r) != 0 ||
        (writes && collect_idempotency_key(c, r) != 0) ||
        scope_idempotency_key(r) != 0 || collect_lease(c, r) != 0 ||
        collect_content_type(c, r) != 0)
        return;
    /* Require-conditions mode (DESIGN §5): whether the set conditions
     * the write is the library's call (etagkv_cond_is_conditional()). */
    if (writes && s->require_conditions &&
        !etagkv_cond_is_conditional(r->cond)) {
        srv_refuse_status(r, ETAGKV_PRECONDITION_REQUIRED,
                          "this server requires conditional writes: send "
                          "If-Match, If-None-Match, ETagKV-If-Revision or an "
                          "If-Unmodified-Since not later than now");
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

/* Precondition headers where they do not apply (every route but
 * /kv/{key}): refused with detail, never silently true (DESIGN §2; RFC
 * 9110 §13.1.1 asks an origin server to evaluate If-Match).  0, or -1
 * when refused. */
static int refuse_conditions(struct MHD_Connection *c, struct srv_req *r,
                             const char *detail)
{
    if (!has_condition_header(c))
        return 0;
    srv_refuse_status(r, ETAGKV_INVALID_HEADER, detail);
    return -1;
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
    if (no_query_on_write(r) != 0)
        return;
    if (refuse_conditions(c, r,
                          "request header conditions do not apply to /txn: "
                          "give each operation its if_match, if_none_match, "
                          "if_modified_since, if_unmodified_since or "
                          "if_revision") != 0)
        return;
    if (collect_idempotency_key(c, r) != 0 || scope_idempotency_key(r) != 0)
        return;
    if (!is_json(c)) {
        srv_refuse_problem(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                           "unsupported-media-type",
                           "POST /txn takes Content-Type: application/json");
        return;
    }
    check_length(s, c, r);
}

/* The checks of /leases and /leases/{id}[/keepalive] (DESIGN §9).  An id
 * that is not one is an unknown lease: 404. */
static void admit_lease(const struct srv *s, struct MHD_Connection *c,
                        struct srv_req *r, const char *rest)
{
    static const char keepalive[] = "/keepalive";
    const char *slash;
    size_t n;

    /* Neither applies to a lease: refused, never ignored (a grant retried
     * with a key would be a second lease; a revoke "if" would delete the
     * keys whatever the condition said). */
    if (refuse_conditions(c, r,
                          "request header conditions do not apply to "
                          "/leases") != 0)
        return;
    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key") !=
        NULL) {
        srv_refuse_status(r, ETAGKV_INVALID_HEADER,
                          "Idempotency-Key does not apply to /leases: a "
                          "retried grant that lost its answer leaves a lease "
                          "that expires on its own");
        return;
    }
    if (r->route == SRV_ROUTE_LEASES) {
        if (r->method != SRV_POST)
            srv_refuse_method(r, allow_txn);
        else if (no_query_on_write(r) != 0)
            return;
        else if (!is_json(c))
            srv_refuse_problem(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                               "unsupported-media-type",
                               "POST /leases takes Content-Type: "
                               "application/json");
        else
            check_length(s, c, r);
        return;
    }
    slash = strchr(rest, '/');
    n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
    r->lease_keepalive = slash != NULL && strcmp(slash, keepalive) == 0;
    if (srv_lease_id_parse(rest, n, &r->lease) != 0 ||
        (slash != NULL && !r->lease_keepalive)) {
        srv_refuse_status(r, ETAGKV_NOT_FOUND, "no such lease");
        return;
    }
    if (r->lease_keepalive ? r->method != SRV_POST
                           : !is_read(r->method) && r->method != SRV_DELETE)
        srv_refuse_method(r, r->lease_keepalive ? allow_txn : allow_lease);
    else if (!is_read(r->method))
        (void)no_query_on_write(r);
}

void srv_admit(const struct srv *s, struct MHD_Connection *c, struct srv_req *r,
               const char *url, const char *method, const char *version)
{
    static const char no_validators[] =
        "precondition headers apply to /kv/{key} only: a listing, /changes "
        "and /metrics have no validators";
    const char *key_enc = NULL, *host = NULL;
    size_t host_len = 0;
    int presented;

    r->method = method_of(method);
    if (check_request_line(r, url, method, version) != 0 ||
        check_header_section(c, r, method, version, &host, &host_len) != 0 ||
        check_room(c, r) != 0 || check_framing(c, r, version) != 0 ||
        target_form(r, method, host, host_len, &url) != 0)
        return;
    r->route = srv_route_of(url, &key_enc);
    if (r->route == SRV_ROUTE_HEALTHZ) { /* open even with a token */
        if (!is_read(r->method))
            srv_refuse_method(r, allow_read);
        return;
    }
    if (!authorized(s, c, r, &presented)) {
        srv_refuse_unauthorized(r, presented);
        return;
    }
    /* Never ignored where it means nothing: a lock taken through /txn
     * with the header would otherwise be written without its lease, and
     * never expire. */
    if (r->route != SRV_ROUTE_KV &&
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "ETagKV-Lease") !=
            NULL) {
        srv_refuse_status(r, ETAGKV_INVALID_HEADER,
                          r->route == SRV_ROUTE_TXN
                              ? "ETagKV-Lease applies to PUT /kv/{key} only: "
                                "in a transaction, give each put its "
                                "\"lease\""
                              : "ETagKV-Lease applies to PUT /kv/{key} only");
        return;
    }
    switch (r->route) {
    case SRV_ROUTE_KV: admit_kv(s, c, r, key_enc); return;
    case SRV_ROUTE_TXN: admit_txn(s, c, r); return;
    case SRV_ROUTE_LEASES:
    case SRV_ROUTE_LEASE: admit_lease(s, c, r, key_enc); return;
    case SRV_ROUTE_LIST:
        if (r->method == SRV_PUT || r->method == SRV_DELETE)
            srv_refuse_status(r, ETAGKV_INVALID_KEY,
                              "the key is empty: use /kv/{key}");
        else if (!is_read(r->method))
            srv_refuse_method(r, allow_read);
        else
            (void)refuse_conditions(c, r, no_validators);
        return;
    case SRV_ROUTE_METRICS:
    case SRV_ROUTE_CHANGES:
        if (!is_read(r->method))
            srv_refuse_method(r, allow_read);
        else
            (void)refuse_conditions(c, r, no_validators);
        return;
    case SRV_ROUTE_HEALTHZ:
    case SRV_ROUTE_NONE:
    case SRV_ROUTE_COUNT: break;
    }
    srv_refuse_problem(r, MHD_HTTP_NOT_FOUND, "no-such-resource",
                       "no such path: use /kv/{key}, /kv/, /txn, /changes, "
                       "/leases, /healthz or /metrics");
}
