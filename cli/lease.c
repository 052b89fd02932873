/*
 * lease.c -- `etagkv lease grant TTL_MS`, `lease keepalive ID`, `lease show
 * ID` and `lease revoke ID` (DESIGN §9): the library's lease calls, with
 * the server's JSON bodies on stdout.  Attached keys are shown as
 * "key_pct" strings, the tool's spelling of any key (watch.c).
 *
 * A lease expires inside a process that holds the store open (the server,
 * an embedding program); opening the store gives every live lease its full
 * TTL again (the restart rule), so leases used only through this tool,
 * each command a short open, never expire by themselves: revoke them.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pct.h"
#include "txn_json.h"

/* Print j (consumed) as one line of JSON.  0, or -1. */
static int print_json(json_t *j)
{
    int rc = j != NULL && json_dumpf(j, stdout, JSON_COMPACT) == 0 &&
                     putchar('\n') != EOF
                 ? 0
                 : -1;

    json_decref(j);
    return rc;
}

static int key_into(void *ctx, const void *key, size_t len)
{
    char *pct = srv_pct_encode(key, len);
    int rc = pct == NULL || json_array_append_new(ctx, json_string(pct)) != 0;

    free(pct);
    return rc;
}

static etagkv_status show(etagkv_store *s, uint64_t id)
{
    etagkv_lease l;
    json_t *keys = json_array(), *j = NULL;
    etagkv_status st = keys == NULL
                           ? ETAGKV_NO_MEMORY
                           : etagkv_lease_info(s, id, &l, key_into, keys);

    if (st == ETAGKV_OK)
        j = srv_lease_json(&l, 1);
    if (j != NULL && json_object_set(j, "keys", keys) == 0)
        st = print_json(j) == 0 ? ETAGKV_OK : ETAGKV_IO_ERROR;
    else if (st == ETAGKV_OK)
        st = ETAGKV_NO_MEMORY;
    json_decref(keys);
    return st;
}

int cli_lease_prepare(struct ctx *c)
{
    static const struct {
        const char *verb;
        enum open_mode open;
    } verbs[] = {{"grant", OPEN_CREATE},
                 {"keepalive", OPEN_WRITE},
                 {"revoke", OPEN_WRITE},
                 {"show", OPEN_READ}};
    const char *verb = c->argv[0], *arg = c->argv[1];
    size_t i;

    for (i = 0; i < sizeof verbs / sizeof *verbs; i++)
        if (strcmp(verb, verbs[i].verb) == 0)
            break;
    if (i == sizeof verbs / sizeof *verbs) {
        fprintf(stderr,
                "etagkv: lease takes grant, keepalive, show or revoke, not "
                "'%s'\n",
                verb);
        return EXIT_USAGE;
    }
    /* A TTL is a number (060000 is 60000); an id has one spelling only. */
    while (i == 0 && arg[0] == '0' && arg[1] != '\0')
        arg++;
    if (srv_lease_id_parse(arg, strlen(arg), &c->lease_arg) != 0) {
        fprintf(stderr, "etagkv: lease %s: '%s' is not a %s\n", verb, arg,
                i == 0 ? "TTL in ms" : "lease id");
        return EXIT_USAGE;
    }
    /* A TTL the store will refuse must not create a store first: the
     * store opens with the default options, so their bounds decide. */
    if (i == 0) {
        etagkv_options o;

        etagkv_options_init(&o);
        if (c->lease_arg < o.lease_min_ttl_ms ||
            c->lease_arg > o.lease_max_ttl_ms) {
            fprintf(stderr,
                    "etagkv: lease grant: a TTL of %" PRIu64
                    " ms is outside [%" PRIu64 ", %" PRIu64 "]\n",
                    c->lease_arg, o.lease_min_ttl_ms, o.lease_max_ttl_ms);
            return EXIT_USAGE;
        }
    }
    c->open = verbs[i].open;
    return 0;
}

int cmd_lease(struct ctx *c)
{
    const char *verb = c->argv[0];
    uint64_t n = c->lease_arg, rev;
    etagkv_lease l = {0};
    etagkv_status st;

    if (strcmp(verb, "grant") == 0) {
        l.ttl_ms = n;
        st = etagkv_lease_grant(c->s, n, &l.id);
        if (st == ETAGKV_OK && print_json(srv_lease_json(&l, 0)) != 0)
            st = ETAGKV_IO_ERROR;
        return report_as(st == ETAGKV_OK ? ETAGKV_CREATED : st, 0);
    }
    if (strcmp(verb, "keepalive") == 0) {
        st = etagkv_lease_keepalive(c->s, n, &l);
        if (st == ETAGKV_OK && print_json(srv_lease_json(&l, 1)) != 0)
            st = ETAGKV_IO_ERROR;
        return report(st);
    }
    if (strcmp(verb, "show") == 0)
        return report(show(c->s, n));
    if (strcmp(verb, "revoke") == 0) {
        st = etagkv_lease_revoke(c->s, n, &rev);
        if (st == ETAGKV_OK && rev > 0)
            printf("revision: %" PRIu64 "\n", rev);
        return report_as(st, 1);
    }
    return EXIT_USAGE; /* not reached: cli_lease_prepare() checked */
}
