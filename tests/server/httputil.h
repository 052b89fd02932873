/*
 * httputil.h -- the real etagkv-server as a child process, and libcurl
 * requests against it, for the suites that talk to it over HTTP
 * (test_server, test_hostile, test_history, test_crash).
 *
 * Thread rules: hu_server_*(), hu_fixture_*() and hu_connect() use Check
 * assertions and must run on the test's main thread (the server is the
 * child of that thread: it gets SIGKILL through PR_SET_PDEATHSIG if the
 * thread dies).  hu_perform() and the response helpers never assert and
 * may run on any thread, each with its own CURL handle.
 */
#ifndef ETAGKV_HTTPUTIL_H
#define ETAGKV_HTTPUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>

/* A running etagkv-server. */
struct hu_server {
    pid_t pid;       /* 0 when not running */
    int port;        /* the port it announced */
    const char *bin; /* the binary, as given to hu_server_start() */
    char data[512];  /* its data directory */
    char etcd[256];  /* on etcd: its endpoints, if not the suite's */
    /* When set (before hu_server_restart()): the file its stderr is
     * appended to, for a test that reads what the server logs. */
    char err[512];
};

/* Start the server binary bin on data dir `data` (created by the server if
 * missing), listening on 127.0.0.1:0, with extra options (NULL-terminated,
 * may be NULL); read the announced port and wait until /healthz answers.
 * bin must stay valid until the server is no longer restarted.  Fails the
 * test if it does not come up within 20 s (then it is killed). */
void hu_server_start(struct hu_server *s, const char *bin, const char *data,
                     const char *const *extra);

/* hu_server_start(), on etcd, with the endpoint list `endpoints`
 * ("HOST:PORT,...") instead of the suite's (ETAGKV_TEST_STORE; "" keeps
 * those), and the same prefix: a server that reaches the cluster through a
 * relay.  Kept for restarts. */
void hu_server_start_via(struct hu_server *s, const char *bin, const char *data,
                         const char *endpoints, const char *const *extra);

/* Start s again, with the same binary and data dir and with options extra
 * (they need not be those of the first start), after hu_server_stop() or
 * hu_server_kill(); s->port is the new port.  Fails the test as
 * hu_server_start() does. */
void hu_server_restart(struct hu_server *s, const char *const *extra);

/* SIGKILL the server and reap it; fails the test unless it died of that
 * signal (an earlier crash of its own would be a finding). */
void hu_server_kill(struct hu_server *s);

/* SIGTERM the server and reap it; fails the test unless it exits 0. */
void hu_server_stop(struct hu_server *s);

/* The fixture of a suite that runs one server per test: the server on a
 * fresh temporary directory, and the test's client handle. */
struct hu_fixture {
    struct hu_server srv;
    char *dir; /* from tu_mkdtemp(); the server's data is in dir/data */
    CURL *ua;  /* for the test's main thread */
};

/* Make f->dir, where a test may put files for the server (a token) before
 * hu_fixture_start(). */
void hu_fixture_init(struct hu_fixture *f);

/* Start the server binary bin on f->dir/data with options extra (as
 * hu_server_start()) and open f->ua.  Fails the test on any error. */
void hu_fixture_start(struct hu_fixture *f, const char *bin,
                      const char *const *extra);

/* Close f->ua, stop the server (hu_server_stop(): it must exit 0, so a
 * crash fails the test) and remove f->dir.  Accepts a fixture that was
 * only initialised, or zeroed; leaves it zeroed. */
void hu_fixture_stop(struct hu_fixture *f);

/* A new TCP connection to 127.0.0.1:port, for what libcurl would not send
 * (half a request, a held-open socket); close it with close(2).  Fails the
 * test if the connection is refused. */
int hu_connect(int port);

/* Header fields kept per response: far more than the server sends, so
 * that an assertion that a field is absent is never fooled by one that
 * was dropped. */
#define HU_MAX_HEADERS 64

/* A response: status, body (NUL-terminated copy) and header fields of the
 * final response.  err is the transport outcome (CURLE_OK: a response). */
struct hu_resp {
    CURLcode err;
    long code;
    char *body;
    size_t len;
    long connects; /* connections the transfer opened (0: it reused one) */
    int nh;
    char *name[HU_MAX_HEADERS];
    char *value[HU_MAX_HEADERS];
};

/* One request.  headers: full "Name: value" lines, NULL-terminated, may be
 * NULL; they win over libcurl's own (an "Expect: 100-continue" line is
 * sent as given).  body: the PUT body (len bytes) or NULL for none; it is
 * sent without an "Expect: 100-continue" round trip and, unless headers
 * name one, without a Content-Type, so the server stores its default. */
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

/* From now on, requests (hu_prepare(), and the health check of
 * hu_server_start()) use HTTPS and trust the PEM certificates in cafile;
 * NULL: plain HTTP again.  cafile must stay valid meanwhile.  Main thread
 * only, with no request in flight. */
void hu_use_tls(const char *cafile);

/* Set h up for q against port, writing into r (zeroed here).  The handle
 * keeps its connection cache (keep-alive).  Transfers time out after
 * timeout_s seconds.  The caller may set more options on h before the
 * transfer (a chunked upload).  Returns 0, or -1 when out of memory. */
int hu_prepare(struct hu_call *call, CURL *h, int port, const struct hu_req *q,
               struct hu_resp *r, long timeout_s);

/* After the transfer of call ended with err: fill in the status and the
 * connection count and release what hu_prepare() allocated. */
void hu_finish(struct hu_call *call, CURLcode err);

/* hu_prepare(), curl_easy_perform(), hu_finish(). */
void hu_perform(CURL *h, int port, const struct hu_req *q, struct hu_resp *r,
                long timeout_s);

/* One request with f's handle and server: method, path, header lines
 * (NULL-terminated, may be NULL) and a body of len bytes (NULL: none), as
 * hu_perform() with a 60 s timeout.  A transport error fails the test
 * (main thread only).  The caller frees r with hu_resp_free(). */
void hu_fixture_call(struct hu_fixture *f, struct hu_resp *r,
                     const char *method, const char *path,
                     const char *const *headers, const void *body, size_t len);

/* The value of header name in r (case-insensitive), or NULL. */
const char *hu_hdr(const struct hu_resp *r, const char *name);

/* Free what r holds and zero it. */
void hu_resp_free(struct hu_resp *r);

/* The value of the Prometheus sample `name` (a line "name value") in a
 * /metrics body, or -1 when absent. */
int64_t hu_metric(const char *body, const char *name);

/* The value of sample `name` on the /metrics of the server at port, read
 * through h, once it is at least `want`, or its last value after
 * timeout_s seconds.  The server counts a request when libmicrohttpd
 * reports it complete, which may be after the client has read the whole
 * response: a test that reads /metrics right after a request must wait
 * for the count, not assume it. */
int64_t hu_metric_await(CURL *h, int port, const char *name, int64_t want,
                        double timeout_s);

#endif
