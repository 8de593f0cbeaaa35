/* The end of a run: merge the done deltas, evaluate, write the checkpoint
 * and reports. `sotu train` runs it for every sweep point and `sotu merge`
 * for the run directories it re-merges. No training of task deltas here;
 * the baselines of eval.baselines are trained by the evaluation. */
#ifndef SOTU_COORDINATOR_FINISH_H
#define SOTU_COORDINATOR_FINISH_H

#include "coordinator/run.h"
#include "coordinator/sweep.h"

/* Every rank calls this together; rank 0's run holds the deltas (loaded or
 * received), the other ranks' runs were initialised without create. Rank 0
 * merges at the run's primary keep, evaluates with the other ranks
 * (coordinator/evaluate.h), writes run->checkpoint_path, the reports and a
 * "run_end" event, prints the task table and fills *mean_merged_acc (mean
 * task-head accuracy of the merged model over the done tasks, NaN if none)
 * and *n_done. Errors on any rank fail every rank. */
sotu_status sotu_finish_run(sotu_run *run, int rank, int nranks, double t_start,
                            double *mean_merged_acc, int *n_done);

/* Every point of sw in order: its run directory's deltas loaded on rank 0,
 * then sotu_finish_run; rank 0 then writes and prints the ranking
 * (sotu_sweep_write_summary). A point whose deltas are missing is merged
 * from the ones present (its summary row says how many). */
sotu_status sotu_finish_sweep(const sotu_sweep *sw, const sotu_manifest *man,
                              const vit_config *vc, const sotu_tensor_table *table,
                              const float *theta0, int rank, int nranks);

#endif
