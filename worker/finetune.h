/* The fine-tuning loop: one task, one model, one process.
 *
 * Used by `sotu finetune`, by every `sotu train` worker and by `sotu pretrain`,
 * for the ViT (worker/vit.h) and, through the *_resnet functions, the ResNet
 * (worker/resnet.h; one loop behind a small model adapter in finetune.c).
 * The caller owns the model (θ0 loaded, head sized for the task with
 * sotu_finetune_reset_head) and the task's images; the loop only reads the
 * settings in cfg->train and cfg->data (mean, std) and never touches MPI,
 * files or the thread count (the caller sets threads once).
 *
 * Per epoch: a seeded shuffle (stream SOTU_STREAM_SHUFFLE + (task << 8)),
 * mini-batches of train.batch_size (the last one may be smaller), images
 * converted from uint8 NHWC to float NCHW as ((x / 255) - mean) / std (per
 * channel, from data.normalize / data.mean / data.std: io/preprocess.h) with a
 * random crop from a zero-padded image (train.augment_pad pixels; padding is
 * pixel value 0) and an optional horizontal flip (stream SOTU_STREAM_AUGMENT
 * + (task << 8)); the optimizer of worker/optim.h with warm-up + cosine
 * schedule and gradient clipping; only the tensors named by train.tune train.
 *
 * LP-FT: with train.head_epochs = H > 0 the loop first trains the head alone
 * for H epochs on the frozen backbone (a ResNet's BatchNorm in eval mode, its
 * running statistics untouched), with its own optimizer state, schedule
 * (train.lr, train.warmup_steps, train.max_steps) and freshly started
 * shuffle/augment streams, then runs train.epochs epochs of train.tune from
 * that head exactly as with H = 0. on_epoch, the evaluation and the result
 * cover the second phase only; H = 0 is the plain loop, bit for bit.
 *
 * Determinism: the same model, data and cfg give bitwise the same weights at
 * any thread count (worker/nn.c, "Threads").
 *
 * A ResNet trains with BatchNorm in training mode (running statistics
 * updated) and evaluates in eval mode; a last batch of one image, which
 * BatchNorm cannot normalise, is skipped.
 *
 * A NaN or Inf in the loss or in a gradient stops the loop with
 * SOTU_ERR_NUMERIC whose message names the step and the tensor (exit code 5).
 */
#ifndef SOTU_WORKER_FINETUNE_H
#define SOTU_WORKER_FINETUNE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "common/status.h"
#include "io/taskset.h"
#include "worker/resnet.h"
#include "worker/vit.h"

typedef struct {
    int epoch;          /* 1-based */
    int epochs;
    int64_t step;       /* optimizer steps done so far */
    double train_loss;  /* mean over the epoch's images */
    double train_acc;   /* share of the epoch's (augmented) images right, in [0,1] */
    double test_acc;    /* in [0,1]; negative when not evaluated */
    double seconds;     /* since the loop started */
} sotu_finetune_epoch;

/* Called after every epoch; a non-OK status stops the loop and is returned
 * (e.g. `sotu pretrain` writes its weights file here). */
typedef sotu_status (*sotu_finetune_epoch_fn)(void *ctx, const vit_model *m,
                                             const sotu_finetune_epoch *e);
typedef sotu_status (*sotu_finetune_resnet_epoch_fn)(void *ctx, const resnet_model *m,
                                                    const sotu_finetune_epoch *e);

/* One optimizer step, as on_step sees it (every opts.step_every steps and
 * the last step of each phase). */
typedef struct {
    bool probe;         /* LP-FT's head-only phase (train.head_epochs) */
    int epoch;          /* 1-based, within the phase */
    int64_t step;       /* 1-based, within the phase */
    int64_t total;      /* steps of the phase */
    double loss;        /* the batch's mean loss */
    double lr;          /* the learning rate the step used */
    double grad_norm;   /* L2 norm of the trainable gradients before clipping */
    int images;         /* the batch's images */
    double step_seconds; /* wall time of the step (batch building included) */
    double seconds;     /* since the loop started */
} sotu_finetune_step;

typedef void (*sotu_finetune_step_fn)(void *ctx, const sotu_finetune_step *s);

typedef struct {
    uint32_t task;            /* selects the shuffle/augment streams */
    const char *label;        /* progress label, e.g. "fine-tune t00"; NULL = "fine-tune" */
    bool eval_every_epoch;    /* test accuracy after each epoch (else only at the end) */
    bool eval_at_end;         /* test accuracy after the last epoch */
    const char *tune;         /* trainable set; NULL = cfg->train.tune */
    sotu_finetune_epoch_fn on_epoch; /* ViT runs; may be NULL */
    sotu_finetune_resnet_epoch_fn on_epoch_resnet; /* ResNet runs; may be NULL */
    void *ctx;
    /* sotu.tuning masked: per table tensor, the only entries that train
     * (ascending; NULL entries, or NULL: the whole tensor) - worker/optim.h,
     * optim_init_sparse; their gradients alone enter the clipping norm. */
    const uint32_t *const *mask_idx;
    const size_t *mask_n;
    sotu_finetune_step_fn on_step; /* may be NULL */
    int step_every;           /* on_step every N steps (and each phase's last); 0 = never */
    void *step_ctx;
} sotu_finetune_opts;

typedef struct {
    double train_loss;  /* mean loss of the last epoch */
    double train_acc;   /* of the last epoch, in [0,1] */
    double test_acc;    /* in [0,1]; negative when not evaluated */
    double seconds;     /* wall time of the loop, evaluation included */
    int64_t steps;      /* optimizer steps taken */
    int epochs;         /* epochs completed */
} sotu_finetune_result;

/* Options with the defaults: task 0, evaluation at the end only. */
sotu_finetune_opts sotu_finetune_opts_default(void);

/* Replaces m's head by a fresh one with `classes` outputs (timm init:
 * trunc-normal 0.02 weight from (seed, stream SOTU_STREAM_INIT + (task << 8)),
 * zero bias) and sizes activations for
 * batch_cap images; every other parameter keeps its value and every tensor
 * becomes trainable again. On failure m is unchanged (SOTU_ERR_NOMEM or
 * SOTU_ERR_CONFIG). */
sotu_status sotu_finetune_reset_head(vit_model *m, int classes, int batch_cap, uint64_t seed,
                                     uint32_t task);

/* Fine-tunes m on t's training split as described above. The model's image
 * geometry must match the task's (SOTU_ERR_DATA naming the task otherwise),
 * train.batch_size must not exceed m->batch_cap and the head must have
 * t->classes outputs (SOTU_ERR_CONFIG). res may be NULL. */
sotu_status sotu_finetune_run(vit_model *m, const sotu_taskset *t, const sotu_config *cfg,
                              const sotu_finetune_opts *opts, sotu_finetune_result *res);

/* The same loop for a ResNet (BatchNorm: see above); its head is fc. */
sotu_status sotu_finetune_run_resnet(resnet_model *m, const sotu_taskset *t,
                                     const sotu_config *cfg, const sotu_finetune_opts *opts,
                                     sotu_finetune_result *res);

/* Converts images [n, H, W, C] uint8 to dst [n, C, H, W] float, normalised
 * with (x / 255 - mean) / std, without augmentation. */
void sotu_finetune_to_float(float *dst, const uint8_t *src, int n, int H, int W, int C,
                            float mean, float std);

/* Evaluates m on n images [n, H, W, C] in batches of m->batch_cap without
 * gradients: *acc (may be NULL) gets the share whose argmax matches labels
 * (labels may be NULL: no accuracy); features, if not NULL, gets the pooled
 * final-norm class token of every image [n, D] and logits, if not NULL, the
 * logits [n, K]. SOTU_ERR_DATA if the geometry differs from the model's. */
sotu_status sotu_finetune_eval(vit_model *m, const uint8_t *images, const int32_t *labels,
                               int32_t n, int H, int W, int C, float mean, float std,
                               double *acc, float *features, float *logits);

/* sotu_finetune_eval with the normalisation cfg's data.normalize,
 * data.mean and data.std describe (per channel; io/preprocess.h), as the
 * training loop uses it. */
sotu_status sotu_finetune_eval_cfg(vit_model *m, const uint8_t *images, const int32_t *labels,
                                   int32_t n, int H, int W, int C, const sotu_config *cfg,
                                   double *acc, float *features, float *logits);

/* sotu_finetune_eval_cfg on t's test split. */
sotu_status sotu_finetune_eval_test(vit_model *m, const sotu_taskset *t, const sotu_config *cfg,
                                    double *acc, float *features);

/* sotu_finetune_eval_cfg for a ResNet, BatchNorm in eval mode (restored
 * afterwards); features [n, 8W] are the pooled features before fc. */
sotu_status sotu_finetune_eval_resnet(resnet_model *m, const uint8_t *images,
                                      const int32_t *labels, int32_t n, int H, int W, int C,
                                      const sotu_config *cfg, double *acc, float *features,
                                      float *logits);

/* sotu_finetune_eval_resnet on t's test split. */
sotu_status sotu_finetune_eval_test_resnet(resnet_model *m, const sotu_taskset *t,
                                           const sotu_config *cfg, double *acc);

#endif
