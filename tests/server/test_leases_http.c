/*
 * test_leases_http.c -- leases over real HTTP (DESIGN §9), against the
 * real etagkv-server, with libcurl: POST /leases, GET and DELETE
 * /leases/{id}, POST /leases/{id}/keepalive, ETagKV-Lease on PUT and
 * "lease" in POST /txn; bounds and malformed requests; expiry seen by a
 * long-poll; the restart rule across a SIGKILL; and the lock recipe of
 * docs/http.md (a holder that stops renewing loses the lock to a waiter
 * blocked in a long-poll), and its shorter form: a create-only PUT with
 * Prefer: wait, held until the release and committed with it.  Waits are
 * long-polls or polls with a deadline.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "httputil.h"
#include "testutil.h"

#ifndef ETAGKV_SERVER_BIN
#error "ETAGKV_SERVER_BIN must name the etagkv-server binary"
#endif

static struct hu_fixture fx;
static const char *const json_ct[] = {"Content-Type: application/json", NULL};

static void fixture_start(void)
{
    static const char *const opts[] = {"--threads", "4", "--nosync", NULL};

    hu_fixture_init(&fx);
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
}

static void fixture_stop(void)
{
    hu_fixture_stop(&fx);
}

static long http(struct hu_resp *r, const char *method, const char *path,
                 const char *const *headers, const char *body)
{
    hu_fixture_call(&fx, r, method, path, headers, body,
                    body != NULL ? strlen(body) : 0);
    return r->code;
}

/* A request whose response is not looked at beyond its status. */
static long status_of(const char *method, const char *path,
                      const char *const *headers, const char *body)
{
    struct hu_resp r;
    long code = http(&r, method, path, headers, body);

    hu_resp_free(&r);
    return code;
}

/* POST /leases {"ttl_ms": ttl}: the id, as the string the server gave. */
static void grant(uint64_t ttl_ms, char id[32])
{
    struct hu_resp r;
    char body[64], loc[64];
    json_t *j;

    snprintf(body, sizeof body, "{\"ttl_ms\": %llu}",
             (unsigned long long)ttl_ms);
    ck_assert_int_eq(http(&r, "POST", "/leases", json_ct, body), 201);
    j = json_loads(r.body, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert(json_is_string(json_object_get(j, "id")));
    snprintf(id, 32, "%s", json_string_value(json_object_get(j, "id")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "ttl_ms")),
                     (json_int_t)ttl_ms);
    snprintf(loc, sizeof loc, "/leases/%s", id);
    ck_assert_str_eq(hu_hdr(&r, "Location"), loc);
    json_decref(j);
    hu_resp_free(&r);
}

/* PUT /kv/{key} with ETagKV-Lease: id (and one more header line, or
 * NULL); the status, and the ETag into etag (128 bytes) when not NULL. */
static long put_leased(const char *key, const char *id, const char *more,
                       char *etag)
{
    char path[128], lease[64];
    const char *h[] = {lease, more, NULL};
    struct hu_resp r;
    long code;

    snprintf(path, sizeof path, "/kv/%s", key);
    snprintf(lease, sizeof lease, "ETagKV-Lease: %s", id);
    code = http(&r, "PUT", path, h, "held");
    if (etag != NULL && hu_hdr(&r, "ETag") != NULL)
        snprintf(etag, 128, "%s", hu_hdr(&r, "ETag"));
    hu_resp_free(&r);
    return code;
}

/* GET /leases/{id} parsed (NULL when not 200). */
static json_t *show(const char *id)
{
    char path[64];
    struct hu_resp r;
    json_t *j = NULL;

    snprintf(path, sizeof path, "/leases/%s", id);
    if (http(&r, "GET", path, NULL, NULL) == 200)
        j = json_loads(r.body, 0, NULL);
    hu_resp_free(&r);
    return j;
}

/* Long-poll GET /kv/{key} while its ETag is etag, up to wait_s: the
 * status (200, 304 at the timeout, 404 once deleted). */
static long long_poll(const char *key, const char *etag, int wait_s)
{
    char path[128], inm[160], prefer[32];
    const char *h[] = {inm, prefer, NULL};

    snprintf(path, sizeof path, "/kv/%s", key);
    snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
    snprintf(prefer, sizeof prefer, "Prefer: wait=%d", wait_s);
    return status_of("GET", path, h, NULL);
}

START_TEST(grant_show_keepalive_and_revoke_over_http)
{
    char id[32], path[64];
    struct hu_resp r;
    json_t *j;

    grant(60000, id);
    ck_assert_int_eq(put_leased("a", id, NULL, NULL), 201);
    ck_assert_int_eq(put_leased("b", id, NULL, NULL), 201);
    j = show(id);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "id")), id);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "ttl_ms")), 60000);
    ck_assert_int_le(json_integer_value(json_object_get(j, "remaining_ms")),
                     60000);
    ck_assert_int_gt(json_integer_value(json_object_get(j, "remaining_ms")),
                     50000);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "keys")), 2);
    json_decref(j);
    /* HEAD works wherever GET does (docs/http.md). */
    snprintf(path, sizeof path, "/leases/%s", id);
    ck_assert_int_eq(status_of("HEAD", path, NULL, NULL), 200);

    snprintf(path, sizeof path, "/leases/%s/keepalive", id);
    ck_assert_int_eq(http(&r, "POST", path, NULL, NULL), 200);
    j = json_loads(r.body, 0, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "remaining_ms")),
                     60000);
    json_decref(j);
    hu_resp_free(&r);

    snprintf(path, sizeof path, "/leases/%s", id);
    ck_assert_int_eq(http(&r, "DELETE", path, NULL, NULL), 204);
    ck_assert_ptr_nonnull(hu_hdr(&r, "ETagKV-Revision"));
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("GET", "/kv/a", NULL, NULL), 404);
    ck_assert_int_eq(status_of("GET", "/kv/b", NULL, NULL), 404);
    /* Unknown from now on. */
    ck_assert_int_eq(status_of("GET", path, NULL, NULL), 404);
    ck_assert_int_eq(status_of("DELETE", path, NULL, NULL), 404);
    snprintf(path, sizeof path, "/leases/%s/keepalive", id);
    ck_assert_int_eq(status_of("POST", path, NULL, NULL), 404);
}
END_TEST

/* DESIGN §9: bounds, malformed bodies and ids, and a write naming an
 * unknown lease (409, nothing written, whatever its preconditions). */
START_TEST(bad_requests_and_unknown_leases_are_refused)
{
    static const char *const form[] = {
        "Content-Type: application/x-www-form-urlencoded", NULL};
    char id[32];

    ck_assert_int_eq(status_of("POST", "/leases", json_ct, "{\"ttl_ms\": 99}"),
                     400);
    ck_assert_int_eq(
        status_of("POST", "/leases", json_ct, "{\"ttl_ms\": 86400001}"), 400);
    ck_assert_int_eq(status_of("POST", "/leases", json_ct, "{\"ttl\": 1000}"),
                     400);
    ck_assert_int_eq(status_of("POST", "/leases", json_ct, "nonsense"), 400);
    ck_assert_int_eq(status_of("POST", "/leases", form, "{\"ttl_ms\": 1000}"),
                     415);
    ck_assert_int_eq(status_of("GET", "/leases", NULL, NULL), 405);
    ck_assert_int_eq(status_of("PUT", "/leases/1", NULL, "x"), 405);
    {
        struct hu_resp r;

        hu_fixture_call(&fx, &r, "PATCH", "/leases/1", NULL, NULL, 0);
        ck_assert_int_eq(r.code, 405);
        ck_assert_str_eq(hu_hdr(&r, "Allow"), "GET, HEAD, DELETE");
        hu_resp_free(&r);
    }
    ck_assert_int_eq(status_of("GET", "/leases/1/keepalive", NULL, NULL), 405);
    ck_assert_int_eq(status_of("GET", "/leases/abc", NULL, NULL), 404);
    ck_assert_int_eq(status_of("GET", "/leases/0", NULL, NULL), 404);
    ck_assert_int_eq(status_of("POST", "/leases/1/other", NULL, NULL), 404);
    ck_assert_int_eq(status_of("GET", "/leases/424242", NULL, NULL), 404);

    ck_assert_int_eq(put_leased("k", "x1", NULL, NULL), 400);
    ck_assert_int_eq(put_leased("k", "424242", NULL, NULL), 409);
    ck_assert_int_eq(put_leased("k", "424242", "If-Match: *", NULL), 409);
    /* The 409 says why (not only "conflict"). */
    {
        static const char *const h[] = {"ETagKV-Lease: 424242", NULL};
        struct hu_resp r;

        ck_assert_int_eq(http(&r, "PUT", "/kv/k", h, "held"), 409);
        ck_assert_ptr_nonnull(strstr(r.body, "unknown, revoked or expired"));
        hu_resp_free(&r);
    }
    ck_assert_int_eq(status_of("GET", "/kv/k", NULL, NULL), 404);
    grant(60000, id); /* alive for the whole test, on any machine */
    ck_assert_int_eq(put_leased("k", id, "If-Match: *", NULL), 412);
    /* A live lease has one spelling: a proxy's rule on /leases/7 is not
     * passed by /leases/007. */
    {
        char zero[40], path[80];

        snprintf(zero, sizeof zero, "0%s", id);
        snprintf(path, sizeof path, "/leases/%s", zero);
        ck_assert_int_eq(status_of("GET", path, NULL, NULL), 404);
        ck_assert_int_eq(status_of("DELETE", path, NULL, NULL), 404);
        ck_assert_int_eq(put_leased("k", zero, NULL, NULL), 400);
        snprintf(path, sizeof path, "/leases/%s", id);
        ck_assert_int_eq(status_of("GET", path, NULL, NULL), 200);
    }

    /* ETagKV-Lease anywhere but PUT /kv/{key} is 400, never ignored: a
     * transaction's put would be written without its lease. */
    {
        char lease[64], json_lease[64];
        const char *const lease_hdr[] = {lease, NULL};
        const char *const txn_hdr[] = {json_ct[0], json_lease, NULL};

        snprintf(lease, sizeof lease, "ETagKV-Lease: %s", id);
        snprintf(json_lease, sizeof json_lease, "ETagKV-Lease: %s", id);
        ck_assert_int_eq(status_of("POST", "/txn", txn_hdr,
                                   "{\"ops\":[{\"op\":\"put\",\"key\":"
                                   "\"lock/txn\",\"value\":\"me\"}]}"),
                         400);
        ck_assert_int_eq(status_of("GET", "/kv/lock/txn", NULL, NULL), 404);
        ck_assert_int_eq(status_of("GET", "/changes", lease_hdr, NULL), 400);
        ck_assert_int_eq(status_of("GET", "/kv/", lease_hdr, NULL), 400);
        ck_assert_int_eq(status_of("GET", "/leases/1", lease_hdr, NULL), 400);
        ck_assert_int_eq(status_of("DELETE", "/kv/k", lease_hdr, NULL), 400);
    }

    /* Conditions and Idempotency-Key do not apply to leases: 400, never
     * ignored (a revoke "if" deleted the keys whatever it said; a grant
     * retried with a key made a second lease). */
    {
        static const char *const conds[] = {
            "If-Match: \"nope\"", "If-None-Match: *",
            "If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT",
            "ETagKV-If-Revision: 1"};
        static const char *const idem[] = {"Content-Type: application/json",
                                           "Idempotency-Key: grant-1", NULL};
        char path[80], keepalive[96];

        snprintf(path, sizeof path, "/leases/%s", id);
        snprintf(keepalive, sizeof keepalive, "%s/keepalive", path);
        ck_assert_int_eq(put_leased("lock/held", id, NULL, NULL), 201);
        for (size_t i = 0; i < sizeof conds / sizeof *conds; i++) {
            const char *const h[] = {conds[i], NULL};
            const char *const g[] = {json_ct[0], conds[i], NULL};

            ck_assert_int_eq(status_of("DELETE", path, h, NULL), 400);
            ck_assert_int_eq(status_of("POST", keepalive, h, NULL), 400);
            ck_assert_int_eq(status_of("GET", path, h, NULL), 400);
            ck_assert_int_eq(
                status_of("POST", "/leases", g, "{\"ttl_ms\": 60000}"), 400);
        }
        ck_assert_int_eq(
            status_of("POST", "/leases", idem, "{\"ttl_ms\": 60000}"), 400);
        ck_assert_int_eq(status_of("DELETE", path, idem, NULL), 400);
        /* Nothing was revoked, nothing granted. */
        ck_assert_int_eq(status_of("GET", path, NULL, NULL), 200);
        ck_assert_int_eq(status_of("GET", "/kv/lock/held", NULL, NULL), 200);
        ck_assert_int_eq(
            hu_metric_await(fx.ua, fx.srv.port,
                            "etagkv_leases_total{event=\"granted\"}", 1, 5),
            1);
    }
}
END_TEST

/* Expiry by the store: a watcher long-polling the key gets 404 once the
 * TTL has passed (never before), and /metrics counts the expiry. */
START_TEST(an_expired_lease_deletes_its_key_and_a_long_poll_sees_it)
{
    char id[32], etag[128];
    double t0 = tu_now_s(), waited;

    /* 2 s: the PUT must attach the key before the lease ends, a Raft
     * commit on a loaded machine included. */
    grant(2000, id);
    ck_assert_int_eq(put_leased("session", id, NULL, etag), 201);
    ck_assert_int_eq(long_poll("session", etag, 20), 404);
    waited = tu_now_s() - t0;
    ck_assert_msg(waited >= 2.0, "gone after %.3f s, TTL 2 s", waited);
    ck_assert_ptr_null(show(id));
    ck_assert_int_eq(hu_metric_await(fx.ua, fx.srv.port,
                                     "etagkv_leases_total{event=\"expired\"}",
                                     1, 10),
                     1);
}
END_TEST

#ifdef ETAGKV_CLI_BIN
/* A lease granted by another process (here the CLI, which then exits; on
 * etcd, another front end) expires in the server too, though the server
 * itself never granted one: its sweeper looks again at least every second
 * (it used to sleep until a grant of its own woke it, so the key stayed
 * until then). */
START_TEST(a_lease_granted_by_another_process_expires_in_the_server)
{
    char data[600], where[700], cmd[2048], out[256], path[] = "/kv/elsewhere";
    double t0;
    long code = 0;
    FILE *p;
    json_t *j;
    size_t n;

    snprintf(data, sizeof data, "%s/data", fx.dir);
    snprintf(where, sizeof where, "%s",
             tu_on_etcd() ? tu_store_where(data, cmd, sizeof cmd) : data);
    snprintf(cmd, sizeof cmd, "'%s' -d '%s' lease grant 5000", ETAGKV_CLI_BIN,
             where);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    ck_assert_int_eq(pclose(p), 0);
    j = json_loads(out, 0, NULL);
    ck_assert_msg(j != NULL && json_is_string(json_object_get(j, "id")), "%s",
                  out);
    snprintf(
        cmd, sizeof cmd,
        "printf held | '%s' -d '%s' put elsewhere - --lease %s 2>/dev/null",
        ETAGKV_CLI_BIN, where, json_string_value(json_object_get(j, "id")));
    json_decref(j);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(status_of("GET", path, NULL, NULL), 200);
    t0 = tu_now_s();
    while (tu_now_s() - t0 < 15 &&
           (code = status_of("GET", path, NULL, NULL)) == 200)
        (void)usleep(50 * 1000);
    ck_assert_msg(code == 404, "the key is still there %.1f s later (TTL 5 s)",
                  tu_now_s() - t0);
}
END_TEST
#endif

/* The lock recipe (docs/http.md): acquire = lease + create-only PUT;
 * while the holder renews, a waiter's create-only PUT is 412 and its
 * long-poll times out with 304; once the holder stops renewing (it died),
 * the key disappears, the long-poll returns 404 and the waiter acquires. */
START_TEST(the_lock_recipe_hands_the_lock_over_when_the_holder_dies)
{
    char holder[32], waiter[32], etag[128], path[64];

    /* The holder renews every second or so for three seconds, past its
     * TTL: 1.4 s of slack for each renewal on a loaded machine. */
    grant(2400, holder);
    ck_assert_int_eq(put_leased("lock", holder, "If-None-Match: *", etag), 201);
    grant(60000, waiter);
    ck_assert_int_eq(put_leased("lock", waiter, "If-None-Match: *", NULL), 412);
    snprintf(path, sizeof path, "/leases/%s/keepalive", holder);
    for (int i = 0; i < 3; i++) {
        /* The holder renews: the waiter keeps waiting (304 at timeout). */
        ck_assert_int_eq(status_of("POST", path, NULL, NULL), 200);
        ck_assert_int_eq(long_poll("lock", etag, 0), 304);
        usleep(1000 * 1000);
    }
    ck_assert_int_eq(status_of("POST", path, NULL, NULL), 200);
    /* The holder dies now: no more keepalives. */
    ck_assert_int_eq(long_poll("lock", etag, 20), 404);
    ck_assert_int_eq(put_leased("lock", waiter, "If-None-Match: *", NULL), 201);
    ck_assert_int_eq(status_of("POST", path, NULL, NULL), 404);
}
END_TEST

/* DESIGN §9: deadlines survive a restart, and a lease whose deadline
 * passed while the server was down gets its full TTL again from the
 * open. */
START_TEST(a_restarted_server_gives_live_leases_their_full_ttl_again)
{
    static const char *const opts[] = {"--threads", "2", NULL};
    char id[32], etag[128];
    json_t *j;

    grant(4000, id);
    ck_assert_int_eq(put_leased("owned", id, NULL, etag), 201);
    hu_server_kill(&fx.srv);
    usleep(4200 * 1000); /* past its deadline while down */
    hu_server_restart(&fx.srv, opts);
    j = show(id);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_gt(json_integer_value(json_object_get(j, "remaining_ms")),
                     1000);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "keys")), 1);
    json_decref(j);
    ck_assert_int_eq(status_of("GET", "/kv/owned", NULL, NULL), 200);
    ck_assert_int_eq(long_poll("owned", etag, 20), 404);
}
END_TEST

START_TEST(a_transaction_put_takes_a_lease)
{
    char id[32], body[256];
    struct hu_resp r;
    json_t *j;

    grant(60000, id);
    snprintf(body, sizeof body,
             "{\"ops\":[{\"op\":\"put\",\"key\":\"t\",\"value\":\"v\","
             "\"lease\":\"%s\"}]}",
             id);
    ck_assert_int_eq(status_of("POST", "/txn", json_ct, body), 200);
    j = show(id);
    ck_assert_str_eq(
        json_string_value(json_array_get(json_object_get(j, "keys"), 0)), "t");
    json_decref(j);
    ck_assert_int_eq(
        http(&r, "POST", "/txn", json_ct,
             "{\"ops\":[{\"op\":\"put\",\"key\":\"u\",\"value\":\"v\","
             "\"lease\":\"777777\"}]}"),
        409);
    j = json_loads(r.body, 0, NULL);
    ck_assert_int_eq(
        json_integer_value(json_object_get(
            json_array_get(json_object_get(j, "results"), 0), "status")),
        409);
    json_decref(j);
    hu_resp_free(&r);
    ck_assert_int_eq(
        status_of("POST", "/txn", json_ct,
                  "{\"ops\":[{\"op\":\"delete\",\"key\":\"t\",\"lease\":\"1\"}"
                  "]}"),
        400);
    ck_assert_int_eq(status_of("GET", "/kv/u", NULL, NULL), 404);
}
END_TEST

/* --lease-min-ttl-ms, --lease-max-ttl-ms and --max-leases bound POST
 * /leases; a grant past the limit is 503 with Retry-After (RFC 9110
 * §10.2.3), and succeeds again once a lease is revoked. */
START_TEST(the_lease_options_bound_grants_and_the_limit_is_503_retry_after)
{
    static const char *const opts[] = {
        "--nosync", "--max-leases",       "2",     "--lease-min-ttl-ms",
        "500",      "--lease-max-ttl-ms", "20000", NULL};
    char a[32], b[32], path[64];
    struct hu_resp r;

    hu_server_stop(&fx.srv);
    hu_server_restart(&fx.srv, opts);
    ck_assert_int_eq(status_of("POST", "/leases", json_ct, "{\"ttl_ms\": 499}"),
                     400);
    ck_assert_int_eq(
        status_of("POST", "/leases", json_ct, "{\"ttl_ms\": 20001}"), 400);
    /* Leases that outlive the test: an expiry would free a place. */
    grant(20000, a);
    grant(20000, b);
    http(&r, "POST", "/leases", json_ct, "{\"ttl_ms\": 1000}");
    ck_assert_int_eq(r.code, 503);
    ck_assert_pstr_eq(hu_hdr(&r, "Retry-After"), "1");
    ck_assert_ptr_nonnull(strstr(r.body, "lease-limit"));
    hu_resp_free(&r);
    snprintf(path, sizeof path, "/leases/%s", b);
    ck_assert_int_eq(status_of("DELETE", path, NULL, NULL), 204);
    grant(500, b); /* the least TTL allowed */
}
END_TEST

/* --max-lease-keys: a put that would attach one more key to a full lease
 * is 409, saying so, and writes nothing. */
START_TEST(a_full_lease_takes_no_more_keys_and_says_so)
{
    static const char *const opts[] = {"--nosync", "--max-lease-keys", "2",
                                       NULL};
    char id[32], lease[64];
    const char *const h[] = {lease, NULL};
    struct hu_resp r;

    hu_server_stop(&fx.srv);
    hu_server_restart(&fx.srv, opts);
    grant(60000, id);
    ck_assert_int_eq(put_leased("one", id, NULL, NULL), 201);
    ck_assert_int_eq(put_leased("two", id, NULL, NULL), 201);
    snprintf(lease, sizeof lease, "ETagKV-Lease: %s", id);
    ck_assert_int_eq(http(&r, "PUT", "/kv/three", h, "held"), 409);
    ck_assert_msg(strstr(r.body, "--max-lease-keys") != NULL, "%s", r.body);
    hu_resp_free(&r);
    ck_assert_int_eq(status_of("GET", "/kv/three", NULL, NULL), 404);
    ck_assert_int_eq(put_leased("two", id, NULL, NULL), 200);
    ck_assert_int_eq(status_of("DELETE", "/kv/one", NULL, NULL), 204);
    ck_assert_int_eq(put_leased("three", id, NULL, NULL), 201);
}
END_TEST

/* A PUT made on a thread of its own (its own libcurl handle), for a
 * request the server holds. */
struct held_put {
    int port;
    const char *path;
    const char *const *headers;
    struct hu_resp r;
    double took_s;
    pthread_t thread;
};

static void *held_put_main(void *arg)
{
    struct held_put *p = arg;
    struct hu_req q = {"PUT", p->path, p->headers, "next", 4};
    CURL *h = curl_easy_init();
    double t0 = tu_now_s();

    if (h == NULL)
        return NULL;
    hu_perform(h, p->port, &q, &p->r, 60);
    p->took_s = tu_now_s() - t0;
    curl_easy_cleanup(h);
    return NULL;
}

/* The lock with Prefer: wait: a waiter's create-only PUT is held while the
 * lock is taken (/metrics counts it), and the holder's release commits
 * the waiter's acquire with it: 201 at the revision after the delete's. */
START_TEST(a_waiting_acquire_takes_the_lock_with_the_release)
{
    static const char *const create[] = {"If-None-Match: *", NULL};
    static const char *const waiting[] = {"If-None-Match: *", "Prefer: wait=30",
                                          NULL};
    struct held_put p = {
        .port = fx.srv.port, .path = "/kv/wlock", .headers = waiting};
    struct hu_resp r;
    long long released;

    ck_assert_int_eq(http(&r, "PUT", "/kv/wlock", create, "holder"), 201);
    hu_resp_free(&r);
    ck_assert_int_eq(pthread_create(&p.thread, NULL, held_put_main, &p), 0);
    ck_assert_int_eq(
        hu_metric_await(fx.ua, fx.srv.port, "etagkv_writes_waiting", 1, 20), 1);
    ck_assert_int_eq(http(&r, "DELETE", "/kv/wlock", NULL, NULL), 204);
    released = atoll(hu_hdr(&r, "ETagKV-Revision"));
    hu_resp_free(&r);
    ck_assert_int_eq(pthread_join(p.thread, NULL), 0);
    ck_assert_int_eq(p.r.err, CURLE_OK);
    ck_assert_int_eq(p.r.code, 201);
    ck_assert_str_eq(hu_hdr(&p.r, "Preference-Applied"), "wait=30");
    ck_assert_int_eq(atoll(hu_hdr(&p.r, "ETagKV-Revision")), released + 1);
    hu_resp_free(&p.r);
    ck_assert_int_eq(http(&r, "GET", "/kv/wlock", NULL, NULL), 200);
    ck_assert_str_eq(r.body, "next");
    hu_resp_free(&r);
}
END_TEST

/* A wait that ends is the 412 it would have been, with Preference-Applied;
 * with an Idempotency-Key the preference is ignored (412 at once, no
 * Preference-Applied); an unconditional PUT never waits. */
START_TEST(a_waiting_write_ends_in_412_and_some_do_not_wait)
{
    static const char *const waiting[] = {"If-None-Match: *", "Prefer: wait=1",
                                          NULL};
    static const char *const keyed[] = {"If-None-Match: *", "Prefer: wait=30",
                                        "Idempotency-Key: \"w-1\"", NULL};
    static const char *const plain[] = {"Prefer: wait=30", NULL};
    struct hu_resp r;
    double t0;

    ck_assert_int_eq(status_of("PUT", "/kv/taken", NULL, "v"), 201);
    t0 = tu_now_s();
    ck_assert_int_eq(http(&r, "PUT", "/kv/taken", waiting, "mine"), 412);
    ck_assert(tu_now_s() - t0 >= 1.0);
    ck_assert_str_eq(hu_hdr(&r, "Preference-Applied"), "wait=1");
    hu_resp_free(&r);
    ck_assert_int_eq(http(&r, "PUT", "/kv/taken", keyed, "mine"), 412);
    ck_assert_ptr_null(hu_hdr(&r, "Preference-Applied"));
    hu_resp_free(&r);
    ck_assert_int_eq(http(&r, "PUT", "/kv/taken", plain, "w"), 200);
    ck_assert_ptr_null(hu_hdr(&r, "Preference-Applied"));
    hu_resp_free(&r);
    ck_assert_int_eq(http(&r, "GET", "/kv/taken", NULL, NULL), 200);
    ck_assert_str_eq(r.body, "w");
    hu_resp_free(&r);
}
END_TEST

/* DESIGN §8: a write that may wait holds its connection as a long-poll
 * does, so it counts against --max-watchers.  With one watcher allowed and
 * one acquire waiting: a long-poll is turned away with 503 (and the
 * connection closed); a second waiting acquire does not wait -- its
 * preference is ignored (RFC 7240), so a 412 at once, without
 * Preference-Applied -- and a write whose conditions hold is applied; once
 * the waiter is done, its place is free again. */
START_TEST(waiting_writes_count_against_max_watchers)
{
    static const char *const opts[] = {"--threads",      "4", "--nosync",
                                       "--max-watchers", "1", NULL};
    static const char *const create[] = {"If-None-Match: *", NULL};
    static const char *const waiting[] = {"If-None-Match: *", "Prefer: wait=30",
                                          NULL};
    static const char *const brief[] = {"If-None-Match: *", "Prefer: wait=1",
                                        NULL};
    struct held_put p = {.path = "/kv/mlock", .headers = waiting};
    char inm[160];
    const char *poll[] = {inm, "Prefer: wait=30", NULL};
    struct hu_resp r;
    double t0;

    fixture_stop();
    hu_fixture_init(&fx);
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    p.port = fx.srv.port;
    ck_assert_int_eq(http(&r, "PUT", "/kv/mlock", create, "holder"), 201);
    snprintf(inm, sizeof inm, "If-None-Match: %s", hu_hdr(&r, "ETag"));
    hu_resp_free(&r);
    ck_assert_int_eq(pthread_create(&p.thread, NULL, held_put_main, &p), 0);
    ck_assert_int_eq(
        hu_metric_await(fx.ua, fx.srv.port, "etagkv_writes_waiting", 1, 20), 1);

    t0 = tu_now_s();
    ck_assert_int_eq(http(&r, "PUT", "/kv/mlock", waiting, "second"), 412);
    ck_assert_msg(tu_now_s() - t0 < 10, "the refused wait took %.1f s",
                  tu_now_s() - t0);
    ck_assert_ptr_null(hu_hdr(&r, "Preference-Applied"));
    hu_resp_free(&r);
    ck_assert_int_eq(http(&r, "GET", "/kv/mlock", poll, NULL), 503);
    ck_assert_str_eq(hu_hdr(&r, "Retry-After"), "1");
    ck_assert_str_eq(hu_hdr(&r, "Connection"), "close");
    ck_assert_ptr_nonnull(strstr(r.body, "too-many-watchers"));
    hu_resp_free(&r);
    ck_assert_int_eq(http(&r, "PUT", "/kv/free", waiting, "mine"), 201);
    ck_assert_ptr_null(hu_hdr(&r, "Preference-Applied"));
    hu_resp_free(&r);
    ck_assert_int_eq(http(&r, "GET", "/kv/mlock", NULL, NULL), 200);
    ck_assert_str_eq(r.body, "holder");
    hu_resp_free(&r);

    ck_assert_int_eq(status_of("DELETE", "/kv/mlock", NULL, NULL), 204);
    ck_assert_int_eq(pthread_join(p.thread, NULL), 0);
    ck_assert_int_eq(p.r.err, CURLE_OK);
    ck_assert_int_eq(p.r.code, 201);
    hu_resp_free(&p.r);
    ck_assert_int_eq(
        hu_metric_await(fx.ua, fx.srv.port, "etagkv_writes_waiting", 0, 20), 0);
    ck_assert_int_eq(http(&r, "PUT", "/kv/mlock", brief, "third"), 412);
    ck_assert_str_eq(hu_hdr(&r, "Preference-Applied"), "wait=1");
    hu_resp_free(&r);
}
END_TEST

/* etagkv_writes_waiting on /metrics, once it is at most `want`, or its
 * last value after timeout_s seconds. */
static int64_t waiting_at_most(int64_t want, double timeout_s)
{
    double end = tu_now_s() + timeout_s;
    int64_t n;

    for (;;) {
        struct hu_resp r;

        ck_assert_int_eq(http(&r, "GET", "/metrics", NULL, NULL), 200);
        n = hu_metric(r.body, "etagkv_writes_waiting");
        hu_resp_free(&r);
        if (n <= want || tu_now_s() >= end)
            return n;
        (void)usleep(20000);
    }
}

/* A waiting acquire whose client hangs up no longer waits (the server
 * ends its wait), so the release does not hand the lock to nobody: the
 * key stays free. */
START_TEST(a_waiting_acquire_whose_client_hangs_up_takes_nothing)
{
    static const char *const create[] = {"If-None-Match: *", NULL};
    static const char req[] = "PUT /kv/glock HTTP/1.1\r\n"
                              "Host: 127.0.0.1\r\n"
                              "If-None-Match: *\r\n"
                              "Prefer: wait=30\r\n"
                              "Content-Length: 5\r\n"
                              "\r\n"
                              "ghost";
    struct hu_resp r;
    int fd;

    ck_assert_int_eq(http(&r, "PUT", "/kv/glock", create, "holder"), 201);
    hu_resp_free(&r);
    fd = hu_connect(fx.srv.port);
    ck_assert_int_eq(write(fd, req, sizeof req - 1), (ssize_t)sizeof req - 1);
    ck_assert_int_eq(
        hu_metric_await(fx.ua, fx.srv.port, "etagkv_writes_waiting", 1, 20), 1);
    ck_assert_int_eq(close(fd), 0);
    ck_assert_int_eq(waiting_at_most(0, 20), 0);
    ck_assert_int_eq(status_of("DELETE", "/kv/glock", NULL, NULL), 204);
    ck_assert_int_eq(status_of("GET", "/kv/glock", NULL, NULL), 404);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("leases_http");
    TCase *tc = tcase_create("leases_http");

    tcase_add_checked_fixture(tc, fixture_start, fixture_stop);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, grant_show_keepalive_and_revoke_over_http);
#ifdef ETAGKV_CLI_BIN
    tcase_add_test(tc,
                   a_lease_granted_by_another_process_expires_in_the_server);
#endif
    tcase_add_test(tc, bad_requests_and_unknown_leases_are_refused);
    tcase_add_test(tc,
                   an_expired_lease_deletes_its_key_and_a_long_poll_sees_it);
    tcase_add_test(tc,
                   the_lock_recipe_hands_the_lock_over_when_the_holder_dies);
    tcase_add_test(tc,
                   a_restarted_server_gives_live_leases_their_full_ttl_again);
    tcase_add_test(tc, a_transaction_put_takes_a_lease);
    tcase_add_test(tc, a_full_lease_takes_no_more_keys_and_says_so);
    tcase_add_test(tc, a_waiting_acquire_takes_the_lock_with_the_release);
    tcase_add_test(tc, a_waiting_write_ends_in_412_and_some_do_not_wait);
    tcase_add_test(tc, waiting_writes_count_against_max_watchers);
    tcase_add_test(tc, a_waiting_acquire_whose_client_hangs_up_takes_nothing);
    tcase_add_test(
        tc, the_lease_options_bound_grants_and_the_limit_is_503_retry_after);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
