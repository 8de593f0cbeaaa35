/* `sotu train` with `method: sotu`: the SoTU run on the coordinator/worker
 * pipeline (coordinator/dispatch.h); cli/cmd_train.c parses the options and
 * calls sotu_train, as it calls sotu_clr_train for `method: clr`
 * (coordinator/clr/clr_train.h).
 *
 * Rank 0 coordinates: it reads θ0 once and broadcasts it, hands out tasks
 * largest first on request, verifies and persists every delta, merges them
 * in task order, evaluates with the other ranks and writes the checkpoint
 * and reports (coordinator/finish.h). A sweep (coordinator/sweep.h) makes
 * (group x task) jobs on the one queue; array mode trains one element's
 * tasks and only writes deltas (`sotu merge` merges them). Stop signals
 * (coordinator/signals.h) end the run with exit status 75 and the done
 * tasks kept.
 */
#ifndef SOTU_COORDINATOR_TRAIN_H
#define SOTU_COORDINATOR_TRAIN_H

#include <stdbool.h>

#include "common/config.h"

typedef struct {
    bool resume;           /* keep the verified deltas in output.dir, train the rest */
    bool retrain_changed;  /* retrain the tasks whose stored delta's settings changed */
    bool array_mode;       /* train array element `element` only, no merge */
    int element;           /* array element (-1: invalid index; refused here) */
    int shard_count;       /* shards per training group (>= 1) */
    bool print_array_size; /* print groups x shards and end */
} sotu_train_options;

/* Every rank, after MPI, the thread count and the stop signals are set up:
 * runs the SoTU job of cfg, ends MPI (sotu_mpi_end) and returns the process
 * exit code. */
int sotu_train(const sotu_config *cfg, const sotu_train_options *opt, int rank, int nranks);

#endif
