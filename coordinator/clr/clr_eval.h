/* The end of a CLR run: task-incremental evaluation of every module on the
 * shared frozen backbone, the checkpoint, the reports and the final table.
 *
 * Evaluation: task j is classified by the backbone with task j's module
 * (CLR layers, BatchNorm, fc) loaded, on its test split, BatchNorm in eval
 * mode. Modules are isolated parameters, so learning task i > j changes
 * nothing task j uses: A[i][j] = acc_j for every row i >= j (rows thinned
 * by eval.every), forgetting is zero by construction and the matrix is
 * still reported. The tasks are shared over ranks (sotu_share); rank 0
 * sends each rank the modules of its share and sums the accuracies.
 *
 * Checkpoint (HDF5, atomic), `run/checkpoint.h5`, format version 1:
 *   /                        attrs: format "sotu-clr-checkpoint",
 *                            format_version 1, sotu_version, created,
 *                            config (YAML), method "clr", clr_variant, and
 *                            the backbone's config as in io/resnet_io.h
 *                            (arch "resnet", depth, width, ...)
 *   /backbone/<name>         the frozen backbone: every parameter, running
 *                            statistic and <bn>.num_batches_tracked under
 *                            torchvision names (io/resnet_io.h)
 *   /clr/<task>/<name>       float32, task's module tensors (worker/
 *                            clr_task.h: <conv>.clr.weight [C,1,3,3], <bn>.
 *                            {weight,bias}, fc.{weight,bias},
 *                            <bn>.running_{mean,var}); group attrs index,
 *                            classes, num_batches_tracked. Overlaid on
 *                            /backbone (CLR variant clr_variant, fc resized)
 *                            they give the task's whole model.
 *   /tasks/<task>            attrs: index, classes, status ("ok" |
 *                            "failed"), finetuned_acc (the worker's test
 *                            accuracy), eval_acc (the coordinator's, from
 *                            the stored module), frozen_acc,
 *                            full_finetune_acc (NaN when not run),
 *                            train_seconds, steps, bytes
 *   /eval/acc_matrix         float64 [T, T], CLR's (NaN where not evaluated);
 *                            /eval/frozen_acc_matrix, /eval/finetuned_acc_matrix
 *                            when those baselines ran; attrs: summary figures
 *                            (<method>_task_heads_<figure>, final_avg_acc, ...)
 *   /cost                    attrs: the figures of clr_cost below
 */
#ifndef SOTU_COORDINATOR_CLR_CLR_EVAL_H
#define SOTU_COORDINATOR_CLR_CLR_EVAL_H

#include <stdio.h>

#include "coordinator/clr/clr_run.h"
#include "eval/evaluate.h"

#define SOTU_CLR_CHECKPOINT_FORMAT "sotu-clr-checkpoint"
#define SOTU_CLR_CHECKPOINT_VERSION 1

/* CLR's table: what a task adds and what its training costs, for the
 * first task's class count (only fc depends on it). */
typedef struct {
    double backbone;        /* frozen parameters: convolutions and BatchNorm affine */
    double clr;             /* CLR weights per task */
    double bn;              /* BatchNorm affine per task */
    double head;            /* fc per task */
    double added_pct;       /* (clr + bn + head) / backbone, percent */
    double clr_pct;         /* clr / backbone, percent */
    double module_values;   /* values a module ships (running statistics included) */
    double module_bytes;    /* mean bytes of the shipped modules, NaN if none */
    double flops_ratio;     /* CLR training step / full fine-tuning step (FLOPs) */
    double frozen_flops_ratio; /* fc-only training step / full fine-tuning step */
    double time_ratio;      /* measured: mean CLR job seconds / mean full fine-tuning
                             * job seconds (NaN without that baseline) */
} clr_cost;

sotu_status clr_cost_compute(const clr_run *run, clr_cost *c);

/* Every rank together: evaluates every done module (see above); rank 0 gets
 * acc [T] (NaN for tasks without a module). Errors on any rank fail all. */
sotu_status clr_evaluate(clr_run *run, int rank, int nranks, double *acc);

/* Rank 0: fills rep with the methods clr (acc as above) and the baselines
 * that ran (frozen, finetuned), each a task-heads accuracy matrix. */
sotu_status clr_eval_report(const clr_run *run, const double *acc, sotu_eval_report *rep);

/* Rank 0: writes the checkpoint (path NULL = the run's), with the
 * evaluation when rep is not NULL (acc [T] may then be NULL too: a stop
 * checkpoint of the modules only). */
sotu_status clr_write_checkpoint(const clr_run *run, const char *path, const double *acc,
                                 const sotu_eval_report *rep, const clr_cost *cost);

/* Rank 0: checkpoint, summary.csv, report.md, report.html. */
sotu_status clr_write_outputs(const clr_run *run, const double *acc, const sotu_eval_report *rep,
                              const clr_cost *cost, int nranks, double seconds);

/* The per-task table (worker and coordinator accuracy, baselines, bytes,
 * seconds) and CLR's cost lines to f. */
void clr_print_table(const clr_run *run, const double *acc, const clr_cost *cost, FILE *f);

#endif
