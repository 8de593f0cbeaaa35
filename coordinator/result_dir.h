/* A result directory that appears whole or not at all (`sotu merge`).
 *
 * The directory is built under a hidden temporary name beside its final
 * name, ".<name>.tmp.<pid>", and renamed to the final name at the end. A
 * crash, a signal or a full disk therefore leaves no directory under the
 * final name that looks complete: at most a ".tmp" one, which nothing
 * reads (after a failure that sotu sees, it is removed).
 *
 * Never overwrites: an explicit name (--out DIR) must not exist or be an
 * empty directory; a fresh name (RUN/merges/<name>) becomes <name>-2,
 * <name>-3, ... when taken, also when it is taken while the result is built.
 */
#ifndef SOTU_COORDINATOR_RESULT_DIR_H
#define SOTU_COORDINATOR_RESULT_DIR_H

#include <stdbool.h>

#include "common/config.h"
#include "common/status.h"

typedef struct {
    char final[SOTU_PATH_MAX];  /* where the result will be */
    char tmp[SOTU_PATH_MAX];    /* where it is built; "" before begin */
    char base[SOTU_PATH_MAX];   /* fresh names: parent/name without the -n */
    bool fresh;                 /* final may move on to base-2, base-3, ... */
} sotu_result_dir;

/* An explicit result directory: SOTU_ERR_USAGE naming dir when it exists
 * and is not an empty directory (a file, or a directory with entries). */
sotu_status sotu_result_dir_explicit(sotu_result_dir *rd, const char *dir);

/* A fresh one: parent/name, or the first of parent/name-2, -3, ... that
 * does not exist. name must not contain '/'. */
sotu_status sotu_result_dir_fresh(sotu_result_dir *rd, const char *parent, const char *name);

/* Creates the parent directory (with its parents) and the temporary
 * directory rd->tmp, where the caller writes the result. SOTU_ERR_IO
 * naming the path on failure. */
sotu_status sotu_result_dir_begin(sotu_result_dir *rd);

/* fsyncs every file and directory under rd->tmp, renames it to rd->final
 * (a fresh name moves on to the next free number when it was taken
 * meanwhile) and fsyncs the parent. On failure the temporary directory is
 * removed and the error names rd->final: SOTU_ERR_IO, or SOTU_ERR_USAGE
 * when an explicit rd->final appeared with entries meanwhile. */
sotu_status sotu_result_dir_commit(sotu_result_dir *rd);

/* Removes rd->tmp and everything in it (after a failure); no-op before
 * begin or after commit. */
void sotu_result_dir_abort(sotu_result_dir *rd);

#endif
