/* The thin MPI layer: the only code that calls MPI directly besides the
 * commands that drive a run. Everything that partitions work takes
 * (rank, nranks) as plain ints (sotu_share) so tests can simulate many ranks
 * in one process.
 *
 * Errors: sotu_mpi_init switches MPI_COMM_WORLD to MPI_ERRORS_RETURN and
 * every MPI call goes through SOTU_MPI_CHECK, which logs the failing call
 * with MPI's error string, file and line, then MPI_Abort(MPI_COMM_WORLD, 1):
 * a failed collective must end the job, never leave other ranks hanging.
 *
 * Sizes: broadcasts go in pieces of at most 1<<30 elements, so buffers over
 * 2 GiB work; point-to-point messages of any size are sent as one message
 * (over INT_MAX bytes through a derived datatype of 1 GiB blocks) and
 * received by sotu_mpi_recv_any without a fixed maximum.
 */
#ifndef SOTU_COORDINATOR_MPI_UTIL_H
#define SOTU_COORDINATOR_MPI_UTIL_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define SOTU_MPI_CHUNK_MAX ((size_t)1 << 30)

/* Logs "MPI call failed: <what> at file:line: <MPI error string>" and aborts
 * the whole job with exit code 1. */
_Noreturn void sotu_mpi_fail(int rc, const char *what, const char *file, int line);

#define SOTU_MPI_CHECK(call)                                                  \
    do {                                                                      \
        int sotu_mpi_rc_ = (call);                                            \
        if (sotu_mpi_rc_ != MPI_SUCCESS)                                      \
            sotu_mpi_fail(sotu_mpi_rc_, #call, __FILE__, __LINE__);           \
    } while (0)

/* MPI_Init_thread (FUNNELED; OpenMP threads never call MPI), errors set to
 * return, the log rank set, then the Slurm guard below on the environment.
 * Safe to call when MPI is already initialised (it then only queries).
 * On a guard failure MPI has been finalised again and the status is
 * SOTU_ERR_CONFIG (exit code 2: the launch is misconfigured, as a bad option
 * would be); the caller prints sotu_last_error() and returns. */
sotu_status sotu_mpi_init(int *argc, char ***argv, int *rank, int *nranks);

/* MPI_Finalize if sotu_mpi_init initialised MPI and it is not finalised. */
void sotu_mpi_finalize(void);

/* The Slurm guard as a pure function of the world size and the environment
 * values (each may be NULL when unset):
 *   launcher_size  OMPI_COMM_WORLD_SIZE or PMI_SIZE, set by mpirun/mpiexec;
 *                  when set, mpiexec made the world on purpose (e.g.
 *                  mpiexec -n 2 inside a 4-task allocation) and Slurm's
 *                  count is not compared
 *   step_tasks     SLURM_STEP_NUM_TASKS (srun sets it for its step)
 *   ntasks         SLURM_NTASKS, else SLURM_NPROCS
 * When Slurm's count (step_tasks, else ntasks) is set and differs from
 * world_size, returns SOTU_ERR_CONFIG with a message saying the MPI world
 * has N ranks but Slurm started M tasks, most likely srun without
 * --mpi=pmix starting M independent copies. */
sotu_status sotu_mpi_launch_check(int world_size, const char *launcher_size,
                                  const char *step_tasks, const char *ntasks);

/* The same on getenv(). */
sotu_status sotu_mpi_launch_check_env(int world_size);

/* Broadcasts n floats / bytes from root in pieces of at most
 * SOTU_MPI_CHUNK_MAX elements (every rank passes the same n). */
void sotu_mpi_bcast_floats(float *buf, size_t n, int root);
void sotu_mpi_bcast_bytes(void *buf, size_t n, int root);

/* Test hook: the largest piece for broadcasts and the block size of large
 * messages, in elements; 0 restores SOTU_MPI_CHUNK_MAX. Every rank must set
 * the same value. */
void sotu_mpi_set_chunk_limit(size_t elements);

/* A receive buffer that grows as needed; zero-initialise, free with
 * sotu_mpi_buffer_free. */
typedef struct {
    void *data;
    size_t len; /* bytes of the last message */
    size_t cap;
} sotu_mpi_buffer;

void sotu_mpi_buffer_free(sotu_mpi_buffer *b); /* accepts NULL */

/* Sends n bytes to dest as one message on MPI_COMM_WORLD. */
void sotu_mpi_send_bytes(const void *data, size_t n, int dest, int tag);

/* Probes for a message matching source and tag (MPI_ANY_SOURCE and
 * MPI_ANY_TAG allowed), grows buf to its size and receives it. Returns the
 * actual source and tag (either pointer may be NULL). SOTU_ERR_NOMEM naming
 * the size if the buffer cannot grow; MPI errors abort. */
sotu_status sotu_mpi_recv_any(sotu_mpi_buffer *buf, int source, int tag, int *source_out,
                              int *tag_out);

/* Items [*begin, *end) of n_items for rank of nranks: contiguous, in rank
 * order, sizes differing by at most one (the first n % nranks ranks get one
 * more). Every item belongs to exactly one rank. */
void sotu_share(int64_t n_items, int rank, int nranks, int64_t *begin, int64_t *end);

/* The rank whose sotu_share holds item k of n_items. */
int sotu_share_owner(int64_t k, int64_t n_items, int nranks);

/* True on every rank iff *st is OK on every rank (an MPI_Allreduce; no MPI
 * call with nranks == 1). A failing rank logs "<what>: <its message>"; the
 * others get *st = SOTU_ERR_INTERNAL "<what> failed on another rank". */
bool sotu_mpi_all_ok(sotu_status *st, int nranks, const char *what);

#endif
