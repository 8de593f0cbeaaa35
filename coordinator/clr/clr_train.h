/* `sotu train` with `method: clr`: CLR (Ge et al., ICCV 2023) on the same
 * coordinator/worker pipeline as SoTU (coordinator/dispatch.h).
 *
 * Rank 0 reads the ResNet backbone (model.pretrained, io/resnet_io.h)
 * once and broadcasts its parameters and running statistics; it hands out
 * the jobs of coordinator/clr/clr_run.h (every task's CLR module first, then
 * the baselines of eval.baselines: frozen, finetuned; each largest task
 * first), verifies and persists every module (modules/<task>.clrm), and
 * after the last job evaluates every module task-incrementally with the
 * other ranks (coordinator/clr/clr_eval.h), then writes the checkpoint and the
 * reports. A failed or corrupt task is logged and marked failed and the run
 * carries on (exit status 3 at the end); --resume keeps every module and
 * baseline result that verifies. Stop signals behave as for SoTU (exit 75).
 * Sweeps and array mode are SoTU's only.
 */
#ifndef SOTU_COORDINATOR_CLR_CLR_TRAIN_H
#define SOTU_COORDINATOR_CLR_CLR_TRAIN_H

#include <stdbool.h>

#include "common/config.h"

/* Every rank, after MPI, the thread count and the stop signals are set up:
 * runs the CLR job of cfg, ends MPI (sotu_mpi_end) and returns the process
 * exit code. */
int sotu_clr_train(const sotu_config *cfg, bool resume, bool retrain_changed, bool array_mode,
                   int rank, int nranks);

#endif
