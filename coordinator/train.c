/* `sotu train` with `method: sotu` (coordinator/train.h).
 *
 * Rank 0 coordinates: it reads θ0 once and broadcasts it, hands out tasks
 * largest first on request, verifies and persists every delta, merges them
 * in task order, and writes the checkpoint. Ranks 1..N-1 fine-tune. With one
 * rank (no mpiexec) rank 0 does everything; with mpi.coordinator_trains it
 * also fine-tunes between messages.
 *
 * A sweep (coordinator/sweep.h) makes (group x task) jobs on the one queue,
 * job j = group * T + task; every rank expands the same sweep, so a job
 * index is all a worker needs. Array mode (--array-index) runs one group or
 * one shard of its tasks and only writes deltas; `sotu merge` merges them.
 *
 * The jobs travel through coordinator/dispatch.h (its messages carry the
 * .sotud bytes here). With `method: clr` the whole command is
 * coordinator/clr/clr_train.c's, on the same hand-out.
 *
 * Stop signals (coordinator/signals.h): the coordinator answers requests
 * with -1, waits for running jobs up to the grace period, writes the
 * checkpoint of what is done and exits with SOTU_EXIT_REQUEUE (75).
 */
#include "coordinator/train.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/threads.h"
#include "coordinator/dispatch.h"
#include "coordinator/finish.h"
#include "coordinator/run.h"
#include "coordinator/schedule.h"
#include "coordinator/signals.h"
#include "coordinator/sweep.h"
#include "io/dirlock.h"
#include "io/fsutil.h"
#include "io/weights.h"
#include "mpi/mpi_util.h"
#include "worker/finetune.h"
#include "worker/task.h"

/* True on every rank iff st is OK on every rank. A failing rank prints its
 * own message (rank 0's message is the one users usually see). */
static bool all_ok(sotu_status *st, int nranks)
{
    if (*st != SOTU_OK && nranks == 1)
        SOTU_ERROR("sotu train: %s", sotu_last_error());
    return sotu_mpi_all_ok(st, nranks, "sotu train");
}

/* What every rank knows about the jobs: job j is task j % T of training
 * group j / T of the sweep. */
typedef struct {
    const sotu_sweep *sweep;
    const sotu_manifest *man;
    const vit_config *vc;
    int T;
} job_space;

static const sotu_config *job_config(const job_space *js, int job)
{
    return &js->sweep->points[js->sweep->groups[job / js->T].first_point].cfg;
}

typedef struct {
    job_space js;
    const float *theta0; /* [table.total], every rank */
    uint64_t theta0_fp;  /* its fingerprint (io/provenance.h), every rank */
    sotu_run **runs;     /* [n_groups]: the groups with jobs here, else NULL */
    sotu_dispatch d;     /* the queue over this process's jobs */
    int since_checkpoint;
    float *scratch;      /* [table.total] merged weights for periodic checkpoints */
    double t_start;      /* when the run started */
} coordinator;

/* Runs job j here (any rank), filling rep (rep->task = j) and the delta. */
static void coord_run(void *ctx, int job, int rank, ZSTD_CCtx *cctx, sotu_task_report *rep,
                      sotu_task_result *res)
{
    const coordinator *c = ctx;
    const job_space *js = &c->js;
    const float *theta0 = c->theta0;
    int t = job % js->T, g = job / js->T;
    const char *name = js->man->tasks[t].name;
    const char *label = js->sweep->points[js->sweep->groups[g].first_point].label;
    memset(rep, 0, sizeof *rep);
    rep->task = job;
    rep->rank = rank;
    SOTU_INFO("task %s%s%s (%d/%d) starts", label, label[0] ? "/" : "", name, t + 1, js->T);
    const sotu_config *cfg = job_config(js, job);
    sotu_provenance prov;
    sotu_status st = sotu_provenance_init(&prov, c->theta0_fp, cfg->model.pretrained, cfg);
    if (st == SOTU_OK)
        st = sotu_task_run(js->vc, theta0, cfg, &prov, &js->man->tasks[t], (uint32_t)t,
                           js->sweep->groups[g].keep_ship, cctx, res);
    if (!sotu_dispatch_report(rep, st, res))
        return;
    SOTU_INFO("task %s%s%s done: fine-tuned accuracy %.4f, %lld steps, %.1fs, %zu bytes", label,
              label[0] ? "/" : "", name, res->finetuned_acc, (long long)res->steps,
              res->seconds, res->message_bytes);
}

/* Rank 0: a done job's per-step scalars beside its delta. */
static void coord_scalars(void *ctx, int job, const char *text, size_t n)
{
    coordinator *c = ctx;
    int T = c->js.T;
    if (sotu_run_store_scalars(c->runs[job / T], job % T, text, n) != SOTU_OK)
        SOTU_WARN("%s; the task's training curve is left out of steps.jsonl",
                  sotu_last_error());
}

static bool coord_record(void *ctx, int job, const sotu_task_report *rep, const void *msg,
                         size_t n)
{
    coordinator *c = ctx;
    int T = c->js.T, t = job % T;
    sotu_run *run = c->runs[job / T];
    sotu_task_report r = *rep;
    r.task = t;
    bool ok = false;
    if (r.status != SOTU_OK) {
        sotu_run_fail(run, t, &r);
    } else {
        sotu_status st = sotu_run_accept(run, t, msg, n, &r, true);
        ok = st == SOTU_OK;
        /* A delta that cannot be stored for lack of space: so would the next. */
        if (st == SOTU_ERR_IO && sotu_io_out_of_space())
            sotu_dispatch_halt(&c->d, st);
    }
    if (ok && run->cfg.checkpoint.every > 0 && ++c->since_checkpoint >= run->cfg.checkpoint.every) {
        c->since_checkpoint = 0;
        sotu_status st = sotu_run_merge(run, 0, c->scratch, NULL);
        if (st == SOTU_OK)
            st = sotu_run_write_checkpoint(run, NULL, c->scratch, NULL, NULL);
        if (st != SOTU_OK)
            SOTU_ERROR("periodic checkpoint: %s (the deltas on disk are intact)",
                       sotu_last_error());
        else
            SOTU_INFO("checkpoint %s written (%d tasks merged)", run->checkpoint_path,
                      c->d.queue.n_done + 1);
    }
    return ok;
}

static void coord_name(void *ctx, int job, char *dst, size_t cap)
{
    const coordinator *c = ctx;
    int T = c->js.T;
    snprintf(dst, cap, "%s%s%s", c->js.sweep->points[c->js.sweep->groups[job / T].first_point].label,
             c->js.sweep->active ? "/" : "", c->js.man->tasks[job % T].name);
}

static void coord_event(void *ctx, int job, const char *event, void *json_object)
{
    coordinator *c = ctx;
    json_t *o = json_object;
    sotu_run *run = job >= 0 ? c->runs[job / c->js.T] : NULL;
    for (int g = 0; !run && g < c->js.sweep->n_groups; g++)
        run = c->runs[g];
    if (job >= 0)
        json_object_set_new(o, "task", json_string(c->js.man->tasks[job % c->js.T].name));
    if (run)
        sotu_run_metric(run, event, o);
    else
        json_decref(o);
}

static void coord_stopping(void *ctx, int sig, int running, int done)
{
    coordinator *c = ctx;
    for (int g = 0; g < c->js.sweep->n_groups; g++)
        if (c->runs[g])
            sotu_run_metric(c->runs[g], "stop_requested",
                            json_pack("{s:i, s:i, s:i}", "signal", sig, "running", running,
                                      "done", done));
}

/* Rank 0 reads θ0 and broadcasts config and weights; every rank checks them. */
static sotu_status load_theta0(const char *path, int rank, int nranks, vit_config *vc,
                               vit_model *base)
{
    sotu_status st = SOTU_OK;
    int cfgv[8] = {0};
    if (rank == 0) {
        st = sotu_weights_read_config(path, vc);
        if (st == SOTU_OK)
            st = vit_init(base, vc, 1);
        if (st == SOTU_OK)
            st = sotu_weights_read_into(path, SOTU_WEIGHTS_GROUP, &base->table, base->params, 0);
        if (st == SOTU_OK) {
            int v[8] = {vc->image_size, vc->channels, vc->patch, vc->dim, vc->depth, vc->heads,
                        vc->mlp_hidden, vc->classes};
            memcpy(cfgv, v, sizeof v);
        }
    }
    if (!all_ok(&st, nranks))
        return st != SOTU_OK ? st : SOTU_ERR_IO;
    sotu_mpi_bcast_bytes(cfgv, sizeof cfgv, 0);
    if (rank != 0) {
        *vc = (vit_config){cfgv[0], cfgv[1], cfgv[2], cfgv[3], cfgv[4], cfgv[5], cfgv[6], cfgv[7]};
        st = vit_init(base, vc, 1);
    }
    if (!all_ok(&st, nranks))
        return st != SOTU_OK ? st : SOTU_ERR_CONFIG;
    sotu_mpi_bcast_floats(base->params, base->num_params, 0);
    return SOTU_OK;
}

/* CPU seconds of this process (stop-path timing beside wall time, which
 * other processes' load inflates). */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* After a stop signal (rank 0): each group's checkpoint of its done tasks,
 * without evaluation (the job is about to lose its allocation), then the
 * message saying what was saved. */
static void write_stop_checkpoints(coordinator *c, double t_start)
{
    double t0 = sotu_now();
    int written = 0, groups = 0;
    const char *where = NULL;
    for (int g = 0; g < c->js.sweep->n_groups; g++) {
        sotu_run *run = c->runs[g];
        if (!run)
            continue;
        int done = 0;
        for (int t = 0; t < run->T; t++)
            done += run->tasks[t].done;
        double t_merge = sotu_now(), cpu0 = cpu_seconds();
        sotu_status st = sotu_run_merge(run, 0, c->scratch, NULL);
        double t_write = sotu_now(), cpu1 = cpu_seconds();
        if (st == SOTU_OK)
            st = sotu_run_write_checkpoint(run, NULL, c->scratch, NULL, NULL);
        if (st != SOTU_OK)
            SOTU_ERROR("checkpoint after the stop signal: %s (the deltas on disk are intact)",
                       sotu_last_error());
        else
            SOTU_INFO("checkpoint %s written (%d of %d tasks merged, not evaluated): merge %.2fs "
                      "(CPU %.2fs), write %.2fs (CPU %.2fs)", run->checkpoint_path, done, run->T,
                      t_write - t_merge, cpu1 - cpu0, sotu_now() - t_write, cpu_seconds() - cpu1);
        groups++;
        written += st == SOTU_OK;
        where = run->dir;
        sotu_run_metric(run, "run_stopped",
                        json_pack("{s:i, s:i, s:i, s:b, s:b, s:f, s:f}", "signal",
                                  c->d.stop_signal, "merged_tasks", done, "exit_status",
                                  SOTU_EXIT_REQUEUE, "abandoned", c->d.abandoned,
                                  "mpiexec_kill", c->d.killing, "stop_seconds", sotu_now() - t0,
                                  "seconds", sotu_now() - t_start));
    }
    SOTU_INFO("stop path: checkpoint%s written in %.2fs", groups == 1 ? "" : "s",
              sotu_now() - t0);
    fprintf(stderr, "sotu train: stopped by %s%s: %d of %d tasks done and kept in %s%s; %s "
            "(merged, not evaluated); run again with --resume%s\n",
            sotu_signals_name(c->d.stop_signal), c->d.killing ? " from mpiexec" : "",
            c->d.queue.n_done, c->d.queue.n_tasks, groups == 1 && where ? where : c->js.sweep->dir,
            groups == 1 ? "/deltas" : "/points/*/deltas",
            written == groups ? (groups == 1 ? "checkpoint.h5 written" : "checkpoints written")
                              : "the checkpoint could NOT be written (see above)",
            c->d.killing ? "" : " (exit status 75)");
    sotu_dispatch_stop_note(&c->d);
}

/* ops->abandon: workers are still busy, no collective can run. */
static void coord_abandon(void *ctx)
{
    coordinator *c = ctx;
    write_stop_checkpoints(c, c->t_start);
}

/* Rank 0: locks every run directory this process writes (io/dirlock.h):
 * the sweep's and its points' (only group only_group's in array mode), as
 * array element `element` (-1: a whole run). */
static sotu_status lock_run_dirs(const sotu_sweep *sw, int only_group, int element)
{
    sotu_status st = sotu_dir_lock(sw->dir, element);
    for (int p = 0; st == SOTU_OK && sw->active && p < sw->n_points; p++)
        if (only_group < 0 || sw->points[p].group == only_group)
            st = sotu_dir_lock(sw->points[p].cfg.output.dir, element);
    return st;
}
int sotu_train(const sotu_config *cfg, const sotu_train_options *opt, int rank, int nranks)
{
    bool resume = opt->resume, retrain_changed = opt->retrain_changed;
    bool array_mode = opt->array_mode, print_array_size = opt->print_array_size;
    int element = opt->element, shard_count = opt->shard_count;
    int rc = SOTU_EXIT_OK;
    sotu_status st = SOTU_OK;
    sotu_manifest man = {0};
    sotu_sweep sw = {0};
    vit_config vc;
    vit_model base = {0};
    sotu_run run = {0};
    coordinator c = {0};
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    double t_start = sotu_now();
    sotu_dispatch_ops ops = {.ctx = &c, .run = coord_run, .record = coord_record,
                             .scalars = coord_scalars,
                             .name = coord_name, .stopping = coord_stopping,
                             .event = coord_event, .abandon = coord_abandon};

    st = cctx ? sotu_manifest_read(cfg->data.manifest, &man)
              : sotu_error(SOTU_ERR_NOMEM, "zstd compression context");
    /* Before any training: a task file that contradicts the manifest. */
    if (st == SOTU_OK && rank == 0)
        st = sotu_manifest_check_files(&man, true);
    if (st == SOTU_OK)
        st = sotu_sweep_expand(cfg, man.n_tasks, &sw);
    if (!all_ok(&st, nranks))
        goto done;
    int n_elements = sw.n_groups * shard_count;
    if (print_array_size) {
        if (rank == 0)
            printf("%d\n", n_elements);
        goto done;
    }
    if (array_mode && (element < 0 || element >= n_elements)) {
        st = sotu_error(SOTU_ERR_USAGE, "array index %d (--array-index or SLURM_ARRAY_TASK_ID) "
                        "is outside 0..%d: %d training group%s x %d shard%s (--shard-count); "
                        "submit with --array=0-%d", element, n_elements - 1, sw.n_groups,
                        sw.n_groups == 1 ? "" : "s", shard_count, shard_count == 1 ? "" : "s",
                        n_elements - 1);
        if (rank == 0)
            fprintf(stderr, "sotu train: %s\n", sotu_last_error());
        goto done;
    }
    /* Before anything is read or written there: another run in any of the
     * directories this one writes refuses this one (exit status 2). */
    if (rank == 0)
        st = lock_run_dirs(&sw, array_mode ? element / shard_count : -1, array_mode ? element : -1);
    if (!all_ok(&st, nranks))
        goto done;
    if ((st = load_theta0(cfg->model.pretrained, rank, nranks, &vc, &base)) != SOTU_OK)
        goto done;
    int n_tasks = man.n_tasks, only_group = array_mode ? element / shard_count : -1;
    int shard = array_mode ? element % shard_count : 0;
    c.js = (job_space){.sweep = &sw, .man = &man, .vc = &vc, .T = n_tasks};
    c.theta0 = base.params;
    c.d.n_jobs = sw.n_groups * n_tasks;
    c.d.task_timeout = cfg->mpi.task_timeout;
    c.runs = calloc((size_t)sw.n_groups, sizeof *c.runs);
    st = c.runs ? SOTU_OK : sotu_error(SOTU_ERR_NOMEM, "run state of %d groups", sw.n_groups);
    /* Group 0's run on every rank: the single-run evaluation below uses it. */
    if (st == SOTU_OK && rank == 0 && only_group <= 0)
        st = sotu_sweep_prepare_group(&sw, 0);
    if (st == SOTU_OK)
        st = sotu_run_init(&run, &sw.points[sw.groups[0].first_point].cfg, &man, &vc, &base.table,
                           base.params, rank == 0 && only_group <= 0);
    c.theta0_fp = run.prov.theta0;
    for (int g = 0; st == SOTU_OK && rank == 0 && g < sw.n_groups; g++) {
        if (only_group >= 0 && g != only_group)
            continue;
        if (g == 0) {
            c.runs[0] = &run;
        } else if (!(c.runs[g] = calloc(1, sizeof(sotu_run)))) {
            st = sotu_error(SOTU_ERR_NOMEM, "run state of group %d", g);
        } else if ((st = sotu_sweep_prepare_group(&sw, g)) == SOTU_OK) {
            st = sotu_run_init(c.runs[g], &sw.points[sw.groups[g].first_point].cfg, &man, &vc,
                               &base.table, base.params, true);
        }
        if (st == SOTU_OK)
            c.runs[g]->retrain_changed = retrain_changed;
        if (st == SOTU_OK && c.runs[g]->keep_ship != sw.groups[g].keep_ship)
            st = sotu_error(SOTU_ERR_INTERNAL, "group %d: the run ships at keep %g, the sweep "
                            "at %g", g, c.runs[g]->keep_ship, sw.groups[g].keep_ship);
        int on_disk = st == SOTU_OK ? sotu_run_count_delta_files(c.runs[g]) : 0;
        if (on_disk > 0 && !resume && !array_mode)
            st = sotu_error(SOTU_ERR_USAGE, "%s already holds %d task deltas of an earlier run: "
                            "add --resume to keep them and train the rest, or choose another "
                            "output.dir", c.runs[g]->deltas_dir, on_disk);
    }
    if (!all_ok(&st, nranks))
        goto done;
    if (rank == 0)
        SOTU_INFO("run %s: %d tasks x %d training group%s (%d sweep points)%s, %d ranks (%s), "
                  "%zu parameters, keep %g (shipped at %g), %d threads per rank", sw.dir, n_tasks,
                  sw.n_groups, sw.n_groups == 1 ? "" : "s", sw.n_points,
                  array_mode ? " [array element]" : "", nranks,
                  nranks == 1 ? "serial" : "rank 0 coordinates", run.table.total, run.keeps[0],
                  run.keep_ship, sotu_threads_get());

    if (rank == 0) {
        int n_jobs = 0, loaded_total = 0;
        int64_t *sizes = malloc(sizeof *sizes * (size_t)sw.n_groups * (size_t)n_tasks);
        c.d.jobs = malloc(sizeof(int) * (size_t)sw.n_groups * (size_t)n_tasks);
        c.d.slot = malloc(sizeof(int) * (size_t)sw.n_groups * (size_t)n_tasks);
        c.scratch = malloc(sizeof(float) * run.table.total);
        if (!sizes || !c.d.jobs || !c.d.slot || !c.scratch)
            st = sotu_error(SOTU_ERR_NOMEM, "task queue");
        for (int g = 0; st == SOTU_OK && g < sw.n_groups; g++) {
            for (int t = 0; t < n_tasks; t++)
                c.d.slot[g * n_tasks + t] = -1;
            if (!c.runs[g])
                continue;
            int loaded = 0;
            if ((resume || array_mode) && (st = sotu_run_load_deltas(c.runs[g], &loaded)) == SOTU_OK &&
                loaded)
                SOTU_INFO("resume: %d of %d tasks of %s already done, verified and kept", loaded,
                          n_tasks, c.runs[g]->dir);
            for (int t = 0; t < n_tasks; t++) {
                if (array_mode && t % shard_count != shard)
                    continue;
                c.d.slot[g * n_tasks + t] = n_jobs;
                c.d.jobs[n_jobs] = g * n_tasks + t;
                sizes[n_jobs++] = man.tasks[t].n_train;
            }
        }
        /* Only now: the stored deltas verified against this configuration. */
        for (int g = 0; st == SOTU_OK && g < sw.n_groups; g++)
            if (c.runs[g])
                st = sotu_run_write_config(c.runs[g]);
        if (st == SOTU_OK && sw.active)
            st = sotu_sweep_write_config(&sw, cfg);
        if (st == SOTU_OK)
            st = sotu_queue_init(&c.d.queue, n_jobs, sizes);
        free(sizes);
        for (int q = 0; st == SOTU_OK && q < n_jobs; q++) {
            int g = c.d.jobs[q] / n_tasks, t = c.d.jobs[q] % n_tasks;
            if (c.runs[g]->tasks[t].done) {
                sotu_queue_mark_done(&c.d.queue, q);
                loaded_total++;
            }
        }
        for (int g = 0; st == SOTU_OK && g < sw.n_groups; g++) {
            if (!c.runs[g])
                continue;
            json_t *ev = json_pack("{s:i, s:i, s:f, s:b, s:i, s:i, s:i}", "tasks", n_tasks,
                                  "ranks", nranks, "keep", c.runs[g]->keeps[0], "resume", resume,
                                  "jobs", n_jobs, "jobs_done", loaded_total, "array_element",
                                  element);
            sotu_run_provenance_json(&c.runs[g]->prov, c.runs[g]->manifest_xxh64, ev);
            sotu_run_metric(c.runs[g], "run_start", ev);
        }
    }
    if (!all_ok(&st, nranks))
        goto done;

    c.t_start = t_start;
    int left_out_status;
    if (!sotu_dispatch_run(&c.d, &ops, &rank, &nranks, nranks == 1 || cfg->mpi.coordinator_trains,
                           cctx, &st, &left_out_status)) {
        rc = left_out_status;
        goto cleanup;
    }
    /* From here on the collectives run over the live ranks (rank numbers
     * may have changed: rank 0 stays 0). */
    if (!all_ok(&st, nranks))
        goto done;
    /* 0: merge and evaluate; 1: stopped by a signal; 2: array element;
     * 3: halted, the output disk is full. */
    int phase = c.d.halted ? 3 : c.d.stop_signal ? 1 : array_mode ? 2 : 0;
    sotu_mpi_bcast_bytes(&phase, sizeof phase, 0);
    if (phase == 3) {
        if (rank == 0)
            fprintf(stderr, "sotu train: %s\nsotu train: stopped: the output takes no more "
                    "results (full disk, quota or file-size limit); %d of %d tasks are done and "
                    "kept (their deltas stay valid for --resume), nothing was merged. Free "
                    "space, then run again with --resume (exit status %d)\n", c.d.halt_reason,
                    c.d.queue.n_done, c.d.queue.n_tasks, SOTU_EXIT_IO);
        rc = SOTU_EXIT_IO;
        goto cleanup;
    }
    if (phase == 1) {
        if (rank == 0)
            write_stop_checkpoints(&c, t_start);
        all_ok(&(sotu_status){SOTU_OK}, nranks);
        rc = SOTU_EXIT_REQUEUE;
        goto cleanup;
    }
    if (phase == 2) {
        if (rank == 0) {
            printf("array element %d (group %d of %d, shard %d of %d): %d of %d tasks done, "
                   "%d failed; deltas in %s; merge with `sotu merge %s`\n", element,
                   only_group, sw.n_groups, shard, shard_count, c.d.queue.n_done, c.d.queue.n_tasks,
                   c.d.queue.n_failed, c.runs[only_group]->deltas_dir,
                   sw.active ? sw.dir : c.runs[only_group]->dir);
            if (c.d.queue.n_failed)
                st = sotu_error(SOTU_ERR_DATA, "%d of %d tasks of array element %d failed (see "
                                "the log); rerun the element to train them", c.d.queue.n_failed,
                                c.d.queue.n_tasks, element);
        }
        goto finish;
    }
    if (sw.active) {
        st = sotu_finish_sweep(&sw, &man, &vc, &base.table, base.params, rank, nranks, NULL);
        if (st == SOTU_OK && rank == 0 && c.d.queue.n_failed)
            st = sotu_error(SOTU_ERR_DATA, "%d of %d jobs failed (see the log and metrics.jsonl "
                            "of the points); rerun with --resume to train them", c.d.queue.n_failed,
                            c.d.queue.n_tasks);
        goto finish;
    }

    double mean_acc;
    int n_done;
    st = sotu_finish_run(&run, rank, nranks, t_start, c.d.queue.n_done, c.d.queue.n_failed,
                         &mean_acc, NULL, &n_done);
    if (st != SOTU_OK) {
        /* Under mpiexec the failing rank said it (sotu_mpi_all_ok); alone,
         * nobody has yet. */
        if (nranks == 1)
            fprintf(stderr, "sotu train: %s\n", sotu_last_error());
        goto done;
    }
    if (rank == 0 && c.d.queue.n_failed)
        st = sotu_error(SOTU_ERR_DATA, "%d of %d tasks failed (see the log above and "
                        "metrics.jsonl); the rest were merged. Rerun with --resume to "
                        "train the failed ones", c.d.queue.n_failed, run.T);
finish:
    /* Only rank 0 got here with a new failure; it reports it itself. */
    if (st != SOTU_OK)
        fprintf(stderr, "sotu train: %s\n", sotu_last_error());
    all_ok(&(sotu_status){SOTU_OK}, nranks);

done:
    rc = st == SOTU_OK ? SOTU_EXIT_OK : sotu_exit_code(st);
cleanup:;
    /* A rank left out that answered since is told to stop with rc. */
    bool released = sotu_dispatch_release(&c.d, &ops, rc);
    free(c.scratch);
    for (int g = 1; c.runs && g < sw.n_groups; g++) {
        sotu_run_free(c.runs[g]);
        free(c.runs[g]);
    }
    free(c.runs);
    sotu_sweep_free(&sw);
    sotu_dispatch_free(&c.d);
    sotu_run_free(&run);
    vit_free(&base);
    sotu_manifest_free(&man);
    ZSTD_freeCCtx(cctx);
    return sotu_mpi_end(rc, released);
}
