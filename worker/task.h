/* One task of a run, as a worker does it: hold out the validation split
 * (data.val_fraction, io/taskset.h), fine-tune from θ0 on the rest, evaluate
 * the fine-tuned model on the validation and test splits (the upper-bound
 * figures), cut
 * δ = θt − θ0 down to the SoTU mask and encode it as a `.sotud` message.
 *
 * The task's head is new (its class count differs from the backbone's), so
 * it travels DENSE with its absolute values: the worker extracts against a
 * θ0 whose head is zero. The backbone tensors travel SEEDED at keep.
 */
#ifndef SOTU_WORKER_TASK_H
#define SOTU_WORKER_TASK_H

#include <stddef.h>
#include <stdint.h>

#include <zstd.h>

#include "common/config.h"
#include "common/status.h"
#include "io/provenance.h"
#include "io/taskset.h"
#include "worker/vit.h"

typedef struct {
    double finetuned_acc;   /* test accuracy of the fine-tuned model, [0, 1] */
    double val_acc;         /* its accuracy on the validation hold-out; NaN without one */
    int32_t n_val;          /* validation images held out (data.val_fraction) */
    double train_loss;
    double seconds;         /* fine-tuning + evaluation + extraction + encoding */
    int64_t steps;
    void *message;          /* malloc'ed encoded delta (io/delta.h) */
    size_t message_bytes;
    char *scalars;          /* malloc'ed per-step scalars, JSONL (train.log_every), or NULL */
    size_t scalars_bytes;
} sotu_task_result;

/* Runs task `index` (its entry in the manifest) from θ0 (laid out by the
 * backbone model config vc) with cfg's train.* settings, shipping SEEDED
 * values at keep. The delta carries prov (θ0's fingerprint, cfg's training
 * text, ...; io/provenance.h) with the task file's checksum, computed here
 * from the file's bytes, set in. cctx is the rank's reused zstd context. On failure the
 * status names the task (e.g. SOTU_ERR_NUMERIC from a diverging loss) and
 * res holds no message. */
sotu_status sotu_task_run(const vit_config *vc, const float *theta0, const sotu_config *cfg,
                          const sotu_provenance *prov, const sotu_manifest_task *task,
                          uint32_t index, double keep, ZSTD_CCtx *cctx, sotu_task_result *res);

void sotu_task_result_free(sotu_task_result *res); /* accepts NULL */

/* Fault injection for the reliability tests (docs/RELIABILITY.md): the
 * config task `task` trains with. cfg itself, or, when the environment's
 * SOTU_FAULT_DIVERGE_TASK names the task, a copy in scratch whose learning
 * rate makes it diverge through the real NaN path. */
const sotu_config *sotu_task_fault_config(const sotu_config *cfg, const char *task,
                                          sotu_config *scratch);

/* The table of the backbone config vc with a head of `classes` outputs
 * (what a task's delta is checked against). tab->t is malloc'ed; free it
 * with sotu_task_table_free. */
sotu_status sotu_task_table(const sotu_tensor_table *backbone, int classes, int dim,
                            sotu_tensor_table *tab);
void sotu_task_table_free(sotu_tensor_table *tab);

#endif
