/*
 * test_server.c -- etagkv-server over real HTTP.
 *
 * Each test starts the real binary (ETAGKV_SERVER_BIN, through
 * tests/server/httputil.c) with a fresh data directory on a free loopback port
 * (--listen 127.0.0.1:0; the port is read from its first line of output), talks
 * to it with libcurl, and stops it with SIGTERM, asserting exit status 0.  The
 * rules themselves are proven exhaustively by test_cond and test_store; here
 * each DESIGN §2 rule and each reachable DESIGN §3 outcome is shown once over
 * the wire, with its headers and problem body.
 *
 * Not tested here: 409, which only POST /txn answers (test_txn_http; a
 * duplicate Idempotency-Key waits instead).  507 is
 * reached through a full disk (a file size limit); the map ceiling and a
 * full idempotency table have no server option and are covered in the
 * library (test_mapsize, test_idem).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "httputil.h"
#include "testutil.h"

#ifndef ETAGKV_SERVER_BIN
#error "ETAGKV_SERVER_BIN must name the etagkv-server binary"
#endif

/* The value limit of the default fixture, small so 413 is cheap. */
#define LIMIT 4096

/* Generous, for the sanitizer build under the load tests. */
#define REQUEST_TIMEOUT_S 60

/* ---- the server process -------------------------------------------------- */

/* The options of a restart on the same data: durable (no --nosync) and
 * with the default value limit. */
static const char *const restart_opts[] = {"--threads", "4", NULL};

static struct hu_fixture fx;

static void setup(void)
{
    static const char *const opts[] = {
        "--threads", "4", "--max-value-bytes", "4096", "--nosync", NULL};

    hu_fixture_init(&fx);
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
}

/* Fixture for the tcases whose test starts its own server. */
static void own_setup(void)
{
    hu_fixture_init(&fx);
}

static void teardown(void)
{
    hu_fixture_stop(&fx);
}

/* ---- HTTP with libcurl --------------------------------------------------- */

/* A request with the fixture's handle and server; transport errors fail
 * the test. */
static void http(struct hu_resp *r, const char *method, const char *path,
                 const char *const *headers, const char *body)
{
    struct hu_req q = {method, path, headers, body, body ? strlen(body) : 0};

    hu_perform(fx.ua, fx.srv.port, &q, r, REQUEST_TIMEOUT_S);
    ck_assert_msg(r->err == CURLE_OK, "%s %s: %s", method, path,
                  curl_easy_strerror(r->err));
}

struct upload {
    const char *p;
    size_t left;
};

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    struct upload *u = ud;
    size_t k = size * n < u->left ? size * n : u->left;

    memcpy(buf, u->p, k);
    u->p += k;
    u->left -= k;
    return k;
}

/* PUT len bytes of body to path with the fixture's handle, as an upload of
 * unknown size, which libcurl sends with Transfer-Encoding: chunked.  A
 * transport error is left in r->err for the caller to judge. */
static void put_chunked(struct hu_resp *r, const char *path, const char *body,
                        size_t len)
{
    struct hu_req q = {"PUT", path, NULL, NULL, 0};
    struct upload up = {body, len};
    struct hu_call call;

    ck_assert_int_eq(
        hu_prepare(&call, fx.ua, fx.srv.port, &q, r, REQUEST_TIMEOUT_S), 0);
    curl_easy_setopt(fx.ua, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(fx.ua, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(fx.ua, CURLOPT_READDATA, &up);
    hu_finish(&call, curl_easy_perform(fx.ua));
}

/* PUT body to path with optional headers; returns the status and copies
 * the new ETag (if any) into etag. */
static long put(const char *path, const char *body, const char *const *hdrs,
                char etag[ETAGKV_ETAG_SIZE])
{
    struct hu_resp r;
    long code;

    http(&r, "PUT", path, hdrs, body);
    code = r.code;
    if (etag != NULL) {
        const char *e = hu_hdr(&r, "ETag");

        snprintf(etag, ETAGKV_ETAG_SIZE, "%s", e != NULL ? e : "");
    }
    hu_resp_free(&r);
    return code;
}

static long status_of(const char *method, const char *path,
                      const char *const *hdrs)
{
    struct hu_resp r;
    long code;

    http(&r, method, path, hdrs, NULL);
    code = r.code;
    hu_resp_free(&r);
    return code;
}

/* The body of r as JSON (NUL escapes allowed); fails the test otherwise. */
static json_t *body_json(const struct hu_resp *r)
{
    json_error_t err;
    json_t *j = json_loadb(r->body != NULL ? r->body : "", r->len,
                           JSON_ALLOW_NUL, &err);

    ck_assert_msg(j != NULL, "not JSON (%s): %.*s", err.text, (int)r->len,
                  r->body != NULL ? r->body : "");
    return j;
}

/* Assert r is an RFC 9457 problem with the given status; returns the
 * parsed body (json_decref it). */
static json_t *assert_problem(const struct hu_resp *r, long status)
{
    json_t *j;
    const char *type;

    ck_assert_int_eq(r->code, status);
    ck_assert_ptr_nonnull(hu_hdr(r, "Content-Type"));
    ck_assert_str_eq(hu_hdr(r, "Content-Type"), "application/problem+json");
    j = body_json(r);
    type = json_string_value(json_object_get(j, "type"));
    ck_assert_ptr_nonnull(type);
    ck_assert_int_eq(strncmp(type, "urn:etagkv:problem:", 19), 0);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "title")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), status);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "detail")));
    return j;
}

static const char *jstr(json_t *j, const char *member)
{
    const char *s = json_string_value(json_object_get(j, member));

    ck_assert_msg(s != NULL, "member %s is not a string", member);
    return s;
}

/* "If-Match: <etag>" style header lines in a caller buffer. */
static const char *line(char *buf, size_t cap, const char *name,
                        const char *value)
{
    snprintf(buf, cap, "%s: %s", name, value);
    return buf;
}

/* The HTTP-date t in IMF-fixdate, RFC 850 or asctime form (RFC 9110
 * §5.6.7), written with strftime in the C locale. */
static void date_form(int64_t t, int form, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    if (form == 0)
        strftime(out, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    else if (form == 1) { /* two-digit year, written by hand */
        size_t n = strftime(out, cap, "%A, %d-%b-", &tm);

        snprintf(out + n, cap - n, "%02d %02d:%02d:%02d GMT", tm.tm_year % 100,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
    } else
        strftime(out, cap, "%a %b %e %H:%M:%S %Y", &tm);
}

/* Last-Modified of r as seconds. */
static int64_t last_modified(const struct hu_resp *r)
{
    const char *lm = hu_hdr(r, "Last-Modified");
    int64_t t = 0;

    ck_assert_ptr_nonnull(lm);
    ck_assert_int_eq(etagkv_httpdate_parse(lm, strlen(lm), &t), ETAGKV_OK);
    return t;
}

/* ---- reads, writes and their headers (DESIGN §1, §5) --------------------- */

START_TEST(get_after_put_returns_value_with_validators_and_revision_headers)
{
    static const char *const ct[] = {"Content-Type: text/plain", NULL};
    char etag[ETAGKV_ETAG_SIZE], want[ETAGKV_ETAG_SIZE];
    struct hu_resp r;

    ck_assert_int_eq(put("/kv/greeting", "hello", ct, etag), 201);
    etagkv_etag_compute("hello", 5, want);
    ck_assert_str_eq(etag, want); /* anyone can compute it (DESIGN §1) */
    http(&r, "GET", "/kv/greeting", NULL, NULL);
    ck_assert_int_eq(r.code, 200);
    ck_assert_uint_eq(r.len, 5);
    ck_assert_int_eq(memcmp(r.body, "hello", 5), 0);
    ck_assert_str_eq(hu_hdr(&r, "ETag"), want);
    ck_assert_str_eq(hu_hdr(&r, "Content-Type"), "text/plain");
    ck_assert_str_eq(hu_hdr(&r, "Cache-Control"), "no-cache");
    ck_assert_ptr_nonnull(hu_hdr(&r, "Date"));
    ck_assert_ptr_nonnull(hu_hdr(&r, "Last-Modified"));
    ck_assert_str_eq(hu_hdr(&r, "ETagKV-Revision"), "1");
    ck_assert_str_eq(hu_hdr(&r, "ETagKV-Create-Revision"), "1");
    ck_assert_str_eq(hu_hdr(&r, "ETagKV-Version"), "1");
    hu_resp_free(&r);
}
END_TEST

START_TEST(put_is_201_with_location_when_new_and_200_when_replacing)
{
    char e1[ETAGKV_ETAG_SIZE];
    struct hu_resp r;

    http(&r, "PUT", "/kv/a%20b", NULL, "one");
    ck_assert_int_eq(r.code, 201);
    ck_assert_str_eq(hu_hdr(&r, "Location"), "/kv/a%20b");
    ck_assert_ptr_nonnull(hu_hdr(&r, "Last-Modified"));
    snprintf(e1, sizeof e1, "%s", hu_hdr(&r, "ETag"));
    hu_resp_free(&r);
    http(&r, "PUT", "/kv/a%20b", NULL, "two");
    ck_assert_int_eq(r.code, 200);
    ck_assert_ptr_null(hu_hdr(&r, "Location"));
    ck_assert_str_ne(hu_hdr(&r, "ETag"), e1);
    ck_assert_str_eq(hu_hdr(&r, "ETagKV-Version"), "2");
    ck_assert_str_eq(hu_hdr(&r, "ETagKV-Create-Revision"), "1");
    ck_assert_str_eq(hu_hdr(&r, "ETagKV-Revision"), "2");
    hu_resp_free(&r);
}
END_TEST

START_TEST(content_type_is_stored_defaults_and_bad_one_is_400)
{
    static const char *const json_ct[] = {
        "Content-Type: application/json; charset=utf-8", NULL};
    char long_ct[400];
    const char *bad[2] = {long_ct, NULL};
    struct hu_resp r;
    json_t *j;

    ck_assert_int_eq(put("/kv/j", "{}", json_ct, NULL), 201);
    ck_assert_int_eq(put("/kv/d", "x", NULL, NULL), 201);
    http(&r, "GET", "/kv/j", NULL, NULL);
    ck_assert_str_eq(hu_hdr(&r, "Content-Type"),
                     "application/json; charset=utf-8");
    hu_resp_free(&r);
    http(&r, "GET", "/kv/d", NULL, NULL);
    ck_assert_str_eq(hu_hdr(&r, "Content-Type"), "application/octet-stream");
    hu_resp_free(&r);
    /* Longer than ETAGKV_CONTENT_TYPE_MAX: refused, nothing written. */
    memset(long_ct, 'a', sizeof long_ct - 1);
    long_ct[sizeof long_ct - 1] = '\0';
    memcpy(long_ct, "Content-Type: x/", 16);
    http(&r, "PUT", "/kv/ct", bad, "x");
    j = assert_problem(&r, 400);
    json_decref(j);
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("GET", "/kv/ct", NULL), 404);
}
END_TEST

START_TEST(head_has_the_headers_and_content_length_but_no_body)
{
    struct hu_resp r;

    ck_assert_int_eq(put("/kv/h", "0123456789", NULL, NULL), 201);
    http(&r, "HEAD", "/kv/h", NULL, NULL);
    ck_assert_int_eq(r.code, 200);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_str_eq(hu_hdr(&r, "Content-Length"), "10");
    ck_assert_ptr_nonnull(hu_hdr(&r, "ETag"));
    ck_assert_ptr_nonnull(hu_hdr(&r, "Last-Modified"));
    ck_assert_str_eq(hu_hdr(&r, "Cache-Control"), "no-cache");
    ck_assert_str_eq(hu_hdr(&r, "Content-Type"), "application/octet-stream");
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("HEAD", "/kv/nothing", NULL), 404);
}
END_TEST

START_TEST(delete_is_204_then_get_and_delete_are_404)
{
    struct hu_resp r;
    json_t *j;

    ck_assert_int_eq(put("/kv/gone", "x", NULL, NULL), 201);
    http(&r, "DELETE", "/kv/gone", NULL, NULL);
    ck_assert_int_eq(r.code, 204);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_str_eq(hu_hdr(&r, "ETagKV-Revision"), "2");
    hu_resp_free(&r);
    http(&r, "GET", "/kv/gone", NULL, NULL);
    j = assert_problem(&r, 404);
    ck_assert_str_eq(jstr(j, "code"), "NOT_FOUND");
    json_decref(j);
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("DELETE", "/kv/gone", NULL), 404);
}
END_TEST

START_TEST(empty_value_round_trips)
{
    char etag[ETAGKV_ETAG_SIZE], want[ETAGKV_ETAG_SIZE];
    struct hu_resp r;

    ck_assert_int_eq(put("/kv/empty", "", NULL, etag), 201);
    etagkv_etag_compute(NULL, 0, want);
    ck_assert_str_eq(etag, want);
    http(&r, "GET", "/kv/empty", NULL, NULL);
    ck_assert_int_eq(r.code, 200);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_str_eq(hu_hdr(&r, "Content-Length"), "0");
    hu_resp_free(&r);
}
END_TEST

/* ---- keys: percent-decoding and round trips ------------------------------ */

/* PUT under the encoded path, GET it back, and find the key in the listing
 * with "key" (the raw bytes, or null when they are not UTF-8) and
 * "key_pct". */
static void round_trip(const char *path, const char *raw, size_t raw_len,
                       const char *pct, int utf8)
{
    char list_path[1200];
    struct hu_resp r;
    json_t *j, *e, *k;

    ck_assert_int_eq(put(path, path, NULL, NULL), 201);
    http(&r, "GET", path, NULL, NULL);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.body, path);
    hu_resp_free(&r);
    snprintf(list_path, sizeof list_path, "/kv/?prefix=%s", pct);
    http(&r, "GET", list_path, NULL, NULL);
    ck_assert_int_eq(r.code, 200);
    j = body_json(&r);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "keys")), 1);
    e = json_array_get(json_object_get(j, "keys"), 0);
    ck_assert_str_eq(jstr(e, "key_pct"), pct);
    k = json_object_get(e, "key");
    if (utf8) {
        ck_assert_uint_eq(json_string_length(k), raw_len);
        ck_assert_int_eq(memcmp(json_string_value(k), raw, raw_len), 0);
    } else {
        ck_assert(json_is_null(k));
    }
    json_decref(j);
    hu_resp_free(&r);
}

START_TEST(keys_with_slash_space_nul_utf8_and_binary_bytes_round_trip)
{
    round_trip("/kv/dir/sub/leaf", "dir/sub/leaf", 12, "dir/sub/leaf", 1);
    round_trip("/kv/with%20space", "with space", 10, "with%20space", 1);
    round_trip("/kv/nul%00byte", "nul\0byte", 8, "nul%00byte", 1);
    round_trip("/kv/%C3%BCn%C3%AF%E2%9C%93", "\xC3\xBCn\xC3\xAF\xE2\x9C\x93", 8,
               "%C3%BCn%C3%AF%E2%9C%93", 1);
    round_trip("/kv/bin%FF%FE", "bin\xFF\xFE", 5, "bin%FF%FE", 0);
    /* Escapes are case-insensitive and %2F is the same key as '/'. */
    ck_assert_int_eq(status_of("GET", "/kv/%c3%bcn%c3%af%e2%9c%93", NULL), 200);
    ck_assert_int_eq(status_of("GET", "/kv/dir%2Fsub%2Fleaf", NULL), 200);
}
END_TEST

START_TEST(key_of_511_bytes_is_accepted_and_512_bytes_is_414)
{
    char path[4 + 3 * 512 + 1];
    struct hu_resp r;
    json_t *j;

    memcpy(path, "/kv/", 4);
    memset(path + 4, 'k', 511);
    path[4 + 511] = '\0';
    ck_assert_int_eq(put(path, "x", NULL, NULL), 201);
    path[4 + 511] = 'k';
    path[4 + 512] = '\0';
    http(&r, "PUT", path, NULL, "x");
    j = assert_problem(&r, 414);
    ck_assert_str_eq(jstr(j, "code"), "KEY_TOO_LONG");
    json_decref(j);
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("GET", path, NULL), 414);
    /* The limit is on decoded bytes: 511 escapes are fine. */
    {
        int i;

        for (i = 0; i < 511; i++)
            memcpy(path + 4 + 3 * i, "%41", 3);
        path[4 + 3 * 511] = '\0';
        ck_assert_int_eq(put(path, "y", NULL, NULL), 201);
    }
}
END_TEST

START_TEST(invalid_percent_encoding_and_empty_key_are_400)
{
    static const char *const bad[] = {"/kv/a%zz", "/kv/a%4", "/kv/%",
                                      "/kv/%g0x"};
    struct hu_resp r;
    json_t *j;
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        http(&r, "PUT", bad[i], NULL, "x");
        j = assert_problem(&r, 400);
        ck_assert_str_eq(jstr(j, "type"),
                         "urn:etagkv:problem:invalid-percent-encoding");
        json_decref(j);
        hu_resp_free(&r);
    }
    http(&r, "PUT", "/kv/", NULL, "x");
    j = assert_problem(&r, 400);
    ck_assert_str_eq(jstr(j, "code"), "INVALID_KEY");
    json_decref(j);
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("DELETE", "/kv/", NULL), 400);
    ck_assert_int_eq(status_of("DELETE", "/kv", NULL), 400);
    /* Nothing was written by any of them. */
    http(&r, "GET", "/kv/", NULL, NULL);
    ck_assert_str_eq(r.body, "{\n  \"revision\": 0,\n  \"keys\": [],\n  "
                             "\"next\": null\n}");
    hu_resp_free(&r);
}
END_TEST

/* ---- routes and methods -------------------------------------------------- */

START_TEST(unknown_path_is_404_problem_and_healthz_is_200)
{
    struct hu_resp r;
    json_t *j;

    http(&r, "GET", "/nope", NULL, NULL);
    j = assert_problem(&r, 404);
    ck_assert_str_eq(jstr(j, "type"), "urn:etagkv:problem:no-such-resource");
    json_decref(j);
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("GET", "/", NULL), 404);
    ck_assert_int_eq(status_of("GET", "/kvx", NULL), 404);
    http(&r, "GET", "/healthz", NULL, NULL);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.body, "ok\n");
    hu_resp_free(&r);
}
END_TEST

START_TEST(unknown_method_is_405_with_allow_and_writes_nothing)
{
    struct hu_resp r;
    json_t *j;

    http(&r, "POST", "/kv/x", NULL, "body");
    j = assert_problem(&r, 405);
    ck_assert_str_eq(hu_hdr(&r, "Allow"), "GET, HEAD, PUT, DELETE");
    json_decref(j);
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("PATCH", "/kv/x", NULL), 405);
    ck_assert_int_eq(status_of("GET", "/kv/x", NULL), 404);
    http(&r, "POST", "/healthz", NULL, NULL);
    ck_assert_int_eq(r.code, 405);
    ck_assert_str_eq(hu_hdr(&r, "Allow"), "GET, HEAD");
    hu_resp_free(&r);
    http(&r, "DELETE", "/metrics", NULL, NULL);
    ck_assert_int_eq(r.code, 405);
    ck_assert_str_eq(hu_hdr(&r, "Allow"), "GET, HEAD");
    hu_resp_free(&r);
    http(&r, "POST", "/kv/", NULL, "x");
    ck_assert_int_eq(r.code, 405);
    ck_assert_str_eq(hu_hdr(&r, "Allow"), "GET, HEAD");
    hu_resp_free(&r);
}
END_TEST

/* Responses are queued after the headers call, so even refusals keep a
 * keep-alive connection when the request has no body; a refusal of a
 * request with a body is sent before the body and closes it. */
START_TEST(bodiless_requests_keep_the_connection_even_when_refused)
{
    static const char *const bad_tag[] = {"If-Match: junk", NULL};
    static const char *const paths[] = {"/kv/missing", "/nope", "/kv/a%zz",
                                        "/kv/?limit=0", "/healthz"};
    struct hu_resp r;
    size_t i;

    http(&r, "GET", "/healthz", NULL, NULL); /* opens the connection */
    hu_resp_free(&r);
    for (i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        http(&r, "GET", paths[i], NULL, NULL);
        ck_assert_msg(r.connects == 0, "%s opened a new connection", paths[i]);
        hu_resp_free(&r);
    }
    http(&r, "GET", "/kv/k", bad_tag, NULL);
    ck_assert_int_eq(r.code, 400);
    ck_assert_int_eq(r.connects, 0);
    hu_resp_free(&r);
    http(&r, "PATCH", "/kv/k", NULL, NULL);
    ck_assert_int_eq(r.code, 405);
    ck_assert_int_eq(r.connects, 0);
    hu_resp_free(&r);
    http(&r, "POST", "/kv/k", NULL, "body");
    ck_assert_int_eq(r.code, 405);
    ck_assert_str_eq(hu_hdr(&r, "Connection"), "close");
    hu_resp_free(&r);
}
END_TEST

/* ---- 413: the value limit ------------------------------------------------ */

static char *filled(size_t n)
{
    char *p = malloc(n + 1);

    ck_assert_ptr_nonnull(p);
    memset(p, 'v', n);
    p[n] = '\0';
    return p;
}

START_TEST(body_over_limit_by_content_length_is_413_and_writes_nothing)
{
    static const char *const no_expect[] = {"Expect:", NULL};
    static const char *const expect[] = {"Expect: 100-continue", NULL};
    char *big = filled(LIMIT + 1);
    struct hu_resp r;
    json_t *j;

    /* Refused from Content-Length, before the body is read. */
    http(&r, "PUT", "/kv/big", expect, big);
    j = assert_problem(&r, 413);
    ck_assert_str_eq(jstr(j, "code"), "VALUE_TOO_LARGE");
    json_decref(j);
    hu_resp_free(&r);
    http(&r, "PUT", "/kv/big", no_expect, big);
    j = assert_problem(&r, 413);
    json_decref(j);
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("GET", "/kv/big", NULL), 404);
    /* Exactly the limit is fine. */
    big[LIMIT] = '\0';
    ck_assert_int_eq(put("/kv/big", big, NULL, NULL), 201);
    free(big);
}
END_TEST

START_TEST(chunked_body_growing_over_limit_is_413_and_writes_nothing)
{
    char *big = filled(3 * LIMIT);
    struct hu_resp r;
    json_t *j;

    put_chunked(&r, "/kv/chunky", big, 3 * LIMIT);
    ck_assert_int_eq(r.err, CURLE_OK);
    j = assert_problem(&r, 413);
    json_decref(j);
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("GET", "/kv/chunky", NULL), 404);
    /* A chunked body within the limit is stored. */
    put_chunked(&r, "/kv/chunky", big, LIMIT);
    ck_assert_int_eq(r.err, CURLE_OK);
    ck_assert_int_eq(r.code, 201);
    hu_resp_free(&r);
    http(&r, "GET", "/kv/chunky", NULL, NULL);
    ck_assert_uint_eq(r.len, LIMIT);
    hu_resp_free(&r);
    free(big);
}
END_TEST

/* ---- preconditions over HTTP (DESIGN §2) --------------------------------- */

/* PUT the key "k" = "v1"; returns the response (free it) for its ETag and
 * Last-Modified. */
static void put_k(struct hu_resp *r)
{
    http(r, "PUT", "/kv/k", NULL, "v1");
    ck_assert_int_eq(r->code, 201);
}

START_TEST(get_if_none_match_current_is_304_with_etag_and_no_body)
{
    char h1[128], h2[128], h3[128];
    const char *inm[2] = {h1, NULL}, *weak[2] = {h2, NULL},
               *list[2] = {h3, NULL};
    struct hu_resp w, r;

    put_k(&w);
    line(h1, sizeof h1, "If-None-Match", hu_hdr(&w, "ETag"));
    http(&r, "GET", "/kv/k", inm, NULL);
    ck_assert_int_eq(r.code, 304);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_str_eq(hu_hdr(&r, "ETag"), hu_hdr(&w, "ETag"));
    ck_assert_str_eq(hu_hdr(&r, "Last-Modified"), hu_hdr(&w, "Last-Modified"));
    ck_assert_str_eq(hu_hdr(&r, "Cache-Control"), "no-cache");
    /* The type too, so that a cache refreshing from the 304 keeps it
     * (test: a_304_carries_the_current_content_type). */
    ck_assert_str_eq(hu_hdr(&r, "Content-Type"), "application/octet-stream");
    hu_resp_free(&r);
    /* If-None-Match compares weakly: W/ matches too (RFC 9110 §13.1.2). */
    snprintf(h2, sizeof h2, "If-None-Match: W/%s", hu_hdr(&w, "ETag"));
    ck_assert_int_eq(status_of("GET", "/kv/k", weak), 304);
    snprintf(h3, sizeof h3, "If-None-Match: \"other\", , %s",
             hu_hdr(&w, "ETag"));
    ck_assert_int_eq(status_of("GET", "/kv/k", list), 304);
    snprintf(h3, sizeof h3, "If-None-Match: \"other\"");
    ck_assert_int_eq(status_of("GET", "/kv/k", list), 200);
    hu_resp_free(&w);
}
END_TEST

/* The ETag hashes the bytes only, so a PUT of the same bytes with another
 * type keeps it; a 304 then carries the new type, for a cache that
 * refreshes its stored response from the 304 (RFC 9111 §4.3.4). */
START_TEST(a_304_carries_the_current_content_type)
{
    static const char *const text[] = {"Content-Type: text/plain", NULL};
    static const char *const html[] = {"Content-Type: text/html", NULL};
    char e1[ETAGKV_ETAG_SIZE], e2[ETAGKV_ETAG_SIZE], h[128];
    const char *inm[2] = {h, NULL};
    struct hu_resp r;

    ck_assert_int_eq(put("/kv/doc", "same", text, e1), 201);
    ck_assert_int_eq(put("/kv/doc", "same", html, e2), 200);
    ck_assert_str_eq(e1, e2);
    line(h, sizeof h, "If-None-Match", e1);
    http(&r, "GET", "/kv/doc", inm, NULL);
    ck_assert_int_eq(r.code, 304);
    ck_assert_str_eq(hu_hdr(&r, "Content-Type"), "text/html");
    hu_resp_free(&r);
    http(&r, "HEAD", "/kv/doc", inm, NULL);
    ck_assert_int_eq(r.code, 304);
    ck_assert_str_eq(hu_hdr(&r, "Content-Type"), "text/html");
    hu_resp_free(&r);
}
END_TEST

START_TEST(head_if_none_match_star_is_304_with_etag_and_no_body)
{
    static const char *const star[] = {"If-None-Match: *", NULL};
    struct hu_resp w, r;

    put_k(&w);
    http(&r, "HEAD", "/kv/k", star, NULL);
    ck_assert_int_eq(r.code, 304);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_str_eq(hu_hdr(&r, "ETag"), hu_hdr(&w, "ETag"));
    ck_assert_str_eq(hu_hdr(&r, "Cache-Control"), "no-cache");
    hu_resp_free(&r);
    hu_resp_free(&w);
}
END_TEST

START_TEST(if_modified_since_equal_second_is_304_in_all_three_date_forms)
{
    char h[128], date[64];
    const char *ims[2] = {h, NULL};
    struct hu_resp w;
    int64_t lm;
    int form;

    put_k(&w);
    lm = last_modified(&w);
    for (form = 0; form < 3; form++) {
        date_form(lm, form, date, sizeof date);
        line(h, sizeof h, "If-Modified-Since", date);
        ck_assert_msg(status_of("GET", "/kv/k", ims) == 304, "form %d: %s",
                      form, date);
        ck_assert_int_eq(status_of("HEAD", "/kv/k", ims), 304);
    }
    /* One second earlier: modified since, so 200. */
    date_form(lm - 1, 0, date, sizeof date);
    line(h, sizeof h, "If-Modified-Since", date);
    ck_assert_int_eq(status_of("GET", "/kv/k", ims), 200);
    hu_resp_free(&w);
}
END_TEST

START_TEST(invalid_dates_are_ignored_not_errors)
{
    static const char *const ims[] = {"If-Modified-Since: yesterday", NULL};
    static const char *const ius[] = {
        "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 XYZ", NULL};
    struct hu_resp w;

    put_k(&w);
    ck_assert_int_eq(status_of("GET", "/kv/k", ims), 200);
    ck_assert_int_eq(put("/kv/k", "v2", ius, NULL), 200);
    hu_resp_free(&w);
}
END_TEST

START_TEST(if_modified_since_is_ignored_when_if_none_match_is_present)
{
    char h[128];
    const char *both[3] = {"If-None-Match: \"not-it\"", h, NULL};
    struct hu_resp w;

    put_k(&w);
    /* Alone, this If-Modified-Since would give 304 (RFC 9110 §13.2.2 step
     * 4 only applies when If-None-Match is absent). */
    line(h, sizeof h, "If-Modified-Since", hu_hdr(&w, "Last-Modified"));
    ck_assert_int_eq(status_of("GET", "/kv/k", both + 1), 304);
    ck_assert_int_eq(status_of("GET", "/kv/k", both), 200);
    hu_resp_free(&w);
}
END_TEST

/* Assert r is the 412 of DESIGN §3 for key "k" whose current ETag is etag
 * (NULL: absent). */
static void assert_412_state(const struct hu_resp *r, const char *etag)
{
    json_t *j = assert_problem(r, 412);

    ck_assert_str_eq(jstr(j, "code"), "PRECONDITION_FAILED");
    ck_assert_str_eq(jstr(j, "key"), "k");
    ck_assert_str_eq(jstr(j, "key_pct"), "k");
    if (etag != NULL) {
        ck_assert_str_eq(hu_hdr(r, "ETag"), etag);
        ck_assert(json_is_true(json_object_get(j, "exists")));
        ck_assert_str_eq(jstr(j, "etag"), etag);
        ck_assert_ptr_nonnull(
            json_string_value(json_object_get(j, "last_modified")));
        ck_assert(json_integer_value(json_object_get(j, "mod_revision")) > 0);
    } else {
        ck_assert_ptr_null(hu_hdr(r, "ETag"));
        ck_assert(json_is_false(json_object_get(j, "exists")));
        ck_assert(json_is_null(json_object_get(j, "etag")));
        ck_assert(json_is_null(json_object_get(j, "last_modified")));
        ck_assert(json_is_null(json_object_get(j, "mod_revision")));
    }
    json_decref(j);
}

START_TEST(put_if_match_stale_etag_is_412_with_current_etag_and_problem_body)
{
    char h[128], etag[ETAGKV_ETAG_SIZE];
    const char *im[2] = {h, NULL};
    struct hu_resp w, r;
    json_t *j;

    put_k(&w);
    snprintf(etag, sizeof etag, "%s", hu_hdr(&w, "ETag"));
    line(h, sizeof h, "If-Match", etag);
    ck_assert_int_eq(put("/kv/k", "v2", im, NULL), 200);
    /* etag is stale now. */
    http(&r, "PUT", "/kv/k", im, "v3");
    etagkv_etag_compute("v2", 2, etag);
    assert_412_state(&r, etag);
    j = body_json(&r);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "mod_revision")), 2);
    json_decref(j);
    hu_resp_free(&r);
    http(&r, "GET", "/kv/k", NULL, NULL);
    ck_assert_str_eq(r.body, "v2");
    hu_resp_free(&r);
    hu_resp_free(&w);
}
END_TEST

/* ---- Prefer: return=representation (DESIGN §3) --------------------------- */

static const char *const prefer_repr[] = {"Prefer: return=representation",
                                          NULL};

/* r is the representation of /kv/k holding value, with Content-Type ct. */
static void assert_representation(const struct hu_resp *r, const char *value,
                                  const char *ct)
{
    char etag[ETAGKV_ETAG_SIZE];

    etagkv_etag_compute(value, strlen(value), etag);
    ck_assert_uint_eq(r->len, strlen(value));
    if (r->len > 0)
        ck_assert_mem_eq(r->body, value, r->len);
    ck_assert_str_eq(hu_hdr(r, "ETag"), etag);
    ck_assert_str_eq(hu_hdr(r, "Content-Type"), ct);
    ck_assert_ptr_nonnull(hu_hdr(r, "Last-Modified"));
    ck_assert_ptr_nonnull(hu_hdr(r, "ETagKV-Revision"));
    ck_assert_ptr_nonnull(hu_hdr(r, "ETagKV-Version"));
    ck_assert_str_eq(hu_hdr(r, "Content-Location"), "/kv/k");
    ck_assert_str_eq(hu_hdr(r, "Preference-Applied"), "return=representation");
}

START_TEST(put_preferring_the_representation_answers_with_the_stored_one)
{
    const char *hdrs[] = {"Prefer: return=representation",
                          "Content-Type: text/plain", NULL};
    struct hu_resp r;

    http(&r, "PUT", "/kv/k", hdrs, "first");
    ck_assert_int_eq(r.code, 201);
    assert_representation(&r, "first", "text/plain");
    ck_assert_str_eq(hu_hdr(&r, "Location"), "/kv/k");
    hu_resp_free(&r);
    http(&r, "PUT", "/kv/k", hdrs, "");
    ck_assert_int_eq(r.code, 200);
    assert_representation(&r, "", "text/plain");
    ck_assert_str_eq(hu_hdr(&r, "ETagKV-Revision"), "2");
    hu_resp_free(&r);
    /* Without the preference: no content, as before. */
    http(&r, "PUT", "/kv/k", NULL, "third");
    ck_assert_int_eq(r.code, 200);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_ptr_null(hu_hdr(&r, "Preference-Applied"));
    hu_resp_free(&r);
}
END_TEST

START_TEST(a_412_preferring_the_representation_carries_the_current_one)
{
    const char *hdrs[] = {"Prefer: return=representation",
                          "If-Match: \"00000000000000000000000000000000\"",
                          NULL};
    const char *ct[] = {"Content-Type: text/plain", NULL};
    char etag[ETAGKV_ETAG_SIZE];
    struct hu_resp r;

    http(&r, "PUT", "/kv/k", hdrs, "v");
    /* Absent: no representation, so problem+json as without it. */
    assert_412_state(&r, NULL);
    ck_assert_ptr_null(hu_hdr(&r, "Preference-Applied"));
    hu_resp_free(&r);
    ck_assert_int_eq(put("/kv/k", "current", ct, NULL), 201);
    http(&r, "PUT", "/kv/k", hdrs, "mine");
    ck_assert_int_eq(r.code, 412);
    assert_representation(&r, "current", "text/plain");
    ck_assert_str_eq(hu_hdr(&r, "ETagKV-Revision"), "1");
    hu_resp_free(&r);
    /* DELETE ignores the preference. */
    http(&r, "DELETE", "/kv/k", hdrs, NULL);
    etagkv_etag_compute("current", 7, etag);
    assert_412_state(&r, etag);
    ck_assert_ptr_null(hu_hdr(&r, "Preference-Applied"));
    hu_resp_free(&r);
    http(&r, "GET", "/kv/k", NULL, NULL);
    ck_assert_str_eq(r.body, "current");
    hu_resp_free(&r);
}
END_TEST

START_TEST(prefer_lines_combine_unknown_ones_are_ignored_and_the_first_wins)
{
    static const char *const tag =
        "If-Match: \"00000000000000000000000000000000\"";
    const char *several[] = {"Prefer: respond-async, x=\"a,b\"; y",
                             "Prefer: wait=1; z, return=\"representation\"",
                             tag, NULL};
    const char *first_wins[] = {"Prefer: return=minimal",
                                "Prefer: return=representation", tag, NULL};
    const char *lookalike[] = {"Prefer: returns=representation, "
                               "x; return=representation",
                               tag, NULL};
    struct hu_resp r;

    ck_assert_int_eq(put("/kv/k", "v", NULL, NULL), 201);
    http(&r, "PUT", "/kv/k", several, "w");
    ck_assert_int_eq(r.code, 412);
    ck_assert_str_eq(r.body, "v");
    ck_assert_str_eq(hu_hdr(&r, "Preference-Applied"), "return=representation");
    hu_resp_free(&r);
    /* The first return= counts; a parameter is not a preference, nor is
     * a longer name. */
    for (int i = 0; i < 2; i++) {
        http(&r, "PUT", "/kv/k", i == 0 ? first_wins : lookalike, "w");
        ck_assert_int_eq(r.code, 412);
        ck_assert_str_eq(hu_hdr(&r, "Content-Type"),
                         "application/problem+json");
        hu_resp_free(&r);
    }
}
END_TEST

START_TEST(if_match_compares_strongly_so_a_weak_tag_never_matches)
{
    char h[128];
    const char *im[2] = {h, NULL};
    struct hu_resp w, r;

    put_k(&w);
    snprintf(h, sizeof h, "If-Match: W/%s", hu_hdr(&w, "ETag"));
    http(&r, "PUT", "/kv/k", im, "v2");
    assert_412_state(&r, hu_hdr(&w, "ETag"));
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("GET", "/kv/k", im), 412);
    line(h, sizeof h, "If-Match", hu_hdr(&w, "ETag"));
    ck_assert_int_eq(status_of("GET", "/kv/k", im), 200);
    ck_assert_int_eq(put("/kv/k", "v2", im, NULL), 200);
    hu_resp_free(&w);
}
END_TEST

START_TEST(put_if_none_match_star_creates_only_once)
{
    static const char *const create_only[] = {"If-None-Match: *", NULL};
    char etag[ETAGKV_ETAG_SIZE];
    struct hu_resp r;

    ck_assert_int_eq(put("/kv/k", "first", create_only, etag), 201);
    http(&r, "PUT", "/kv/k", create_only, "second");
    assert_412_state(&r, etag);
    hu_resp_free(&r);
    http(&r, "GET", "/kv/k", NULL, NULL);
    ck_assert_str_eq(r.body, "first");
    hu_resp_free(&r);
}
END_TEST

START_TEST(put_if_match_on_missing_key_is_412_and_creates_nothing)
{
    static const char *const tag[] = {
        "If-Match: \"00000000000000000000000000000000\"", NULL};
    static const char *const star[] = {"If-Match: *", NULL};
    struct hu_resp r;

    http(&r, "PUT", "/kv/k", tag, "v");
    assert_412_state(&r, NULL);
    hu_resp_free(&r);
    http(&r, "PUT", "/kv/k", star, "v"); /* update-only */
    assert_412_state(&r, NULL);
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("GET", "/kv/k", NULL), 404);
    ck_assert_int_eq(put("/kv/k", "v", NULL, NULL), 201);
    ck_assert_int_eq(put("/kv/k", "w", star, NULL), 200);
}
END_TEST

START_TEST(get_head_and_delete_of_missing_key_are_404_whatever_the_conditions)
{
    /* RFC 9110 §13.2.1: the unconditional request would not be 2xx. */
    static const char *const im[] = {"If-Match: *", NULL};
    static const char *const inm[] = {"If-None-Match: *", NULL};
    static const char *const ius[] = {
        "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT", NULL};
    struct hu_resp r;
    json_t *j;

    http(&r, "GET", "/kv/none", im, NULL);
    j = assert_problem(&r, 404);
    json_decref(j);
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("HEAD", "/kv/none", im), 404);
    ck_assert_int_eq(status_of("GET", "/kv/none", inm), 404);
    ck_assert_int_eq(status_of("DELETE", "/kv/none", im), 404);
    ck_assert_int_eq(status_of("DELETE", "/kv/none", ius), 404);
}
END_TEST

START_TEST(if_unmodified_since_is_ignored_when_if_match_is_present)
{
    char h1[128], h2[128], date[64];
    const char *both[3] = {h1, h2, NULL};
    struct hu_resp w;

    put_k(&w);
    /* Alone, an If-Unmodified-Since before Last-Modified is 412. */
    date_form(last_modified(&w) - 1, 0, date, sizeof date);
    line(h2, sizeof h2, "If-Unmodified-Since", date);
    ck_assert_int_eq(put("/kv/k", "no", both + 1, NULL), 412);
    line(h1, sizeof h1, "If-Match", hu_hdr(&w, "ETag"));
    ck_assert_int_eq(put("/kv/k", "yes", both, NULL), 200);
    hu_resp_free(&w);
}
END_TEST

START_TEST(put_if_unmodified_since_equal_second_is_200_and_earlier_is_412)
{
    char h[128], date[64];
    const char *ius[2] = {h, NULL};
    struct hu_resp w, r;

    put_k(&w);
    line(h, sizeof h, "If-Unmodified-Since", hu_hdr(&w, "Last-Modified"));
    http(&r, "PUT", "/kv/k", ius, "v2");
    ck_assert_int_eq(r.code, 200);
    /* Against the new Last-Modified, one second earlier fails. */
    date_form(last_modified(&r) - 1, 2, date, sizeof date); /* asctime */
    line(h, sizeof h, "If-Unmodified-Since", date);
    hu_resp_free(&r);
    http(&r, "DELETE", "/kv/k", ius, NULL);
    ck_assert_int_eq(r.code, 412);
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("GET", "/kv/k", NULL), 200);
    hu_resp_free(&w);
}
END_TEST

START_TEST(get_if_match_stale_is_412_with_problem_body)
{
    static const char *const stale[] = {
        "If-Match: \"ffffffffffffffffffffffffffffffff\"", NULL};
    struct hu_resp w, r;

    put_k(&w);
    http(&r, "GET", "/kv/k", stale, NULL);
    assert_412_state(&r, hu_hdr(&w, "ETag"));
    hu_resp_free(&r);
    hu_resp_free(&w);
}
END_TEST

START_TEST(delete_if_match_stale_is_412_and_current_is_204)
{
    static const char *const stale[] = {
        "If-Match: \"ffffffffffffffffffffffffffffffff\"", NULL};
    char h[128];
    const char *cur[2] = {h, NULL};
    struct hu_resp w, r;

    put_k(&w);
    http(&r, "DELETE", "/kv/k", stale, NULL);
    assert_412_state(&r, hu_hdr(&w, "ETag"));
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("GET", "/kv/k", NULL), 200);
    line(h, sizeof h, "If-Match", hu_hdr(&w, "ETag"));
    ck_assert_int_eq(status_of("DELETE", "/kv/k", cur), 204);
    ck_assert_int_eq(status_of("GET", "/kv/k", NULL), 404);
    hu_resp_free(&w);
}
END_TEST

START_TEST(malformed_entity_tag_lists_are_400_and_write_nothing)
{
    static const char *const bad[] = {
        "If-Match: junk",
        "If-Match: \"unterminated",
        "If-None-Match: *, \"a\"",
        "If-Match: W/ \"a\"",
        "If-Match;", /* curl: an empty value */
        "If-None-Match: ,,",
    };
    struct hu_resp r;
    json_t *j;
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *h[2] = {bad[i], NULL};

        http(&r, "PUT", "/kv/k", h, "v");
        j = assert_problem(&r, 400);
        ck_assert_msg(strcmp(jstr(j, "code"), "INVALID_HEADER") == 0, "%s",
                      bad[i]);
        json_decref(j);
        hu_resp_free(&r);
        ck_assert_int_eq(status_of("GET", "/kv/k", h), 400);
    }
    ck_assert_int_eq(status_of("GET", "/kv/k", NULL), 404);
}
END_TEST

START_TEST(several_if_match_lines_form_one_list)
{
    char h2[128];
    const char *lines[3] = {"If-Match: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
                            h2, NULL};
    const char *star_and_tag[3] = {"If-Match: *", h2, NULL};
    struct hu_resp w;

    put_k(&w);
    line(h2, sizeof h2, "If-Match", "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"");
    ck_assert_int_eq(put("/kv/k", "no", lines, NULL), 412);
    line(h2, sizeof h2, "If-Match", hu_hdr(&w, "ETag"));
    ck_assert_int_eq(put("/kv/k", "yes", lines, NULL), 200);
    /* "*" is valid only alone, also across lines. */
    ck_assert_int_eq(put("/kv/k", "no", star_and_tag, NULL), 400);
    hu_resp_free(&w);
}
END_TEST

/* The lines of one field are one list (RFC 9110 §5.3): a line with no
 * element of its own is valid beside one with tags, and still no list
 * beside another like it, or beside "*". */
START_TEST(a_line_without_elements_joins_the_list_of_the_others)
{
    char tag[128], none[128], etag[ETAGKV_ETAG_SIZE];
    const char *tag_then_empty[3] = {tag, "If-Match: ,", NULL};
    const char *empty_then_tag[3] = {"If-Match: , ,", tag, NULL};
    const char *empty_twice[3] = {"If-Match: ,", "If-Match: ,", NULL};
    const char *star_then_empty[3] = {"If-Match: *", "If-Match: ,", NULL};
    const char *inm[3] = {none, "If-None-Match: ,", NULL};
    const char *inm_empty[3] = {"If-None-Match: ,", "If-None-Match: ,", NULL};
    struct hu_resp w;

    put_k(&w);
    line(tag, sizeof tag, "If-Match", hu_hdr(&w, "ETag"));
    hu_resp_free(&w);
    ck_assert_int_eq(put("/kv/k", "one", tag_then_empty, etag), 200);
    line(tag, sizeof tag, "If-Match", etag);
    ck_assert_int_eq(put("/kv/k", "two", empty_then_tag, etag), 200);
    line(none, sizeof none, "If-None-Match", etag);
    ck_assert_int_eq(status_of("GET", "/kv/k", inm), 304);
    ck_assert_int_eq(put("/kv/k", "no", empty_twice, NULL), 400);
    ck_assert_int_eq(put("/kv/k", "no", star_then_empty, NULL), 400);
    ck_assert_int_eq(status_of("GET", "/kv/k", inm_empty), 400);
    http(&w, "GET", "/kv/k", NULL, NULL);
    ck_assert_int_eq(w.code, 200);
    ck_assert_str_eq(w.body, "two");
    hu_resp_free(&w);
}
END_TEST

/* ---- listing ------------------------------------------------------------- */

/* GET path and return the page (json_decref it). */
static json_t *page(const char *path)
{
    struct hu_resp r;
    json_t *j;

    http(&r, "GET", path, NULL, NULL);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(hu_hdr(&r, "Content-Type"), "application/json");
    j = body_json(&r);
    hu_resp_free(&r);
    return j;
}

static const char *key_at(json_t *pg, size_t i)
{
    return jstr(json_array_get(json_object_get(pg, "keys"), i), "key");
}

START_TEST(listing_pages_through_a_prefix_with_after_limit_and_cursor)
{
    char etag[ETAGKV_ETAG_SIZE], path[256];
    json_t *pg, *e;
    int i;

    for (i = 1; i <= 5; i++) {
        snprintf(path, sizeof path, "/kv/p/%d", i);
        ck_assert_int_eq(put(path, "val", NULL, etag), 201);
    }
    ck_assert_int_eq(put("/kv/q/1", "x", NULL, NULL), 201);
    ck_assert_int_eq(put("/kv/p", "x", NULL, NULL), 201);

    pg = page("/kv/?prefix=p/&limit=2");
    ck_assert_uint_eq(json_array_size(json_object_get(pg, "keys")), 2);
    ck_assert_str_eq(key_at(pg, 0), "p/1");
    ck_assert_str_eq(key_at(pg, 1), "p/2");
    e = json_array_get(json_object_get(pg, "keys"), 0);
    ck_assert_str_eq(jstr(e, "etag"), etag); /* same value, same ETag */
    ck_assert_int_eq(json_integer_value(json_object_get(e, "size")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(e, "mod_revision")), 1);
    ck_assert_ptr_nonnull(
        json_string_value(json_object_get(e, "last_modified")));
    ck_assert_str_eq(jstr(pg, "next"), "p/2");
    json_decref(pg);

    pg = page("/kv/?prefix=p/&limit=2&after=p/2");
    ck_assert_str_eq(key_at(pg, 0), "p/3");
    ck_assert_str_eq(key_at(pg, 1), "p/4");
    ck_assert_str_eq(jstr(pg, "next"), "p/4");
    json_decref(pg);

    /* A write between pages does not disturb the cursor. */
    ck_assert_int_eq(put("/kv/p/0", "x", NULL, NULL), 201);
    pg = page("/kv/?prefix=p/&limit=2&after=p/4");
    ck_assert_uint_eq(json_array_size(json_object_get(pg, "keys")), 1);
    ck_assert_str_eq(key_at(pg, 0), "p/5");
    ck_assert(json_is_null(json_object_get(pg, "next")));
    json_decref(pg);

    pg = page("/kv"); /* everything, default limit */
    ck_assert_uint_eq(json_array_size(json_object_get(pg, "keys")), 8);
    ck_assert_str_eq(key_at(pg, 0), "p");
    ck_assert(json_is_null(json_object_get(pg, "next")));
    json_decref(pg);
}
END_TEST

/* '+' in prefix and after is a plus sign, as in a key: libmicrohttpd's own
 * query parsing reads it as a space. */
/* A listing, /changes and /metrics have no validators: a precondition
 * header there is 400, never silently true (it was ignored: a listing
 * with If-Match: "x" answered 200, found by review).  /healthz answers
 * balancers whatever they send. */
START_TEST(conditions_where_nothing_has_a_validator_are_400)
{
    static const char *const conds[] = {
        "If-Match: \"x\"", "If-None-Match: *",
        "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT",
        "If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT",
        "ETagKV-If-Revision: 1"};
    static const char *const paths[] = {"/kv/?prefix=k", "/changes",
                                        "/metrics"};

    for (size_t i = 0; i < sizeof conds / sizeof *conds; i++) {
        const char *const h[] = {conds[i], NULL};

        for (size_t p = 0; p < sizeof paths / sizeof *paths; p++) {
            ck_assert_int_eq(status_of("GET", paths[p], h), 400);
            ck_assert_int_eq(status_of("HEAD", paths[p], h), 400);
        }
        ck_assert_int_eq(status_of("GET", "/healthz", h), 200);
    }
    ck_assert_int_eq(status_of("GET", "/kv/?prefix=k", NULL), 200);
    ck_assert_int_eq(status_of("GET", "/changes", NULL), 200);
}
END_TEST

START_TEST(listing_reads_a_plus_in_the_query_as_a_plus)
{
    json_t *pg;

    ck_assert_int_eq(put("/kv/a+b", "plus", NULL, NULL), 201);
    ck_assert_int_eq(put("/kv/a%20b", "space", NULL, NULL), 201);
    pg = page("/kv/?prefix=a+b");
    ck_assert_uint_eq(json_array_size(json_object_get(pg, "keys")), 1);
    ck_assert_str_eq(key_at(pg, 0), "a+b");
    json_decref(pg);
    pg = page("/kv/?prefix=a%20b");
    ck_assert_uint_eq(json_array_size(json_object_get(pg, "keys")), 1);
    ck_assert_str_eq(key_at(pg, 0), "a b");
    json_decref(pg);
    /* "a b" < "a+b": after a+b nothing is left, after a b only a+b. */
    pg = page("/kv/?after=a+b");
    ck_assert_uint_eq(json_array_size(json_object_get(pg, "keys")), 0);
    json_decref(pg);
    pg = page("/kv/?limit=1&after=a%20b&prefix=a");
    ck_assert_str_eq(key_at(pg, 0), "a+b");
    json_decref(pg);
    ck_assert_int_eq(status_of("GET", "/kv/?limit=+2", NULL), 400);
}
END_TEST

START_TEST(listing_rejects_a_bad_limit_or_encoding_and_caps_the_limit)
{
    json_t *pg;

    ck_assert_int_eq(status_of("GET", "/kv/?limit=0", NULL), 400);
    ck_assert_int_eq(status_of("GET", "/kv/?limit=abc", NULL), 400);
    ck_assert_int_eq(status_of("GET", "/kv/?limit=", NULL), 400);
    ck_assert_int_eq(status_of("GET", "/kv/?prefix=%zz", NULL), 400);
    ck_assert_int_eq(status_of("GET", "/kv/?after=%4", NULL), 400);
    pg = page("/kv/?limit=99999999999999999999");
    ck_assert(json_is_array(json_object_get(pg, "keys")));
    json_decref(pg);
}
END_TEST

/* A misspelt or unknown parameter is 400, not ignored: "PREFIX=a" listed
 * every key.  So is a repeated one. */
START_TEST(listing_refuses_unknown_and_repeated_parameters)
{
    json_t *pg, *j;
    struct hu_resp r;

    ck_assert_int_eq(put("/kv/a1", "x", NULL, NULL), 201);
    ck_assert_int_eq(put("/kv/b1", "x", NULL, NULL), 201);
    http(&r, "GET", "/kv/?PREFIX=a", NULL, NULL);
    j = assert_problem(&r, 400);
    ck_assert_ptr_nonnull(strstr(jstr(j, "detail"), "prefix, after and limit"));
    json_decref(j);
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("GET", "/kv/?prefix=a&sort=desc", NULL), 400);
    ck_assert_int_eq(status_of("GET", "/kv?pre=a", NULL), 400);
    ck_assert_int_eq(status_of("GET", "/kv/?prefix=a&prefix=b", NULL), 400);
    ck_assert_int_eq(status_of("GET", "/kv/?limit=1&limit=2", NULL), 400);
    ck_assert_int_eq(status_of("GET", "/kv/?=a", NULL), 400);
    /* The known ones, empty ones and an empty query still list. */
    pg = page("/kv/?prefix=a&after=&limit=5&");
    ck_assert_uint_eq(json_array_size(json_object_get(pg, "keys")), 1);
    ck_assert_str_eq(key_at(pg, 0), "a1");
    json_decref(pg);
    pg = page("/kv/?");
    ck_assert_uint_eq(json_array_size(json_object_get(pg, "keys")), 2);
    json_decref(pg);
}
END_TEST

/* Location and key_pct are appended after "/kv/" by clients, and RFC 3986
 * §5.2.4 removes "." and ".." segments when resolving: their dots are
 * percent-encoded, so that the reference names the same key (and never
 * leaves /kv/).  Dots elsewhere stay literal. */
START_TEST(location_and_key_pct_encode_dot_segments)
{
    static const struct {
        const char *path, *location;
    } rows[] = {
        {"/kv/a/%2E%2E/%2E%2E/b", "/kv/a/%2E%2E/%2E%2E/b"},
        {"/kv/%2E/n", "/kv/%2E/n"},
        {"/kv/%2e%2E", "/kv/%2E%2E"},
        {"/kv/x/%2E", "/kv/x/%2E"},
        {"/kv/.../a.b/.c/d./", "/kv/.../a.b/.c/d./"},
    };
    struct hu_resp r;
    json_t *pg;

    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        http(&r, "PUT", rows[i].path, NULL, "v");
        ck_assert_int_eq(r.code, 201);
        ck_assert_str_eq(hu_hdr(&r, "Location"), rows[i].location);
        hu_resp_free(&r);
        /* The Location reads the same record back. */
        ck_assert_int_eq(status_of("GET", rows[i].location, NULL), 200);
    }
    pg = page("/kv/?prefix=a/");
    ck_assert_str_eq(
        jstr(json_array_get(json_object_get(pg, "keys"), 0), "key_pct"),
        "a/%2E%2E/%2E%2E/b");
    ck_assert_str_eq(key_at(pg, 0), "a/../../b");
    json_decref(pg);
}
END_TEST

/* ---- metrics ------------------------------------------------------------- */

START_TEST(metrics_count_requests_by_method_and_status_and_conditional_outcomes)
{
    static const char *const stale[] = {
        "If-Match: \"ffffffffffffffffffffffffffffffff\"", NULL};
    static const char *const star[] = {"If-None-Match: *", NULL};
    struct hu_resp r;

    ck_assert_int_eq(put("/kv/m", "x", NULL, NULL), 201);
    ck_assert_int_eq(status_of("GET", "/kv/m", star), 304);
    ck_assert_int_eq(put("/kv/m", "y", stale, NULL), 412);
    ck_assert_int_eq(status_of("GET", "/kv/m", NULL), 200);
    http(&r, "GET", "/metrics", NULL, NULL);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(hu_hdr(&r, "Content-Type"),
                     "text/plain; version=0.0.4; charset=utf-8");
    ck_assert_ptr_nonnull(strstr(
        r.body, "etagkv_http_requests_total{method=\"PUT\",code=\"201\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(
        r.body, "etagkv_http_requests_total{method=\"PUT\",code=\"412\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(
        r.body, "etagkv_http_requests_total{method=\"GET\",code=\"200\"} 1\n"));
    ck_assert_ptr_nonnull(
        strstr(r.body, "\netagkv_http_not_modified_total 1\n"));
    ck_assert_ptr_nonnull(
        strstr(r.body, "\netagkv_http_precondition_failed_total 1\n"));
    ck_assert_ptr_nonnull(
        strstr(r.body, "\netagkv_http_precondition_required_total 0\n"));
    ck_assert_ptr_nonnull(strstr(
        r.body, "# TYPE etagkv_http_request_duration_seconds histogram\n"));
    ck_assert_ptr_nonnull(strstr(
        r.body, "etagkv_http_request_duration_seconds_bucket{le=\"+Inf\"} "));
    ck_assert_ptr_nonnull(
        strstr(r.body, "\netagkv_http_request_duration_seconds_count "));
    ck_assert_ptr_nonnull(strstr(r.body, "\netagkv_store_records 1\n"));
    hu_resp_free(&r);
}
END_TEST

/* ---- bearer token -------------------------------------------------------- */

/* Start the fixture's server with a token file holding token (and a
 * newline). */
static void start_with_token(const char *token)
{
    char file[600];
    const char *opts[] = {"--threads", "4",        "--token-file",
                          file,        "--nosync", NULL};
    FILE *f;

    snprintf(file, sizeof file, "%s/token", fx.dir);
    f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%s\n", token);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(file, 0600), 0); /* a secret: owner only */
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
}

START_TEST(bearer_token_guards_every_route_except_healthz)
{
    static const char *const right[] = {"Authorization: Bearer s3cr3t-t0ken",
                                        NULL};
    static const char *const lower[] = {"Authorization: bearer s3cr3t-t0ken",
                                        NULL};
    static const char *const wrong[] = {"Authorization: Bearer s3cr3t-t0kem",
                                        NULL};
    static const char *const longer[] = {"Authorization: Bearer s3cr3t-t0ken0",
                                         NULL};
    static const char *const basic[] = {"Authorization: Basic czNjcjN0", NULL};
    struct hu_resp r;
    json_t *j;

    start_with_token("s3cr3t-t0ken");
    http(&r, "GET", "/kv/x", NULL, NULL);
    j = assert_problem(&r, 401);
    ck_assert_str_eq(hu_hdr(&r, "WWW-Authenticate"), "Bearer realm=\"etagkv\"");
    json_decref(j);
    hu_resp_free(&r);
    http(&r, "PUT", "/kv/x", wrong, "v");
    ck_assert_int_eq(r.code, 401);
    ck_assert_str_eq(hu_hdr(&r, "WWW-Authenticate"),
                     "Bearer realm=\"etagkv\", error=\"invalid_token\"");
    hu_resp_free(&r);
    ck_assert_int_eq(put("/kv/x", "v", longer, NULL), 401);
    ck_assert_int_eq(put("/kv/x", "v", basic, NULL), 401);
    ck_assert_int_eq(status_of("GET", "/kv/x", right),
                     404); /* nothing written */
    ck_assert_int_eq(status_of("GET", "/metrics", NULL), 401);
    ck_assert_int_eq(status_of("GET", "/kv/", NULL), 401);
    ck_assert_int_eq(status_of("GET", "/nope", NULL), 401);
    ck_assert_int_eq(status_of("GET", "/healthz", NULL), 200);
    ck_assert_int_eq(put("/kv/x", "v", right, NULL), 201);
    ck_assert_int_eq(status_of("GET", "/kv/x", lower), 200);
    ck_assert_int_eq(status_of("GET", "/metrics", right), 200);
}
END_TEST

/* ---- a full disk ------------------------------------------------------------
 */

/* The server runs under a 1 MiB file size limit (RLIMIT_FSIZE, inherited
 * from this process for the start only): a write that does not fit is 507
 * with a STORE_FULL problem, and the server keeps serving.  Values of
 * 3000 bytes make some commits start past the limit, where the kernel
 * sends SIGXFSZ: a server that did not ignore it would die here. */
START_TEST(a_full_disk_is_507_and_the_server_keeps_serving)
{
    static const char *const opts[] = {"--threads", "4", "--nosync", NULL};
    static char body[3001];
    struct rlimit old, lim;
    struct hu_resp r;
    char path[32];
    long code = 201;
    int n;
    json_t *j;

    memset(body, 'x', sizeof body - 1);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = (struct rlimit){1 << 20, old.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);

    for (n = 0; n < 2000; n++) {
        snprintf(path, sizeof path, "/kv/k%04d", n);
        if ((code = put(path, body, NULL, NULL)) != 201)
            break;
    }
    ck_assert_int_gt(n, 10);
    ck_assert_msg(code == 507, "write %d got %ld, want 507", n, code);
    http(&r, "PUT", path, NULL, body);
    j = assert_problem(&r, 507);
    ck_assert_str_eq(json_string_value(json_object_get(j, "code")),
                     "STORE_FULL");
    json_decref(j);
    hu_resp_free(&r);
    /* Still serving, and everything acknowledged is there. */
    ck_assert_int_eq(status_of("GET", "/healthz", NULL), 200);
    ck_assert_int_eq(status_of("GET", "/kv/k0000", NULL), 200);
    snprintf(path, sizeof path, "/kv/k%04d", n - 1);
    ck_assert_int_eq(status_of("GET", path, NULL), 200);
    snprintf(path, sizeof path, "/kv/k%04d", n);
    ck_assert_int_eq(status_of("GET", path, NULL), 404);
}
END_TEST

/* ---- require-conditions mode --------------------------------------------- */

START_TEST(require_conditions_answers_unconditional_writes_with_428)
{
    static const char *const opts[] = {"--threads", "4", "--require-conditions",
                                       "--nosync", NULL};
    static const char *const create_only[] = {"If-None-Match: *", NULL};
    static const char *const ims_only[] = {
        "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT", NULL};
    static const char *const bad_ius[] = {"If-Unmodified-Since: soon", NULL};
    static const char *const future_ius[] = {
        "If-Unmodified-Since: Fri, 31 Dec 9999 23:59:59 GMT", NULL};
    static const char *const past_ius[] = {
        "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT", NULL};
    char h[128], etag[ETAGKV_ETAG_SIZE];
    const char *im[2] = {h, NULL};
    struct hu_resp r;
    json_t *j;

    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    http(&r, "PUT", "/kv/k", NULL, "v");
    j = assert_problem(&r, 428);
    ck_assert_str_eq(jstr(j, "code"), "PRECONDITION_REQUIRED");
    ck_assert_ptr_nonnull(strstr(jstr(j, "detail"), "If-Match"));
    ck_assert_ptr_nonnull(strstr(jstr(j, "detail"), "If-None-Match"));
    ck_assert_ptr_nonnull(strstr(jstr(j, "detail"), "If-Unmodified-Since"));
    json_decref(j);
    hu_resp_free(&r);
    /* If-Modified-Since never applies to writes; an invalid date is
     * ignored, so neither makes a write conditional. */
    ck_assert_int_eq(put("/kv/k", "v", ims_only, NULL), 428);
    ck_assert_int_eq(put("/kv/k", "v", bad_ius, NULL), 428);
    /* An If-Unmodified-Since later than now holds for every record: alone
     * it conditions nothing (a past one does, below). */
    http(&r, "PUT", "/kv/k", future_ius, "v");
    j = assert_problem(&r, 428);
    ck_assert_ptr_nonnull(strstr(jstr(j, "detail"), "later than now"));
    json_decref(j);
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("DELETE", "/kv/k", future_ius), 428);
    /* Beside a real condition it is no reason to refuse: ETagKV-If-Revision
     * 0 (absent) conditions the write, whatever the date says. */
    ck_assert_int_eq(
        put("/kv/rev0", "v",
            (const char *const[]){"ETagKV-If-Revision: 0", future_ius[0], NULL},
            NULL),
        201);
    ck_assert_int_eq(status_of("GET", "/kv/k", NULL), 404);
    ck_assert_int_eq(put("/kv/k", "v", create_only, etag), 201);
    ck_assert_int_eq(status_of("GET", "/kv/k", NULL), 200); /* reads are free */
    ck_assert_int_eq(status_of("DELETE", "/kv/k", NULL), 428);
    /* A past If-Unmodified-Since is a condition: here a false one. */
    ck_assert_int_eq(status_of("DELETE", "/kv/k", past_ius), 412);
    line(h, sizeof h, "If-Match", etag);
    ck_assert_int_eq(status_of("DELETE", "/kv/k", im), 204);
    http(&r, "GET", "/metrics", NULL, NULL);
    ck_assert_ptr_nonnull(
        strstr(r.body, "\netagkv_http_precondition_required_total 6\n"));
    hu_resp_free(&r);
}
END_TEST

/* ---- contention: optimistic increments over HTTP ------------------------- */

#define CLIENTS 16
#define INCREMENTS 50

struct incrementer {
    int port;
    int ok_puts;  /* 2xx answers to PUT */
    int failures; /* anything unexpected */
    int rebase;   /* rebase from the 412 (Prefer: return=representation) */
    int gets;     /* GETs made */
};

/* GET the counter, PUT value + 1 with If-Match, and on 412 start over with
 * a fresh GET, until INCREMENTS increments have succeeded.  With rebase,
 * every PUT prefers the representation, and a 412 or 2xx is the next
 * read: one GET in all. */
static void *increment(void *arg)
{
    struct incrementer *in = arg;
    CURL *h = curl_easy_init();
    struct hu_resp r = {0};
    int done = 0, have = 0;

    while (h != NULL && done < INCREMENTS && in->failures == 0) {
        struct hu_req get = {"GET", "/kv/counter", NULL, NULL, 0};
        char im[128], value[32];
        const char *hdrs[3] = {im, in->rebase ? prefer_repr[0] : NULL, NULL};
        struct hu_req putq = {"PUT", "/kv/counter", hdrs, value, 0};

        if (!have) {
            hu_perform(h, in->port, &get, &r, REQUEST_TIMEOUT_S);
            in->gets++;
        }
        if (r.err != CURLE_OK || (r.code != 200 && r.code != 412) ||
            hu_hdr(&r, "ETag") == NULL || r.body == NULL) {
            in->failures++;
            break;
        }
        snprintf(im, sizeof im, "If-Match: %s", hu_hdr(&r, "ETag"));
        snprintf(value, sizeof value, "%ld", strtol(r.body, NULL, 10) + 1);
        putq.body_len = strlen(value);
        hu_resp_free(&r);
        hu_perform(h, in->port, &putq, &r, REQUEST_TIMEOUT_S);
        if (r.err != CURLE_OK || (r.code != 200 && r.code != 412))
            in->failures++;
        else if (r.code == 200) {
            in->ok_puts++;
            done++;
        }
        have = in->rebase;
        if (!have)
            hu_resp_free(&r);
    }
    hu_resp_free(&r);
    if (h == NULL)
        in->failures++;
    curl_easy_cleanup(h);
    return NULL;
}

START_TEST(concurrent_if_match_increments_lose_no_update)
{
    struct incrementer in[CLIENTS];
    pthread_t th[CLIENTS];
    struct hu_resp r;
    int i, ok = 0;

    ck_assert_int_eq(put("/kv/counter", "0", NULL, NULL), 201);
    for (i = 0; i < CLIENTS; i++) {
        in[i].port = fx.srv.port;
        in[i].ok_puts = in[i].failures = in[i].gets = 0;
        in[i].rebase = _i == 1;
        ck_assert_int_eq(pthread_create(&th[i], NULL, increment, &in[i]), 0);
    }
    for (i = 0; i < CLIENTS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(in[i].failures, 0);
        ok += in[i].ok_puts;
        /* Rebasing from the answers, a client reads once. */
        if (_i == 1)
            ck_assert_int_eq(in[i].gets, 1);
    }
    ck_assert_int_eq(ok, CLIENTS * INCREMENTS);
    http(&r, "GET", "/kv/counter", NULL, NULL);
    ck_assert_int_eq(strtol(r.body, NULL, 10), CLIENTS * INCREMENTS);
    hu_resp_free(&r);
}
END_TEST

/* ---- restart and shutdown ------------------------------------------------ */

START_TEST(data_and_etags_survive_a_restart)
{
    static const char *const paths[] = {"/kv/a", "/kv/b/c", "/kv/%00%FF"};
    char etags[3][ETAGKV_ETAG_SIZE], lms[3][64];
    struct hu_resp r;
    size_t i;

    for (i = 0; i < 3; i++) {
        http(&r, "PUT", paths[i], NULL, paths[i]);
        ck_assert_int_eq(r.code, 201);
        snprintf(etags[i], sizeof etags[i], "%s", hu_hdr(&r, "ETag"));
        snprintf(lms[i], sizeof lms[i], "%s", hu_hdr(&r, "Last-Modified"));
        hu_resp_free(&r);
    }
    ck_assert_int_eq(status_of("DELETE", "/kv/a", NULL), 204);
    hu_server_stop(&fx.srv);
    hu_server_restart(&fx.srv, restart_opts);
    ck_assert_int_eq(status_of("GET", "/kv/a", NULL), 404);
    for (i = 1; i < 3; i++) {
        http(&r, "GET", paths[i], NULL, NULL);
        ck_assert_int_eq(r.code, 200);
        ck_assert_str_eq(r.body, paths[i]);
        ck_assert_str_eq(hu_hdr(&r, "ETag"), etags[i]);
        ck_assert_str_eq(hu_hdr(&r, "Last-Modified"), lms[i]);
        hu_resp_free(&r);
    }
    /* The revision counter carries on. */
    http(&r, "PUT", "/kv/new", NULL, "x");
    ck_assert_str_eq(hu_hdr(&r, "ETagKV-Revision"), "5");
    hu_resp_free(&r);
}
END_TEST

#define WRITERS 8
#define MAX_WRITES 100000

struct writer {
    int port, id;
    int acked; /* writes 0..acked-1 got a 2xx */
};

static atomic_int writes_acked; /* by all the writers, for the main thread */

/* PUT w<id>/<n> = "v<n>" in a loop until the server goes away. */
static void *write_until_refused(void *arg)
{
    struct writer *w = arg;
    CURL *h = curl_easy_init();

    while (h != NULL && w->acked < MAX_WRITES) {
        char path[64], value[32];
        struct hu_req q = {"PUT", path, NULL, value, 0};
        struct hu_resp r;
        int ok;

        snprintf(path, sizeof path, "/kv/w%d/%06d", w->id, w->acked);
        snprintf(value, sizeof value, "v%d", w->acked);
        q.body_len = strlen(value);
        hu_perform(h, w->port, &q, &r, REQUEST_TIMEOUT_S);
        ok = r.err == CURLE_OK && r.code == 201;
        hu_resp_free(&r);
        if (!ok)
            break;
        w->acked++;
        atomic_fetch_add(&writes_acked, 1);
    }
    curl_easy_cleanup(h);
    return NULL;
}

START_TEST(sigterm_during_a_write_load_exits_0_and_keeps_every_acked_write)
{
    struct writer w[WRITERS];
    pthread_t th[WRITERS];
    struct timespec pause = {0, 300 * 1000 * 1000};
    etagkv_store *store;
    int i, n, total = 0;

    /* Restart in sync mode: durability is the point. */
    hu_server_stop(&fx.srv);
    hu_server_restart(&fx.srv, restart_opts);
    atomic_store(&writes_acked, 0);
    for (i = 0; i < WRITERS; i++) {
        w[i].port = fx.srv.port;
        w[i].id = i;
        w[i].acked = 0;
        ck_assert_int_eq(
            pthread_create(&th[i], NULL, write_until_refused, &w[i]), 0);
    }
    /* Under way: 300 ms, and at least one write acknowledged (a loaded
     * machine may take longer to answer the first). */
    nanosleep(&pause, NULL);
    for (i = 0; i < 3000 && atomic_load(&writes_acked) == 0; i++)
        (void)poll(NULL, 0, 10);
    hu_server_stop(&fx.srv); /* asserts exit status 0 */
    for (i = 0; i < WRITERS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        total += w[i].acked;
    }
    ck_assert_int_gt(total, 0);
    store = tu_open(fx.srv.data, NULL);
    for (i = 0; i < WRITERS; i++)
        for (n = 0; n < w[i].acked; n++) {
            char key[64], want[32];
            void *value = NULL;
            size_t len = 0;

            snprintf(key, sizeof key, "w%d/%06d", i, n);
            snprintf(want, sizeof want, "v%d", n);
            ck_assert_msg(etagkv_get(store, key, strlen(key), NULL, &value,
                                     &len, NULL) == ETAGKV_OK,
                          "acknowledged write %s is missing", key);
            ck_assert_uint_eq(len, strlen(want));
            ck_assert_int_eq(memcmp(value, want, len), 0);
            etagkv_free(value);
        }
    etagkv_store_close(store);
}
END_TEST

/* ---- a slow client ------------------------------------------------------- */

START_TEST(slow_client_is_cut_off_by_the_timeout_without_blocking_others)
{
    static const char *const opts[] = {"--timeout", "5",        "--threads",
                                       "1",         "--nosync", NULL};
    static const char half[] = "GET /kv/x HTTP/1.1\r\nHost: slow\r\nX-Slo";
    struct pollfd p;
    char buf[512];
    double t0, waited;
    int fd;
    ssize_t got;

    /* One worker thread: the slow client and the others share it. */
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    fd = hu_connect(fx.srv.port);
    ck_assert_int_eq(send(fd, half, sizeof half - 1, 0),
                     (ssize_t)(sizeof half - 1));
    t0 = tu_now_s();
    ck_assert_int_eq(put("/kv/other", "v", NULL, NULL), 201);
    ck_assert_int_eq(status_of("GET", "/kv/other", NULL), 200);
    /* ... served while the slow one still holds its connection (not
     * after the server gave up on it: no clock to outrun). */
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    ck_assert_msg(poll(&p, 1, 0) == 0, "another client was held up");
    /* The server closes the half-sent request after about 5 s. */
    do {
        ck_assert_int_eq(poll(&p, 1, 20000), 1);
        got = recv(fd, buf, sizeof buf, 0);
    } while (got > 0);
    waited = tu_now_s() - t0;
    ck_assert_msg(got == 0 || errno == ECONNRESET, "recv: %s", strerror(errno));
    ck_assert_msg(waited >= 2.5 && waited < 20.0, "closed after %.2f s",
                  waited);
    close(fd);
}
END_TEST

/* ---- shutdown ------------------------------------------------------------ */

/* Read from fd until the end of a header section (at most cap - 1 bytes,
 * 10 s); the bytes read, NUL-terminated, in buf.  Fails the test on a
 * timeout or a close first. */
static void read_head(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    double deadline = tu_now_s() + 10;

    buf[0] = '\0';
    while (strstr(buf, "\r\n\r\n") == NULL) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t k;

        ck_assert_msg(tu_now_s() < deadline && got < cap - 1,
                      "no header section: \"%s\"", buf);
        if (poll(&p, 1, 100) != 1)
            continue;
        k = recv(fd, buf + got, cap - 1 - got, 0);
        ck_assert_msg(k > 0, "closed after \"%s\"", buf);
        got += (size_t)k;
        buf[got] = '\0';
    }
}

/* SIGTERM: the listen socket closes at once (a new connection is refused,
 * so a client or balancer goes elsewhere), while a request already
 * started -- its body still to come -- finishes and is answered. */
START_TEST(a_draining_server_refuses_new_connections_and_finishes_its_requests)
{
    static const char *const opts[] = {"--nosync", NULL};
    static const char head[] = "PUT /kv/late HTTP/1.1\r\nHost: x\r\n"
                               "Expect: 100-continue\r\n"
                               "Content-Length: 4\r\n\r\n";
    struct sockaddr_in a;
    char buf[2048];
    double deadline;
    int fd, refused = 0;

    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    fd = hu_connect(fx.srv.port);
    ck_assert_int_eq(send(fd, head, sizeof head - 1, MSG_NOSIGNAL),
                     (ssize_t)(sizeof head - 1));
    /* libmicrohttpd sends 100 Continue after the handler's first call:
     * from then on the request is in flight. */
    read_head(fd, buf, sizeof buf);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 100", 12) == 0, "%s", buf);
    ck_assert_int_eq(kill(fx.srv.pid, SIGTERM), 0);

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)fx.srv.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    deadline = tu_now_s() + 5;
    while (!refused && tu_now_s() < deadline) {
        int c = socket(AF_INET, SOCK_STREAM, 0);

        ck_assert_int_ge(c, 0);
        if (connect(c, (struct sockaddr *)&a, sizeof a) != 0) {
            ck_assert_msg(errno == ECONNREFUSED, "connect: %s",
                          strerror(errno));
            refused = 1;
        }
        close(c);
        if (!refused) {
            struct timespec ts = {0, 10 * 1000 * 1000};

            (void)nanosleep(&ts, NULL);
        }
    }
    ck_assert_msg(refused, "new connections still accepted 5 s into the "
                           "drain");

    /* The request in flight completes, and its connection then closes. */
    ck_assert_int_eq(send(fd, "abcd", 4, MSG_NOSIGNAL), 4);
    read_head(fd, buf, sizeof buf);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 201", 12) == 0, "%s", buf);
    ck_assert_msg(strstr(buf, "\r\nConnection: close\r\n") != NULL, "%s", buf);
    close(fd);
    hu_server_stop(&fx.srv); /* exit status 0 */
}
END_TEST

/* ---- Idempotency-Key (DESIGN §2) ----------------------------------------- */

START_TEST(a_retried_put_with_an_idempotency_key_replays_status_and_headers)
{
    const char *h[] = {"Idempotency-Key: \"req-1\"", NULL};
    const char *h2[] = {"Idempotency-Key: req-2", "If-Match: \"stale\"", NULL};
    struct hu_resp a, b, c;
    static const char *same[] = {"ETag", "Last-Modified", "ETagKV-Revision",
                                 "ETagKV-Version", "Location"};

    http(&a, "PUT", "/kv/k", h, "v1");
    ck_assert_int_eq(a.code, 201);
    ck_assert_ptr_null(hu_hdr(&a, "Idempotent-Replayed"));
    ck_assert_int_eq(put("/kv/k", "other", NULL, NULL), 200);
    /* The retry gets the first outcome, byte for byte, and writes
     * nothing, although another write happened in between. */
    http(&b, "PUT", "/kv/k", h, "v1");
    ck_assert_int_eq(b.code, 201);
    ck_assert_str_eq(hu_hdr(&b, "Idempotent-Replayed"), "true");
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
        ck_assert_str_eq(hu_hdr(&b, same[i]), hu_hdr(&a, same[i]));
    http(&c, "GET", "/kv/k", NULL, NULL);
    ck_assert_str_eq(c.body, "other");
    hu_resp_free(&a);
    hu_resp_free(&b);
    hu_resp_free(&c);

    /* A 412 is an outcome too: replayed as a 412, with its problem body. */
    http(&a, "PUT", "/kv/k", h2, "v2");
    ck_assert_int_eq(a.code, 412);
    http(&b, "PUT", "/kv/k", h2, "v2");
    ck_assert_int_eq(b.code, 412);
    ck_assert_str_eq(hu_hdr(&b, "Idempotent-Replayed"), "true");
    ck_assert_str_eq(hu_hdr(&b, "ETag"), hu_hdr(&a, "ETag"));
    ck_assert_uint_eq(b.len, a.len);
    ck_assert_mem_eq(b.body, a.body, a.len);
    hu_resp_free(&a);
    hu_resp_free(&b);
}
END_TEST

START_TEST(an_idempotency_key_reused_for_another_request_is_422)
{
    const char *h[] = {"Idempotency-Key: k-1", NULL};
    struct hu_resp r;
    json_t *j;

    ck_assert_int_eq(put("/kv/k", "v1", h, NULL), 201);
    http(&r, "PUT", "/kv/k", h, "v2");
    j = assert_problem(&r, 422);
    json_decref(j);
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("DELETE", "/kv/k", h), 422);
    http(&r, "GET", "/kv/k", NULL, NULL);
    ck_assert_str_eq(r.body, "v1");
    hu_resp_free(&r);
    /* A retried DELETE with its own key replays its 204. */
    {
        const char *d[] = {"Idempotency-Key: del-1", NULL};

        ck_assert_int_eq(status_of("DELETE", "/kv/k", d), 204);
        ck_assert_int_eq(put("/kv/k", "back", NULL, NULL), 201);
        ck_assert_int_eq(status_of("DELETE", "/kv/k", d), 204);
        ck_assert_int_eq(status_of("GET", "/kv/k", NULL), 200);
    }
}
END_TEST

START_TEST(malformed_idempotency_keys_are_400_and_write_nothing)
{
    static char long_key[300];
    const char *bad[][3] = {
        {"Idempotency-Key: \"\"", NULL, NULL}, /* empty */
        {"Idempotency-Key: a b", NULL, NULL},  /* space in a token */
        {"Idempotency-Key: \"unterminated", NULL, NULL},
        {"Idempotency-Key: \"bad\\escape\"", NULL, NULL},
        {"Idempotency-Key: a", "Idempotency-Key: b", NULL}, /* twice */
        {long_key, NULL, NULL},                             /* 256 bytes */
    };
    struct hu_resp r;

    snprintf(long_key, sizeof long_key, "Idempotency-Key: %0256d", 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j;

        http(&r, "PUT", "/kv/k", bad[i], "v");
        j = assert_problem(&r, 400);
        json_decref(j);
        hu_resp_free(&r);
    }
    ck_assert_int_eq(status_of("GET", "/kv/k", NULL), 404);
    /* 255 bytes is fine. */
    snprintf(long_key, sizeof long_key, "Idempotency-Key: %0255d", 0);
    ck_assert_int_eq(
        put("/kv/k", "v", (const char *const[]){long_key, NULL}, NULL), 201);
}
END_TEST

START_TEST(metrics_count_replays_mismatches_and_commit_batches)
{
    const char *h[] = {"Idempotency-Key: m-1", NULL};
    struct hu_resp r;

    ck_assert_int_eq(put("/kv/k", "v1", h, NULL), 201);
    ck_assert_int_eq(put("/kv/k", "v1", h, NULL), 201);
    ck_assert_int_eq(put("/kv/k", "v2", h, NULL), 422);
    http(&r, "GET", "/metrics", NULL, NULL);
    ck_assert_ptr_nonnull(
        strstr(r.body, "\netagkv_http_idempotent_replays_total 1\n"));
    ck_assert_ptr_nonnull(
        strstr(r.body, "\netagkv_http_idempotency_mismatches_total 1\n"));
    ck_assert_ptr_nonnull(
        strstr(r.body, "\netagkv_store_idempotency_keys 1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "\netagkv_store_write_ops_total 1\n"));
    ck_assert_ptr_nonnull(
        strstr(r.body, "\netagkv_store_write_txns_total 1\n"));
    hu_resp_free(&r);
}
END_TEST

/* ---- the suite ----------------------------------------------------------- */

/* ---- command line ----------------------------------------------------------
 */

/* Run the server with argv (NULL-terminated, after the program name) and
 * return its exit status; stderr goes to /dev/null. */
static int server_exit_status(const char *const *args)
{
    const char *argv[16] = {ETAGKV_SERVER_BIN};
    int status, n = 1;
    pid_t pid;

    while (*args != NULL && n < 15)
        argv[n++] = *args++;
    argv[n] = NULL;
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (freopen("/dev/null", "w", stderr) == NULL)
            _exit(126);
        execv(ETAGKV_SERVER_BIN, (char *const *)argv);
        _exit(127);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

START_TEST(bad_options_exit_2_before_anything_is_opened)
{
    char *dir = tu_mkdtemp(), data[512], token[600];
    FILE *f;
    /* Each followed by --data DATA --listen 127.0.0.1:0 unless it sets
     * them itself (getopt keeps the last). */
    static const char *const bad[][7] = {
        {"--listen", "garbage", NULL},
        {"--listen", ":8080", NULL},
        {"--listen", "127.0.0.1:99999", NULL},
        {"--listen", "127.0.0.1:", NULL},
        {"--max-value-bytes", "0", NULL},
        {"--threads", "0", NULL},
        {"--timeout", "-1", NULL},
        {"--data", "", NULL},
        {"--no-such-option", NULL, NULL},
        {"stray-argument", NULL, NULL},
        /* Issue 15: the network without a token needs --insecure. */
        {"--listen", "0.0.0.0:0", NULL},
        {"--listen", "[::]:0", NULL},
        {"--tls-cert", "cert.pem", NULL},
        {"--tls-key", "key.pem", NULL},
        {"--max-buffered-bytes", "1", NULL}, /* below --max-value-bytes */
        /* What a POST /leases body may take, and a --max-txn-bytes asked
         * for over the budget (503 at every try); libmicrohttpd counts
         * --timeout in milliseconds in 32 bits. */
        {"--max-value-bytes", "1000", "--max-buffered-bytes", "4095", NULL},
        {"--max-value-bytes", "1000", "--max-buffered-bytes", "2000000",
         "--max-txn-bytes", "3000000"},
        {"--timeout", "4294968", NULL},
        {"--max-watchers", "1024", NULL}, /* not below --max-connections */
        {"--max-connections", "1", "--threads", "1", "--max-watchers", "1"},
        {"--file-mode", "0400", NULL}, /* LMDB must write */
        {"--file-mode", "01600", NULL},
        {"--file-mode", "0x600", NULL},
        {"--max-leases", "0", NULL},
        {"--lease-min-ttl-ms", "0", NULL},
        {"--lease-max-ttl-ms", "50", NULL}, /* below the default minimum */
        {"--sync-mode", "fsync", NULL},
        {"--sync-mode", "", NULL},
        {"--sync-mode", NULL, NULL}, /* wants a value */
    };

    snprintf(data, sizeof data, "%s/data", dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[12] = {"--data", data, "--listen", "127.0.0.1:0"};
        int n = 4;

        for (int j = 0; j < 6 && bad[i][j] != NULL; j++)
            args[n++] = bad[i][j];
        args[n] = NULL;
        ck_assert_msg(server_exit_status(args) == 2, "%s %s: not exit 2",
                      bad[i][0], bad[i][1] != NULL ? bad[i][1] : "");
        ck_assert_msg(access(data, F_OK) != 0, "%s created the data dir",
                      bad[i][0]);
    }
    /* A token file that is no token is not a usage error, but nothing is
     * served: exit 1. */
    snprintf(token, sizeof token, "%s/token", dir);
    f = fopen(token, "w");
    ck_assert_ptr_nonnull(f);
    fputs("tok en\n", f);
    fclose(f);
    ck_assert_int_eq(chmod(token, 0600), 0);
    {
        const char *args[] = {"--data",       data,  "--listen", "127.0.0.1:0",
                              "--token-file", token, NULL};

        ck_assert_int_eq(server_exit_status(args), 1);
        /* Issue 15: a good token in a file others may read is refused. */
        f = fopen(token, "w");
        ck_assert_ptr_nonnull(f);
        fputs("good-token\n", f);
        fclose(f);
        ck_assert_int_eq(chmod(token, 0640), 0);
        ck_assert_int_eq(server_exit_status(args), 1);
        ck_assert_int_eq(chmod(token, 0604), 0);
        ck_assert_int_eq(server_exit_status(args), 1);
        ck_assert_msg(access(data, F_OK) != 0, "a refused token file let the "
                                               "data dir be created");
    }
    tu_rmdir_free(dir);
}
END_TEST

static Suite *server_suite(void)
{
    Suite *s = suite_create("server");
    TCase *tc = tcase_create("http");
    TCase *own = tcase_create("own-server");
    TCase *load = tcase_create("load");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(
        tc, get_after_put_returns_value_with_validators_and_revision_headers);
    tcase_add_test(tc,
                   put_is_201_with_location_when_new_and_200_when_replacing);
    tcase_add_test(tc, content_type_is_stored_defaults_and_bad_one_is_400);
    tcase_add_test(tc, head_has_the_headers_and_content_length_but_no_body);
    tcase_add_test(tc, delete_is_204_then_get_and_delete_are_404);
    tcase_add_test(tc, empty_value_round_trips);
    tcase_add_test(tc,
                   keys_with_slash_space_nul_utf8_and_binary_bytes_round_trip);
    tcase_add_test(tc, key_of_511_bytes_is_accepted_and_512_bytes_is_414);
    tcase_add_test(tc, invalid_percent_encoding_and_empty_key_are_400);
    tcase_add_test(tc, unknown_path_is_404_problem_and_healthz_is_200);
    tcase_add_test(tc, unknown_method_is_405_with_allow_and_writes_nothing);
    tcase_add_test(tc, bodiless_requests_keep_the_connection_even_when_refused);
    tcase_add_test(tc,
                   body_over_limit_by_content_length_is_413_and_writes_nothing);
    tcase_add_test(tc,
                   chunked_body_growing_over_limit_is_413_and_writes_nothing);
    tcase_add_test(tc, get_if_none_match_current_is_304_with_etag_and_no_body);
    tcase_add_test(tc, head_if_none_match_star_is_304_with_etag_and_no_body);
    tcase_add_test(
        tc, if_modified_since_equal_second_is_304_in_all_three_date_forms);
    tcase_add_test(tc, invalid_dates_are_ignored_not_errors);
    tcase_add_test(tc,
                   if_modified_since_is_ignored_when_if_none_match_is_present);
    tcase_add_test(
        tc, put_if_match_stale_etag_is_412_with_current_etag_and_problem_body);
    tcase_add_test(
        tc, put_preferring_the_representation_answers_with_the_stored_one);
    tcase_add_test(tc,
                   a_412_preferring_the_representation_carries_the_current_one);
    tcase_add_test(
        tc, prefer_lines_combine_unknown_ones_are_ignored_and_the_first_wins);
    tcase_add_test(tc, if_match_compares_strongly_so_a_weak_tag_never_matches);
    tcase_add_test(tc, put_if_none_match_star_creates_only_once);
    tcase_add_test(tc, put_if_match_on_missing_key_is_412_and_creates_nothing);
    tcase_add_test(
        tc, get_head_and_delete_of_missing_key_are_404_whatever_the_conditions);
    tcase_add_test(tc, if_unmodified_since_is_ignored_when_if_match_is_present);
    tcase_add_test(
        tc, put_if_unmodified_since_equal_second_is_200_and_earlier_is_412);
    tcase_add_test(tc, get_if_match_stale_is_412_with_problem_body);
    tcase_add_test(tc, delete_if_match_stale_is_412_and_current_is_204);
    tcase_add_test(tc, malformed_entity_tag_lists_are_400_and_write_nothing);
    tcase_add_test(tc, several_if_match_lines_form_one_list);
    tcase_add_test(tc, a_line_without_elements_joins_the_list_of_the_others);
    tcase_add_test(tc,
                   listing_pages_through_a_prefix_with_after_limit_and_cursor);
    tcase_add_test(tc,
                   listing_rejects_a_bad_limit_or_encoding_and_caps_the_limit);
    tcase_add_test(tc, listing_reads_a_plus_in_the_query_as_a_plus);
    tcase_add_test(tc, conditions_where_nothing_has_a_validator_are_400);
    tcase_add_test(tc, listing_refuses_unknown_and_repeated_parameters);
    tcase_add_test(tc, location_and_key_pct_encode_dot_segments);
    tcase_add_test(tc, a_304_carries_the_current_content_type);
    tcase_add_test(
        tc,
        metrics_count_requests_by_method_and_status_and_conditional_outcomes);
    tcase_add_test(
        tc, a_retried_put_with_an_idempotency_key_replays_status_and_headers);
    tcase_add_test(tc, an_idempotency_key_reused_for_another_request_is_422);
    tcase_add_test(tc, malformed_idempotency_keys_are_400_and_write_nothing);
    tcase_add_test(tc, metrics_count_replays_mismatches_and_commit_batches);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(own, own_setup, teardown);
    tcase_set_timeout(own, 60);
    tcase_add_test(own, bearer_token_guards_every_route_except_healthz);
    /* LMDB's map and disk (a store on etcd has neither). */
    if (!tu_on_etcd())
        tcase_add_test(own, a_full_disk_is_507_and_the_server_keeps_serving);
    tcase_add_test(own,
                   require_conditions_answers_unconditional_writes_with_428);
    tcase_add_test(
        own, slow_client_is_cut_off_by_the_timeout_without_blocking_others);
    tcase_add_test(own, bad_options_exit_2_before_anything_is_opened);
    tcase_add_test(
        own,
        a_draining_server_refuses_new_connections_and_finishes_its_requests);
    suite_add_tcase(s, own);

    tcase_add_checked_fixture(load, setup, teardown);
    tcase_set_timeout(load, 300);
    /* 0: GET after each 412; 1: rebase from the 412's representation. */
    tcase_add_loop_test(load, concurrent_if_match_increments_lose_no_update, 0,
                        2);
    tcase_add_test(load, data_and_etags_survive_a_restart);
    tcase_add_test(
        load, sigterm_during_a_write_load_exits_0_and_keeps_every_acked_write);
    suite_add_tcase(s, load);
    return s;
}

int main(void)
{
    int rc;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return EXIT_FAILURE;
    rc = tu_run(server_suite());
    curl_global_cleanup();
    return rc;
}
