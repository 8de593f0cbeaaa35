/* The files a person reads after a run: summary.csv, report.md and
 * report.html in the run directory.
 *
 *   summary.csv   one row per method and classifier: method, keep,
 *                 classifier, setting (TIL | CIL), final_avg_acc,
 *                 avg_inc_acc, forgetting, bwt, rows, seconds (empty = NaN),
 *                 tasks_merged, tasks (fewer merged than tasks: a partial
 *                 result, which report.md and report.html say in bold),
 *                 val_acc (the classifier's accuracy on the validation
 *                 hold-outs, eval/evaluate.h: what eval.rank_by ranks by)
 *   report.md     the same tables, per-task accuracies and the accuracy
 *                 matrix of the run's method (SoTU or CLR), as Markdown; for
 *                 CLR also its cost table (parameters added per task as a
 *                 percentage of the backbone, compute relative to full
 *                 fine-tuning, as in CLR's paper)
 *   report.html   one self-contained page (inline CSS and SVG drawn here,
 *                 no script, works offline): the accuracy matrix as a heat
 *                 map, accuracy against tasks merged for each method
 *                 (task- and class-incremental), per-task bars fine-tuned
 *                 vs merged, and accuracy against keep when the run has
 *                 two or more keeps
 * Each file is written atomically.
 */
#ifndef SOTU_EVAL_REPORT_H
#define SOTU_EVAL_REPORT_H

#include "common/status.h"
#include "eval/evaluate.h"

/* One task's training curve (steps.jsonl, coordinator/run.h reads it): n
 * logged steps, x = the step counted over both LP-FT phases (1-based). */
typedef struct {
    int n, cap;
    double *x, *loss, *lr, *grad_norm;
} sotu_scalar_curve;

/* CLR's table (method clr): what a task adds and what its training costs
 * (coordinator/clr/clr_eval.h computes it). */
typedef struct {
    const char *variant;             /* clr | clr-full */
    double backbone;                 /* frozen parameters */
    double clr, bn, head;            /* per task */
    double added_pct, clr_pct;       /* (clr + bn + head) / backbone, clr / backbone, % */
    double module_values, module_bytes;
    double flops_ratio;              /* CLR step / full fine-tuning step */
    double frozen_flops_ratio;       /* fc-only step / full fine-tuning step */
    double time_ratio;               /* measured job seconds ratio, NaN unknown */
} sotu_report_cost;

typedef struct {
    const char *title;               /* e.g. the run directory */
    int T;
    const char *const *task_names;   /* [T] */
    const int *classes;              /* [T] */
    const double *finetuned;         /* [T] each task's own accuracy, NaN unknown */
    double keep;                     /* primary keep */
    const char *merge_mode;
    double collision_rate;           /* NaN unknown */
    double seconds;                  /* wall time of the run, NaN unknown */
    int ranks;
    const char *method;              /* the run's own method, NULL = "sotu" */
    const char *const *status;       /* [T] "ok" | "failed" | "not_run" | "left_out"
                                        (coordinator/run.h); NULL: every task ok */
    const char *note;                /* a line under the heading, or NULL */
    const sotu_report_cost *cost;    /* method clr: its cost table, else NULL */
    const sotu_scalar_curve *curves; /* [T] training curves (steps.jsonl), or NULL */
    const int64_t *kept;             /* [T] backbone values kept at the primary keep, or NULL */
    const int64_t *bytes;            /* [T] bytes shipped (.sotud), or NULL */
    double max_cosine;               /* max |cosine| between two task deltas, NaN unknown */
    /* provenance (report.html's and report.md's last block) */
    const char *config_yaml;         /* the resolved configuration, or NULL */
    int threads;                     /* threads per rank, 0 unknown */
} sotu_report_info;

/* The command line the reports record (main() calls it once with its
 * arguments as given). */
void sotu_report_set_command(int argc, char **argv);

/* The colour of a method in every chart (sotu and clr: blue; dense, frozen,
 * sequential, finetuned and sotu@<keep> each their own). */
const char *sotu_report_method_color(const char *method);

/* Writes dir/summary.csv, dir/report.md and dir/report.html. SOTU_ERR_IO
 * naming the file on failure. */
sotu_status sotu_report_write(const char *dir, const sotu_report_info *info,
                              const sotu_eval_report *rep);

#endif
