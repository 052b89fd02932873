/*
 * txn.c -- POST /txn (DESIGN §7): one multi-key transaction per request.
 *
 * Admission (admit.c) has checked the method, the JSON Content-Type, that
 * no request header condition was sent, the Idempotency-Key and the body's
 * size.  Here the body is parsed (txn_json.c), require-conditions mode is
 * applied, and the transaction is submitted like a single write: the
 * connection is suspended until it is durable (kv.c's srv_write_suspend and
 * srv_write_done), so it rides in the same group-commit batches.  The
 * reply: 200 {"revision", "results"}, or 409 problem+json with "failed"
 * and "results" (every key's current state, for the rebase; with Prefer:
 * return=representation, every existing key's value too); any other
 * status is a problem of the library's status.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether r's transaction writes: puts or deletes, or an Idempotency-Key
 * (its outcome is recorded).  One that does not is committed at once in a
 * read snapshot, without a batch (txn_submit()), and a reply that does not
 * fit the memory budget is refused as a GET's would be (committed()). */
static int txn_writes(const struct srv_req *r)
{
    return srv_txn_writes(r->txn) || r->idem_len > 0;
}

/* Parse r's body into r->txn and submit it.  Refusals are answered here. */
static enum MHD_Result txn_submit(struct srv *s, struct MHD_Connection *c,
                                  struct srv_req *r)
{
    char detail[256];
    struct srv_prefer p;
    enum MHD_Result ret;
    etagkv_status st = srv_txn_parse(r->body, r->body_len, s->max_txn_ops,
                                     &r->txn, detail, sizeof detail);

    if (st != ETAGKV_OK) {
        srv_metrics_txn(s->metrics, st, 0);
        return srv_queue(s, c, r, (unsigned)etagkv_status_http(st),
                         srv_status_problem(st, detail));
    }
    if (s->require_conditions && srv_txn_has_unconditional_write(r->txn)) {
        srv_metrics_txn(s->metrics, ETAGKV_PRECONDITION_REQUIRED, 0);
        return srv_queue(
            s, c, r, MHD_HTTP_PRECONDITION_REQUIRED,
            srv_status_problem(ETAGKV_PRECONDITION_REQUIRED,
                               "this server requires conditional writes: "
                               "give every put and delete if_match, "
                               "if_none_match, if_unmodified_since or "
                               "if_revision"));
    }
    if (r->idem_len > 0 && srv_txn_has_get(r->txn)) {
        srv_metrics_txn(s->metrics, ETAGKV_INVALID_ARGUMENT, 0);
        return srv_queue(s, c, r, MHD_HTTP_BAD_REQUEST,
                         srv_status_problem(ETAGKV_INVALID_ARGUMENT,
                                            "a transaction with a get cannot "
                                            "carry an Idempotency-Key: its "
                                            "value could not be replayed"));
    }
    st = etagkv_txn_set_idempotency_key(
        srv_txn_handle(r->txn), r->idem_len > 0 ? r->idem : NULL, r->idem_len);
    if (st != ETAGKV_OK)
        return srv_queue(s, c, r, (unsigned)etagkv_status_http(st),
                         srv_status_problem(st, NULL));
    srv_prefer_parse(c, s->max_wait_s, &p);
    r->prefer_repr = p.return_representation;
    (void)etagkv_txn_set_conflict_values(srv_txn_handle(r->txn),
                                         r->prefer_repr);
    if (!txn_writes(r)) {
        /* Gets and checks alone: the library evaluates them at once in a
         * read snapshot (no batch, no sync), so answer without suspending
         * the connection, as a GET does. */
        memset(&r->write_res, 0, sizeof(r->write_res));
        r->write_res.status =
            etagkv_txn_commit(s->store, srv_txn_handle(r->txn));
        if (etagkv_status_http(r->write_res.status) >= 500)
            snprintf(r->write_detail, sizeof r->write_detail, "%s",
                     etagkv_last_error_detail());
        r->write_state = SRV_WRITE_DONE;
        return srv_txn(s, c, r);
    }
    ret = srv_write_suspend(s, c, r);
    if (r->write_state != SRV_WRITE_PENDING)
        return ret; /* answered 503 */
    st = etagkv_txn_submit(s->store, srv_txn_handle(r->txn), srv_write_done, r);
    if (st != ETAGKV_OK) {
        etagkv_result res = {.status = st};

        srv_write_done(r, &res);
    }
    return MHD_YES;
}

/* The transaction is answered in JSON: its copies of keys, values and
 * results go now, before the reply is charged to the memory budget, so
 * that only the reply holds memory while it is sent. */
static void txn_done(struct srv_req *r)
{
    srv_txn_req_free(r->txn);
    r->txn = NULL;
}

/* The 409 reply: problem+json with "failed", "revision" and "results",
 * and the failing operation's diagnosis (diagnose.c), also logged; with
 * Preference-Applied when it carries the values asked for.  A large reply
 * is charged to the memory budget; one that does not fit goes without
 * its values (then small: keys and metas), as without the preference. */
static struct MHD_Response *conflicted(struct srv *s, struct srv_req *r,
                                       const etagkv_txn_outcome *o)
{
    json_t *ext = srv_txn_reply(r->txn, o), *problem;
    struct MHD_Response *resp;
    char detail[96];
    int busy, applied = etagkv_txn_has_conflict_values(srv_txn_handle(r->txn));

    if (ext == NULL || srv_diagnose_txn(s, r->txn, o, ext) != 0) {
        json_decref(ext);
        return NULL;
    }
    snprintf(detail, sizeof detail, "operation %zu failed; nothing was written",
             o->failed);
    srv_diagnose_log("POST", ext);
    txn_done(r);
    problem = srv_problem_json(MHD_HTTP_CONFLICT, "conflict", detail, ext);
    resp = srv_json_charged(s, json_incref(problem), "application/problem+json",
                            0, &busy);
    if (busy) {
        applied = 0;
        if (json_object_set_new(problem, "results",
                                srv_txn_results_without_values(
                                    json_object_get(problem, "results"))) == 0)
            resp = srv_json_charged(s, json_incref(problem),
                                    "application/problem+json", 1, &busy);
    }
    json_decref(problem);
    if (resp != NULL && applied &&
        srv_add_header(resp, "Preference-Applied", "return=representation") !=
            0) {
        MHD_destroy_response(resp);
        resp = NULL;
    }
    return resp;
}

/* The 200 reply.  A large one (gets' values) is charged to the memory
 * budget; when it does not fit, a transaction that only read is 503, as a
 * GET would be (and counted as an error), but a committed one is answered
 * anyway, charged over the limit: withholding it would hide the commit. */
static enum MHD_Result committed(struct srv *s, struct MHD_Connection *c,
                                 struct srv_req *r, const etagkv_txn_outcome *o,
                                 size_t ops)
{
    int busy, wrote = txn_writes(r);
    json_t *reply = srv_txn_reply(r->txn, o);
    struct MHD_Response *resp;

    txn_done(r);
    resp = srv_json_charged(s, reply, "application/json", wrote, &busy);
    srv_metrics_txn(s->metrics, busy ? ETAGKV_UNAVAILABLE : ETAGKV_OK, ops);
    if (busy)
        return srv_queue_sending_busy(s, c, r);
    return srv_queue(s, c, r, MHD_HTTP_OK, resp);
}

enum MHD_Result srv_txn(struct srv *s, struct MHD_Connection *c,
                        struct srv_req *r)
{
    etagkv_txn_outcome o;
    etagkv_status st;
    size_t ops;

    if (r->write_state == SRV_WRITE_NONE)
        return txn_submit(s, c, r);
    st = r->write_res.status;
    r->replayed = r->write_res.replayed;
    etagkv_txn_report(srv_txn_handle(r->txn), &o);
    ops = etagkv_txn_count(srv_txn_handle(r->txn));
    if (r->idem_len > 0)
        srv_metrics_idempotency(s->metrics, r->replayed,
                                st == ETAGKV_IDEMPOTENCY_MISMATCH);
    /* Give back the body and its charge before the reply is charged: a
     * reply as large as the whole budget could otherwise never fit beside
     * its own request. */
    srv_body_free(s, r);
    if (st == ETAGKV_OK)
        return committed(s, c, r, &o, ops);
    srv_metrics_txn(s->metrics, st, ops);
    if (st == ETAGKV_CONFLICT)
        return srv_queue(s, c, r, MHD_HTTP_CONFLICT, conflicted(s, r, &o));
    if (etagkv_status_http(st) >= 500)
        fprintf(stderr, "etagkv-server: /txn: %s (%s)\n", etagkv_strerror(st),
                r->write_detail);
    return srv_queue(s, c, r, (unsigned)etagkv_status_http(st),
                     srv_status_problem(st, NULL));
}
