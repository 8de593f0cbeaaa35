/* File-system helpers every writer uses: finished work on disk is never
 * replaced by a half-written file.
 *
 * Atomic replace: write to "<path>.tmp.<pid>", fsync it, rename over path,
 * fsync the directory. A crash leaves either the old file or the new one;
 * a failed write (full disk, quota, file-size limit) leaves the old one and
 * no temporary file. HDF5 files go through io/h5util.h's sotu_h5_write_file,
 * which ends here.
 */
#ifndef SOTU_IO_FSUTIL_H
#define SOTU_IO_FSUTIL_H

#include <stddef.h>

#include "common/status.h"

/* A file being written atomically: created as "<path>.tmp.<pid>" beside
 * path, renamed over path by sotu_atomic_finish. Every failure is
 * SOTU_ERR_IO naming path and strerror(errno); the temporary file is then
 * removed and path is left as it was. */
typedef struct {
    int fd;              /* -1 when closed */
    char path[4096];
    char tmp[4160];
} sotu_atomic_file;

/* Creates the temporary file for path. */
sotu_status sotu_atomic_open(sotu_atomic_file *af, const char *path);

/* Appends n bytes (a loop over write(2): short writes and EINTR are
 * retried). On failure the temporary file is removed (af is closed). */
sotu_status sotu_atomic_write(sotu_atomic_file *af, const void *data, size_t n);

/* fsync, close, rename over path, fsync of path's directory. On failure the
 * temporary file is removed. af is closed either way. */
sotu_status sotu_atomic_finish(sotu_atomic_file *af);

/* Closes af and removes its temporary file (accepts a closed af). */
void sotu_atomic_abort(sotu_atomic_file *af);

/* Writes n bytes to path atomically (the three steps above). */
sotu_status sotu_write_file_atomic(const char *path, const void *data, size_t n);

/* errno of this thread's last failed atomic write (0 after a success), and
 * whether it means the output is out of space: ENOSPC, EDQUOT (quota) or
 * EFBIG (file-size limit), after which every further write fails too. */
int sotu_io_last_errno(void);
int sotu_io_out_of_space(void);

/* The check every command that writes a user-named file makes before any
 * work: SOTU_ERR_USAGE when out is the same file as one of the n inputs
 * (same st_dev and st_ino, so symlinks and hard links count: "OUT is also
 * an input (IN)"), or when out exists and force is false ("refusing to
 * overwrite OUT (exists); pass --force"). A missing input is skipped (its
 * reader reports it). */
sotu_status sotu_output_check(const char *out, const char *const *inputs, int n, int force);

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
