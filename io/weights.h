/* ViT weight files (HDF5): pretrained backbones and the merged weights of a
 * checkpoint share one layout, so every reader is the same code.
 *
 *   <group>/<timm name>   float32 datasets, shapes as in the tensor table,
 *                         each one chunk with a Fletcher32 checksum that
 *                         libhdf5 verifies on every read (a damaged
 *                         tensor is SOTU_ERR_DATA naming it); files
 *                         written before checksums were added (contiguous,
 *                         no filter) read the same way, unverified
 *   root attributes:      format ("sotu-weights" for pretrained files),
 *                         format_version 1, and the model config as int32
 *                         attributes image_size, channels, patch, dim, depth,
 *                         heads, mlp_hidden, classes
 * Pretrained files use group "/weights"; checkpoints use "/merged".
 * h5py.File(p)[group] gives a dict that PyTorch load_state_dict accepts.
 */
#ifndef SOTU_IO_WEIGHTS_H
#define SOTU_IO_WEIGHTS_H

#include "common/status.h"
#include "common/tensor.h"

#define SOTU_WEIGHTS_GROUP "/weights"

enum {
    SOTU_WEIGHTS_SKIP_HEAD = 1, /* leave head.* untouched (a task's head differs) */
};

/* Writes params (laid out by tab) to a new file at path atomically, with the
 * model config attributes and format "sotu-weights". */
sotu_status sotu_weights_write(const char *path, const sotu_vit_config *cfg,
                               const sotu_tensor_table *tab, const float *params);

/* The file writer both models share: through sotu_h5_write_file
 * (io/h5util.h), writes the root attributes format "sotu-weights" and
 * format_version 1, lets fill (a model's attributes and its group; file is
 * the hid_t as int64_t) write the rest, and commits it atomically. On any
 * failure (SOTU_ERR_IO with path and strerror) path is untouched and no
 * temporary file is left. */
typedef sotu_status (*sotu_weights_fill_fn)(int64_t file, const void *ctx, const char *path);
sotu_status sotu_weights_write_file(const char *path, sotu_weights_fill_fn fill, const void *ctx);

/* Refuses a weights or checkpoint file (an open HDF5 file id as int64_t)
 * whose format_version is newer than this sotu reads (SOTU_ERR_DATA naming
 * path and both versions); files without the attribute pass. */
sotu_status sotu_weights_check_version(int64_t file, const char *path);

/* Reads the model config attributes of a weights or checkpoint file.
 * SOTU_ERR_IO if it cannot be opened, SOTU_ERR_DATA naming a newer
 * format_version or a missing or non-positive attribute. */
sotu_status sotu_weights_read_config(const char *path, sotu_vit_config *cfg);

/* Reads every tensor of tab from <group>/<name> into params. A missing
 * tensor, a shape that differs from tab, or a non-float dataset is
 * SOTU_ERR_DATA naming the file and tensor. Extra datasets in the file are
 * ignored. */
sotu_status sotu_weights_read_into(const char *path, const char *group,
                                   const sotu_tensor_table *tab, float *params, int flags);

/* The same two operations on an open HDF5 file or group id (hid_t as
 * int64_t so this header does not pull in hdf5.h); used by the checkpoint
 * writer to put /merged beside other groups. */
sotu_status sotu_weights_write_group(int64_t loc, const char *group, const sotu_tensor_table *tab,
                                     const float *params, const char *path_for_errors);
sotu_status sotu_weights_write_config_attrs(int64_t loc, const sotu_vit_config *cfg,
                                            const char *path_for_errors);

#endif
