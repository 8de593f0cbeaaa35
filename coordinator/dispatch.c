#include "coordinator/dispatch.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/config.h"
#include "mpi/mpi_util.h"
#include "coordinator/signals.h"
#include "io/bytes.h"

enum { TAG_REQUEST = 11, TAG_ASSIGN = 12, TAG_RESULT = 13, TAG_END = 14 };
enum { END_IN_RUN = 0, END_LEFT_OUT = 1 };

/* The worker's report, message and per-step scalars (rep->scalars_bytes of
 * them) as one buffer. */
static void *pack_result(const sotu_task_report *rep, const void *msg, size_t n,
                         const char *scalars, size_t *total)
{
    size_t ns = scalars ? (size_t)rep->scalars_bytes : 0;
    *total = sizeof *rep + n + ns;
    char *buf = malloc(*total);
    if (!buf)
        return NULL;
    memcpy(buf, rep, sizeof *rep);
    if (n)
        memcpy(buf + sizeof *rep, msg, n);
    if (ns && scalars)
        memcpy(buf + sizeof *rep + n, scalars, ns);
    return buf;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double sotu_dispatch_timeout(double setting, double *durations, int n)
{
    if (setting > 0)
        return setting;
    if (setting == 0 || n == 0)
        return INFINITY;
    qsort(durations, (size_t)n, sizeof *durations, cmp_double);
    double median = n % 2 ? durations[n / 2] : 0.5 * (durations[n / 2 - 1] + durations[n / 2]);
    double t = SOTU_TASK_TIMEOUT_FACTOR * median;
    return t > SOTU_TASK_TIMEOUT_FLOOR ? t : SOTU_TASK_TIMEOUT_FLOOR;
}

static double current_timeout(sotu_dispatch *d)
{
    return sotu_dispatch_timeout(d->task_timeout, d->durations, d->n_durations);
}

static void emit(const sotu_dispatch_ops *ops, int job, const char *event, json_t *o)
{
    if (ops->event)
        ops->event(ops->ctx, job, event, o);
    else
        json_decref(o);
}

/* ---- results ---- */

/* A result for a job that already has one (a late rank's, or the second
 * attempt's): compared with the kept one, never recorded. */
static void dispatch_duplicate(sotu_dispatch *d, const sotu_dispatch_ops *ops,
                               const sotu_task_report *rep, const void *msg, size_t n,
                               const char *name)
{
    int job = rep->task, q = d->slot[job];
    const char *verdict;
    if (rep->status != SOTU_OK)
        verdict = "failed there; the kept result stays";
    else if (d->queue.state[q] != SOTU_TASK_DONE || !d->retried[job])
        verdict = "not comparable; dropped";
    else if (d->digest_len[job] == n && d->digest[job] == sotu_crc32(msg, n))
        verdict = "identical to the kept one; dropped";
    else
        verdict = "DIFFERS from the kept one (training is not deterministic?); dropped, the "
                  "kept one stays";
    SOTU_WARN("task %s: a second result from rank %d (%zu bytes): %s", name, rep->rank, n,
              verdict);
    emit(ops, job, "task_duplicate",
         json_pack("{s:i, s:i, s:s}", "rank", rep->rank, "bytes", (json_int_t)n, "verdict",
                   verdict));
}

/* The result of job from rank rep->rank (0: trained here), running since
 * `since`. The first result of a job is recorded; later ones are compared. */
static void dispatch_record(sotu_dispatch *d, const sotu_dispatch_ops *ops,
                            const sotu_task_report *rep, const void *msg, size_t n,
                            const char *scalars, double since)
{
    int job = rep->task;
    int q = job >= 0 && job < d->n_jobs ? d->slot[job] : -1;
    if (q < 0 || d->queue.state[q] == SOTU_TASK_PENDING) {
        SOTU_ERROR("result for job %d from rank %d was not expected; ignored", job, rep->rank);
        return;
    }
    char name[160];
    ops->name(ops->ctx, job, name, sizeof name);
    sotu_task_state state = d->queue.state[q];
    bool recover = state == SOTU_TASK_FAILED && rep->status == SOTU_OK && d->retried[job];
    if (state != SOTU_TASK_RUNNING && !recover) {
        dispatch_duplicate(d, ops, rep, msg, n, name);
        return;
    }
    bool ok = ops->record(ops->ctx, job, rep, msg, n);
    if (ok && ops->scalars && rep->scalars_bytes > 0)
        ops->scalars(ops->ctx, job, scalars, (size_t)rep->scalars_bytes);
    if (ok && d->retried[job]) {
        d->digest[job] = sotu_crc32(msg, n);
        d->digest_len[job] = n;
    }
    if (recover) {
        if (ok)
            sotu_queue_recover(&d->queue, q);
    } else {
        sotu_queue_finish(&d->queue, q, ok);
    }
    double seconds = sotu_now() - since;
    if (ok && d->n_durations < d->queue.n_tasks)
        d->durations[d->n_durations++] = seconds;
    SOTU_INFO("task %s %s on rank %d after %.1fs (%d done, %d failed, %d running)", name,
              ok ? (recover ? "done (its earlier failure replaced)" : "done") : "FAILED",
              rep->rank, seconds, d->queue.n_done, d->queue.n_failed, d->queue.n_running);
    char extra[64];
    snprintf(extra, sizeof extra, "%d failed", d->queue.n_failed);
    sotu_progress_update(&d->progress, d->queue.n_done + d->queue.n_failed, extra);
}

/* ---- rank 0's view of the workers ---- */

static void send_assign(int worker, int32_t job)
{
    MPI_Request req;
    SOTU_MPI_CHECK(MPI_Isend(&job, 1, MPI_INT32_T, worker, TAG_ASSIGN, MPI_COMM_WORLD, &req));
    sotu_mpi_wait(&req, NULL);
}

/* True when job q of the queue is still running (no result yet). */
static bool job_running(const sotu_dispatch *d, int job)
{
    return job >= 0 && d->queue.state[d->slot[job]] == SOTU_TASK_RUNNING;
}

/* Workers running a job that may still be needed: BUSY ones. */
static int busy_workers(const sotu_dispatch *d)
{
    int n = 0;
    for (int w = 1; w < d->n_workers; w++)
        n += d->workers[w].state == SOTU_WORKER_BUSY || d->workers[w].state == SOTU_WORKER_NEW ||
             (d->workers[w].state == SOTU_WORKER_LATE && job_running(d, d->workers[w].job));
    return n;
}

/* Workers that could take a job offered again. */
static int able_workers(const sotu_dispatch *d)
{
    int n = 0;
    for (int w = 1; w < d->n_workers; w++)
        n += d->workers[w].state == SOTU_WORKER_BUSY || d->workers[w].state == SOTU_WORKER_NEW ||
             d->workers[w].state == SOTU_WORKER_PARKED;
    return n;
}

/* Answers worker w, which asked: a job, -1 when the run has none left for
 * it, else parks it (a job still running may be offered again). */
static void dispatch_answer(sotu_dispatch *d, const sotu_dispatch_ops *ops, int w)
{
    sotu_dispatch_worker *wk = &d->workers[w];
    int q = d->stop_signal || d->halted ? -1 : sotu_queue_take(&d->queue, w, sotu_now());
    if (q >= 0) {
        int job = d->jobs[q];
        *wk = (sotu_dispatch_worker){SOTU_WORKER_BUSY, job, sotu_now(), false};
        if (d->retried[job]) {
            char name[160];
            ops->name(ops->ctx, job, name, sizeof name);
            SOTU_WARN("task %s handed again, to rank %d", name, w);
        }
        send_assign(w, job);
        SOTU_DEBUG("job %d -> rank %d", job, w);
        return;
    }
    if (d->stop_signal || d->halted || busy_workers(d) == 0) {
        *wk = (sotu_dispatch_worker){SOTU_WORKER_STOPPED, -1, sotu_now(), false};
        send_assign(w, -1);
        return;
    }
    *wk = (sotu_dispatch_worker){SOTU_WORKER_PARKED, -1, sotu_now(), false};
}

/* Parked workers get the jobs offered again, or -1 once nothing can come. */
static void dispatch_serve_parked(sotu_dispatch *d, const sotu_dispatch_ops *ops)
{
    for (int w = 1; w < d->n_workers; w++)
        if (d->workers[w].state == SOTU_WORKER_PARKED &&
            (d->stop_signal || d->halted || sotu_queue_has_work(&d->queue) ||
             busy_workers(d) == 0))
            dispatch_answer(d, ops, w);
}

/* Marks workers running past the timeout late and offers their jobs again. */
static void dispatch_check_late(sotu_dispatch *d, const sotu_dispatch_ops *ops)
{
    double timeout = current_timeout(d), now = sotu_now();
    if (isinf(timeout))
        return;
    for (int w = 1; w < d->n_workers; w++) {
        sotu_dispatch_worker *wk = &d->workers[w];
        bool busy = wk->state == SOTU_WORKER_BUSY, silent = wk->state == SOTU_WORKER_NEW;
        if ((!busy && !silent) || now - wk->since <= timeout)
            continue;
        wk->state = SOTU_WORKER_LATE;
        char how[96] = "";
        if (d->task_timeout == SOTU_CONFIG_AUTO)
            snprintf(how, sizeof how, " (auto: %g x the median of %d finished, at least %gs)",
                     SOTU_TASK_TIMEOUT_FACTOR, d->n_durations, SOTU_TASK_TIMEOUT_FLOOR);
        if (silent) {
            SOTU_WARN("rank %d has not asked for a task in %.0fs, over mpi.task_timeout %.0fs%s",
                      w, now - wk->since, timeout, how);
            continue;
        }
        char name[160];
        ops->name(ops->ctx, wk->job, name, sizeof name);
        bool again = !d->stop_signal && !d->halted && job_running(d, wk->job);
        SOTU_WARN("task %s on rank %d is late: running %.0fs, over mpi.task_timeout %.0fs%s; %s",
                  name, w, now - wk->since, timeout, how,
                  again ? "offering it to the next free rank (whichever result comes second is "
                          "compared with the first and dropped)"
                        : "not offered again");
        emit(ops, wk->job, "task_late",
             json_pack("{s:i, s:f, s:f, s:b}", "rank", w, "seconds", now - wk->since, "timeout",
                       timeout, "offered_again", again));
        if (again) {
            d->retried[wk->job] = true;
            sotu_queue_retry(&d->queue, d->slot[wk->job]);
        }
    }
}

/* Notices a stop signal once: no more hand-outs, a deadline for the jobs
 * still running; mpiexec's kill sequence moves the deadline to now. */
static void dispatch_check_stop(sotu_dispatch *d, const sotu_dispatch_ops *ops)
{
    int sig = sotu_signals_pending();
    if (sig && !d->stop_signal) {
        d->stop_signal = sig;
        double grace = sotu_signals_grace(sig);
        d->stop_deadline = sotu_now() + grace;
        SOTU_WARN("%s: no more tasks are handed out; waiting up to %.0fs for the %d running, "
                  "then writing the checkpoint (exit status %d: run again with --resume)",
                  sotu_signals_name(sig), grace, d->queue.n_running, SOTU_EXIT_REQUEUE);
        if (ops->stopping)
            ops->stopping(ops->ctx, sig, d->queue.n_running, d->queue.n_done);
    }
    if (d->stop_signal && !d->killing && sotu_signals_launcher_kill()) {
        d->killing = true;
        d->stop_deadline = sotu_now();
        SOTU_WARN("SIGTERM from mpiexec: Open MPI kills every rank about %gs after it "
                  "(odls_base_sigkill_timeout): writing the checkpoint of the %d done tasks now, "
                  "without waiting for the %d running", sotu_signals_kill_timeout(),
                  d->queue.n_done, d->queue.n_running);
    }
}

static sotu_status dispatch_setup(sotu_dispatch *d, int nranks)
{
    d->n_workers = nranks;
    d->workers = calloc((size_t)nranks, sizeof *d->workers);
    d->retried = calloc((size_t)(d->n_jobs ? d->n_jobs : 1), sizeof *d->retried);
    d->digest = calloc((size_t)(d->n_jobs ? d->n_jobs : 1), sizeof *d->digest);
    d->digest_len = calloc((size_t)(d->n_jobs ? d->n_jobs : 1), sizeof *d->digest_len);
    d->durations = calloc((size_t)(d->queue.n_tasks ? d->queue.n_tasks : 1), sizeof(double));
    if (!d->workers || !d->retried || !d->digest || !d->digest_len || !d->durations)
        return sotu_error(SOTU_ERR_NOMEM, "dispatch state of %d ranks and %d jobs", nranks,
                          d->n_jobs);
    double now = sotu_now();
    for (int w = 0; w < nranks; w++)
        d->workers[w] = (sotu_dispatch_worker){SOTU_WORKER_NEW, -1, now, false};
    return SOTU_OK;
}

/* True when the loop can end: every worker was told -1 or is late with a
 * job done elsewhere (or, after a stop, nothing is running). */
static bool dispatch_over(const sotu_dispatch *d, bool local_work)
{
    if (local_work)
        return false;
    for (int w = 1; w < d->n_workers; w++) {
        const sotu_dispatch_worker *wk = &d->workers[w];
        if (wk->state == SOTU_WORKER_STOPPED)
            continue;
        if (wk->state == SOTU_WORKER_LATE && !job_running(d, wk->job) &&
            (d->stop_signal || d->halted || !sotu_queue_has_work(&d->queue)))
            continue;
        return false;
    }
    return true;
}

/* After the loop: late ranks are left out, the others get TAG_END with the
 * live ranks, and the run communicator narrows to them. */
static void dispatch_end(sotu_dispatch *d, const sotu_dispatch_ops *ops, int *nranks)
{
    int n = d->n_workers;
    int32_t *end = malloc(sizeof(int32_t) * (size_t)(n + 3));
    int *live = malloc(sizeof(int) * (size_t)n);
    if (!end || !live)
        sotu_mpi_fail(MPI_ERR_NO_MEM, "the list of live ranks", __FILE__, __LINE__);
    int n_live = 0;
    live[n_live++] = 0;
    char lost[256] = "";
    for (int w = 1; w < n; w++) {
        sotu_dispatch_worker *wk = &d->workers[w];
        if (wk->state == SOTU_WORKER_STOPPED) {
            live[n_live++] = w;
            continue;
        }
        wk->state = SOTU_WORKER_LOST;
        d->n_lost++;
        char name[160] = "none";
        if (wk->job >= 0)
            ops->name(ops->ctx, wk->job, name, sizeof name);
        snprintf(lost + strlen(lost), sizeof lost - strlen(lost), "%s%d", d->n_lost > 1 ? ", " : "",
                 w);
        SOTU_WARN("rank %d has not answered for %.0fs (task %s, done by another rank): the run "
                  "goes on without it", w, sotu_now() - wk->since, name);
        emit(ops, wk->job, "rank_lost",
             json_pack("{s:i, s:f}", "rank", w, "seconds", sotu_now() - wk->since));
    }
    if (d->n_lost)
        SOTU_WARN("evaluating on %d of %d ranks without rank%s %s; MPI_Finalize would wait for "
                  "%s, so the job ends with MPI_Abort and the run's exit status once every "
                  "result is written", n_live, n, d->n_lost > 1 ? "s" : "", lost,
                  d->n_lost > 1 ? "them" : "it");
    end[0] = END_IN_RUN;
    end[1] = 0;
    end[2] = n_live;
    for (int i = 0; i < n_live; i++)
        end[3 + i] = live[i];
    for (int i = 1; i < n_live; i++)
        sotu_mpi_send_bytes_on(MPI_COMM_WORLD, end, sizeof(int32_t) * (size_t)(3 + n_live),
                               live[i], TAG_END);
    int rank0;
    sotu_mpi_use_ranks(live, n_live, &rank0, nranks);
    free(end);
    free(live);
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

sotu_status sotu_dispatch_serve(sotu_dispatch *d, const sotu_dispatch_ops *ops, int *nranks,
                                bool rank0_trains, ZSTD_CCtx *cctx)
{
    sotu_mpi_buffer buf = {0};
    sotu_status st = dispatch_setup(d, *nranks);
    if (st != SOTU_OK)
        return st;
    sotu_progress_begin(&d->progress, "tasks", "tasks", d->queue.n_tasks);
    sotu_progress_update(&d->progress, d->queue.n_done, NULL);
    long nap = 100000;
    for (;;) {
        dispatch_check_stop(d, ops);
        dispatch_check_late(d, ops);
        dispatch_serve_parked(d, ops);
        /* Rank 0 trains when asked to, or when no worker is left to take a
         * job offered again. */
        bool local = !d->stop_signal && !d->halted && sotu_queue_has_work(&d->queue) &&
                     (rank0_trains || (*nranks > 1 && able_workers(d) == 0));
        if (dispatch_over(d, local))
            break;
        if (d->stop_signal && sotu_now() > d->stop_deadline && busy_workers(d) > 0) {
            SOTU_WARN("%s with %d tasks running: abandoning them",
                      d->killing ? "no time left" : "grace period over", d->queue.n_running);
            d->abandoned = true;
            break;
        }
        int flag = 0;
        MPI_Status probe;
        if (*nranks > 1)
            SOTU_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &probe));
        if (flag) {
            int src, tag;
            if ((st = sotu_mpi_recv_any_on(MPI_COMM_WORLD, &buf, probe.MPI_SOURCE, probe.MPI_TAG,
                                           &src, &tag)) != SOTU_OK)
                break;
            if (src <= 0 || src >= d->n_workers) {
                SOTU_ERROR("message from rank %d, outside the world of %d; ignored", src,
                           d->n_workers);
                continue;
            }
            sotu_dispatch_worker *wk = &d->workers[src];
            if (wk->state == SOTU_WORKER_LATE)
                SOTU_WARN("rank %d answers again after %.0fs", src, sotu_now() - wk->since);
            if (tag == TAG_RESULT) {
                if (buf.len < sizeof(sotu_task_report)) {
                    SOTU_ERROR("rank %d sent a %zu-byte result, shorter than a report", src,
                               buf.len);
                } else {
                    sotu_task_report rep;
                    memcpy(&rep, buf.data, sizeof rep);
                    rep.rank = src;
                    rep.error[sizeof rep.error - 1] = '\0';
                    size_t body = buf.len - sizeof rep;
                    if (rep.scalars_bytes < 0 || (uint64_t)rep.scalars_bytes > body) {
                        SOTU_ERROR("rank %d: a result claims %lld bytes of step scalars in a "
                                   "%zu-byte body; scalars dropped", src,
                                   (long long)rep.scalars_bytes, body);
                        rep.scalars_bytes = 0;
                    }
                    size_t n = body - (size_t)rep.scalars_bytes;
                    dispatch_record(d, ops, &rep, (char *)buf.data + sizeof rep, n,
                                    (char *)buf.data + sizeof rep + n, wk->since);
                }
            }
            dispatch_check_stop(d, ops);
            dispatch_answer(d, ops, src);
            nap = 100000;
            continue;
        }
        if (local) {
            int q = sotu_queue_take(&d->queue, 0, sotu_now());
            if (q < 0)
                continue;
            sotu_task_report rep;
            sotu_task_result res;
            double since = sotu_now();
            if (d->retried[d->jobs[q]]) {
                char name[160];
                ops->name(ops->ctx, d->jobs[q], name, sizeof name);
                SOTU_WARN("task %s handed again, to rank 0", name);
            }
            ops->run(ops->ctx, d->jobs[q], 0, cctx, &rep, &res);
            dispatch_record(d, ops, &rep, res.message, res.message_bytes, res.scalars, since);
            sotu_task_result_free(&res);
            nap = 100000;
            continue;
        }
        nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = nap}, NULL);
        if (nap < 10000000)
            nap *= 2;
    }
    sotu_progress_end(&d->progress);
    sotu_mpi_buffer_free(&buf);
    if (st == SOTU_OK && !d->abandoned && *nranks > 1)
        dispatch_end(d, ops, nranks);
    return st;
}

bool sotu_dispatch_work(const sotu_dispatch_ops *ops, int *rank, int *nranks, ZSTD_CCtx *cctx,
                        int *exit_status)
{
    int me = *rank;
    sotu_mpi_send_bytes_on(MPI_COMM_WORLD, NULL, 0, 0, TAG_REQUEST);
    for (;;) {
        int32_t job;
        MPI_Request req;
        SOTU_MPI_CHECK(MPI_Irecv(&job, 1, MPI_INT32_T, 0, TAG_ASSIGN, MPI_COMM_WORLD, &req));
        sotu_mpi_wait_for(&req, NULL, false);
        if (job < 0)
            break;
        sotu_task_report rep;
        sotu_task_result res;
        ops->run(ops->ctx, job, me, cctx, &rep, &res);
        size_t total;
        void *msg = pack_result(&rep, res.message, res.message_bytes, res.scalars, &total);
        if (!msg) {
            rep.status = SOTU_ERR_NOMEM;
            rep.scalars_bytes = 0;
            snprintf(rep.error, sizeof rep.error, "rank %d: no memory for a %zu-byte result",
                     me, res.message_bytes);
            msg = pack_result(&rep, NULL, 0, NULL, &total);
        }
        sotu_task_result_free(&res);
        if (!msg)
            sotu_mpi_fail(MPI_ERR_NO_MEM, "packing a task result", __FILE__, __LINE__);
        sotu_mpi_send_bytes_on(MPI_COMM_WORLD, msg, total, 0, TAG_RESULT);
        free(msg);
    }
    sotu_mpi_buffer end = {0};
    if (sotu_mpi_recv_any_on(MPI_COMM_WORLD, &end, 0, TAG_END, NULL, NULL) != SOTU_OK)
        sotu_mpi_fail(MPI_ERR_NO_MEM, sotu_last_error(), __FILE__, __LINE__);
    const int32_t *e = end.data;
    size_t n = end.len / sizeof(int32_t);
    if (n < 3 || (e[0] == END_IN_RUN && (e[2] < 1 || (size_t)e[2] + 3 > n))) {
        SOTU_ERROR("rank 0 sent a malformed end message (%zu bytes)", end.len);
        sotu_mpi_fail(MPI_ERR_TRUNCATE, "the end of the task hand-out", __FILE__, __LINE__);
    }
    bool in_run = e[0] == END_IN_RUN;
    *exit_status = e[1];
    if (in_run) {
        int *live = malloc(sizeof(int) * (size_t)e[2]);
        if (!live)
            sotu_mpi_fail(MPI_ERR_NO_MEM, "the list of live ranks", __FILE__, __LINE__);
        for (int i = 0; i < e[2]; i++)
            live[i] = e[3 + i];
        sotu_mpi_use_ranks(live, e[2], rank, nranks);
        free(live);
    } else {
        SOTU_WARN("left out of the run after answering late; ending with status %d", e[1]);
    }
    sotu_mpi_buffer_free(&end);
    return in_run;
}

void sotu_dispatch_stop_note(const sotu_dispatch *d)
{
    if (d->killing)
        fprintf(stderr, "sotu train: Open MPI's mpiexec ends the job itself on SIGTERM/SIGINT "
                "and exits 1 whatever the ranks return; start it through scripts/sotu-mpiexec "
                "to stop with exit status 75 (README, Signals)\n");
}

bool sotu_dispatch_run(sotu_dispatch *d, const sotu_dispatch_ops *ops, int *rank, int *nranks,
                       bool rank0_trains, ZSTD_CCtx *cctx, sotu_status *st, int *exit_status)
{
    if (*rank != 0)
        return sotu_dispatch_work(ops, rank, nranks, cctx, exit_status);
    *st = sotu_dispatch_serve(d, ops, nranks, rank0_trains, cctx);
    if (d->abandoned) {
        if (ops->abandon)
            ops->abandon(ops->ctx);
        fflush(stdout);
        MPI_Abort(MPI_COMM_WORLD, SOTU_EXIT_REQUEUE);
    }
    return true;
}

bool sotu_dispatch_release(sotu_dispatch *d, const sotu_dispatch_ops *ops, int rc)
{
    if (!d->workers || d->n_lost == 0)
        return true;
    sotu_mpi_buffer buf = {0};
    int released = 0;
    for (int w = 1; w < d->n_workers; w++) {
        sotu_dispatch_worker *wk = &d->workers[w];
        if (wk->state != SOTU_WORKER_LOST)
            continue;
        if (!wk->released) {
            int flag = 0;
            SOTU_MPI_CHECK(MPI_Iprobe(w, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE));
            if (!flag)
                continue;
            int tag;
            if (sotu_mpi_recv_any_on(MPI_COMM_WORLD, &buf, w, MPI_ANY_TAG, NULL, &tag) != SOTU_OK)
                continue;
            if (tag == TAG_RESULT && buf.len >= sizeof(sotu_task_report)) {
                sotu_task_report rep;
                memcpy(&rep, buf.data, sizeof rep);
                rep.rank = w;
                rep.error[sizeof rep.error - 1] = '\0';
                if (rep.task >= 0 && rep.task < d->n_jobs && d->slot[rep.task] >= 0) {
                    char name[160];
                    ops->name(ops->ctx, rep.task, name, sizeof name);
                    dispatch_duplicate(d, ops, &rep, (char *)buf.data + sizeof rep,
                                       buf.len - sizeof rep, name);
                }
            }
            int32_t end[3] = {END_LEFT_OUT, rc, 0};
            send_assign(w, -1);
            sotu_mpi_send_bytes_on(MPI_COMM_WORLD, end, sizeof end, w, TAG_END);
            wk->released = true;
            SOTU_INFO("rank %d answered after the run went on without it: told to stop", w);
        }
        released++;
    }
    sotu_mpi_buffer_free(&buf);
    return released == d->n_lost;
}

bool sotu_dispatch_report(sotu_task_report *rep, sotu_status st, const sotu_task_result *res)
{
    rep->status = st;
    if (st != SOTU_OK) {
        snprintf(rep->error, sizeof rep->error, "%s", sotu_last_error());
        return false;
    }
    rep->finetuned_acc = res->finetuned_acc;
    rep->val_acc = res->val_acc;
    rep->train_loss = res->train_loss;
    rep->seconds = res->seconds;
    rep->steps = res->steps;
    rep->scalars_bytes = res->scalars ? (int64_t)res->scalars_bytes : 0;
    return true;
}

void sotu_dispatch_free(sotu_dispatch *d)
{
    if (!d)
        return;
    sotu_queue_free(&d->queue);
    free(d->jobs);
    free(d->slot);
    free(d->workers);
    free(d->retried);
    free(d->digest);
    free(d->digest_len);
    free(d->durations);
    memset(d, 0, sizeof *d);
}
