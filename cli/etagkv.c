/*
 * etagkv.c -- the command-line tool: every library operation, with HTTP's
 * precondition headers as options, on a store directory.
 *
 *   etagkv [-d DIR] get KEY          [conditions]   value to stdout
 *   etagkv [-d DIR] head KEY         [conditions]   metadata
 *   etagkv [-d DIR] put KEY [FILE|-] [conditions] [-t TYPE]
 *   etagkv [-d DIR] delete KEY       [conditions]
 *   etagkv [-d DIR] list [-p PREFIX] [-a AFTER] [-n LIMIT]
 *   etagkv [-d DIR] stats
 *   etagkv [-d DIR] txn FILE|-        a POST /txn body; its reply to stdout
 *
 * The outcome goes to stderr as "<HTTP status> <message>" (the library's
 * own mapping), so scripts see exactly what the server would answer.  Exit
 * status: 0 success, 1 a negative outcome (304, 404, 412, a transaction's
 * 409), 2 usage, 3 error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "etagkv.h"
#include "txn_json.h"

#define DEFAULT_DIR "etagkv-data"

/* Which options a command takes (struct command.takes, args.used). */
enum { OPT_COND = 1, OPT_TYPE = 2, OPT_LIST = 4 };

struct args {
    const char *dir;
    /* If-Match and If-None-Match may be given several times and are then
     * one list, as repeated HTTP header lines are (malloc'd). */
    char *if_match, *if_none_match;
    const char *if_modified_since, *if_unmodified_since;
    const char *if_revision; /* ETagKV-If-Revision, parsed by the library */
    const char *content_type;
    const char *prefix, *after;
    size_t limit;
    int nosync;
    unsigned used; /* OPT_* of the options given */
};

struct command {
    const char *name;
    int min_args, max_args; /* operands after the command's name */
    unsigned takes;         /* OPT_* it accepts */
};

static const struct command commands[] = {
    {"get", 1, 1, OPT_COND},
    {"head", 1, 1, OPT_COND},
    {"put", 1, 2, OPT_COND | OPT_TYPE},
    {"delete", 1, 1, OPT_COND},
    {"list", 0, 0, OPT_LIST},
    {"stats", 0, 0, 0},
    {"txn", 1, 1, 0},
};

static void usage(FILE *out)
{
    fputs("usage: etagkv [-d DIR] [--nosync] COMMAND [ARGS] [OPTIONS]\n"
          "\n"
          "commands:\n"
          "  get KEY            print the value\n"
          "  head KEY           print the metadata\n"
          "  put KEY [FILE|-]   store FILE (default: stdin)\n"
          "  delete KEY         delete the record\n"
          "  list               list records (-p PREFIX, -a AFTER, -n LIMIT)\n"
          "  stats              store figures\n"
          "  txn FILE|-         commit the transaction of a POST /txn JSON "
          "body\n"
          "                     (docs/http.md); print the server's reply\n"
          "\n"
          "options:\n"
          "  -d, --data DIR              store directory (default "
          "./" DEFAULT_DIR ")\n"
          "      --if-match LIST         RFC 9110 If-Match (get, head, put, "
          "delete)\n"
          "      --if-none-match LIST    RFC 9110 If-None-Match\n"
          "      --if-modified-since D   RFC 9110 If-Modified-Since\n"
          "      --if-unmodified-since D RFC 9110 If-Unmodified-Since\n"
          "      --if-revision N         the key's mod_revision must be N "
          "(0: absent)\n"
          "  -t, --content-type TYPE     content type for put\n"
          "  -p, --prefix P, -a, --after K, -n, --limit N   for list\n"
          "      --nosync                do not fsync each write\n"
          "  -h, --help                  this text\n"
          "\n"
          "--if-match and --if-none-match may be repeated: the values form "
          "one list,\nas repeated HTTP header lines do.  The outcome is "
          "printed to stderr as an\nHTTP status line.  Exit status: 0 "
          "success, 1 not modified / not found /\nprecondition failed / "
          "conflict, 2 "
          "usage (nothing is opened or created), 3 error.\n",
          out);
}

/* Append item to the comma-separated list *list; -1 when out of memory. */
static int join(char **list, const char *item)
{
    size_t old = *list != NULL ? strlen(*list) : 0;
    char *p = realloc(*list, old + 2 + strlen(item) + 1);

    if (p == NULL)
        return -1;
    if (old > 0)
        memcpy(p + old, ", ", 2), old += 2;
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

/* --limit: decimal digits only (no sign, no blanks), not above SIZE_MAX. */
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
    return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    enum { IM = 256, INM, IMS, IUS, IREV, NOSYNC };
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"if-match", required_argument, NULL, IM},
        {"if-none-match", required_argument, NULL, INM},
        {"if-modified-since", required_argument, NULL, IMS},
        {"if-unmodified-since", required_argument, NULL, IUS},
        {"if-revision", required_argument, NULL, IREV},
        {"content-type", required_argument, NULL, 't'},
        {"prefix", required_argument, NULL, 'p'},
        {"after", required_argument, NULL, 'a'},
        {"limit", required_argument, NULL, 'n'},
        {"nosync", no_argument, NULL, NOSYNC},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *limit = NULL;
    int c, bad = 0;

    while (!bad &&
           (c = getopt_long(argc, argv, "d:t:p:a:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': bad = once(&dir, optarg, "--data"); break;
        case IM: bad = join(&a->if_match, optarg); break;
        case INM: bad = join(&a->if_none_match, optarg); break;
        case IMS:
            bad = once(&a->if_modified_since, optarg, "--if-modified-since");
            break;
        case IUS:
            bad =
                once(&a->if_unmodified_since, optarg, "--if-unmodified-since");
            break;
        case IREV: bad = once(&a->if_revision, optarg, "--if-revision"); break;
        case 't': bad = once(&a->content_type, optarg, "--content-type"); break;
        case 'p': bad = once(&a->prefix, optarg, "--prefix"); break;
        case 'a': bad = once(&a->after, optarg, "--after"); break;
        case 'n': bad = once(&limit, optarg, "--limit"); break;
        case NOSYNC: a->nosync = 1; break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
        a->used |= c == 't'                           ? OPT_TYPE
                   : c == 'p' || c == 'a' || c == 'n' ? OPT_LIST
                   : c >= IM && c <= IREV             ? OPT_COND
                                                      : 0;
    }
    if (bad)
        return -1;
    if (dir != NULL)
        a->dir = dir;
    if (limit != NULL && parse_limit(limit, &a->limit) != 0) {
        fprintf(stderr, "etagkv: bad --limit '%s': a number of records\n",
                limit);
        return -1;
    }
    return 0;
}

/* The command argv[0] names, if it exists and its operands and options
 * fit; NULL (with a message) otherwise. */
static const struct command *check_command(int argc, char **argv,
                                           const struct args *a)
{
    static const char *const what[] = {"", "conditions do",
                                       "--content-type does", "",
                                       "--prefix, --after and --limit do"};
    const struct command *cmd = NULL;

    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[0], commands[i].name) == 0)
            cmd = &commands[i];
    if (cmd == NULL) {
        fprintf(stderr, "etagkv: unknown command '%s'\n", argv[0]);
        return NULL;
    }
    if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args) {
        fprintf(stderr, "etagkv: %s takes %s\n", cmd->name,
                cmd->max_args == 0              ? "no operands"
                : strcmp(cmd->name, "txn") == 0 ? "one FILE (or -)"
                : cmd->max_args == 1            ? "one KEY"
                                                : "KEY and an optional FILE");
        return NULL;
    }
    for (unsigned o = OPT_COND; o <= OPT_LIST; o <<= 1)
        if ((a->used & o) && !(cmd->takes & o)) {
            fprintf(stderr, "etagkv: %s not apply to %s\n", what[o], cmd->name);
            return NULL;
        }
    return cmd;
}

/* Print the outcome like an HTTP status line and choose the exit status.
 * The status is the server's for the same request: a DELETE that succeeds
 * is 204 there, which the library's mapping of ETAGKV_OK cannot know. */
static int report_as(etagkv_status st, int deleted)
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
    case 412: return 1;
    default: return 3;
    }
}

static int report(etagkv_status st)
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

/* Read all of f into a malloc'd buffer. */
static int slurp(FILE *f, char **out, size_t *len)
{
    size_t cap = 4096, n = 0, r;
    char *buf = malloc(cap), *nb;

    if (buf == NULL)
        return -1;
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            nb = realloc(buf, cap *= 2);
            if (nb == NULL) {
                free(buf);
                return -1;
            }
            buf = nb;
        }
    }
    if (ferror(f)) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int cmd_put(etagkv_store *s, const char *key, const char *file,
                   const struct args *a, const etagkv_cond *c)
{
    FILE *f = stdin;
    char *v;
    size_t n;
    etagkv_meta m;
    etagkv_status st;

    if (file != NULL && strcmp(file, "-") != 0 &&
        (f = fopen(file, "rb")) == NULL) {
        fprintf(stderr, "etagkv: %s: %s\n", file, strerror(errno));
        return 3;
    }
    if (slurp(f, &v, &n) != 0) {
        fprintf(stderr, "etagkv: reading the value failed\n");
        if (f != stdin)
            fclose(f);
        return 3;
    }
    if (f != stdin)
        fclose(f);
    st = etagkv_put(s, key, strlen(key), v, n, a->content_type, c, &m);
    free(v);
    print_meta(&m);
    return report(st);
}

/* Print the reply etagkv-server would send: the 200 body, or the 409
 * problem (RFC 9457) with "failed" and "results". */
static int print_txn_reply(const struct srv_txn_req *q,
                           const etagkv_txn_outcome *o)
{
    json_t *j = srv_txn_reply(q, o);
    char detail[96];
    int rc = -1;

    if (j != NULL && o->status == ETAGKV_CONFLICT) {
        json_t *problem;

        snprintf(detail, sizeof detail,
                 "operation %zu failed; nothing was written", o->failed);
        problem = json_pack("{s:s, s:s, s:i, s:s}", "type",
                            "urn:etagkv:problem:conflict", "title", "Conflict",
                            "status", 409, "detail", detail);
        if (problem != NULL && json_object_update(problem, j) != 0) {
            json_decref(problem);
            problem = NULL;
        }
        json_decref(j);
        j = problem;
    }
    if (j != NULL &&
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0 &&
        putchar('\n') != EOF)
        rc = 0;
    json_decref(j);
    return rc;
}

/* txn FILE|-: the same JSON as POST /txn, the same reply. */
static int cmd_txn(etagkv_store *s, const char *file)
{
    FILE *f = stdin;
    char *body, detail[256] = "";
    size_t n;
    struct srv_txn_req *q = NULL;
    etagkv_txn_outcome o;
    etagkv_status st;

    if (strcmp(file, "-") != 0 && (f = fopen(file, "rb")) == NULL) {
        fprintf(stderr, "etagkv: %s: %s\n", file, strerror(errno));
        return 3;
    }
    if (slurp(f, &body, &n) != 0) {
        fprintf(stderr, "etagkv: reading the transaction failed\n");
        if (f != stdin)
            fclose(f);
        return 3;
    }
    if (f != stdin)
        fclose(f);
    /* The store is opened with the default bound on operations. */
    st = srv_txn_parse(body, n, ETAGKV_TXN_MAX_OPS_DEFAULT, &q, detail,
                       sizeof detail);
    free(body);
    if (st != ETAGKV_OK) {
        if (detail[0] != '\0')
            fprintf(stderr, "etagkv: %s\n", detail);
        return report(st);
    }
    st = etagkv_txn_commit(s, srv_txn_handle(q));
    etagkv_txn_report(srv_txn_handle(q), &o);
    if ((st == ETAGKV_OK || st == ETAGKV_CONFLICT) &&
        print_txn_reply(q, &o) != 0) {
        srv_txn_req_free(q);
        fprintf(stderr, "etagkv: printing the reply failed\n");
        return 3;
    }
    srv_txn_req_free(q);
    return report(st);
}

static int list_one(void *ctx, const void *key, size_t key_len,
                    const etagkv_meta *m)
{
    (void)ctx;
    printf("%.*s\t%s\t%" PRIu64 "\t%" PRIu64 "\n", (int)key_len,
           (const char *)key, m->etag, m->value_bytes, m->mod_revision);
    return 0;
}

static int cmd_list(etagkv_store *s, const struct args *a)
{
    int more = 0;
    const char *p = a->prefix != NULL ? a->prefix : "";
    const char *af = a->after != NULL ? a->after : "";
    etagkv_status st = etagkv_list(s, p, strlen(p), af, strlen(af), a->limit,
                                   list_one, NULL, &more);

    if (st == ETAGKV_OK && more)
        fprintf(stderr, "(more records follow; resume with --after)\n");
    return report(st);
}

static int cmd_stats(etagkv_store *s)
{
    etagkv_stats x;
    etagkv_status st = etagkv_store_stats(s, &x);

    if (st == ETAGKV_OK)
        printf("records: %" PRIu64 "\nrevision: %" PRIu64
               "\nmap-size-bytes: %" PRIu64 "\nmap-used-bytes: %" PRIu64
               "\nmap-max-bytes: %" PRIu64 "\n",
               x.records, x.revision, x.map_size_bytes, x.map_used_bytes,
               x.map_max_bytes);
    return report(st);
}

static int dispatch(etagkv_store *s, int argc, char **argv,
                    const struct args *a, const etagkv_cond *c)
{
    const char *cmd = argv[0];
    const char *key = argc > 1 ? argv[1] : NULL;
    etagkv_meta m;
    void *v;
    size_t n;
    etagkv_status st;

    if (strcmp(cmd, "list") == 0)
        return cmd_list(s, a);
    if (strcmp(cmd, "stats") == 0)
        return cmd_stats(s);
    if (strcmp(cmd, "txn") == 0)
        return cmd_txn(s, key);
    if (strcmp(cmd, "get") == 0) {
        st = etagkv_get(s, key, strlen(key), c, &v, &n, &m);
        if (st == ETAGKV_OK) {
            fwrite(v, 1, n, stdout);
            etagkv_free(v);
        }
        return report(st);
    }
    if (strcmp(cmd, "head") == 0) {
        st = etagkv_get(s, key, strlen(key), c, NULL, NULL, &m);
        print_meta(&m);
        return report(st);
    }
    if (strcmp(cmd, "put") == 0)
        return cmd_put(s, key, argc > 2 ? argv[2] : NULL, a, c);
    if (strcmp(cmd, "delete") == 0) {
        st = etagkv_delete(s, key, strlen(key), c, &m);
        print_meta(&m);
        return report_as(st, 1);
    }
    return 2; /* not reached: check_command() knows every command */
}

int main(int argc, char **argv)
{
    struct args a = {.dir = DEFAULT_DIR};
    etagkv_options o;
    etagkv_store *s;
    etagkv_cond *c;
    etagkv_status st;
    int rc;

    if (parse_args(argc, argv, &a) != 0 || optind >= argc ||
        check_command(argc - optind, argv + optind, &a) == NULL) {
        /* Each refusal above said what was wrong; the bare command gets
         * the whole text. */
        if (argc == 1)
            usage(stderr);
        else
            fputs("etagkv: see 'etagkv --help'\n", stderr);
        free(a.if_match);
        free(a.if_none_match);
        return 2;
    }
    st = etagkv_cond_parse(a.if_match, a.if_none_match, a.if_modified_since,
                           a.if_unmodified_since, &c);
    free(a.if_match);
    free(a.if_none_match);
    if (st == ETAGKV_OK && a.if_revision != NULL) {
        st = etagkv_cond_add(c, ETAGKV_IF_REVISION, a.if_revision,
                             strlen(a.if_revision));
        if (st != ETAGKV_OK)
            etagkv_cond_free(c);
    }
    if (st != ETAGKV_OK)
        return report(st);
    if (mkdir(a.dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "etagkv: mkdir %s: %s\n", a.dir, strerror(errno));
        etagkv_cond_free(c);
        return 3;
    }
    etagkv_options_init(&o);
    o.sync_mode = a.nosync ? ETAGKV_NOSYNC : ETAGKV_SYNC;
    st = etagkv_store_open(a.dir, &o, &s);
    if (st != ETAGKV_OK) {
        etagkv_cond_free(c);
        return report(st);
    }
    rc = dispatch(s, argc - optind, argv + optind, &a, c);
    etagkv_store_close(s);
    etagkv_cond_free(c);
    return rc;
}
