/* The kernels the ViT and the ResNet share (nn.h): tiled sgemm, the linear
 * layer, the softmax cross-entropy.
 */
#include "worker/nn.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Threads: fixed pieces, so results do not depend on the thread count      */
/* ------------------------------------------------------------------------ */

/* Every kernel cuts its work into pieces whose bounds follow from the shapes
 * alone, never from the thread count, and computes each output element inside
 * one piece, on one thread, in a fixed order; where pieces meet in a sum (a
 * weight gradient over row chunks) the partial sums are added in piece order.
 * The OpenMP threads take the pieces in any order, and the results are
 * bitwise the same at any thread count (for one build and one BLAS kernel:
 * OpenBLAS picks its kernel by CPU, and a kernel's sums depend on the shape it
 * is called with, so a product cut by the thread count would not be).
 *
 * OpenBLAS runs single-threaded inside the pieces: its multi-threaded sgemm
 * would cut the product by the thread count, and its pthreads pool would spin
 * against the OpenMP threads. */
int nn_blas_serial_begin(void)
{
    int n = openblas_get_num_threads();
    if (n > 1)
        openblas_set_num_threads(1);
    return n;
}

void nn_blas_serial_end(int n)
{
    if (n > 1)
        openblas_set_num_threads(n);
}

/* cblas_sgemm, row-major. With beta 0, C's M x N block is cleared by memset
 * and sgemm adds onto it: OpenBLAS's own beta-0 pass clears it column by
 * column and costs several times more. */
void nn_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (beta == 0.0f) {
        if (ldc == N)
            memset(C, 0, (size_t)M * N * sizeof *C);
        else
            for (int m = 0; m < M; m++)
                memset(C + (size_t)m * ldc, 0, (size_t)N * sizeof *C);
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, 1.0f, C, ldc);
}

/* A product of M x N outputs over K is cut into tiles of about GEMM_TILE_MACS
 * multiply-adds (one sgemm call costs about as much as 50,000 of them), at
 * most GEMM_TILES_MAX; from 16 tiles on their count is a multiple of 16, so
 * 2, 4, 8 or 16 threads share them evenly. */
#define GEMM_TILE_MACS (4.0 * 1024 * 1024)
#define GEMM_TILES_MAX 32

static int gemm_tiles(int M, int N, int K)
{
    double t = (double)M * N * K / GEMM_TILE_MACS;
    int n = t < 1 ? 1 : t > GEMM_TILES_MAX ? GEMM_TILES_MAX : (int)t;
    return n >= 16 ? n & ~15 : n;
}

/* Bound i of n elements cut into parts: multiples of 16 inside (whole
 * vectors and kernel blocks), 0 and n at the ends; a part may be empty. */
static int cut(int n, int parts, int i)
{
    if (i >= parts)
        return n;
    int b = (int)(((int64_t)n * i / parts + 8) & ~(int64_t)15);
    return b < n ? b : n;
}

/* The tiles of M x N as rm x rn: rows first, the columns halved while a tile
 * would be more than twice as wide as tall. */
typedef struct {
    int M, N, rm, rn;
} gemm_grid;

static gemm_grid gemm_grid_make(int M, int N, int K)
{
    int tiles = gemm_tiles(M, N, K), rn = 1;
    while (rn < tiles && (double)N / rn > 2.0 * M * rn / tiles)
        rn *= 2;
    return (gemm_grid){M, N, (tiles + rn - 1) / rn, rn};
}

/* Tile t's rows [*m0, *m1) and columns [*n0, *n1); false when empty. */
static bool gemm_tile(const gemm_grid *g, int t, int *m0, int *m1, int *n0, int *n1)
{
    *m0 = cut(g->M, g->rm, t / g->rn);
    *m1 = cut(g->M, g->rm, t / g->rn + 1);
    *n0 = cut(g->N, g->rn, t % g->rn);
    *n1 = cut(g->N, g->rn, t % g->rn + 1);
    return *m0 < *m1 && *n0 < *n1;
}

/* C = op(A) op(B) + beta C, row-major, one single-threaded sgemm over all
 * of K per tile of gemm_grid_make. */
static void sgemm_tiled(bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda,
                        const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_grid g = gemm_grid_make(M, N, K);
    int blas_threads = nn_blas_serial_begin();
#pragma omp parallel for schedule(dynamic, 1) if (g.rm * g.rn > 1)
    for (int t = 0; t < g.rm * g.rn; t++) {
        int m0, m1, n0, n1;
        if (gemm_tile(&g, t, &m0, &m1, &n0, &n1))
            nn_sgemm(trans_a, trans_b, m1 - m0, n1 - n0, K, 1.0f,
                  trans_a ? A + m0 : A + (size_t)m0 * lda, lda,
                  trans_b ? B + (size_t)n0 * ldb : B + n0, ldb, beta, C + (size_t)m0 * ldc + n0,
                  ldc);
    }
    nn_blas_serial_end(blas_threads);
}

/* ------------------------------------------------------------------------ */
/* Linear layer: tiled sgemm over all rows                                   */
/* ------------------------------------------------------------------------ */

/* Each tile writes bias and residual into its block of out first and sgemm
 * adds onto them (beta 1), which also spares OpenBLAS its zeroing pass. */
void nn_matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                        const float *residual, int M, int In, int Out)
{
    if (!bias && !residual) {
        sgemm_tiled(false, true, M, Out, In, inp, In, w, In, 0.0f, out, Out);
        return;
    }
    gemm_grid g = gemm_grid_make(M, Out, In);
    int blas_threads = nn_blas_serial_begin();
#pragma omp parallel for schedule(dynamic, 1) if (g.rm * g.rn > 1)
    for (int t = 0; t < g.rm * g.rn; t++) {
        int m0, m1, n0, n1;
        if (!gemm_tile(&g, t, &m0, &m1, &n0, &n1))
            continue;
        for (int m = m0; m < m1; m++) {
            float *o = out + (size_t)m * Out;
            const float *r = residual ? residual + (size_t)m * Out : NULL;
            if (bias && r)
                for (int j = n0; j < n1; j++)
                    o[j] = bias[j] + r[j];
            else
                memcpy(o + n0, (bias ? bias : r) + n0, (size_t)(n1 - n0) * sizeof *o);
        }
        nn_sgemm(false, true, m1 - m0, n1 - n0, In, 1.0f, inp + (size_t)m0 * In, In,
              w + (size_t)n0 * In, In, 1.0f, out + (size_t)m0 * Out + n0, Out);
    }
    nn_blas_serial_end(blas_threads);
}

/* Row chunks of a weight gradient summed apart (0: tiled over its outputs). */
static int weight_grad_chunks(int M, int In, int Out)
{
    int chunks = gemm_tiles(Out, In, M);
    return chunks > 1 && (size_t)chunks * Out * In <= NN_GEMM_SPLIT_FLOATS ? chunks : 0;
}

/* Enough for any M' <= M rows: the chunks never shrink with more rows. */
size_t nn_matmul_scratch_floats(int M, int In, int Out)
{
    size_t n = (size_t)Out * In, most = (size_t)gemm_tiles(Out, In, M) * n;
    return most <= n ? 0 : most < NN_GEMM_SPLIT_FLOATS ? most : NN_GEMM_SPLIT_FLOATS;
}

/* dw [Out, In] += dout^T inp over the M rows. A small weight (few outputs,
 * many rows) takes the rows in fixed chunks, one sgemm each into its own
 * partial gradient in scratch, and adds the chunks in order; a large one is
 * tiled over its outputs, each tile one sgemm over all M rows. */
static void weight_grad(float *dw, float *scratch, const float *dout, const float *inp, int M,
                        int In, int Out)
{
    int chunks = weight_grad_chunks(M, In, Out);
    if (!chunks) {
        sgemm_tiled(true, false, Out, In, M, dout, Out, inp, In, 1.0f, dw, In);
        return;
    }
    size_t n = (size_t)Out * In;
    int blas_threads = nn_blas_serial_begin();
#pragma omp parallel for schedule(dynamic, 1)
    for (int c = 0; c < chunks; c++) {
        int m0 = cut(M, chunks, c), m1 = cut(M, chunks, c + 1);
        nn_sgemm(true, false, Out, In, m1 - m0, 1.0f, dout + (size_t)m0 * Out, Out,
              inp + (size_t)m0 * In, In, 0.0f, scratch + (size_t)c * n, In);
    }
    nn_blas_serial_end(blas_threads);
    /* dw += ((p0 + p1) + p2) + ..., by blocks that stay in L1 */
#pragma omp parallel for schedule(static)
    for (size_t i0 = 0; i0 < n; i0 += 4096) {
        size_t len = n - i0 < 4096 ? n - i0 : 4096;
        float *sum = scratch + i0;
        for (int c = 1; c < chunks; c++) {
            const float *p = scratch + (size_t)c * n + i0;
            for (size_t i = 0; i < len; i++)
                sum[i] += p[i];
        }
        for (size_t i = 0; i < len; i++)
            dw[i0 + i] += sum[i];
    }
}

/* dbias [Out] += column sums of dout [M, Out], in blocks of 32 columns, each
 * summed over the rows in row order. */
static void bias_grad(float *dbias, const float *dout, int M, int Out)
{
#pragma omp parallel for schedule(static) if ((int64_t)M * Out > 32768)
    for (int o0 = 0; o0 < Out; o0 += 32) {
        int w = Out - o0 < 32 ? Out - o0 : 32;
        float acc[32] = {0};
        for (int m = 0; m < M; m++) {
            const float *r = dout + (size_t)m * Out + o0;
            for (int j = 0; j < w; j++)
                acc[j] += r[j];
        }
        for (int j = 0; j < w; j++)
            dbias[o0 + j] += acc[j];
    }
}

void nn_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                         const float *inp, const float *w, float *scratch, int M, int In, int Out)
{
    if (dinp)
        sgemm_tiled(false, false, M, In, Out, dout, Out, w, In, 0.0f, dinp, In);
    if (dw)
        weight_grad(dw, scratch, dout, inp, M, In, Out);
    if (dbias)
        bias_grad(dbias, dout, M, Out);
}


/* ------------------------------------------------------------------------ */
/* Softmax cross-entropy with label smoothing                                */
/* ------------------------------------------------------------------------ */

/* Target q = (1 - eps) onehot(y) + eps / K; loss = -sum_k q_k log p_k,
 * as torch.nn.CrossEntropyLoss(label_smoothing=eps). */
float nn_crossentropy_forward(float *probs, const float *logits, const int32_t *labels,
                               float smoothing, int B, int K)
{
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        float *p = probs + (size_t)b * K;
        float mx = z[0];
        for (int k = 1; k < K; k++)
            mx = z[k] > mx ? z[k] : mx;
        double sum = 0.0;
        for (int k = 0; k < K; k++)
            sum += exp((double)z[k] - mx);
        double logsum = log(sum) + mx;
        double mean_logp = 0.0;
        for (int k = 0; k < K; k++) {
            double logp = z[k] - logsum;
            p[k] = (float)exp(logp);
            mean_logp += logp;
        }
        mean_logp /= K;
        int y = labels[b];
        assert(y >= 0 && y < K);
        double nll = -((double)z[y] - logsum);
        total += (1.0 - smoothing) * nll - smoothing * mean_logp;
    }
    return (float)(total / B);
}

void nn_crossentropy_backward(float *dlogits, const float *probs, const int32_t *labels,
                               float smoothing, int B, int K)
{
    float off = smoothing / K, inv_b = 1.0f / B;
    for (int b = 0; b < B; b++) {
        const float *p = probs + (size_t)b * K;
        float *d = dlogits + (size_t)b * K;
        for (int k = 0; k < K; k++)
            d[k] = (p[k] - off - (k == labels[b] ? 1.0f - smoothing : 0.0f)) * inv_b;
    }
}
