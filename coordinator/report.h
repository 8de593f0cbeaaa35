/* The files a person reads after a run: summary.csv, report.md and
 * report.html in the run directory.
 *
 *   summary.csv   one row per method and classifier: method, keep,
 *                 classifier, setting (TIL | CIL), final_avg_acc,
 *                 avg_inc_acc, forgetting, bwt, rows, seconds (empty = NaN)
 *   report.md     the same tables, per-task accuracies and the SoTU
 *                 accuracy matrix, as Markdown
 *   report.html   one self-contained page (inline CSS and SVG drawn here,
 *                 no script, works offline): the accuracy matrix as a heat
 *                 map, accuracy against tasks merged for each method
 *                 (task- and class-incremental), per-task bars fine-tuned
 *                 vs merged, and accuracy against keep when the run has
 *                 two or more keeps
 * Each file is written atomically.
 */
#ifndef SOTU_COORDINATOR_REPORT_H
#define SOTU_COORDINATOR_REPORT_H

#include "common/status.h"
#include "coordinator/evaluate.h"

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
} sotu_report_info;

/* Writes dir/summary.csv, dir/report.md and dir/report.html. SOTU_ERR_IO
 * naming the file on failure. */
sotu_status sotu_report_write(const char *dir, const sotu_report_info *info,
                              const sotu_eval_report *rep);

#endif
