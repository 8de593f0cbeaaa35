/* `sotu train CONFIG [--set ...] [--resume]`: the main job.
 *
 * Rank 0 coordinates: it reads θ0 once and broadcasts it, hands out tasks
 * largest first on request, verifies and persists every delta, merges them
 * in task order, and writes the checkpoint. Ranks 1..N-1 fine-tune. With one
 * rank (no mpiexec) rank 0 does everything; with mpi.coordinator_trains it
 * also fine-tunes between messages.
 *
 * Messages (MPI_COMM_WORLD, raw bytes; ranks are assumed to share one ABI):
 *   TAG_REQUEST  worker -> 0   empty: "give me a task"
 *   TAG_ASSIGN   0 -> worker   int32 task index, or -1: no more work
 *   TAG_RESULT   worker -> 0   sotu_task_report, then the .sotud bytes
 *                              (none when report.status != OK); also a request
 */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/threads.h"
#include "coordinator/cli.h"
#include "coordinator/commands.h"
#include "coordinator/mpi_util.h"
#include "coordinator/run.h"
#include "coordinator/schedule.h"
#include "io/weights.h"
#include "worker/finetune.h"
#include "worker/task.h"

enum { TAG_REQUEST = 11, TAG_ASSIGN = 12, TAG_RESULT = 13 };

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: [mpiexec -n N | srun --mpi=pmix] sotu train CONFIG [--set key=value ...]\n"
            "                  [--resume] [--print-config]\n"
            "Fine-tunes every task of data.manifest from model.pretrained (rank 0 coordinates,\n"
            "ranks 1..N-1 fine-tune), merges the sparse deltas and writes output.dir:\n"
            "  checkpoint.h5, deltas/<task>.sotud, metrics.jsonl, config.yaml.\n"
            "--resume  keep every delta already in output.dir/deltas that verifies and train\n"
            "          only the rest (automatic when Slurm restarts the job).\n");
}

/* True on every rank iff st is OK on every rank. A failing rank prints its
 * own message (rank 0's message is the one users usually see). */
static bool all_ok(sotu_status st, const char *cmd)
{
    int bad = st != SOTU_OK, any = 0;
    if (bad)
        SOTU_ERROR("sotu %s: %s", cmd, sotu_last_error());
    SOTU_MPI_CHECK(MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    return !any;
}

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

/* Runs task t here (any rank), filling rep and the encoded delta. */
static void run_task_here(const sotu_run *run, const float *theta0, int t, int rank,
                          ZSTD_CCtx *cctx, sotu_task_report *rep, sotu_task_result *res)
{
    memset(rep, 0, sizeof *rep);
    rep->task = t;
    rep->rank = rank;
    SOTU_INFO("task %s (%d/%d) starts", run->man.tasks[t].name, t + 1, run->T);
    sotu_status st = sotu_task_run(&run->vc, theta0, &run->cfg, &run->man.tasks[t], (uint32_t)t,
                                   run->keep_ship, cctx, res);
    rep->status = st;
    if (st != SOTU_OK) {
        snprintf(rep->error, sizeof rep->error, "%s", sotu_last_error());
        return;
    }
    rep->finetuned_acc = res->finetuned_acc;
    rep->train_loss = res->train_loss;
    rep->seconds = res->seconds;
    rep->steps = res->steps;
    SOTU_INFO("task %s done: fine-tuned accuracy %.4f, %lld steps, %.1fs, %zu bytes",
              run->man.tasks[t].name, res->finetuned_acc, (long long)res->steps, res->seconds,
              res->message_bytes);
}

typedef struct {
    sotu_run *run;
    sotu_queue queue;
    sotu_progress progress;
    int since_checkpoint;
    float *scratch; /* [table.total] merged weights for periodic checkpoints */
} coordinator;

static void coordinator_record(coordinator *c, const sotu_task_report *rep, const void *msg,
                               size_t n)
{
    sotu_run *run = c->run;
    int t = rep->task;
    bool ok = false;
    if (t < 0 || t >= run->T || c->queue.state[t] != SOTU_TASK_RUNNING) {
        SOTU_ERROR("result for task %d from rank %d was not expected; ignored", t, rep->rank);
        return;
    }
    if (rep->status != SOTU_OK)
        sotu_run_fail(run, t, rep);
    else
        ok = sotu_run_accept(run, t, msg, n, rep, true) == SOTU_OK;
    sotu_queue_finish(&c->queue, t, ok);
    double elapsed = sotu_now() - c->queue.started[t];
    SOTU_INFO("task %s %s on rank %d after %.1fs (%d done, %d failed, %d running)",
              run->man.tasks[t].name, ok ? "merged in" : "FAILED", rep->rank, elapsed,
              c->queue.n_done, c->queue.n_failed, c->queue.n_running);
    char extra[64];
    snprintf(extra, sizeof extra, "%d failed", c->queue.n_failed);
    sotu_progress_update(&c->progress, c->queue.n_done + c->queue.n_failed, extra);

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
                      c->queue.n_done);
    }
}

/* Answers a worker's request: its next task, or -1 (the worker then stops). */
static bool coordinator_assign(coordinator *c, int worker)
{
    int t = sotu_queue_take(&c->queue, worker, sotu_now());
    int32_t msg = t;
    SOTU_MPI_CHECK(MPI_Send(&msg, 1, MPI_INT32_T, worker, TAG_ASSIGN, MPI_COMM_WORLD));
    if (t >= 0)
        SOTU_DEBUG("task %s -> rank %d", c->run->man.tasks[t].name, worker);
    return t >= 0;
}

static sotu_status coordinator_loop(coordinator *c, int nranks, bool rank0_trains,
                                    ZSTD_CCtx *cctx)
{
    sotu_run *run = c->run;
    sotu_mpi_buffer buf = {0};
    int active = nranks - 1;
    while (active > 0 || (rank0_trains && !sotu_queue_finished(&c->queue))) {
        int flag = 1;
        bool local = rank0_trains && c->queue.next < c->queue.n_tasks;
        if (active > 0 && local)
            SOTU_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag,
                                      MPI_STATUS_IGNORE));
        if (active > 0 && flag) {
            int src, tag;
            sotu_status st = sotu_mpi_recv_any(&buf, MPI_ANY_SOURCE, MPI_ANY_TAG, &src, &tag);
            if (st != SOTU_OK) {
                sotu_mpi_buffer_free(&buf);
                return st;
            }
            if (tag == TAG_RESULT) {
                if (buf.len < sizeof(sotu_task_report)) {
                    SOTU_ERROR("rank %d sent a %zu-byte result, shorter than a report", src,
                               buf.len);
                } else {
                    sotu_task_report rep;
                    memcpy(&rep, buf.data, sizeof rep);
                    rep.rank = src;
                    rep.error[sizeof rep.error - 1] = '\0';
                    coordinator_record(c, &rep, (char *)buf.data + sizeof rep,
                                       buf.len - sizeof rep);
                }
            }
            if (!coordinator_assign(c, src))
                active--;
            continue;
        }
        int t = sotu_queue_take(&c->queue, 0, sotu_now());
        if (t < 0)
            continue;
        sotu_task_report rep;
        sotu_task_result res;
        run_task_here(run, run->theta0, t, 0, cctx, &rep, &res);
        coordinator_record(c, &rep, res.message, res.message_bytes);
        sotu_task_result_free(&res);
    }
    sotu_mpi_buffer_free(&buf);
    return SOTU_OK;
}

static void worker_loop(const sotu_run *run, const float *theta0, int rank, ZSTD_CCtx *cctx)
{
    SOTU_MPI_CHECK(MPI_Send(NULL, 0, MPI_BYTE, 0, TAG_REQUEST, MPI_COMM_WORLD));
    for (;;) {
        int32_t t;
        SOTU_MPI_CHECK(MPI_Recv(&t, 1, MPI_INT32_T, 0, TAG_ASSIGN, MPI_COMM_WORLD,
                                MPI_STATUS_IGNORE));
        if (t < 0)
            return;
        sotu_task_report rep;
        sotu_task_result res;
        run_task_here(run, theta0, t, rank, cctx, &rep, &res);
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

/* Task-head accuracy of the merged backbone on every done task's test split,
 * the tasks shared over ranks; acc[T] on rank 0 (NaN for failed tasks). */
static sotu_status evaluate_merged(const sotu_run *run, float *merged, int rank, int nranks,
                                   double *acc)
{
    int T = run->T, D = run->vc.dim;
    sotu_mpi_bcast_floats(merged, run->table.total, 0);
    float **hw = calloc((size_t)T, sizeof *hw), **hb = calloc((size_t)T, sizeof *hb);
    double *part = calloc((size_t)T, sizeof *part);
    sotu_status st = SOTU_OK;
    if (!hw || !hb || !part) {
        st = sotu_error(SOTU_ERR_NOMEM, "evaluation of %d tasks", T);
        goto cleanup; /* allocation failures abort below, on every rank alike */
    }
    for (int t = 0; t < T; t++) {
        int done = rank == 0 ? run->tasks[t].done : 0, K = run->man.tasks[t].classes;
        SOTU_MPI_CHECK(MPI_Bcast(&done, 1, MPI_INT, 0, MPI_COMM_WORLD));
        part[t] = NAN;
        if (!done)
            continue;
        hw[t] = malloc(sizeof(float) * (size_t)K * (size_t)D);
        hb[t] = malloc(sizeof(float) * (size_t)K);
        if (!hw[t] || !hb[t])
            sotu_mpi_fail(MPI_ERR_NO_MEM, "evaluation heads", __FILE__, __LINE__);
        if (rank == 0) {
            memcpy(hw[t], run->tasks[t].head_weight, sizeof(float) * (size_t)K * (size_t)D);
            memcpy(hb[t], run->tasks[t].head_bias, sizeof(float) * (size_t)K);
        }
        sotu_mpi_bcast_floats(hw[t], (size_t)K * (size_t)D, 0);
        sotu_mpi_bcast_floats(hb[t], (size_t)K, 0);
        part[t] = 0;
    }
    int64_t begin, end;
    sotu_share(T, rank, nranks, &begin, &end);
    for (int64_t t = begin; t < end && st == SOTU_OK; t++) {
        if (!hw[t])
            continue;
        sotu_taskset ts = {0};
        vit_model m = {0};
        st = sotu_taskset_read(run->man.tasks[t].path, &ts);
        if (st == SOTU_OK)
            st = vit_init(&m, &run->vc, run->cfg.train.batch_size);
        if (st == SOTU_OK) {
            memcpy(m.params, merged, run->table.total * sizeof(float));
            st = sotu_finetune_reset_head(&m, ts.classes, run->cfg.train.batch_size, 0, 0);
        }
        if (st == SOTU_OK) {
            const sotu_tensor_info *w = &m.table.t[sotu_tensor_find(&m.table, "head.weight")];
            const sotu_tensor_info *b = &m.table.t[sotu_tensor_find(&m.table, "head.bias")];
            memcpy(m.params + w->offset, hw[t], w->count * sizeof(float));
            memcpy(m.params + b->offset, hb[t], b->count * sizeof(float));
            st = sotu_finetune_eval_test(&m, &ts, &run->cfg, &part[t], NULL);
        }
        vit_free(&m);
        sotu_taskset_free(&ts);
    }
cleanup:
    if (all_ok(st, "train")) {
        /* Each task is evaluated by exactly one rank; others hold 0 or NaN. */
        double *mine = malloc(sizeof(double) * (size_t)T);
        for (int t = 0; t < T; t++) {
            int64_t b2, e2;
            sotu_share(T, rank, nranks, &b2, &e2);
            mine[t] = (t >= b2 && t < e2) ? part[t] : 0.0;
        }
        SOTU_MPI_CHECK(MPI_Reduce(mine, acc, T, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD));
        free(mine);
        st = SOTU_OK;
    } else if (st == SOTU_OK) {
        st = sotu_error(SOTU_ERR_INTERNAL, "evaluation failed on another rank");
    }
    for (int t = 0; hw && t < T; t++) {
        free(hw[t]);
        free(hb[t]);
    }
    free(hw);
    free(hb);
    free(part);
    return st;
}

/* Rank 0 reads θ0 and broadcasts config and weights; every rank checks them. */
static sotu_status load_theta0(const char *path, int rank, vit_config *vc, vit_model *base)
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
    if (!all_ok(st, "train"))
        return st != SOTU_OK ? st : SOTU_ERR_IO;
    SOTU_MPI_CHECK(MPI_Bcast(cfgv, 8, MPI_INT, 0, MPI_COMM_WORLD));
    if (rank != 0) {
        *vc = (vit_config){cfgv[0], cfgv[1], cfgv[2], cfgv[3], cfgv[4], cfgv[5], cfgv[6], cfgv[7]};
        st = vit_init(base, vc, 1);
    }
    if (!all_ok(st, "train"))
        return st != SOTU_OK ? st : SOTU_ERR_CONFIG;
    sotu_mpi_bcast_floats(base->params, base->num_params, 0);
    return SOTU_OK;
}

int sotu_cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {SOTU_CLI_OPTIONS,
                                         {"resume", no_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    sotu_cli_args a = {0};
    bool resume = false;
    int o;
    optind = 0;
    while ((o = getopt_long(argc, argv, SOTU_CLI_SHORT "r", opts, NULL)) != -1) {
        int r = sotu_cli_option(&a, "train", o, optarg);
        if (r < 0)
            return SOTU_EXIT_USAGE;
        if (r > 0)
            continue;
        if (o == 'r') {
            resume = true;
        } else {
            train_usage(stderr);
            return SOTU_EXIT_USAGE;
        }
    }
    if (a.help) {
        train_usage(stdout);
        return SOTU_EXIT_OK;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "sotu train: expected one CONFIG file\n");
        train_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    const char *restart = getenv("SLURM_RESTART_COUNT");
    if (restart && atoi(restart) > 0)
        resume = true;

    int rank = 0, nranks = 1;
    sotu_status st = sotu_mpi_init(&argc, &argv, &rank, &nranks);
    if (st != SOTU_OK)
        return sotu_cmd_fail("train", st);

    sotu_config cfg;
    int rc = sotu_cli_config("train", argv[optind], a.sets, a.n_sets, &cfg);
    if (rc || a.print_config) {
        if (!rc && rank == 0)
            sotu_config_print(&cfg, stdout);
        sotu_mpi_finalize();
        return rc;
    }
    sotu_threads_set(cfg.train.threads ? cfg.train.threads : sotu_threads_default());

    sotu_manifest man = {0};
    vit_config vc;
    vit_model base = {0};
    sotu_run run = {0};
    coordinator c = {0};
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    double *acc = NULL, *acc_matrix = NULL;
    float *merged = NULL;
    sotu_merge_stats stats = {0};
    double t_start = sotu_now();

    st = cctx ? sotu_manifest_read(cfg.data.manifest, &man)
              : sotu_error(SOTU_ERR_NOMEM, "zstd compression context");
    if (!all_ok(st, "train"))
        goto done;
    if ((st = load_theta0(cfg.model.pretrained, rank, &vc, &base)) != SOTU_OK)
        goto done;
    st = sotu_run_init(&run, &cfg, &man, &vc, &base.table, base.params, rank == 0);
    if (st == SOTU_OK && rank == 0) {
        int on_disk = sotu_run_count_delta_files(&run);
        if (on_disk > 0 && !resume)
            st = sotu_error(SOTU_ERR_USAGE, "%s already holds %d task deltas of an earlier run: "
                            "add --resume to keep them and train the rest, or choose another "
                            "output.dir", run.deltas_dir, on_disk);
    }
    if (!all_ok(st, "train"))
        goto done;
    if (rank == 0)
        SOTU_INFO("run %s: %d tasks, %d ranks (%s), %zu parameters, keep %g (shipped at %g), "
                  "%d threads per rank", run.dir, run.T, nranks,
                  nranks == 1 ? "serial" : "rank 0 coordinates", run.table.total, run.keeps[0],
                  run.keep_ship, sotu_threads_get());

    if (rank == 0) {
        int loaded = 0;
        if (resume && (st = sotu_run_load_deltas(&run, &loaded)) == SOTU_OK && loaded)
            SOTU_INFO("resume: %d of %d tasks already done, verified and kept", loaded, run.T);
        int64_t *sizes = malloc(sizeof *sizes * (size_t)run.T);
        c.scratch = malloc(sizeof(float) * run.table.total);
        if (!sizes || !c.scratch)
            st = sotu_error(SOTU_ERR_NOMEM, "task queue");
        else {
            for (int t = 0; t < run.T; t++)
                sizes[t] = man.tasks[t].n_train;
            st = sotu_queue_init(&c.queue, run.T, sizes);
        }
        free(sizes);
        for (int t = 0; st == SOTU_OK && t < run.T; t++)
            if (run.tasks[t].done)
                sotu_queue_mark_done(&c.queue, t);
        c.run = &run;
        json_t *ev = json_pack("{s:i, s:i, s:f, s:b}", "tasks", run.T, "ranks", nranks, "keep",
                              run.keeps[0], "resume", resume);
        sotu_run_metric(&run, "run_start", ev);
    }
    if (!all_ok(st, "train"))
        goto done;

    if (rank == 0) {
        sotu_progress_begin(&c.progress, "tasks", "tasks", run.T);
        sotu_progress_update(&c.progress, c.queue.n_done, NULL);
        st = coordinator_loop(&c, nranks, nranks == 1 || cfg.mpi.coordinator_trains, cctx);
        sotu_progress_end(&c.progress);
    } else {
        worker_loop(&run, base.params, rank, cctx);
    }
    if (!all_ok(st, "train"))
        goto done;

    merged = malloc(sizeof(float) * run.table.total);
    acc = malloc(sizeof(double) * (size_t)run.T);
    st = merged && acc ? SOTU_OK : sotu_error(SOTU_ERR_NOMEM, "merged weights");
    if (st == SOTU_OK && rank == 0)
        st = sotu_run_merge(&run, 0, merged, &stats);
    if (!all_ok(st, "train"))
        goto done;
    if ((st = evaluate_merged(&run, merged, rank, nranks, acc)) != SOTU_OK)
        goto done;
    if (rank == 0) {
        int T = run.T;
        acc_matrix = malloc(sizeof(double) * (size_t)T * (size_t)T);
        if (!acc_matrix) {
            st = sotu_error(SOTU_ERR_NOMEM, "accuracy matrix");
            goto finish;
        }
        for (size_t i = 0; i < (size_t)T * (size_t)T; i++)
            acc_matrix[i] = NAN;
        memcpy(acc_matrix + (size_t)(T - 1) * (size_t)T, acc, sizeof(double) * (size_t)T);
        double max_cos = 0;
        for (int i = 0; i < stats.n; i++)
            for (int j = 0; j < stats.n; j++)
                if (i != j && fabs(stats.cosine[(size_t)i * stats.n + j]) > max_cos)
                    max_cos = fabs(stats.cosine[(size_t)i * stats.n + j]);
        SOTU_INFO("merged %d deltas (%s, scale %g): collision rate %.4f, max |cosine| %.4f",
                  stats.n, cfg.merge.mode, cfg.merge.scale, stats.collision_rate, max_cos);
        st = sotu_run_write_checkpoint(&run, NULL, merged, &stats, acc_matrix);
        if (st != SOTU_OK)
            goto finish;
        json_t *ev = json_pack("{s:i, s:i, s:f, s:f}", "merged_tasks", stats.n, "failed_tasks",
                              c.queue.n_failed, "collision_rate", stats.collision_rate,
                              "seconds", sotu_now() - t_start);
        sotu_run_metric(&run, "run_end", ev);
        sotu_run_print_table(&run, acc, stdout);
        printf("checkpoint: %s   metrics: %s/metrics.jsonl   wall time %.1fs\n",
               run.checkpoint_path, run.dir, sotu_now() - t_start);
        if (c.queue.n_failed)
            st = sotu_error(SOTU_ERR_DATA, "%d of %d tasks failed (see the log above and "
                            "metrics.jsonl); the rest were merged. Rerun with --resume to "
                            "train the failed ones", c.queue.n_failed, run.T);
    }
finish:
    /* Only rank 0 got here with a new failure; it reports it itself. */
    if (st != SOTU_OK)
        fprintf(stderr, "sotu train: %s\n", sotu_last_error());
    all_ok(SOTU_OK, "train");

done:
    rc = st == SOTU_OK ? SOTU_EXIT_OK : sotu_exit_code(st);
    sotu_merge_stats_free(&stats);
    free(acc_matrix);
    free(acc);
    free(merged);
    free(c.scratch);
    sotu_queue_free(&c.queue);
    sotu_run_free(&run);
    vit_free(&base);
    sotu_manifest_free(&man);
    ZSTD_freeCCtx(cctx);
    sotu_mpi_finalize();
    return rc;
}
