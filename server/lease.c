/*
 * lease.c -- the lease endpoints (DESIGN §9), one library call each:
 *
 *   POST   /leases {"ttl_ms": N}       201 {"id", "ttl_ms"} + Location
 *   GET    /leases/{id}                200 {"id", "ttl_ms", "remaining_ms",
 *                                           "keys": [key | {"key_base64"}]}
 *   POST   /leases/{id}/keepalive      200 {"id", "ttl_ms", "remaining_ms"}
 *   DELETE /leases/{id}                204 (ETagKV-Revision of the deletes)
 *
 * An unknown, revoked or expired id is 404.  Admission (admit.c) has
 * checked the method, the JSON Content-Type and the body's size, and
 * parsed the id.  Ids travel as strings of decimal digits.
 *
 * Grant, keepalive and revoke block this worker thread until durable (one
 * group commit), unlike PUT, which suspends its connection: they are rare
 * next to writes (a keepalive per lease per third of its TTL).
 */
#include "server.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A problem for a failed lease call: its detail is the library's. */
static enum MHD_Result failed(struct srv *s, struct MHD_Connection *c,
                              struct srv_req *r, etagkv_status st)
{
    const char *detail = st == ETAGKV_NOT_FOUND
                             ? "no live lease with this id (unknown, revoked "
                               "or past its deadline)"
                             : etagkv_last_error_detail();

    struct MHD_Response *resp =
        srv_status_problem(st, detail[0] != '\0' ? detail : NULL);

    /* --max-leases reached: leases are freed as they expire or are
     * revoked, so a retry soon may succeed (RFC 9110 §10.2.3). */
    if (st == ETAGKV_LEASE_LIMIT)
        resp = srv_retry_after(resp, SRV_RETRY_AFTER_S);
    else if (etagkv_status_http(st) >= 500)
        fprintf(stderr, "etagkv-server: lease: %s (%s)\n", etagkv_strerror(st),
                etagkv_last_error_detail());
    return srv_queue(s, c, r, (unsigned)etagkv_status_http(st), resp);
}

/* The ttl_ms of a POST /leases body: an object with that one member, a
 * positive integer.  0, or -1. */
static int ttl_of(const struct srv_req *r, uint64_t *ttl_ms)
{
    json_t *j = json_loadb(r->body != NULL ? r->body : "", r->body_len,
                           JSON_REJECT_DUPLICATES, NULL);
    json_t *t = json_object_get(j, "ttl_ms");
    int ok = json_is_object(j) && json_object_size(j) == 1 &&
             json_is_integer(t) && json_integer_value(t) > 0;

    if (ok)
        *ttl_ms = (uint64_t)json_integer_value(t);
    json_decref(j);
    return ok ? 0 : -1;
}

static enum MHD_Result grant(struct srv *s, struct MHD_Connection *c,
                             struct srv_req *r)
{
    etagkv_lease l = {0};
    struct MHD_Response *resp;
    char loc[40];
    etagkv_status st;

    if (ttl_of(r, &l.ttl_ms) != 0)
        return srv_queue(s, c, r, MHD_HTTP_BAD_REQUEST,
                         srv_status_problem(ETAGKV_INVALID_ARGUMENT,
                                            "the body must be {\"ttl_ms\": N}, "
                                            "N a positive integer"));
    st = etagkv_lease_grant(s->store, l.ttl_ms, &l.id);
    if (st != ETAGKV_OK)
        return failed(s, c, r, st);
    resp = srv_json_response(srv_lease_json(&l, 0));
    snprintf(loc, sizeof loc, "/leases/%" PRIu64, l.id);
    if (resp != NULL &&
        srv_add_header(resp, MHD_HTTP_HEADER_LOCATION, loc) != 0) {
        MHD_destroy_response(resp);
        resp = NULL;
    }
    return srv_queue(s, c, r, MHD_HTTP_CREATED, resp);
}

/* Append one attached key to the array ctx: a string when it is UTF-8,
 * else {"key_base64"}. */
static int key_into(void *ctx, const void *key, size_t len)
{
    json_t *k = srv_utf8_valid(key, len) ? json_stringn(key, len)
                                         : json_pack("{s:o*}", "key_base64",
                                                     srv_json_base64(key, len));

    return k == NULL || json_array_append_new(ctx, k) != 0;
}

static enum MHD_Result show(struct srv *s, struct MHD_Connection *c,
                            struct srv_req *r)
{
    etagkv_lease l;
    json_t *keys = json_array(), *j;
    etagkv_status st = keys == NULL ? ETAGKV_NO_MEMORY
                                    : etagkv_lease_info(s->store, r->lease, &l,
                                                        key_into, keys);

    if (st == ETAGKV_OK && json_array_size(keys) != l.keys)
        st = ETAGKV_NO_MEMORY; /* key_into failed part of the way */
    if (st != ETAGKV_OK) {
        json_decref(keys);
        return failed(s, c, r, st);
    }
    j = srv_lease_json(&l, 1);
    if (j != NULL && json_object_set_new(j, "keys", keys) != 0) {
        json_decref(j);
        j = NULL;
    } else if (j == NULL) {
        json_decref(keys);
    }
    return srv_queue(s, c, r, MHD_HTTP_OK, srv_json_response(j));
}

static enum MHD_Result keepalive(struct srv *s, struct MHD_Connection *c,
                                 struct srv_req *r)
{
    etagkv_lease l;
    etagkv_status st = etagkv_lease_keepalive(s->store, r->lease, &l);

    if (st != ETAGKV_OK)
        return failed(s, c, r, st);
    return srv_queue(s, c, r, MHD_HTTP_OK,
                     srv_json_response(srv_lease_json(&l, 1)));
}

static enum MHD_Result revoke(struct srv *s, struct MHD_Connection *c,
                              struct srv_req *r)
{
    uint64_t rev = 0;
    struct MHD_Response *resp;
    char v[24];
    etagkv_status st = etagkv_lease_revoke(s->store, r->lease, &rev);

    if (st != ETAGKV_OK)
        return failed(s, c, r, st);
    resp = srv_empty_response();
    snprintf(v, sizeof v, "%" PRIu64, rev);
    if (resp != NULL && rev > 0 &&
        srv_add_header(resp, "ETagKV-Revision", v) != 0) {
        MHD_destroy_response(resp);
        resp = NULL;
    }
    return srv_queue(s, c, r, MHD_HTTP_NO_CONTENT, resp);
}

enum MHD_Result srv_lease(struct srv *s, struct MHD_Connection *c,
                          struct srv_req *r)
{
    if (r->route == SRV_ROUTE_LEASES)
        return grant(s, c, r);
    if (r->lease_keepalive)
        return keepalive(s, c, r);
    return r->method == SRV_DELETE ? revoke(s, c, r) : show(s, c, r);
}
