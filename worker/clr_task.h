/* One task of a CLR run (method: clr), as a worker does it: the shared
 * frozen ResNet backbone gets the task's CLR layers (identity), a new fc
 * for the task's classes, and trains CLR's set (resnet_set_trainable "clr":
 * CLR weights, BatchNorm affine and fc; running statistics updated) with
 * the train.* settings; the fine-tuned model is evaluated on the task's
 * test split and the task's MODULE is encoded as one io/module.h message.
 *
 * The module of a task (its layout, in this order): every parameter CLR
 * trains, in the model's table order (<conv>.clr.weight, <bn>.weight,
 * <bn>.bias, fc.weight, fc.bias), then every BatchNorm running statistic
 * (<bn>.running_mean, <bn>.running_var), dense f32; the module's counter is
 * num_batches_tracked and its kind the CLR variant (1 clr, 2 clr-full).
 * Everything else is the frozen backbone, the same for every task.
 *
 * Baselines run through the same code: "frozen" trains fc only on the plain
 * backbone (CLR's SGD-LL), "finetuned" every tensor of the plain backbone
 * (the upper bound); they report an accuracy and ship no module.
 */
#ifndef SOTU_WORKER_CLR_TASK_H
#define SOTU_WORKER_CLR_TASK_H

#include <stdint.h>

#include <zstd.h>

#include "common/config.h"
#include "common/status.h"
#include "io/module.h"
#include "io/taskset.h"
#include "worker/resnet.h"
#include "worker/task.h"

typedef enum {
    CLR_JOB_MODULE = 0,   /* the CLR task: trains and ships its module */
    CLR_JOB_FROZEN,       /* baseline: fc on the frozen plain backbone */
    CLR_JOB_FINETUNED,    /* baseline: full fine-tuning of the plain backbone */
    CLR_JOB_KINDS
} clr_job_kind;

/* "module" | "frozen" | "finetuned". */
const char *clr_job_kind_name(clr_job_kind k);

/* A model for task `task` with `classes` outputs and CLR variant clr, built
 * from base (any variant; its fc is not used): every convolution, BatchNorm
 * affine parameter, running statistic and num_batches_tracked copied, CLR
 * weights base has at the same name copied and the others identity, and a
 * new fc drawn as nn.Linear's reset (uniform +-1/sqrt(8W)) from (seed,
 * stream SOTU_STREAM_INIT + (task << 8)). Activations for batch_cap images.
 * SOTU_ERR_CONFIG or SOTU_ERR_NOMEM; m is zeroed on failure. */
sotu_status clr_model_for_task(const resnet_model *base, resnet_clr clr, int classes,
                               int batch_cap, uint64_t seed, uint32_t task, resnet_model *m);

/* The module layout of m (a CLR model) into layout (layout->t malloc'ed;
 * free with sotu_task_table_free): see above. SOTU_ERR_CONFIG if m has no
 * CLR layers. m's trainable set is left as it was. */
sotu_status clr_module_layout(const resnet_model *m, sotu_tensor_table *layout);

/* m's module values [layout->total] into values, and back. */
void clr_module_extract(const resnet_model *m, const sotu_tensor_table *layout, float *values);
void clr_module_apply(resnet_model *m, const sotu_tensor_table *layout, const float *values,
                      int64_t num_batches_tracked);

/* Runs job `kind` of manifest task `index` from the shared backbone base
 * (its CLR variant is cfg's clr.variant for CLR_JOB_MODULE) with cfg's
 * train.* settings. CLR_JOB_MODULE fills res->message with the encoded
 * module (cctx: the rank's reused zstd context); the baselines leave it
 * NULL. res->finetuned_acc is the test accuracy. On failure the status names
 * the task and res holds no message.
 *
 * A module carries prov (io/provenance.h) with the task file's checksum,
 * computed here from the file's bytes, set in.
 *
 * Fault injection for the reliability tests: SOTU_FAULT_DIVERGE_TASK=<task>
 * diverges as in worker/task.c; SOTU_FAULT_CORRUPT_MODULE=<task> flips a
 * byte of that task's encoded module after encoding (the coordinator must
 * reject it). */
sotu_status sotu_clr_task_run(const resnet_model *base, const sotu_config *cfg,
                              const sotu_provenance *prov, const sotu_manifest_task *task,
                              uint32_t index, clr_job_kind kind, ZSTD_CCtx *cctx,
                              sotu_task_result *res);

#endif
