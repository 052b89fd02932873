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

/* The longest lease TTL an option may allow: a year, far from overflowing
 * the library's nanosecond deadlines. */
#define LEASE_TTL_MS_MAX (86400000ull * 366)

/* How long in-flight requests get to finish after SIGTERM. */
#define DRAIN_TIMEOUT_NS (10ull * 1000000000u)

struct config {
    const char *data_dir;
    int data_given; /* --data was on the command line */
    /* --etcd ENDPOINTS[/prefix]: the store on etcd instead (the server then
     * keeps no state of its own, and several can front one cluster). */
    const char *etcd;
    const char *listen;
    unsigned threads;
    int threads_given;
    etagkv_sync_mode sync_mode;
    uint64_t max_value_bytes;
    uint64_t max_txn_ops, max_txn_bytes; /* POST /txn (DESIGN §7) */
    int max_txn_bytes_set;               /* given on the command line */
    int require_conditions;
    const char *token_file;
    unsigned max_connections;
    unsigned timeout_s;
    unsigned max_per_client;
    unsigned header_timeout_s, body_timeout_s;
    uint64_t max_buffered_bytes;
    uint64_t idem_max_keys, idem_retention_s;
    unsigned file_mode;
    const char *tls_cert, *tls_key;
    int insecure;
    int loopback; /* --listen names loopback addresses only */
    unsigned max_wait_s;
    unsigned max_watchers; /* 0: default_max_watchers() */
    unsigned heartbeat_s;
    uint64_t changes_max_events; /* 0: the library's default */
    uint64_t changes_retention_s;
    uint64_t max_leases, lease_min_ttl_ms, lease_max_ttl_ms; /* DESIGN §9 */
    uint64_t max_lease_keys;
    const char *access_log, *access_log_format; /* NULL: no access log */
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
        "  --etcd HOST:PORT[,HOST:PORT...][/PREFIX]\n"
        "                         keep the store on etcd instead, under\n"
        "                         PREFIX (docs/deploy.md); not with --data\n"
        "  --listen HOST:PORT     address to listen on (default\n"
        "                         127.0.0.1:8080; [::1]:8080 for IPv6;\n"
        "                         port 0 picks a free port)\n"
        "  --threads N            worker threads (default: CPUs, at least 4;\n"
        "                         at least 16 with --etcd)\n"
        "  --sync-mode MODE       when a write is acknowledged: sync (once\n"
        "                         on stable storage; the default),\n"
        "                         pipelined (as durable, one flush per\n"
        "                         commit, but readers may see a write\n"
        "                         before it is durable) or nosync (once\n"
        "                         in the OS page cache)\n"
        "  --sync                 --sync-mode sync\n"
        "  --nosync               --sync-mode nosync\n"
        "  --max-value-bytes N    largest value accepted (default 67108864)\n"
        "  --max-txn-ops N        operations per POST /txn (default 128)\n"
        "  --max-txn-bytes N      largest POST /txn body (default 16777216)\n"
        "  --require-conditions   refuse PUT/DELETE without If-Match,\n"
        "                         If-None-Match or If-Unmodified-Since (428)\n"
        "  --token-file FILE      require Authorization: Bearer <token>, a\n"
        "                         token being any line of FILE (mode 0600)\n"
        "  --tls-cert FILE        serve HTTPS with this PEM certificate\n"
        "                         (chain) ...\n"
        "  --tls-key FILE         ... and this PEM private key (mode 0600)\n"
        "  --insecure             allow a non-loopback --listen without\n"
        "                         --token-file\n"
        "  --max-connections N    concurrent connections (default 1024)\n"
        "  --max-connections-per-client N\n"
        "                         concurrent connections from one address\n"
        "                         (default 64)\n"
        "  --timeout SECONDS      close idle or stalled connections after\n"
        "                         this long (default 30; 0: never;\n"
        "                         at most 4294967)\n"
        "  --header-timeout SECONDS  a request's headers must arrive within\n"
        "                         this long (default 10; 0: no deadline)\n"
        "  --body-timeout SECONDS a request's body must arrive within this\n"
        "                         long after its headers (default 120)\n"
        "  --max-buffered-bytes N memory for request bodies and GET values\n"
        "                         in flight (default 536870912); over it, 503\n"
        "  --idempotency-max-keys N  Idempotency-Keys retained (default\n"
        "                         1000000); over it, a new key gets 503\n"
        "  --idempotency-retention SECONDS  how long (default 86400)\n"
        "  --file-mode OCTAL      mode of new store files (default 0600; the\n"
        "                         directory gets 0700 plus matching x bits)\n"
        "  --max-wait SECONDS     cap on Prefer: wait for GET /kv/{key},\n"
        "                         /changes and conditional writes (default\n"
        "                         60, writes at most 600; 0: never hold)\n"
        "  --max-watchers N       requests held and writes waiting at once;\n"
        "                         past it 503 (a write: it does not wait)\n"
        "                         (default: 3/4 of --max-connections; must\n"
        "                         be below it)\n"
        "  --heartbeat SECONDS    comment line on a quiet event stream\n"
        "                         (default 15)\n"
        "  --changes-max-events N events the change log keeps (default\n"
        "                         100000)\n"
        "  --changes-retention SECONDS  age after which events are trimmed\n"
        "                         (default 3600)\n"
        "  --max-leases N         live leases at once; past it a grant is\n"
        "                         503 (default 1000000)\n"
        "  --max-lease-keys N     keys attached to one lease; past it a put\n"
        "                         is 409 (default 10000)\n"
        "  --lease-min-ttl-ms N   shortest lease TTL granted (default 100)\n"
        "  --lease-max-ttl-ms N   longest lease TTL granted (default\n"
        "                         86400000: 24 h)\n"
        "  --access-log FILE|-    log one line per request to FILE (reopened\n"
        "                         on SIGHUP) or stdout (default: none)\n"
        "  --access-log-format json|combined  (default json: JSON Lines)\n"
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

/* Worker threads by default on etcd (at least). */
#define ETCD_THREADS 16

static unsigned default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 4)
        return 4;
    return n > 64 ? 64 : (unsigned)n;
}

static void config_defaults(struct config *cfg)
{
    /* Every field not set below is 0 or NULL (etcd, data_given, ...): on
     * main()'s stack they were not, and an optimised build refused
     * --etcd at random. */
    memset(cfg, 0, sizeof(*cfg));
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
    cfg->max_per_client = 64;
    cfg->header_timeout_s = 10;
    cfg->body_timeout_s = 120;
    cfg->max_buffered_bytes = (uint64_t)512 << 20;
    cfg->idem_max_keys = ETAGKV_IDEMPOTENCY_MAX_KEYS_DEFAULT;
    cfg->idem_retention_s = ETAGKV_IDEMPOTENCY_RETENTION_S_DEFAULT;
    cfg->file_mode = ETAGKV_FILE_MODE_DEFAULT;
    cfg->tls_cert = cfg->tls_key = NULL;
    cfg->insecure = 0;
    cfg->loopback = 1;
    cfg->max_wait_s = 60;
    cfg->max_watchers = 0;
    cfg->heartbeat_s = 15;
    cfg->changes_max_events = 0; /* the library's defaults */
    cfg->changes_retention_s = 0;
    cfg->max_leases = ETAGKV_MAX_LEASES_DEFAULT;
    cfg->max_lease_keys = ETAGKV_MAX_LEASE_KEYS_DEFAULT;
    cfg->lease_min_ttl_ms = ETAGKV_LEASE_MIN_TTL_MS_DEFAULT;
    cfg->lease_max_ttl_ms = ETAGKV_LEASE_MAX_TTL_MS_DEFAULT;
    cfg->access_log = cfg->access_log_format = NULL;
}

/* --file-mode: octal permission bits including 0600, within 0777. */
static int parse_mode(const char *s, unsigned *out)
{
    unsigned long v;
    char *end;

    errno = 0;
    v = strtoul(s, &end, 8);
    if (*s < '0' || *s > '7' || *end != '\0' || errno != 0 || v > 0777 ||
        (v & 0600) != 0600) {
        fprintf(stderr,
                "etagkv-server: --file-mode wants octal permission bits "
                "with 0600 and within 0777, not '%s'\n",
                s);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

/* --sync-mode: the names of etagkv_sync_mode (docs/guarantees.md). */
static int parse_sync_mode(const char *s, etagkv_sync_mode *out)
{
    if (strcmp(s, "sync") == 0)
        *out = ETAGKV_SYNC;
    else if (strcmp(s, "pipelined") == 0)
        *out = ETAGKV_SYNC_PIPELINED;
    else if (strcmp(s, "nosync") == 0)
        *out = ETAGKV_NOSYNC;
    else {
        fprintf(stderr,
                "etagkv-server: --sync-mode wants sync, pipelined or "
                "nosync, not '%s'\n",
                s);
        return -1;
    }
    return 0;
}

static int check_listen(const char *spec, int *loopback);
static int check_exposure(const struct config *cfg);

/* Fill cfg from argv.  Returns 0 to run, 1 when done (--help, --version),
 * -1 on a usage error (already reported). */
static int parse_options(int argc, char **argv, struct config *cfg)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"etcd", required_argument, NULL, 'D'},
        {"listen", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},
        {"sync", no_argument, NULL, 's'},
        {"nosync", no_argument, NULL, 'n'},
        {"sync-mode", required_argument, NULL, 'Y'},
        {"max-value-bytes", required_argument, NULL, 'm'},
        {"max-txn-ops", required_argument, NULL, 'O'},
        {"max-txn-bytes", required_argument, NULL, 'X'},
        {"require-conditions", no_argument, NULL, 'r'},
        {"token-file", required_argument, NULL, 'k'},
        {"max-connections", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 'o'},
        {"max-connections-per-client", required_argument, NULL, 'C'},
        {"header-timeout", required_argument, NULL, 'H'},
        {"body-timeout", required_argument, NULL, 'B'},
        {"max-buffered-bytes", required_argument, NULL, 'b'},
        {"idempotency-max-keys", required_argument, NULL, 'K'},
        {"idempotency-retention", required_argument, NULL, 'R'},
        {"file-mode", required_argument, NULL, 'f'},
        {"tls-cert", required_argument, NULL, 'T'},
        {"tls-key", required_argument, NULL, 'S'},
        {"insecure", no_argument, NULL, 'I'},
        {"max-wait", required_argument, NULL, 'w'},
        {"max-watchers", required_argument, NULL, 'W'},
        {"changes-max-events", required_argument, NULL, 'E'},
        {"heartbeat", required_argument, NULL, 'e'},
        {"changes-retention", required_argument, NULL, 'g'},
        {"max-leases", required_argument, NULL, 'L'},
        {"max-lease-keys", required_argument, NULL, 'y'},
        {"lease-min-ttl-ms", required_argument, NULL, 'N'},
        {"lease-max-ttl-ms", required_argument, NULL, 'M'},
        {"access-log", required_argument, NULL, 'A'},
        {"access-log-format", required_argument, NULL, 'F'},
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
        case 'd':
            cfg->data_dir = optarg;
            cfg->data_given = 1;
            break;
        case 'D': cfg->etcd = optarg; break;
        case 'l': cfg->listen = optarg; break;
        case 't':
            rc = parse_unsigned("threads", optarg, 1, 1024, &cfg->threads);
            cfg->threads_given = 1;
            break;
        case 's': cfg->sync_mode = ETAGKV_SYNC; break;
        case 'n': cfg->sync_mode = ETAGKV_NOSYNC; break;
        case 'Y': rc = parse_sync_mode(optarg, &cfg->sync_mode); break;
        case 'm':
            rc = parse_u64("max-value-bytes", optarg, 1,
                           ETAGKV_MAX_VALUE_BYTES_LIMIT, &cfg->max_value_bytes);
            break;
        case 'O':
            rc =
                parse_u64("max-txn-ops", optarg, 1, 1000000, &cfg->max_txn_ops);
            break;
        case 'X':
            rc = parse_u64("max-txn-bytes", optarg, 1,
                           ETAGKV_MAX_VALUE_BYTES_LIMIT, &cfg->max_txn_bytes);
            cfg->max_txn_bytes_set = 1;
            break;
        case 'r': cfg->require_conditions = 1; break;
        case 'k': cfg->token_file = optarg; break;
        case 'c':
            rc = parse_unsigned("max-connections", optarg, 1, 1000000,
                                &cfg->max_connections);
            break;
        case 'o':
            /* libmicrohttpd 0.9.75 counts it in milliseconds in 32 bits:
             * more would wrap to a short timeout. */
            rc = parse_unsigned("timeout", optarg, 0, UINT32_MAX / 1000,
                                &cfg->timeout_s);
            break;
        case 'C':
            rc = parse_unsigned("max-connections-per-client", optarg, 1,
                                1000000, &cfg->max_per_client);
            break;
        case 'H':
            rc = parse_unsigned("header-timeout", optarg, 0, 86400,
                                &cfg->header_timeout_s);
            break;
        case 'B':
            rc = parse_unsigned("body-timeout", optarg, 0, 86400,
                                &cfg->body_timeout_s);
            break;
        case 'b':
            /* At least what a POST /leases body may take (4 KiB). */
            rc = parse_u64("max-buffered-bytes", optarg, 4096, UINT64_MAX / 2,
                           &cfg->max_buffered_bytes);
            break;
        case 'K':
            rc = parse_u64("idempotency-max-keys", optarg, 1, UINT64_MAX / 2,
                           &cfg->idem_max_keys);
            break;
        case 'R':
            rc = parse_u64("idempotency-retention", optarg, 1,
                           86400ull * 365 * 100, &cfg->idem_retention_s);
            break;
        case 'f': rc = parse_mode(optarg, &cfg->file_mode); break;
        case 'T': cfg->tls_cert = optarg; break;
        case 'S': cfg->tls_key = optarg; break;
        case 'I': cfg->insecure = 1; break;
        case 'w':
            rc = parse_unsigned("max-wait", optarg, 0, 86400, &cfg->max_wait_s);
            break;
        case 'W':
            rc = parse_unsigned("max-watchers", optarg, 1, 1000000,
                                &cfg->max_watchers);
            break;
        case 'e':
            rc =
                parse_unsigned("heartbeat", optarg, 1, 3600, &cfg->heartbeat_s);
            break;
        case 'E':
            rc = parse_u64("changes-max-events", optarg, 1, UINT64_MAX / 2,
                           &cfg->changes_max_events);
            break;
        case 'g':
            rc = parse_u64("changes-retention", optarg, 1, 86400ull * 3650,
                           &cfg->changes_retention_s);
            break;
        case 'L':
            rc = parse_u64("max-leases", optarg, 1, UINT64_MAX / 2,
                           &cfg->max_leases);
            break;
        case 'y':
            rc = parse_u64("max-lease-keys", optarg, 1, UINT64_MAX / 2,
                           &cfg->max_lease_keys);
            break;
        case 'N':
            rc = parse_u64("lease-min-ttl-ms", optarg, 1, LEASE_TTL_MS_MAX,
                           &cfg->lease_min_ttl_ms);
            break;
        case 'M':
            rc = parse_u64("lease-max-ttl-ms", optarg, 1, LEASE_TTL_MS_MAX,
                           &cfg->lease_max_ttl_ms);
            break;
        case 'A': cfg->access_log = optarg; break;
        case 'F': cfg->access_log_format = optarg; break;
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
    if (rc == 0 && cfg->etcd != NULL &&
        (cfg->data_given || *cfg->etcd == '\0')) {
        fprintf(stderr, "etagkv-server: --etcd wants HOST:PORT[,...][/PREFIX], "
                        "and no --data\n");
        rc = -1;
    }
    if (rc == 0 && check_listen(cfg->listen, &cfg->loopback) != 0)
        rc = -1;
    /* On etcd a GET or a HEAD waits for etcd in the worker thread, and
     * stalls the worker's other connections meanwhile: more workers, which
     * mostly wait (docs/http.md, --threads). */
    if (rc == 0 && cfg->etcd != NULL && !cfg->threads_given &&
        cfg->threads < ETCD_THREADS)
        cfg->threads = ETCD_THREADS;
    if (rc == 0 && cfg->max_connections < cfg->threads) {
        /* MHD shares the limit out between the worker threads. */
        fprintf(stderr,
                "etagkv-server: --max-connections must be at least "
                "--threads (%u%s)\n",
                cfg->threads, cfg->threads_given ? "" : ", the default here");
        rc = -1;
    }
    if (rc == 0 && cfg->max_watchers >= cfg->max_connections) {
        /* DESIGN §8: a full server refuses a new watcher, never slows
         * writers; held requests that took every connection would. */
        fprintf(stderr, "etagkv-server: --max-watchers must be below "
                        "--max-connections, or held requests could take "
                        "every connection and shut writers out\n");
        rc = -1;
    }
    if (rc == 0 && cfg->max_buffered_bytes < cfg->max_value_bytes) {
        /* Else the largest value could never be uploaded. */
        fprintf(stderr, "etagkv-server: --max-buffered-bytes must be at "
                        "least --max-value-bytes\n");
        rc = -1;
    }
    if (rc == 0 && cfg->max_txn_bytes > cfg->max_buffered_bytes) {
        /* Else a transaction body between the two would be 503 at every
         * try.  One asked for must fit the budget; the default body limit
         * follows a smaller budget (main()). */
        if (cfg->max_txn_bytes_set) {
            fprintf(stderr, "etagkv-server: --max-txn-bytes must be at most "
                            "--max-buffered-bytes\n");
            rc = -1;
        }
    }
    if (rc == 0 && cfg->lease_min_ttl_ms > cfg->lease_max_ttl_ms) {
        fprintf(stderr, "etagkv-server: --lease-min-ttl-ms must be at most "
                        "--lease-max-ttl-ms\n");
        rc = -1;
    }
    if (rc == 0 && (cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        fprintf(stderr, "etagkv-server: --tls-cert and --tls-key go "
                        "together\n");
        rc = -1;
    }
    if (rc == 0 && check_exposure(cfg) != 0)
        rc = -1;
    return rc;
}

/* Refuse to serve the network without a token unless --insecure says so,
 * and say loudly what an exposed server risks.  0, or -1 (reported). */
static int check_exposure(const struct config *cfg)
{
    if (cfg->loopback)
        return 0;
    if (cfg->token_file == NULL && !cfg->insecure) {
        fprintf(stderr,
                "etagkv-server: --listen %s reaches beyond this machine, "
                "and without --token-file anyone who can connect may read "
                "and write every key: give --token-file (and --tls-cert, "
                "--tls-key), or --insecure to accept that\n",
                cfg->listen);
        return -1;
    }
    if (cfg->token_file == NULL)
        fprintf(stderr,
                "etagkv-server: WARNING: --insecure: %s is open to the "
                "network with no token; anyone who can connect may read "
                "and write every key\n",
                cfg->listen);
    else if (cfg->tls_cert == NULL)
        fprintf(stderr,
                "etagkv-server: WARNING: %s without TLS: bearer tokens and "
                "values cross the network in clear text; give --tls-cert "
                "and --tls-key, or put a TLS proxy in front\n",
                cfg->listen);
    return 0;
}

/* ---- start-up ----------------------------------------------------------- */

/* fsync the directory that holds the entry `path` (its first len bytes):
 * a new directory's name is durable only then (POSIX).  The store's own
 * directory and its parent are synced by etagkv_store_open() when it
 * creates the store; this covers the levels above.  0 or -1 with errno. */
static int sync_parent(const char *path, size_t len)
{
    char buf[PATH_MAX];
    int fd, rc, err;

    while (len > 0 && path[len - 1] != '/')
        len--;
    if (len == 0) {
        buf[0] = '.';
        len = 1;
    } else {
        memcpy(buf, path, len);
    }
    buf[len] = '\0';
    fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    rc = fsync(fd);
    err = errno;
    (void)close(fd);
    if (rc != 0 && err != EINVAL) {
        errno = err;
        return -1;
    }
    return 0;
}

/* mkdir -p with mode (the umask applies), each directory it creates made
 * durable; 0 or -1 with errno set. */
static int make_dirs(const char *path, mode_t mode)
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
        if (mkdir(buf, mode) == 0) {
            if (sync_parent(buf, i) != 0)
                return -1;
        } else if (errno != EEXIST) {
            return -1;
        }
        buf[i] = path[i];
    }
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

/* 1 if the address is a loopback one: 127.0.0.0/8, ::1, or 127/8
 * mapped into IPv6. */
static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a =
            &((const struct sockaddr_in6 *)sa)->sin6_addr;

        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

/* Is spec a HOST:PORT split_listen() accepts?  0, or -1 (reported): a
 * malformed --listen is a usage error, found before anything is opened.
 * *loopback is 1 when every address HOST names is a loopback one (a name
 * that does not resolve counts as not loopback; binding it fails later). */
static int check_listen(const char *spec, int *loopback)
{
    struct addrinfo hints, *res = NULL, *ai;
    char host[256];
    const char *port;

    if (split_listen(spec, host, sizeof host, &port) != 0) {
        fprintf(stderr,
                "etagkv-server: --listen wants HOST:PORT (PORT 0 to "
                "65535), not '%s'\n",
                spec);
        return -1;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    *loopback = getaddrinfo(host, port, &hints, &res) == 0;
    for (ai = res; ai != NULL; ai = ai->ai_next)
        *loopback = *loopback && is_loopback(ai->ai_addr);
    freeaddrinfo(res);
    return 0;
}

/* Bind and listen on spec (checked by check_listen()); returns the socket
 * or -1 (reported). */
static int open_listener(const char *spec)
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
static int announce(int fd, int tls)
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
    printf("etagkv-server listening on %s://%s%s%s:%s\n",
           tls ? "https" : "http", v6 ? "[" : "", host, v6 ? "]" : "", port);
    return fflush(stdout) == 0 ? 0 : -1;
}

static etagkv_store *open_store(const struct config *cfg)
{
    etagkv_options o;
    etagkv_store *store = NULL;
    etagkv_status st;
    char etcd[4096];
    const char *where = cfg->data_dir;

    /* The directory lets in whom the files let in (0640: 0750). */
    mode_t dir_mode =
        0700 | (cfg->file_mode & 044) | (cfg->file_mode & 044) >> 2;

    if (cfg->etcd != NULL) {
        int n = snprintf(etcd, sizeof(etcd), "etcd://%s", cfg->etcd);

        if (n < 0 || (size_t)n >= sizeof(etcd)) {
            fprintf(stderr, "etagkv-server: --etcd: too long\n");
            return NULL;
        }
        where = etcd;
    } else if (make_dirs(cfg->data_dir, dir_mode) != 0) {
        fprintf(stderr, "etagkv-server: %s: %s\n", cfg->data_dir,
                strerror(errno));
        return NULL;
    }
    etagkv_options_init(&o);
    o.sync_mode = cfg->sync_mode;
    o.max_value_bytes = cfg->max_value_bytes;
    o.idempotency_max_keys = cfg->idem_max_keys;
    o.idempotency_retention_s = cfg->idem_retention_s;
    o.file_mode = cfg->file_mode;
    o.changes_max_events = cfg->changes_max_events;
    o.changes_retention_s = cfg->changes_retention_s;
    o.max_txn_ops = cfg->max_txn_ops;
    o.max_leases = cfg->max_leases;
    o.max_lease_keys = cfg->max_lease_keys;
    o.lease_min_ttl_ms = cfg->lease_min_ttl_ms;
    o.lease_max_ttl_ms = cfg->lease_max_ttl_ms;
    /* Keys and values decoded from the body are never more bytes than
     * the body. */
    o.max_txn_bytes = cfg->max_txn_bytes;
    st = etagkv_store_open(where, &o, &store);
    if (st != ETAGKV_OK)
        fprintf(stderr, "etagkv-server: cannot open the store in %s: %s (%s)\n",
                where, etagkv_strerror(st), etagkv_last_error_detail());
    return store;
}

/* Held requests and streams may take three quarters of the connections,
 * never all: the rest, at least one, stay for writes, reads, /healthz and
 * /metrics however many clients wait (DESIGN §8).  With one connection,
 * nothing is held. */
static unsigned default_max_watchers(const struct config *cfg)
{
    unsigned reserve = cfg->max_connections / 4;

    if (reserve == 0)
        reserve = 1;
    return cfg->max_connections - reserve;
}

/* MHD's accept policy: refuse new connections once draining.  The drain
 * stops the accept loop first (drain_and_stop); this refuses one it was
 * handing over at that moment. */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr,
                                     socklen_t addrlen)
{
    struct srv *s = cls;

    (void)addr;
    (void)addrlen;
    return atomic_load(&s->draining) ? MHD_NO : MHD_YES;
}

/* What the daemon needs besides the config: the TLS certificate and key
 * as PEM text (NULL without TLS), kept until the daemon stops, and the
 * watchdog of request deadlines. */
struct daemon_extra {
    char *tls_cert, *tls_key;
    size_t tls_key_len;
    struct srv_deadlines *deadlines;
    struct srv_acceptor *acceptor; /* the accept loop (accept.c) */
};

/* MHD's connection notifications: the deadlines' watchdog and the accept
 * loop's count of open connections. */
static void notify_connection(void *cls, struct MHD_Connection *c,
                              void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    const struct daemon_extra *x = cls;

    srv_deadline_notify(x->deadlines, c, socket_context, toe);
    srv_acceptor_notify(x->acceptor, toe);
}

/* Read the certificate and the key; 0, or -1 (reported).  The key, a
 * secret, must be its owner's alone (auth.c). */
static int load_tls(const struct config *cfg, struct daemon_extra *x)
{
    size_t len;

    if (cfg->tls_cert == NULL)
        return 0;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        fprintf(stderr, "etagkv-server: this libmicrohttpd was built "
                        "without TLS\n");
        return -1;
    }
    x->tls_cert = srv_read_file(cfg->tls_cert, 0, &len);
    x->tls_key = srv_read_file(cfg->tls_key, 1, &x->tls_key_len);
    return x->tls_cert != NULL && x->tls_key != NULL ? 0 : -1;
}

static void free_extra(struct daemon_extra *x)
{
    if (x->tls_key != NULL)
        srv_wipe(x->tls_key, x->tls_key_len);
    free(x->tls_key);
    free(x->tls_cert);
    srv_deadlines_free(x->deadlines);
    srv_acceptor_free(x->acceptor);
}

static struct MHD_Daemon *start_daemon(struct srv *s, const struct config *cfg,
                                       const struct daemon_extra *x)
{
    /* MHD_ALLOW_SUSPEND_RESUME: writes suspend their connection while the
     * library commits them (kv.c).  MHD_USE_NO_LISTEN_SOCKET: connections
     * come from the accept loop (accept.c), through MHD_USE_ITC. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    struct MHD_OptionItem more[5];
    size_t n = 0;

    /* One thread is MHD's internal polling thread itself: MHD refuses a
     * pool of one, so the pool option is left out then. */
    if (cfg->threads >= 2)
        more[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
                                            (intptr_t)cfg->threads, NULL};
    if (x->tls_cert != NULL) {
        /* GnuTLS's defaults without the versions RFC 8996 retires. */
        static char prio[] = "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-DTLS1.0";

        flags |= MHD_USE_TLS;
        more[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, x->tls_cert};
        more[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, x->tls_key};
        more[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, prio};
    }
    more[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    return MHD_start_daemon(
        flags, 0, accept_policy, s, srv_access, s, MHD_OPTION_ARRAY, more,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, SRV_CONN_MEMORY_BYTES,
        /* Kept by the accept loop: the daemon's own limit must never be
         * reached (accept.c).  No worker holds more than all the
         * connections, and its count of them may lag behind the ends the
         * loop was told of (libmicrohttpd notifies a connection's end
         * before it counts it off): twice all of them is out of reach.
         * At most 2 x 1,000,000 x 1024, which fits an unsigned. */
        MHD_OPTION_CONNECTION_LIMIT,
        2 * cfg->max_connections * (cfg->threads >= 2 ? cfg->threads : 1),
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_per_client,
        MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s,
        MHD_OPTION_NOTIFY_CONNECTION, notify_connection, x,
        MHD_OPTION_NOTIFY_COMPLETED, srv_completed, s,
        MHD_OPTION_URI_LOG_CALLBACK, srv_uri_log, s,
        MHD_OPTION_UNESCAPE_CALLBACK, srv_unescape_none, NULL, MHD_OPTION_END);
}

/* ---- shutdown ------------------------------------------------------------ */

/* Block SIGINT, SIGTERM and SIGHUP (inherited by MHD's threads) and
 * ignore SIGPIPE and SIGXFSZ; set holds the three for sigwait(). */
static int block_signals(sigset_t *set)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP); /* reopen the access log (logrotate) */
    /* SIGXFSZ: a write that starts past RLIMIT_FSIZE would kill the
     * process; ignored, it fails with EFBIG and the library answers 507. */
    if (sigaction(SIGPIPE, &sa, NULL) != 0 ||
        sigaction(SIGXFSZ, &sa, NULL) != 0)
        return -1;
    return pthread_sigmask(SIG_BLOCK, set, NULL) == 0 ? 0 : -1;
}

/* Stop accepting, let the requests in flight finish, stop the daemon.
 *
 * The accept loop (accept.c) stops first and the listen socket is closed
 * (its *listen_fd set to -1), so that a new connection is refused at once
 * -- a client or balancer then tries another server -- instead of being
 * accepted only to be closed.  Connections still in the backlog are reset.
 * (When libmicrohttpd accepted by itself, MHD_quiesce_daemon() could not
 * be used: on an epoll daemon with its own threads it raced with the
 * workers' removal of the listen socket from their epoll sets and aborted
 * the process, MHD 0.9.75.) */
static void drain_and_stop(struct srv *s, struct MHD_Daemon *d,
                           struct srv_acceptor *acceptor, int *listen_fd)
{
    struct timespec pause = {0, 10 * 1000 * 1000};
    uint64_t deadline = srv_now_ns() + DRAIN_TIMEOUT_NS;

    atomic_store(&s->draining, 1);
    srv_acceptor_stop(acceptor);
    (void)close(*listen_fd);
    *listen_fd = -1;
    /* Held requests answer now, as at their deadline (DESIGN §8). */
    srv_watch_release_all(s);
    (void)etagkv_end_waits(s->store); /* and writes waiting: 412 now */
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
    srv_watch_stop(s);
}

/* Release what main() set up, in the reverse order; the daemon is
 * stopped (every response, and so every shared value, is gone). */
static void release(struct srv *s, struct daemon_extra *x)
{
    free_extra(x);
    etagkv_store_close(s->store);
    srv_metrics_free(s->metrics);
    srv_budget_free(s->budget);
    srv_tokens_free(s->tokens);
    srv_access_log_free(s->access_log);
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct srv s;
    struct daemon_extra x = {NULL, NULL, 0, NULL, NULL};
    struct MHD_Daemon *d = NULL;
    sigset_t set;
    int fd = -1, sig = 0, rc;

    rc = parse_options(argc, argv, &cfg);
    if (rc != 0)
        return rc > 0 ? EXIT_SUCCESS : 2;
    memset(&s, 0, sizeof s);
    s.max_value_bytes = cfg.max_value_bytes;
    /* A larger body would be 503 at every try (the transaction's own
     * limit, on bodies and the values its gets read, stays). */
    s.max_txn_body_bytes = cfg.max_txn_bytes < cfg.max_buffered_bytes
                               ? cfg.max_txn_bytes
                               : cfg.max_buffered_bytes;
    s.max_txn_ops = (size_t)cfg.max_txn_ops;
    s.require_conditions = cfg.require_conditions;
    s.idem_max_keys = cfg.idem_max_keys;
    atomic_init(&s.draining, 0);
    atomic_init(&s.inflight, 0);
    atomic_init(&s.requests_held, 0);
    atomic_init(&s.stopping, 0);
    atomic_init(&s.suspended, 0);
    s.metrics = srv_metrics_new();
    s.budget = srv_budget_new(cfg.max_buffered_bytes);
    x.deadlines = srv_deadlines_new(cfg.header_timeout_s, cfg.body_timeout_s);
    if (s.metrics == NULL || s.budget == NULL || x.deadlines == NULL ||
        block_signals(&set) != 0 ||
        (cfg.token_file != NULL &&
         srv_tokens_load(cfg.token_file, &s.tokens) != 0) ||
        load_tls(&cfg, &x) != 0 ||
        (cfg.access_log != NULL &&
         srv_access_log_open(cfg.access_log, cfg.access_log_format,
                             &s.access_log) != 0))
        goto fail;
    fd = open_listener(cfg.listen);
    if (fd < 0)
        goto fail;
    s.store = open_store(&cfg);
    if (s.store == NULL || srv_deadlines_start(x.deadlines) != 0)
        goto fail;
    s.max_wait_s = cfg.max_wait_s;
    s.heartbeat_s = cfg.heartbeat_s;
    s.max_watchers =
        cfg.max_watchers > 0 ? cfg.max_watchers : default_max_watchers(&cfg);
    if (srv_watch_start(&s) != 0) {
        fprintf(stderr, "etagkv-server: cannot start the watcher\n");
        goto fail;
    }
    /* The accept loop keeps --max-connections (accept.c). */
    if (srv_acceptor_new(fd, (long)cfg.max_connections, &x.acceptor) != 0) {
        fprintf(stderr, "etagkv-server: cannot set up the accept loop: %s\n",
                strerror(errno));
        goto fail;
    }
    d = start_daemon(&s, &cfg, &x);
    if (d == NULL) {
        fprintf(stderr, "etagkv-server: cannot start the HTTP daemon\n");
        goto fail;
    }
    if (srv_acceptor_run(x.acceptor, d, cfg.threads >= 2 ? cfg.threads : 1) !=
        0) {
        fprintf(stderr, "etagkv-server: cannot start the accept loop: %s\n",
                strerror(errno));
        goto fail;
    }
    if (announce(fd, x.tls_cert != NULL) != 0)
        goto fail;
    do {
        if (sigwait(&set, &sig) != 0)
            goto fail;
        if (sig == SIGHUP)
            srv_access_log_reopen(s.access_log);
    } while (sig == SIGHUP);
    fprintf(stderr, "etagkv-server: %s, finishing requests in flight\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    drain_and_stop(&s, d, x.acceptor, &fd);
    release(&s, &x);
    return EXIT_SUCCESS;
fail:
    srv_acceptor_stop(x.acceptor);
    if (d != NULL)
        MHD_stop_daemon(d);
    srv_watch_stop(&s);
    if (fd >= 0)
        close(fd);
    release(&s, &x);
    return EXIT_FAILURE;
}
