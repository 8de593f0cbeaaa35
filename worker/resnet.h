/* A ResNet (BasicBlock: ResNet-18/34) with torchvision's semantics and
 * parameter names, and CLR's channel-wise lightweight reprogramming layers.
 *
 * Dimensions: B batch, C channels, S image side, W base width (64 in
 * torchvision), K classes; a feature map is [B, C, H, W] row-major.
 *
 * Network (torchvision.models.resnet18/34):
 *   conv1 (7x7/2 pad 3, or 3x3/1 pad 1 with small_input) -> bn1 -> relu ->
 *   maxpool 3x3/2 pad 1 (none with small_input) -> layer1..layer4 ->
 *   global average pool -> fc.
 *   layerL has [2,2,2,2] (18) or [3,4,6,3] (34) BasicBlocks of width
 *   W * 2^(L-1); block 0 of layers 2-4 has stride 2 and a shortcut
 *   downsample = conv 1x1/2 -> BatchNorm. A BasicBlock is
 *   out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
 *
 * CLR (Ge et al., ICCV 2023): with clr RESNET_CLR_CONV3 every convolution
 * that is not 1x1 (RESNET_CLR_ALL: every convolution) is followed by a
 * depthwise 3x3 convolution, pad 1, no bias, <conv>.clr.weight [C,1,3,3],
 * initialised to the identity (centre 1). CLR trains these with the
 * BatchNorm affine parameters (running statistics updated) and fc, the
 * original convolutions frozen: resnet_set_trainable(m, "clr").
 *
 * Parameters (torchvision names, table order = forward order):
 *   conv1.weight [W,C,k,k], [conv1.clr.weight [W,1,3,3]], bn1.{weight,bias} [W],
 *   per block layerL.i: conv1.weight, [conv1.clr.weight], bn1.{weight,bias},
 *   conv2.weight, [conv2.clr.weight], bn2.{weight,bias}, and in the first
 *   block of layers 2-4 downsample.0.weight [C,C/2,1,1],
 *   [downsample.0.clr.weight (RESNET_CLR_ALL)], downsample.1.{weight,bias};
 *   fc.weight [K, 8W], fc.bias [K].
 * BatchNorm running statistics are not parameters: they live in their own
 * block `running` with its own table (<bn>.running_mean, <bn>.running_var,
 * same order), and one num_batches_tracked counter stands for every
 * BatchNorm's (they all advance together; exporters write it to each
 * <bn>.num_batches_tracked).
 *
 * BatchNorm: eps 1e-5. In training mode (m->training) it normalises with
 * the batch statistics over B*H*W (biased variance) and updates
 * running = (1 - momentum) running + momentum batch, with the unbiased
 * variance for running_var, momentum 0.1, as torch.nn.BatchNorm2d; in eval
 * mode it uses the running statistics and updates nothing.
 *
 * Life cycle: resnet_init -> (resnet_init_random | load params and running)
 * -> repeat { resnet_zero_grad; resnet_forward; resnet_backward; optimizer
 * step } -> resnet_free. Backward adds into grads; zeroing is explicit.
 */
#ifndef SOTU_WORKER_RESNET_H
#define SOTU_WORKER_RESNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "common/tensor.h"
#include "io/resnet_io.h" /* resnet_clr, resnet_config; the weights file format */

typedef struct resnet_net resnet_net; /* layers and activations, internal */

typedef struct {
    resnet_config cfg;
    sotu_tensor_table table;   /* parameters: names, shapes, offsets */
    size_t num_params;
    float *params;             /* [num_params], one allocation */
    float *grads;              /* [num_params], one allocation */
    bool *trainable;           /* [table.n]; frozen tensors get no grad work */

    sotu_tensor_table buffers; /* running statistics: names, shapes, offsets */
    float *running;            /* [buffers.total], one allocation */
    int64_t num_batches_tracked;

    bool training;             /* BatchNorm mode; true after init */
    float bn_momentum;         /* 0.1 */
    float label_smoothing;     /* 0 = plain cross-entropy */

    int batch_cap;             /* activations are sized for this many images */
    resnet_net *net;
    float *logits;             /* [batch_cap, K], valid after resnet_forward */
    float *features;           /* [batch_cap, 8W] pooled features */
    int feature_dim;           /* 8W */
    float loss;                /* mean cross-entropy of the last forward with labels */
} resnet_model;

/* "none" | "clr" | "clr-full" -> out; SOTU_ERR_CONFIG naming field
 * otherwise. */
sotu_status resnet_parse_clr(const char *s, const char *field, resnet_clr *out);
const char *resnet_clr_name(resnet_clr clr);

/* Checks the config (depth 18 or 34, all sizes > 0, the image large enough
 * for every stride) and allocates zeroed params, grads, running statistics
 * (mean 0, var 1) and activations for batch_cap images. All tensors start
 * trainable, training mode on. SOTU_ERR_CONFIG or SOTU_ERR_NOMEM. */
sotu_status resnet_init(resnet_model *m, const resnet_config *cfg, int batch_cap);

/* torchvision's init: convolutions kaiming-normal (fan_out, relu gain),
 * BatchNorm weight 1 and bias 0, fc weight and bias uniform
 * +-1/sqrt(8W) (nn.Linear's default); CLR weights identity; running mean 0,
 * var 1, num_batches_tracked 0. Deterministic in seed. */
void resnet_init_random(resnet_model *m, uint64_t seed);

/* Sets every CLR weight to the identity (a new task's starting point). */
void resnet_clr_reset(resnet_model *m);

/* Forward for B <= batch_cap images [B, C, S, S]. In training mode B must
 * be > 1 (batch statistics) and the running statistics are updated even
 * without labels, as PyTorch. With labels [B] it also computes the mean
 * (label-smoothed) cross-entropy, returned and stored in m->loss; with
 * labels NULL it returns 0 and only fills logits/features. */
float resnet_forward(resnet_model *m, const float *images, const int32_t *labels, int B);

/* Backward of the last forward (which must have had labels), in the
 * BatchNorm mode of that forward: adds d(loss)/d(param) into m->grads for
 * trainable tensors. Gradients flow through frozen convolutions whenever
 * something before them trains. */
void resnet_backward(resnet_model *m);

void resnet_zero_grad(resnet_model *m);

/* Marks tensors trainable by a spec: comma-separated keywords and fnmatch
 * globs over names. Keywords: "all"; "conv" (convolution weights, not
 * CLR); "bn" (BatchNorm affine); "head" or "fc"; "clr" (CLR's set: CLR
 * weights, BatchNorm affine and fc; needs a CLR config). Exactly the
 * matched tensors train. SOTU_ERR_CONFIG, leaving the set unchanged, if the
 * spec is empty or an item matches nothing. */
sotu_status resnet_set_trainable(resnet_model *m, const char *spec);

/* Parameter counts for the report (CLR's table: parameters added per task
 * relative to the backbone). */
typedef struct {
    size_t backbone; /* convolutions and BatchNorm affine, without CLR and fc */
    size_t conv;     /* convolution weights, without CLR */
    size_t bn;       /* BatchNorm affine parameters */
    size_t clr;      /* CLR weights */
    size_t head;     /* fc weight and bias */
} resnet_param_counts;

resnet_param_counts resnet_count_params(const resnet_model *m);

/* Floating-point operations (multiply-add = 2) of one training step for B
 * images with the current trainable set, counting convolutions, CLR layers
 * and fc (BatchNorm, ReLU and pooling are a few percent): the forward, and
 * in backward the weight gradients of trainable tensors and the input
 * gradients that reach something trainable, as resnet_backward runs them.
 * The ratio to the all-trainable count is CLR's "compute relative to full
 * fine-tuning". */
double resnet_train_flops(const resnet_model *m, int B);

void resnet_free(resnet_model *m); /* accepts NULL and zeroed structs */

/* Weights files (the format: io/resnet_io.h). */

/* Writes m's parameters, running statistics and counters to a new file at
 * path atomically, group "/weights", with the root attributes; on an open
 * HDF5 file or group id (hid_t as int64_t) the datasets into group, for
 * checkpoint writers (resnet_tensors_write, resnet_tensors_write_group). */
sotu_status resnet_weights_write(const char *path, const resnet_model *m);
sotu_status resnet_weights_write_group(int64_t loc, const char *group, const resnet_model *m,
                                       const char *path_for_errors);

/* Fills an initialised model's parameters, running statistics and
 * num_batches_tracked from <group> of path, by resnet_tensors_read's rules
 * (absent CLR weights the identity, fc kept unless the file's fits). */
sotu_status resnet_weights_read(const char *path, const char *group, resnet_model *m);

#endif
