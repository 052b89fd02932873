/*
 * txn_json.c -- the body of POST /txn (DESIGN §7) parsed into an
 * etagkv_txn, and the results of its commit built as JSON.  Both with
 * jansson, never by hand.
 *
 * Pure: no libmicrohttpd, no I/O, so tests/fuzz/fuzz_txn.c feeds it
 * arbitrary bytes.  The body is strict, as a request that could be read two
 * ways must be refused rather than guessed at:
 *
 *   {"ops": [ {"op": "get"|"check"|"put"|"delete",
 *              "key": "..." | "key_base64": "...",
 *              "value": "..." | "value_base64": "...",     (put only)
 *              "content_type": "...",                      (put only)
 *              "if_match", "if_none_match", "if_modified_since",
 *              "if_unmodified_since": "<header syntax>",
 *              "if_revision": N | null}, ... ]}
 *
 * Exactly one member "ops" at the top; no member twice (jansson's
 * JSON_REJECT_DUPLICATES); no unknown member or op; strings where strings
 * belong; JSON text must be UTF-8 (jansson checks it), so binary keys and
 * values travel as base64 (RFC 4648 §4, padded).  The conditions go
 * through etagkv_cond_add(), the library's one parser: an invalid
 * entity-tag list is a 400 here exactly as in a header.
 */
#include "txn_json.h"

#include "../lib/base64.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_GET, K_CHECK, K_PUT, K_DELETE };

static const char *const kind_names[] = {"get", "check", "put", "delete"};

/* What the reply needs of each operation: its kind and its key. */
struct op_key {
    enum kind kind;
    unsigned char *key;
    size_t key_len;
    etagkv_cond *cond; /* its conditions (NULL: none), for a diagnosis */
    json_t *sent;      /* its condition members as received, or NULL */
};

struct srv_txn_req {
    etagkv_txn *t;
    struct op_key *ops;
    size_t n;
    int has_get, writes, unconditional_write;
};

/* ---- base64 (lib/base64.c) ------------------------------------------- */

/* A JSON string of the base64 of len bytes; NULL when out of memory. */
static json_t *b64_string(const unsigned char *p, size_t len)
{
    size_t n;
    char *s = ekv_base64_encode(p, len, &n);
    json_t *j = s != NULL ? json_stringn(s, n) : NULL;

    free(s);
    return j;
}

json_t *srv_json_base64(const void *p, size_t len)
{
    return b64_string(p, len);
}

/* ---- parsing ------------------------------------------------------------- */

/* One operation's members, as found. */
struct members {
    json_t *op, *key, *key_b64, *value, *value_b64, *ctype;
    json_t *cond[4]; /* etagkv_header order: the four header strings */
    json_t *if_revision;
    json_t *lease;
};

static const char *const cond_names[4] = {
    "if_match", "if_none_match", "if_modified_since", "if_unmodified_since"};

/* Sort the members of o into m; -1 (with detail) for an unknown one. */
static int sort_members(json_t *o, size_t i, struct members *m, char *detail,
                        size_t cap)
{
    const char *name;
    json_t *v;

    memset(m, 0, sizeof(*m));
    json_object_foreach(o, name, v)
    {
        json_t **slot = strcmp(name, "op") == 0             ? &m->op
                        : strcmp(name, "key") == 0          ? &m->key
                        : strcmp(name, "key_base64") == 0   ? &m->key_b64
                        : strcmp(name, "value") == 0        ? &m->value
                        : strcmp(name, "value_base64") == 0 ? &m->value_b64
                        : strcmp(name, "content_type") == 0 ? &m->ctype
                        : strcmp(name, "if_revision") == 0  ? &m->if_revision
                        : strcmp(name, "lease") == 0        ? &m->lease
                                                            : NULL;

        for (int h = 0; h < 4 && slot == NULL; h++)
            if (strcmp(name, cond_names[h]) == 0)
                slot = &m->cond[h];
        if (slot == NULL) {
            snprintf(detail, cap, "ops[%zu]: unknown member \"%.40s\"", i,
                     name);
            return -1;
        }
        *slot = v;
    }
    return 0;
}

/* The bytes of a "x" / "x_base64" pair: exactly one of them, a string
 * (required) or neither (when !required).  *bytes is malloc'd (NULL when
 * absent).  0, or -1 with detail. */
static int text_or_b64(json_t *text, json_t *b, int required, const char *what,
                       size_t i, unsigned char **bytes, size_t *len,
                       char *detail, size_t cap)
{
    *bytes = NULL;
    *len = 0;
    if (text != NULL && b != NULL) {
        snprintf(detail, cap, "ops[%zu]: %s and %s_base64 both given", i, what,
                 what);
        return -1;
    }
    if (text == NULL && b == NULL) {
        if (required)
            snprintf(detail, cap, "ops[%zu]: %s or %s_base64 is required", i,
                     what, what);
        return required ? -1 : 0;
    }
    if (!json_is_string(text != NULL ? text : b)) {
        snprintf(detail, cap, "ops[%zu]: %s%s must be a string", i, what,
                 b != NULL ? "_base64" : "");
        return -1;
    }
    if (b != NULL) {
        if (ekv_base64_decode(json_string_value(b), json_string_length(b),
                              (uint8_t **)bytes, len) != 0) {
            snprintf(detail, cap, "ops[%zu]: %s_base64 is not padded base64", i,
                     what);
            return -1;
        }
        return 0;
    }
    *len = json_string_length(text);
    *bytes = malloc(*len + 1);
    if (*bytes == NULL) {
        snprintf(detail, cap, "out of memory");
        return -1;
    }
    memcpy(*bytes, json_string_value(text), *len);
    return 0;
}

/* The conditions of an operation (NULL: none).  0, or -1 with detail. */
static int conditions(const struct members *m, size_t i, etagkv_cond **out,
                      char *detail, size_t cap)
{
    etagkv_cond *c = NULL;
    etagkv_status st = ETAGKV_OK;

    *out = NULL;
    for (int h = 0; h < 4 && st == ETAGKV_OK; h++) {
        if (m->cond[h] == NULL)
            continue;
        if (!json_is_string(m->cond[h])) {
            snprintf(detail, cap, "ops[%zu]: %s must be a string", i,
                     cond_names[h]);
            st = ETAGKV_INVALID_ARGUMENT;
            break;
        }
        if (c == NULL)
            st = etagkv_cond_new(&c);
        if (st == ETAGKV_OK)
            st = etagkv_cond_add(c, (etagkv_header)h,
                                 json_string_value(m->cond[h]),
                                 json_string_length(m->cond[h]));
        if (st != ETAGKV_OK)
            snprintf(detail, cap, "ops[%zu]: %s: %s", i, cond_names[h],
                     st == ETAGKV_INVALID_HEADER
                         ? "not a valid entity-tag list (RFC 9110 §13.1.1)"
                         : etagkv_strerror(st));
    }
    if (st == ETAGKV_OK && m->if_revision != NULL &&
        !json_is_null(m->if_revision)) {
        json_int_t rev = json_integer_value(m->if_revision);

        if (!json_is_integer(m->if_revision) || rev < 0) {
            snprintf(detail, cap,
                     "ops[%zu]: if_revision must be a revision (an integer "
                     ">= 0) or null",
                     i);
            st = ETAGKV_INVALID_ARGUMENT;
        } else {
            if (c == NULL)
                st = etagkv_cond_new(&c);
            if (st == ETAGKV_OK)
                st = etagkv_cond_set_if_revision(c, (uint64_t)rev);
        }
    }
    if (st != ETAGKV_OK) {
        etagkv_cond_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

/* The condition members of an operation as received (a new object, empty
 * when it had none), or NULL when out of memory. */
static json_t *sent_members(const struct members *m)
{
    json_t *o = json_object();

    for (int h = 0; h < 4 && o != NULL; h++)
        if (m->cond[h] != NULL &&
            json_object_set(o, cond_names[h], m->cond[h]) != 0) {
            json_decref(o);
            o = NULL;
        }
    if (o != NULL && m->if_revision != NULL &&
        json_object_set(o, "if_revision", m->if_revision) != 0) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

/* The kind named by m->op; -1 with detail. */
static int kind_of(const struct members *m, size_t i, char *detail, size_t cap)
{
    const char *name = json_string_value(m->op);

    for (int k = 0; name != NULL && k < 4; k++)
        if (strcmp(name, kind_names[k]) == 0)
            return k;
    snprintf(detail, cap,
             "ops[%zu]: op must be \"get\", \"check\", \"put\" or \"delete\"",
             i);
    return -1;
}

int srv_lease_id_parse(const char *s, size_t len, uint64_t *id)
{
    uint64_t v = 0;

    if (len == 0 || len > 20 || s[0] == '0') /* one spelling per lease */
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';

        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *id = v; /* not 0: no leading 0 */
    return 0;
}

json_t *srv_lease_json(const etagkv_lease *l, int with_remaining)
{
    char id[24];

    snprintf(id, sizeof id, "%" PRIu64, l->id);
    return with_remaining ? json_pack("{s:s, s:I, s:I}", "id", id, "ttl_ms",
                                      (json_int_t)l->ttl_ms, "remaining_ms",
                                      (json_int_t)l->remaining_ms)
                          : json_pack("{s:s, s:I}", "id", id, "ttl_ms",
                                      (json_int_t)l->ttl_ms);
}

/* A put's "lease": the id as a string of digits (as POST /leases gives
 * it) or as an integer; null or absent is none.  0, or -1 with detail. */
static int lease_of(const struct members *m, size_t i, uint64_t *id,
                    char *detail, size_t cap)
{
    json_t *l = m->lease;

    *id = 0;
    if (l == NULL || json_is_null(l))
        return 0;
    if (json_is_string(l) && srv_lease_id_parse(json_string_value(l),
                                                json_string_length(l), id) == 0)
        return 0;
    if (json_is_integer(l) && json_integer_value(l) > 0) {
        *id = (uint64_t)json_integer_value(l);
        return 0;
    }
    snprintf(detail, cap, "ops[%zu]: lease must be a lease id or null", i);
    return -1;
}

/* Add the operation described by o (ops[i]) to q.  0, or -1 with detail. */
static int add_op(struct srv_txn_req *q, json_t *o, size_t i, char *detail,
                  size_t cap)
{
    struct members m;
    struct op_key *ok = &q->ops[i];
    unsigned char *value = NULL;
    size_t value_len = 0;
    etagkv_cond *c = NULL;
    etagkv_status st = ETAGKV_INVALID_ARGUMENT;
    uint64_t lease;
    int kind;

    if (!json_is_object(o)) {
        snprintf(detail, cap, "ops[%zu] must be an object", i);
        return -1;
    }
    if (sort_members(o, i, &m, detail, cap) != 0 ||
        (kind = kind_of(&m, i, detail, cap)) < 0)
        return -1;
    ok->kind = (enum kind)kind;
    if (kind != K_PUT && (m.value != NULL || m.value_b64 != NULL ||
                          m.ctype != NULL || m.lease != NULL)) {
        snprintf(detail, cap,
                 "ops[%zu]: only a put takes a value, a content_type or a "
                 "lease",
                 i);
        return -1;
    }
    if (lease_of(&m, i, &lease, detail, cap) != 0)
        return -1;
    if (m.ctype != NULL && !json_is_string(m.ctype)) {
        snprintf(detail, cap, "ops[%zu]: content_type must be a string", i);
        return -1;
    }
    if (text_or_b64(m.key, m.key_b64, 1, "key", i, &ok->key, &ok->key_len,
                    detail, cap) != 0 ||
        text_or_b64(m.value, m.value_b64, kind == K_PUT, "value", i, &value,
                    &value_len, detail, cap) != 0 ||
        conditions(&m, i, &c, detail, cap) != 0)
        goto done;
    switch (ok->kind) {
    case K_GET: st = etagkv_txn_get(q->t, ok->key, ok->key_len, c); break;
    case K_CHECK: st = etagkv_txn_check(q->t, ok->key, ok->key_len, c); break;
    case K_PUT:
        st = etagkv_txn_put_lease(
            q->t, ok->key, ok->key_len, value, value_len,
            m.ctype != NULL ? json_string_value(m.ctype) : NULL, c, lease);
        break;
    case K_DELETE: st = etagkv_txn_delete(q->t, ok->key, ok->key_len, c); break;
    }
    if (st != ETAGKV_OK)
        snprintf(detail, cap, "ops[%zu]: %s", i,
                 st == ETAGKV_INVALID_HEADER
                     ? "content_type must be 1 to 255 bytes of visible "
                       "ASCII, spaces and tabs"
                     : etagkv_strerror(st));
    q->has_get |= ok->kind == K_GET;
    q->writes |= ok->kind == K_PUT || ok->kind == K_DELETE;
    q->unconditional_write |= (ok->kind == K_PUT || ok->kind == K_DELETE) &&
                              !etagkv_cond_is_conditional(c);
    /* Kept beside the transaction's own copy: a 409 says what it sent and
     * traces it in the change log (diagnose.c). */
    ok->cond = c;
    c = NULL;
    if (st == ETAGKV_OK)
        ok->sent = sent_members(&m);
done:
    free(value);
    etagkv_cond_free(c);
    return st == ETAGKV_OK ? 0 : -1;
}

/* The "ops" array of the top-level object; NULL with detail. */
static json_t *ops_of(json_t *top, char *detail, size_t cap)
{
    json_t *ops = json_object_get(top, "ops");

    if (!json_is_object(top) || json_object_size(top) != 1 || ops == NULL ||
        !json_is_array(ops)) {
        snprintf(detail, cap,
                 "the body must be {\"ops\": [...]} and nothing else");
        return NULL;
    }
    return ops;
}

etagkv_status srv_txn_parse(const char *body, size_t len, size_t max_ops,
                            struct srv_txn_req **out, char *detail, size_t cap)
{
    json_error_t err;
    json_t *top, *ops;
    struct srv_txn_req *q = NULL;
    etagkv_status st = ETAGKV_INVALID_ARGUMENT;

    *out = NULL;
    top =
        json_loadb(body != NULL ? body : "", len, JSON_REJECT_DUPLICATES, &err);
    if (top == NULL) {
        snprintf(detail, cap, "not valid JSON: %s (at %d:%d)", err.text,
                 err.line, err.column);
        return ETAGKV_INVALID_ARGUMENT;
    }
    ops = ops_of(top, detail, cap);
    if (ops == NULL)
        goto done;
    if (json_array_size(ops) > max_ops) {
        snprintf(detail, cap, "%zu operations: this server takes at most %zu",
                 json_array_size(ops), max_ops);
        st = ETAGKV_TXN_TOO_LARGE;
        goto done;
    }
    q = calloc(1, sizeof(*q));
    st = ETAGKV_NO_MEMORY;
    if (q == NULL || etagkv_txn_new(&q->t) != ETAGKV_OK)
        goto done;
    q->ops = calloc(json_array_size(ops) + 1, sizeof(*q->ops));
    if (q->ops == NULL)
        goto done;
    st = ETAGKV_INVALID_ARGUMENT;
    for (q->n = 0; q->n < json_array_size(ops); q->n++)
        if (add_op(q, json_array_get(ops, q->n), q->n, detail, cap) != 0) {
            q->n++; /* its key, if any, is freed with the rest */
            goto done;
        }
    st = ETAGKV_OK;
    *out = q;
    q = NULL;
done:
    srv_txn_req_free(q);
    json_decref(top);
    return st;
}

etagkv_txn *srv_txn_handle(struct srv_txn_req *q)
{
    return q->t;
}

int srv_txn_has_get(const struct srv_txn_req *q)
{
    return q->has_get;
}

int srv_txn_writes(const struct srv_txn_req *q)
{
    return q->writes;
}

int srv_txn_has_unconditional_write(const struct srv_txn_req *q)
{
    return q->unconditional_write;
}

void srv_txn_req_free(struct srv_txn_req *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; q->ops != NULL && i < q->n; i++) {
        free(q->ops[i].key);
        etagkv_cond_free(q->ops[i].cond);
        json_decref(q->ops[i].sent);
    }
    free(q->ops);
    etagkv_txn_free(q->t);
    free(q);
}

/* ---- results ------------------------------------------------------------- */

/* Bytes as "name" when they are text (UTF-8 without NUL: jansson's
 * json_stringn() refuses anything else), else as "name_base64".  0, or -1
 * when out of memory. */
static int set_bytes(json_t *o, const char *name, const void *p, size_t len)
{
    char b64name[32];
    json_t *text = memchr(p, '\0', len) == NULL ? json_stringn(p, len) : NULL;

    if (text != NULL)
        return json_object_set_new(o, name, text);
    snprintf(b64name, sizeof b64name, "%s_base64", name);
    return json_object_set_new(o, b64name, b64_string(p, len));
}

/* The HTTP status an operation got, as its single request would. */
static json_t *status_json(const struct op_key *k,
                           const etagkv_txn_op_result *r)
{
    if (!r->evaluated)
        return json_null();
    if (k->kind == K_DELETE && r->status == ETAGKV_OK)
        return json_integer(204);
    return json_integer(etagkv_status_http(r->status));
}

/* One entry of "results": status, key, and the key's state (DESIGN §7);
 * the value and content type when the library gave one (a get's, or a
 * conflict's with etagkv_txn_set_conflict_values()). */
static json_t *result_json(const struct op_key *k,
                           const etagkv_txn_op_result *r)
{
    const etagkv_meta *m = &r->meta;
    char date[ETAGKV_HTTPDATE_SIZE] = "";
    json_t *o = json_object();

    if (o == NULL)
        return NULL;
    if (m->exists &&
        etagkv_httpdate_format(ETAGKV_META_LAST_MODIFIED(m), date) != ETAGKV_OK)
        date[0] = '\0';
    if (json_object_set_new(o, "status", status_json(k, r)) != 0 ||
        set_bytes(o, "key", k->key, k->key_len) != 0 ||
        json_object_set_new(o, "exists", json_boolean(m->exists)) != 0 ||
        json_object_set_new(o, "etag",
                            m->exists ? json_string(m->etag) : json_null()) ||
        json_object_set_new(o, "last_modified",
                            date[0] != '\0' ? json_string(date)
                                            : json_null()) != 0 ||
        json_object_set_new(o, "mod_revision",
                            m->exists
                                ? json_integer((json_int_t)m->mod_revision)
                                : json_null()) != 0 ||
        (r->value != NULL &&
         (set_bytes(o, "value", r->value, r->value_len) != 0 ||
          json_object_set_new(o, "content_type",
                              json_string(m->content_type)) != 0))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *srv_txn_results(const struct srv_txn_req *q)
{
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < q->n; i++) {
        json_t *o = result_json(&q->ops[i], etagkv_txn_op(q->t, i));

        if (o == NULL || json_array_append_new(a, o) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *srv_txn_results_without_values(const json_t *results)
{
    static const char *const data[] = {"value", "value_base64", "content_type"};
    json_t *out = json_array(), *r;
    size_t i;

    json_array_foreach(results, i, r)
    {
        json_t *c = json_copy(r);

        for (size_t d = 0; c != NULL && d < sizeof data / sizeof *data; d++)
            (void)json_object_del(c, data[d]);
        if (c == NULL || json_array_append_new(out, c) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

json_t *srv_txn_reply(const struct srv_txn_req *q, const etagkv_txn_outcome *o)
{
    json_t *j = json_object();
    json_t *results = srv_txn_results(q);

    if (j == NULL || results == NULL ||
        (o->status == ETAGKV_CONFLICT &&
         json_object_set_new(j, "failed",
                             json_integer((json_int_t)o->failed)) != 0) ||
        json_object_set_new(j, "revision",
                            json_integer((json_int_t)o->revision)) != 0 ||
        json_object_set_new(j, "results", results) != 0) {
        json_decref(j);
        json_decref(results);
        return NULL;
    }
    return j;
}

/* ---- one operation, for a diagnosis -------------------------------------- */

const etagkv_cond *srv_txn_op_cond(const struct srv_txn_req *q, size_t i)
{
    return i < q->n ? q->ops[i].cond : NULL;
}

json_t *srv_txn_op_sent(const struct srv_txn_req *q, size_t i)
{
    return i < q->n && q->ops[i].sent != NULL ? json_copy(q->ops[i].sent)
                                              : NULL;
}

const unsigned char *srv_txn_op_key(const struct srv_txn_req *q, size_t i,
                                    size_t *len)
{
    *len = i < q->n ? q->ops[i].key_len : 0;
    return i < q->n ? q->ops[i].key : NULL;
}

etagkv_method srv_txn_op_method(const struct srv_txn_req *q, size_t i)
{
    switch (i < q->n ? q->ops[i].kind : K_CHECK) {
    case K_GET: return ETAGKV_METHOD_GET;
    case K_DELETE: return ETAGKV_METHOD_DELETE;
    case K_CHECK:
    case K_PUT: break;
    }
    return ETAGKV_METHOD_PUT; /* a check is evaluated as a PUT */
}
