#include "coordinator/finish.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "coordinator/evaluate_run.h"
#include "mpi/mpi_util.h"
#include "io/fsutil.h"

static json_t *count_or_null(int n)
{
    return n < 0 ? json_null() : json_integer(n);
}

sotu_status sotu_finish_end(FILE *metrics, const sotu_run_end *e, const sotu_eval_report *rep,
                            const char *checkpoint, const char *dir)
{
    json_t *o = json_object();
    json_object_set_new(o, "method", json_string(e->method));
    json_object_set_new(o, "tasks", json_integer(e->tasks));
    json_object_set_new(o, "merged_tasks", count_or_null(e->merged_tasks));
    json_object_set_new(o, "jobs_done", count_or_null(e->jobs_done));
    json_object_set_new(o, "failed_jobs", count_or_null(e->failed_jobs));
    json_object_set_new(o, "final_avg_acc", sotu_metrics_number(e->final_avg_acc));
    json_object_set_new(o, "merged_acc", sotu_metrics_number(e->merged_acc));
    json_object_set_new(o, "merged_val_acc", sotu_metrics_number(e->merged_val_acc));
    json_object_set_new(o, "collision_rate", sotu_metrics_number(e->collision_rate));
    json_object_set_new(o, "added_params_pct", sotu_metrics_number(e->added_params_pct));
    json_object_set_new(o, "flops_ratio", sotu_metrics_number(e->flops_ratio));
    json_object_set_new(o, "seconds", json_real(e->seconds));
    sotu_metrics_append(metrics, "run_end", o);
    sotu_eval_report_print(rep, stdout);
    if (checkpoint) { /* a merge's directory gets its name at the end */
        printf("checkpoint: %s   metrics: %s/metrics.jsonl   wall time %.1fs\n", checkpoint,
               dir, e->seconds);
        printf("report: %s/report.html (also report.md, summary.csv)\n", dir);
    }
    if (metrics && ferror(metrics))
        return sotu_error(SOTU_ERR_IO, "%s/metrics.jsonl: records of this run could not be "
                          "appended (see the warning above); the checkpoint and reports are "
                          "complete", dir);
    return SOTU_OK;
}

/* Rank 0: res's figures from the evaluation of a point (sotu_sweep_result). */
static void fill_result(const sotu_run *run, const sotu_eval_report *rep,
                        sotu_sweep_result *res)
{
    const sotu_eval_method *s = sotu_eval_report_find(rep, "sotu");
    const sotu_eval_method *fz = sotu_eval_report_find(rep, "frozen");
    for (int c = 0; c < SOTU_EV_N; c++) {
        const sotu_cl_metrics *x = s && s->acc[c] ? &s->metrics[c] : NULL;
        res->final_acc[c] = x ? x->final_avg_acc : NAN;
        res->inc_acc[c] = x ? x->avg_inc_acc : NAN;
        res->forgetting[c] = x ? x->forgetting : NAN;
        res->bwt[c] = x ? x->bwt : NAN;
        res->frozen_final[c] = fz && fz->acc[c] ? fz->metrics[c].final_avg_acc : NAN;
        res->cls_val[c] = s ? s->cls_val_acc[c] : NAN; /* eval.rank_by's is the ranking key */
    }
    double bytes = 0, kept = 0, secs = 0;
    int n = 0;
    for (int t = 0; t < run->T; t++)
        if (run->tasks[t].done) {
            bytes += (double)run->tasks[t].bytes;
            kept += (double)run->tasks[t].kept_values;
            secs += run->tasks[t].report.seconds;
            n++;
        }
    res->bytes_per_task = n ? bytes / n : NAN;
    res->kept_per_task = n ? kept / n : NAN;
    res->train_seconds = n ? secs : NAN;
    res->eval_seconds = rep->seconds;
    res->val_acc = s ? s->val_acc : NAN; /* the default ranking key */
}

/* sotu_finish_run with the sweep's evaluation cache (NULL: none) for a point
 * of training group `group`; res (rank 0, may be NULL) gets the point's
 * figures. */
static sotu_status finish_run(sotu_run *run, int rank, int nranks, double t_start, int jobs_done,
                              int failed_jobs, double *mean_merged_acc, double *mean_val_acc,
                              int *n_done, sotu_eval_cache *cache, int group,
                              int frozen_group, sotu_sweep_result *res)
{
    int T = run->T;
    float *merged = NULL;
    double *acc = malloc(sizeof(double) * (size_t)T);
    sotu_merge_stats stats = {0};
    sotu_eval_report rep = {0};
    sotu_status st = acc ? SOTU_OK : sotu_error(SOTU_ERR_NOMEM, "accuracies of %d tasks", T);
    *mean_merged_acc = NAN;
    if (mean_val_acc)
        *mean_val_acc = NAN;
    *n_done = 0;
    if (st == SOTU_OK && rank == 0) {
        merged = malloc(sizeof(float) * run->table.total);
        st = merged ? sotu_run_merge(run, 0, merged, &stats)
                    : sotu_error(SOTU_ERR_NOMEM, "merged weights of %zu parameters",
                                 run->table.total);
    }
    if (!sotu_mpi_all_ok(&st, nranks, "merge"))
        goto cleanup;
    if ((st = sotu_evaluate_run_cached(run, rank, nranks, &rep, cache, group, frozen_group)) != SOTU_OK)
        goto cleanup;
    if (rank == 0 && res)
        fill_result(run, &rep, res);
    if (rank == 0) {
        SOTU_INFO("merged %d deltas (%s, scale %g): collision rate %.4f, max |cosine| %.4f",
                  stats.n, run->cfg.merge.mode, run->cfg.merge.scale, stats.collision_rate,
                  sotu_merge_stats_max_cosine(&stats));
        st = sotu_evaluate_write(run, merged, &stats, &rep, nranks, sotu_now() - t_start, acc);
        if (st == SOTU_OK) {
            double sum = 0;
            int n = 0;
            for (int t = 0; t < T; t++) {
                *n_done += run->tasks[t].done;
                if (run->tasks[t].done && !isnan(acc[t]))
                    sum += acc[t], n++;
            }
            *mean_merged_acc = n ? sum / n : NAN;
            const sotu_eval_method *m = sotu_eval_report_find(&rep, "sotu");
            double val = m ? m->val_acc : NAN;
            if (mean_val_acc)
                *mean_val_acc = val;
            sotu_run_end e = {
                .method = "sotu", .tasks = T, .merged_tasks = *n_done, .jobs_done = jobs_done,
                .failed_jobs = failed_jobs,
                .final_avg_acc = m ? m->metrics[SOTU_EV_TASK_HEADS].final_avg_acc : NAN,
                .merged_acc = *mean_merged_acc, .merged_val_acc = val,
                .collision_rate = stats.collision_rate, .added_params_pct = NAN,
                .flops_ratio = NAN, .seconds = sotu_now() - t_start};
            sotu_run_print_table(run, acc, stdout);
            st = sotu_finish_end(run->metrics, &e, &rep,
                                 run->merging ? NULL : run->checkpoint_path, run->dir);
        }
    }
    sotu_mpi_all_ok(&st, nranks, "writing the results");
cleanup:
    sotu_eval_report_free(&rep);
    sotu_merge_stats_free(&stats);
    free(merged);
    free(acc);
    return st;
}

sotu_status sotu_finish_run(sotu_run *run, int rank, int nranks, double t_start, int jobs_done,
                            int failed_jobs, double *mean_merged_acc, double *mean_val_acc,
                            int *n_done)
{
    return finish_run(run, rank, nranks, t_start, jobs_done, failed_jobs, mean_merged_acc,
                      mean_val_acc, n_done, NULL, 0, 0, NULL);
}

/* Appends text to buf (cap bytes) unless it is full; then once "...". */
static void append_capped(char *buf, size_t cap, const char *text)
{
    size_t len = strlen(buf), add = strlen(text);
    if (len + add + 4 < cap)
        memcpy(buf + len, text, add + 1);
    else if (len + 4 < cap && (len < 3 || strcmp(buf + len - 3, "...")))
        memcpy(buf + len, "...", 4);
}

sotu_status sotu_finish_merge_setup(sotu_run *run, const char *out_dir, const char *out_name,
                                    const char *prefix, sotu_finish_merge *merge)
{
    sotu_status st = sotu_mkdirs(out_dir);
    if (st != SOTU_OK)
        return st;
    snprintf(run->dir, sizeof run->dir, "%s", out_dir);
    snprintf(run->title, sizeof run->title, "%s", out_name);
    sotu_path_join(run->checkpoint_path, sizeof run->checkpoint_path, out_dir, "checkpoint.h5");
    char path[SOTU_PATH_MAX + 32];
    sotu_path_join(path, sizeof path, out_dir, "metrics.jsonl");
    if (run->metrics)
        fclose(run->metrics);
    if (!(run->metrics = fopen(path, "a")))
        return sotu_error(SOTU_ERR_IO, "%s: cannot open for appending: %s", path,
                          strerror(errno));
    json_t *left = json_array();
    int merged = 0;
    for (int t = 0; t < run->T; t++) {
        const char *name = run->man.tasks[t].name;
        if (run->tasks[t].done) {
            merged++;
            continue;
        }
        char file[SOTU_PATH_MAX + 96], item[SOTU_PATH_MAX + 256];
        snprintf(file, sizeof file, "%s/%s.sotud", run->deltas_dir, name);
        bool there = sotu_file_exists(file);
        snprintf(item, sizeof item, "%s%s%s (%s %s)", merge->n_left_out ? ", " : "", prefix, name,
                 there ? "delta does not verify:" : "no delta file", file);
        append_capped(merge->left_out, sizeof merge->left_out, item);
        merge->n_left_out++;
        json_array_append_new(left, json_pack("{s:s, s:s}", "task", name, "why",
                                              there ? "does not verify" : "no delta file"));
        if (!there) /* a file that does not verify was logged with its reason */
            SOTU_WARN("%s: no such file; task %s%s is left out of this merge", file, prefix,
                      name);
    }
    sotu_run_metric(run, "merge",
                    json_pack("{s:s, s:s, s:f, s:f, s:s, s:f, s:i, s:i, s:o, s:b}", "result",
                              out_name, "deltas", run->deltas_dir, "keep", run->keeps[0],
                              "keep_shipped", run->keep_ship, "mode",
                              sotu_merge_mode_name(run->mode), "scale", run->cfg.merge.scale,
                              "tasks", run->T, "merged_tasks", merged, "left_out", left,
                              "partial", merged < run->T));
    if (ferror(run->metrics))
        return sotu_error(SOTU_ERR_IO, "%s: write failed (disk full?)", path);
    return SOTU_OK;
}

sotu_status sotu_finish_sweep(const sotu_sweep *sw, const sotu_manifest *man,
                              const vit_config *vc, const sotu_tensor_table *table,
                              const float *theta0, int rank, int nranks,
                              sotu_finish_merge *merge)
{
    sotu_sweep_result *res = calloc((size_t)sw->n_points, sizeof *res);
    sotu_eval_cache *cache = sotu_eval_cache_new();
    double t_sweep = sotu_now(), t_eval = 0;
    sotu_status st = res && cache ? SOTU_OK
                                  : sotu_error(SOTU_ERR_NOMEM, "sweep of %d points", sw->n_points);
    for (int p = 0; res && p < sw->n_points; p++) {
        res[p].val_acc = res[p].finetuned_val_acc = NAN;
        for (int c = 0; c < SOTU_EV_N; c++)
            res[p].cls_val[c] = NAN;
    }
    for (int p = 0; sotu_mpi_all_ok(&st, nranks, "sweep") && p < sw->n_points; p++) {
        const sotu_sweep_point *pt = &sw->points[p];
        sotu_run run = {0};
        int loaded = 0;
        double t0 = sotu_now();
        st = sotu_run_init(&run, &pt->cfg, man, vc, table, theta0, rank == 0 && !merge);
        run.merging = merge != NULL;
        if (st == SOTU_OK && rank == 0)
            st = sotu_run_load_deltas(&run, &loaded);
        if (st == SOTU_OK && rank == 0 && !merge) /* once the deltas verified against it */
            st = sotu_run_write_config(&run);
        char out[SOTU_PATH_MAX], name[SOTU_PATH_MAX], prefix[sizeof pt->label + 1];
        if (merge) {
            snprintf(out, sizeof out, "%s/points/%s", merge->dir, pt->label);
            snprintf(name, sizeof name, "%s/points/%s", merge->final_dir, pt->label);
            snprintf(prefix, sizeof prefix, "%s/", pt->label);
            if (st == SOTU_OK && rank == 0)
                st = sotu_finish_merge_setup(&run, out, name, prefix, merge);
        }
        if (sotu_mpi_all_ok(&st, nranks, "sweep point")) {
            if (rank == 0)
                SOTU_INFO("point %s: merging %d of %d tasks", pt->label, loaded, run.T);
            res[p].tasks = run.T;
            if (merge)
                sotu_path_join(res[p].checkpoint, sizeof res[p].checkpoint, name,
                               "checkpoint.h5");
            else
                snprintf(res[p].checkpoint, sizeof res[p].checkpoint, "%s",
                         run.checkpoint_path);
            st = finish_run(&run, rank, nranks, t0, -1, -1, &res[p].merged_acc, NULL,
                            &res[p].tasks_done, cache, pt->group, pt->frozen_group,
                            &res[p]); /* val: fill_result */
            t_eval += res[p].eval_seconds;
        }
        if (st == SOTU_OK && rank == 0) {
            double sum = 0;
            int n = 0;
            for (int t = 0; t < run.T; t++)
                if (run.tasks[t].done && !isnan(run.tasks[t].report.finetuned_acc))
                    sum += run.tasks[t].report.finetuned_acc, n++;
            res[p].finetuned_acc = n ? sum / n : NAN;
            sum = 0;
            n = 0;
            for (int t = 0; t < run.T; t++)
                if (run.tasks[t].done && !isnan(run.tasks[t].report.val_acc))
                    sum += run.tasks[t].report.val_acc, n++;
            res[p].finetuned_val_acc = n ? sum / n : NAN;
        }
        if (merge && run.metrics) { /* a merge's result must be whole: check the last write */
            bool bad = ferror(run.metrics) != 0;
            bad |= fclose(run.metrics) != 0;
            run.metrics = NULL;
            if (bad && st == SOTU_OK)
                st = sotu_error(SOTU_ERR_IO, "%s/metrics.jsonl: write failed (disk full?)", out);
        }
        sotu_run_free(&run);
        /* A failure (on rank 0 only, e.g. its metrics file) ends the loop in
         * the vote at its head, which every rank takes. */
    }
    sotu_sweep into = *sw; /* shallow: only dir differs */
    if (merge)
        snprintf(into.dir, sizeof into.dir, "%s", merge->dir);
    if (st == SOTU_OK && rank == 0)
        SOTU_INFO("sweep: %d points finished in %.1fs, %.1fs of it evaluating; %d evaluations "
                  "reused (a model or baseline an earlier point already evaluated)",
                  sw->n_points, sotu_now() - t_sweep, t_eval, sotu_eval_cache_hits(cache));
    if (st == SOTU_OK && rank == 0 && (st = sotu_sweep_write_summary(&into, res)) == SOTU_OK) {
        printf("\n");
        sotu_sweep_print_ranking(sw, res, stdout);
        if (!merge)
            printf("sweep summary: %s/sweep.csv and %s/sweep.md\n", sw->dir, sw->dir);
    }
    sotu_mpi_all_ok(&st, nranks, "sweep summary");
    sotu_eval_cache_free(cache);
    free(res);
    return st;
}
