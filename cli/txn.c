/*
 * txn.c -- `etagkv txn FILE|-`: the body of a POST /txn (DESIGN §7), the
 * server's reply on stdout.  The parser and the reply are the server's own
 * (server/txn_json.c: jansson and the public API only), so the tool and
 * the server cannot disagree about the format.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "txn_json.h"

/* Print the reply etagkv-server would send: the 200 body, or the 409
 * problem (RFC 9457) with "failed" and "results".  0, or -1 when out of
 * memory or stdout fails. */
static int print_reply(const struct srv_txn_req *q, const etagkv_txn_outcome *o)
{
    json_t *j = srv_txn_reply(q, o);
    char detail[96];
    int rc = -1;

    if (j != NULL && o->status == ETAGKV_CONFLICT) {
        json_t *problem;

        snprintf(detail, sizeof detail,
                 "operation %zu failed; nothing was written", o->failed);
        problem = json_pack("{s:s, s:s, s:i, s:s}", "type",
                            "urn:etagkv:problem:conflict", "title", "Conflict",
                            "status", 409, "detail", detail);
        if (problem != NULL && json_object_update(problem, j) != 0) {
            json_decref(problem);
            problem = NULL;
        }
        json_decref(j);
        j = problem;
    }
    if (j != NULL &&
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0 &&
        putchar('\n') != EOF)
        rc = 0;
    json_decref(j);
    return rc;
}

int cli_txn_prepare(struct ctx *c)
{
    char detail[256] = "";
    etagkv_status st;

    if (c->value_too_large) {
        fprintf(stderr,
                "etagkv: the transaction is larger than %" PRIu64 " bytes\n",
                CLI_TXN_BODY_MAX_BYTES);
        return report(ETAGKV_TXN_TOO_LARGE);
    }
    /* The store is opened with the library's default bound on operations. */
    st = srv_txn_parse((const char *)c->value.p, c->value.len,
                       ETAGKV_TXN_MAX_OPS_DEFAULT, &c->txn, detail,
                       sizeof detail);
    if (st != ETAGKV_OK) {
        if (detail[0] != '\0')
            fprintf(stderr, "etagkv: %s\n", detail);
        return report(st);
    }
    return 0;
}

int cmd_txn(struct ctx *c)
{
    struct srv_txn_req *q = c->txn;
    etagkv_txn_outcome o;
    etagkv_status st;

    c->txn = NULL; /* freed here */
    st = etagkv_txn_set_conflict_values(srv_txn_handle(q), c->a->values);
    if (st == ETAGKV_OK)
        st = etagkv_txn_commit(c->s, srv_txn_handle(q));
    etagkv_txn_report(srv_txn_handle(q), &o);
    if (st == ETAGKV_CONFLICT && c->a->values &&
        !etagkv_txn_has_conflict_values(srv_txn_handle(q)))
        fprintf(stderr, "etagkv: the conflict carries no values: together "
                        "they pass the transaction's byte bound\n");
    if ((st == ETAGKV_OK || st == ETAGKV_CONFLICT) && print_reply(q, &o) != 0) {
        srv_txn_req_free(q);
        fprintf(stderr, "etagkv: printing the reply failed\n");
        return EXIT_ERROR;
    }
    srv_txn_req_free(q);
    return report(st);
}
