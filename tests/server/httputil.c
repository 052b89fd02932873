/*
 * httputil.c -- the real etagkv-server as a child process, and libcurl
 * requests against it (see httputil.h).
 */
#include "httputil.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* How long a server gets to announce its port and become healthy; the
 * sanitizer build starts several times slower than the normal one. */
#define START_TIMEOUT_S 20.0

/* Read the "listening on http://127.0.0.1:PORT" line from fd; 0 when the
 * server exits or stays silent until the deadline (tu_now_s() seconds). */
static int read_port(int fd, double deadline)
{
    char line[256];
    size_t n = 0;
    const char *colon;

    while (n < sizeof line - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)((deadline - tu_now_s()) * 1e3);

        if (left <= 0 || poll(&p, 1, left) != 1 || read(fd, line + n, 1) != 1)
            return 0;
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    if (strstr(line, "listening on http://127.0.0.1:") == NULL &&
        strstr(line, "listening on https://127.0.0.1:") == NULL)
        return 0;
    colon = strrchr(line, ':');
    return atoi(colon + 1);
}

/* HEAD, so that the GET counts in /metrics stay the tests' own. */
static int healthy(int port)
{
    struct hu_req q = {"HEAD", "/healthz", NULL, NULL, 0};
    struct hu_resp r;
    CURL *h = curl_easy_init();
    int ok;

    if (h == NULL)
        return 0;
    hu_perform(h, port, &q, &r, 5);
    ok = r.err == CURLE_OK && r.code == 200;
    hu_resp_free(&r);
    curl_easy_cleanup(h);
    return ok;
}

/* Send sig to the server and reap it; returns its wait status. */
static int signal_and_reap(struct hu_server *s, int sig)
{
    int status = 0;

    ck_assert_int_eq(kill(s->pid, sig), 0);
    ck_assert_int_eq(waitpid(s->pid, &status, 0), s->pid);
    s->pid = 0;
    return status;
}

/* Start s->bin on s->data; see hu_server_start(). */
static void launch(struct hu_server *s, const char *const *extra)
{
    const char *argv[32];
    char where[1024], via[1300];
    int pipefd[2], n = 0;
    double deadline = tu_now_s() + START_TIMEOUT_S;

    argv[n++] = s->bin;
    if (tu_on_etcd()) {
        /* The same store location as tu_open() gives the library suites,
         * without its "etcd://". */
        const char *at = tu_store_where(s->data, where, sizeof(where)) + 7;

        if (s->etcd[0] != '\0') {
            snprintf(via, sizeof(via), "%s%s", s->etcd, strchr(at, '/'));
            at = via;
        }
        argv[n++] = "--etcd";
        argv[n++] = at;
    } else {
        argv[n++] = "--data";
        argv[n++] = s->data;
    }
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    while (extra != NULL && *extra != NULL && n < 31)
        argv[n++] = *extra++;
    argv[n] = NULL;
    ck_assert_int_eq(pipe(pipefd), 0);
    s->pid = fork();
    ck_assert_int_ge(s->pid, 0);
    if (s->pid == 0) {
        /* Die with the test instead of lingering. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(pipefd[1], STDOUT_FILENO);
        if (s->err[0] != '\0') {
            int fd = open(s->err, O_WRONLY | O_CREAT | O_APPEND, 0600);

            if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
                _exit(126);
        }
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    s->port = read_port(pipefd[0], deadline);
    close(pipefd[0]);
    if (s->port <= 0) {
        hu_server_kill(s);
        ck_abort_msg("%s did not announce a port on %s", s->bin, s->data);
    }
    while (!healthy(s->port)) {
        if (tu_now_s() > deadline) {
            /* Whatever it dies of, the finding is that it never
             * answered. */
            (void)signal_and_reap(s, SIGKILL);
            ck_abort_msg("the server on %s never became healthy", s->data);
        }
        usleep(10000);
    }
}

void hu_server_start(struct hu_server *s, const char *bin, const char *data,
                     const char *const *extra)
{
    hu_server_start_via(s, bin, data, "", extra);
}

void hu_server_start_via(struct hu_server *s, const char *bin, const char *data,
                         const char *endpoints, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    s->bin = bin;
    snprintf(s->data, sizeof s->data, "%s", data);
    ck_assert_uint_lt(strlen(endpoints), sizeof s->etcd);
    snprintf(s->etcd, sizeof s->etcd, "%s", endpoints);
    launch(s, extra);
}

void hu_server_restart(struct hu_server *s, const char *const *extra)
{
    ck_assert_msg(s->pid == 0, "the server on %s is still running", s->data);
    launch(s, extra);
}

void hu_server_kill(struct hu_server *s)
{
    int status;

    if (s->pid <= 0)
        return;
    status = signal_and_reap(s, SIGKILL);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "the server died on its own before the kill (%s %d)",
                  WIFEXITED(status) ? "exit status" : "signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

void hu_server_stop(struct hu_server *s)
{
    int status;

    if (s->pid <= 0)
        return;
    status = signal_and_reap(s, SIGTERM);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the server did not exit 0 on SIGTERM (%s %d)",
                  WIFEXITED(status) ? "exit status" : "signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

void hu_fixture_init(struct hu_fixture *f)
{
    memset(f, 0, sizeof *f);
    f->dir = tu_mkdtemp();
}

void hu_fixture_start(struct hu_fixture *f, const char *bin,
                      const char *const *extra)
{
    char data[512];

    snprintf(data, sizeof data, "%s/data", f->dir);
    hu_server_start(&f->srv, bin, data, extra);
    f->ua = curl_easy_init();
    ck_assert_ptr_nonnull(f->ua);
}

void hu_fixture_stop(struct hu_fixture *f)
{
    curl_easy_cleanup(f->ua);
    f->ua = NULL;
    hu_server_stop(&f->srv);
    tu_rmdir_free(f->dir);
    f->dir = NULL;
}

int hu_connect(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0,
                  "connect: %s", strerror(errno));
    return fd;
}

/* ---- requests ------------------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct hu_resp *r = ud;
    char *grown = realloc(r->body, r->len + size * n + 1);

    if (grown == NULL)
        return 0;
    r->body = grown;
    memcpy(r->body + r->len, p, size * n);
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

/* Keep the header fields of the final response only. */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct hu_resp *r = ud;
    size_t len = size * n, i;
    char *colon;

    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        for (int k = 0; k < r->nh; k++) {
            free(r->name[k]);
            free(r->value[k]);
        }
        r->nh = 0;
        return len;
    }
    colon = memchr(p, ':', len);
    if (colon == NULL || r->nh == HU_MAX_HEADERS)
        return len;
    i = (size_t)(colon - p);
    r->name[r->nh] = strndup(p, i);
    for (i++; i < len && (p[i] == ' ' || p[i] == '\t'); i++)
        ;
    while (len > i && (p[len - 1] == '\r' || p[len - 1] == '\n'))
        len--;
    r->value[r->nh] = strndup(p + i, len - i);
    if (r->name[r->nh] == NULL || r->value[r->nh] == NULL) {
        free(r->name[r->nh]);
        free(r->value[r->nh]);
        return 0;
    }
    r->nh++;
    return size * n;
}

/* Whether headers has a line for field name (case-insensitive). */
static int has_field(const char *const *headers, const char *name)
{
    size_t n = strlen(name);

    for (; headers != NULL && *headers != NULL; headers++)
        if (strncasecmp(*headers, name, n) == 0 &&
            ((*headers)[n] == ':' || (*headers)[n] == ';'))
            return 1;
    return 0;
}

/* Append line to call's header list unless the request's headers already
 * have field name; 0, or -1 when out of memory. */
static int add_default(struct hu_call *call, const struct hu_req *q,
                       const char *name, const char *line)
{
    struct curl_slist *l;

    if (has_field(q->headers, name))
        return 0;
    if ((l = curl_slist_append(call->list, line)) == NULL)
        return -1;
    call->list = l;
    return 0;
}

/* The CA file of hu_use_tls(), or NULL for plain HTTP. */
static const char *tls_ca;

void hu_use_tls(const char *cafile)
{
    tls_ca = cafile;
}

int hu_prepare(struct hu_call *call, CURL *h, int port, const struct hu_req *q,
               struct hu_resp *r, long timeout_s)
{
    /* Sized to the path: tests send keys of thousands of escapes. */
    size_t n = sizeof "https://127.0.0.1:65535" + strlen(q->path);
    char *url = malloc(n);

    memset(r, 0, sizeof *r);
    call->h = h;
    call->r = r;
    call->list = NULL;
    if (url == NULL)
        return -1;
    snprintf(url, n, "%s://127.0.0.1:%d%s", tls_ca != NULL ? "https" : "http",
             port, q->path);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url); /* libcurl keeps a copy */
    if (tls_ca != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, tls_ca);
    free(url);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    for (const char *const *hp = q->headers; hp != NULL && *hp != NULL; hp++) {
        struct curl_slist *l = curl_slist_append(call->list, *hp);

        if (l == NULL)
            goto oom;
        call->list = l;
    }
    if (strcmp(q->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (q->body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)q->body_len);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
        /* No "Expect: 100-continue" round trip for larger bodies, and no
         * form content type: the server stores its default.  A test that
         * sends either field means it. */
        if (add_default(call, q, "Expect", "Expect:") != 0 ||
            add_default(call, q, "Content-Type", "Content-Type:") != 0)
            goto oom;
    } else if (strcmp(q->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, call->list);
    return 0;
oom:
    curl_slist_free_all(call->list);
    call->list = NULL;
    return -1;
}

void hu_finish(struct hu_call *call, CURLcode err)
{
    call->r->err = err;
    curl_easy_getinfo(call->h, CURLINFO_RESPONSE_CODE, &call->r->code);
    curl_easy_getinfo(call->h, CURLINFO_NUM_CONNECTS, &call->r->connects);
    curl_easy_setopt(call->h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(call->list);
    call->list = NULL;
}

void hu_fixture_call(struct hu_fixture *f, struct hu_resp *r,
                     const char *method, const char *path,
                     const char *const *headers, const void *body, size_t len)
{
    struct hu_req q = {method, path, headers, body, len};

    hu_perform(f->ua, f->srv.port, &q, r, 60);
    ck_assert_msg(r->err == CURLE_OK, "%s %s: %s", method, path,
                  curl_easy_strerror(r->err));
}

void hu_perform(CURL *h, int port, const struct hu_req *q, struct hu_resp *r,
                long timeout_s)
{
    struct hu_call call;

    if (hu_prepare(&call, h, port, q, r, timeout_s) != 0) {
        r->err = CURLE_OUT_OF_MEMORY;
        return;
    }
    hu_finish(&call, curl_easy_perform(h));
}

const char *hu_hdr(const struct hu_resp *r, const char *name)
{
    for (int i = 0; i < r->nh; i++)
        if (strcasecmp(r->name[i], name) == 0)
            return r->value[i];
    return NULL;
}

void hu_resp_free(struct hu_resp *r)
{
    for (int i = 0; i < r->nh; i++) {
        free(r->name[i]);
        free(r->value[i]);
    }
    free(r->body);
    memset(r, 0, sizeof *r);
}

int64_t hu_metric(const char *body, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = body; p != NULL && *p != '\0';
         p = strchr(p, '\n') != NULL ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtoll(p + n + 1, NULL, 10);
    }
    return -1;
}

int64_t hu_metric_await(CURL *h, int port, const char *name, int64_t want,
                        double timeout_s)
{
    const struct hu_req q = {"GET", "/metrics", NULL, NULL, 0};
    double deadline = tu_now_s() + timeout_s;
    int64_t v;

    for (;;) {
        struct hu_resp r;

        hu_perform(h, port, &q, &r, 30);
        ck_assert_msg(r.err == CURLE_OK && r.code == 200, "GET /metrics: %s",
                      curl_easy_strerror(r.err));
        v = hu_metric(r.body, name);
        hu_resp_free(&r);
        if (v >= want || tu_now_s() >= deadline)
            return v;
        usleep(10000);
    }
}
