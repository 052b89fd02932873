/*
 * metrics.c -- the operational endpoints: /metrics (request counters and
 * the store's figures in the Prometheus text exposition, format 0.0.4) and
 * /healthz.
 *
 * The counters are a struct srv_metrics owned by struct srv.  Every figure
 * is a C11 atomic updated with relaxed ordering: the counters are
 * independent, and a scrape that sees one request in the histogram but not
 * yet in the totals is harmless.
 */
#include "server.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef atomic_uint_fast64_t counter;

#define N_METHODS (SRV_OTHER + 1)
static const char *const method_names[N_METHODS] = {"GET",    "HEAD", "PUT",
                                                    "DELETE", "POST", "OTHER"};

const char *srv_method_name(enum srv_method m)
{
    return method_names[m];
}

/* 412s and 409s by route (the path templates of srv_route) and method. */
#define N_ROUTES SRV_ROUTE_COUNT
static const char *const route_names[N_ROUTES] = {
    [SRV_ROUTE_NONE] = "none",         [SRV_ROUTE_KV] = "/kv/{key}",
    [SRV_ROUTE_LIST] = "/kv/",         [SRV_ROUTE_HEALTHZ] = "/healthz",
    [SRV_ROUTE_METRICS] = "/metrics",  [SRV_ROUTE_CHANGES] = "/changes",
    [SRV_ROUTE_TXN] = "/txn",          [SRV_ROUTE_LEASES] = "/leases",
    [SRV_ROUTE_LEASE] = "/leases/{id}"};
enum { REFUSED_412, REFUSED_409, N_REFUSED };
static const char *const refused_codes[N_REFUSED] = {"412", "409"};

/* 412s by deciding step (etagkv_cond_step, ETAGKV_STEP_NONE to
 * ETAGKV_STEP_IF_MODIFIED_SINCE), and how old the superseded validator
 * was: bucket bounds in milliseconds and as printed (seconds). */
#define N_STEPS (ETAGKV_STEP_IF_MODIFIED_SINCE + 1)
static const int64_t age_ms_le[] = {1,     10,    100,    1000,
                                    10000, 60000, 600000, 3600000};
static const char *const age_le[] = {"0.001", "0.01", "0.1", "1",
                                     "10",    "60",   "600", "3600"};
#define N_AGE_BUCKETS (sizeof age_ms_le / sizeof age_ms_le[0])

/* Every status the server answers with (410: a compacted /changes); others
 * are counted as "other". */
static const unsigned codes[] = {200, 201, 204, 304, 400, 401, 404,
                                 405, 409, 410, 412, 413, 414, 415,
                                 422, 428, 431, 500, 501, 503, 507};
#define N_CODES (sizeof codes / sizeof codes[0])

/* Latency bucket upper bounds, in nanoseconds and as printed. */
static const uint64_t bucket_ns[] = {
    100000,     250000,      500000,      1000000,     2500000,   5000000,
    10000000,   25000000,    50000000,    100000000,   250000000, 500000000,
    1000000000, 2500000000u, 5000000000u, 10000000000u};
static const char *const bucket_le[] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10"};
#define N_BUCKETS (sizeof bucket_ns / sizeof bucket_ns[0])

/* POST /txn: outcomes, and operations per transaction (bucket bounds). */
enum { TXN_OK, TXN_CONFLICT, TXN_ERROR, N_TXN_OUTCOMES };
static const char *const txn_outcomes[N_TXN_OUTCOMES] = {"ok", "conflict",
                                                         "error"};
static const size_t txn_ops_le[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024};
#define N_TXN_BUCKETS (sizeof txn_ops_le / sizeof txn_ops_le[0])

struct srv_metrics {
    counter requests[N_METHODS][N_CODES + 1]; /* last column: other */
    counter refused[N_ROUTES][N_METHODS][N_REFUSED];
    counter aborted[N_METHODS]; /* ended without a response */
    counter not_modified, precondition_failed, precondition_required;
    counter idem_replays, idem_mismatches;
    counter latency_bucket[N_BUCKETS + 1]; /* not cumulative; +Inf last */
    counter latency_sum_ns;
    counter txns[N_TXN_OUTCOMES];
    counter txn_ops_bucket[N_TXN_BUCKETS + 1]; /* not cumulative; +Inf last */
    counter txn_ops_sum;
    counter failed_by_step[N_STEPS];
    counter age_bucket[N_AGE_BUCKETS + 1]; /* not cumulative; +Inf last */
    counter age_sum_ms, never_current;
};

struct srv_metrics *srv_metrics_new(void)
{
    /* All-zero bytes are zero counters: the atomics are lock-free integers
     * on every platform libmicrohttpd and LMDB run on. */
    return calloc(1, sizeof(struct srv_metrics));
}

void srv_metrics_free(struct srv_metrics *m)
{
    free(m);
}

static size_t code_index(unsigned status)
{
    size_t i;

    for (i = 0; i < N_CODES; i++)
        if (codes[i] == status)
            return i;
    return N_CODES;
}

static void bump(counter *c, uint64_t by)
{
    atomic_fetch_add_explicit(c, by, memory_order_relaxed);
}

static uint64_t load(counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void srv_metrics_record(struct srv_metrics *m, enum srv_route route,
                        enum srv_method method, unsigned status,
                        uint64_t duration_ns)
{
    size_t b = 0;

    if (status == 0) {
        bump(&m->aborted[method], 1);
        return;
    }
    bump(&m->requests[method][code_index(status)], 1);
    if (status == 304) {
        bump(&m->not_modified, 1);
    } else if (status == 412) {
        bump(&m->precondition_failed, 1);
        bump(&m->refused[route][method][REFUSED_412], 1);
    } else if (status == 409) {
        bump(&m->refused[route][method][REFUSED_409], 1);
    } else if (status == 428) {
        bump(&m->precondition_required, 1);
    }
    while (b < N_BUCKETS && duration_ns > bucket_ns[b])
        b++;
    bump(&m->latency_bucket[b], 1);
    bump(&m->latency_sum_ns, duration_ns);
}

void srv_metrics_idempotency(struct srv_metrics *m, int replayed, int mismatch)
{
    if (replayed)
        bump(&m->idem_replays, 1);
    if (mismatch)
        bump(&m->idem_mismatches, 1);
}

void srv_metrics_txn(struct srv_metrics *m, etagkv_status outcome, size_t ops)
{
    size_t b = 0;

    bump(&m->txns[outcome == ETAGKV_OK         ? TXN_OK
                  : outcome == ETAGKV_CONFLICT ? TXN_CONFLICT
                                               : TXN_ERROR],
         1);
    if (outcome != ETAGKV_OK && outcome != ETAGKV_CONFLICT)
        return; /* the histogram counts evaluated transactions only */
    while (b < N_TXN_BUCKETS && ops > txn_ops_le[b])
        b++;
    bump(&m->txn_ops_bucket[b], 1);
    bump(&m->txn_ops_sum, ops);
}

void srv_metrics_precondition(struct srv_metrics *m, etagkv_cond_step step,
                              int unknown, int64_t age_ms)
{
    size_t b = 0;

    if ((unsigned)step < N_STEPS)
        bump(&m->failed_by_step[step], 1);
    if (unknown)
        return;
    if (age_ms < 0) {
        bump(&m->never_current, 1);
        return;
    }
    while (b < N_AGE_BUCKETS && age_ms > age_ms_le[b])
        b++;
    bump(&m->age_bucket[b], 1);
    bump(&m->age_sum_ms, (uint64_t)age_ms);
}

/* ---- the exposition ------------------------------------------------------ */

static void render_requests(FILE *f, struct srv_metrics *m)
{
    size_t method, i;

    fputs("# HELP etagkv_http_requests_total HTTP requests answered, by "
          "method and status code.\n"
          "# TYPE etagkv_http_requests_total counter\n",
          f);
    for (method = 0; method < N_METHODS; method++)
        for (i = 0; i <= N_CODES; i++) {
            uint64_t n = load(&m->requests[method][i]);
            char code[16];

            if (n == 0)
                continue;
            if (i < N_CODES)
                snprintf(code, sizeof code, "%u", codes[i]);
            else
                snprintf(code, sizeof code, "other");
            fprintf(f,
                    "etagkv_http_requests_total{method=\"%s\",code=\"%s\"} "
                    "%" PRIu64 "\n",
                    method_names[method], code, n);
        }
    fputs("# HELP etagkv_http_requests_aborted_total Requests that ended "
          "without a response (timeout, client gone, refused body).\n"
          "# TYPE etagkv_http_requests_aborted_total counter\n",
          f);
    for (method = 0; method < N_METHODS; method++)
        fprintf(f,
                "etagkv_http_requests_aborted_total{method=\"%s\"} %" PRIu64
                "\n",
                method_names[method], load(&m->aborted[method]));
}

/* 412s and 409s by route and method: the series that have counted. */
static void render_refused(FILE *f, struct srv_metrics *m)
{
    fputs("# HELP etagkv_http_refusals_total Responses 412 Precondition "
          "Failed and 409 Conflict, by route, method and code.\n"
          "# TYPE etagkv_http_refusals_total counter\n",
          f);
    for (size_t route = 0; route < N_ROUTES; route++)
        for (size_t method = 0; method < N_METHODS; method++)
            for (size_t i = 0; i < N_REFUSED; i++) {
                uint64_t n = load(&m->refused[route][method][i]);

                if (n == 0)
                    continue;
                fprintf(f,
                        "etagkv_http_refusals_total{route=\"%s\",method="
                        "\"%s\",code=\"%s\"} %" PRIu64 "\n",
                        route_names[route], method_names[method],
                        refused_codes[i], n);
            }
}

static void render_counter(FILE *f, const char *name, const char *help,
                           counter *c)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name, help,
            name, name, load(c));
}

/* A histogram of n buckets (not cumulative, +Inf at n) with bounds le
 * as printed, and its sum. */
static void render_histogram(FILE *f, const char *name, const char *help,
                             const char *const *le, counter *buckets, size_t n,
                             double sum)
{
    uint64_t cumulative = 0;

    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t b = 0; b <= n; b++) {
        cumulative += load(&buckets[b]);
        fprintf(f, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name,
                b < n ? le[b] : "+Inf", cumulative);
    }
    fprintf(f, "%s_sum %.9f\n%s_count %" PRIu64 "\n", name, sum, name,
            cumulative);
}

/* A bound of a histogram as Prometheus reads it: v * scale in plain
 * decimal, without trailing zeros ("0.00025", "16"). */
static void format_le(char *out, size_t cap, uint64_t v, double scale)
{
    size_t n;

    snprintf(out, cap, "%.9f", (double)v * scale);
    n = strlen(out);
    while (n > 1 && out[n - 1] == '0')
        out[--n] = '\0';
    if (n > 1 && out[n - 1] == '.')
        out[n - 1] = '\0';
}

/* One of the library's histograms (etagkv_commit_stats), its bounds and
 * sum multiplied by scale (1e-9: nanoseconds to seconds). */
static void render_lib_histogram(FILE *f, const char *name, const char *help,
                                 const etagkv_histogram *h, double scale)
{
    uint64_t cumulative = 0;
    char le[48];

    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t b = 0; b <= h->bounds; b++) {
        cumulative += h->count[b];
        if (b < h->bounds)
            format_le(le, sizeof le, h->le[b], scale);
        else
            snprintf(le, sizeof le, "+Inf");
        fprintf(f, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, le, cumulative);
    }
    fprintf(f, "%s_sum %.9f\n%s_count %" PRIu64 "\n", name,
            (double)h->sum * scale, name, cumulative);
}

/* The group commit's histograms (etagkv_store_commit_stats). */
static void render_commits(FILE *f, etagkv_store *store)
{
    etagkv_commit_stats cs;

    if (etagkv_store_commit_stats(store, &cs) != ETAGKV_OK)
        return;
    render_lib_histogram(
        f, "etagkv_store_commit_duration_seconds",
        "Per committed write transaction, the time from the start of its "
        "work (writer lock held) until its commit returned (durable in sync "
        "mode): applying its batch, then committing.",
        &cs.commit_ns, 1e-9);
    render_lib_histogram(
        f, "etagkv_store_sync_duration_seconds",
        "Per committed write transaction, the time in LMDB's commit call: "
        "writing the pages and, in sync and pipelined modes, flushing them.",
        &cs.sync_ns, 1e-9);
    render_lib_histogram(f, "etagkv_store_commit_batch_ops",
                         "Operations per group-commit batch (a transaction "
                         "is one), committed or not.",
                         &cs.batch_ops, 1.0);
}

static void render_latency(FILE *f, struct srv_metrics *m)
{
    render_histogram(f, "etagkv_http_request_duration_seconds",
                     "Time from the request's headers to its completion.",
                     bucket_le, m->latency_bucket, N_BUCKETS,
                     (double)load(&m->latency_sum_ns) / 1e9);
}

static void render_txns(FILE *f, struct srv_metrics *m)
{
    uint64_t cumulative = 0;
    size_t i;

    fputs("# HELP etagkv_http_transactions_total POST /txn admitted and "
          "answered, by outcome (ok: committed, conflict: 409, error: body "
          "refused or commit failed).\n"
          "# TYPE etagkv_http_transactions_total counter\n",
          f);
    for (i = 0; i < N_TXN_OUTCOMES; i++)
        fprintf(f,
                "etagkv_http_transactions_total{outcome=\"%s\"} %" PRIu64 "\n",
                txn_outcomes[i], load(&m->txns[i]));
    fputs("# HELP etagkv_http_transaction_ops Operations per evaluated "
          "transaction (ok or conflict).\n"
          "# TYPE etagkv_http_transaction_ops histogram\n",
          f);
    for (i = 0; i < N_TXN_BUCKETS; i++) {
        cumulative += load(&m->txn_ops_bucket[i]);
        fprintf(f,
                "etagkv_http_transaction_ops_bucket{le=\"%zu\"} %" PRIu64 "\n",
                txn_ops_le[i], cumulative);
    }
    cumulative += load(&m->txn_ops_bucket[N_TXN_BUCKETS]);
    fprintf(f,
            "etagkv_http_transaction_ops_bucket{le=\"+Inf\"} %" PRIu64 "\n"
            "etagkv_http_transaction_ops_sum %" PRIu64 "\n"
            "etagkv_http_transaction_ops_count %" PRIu64 "\n",
            cumulative, load(&m->txn_ops_sum), cumulative);
}

static void render_preconditions(FILE *f, struct srv_metrics *m)
{
    fputs("# HELP etagkv_http_precondition_failed_by_condition_total 412s "
          "(and transactions' 409s of a 412) by the condition that decided "
          "(RFC 9110 §13.2.2 step).\n"
          "# TYPE etagkv_http_precondition_failed_by_condition_total counter\n",
          f);
    for (size_t i = 0; i < N_STEPS; i++)
        fprintf(f,
                "etagkv_http_precondition_failed_by_condition_total{condition="
                "\"%s\"} %" PRIu64 "\n",
                etagkv_cond_step_name((etagkv_cond_step)i),
                load(&m->failed_by_step[i]));
    render_histogram(f, "etagkv_http_precondition_superseded_age_seconds",
                     "How long before a 412 its sent validator had been "
                     "superseded (from the change log): how stale clients' "
                     "validators are.",
                     age_le, m->age_bucket, N_AGE_BUCKETS,
                     (double)load(&m->age_sum_ms) / 1e3);
    render_counter(f, "etagkv_http_precondition_never_current_total",
                   "412s whose sent validator was never current within the "
                   "change log's window.",
                   &m->never_current);
}

static void render_gauge(FILE *f, const char *name, const char *help,
                         uint64_t v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n%s %" PRIu64 "\n", name, help,
            name, name, v);
}

/* The store's figures (s->store may be NULL); a store that cannot report
 * is left out (the scrape still shows the request counters). */
static void render_store(FILE *f, const struct srv *s)
{
    etagkv_stats stats;

    if (s->store == NULL || etagkv_store_stats(s->store, &stats) != ETAGKV_OK)
        return;
    render_gauge(f, "etagkv_store_records", "Keys holding a record.",
                 stats.records);
    render_gauge(f, "etagkv_store_revision", "Last committed revision.",
                 stats.revision);
    render_gauge(f, "etagkv_store_map_size_bytes", "Current LMDB map size.",
                 stats.map_size_bytes);
    render_gauge(f, "etagkv_store_map_used_bytes", "Bytes of the map in use.",
                 stats.map_used_bytes);
    render_gauge(f, "etagkv_store_map_max_bytes", "Map size ceiling.",
                 stats.map_max_bytes);
    render_gauge(f, "etagkv_store_idempotency_keys",
                 "Idempotency-Keys retained.", stats.idempotency_keys);
    render_gauge(f, "etagkv_store_idempotency_max_keys",
                 "Bound on retained Idempotency-Keys (--idempotency-max-keys): "
                 "past it a new key gets 503.",
                 s->idem_max_keys);
    render_gauge(f, "etagkv_store_change_events", "Events in the change log.",
                 stats.change_events);
    render_gauge(f, "etagkv_writes_waiting",
                 "Conditional writes held by Prefer: wait until their "
                 "conditions hold.",
                 stats.writes_waiting);
    render_gauge(f, "etagkv_leases_live",
                 "Leases in the store (an expired one until its sweep).",
                 stats.leases);
    fprintf(f,
            "# HELP etagkv_leases_total Leases granted, revoked by clients "
            "and expired by the store since the server started.\n"
            "# TYPE etagkv_leases_total counter\n"
            "etagkv_leases_total{event=\"granted\"} %" PRIu64 "\n"
            "etagkv_leases_total{event=\"revoked\"} %" PRIu64 "\n"
            "etagkv_leases_total{event=\"expired\"} %" PRIu64 "\n",
            stats.leases_granted, stats.leases_revoked, stats.leases_expired);
    /* Group commit: the ratio of the two is the mean batch size. */
    fprintf(f,
            "# HELP etagkv_store_write_txns_total Write transactions "
            "committed since the server started.\n"
            "# TYPE etagkv_store_write_txns_total counter\n"
            "etagkv_store_write_txns_total %" PRIu64 "\n"
            "# HELP etagkv_store_write_ops_total Writes committed since the "
            "server started (write_ops / write_txns: mean batch size).\n"
            "# TYPE etagkv_store_write_ops_total counter\n"
            "etagkv_store_write_ops_total %" PRIu64 "\n",
            stats.write_txns, stats.write_ops);
    render_commits(f, s->store);
}

/* Watching (watch.c). */
static void render_watch(FILE *f, const struct srv *s)
{
    struct srv_watch_figures w;

    srv_watch_counters(s, &w);
    render_gauge(f, "etagkv_watchers_held",
                 "Requests held waiting for a change (long-polls and idle "
                 "streams).",
                 w.held);
    render_gauge(f, "etagkv_watch_streams", "Server-Sent Events streams open.",
                 w.streams);
    fprintf(f,
            "# HELP etagkv_watch_events_sent_total Change events sent by "
            "/changes, pages and streams.\n"
            "# TYPE etagkv_watch_events_sent_total counter\n"
            "etagkv_watch_events_sent_total %" PRIu64 "\n"
            "# HELP etagkv_watch_compacted_total /changes refused with 410 "
            "(after= older than the change log).\n"
            "# TYPE etagkv_watch_compacted_total counter\n"
            "etagkv_watch_compacted_total %" PRIu64 "\n"
            "# HELP etagkv_watch_streams_dropped_total Streams closed because "
            "the reader did not keep up.\n"
            "# TYPE etagkv_watch_streams_dropped_total counter\n"
            "etagkv_watch_streams_dropped_total %" PRIu64 "\n",
            w.events, w.compacted, w.dropped);
}

/* The exposition of every counter of s's metrics, the memory budget, the
 * watchers and, from s->store (may be NULL), the store's figures.
 * malloc'd, NUL-terminated; NULL on failure. */
static char *render(const struct srv *s)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct srv_metrics *m = s->metrics;

    if (f == NULL)
        return NULL;
    render_requests(f, m);
    render_refused(f, m);
    render_counter(f, "etagkv_http_not_modified_total",
                   "Responses 304 Not Modified.", &m->not_modified);
    render_counter(f, "etagkv_http_precondition_failed_total",
                   "Responses 412 Precondition Failed.",
                   &m->precondition_failed);
    render_counter(f, "etagkv_http_precondition_required_total",
                   "Responses 428 Precondition Required.",
                   &m->precondition_required);
    render_counter(f, "etagkv_http_idempotent_replays_total",
                   "Writes answered with the recorded outcome of an earlier "
                   "request with the same Idempotency-Key.",
                   &m->idem_replays);
    render_counter(f, "etagkv_http_idempotency_mismatches_total",
                   "Idempotency-Keys reused for a different request (422).",
                   &m->idem_mismatches);
    render_preconditions(f, m);
    render_latency(f, m);
    render_gauge(f, "etagkv_buffered_bytes",
                 "Bytes of request bodies and shared GET values held in "
                 "memory (the memory budget in use).",
                 srv_budget_used(s->budget));
    render_gauge(f, "etagkv_buffered_bytes_limit",
                 "The memory budget (--max-buffered-bytes).",
                 srv_budget_limit(s->budget));
    render_gauge(f, "etagkv_http_requests_in_progress",
                 "Requests held, from their request line until they end "
                 "(this scrape included): read, executed, waiting or "
                 "streaming.",
                 (uint64_t)atomic_load(&s->requests_held));
    render_txns(f, m);
    render_store(f, s);
    render_watch(f, s);
    fprintf(f,
            "# HELP etagkv_build_info Version of etagkv-server.\n"
            "# TYPE etagkv_build_info gauge\n"
            "etagkv_build_info{version=\"%s\"} 1\n",
            ETAGKV_VERSION_STRING);
    /* open_memstream reports write failures (no memory) at fclose. */
    if (ferror(f) != 0) {
        fclose(f);
        free(text);
        return NULL;
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

enum MHD_Result srv_metrics_scrape(struct srv *s, struct MHD_Connection *c,
                                   struct srv_req *r)
{
    char *text = render(s);
    struct MHD_Response *resp;

    if (text == NULL)
        return srv_queue(s, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
                         srv_status_problem(ETAGKV_NO_MEMORY, NULL));
    resp = srv_text_response("text/plain; version=0.0.4; charset=utf-8", text);
    free(text);
    return srv_queue(s, c, r, MHD_HTTP_OK, resp);
}

/* ---- /healthz ------------------------------------------------------------ */

enum MHD_Result srv_healthz(struct srv *s, struct MHD_Connection *c,
                            struct srv_req *r)
{
    if (atomic_load(&s->draining))
        return srv_queue(s, c, r, MHD_HTTP_SERVICE_UNAVAILABLE,
                         srv_draining_problem());
    return srv_queue(s, c, r, MHD_HTTP_OK,
                     srv_text_response("text/plain; charset=utf-8", "ok\n"));
}
