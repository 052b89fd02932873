/*
 * image.h -- rebuild, from the shim's journal (journal.h), what a store
 * directory holds after a power loss at a chosen moment.
 *
 * The model.  A moment is a record boundary of the journal: a power loss
 * after the first n records.  What survives of data.mdb:
 *  - strict: exactly what was flushed -- every write followed (within the
 *    n records) by an fsync/fdatasync of the file, every write through an
 *    O_DSYNC/O_SYNC descriptor, every write in a range later msync'ed; the
 *    file's size is that of the flushed writes; and the name data.mdb
 *    exists only if the directory was fsync'ed after the file was created
 *    (POSIX: an fsync of the file does not make its directory entry
 *    durable);
 *  - torn: the flushed state, plus any subset of the unflushed writes in
 *    4 KiB pieces aligned in the file (the unit a disk and the page cache
 *    write back), each piece kept or lost independently, applied in
 *    journal order; the size is that of what survived or, by a coin, the
 *    size the file had at the moment (its metadata reached the disk, the
 *    data did not: zeros); and an unsynced name survives by a coin.
 * Not modelled: a disk whose cache acknowledges flushes it did not do,
 * and tearing inside a 4 KiB piece.  Nothing but data.mdb is rebuilt:
 * lock.mdb holds no data (LMDB rebuilds it).
 */
#ifndef ETAGKV_POWER_IMAGE_H
#define ETAGKV_POWER_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "journal.h"

struct journal {
    unsigned char *buf; /* the whole journal file */
    size_t len;
    const struct pj_rec **rec; /* headers of the complete records */
    uint64_t *end;             /* end[i]: offset just after record i */
    size_t n;
};

/* Read and index the journal at path (missing: empty).  0, or -1 with a
 * message in err. */
int journal_load(struct journal *j, const char *path, char *err, size_t cap);
void journal_free(struct journal *j);

/* Offset of the moment "after n records". */
uint64_t journal_pos(const struct journal *j, size_t n);

/* Index of the first record of `type` among the first n, or -1. */
long journal_find(const struct journal *j, size_t n, enum pj_type type);

/* Write into directory dir (existing, empty) the data.mdb that a power
 * loss after the first n records leaves: strict when rng is NULL, else
 * torn with coins from *rng.  0, or -1 with a message in err (an
 * unmodelled record, an I/O error). */
int image_write(const struct journal *j, size_t n, uint64_t *rng,
                const char *dir, char *err, size_t cap);

#endif
