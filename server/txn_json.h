/*
 * txn_json.h -- the body of POST /txn (DESIGN §7) parsed into an
 * etagkv_txn, and the results of its commit as JSON (txn_json.c).  Not
 * API.
 *
 * Pure: jansson and the public libetagkv API only, no libmicrohttpd, so
 * that the server, the command-line tool (etagkv txn) and the fuzz target
 * (tests/fuzz/fuzz_txn.c) share one parser and one result format.
 */
#ifndef ETAGKV_TXN_JSON_H
#define ETAGKV_TXN_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "etagkv.h"

struct srv_txn_req;

/* Parse a POST /txn body (DESIGN §7) of len bytes into *out: a transaction
 * of at most max_ops operations.  Returns ETAGKV_OK; ETAGKV_TXN_TOO_LARGE
 * (413) for more operations; ETAGKV_INVALID_ARGUMENT (400) for anything
 * malformed -- not JSON, duplicate or unknown members, unknown ops, wrong
 * types, bad base64, a bad key or content type, an invalid entity-tag list
 * or a negative if_revision -- with a reason in detail (cap bytes);
 * ETAGKV_NO_MEMORY.  On failure *out is NULL.  Pure: no I/O. */
etagkv_status srv_txn_parse(const char *body, size_t len, size_t max_ops,
                            struct srv_txn_req **out, char *detail, size_t cap);

/* The parsed transaction, to commit (owned by q). */
etagkv_txn *srv_txn_handle(struct srv_txn_req *q);

/* 1 if q has a get (no Idempotency-Key then), 1 if it has a put or a
 * delete, and 1 if some put or delete has no condition (refused in
 * require-conditions mode). */
int srv_txn_has_get(const struct srv_txn_req *q);
int srv_txn_writes(const struct srv_txn_req *q);
int srv_txn_has_unconditional_write(const struct srv_txn_req *q);

/* The "results" array of q's last commit, as DESIGN §7 spells it.  NULL
 * on allocation failure. */
json_t *srv_txn_results(const struct srv_txn_req *q);

/* The reply to q's last commit, outcome o: for ETAGKV_OK the whole 200
 * body {"revision", "results"}; for ETAGKV_CONFLICT the members a 409
 * problem adds to type, title, status and detail: {"failed", "revision",
 * "results"}.  NULL on allocation failure. */
json_t *srv_txn_reply(const struct srv_txn_req *q, const etagkv_txn_outcome *o);

/* A copy of results (a reply's "results") without the values a 409 may
 * carry (value or value_base64, and the content_type that goes with them):
 * for the refusal log, which names keys and never their data, and for a
 * 409 whose values do not fit the server's memory budget.  A new
 * reference, or NULL without memory. */
json_t *srv_txn_results_without_values(const json_t *results);

/* Operation i of q (i < the number of operations; else NULL, 0, and a
 * PUT): its conditions as parsed (owned by q; NULL: none), its condition
 * members as received (a new object, or NULL), its key (owned by q; *len
 * its length) and the method it is evaluated as (a check: PUT). */
const etagkv_cond *srv_txn_op_cond(const struct srv_txn_req *q, size_t i);
json_t *srv_txn_op_sent(const struct srv_txn_req *q, size_t i);
const unsigned char *srv_txn_op_key(const struct srv_txn_req *q, size_t i,
                                    size_t *len);
etagkv_method srv_txn_op_method(const struct srv_txn_req *q, size_t i);

/* A lease id as the HTTP API writes it (DESIGN §9): 1 to 20 decimal
 * digits without a leading 0, fitting 64 bits.  Only that spelling: a
 * proxy's rule on /leases/7 must not be passed by /leases/007.  0 with
 * *id, or -1. */
int srv_lease_id_parse(const char *s, size_t len, uint64_t *id);

/* A lease as the HTTP API shows it (DESIGN §9): {"id": "N" (a string),
 * "ttl_ms"}, and "remaining_ms" when with_remaining.  NULL when out of
 * memory. */
json_t *srv_lease_json(const etagkv_lease *l, int with_remaining);

/* A JSON string of the padded base64 (RFC 4648 §4) of len bytes; NULL
 * when out of memory. */
json_t *srv_json_base64(const void *p, size_t len);

/* Free q (NULL is fine). */
void srv_txn_req_free(struct srv_txn_req *q);

#endif
