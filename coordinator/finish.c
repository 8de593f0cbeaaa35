#include "coordinator/finish.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "coordinator/evaluate.h"
#include "coordinator/mpi_util.h"

/* True on every rank iff st is OK on every rank. */
static bool finish_all_ok(sotu_status st, int nranks)
{
    bool bad = st != SOTU_OK;
    if (bad)
        SOTU_ERROR("%s", sotu_last_error());
    return !(nranks > 1 ? sotu_mpi_any(bad) : bad);
}

sotu_status sotu_finish_run(sotu_run *run, int rank, int nranks, double t_start,
                            double *mean_merged_acc, int *n_done)
{
    int T = run->T;
    float *merged = NULL;
    double *acc = malloc(sizeof(double) * (size_t)T);
    sotu_merge_stats stats = {0};
    sotu_eval_report rep = {0};
    sotu_status st = acc ? SOTU_OK : sotu_error(SOTU_ERR_NOMEM, "accuracies of %d tasks", T);
    *mean_merged_acc = NAN;
    *n_done = 0;
    if (st == SOTU_OK && rank == 0) {
        merged = malloc(sizeof(float) * run->table.total);
        st = merged ? sotu_run_merge(run, 0, merged, &stats)
                    : sotu_error(SOTU_ERR_NOMEM, "merged weights of %zu parameters",
                                 run->table.total);
    }
    if (!finish_all_ok(st, nranks))
        goto cleanup;
    if ((st = sotu_evaluate_run(run, rank, nranks, &rep)) != SOTU_OK)
        goto cleanup;
    if (rank == 0) {
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
            sotu_run_metric(run, "run_end",
                            json_pack("{s:i, s:f, s:f, s:f}", "merged_tasks", *n_done,
                                      "merged_acc", *mean_merged_acc, "collision_rate",
                                      stats.collision_rate, "seconds", sotu_now() - t_start));
            sotu_run_print_table(run, acc, stdout);
            sotu_eval_report_print(&rep, stdout);
            printf("checkpoint: %s\n", run->checkpoint_path);
        }
    }
    if (!finish_all_ok(st, nranks) && st == SOTU_OK)
        st = sotu_error(SOTU_ERR_INTERNAL, "writing the results failed on rank 0");
cleanup:
    sotu_eval_report_free(&rep);
    sotu_merge_stats_free(&stats);
    free(merged);
    free(acc);
    return st;
}

sotu_status sotu_finish_sweep(const sotu_sweep *sw, const sotu_manifest *man,
                              const vit_config *vc, const sotu_tensor_table *table,
                              const float *theta0, int rank, int nranks)
{
    sotu_sweep_result *res = calloc((size_t)sw->n_points, sizeof *res);
    sotu_status st = res ? SOTU_OK : sotu_error(SOTU_ERR_NOMEM, "sweep of %d points", sw->n_points);
    for (int p = 0; finish_all_ok(st, nranks) && p < sw->n_points; p++) {
        const sotu_sweep_point *pt = &sw->points[p];
        sotu_run run = {0};
        int loaded = 0;
        double t0 = sotu_now();
        st = sotu_run_init(&run, &pt->cfg, man, vc, table, theta0, rank == 0);
        if (st == SOTU_OK && rank == 0)
            st = sotu_run_load_deltas(&run, &loaded);
        if (finish_all_ok(st, nranks)) {
            if (rank == 0)
                SOTU_INFO("point %s: merging %d of %d tasks", pt->label, loaded, run.T);
            res[p].tasks = run.T;
            snprintf(res[p].checkpoint, sizeof res[p].checkpoint, "%s", run.checkpoint_path);
            st = sotu_finish_run(&run, rank, nranks, t0, &res[p].merged_acc, &res[p].tasks_done);
        }
        if (st == SOTU_OK && rank == 0) {
            double sum = 0;
            int n = 0;
            for (int t = 0; t < run.T; t++)
                if (run.tasks[t].done && !isnan(run.tasks[t].report.finetuned_acc))
                    sum += run.tasks[t].report.finetuned_acc, n++;
            res[p].finetuned_acc = n ? sum / n : NAN;
        }
        sotu_run_free(&run);
        if (st != SOTU_OK)
            break;
    }
    if (st == SOTU_OK && rank == 0 && (st = sotu_sweep_write_summary(sw, res)) == SOTU_OK) {
        printf("\n");
        sotu_sweep_print_ranking(sw, res, stdout);
        printf("sweep summary: %s/sweep.csv and %s/sweep.md\n", sw->dir, sw->dir);
    }
    finish_all_ok(st, nranks);
    free(res);
    return st;
}
