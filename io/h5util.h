/* Small HDF5 helpers shared by the io readers and writers (internal to io/
 * and the commands that inspect files; includes hdf5.h).
 *
 * Strings are written as variable-length UTF-8 (h5py reads them as str) and
 * read back whether fixed or variable length. Every helper reports its own
 * sotu_error naming the file (path) and the object.
 */
#ifndef SOTU_IO_H5UTIL_H
#define SOTU_IO_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "io/provenance.h"

/* Turns off HDF5's own error-stack printing (once per process); sotu
 * reports its own messages. */
void sotu_h5_quiet(void);

/* Opens an existing HDF5 file read-only: SOTU_ERR_IO if it does not exist or
 * cannot be read, SOTU_ERR_DATA if it is not an HDF5 file. */
sotu_status sotu_h5_open_read(const char *path, hid_t *file);

/* 1 if loc has an attribute called name, 0 if not. */
int sotu_h5_has_attr(hid_t loc, const char *name);

sotu_status sotu_h5_write_str_attr(hid_t loc, const char *name, const char *value,
                                   const char *path);
sotu_status sotu_h5_write_int_attr(hid_t loc, const char *name, int64_t value,
                                   const char *path);
/* A scalar float64 attribute. */
sotu_status sotu_h5_write_f64_attr(hid_t loc, const char *name, double value, const char *path);
/* A row-major float64 dataset of rank ndim (<= 8) under loc. */
sotu_status sotu_h5_write_f64_dataset(hid_t loc, const char *name, int ndim, const int64_t *dims,
                                      const double *data, const char *path);
/* A 1-D array of n variable-length strings. */
sotu_status sotu_h5_write_str_array_attr(hid_t loc, const char *name, const char *const *values,
                                         int n, const char *path);

/* The provenance attributes of an output file (checkpoints): theta0_xxh64
 * and manifest_xxh64 (16 lowercase hex digits, io/provenance.h),
 * model_pretrained, sotu_commit (sotu_version is written by each file's
 * writer). */
sotu_status sotu_h5_write_provenance(hid_t loc, const sotu_provenance *p,
                                     uint64_t manifest_xxh64, const char *path);

/* Those attributes as read back, "" where absent (files of an older sotu). */
void sotu_h5_read_provenance(hid_t loc, sotu_provenance_attrs *out, const char *path);

/* Reads a scalar string attribute into dst (truncated to cap). Missing
 * attribute or a non-string type is SOTU_ERR_DATA naming path and name. */
sotu_status sotu_h5_read_str_attr(hid_t loc, const char *name, char *dst, size_t cap,
                                  const char *path);
/* A string attribute of any length (fixed or variable) into a malloc'ed
 * string *out (NULL on failure); SOTU_ERR_DATA if missing or not a string. */
sotu_status sotu_h5_read_str_attr_alloc(hid_t loc, const char *name, char **out, const char *path);
/* Reads a scalar (or one-element) integer attribute. */
sotu_status sotu_h5_read_int_attr(hid_t loc, const char *name, int64_t *value,
                                  const char *path);
/* Reads a scalar (or one-element) floating-point attribute. */
sotu_status sotu_h5_read_f64_attr(hid_t loc, const char *name, double *value, const char *path);
/* A scalar float64 attribute, NaN when absent or unreadable (optional figures). */
double sotu_h5_f64_attr_or_nan(hid_t loc, const char *name, const char *path);
/* Reads a 1-D string array attribute of exactly n elements, each into
 * dst + i * stride (truncated to stride bytes). */
sotu_status sotu_h5_read_str_array_attr(hid_t loc, const char *name, int n, char *dst,
                                        size_t stride, const char *path);

/* Dataset/group creation property lists without time stamps, so that the
 * same content gives the same bytes. Caller closes them. */
hid_t sotu_h5_dcpl(void);
hid_t sotu_h5_gcpl(void);

/* sotu_h5_dcpl plus a per-chunk Fletcher32 checksum, for a dataset of rank
 * ndim (<= 8), dims and elements of elem bytes: one chunk of the whole
 * dataset (split along the first dimension past 1 GiB), the checksum
 * filter, which libhdf5 (and h5py, and PyTorch through h5py) verifies on
 * every read. Scalar and empty datasets get no checksum (they cannot be
 * chunked). Every dataset of weights, checkpoints and predictions is
 * created with it. */
hid_t sotu_h5_dcpl_checked(int ndim, const hsize_t *dims, size_t elem);

/* HDF5's own description of the last failure on this thread (the innermost
 * message of its error stack, with the errno text of a failed system call
 * when there is one) into buf, "HDF5 error" when the stack is empty. */
const char *sotu_h5_reason(char *buf, size_t cap);

/* The one writer of HDF5 files. fill(file, ctx, path) writes the content
 * into a file that lives in memory (HDF5's core driver with sotu's image
 * callbacks); the finished image goes to disk through io/fsutil.h's atomic
 * file: "<path>.tmp.<pid>" beside path, write(2), fsync, rename over path,
 * fsync of the directory.
 *
 * Why in memory: libhdf5 1.10 cannot survive a failed write on disk. When
 * a write fails (full disk, quota, RLIMIT_FSIZE), H5Fclose fails too,
 * leaves a freed file in its ID table and the process segfaults at exit
 * (H5F__close_cb <- H5I_clear_type <- H5F_term_package; HDFFV-11052, fixed
 * in 1.14). Here libhdf5 never touches the disk, so a failed write is
 * sotu's own write(2) with its errno, and the file closes cleanly.
 *
 * The price: the file's image is held in memory while it is written (the
 * size of the file; no copy is made). The file is closed with
 * H5F_CLOSE_STRONG, so objects fill left open on a failure path are closed
 * with it. Returns fill's status (its message), or SOTU_ERR_IO naming path
 * with strerror or HDF5's error text; on any failure path is untouched and
 * no temporary file is left. */
typedef sotu_status (*sotu_h5_fill_fn)(hid_t file, const void *ctx, const char *path);
sotu_status sotu_h5_write_file(const char *path, sotu_h5_fill_fn fill, const void *ctx);

/* Reads every dataset of an open file in full, so libhdf5 verifies each
 * chunk's Fletcher32 checksum (sotu inspect). Counts the datasets and those
 * that carry a checksum. SOTU_ERR_DATA naming path, the dataset and HDF5's
 * reason ("data error detected by Fletcher32 checksum") on the first that
 * cannot be read. */
sotu_status sotu_h5_verify_datasets(hid_t file, const char *path, int *n_datasets,
                                    int *n_checked);

/* The root "format" string attribute of an HDF5 file into dst; NULL if path
 * is not a readable HDF5 file or has no such string attribute (a probe: the
 * caller decides what that means). */
const char *sotu_h5_file_format(const char *path, char *dst, size_t cap);

/* Refuses a root "format_version" attribute outside 1..newest (a file
 * written by a newer sotu, or nonsense) with SOTU_ERR_DATA naming path, the
 * file's version and the newest this sotu reads (kind: "task file", ...).
 * A file without the attribute (made by another tool) passes. */
sotu_status sotu_h5_check_format_version(hid_t file, int newest, const char *kind,
                                         const char *path);

#endif
