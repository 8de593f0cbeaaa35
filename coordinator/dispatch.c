#include "coordinator/dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coordinator/mpi_util.h"
#include "coordinator/signals.h"

enum { TAG_REQUEST = 11, TAG_ASSIGN = 12, TAG_RESULT = 13 };

/* The worker's report and message as one buffer. */
static void *pack_result(const sotu_task_report *rep, const void *msg, size_t n, size_t *total)
{
    *total = sizeof *rep + n;
    char *buf = malloc(*total);
    if (!buf)
        return NULL;
    memcpy(buf, rep, sizeof *rep);
    if (n)
        memcpy(buf + sizeof *rep, msg, n);
    return buf;
}

static void dispatch_record(sotu_dispatch *d, const sotu_dispatch_ops *ops,
                            const sotu_task_report *rep, const void *msg, size_t n)
{
    int job = rep->task;
    int q = job >= 0 && job < d->n_jobs ? d->slot[job] : -1;
    if (q < 0 || d->queue.state[q] != SOTU_TASK_RUNNING) {
        SOTU_ERROR("result for job %d from rank %d was not expected; ignored", job, rep->rank);
        return;
    }
    bool ok = ops->record(ops->ctx, job, rep, msg, n);
    sotu_queue_finish(&d->queue, q, ok);
    char name[160];
    ops->name(ops->ctx, job, name, sizeof name);
    SOTU_INFO("task %s %s on rank %d after %.1fs (%d done, %d failed, %d running)", name,
              ok ? "done" : "FAILED", rep->rank, sotu_now() - d->queue.started[q],
              d->queue.n_done, d->queue.n_failed, d->queue.n_running);
    char extra[64];
    snprintf(extra, sizeof extra, "%d failed", d->queue.n_failed);
    sotu_progress_update(&d->progress, d->queue.n_done + d->queue.n_failed, extra);
}

/* Answers a worker's request: its next job, or -1 (the worker then stops).
 * After a stop signal every answer is -1. */
static bool dispatch_assign(sotu_dispatch *d, int worker)
{
    int q = d->stop_signal || d->halted ? -1 : sotu_queue_take(&d->queue, worker, sotu_now());
    int32_t msg = q >= 0 ? d->jobs[q] : -1;
    SOTU_MPI_CHECK(MPI_Send(&msg, 1, MPI_INT32_T, worker, TAG_ASSIGN, MPI_COMM_WORLD));
    if (msg >= 0)
        SOTU_DEBUG("job %d -> rank %d", (int)msg, worker);
    return msg >= 0;
}

/* Notices a stop signal once: no more hand-outs, a deadline for the jobs
 * still running. */
static void dispatch_check_stop(sotu_dispatch *d, const sotu_dispatch_ops *ops)
{
    int sig = sotu_signals_pending();
    if (!sig || d->stop_signal)
        return;
    d->stop_signal = sig;
    double grace = sotu_signals_grace(sig);
    d->stop_deadline = sotu_now() + grace;
    SOTU_WARN("signal %d: no more tasks are handed out; waiting up to %.0fs for the %d running, "
              "then writing the checkpoint (exit status %d: run again with --resume)", sig,
              grace, d->queue.n_running, SOTU_EXIT_REQUEUE);
    if (ops->stopping)
        ops->stopping(ops->ctx, sig, d->queue.n_running, d->queue.n_done);
}

void sotu_dispatch_halt(sotu_dispatch *d, sotu_status st)
{
    if (d->halted)
        return;
    d->halted = st;
    snprintf(d->halt_reason, sizeof d->halt_reason, "%s", sotu_last_error());
    SOTU_ERROR("%s: no more tasks are handed out (their results could not be saved); waiting "
               "for the tasks still running", d->halt_reason);
}

sotu_status sotu_dispatch_serve(sotu_dispatch *d, const sotu_dispatch_ops *ops, int nranks,
                                bool rank0_trains, ZSTD_CCtx *cctx)
{
    sotu_mpi_buffer buf = {0};
    int active = nranks - 1;
    sotu_status st = SOTU_OK;
    sotu_progress_begin(&d->progress, "tasks", "tasks", d->queue.n_tasks);
    sotu_progress_update(&d->progress, d->queue.n_done, NULL);
    for (;;) {
        dispatch_check_stop(d, ops);
        bool local = rank0_trains && !d->stop_signal && !d->halted &&
                     d->queue.next < d->queue.n_tasks;
        if (active == 0 && !local)
            break;
        if (d->stop_signal && d->queue.n_running > 0 && sotu_now() > d->stop_deadline) {
            SOTU_WARN("grace period over with %d tasks running: abandoning them",
                      d->queue.n_running);
            d->abandoned = true;
            break;
        }
        int flag = 0;
        if (active > 0)
            SOTU_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag,
                                      MPI_STATUS_IGNORE));
        if (flag) {
            int src, tag;
            if ((st = sotu_mpi_recv_any(&buf, MPI_ANY_SOURCE, MPI_ANY_TAG, &src, &tag)) != SOTU_OK)
                break;
            if (tag == TAG_RESULT) {
                if (buf.len < sizeof(sotu_task_report)) {
                    SOTU_ERROR("rank %d sent a %zu-byte result, shorter than a report", src,
                               buf.len);
                } else {
                    sotu_task_report rep;
                    memcpy(&rep, buf.data, sizeof rep);
                    rep.rank = src;
                    rep.error[sizeof rep.error - 1] = '\0';
                    dispatch_record(d, ops, &rep, (char *)buf.data + sizeof rep,
                                    buf.len - sizeof rep);
                }
            }
            dispatch_check_stop(d, ops);
            if (!dispatch_assign(d, src))
                active--;
            continue;
        }
        if (local) {
            int q = sotu_queue_take(&d->queue, 0, sotu_now());
            if (q < 0)
                continue;
            sotu_task_report rep;
            sotu_task_result res;
            ops->run(ops->ctx, d->jobs[q], 0, cctx, &rep, &res);
            dispatch_record(d, ops, &rep, res.message, res.message_bytes);
            sotu_task_result_free(&res);
            continue;
        }
        nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 1000000}, NULL);
    }
    sotu_progress_end(&d->progress);
    sotu_mpi_buffer_free(&buf);
    return st;
}

void sotu_dispatch_work(const sotu_dispatch_ops *ops, int rank, ZSTD_CCtx *cctx)
{
    SOTU_MPI_CHECK(MPI_Send(NULL, 0, MPI_BYTE, 0, TAG_REQUEST, MPI_COMM_WORLD));
    for (;;) {
        int32_t job;
        SOTU_MPI_CHECK(MPI_Recv(&job, 1, MPI_INT32_T, 0, TAG_ASSIGN, MPI_COMM_WORLD,
                                MPI_STATUS_IGNORE));
        if (job < 0)
            return;
        sotu_task_report rep;
        sotu_task_result res;
        ops->run(ops->ctx, job, rank, cctx, &rep, &res);
        size_t total;
        void *msg = pack_result(&rep, res.message, res.message_bytes, &total);
        if (!msg) {
            rep.status = SOTU_ERR_NOMEM;
            snprintf(rep.error, sizeof rep.error, "rank %d: no memory for a %zu-byte result",
                     rank, res.message_bytes);
            msg = pack_result(&rep, NULL, 0, &total);
        }
        sotu_task_result_free(&res);
        if (!msg)
            sotu_mpi_fail(MPI_ERR_NO_MEM, "packing a task result", __FILE__, __LINE__);
        sotu_mpi_send_bytes(msg, total, 0, TAG_RESULT);
        free(msg);
    }
}

bool sotu_dispatch_report(sotu_task_report *rep, sotu_status st, const sotu_task_result *res)
{
    rep->status = st;
    if (st != SOTU_OK) {
        snprintf(rep->error, sizeof rep->error, "%s", sotu_last_error());
        return false;
    }
    rep->finetuned_acc = res->finetuned_acc;
    rep->train_loss = res->train_loss;
    rep->seconds = res->seconds;
    rep->steps = res->steps;
    return true;
}

void sotu_dispatch_free(sotu_dispatch *d)
{
    if (!d)
        return;
    sotu_queue_free(&d->queue);
    free(d->jobs);
    free(d->slot);
    memset(d, 0, sizeof *d);
}
