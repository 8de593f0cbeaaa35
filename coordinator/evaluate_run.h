/* The evaluation of a finished SoTU run (eval/evaluate.h does the
 * distributed accuracy matrices; this adds the run's methods and baselines):
 * sotu (the run's merge at the primary keep), dense, frozen, sequential,
 * finetuned and sotu@<keep>, and the checkpoint, summary.csv and report
 * files written from them. Every rank must call these functions together.
 */
#ifndef SOTU_COORDINATOR_EVALUATE_RUN_H
#define SOTU_COORDINATOR_EVALUATE_RUN_H

#include "coordinator/run.h"
#include "eval/evaluate.h"

/* Evaluates a finished run (rank 0 holds the deltas and heads; run->cfg
 * selects eval.classifiers and eval.baselines): trains the frozen and
 * sequential baselines, evaluates every method and, on rank 0, fills rep,
 * logs an "evaluation" event per method to metrics.jsonl. */
sotu_status sotu_evaluate_run(sotu_run *run, int rank, int nranks, sotu_eval_report *rep);

/* The methods a sweep already evaluated, so that each distinct model is
 * evaluated once (coordinator/finish.c): the points of one training group
 * share their deltas, so their frozen and sequential baselines, their dense
 * merge and a merge at a keep another point already evaluated are the same.
 * An entry's key is the training group, the tasks merged and, for merges,
 * keep, merge.mode and merge.scale; a full matrix also serves a request for
 * the last row only (sotu@k), never the other way. Every rank keeps the keys
 * (they decide identically what to skip); rank 0 also keeps the matrices. */
typedef struct sotu_eval_cache sotu_eval_cache;

sotu_eval_cache *sotu_eval_cache_new(void); /* NULL: out of memory */
void sotu_eval_cache_free(sotu_eval_cache *c); /* accepts NULL */
/* Methods served from the cache so far (evaluations saved). */
int sotu_eval_cache_hits(const sotu_eval_cache *c);

/* sotu_evaluate_run with a cache (NULL: none) for a run of training group
 * `group`: methods found in it are copied (method.reused set, seconds 0,
 * logged with "reused": true) instead of trained and evaluated again; the
 * others are evaluated and added. The frozen baseline is keyed by
 * `frozen_group` instead (sotu_sweep_point.frozen_group: groups that differ
 * only in sotu.* keys train the same frozen heads). */
sotu_status sotu_evaluate_run_cached(sotu_run *run, int rank, int nranks, sotu_eval_report *rep,
                                     sotu_eval_cache *cache, int group, int frozen_group);

/* Task-head accuracy of the merged backbone (rank 0: merged [table.total],
 * acc [T]; NaN for tasks not done): the last row only. */
sotu_status sotu_evaluate_heads(const sotu_run *run, const float *merged, int rank, int nranks,
                                double *acc);

/* Rank 0, after sotu_evaluate_run: writes the checkpoint (merged at the
 * primary keep, stats may be NULL, /eval/acc_matrix = SoTU task heads, the
 * metrics of every method as /eval attrs named <method>_<classifier>_<figure>
 * plus final_avg_acc etc. of SoTU's task heads), summary.csv, report.md and
 * report.html in the run directory; acc [T] gets SoTU's task-head accuracy
 * on the last row (for sotu_run_print_table). */
sotu_status sotu_evaluate_write(sotu_run *run, const float *merged, const sotu_merge_stats *stats,
                                const sotu_eval_report *rep, int nranks, double seconds,
                                double *acc);

#endif
