/*
 * benchutil.h -- timing, temp dirs and the common report format of the
 * benchmarks: a table row and a JSON line per figure, always with the
 * baseline measured in the same run and the ratio between the two.
 */
#ifndef ETAGKV_BENCHUTIL_H
#define ETAGKV_BENCHUTIL_H

#include <stdio.h>
#include <stdlib.h>

/* Benchmarks abort on any failed call: a figure from a broken run is worse
 * than none. */
#define BU_CHECK(cond)                                                         \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

double bu_now(void); /* monotonic seconds */
/* Sleep, in 10 ms naps, until `seconds` have passed since bu_now() gave
 * `t0`: the measuring threads keep both cores. */
void bu_sleep_until(double t0, double seconds);
char *bu_mkdtemp(void);    /* fresh dir under $TMPDIR or /tmp */
void bu_rmdir(char *path); /* remove tree, free path */
void bu_header(void);      /* table header */
void bu_report(const char *scenario, const char *ours, double ours_rate,
               const char *baseline, double base_rate);

#endif
