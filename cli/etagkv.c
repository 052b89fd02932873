/*
 * etagkv.c -- the command-line tool: every library operation, with HTTP's
 * precondition headers as options, on a store directory.
 *
 *   etagkv [-d DIR] get KEY          [conditions]   value to stdout
 *   etagkv [-d DIR] head KEY         [conditions]   metadata
 *   etagkv [-d DIR] put KEY [FILE|-] [conditions] [-t TYPE] [-i IDEM]
 *   etagkv [-d DIR] delete KEY       [conditions] [-i IDEM]
 *   etagkv [-d DIR] list [-p PREFIX] [-a AFTER] [-n LIMIT] [--json]
 *   etagkv [-d DIR] stats | verify | backup DIR|- | restore SRC|-
 *   etagkv [-d DIR] copy DEST [--page N]   every record into an empty DEST
 *   etagkv [-d DIR] watch [-p PREFIX | KEY] [-a REVISION] [-n COUNT]
 *   etagkv [-d DIR] txn FILE|- [--values]   a POST /txn body; its reply to
 *                                     stdout (--values: a conflict's too)
 *
 * The outcome goes to stderr as "<HTTP status> <message>" (the library's
 * own mapping), so scripts see exactly what the server would answer.  Exit
 * status: 0 success, 1 a negative outcome (304, 404, 409, 412, 422), 2
 * usage (nothing is opened or created), 3 error.
 *
 * Reads open the store read-only: they never create a store, and they
 * work on a read-only file system and on another user's store.  Only the
 * writes create one (and restore, and copy its destination).  A command is one
 * row of `commands`: adding one is a row and a function.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "pct.h" /* server/pct.h: the server's codec */
#include "txn_json.h"

#define DEFAULT_DIR "etagkv-data"

/* Which options a command takes (struct command.takes, args.used). */
enum {
    OPT_COND = 1,
    OPT_TYPE = 2,
    OPT_LIST = 4,
    OPT_IDEM = 8,
    OPT_PCT = 16,
    OPT_JSON = 32,
    OPT_LEASE = 64,
    OPT_PAGE = 128,
    OPT_VALUES = 256,
    OPT_LAST = OPT_VALUES
};

struct command {
    const char *name;
    int min_args, max_args; /* operands after the command's name */
    int has_key;            /* the first operand (if any) is a KEY */
    unsigned takes;         /* OPT_* it accepts */
    enum open_mode open;
    int (*run)(struct ctx *c);
    const char *operands; /* for "takes ..." messages */
};

static int cmd_get(struct ctx *c);
static int cmd_head(struct ctx *c);
static int cmd_put(struct ctx *c);
static int cmd_delete(struct ctx *c);
static int cmd_list(struct ctx *c);
static int cmd_stats(struct ctx *c);

static const struct command commands[] = {
    {"get", 1, 1, 1, OPT_COND | OPT_PCT, OPEN_READ, cmd_get, "one KEY"},
    {"head", 1, 1, 1, OPT_COND | OPT_PCT, OPEN_READ, cmd_head, "one KEY"},
    {"put", 1, 2, 1, OPT_COND | OPT_TYPE | OPT_IDEM | OPT_PCT | OPT_LEASE,
     OPEN_CREATE, cmd_put, "KEY and an optional FILE"},
    {"delete", 1, 1, 1, OPT_COND | OPT_IDEM | OPT_PCT, OPEN_WRITE, cmd_delete,
     "one KEY"},
    {"list", 0, 0, 0, OPT_LIST | OPT_PCT | OPT_JSON, OPEN_READ, cmd_list,
     "no operands"},
    {"stats", 0, 0, 0, 0, OPEN_READ, cmd_stats, "no operands"},
    {"verify", 0, 0, 0, 0, OPEN_READ, cmd_verify, "no operands"},
    {"backup", 1, 1, 0, 0, OPEN_READ, cmd_backup, "one DIR or -"},
    {"restore", 1, 1, 0, 0, OPEN_NONE, cmd_restore,
     "one backup (DIR, FILE or -)"},
    {"copy", 1, 1, 0, OPT_PAGE, OPEN_READ, cmd_copy,
     "one destination (DIR or etcd://...)"},
    {"watch", 0, 1, 1, OPT_LIST | OPT_PCT, OPEN_READ, cmd_watch,
     "an optional KEY"},
    {"txn", 1, 1, 0, OPT_VALUES, OPEN_CREATE, cmd_txn, "one FILE or -"},
    {"lease", 2, 2, 0, 0, OPEN_CREATE, cmd_lease,
     "grant TTL_MS, or keepalive, revoke or show with an ID"},
};

static void usage(FILE *out)
{
    fputs(
        "usage: etagkv [-d DIR] [--nosync] COMMAND [ARGS] [OPTIONS]\n"
        "\n"
        "commands:\n"
        "  get KEY            print the value\n"
        "  head KEY           print the metadata\n"
        "  put KEY [FILE|-]   store FILE (default: stdin); creates the store\n"
        "  delete KEY         delete the record\n"
        "  list               list records (-p PREFIX, -a AFTER, -n LIMIT)\n"
        "  stats              store figures\n"
        "  verify             check every record against its ETag\n"
        "  backup DIR|-       a consistent compacted copy, into DIR or to "
        "stdout\n"
        "  restore SRC|-      a backup (DIR, its data.mdb, or stdin) into -d "
        "DIR,\n"
        "                     which must be empty or absent; then verify\n"
        "                     (backup and restore: LMDB directories only)\n"
        "  copy DEST          every record of -d into the empty store DEST "
        "(a DIR or\n"
        "                     etcd://...), in pages (--page N records); "
        "keeps values,\n"
        "                     content types, ETags and times, not revisions,"
        "\n"
        "                     versions, the change log, idempotency keys or "
        "leased\n"
        "                     keys; then compares every record\n"
        "  txn FILE|-         commit the transaction of a POST /txn JSON "
        "body;\n"
        "                     print the server's reply (a conflict exits 1;\n"
        "                     --values: with every existing key's value, as\n"
        "                     Prefer: return=representation asks)\n"
        "  lease grant TTL_MS     grant a lease; print {\"id\", \"ttl_ms\"}\n"
        "  lease keepalive|show|revoke ID   renew, describe or revoke it\n"
        "  watch [KEY]        print each change as a JSON line (-p PREFIX;\n"
        "                     -a REVISION: from after it, default now;\n"
        "                     -n COUNT: stop after COUNT events)\n"
        "\n"
        "options:\n"
        "  -d, --data DIR              store directory (default "
        "./" DEFAULT_DIR "), or\n"
        "                              etcd://HOST:PORT[,...]/PREFIX for a "
        "store on etcd\n"
        "      --if-match LIST         RFC 9110 If-Match (get, head, put, "
        "delete)\n"
        "      --if-none-match LIST    RFC 9110 If-None-Match\n"
        "      --if-modified-since D   RFC 9110 If-Modified-Since\n"
        "      --if-unmodified-since D RFC 9110 If-Unmodified-Since\n"
        "      --if-revision N         the key's mod_revision is N (0: "
        "absent)\n"
        "  -t, --content-type TYPE     content type for put\n"
        "  -i, --idempotency-key K     make a put or delete safe to retry\n"
        "      --lease ID              attach the put's key to lease ID\n"
        "  -p, --prefix P, -a, --after K, -n, --limit N (>= 1)   for list\n"
        "      --json                  list as the server's JSON page\n"
        "      --pct                   KEY, --prefix and --after are "
        "percent-encoded\n"
        "      --nosync                do not fsync each write\n"
        "      --page N                records per page for copy (default: "
        "1024 into\n"
        "                              a directory, 32 into etcd)\n"
        "      --values                txn: a conflict prints every existing "
        "key's value\n"
        "                              (none past the byte bound, said on "
        "stderr)\n"
        "  -V, --version               the versions of etagkv and libetagkv\n"
        "  -h, --help                  this text\n"
        "\n"
        "--if-match and --if-none-match may be repeated: the values form "
        "one list,\nas repeated HTTP header lines do.  list prints keys "
        "percent-encoded as the\nserver's URLs spell them; --pct reads them "
        "back.  The outcome is printed to\nstderr as an HTTP status line.  "
        "Exit status: 0 success, 1 not modified /\nnot found / conflict / "
        "precondition failed / idempotency mismatch, 2 usage\nor no store "
        "(nothing is opened or created), 3 error.\n",
        out);
}

/* ---- the command line ---------------------------------------------------- */

/* Append item to the comma-separated list *list; -1 when out of memory. */
static int join(char **list, const char *item)
{
    size_t old = *list != NULL ? strlen(*list) : 0;
    char *p = realloc(*list, old + 2 + strlen(item) + 1);

    if (p == NULL)
        return -1;
    if (old > 0) {
        memcpy(p + old, ", ", 2);
        old += 2;
    }
    strcpy(p + old, item);
    *list = p;
    return 0;
}

/* Set an option that may be given once; -1 (with a message) if repeated. */
static int once(const char **slot, const char *value, const char *name)
{
    if (*slot != NULL) {
        fprintf(stderr, "etagkv: %s given twice\n", name);
        return -1;
    }
    *slot = value;
    return 0;
}

/* --limit: decimal digits only (no sign, no blanks), 1 to SIZE_MAX.  0 is
 * refused, as HTTP's limit=0 is (400): "no limit" is leaving it out. */
static int parse_limit(const char *v, size_t *out)
{
    size_t n = 0;

    if (*v == '\0')
        return -1;
    for (; *v != '\0'; v++) {
        if (*v < '0' || *v > '9' || n > (SIZE_MAX - 9) / 10)
            return -1;
        n = n * 10 + (size_t)(*v - '0');
    }
    *out = n;
    return n > 0 ? 0 : -1;
}

/* The OPT_* bit an option sets, or 0 for the global ones. */
static unsigned option_bit(int c)
{
    switch (c) {
    case 't': return OPT_TYPE;
    case 'p':
    case 'a':
    case 'n': return OPT_LIST;
    case 'i': return OPT_IDEM;
    default: return 0;
    }
}

enum { IM = 256, INM, IMS, IUS, IREV, NOSYNC, PCT, JSON, LEASE, PAGE, VALUES };

static int parse_one(int c, struct args *a, const char **raw)
{
    switch (c) {
    case 'd': return once(&a->dir, optarg, "--data");
    case IM: return join(&a->if_match, optarg);
    case INM: return join(&a->if_none_match, optarg);
    case IMS: return once(&a->if_modified_since, optarg, "--if-modified-since");
    case IUS:
        return once(&a->if_unmodified_since, optarg, "--if-unmodified-since");
    case IREV: return once(&a->if_revision, optarg, "--if-revision");
    case 't': return once(&a->content_type, optarg, "--content-type");
    case 'i':
        /* The library reads an empty key as none: the write would quietly
         * not be idempotent (the server refuses it with 400). */
        if (optarg[0] == '\0') {
            fprintf(stderr, "etagkv: --idempotency-key is empty\n");
            return -1;
        }
        return once(&a->idempotency_key, optarg, "--idempotency-key");
    case 'p': return once(&raw[0], optarg, "--prefix");
    case 'a': return once(&raw[1], optarg, "--after");
    case 'n': return once(&raw[2], optarg, "--limit");
    case NOSYNC: a->nosync = 1; return 0;
    case PCT: a->pct = 1; return 0;
    case JSON: a->json = 1; return 0;
    case VALUES: a->values = 1; return 0;
    case LEASE: return once(&a->lease, optarg, "--lease");
    case PAGE: return once(&a->page, optarg, "--page");
    case 'h': usage(stdout); exit(0);
    case 'V':
        printf("etagkv %s (libetagkv %s)\n", ETAGKV_VERSION_STRING,
               etagkv_version(NULL, NULL, NULL));
        exit(0);
    default: return -1;
    }
}

/* Percent-decode the NUL-terminated src into a malloc'd buffer (*out,
 * *len).  0; -1 for a malformed escape (nothing allocated); 0 with *out
 * NULL when out of memory (take_bytes() reports it). */
static int pct_decode_alloc(const char *src, unsigned char **out, size_t *len)
{
    size_t n = strlen(src);
    ssize_t got;

    *out = malloc(n + 1);
    if (*out == NULL)
        return 0;
    got = srv_pct_decode(src, n, *out, n + 1);
    if (got < 0) {
        free(*out);
        *out = NULL;
        return -1;
    }
    *len = (size_t)got;
    return 0;
}

/* Bytes of a KEY, --prefix or --after: as given, or percent-decoded with
 * --pct.  -1 (with a message) for a malformed escape or too long. */
static int take_bytes(const struct args *a, const char *arg, const char *what,
                      struct bytes *out)
{
    if (!a->pct) {
        out->len = strlen(arg);
        out->p = (unsigned char *)strdup(arg);
    } else if (pct_decode_alloc(arg, &out->p, &out->len) != 0) {
        fprintf(stderr, "etagkv: %s '%s': bad percent-encoding (%%XX)\n", what,
                arg);
        return -1;
    }
    if (out->p == NULL) {
        fprintf(stderr, "etagkv: out of memory\n");
        return -1;
    }
    if (out->len > ETAGKV_KEY_MAX) {
        fprintf(stderr, "etagkv: %s longer than %d bytes\n", what,
                ETAGKV_KEY_MAX);
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"if-match", required_argument, NULL, IM},
        {"if-none-match", required_argument, NULL, INM},
        {"if-modified-since", required_argument, NULL, IMS},
        {"if-unmodified-since", required_argument, NULL, IUS},
        {"if-revision", required_argument, NULL, IREV},
        {"content-type", required_argument, NULL, 't'},
        {"idempotency-key", required_argument, NULL, 'i'},
        {"prefix", required_argument, NULL, 'p'},
        {"after", required_argument, NULL, 'a'},
        {"limit", required_argument, NULL, 'n'},
        {"nosync", no_argument, NULL, NOSYNC},
        {"pct", no_argument, NULL, PCT},
        {"json", no_argument, NULL, JSON},
        {"lease", required_argument, NULL, LEASE},
        {"page", required_argument, NULL, PAGE},
        {"values", no_argument, NULL, VALUES},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *raw[3] = {NULL, NULL, NULL}; /* prefix, after, limit */
    int c;

    for (;;) {
        c = getopt_long(argc, argv, "d:t:i:p:a:n:hV", opts, NULL);
        if (c == -1)
            break;
        if (parse_one(c, a, raw) != 0)
            return -1;
        a->used |= option_bit(c) | (c >= IM && c <= IREV ? OPT_COND : 0) |
                   (c == PCT ? OPT_PCT : 0) | (c == JSON ? OPT_JSON : 0) |
                   (c == LEASE ? OPT_LEASE : 0) | (c == PAGE ? OPT_PAGE : 0) |
                   (c == VALUES ? OPT_VALUES : 0);
    }
    if (raw[0] != NULL && take_bytes(a, raw[0], "--prefix", &a->prefix) != 0)
        return -1;
    if (raw[1] != NULL && take_bytes(a, raw[1], "--after", &a->after) != 0)
        return -1;
    if (raw[2] != NULL && parse_limit(raw[2], &a->limit) != 0) {
        fprintf(stderr,
                "etagkv: bad --limit '%s': a number of records, at least 1 "
                "(leave it out for no limit)\n",
                raw[2]);
        return -1;
    }
    if (a->page != NULL && parse_limit(a->page, &a->page_records) != 0) {
        fprintf(stderr,
                "etagkv: bad --page '%s': a number of records, at "
                "least 1\n",
                a->page);
        return -1;
    }
    return 0;
}

/* The command argv[0] names, if it exists and its operands and options
 * fit; NULL (with a message) otherwise. */
static const struct command *check_command(int argc, char **argv,
                                           const struct args *a)
{
    static const char *const what[] = {"conditions do",
                                       "--content-type does",
                                       "--prefix, --after and --limit do",
                                       "--idempotency-key does",
                                       "--pct does",
                                       "--json does",
                                       "--lease does",
                                       "--page does",
                                       "--values does"};
    const struct command *cmd = NULL;
    unsigned o;
    int i;

    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (strcmp(argv[0], commands[k].name) == 0)
            cmd = &commands[k];
    if (cmd == NULL) {
        fprintf(stderr, "etagkv: unknown command '%s'\n", argv[0]);
        return NULL;
    }
    if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args) {
        fprintf(stderr, "etagkv: %s takes %s\n", cmd->name, cmd->operands);
        return NULL;
    }
    for (o = 1, i = 0; o <= OPT_LAST; o <<= 1, i++)
        if ((a->used & o) && !(cmd->takes & o)) {
            fprintf(stderr, "etagkv: %s not apply to %s\n", what[i], cmd->name);
            return NULL;
        }
    return cmd;
}

/* ---- outcomes ------------------------------------------------------------ */

int report_as(etagkv_status st, int deleted)
{
    int code = deleted && st == ETAGKV_OK ? 204 : etagkv_status_http(st);

    fprintf(stderr, "%d %s", code,
            code == 204 ? "deleted" : etagkv_strerror(st));
    if (*etagkv_last_error_detail() != '\0')
        fprintf(stderr, " (%s)", etagkv_last_error_detail());
    fputc('\n', stderr);
    switch (code) {
    case 200:
    case 201:
    case 204: return 0;
    case 304:
    case 404:
    case 409:
    case 412:
    case 422: return EXIT_OUTCOME;
    default: return EXIT_ERROR;
    }
}

int report(etagkv_status st)
{
    return report_as(st, 0);
}

static void print_meta(const etagkv_meta *m)
{
    char date[ETAGKV_HTTPDATE_SIZE] = "";

    if (!m->exists)
        return;
    (void)etagkv_httpdate_format(ETAGKV_META_LAST_MODIFIED(m), date);
    printf("etag: %s\nlast-modified: %s\ncontent-type: %s\nsize: %" PRIu64
           "\ncreated-ns: %" PRIu64 "\nmodified-ns: %" PRIu64
           "\ncreate-revision: %" PRIu64 "\nmod-revision: %" PRIu64
           "\nversion: %" PRIu64 "\n",
           m->etag, date, m->content_type, m->value_bytes, m->created_ns,
           m->modified_ns, m->create_revision, m->mod_revision, m->version);
}

/* ---- reads --------------------------------------------------------------- */

static int cmd_get(struct ctx *c)
{
    void *v;
    size_t n;
    etagkv_meta m;
    etagkv_status st =
        etagkv_get(c->s, c->key.p, c->key.len, c->cond, &v, &n, &m);

    if (st == ETAGKV_OK) {
        fwrite(v, 1, n, stdout);
        etagkv_free(v);
    }
    return report(st);
}

static int cmd_head(struct ctx *c)
{
    etagkv_meta m;
    etagkv_status st =
        etagkv_get(c->s, c->key.p, c->key.len, c->cond, NULL, NULL, &m);

    print_meta(&m);
    return report(st);
}

/* A listing: the JSON page being built (--json), else NULL; the last key
 * passed (the page's "next" when more follow); a failure to print. */
struct listing {
    json_t *keys;
    char *last;
    int failed;
};

static json_t *list_entry(const void *key, size_t key_len, const char *pct,
                          const etagkv_meta *m)
{
    char date[ETAGKV_HTTPDATE_SIZE];
    /* The server's members (server/list.c): "key" when the key is UTF-8
     * (jansson checks), "key_pct" always. */
    json_t *name = json_stringn(key, key_len);

    (void)etagkv_httpdate_format(ETAGKV_META_LAST_MODIFIED(m), date);
    return json_pack("{s:o, s:s, s:s, s:I, s:s, s:I, s:s}", "key",
                     name != NULL ? name : json_null(), "key_pct", pct, "etag",
                     m->etag, "size", (json_int_t)m->value_bytes,
                     "content_type", m->content_type, "mod_revision",
                     (json_int_t)m->mod_revision, "last_modified", date);
}

static int list_one(void *ctx, const void *key, size_t key_len,
                    const etagkv_meta *m)
{
    struct listing *l = ctx;
    char *pct = srv_pct_encode(key, key_len);

    free(l->last);
    l->last = pct;
    if (pct == NULL) {
        l->failed = 1;
        return 1;
    }
    if (l->keys == NULL) {
        /* Percent-encoded: a key's tabs, newlines, NUL bytes and terminal
         * escapes never reach the terminal raw, and --pct reads it back. */
        printf("%s\t%s\t%" PRIu64 "\t%" PRIu64 "\n", pct, m->etag,
               m->value_bytes, m->mod_revision);
        return 0;
    }
    if (json_array_append_new(l->keys, list_entry(key, key_len, pct, m)) != 0) {
        l->failed = 1;
        return 1;
    }
    return 0;
}

/* Print the server's JSON page {"revision": R, "keys": [...], "next":
 * cursor or null}: R, the snapshot's revision, is where a watch of what
 * follows the listing starts (list, then watch -a R). */
static int print_page(struct listing *l, int more, uint64_t rev)
{
    json_t *page =
        json_pack("{s:I, s:O, s:o}", "revision", (json_int_t)rev, "keys",
                  l->keys, "next", more ? json_string(l->last) : json_null());
    int rc = page != NULL ? json_dumpf(page, stdout, JSON_COMPACT) : -1;

    json_decref(page);
    return rc == 0 && putchar('\n') != EOF ? 0 : -1;
}

static int cmd_list(struct ctx *c)
{
    const struct args *a = c->a;
    struct listing l = {NULL, NULL, 0};
    int more = 0, rc;
    uint64_t rev = 0;
    etagkv_status st;

    if (a->json && (l.keys = json_array()) == NULL)
        return report(ETAGKV_NO_MEMORY);
    st =
        etagkv_list_revision(c->s, a->prefix.p, a->prefix.len, a->after.p,
                             a->after.len, a->limit, list_one, &l, &more, &rev);
    if (st == ETAGKV_OK && l.failed)
        st = ETAGKV_NO_MEMORY;
    if (st == ETAGKV_OK && a->json && print_page(&l, more, rev) != 0)
        st = ETAGKV_NO_MEMORY;
    if (st == ETAGKV_OK && more && !a->json)
        fprintf(stderr, "(more records follow; resume with --pct --after "
                        "and the last key)\n");
    rc = report(st);
    json_decref(l.keys);
    free(l.last);
    return rc;
}

static int cmd_stats(struct ctx *c)
{
    etagkv_stats x;
    etagkv_status st = etagkv_store_stats(c->s, &x);

    if (st == ETAGKV_OK)
        printf("records: %" PRIu64 "\nrevision: %" PRIu64 "\n", x.records,
               x.revision);
    /* LMDB's map; a store on etcd has none (its figures are 0). */
    if (st == ETAGKV_OK && x.map_max_bytes > 0)
        printf("map-size-bytes: %" PRIu64 "\nmap-used-bytes: %" PRIu64
               "\nmap-max-bytes: %" PRIu64 "\n",
               x.map_size_bytes, x.map_used_bytes, x.map_max_bytes);
    return report(st);
}

/* ---- writes -------------------------------------------------------------- */

/* Open the FILE operand (NULL or "-": stdin).  -1 with a message. */
static int open_input(const char *file, int *fd, struct stat *sb)
{
    const char *name = file != NULL && strcmp(file, "-") != 0 ? file : NULL;

    *fd = name != NULL ? open(name, O_RDONLY | O_CLOEXEC) : 0;
    if (*fd < 0 || fstat(*fd, sb) != 0) {
        fprintf(stderr, "etagkv: %s: %s\n", name != NULL ? name : "stdin",
                strerror(errno));
        if (*fd > 0)
            (void)close(*fd);
        return -1;
    }
    if (S_ISDIR(sb->st_mode)) {
        fprintf(stderr, "etagkv: %s: is a directory\n",
                name != NULL ? name : "stdin");
        if (*fd > 0)
            (void)close(*fd);
        return -1;
    }
    return 0;
}

/* Read fd into c->value: at most limit + 1 bytes (value_too_large when
 * there were more than limit).  0, or -1 with errno. */
static int read_capped(int fd, size_t expect, uint64_t limit, struct ctx *c)
{
    struct bytes *v = &c->value;
    size_t cap = expect + 1 < 65536 ? 65536 : expect + 1;
    unsigned char *nb;
    ssize_t r;

    v->p = malloc(cap);
    if (v->p == NULL)
        return -1;
    for (;;) {
        if (v->len == cap) {
            cap = cap * 2 > limit + 1 ? (size_t)limit + 1 : cap * 2;
            nb = realloc(v->p, cap);
            if (nb == NULL)
                return -1;
            v->p = nb;
        }
        r = read(fd, v->p + v->len, cap - v->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        v->len += (size_t)r;
        if (v->len > limit) {
            c->value_too_large = 1;
            return 0;
        }
    }
}

/* The value of a put, read from its FILE or stdin before the store is
 * opened (so that a bad FILE is a usage error that creates nothing), and
 * never more than the store's limit: a regular file is refused from its
 * size before a byte is read; a stream is read up to limit + 1 bytes.  0
 * or the exit status, after saying why. */
static int read_value(const char *file, uint64_t limit, struct ctx *c)
{
    struct stat sb;
    int fd, rc = 0;

    if (open_input(file, &fd, &sb) != 0)
        return EXIT_USAGE;
    if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > limit)
        c->value_too_large = 1;
    else
        rc = read_capped(fd, S_ISREG(sb.st_mode) ? (size_t)sb.st_size : 0,
                         limit, c);
    if (rc != 0)
        fprintf(stderr, "etagkv: reading %s: %s\n", fd > 0 ? file : "stdin",
                strerror(errno));
    if (fd > 0)
        (void)close(fd);
    return rc != 0 ? EXIT_ERROR : 0;
}

/* A put or delete through etagkv_write(), with the idempotency key. */
static int write_one(struct ctx *c, etagkv_method method, const void *value,
                     size_t len)
{
    const char *idem = c->a->idempotency_key;
    etagkv_request req = {
        .method = method,
        .key = c->key.p,
        .key_len = c->key.len,
        .value = value,
        .value_len = len,
        .content_type = c->a->content_type,
        .cond = c->cond,
        .idempotency_key = idem,
        .idempotency_key_len = idem != NULL ? strlen(idem) : 0,
    };
    etagkv_result res;
    etagkv_status st;

    req.lease = c->lease_arg; /* --lease, checked by prepare() */
    st = etagkv_write(c->s, &req, &res);
    print_meta(&res.meta);
    if (res.replayed)
        printf("idempotent-replayed: true\n");
    return report_as(st, method == ETAGKV_METHOD_DELETE);
}

static int cmd_put(struct ctx *c)
{
    if (c->value_too_large) {
        fprintf(stderr, "etagkv: the value is larger than %" PRIu64 " bytes\n",
                (uint64_t)ETAGKV_MAX_VALUE_BYTES_DEFAULT);
        return report(ETAGKV_VALUE_TOO_LARGE);
    }
    return write_one(c, ETAGKV_METHOD_PUT, c->value.p, c->value.len);
}

static int cmd_delete(struct ctx *c)
{
    return write_one(c, ETAGKV_METHOD_DELETE, NULL, 0);
}

/* ---- opening ------------------------------------------------------------- */

int cli_open_store(const char *dir, enum open_mode mode, int nosync,
                   etagkv_store **s)
{
    etagkv_options o;
    etagkv_status st;
    struct stat sb;
    char path[4096];

    *s = NULL;
    if (mode == OPEN_NONE)
        return 0;
    if (cli_on_etcd(dir)) {
        /* No directory to make or look into: the library creates the
         * store under the prefix when it opens it read-write. */
        mode = mode == OPEN_READ ? OPEN_READ : OPEN_CREATE;
    } else if (mode == OPEN_CREATE && mkdir(dir, 0700) != 0 &&
               errno != EEXIST) {
        fprintf(stderr, "etagkv: mkdir %s: %s\n", dir, strerror(errno));
        return EXIT_ERROR;
    }
    /* A delete on a mistyped directory must not create a store to find
     * nothing in: only put creates one. */
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if (mode == OPEN_WRITE && !cli_on_etcd(dir) && stat(path, &sb) != 0 &&
        errno == ENOENT)
        mode = OPEN_READ; /* which refuses a missing store, below */
    /* Nor a store created where a restore is writing one: the restore
     * would find the directory taken (cli/copy.c) and restore nothing. */
    if (mode == OPEN_CREATE && !cli_on_etcd(dir) && stat(path, &sb) != 0 &&
        errno == ENOENT) {
        char restoring[4200];

        cli_restoring_path(restoring, sizeof(restoring), dir);
        if (access(restoring, F_OK) == 0) {
            fprintf(stderr,
                    "etagkv: %s: a restore is writing a store here, or was "
                    "cut short (%s): wait for it, or remove that file\n",
                    dir, restoring);
            return EXIT_USAGE;
        }
    }
    etagkv_options_init(&o);
    o.sync_mode = nosync ? ETAGKV_NOSYNC : ETAGKV_SYNC;
    o.read_only = mode == OPEN_READ;
    st = etagkv_store_open(dir, &o, s);
    if (st == ETAGKV_NOT_FOUND) {
        fprintf(stderr, "etagkv: %s\n", etagkv_last_error_detail());
        return EXIT_USAGE;
    }
    return st == ETAGKV_OK ? 0 : report(st);
}

/* Parse the conditions; a malformed one is a usage error (exit 2), like
 * any other bad option, and not the 400 a server would answer. */
static int parse_cond(struct args *a, etagkv_cond **c)
{
    const char *dates[] = {a->if_modified_since, a->if_unmodified_since};
    const char *names[] = {"--if-modified-since", "--if-unmodified-since"};
    etagkv_status st;

    /* A server ignores a date that is not an HTTP-date (RFC 9110 §13.1.3,
     * §13.1.4), and so does the library; here it is a typo, which would
     * make the write unconditional. */
    for (int i = 0; i < 2; i++) {
        int64_t t;

        if (dates[i] != NULL &&
            etagkv_httpdate_parse(dates[i], strlen(dates[i]), &t) !=
                ETAGKV_OK) {
            fprintf(stderr,
                    "etagkv: bad %s: not an HTTP-date (as 'Sun, 06 Nov 1994 "
                    "08:49:37 GMT')\n",
                    names[i]);
            return EXIT_USAGE;
        }
    }
    st = etagkv_cond_parse(a->if_match, a->if_none_match, a->if_modified_since,
                           a->if_unmodified_since, c);

    if (st == ETAGKV_OK && a->if_revision != NULL) {
        st = etagkv_cond_add(*c, ETAGKV_IF_REVISION, a->if_revision,
                             strlen(a->if_revision));
        if (st != ETAGKV_OK) {
            etagkv_cond_free(*c);
            *c = NULL;
        }
    }
    if (st == ETAGKV_OK)
        return 0;
    fprintf(stderr,
            "etagkv: bad --if-match, --if-none-match or --if-revision: %s "
            "(%s)\n",
            etagkv_strerror(st), etagkv_last_error_detail());
    return st == ETAGKV_INVALID_HEADER ? EXIT_USAGE : EXIT_ERROR;
}

/* Everything that can be refused without touching the store: options,
 * command, key, conditions, the value of a put.  0 or the exit status. */
static int prepare(int argc, char **argv, struct args *a, struct ctx *c,
                   const struct command **cmd)
{
    int rc;

    if (parse_args(argc, argv, a) != 0 || optind >= argc)
        return EXIT_USAGE;
    *cmd = check_command(argc - optind, argv + optind, a);
    if (*cmd == NULL)
        return EXIT_USAGE;
    c->dir = a->dir != NULL ? a->dir : DEFAULT_DIR;
    c->argc = argc - optind - 1;
    c->argv = argv + optind + 1;
    if ((*cmd)->has_key && c->argc > 0) { /* watch's KEY is optional */
        if (take_bytes(a, c->argv[0], "KEY", &c->key) != 0)
            return EXIT_USAGE;
        if (c->key.len == 0) {
            fprintf(stderr, "etagkv: KEY is empty\n");
            return EXIT_USAGE;
        }
    }
    c->open = (*cmd)->open;
    rc = parse_cond(a, &c->cond);
    if (rc == 0 && (*cmd)->run == cmd_put)
        rc = read_value(c->argc > 1 ? c->argv[1] : NULL,
                        ETAGKV_MAX_VALUE_BYTES_DEFAULT, c);
    if (rc == 0 && (*cmd)->run == cmd_txn)
        rc = read_value(c->argv[0], CLI_TXN_BODY_MAX_BYTES, c);
    if (rc == 0 && (*cmd)->run == cmd_txn)
        rc = cli_txn_prepare(c);
    if (rc == 0 && (*cmd)->run == cmd_lease)
        rc = cli_lease_prepare(c);
    if (rc == 0 && a->lease != NULL &&
        srv_lease_id_parse(a->lease, strlen(a->lease), &c->lease_arg) != 0) {
        fprintf(stderr, "etagkv: --lease '%s' is not a lease id\n", a->lease);
        rc = EXIT_USAGE;
    }
    return rc;
}

int main(int argc, char **argv)
{
    struct args a = {.dir = NULL};
    struct ctx c = {.a = &a};
    const struct command *cmd = NULL;
    int rc;

    /* A write past RLIMIT_FSIZE (a backup, a restore, the store itself)
     * fails with EFBIG and is reported, and what it left half-written is
     * removed, instead of the process dying of SIGXFSZ. */
    (void)signal(SIGXFSZ, SIG_IGN);
    rc = prepare(argc, argv, &a, &c, &cmd);
    if (rc == EXIT_USAGE && cmd == NULL) {
        /* Each refusal said what was wrong; the bare command gets the
         * whole text. */
        if (argc == 1)
            usage(stderr);
        else
            fputs("etagkv: see 'etagkv --help'\n", stderr);
    }
    if (rc == 0)
        rc = cli_open_store(c.dir, c.open, a.nosync, &c.s);
    if (rc == 0)
        rc = cmd->run(&c);
    /* What went to standard output must have arrived: a value or a listing
     * cut short by a full disk is no success (a closed pipe is SIGPIPE,
     * which ends the program before it gets here). */
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "etagkv: writing standard output: %s\n",
                errno != 0 ? strerror(errno) : "failed");
        if (rc == 0)
            rc = EXIT_ERROR;
    }
    etagkv_store_close(c.s);
    srv_txn_req_free(c.txn);
    etagkv_cond_free(c.cond);
    free(a.if_match);
    free(a.if_none_match);
    free(a.prefix.p);
    free(a.after.p);
    free(c.key.p);
    free(c.value.p);
    return rc;
}
