/* Status codes, error messages and exit codes shared by every module.
 *
 * Expected failures (bad file, bad config, I/O) return a sotu_status. The
 * function that detects the failure records a message naming the file, the
 * field and what was expected with sotu_error(); callers pass the status up
 * and the command line prints sotu_last_error() once. Bugs are asserts.
 *
 *   if (magic != IDX_MAGIC)
 *       return sotu_error(SOTU_ERR_DATA, "%s: magic 0x%08x, expected 0x%08x",
 *                         path, magic, IDX_MAGIC);
 */
#ifndef SOTU_COMMON_STATUS_H
#define SOTU_COMMON_STATUS_H

typedef enum {
    SOTU_OK = 0,
    SOTU_ERR_USAGE,    /* bad command line */
    SOTU_ERR_CONFIG,   /* bad configuration file or override */
    SOTU_ERR_DATA,     /* malformed input data: IDX, HDF5 task, delta, safetensors */
    SOTU_ERR_IO,       /* open/read/write/fsync/rename failed */
    SOTU_ERR_NUMERIC,  /* NaN, Inf or divergence */
    SOTU_ERR_NOMEM,    /* allocation failed or would exceed a limit */
    SOTU_ERR_MPI,      /* an MPI call failed or the world is misconfigured */
    SOTU_ERR_INTERNAL, /* anything else */
    SOTU_ERR_COUNT_
} sotu_status;

/* Exit codes of the command line (DESIGN.md). */
enum {
    SOTU_EXIT_OK = 0,
    SOTU_EXIT_OTHER = 1,
    SOTU_EXIT_USAGE = 2,
    SOTU_EXIT_DATA = 3,
    SOTU_EXIT_IO = 4,
    SOTU_EXIT_NUMERIC = 5,
};

/* A short fixed description of the status kind ("input data error"). */
const char *sotu_strerror(sotu_status s);

/* The process exit code for a status: usage/config 2, data 3, I/O 4,
 * numeric 5, anything else 1. */
int sotu_exit_code(sotu_status s);

/* Records a printf-formatted message for this thread and returns s, so a
 * failing function can `return sotu_error(...)`. A message already recorded
 * is replaced. */
sotu_status sotu_error(sotu_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to the recorded message (context added by a caller,
 * e.g. the task name) and returns s. */
sotu_status sotu_error_context(sotu_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The message recorded last on this thread, or the bare strerror of the
 * status if none ("" before any error). */
const char *sotu_last_error(void);
void sotu_clear_error(void);

#endif
