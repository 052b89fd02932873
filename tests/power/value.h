/*
 * value.h -- the keys and values of the power-loss writer (writer.c), and
 * how the test (test_power.c) recognises them: every value is unique and
 * names its write, "tTT sSSSSSSSS kKK | " followed by filler that is a pure
 * function of (t, seq, key), so a value read from an image traces back to
 * exactly one PUT and compares byte for byte.  One value in four spans
 * several pages (LMDB overflow pages), where a torn write would show.
 */
#ifndef ETAGKV_POWER_VALUE_H
#define ETAGKV_POWER_VALUE_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define POWER_KEYS 6
#define POWER_HDR 20
#define POWER_SMALL 300
#define POWER_LARGE 14000
#define POWER_VALUE_MAX (POWER_HDR + POWER_LARGE)

/* SplitMix64. */
static inline uint64_t power_rng(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));

    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static inline void power_key(int key, char *buf, size_t cap)
{
    snprintf(buf, cap, "key-%d", key);
}

static inline size_t power_len(uint64_t *rng)
{
    uint64_t r = power_rng(rng);

    return POWER_HDR +
           (size_t)((r >> 8) % (r % 4 == 0 ? POWER_LARGE : POWER_SMALL));
}

/* The len bytes (len >= POWER_HDR) of write (t, seq) to key, into buf;
 * the header is exactly POWER_HDR characters. */
static inline void power_value(char *buf, int t, uint32_t seq, int key,
                               size_t len)
{
    char hdr[POWER_HDR + 1];
    uint64_t st = ((uint64_t)t << 32) ^ seq ^ ((uint64_t)key << 48);

    snprintf(hdr, sizeof hdr, "t%02d s%08" PRIu32 " k%02d | ", t, seq, key);
    memcpy(buf, hdr, POWER_HDR);
    for (size_t i = POWER_HDR; i < len; i++)
        buf[i] = (char)('a' + power_rng(&st) % 26);
}

#endif
