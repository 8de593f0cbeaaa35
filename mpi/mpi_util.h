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
 *
 * Waiting: Open MPI's blocking calls busy-poll, so a rank waiting for
 * another (a worker for its next task, every rank for rank 0 in a
 * collective) would burn a core, on a node whose cores the working ranks
 * need. Every wait here is a nonblocking call tested with sleeps between
 * tests (sotu_mpi_wait: 50 us doubling to 10 ms); a broadcast first meets
 * the other ranks in such a barrier, then moves the data with the tuned
 * blocking collective.
 *
 * The run communicator: the helpers below work on sotu_mpi_comm(),
 * MPI_COMM_WORLD until sotu_mpi_use_ranks() narrows it to the ranks still
 * alive (coordinator/dispatch.h: a rank that stopped answering is left
 * out of the evaluation); sotu_mpi_end() then ends the job with MPI_Abort,
 * since MPI_Finalize would wait for the missing rank.
 */
#ifndef SOTU_MPI_MPI_UTIL_H
#define SOTU_MPI_MPI_UTIL_H

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

/* The communicator of the run's live ranks (MPI_COMM_WORLD until
 * sotu_mpi_use_ranks). */
MPI_Comm sotu_mpi_comm(void);

/* Narrows the run communicator to the world ranks world_ranks[0, n)
 * (increasing, starting with 0). Collective over those ranks only
 * (MPI_Comm_create_group): a rank outside may be stopped. All ranks of the
 * world: nothing changes. *rank and *nranks get this rank's place in the
 * new communicator. */
void sotu_mpi_use_ranks(const int *world_ranks, int n, int *rank, int *nranks);

/* True after sotu_mpi_use_ranks left some world rank out. */
bool sotu_mpi_ranks_left_out(void);

/* Ends MPI for a process whose command returns rc, and returns rc. With
 * every world rank in the run: MPI_Finalize. With ranks left out
 * (sotu_mpi_use_ranks) rank 0 decides for the run communicator: when
 * `released` (every left-out rank was told to stop and will finalize too,
 * coordinator/dispatch.h) all finalize; otherwise MPI_Finalize would wait
 * for them forever, so rank 0 flushes its output and ends the job with
 * MPI_Abort(MPI_COMM_WORLD, rc) (mpiexec then exits rc) while the other live
 * ranks wait to be ended by it. Every live rank calls it; `released` counts
 * on rank 0 only. */
int sotu_mpi_end(int rc, bool released);

/* MPI_Wait that sleeps between tests (see Waiting above). After 10
 * minutes, then every doubling, it logs that it still waits (a rank
 * stopped outside a task leaves the others here); sotu_mpi_wait_for with
 * warn false waits quietly (a worker parked until another's task ends). */
void sotu_mpi_wait(MPI_Request *req, MPI_Status *status);
void sotu_mpi_wait_for(MPI_Request *req, MPI_Status *status, bool warn);

/* A barrier of the run communicator that sleeps while it waits. */
void sotu_mpi_barrier(void);

/* True on every rank of the run communicator iff flag is true on any
 * (MPI_Iallreduce, sleeping while it waits). */
bool sotu_mpi_any(bool flag);

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

/* Broadcasts n floats / bytes from root over the run communicator in
 * pieces of at most SOTU_MPI_CHUNK_MAX elements (every rank passes the
 * same n), after a sleeping barrier. */
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

/* Sends n bytes to dest as one message on the run communicator, sleeping
 * while the receiver has not taken it. */
void sotu_mpi_send_bytes(const void *data, size_t n, int dest, int tag);
void sotu_mpi_send_bytes_on(MPI_Comm comm, const void *data, size_t n, int dest, int tag);

/* Probes for a message on the run communicator matching source and tag
 * (MPI_ANY_SOURCE and MPI_ANY_TAG allowed; sleeping while none is there),
 * grows buf to its size and receives it. Returns the
 * actual source and tag (either pointer may be NULL). SOTU_ERR_NOMEM naming
 * the size if the buffer cannot grow; MPI errors abort. */
sotu_status sotu_mpi_recv_any(sotu_mpi_buffer *buf, int source, int tag, int *source_out,
                              int *tag_out);
sotu_status sotu_mpi_recv_any_on(MPI_Comm comm, sotu_mpi_buffer *buf, int source, int tag,
                                 int *source_out, int *tag_out);

/* Items [*begin, *end) of n_items for rank of nranks: contiguous, in rank
 * order, sizes differing by at most one (the first n % nranks ranks get one
 * more). Every item belongs to exactly one rank. */
void sotu_share(int64_t n_items, int rank, int nranks, int64_t *begin, int64_t *end);

/* The rank whose sotu_share holds item k of n_items. */
int sotu_share_owner(int64_t k, int64_t n_items, int nranks);

/* The one "all ranks OK" vote of SoTU and CLR: true on every rank iff *st
 * is OK on every rank of the run communicator (a sleeping MPI_Iallreduce;
 * no MPI call with nranks == 1). A failing rank logs "<what>: <its
 * message>"; the others get *st = the largest failing status (so every rank
 * exits with the same code) with "<what> failed on another rank". Every rank
 * of the run communicator must call it at the same point: a rank that fails
 * before a collective votes here instead of leaving (a rank that returns
 * early leaves the others waiting in the collective for ever). */
bool sotu_mpi_all_ok(sotu_status *st, int nranks, const char *what);

#endif
