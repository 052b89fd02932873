/*
 * rmw.c -- a read-modify-write client of etagkv-server that handles 412
 * deterministically, with libcurl.
 *
 *   rmw URL KEY N [MAX_ATTEMPTS]
 *
 * Adds 1 to the decimal counter under /kv/KEY, N times.  Each increment:
 * read (GET: the value and its ETag; 404: 0, absent), write the new value
 * If-Match: that ETag (If-None-Match: * when absent) with Prefer:
 * return=representation.  A 412 is not retried blindly: the client rebases
 * on the state the 412 carries -- the current value and ETag
 * (Preference-Applied), or, with no ETag, an absent key -- without another
 * read, waits a jittered, doubling backoff, and tries again, at most
 * MAX_ATTEMPTS (default 10) times.  The last attempt asks for no
 * representation, so that its 412 body is the diagnosis: the client
 * reports a clear error with it and counts the increment as given up.  Any
 * other status stops it (exit 1).
 *
 * Prints "ok=<increments made> failed=<increments given up>"; exits 0, or
 * 3 when an increment was given up.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

/* One response: status, body (NUL-terminated, truncated to fit), the
 * ETag header ("" when none) and whether Preference-Applied came. */
struct resp {
    long code;
    char body[4096];
    size_t len;
    char etag[64];
    int representation;
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    struct resp *r = ctx;
    size_t take = size * n;

    if (take > sizeof r->body - 1 - r->len)
        take = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, p, take);
    r->len += take;
    r->body[r->len] = '\0';
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    struct resp *r = ctx;
    size_t len = size * n;

    if (len > 19 && strncasecmp(p, "Preference-Applied:", 19) == 0)
        r->representation = 1;
    if (len > 5 && strncasecmp(p, "ETag:", 5) == 0) {
        size_t i = 5, end = len;

        while (i < end && (p[i] == ' ' || p[i] == '\t'))
            i++;
        while (end > i &&
               (p[end - 1] == '\r' || p[end - 1] == '\n' || p[end - 1] == ' '))
            end--;
        if (end - i < sizeof r->etag) {
            memcpy(r->etag, p + i, end - i);
            r->etag[end - i] = '\0';
        }
    }
    return len;
}

/* One request on h: method, url, up to two extra header lines (or NULL),
 * a body (or NULL).  Returns 0, or -1 on a transport error (reported). */
static int request(CURL *h, const char *method, const char *url,
                   const char *header, const char *header2, const char *body,
                   struct resp *r)
{
    struct curl_slist *list = NULL;
    CURLcode err;

    memset(r, 0, sizeof *r);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    if (header != NULL)
        list = curl_slist_append(list, header);
    if (header2 != NULL)
        list = curl_slist_append(list, header2);
    if (body != NULL) {
        list = curl_slist_append(list, "Content-Type: text/plain");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    err = curl_easy_perform(h);
    curl_slist_free_all(list);
    if (err != CURLE_OK) {
        fprintf(stderr, "rmw: %s %s: %s\n", method, url,
                curl_easy_strerror(err));
        return -1;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->code);
    return 0;
}

/* GET the counter into *value and etag ("" when absent).  0 or -1. */
static int read_state(CURL *h, const char *url, long long *value, char *etag)
{
    struct resp r;

    if (request(h, "GET", url, NULL, NULL, NULL, &r) != 0)
        return -1;
    if (r.code == 404) {
        *value = 0;
        etag[0] = '\0';
        return 0;
    }
    if (r.code != 200) {
        fprintf(stderr, "rmw: GET %s: %ld\n", url, r.code);
        return -1;
    }
    *value = strtoll(r.body, NULL, 10);
    strcpy(etag, r.etag);
    return 0;
}

/* Sleep a random time in [0, 2^attempt * 5 ms), capped near 1.3 s ("full
 * jitter"), so that copies that collided do not collide again in step. */
static void backoff(int attempt)
{
    long cap_ms = 5L << (attempt < 8 ? attempt : 8);
    long ms = rand() % cap_ms;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Rebase *value and etag on the 412 r: its representation when the server
 * applied the preference; no ETag is an absent key; a key that exists
 * without a representation (the server had no memory to spare for it) is
 * read again.  0 or -1. */
static int rebase(CURL *h, const char *url, const struct resp *r,
                  long long *value, char *etag)
{
    if (r->representation) {
        *value = strtoll(r->body, NULL, 10);
        strcpy(etag, r->etag);
        return 0;
    }
    if (r->etag[0] == '\0') {
        *value = 0;
        etag[0] = '\0';
        return 0;
    }
    return read_state(h, url, value, etag);
}

/* The text of member name in a 412 body, for the error message ("?" when
 * absent): enough of JSON for a string or number member. */
static void member(const char *body, const char *name, char *out, size_t cap)
{
    char pat[64];
    const char *p;
    size_t n = 0;

    snprintf(pat, sizeof pat, "\"%s\":", name);
    p = strstr(body, pat);
    snprintf(out, cap, "?");
    if (p == NULL)
        return;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p == '"')
        p++;
    while (p[n] != '\0' && p[n] != '"' && p[n] != ',' && p[n] != '\n' &&
           n + 1 < cap)
        n++;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* One increment: 1 made, 0 given up, -1 error. */
static int increment(CURL *h, const char *url, int max_attempts)
{
    char etag[64], cond[96], body[32], decided[32], age[32];
    long long value;
    struct resp r;

    if (read_state(h, url, &value, etag) != 0)
        return -1;
    for (int attempt = 1;; attempt++) {
        if (etag[0] != '\0')
            snprintf(cond, sizeof cond, "If-Match: %s", etag);
        else
            snprintf(cond, sizeof cond, "If-None-Match: *");
        snprintf(body, sizeof body, "%lld", value + 1);
        /* The last attempt's 412 is reported, not rebased on: its
         * diagnosis is worth more than the representation. */
        if (request(h, "PUT", url, cond,
                    attempt < max_attempts ? "Prefer: return=representation"
                                           : "Prefer: return=minimal",
                    body, &r) != 0)
            return -1;
        if (r.code == 200 || r.code == 201)
            return 1;
        if (r.code != 412) {
            fprintf(stderr, "rmw: PUT %s: %ld %s\n", url, r.code, r.body);
            return -1;
        }
        if (attempt >= max_attempts) {
            member(r.body, "decided_by", decided, sizeof decided);
            member(r.body, "age_ms", age, sizeof age);
            fprintf(stderr,
                    "rmw: %s: gave up after %d attempts (412: %s false; "
                    "sent ETag superseded %s ms before)\n",
                    url, max_attempts, decided, age);
            return 0;
        }
        if (rebase(h, url, &r, &value, etag) != 0)
            return -1;
        backoff(attempt);
    }
}

int main(int argc, char **argv)
{
    char url[1024];
    long n, ok = 0, failed = 0;
    int max_attempts;
    CURL *h;

    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: rmw URL KEY N [MAX_ATTEMPTS]\n");
        return 2;
    }
    snprintf(url, sizeof url, "%s/kv/%s", argv[1], argv[2]);
    n = strtol(argv[3], NULL, 10);
    max_attempts = argc == 5 ? atoi(argv[4]) : 10;
    /* Copies started in the same second must not share their jitter. */
    srand((unsigned)time(NULL) ^ ((unsigned)getpid() << 16));
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    h = curl_easy_init();
    if (h == NULL)
        return 1;
    for (long i = 0; i < n; i++) {
        int rc = increment(h, url, max_attempts);

        if (rc < 0) {
            curl_easy_cleanup(h);
            return 1;
        }
        if (rc > 0)
            ok++;
        else
            failed++;
    }
    curl_easy_cleanup(h);
    curl_global_cleanup();
    printf("ok=%ld failed=%ld\n", ok, failed);
    return failed > 0 ? 3 : 0;
}
