/* counter.c -- a decimal counter that several threads increment at once
 * with etagkv_update(): read, add one, write If-Match the ETag read, and
 * on a lost race read again and add again.  No increment is lost: the
 * counter ends exactly THREADS * INCREMENTS above where it started. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <etagkv.h>

#define THREADS 4
#define INCREMENTS 250

struct worker {
    etagkv_store *store;
    char next[24];  /* the value the callback proposes */
    unsigned calls; /* of the callback: INCREMENTS plus the lost races */
    etagkv_status status;
};

/* Parse a stored counter; an absent key counts as 0. */
static uint64_t counter_value(const void *value, size_t len)
{
    char buf[24];

    if (len >= sizeof buf)
        len = sizeof buf - 1;
    memcpy(buf, value, len);
    buf[len] = '\0';
    return strtoull(buf, NULL, 10);
}

/* etagkv_update_fn: the current value plus one.  Called again with the
 * fresh value whenever another thread wrote first. */
static etagkv_status increment(void *ctx, const void *old_value, size_t old_len,
                               const etagkv_meta *old_meta,
                               const void **new_value, size_t *new_len)
{
    struct worker *w = ctx;
    uint64_t n = old_meta->exists ? counter_value(old_value, old_len) : 0;

    w->calls++;
    *new_len = (size_t)snprintf(w->next, sizeof w->next, "%" PRIu64, n + 1);
    *new_value = w->next;
    return ETAGKV_OK;
}

static void *run(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < INCREMENTS; i++) {
        /* etagkv_update() tries up to 16 times (max_attempts 0); each try
         * it loses is another thread's increment written, so trying again
         * after PRECONDITION_FAILED always ends. */
        do {
            w->status =
                etagkv_update(w->store, "counter", 7, increment, w, 0, NULL);
        } while (w->status == ETAGKV_PRECONDITION_FAILED);
        if (w->status != ETAGKV_OK && w->status != ETAGKV_CREATED)
            break;
    }
    return NULL;
}

/* The counter's value now. */
static etagkv_status read_counter(etagkv_store *s, uint64_t *out)
{
    void *value;
    size_t len;
    etagkv_status st = etagkv_get(s, "counter", 7, NULL, &value, &len, NULL);

    *out = 0;
    if (st == ETAGKV_NOT_FOUND)
        return ETAGKV_OK;
    if (st != ETAGKV_OK)
        return st;
    *out = counter_value(value, len);
    etagkv_free(value);
    return ETAGKV_OK;
}

int main(void)
{
    struct worker workers[THREADS];
    pthread_t threads[THREADS];
    etagkv_options opts;
    etagkv_store *s;
    etagkv_status st;
    uint64_t before, after;
    unsigned calls = 0;
    int started = 0, rc = 1;

    if (mkdir("counter-data", 0700) != 0 && errno != EEXIST) {
        perror("mkdir counter-data");
        return 1;
    }
    /* Acknowledge writes once in the page cache: this example is about
     * concurrency, not about surviving a power cut. */
    etagkv_options_init(&opts);
    opts.sync_mode = ETAGKV_NOSYNC;
    st = etagkv_store_open("counter-data", &opts, &s);
    if (st != ETAGKV_OK) {
        fprintf(stderr, "open: %s\n", etagkv_strerror(st));
        return 1;
    }
    st = read_counter(s, &before);
    if (st != ETAGKV_OK)
        goto done;

    for (; started < THREADS; started++) {
        struct worker *w = &workers[started];

        w->store = s;
        w->calls = 0;
        w->status = ETAGKV_OK;
        if (pthread_create(&threads[started], NULL, run, w) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            break;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
        calls += workers[i].calls;
        if (workers[i].status != ETAGKV_OK &&
            workers[i].status != ETAGKV_CREATED)
            st = workers[i].status;
    }
    if (started < THREADS || st != ETAGKV_OK)
        goto done;

    st = read_counter(s, &after);
    if (st != ETAGKV_OK)
        goto done;
    printf("counter: %" PRIu64 " -> %" PRIu64 ", %d threads x %d "
           "increments, %u races lost and retried\n",
           before, after, THREADS, INCREMENTS, calls - THREADS * INCREMENTS);
    rc = after == before + THREADS * INCREMENTS ? 0 : 1;
done:
    if (st != ETAGKV_OK)
        fprintf(stderr, "counter: %s\n", etagkv_strerror(st));
    etagkv_store_close(s);
    return rc;
}
