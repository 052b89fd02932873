/*
 * fuzz.h -- what the libFuzzer targets share.
 *
 * A broken invariant is reported on stderr and ends the process with
 * abort(), which libFuzzer treats as a crash: it saves the input as an
 * artifact and tools/fuzz.sh fails.
 */
#ifndef ETAGKV_FUZZ_H
#define ETAGKV_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* libFuzzer's entry points. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__,         \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* One line of the input: [p, p + len), without its '\n'. */
typedef struct fuzz_line {
    const char *p;
    size_t len;
} fuzz_line;

/* Split data into at most max lines at '\n' (the last line need not end
 * with one); returns how many. */
static inline size_t fuzz_split_lines(const uint8_t *data, size_t size,
                                      fuzz_line *lines, size_t max)
{
    size_t n = 0, start = 0;

    for (size_t i = 0; i <= size && n < max; i++) {
        if (i == size || data[i] == '\n') {
            if (i == size && start == size && n > 0)
                break; /* a final '\n' ends the last line */
            lines[n].p = (const char *)data + start;
            lines[n].len = i - start;
            n++;
            start = i + 1;
        }
    }
    return n;
}

#endif
