/* Loading a ViT for `sotu predict` and `sotu export` from either kind of
 * weights file: a pretrained weights file (format "sotu-weights", group
 * /weights) or a run checkpoint (format "sotu-checkpoint", /merged, with an
 * optional task's head from /heads/<task> in place of head.*). */
#ifndef SOTU_COORDINATOR_MODEL_SOURCE_H
#define SOTU_COORDINATOR_MODEL_SOURCE_H

#include "common/status.h"
#include "worker/resnet.h"
#include "worker/vit.h"

/* Initialises m for batch_cap images and loads its parameters from path.
 * task (NULL for none) names a checkpoint task, or gives its index; the
 * model then has that task's classes and head. SOTU_ERR_USAGE for a task
 * with a weights file, SOTU_ERR_DATA for an unknown task, a task without a
 * head, or a file that is neither kind; errors of the readers otherwise.
 * On failure m is freed. */
sotu_status sotu_model_load(const char *path, const char *task, int batch_cap, vit_model *m);

/* The same for a ResNet weights file (worker/resnet_io.h: arch "resnet"):
 * the model of its attributes with its weights, BatchNorm in eval mode.
 * SOTU_ERR_USAGE with a task (pretrained files have no task heads); errors of
 * the readers otherwise. On failure m is freed. */
sotu_status sotu_model_load_resnet(const char *path, const char *task, int batch_cap,
                                   resnet_model *m);

#endif
