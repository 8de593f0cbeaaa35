/* The ResNet's kernels, exposed for the unit tests (gradient checks and
 * naive reference comparisons). Not part of the worker's public interface.
 *
 * Shapes use resnet.h's names; a convolution maps [B, Ci, H, W] to
 * [B, Co, Ho, Wo] with kernel k, stride s, padding p,
 * Ho = (H + 2p - k) / s + 1, and CKK = Ci*k*k.
 * Conventions: *_forward overwrites its outputs; *_backward overwrites
 * dinp and ADDS into weight gradients (dw, db); a NULL gradient pointer is
 * skipped.
 */
#ifndef SOTU_WORKER_RESNET_INTERNAL_H
#define SOTU_WORKER_RESNET_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RESNET_BN_EPS 1e-5f

typedef struct {
    int Ci, H, W, Co, k, stride, pad, Ho, Wo;
} resnet_conv_shape;

resnet_conv_shape resnet_conv_shape_make(int Ci, int H, int W, int Co, int k, int stride,
                                         int pad);

/* col[(c*k + ky)*k + kx, oy*Wo + ox] = img[c, oy*s - p + ky, ox*s - p + kx],
 * zero outside the image. */
void resnet_im2col(float *col,       /* [CKK, Ho*Wo] */
                   const float *img, /* [Ci, H, W] */
                   const resnet_conv_shape *s);

/* img += the adjoint of im2col (each column entry added back to its pixel). */
void resnet_col2im(float *img,       /* [Ci, H, W], added */
                   const float *col, /* [CKK, Ho*Wo] */
                   const resnet_conv_shape *s);

/* Floats of scratch the convolution kernels need with `threads` OpenMP
 * threads: an im2col buffer per thread, then the weight gradients of up to
 * 16 groups of images. */
size_t resnet_conv_scratch_floats(const resnet_conv_shape *s, int threads);

/* out[b] = w @ im2col(inp[b]): one sgemm per image, images shared among the
 * OpenMP threads. scratch: resnet_conv_scratch_floats(s,
 * omp_get_max_threads()). */
void resnet_conv_forward(float *out,       /* [B, Co, Ho, Wo] */
                         const float *inp, /* [B, Ci, H, W] */
                         const float *w,   /* [Co, Ci, k, k] */
                         float *scratch, const resnet_conv_shape *s, int B);

/* dinp = col2im(w^T @ dout[b]) (overwritten); dw += sum_b dout[b] @
 * im2col(inp[b])^T, summed over at most 16 fixed groups of images (each in
 * image order) and then the groups in order: the same bits at any thread
 * count. scratch: resnet_conv_scratch_floats(s, omp_get_max_threads()). */
void resnet_conv_backward(float *dinp,       /* [B, Ci, H, W] or NULL */
                          float *dw,         /* [Co, Ci, k, k] or NULL */
                          const float *dout, /* [B, Co, Ho, Wo] */
                          const float *inp,  /* [B, Ci, H, W] */
                          const float *w,    /* [Co, Ci, k, k] */
                          float *scratch, const resnet_conv_shape *s, int B);

/* Depthwise 3x3 convolution, stride 1, pad 1, no bias (the CLR layer):
 * out[b,c,y,x] = sum_{i,j} w[c,i,j] inp[b,c,y+i-1,x+j-1]. */
void resnet_dwconv_forward(float *out,       /* [B, C, H, W] */
                           const float *inp, /* [B, C, H, W] */
                           const float *w,   /* [C, 1, 3, 3] */
                           int B, int C, int H, int W);

/* Floats of scratch resnet_dwconv_backward needs with `threads` OpenMP
 * threads: a weight-gradient partial per plane and two planes per thread. */
size_t resnet_dwconv_scratch_floats(int B, int C, int H, int W, int threads);

/* dinp overwritten; dw added, summed per plane and then over the images in
 * image order (the same bits under any thread count). Parallel over planes.
 * scratch: resnet_dwconv_scratch_floats(B, C, H, W, omp_get_max_threads()). */
void resnet_dwconv_backward(float *dinp,       /* [B, C, H, W] or NULL */
                            float *dw,         /* [C, 1, 3, 3] or NULL */
                            const float *dout, /* [B, C, H, W] */
                            const float *inp,  /* [B, C, H, W] */
                            const float *w,    /* [C, 1, 3, 3] */
                            float *scratch, int B, int C, int H, int W);

/* BatchNorm2d. training: mean/rstd of the batch over B*HW (biased
 * variance), and if running_mean/var are not NULL they move by momentum
 * toward the batch mean and unbiased variance (B*HW > 1). Eval: mean and
 * rstd come from the running statistics. out = (x - mean) rstd w + b. */
void resnet_batchnorm_forward(float *out,          /* [B, C, HW] */
                              float *mean,         /* [C] */
                              float *rstd,         /* [C] */
                              const float *inp,    /* [B, C, HW] */
                              const float *w,      /* [C] */
                              const float *b,      /* [C] */
                              float *running_mean, /* [C] or NULL */
                              float *running_var,  /* [C] or NULL */
                              bool training, float momentum, int B, int C, int HW);

/* With xhat = (x - mean) rstd and g = dout w, training:
 * dinp = rstd (g - mean(g) - xhat mean(g xhat)); eval: dinp = rstd g.
 * dw += sum dout xhat, db += sum dout. */
void resnet_batchnorm_backward(float *dinp,       /* [B, C, HW] or NULL */
                               float *dw,         /* [C] or NULL */
                               float *db,         /* [C] or NULL */
                               const float *dout, /* [B, C, HW] */
                               const float *inp,  /* [B, C, HW] */
                               const float *w,    /* [C] */
                               const float *mean, /* [C] */
                               const float *rstd, /* [C] */
                               bool training, int B, int C, int HW);

/* In place: x = max(x, 0). Backward: d *= (out > 0), as torch's
 * threshold_backward (no gradient at 0). */
void resnet_relu_forward(float *x, size_t n);
void resnet_relu_backward(float *d, const float *out, size_t n);

/* Max-pool 3x3, stride 2, pad 1 (padding never wins). arg holds the flat
 * index into the H*W plane of each output's maximum, the first in scan
 * order on ties, as PyTorch. */
void resnet_maxpool_forward(float *out,       /* [B, C, Ho, Wo] */
                            int32_t *arg,     /* [B, C, Ho, Wo] */
                            const float *inp, /* [B, C, H, W] */
                            int B, int C, int H, int W, int Ho, int Wo);
/* dinp overwritten. */
void resnet_maxpool_backward(float *dinp,         /* [B, C, H, W] */
                             const float *dout,   /* [B, C, Ho, Wo] */
                             const int32_t *arg,  /* [B, C, Ho, Wo] */
                             int B, int C, int H, int W, int Ho, int Wo);

/* Global average pooling: out[b, c] = mean of inp[b, c, :]. */
void resnet_avgpool_forward(float *out, const float *inp, int B, int C, int HW);
/* dinp[b, c, :] = dout[b, c] / HW (overwritten). */
void resnet_avgpool_backward(float *dinp, const float *dout, int B, int C, int HW);

#endif
