/*
 * access.c -- the access log (--access-log FILE|-, off by default): one
 * line per finished request, written when libmicrohttpd reports it
 * complete (handler.c's srv_completed).
 *
 * Two formats (--access-log-format):
 *
 *   json      (default) one JSON object per line (JSON Lines):
 *             {"time","client","method","target","status","bytes_in",
 *              "bytes_out","duration_ms","etag_sent","etag","revision",
 *              "idempotency_key","replayed"}; absent fields are null
 *   combined  the common "combined" format of Apache and nginx:
 *             client - - [time] "METHOD target HTTP/1.1" status bytes_out
 *             "-" "User-Agent"
 *
 * No secrets: no Authorization header, no token, no value, no body.  The
 * target of /kv/{key} is "/kv/" and the key percent-encoded as in the
 * problem bodies' key_pct, of /leases/{id} the id as admitted (0 when it
 * was not one); other routes log their path and query.
 *
 * Lines go out with one write(2) each under a mutex, so they never
 * interleave.  SIGHUP reopens the file (main.c), for logrotate; "-" is
 * stdout and is never reopened.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct srv_access_log {
    pthread_mutex_t lock;
    char *path; /* NULL: stdout */
    int fd;
    int combined;
};

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int srv_access_log_open(const char *path, const char *format,
                        struct srv_access_log **out)
{
    struct srv_access_log *l;

    *out = NULL;
    if (format != NULL && strcmp(format, "json") != 0 &&
        strcmp(format, "combined") != 0) {
        fprintf(stderr,
                "etagkv-server: --access-log-format: json or combined\n");
        return -1;
    }
    l = calloc(1, sizeof *l);
    if (l == NULL)
        return -1;
    l->combined = format != NULL && strcmp(format, "combined") == 0;
    l->fd = STDOUT_FILENO;
    if (strcmp(path, "-") != 0) {
        l->path = strdup(path);
        l->fd = l->path != NULL ? open_path(path) : -1;
        if (l->fd < 0) {
            fprintf(stderr, "etagkv-server: --access-log %s: %s\n", path,
                    strerror(errno));
            free(l->path);
            free(l);
            return -1;
        }
    }
    if (pthread_mutex_init(&l->lock, NULL) != 0) {
        if (l->path != NULL)
            close(l->fd);
        free(l->path);
        free(l);
        return -1;
    }
    *out = l;
    return 0;
}

void srv_access_log_reopen(struct srv_access_log *l)
{
    int fd;

    if (l == NULL || l->path == NULL)
        return;
    fd = open_path(l->path);
    if (fd < 0) {
        /* Keep writing to the old file rather than lose lines. */
        fprintf(stderr, "etagkv-server: reopening %s: %s\n", l->path,
                strerror(errno));
        return;
    }
    pthread_mutex_lock(&l->lock);
    close(l->fd);
    l->fd = fd;
    pthread_mutex_unlock(&l->lock);
}

void srv_access_log_free(struct srv_access_log *l)
{
    if (l == NULL)
        return;
    if (l->path != NULL)
        close(l->fd);
    pthread_mutex_destroy(&l->lock);
    free(l->path);
    free(l);
}

/* The client's numeric address, or "-". */
static void client_of(struct MHD_Connection *c, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;
    socklen_t len = sa != NULL && sa->sa_family == AF_INET6
                        ? sizeof(struct sockaddr_in6)
                        : sizeof(struct sockaddr_in);

    if (sa == NULL ||
        getnameinfo(sa, len, out, cap, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, cap, "-");
}

/* The request-target as logged (malloc'd), or NULL when out of memory. */
static char *target_of(const struct srv_req *r)
{
    static const char *const paths[] = {
        [SRV_ROUTE_NONE] = "-",           [SRV_ROUTE_KV] = "/kv/",
        [SRV_ROUTE_LIST] = "/kv/",        [SRV_ROUTE_HEALTHZ] = "/healthz",
        [SRV_ROUTE_METRICS] = "/metrics", [SRV_ROUTE_CHANGES] = "/changes",
        [SRV_ROUTE_TXN] = "/txn",         [SRV_ROUTE_LEASES] = "/leases",
        [SRV_ROUTE_LEASE] = "/leases/"};
    /* A route added without its path here would be read past the table. */
    _Static_assert(sizeof paths / sizeof paths[0] == SRV_ROUTE_COUNT,
                   "one path per route");
    const char *path = paths[r->route];
    char *pct = NULL, *t;
    char id[40];
    const char *query =
        r->query != NULL && !r->uri_bad && r->route != SRV_ROUTE_NONE ? r->query
                                                                      : NULL;
    size_t n;

    if (r->route == SRV_ROUTE_KV && r->key_len > 0) {
        pct = srv_pct_encode(r->key, r->key_len);
        if (pct == NULL)
            return NULL;
    } else if (r->route == SRV_ROUTE_LEASE) {
        /* The id as admitted (0: not one, refused with 404). */
        snprintf(id, sizeof id, "%" PRIu64 "%s", r->lease,
                 r->lease_keepalive ? "/keepalive" : "");
        pct = strdup(id);
        if (pct == NULL)
            return NULL;
    }
    n = strlen(path) + (pct != NULL ? strlen(pct) : 0) +
        (query != NULL ? strlen(query) + 1 : 0) + 1;
    t = malloc(n);
    if (t != NULL)
        snprintf(t, n, "%s%s%s%s", path, pct != NULL ? pct : "",
                 query != NULL ? "?" : "", query != NULL ? query : "");
    free(pct);
    return t;
}

/* printf into a new buffer, or NULL. */
static char *format_line(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static char *format_line(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *out;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    out = malloc((size_t)n + 1);
    if (out == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

/* A client's bytes as JSON text (bytes that are not UTF-8 as U+FFFD, a
 * character cut short at the end of a buffer too); null when empty, and
 * null rather than no line when memory is short. */
static json_t *string_or_null(const char *s)
{
    char *text;
    json_t *j;

    if (s == NULL || s[0] == '\0')
        return json_null();
    text = srv_utf8_text(s, strlen(s), SIZE_MAX);
    j = text != NULL ? json_string(text) : NULL;
    free(text);
    return j != NULL ? j : json_null();
}

/* One JSON line (malloc'd, with its newline), or NULL. */
static char *json_line(const struct srv_req *r, const char *client,
                       const char *target, const char *time_iso,
                       uint64_t duration_ns)
{
    /* As the client sent it: without the identity prefix of a scoped key
     * (admit.c). */
    size_t scope = r->identity != NULL && r->idem_len > SRV_IDENTITY_BYTES
                       ? SRV_IDENTITY_BYTES
                       : 0;
    char *idem = r->idem_len > 0
                     ? srv_pct_encode(r->idem + scope, r->idem_len - scope)
                     : NULL;
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:f, s:o, s:o, s:o, s:o, s:b}",
        "time", time_iso, "client", client, "method",
        srv_method_name(r->method), "target", target, "status",
        (json_int_t)r->status, "bytes_in", (json_int_t)r->bytes_in, "bytes_out",
        (json_int_t)r->bytes_out, "duration_ms", (double)duration_ns / 1e6,
        "etag_sent", string_or_null(r->etag_sent), "etag",
        string_or_null(r->etag_out), "revision",
        string_or_null(r->revision_out), "idempotency_key",
        string_or_null(idem), "replayed", r->replayed);
    char *text, *line = NULL;

    free(idem);
    if (j == NULL)
        return NULL;
    text = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII |
                             JSON_REAL_PRECISION(6));
    json_decref(j);
    if (text != NULL)
        line = format_line("%s\n", text);
    free(text);
    return line;
}

/* A header value for the combined format: '"' and '\\' escaped, control
 * bytes dropped, at most 200 bytes. */
static void quoted(const char *v, char *out, size_t cap)
{
    size_t n = 0;

    for (; v != NULL && *v != '\0' && n + 3 < cap && n < 200; v++) {
        unsigned char ch = (unsigned char)*v;

        if (ch < 0x20 || ch == 0x7f)
            continue;
        if (ch == '"' || ch == '\\')
            out[n++] = '\\';
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    if (n == 0)
        snprintf(out, cap, "-");
}

/* s (malloc'd, freed here) with '"' and '\\' escaped, in a new buffer, or
 * NULL: a field of the combined format cannot end its quotes early. */
static char *escaped(char *s)
{
    char *out = malloc(2 * strlen(s) + 1);
    size_t n = 0;

    for (const char *p = s; out != NULL && *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            out[n++] = '\\';
        out[n++] = *p;
    }
    if (out != NULL)
        out[n] = '\0';
    free(s);
    return out;
}

void srv_access_log_write(struct srv_access_log *l, struct MHD_Connection *c,
                          const struct srv_req *r, uint64_t duration_ns)
{
    char client[64], when[40], ua[256], bytes[24];
    uint64_t now = srv_wall_ns();
    time_t secs = (time_t)(now / 1000000000u);
    struct tm tm;
    char *target, *line;
    ssize_t written;

    if (l == NULL || gmtime_r(&secs, &tm) == NULL)
        return;
    client_of(c, client, sizeof client);
    target = target_of(r);
    if (target != NULL && l->combined)
        target = escaped(target);
    if (target == NULL)
        return;
    if (l->combined) {
        strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
        quoted(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                           MHD_HTTP_HEADER_USER_AGENT),
               ua, sizeof ua);
        snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)r->bytes_out);
        line =
            format_line("%s - - [%s] \"%s %s HTTP/1.1\" %u %s \"-\" \"%s\"\n",
                        client, when, srv_method_name(r->method), target,
                        r->status, r->bytes_out > 0 ? bytes : "-", ua);
    } else {
        size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);

        snprintf(when + n, sizeof when - n, ".%03uZ",
                 (unsigned)(now / 1000000u % 1000u));
        line = json_line(r, client, target, when, duration_ns);
    }
    free(target);
    if (line == NULL)
        return;
    pthread_mutex_lock(&l->lock);
    /* A short or failed write loses a log line, never a request. */
    written = write(l->fd, line, strlen(line));
    (void)written;
    pthread_mutex_unlock(&l->lock);
    free(line);
}
