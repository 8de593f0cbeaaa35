/* The ViT's kernels, exposed for the unit tests (gradient checks and naive
 * reference comparisons). Not part of the worker's public interface.
 *
 * Shapes use vit.h's names, M rows (usually B*T tokens). The linear layer
 * and the cross-entropy are worker/nn.h's, shared with the ResNet.
 * Conventions: *_forward overwrites its outputs; *_backward ADDS into weight
 * gradients (dw, dbias, ...) and into dinp where it says "added", and skips
 * any gradient pointer that is NULL. Every kernel gives bitwise the same
 * results at any OpenMP thread count (worker/nn.c, "Threads").
 */
#ifndef SOTU_WORKER_VIT_INTERNAL_H
#define SOTU_WORKER_VIT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define VIT_LN_EPS 1e-6f

/* Per row: out = (x - mean) * rstd * w + b with eps VIT_LN_EPS. */
void vit_layernorm_forward(float *out,       /* [M, D] */
                           float *mean,      /* [M] */
                           float *rstd,      /* [M] */
                           const float *inp, /* [M, D] */
                           const float *w,   /* [D] */
                           const float *b,   /* [D] */
                           int M, int D);

/* dinp (added), dw and db (added). */
void vit_layernorm_backward(float *dinp,        /* [M, D] or NULL */
                            float *dw,          /* [D] or NULL */
                            float *db,          /* [D] or NULL */
                            const float *dout,  /* [M, D] */
                            const float *inp,   /* [M, D] */
                            const float *w,     /* [D] */
                            const float *mean,  /* [M] */
                            const float *rstd,  /* [M] */
                            int M, int D);

/* Exact (erf) GELU: out = gelu(inp) and deriv = gelu'(inp), all [n]; deriv
 * may alias inp. The erf is a rational approximation accurate to 7e-8
 * absolute, written so the loop vectorises. */
void vit_gelu_forward(float *out, float *deriv, const float *inp, int64_t n);
/* dinp = dout * deriv (overwritten; dinp may alias dout). */
void vit_gelu_backward(float *dinp, const float *deriv, const float *dout, int64_t n);

/* Multi-head softmax attention, scale hd^-0.5, no mask.
 * qkv rows hold [q | k | v], each [D] split into H heads of hd = D/H.
 * Only the first Tq <= T tokens of each image query (Tq = T: all of them;
 * Tq = 1: the class token alone); all T are keys and values. */
void vit_attention_forward(float *out,       /* [B, Tq, D] */
                           float *att,       /* [B, H, Tq, T] softmax probabilities */
                           const float *qkv, /* [B, T, 3D] */
                           int B, int T, int Tq, int D, int H);

/* dqkv overwritten (dq zero for tokens >= Tq). */
void vit_attention_backward(float *dqkv,       /* [B, T, 3D] */
                            float *datt,       /* [B, H, Tq, T] scratch */
                            const float *dout, /* [B, Tq, D] */
                            const float *qkv,  /* [B, T, 3D] */
                            const float *att,  /* [B, H, Tq, T] */
                            int B, int T, int Tq, int D, int H);

/* Patch extraction (im2col of a conv with stride = kernel = P):
 * patches[b, gy*G + gx, (c*P + py)*P + px] = img[b, c, gy*P + py, gx*P + px],
 * G = S/P. */
void vit_im2col(float *patches,     /* [B, N, C*P*P] */
                const float *img,   /* [B, C, S, S] */
                int B, int C, int S, int P);

/* x[b, 0] = cls + pos[0]; x[b, 1+n] = patches[b, n] @ w^T + bias + pos[1+n].
 * proj is scratch for the projections. */
void vit_embed_forward(float *x,              /* [B, T, D] */
                       float *proj,           /* [B, N, D] scratch */
                       const float *patches,  /* [B, N, CPP] */
                       const float *w,        /* [D, CPP] */
                       const float *bias,     /* [D] */
                       const float *cls,      /* [D] */
                       const float *pos,      /* [T, D] */
                       int B, int N, int CPP, int D);

/* Weight, bias, class-token and position gradients (all added, NULL skips).
 * wscratch: nn_matmul_scratch_floats(B*N, CPP, D) floats. */
void vit_embed_backward(float *dw,            /* [D, CPP] or NULL */
                        float *dbias,         /* [D] or NULL */
                        float *dcls,          /* [D] or NULL */
                        float *dpos,          /* [T, D] or NULL */
                        float *scratch,       /* [B, N, D] */
                        float *wscratch,
                        const float *dx,      /* [B, T, D] */
                        const float *patches, /* [B, N, CPP] */
                        int B, int N, int CPP, int D);

/* Class-token pooling: out[b] = x[b, 0]; backward adds dout[b] into dx[b, 0]. */
void vit_pool_forward(float *out, const float *x, int B, int T, int D);   /* [B,D] <- [B,T,D] */
void vit_pool_backward(float *dx, const float *dout, int B, int T, int D); /* [B,T,D] += [B,D] */

#endif
