/* The job hand-out of `sotu train`, shared by every method (SoTU deltas,
 * CLR modules and baselines): rank 0 serves a queue of jobs, ranks
 * 1..N-1 ask for one, run it and send back a report and a message.
 *
 * Messages (MPI_COMM_WORLD, raw bytes; ranks are assumed to share one ABI):
 *   TAG_REQUEST  worker -> 0   empty: "give me a job"
 *   TAG_ASSIGN   0 -> worker   int32 job index, or -1: no more work
 *   TAG_RESULT   worker -> 0   sotu_task_report (its task field holds the job
 *                              index), then the method's message bytes (none
 *                              when report.status != OK); also a request
 *
 * Stop signals (coordinator/signals.h): the coordinator answers requests
 * with -1 and waits for running jobs up to the grace period; if they do not
 * finish, `abandoned` is set and the caller writes what is done. A halt
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

#include <zstd.h>

#include "common/log.h"
#include "common/status.h"
#include "coordinator/run.h"
#include "coordinator/schedule.h"
#include "worker/task.h"

typedef struct {
    void *ctx;
    /* Runs job here (any rank): fills rep (rep->task = job, rep->rank) and,
     * when rep->status is OK, res's message. */
    void (*run)(void *ctx, int job, int rank, ZSTD_CCtx *cctx, sotu_task_report *rep,
                sotu_task_result *res);
    /* Rank 0: records job's result (msg[0, n); empty when rep->status is
     * not OK). True when the job is done, false when it failed. */
    bool (*record)(void *ctx, int job, const sotu_task_report *rep, const void *msg, size_t n);
    /* Rank 0: the job's name for the log ("t03", "lr=0.001/t03"). */
    void (*name)(void *ctx, int job, char *dst, size_t cap);
    /* Rank 0, may be NULL: a stop signal arrived with `running` jobs out. */
    void (*stopping)(void *ctx, int sig, int running, int done);
} sotu_dispatch_ops;

typedef struct {
    sotu_queue queue;    /* over this process's jobs */
    int *jobs;           /* [queue.n_tasks] queue index -> job */
    int *slot;           /* [n_jobs] job -> queue index, -1 when not ours */
    int n_jobs;          /* job indices are 0..n_jobs-1 */
    sotu_progress progress;
    int stop_signal;     /* the signal that stopped the hand-out, 0 none */
    double stop_deadline;
    bool abandoned;      /* jobs were still running when the grace period ended */
    sotu_status halted;  /* set by sotu_dispatch_halt: no more hand-outs */
    char halt_reason[1024];
} sotu_dispatch;

/* Rank 0, from ops->record: stops the hand-out for good (the output disk is
 * full: every further result would be lost). Requests are answered with
 * -1, running jobs end and are recorded, then sotu_dispatch_serve returns;
 * the caller reports halted (reason: sotu_last_error() at the call). */
void sotu_dispatch_halt(sotu_dispatch *d, sotu_status st);

/* Rank 0: serves workers until every one has been told to stop; with
 * rank0_trains runs jobs here between messages. Polls (MPI_Iprobe, then a
 * 1 ms sleep) so a stop signal is noticed while waiting and rank 0 does not
 * spin a core. d->queue, jobs, slot and n_jobs are set by the caller;
 * progress is begun and ended here. */
sotu_status sotu_dispatch_serve(sotu_dispatch *d, const sotu_dispatch_ops *ops, int nranks,
                                bool rank0_trains, ZSTD_CCtx *cctx);

/* Ranks 1..N-1: asks for jobs, runs them and sends the results until told
 * to stop. */
void sotu_dispatch_work(const sotu_dispatch_ops *ops, int rank, ZSTD_CCtx *cctx);

void sotu_dispatch_free(sotu_dispatch *d); /* the queue, jobs and slot; accepts zeroed */

/* For ops->run: fills rep's status and, on success, its figures from res;
 * on failure rep->error gets sotu_last_error(). Returns st == SOTU_OK. */
bool sotu_dispatch_report(sotu_task_report *rep, sotu_status st, const sotu_task_result *res);

#endif
