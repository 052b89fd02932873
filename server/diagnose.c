/*
 * diagnose.c -- what a 412 or a transaction's 409 says beyond the current
 * state (issue 18): what the request sent, which condition decided, and
 * when the sent validator stopped being current.
 *
 *   "sent"        each condition header as received (lines of one header
 *                 joined with ", ", RFC 9110 §5.3), or, for /txn, the
 *                 failing operation's condition members
 *   "decided_by"  the RFC 9110 §13.2.2 step whose condition was false
 *                 (etagkv_cond_step_name())
 *   "superseded"  {revision, modified, modified_ns, age_ms, held_revision}
 *                 from the change log (etagkv_cond_superseded()), or null
 *                 with "superseded_detail" saying the validator was never
 *                 current within the log's window (and where it starts)
 *
 * The library decides and searches; this file only turns the answers into
 * JSON, counts them for /metrics, and logs each refusal as one line on
 * stderr, at most SRV_DIAG_LOG_PER_S a second (the rest counted as
 * dropped and reported on the next line), so a hot key under contention
 * cannot flood the log.
 */
#include "server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Refusal lines logged per second at most. */
#define SRV_DIAG_LOG_PER_S 10
/* Change-log searches for "superseded" per second at most: one reads the
 * key's events in the whole window (up to --changes-max-events entries,
 * some milliseconds for 100,000), so a storm of 412s must not turn into a
 * storm of log scans.  Past it the body says the search was skipped. */
#define SRV_DIAG_SEARCH_PER_S 100
/* age_ms of a 412 whose validator was never current in the window, and of
 * one not searched (skipped, or the log unreadable). */
#define AGE_NEVER_CURRENT (-1)
#define AGE_UNKNOWN (-2)

/* A per-second allowance shared by the request threads. */
struct rate {
    pthread_mutex_t lock;
    uint64_t second, used, dropped;
};

static struct rate log_rate = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
static struct rate search_rate = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};

/* 1 if one more use fits in this second's per_s (and *dropped, if not
 * NULL, gets the uses refused since the last one that fitted), else 0. */
static int rate_take(struct rate *r, uint64_t per_s, uint64_t *dropped)
{
    uint64_t second = srv_wall_ns() / 1000000000u;
    int ok;

    pthread_mutex_lock(&r->lock);
    if (second != r->second) {
        r->second = second;
        r->used = 0;
    }
    ok = r->used < per_s;
    if (ok) {
        r->used++;
        if (dropped != NULL)
            *dropped = r->dropped;
        r->dropped = 0;
    } else {
        r->dropped++;
    }
    pthread_mutex_unlock(&r->lock);
    return ok;
}

/* The condition headers, in the order the body lists them. */
static const char *const sent_headers[] = {
    "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since",
    "ETagKV-If-Revision"};
#define N_SENT (sizeof sent_headers / sizeof sent_headers[0])

uint64_t srv_wall_ns(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct sent_collect {
    json_t *obj;
    int bad;
};

/* MHD's header iterator: append a condition header's line to "sent". */
static enum MHD_Result collect_sent(void *cls, enum MHD_ValueKind kind,
                                    const char *key, const char *value)
{
    struct sent_collect *col = cls;

    (void)kind;
    for (size_t i = 0; i < N_SENT && value != NULL; i++) {
        json_t *prev;
        char *text, *joined;

        if (strcasecmp(key, sent_headers[i]) != 0)
            continue;
        /* A value may hold obs-text, which JSON cannot carry as sent. */
        text = srv_utf8_text(value, strlen(value), SIZE_MAX);
        if (text == NULL) {
            col->bad = 1;
            break;
        }
        prev = json_object_get(col->obj, sent_headers[i]);
        if (prev == NULL) {
            col->bad |= json_object_set_new(col->obj, sent_headers[i],
                                            json_string(text)) != 0;
            free(text);
            break;
        }
        joined = malloc(json_string_length(prev) + strlen(text) + 3);
        if (joined == NULL) {
            free(text);
            col->bad = 1;
            break;
        }
        sprintf(joined, "%s, %s", json_string_value(prev), text);
        col->bad |= json_object_set_new(col->obj, sent_headers[i],
                                        json_string(joined)) != 0;
        free(joined);
        free(text);
        break;
    }
    return MHD_YES;
}

/* "superseded" (and its detail) for a refusal on state m; *age_ms_out is
 * the age, AGE_NEVER_CURRENT or AGE_UNKNOWN.  0, or -1 on allocation
 * failure. */
static int set_superseded(json_t *j, etagkv_store *store, const void *key,
                          size_t key_len, const etagkv_cond *cond,
                          etagkv_cond_step step, etagkv_method method,
                          const etagkv_meta *m, int64_t *age_ms_out)
{
    etagkv_supersession sup;
    char date[ETAGKV_HTTPDATE_SIZE], detail[160];
    etagkv_status st;
    uint64_t now;
    json_t *o;

    *age_ms_out = AGE_UNKNOWN;
    if (!rate_take(&search_rate, SRV_DIAG_SEARCH_PER_S, NULL))
        return json_object_set_new(j, "superseded", json_null()) != 0 ||
                       json_object_set_new(
                           j, "superseded_detail",
                           json_string("not searched: too many refusals this "
                                       "second")) != 0
                   ? -1
                   : 0;
    st = etagkv_cond_superseded(store, key, key_len, cond, step, method,
                                m->exists ? m->mod_revision : 0, &sup);
    now = srv_wall_ns();
    if (st == ETAGKV_NOT_FOUND) {
        *age_ms_out = AGE_NEVER_CURRENT;
        snprintf(detail, sizeof detail,
                 "never current within the change log's window (revisions "
                 "after %llu)",
                 (unsigned long long)sup.min_after);
        return json_object_set_new(j, "superseded", json_null()) != 0 ||
                       json_object_set_new(j, "superseded_detail",
                                           json_string(detail)) != 0
                   ? -1
                   : 0;
    }
    if (st != ETAGKV_OK) /* the log could not be read: say nothing */
        return json_object_set_new(j, "superseded", json_null());
    *age_ms_out = now > sup.modified_ns
                      ? (int64_t)((now - sup.modified_ns) / 1000000)
                      : 0;
    if (etagkv_httpdate_format((int64_t)(sup.modified_ns / 1000000000u),
                               date) != ETAGKV_OK)
        date[0] = '\0';
    o = json_pack(
        "{s:I, s:s?, s:I, s:I, s:I}", "revision", (json_int_t)sup.revision,
        "modified", date[0] != '\0' ? date : NULL, "modified_ns",
        (json_int_t)sup.modified_ns, "age_ms", (json_int_t)*age_ms_out,
        "held_revision", (json_int_t)sup.held_revision);
    return o == NULL || json_object_set_new(j, "superseded", o) != 0 ? -1 : 0;
}

static etagkv_method lib_method(enum srv_method m)
{
    switch (m) {
    case SRV_GET: return ETAGKV_METHOD_GET;
    case SRV_HEAD: return ETAGKV_METHOD_HEAD;
    case SRV_DELETE: return ETAGKV_METHOD_DELETE;
    case SRV_PUT:
    case SRV_POST:
    case SRV_OTHER: break;
    }
    return ETAGKV_METHOD_PUT;
}

json_t *srv_diagnose_412(struct srv *s, struct MHD_Connection *c,
                         const struct srv_req *r, const etagkv_meta *m)
{
    etagkv_method method = lib_method(r->method);
    etagkv_cond_step step = ETAGKV_STEP_NONE;
    struct sent_collect col = {json_object(), 0};
    json_t *j = json_object();
    int64_t age_ms = AGE_UNKNOWN;

    /* A write's step is the library's; a read's is computed the same way. */
    if (r->write_state == SRV_WRITE_DONE)
        step = r->write_res.step;
    else
        (void)etagkv_cond_explain(r->cond, method, m, &step);
    if (j == NULL || col.obj == NULL)
        goto fail;
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect_sent, &col);
    if (col.bad || json_object_set_new(j, "sent", col.obj) != 0)
        goto fail_sent;
    col.obj = NULL;
    if (json_object_set_new(j, "decided_by",
                            json_string(etagkv_cond_step_name(step))) != 0 ||
        set_superseded(j, s->store, r->key, r->key_len, r->cond, step, method,
                       m, &age_ms) != 0)
        goto fail;
    srv_metrics_precondition(s->metrics, step, age_ms == AGE_UNKNOWN, age_ms);
    return j;
fail_sent:
    json_decref(col.obj);
fail:
    json_decref(j);
    return NULL;
}

int srv_diagnose_txn(struct srv *s, struct srv_txn_req *q,
                     const etagkv_txn_outcome *o, json_t *ext)
{
    const etagkv_txn_op_result *res =
        etagkv_txn_op(srv_txn_handle(q), o->failed);
    const etagkv_cond *cond = srv_txn_op_cond(q, o->failed);
    json_t *sent = srv_txn_op_sent(q, o->failed);
    int64_t age_ms = AGE_UNKNOWN;
    size_t key_len = 0;
    const unsigned char *key = srv_txn_op_key(q, o->failed, &key_len);

    if (res == NULL)
        return 0;
    if (json_object_set_new(ext, "sent", sent != NULL ? sent : json_object()) !=
            0 ||
        json_object_set_new(ext, "decided_by",
                            res->step != ETAGKV_STEP_NONE
                                ? json_string(etagkv_cond_step_name(res->step))
                                : json_null()) != 0)
        return -1;
    /* Only a 412 has a validator to trace; a 404 of a delete does not. */
    if (res->status != ETAGKV_PRECONDITION_FAILED || cond == NULL)
        return 0;
    if (set_superseded(ext, s->store, key, key_len, cond, res->step,
                       srv_txn_op_method(q, o->failed), &res->meta,
                       &age_ms) != 0)
        return -1;
    srv_metrics_precondition(s->metrics, res->step, age_ms == AGE_UNKNOWN,
                             age_ms);
    return 0;
}

/* ---- the refusal log ------------------------------------------------------
 */

void srv_diagnose_log(const char *method, const json_t *body)
{
    uint64_t dropped = 0;
    json_t *copy, *results;
    char *line;

    if (!rate_take(&log_rate, SRV_DIAG_LOG_PER_S, &dropped))
        return;
    /* A shallow copy: the body itself is the response's. */
    copy = json_copy((json_t *)body);
    results = json_object_get(body, "results");
    if (copy == NULL ||
        (json_is_array(results) &&
         json_object_set_new(copy, "results",
                             srv_txn_results_without_values(results)) != 0) ||
        json_object_set_new(copy, "method", json_string(method)) != 0 ||
        json_object_set_new(copy, "dropped",
                            json_integer((json_int_t)dropped)) != 0) {
        json_decref(copy);
        return;
    }
    line = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(copy);
    if (line != NULL)
        fprintf(stderr, "etagkv-server: refused %s\n", line);
    free(line);
}
