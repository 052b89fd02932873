/*
 * testutil.h -- small helpers shared by the Check suites.
 */
#ifndef ETAGKV_TESTUTIL_H
#define ETAGKV_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "etagkv.h"

/* Make a fresh empty directory under $ETAGKV_TEST_TMP (or /tmp) and return
 * its path (static storage per call site is not assumed: the caller frees
 * it with tu_rmdir_free()).  Aborts the test on failure. */
char *tu_mkdtemp(void);

/* Remove the directory tree at path and free path.  NULL is accepted. */
void tu_rmdir_free(char *path);

/* Where the suites' stores live: dir itself, or, when the environment
 * variable ETAGKV_TEST_STORE names another backend (tests/etcd/with_etcd.sh
 * sets etcd://HOST:PORT), a location there unique to dir, written into
 * buf.  The same suites thus run on LMDB and on etcd unchanged. */
const char *tu_store_where(const char *dir, char *buf, size_t cap);

/* 1 when the suites run on etcd (ETAGKV_TEST_STORE=etcd://...). */
int tu_on_etcd(void);

/* Open a store on dir (tu_store_where()) with opts (NULL: defaults); fails
 * the test on error. */
etagkv_store *tu_open(const char *dir, const etagkv_options *opts);

/* Open a store on dir with default options but sync mode `mode`. */
etagkv_store *tu_open_mode(const char *dir, etagkv_sync_mode mode);

/* Seconds on the monotonic clock, for deadlines and elapsed times. */
double tu_now_s(void);

/* SplitMix64: a small deterministic generator, so that a failure of a
 * randomised test is reproducible from its printed seed.  Advances *state. */
uint64_t tu_rng_next(uint64_t *state);

/* Run a suite and return the process exit status (0 when all passed). */
int tu_run(Suite *s);

#endif
