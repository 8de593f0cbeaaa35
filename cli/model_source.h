/* Loading a ViT for `sotu predict` and `sotu export` from either kind of
 * weights file: a pretrained weights file (format "sotu-weights", group
 * /weights) or a run checkpoint (format "sotu-checkpoint", /merged, with an
 * optional task's head from /heads/<task> in place of head.*). */
#ifndef SOTU_CLI_MODEL_SOURCE_H
#define SOTU_CLI_MODEL_SOURCE_H

#include <stdbool.h>

#include "common/status.h"
#include "worker/resnet.h"
#include "worker/vit.h"

/* Which head a loaded model has, for the caller's output. */
typedef struct {
    char task[128];       /* the checkpoint task whose head it is; "" for the file's own */
    bool pretrained_head; /* a run checkpoint's /merged head (the pretrained backbone's) */
    int classes;
    char (*class_names)[128]; /* [classes], malloc'ed; NULL when the file does not say */
} sotu_model_head;

void sotu_model_head_free(sotu_model_head *h); /* accepts NULL and zeroed */

/* Initialises m for batch_cap images and loads its parameters from path.
 * task (NULL for none) names a checkpoint task, or gives its index; the
 * model then has that task's classes and head. A run checkpoint whose tasks
 * have heads needs a task: without one it is SOTU_ERR_USAGE listing them,
 * unless pretrained_head asks for /merged's own head (the 10-class head of
 * the pretrained backbone, which no task trained). SOTU_ERR_USAGE for a task
 * with a weights file, SOTU_ERR_DATA for an unknown task, a task without a
 * head, or a file that is neither kind; errors of the readers otherwise.
 * head (may be NULL) says which head was loaded. On failure m and head are
 * freed. */
sotu_status sotu_model_load(const char *path, const char *task, bool pretrained_head,
                            int batch_cap, vit_model *m, sotu_model_head *head);

/* The same for a ResNet weights file (io/resnet_io.h: arch "resnet"):
 * the model of its attributes with its weights, BatchNorm in eval mode.
 * SOTU_ERR_USAGE with a task (pretrained files have no task heads); errors of
 * the readers otherwise. On failure m is freed. */
sotu_status sotu_model_load_resnet(const char *path, const char *task, int batch_cap,
                                   resnet_model *m);

#endif
