/* The kernels the ViT and the ResNet share: OpenBLAS under OpenMP, the
 * linear layer and the softmax cross-entropy. Internal to worker/ (and its
 * unit tests), not part of the worker's public interface.
 *
 * Shapes: M rows (B*T tokens in the ViT, B images in the ResNet's fc), In
 * inputs, Out outputs, B batch, K classes.
 * Conventions: *_forward overwrites its outputs; *_backward ADDS into weight
 * gradients (dw, dbias) and skips any gradient pointer that is NULL.
 *
 * Threads: every kernel gives bitwise the same results at any OpenMP thread
 * count. A matrix product is cut into tiles fixed by its shape alone, each
 * one single-threaded OpenBLAS sgemm, and sums across tiles run in tile
 * order (nn.c, "Threads"). Code that calls OpenBLAS inside its own OpenMP
 * loop brackets the loop with nn_blas_serial_begin / nn_blas_serial_end.
 */
#ifndef SOTU_WORKER_NN_H
#define SOTU_WORKER_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A weight gradient is summed over row chunks into partial gradients when
 * they take at most this many floats (nn_matmul_scratch_floats). */
#define NN_GEMM_SPLIT_FLOATS ((size_t)8 << 20)

/* Sets OpenBLAS to one thread and returns its former thread count, for
 * nn_blas_serial_end to restore. */
int nn_blas_serial_begin(void);
void nn_blas_serial_end(int blas_threads);

/* C = alpha op(A) op(B) + beta C, row-major, one single-threaded
 * cblas_sgemm (call it between nn_blas_serial_begin and _end). With beta 0
 * C's M x N block is cleared by memset first. */
void nn_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* out = inp @ w^T + bias (+ residual). bias and residual may be NULL. */
void nn_matmul_forward(float *out,            /* [M, Out] */
                       const float *inp,      /* [M, In] */
                       const float *w,        /* [Out, In] */
                       const float *bias,     /* [Out] or NULL */
                       const float *residual, /* [M, Out] or NULL */
                       int M, int In, int Out);

/* dinp = dout @ w (overwritten); dw += dout^T @ inp; dbias += column sums of
 * dout. scratch holds partial weight gradients: nn_matmul_scratch_floats(M,
 * In, Out) floats (NULL when that is 0). */
void nn_matmul_backward(float *dinp,        /* [M, In] or NULL */
                        float *dw,          /* [Out, In] or NULL */
                        float *dbias,       /* [Out] or NULL */
                        const float *dout,  /* [M, Out] */
                        const float *inp,   /* [M, In] */
                        const float *w,     /* [Out, In] */
                        float *scratch,
                        int M, int In, int Out);

/* Floats of scratch nn_matmul_backward needs for up to M rows. */
size_t nn_matmul_scratch_floats(int M, int In, int Out);

/* Mean softmax cross-entropy against (1 - eps) one-hot + eps / K targets.
 * probs receives the softmax. Returns the mean loss. */
float nn_crossentropy_forward(float *probs,          /* [B, K] */
                              const float *logits,   /* [B, K] */
                              const int32_t *labels, /* [B] */
                              float smoothing, int B, int K);
/* dlogits = (probs - target) / B (overwritten). */
void nn_crossentropy_backward(float *dlogits,        /* [B, K] */
                              const float *probs,    /* [B, K] */
                              const int32_t *labels, /* [B] */
                              float smoothing, int B, int K);

#endif
