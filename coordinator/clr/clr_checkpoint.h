/* Reading a CLR run's checkpoint ("sotu-clr-checkpoint", layout in
 * coordinator/clr/clr_eval.h) back into models: `sotu predict` runs one task's
 * model, `sotu eval` re-evaluates every task's module with clr_evaluate.
 *
 * A task's model is the frozen /backbone with the task's module
 * (/clr/<task>: CLR layers, BatchNorm, fc, running statistics and the
 * group's num_batches_tracked) overlaid on it by the same code the run
 * evaluated it with (clr_model_for_task, clr_module_apply), BatchNorm in
 * eval mode. Each task has its own model: there is no merged one.
 */
#ifndef SOTU_COORDINATOR_CLR_CLR_CHECKPOINT_H
#define SOTU_COORDINATOR_CLR_CLR_CHECKPOINT_H

#include <stdbool.h>

#include "common/config.h"
#include "common/status.h"
#include "coordinator/clr/clr_run.h"
#include "worker/resnet.h"

/* True when path is an HDF5 file whose root format is
 * "sotu-clr-checkpoint" (false for anything else, unreadable files too). */
bool clr_checkpoint_detect(const char *path);

/* The run's configuration stored in the checkpoint (attribute config) over
 * the defaults, then the n_sets "key=value" overrides, validated.
 * SOTU_ERR_DATA for a missing or unparsable configuration. */
sotu_status clr_checkpoint_read_config(const char *path, char *const *sets, int n_sets,
                                       sotu_config *cfg);

/* The frozen backbone (/backbone, config from the root attributes) into
 * base, initialised for batch_cap images. On failure base is freed. */
sotu_status clr_checkpoint_read_backbone(const char *path, int batch_cap, resnet_model *base);

/* Resolves task (a task name, or its index as a decimal number) against
 * /tasks: name (SOTU_TASK_NAME_MAX bytes), index and classes. SOTU_ERR_DATA
 * for an unknown task (the message lists the tasks) or a task whose module
 * is not in the checkpoint (status failed). */
sotu_status clr_checkpoint_find_task(const char *path, const char *task, char *name, int *index,
                                     int *classes);

/* Reads /clr/<name> laid out by layout (a task's module layout,
 * clr_run_layout) into values [layout->total] and its num_batches_tracked
 * into *counter. SOTU_ERR_DATA naming the tensor if one is missing or of
 * another shape. */
sotu_status clr_checkpoint_read_module(const char *path, const char *name,
                                       const sotu_tensor_table *layout, float *values,
                                       int64_t *counter);

/* Task `task`'s whole model (see above) for batch_cap images, BatchNorm in
 * eval mode; *task_name gets the resolved name (SOTU_TASK_NAME_MAX bytes).
 * The CLR variant is the checkpoint's clr_variant. On failure m is freed. */
sotu_status clr_checkpoint_load_task(const char *path, const char *task, int batch_cap,
                                     resnet_model *m, char *task_name);

/* Fills the state of run (clr_run_init'ed over a manifest, create false)
 * from the checkpoint: for every manifest task with a module under its name,
 * the module (done) and the worker's recorded accuracies, baselines, bytes
 * and seconds from /tasks. Tasks of the manifest the checkpoint lacks stay
 * not done. SOTU_ERR_DATA if a task's classes differ from the manifest's.
 * *n_found gets the number of modules read. */
sotu_status clr_checkpoint_fill_run(const char *path, clr_run *run, int *n_found);

#endif
