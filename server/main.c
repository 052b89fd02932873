/*
 * main.c -- etagkv-server: options, the listening socket, signals, and an
 * orderly shutdown.
 *
 * SIGINT and SIGTERM are blocked in every thread and taken with sigwait()
 * in the main thread, so no work happens in a signal handler.  Shutdown:
 * stop accepting, let requests in flight finish (each response then asks
 * the client to close), stop the daemon, close the store.  Every acknowledged
 * write is already durable when it was answered.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How long in-flight requests get to finish after SIGTERM. */
#define DRAIN_TIMEOUT_NS (10ull * 1000000000u)

struct config {
    const char *data_dir;
    const char *listen;
    unsigned threads;
    etagkv_sync_mode sync_mode;
    uint64_t max_value_bytes;
    uint64_t max_txn_ops, max_txn_bytes; /* POST /txn (DESIGN §7) */
    int require_conditions;
    const char *token_file;
    unsigned max_connections;
    unsigned timeout_s;
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: etagkv-server [options]\n"
        "\n"
        "Serve an etagkv store over HTTP (see docs/http.md).\n"
        "\n"
        "  --data DIR             store directory, created if missing\n"
        "                         (default ./etagkv-data)\n"
        "  --listen HOST:PORT     address to listen on (default\n"
        "                         127.0.0.1:8080; [::1]:8080 for IPv6;\n"
        "                         port 0 picks a free port)\n"
        "  --threads N            worker threads (default: CPUs, at least 4)\n"
        "  --sync                 acknowledge writes once on stable storage\n"
        "                         (default)\n"
        "  --nosync               acknowledge writes once in the OS page "
        "cache\n"
        "  --max-value-bytes N    largest value accepted (default 67108864)\n"
        "  --max-txn-ops N        operations per POST /txn (default 128)\n"
        "  --max-txn-bytes N      largest POST /txn body (default 16777216)\n"
        "  --require-conditions   refuse PUT/DELETE without If-Match,\n"
        "                         If-None-Match or If-Unmodified-Since (428)\n"
        "  --token-file FILE      require Authorization: Bearer <token>, the\n"
        "                         token being FILE's first line\n"
        "  --max-connections N    concurrent connections (default 1024)\n"
        "  --timeout SECONDS      close idle or stalled connections after\n"
        "                         this long (default 30; 0: never)\n"
        "  --help                 show this and exit\n"
        "  --version              show the version and exit\n");
}

/* Parse an unsigned decimal in [lo, hi]; 0 or -1. */
static int parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi,
                     uint64_t *out)
{
    unsigned long long v;
    char *end;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v < lo ||
        v > hi) {
        fprintf(stderr,
                "etagkv-server: --%s wants an integer from %llu to %llu, "
                "not '%s'\n",
                opt, (unsigned long long)lo, (unsigned long long)hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_unsigned(const char *opt, const char *s, unsigned lo,
                          unsigned hi, unsigned *out)
{
    uint64_t v;

    if (parse_u64(opt, s, lo, hi, &v) != 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static unsigned default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 4)
        return 4;
    return n > 64 ? 64 : (unsigned)n;
}

static void config_defaults(struct config *cfg)
{
    cfg->data_dir = "etagkv-data";
    cfg->listen = "127.0.0.1:8080";
    cfg->threads = default_threads();
    cfg->sync_mode = ETAGKV_SYNC;
    cfg->max_value_bytes = ETAGKV_MAX_VALUE_BYTES_DEFAULT;
    cfg->max_txn_ops = ETAGKV_TXN_MAX_OPS_DEFAULT;
    cfg->max_txn_bytes = ETAGKV_TXN_MAX_BYTES_DEFAULT;
    cfg->require_conditions = 0;
    cfg->token_file = NULL;
    cfg->max_connections = 1024;
    cfg->timeout_s = 30;
}

static int check_listen(const char *spec);

/* Fill cfg from argv.  Returns 0 to run, 1 when done (--help, --version),
 * -1 on a usage error (already reported). */
static int parse_options(int argc, char **argv, struct config *cfg)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},
        {"sync", no_argument, NULL, 's'},
        {"nosync", no_argument, NULL, 'n'},
        {"max-value-bytes", required_argument, NULL, 'm'},
        {"max-txn-ops", required_argument, NULL, 'O'},
        {"max-txn-bytes", required_argument, NULL, 'B'},
        {"require-conditions", no_argument, NULL, 'r'},
        {"token-file", required_argument, NULL, 'k'},
        {"max-connections", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int rc = 0;

    config_defaults(cfg);
    while (rc == 0) {
        int ch = getopt_long(argc, argv, "h", opts, NULL);

        if (ch == -1)
            break;
        switch (ch) {
        case 'd': cfg->data_dir = optarg; break;
        case 'l': cfg->listen = optarg; break;
        case 't':
            rc = parse_unsigned("threads", optarg, 1, 1024, &cfg->threads);
            break;
        case 's': cfg->sync_mode = ETAGKV_SYNC; break;
        case 'n': cfg->sync_mode = ETAGKV_NOSYNC; break;
        case 'm':
            rc = parse_u64("max-value-bytes", optarg, 1,
                           ETAGKV_MAX_VALUE_BYTES_LIMIT, &cfg->max_value_bytes);
            break;
        case 'O':
            rc =
                parse_u64("max-txn-ops", optarg, 1, 1000000, &cfg->max_txn_ops);
            break;
        case 'B':
            rc = parse_u64("max-txn-bytes", optarg, 1,
                           ETAGKV_MAX_VALUE_BYTES_LIMIT, &cfg->max_txn_bytes);
            break;
        case 'r': cfg->require_conditions = 1; break;
        case 'k': cfg->token_file = optarg; break;
        case 'c':
            rc = parse_unsigned("max-connections", optarg, 1, 1000000,
                                &cfg->max_connections);
            break;
        case 'o':
            rc = parse_unsigned("timeout", optarg, 0, 86400 * 365,
                                &cfg->timeout_s);
            break;
        case 'h': usage(stdout); return 1;
        case 'V': printf("etagkv-server %s\n", ETAGKV_VERSION_STRING); return 1;
        default: usage(stderr); return -1;
        }
    }
    if (rc == 0 && optind < argc) {
        fprintf(stderr, "etagkv-server: unexpected argument '%s'\n",
                argv[optind]);
        rc = -1;
    }
    if (rc == 0 && *cfg->data_dir == '\0') {
        fprintf(stderr, "etagkv-server: --data wants a directory\n");
        rc = -1;
    }
    if (rc == 0 && check_listen(cfg->listen) != 0)
        rc = -1;
    if (rc == 0 && cfg->max_connections < cfg->threads) {
        /* MHD shares the limit out between the worker threads. */
        fprintf(stderr, "etagkv-server: --max-connections must be at least "
                        "--threads\n");
        rc = -1;
    }
    return rc;
}

/* ---- start-up ----------------------------------------------------------- */

/* mkdir -p; 0 or -1 with errno set. */
static int make_dirs(const char *path)
{
    char buf[PATH_MAX];
    size_t i, len = strlen(path);

    if (len == 0 || len >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        buf[i] = path[i];
    }
    return 0;
}

/* Read the bearer token: the file's first line, which must be a
 * non-empty run of visible ASCII (an RFC 6750 b64token and then some). */
static int read_token(const char *file, char **token, size_t *len)
{
    char buf[4097];
    size_t n, i;
    FILE *f = fopen(file, "r");

    if (f == NULL) {
        fprintf(stderr, "etagkv-server: %s: %s\n", file, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    n = strcspn(buf, "\r\n");
    for (i = 0; i < n; i++)
        if (buf[i] <= ' ' || buf[i] >= 0x7f)
            break;
    if (n == 0 || i < n) {
        fprintf(stderr,
                "etagkv-server: %s: the first line must be the "
                "token (visible ASCII, no spaces)\n",
                file);
        return -1;
    }
    *token = malloc(n + 1);
    if (*token == NULL)
        return -1;
    memcpy(*token, buf, n + 1);
    (*token)[n] = '\0';
    *len = n;
    return 0;
}

/* Split HOST:PORT ([v6]:PORT) into host and port. */
static int split_listen(const char *spec, char *host, size_t hcap,
                        const char **port)
{
    const char *colon, *h = spec;
    size_t hlen;

    if (*spec == '[') {
        const char *close = strchr(spec, ']');

        if (close == NULL || close[1] != ':')
            return -1;
        h = spec + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL)
            return -1;
        hlen = (size_t)(colon - spec);
    }
    if (hlen == 0 || hlen >= hcap || colon[1] == '\0' ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
        strlen(colon + 1) > 5 || atol(colon + 1) > 65535)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = colon + 1;
    return 0;
}

/* Is spec a HOST:PORT split_listen() accepts?  0, or -1 (reported): a
 * malformed --listen is a usage error, found before anything is opened. */
static int check_listen(const char *spec)
{
    char host[256];
    const char *port;

    if (split_listen(spec, host, sizeof host, &port) == 0)
        return 0;
    fprintf(stderr,
            "etagkv-server: --listen wants HOST:PORT (PORT 0 to "
            "65535), not '%s'\n",
            spec);
    return -1;
}

/* Bind and listen on spec (checked by check_listen()); returns the socket
 * or -1 (reported). */
static int open_listener(const char *spec, int *family)
{
    struct addrinfo hints, *res = NULL, *ai;
    char host[256];
    const char *port;
    int fd = -1, one = 1, rc;

    if (split_listen(spec, host, sizeof host, &port) != 0)
        return -1; /* not reached: check_listen() refused it */
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "etagkv-server: %s: %s\n", spec, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        *family = ai->ai_family;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 ||
            fcntl(fd, F_SETFL, O_NONBLOCK) != 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
            listen(fd, SOMAXCONN) != 0) {
            fprintf(stderr, "etagkv-server: %s: %s\n", spec, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* Print the address actually bound (port 0 becomes the real port), so
 * that scripts and tests can read it. */
static int announce(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN], port[8];
    int v6;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, port,
                    sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return -1;
    v6 = ss.ss_family == AF_INET6;
    printf("etagkv-server listening on http://%s%s%s:%s\n", v6 ? "[" : "", host,
           v6 ? "]" : "", port);
    return fflush(stdout) == 0 ? 0 : -1;
}

static etagkv_store *open_store(const struct config *cfg)
{
    etagkv_options o;
    etagkv_store *store = NULL;
    etagkv_status st;

    if (make_dirs(cfg->data_dir) != 0) {
        fprintf(stderr, "etagkv-server: %s: %s\n", cfg->data_dir,
                strerror(errno));
        return NULL;
    }
    etagkv_options_init(&o);
    o.sync_mode = cfg->sync_mode;
    o.max_value_bytes = cfg->max_value_bytes;
    o.max_txn_ops = cfg->max_txn_ops;
    /* Keys and values decoded from the body are never more bytes than
     * the body. */
    o.max_txn_bytes = cfg->max_txn_bytes;
    st = etagkv_store_open(cfg->data_dir, &o, &store);
    if (st != ETAGKV_OK)
        fprintf(stderr, "etagkv-server: cannot open the store in %s: %s (%s)\n",
                cfg->data_dir, etagkv_strerror(st), etagkv_last_error_detail());
    return store;
}

/* MHD's accept policy: refuse new connections once draining (the
 * shutdown's "stop accepting"; see drain_and_stop). */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr,
                                     socklen_t addrlen)
{
    struct srv *s = cls;

    (void)addr;
    (void)addrlen;
    return atomic_load(&s->draining) ? MHD_NO : MHD_YES;
}

static struct MHD_Daemon *start_daemon(struct srv *s, const struct config *cfg,
                                       int fd, int family)
{
    /* MHD_ALLOW_SUSPEND_RESUME: writes suspend their connection while the
     * library commits them (kv.c). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    /* One thread is MHD's internal polling thread itself: MHD refuses a
     * pool of one, so the pool option is left out then. */
    struct MHD_OptionItem pool[] = {
        {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)cfg->threads, NULL},
        {MHD_OPTION_END, 0, NULL}};

    if (cfg->threads < 2)
        pool[0].option = MHD_OPTION_END;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    return MHD_start_daemon(
        flags, 0, accept_policy, s, srv_access, s, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_ARRAY, pool, MHD_OPTION_CONNECTION_LIMIT,
        cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, srv_completed, s,
        MHD_OPTION_URI_LOG_CALLBACK, srv_uri_log, s,
        MHD_OPTION_UNESCAPE_CALLBACK, srv_unescape_none, NULL, MHD_OPTION_END);
}

/* ---- shutdown ------------------------------------------------------------ */

/* Block SIGINT and SIGTERM (inherited by MHD's threads) and ignore
 * SIGPIPE and SIGXFSZ; set holds the two for sigwait(). */
static int block_signals(sigset_t *set)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    /* SIGXFSZ: a write that starts past RLIMIT_FSIZE would kill the
     * process; ignored, it fails with EFBIG and the library answers 507. */
    if (sigaction(SIGPIPE, &sa, NULL) != 0 ||
        sigaction(SIGXFSZ, &sa, NULL) != 0)
        return -1;
    return pthread_sigmask(SIG_BLOCK, set, NULL) == 0 ? 0 : -1;
}

/* Stop accepting, let the requests in flight finish, stop the daemon.
 *
 * MHD_quiesce_daemon() is not used: on an epoll daemon with its own
 * threads it races with the workers' own removal of the listen socket from
 * their epoll sets and aborts the process ("Failed to remove listen FD from
 * epoll set", MHD 0.9.75; seen in about one shutdown in ten under test).
 * The accept policy refuses new connections instead (accept_policy),
 * and MHD_stop_daemon() closes the listen socket. */
static void drain_and_stop(struct srv *s, struct MHD_Daemon *d)
{
    struct timespec pause = {0, 10 * 1000 * 1000};
    uint64_t deadline = srv_now_ns() + DRAIN_TIMEOUT_NS;

    atomic_store(&s->draining, 1);
    while (atomic_load(&s->inflight) > 0 && srv_now_ns() < deadline)
        nanosleep(&pause, NULL);
    if (atomic_load(&s->inflight) > 0)
        fprintf(stderr,
                "etagkv-server: %ld requests still running after "
                "10 s; stopping anyway\n",
                atomic_load(&s->inflight));
    /* A keep-alive connection may start a request after inflight reached
     * 0; no write may be left suspended when the daemon stops.  The wait
     * is for the library's commit of writes already submitted: short,
     * and bounded by the disk. */
    atomic_store(&s->stopping, 1);
    while (atomic_load(&s->suspended) > 0)
        nanosleep(&pause, NULL);
    MHD_stop_daemon(d);
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct srv s;
    struct MHD_Daemon *d = NULL;
    sigset_t set;
    int fd = -1, listen_fd, family = AF_INET, sig = 0, rc;

    rc = parse_options(argc, argv, &cfg);
    if (rc != 0)
        return rc > 0 ? EXIT_SUCCESS : 2;
    memset(&s, 0, sizeof s);
    s.max_value_bytes = cfg.max_value_bytes;
    s.max_txn_body_bytes = cfg.max_txn_bytes;
    s.max_txn_ops = (size_t)cfg.max_txn_ops;
    s.require_conditions = cfg.require_conditions;
    atomic_init(&s.draining, 0);
    atomic_init(&s.inflight, 0);
    atomic_init(&s.stopping, 0);
    atomic_init(&s.suspended, 0);
    s.metrics = srv_metrics_new();
    if (s.metrics == NULL || block_signals(&set) != 0 ||
        (cfg.token_file != NULL &&
         read_token(cfg.token_file, &s.token, &s.token_len) != 0))
        goto fail;
    fd = open_listener(cfg.listen, &family);
    if (fd < 0)
        goto fail;
    s.store = open_store(&cfg);
    if (s.store == NULL)
        goto fail;
    d = start_daemon(&s, &cfg, fd, family);
    listen_fd = fd;
    fd = -1; /* the daemon owns the socket from here on */
    if (d == NULL) {
        fprintf(stderr, "etagkv-server: cannot start the HTTP daemon\n");
        goto fail;
    }
    if (announce(listen_fd) != 0)
        goto fail;
    if (sigwait(&set, &sig) != 0)
        goto fail;
    fprintf(stderr, "etagkv-server: %s, finishing requests in flight\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    drain_and_stop(&s, d);
    etagkv_store_close(s.store);
    srv_metrics_free(s.metrics);
    free(s.token);
    return EXIT_SUCCESS;
fail:
    if (d != NULL)
        MHD_stop_daemon(d);
    if (fd >= 0)
        close(fd);
    etagkv_store_close(s.store);
    srv_metrics_free(s.metrics);
    free(s.token);
    return EXIT_FAILURE;
}
