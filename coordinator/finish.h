/* The end of a run: merge the done deltas, evaluate, write the checkpoint
 * and reports. `sotu train` runs it for every sweep point and `sotu merge`
 * for the run directories it re-merges. No training of task deltas here;
 * the baselines of eval.baselines are trained by the evaluation. */
#ifndef SOTU_COORDINATOR_FINISH_H
#define SOTU_COORDINATOR_FINISH_H

#include <stdio.h>

#include "coordinator/run.h"
#include "coordinator/sweep.h"
#include "eval/evaluate.h"

/* How a run ended: the one "run_end" record of metrics.jsonl, the same
 * shape for SoTU (sotu_finish_run) and CLR (coordinator/clr/clr_train.c);
 * docs/METRICS.md lists every event. Every key is always there; a figure
 * that does not apply to the method or is not known is null (NaN or -1
 * here). */
typedef struct {
    const char *method;      /* "sotu" | "clr" */
    int tasks;               /* tasks of the run (T) */
    int merged_tasks;        /* SoTU: deltas merged; CLR: -1 */
    int jobs_done;           /* jobs of this process's hand-out done; -1: none (merge, sweep) */
    int failed_jobs;         /* and failed; -1 likewise */
    double final_avg_acc;    /* the method's final average task-head accuracy */
    double merged_acc;       /* SoTU: mean task-head accuracy of the merge over its tasks */
    double merged_val_acc;   /* SoTU: the same on the validation hold-outs (data.val_fraction) */
    double collision_rate;   /* SoTU: the merge's collision rate */
    double added_params_pct; /* CLR: added parameters, % of the backbone */
    double flops_ratio;      /* CLR: FLOPs relative to the backbone */
    double seconds;          /* since the run started */
} sotu_run_end;

/* Rank 0, the end of every run that evaluated (SoTU or CLR), after the
 * caller printed its task table: appends e's "run_end" record to metrics
 * (NULL: none), prints rep's summary table and, unless the results go to a
 * merge directory that is renamed at the end (checkpoint NULL), the closing
 * lines naming checkpoint, dir/metrics.jsonl, the wall time and the reports.
 * Fails with SOTU_ERR_IO when any record of the run could not be appended
 * to metrics (its stream's error flag). */
sotu_status sotu_finish_end(FILE *metrics, const sotu_run_end *e, const sotu_eval_report *rep,
                            const char *checkpoint, const char *dir);

/* Every rank calls this together; rank 0's run holds the deltas (loaded or
 * received), the other ranks' runs were initialised without create. Rank 0
 * merges at the run's primary keep, evaluates with the other ranks
 * (coordinator/evaluate_run.h), writes run->checkpoint_path and the reports,
 * prints the task table, ends with sotu_finish_end and fills
 * *mean_merged_acc (mean task-head accuracy of the merged model over the
 * done tasks, NaN if none), *mean_val_acc (may be NULL: the same on the
 * validation hold-outs, what a sweep ranks by) and *n_done. jobs_done and
 * failed_jobs (rank 0, -1 when unknown) go into the run_end record. Errors
 * on any rank fail every rank. */
sotu_status sotu_finish_run(sotu_run *run, int rank, int nranks, double t_start, int jobs_done,
                            int failed_jobs, double *mean_merged_acc, double *mean_val_acc,
                            int *n_done);

/* A merge's result directory (`sotu merge`, coordinator/result_dir.h) and
 * what it left out. */
typedef struct {
    const char *dir;         /* where the result is built (a temporary name) */
    const char *final_dir;   /* what dir is renamed to: the reports name it */
    /* rank 0, filled by the merge: */
    int n_left_out;          /* tasks without a verified delta */
    char left_out[1536];     /* "t03 (no delta file deltas/t03.sotud), ..." */
} sotu_finish_merge;

/* `sotu merge`, rank 0, once run's deltas are loaded (run->merging set):
 * points the run's outputs (checkpoint.h5, report.*, summary.csv,
 * metrics.jsonl) at the directory out_dir (created here) that reports call
 * out_name, and records in metrics.jsonl and the log what the merge takes
 * and leaves out. Each task left out is appended to merge->left_out as
 * "<prefix>name (why)" and counted in merge->n_left_out. */
sotu_status sotu_finish_merge_setup(sotu_run *run, const char *out_dir, const char *out_name,
                                    const char *prefix, sotu_finish_merge *merge);

/* Every point of sw in order: its run directory's deltas loaded on rank 0,
 * then sotu_finish_run; rank 0 then writes and prints the ranking
 * (sotu_sweep_write_summary). A point whose deltas are missing is merged
 * from the ones present (its summary row says how many). merge NULL (sotu
 * train): each point's results go into its run directory, the ranking into
 * sw->dir. Otherwise (sotu merge) nothing in sw->dir is written: point p's
 * results go to merge->dir/points/<label>/, the ranking to merge->dir, and
 * the tasks left out of every point are listed in merge. */
sotu_status sotu_finish_sweep(const sotu_sweep *sw, const sotu_manifest *man,
                              const vit_config *vc, const sotu_tensor_table *table,
                              const float *theta0, int rank, int nranks,
                              sotu_finish_merge *merge);

#endif
