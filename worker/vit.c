/* A pre-norm Vision Transformer (timm's ViT) in C over OpenBLAS.
 *
 * Read top to bottom: the kernels, each a *_forward / *_backward pair, then
 * the model's structs (its tensors by name, its activations), then its life
 * cycle (init, forward, backward, ...). forward and backward run the blocks
 * through block_forward / block_backward, which hold the math; where backward
 * stops (partial training) is decided outside them (block_reach), and the
 * last block's class-token shortcut is one flag (cls_only).
 *
 * Dimensions (vit.h): B batch, C channels, S image side, P patch,
 * G = S/P, N = G*G patches, T = N+1 tokens, D width, H heads, hd = D/H,
 * F MLP hidden, L depth, K classes, CPP = C*P*P.
 *
 * Every linear layer is one sgemm over all B*T tokens (its rows shared
 * among the OpenMP threads); attention runs per (batch, head) as small
 * sgemms, parallel over B*H; element-wise kernels are single fused passes
 * parallel over rows. OpenBLAS itself always runs single-threaded, so one
 * thread pool does all the work (worker/nn.c, "Threads").
 */
#include "worker/vit.h"
#include "worker/vit_internal.h"
#include "worker/nn.h"

#include <assert.h>
#include <fnmatch.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/isa.h"
#include "common/rng.h"

/* ------------------------------------------------------------------------ */
/* Vectorisable elementary functions                                         */
/* ------------------------------------------------------------------------ */

/* e^x for x in [-87, 88] (clamped), relative error < 2e-7: n = round(x/ln2),
 * r = x - n*ln2 in [-ln2/2, ln2/2], e^r by its degree-7 Taylor series, then
 * 2^n through the exponent bits. Plain arithmetic so loops over it vectorise
 * (libm's expf does not without -ffast-math). A NaN comes back as NaN.
 * Always inlined, so each ISA level's kernel has its own vector copy. */
SOTU_ISA_INLINE float vexpf(float x)
{
    float xc = x != x ? 0.0f : (x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x));
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float n = (xc * 1.44269504088896341f + shifter) - shifter;
    float r = xc - n * 0.693145751953125f - n * 1.42860682030941723e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x != x ? x : p * scale;
}

/* erf(x) as an odd/even rational function on [-4, 4] (outside, erf is +-1
 * in float): the minimax fit used by Eigen and XLA, |error| < 7e-8. */
SOTU_ISA_INLINE float verff(float x)
{
    x = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
    float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 - 2.10102402082508e-06f;
    p = p * x2 - 5.69250639462346e-05f;
    p = p * x2 - 7.34990630326855e-04f;
    p = p * x2 - 2.95459980854025e-03f;
    p = p * x2 - 1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 - 2.13374055278905e-04f;
    q = q * x2 - 1.68282697438203e-03f;
    q = q * x2 - 7.37332916720468e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    return x * p / q;
}

/* ------------------------------------------------------------------------ */
/* LayerNorm                                                                 */
/* ------------------------------------------------------------------------ */

/* One row [D]: o = (x - mu) * rs * w + b, the sums in fixed lanes
 * (common/isa.h). */
SOTU_ISA_INLINE void layernorm_forward_row(float *o, float *mean, float *rstd, const float *x,
                                           const float *w, const float *b, int D)
{
    float mu = sotu_lanes_sum(x, D) / D;
    float rs = 1.0f / sqrtf(sotu_lanes_sqdev(x, mu, D) / D + VIT_LN_EPS);
    for (int i = 0; i < D; i++)
        o[i] = (x[i] - mu) * rs * w[i] + b[i];
    *mean = mu;
    *rstd = rs;
}
SOTU_ISA_VARIANTS(layernorm_forward_row,
                  (float *o, float *mean, float *rstd, const float *x, const float *w,
                   const float *b, int D),
                  (o, mean, rstd, x, w, b, D));

void vit_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *w, const float *b, int M, int D)
{
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++)
        SOTU_ISA_PICK(layernorm_forward_row)(out + (size_t)m * D, mean + m, rstd + m,
                                             inp + (size_t)m * D, w, b, D);
}

/* One row [D]: aw += dout * xhat and ab += dout (when aw), and di +=
 * rstd * (g - mean(g) - xhat * mean(g * xhat)) (when di), g = dout * w;
 * the means are summed in fixed lanes (common/isa.h). */
SOTU_ISA_INLINE void layernorm_backward_row(float *di, const float *go, const float *x,
                                            const float *w, float mu, float rs, int D)
{
    float mg = sotu_lanes_dot(go, w, D) / D;
    float acc[SOTU_LANES] = {0}; /* sum of g * xhat */
    int i = 0;
    for (; i + SOTU_LANES <= D; i += SOTU_LANES)
        for (int l = 0; l < SOTU_LANES; l++)
            acc[l] += go[i + l] * w[i + l] * (x[i + l] - mu) * rs;
    float t[SOTU_LANES] = {0};
    for (int l = 0; i + l < D; l++)
        t[l] = go[i + l] * w[i + l] * (x[i + l] - mu) * rs;
    for (int l = 0; l < SOTU_LANES; l++)
        acc[l] += t[l];
    float mgx = sotu_lanes_total(acc) / D;
    for (int k = 0; k < D; k++) {
        float xhat = (x[k] - mu) * rs;
        di[k] += rs * (go[k] * w[k] - mg - xhat * mgx);
    }
}
SOTU_ISA_VARIANTS(layernorm_backward_row,
                  (float *di, const float *go, const float *x, const float *w, float mu,
                   float rs, int D),
                  (di, go, x, w, mu, rs, D));

/* With xhat = (x - mean) * rstd and g = dout * w:
 *   dinp += rstd * (g - mean(g) - xhat * mean(g * xhat)),
 *   dw += sum_rows dout * xhat, db += sum_rows dout.
 * dinp is a pass over the rows; dw and db one over blocks of 32 columns, each
 * summed over the rows in row order. */
void vit_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, const float *mean,
                            const float *rstd, int M, int D)
{
#pragma omp parallel if ((int64_t)M * D > 32768)
    {
        if (dinp) {
#pragma omp for schedule(static) nowait
            for (int m = 0; m < M; m++)
                SOTU_ISA_PICK(layernorm_backward_row)(dinp + (size_t)m * D, dout + (size_t)m * D,
                                                      inp + (size_t)m * D, w, mean[m], rstd[m],
                                                      D);
        }
        if (dw || db) {
#pragma omp for schedule(static)
            for (int i0 = 0; i0 < D; i0 += 32) {
                int n = D - i0 < 32 ? D - i0 : 32;
                float aw[32] = {0}, ab[32] = {0};
                for (int m = 0; m < M; m++) {
                    const float *x = inp + (size_t)m * D + i0;
                    const float *go = dout + (size_t)m * D + i0;
                    float mu = mean[m], rs = rstd[m];
                    for (int i = 0; i < n; i++) {
                        aw[i] += go[i] * ((x[i] - mu) * rs);
                        ab[i] += go[i];
                    }
                }
                for (int i = 0; i < n; i++) {
                    if (dw)
                        dw[i0 + i] += aw[i];
                    if (db)
                        db[i0 + i] += ab[i];
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* GELU, exact (erf) form: gelu(x) = x * Phi(x)                              */
/* ------------------------------------------------------------------------ */

#define VIT_SQRT1_2 0.70710678118654752f
#define VIT_INV_SQRT_2PI 0.39894228040143268f

/* gelu'(x) = Phi(x) + x * phi(x) is taken here, where Phi(x) is at hand,
 * and kept (over the input, which backward no longer needs), so backward is
 * a single product. */
SOTU_ISA_INLINE void gelu_forward_span(float *out, float *deriv, const float *inp, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + verff(x * VIT_SQRT1_2));
        float pdf = VIT_INV_SQRT_2PI * vexpf(-0.5f * x * x);
        out[i] = x * cdf;
        deriv[i] = cdf + x * pdf;
    }
}
SOTU_ISA_VARIANTS(gelu_forward_span, (float *out, float *deriv, const float *inp, int64_t n),
                  (out, deriv, inp, n));

SOTU_ISA_INLINE void gelu_backward_span(float *dinp, const float *deriv, const float *dout,
                                        int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++)
        dinp[i] = dout[i] * deriv[i];
}
SOTU_ISA_VARIANTS(gelu_backward_span,
                  (float *dinp, const float *deriv, const float *dout, int64_t n),
                  (dinp, deriv, dout, n));

/* Element-wise kernels run over spans of this many elements, each span one
 * call of the active ISA level's loop. */
#define VIT_SPAN 4096

void vit_gelu_forward(float *out, float *deriv, const float *inp, int64_t n)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i += VIT_SPAN)
        SOTU_ISA_PICK(gelu_forward_span)(out + i, deriv + i, inp + i,
                                         n - i < VIT_SPAN ? n - i : VIT_SPAN);
}

void vit_gelu_backward(float *dinp, const float *deriv, const float *dout, int64_t n)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i += VIT_SPAN)
        SOTU_ISA_PICK(gelu_backward_span)(dinp + i, deriv + i, dout + i,
                                          n - i < VIT_SPAN ? n - i : VIT_SPAN);
}

/* ------------------------------------------------------------------------ */
/* Attention: softmax(q k^T * hd^-0.5) v per (batch, head)                   */
/* ------------------------------------------------------------------------ */

/* One row of scores [T], in place: a = exp(a - max a) / sum, the sum in
 * fixed lanes (common/isa.h). */
SOTU_ISA_INLINE void softmax_row(float *a, int T)
{
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < T; j++)
        mx = a[j] > mx ? a[j] : mx;
    float acc[SOTU_LANES] = {0}; /* exp and its sum in one pass */
    int i = 0;
    for (; i + SOTU_LANES <= T; i += SOTU_LANES)
        for (int l = 0; l < SOTU_LANES; l++) {
            a[i + l] = vexpf(a[i + l] - mx);
            acc[l] += a[i + l];
        }
    float t[SOTU_LANES] = {0};
    for (int l = 0; i + l < T; l++)
        a[i + l] = t[l] = vexpf(a[i + l] - mx);
    for (int l = 0; l < SOTU_LANES; l++)
        acc[l] += t[l];
    float inv = 1.0f / sotu_lanes_total(acc);
    for (int j = 0; j < T; j++)
        a[j] *= inv;
}

/* Rows [R, T] of one head: one call per head, as rows are short. */
SOTU_ISA_INLINE void softmax_rows(float *a, int R, int T)
{
    for (int i = 0; i < R; i++)
        softmax_row(a + (size_t)i * T, T);
}
SOTU_ISA_VARIANTS(softmax_rows, (float *a, int R, int T), (a, R, T));

/* Rows [R, T] of one head's score gradient, in place: each row d =
 * p * (d - p . d) * scale. */
SOTU_ISA_INLINE void softmax_backward_rows(float *d, const float *p, float scale, int R, int T)
{
    for (int i = 0; i < R; i++) {
        float *di = d + (size_t)i * T;
        const float *pi = p + (size_t)i * T;
        float dot = sotu_lanes_dot(pi, di, T);
        for (int j = 0; j < T; j++)
            di[j] = pi[j] * (di[j] - dot) * scale;
    }
}
SOTU_ISA_VARIANTS(softmax_backward_rows,
                  (float *d, const float *p, float scale, int R, int T),
                  (d, p, scale, R, T));

/* Per (b, h): S = scale q k^T and out = softmax(S) v, two small sgemms on
 * strided views of qkv (row stride 3D) around an in-place row softmax. Only
 * the first Tq tokens query (Tq = 1 in the last block, where only the class
 * token's output is used); all T tokens are keys and values. */
void vit_attention_forward(float *out, float *att, const float *qkv, int B, int T, int Tq, int D,
                           int H)
{
    int hd = D / H, ld3 = 3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    int blas_threads = nn_blas_serial_begin();
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        const float *q = qkv + (size_t)b * T * ld3 + h * hd, *k = q + D, *v = q + 2 * D;
        float *a = att + (size_t)bh * Tq * T; /* [Tq, T] */
        nn_sgemm(false, true, Tq, T, hd, scale, q, ld3, k, ld3, 0.0f, a, T);
        SOTU_ISA_PICK(softmax_rows)(a, Tq, T);
        nn_sgemm(false, false, Tq, hd, T, 1.0f, a, T, v, ld3, 0.0f,
              out + (size_t)b * Tq * D + h * hd, D);
    }
    nn_blas_serial_end(blas_threads);
}

/* Per (b, h), with P = att: dP = dout v^T, dS = P * (dP - rowsum(P * dP)),
 * dq = scale dS k, dk = scale dS^T q, dv = P^T dout; dq of the tokens past
 * Tq is zero. */
void vit_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                            const float *att, int B, int T, int Tq, int D, int H)
{
    int hd = D / H, ld3 = 3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    int blas_threads = nn_blas_serial_begin();
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        size_t qoff = (size_t)b * T * ld3 + h * hd;
        const float *q = qkv + qoff, *k = q + D, *v = q + 2 * D;
        float *dq = dqkv + qoff, *dk = dq + D, *dv = dq + 2 * D;
        const float *go = dout + (size_t)b * Tq * D + h * hd;
        const float *p = att + (size_t)bh * Tq * T;
        float *ds = datt + (size_t)bh * Tq * T;
        nn_sgemm(false, true, Tq, T, hd, 1.0f, go, D, v, ld3, 0.0f, ds, T);
        SOTU_ISA_PICK(softmax_backward_rows)(ds, p, scale, Tq, T);
        nn_sgemm(false, false, Tq, hd, T, 1.0f, ds, T, k, ld3, 0.0f, dq, ld3);
        for (int i = Tq; i < T; i++)
            memset(dq + (size_t)i * ld3, 0, (size_t)hd * sizeof *dq);
        nn_sgemm(true, false, T, hd, Tq, 1.0f, ds, T, q, ld3, 0.0f, dk, ld3);
        nn_sgemm(true, false, T, hd, Tq, 1.0f, p, T, go, D, 0.0f, dv, ld3);
    }
    nn_blas_serial_end(blas_threads);
}

/* ------------------------------------------------------------------------ */
/* Patch embedding: im2col + sgemm, class token, position embedding         */
/* ------------------------------------------------------------------------ */

void vit_im2col(float *patches, const float *img, int B, int C, int S, int P)
{
    int G = S / P, N = G * G, CPP = C * P * P;
#pragma omp parallel for schedule(static)
    for (int bn = 0; bn < B * N; bn++) {
        int b = bn / N, n = bn % N, gy = n / G, gx = n % G;
        float *dst = patches + (size_t)bn * CPP;
        for (int c = 0; c < C; c++)
            for (int py = 0; py < P; py++) {
                const float *src = img + (((size_t)b * C + c) * S + gy * P + py) * S + gx * P;
                memcpy(dst + (c * P + py) * P, src, (size_t)P * sizeof *src);
            }
    }
}

void vit_embed_forward(float *x, float *proj, const float *patches, const float *w,
                       const float *bias, const float *cls, const float *pos, int B, int N,
                       int CPP, int D)
{
    int T = N + 1;
    nn_matmul_forward(proj, patches, w, bias, NULL, B * N, CPP, D);
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        float *o = x + (size_t)bt * D;
        const float *src = t == 0 ? cls : proj + ((size_t)b * N + t - 1) * D;
        const float *p = pos + (size_t)t * D;
        for (int i = 0; i < D; i++)
            o[i] = src[i] + p[i];
    }
}

void vit_embed_backward(float *dw, float *dbias, float *dcls, float *dpos, float *scratch,
                        float *wscratch, const float *dx, const float *patches, int B, int N,
                        int CPP, int D)
{
    int T = N + 1;
    if (dw || dbias) {
#pragma omp parallel for schedule(static)
        for (int b = 0; b < B; b++)
            memcpy(scratch + (size_t)b * N * D, dx + ((size_t)b * T + 1) * D,
                   (size_t)N * D * sizeof *dx);
        nn_matmul_backward(NULL, dw, dbias, scratch, patches, NULL, wscratch, B * N, CPP, D);
    }
    if (dpos) {
#pragma omp parallel for schedule(static)
        for (int t = 0; t < T; t++)
            for (int b = 0; b < B; b++) {
                const float *g = dx + ((size_t)b * T + t) * D;
                float *o = dpos + (size_t)t * D;
                for (int i = 0; i < D; i++)
                    o[i] += g[i];
            }
    }
    if (dcls)
        for (int b = 0; b < B; b++) {
            const float *g = dx + (size_t)b * T * D;
            for (int i = 0; i < D; i++)
                dcls[i] += g[i];
        }
}

/* ------------------------------------------------------------------------ */
/* Class-token pooling                                                       */
/* ------------------------------------------------------------------------ */

void vit_pool_forward(float *out, const float *x, int B, int T, int D)
{
    for (int b = 0; b < B; b++)
        memcpy(out + (size_t)b * D, x + (size_t)b * T * D, (size_t)D * sizeof *x);
}

void vit_pool_backward(float *dx, const float *dout, int B, int T, int D)
{
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++)
            dx[(size_t)b * T * D + i] += dout[(size_t)b * D + i];
}

/* ------------------------------------------------------------------------ */
/* The model's structs                                                       */
/* ------------------------------------------------------------------------ */

/* Tensor indices in the table (forward order): embedding, blocks, head.
 * Backward reads them only to know how far down something still trains. */
enum { VIT_CLS, VIT_POS, VIT_PATCH_W, VIT_PATCH_B, VIT_BLOCK0 };
enum {
    VIT_N1_W, VIT_N1_B, VIT_QKV_W, VIT_QKV_B, VIT_PROJ_W, VIT_PROJ_B,
    VIT_N2_W, VIT_N2_B, VIT_FC1_W, VIT_FC1_B, VIT_FC2_W, VIT_FC2_B, VIT_PER_BLOCK
};

/* Table index of block l's first tensor (l = L: the final norm's). */
static int block_first(int l)
{
    return VIT_BLOCK0 + l * VIT_PER_BLOCK;
}

/* One block's tensors (timm's blocks.l.*), pointers into params or grads. */
typedef struct {
    float *ln1w, *ln1b; /* [D] norm1 */
    float *qkvw;        /* [3D, D] attn.qkv */
    float *qkvb;        /* [3D] */
    float *projw;       /* [D, D] attn.proj */
    float *projb;       /* [D] */
    float *ln2w, *ln2b; /* [D] norm2 */
    float *fc1w;        /* [F, D] mlp.fc1 */
    float *fc1b;        /* [F] */
    float *fc2w;        /* [D, F] mlp.fc2 */
    float *fc2b;        /* [D] */
} vit_block_tensors;

/* The model's tensors by name, pointing into params or grads at their table
 * offsets (the table keeps timm's order, blocks one after another). In a
 * gradient view a frozen tensor's pointer is NULL, which the kernels skip. */
typedef struct {
    float *cls;                /* [D] cls_token */
    float *pos;                /* [T, D] pos_embed */
    float *patchw;             /* [D, CPP] patch_embed.proj */
    float *patchb;             /* [D] */
    vit_block_tensors *blocks; /* [L] */
    float *lnfw, *lnfb;        /* [D] final norm */
    float *headw;              /* [K, D] head */
    float *headb;              /* [K] */
} vit_tensors;

/* Layer l's slices of the activations kept for backward (R = B in the last
 * block from attention's output on, B*T elsewhere). */
typedef struct {
    float *ln1;      /* [B, T, D] */
    float *ln1_mean; /* [B, T] */
    float *ln1_rstd; /* [B, T] */
    float *qkv;      /* [B, T, 3D] */
    float *att;      /* [B, H, Tq, T] */
    float *atty;     /* [R, D] attention output before proj */
    float *res1;     /* [R, D] x + attn */
    float *ln2;      /* [R, D] */
    float *ln2_mean; /* [R] */
    float *ln2_rstd; /* [R] */
    float *fch;      /* [R, F] fc1 output, then GELU's derivative there */
    float *fch_gelu; /* [R, F] */
    float *res2;     /* [R, D] block output */
} vit_block_acts;

struct vit_acts {
    float *block;    /* the one allocation everything below points into */
    int B;           /* images in the last forward */
    bool has_labels; /* the last forward computed a loss */
    int32_t *labels; /* [Bc] of the last forward */
    vit_tensors p;   /* the parameters by name (set by each forward and backward) */
    vit_tensors g;   /* their gradients, NULL where frozen (set by each backward) */
    /* forward, kept for backward (Bc = batch_cap) */
    float *patches;  /* [Bc, N, CPP] */
    float *x0;       /* [Bc, T, D] embedded tokens */
    float *ln1;      /* [L, Bc, T, D] */
    float *ln1_mean; /* [L, Bc, T] */
    float *ln1_rstd; /* [L, Bc, T] */
    float *qkv;      /* [L, Bc, T, 3D] */
    float *att;      /* [L, Bc, H, T, T]; last block [Bc, H, 1, T] */
    float *atty;     /* [L, Bc, T, D] attention output before proj; from here
                        on the last block holds [Bc, D] class-token rows */
    float *res1;     /* [L, Bc, T, D] x + attn */
    float *ln2;      /* [L, Bc, T, D] */
    float *ln2_mean; /* [L, Bc, T] */
    float *ln2_rstd; /* [L, Bc, T] */
    float *fch;      /* [L, Bc, T, F] fc1 output, then GELU's derivative there */
    float *fch_gelu; /* [L, Bc, T, F] */
    float *res2;     /* [L, Bc, T, D] block output */
    float *cls;      /* [Bc, D] class tokens entering the last block */
    const float *top; /* [B, D] last block output (class tokens), into the final norm */
    float *lnf;      /* [Bc, D] final norm = features */
    float *lnf_mean; /* [Bc] */
    float *lnf_rstd; /* [Bc] */
    float *logits;   /* [Bc, K] */
    float *probs;    /* [Bc, K] */
    /* scratch, reused by every layer */
    float *dres;     /* [Bc, T, D] gradient of the residual stream */
    float *dln;      /* [Bc, T, D] also the patch projection in forward */
    float *datty;    /* [Bc, T, D] */
    float *dqkv;     /* [Bc, T, 3D] */
    float *dfch;     /* [Bc, T, F] */
    float *datt;     /* [Bc, H, T, T] attention score gradients */
    float *dcls;     /* [Bc, D] */
    float *dfeat;    /* [Bc, D] */
    float *dlogits;  /* [Bc, K] */
    float *wscratch; /* partial weight gradients (nn_matmul_scratch_floats) */
};

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */
/* ------------------------------------------------------------------------ */

#define ADD(name, ...) SOTU_TENSOR_ADD(tab, name, __VA_ARGS__)

static void build_table(sotu_tensor_table *tab, const vit_config *c)
{
    int64_t D = c->dim, T = (int64_t)(c->image_size / c->patch) * (c->image_size / c->patch) + 1;
    int64_t F = c->mlp_hidden, K = c->classes;
    char name[SOTU_TENSOR_NAME_MAX];
    ADD("cls_token", 1, 1, D);
    ADD("pos_embed", 1, T, D);
    ADD("patch_embed.proj.weight", D, c->channels, c->patch, c->patch);
    ADD("patch_embed.proj.bias", D);
    for (int l = 0; l < c->depth; l++) {
#define BLK(suffix, ...)                                                                \
    do {                                                                                \
        snprintf(name, sizeof name, "blocks.%d.%s", l, suffix);                         \
        ADD(name, __VA_ARGS__);                                                         \
    } while (0)
        BLK("norm1.weight", D);
        BLK("norm1.bias", D);
        BLK("attn.qkv.weight", 3 * D, D);
        BLK("attn.qkv.bias", 3 * D);
        BLK("attn.proj.weight", D, D);
        BLK("attn.proj.bias", D);
        BLK("norm2.weight", D);
        BLK("norm2.bias", D);
        BLK("mlp.fc1.weight", F, D);
        BLK("mlp.fc1.bias", F);
        BLK("mlp.fc2.weight", D, F);
        BLK("mlp.fc2.bias", D);
#undef BLK
    }
    ADD("norm.weight", D);
    ADD("norm.bias", D);
    ADD("head.weight", K, D);
    ADD("head.bias", K);
}
#undef ADD

static float *alloc_floats(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)))
        return NULL;
    return p;
}

/* The partial weight gradients of the largest layer that sums them apart. */
static size_t wscratch_floats(const vit_config *c, int Bc)
{
    int G = c->image_size / c->patch, N = G * G, BT = Bc * (N + 1), D = c->dim;
    int F = c->mlp_hidden, CPP = c->channels * c->patch * c->patch;
    size_t need[] = {nn_matmul_scratch_floats(BT, D, 3 * D), nn_matmul_scratch_floats(BT, D, D),
                     nn_matmul_scratch_floats(BT, D, F), nn_matmul_scratch_floats(BT, F, D),
                     nn_matmul_scratch_floats(Bc * N, CPP, D),
                     nn_matmul_scratch_floats(Bc, D, c->classes)};
    size_t most = 0;
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        most = need[i] > most ? need[i] : most;
    return most;
}

/* Lays out the activations: with base NULL only counts floats. */
static size_t acts_layout(vit_acts *a, float *base, const vit_config *c, int Bc)
{
    size_t G = (size_t)(c->image_size / c->patch), N = G * G, T = N + 1;
    size_t D = c->dim, F = c->mlp_hidden, L = c->depth, H = c->heads, K = c->classes;
    size_t CPP = (size_t)c->channels * c->patch * c->patch, BT = (size_t)Bc * T;
    size_t used = 0;
#define TAKE(field, count)                                                              \
    do {                                                                                \
        a->field = base ? base + used : NULL;                                           \
        used += ((size_t)(count) + 15) & ~(size_t)15;                                   \
    } while (0)
    TAKE(patches, (size_t)Bc * N * CPP);
    TAKE(x0, BT * D);
    TAKE(ln1, L * BT * D);
    TAKE(ln1_mean, L * BT);
    TAKE(ln1_rstd, L * BT);
    TAKE(qkv, L * BT * 3 * D);
    TAKE(att, L * Bc * H * T * T);
    TAKE(atty, L * BT * D);
    TAKE(res1, L * BT * D);
    TAKE(ln2, L * BT * D);
    TAKE(ln2_mean, L * BT);
    TAKE(ln2_rstd, L * BT);
    TAKE(fch, L * BT * F);
    TAKE(fch_gelu, L * BT * F);
    TAKE(res2, L * BT * D);
    TAKE(cls, (size_t)Bc * D);
    TAKE(lnf, (size_t)Bc * D);
    TAKE(lnf_mean, Bc);
    TAKE(lnf_rstd, Bc);
    TAKE(logits, (size_t)Bc * K);
    TAKE(probs, (size_t)Bc * K);
    TAKE(dres, BT * D);
    TAKE(dln, BT * D);
    TAKE(datty, BT * D);
    TAKE(dqkv, BT * 3 * D);
    TAKE(dfch, BT * F);
    TAKE(datt, (size_t)Bc * H * T * T);
    TAKE(dcls, (size_t)Bc * D);
    TAKE(dfeat, (size_t)Bc * D);
    TAKE(dlogits, (size_t)Bc * K);
    TAKE(wscratch, wscratch_floats(c, Bc));
#undef TAKE
    return used;
}

/* Upper bounds, in double so nothing overflows, of the floats vit_init
 * allocates: parameters (grads as many again) and every activation of
 * acts_layout for Bc images (the partial weight gradients at their most). */
static void size_bounds(const vit_config *c, int Bc, double *params, double *acts)
{
    double S = c->image_size, P = c->patch, C = c->channels, D = c->dim, F = c->mlp_hidden;
    double L = c->depth, H = c->heads, K = c->classes, B = Bc;
    double N = (S / P) * (S / P), T = N + 1, BT = B * T;
    *params = C * P * P * D + (T + 4) * D + L * (4 * D * D + 2 * F * D + F + 9 * D) +
              (K + 2) * D + K;
    *acts = (L + 1) * (BT * (9 * D + 2 * F + 5) + B * H * T * T) + B * N * C * P * P +
            B * (4 * D + 3 * K + 2) + 31 * 16 + (double)NN_GEMM_SPLIT_FLOATS;
}

sotu_status vit_init(vit_model *m, const vit_config *cfg, int batch_cap)
{
    memset(m, 0, sizeof *m);
    const vit_config *c = cfg;
    if (c->image_size <= 0 || c->channels <= 0 || c->patch <= 0 || c->dim <= 0 ||
        c->depth <= 0 || c->heads <= 0 || c->mlp_hidden <= 0 || c->classes <= 0)
        return sotu_error(SOTU_ERR_CONFIG,
                          "model: image_size %d, channels %d, patch %d, dim %d, depth %d, "
                          "heads %d, mlp_hidden %d, classes %d: expected all > 0",
                          c->image_size, c->channels, c->patch, c->dim, c->depth, c->heads,
                          c->mlp_hidden, c->classes);
    if (c->image_size % c->patch)
        return sotu_error(SOTU_ERR_CONFIG,
                          "model.patch: %d does not divide image_size %d", c->patch,
                          c->image_size);
    if (c->dim % c->heads)
        return sotu_error(SOTU_ERR_CONFIG, "model.heads: %d does not divide dim %d", c->heads,
                          c->dim);
    if (batch_cap <= 0)
        return sotu_error(SOTU_ERR_CONFIG, "batch size %d: expected > 0", batch_cap);

    double params, acts;
    size_bounds(c, batch_cap, &params, &acts);
    double need = 4 * (2 * params + acts);
    double have = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (need > have || need > (double)SIZE_MAX / 4)
        return sotu_error(SOTU_ERR_NOMEM,
                          "model: needs about %.3g bytes (parameters and gradients %.3g, "
                          "activations for batch %d %.3g), more than this machine's memory "
                          "(%.3g bytes); use a smaller model.* or train.batch_size",
                          need, 8 * params, batch_cap, 4 * acts, have);

    sotu_status st = SOTU_OK;
    m->cfg = *cfg;
    m->batch_cap = batch_cap;
    int n = block_first(c->depth) + 4;
    m->table.t = calloc((size_t)n, sizeof *m->table.t);
    m->trainable = malloc((size_t)n * sizeof *m->trainable);
    m->acts = calloc(1, sizeof *m->acts);
    if (m->acts)
        m->acts->p.blocks = calloc(2 * (size_t)c->depth, sizeof *m->acts->p.blocks);
    if (!m->table.t || !m->trainable || !m->acts || !m->acts->p.blocks) {
        st = sotu_error(SOTU_ERR_NOMEM, "model: cannot allocate the tensor table (%d tensors)", n);
        goto cleanup;
    }
    m->acts->g.blocks = m->acts->p.blocks + c->depth;
    build_table(&m->table, c);
    assert(m->table.n == n);
    for (int i = 0; i < n; i++)
        m->trainable[i] = true;
    m->num_params = m->table.total;
    m->params = alloc_floats(m->num_params);
    m->grads = alloc_floats(m->num_params);
    if (!m->params || !m->grads) {
        st = sotu_error(SOTU_ERR_NOMEM, "model: cannot allocate 2 x %zu bytes of parameters",
                        m->num_params * sizeof(float));
        goto cleanup;
    }
    memset(m->params, 0, m->num_params * sizeof(float));
    memset(m->grads, 0, m->num_params * sizeof(float));

    size_t nacts = acts_layout(m->acts, NULL, c, batch_cap);
    m->acts->block = alloc_floats(nacts);
    m->acts->labels = malloc((size_t)batch_cap * sizeof *m->acts->labels);
    if (!m->acts->block || !m->acts->labels) {
        st = sotu_error(SOTU_ERR_NOMEM,
                        "model: cannot allocate %zu bytes of activations for batch %d",
                        nacts * sizeof(float), batch_cap);
        goto cleanup;
    }
    acts_layout(m->acts, m->acts->block, c, batch_cap);
    m->logits = m->acts->logits;
    m->features = m->acts->lnf;

cleanup:
    if (st != SOTU_OK)
        vit_free(m);
    return st;
}

/* timm's trunc_normal_(std) cuts at the absolute values +-2, as here. */
static float trunc_normal(sotu_rng *r, float std)
{
    for (;;) {
        float v = sotu_rng_normal(r) * std;
        if (v >= -2.0f && v <= 2.0f)
            return v;
    }
}

/* timm's init_weights_vit_timm: Linear weights trunc-normal(0.02), biases 0;
 * pos_embed trunc-normal(0.02) (cut at +-2 like timm, so in effect a plain
 * normal); cls_token normal(1e-6); LayerNorm 1 / 0; the
 * patch conv keeps PyTorch's default, uniform +-1/sqrt(fan_in) for weight
 * and bias. */
void vit_init_random(vit_model *m, uint64_t seed)
{
    sotu_rng r;
    sotu_rng_init(&r, seed, SOTU_STREAM_INIT);
    const sotu_tensor_table *tab = &m->table;
    float conv_bound = 1.0f / sqrtf((float)(m->cfg.channels * m->cfg.patch * m->cfg.patch));
    for (int i = 0; i < tab->n; i++) {
        const sotu_tensor_info *t = &tab->t[i];
        float *p = m->params + t->offset;
        const char *name = t->name;
        size_t len = strlen(name);
        bool is_norm = strstr(name, "norm") != NULL;
        bool is_bias = len > 5 && !strcmp(name + len - 5, ".bias");
        for (size_t k = 0; k < t->count; k++) {
            if (i == VIT_CLS)
                p[k] = 1e-6f * sotu_rng_normal(&r);
            else if (i == VIT_PATCH_W || i == VIT_PATCH_B)
                p[k] = conv_bound * (2.0f * sotu_rng_uniform(&r) - 1.0f);
            else if (is_norm)
                p[k] = is_bias ? 0.0f : 1.0f;
            else if (is_bias)
                p[k] = 0.0f;
            else
                p[k] = trunc_normal(&r, 0.02f);
        }
    }
}

/* Points t's fields at base + each tensor's offset, in table order; with
 * trainable, a frozen tensor's pointer is NULL. */
static void tensors_point(vit_tensors *t, const vit_model *m, float *base, const bool *trainable)
{
    const sotu_tensor_info *info = m->table.t;
    int i = 0;
#define NEXT() (trainable && !trainable[i] ? (i++, (float *)NULL) : base + info[i++].offset)
    t->cls = NEXT();
    t->pos = NEXT();
    t->patchw = NEXT();
    t->patchb = NEXT();
    for (int l = 0; l < m->cfg.depth; l++) {
        vit_block_tensors *b = &t->blocks[l];
        b->ln1w = NEXT();
        b->ln1b = NEXT();
        b->qkvw = NEXT();
        b->qkvb = NEXT();
        b->projw = NEXT();
        b->projb = NEXT();
        b->ln2w = NEXT();
        b->ln2b = NEXT();
        b->fc1w = NEXT();
        b->fc1b = NEXT();
        b->fc2w = NEXT();
        b->fc2b = NEXT();
    }
    t->lnfw = NEXT();
    t->lnfb = NEXT();
    t->headw = NEXT();
    t->headb = NEXT();
#undef NEXT
    assert(i == m->table.n);
}

/* Block l's slices of the activations (each layer's [L, Bc, ...] array). */
static vit_block_acts block_acts(const vit_model *m, int l)
{
    const vit_config *c = &m->cfg;
    const vit_acts *a = m->acts;
    size_t G = (size_t)(c->image_size / c->patch), T = G * G + 1, Bc = (size_t)m->batch_cap;
    size_t lT = Bc * T, lD = lT * c->dim, lF = lT * c->mlp_hidden, lA = Bc * c->heads * T * T;
    return (vit_block_acts){
        .ln1 = a->ln1 + l * lD,           .ln1_mean = a->ln1_mean + l * lT,
        .ln1_rstd = a->ln1_rstd + l * lT, .qkv = a->qkv + l * 3 * lD,
        .att = a->att + l * lA,           .atty = a->atty + l * lD,
        .res1 = a->res1 + l * lD,         .ln2 = a->ln2 + l * lD,
        .ln2_mean = a->ln2_mean + l * lT, .ln2_rstd = a->ln2_rstd + l * lT,
        .fch = a->fch + l * lF,           .fch_gelu = a->fch_gelu + l * lF,
        .res2 = a->res2 + l * lD,
    };
}

/* Block l, pre-norm:
 *   res1 = x + proj(attention(qkv(norm1(x))))
 *   res2 = res1 + fc2(gelu(fc1(norm2(res1))))
 * for x [B, T, D]. With cls_only (the last block) attention queries with the
 * class token alone and the rest runs on its B rows (x's class tokens the
 * residual), as nothing else reaches the head. Returns res2: [B, T, D], or
 * [B, D] with cls_only. */
static const float *block_forward(vit_model *m, int l, const float *x, int B, bool cls_only)
{
    const vit_config *c = &m->cfg;
    vit_acts *a = m->acts;
    const vit_block_tensors *p = &a->p.blocks[l];
    vit_block_acts s = block_acts(m, l);
    int G = c->image_size / c->patch, T = G * G + 1, D = c->dim, F = c->mlp_hidden;
    int BT = B * T, Tq = cls_only ? 1 : T, R = B * Tq;

    vit_layernorm_forward(s.ln1, s.ln1_mean, s.ln1_rstd, x, p->ln1w, p->ln1b, BT, D);
    nn_matmul_forward(s.qkv, s.ln1, p->qkvw, p->qkvb, NULL, BT, D, 3 * D);
    vit_attention_forward(s.atty, s.att, s.qkv, B, T, Tq, D, c->heads);
    if (cls_only) {
        vit_pool_forward(a->cls, x, B, T, D);
        x = a->cls;
    }
    nn_matmul_forward(s.res1, s.atty, p->projw, p->projb, x, R, D, D);
    vit_layernorm_forward(s.ln2, s.ln2_mean, s.ln2_rstd, s.res1, p->ln2w, p->ln2b, R, D);
    nn_matmul_forward(s.fch, s.ln2, p->fc1w, p->fc1b, NULL, R, D, F);
    vit_gelu_forward(s.fch_gelu, s.fch, s.fch, (int64_t)R * F);
    nn_matmul_forward(s.res2, s.fch_gelu, p->fc2w, p->fc2b, s.res1, R, F, D);
    return s.res2;
}

float vit_forward(vit_model *m, const float *images, const int32_t *labels, int B)
{
    assert(B > 0 && B <= m->batch_cap);
    const vit_config *c = &m->cfg;
    vit_acts *a = m->acts;
    const vit_tensors *p = &a->p;
    int G = c->image_size / c->patch, N = G * G, D = c->dim, K = c->classes;
    int CPP = c->channels * c->patch * c->patch;
    tensors_point(&a->p, m, m->params, NULL);

    vit_im2col(a->patches, images, B, c->channels, c->image_size, c->patch);
    vit_embed_forward(a->x0, a->dln, a->patches, p->patchw, p->patchb, p->cls, p->pos, B, N, CPP,
                      D);
    const float *x = a->x0;
    for (int l = 0; l < c->depth; l++)
        x = block_forward(m, l, x, B, l == c->depth - 1);
    a->top = x;
    vit_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, x, p->lnfw, p->lnfb, B, D);
    nn_matmul_forward(a->logits, a->lnf, p->headw, p->headb, NULL, B, D, K);

    a->B = B;
    a->has_labels = labels != NULL;
    m->loss = 0.0f;
    if (labels) {
        memcpy(a->labels, labels, (size_t)B * sizeof *labels);
        m->loss = nn_crossentropy_forward(a->probs, a->logits, labels, m->label_smoothing, B, K);
    }
    return m->loss;
}

/* Index of the first trainable tensor in forward order (table.n if none):
 * backward stops once nothing at or before the current op trains. */
static int first_trainable(const vit_model *m)
{
    for (int i = 0; i < m->table.n; i++)
        if (m->trainable[i])
            return i;
    return m->table.n;
}

/* How far a block's backward reaches: a layer's input gradient is computed
 * only while the layer below it, or anything before, trains. */
typedef struct {
    bool fc1;  /* into fc1's output (through GELU) */
    bool ln2;  /* into norm2's output */
    bool res1; /* into res1, past norm2: the attention half runs */
    bool attn; /* into attention's output and qkv */
    bool ln1;  /* into norm1's output */
    bool x;    /* into the block input: an earlier block or the embedding trains */
} block_reach;

/* from: the first trainable tensor's index relative to the block's first
 * (negative when something before the block trains). */
static block_reach block_reach_from(int from)
{
    return (block_reach){.fc1 = from <= VIT_FC1_B,
                         .ln2 = from <= VIT_N2_B,
                         .res1 = from < VIT_N2_W,
                         .attn = from <= VIT_QKV_B,
                         .ln1 = from <= VIT_N1_B,
                         .x = from < VIT_N1_W};
}

/* Backward of block_forward, adding into the gradients of a->g.blocks[l].
 * dr holds d(res2) on entry: [B, D] (a->dcls) in the cls_only block,
 * [B, T, D] (a->dres) elsewhere. On return a->dres holds d(x) [B, T, D]
 * when reach.x. */
static void block_backward(vit_model *m, int l, const float *x, float *dr, int B, bool cls_only,
                           block_reach reach)
{
    const vit_config *c = &m->cfg;
    vit_acts *a = m->acts;
    const vit_block_tensors *p = &a->p.blocks[l], *g = &a->g.blocks[l];
    vit_block_acts s = block_acts(m, l);
    int G = c->image_size / c->patch, T = G * G + 1, D = c->dim, H = c->heads, F = c->mlp_hidden;
    int BT = B * T, Tq = cls_only ? 1 : T, R = B * Tq;

    /* dr holds d(res2); res2 = res1 + fc2(gelu(fc1(norm2(res1)))). */
    nn_matmul_backward(reach.fc1 ? a->dfch : NULL, g->fc2w, g->fc2b, dr, s.fch_gelu, p->fc2w,
                       a->wscratch, R, F, D);
    if (reach.fc1) {
        vit_gelu_backward(a->dfch, s.fch, a->dfch, (int64_t)R * F);
        nn_matmul_backward(reach.ln2 ? a->dln : NULL, g->fc1w, g->fc1b, a->dfch, s.ln2, p->fc1w,
                           a->wscratch, R, D, F);
    }
    if (reach.ln2)
        vit_layernorm_backward(reach.res1 ? dr : NULL, g->ln2w, g->ln2b, a->dln, s.res1, p->ln2w,
                               s.ln2_mean, s.ln2_rstd, R, D);
    if (!reach.res1)
        return;

    /* dr holds d(res1); res1 = x + proj(attention(qkv(norm1(x)))). */
    nn_matmul_backward(reach.attn ? a->datty : NULL, g->projw, g->projb, dr, s.atty, p->projw,
                       a->wscratch, R, D, D);
    if (cls_only) {
        memset(a->dres, 0, (size_t)BT * D * sizeof(float));
        vit_pool_backward(a->dres, a->dcls, B, T, D);
    }
    if (reach.attn) {
        vit_attention_backward(a->dqkv, a->datt, a->datty, s.qkv, s.att, B, T, Tq, D, H);
        nn_matmul_backward(reach.ln1 ? a->dln : NULL, g->qkvw, g->qkvb, a->dqkv, s.ln1, p->qkvw,
                           a->wscratch, BT, D, 3 * D);
    }
    if (reach.ln1)
        vit_layernorm_backward(reach.x ? a->dres : NULL, g->ln1w, g->ln1b, a->dln, x, p->ln1w,
                               s.ln1_mean, s.ln1_rstd, BT, D);
}

/* The loss back through the head, the final norm, the blocks and the
 * embedding, stopping where nothing further down trains. */
void vit_backward(vit_model *m)
{
    vit_acts *a = m->acts;
    assert(a->has_labels && "vit_backward needs a forward with labels");
    const vit_config *c = &m->cfg;
    const vit_tensors *p = &a->p, *g = &a->g;
    int B = a->B, G = c->image_size / c->patch, N = G * G, D = c->dim, K = c->classes;
    int L = c->depth, CPP = c->channels * c->patch * c->patch;
    /* table indices: the first trainable tensor, the final norm, the head */
    int ft = first_trainable(m), norm_at = block_first(L), head_at = norm_at + 2;
    if (ft == m->table.n)
        return;
    tensors_point(&a->p, m, m->params, NULL);
    tensors_point(&a->g, m, m->grads, m->trainable);

    nn_crossentropy_backward(a->dlogits, a->probs, a->labels, m->label_smoothing, B, K);
    nn_matmul_backward(ft < head_at ? a->dfeat : NULL, g->headw, g->headb, a->dlogits, a->lnf,
                       p->headw, a->wscratch, B, D, K);
    if (ft >= head_at)
        return;
    /* dcls is d(last block output) [B, D] (class-token rows only). */
    memset(a->dcls, 0, (size_t)B * D * sizeof(float));
    vit_layernorm_backward(ft < norm_at ? a->dcls : NULL, g->lnfw, g->lnfb, a->dfeat, a->top,
                           p->lnfw, a->lnf_mean, a->lnf_rstd, B, D);
    if (ft >= norm_at)
        return;

    for (int l = L - 1; l >= 0; l--) {
        bool last = l == L - 1;
        block_reach reach = block_reach_from(ft - block_first(l));
        const float *x = l == 0 ? a->x0 : block_acts(m, l - 1).res2;
        block_backward(m, l, x, last ? a->dcls : a->dres, B, last, reach);
        if (!reach.x)
            return;
    }
    vit_embed_backward(g->patchw, g->patchb, g->cls, g->pos, a->dln, a->wscratch, a->dres,
                       a->patches, B, N, CPP, D);
}

/* In blocks of 64K floats shared among the threads (ViT-B's gradients are
 * 344 MB, a memset of tens of milliseconds on one core). */
void vit_zero_grad(vit_model *m)
{
    enum { BLOCK = 65536 };
#pragma omp parallel if (m->num_params > 16 * BLOCK)
    for (int i = 0; i < m->table.n; i++) {
        if (!m->trainable[i])
            continue;
        float *g = m->grads + m->table.t[i].offset;
        size_t n = m->table.t[i].count;
#pragma omp for schedule(static) nowait
        for (size_t k = 0; k < n; k += BLOCK)
            memset(g + k, 0, (n - k < BLOCK ? n - k : BLOCK) * sizeof *g);
    }
}

sotu_status vit_set_trainable(vit_model *m, const char *spec)
{
    static const sotu_tune_word words[] = {
        {"all", "*", NULL},           {"blocks", "blocks.*", NULL},
        {"attn", "blocks.*.attn.*", NULL}, {"mlp", "blocks.*.mlp.*", NULL},
        {"norm", "*norm*", NULL},     {"head", "head.*", NULL},
    };
    return sotu_tensor_select(&m->table, spec, words, (int)(sizeof words / sizeof words[0]),
                              "all, blocks, attn, mlp, norm, head",
                              "timm names such as blocks.*.attn.*", m->trainable);
}

/* Counts the matrix products this engine executes: backward costs twice the
 * forward except for the patch embedding (no image gradient), and the last
 * block runs attention output, proj and MLP on the class token alone. */
double vit_train_flops(const vit_config *c, int B)
{
    double G = c->image_size / c->patch, N = G * G, T = N + 1, D = c->dim, F = c->mlp_hidden;
    double CPP = (double)c->channels * c->patch * c->patch, L = c->depth;
    double block = 2.0 * T * D * 3 * D + 2.0 * 2.0 * T * T * D + 2.0 * T * D * (D + 2 * F);
    double last = 2.0 * T * D * 3 * D + 2.0 * 2.0 * T * D + 2.0 * D * (D + 2 * F);
    double fwd = (L - 1) * block + last + 2.0 * D * c->classes;
    return B * (3.0 * fwd + 2.0 * 2.0 * N * CPP * D);
}

void vit_free(vit_model *m)
{
    if (!m)
        return;
    if (m->acts) {
        free(m->acts->block);
        free(m->acts->labels);
        free(m->acts->p.blocks); /* g.blocks lies in the same allocation */
        free(m->acts);
    }
    free(m->table.t);
    free(m->params);
    free(m->grads);
    free(m->trainable);
    memset(m, 0, sizeof *m);
}
