/* File-system helpers every writer uses: finished work on disk is never
 * replaced by a half-written file.
 *
 * Atomic replace: write to "<path>.tmp.<pid>", fsync it, rename over path,
 * fsync the directory. A crash leaves either the old file or the new one.
 */
#ifndef SOTU_IO_FSUTIL_H
#define SOTU_IO_FSUTIL_H

#include <stddef.h>

#include "common/status.h"

/* The temporary name a writer should create for final path (caller buffer). */
void sotu_tmp_path(char *dst, size_t cap, const char *path);

/* fsyncs tmp, renames it to path and fsyncs path's directory. On failure
 * removes tmp and reports SOTU_ERR_IO naming path. */
sotu_status sotu_atomic_commit(const char *tmp, const char *path);

/* Writes n bytes to path atomically (tmp + fsync + rename). */
sotu_status sotu_write_file_atomic(const char *path, const void *data, size_t n);

/* Reads a whole file into a malloc'ed buffer (NUL-terminated, not counted in
 * *n). Fails with SOTU_ERR_IO naming the path; refuses files over max_bytes
 * with SOTU_ERR_DATA. */
sotu_status sotu_read_file(const char *path, size_t max_bytes, char **data, size_t *n);

/* mkdir -p; SOTU_ERR_IO naming the part that failed. */
sotu_status sotu_mkdirs(const char *path);

/* dst = dir/name, or name if it is absolute or dir is empty. */
void sotu_path_join(char *dst, size_t cap, const char *dir, const char *name);

/* The directory part of path ("." if none), into dst. */
void sotu_path_dirname(char *dst, size_t cap, const char *path);

int sotu_file_exists(const char *path);

#endif
