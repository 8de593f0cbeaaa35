/* The job hand-out of `sotu train`, shared by every method (SoTU deltas,
 * CLR modules and baselines): rank 0 serves a queue of jobs, ranks
 * 1..N-1 ask for one, run it and send back a report and a message.
 *
 * Messages (MPI_COMM_WORLD, raw bytes; ranks are assumed to share one ABI):
 *   TAG_REQUEST  worker -> 0   empty: "give me a job"
 *   TAG_ASSIGN   0 -> worker   int32 job index, or -1: no more work
 *   TAG_RESULT   worker -> 0   sotu_task_report (its task field holds the job
 *                              index), then the method's message bytes (none
 *                              when report.status != OK), then
 *                              report.scalars_bytes of per-step scalars
 *                              (JSONL); also a request
 *   TAG_END      0 -> worker   after -1: int32 {kind, exit status, n, ranks[n]}:
 *                              kind 0: the run goes on with world ranks[n]
 *                              (sotu_mpi_use_ranks); kind 1: this rank was
 *                              left out (below) and ends with the status
 * A worker waits for its answer without spinning (mpi_util.h); rank 0
 * polls with sleeps (0.1 ms doubling to 10 ms while nothing happens).
 *
 * A request with no job to give while jobs still run elsewhere is parked:
 * a running job may yet be late and need another rank.
 *
 * Late ranks (mpi.task_timeout, seconds; 0 = never; auto = 10 x the median
 * time of the jobs finished so far, at least 60 s, none before the first
 * finishes): a job running longer is logged as late with its rank, and
 * offered again (first in line) to the next free worker, or run on rank 0
 * when rank 0 trains or no worker is left to take it. Its first result
 * wins, whoever sends it: a result for a job already done is compared with
 * the kept one (crc32 and length of the message) and dropped, identical or
 * not, so nothing is merged twice and no stored delta is replaced; a good
 * late result replaces a failure. A late rank that answers again takes
 * jobs as before.
 *
 * The end: when no job is left, every worker that asked is told -1 and
 * then TAG_END. A rank still late at that point (its job done by another)
 * is left out: the live ranks form the run communicator
 * (sotu_mpi_use_ranks) and evaluate without it. At the very end
 * sotu_dispatch_release tells a left-out rank that has answered since to
 * stop, and sotu_mpi_end finalizes MPI when every left-out rank was so
 * released, else ends the job with MPI_Abort and the run's exit status.
 *
 * Stop signals (coordinator/signals.h): the coordinator answers requests
 * with -1 and waits for running jobs up to the grace period (not at all
 * once mpiexec's own kill sequence has begun); if they do not finish,
 * `abandoned` is set and the caller writes what is done. A halt
 * (sotu_dispatch_halt, a full output disk) also answers -1, and waits for
 * the running jobs without a deadline.
 *
 * What a job is, how it runs and how its result is recorded belong to the
 * method (sotu_dispatch_ops); this file only moves jobs and bytes.
 */
#ifndef SOTU_COORDINATOR_DISPATCH_H
#define SOTU_COORDINATOR_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zstd.h>

#include "common/log.h"
#include "common/status.h"
#include "coordinator/run.h"
#include "coordinator/schedule.h"
#include "worker/task.h"

/* The floor and factor of mpi.task_timeout: auto. */
#define SOTU_TASK_TIMEOUT_FLOOR 60.0
#define SOTU_TASK_TIMEOUT_FACTOR 10.0

typedef struct {
    void *ctx;
    /* Runs job here (any rank): fills rep (rep->task = job, rep->rank) and,
     * when rep->status is OK, res's message. */
    void (*run)(void *ctx, int job, int rank, ZSTD_CCtx *cctx, sotu_task_report *rep,
                sotu_task_result *res);
    /* Rank 0: records job's result (msg[0, n); empty when rep->status is
     * not OK). True when the job is done, false when it failed. */
    bool (*record)(void *ctx, int job, const sotu_task_report *rep, const void *msg, size_t n);
    /* Rank 0, may be NULL: a done job's per-step scalars (JSONL text
     * text[0, n), sent after the message; report.scalars_bytes), called
     * after record accepted the job. */
    void (*scalars)(void *ctx, int job, const char *text, size_t n);
    /* Rank 0: the job's name for the log ("t03", "lr=0.001/t03"). */
    void (*name)(void *ctx, int job, char *dst, size_t cap);
    /* Rank 0, may be NULL: a stop signal arrived with `running` jobs out. */
    void (*stopping)(void *ctx, int sig, int running, int done);
    /* Rank 0, may be NULL: an event about job for the run's metrics
     * ("task_late", "task_duplicate", "rank_lost"), fields in a jansson
     * json_t * that the callee takes. */
    void (*event)(void *ctx, int job, const char *event, void *json_object);
    /* Rank 0, may be NULL: the hand-out was abandoned (a stop while workers
     * are busy: no collective can run); save what can be saved before
     * sotu_dispatch_run ends the job with SOTU_EXIT_REQUEUE. */
    void (*abandon)(void *ctx);
} sotu_dispatch_ops;

typedef enum {
    SOTU_WORKER_NEW = 0, /* has not asked yet */
    SOTU_WORKER_BUSY,    /* running job */
    SOTU_WORKER_LATE,    /* running job past the timeout (or silent since the start) */
    SOTU_WORKER_PARKED,  /* asked; waits for a job or -1 */
    SOTU_WORKER_STOPPED, /* told -1 */
    SOTU_WORKER_LOST,    /* left out at the end, still late */
} sotu_worker_state;

typedef struct {
    sotu_worker_state state;
    int job;             /* BUSY, LATE, LOST: the job it runs; else -1 */
    double since;        /* when it got that job (NEW: the start) */
    bool released;       /* LOST: answered at the end and was told to stop */
} sotu_dispatch_worker;

typedef struct {
    sotu_queue queue;    /* over this process's jobs */
    int *jobs;           /* [queue.n_tasks] queue index -> job */
    int *slot;           /* [n_jobs] job -> queue index, -1 when not ours */
    int n_jobs;          /* job indices are 0..n_jobs-1 */
    double task_timeout; /* mpi.task_timeout: seconds, 0 never, SOTU_CONFIG_AUTO */
    sotu_progress progress;
    int stop_signal;     /* the signal that stopped the hand-out, 0 none */
    double stop_deadline;
    bool killing;        /* mpiexec's kill sequence has begun */
    bool abandoned;      /* jobs were still running when the grace period ended */
    /* Rank 0's bookkeeping, set up by sotu_dispatch_serve: */
    int n_workers;                 /* world size; [0] unused */
    sotu_dispatch_worker *workers; /* [n_workers] */
    bool *retried;       /* [n_jobs] handed out more than once */
    uint32_t *digest;    /* [n_jobs] crc32 of a retried job's kept message */
    size_t *digest_len;  /* [n_jobs] its length */
    double *durations;   /* [queue.n_tasks] seconds of the jobs done here */
    int n_durations;
    int n_lost;          /* ranks left out at the end */
    sotu_status halted;  /* set by sotu_dispatch_halt: no more hand-outs */
    char halt_reason[1024];
} sotu_dispatch;

/* Rank 0, from ops->record: stops the hand-out for good (the output disk is
 * full: every further result would be lost). Requests are answered with
 * -1, running jobs end and are recorded, then sotu_dispatch_serve returns;
 * the caller reports halted (reason: sotu_last_error() at the call). */
void sotu_dispatch_halt(sotu_dispatch *d, sotu_status st);

/* Rank 0: serves workers until every one has been told to stop (or is left
 * out, late); with rank0_trains runs jobs here between messages. Polls so a
 * stop signal is noticed while waiting and rank 0 does not spin a core.
 * d->queue, jobs, slot, n_jobs and task_timeout are set by the caller;
 * progress is begun and ended here. Unless abandoned, ends with TAG_END to
 * the live workers and sotu_mpi_use_ranks: *nranks becomes the number of
 * live ranks (rank 0 stays 0). */
sotu_status sotu_dispatch_serve(sotu_dispatch *d, const sotu_dispatch_ops *ops, int *nranks,
                                bool rank0_trains, ZSTD_CCtx *cctx);

/* Ranks 1..N-1: asks for jobs, runs them and sends the results until told
 * to stop, then takes TAG_END. True when the run goes on with this rank:
 * *rank and *nranks are its place in the run communicator. False when it
 * was left out: *exit_status is the run's, and it only ends MPI. */
bool sotu_dispatch_work(const sotu_dispatch_ops *ops, int *rank, int *nranks, ZSTD_CCtx *cctx,
                        int *exit_status);

/* Rank 0, after the message saying what a stop saved: when mpiexec itself
 * is ending the job (d->killing), tells that it will exit 1 whatever the
 * ranks return, and what to start instead. */
void sotu_dispatch_stop_note(const sotu_dispatch *d);

/* Every rank, the hand-out of a run: rank 0 serves (sotu_dispatch_serve,
 * its status in *st; an abandoned hand-out calls ops->abandon and aborts
 * the job with SOTU_EXIT_REQUEUE), the others work (sotu_dispatch_work).
 * True when this rank goes on with the run; false when it was left out:
 * *exit_status is the run's, and it only ends MPI. */
bool sotu_dispatch_run(sotu_dispatch *d, const sotu_dispatch_ops *ops, int *rank, int *nranks,
                       bool rank0_trains, ZSTD_CCtx *cctx, sotu_status *st, int *exit_status);

/* Rank 0, at the very end of a run whose exit status is rc: each left-out
 * rank that has answered since (its late result is compared and dropped)
 * is told -1 and TAG_END kind 1 with rc. True when no rank is left out or
 * every one was released: MPI can then finalize (sotu_mpi_end). Other
 * ranks: true, nothing done. */
bool sotu_dispatch_release(sotu_dispatch *d, const sotu_dispatch_ops *ops, int rc);

void sotu_dispatch_free(sotu_dispatch *d); /* accepts zeroed */

/* For ops->run: fills rep's status and, on success, its figures from res;
 * on failure rep->error gets sotu_last_error(). Returns st == SOTU_OK. */
bool sotu_dispatch_report(sotu_task_report *rep, sotu_status st, const sotu_task_result *res);

/* The timeout in force after n finished jobs of the given durations
 * (seconds; n may be 0): setting itself when > 0, INFINITY for 0 (never),
 * and for SOTU_CONFIG_AUTO: INFINITY before the first, then
 * max(SOTU_TASK_TIMEOUT_FLOOR, SOTU_TASK_TIMEOUT_FACTOR x their median).
 * durations is reordered. */
double sotu_dispatch_timeout(double setting, double *durations, int n);

#endif
