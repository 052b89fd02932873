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
 * Grant, keepalive and revoke are submitted to the library
 * (etagkv_lease_submit) and their connection suspended until durable, as
 * a PUT's (kv.c): no worker thread, and so none of the other connections
 * its event loop serves, waits for the disk.  GET reads a snapshot.
 */
#include "server.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A problem for a failed lease call: its detail is the library's (lib).
 * rev: the revision of the deletes it made all the same (a revoke or
 * keepalive that found its lease dead deletes its keys), or 0. */
static enum MHD_Result failed(struct srv *s, struct MHD_Connection *c,
                              struct srv_req *r, etagkv_status st,
                              const char *lib, uint64_t rev)
{
    const char *detail = st == ETAGKV_NOT_FOUND
                             ? "no live lease with this id (unknown, revoked "
                               "or past its deadline)"
                             : lib;
    struct MHD_Response *resp = srv_with_revision(
        srv_status_problem(st, detail[0] != '\0' ? detail : NULL), rev);

    /* --max-leases reached (503) carries Retry-After: leases are freed as
     * they expire or are revoked (srv_status_problem()). */
    if (st != ETAGKV_LEASE_LIMIT && etagkv_status_http(st) >= 500)
        fprintf(stderr, "etagkv-server: lease: %s (%s)\n", etagkv_strerror(st),
                lib);
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

/* The completion of a submitted lease call, on a library thread: keep the
 * outcome (and the failure's text, readable on this thread only) and
 * resume the connection, as a write's (kv.c). */
static void lease_done(void *ctx, etagkv_status st, const etagkv_lease *l,
                       uint64_t revision)
{
    struct srv_req *r = ctx;
    etagkv_result res = {.status = st};

    r->lease_res = *l;
    res.meta.mod_revision = revision;
    snprintf(r->write_detail, sizeof r->write_detail, "%s",
             etagkv_last_error_detail());
    srv_write_done(r, &res);
}

/* Submit the lease call and suspend the connection; a call refused at
 * once completes here. */
static enum MHD_Result submit(struct srv *s, struct MHD_Connection *c,
                              struct srv_req *r, etagkv_lease_call call,
                              uint64_t arg)
{
    enum MHD_Result ret = srv_write_suspend(s, c, r);
    etagkv_status st;

    if (r->write_state != SRV_WRITE_PENDING)
        return ret; /* answered 503 */
    st = etagkv_lease_submit(s->store, call, arg, lease_done, r);
    if (st != ETAGKV_OK) {
        etagkv_lease none = {0};

        lease_done(r, st, &none, 0);
    }
    return MHD_YES;
}

static enum MHD_Result granted(struct srv *s, struct MHD_Connection *c,
                               struct srv_req *r)
{
    const etagkv_lease *l = &r->lease_res;
    struct MHD_Response *resp = srv_json_response(srv_lease_json(l, 0));
    char loc[40];

    snprintf(loc, sizeof loc, "/leases/%" PRIu64, l->id);
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
        return failed(s, c, r, st, etagkv_last_error_detail(), 0);
    }
    j = srv_lease_json(&l, 1);
    if (j != NULL && json_object_set_new(j, "keys", keys) != 0) {
        json_decref(j);
        j = NULL;
    } else if (j == NULL) {
        json_decref(keys);
    }
    return srv_queue_json_read(s, c, r, j); /* its keys: any number */
}

static enum MHD_Result revoked(struct srv *s, struct MHD_Connection *c,
                               struct srv_req *r, uint64_t rev)
{
    return srv_queue(s, c, r, MHD_HTTP_NO_CONTENT,
                     srv_with_revision(srv_empty_response(), rev));
}

/* POST /leases, POST /leases/{id}/keepalive, DELETE /leases/{id}: submit
 * the call, then, resumed, answer its outcome. */
static enum MHD_Result call(struct srv *s, struct MHD_Connection *c,
                            struct srv_req *r)
{
    etagkv_lease_call verb = r->route == SRV_ROUTE_LEASES
                                 ? ETAGKV_LEASE_CALL_GRANT
                             : r->lease_keepalive ? ETAGKV_LEASE_CALL_KEEPALIVE
                                                  : ETAGKV_LEASE_CALL_REVOKE;
    uint64_t arg = r->lease;
    etagkv_status st;

    if (r->write_state == SRV_WRITE_NONE) {
        if (verb == ETAGKV_LEASE_CALL_GRANT && ttl_of(r, &arg) != 0)
            return srv_queue(
                s, c, r, MHD_HTTP_BAD_REQUEST,
                srv_status_problem(ETAGKV_INVALID_ARGUMENT,
                                   "the body must be {\"ttl_ms\": N}, N a "
                                   "positive integer"));
        return submit(s, c, r, verb, arg);
    }
    st = r->write_res.status;
    if (st != ETAGKV_OK)
        return failed(s, c, r, st, r->write_detail,
                      r->write_res.meta.mod_revision);
    if (verb == ETAGKV_LEASE_CALL_GRANT)
        return granted(s, c, r);
    if (verb == ETAGKV_LEASE_CALL_KEEPALIVE)
        return srv_queue(s, c, r, MHD_HTTP_OK,
                         srv_json_response(srv_lease_json(&r->lease_res, 1)));
    return revoked(s, c, r, r->write_res.meta.mod_revision);
}

enum MHD_Result srv_lease(struct srv *s, struct MHD_Connection *c,
                          struct srv_req *r)
{
    if (r->route == SRV_ROUTE_LEASES || r->lease_keepalive ||
        r->method == SRV_DELETE)
        return call(s, c, r);
    return show(s, c, r);
}
