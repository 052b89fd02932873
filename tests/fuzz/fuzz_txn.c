/*
 * fuzz_txn.c -- libFuzzer target for the POST /txn body parser
 * (server/txn_json.c: srv_txn_parse, srv_txn_results).
 *
 * Input: the request body, exactly size bytes (never NUL-terminated, so
 * ASan catches a read past it).  Invariants:
 *  - the parser answers ETAGKV_OK, ETAGKV_INVALID_ARGUMENT (with a reason),
 *    ETAGKV_TXN_TOO_LARGE or ETAGKV_NO_MEMORY, and nothing else;
 *  - on ETAGKV_OK the body is a JSON object whose only member "ops" is an
 *    array of at most MAX_OPS elements, as jansson alone reads it, and the
 *    transaction has exactly that many operations;
 *  - more than MAX_OPS operations is ETAGKV_TXN_TOO_LARGE, never OK;
 *  - the results of the uncommitted transaction build (every status null)
 *    and serialise;
 *  - nothing leaks (LeakSanitizer).
 */
#include <string.h>

#include "fuzz.h"
#include "txn_json.h"

#define MAX_OPS 8

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char detail[256] = "";
    char *copy = malloc(size > 0 ? size : 1);
    struct srv_txn_req *q = NULL;
    json_t *top, *ops, *results;
    etagkv_status st;

    CHECK(copy != NULL);
    memcpy(copy, data, size);
    st = srv_txn_parse(copy, size, MAX_OPS, &q, detail, sizeof detail);
    CHECK(st == ETAGKV_OK || st == ETAGKV_INVALID_ARGUMENT ||
          st == ETAGKV_TXN_TOO_LARGE || st == ETAGKV_NO_MEMORY);
    CHECK((st == ETAGKV_OK) == (q != NULL));
    CHECK(st != ETAGKV_INVALID_ARGUMENT || detail[0] != '\0');
    top = json_loadb(copy, size, JSON_REJECT_DUPLICATES, NULL);
    ops = json_object_get(top, "ops");
    if (st == ETAGKV_OK) {
        CHECK(json_is_object(top) && json_object_size(top) == 1);
        CHECK(json_is_array(ops) && json_array_size(ops) <= MAX_OPS);
        CHECK(etagkv_txn_count(srv_txn_handle(q)) == json_array_size(ops));
        results = srv_txn_results(q);
        CHECK(results != NULL &&
              json_array_size(results) == json_array_size(ops));
        free(json_dumps(results, 0));
        json_decref(results);
    }
    if (json_is_object(top) && json_object_size(top) == 1 &&
        json_array_size(ops) > MAX_OPS)
        CHECK(st == ETAGKV_TXN_TOO_LARGE || st == ETAGKV_NO_MEMORY);
    json_decref(top);
    srv_txn_req_free(q);
    free(copy);
    return 0;
}
