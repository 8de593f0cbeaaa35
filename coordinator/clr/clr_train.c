#include "coordinator/clr/clr_train.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/threads.h"
#include "coordinator/clr/clr_eval.h"
#include "coordinator/clr/clr_run.h"
#include "coordinator/dispatch.h"
#include "coordinator/finish.h"
#include "mpi/mpi_util.h"
#include "coordinator/signals.h"
#include "io/dirlock.h"
#include "io/fsutil.h"
#include "io/weights.h"
#include "worker/resnet.h"

/* Module jobs sort before every baseline job in the largest-first queue. */
#define CLR_MODULE_PRIORITY ((int64_t)1 << 40)

typedef struct {
    clr_run *run;            /* rank 0's state; the others' for evaluation */
    const resnet_model *base;
    const sotu_config *cfg;
    const sotu_manifest *man;
    int T;
    sotu_dispatch d;
    double t_start;          /* when the run started */
} clr_coordinator;

static void job_split(const clr_coordinator *c, int job, clr_job_kind *kind, int *t)
{
    *kind = (clr_job_kind)(job / c->T);
    *t = job % c->T;
}

static void clr_job_run(void *ctx, int job, int rank, ZSTD_CCtx *cctx, sotu_task_report *rep,
                        sotu_task_result *res)
{
    const clr_coordinator *c = ctx;
    clr_job_kind kind;
    int t;
    job_split(c, job, &kind, &t);
    const char *name = c->man->tasks[t].name;
    memset(rep, 0, sizeof *rep);
    rep->task = job;
    rep->rank = rank;
    SOTU_INFO("task %s (%s, %d/%d) starts", name, clr_job_kind_name(kind), t + 1, c->T);
    sotu_status st = sotu_clr_task_run(c->base, c->cfg, &c->run->prov, &c->man->tasks[t],
                                       (uint32_t)t, kind, cctx, res);
    if (!sotu_dispatch_report(rep, st, res))
        return;
    SOTU_INFO("task %s (%s) trained: test accuracy %.4f, %lld steps, %.1fs, %zu bytes", name,
              clr_job_kind_name(kind), res->finetuned_acc, (long long)res->steps, res->seconds,
              res->message_bytes);
}

static bool clr_job_record(void *ctx, int job, const sotu_task_report *rep, const void *msg,
                           size_t n)
{
    clr_coordinator *c = ctx;
    clr_job_kind kind;
    int t;
    job_split(c, job, &kind, &t);
    sotu_task_report r = *rep;
    r.task = t;
    if (r.status != SOTU_OK) {
        clr_run_fail(c->run, kind, t, &r);
        return false;
    }
    sotu_status st = clr_run_accept(c->run, kind, t, msg, n, &r, true);
    /* A module that cannot be stored for lack of space: so would the next. */
    if (st == SOTU_ERR_IO && sotu_io_out_of_space())
        sotu_dispatch_halt(&c->d, st);
    return st == SOTU_OK;
}

static void clr_job_name(void *ctx, int job, char *dst, size_t cap)
{
    const clr_coordinator *c = ctx;
    clr_job_kind kind;
    int t;
    job_split(c, job, &kind, &t);
    snprintf(dst, cap, "%s (%s)", c->man->tasks[t].name, clr_job_kind_name(kind));
}

static void clr_job_event(void *ctx, int job, const char *event, void *json_object)
{
    clr_coordinator *c = ctx;
    json_t *o = json_object;
    if (job >= 0) {
        clr_job_kind kind;
        int t;
        job_split(c, job, &kind, &t);
        json_object_set_new(o, "task", json_string(c->man->tasks[t].name));
        json_object_set_new(o, "job", json_string(clr_job_kind_name(kind)));
    }
    clr_run_metric(c->run, event, o);
}

static void clr_job_stopping(void *ctx, int sig, int running, int done)
{
    clr_coordinator *c = ctx;
    clr_run_metric(c->run, "stop_requested",
                   json_pack("{s:i, s:i, s:i}", "signal", sig, "running", running, "done", done));
}

/* Rank 0 reads the backbone and broadcasts its config, parameters, running
 * statistics and counter; every rank ends with the same plain model. */
static sotu_status load_backbone(const char *path, int rank, int nranks, resnet_model *base)
{
    sotu_status st = SOTU_OK;
    int v[6] = {0};
    if (rank == 0) {
        char arch[16];
        resnet_config rc;
        st = sotu_weights_arch(path, arch, sizeof arch);
        if (st == SOTU_OK && strcmp(arch, "resnet"))
            st = sotu_error(SOTU_ERR_CONFIG, "model.pretrained: %s holds a %s; method clr needs a "
                            "ResNet backbone (sotu pretrain with model.arch resnet18, or sotu "
                            "import of torchvision weights)", path, arch);
        if (st == SOTU_OK)
            st = resnet_weights_read_config(path, &rc);
        if (st == SOTU_OK) {
            rc.clr = RESNET_CLR_NONE;
            st = resnet_init(base, &rc, 1);
        }
        if (st == SOTU_OK)
            st = resnet_weights_read(path, SOTU_WEIGHTS_GROUP, base);
        if (st == SOTU_OK) {
            int w[6] = {rc.depth, rc.width, rc.channels, rc.image_size, rc.classes,
                        rc.small_input};
            memcpy(v, w, sizeof v);
        }
    }
    if (!sotu_mpi_all_ok(&st, nranks, "train"))
        return st;
    if (nranks == 1)
        return SOTU_OK;
    sotu_mpi_bcast_bytes(v, sizeof v, 0);
    if (rank != 0) {
        resnet_config rc = {.depth = v[0], .width = v[1], .channels = v[2], .image_size = v[3],
                            .classes = v[4], .small_input = v[5] != 0,
                            .clr = RESNET_CLR_NONE};
        st = resnet_init(base, &rc, 1);
    }
    if (!sotu_mpi_all_ok(&st, nranks, "train"))
        return st;
    sotu_mpi_bcast_floats(base->params, base->num_params, 0);
    sotu_mpi_bcast_floats(base->running, base->buffers.total, 0);
    sotu_mpi_bcast_bytes(&base->num_batches_tracked, sizeof base->num_batches_tracked, 0);
    return SOTU_OK;
}

/* Rank 0: the queue over the run's jobs, skipping the ones already done. */
static sotu_status queue_build(clr_coordinator *c)
{
    clr_run *run = c->run;
    int T = c->T, n_all = CLR_JOB_KINDS * T, n = 0;
    int64_t *sizes = malloc(sizeof *sizes * (size_t)n_all);
    c->d.n_jobs = n_all;
    c->d.jobs = malloc(sizeof(int) * (size_t)n_all);
    c->d.slot = malloc(sizeof(int) * (size_t)n_all);
    if (!sizes || !c->d.jobs || !c->d.slot) {
        free(sizes);
        return sotu_error(SOTU_ERR_NOMEM, "task queue of %d jobs", n_all);
    }
    for (int job = 0; job < n_all; job++) {
        clr_job_kind kind;
        int t;
        job_split(c, job, &kind, &t);
        c->d.slot[job] = -1;
        if (!run->want[kind])
            continue;
        c->d.slot[job] = n;
        c->d.jobs[n] = job;
        sizes[n++] = c->man->tasks[t].n_train + (kind == CLR_JOB_MODULE ? CLR_MODULE_PRIORITY : 0);
    }
    sotu_status st = sotu_queue_init(&c->d.queue, n, sizes);
    free(sizes);
    for (int q = 0; st == SOTU_OK && q < n; q++) {
        clr_job_kind kind;
        int t;
        job_split(c, c->d.jobs[q], &kind, &t);
        if (run->tasks[t].done[kind])
            sotu_queue_mark_done(&c->d.queue, q);
    }
    return st;
}

/* Rank 0 after a stop signal: the modules done so far, not evaluated, and
 * the message saying what was saved. */
static void write_stop_checkpoint(clr_coordinator *c, int sig, double t_start)
{
    clr_run *run = c->run;
    double t0 = sotu_now();
    int done = 0;
    for (int t = 0; t < run->T; t++)
        done += run->tasks[t].done[CLR_JOB_MODULE];
    sotu_status st = clr_write_checkpoint(run, NULL, NULL, NULL, NULL);
    if (st != SOTU_OK)
        SOTU_ERROR("checkpoint after the stop signal: %s (the modules on disk are intact)",
                   sotu_last_error());
    else
        SOTU_INFO("checkpoint %s written (%d of %d modules, not evaluated)", run->checkpoint_path,
                  done, run->T);
    clr_run_metric(run, "run_stopped",
                   json_pack("{s:i, s:i, s:i, s:b, s:b, s:f, s:f}", "signal", sig, "modules",
                             done, "exit_status", SOTU_EXIT_REQUEUE, "abandoned", c->d.abandoned,
                             "mpiexec_kill", c->d.killing, "stop_seconds", sotu_now() - t0,
                             "seconds", sotu_now() - t_start));
    fprintf(stderr, "sotu train: stopped by %s%s: %d of %d jobs done and kept in %s; %s (not "
            "evaluated); run again with --resume%s\n", sotu_signals_name(sig),
            c->d.killing ? " from mpiexec" : "", c->d.queue.n_done, c->d.queue.n_tasks,
            run->dir, st == SOTU_OK ? "checkpoint.h5 written" : "the checkpoint could NOT be "
            "written (see above)", c->d.killing ? "" : " (exit status 75)");
    sotu_dispatch_stop_note(&c->d);
}

/* ops->abandon: workers are still busy, no collective can run. */
static void clr_job_abandon(void *ctx)
{
    clr_coordinator *c = ctx;
    write_stop_checkpoint(c, c->d.stop_signal, c->t_start);
}

/* Rank 0: evaluation figures, outputs and the final table. */
static sotu_status finish(clr_coordinator *c, const double *acc, int nranks, double t_start)
{
    clr_run *run = c->run;
    clr_cost cost;
    sotu_eval_report rep = {0};
    sotu_status st = clr_cost_compute(run, &cost);
    if (st == SOTU_OK)
        st = clr_eval_report(run, acc, &rep);
    if (st == SOTU_OK)
        st = clr_write_outputs(run, acc, &rep, &cost, nranks, sotu_now() - t_start);
    if (st == SOTU_OK) {
        const sotu_eval_method *m = sotu_eval_report_find(&rep, "clr");
        sotu_run_end e = {
            .method = "clr", .tasks = run->T, .merged_tasks = -1, .jobs_done = c->d.queue.n_done,
            .failed_jobs = c->d.queue.n_failed,
            .final_avg_acc = m ? m->metrics[SOTU_EV_TASK_HEADS].final_avg_acc : NAN,
            .merged_acc = NAN, .merged_val_acc = NAN, .collision_rate = NAN, .added_params_pct = cost.added_pct,
            .flops_ratio = cost.flops_ratio, .seconds = sotu_now() - t_start};
        clr_print_table(run, acc, &cost, stdout);
        st = sotu_finish_end(run->metrics, &e, &rep, run->checkpoint_path, run->dir);
    }
    sotu_eval_report_free(&rep);
    if (st == SOTU_OK && c->d.queue.n_failed)
        st = sotu_error(SOTU_ERR_DATA, "%d of %d jobs failed (see the log above and "
                        "metrics.jsonl); the rest were evaluated. Rerun with --resume to train "
                        "the failed ones", c->d.queue.n_failed, c->d.queue.n_tasks);
    return st;
}

int sotu_clr_train(const sotu_config *cfg, bool resume, bool retrain_changed, bool array_mode,
                   int rank, int nranks)
{
    double t_start = sotu_now();
    sotu_status st = SOTU_OK;
    sotu_manifest man = {0};
    resnet_model base = {0};
    clr_run run = {0};
    clr_coordinator c = {.run = &run, .base = &base, .cfg = cfg, .man = &man};
    sotu_dispatch_ops ops = {.ctx = &c, .run = clr_job_run, .record = clr_job_record,
                             .name = clr_job_name, .stopping = clr_job_stopping,
                             .event = clr_job_event, .abandon = clr_job_abandon};
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    double *acc = NULL;
    int rc = SOTU_EXIT_OK;
    bool reported = false;

    if (cfg->n_sweep > 0 || array_mode)
        st = sotu_error(SOTU_ERR_USAGE, "method clr: %s is SoTU's only; run one CLR job per "
                        "configuration", array_mode ? "array mode" : "a sweep: block");
    else if (!cctx)
        st = sotu_error(SOTU_ERR_NOMEM, "zstd compression context");
    else
        st = sotu_manifest_read(cfg->data.manifest, &man);
    if (st == SOTU_OK && rank == 0)
        st = sotu_manifest_check_files(&man, true);
    if (!sotu_mpi_all_ok(&st, nranks, "train"))
        goto done;
    c.T = man.n_tasks;
    /* Before anything is written there (io/dirlock.h). */
    if (rank == 0)
        st = sotu_dir_lock(cfg->output.dir, -1);
    if (!sotu_mpi_all_ok(&st, nranks, "train"))
        goto done;
    if ((st = load_backbone(cfg->model.pretrained, rank, nranks, &base)) != SOTU_OK)
        goto done;
    st = clr_run_init(&run, cfg, &man, &base, rank == 0);
    run.retrain_changed = retrain_changed;
    if (st == SOTU_OK && rank == 0) {
        int on_disk = clr_run_count_module_files(&run), loaded = 0;
        if (on_disk > 0 && !resume)
            st = sotu_error(SOTU_ERR_USAGE, "%s already holds %d task modules of an earlier "
                            "run: add --resume to keep them and train the rest, or choose "
                            "another output.dir", run.modules_dir, on_disk);
        else if (resume && (st = clr_run_load(&run, &loaded)) == SOTU_OK && loaded)
            SOTU_INFO("resume: %d jobs of %s already done, verified and kept", loaded, run.dir);
        /* Only now: the stored modules verified against this configuration. */
        if (st == SOTU_OK)
            st = clr_run_write_config(&run);
        if (st == SOTU_OK)
            st = queue_build(&c);
    }
    if (!sotu_mpi_all_ok(&st, nranks, "train"))
        goto done;
    if (rank == 0) {
        resnet_param_counts pc = resnet_count_params(&base);
        SOTU_INFO("run %s: method clr (%s), %d tasks, %d jobs (%d done), %d ranks (%s), ResNet-%d "
                  "width %d backbone of %zu parameters, %d threads per rank", run.dir,
                  resnet_clr_name(run.clr), run.T, c.d.queue.n_tasks, c.d.queue.n_done, nranks,
                  nranks == 1 ? "serial" : "rank 0 coordinates", base.cfg.depth, base.cfg.width,
                  pc.backbone, sotu_threads_get());
        json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:b, s:i, s:i}", "method", "clr", "variant",
                              resnet_clr_name(run.clr), "tasks", run.T, "ranks", nranks, "resume",
                              resume, "jobs", c.d.queue.n_tasks, "jobs_done", c.d.queue.n_done);
        sotu_run_provenance_json(&run.prov, run.manifest_xxh64, o);
        clr_run_metric(&run, "run_start", o);
    }

    c.d.task_timeout = cfg->mpi.task_timeout;
    c.t_start = t_start;
    int left_out_status;
    if (!sotu_dispatch_run(&c.d, &ops, &rank, &nranks, nranks == 1 || cfg->mpi.coordinator_trains,
                           cctx, &st, &left_out_status)) {
        rc = left_out_status;
        goto cleanup;
    }
    /* From here on the collectives run over the live ranks. */
    if (!sotu_mpi_all_ok(&st, nranks, "train"))
        goto done;
    int stopped = c.d.halted ? -1 : c.d.stop_signal;
    if (nranks > 1)
        sotu_mpi_bcast_bytes(&stopped, sizeof stopped, 0);
    if (stopped < 0) {
        if (rank == 0)
            fprintf(stderr, "sotu train: %s\nsotu train: stopped: the output takes no more "
                    "results (full disk, quota or file-size limit); %d of %d jobs are done and "
                    "kept (their modules stay valid for --resume), nothing was evaluated. Free "
                    "space, then run again with --resume (exit status %d)\n", c.d.halt_reason,
                    c.d.queue.n_done, c.d.queue.n_tasks, SOTU_EXIT_IO);
        rc = SOTU_EXIT_IO;
        goto cleanup;
    }
    if (stopped) {
        if (rank == 0)
            write_stop_checkpoint(&c, stopped, t_start);
        rc = SOTU_EXIT_REQUEUE;
        goto cleanup;
    }

    acc = malloc(sizeof(double) * (size_t)run.T);
    st = acc ? SOTU_OK : sotu_error(SOTU_ERR_NOMEM, "accuracies of %d tasks", run.T);
    if (!sotu_mpi_all_ok(&st, nranks, "train"))
        goto done;
    if ((st = clr_evaluate(&run, rank, nranks, acc)) != SOTU_OK)
        goto done;
    if (rank == 0 && (st = finish(&c, acc, nranks, t_start)) != SOTU_OK) {
        fprintf(stderr, "sotu train: %s\n", sotu_last_error());
        reported = true;
    }
    /* Only rank 0 can have failed here, and it has said why. */
    if (nranks > 1)
        sotu_mpi_bcast_bytes(&st, sizeof st, 0);

done:
    rc = st == SOTU_OK ? SOTU_EXIT_OK : sotu_exit_code(st);
    if (st != SOTU_OK && rank == 0 && !reported)
        fprintf(stderr, "sotu train: %s\n", sotu_last_error());
cleanup:;
    /* A rank left out that answered since is told to stop with rc. */
    bool released = sotu_dispatch_release(&c.d, &ops, rc);
    free(acc);
    sotu_dispatch_free(&c.d);
    clr_run_free(&run);
    resnet_free(&base);
    sotu_manifest_free(&man);
    ZSTD_freeCCtx(cctx);
    return sotu_mpi_end(rc, released);
}
