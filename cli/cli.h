/*
 * cli.h -- what the files of the etagkv tool share: the parsed command
 * line, a command's context, and the outcome report.
 */
#ifndef ETAGKV_CLI_H
#define ETAGKV_CLI_H

#include <string.h>
#include <stddef.h>
#include <stdint.h>

#include "etagkv.h"

/* Exit statuses (README "On the command line"). */
enum { EXIT_OUTCOME = 1, EXIT_USAGE = 2, EXIT_ERROR = 3 };

/* Bytes given on the command line: a KEY, --prefix or --after, decoded
 * with --pct (malloc'd). */
struct bytes {
    unsigned char *p;
    size_t len;
};

struct args {
    const char *dir;
    /* If-Match and If-None-Match may be given several times and are then
     * one list, as repeated HTTP header lines are (malloc'd). */
    char *if_match, *if_none_match;
    const char *if_modified_since, *if_unmodified_since;
    const char *if_revision; /* ETagKV-If-Revision, parsed by the library */
    const char *content_type;
    const char *idempotency_key;
    const char *lease; /* --lease ID for put */
    const char *page;  /* --page N for copy, parsed into page_records */
    size_t page_records;
    struct bytes prefix, after;
    size_t limit;
    int nosync, pct, json;
    int values;    /* txn: a conflict carries every existing key's value */
    unsigned used; /* OPT_* of the options given */
};

/* What a command runs with: the store directory and the open store (NULL
 * for a command that opens its own), the options, its operands after its
 * name, the parsed conditions, for commands on a key the key, and for put
 * the value (read before the store is opened). */
/* How a command opens the store. */
enum open_mode {
    OPEN_NONE,   /* opens nothing itself (restore opens its own) */
    OPEN_READ,   /* read-only: never creates, refuses a missing store */
    OPEN_WRITE,  /* read-write, an existing store only */
    OPEN_CREATE, /* read-write, creating the directory and the store */
};

struct srv_txn_req;

struct ctx {
    const char *dir;
    etagkv_store *s;
    const struct args *a;
    int argc;
    char **argv;
    etagkv_cond *cond;
    struct bytes key;
    struct bytes value;
    int value_too_large;     /* more than the store's limit: not read whole */
    enum open_mode open;     /* the command's, or what its prepare chose */
    struct srv_txn_req *txn; /* txn: the body, parsed before any open */
    uint64_t lease_arg;      /* lease: the TTL or id; put: --lease */
};

/* 1 when -d names a store on etcd ("etcd://HOST:PORT[,...]/PREFIX", which
 * the library opens as such) rather than a directory. */
static inline int cli_on_etcd(const char *dir)
{
    return strncmp(dir, "etcd://", 7) == 0;
}

/* Open the store in dir (a directory or etcd://...) as mode says; *s NULL
 * for OPEN_NONE.  Returns 0 or the exit status, after saying why. */
int cli_open_store(const char *dir, enum open_mode mode, int nosync,
                   etagkv_store **s);

/* Print the outcome like an HTTP status line (with the library's detail)
 * to stderr and return the exit status; `deleted` makes a successful
 * delete 204, as the server answers it. */
int report_as(etagkv_status st, int deleted);
int report(etagkv_status st);

/* copy.c: the commands on a whole store. */
/* dir/data.mdb.restoring: where a restore writes the store before it
 * publishes it (copy.c); an open must not create a store beside it. */
void cli_restoring_path(char *out, size_t cap, const char *dir);

int cmd_backup(struct ctx *c);
int cmd_restore(struct ctx *c);
int cmd_verify(struct ctx *c);
int cmd_copy(struct ctx *c);

/* watch.c: print the store's changes as JSON lines as they happen. */
int cmd_watch(struct ctx *c);

/* txn.c: commit the POST /txn body read into c->value (at most this many
 * bytes: the JSON of a transaction at the library's default bound of 16
 * MiB, with base64 and quoting to spare) and print the server's reply. */
#define CLI_TXN_BODY_MAX_BYTES ((uint64_t)64 << 20)
int cmd_txn(struct ctx *c);
/* Parse the body in c->value into c->txn before the store is opened, so
 * that a malformed one creates nothing.  0 or the exit status. */
int cli_txn_prepare(struct ctx *c);

/* lease.c: `etagkv lease grant TTL_MS | keepalive ID | show ID | revoke
 * ID` (DESIGN §9), printing the server's JSON bodies. */
int cmd_lease(struct ctx *c);
/* Check the verb and number before the store is opened (usage errors
 * create nothing) and choose the open: grant creates a store, keepalive
 * and revoke need one, show only reads.  0 or the exit status. */
int cli_lease_prepare(struct ctx *c);

#endif /* ETAGKV_CLI_H */
