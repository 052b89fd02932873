/*
 * benchutil.c -- see benchutil.h.
 */
#define _XOPEN_SOURCE 700
#include "benchutil.h"
#include "tmpdir.h"

#include <time.h>

double bu_now(void)
{
    struct timespec ts;

    BU_CHECK(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bu_sleep_until(double t0, double seconds)
{
    while (bu_now() - t0 < seconds) {
        struct timespec ts = {0, 10 * 1000 * 1000};

        (void)nanosleep(&ts, NULL);
    }
}

char *bu_mkdtemp(void)
{
    char *path = td_make("TMPDIR", "etagkv-bench");

    BU_CHECK(path != NULL);
    return path;
}

void bu_rmdir(char *path)
{
    td_remove(path);
}

void bu_header(void)
{
    printf("%-22s %-34s %12s   %-32s %12s  %6s\n", "scenario", "etagkv",
           "ops/s", "baseline (same run)", "ops/s", "ratio");
}

void bu_report(const char *scenario, const char *ours, double ours_rate,
               const char *baseline, double base_rate)
{
    double ratio = ours_rate / base_rate;

    printf("%-22s %-34s %12.0f   %-32s %12.0f  %5.2fx\n", scenario, ours,
           ours_rate, baseline, base_rate, ratio);
    fprintf(stderr,
            "{\"scenario\":\"%s\",\"etagkv\":\"%s\",\"etagkv_ops_per_s\":%.0f,"
            "\"baseline\":\"%s\",\"baseline_ops_per_s\":%.0f,"
            "\"ratio\":%.3f}\n",
            scenario, ours, ours_rate, baseline, base_rate, ratio);
    fflush(stdout);
}
