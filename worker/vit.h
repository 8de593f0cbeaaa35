/* A pre-norm Vision Transformer with timm's semantics and parameter names.
 *
 * Dimensions: B batch, C channels, S image side, P patch, N = (S/P)^2
 * patches, T = N + 1 tokens, D width, H heads, hd = D/H, F MLP hidden,
 * L depth, K classes.
 *
 * Parameters (timm names, block order = table order):
 *   cls_token [1,1,D], pos_embed [1,T,D], patch_embed.proj.weight [D,C,P,P],
 *   patch_embed.proj.bias [D], then per block i:
 *   blocks.i.norm1.{weight,bias} [D], blocks.i.attn.qkv.weight [3D,D],
 *   blocks.i.attn.qkv.bias [3D], blocks.i.attn.proj.{weight [D,D], bias [D]},
 *   blocks.i.norm2.{weight,bias} [D], blocks.i.mlp.fc1.{weight [F,D], bias [F]},
 *   blocks.i.mlp.fc2.{weight [D,F], bias [D]}; then norm.{weight,bias} [D],
 *   head.{weight [K,D], bias [K]}.
 * LayerNorm eps 1e-6, exact erf GELU, attention scale hd^-0.5, class-token
 * pooling. Input images are float [B, C, S, S], already normalised.
 *
 * Life cycle: vit_init -> (vit_init_random | load params) -> repeat
 * { vit_zero_grad; vit_forward; vit_backward; optimizer step } -> vit_free.
 * vit_backward adds into grads; zeroing them is the explicit step.
 *
 * Threads: every kernel uses the OpenMP thread count (sotu_threads_set) and
 * gives bitwise the same results at any thread count: matrix products are cut
 * into tiles fixed by their shapes, each a single-threaded OpenBLAS sgemm, and
 * sums across pieces run in piece order (worker/nn.c, "Threads").
 *
 * The last block computes only the class token's path
 * after attention (nothing else reaches the head), so activations of its
 * other tokens past attention are not kept.
 */
#ifndef SOTU_WORKER_VIT_H
#define SOTU_WORKER_VIT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"
#include "common/tensor.h"

typedef sotu_vit_config vit_config;

typedef struct vit_acts vit_acts; /* activations, internal to vit.c */

typedef struct {
    vit_config cfg;
    sotu_tensor_table table;   /* names, shapes, offsets into params/grads */
    size_t num_params;
    float *params;             /* [num_params], one allocation */
    float *grads;              /* [num_params], one allocation */
    bool *trainable;           /* [table.n]; frozen tensors get no grad work */
    bool input_grad;           /* unused for now: no gradient w.r.t. images */

    int batch_cap;             /* activations are sized for this many images */
    vit_acts *acts;
    float *logits;             /* [batch_cap, K], valid after vit_forward */
    float *features;           /* [batch_cap, D] final-norm class token (pooled) */
    float loss;                /* mean cross-entropy of the last forward with labels */
    float label_smoothing;     /* 0 = plain cross-entropy */
} vit_model;

/* Checks the config (S % P == 0, D % H == 0, all > 0) and allocates params
 * (zeroed), grads and activations for batch_cap images. All tensors start
 * trainable. Fails with SOTU_ERR_CONFIG or SOTU_ERR_NOMEM (naming the bytes). */
sotu_status vit_init(vit_model *m, const vit_config *cfg, int batch_cap);

/* timm's init: trunc-normal(0.02) for linear weights, pos_embed and
 * cls_token (cls 1e-6 normal as timm), zeros for biases, ones/zeros for
 * norms; deterministic in seed. */
void vit_init_random(vit_model *m, uint64_t seed);

/* Forward for B <= batch_cap images [B, C, S, S]. With labels [B] it also
 * computes the mean (label-smoothed) cross-entropy, returned and stored in
 * m->loss; with labels NULL it returns 0 and only fills logits/features. */
float vit_forward(vit_model *m, const float *images, const int32_t *labels, int B);

/* Backward of the last forward (which must have had labels): adds
 * d(loss)/d(param) into m->grads for trainable tensors. */
void vit_backward(vit_model *m);

void vit_zero_grad(vit_model *m);

/* Marks tensors trainable by a spec: "all", "blocks", "attn", "mlp", "norm",
 * "head", or comma-separated fnmatch globs over names (keywords and globs
 * mix: "attn,head"). Exactly the matched tensors train; "attn" alone does
 * not include the head. Fails with SOTU_ERR_CONFIG, leaving the set
 * unchanged, if the spec is empty or any item matches nothing. */
sotu_status vit_set_trainable(vit_model *m, const char *spec);

/* Floating-point operations of one training step (forward + backward) for B
 * images, counting a multiply-add as 2 (for GFLOP/s reports). Counts what
 * this engine executes: its last block computes only the class token's
 * path after attention (a dense implementation does up to ~12% more for
 * depth 6). */
double vit_train_flops(const vit_config *cfg, int B);

void vit_free(vit_model *m); /* accepts NULL and zeroed structs */

#endif
