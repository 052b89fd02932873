/*
 * journal.h -- the record the power-loss shim (shim.c) appends to its
 * journal for every write and flush that reaches a store's data.mdb or
 * directory, and that the test (test_power.c) replays into the images a
 * power loss could leave.
 *
 * A record is this header, then `len` bytes of data (what a write wrote,
 * or for PJ_UNMODELLED the name of the call).  Records are appended with
 * one writev() each, after the call they describe returned, in the order
 * the calls completed (the shim serialises them).  A process killed while
 * appending leaves a short last record, which readers ignore.  Native byte
 * order: the journal is read on the machine that wrote it.
 */
#ifndef ETAGKV_POWER_JOURNAL_H
#define ETAGKV_POWER_JOURNAL_H

#include <stdint.h>

#define PJ_MAGIC 0x504a5231u /* "PJR1" */

enum pj_type {
    /* data bytes written to data.mdb at `off`; PJ_DURABLE in flags when
     * through a descriptor opened O_DSYNC or O_SYNC, so durable by
     * itself once the call returned. */
    PJ_WRITE = 1,
    /* fsync() or fdatasync() of data.mdb returned 0: every earlier write
     * to the file, and its size, is durable. */
    PJ_SYNC = 2,
    /* data.mdb was created (its name entered the directory). */
    PJ_CREATE = 3,
    /* fsync() or fdatasync() of the store's directory returned 0: the
     * names created in it before are durable. */
    PJ_DIRSYNC = 4,
    /* ftruncate() of data.mdb to `off` bytes. */
    PJ_TRUNCATE = 5,
    /* msync(MS_SYNC) of a shared mapping of data.mdb: the file's bytes
     * in [off, off + arg) are durable. */
    PJ_RANGESYNC = 6,
    /* a call the model cannot replay (fallocate, a writable shared
     * mapping of data.mdb, a descriptor the shim cannot track): the test
     * fails rather than trust images that may be wrong. */
    PJ_UNMODELLED = 7,
};

#define PJ_DURABLE 1u

struct pj_rec {
    uint32_t magic;
    uint32_t type;  /* enum pj_type */
    uint32_t flags; /* PJ_DURABLE */
    uint32_t len;   /* bytes of data after the header */
    uint64_t off;
    uint64_t arg;
};

/* Environment of a process run under the shim. */
#define PJ_ENV_JOURNAL "POWER_JOURNAL" /* the journal file to append to */
#define PJ_ENV_DIR "POWER_DIR"         /* the store's directory */
/* "noflush": fsync/fdatasync of data.mdb and its directory do nothing and
 * O_DSYNC writes are journaled as not durable -- a disk that acknowledges
 * flushes it never does (a negative control).  Anything else: faithful. */
#define PJ_ENV_MODE "POWER_SHIM_MODE"

#endif
