/*
 * tmpdir.h -- fresh temporary directories, shared by the test suites
 * (tests/common/testutil.c) and the benchmarks (bench/benchutil.c).
 */
#ifndef ETAGKV_TMPDIR_H
#define ETAGKV_TMPDIR_H

/* Make a fresh empty directory "<base>/<prefix>-XXXXXX", where base is the
 * value of the environment variable env (or /tmp when env is NULL, unset or
 * empty); base itself is created (0700) when missing.  Returns the path,
 * malloc'd, or NULL with errno set (nothing is left behind). */
char *td_make(const char *env, const char *prefix);

/* Remove the tree at path without following symbolic links, then free
 * path.  Best effort: what cannot be removed stays.  NULL is accepted. */
void td_remove(char *path);

#endif
