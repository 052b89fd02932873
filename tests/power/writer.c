/*
 * writer.c -- the process whose power loss tests/power simulates: it
 * creates (or opens) the store in its directory and runs read-modify-write
 * loops on a few shared keys from several threads, each a GET and then a
 * PUT conditional on the ETag read (If-None-Match: * for an absent key),
 * until it is killed.  It runs under the journaling shim (shim.c).
 *
 *   power_writer DIR MODE THREADS SEED
 *
 * MODE is a sync mode, sync, pipelined or nosync, or
 * pipelined-ack-before-flush: pipelined mode with the test switch
 * ekv_test_ack_before_flush set, acknowledgements released as soon as a
 * batch commits, before a flush covers it (a negative control).
 *
 * On stdout, a pipe to the test, one line per event, each written whole
 * with one write() (shorter than PIPE_BUF, so lines of several threads
 * never mix):
 *   S t seq key len          before the PUT of value (t, seq)
 *   A t seq key rev jpos     after it was acknowledged at mod_revision rev;
 *                            jpos is the journal's size then, so every
 *                            write and flush of its commit lies before jpos
 * The value of (t, seq) is a pure function of (t, seq, key, len): see
 * power_value() in value.h.
 */
#define _DEFAULT_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "etagkv.h"
#include "journal.h"
#include "store.h"
#include "value.h"

static etagkv_store *store;
static uint64_t seed;
static const char *journal_path;

static void report(const char *line, int len)
{
    if (len > 0 && write(STDOUT_FILENO, line, (size_t)len) != len)
        _exit(3); /* the test is gone */
}

static uint64_t journal_size(void)
{
    struct stat sb;

    return stat(journal_path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* Write value to key conditionally on the state m just read: If-Match on
 * its ETag, or create-only when absent.  The record keeps its content
 * type.  Returns the write's status; m gets the key's state after it. */
static etagkv_status put_conditionally(const char *name, const void *value,
                                       size_t len, etagkv_meta *m)
{
    etagkv_cond *c = NULL;
    etagkv_status st = m->exists ? etagkv_cond_if_match(m->etag, &c)
                                 : etagkv_cond_create_only(&c);
    etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                          .key = name,
                          .key_len = strlen(name),
                          .value = value,
                          .value_len = len,
                          .cond = c,
                          .flags = ETAGKV_WRITE_KEEP_CONTENT_TYPE};
    etagkv_result res;

    if (st != ETAGKV_OK)
        return st;
    st = etagkv_write(store, &req, &res);
    *m = res.meta;
    etagkv_cond_free(c);
    return st;
}

static void *run(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint64_t rng = seed ^ ((uint64_t)t << 40);
    static _Thread_local char value[POWER_VALUE_MAX];
    char line[128];

    for (uint32_t seq = 0;; seq++) {
        int key = (int)(power_rng(&rng) % POWER_KEYS);
        size_t len = power_len(&rng);
        char name[16];
        etagkv_meta m;
        etagkv_status st;

        power_key(key, name, sizeof name);
        power_value(value, t, seq, key, len);
        report(line, snprintf(line, sizeof line, "S %d %" PRIu32 " %d %zu\n", t,
                              seq, key, len));
        st = etagkv_get(store, name, strlen(name), NULL, NULL, NULL, &m);
        if (st == ETAGKV_OK || st == ETAGKV_NOT_FOUND)
            st = put_conditionally(name, value, len, &m);
        if (st == ETAGKV_OK || st == ETAGKV_CREATED)
            report(line,
                   snprintf(line, sizeof line,
                            "A %d %" PRIu32 " %d %" PRIu64 " %" PRIu64 "\n", t,
                            seq, key, m.mod_revision, journal_size()));
        else if (st != ETAGKV_PRECONDITION_FAILED)
            _exit(4);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    etagkv_options o;
    etagkv_status st;
    pthread_t th[16];
    int threads;

    if (argc != 5) {
        fprintf(stderr, "usage: power_writer DIR "
                        "sync|pipelined|nosync|pipelined-ack-before-flush "
                        "THREADS SEED\n");
        return 2;
    }
    journal_path = getenv(PJ_ENV_JOURNAL);
    threads = atoi(argv[3]);
    seed = strtoull(argv[4], NULL, 0);
    if (journal_path == NULL || threads < 1 || threads > 16)
        return 2;
    etagkv_options_init(&o);
    ekv_test_ack_before_flush =
        strcmp(argv[2], "pipelined-ack-before-flush") == 0;
    if (strcmp(argv[2], "sync") == 0)
        o.sync_mode = ETAGKV_SYNC;
    else if (strcmp(argv[2], "nosync") == 0)
        o.sync_mode = ETAGKV_NOSYNC;
    else if (strcmp(argv[2], "pipelined") == 0 || ekv_test_ack_before_flush)
        o.sync_mode = ETAGKV_SYNC_PIPELINED;
    else
        return 2;
    st = etagkv_store_open(argv[1], &o, &store);
    if (st != ETAGKV_OK) {
        fprintf(stderr, "power_writer: %s: %s (%s)\n", argv[1],
                etagkv_strerror(st), etagkv_last_error_detail());
        return 1;
    }
    for (int i = 0; i < threads; i++)
        if (pthread_create(&th[i], NULL, run, (void *)(intptr_t)i) != 0)
            return 1;
    for (int i = 0; i < threads; i++)
        (void)pthread_join(th[i], NULL);
    return 0;
}
