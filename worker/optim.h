/* Optimizers over a flat parameter block: AdamW and SGD with momentum, a
 * warm-up + cosine learning-rate schedule, global gradient-norm clipping and
 * a finiteness check.
 *
 * The optimizer works on any (table, params, grads, trainable) set, not only
 * the ViT. Frozen tensors (trainable[i] false) get no optimizer state: each
 * moment is one allocation covering only the trainable tensors, in table
 * order. The trainable set is fixed at optim_init.
 *
 * AdamW follows torch.optim.AdamW exactly: with t the step count,
 *   p -= lr * wd * p                         (decoupled decay, first)
 *   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * SGD follows torch.optim.SGD (dampening 0, not Nesterov):
 *   g += wd * p,  buf = momentum * buf + g,  p -= lr * buf.
 * By default no decay applies to tensors with ndim <= 1 (norms, biases),
 * pos_embed and cls_token.
 */
#ifndef SOTU_WORKER_OPTIM_H
#define SOTU_WORKER_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "common/tensor.h"

typedef enum { OPTIM_ADAMW, OPTIM_SGD } optim_kind;

typedef struct {
    optim_kind kind;
    float weight_decay; /* AdamW: decoupled; SGD: L2 added to the gradient */
    float beta1, beta2, eps; /* AdamW */
    float momentum;          /* SGD */
} optim_config;

/* torch's defaults: AdamW betas (0.9, 0.999), eps 1e-8, weight decay 0.01;
 * SGD momentum 0.9, weight decay 0. */
optim_config optim_config_default(optim_kind kind);

typedef struct {
    optim_config cfg;
    const sotu_tensor_table *table; /* borrowed; must outlive the optimizer */
    int n;                 /* table->n */
    bool *active;          /* [n] trainable at init */
    bool *decay;           /* [n] weight decay applies */
    size_t *moff;          /* [n] offset into the moments (active tensors only) */
    size_t moment_count;   /* elements in each moment block */
    float *m;              /* [moment_count] first moment / SGD momentum buffer */
    float *v;              /* [moment_count] second moment (AdamW only) */
    long step;             /* steps taken */
    const uint32_t *const *sp_idx; /* [n] borrowed: kept indices of a sparse tensor
                                    * (ascending), NULL entries (or NULL) dense */
    const size_t *sp_n;    /* [n] their counts */
    float *scratch;        /* [2 * scratch_count] gathered params and grads */
    size_t scratch_count;
} optim_state;

/* Allocates zeroed moments for the tensors marked in trainable [tab->n].
 * SOTU_ERR_NOMEM names the bytes. */
sotu_status optim_init(optim_state *o, const optim_config *cfg, const sotu_tensor_table *tab,
                       const bool *trainable);

/* optim_init where tensor i, if idx and idx[i] are not NULL, trains only
 * its nidx[i] entries idx[i] (ascending; `sotu.tuning: masked`): moments
 * (and the SGD buffer) exist for those entries only, weight decay touches
 * only them, and every other entry of the tensor is never written - it
 * keeps its value bitwise. idx and nidx are borrowed for the optimizer's
 * life. */
sotu_status optim_init_sparse(optim_state *o, const optim_config *cfg,
                              const sotu_tensor_table *tab, const bool *trainable,
                              const uint32_t *const *idx, const size_t *nidx);

/* Zeroes the gradient entries of the sparse tensors outside their index
 * lists (before optim_clip_grad_norm, so the norm is the trained entries'). */
void optim_mask_grads(const optim_state *o, float *grads);

/* Turns weight decay on or off for one tensor (after init). */
void optim_set_decay(optim_state *o, int tensor, bool decay);

/* One update of every active tensor with learning rate lr. */
void optim_step(optim_state *o, float *params, const float *grads, float lr);

void optim_free(optim_state *o); /* accepts NULL and zeroed structs */

/* Learning rate at step (0-based) of total: linear warm-up from peak/warmup
 * to peak over the first warmup steps, then cosine decay to 0 at total. */
float optim_lr_at(float peak, long step, long total, long warmup);

/* Global L2 norm of the trainable gradients; if max_norm > 0 and the norm
 * exceeds it, scales them by max_norm / (norm + 1e-6) as
 * torch.nn.utils.clip_grad_norm_. Returns the norm before clipping. */
float optim_clip_grad_norm(const sotu_tensor_table *tab, const bool *trainable, float *grads,
                           float max_norm);

/* Index of the first trainable tensor whose gradient holds a NaN or Inf, or
 * -1 if all are finite (the caller names tab->t[i].name and exits 5). */
int optim_find_nonfinite(const sotu_tensor_table *tab, const bool *trainable,
                         const float *grads);

#endif
