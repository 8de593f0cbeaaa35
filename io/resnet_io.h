/* ResNet weight files (HDF5): pretrained backbones, imported torchvision
 * models and the weights inside checkpoints, the layout of io/weights.h.
 *
 *   root attributes:  format "sotu-weights" (pretrained and imported files),
 *                     format_version 1, arch "resnet", and the config as
 *                     int32 depth (18|34), width, channels, image_size,
 *                     classes, small_input (0|1), clr (0 none, 1 clr,
 *                     2 clr-full)
 *   <group>/<name>    float32 datasets: every parameter under its
 *                     torchvision name (worker/resnet.h), then
 *                     <bn>.running_mean and <bn>.running_var
 *   <group>/<bn>.num_batches_tracked   int64 scalar, one per BatchNorm
 *                     (all equal: one counter stands for all)
 *
 * Pretrained files use group "/weights" (SOTU_WEIGHTS_GROUP). For clr 0,
 * {k: torch.from_numpy(v[()]) for k, v in h5py.File(p)["/weights"].items()}
 * loads into torchvision's resnet18/34 (conv1 3x3/1 and maxpool Identity if
 * small_input, fc resized to classes) with load_state_dict(strict=True).
 * ViT files carry no arch attribute.
 */
#ifndef SOTU_IO_RESNET_IO_H
#define SOTU_IO_RESNET_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "common/tensor.h"

typedef enum {
    RESNET_CLR_NONE,  /* plain ResNet */
    RESNET_CLR_CONV3, /* "clr": after every convolution that is not 1x1 */
    RESNET_CLR_ALL,   /* "clr-full": after every convolution */
} resnet_clr;

/* The architecture, as the root attributes record it (worker/resnet.h
 * builds the network from it). */
typedef struct {
    int depth;        /* 18 or 34 */
    int width;        /* W, channels of layer1 (torchvision: 64) */
    int channels;     /* C of the input images */
    int image_size;   /* S, square input */
    int classes;      /* K */
    bool small_input; /* 3x3/1 conv1 and no max-pool (28x28, 32x32 data) */
    resnet_clr clr;
} resnet_config;

/* A ResNet's tensors as a file holds them: the parameters and the running
 * statistics, each laid out by its table, and the one num_batches_tracked
 * counter (worker/resnet.h's resnet_model points here through
 * resnet_weights_write / resnet_weights_read). */
typedef struct {
    resnet_config cfg;
    const sotu_tensor_table *table;   /* parameters */
    float *params;                    /* [table->total] */
    const sotu_tensor_table *buffers; /* <bn>.running_mean, <bn>.running_var */
    float *running;                   /* [buffers->total] */
    int64_t num_batches_tracked;
} resnet_tensors;

/* Writes t's parameters, running statistics and counters to a new file at
 * path atomically (io/fsutil.h), group "/weights", with the root attributes
 * above. SOTU_ERR_IO naming path on failure (no file is left behind). */
sotu_status resnet_tensors_write(const char *path, const resnet_tensors *t);

/* The same on an open HDF5 file or group id (hid_t as int64_t): the
 * datasets into group (created with its parents if absent) and, separately,
 * the root attributes arch .. clr (not format); for checkpoint writers. */
sotu_status resnet_tensors_write_group(int64_t loc, const char *group, const resnet_tensors *t,
                                       const char *path_for_errors);
sotu_status resnet_weights_write_config_attrs(int64_t loc, const resnet_config *cfg,
                                              const char *path_for_errors);

/* Reads the config attributes of a ResNet weights or checkpoint file.
 * cfg->clr is the file's; a caller wanting another CLR variant sets it
 * before resnet_init (resnet_tensors_read accepts the difference).
 * SOTU_ERR_IO if the file cannot be opened; SOTU_ERR_DATA, naming the file
 * and attribute, if arch is not "resnet" or an attribute is missing, not an
 * integer or out of range. cfg is zeroed on failure. */
sotu_status resnet_weights_read_config(const char *path, resnet_config *cfg);

/* Fills the parameters and running statistics t points to (an initialised
 * model's) and t->num_batches_tracked from <group> of path. Rules:
 *   - every convolution, BatchNorm affine and running statistic of t must be
 *     present as a float dataset of t's shape;
 *   - a CLR weight (<conv>.clr.weight) absent from the file is set to the
 *     identity, so a plain backbone loads into a CLR model; CLR weights in
 *     the file that t has no place for are ignored;
 *   - fc.weight and fc.bias are read only if both are present and fc.weight
 *     has t->cfg.classes rows; otherwise fc is left as it was (the caller
 *     initialises the head). fc.weight with the right class count but
 *     another feature width is an error;
 *   - num_batches_tracked comes from bn1.num_batches_tracked (an integer
 *     scalar) and is 0 if absent.
 * Other datasets in the group are ignored. A missing tensor, a wrong shape
 * or type is SOTU_ERR_DATA naming the file and the tensor; a file that
 * cannot be opened SOTU_ERR_IO. On failure t's values are partly read: the
 * caller discards the model. */
sotu_status resnet_tensors_read(const char *path, const char *group, resnet_tensors *t);

/* The architecture of a weights or checkpoint file into arch (cap bytes):
 * "resnet" for files with arch "resnet", "vit" for files without an arch
 * attribute. SOTU_ERR_IO if path cannot be opened, SOTU_ERR_DATA if it is
 * not HDF5 or names another architecture. */
sotu_status sotu_weights_arch(const char *path, char *arch, size_t cap);

#endif
