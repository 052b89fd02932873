/*
 * bench_idem.c -- what an Idempotency-Key costs: one thread, nosync,
 * conditional put (If-Match on the current ETag) with a fresh key per
 * write vs the same put without a key, in the same run; and the p99
 * latency of keyed puts while keys expire and are purged (retention 1 s)
 * vs the same run with a retention that never expires.
 *
 * Usage: bench_idem [SECONDS]  (per measurement, default 2)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "etagkv.h"

#define NKEYS 1000
#define MAX_SAMPLES 4000000

static double samples[MAX_SAMPLES];

struct run {
    double rate;
    double p99_us;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Conditional puts for `seconds`, with or without a fresh idempotency key
 * each; returns rate and p99. */
static struct run measure(etagkv_store *s, char etags[][ETAGKV_ETAG_SIZE],
                          int keyed, double seconds, unsigned long *serial)
{
    char value[100], key[16], idem[32];
    long n = 0;
    double t0 = bu_now(), t;
    struct run r;

    memset(value, 'v', sizeof(value));
    do {
        int k = (int)(n % NKEYS);
        etagkv_cond *c;
        etagkv_result res;
        etagkv_request rq;
        double a = bu_now();

        snprintf(key, sizeof(key), "key-%05d", k);
        snprintf(idem, sizeof(idem), "req-%lu", (*serial)++);
        value[0]++;
        BU_CHECK(etagkv_cond_parse(etags[k], NULL, NULL, NULL, &c) ==
                 ETAGKV_OK);
        rq = (etagkv_request){.method = ETAGKV_METHOD_PUT,
                              .key = key,
                              .key_len = strlen(key),
                              .value = value,
                              .value_len = sizeof(value),
                              .cond = c,
                              .idempotency_key = keyed ? idem : NULL,
                              .idempotency_key_len = keyed ? strlen(idem) : 0};
        BU_CHECK(etagkv_write(s, &rq, &res) == ETAGKV_OK);
        etagkv_cond_free(c);
        memcpy(etags[k], res.meta.etag, ETAGKV_ETAG_SIZE);
        t = bu_now();
        if (n < MAX_SAMPLES)
            samples[n] = t - a;
        n++;
    } while (t - t0 < seconds);
    r.rate = (double)n / (t - t0);
    n = n < MAX_SAMPLES ? n : MAX_SAMPLES;
    qsort(samples, (size_t)n, sizeof(double), cmp_double);
    r.p99_us = samples[(n * 99) / 100] * 1e6;
    return r;
}

static etagkv_store *open_store(const char *dir, uint64_t retention_s,
                                char etags[][ETAGKV_ETAG_SIZE])
{
    etagkv_options o;
    etagkv_store *s;
    char key[16], value[100];

    etagkv_options_init(&o);
    o.sync_mode = ETAGKV_NOSYNC;
    o.map_size_bytes = (uint64_t)1 << 30;
    o.idempotency_retention_s = retention_s;
    BU_CHECK(etagkv_store_open(dir, &o, &s) == ETAGKV_OK);
    memset(value, 'v', sizeof(value));
    for (int k = 0; k < NKEYS; k++) {
        etagkv_meta m;

        snprintf(key, sizeof(key), "key-%05d", k);
        BU_CHECK(etagkv_put(s, key, strlen(key), value, sizeof(value), NULL,
                            NULL, &m) == ETAGKV_CREATED);
        memcpy(etags[k], m.etag, ETAGKV_ETAG_SIZE);
    }
    return s;
}

int main(int argc, char **argv)
{
    static char etags[NKEYS][ETAGKV_ETAG_SIZE];
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    unsigned long serial = 0;
    char *dir1 = bu_mkdtemp(), *dir2 = bu_mkdtemp();
    etagkv_store *s;
    struct run plain, keyed, keep, purge;

    if (seconds <= 0)
        seconds = 2.0;
    bu_header();

    s = open_store(dir1, 86400, etags);
    plain = measure(s, etags, 0, seconds / 2, &serial);
    keyed = measure(s, etags, 1, seconds / 2, &serial);
    plain.rate = (plain.rate + measure(s, etags, 0, seconds / 2, &serial).rate) / 2;
    keyed.rate = (keyed.rate + measure(s, etags, 1, seconds / 2, &serial).rate) / 2;
    bu_report("idempotency/100B/nosync", "conditional put + Idempotency-Key",
              keyed.rate, "same put without a key", plain.rate);
    keep = measure(s, etags, 1, seconds, &serial);
    etagkv_store_close(s);

    /* Retention 1 s: keys expire during the run and every commit purges
     * a few. */
    s = open_store(dir2, 1, etags);
    (void)measure(s, etags, 1, 1.5, &serial); /* fill, then let expire */
    purge = measure(s, etags, 1, seconds, &serial);
    etagkv_store_close(s);
    printf("%-22s %-34s %9.1f us   %-32s %9.1f us  %5.2fx\n",
           "idempotency/purge", "p99, keys expiring and purged", purge.p99_us,
           "p99, no key expires", keep.p99_us, purge.p99_us / keep.p99_us);
    fprintf(stderr,
            "{\"scenario\":\"idempotency/purge\",\"p99_us_purging\":%.1f,"
            "\"p99_us_no_expiry\":%.1f,\"ratio\":%.3f}\n",
            purge.p99_us, keep.p99_us, purge.p99_us / keep.p99_us);
    bu_rmdir(dir1);
    bu_rmdir(dir2);
    return 0;
}
