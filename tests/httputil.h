/*
 * httputil.h -- the real etagkv-server as a child process, and libcurl
 * requests against it, for the suites that drive it from many threads
 * (test_crash, test_history).
 *
 * Thread rules: hu_server_*() use Check assertions and must run on the
 * test's main thread (the server is the child of that thread: it gets
 * SIGKILL through PR_SET_PDEATHSIG if the thread dies).  hu_perform() and
 * the response helpers never assert and may run on any thread, each with
 * its own CURL handle.
 */
#ifndef ETAGKV_HTTPUTIL_H
#define ETAGKV_HTTPUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>

/* A running etagkv-server. */
struct hu_server {
    pid_t pid; /* 0 when not running */
    int port;  /* the port it announced */
    char data[512];
};

/* Start the server binary bin on data dir `data` (created by the server if
 * missing), listening on 127.0.0.1:0, with extra options (NULL-terminated,
 * may be NULL); read the announced port and wait until /healthz answers.
 * Fails the test if it does not come up within 10 s (then it is killed). */
void hu_server_start(struct hu_server *s, const char *bin, const char *data,
                     const char *const *extra);

/* SIGKILL the server and reap it; fails the test unless it died of that
 * signal (an earlier crash of its own would be a finding). */
void hu_server_kill(struct hu_server *s);

/* SIGTERM the server and reap it; fails the test unless it exits 0. */
void hu_server_stop(struct hu_server *s);

#define HU_MAX_HEADERS 32

/* A response: status, body (NUL-terminated copy) and header fields of the
 * final response.  err is the transport outcome (CURLE_OK: a response). */
struct hu_resp {
    CURLcode err;
    long code;
    char *body;
    size_t len;
    int nh;
    char *name[HU_MAX_HEADERS];
    char *value[HU_MAX_HEADERS];
};

/* One request.  headers: full "Name: value" lines, NULL-terminated, may be
 * NULL.  body: the PUT body (len bytes) or NULL for none. */
struct hu_req {
    const char *method;
    const char *path; /* already percent-encoded */
    const char *const *headers;
    const void *body;
    size_t body_len;
};

/* A request being prepared on an easy handle, for callers that drive
 * several handles at once with curl_multi. */
struct hu_call {
    CURL *h;
    struct curl_slist *list;
    struct hu_resp *r;
};

/* Set h up for q against port, writing into r (zeroed here).  The handle
 * keeps its connection cache (keep-alive).  Transfers time out after
 * timeout_s seconds.  Returns 0, or -1 when out of memory. */
int hu_prepare(struct hu_call *call, CURL *h, int port, const struct hu_req *q,
               struct hu_resp *r, long timeout_s);

/* After the transfer of call ended with err: fill in the status and release
 * what hu_prepare() allocated. */
void hu_finish(struct hu_call *call, CURLcode err);

/* hu_prepare(), curl_easy_perform(), hu_finish(). */
void hu_perform(CURL *h, int port, const struct hu_req *q, struct hu_resp *r,
                long timeout_s);

/* The value of header name in r (case-insensitive), or NULL. */
const char *hu_hdr(const struct hu_resp *r, const char *name);

/* Free what r holds and zero it. */
void hu_resp_free(struct hu_resp *r);

/* The value of the Prometheus sample `name` (a line "name value") in a
 * /metrics body, or -1 when absent. */
int64_t hu_metric(const char *body, const char *name);

#endif
