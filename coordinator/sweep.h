/* Hyperparameter sweeps inside one job, and the layout they leave on disk.
 *
 * A configuration's `sweep:` block maps keys to lists of values; the points
 * of the sweep are the Cartesian product, the first key varying slowest:
 *
 *   sweep: {train.lr: [1e-3, 3e-4], sotu.keep: [0.2, 0.05]}
 *   -> p00_lr1e-3_keep0.2  p01_lr1e-3_keep0.05  p02_lr3e-4_keep0.2  p03_lr3e-4_keep0.05
 *
 * Merge-time keys (sotu.keep, merge.mode, merge.scale) need no training:
 * points that differ only in them form one training group, fine-tuned once
 * and shipped at the group's largest keep (a smaller keep is a sub-mask).
 * Every other key (train.lr, train.epochs, train.seed, ...) makes a group of
 * its own, and so does sotu.keep under `sotu.tuning: masked` (a task trains
 * only the mask of its keep). `sotu train` puts (group x task) jobs on one
 * queue.
 *
 * On disk, under the configuration's output.dir D:
 *
 *   D/points/<label>/          one complete run directory per point
 *       config.yaml            the point's configuration (no sweep; its
 *                              sotu.keep is [point keep, group's shipped keep])
 *       deltas/                the group's deltas; in the group's other
 *                              points a symbolic link to the first point's
 *       checkpoint.h5, metrics.jsonl
 *   D/sweep.yaml               the configuration with its sweep block
 *   D/sweep.csv, D/sweep.md    the points ranked by a validation figure of
 *                              the SoTU merge, eval.rank_by: the task heads'
 *                              (default) or a fitted classifier's (ncm, ridge,
 *                              ncm_til, ridge_til; eval/evaluate.h); test
 *                              accuracy beside it (sotu_sweep_write_summary)
 *   D/report.html              the sweep section: the tables with charts of
 *                              accuracy against each axis (keep, lr, ...)
 *   D/sweep_seeds.csv          with a seed axis: mean ± std over the seeds
 *
 * Each point directory is what `sotu merge` takes. A configuration without
 * a sweep is one group of one point whose directory is D itself.
 *
 * No MPI here: every rank expands the same configuration to the same sweep.
 */
#ifndef SOTU_COORDINATOR_SWEEP_H
#define SOTU_COORDINATOR_SWEEP_H

#include <stdbool.h>
#include <stdio.h>

#include "common/config.h"
#include "eval/evaluate.h"

#define SOTU_SWEEP_POINTS_MAX 4096

typedef struct {
    char label[160];     /* "p03_lr3e-4_keep0.05"; "" without a sweep */
    int group;           /* index into sotu_sweep.groups */
    int frozen_group;    /* the first point whose values agree with this one's
                          * on every axis outside sotu.*: points that share it
                          * share the frozen baseline (θ0 with heads trained by
                          * train.*), whatever their tuning or keep */
    sotu_config cfg;     /* axes applied, sweep cleared, output.dir = the point's */
    char values[SOTU_SWEEP_MAX][64]; /* this point's value of each axis */
} sotu_sweep_point;

typedef struct {
    int first_point;     /* the point whose directory holds the deltas */
    int n_points;
    double keep_ship;    /* the keep every task of the group is cut at */
} sotu_sweep_group;

typedef struct {
    bool active;         /* the configuration had a sweep block */
    int n_axes;
    sotu_sweep_axis axes[SOTU_SWEEP_MAX];
    int n_points, n_groups;
    sotu_sweep_point *points;  /* [n_points] */
    sotu_sweep_group *groups;  /* [n_groups] */
    char dir[SOTU_PATH_MAX];   /* the configuration's output.dir */
    int rank_by;               /* SOTU_EV_* of eval.rank_by: the validation figure that
                                * ranks the points */
} sotu_sweep;

/* True for keys applied when merging (no retraining): sotu.keep,
 * merge.mode, merge.scale. */
bool sotu_sweep_key_is_merge_time(const char *key);

/* The keep a run of n_tasks tasks ships at under cfg, as sotu_run_init
 * resolves it: 1 with the dense baseline (eval.baselines) unless sotu.tuning
 * is masked, else the largest listed keep, or 1/n_tasks for `auto`.
 * coordinator/train.c checks the two agree. */
double sotu_sweep_keep_ship(const sotu_config *cfg, int n_tasks);

/* Expands cfg's sweep for a manifest of n_tasks tasks. Fails with
 * SOTU_ERR_CONFIG naming the axis when a value does not apply or the product
 * exceeds SOTU_SWEEP_POINTS_MAX points. */
sotu_status sotu_sweep_expand(const sotu_config *cfg, int n_tasks, sotu_sweep *sw);
void sotu_sweep_free(sotu_sweep *sw); /* accepts NULL */

/* Writes D/sweep.yaml: cfg with its sweep, what `sotu merge D` expands
 * again to find the points. */
sotu_status sotu_sweep_write_config(const sotu_sweep *sw, const sotu_config *cfg);

/* Creates the directories of the points of group g: the first point's
 * deltas/ and in every other point a `deltas` link to it. Idempotent. */
sotu_status sotu_sweep_prepare_group(const sotu_sweep *sw, int g);

/* One row of the summary: the point's SoTU merge (its primary keep). */
typedef struct {
    double merged_acc;     /* mean merged task-head test accuracy; NaN if unknown */
    double val_acc;        /* the same on the validation hold-outs: the default ranking key */
    double finetuned_acc;  /* mean fine-tuned test accuracy (upper bound) */
    double finetuned_val_acc; /* its validation figure */
    int tasks_done, tasks;
    char checkpoint[SOTU_PATH_MAX];
    /* per classifier (eval/evaluate.h order), NaN: not computed */
    double final_acc[SOTU_EV_N], inc_acc[SOTU_EV_N], forgetting[SOTU_EV_N], bwt[SOTU_EV_N];
    double frozen_final[SOTU_EV_N]; /* the frozen baseline's final accuracy */
    double cls_val[SOTU_EV_N]; /* validation figure per classifier (sotu_eval_method
                                * cls_val_acc; [SOTU_EV_TASK_HEADS] = val_acc): cls_val[
                                * sw->rank_by] ranks the points */
    double bytes_per_task; /* mean .sotud bytes shipped per merged task */
    double kept_per_task;  /* mean backbone values kept per task at the point's keep */
    double train_seconds;  /* the workers' seconds, summed over the merged tasks */
    double eval_seconds;   /* this point's evaluation (reused methods cost none) */
} sotu_sweep_result;

/* Writes D/sweep.csv, D/sweep.md and D/report.html (atomically) ranking the
 * points by cls_val[sw->rank_by], best first (NaN last, ties by point index); test
 * accuracy is reported beside it, never used to rank (without a validation
 * hold-out, data.val_fraction 0, the points stay in their order and the
 * summary says so); res [n_points]. With an axis whose key ends in "seed",
 * also D/sweep_seeds.csv: the points that differ only in seeds aggregated as
 * mean and standard deviation (n-1), and the same table in sweep.md and
 * report.html. */
sotu_status sotu_sweep_write_summary(const sotu_sweep *sw, const sotu_sweep_result *res);

/* The Markdown ranking table into f (what sweep.md holds under its title). */
void sotu_sweep_print_ranking(const sotu_sweep *sw, const sotu_sweep_result *res, FILE *f);

#endif
