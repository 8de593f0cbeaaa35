/* Image preprocessing for pretrained models: resize, centre crop, channel
 * conversion and per-channel normalisation, from uint8 NHWC images to the
 * float NCHW input of the ViT.
 *
 * Configuration keys (common/config.h):
 *   data.normalize  scalar     (x/255 - data.mean) / data.std on every channel
 *                              (the default; sotu's own models use 0.5/0.5)
 *                   inception  timm's mean = std = (0.5, 0.5, 0.5), as the
 *                              augreg / original Google ViT checkpoints
 *                   imagenet   mean (0.485, 0.456, 0.406), std (0.229,
 *                              0.224, 0.225), as DeiT and most torchvision
 *                              models
 *                   (a one-channel model takes the first channel's values)
 *   data.crop_pct   in (0, 1]: as timm's eval transform, the shorter side
 *                   is resized to floor(S / crop_pct) keeping the aspect
 *                   ratio, then the centre S x S is cut (S the model's
 *                   image size). 1.0 with images already S x S does
 *                   nothing; timm's ViTs use 0.9 or 0.875.
 * Resizing uses area averaging along an axis that shrinks and bilinear
 * interpolation (half-pixel centres, edge clamped) along one that grows.
 * One-channel images feed a three-channel model by repetition; RGB images
 * feed a one-channel model as luma 0.299 R + 0.587 G + 0.114 B.
 *
 * With data.normalize scalar, crop_pct 1 and images of the model's size the
 * result equals worker/finetune.h's sotu_finetune_to_float, so training
 * and prediction agree. The trainer reads only data.mean/std today; a
 * caller that wants the full pipeline builds a sotu_preprocess with
 * sotu_preprocess_from_config and calls sotu_preprocess_images in place of
 * sotu_finetune_to_float.
 */
#ifndef SOTU_IO_PREPROCESS_H
#define SOTU_IO_PREPROCESS_H

#include <stdint.h>

#include "common/config.h"
#include "common/status.h"

typedef struct {
    int size;          /* output side S */
    int channels;      /* output channels C' (1 or 3, or any when equal to the input) */
    double crop_pct;   /* (0, 1] */
    float mean[3];     /* per output channel; channels beyond 3 use [0] */
    float std[3];
} sotu_preprocess;

/* The preprocessing cfg's data.* keys describe, for a model with the given
 * image size and channels. SOTU_ERR_CONFIG for a bad combination. */
sotu_status sotu_preprocess_from_config(const sotu_config *cfg, int size, int channels,
                                        sotu_preprocess *p);

/* Converts n images src [n, H, W, C] to dst [n, p->channels, S, S]. Fails
 * with SOTU_ERR_DATA when C cannot become p->channels (naming both) or the
 * image is too small to crop; SOTU_ERR_NOMEM for scratch space. */
sotu_status sotu_preprocess_images(const sotu_preprocess *p, const uint8_t *src, int n, int H,
                                   int W, int C, float *dst);

/* Resamples one interleaved image src [H, W, C] to dst [OH, OW, C] (area
 * average when shrinking, bilinear when growing, per axis). Returns 0, or
 * -1 when scratch memory cannot be allocated. */
int sotu_resize_f32(const float *src, int H, int W, int C, float *dst, int OH, int OW);

#endif
