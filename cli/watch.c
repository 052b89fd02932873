/*
 * watch.c -- `etagkv watch`: the store's changes, one JSON line per event,
 * as they happen (the events of GET /changes, docs/http.md).
 *
 *   etagkv [-d DIR] watch [-p PREFIX | KEY] [-a REVISION] [-n COUNT]
 *
 * Events after REVISION (default: the store's revision at start, so only
 * what happens from now on) are read with etagkv_changes().  Another
 * process's commit does not wake etagkv_wait() in this one, so between
 * pages the tool sleeps on an inotify watch of data.mdb, which every
 * commit of any process writes, with a one-second fallback.  A store on
 * etcd has no file, but there the library's own notification descriptor
 * is woken by every process's commits (an etcd Watch): the tool sleeps
 * on that.
 */
#define _GNU_SOURCE /* inotify_init1's flags */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "cli.h"
#include "pct.h" /* server/pct.h */

struct watch_out {
    size_t printed, count; /* count 0: no limit */
    int failed;            /* out of memory building a line */
};

/* The key as the server's feed spells it: "key" when it is UTF-8 without
 * NUL, else "key_base64" -- here "key_pct", the CLI's own spelling of any
 * bytes (list does the same), since jansson has no base64. */
static int set_key(json_t *o, const unsigned char *key, size_t len)
{
    json_t *k = memchr(key, 0, len) == NULL
                    ? json_stringn((const char *)key, len)
                    : NULL;
    char *pct;

    if (k != NULL)
        return json_object_set_new(o, "key", k);
    pct = srv_pct_encode(key, len);
    if (pct == NULL)
        return -1;
    k = json_string(pct);
    free(pct);
    return json_object_set_new(o, "key_pct", k);
}

/* One event as a line of JSON, the fields of GET /changes. */
static int print_event(void *ctx, const etagkv_event *ev)
{
    struct watch_out *w = ctx;
    int put = ev->type == ETAGKV_EVENT_PUT;
    json_t *o = json_pack(
        "{s:I, s:s, s:o, s:I, s:I, s:I, s:I}", "revision",
        (json_int_t)ev->revision, "type", put ? "put" : "delete", "etag",
        put ? json_string(ev->etag) : json_null(), "mod_revision",
        (json_int_t)ev->mod_revision, "create_revision",
        (json_int_t)ev->create_revision, "version", (json_int_t)ev->version,
        "modified_ns", (json_int_t)ev->modified_ns);
    char *line = NULL;

    if (o != NULL && set_key(o, ev->key, ev->key_len) == 0)
        line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (line == NULL) {
        w->failed = 1;
        return 1;
    }
    puts(line);
    free(line);
    w->printed++;
    return w->count > 0 && w->printed >= w->count;
}

/* Sleep until data.mdb changes, at most a second, then drain the
 * notifications. */
static void await_change(int ino)
{
    char buf[4096];
    struct pollfd p = {.fd = ino, .events = POLLIN};

    if (ino < 0) {
        (void)poll(NULL, 0, 1000);
        return;
    }
    if (poll(&p, 1, 1000) <= 0)
        return;
    while (read(ino, buf, sizeof buf) > 0)
        ;
}

/* -a for watch: a revision in decimal; absent, the current one.  0, or
 * the exit status after reporting why not. */
static int watch_start(const struct ctx *c, uint64_t *after)
{
    const struct bytes *a = &c->a->after;
    etagkv_stats x;
    etagkv_status st;
    char digits[24];
    char *end;

    if (a->p == NULL) {
        st = etagkv_store_stats(c->s, &x);
        if (st != ETAGKV_OK)
            return report(st);
        *after = x.revision;
        return 0;
    }
    if (a->len == 0 || a->len >= sizeof digits ||
        strspn((const char *)a->p, "0123456789") != a->len)
        goto bad;
    memcpy(digits, a->p, a->len);
    digits[a->len] = '\0';
    errno = 0;
    *after = strtoull(digits, &end, 10);
    if (errno == 0 && *end == '\0')
        return 0;
bad:
    fprintf(stderr, "etagkv: watch: --after must be a revision (digits)\n");
    return EXIT_USAGE;
}

int cmd_watch(struct ctx *c)
{
    const struct args *a = c->a;
    struct watch_out w = {0, a->limit, 0};
    const void *p = c->key.p != NULL ? c->key.p : a->prefix.p;
    size_t plen = c->key.p != NULL ? c->key.len : a->prefix.len;
    unsigned flags = c->key.p != NULL ? ETAGKV_CHANGES_KEY : 0;
    char path[4096];
    etagkv_changes_page page;
    etagkv_status st;
    uint64_t after = 0;
    int ino, n, rc, ahead = 0;

    if (c->key.p != NULL && a->prefix.p != NULL) {
        fprintf(stderr, "etagkv: watch takes a KEY or -p PREFIX, not both\n");
        return EXIT_USAGE;
    }
    rc = watch_start(c, &after);
    if (rc != 0)
        return rc;
    n = snprintf(path, sizeof path, "%s/data.mdb", c->dir);
    if (cli_on_etcd(c->dir)) {
        if (etagkv_notify_open(c->s, &ino) != ETAGKV_OK)
            ino = -1;
    } else {
        ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (ino >= 0 && (n < 0 || (size_t)n >= sizeof path ||
                         inotify_add_watch(ino, path, IN_MODIFY) < 0)) {
            (void)close(ino);
            ino = -1; /* no inotify: look once a second */
        }
    }
    for (;;) {
        st = etagkv_changes(c->s, p, plen, flags, after, 100, print_event, &w,
                            &page);
        if (st == ETAGKV_OK && w.failed)
            st = ETAGKV_NO_MEMORY;
        if (st != ETAGKV_OK)
            break;
        /* An after beyond the store's revision: a position in another
         * history (a store restored from an older copy).  Reading on from
         * the store's revision would print events taken for ones that
         * followed what the caller has; so stop, as the server's 410. */
        if (page.revision < after) {
            ahead = 1;
            break;
        }
        if (fflush(stdout) != 0)
            break; /* the reader went away */
        after = page.next;
        if (w.count > 0 && w.printed >= w.count)
            break;
        if (!page.more)
            await_change(ino);
    }
    if (ino >= 0 && cli_on_etcd(c->dir))
        etagkv_notify_close(c->s, ino);
    else if (ino >= 0)
        (void)close(ino);
    if (ahead) {
        /* The outcome line as the server's 410 ahead-of-store. */
        fprintf(stderr,
                "410 ahead of the store (after %" PRIu64 " is beyond the "
                "store's revision, %" PRIu64 ": this store's history never "
                "reached it -- restored from an older copy?; list again and "
                "watch from the listing's revision)\n",
                after, page.revision);
        return EXIT_ERROR;
    }
    if (st == ETAGKV_COMPACTED)
        fprintf(stderr,
                "etagkv: events after %" PRIu64 " are compacted; "
                "watch from %" PRIu64 " or later\n",
                after, page.min_after);
    return report(st);
}
