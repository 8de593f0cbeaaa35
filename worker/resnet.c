/* A torchvision ResNet (BasicBlock) with CLR layers, in C over OpenBLAS.
 *
 * Read top to bottom: the kernels, each a *_forward / *_backward pair, then
 * the network's structs, then its life cycle (init, forward, backward, ...).
 *
 * Dimensions (resnet.h, resnet_internal.h): B batch, Ci/Co channels in/out
 * of a convolution, H x W its input, Ho x Wo its output, k kernel,
 * CKK = Ci*k*k, W base width, K classes, Cf = 8W features.
 *
 * A convolution is im2col + one sgemm per image, the images shared among
 * the OpenMP threads (OpenBLAS runs single-threaded inside, worker/nn.h);
 * its weight gradient is summed over fixed groups of images and then the
 * groups in order. Like the ViT's, every kernel gives bitwise the same
 * results at any thread count (nn.c, "Threads"). BatchNorm,
 * the CLR depthwise convolution and pooling run parallel over channels or
 * planes. The softmax cross-entropy and the fc layer are nn.h's, shared with the
 * ViT.
 */
#include "worker/resnet.h"
#include "worker/resnet_internal.h"
#include "worker/nn.h"

#include <assert.h>
#include <cblas.h>
#include <fnmatch.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/isa.h"
#include "common/rng.h"

/* ------------------------------------------------------------------------ */
/* Threads                                                                   */
/* ------------------------------------------------------------------------ */

static int batch_threads(int B)
{
    int nt = omp_get_max_threads();
    return nt < B ? nt : B;
}

/* ------------------------------------------------------------------------ */
/* Convolution: im2col + sgemm per image                                     */
/* ------------------------------------------------------------------------ */

resnet_conv_shape resnet_conv_shape_make(int Ci, int H, int W, int Co, int k, int stride,
                                         int pad)
{
    resnet_conv_shape s = {Ci, H, W, Co, k, stride, pad, (H + 2 * pad - k) / stride + 1,
                           (W + 2 * pad - k) / stride + 1};
    return s;
}

/* A 1x1 stride-1 convolution reads its input as the column matrix. */
static bool conv_pointwise(const resnet_conv_shape *s)
{
    return s->k == 1 && s->stride == 1 && s->pad == 0;
}

/* The output columns ox whose input column ox*stride - pad + kx lies
 * inside [0, W): [*lo, *hi). */
static void valid_cols(const resnet_conv_shape *s, int kx, int *lo, int *hi)
{
    int first = s->pad - kx, last = s->W - 1 + s->pad - kx; /* bounds on ox*stride */
    *lo = first <= 0 ? 0 : (first + s->stride - 1) / s->stride;
    *hi = last < 0 ? 0 : last / s->stride + 1;
    *hi = *hi < s->Wo ? *hi : s->Wo;
    *lo = *lo < *hi ? *lo : *hi;
}

void resnet_im2col(float *col, const float *img, const resnet_conv_shape *s)
{
    int k = s->k, Ho = s->Ho, Wo = s->Wo, H = s->H, W = s->W, st = s->stride;
    for (int c = 0; c < s->Ci; c++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                float *row = col + ((size_t)(c * k + ky) * k + kx) * Ho * Wo;
                int lo, hi;
                valid_cols(s, kx, &lo, &hi);
                for (int oy = 0; oy < Ho; oy++) {
                    int iy = oy * st - s->pad + ky;
                    float *dst = row + (size_t)oy * Wo;
                    if (iy < 0 || iy >= H || lo == hi) {
                        memset(dst, 0, (size_t)Wo * sizeof *dst);
                        continue;
                    }
                    const float *src = img + ((size_t)c * H + iy) * W + kx - s->pad;
                    for (int ox = 0; ox < lo; ox++)
                        dst[ox] = 0.0f;
                    if (st == 1)
                        memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof *dst);
                    else
                        for (int ox = lo; ox < hi; ox++)
                            dst[ox] = src[ox * st];
                    for (int ox = hi; ox < Wo; ox++)
                        dst[ox] = 0.0f;
                }
            }
}

SOTU_ISA_INLINE void col2im_body(float *img, const float *col, const resnet_conv_shape *s)
{
    int k = s->k, Ho = s->Ho, Wo = s->Wo, H = s->H, W = s->W, st = s->stride;
    for (int c = 0; c < s->Ci; c++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                const float *row = col + ((size_t)(c * k + ky) * k + kx) * Ho * Wo;
                int lo, hi;
                valid_cols(s, kx, &lo, &hi);
                for (int oy = 0; oy < Ho; oy++) {
                    int iy = oy * st - s->pad + ky;
                    if (iy < 0 || iy >= H)
                        continue;
                    const float *src = row + (size_t)oy * Wo;
                    float *dst = img + ((size_t)c * H + iy) * W + kx - s->pad;
                    if (st == 1) {
#pragma omp simd
                        for (int ox = lo; ox < hi; ox++)
                            dst[ox] += src[ox];
                    } else {
                        for (int ox = lo; ox < hi; ox++)
                            dst[ox * st] += src[ox];
                    }
                }
            }
}
SOTU_ISA_VARIANTS(col2im_body, (float *img, const float *col, const resnet_conv_shape *s),
                  (img, col, s));

void resnet_col2im(float *img, const float *col, const resnet_conv_shape *s)
{
    SOTU_ISA_PICK(col2im_body)(img, col, s);
}

static size_t conv_col_floats(const resnet_conv_shape *s)
{
    return (size_t)s->Ci * s->k * s->k * s->Ho * s->Wo;
}

static size_t conv_w_floats(const resnet_conv_shape *s)
{
    return (size_t)s->Co * s->Ci * s->k * s->k;
}

/* The weight gradient sums the images in RESNET_DW_GROUPS fixed groups (one
 * thread takes a group's images in order), then the groups in order. */
#define RESNET_DW_GROUPS 16

size_t resnet_conv_scratch_floats(const resnet_conv_shape *s, int threads)
{
    return (size_t)threads * conv_col_floats(s) + (size_t)RESNET_DW_GROUPS * conv_w_floats(s);
}

void resnet_conv_forward(float *out, const float *inp, const float *w, float *scratch,
                         const resnet_conv_shape *s, int B)
{
    int CKK = s->Ci * s->k * s->k, HWo = s->Ho * s->Wo, nt = batch_threads(B);
    size_t per = conv_col_floats(s);
    size_t in_img = (size_t)s->Ci * s->H * s->W, out_img = (size_t)s->Co * HWo;
    bool pw = conv_pointwise(s);
    int blas_threads = nn_blas_serial_begin();
#pragma omp parallel num_threads(nt)
    {
        float *col = scratch + (size_t)omp_get_thread_num() * per;
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            const float *src = inp + b * in_img;
            if (!pw) {
                resnet_im2col(col, src, s);
                src = col;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->Co, HWo, CKK, 1.0f, w, CKK,
                        src, HWo, 0.0f, out + b * out_img, HWo);
        }
    }
    nn_blas_serial_end(blas_threads);
}

void resnet_conv_backward(float *dinp, float *dw, const float *dout, const float *inp,
                          const float *w, float *scratch, const resnet_conv_shape *s, int B)
{
    int CKK = s->Ci * s->k * s->k, HWo = s->Ho * s->Wo;
    int groups = B < RESNET_DW_GROUPS ? B : RESNET_DW_GROUPS, nt = batch_threads(groups);
    size_t ncol = conv_col_floats(s), nw = conv_w_floats(s);
    size_t in_img = (size_t)s->Ci * s->H * s->W, out_img = (size_t)s->Co * HWo;
    float *part = scratch + (size_t)omp_get_max_threads() * ncol; /* [groups, nw] */
    bool pw = conv_pointwise(s);
    int blas_threads = nn_blas_serial_begin();
#pragma omp parallel num_threads(nt)
    {
        float *col = scratch + (size_t)omp_get_thread_num() * ncol;
#pragma omp for schedule(dynamic, 1)
        for (int g = 0; g < groups; g++) {
            int b0 = (int)((int64_t)B * g / groups), b1 = (int)((int64_t)B * (g + 1) / groups);
            if (dw) /* cleared here: OpenBLAS's beta-0 pass is slower than memset */
                memset(part + g * nw, 0, nw * sizeof *part);
            for (int b = b0; b < b1; b++) {
                const float *go = dout + b * out_img;
                if (dw) {
                    const float *src = inp + b * in_img;
                    if (!pw) {
                        resnet_im2col(col, src, s);
                        src = col;
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->Co, CKK, HWo, 1.0f,
                                go, HWo, src, HWo, 1.0f, part + g * nw, CKK);
                }
                if (dinp) {
                    float *di = dinp + b * in_img;
                    float *dst = pw ? di : col;
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, HWo, s->Co, 1.0f, w,
                                CKK, go, HWo, 0.0f, dst, HWo);
                    if (!pw) {
                        memset(di, 0, in_img * sizeof *di);
                        resnet_col2im(di, col, s);
                    }
                }
            }
        }
    }
    nn_blas_serial_end(blas_threads);
    if (dw) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < nw; i++) {
            float sum = part[i];
            for (int g = 1; g < groups; g++)
                sum += part[g * nw + i];
            dw[i] += sum;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* CLR layer: depthwise 3x3 convolution, pad 1, no bias                      */
/* ------------------------------------------------------------------------ */

/* One output row: o[x] = sum_{i,j} k[3i + j] r_i[x + j - 1], zero outside
 * the row. The interior is one vector loop and the two border columns are
 * done apart, so no element tests its neighbours. W == 1 has no interior. */
SOTU_ISA_INLINE void dwconv_row(float *restrict o, const float *restrict r0,
                                const float *restrict r1, const float *restrict r2,
                                const float *k, int W)
{
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5];
    const float k6 = k[6], k7 = k[7], k8 = k[8];
    if (W == 1) {
        o[0] = k1 * r0[0] + k4 * r1[0] + k7 * r2[0];
        return;
    }
    o[0] = k1 * r0[0] + k2 * r0[1] + k4 * r1[0] + k5 * r1[1] + k7 * r2[0] + k8 * r2[1];
#pragma omp simd
    for (int x = 1; x < W - 1; x++)
        o[x] = k0 * r0[x - 1] + k1 * r0[x] + k2 * r0[x + 1] + k3 * r1[x - 1] + k4 * r1[x] +
               k5 * r1[x + 1] + k6 * r2[x - 1] + k7 * r2[x] + k8 * r2[x + 1];
    int e = W - 1;
    o[e] = k0 * r0[e - 1] + k1 * r0[e] + k3 * r1[e - 1] + k4 * r1[e] + k6 * r2[e - 1] +
           k7 * r2[e];
}

/* One plane: o = the 3x3 correlation of x with k, pad 1 (overwritten). The
 * first and last rows read their missing neighbour as the row itself with
 * that kernel row zeroed (activations are finite, so it adds 0). Compiled
 * for each ISA level (common/isa.h). */
SOTU_ISA_INLINE void dwconv_plane(float *restrict o, const float *restrict x, const float *k,
                                  int H, int W)
{
    float kt[9], kb[9], ktb[9];
    for (int t = 0; t < 9; t++) {
        kt[t] = t < 3 ? 0.0f : k[t];
        kb[t] = t >= 6 ? 0.0f : k[t];
        ktb[t] = t < 3 || t >= 6 ? 0.0f : k[t];
    }
    if (H == 1) {
        dwconv_row(o, x, x, x, ktb, W);
        return;
    }
    dwconv_row(o, x, x, x + W, kt, W);
    for (int y = 1; y < H - 1; y++) {
        const float *r = x + (size_t)y * W;
        dwconv_row(o + (size_t)y * W, r - W, r, r + W, k, W);
    }
    const float *r = x + (size_t)(H - 1) * W;
    dwconv_row(o + (size_t)(H - 1) * W, r - W, r, r, kb, W);
}
SOTU_ISA_VARIANTS(dwconv_plane,
                  (float *restrict o, const float *restrict x, const float *k, int H, int W),
                  (o, x, k, H, W));

/* Weight gradient of one plane: acc[3i + j] = sum_{y,x} g[y,x] x[y+i-1, x+j-1].
 * On the flattened plane tap (i, j) is one dot product of g, from its first
 * row with a valid input row on, against x shifted by (i-1) W + (j-1);
 * a column shift wraps into the neighbouring row, and gl / gr (g with its
 * first / last column zeroed, [H*W] scratch each) drop those products. */
SOTU_ISA_INLINE void dwconv_plane_dw(float acc[9], const float *g, const float *x, float *gl,
                                     float *gr, int H, int W)
{
    size_t HW = (size_t)H * W;
    memcpy(gl, g, HW * sizeof *gl);
    memcpy(gr, g, HW * sizeof *gr);
    for (int y = 0; y < H; y++) {
        gl[(size_t)y * W] = 0.0f;
        gr[(size_t)y * W + W - 1] = 0.0f;
    }
    for (int i = 0; i < 3; i++) {
        size_t n = HW - (i == 1 ? 0 : (size_t)W); /* products of this tap row */
        size_t go = i == 0 ? (size_t)W : 0;       /* first g element */
        size_t xo = i == 2 ? (size_t)W : 0;       /* x under it at j = 1 */
        if (n == 0) {                             /* H == 1: no row above or below */
            acc[3 * i] = acc[3 * i + 1] = acc[3 * i + 2] = 0.0f;
            continue;
        }
        /* j = 0 skips g's first element, j = 2 its last (zero in gl, gr) */
        acc[3 * i] = sotu_lanes_dot(gl + go + 1, x + xo, (int64_t)n - 1);
        acc[3 * i + 1] = sotu_lanes_dot(g + go, x + xo, (int64_t)n);
        acc[3 * i + 2] = sotu_lanes_dot(gr + go, x + xo + 1, (int64_t)n - 1);
    }
}
SOTU_ISA_VARIANTS(dwconv_plane_dw,
                  (float acc[9], const float *g, const float *x, float *gl, float *gr, int H,
                   int W),
                  (acc, g, x, gl, gr, H, W));

size_t resnet_dwconv_scratch_floats(int B, int C, int H, int W, int threads)
{
    return (size_t)B * C * 9 + (size_t)threads * 2 * H * W;
}

void resnet_dwconv_forward(float *out, const float *inp, const float *w, int B, int C, int H,
                           int W)
{
    size_t HW = (size_t)H * W;
#pragma omp parallel for schedule(static)
    for (int bc = 0; bc < B * C; bc++)
        SOTU_ISA_PICK(dwconv_plane)(out + bc * HW, inp + bc * HW, w + (size_t)(bc % C) * 9, H,
                                    W);
}

/* The input gradient is the forward with the kernel turned by 180 degrees.
 * The weight gradient is summed per plane, then over the images in image
 * order, so it does not depend on the thread count. */
void resnet_dwconv_backward(float *dinp, float *dw, const float *dout, const float *inp,
                            const float *w, float *scratch, int B, int C, int H, int W)
{
    size_t HW = (size_t)H * W;
    int nt = omp_get_max_threads();
    float *part = scratch, *planes = scratch + (size_t)B * C * 9; /* [B*C, 9], [nt, 2, HW] */
#pragma omp parallel num_threads(nt)
    {
        float *gl = planes + (size_t)omp_get_thread_num() * 2 * HW, *gr = gl + HW;
#pragma omp for schedule(static)
        for (int bc = 0; bc < B * C; bc++) {
            const float *wc = w + (size_t)(bc % C) * 9;
            if (dinp) {
                float flip[9];
                for (int t = 0; t < 9; t++)
                    flip[t] = wc[8 - t];
                SOTU_ISA_PICK(dwconv_plane)(dinp + bc * HW, dout + bc * HW, flip, H, W);
            }
            if (dw)
                SOTU_ISA_PICK(dwconv_plane_dw)(part + (size_t)bc * 9, dout + bc * HW,
                                               inp + bc * HW, gl, gr, H, W);
        }
    }
    if (!dw)
        return;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double acc[9] = {0};
        for (int b = 0; b < B; b++)
            for (int t = 0; t < 9; t++)
                acc[t] += part[((size_t)b * C + c) * 9 + t];
        for (int t = 0; t < 9; t++)
            dw[(size_t)c * 9 + t] += (float)acc[t];
    }
}

/* ------------------------------------------------------------------------ */
/* BatchNorm2d                                                               */
/* ------------------------------------------------------------------------ */

/* sum_i g[i] (x[i] - mu) rs over one plane [n], in fixed lanes (common/isa.h). */
SOTU_ISA_INLINE float plane_gxhat(const float *g, const float *x, float mu, float rs, int n)
{
    float acc[SOTU_LANES] = {0};
    int i = 0;
    for (; i + SOTU_LANES <= n; i += SOTU_LANES)
        for (int l = 0; l < SOTU_LANES; l++)
            acc[l] += g[i + l] * (x[i + l] - mu) * rs;
    float t[SOTU_LANES] = {0};
    for (int l = 0; i + l < n; l++)
        t[l] = g[i + l] * (x[i + l] - mu) * rs;
    for (int l = 0; l < SOTU_LANES; l++)
        acc[l] += t[l];
    return sotu_lanes_total(acc);
}

/* Channel c: its statistics (training: the batch's, each plane summed in
 * fixed lanes and the planes in double, in image order; else the running
 * ones) and out = x * scale + shift. Compiled for each ISA level. */
SOTU_ISA_INLINE void batchnorm_forward_channel(float *out, float *mean, float *rstd,
                                               const float *inp, const float *w, const float *b,
                                               float *running_mean, float *running_var,
                                               bool training, float momentum, int B, int C,
                                               int HW, int c)
{
    size_t n = (size_t)B * HW;
    float mu, rs;
    if (training) {
        double sum = 0.0, sq = 0.0;
        for (int bb = 0; bb < B; bb++)
            sum += sotu_lanes_sum(inp + ((size_t)bb * C + c) * HW, HW);
        double m = sum / (double)n;
        for (int bb = 0; bb < B; bb++)
            sq += sotu_lanes_sqdev(inp + ((size_t)bb * C + c) * HW, (float)m, HW);
        double var = sq / (double)n;
        mu = (float)m;
        rs = (float)(1.0 / sqrt(var + RESNET_BN_EPS));
        if (running_mean && running_var) {
            running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * (float)m;
            running_var[c] = (1.0f - momentum) * running_var[c] +
                             momentum * (float)(sq / (double)(n - 1));
        }
    } else {
        mu = running_mean[c];
        rs = 1.0f / sqrtf(running_var[c] + RESNET_BN_EPS);
    }
    mean[c] = mu;
    rstd[c] = rs;
    float scale = rs * w[c], shift = b[c] - mu * scale;
    for (int bb = 0; bb < B; bb++) {
        const float *x = inp + ((size_t)bb * C + c) * HW;
        float *o = out + ((size_t)bb * C + c) * HW;
#pragma omp simd
        for (int i = 0; i < HW; i++)
            o[i] = x[i] * scale + shift;
    }
}
SOTU_ISA_VARIANTS(batchnorm_forward_channel,
                  (float *out, float *mean, float *rstd, const float *inp, const float *w,
                   const float *b, float *running_mean, float *running_var, bool training,
                   float momentum, int B, int C, int HW, int c),
                  (out, mean, rstd, inp, w, b, running_mean, running_var, training, momentum, B,
                   C, HW, c));

void resnet_batchnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                              const float *w, const float *b, float *running_mean,
                              float *running_var, bool training, float momentum, int B, int C,
                              int HW)
{
    assert(!training || (size_t)B * HW > 1 || !running_var);
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++)
        SOTU_ISA_PICK(batchnorm_forward_channel)(out, mean, rstd, inp, w, b, running_mean,
                                                 running_var, training, momentum, B, C, HW, c);
}

/* Channel c of the backward: dw += sum g xhat, db += sum g (each plane in
 * fixed lanes, the planes in double) and, if dinp, its input gradient. */
SOTU_ISA_INLINE void batchnorm_backward_channel(float *dinp, float *dw, float *db,
                                                const float *dout, const float *inp,
                                                const float *w, const float *mean,
                                                const float *rstd, bool training, int B, int C,
                                                int HW, int c)
{
    double n = (double)B * HW;
    float mu = mean[c], rs = rstd[c];
    double sg = 0.0, sgx = 0.0;
    for (int bb = 0; bb < B; bb++) {
        size_t off = ((size_t)bb * C + c) * HW;
        sg += sotu_lanes_sum(dout + off, HW);
        sgx += plane_gxhat(dout + off, inp + off, mu, rs, HW);
    }
    if (dw)
        dw[c] += (float)sgx;
    if (db)
        db[c] += (float)sg;
    if (!dinp)
        return;
    float k = rs * w[c], mg = training ? (float)(sg / n) : 0.0f;
    float mgx = training ? (float)(sgx / n) : 0.0f;
    for (int bb = 0; bb < B; bb++) {
        size_t off = ((size_t)bb * C + c) * HW;
        const float *x = inp + off, *g = dout + off;
        float *di = dinp + off;
#pragma omp simd
        for (int i = 0; i < HW; i++)
            di[i] = k * (g[i] - mg - (x[i] - mu) * rs * mgx);
    }
}
SOTU_ISA_VARIANTS(batchnorm_backward_channel,
                  (float *dinp, float *dw, float *db, const float *dout, const float *inp,
                   const float *w, const float *mean, const float *rstd, bool training, int B,
                   int C, int HW, int c),
                  (dinp, dw, db, dout, inp, w, mean, rstd, training, B, C, HW, c));

void resnet_batchnorm_backward(float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean,
                               const float *rstd, bool training, int B, int C, int HW)
{
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++)
        SOTU_ISA_PICK(batchnorm_backward_channel)(dinp, dw, db, dout, inp, w, mean, rstd,
                                                  training, B, C, HW, c);
}

/* ------------------------------------------------------------------------ */
/* ReLU, max-pool, global average pool                                       */
/* ------------------------------------------------------------------------ */

void resnet_relu_forward(float *x, size_t n)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void resnet_relu_backward(float *d, const float *out, size_t n)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        d[i] = out[i] > 0.0f ? d[i] : 0.0f;
}

void resnet_maxpool_forward(float *out, int32_t *arg, const float *inp, int B, int C, int H,
                            int W, int Ho, int Wo)
{
#pragma omp parallel for schedule(static)
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = inp + (size_t)bc * H * W;
        float *o = out + (size_t)bc * Ho * Wo;
        int32_t *a = arg + (size_t)bc * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                float best = -INFINITY;
                int32_t at = -1;
                for (int iy = oy * 2 - 1; iy <= oy * 2 + 1; iy++) {
                    if (iy < 0 || iy >= H)
                        continue;
                    for (int ix = ox * 2 - 1; ix <= ox * 2 + 1; ix++) {
                        if (ix < 0 || ix >= W)
                            continue;
                        float v = x[iy * W + ix];
                        if (v > best || v != v || at < 0) {
                            best = v;
                            at = iy * W + ix;
                        }
                    }
                }
                assert(at >= 0);
                o[oy * Wo + ox] = best;
                a[oy * Wo + ox] = at;
            }
    }
}

void resnet_maxpool_backward(float *dinp, const float *dout, const int32_t *arg, int B, int C,
                             int H, int W, int Ho, int Wo)
{
#pragma omp parallel for schedule(static)
    for (int bc = 0; bc < B * C; bc++) {
        float *d = dinp + (size_t)bc * H * W;
        const float *g = dout + (size_t)bc * Ho * Wo;
        const int32_t *a = arg + (size_t)bc * Ho * Wo;
        memset(d, 0, (size_t)H * W * sizeof *d);
        for (int i = 0; i < Ho * Wo; i++)
            d[a[i]] += g[i];
    }
}

void resnet_avgpool_forward(float *out, const float *inp, int B, int C, int HW)
{
#pragma omp parallel for schedule(static)
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = inp + (size_t)bc * HW;
        float sum = 0.0f;
        for (int i = 0; i < HW; i++)
            sum += x[i];
        out[bc] = sum / HW;
    }
}

void resnet_avgpool_backward(float *dinp, const float *dout, int B, int C, int HW)
{
#pragma omp parallel for schedule(static)
    for (int bc = 0; bc < B * C; bc++) {
        float g = dout[bc] / HW;
        float *d = dinp + (size_t)bc * HW;
        for (int i = 0; i < HW; i++)
            d[i] = g;
    }
}

/* ------------------------------------------------------------------------ */
/* The network's structs                                                     */
/* ------------------------------------------------------------------------ */

/* A convolution, its optional CLR layer and its BatchNorm. */
typedef struct {
    resnet_conv_shape s;
    int w, clr, bn_w, bn_b; /* parameter tensor indices; clr -1 without */
    int rm, rv;             /* buffer tensor indices of the running statistics */
    const float *in;        /* [B, Ci, H, W] input of the last forward */
    float *y;               /* [Bc, Co, Ho, Wo] convolution output */
    float *z;               /* [Bc, Co, Ho, Wo] CLR output, NULL without */
    float *mean, *rstd;     /* [Co] statistics BatchNorm normalised with */
    float *out;             /* [Bc, Co, Ho, Wo] BatchNorm output; ReLU, the
                               shortcut sum and its ReLU are applied in place */
} resnet_unit;

typedef struct {
    resnet_unit c1, c2, ds; /* ds only with has_ds */
    bool has_ds;
    const float *in;        /* [B, Ci, H, W] block input */
} resnet_block;

struct resnet_net {
    float *block;        /* the one float allocation the pointers below use */
    int32_t *arg;        /* [Bc, W, Hp, Wp] max-pool argmax */
    int32_t *labels;     /* [Bc] of the last forward */
    int B;               /* images in the last forward */
    bool has_labels;     /* the last forward computed a loss */
    bool bn_training;    /* BatchNorm mode of the last forward */
    resnet_unit stem;
    int Hp, Wp;          /* max-pool output (stem output with small_input) */
    float *pool;         /* [Bc, W, Hp, Wp], NULL with small_input */
    int nblocks;
    resnet_block *blocks;
    int fc_w, fc_b;      /* tensor indices */
    int top_hw;          /* spatial size of the last block's output */
    float *probs;        /* [Bc, K] */
    float *dlogits;      /* [Bc, K] */
    float *dfeat;        /* [Bc, Cf] */
    float *wscratch;     /* fc's partial weight gradients (nn_matmul_scratch_floats) */
    float *g[4];         /* [Bc * largest activation] gradient buffers */
    float *t[2];         /* [Bc * largest activation] unit-internal gradients */
    float *scratch;      /* convolution scratch, grown to the thread count */
    size_t scratch_floats;
};

#define PARAM(m, i) ((m)->params + (m)->table.t[i].offset)
#define GRAD(m, i) ((i) >= 0 && (m)->trainable[i] ? (m)->grads + (m)->table.t[i].offset : NULL)
#define RUNNING(m, i) ((m)->running + (m)->buffers.t[i].offset)

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */
/* ------------------------------------------------------------------------ */

sotu_status resnet_parse_clr(const char *s, const char *field, resnet_clr *out)
{
    static const char *const names[] = {"none", "clr", "clr-full"};
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, names[i])) {
            *out = (resnet_clr)i;
            return SOTU_OK;
        }
    return sotu_error(SOTU_ERR_CONFIG, "%s: '%s', expected none, clr or clr-full", field,
                      s ? s : "(null)");
}

const char *resnet_clr_name(resnet_clr clr)
{
    return clr == RESNET_CLR_CONV3 ? "clr" : clr == RESNET_CLR_ALL ? "clr-full" : "none";
}

#define ADD(tab, ...) SOTU_TENSOR_ADD(tab, name, __VA_ARGS__)

/* Appends a unit's tensors: <conv>.weight, [<conv>.clr.weight],
 * <bn>.{weight,bias}; running statistics <bn>.running_{mean,var}. */
static void unit_build(resnet_model *m, resnet_unit *u, const char *conv, const char *bn,
                       resnet_conv_shape s)
{
    char name[SOTU_TENSOR_NAME_MAX];
    bool clr = m->cfg.clr == RESNET_CLR_ALL || (m->cfg.clr == RESNET_CLR_CONV3 && s.k > 1);
    memset(u, 0, sizeof *u);
    u->s = s;
    u->w = m->table.n;
    snprintf(name, sizeof name, "%s.weight", conv);
    ADD(&m->table, s.Co, s.Ci, s.k, s.k);
    u->clr = -1;
    if (clr) {
        u->clr = m->table.n;
        snprintf(name, sizeof name, "%s.clr.weight", conv);
        ADD(&m->table, s.Co, 1, 3, 3);
    }
    u->bn_w = m->table.n;
    snprintf(name, sizeof name, "%s.weight", bn);
    ADD(&m->table, s.Co);
    u->bn_b = m->table.n;
    snprintf(name, sizeof name, "%s.bias", bn);
    ADD(&m->table, s.Co);
    u->rm = m->buffers.n;
    snprintf(name, sizeof name, "%s.running_mean", bn);
    ADD(&m->buffers, s.Co);
    u->rv = m->buffers.n;
    snprintf(name, sizeof name, "%s.running_var", bn);
    ADD(&m->buffers, s.Co);
}

static const int *stage_blocks(int depth)
{
    static const int r18[4] = {2, 2, 2, 2}, r34[4] = {3, 4, 6, 3};
    return depth == 18 ? r18 : r34;
}

static int count_blocks(int depth)
{
    const int *n = stage_blocks(depth);
    return n[0] + n[1] + n[2] + n[3];
}

/* The architecture: tensor tables and unit shapes, in forward order. */
static void net_build(resnet_model *m)
{
    const resnet_config *c = &m->cfg;
    resnet_net *net = m->net;
    int S = c->image_size, W = c->width;
    resnet_conv_shape stem = c->small_input
                                 ? resnet_conv_shape_make(c->channels, S, S, W, 3, 1, 1)
                                 : resnet_conv_shape_make(c->channels, S, S, W, 7, 2, 3);
    unit_build(m, &net->stem, "conv1", "bn1", stem);
    net->Hp = c->small_input ? stem.Ho : (stem.Ho - 1) / 2 + 1;
    net->Wp = c->small_input ? stem.Wo : (stem.Wo - 1) / 2 + 1;
    int H = net->Hp, Wd = net->Wp, Ci = W, nb = 0;
    const int *per = stage_blocks(c->depth);
    char conv[64], bn[64];
    for (int L = 0; L < 4; L++) {
        int Co = W << L;
        for (int i = 0; i < per[L]; i++) {
            resnet_block *blk = &net->blocks[nb++];
            int stride = L > 0 && i == 0 ? 2 : 1;
            resnet_conv_shape s1 = resnet_conv_shape_make(Ci, H, Wd, Co, 3, stride, 1);
            resnet_conv_shape s2 = resnet_conv_shape_make(Co, s1.Ho, s1.Wo, Co, 3, 1, 1);
            snprintf(conv, sizeof conv, "layer%d.%d.conv1", L + 1, i);
            snprintf(bn, sizeof bn, "layer%d.%d.bn1", L + 1, i);
            unit_build(m, &blk->c1, conv, bn, s1);
            snprintf(conv, sizeof conv, "layer%d.%d.conv2", L + 1, i);
            snprintf(bn, sizeof bn, "layer%d.%d.bn2", L + 1, i);
            unit_build(m, &blk->c2, conv, bn, s2);
            blk->has_ds = stride != 1 || Ci != Co;
            if (blk->has_ds) {
                snprintf(conv, sizeof conv, "layer%d.%d.downsample.0", L + 1, i);
                snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", L + 1, i);
                unit_build(m, &blk->ds, conv, bn,
                           resnet_conv_shape_make(Ci, H, Wd, Co, 1, stride, 0));
            }
            Ci = Co;
            H = s1.Ho;
            Wd = s1.Wo;
        }
    }
    net->top_hw = H * Wd;
    m->feature_dim = Ci;
    char name[SOTU_TENSOR_NAME_MAX];
    net->fc_w = m->table.n;
    snprintf(name, sizeof name, "fc.weight");
    ADD(&m->table, c->classes, Ci);
    net->fc_b = m->table.n;
    snprintf(name, sizeof name, "fc.bias");
    ADD(&m->table, c->classes);
}
#undef ADD

static float *alloc_floats(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)))
        return NULL;
    return p;
}

static size_t unit_out_floats(const resnet_unit *u, int Bc)
{
    return (size_t)Bc * u->s.Co * u->s.Ho * u->s.Wo;
}

/* Lays out the activations: with base NULL only counts floats. */
static size_t net_layout(resnet_model *m, float *base)
{
    resnet_net *net = m->net;
    int Bc = m->batch_cap, K = m->cfg.classes, Cf = m->feature_dim;
    size_t used = 0, largest = 0;
#define TAKE(ptr, count)                                                                \
    do {                                                                                \
        (ptr) = base ? base + used : NULL;                                              \
        used += ((size_t)(count) + 15) & ~(size_t)15;                                   \
    } while (0)
#define TAKE_UNIT(u)                                                                    \
    do {                                                                                \
        size_t n_ = unit_out_floats(u, Bc);                                             \
        largest = n_ > largest ? n_ : largest;                                          \
        TAKE((u)->y, n_);                                                               \
        if ((u)->clr >= 0)                                                              \
            TAKE((u)->z, n_);                                                           \
        TAKE((u)->out, n_);                                                             \
        TAKE((u)->mean, (u)->s.Co);                                                     \
        TAKE((u)->rstd, (u)->s.Co);                                                     \
    } while (0)
    TAKE_UNIT(&net->stem);
    net->pool = NULL;
    if (!m->cfg.small_input)
        TAKE(net->pool, (size_t)Bc * m->cfg.width * net->Hp * net->Wp);
    for (int i = 0; i < net->nblocks; i++) {
        resnet_block *blk = &net->blocks[i];
        TAKE_UNIT(&blk->c1);
        TAKE_UNIT(&blk->c2);
        if (blk->has_ds)
            TAKE_UNIT(&blk->ds);
    }
    TAKE(m->features, (size_t)Bc * Cf);
    TAKE(m->logits, (size_t)Bc * K);
    TAKE(net->probs, (size_t)Bc * K);
    TAKE(net->dlogits, (size_t)Bc * K);
    TAKE(net->dfeat, (size_t)Bc * Cf);
    TAKE(net->wscratch, nn_matmul_scratch_floats(Bc, Cf, K));
    for (int i = 0; i < 4; i++)
        TAKE(net->g[i], largest);
    for (int i = 0; i < 2; i++)
        TAKE(net->t[i], largest);
#undef TAKE_UNIT
#undef TAKE
    return used;
}

sotu_status resnet_init(resnet_model *m, const resnet_config *cfg, int batch_cap)
{
    memset(m, 0, sizeof *m);
    const resnet_config *c = cfg;
    if (c->depth != 18 && c->depth != 34)
        return sotu_error(SOTU_ERR_CONFIG, "model.depth: %d, expected 18 or 34 (BasicBlock)",
                          c->depth);
    if (c->width <= 0 || c->channels <= 0 || c->image_size <= 0 || c->classes <= 0)
        return sotu_error(SOTU_ERR_CONFIG,
                          "model: width %d, channels %d, image_size %d, classes %d: expected "
                          "all > 0",
                          c->width, c->channels, c->image_size, c->classes);
    if (c->clr != RESNET_CLR_NONE && c->clr != RESNET_CLR_CONV3 && c->clr != RESNET_CLR_ALL)
        return sotu_error(SOTU_ERR_CONFIG, "model.clr: %d, expected none, clr or clr-full",
                          (int)c->clr);
    if (batch_cap <= 0)
        return sotu_error(SOTU_ERR_CONFIG, "batch size %d: expected > 0", batch_cap);

    sotu_status st = SOTU_OK;
    m->cfg = *cfg;
    m->batch_cap = batch_cap;
    m->training = true;
    m->bn_momentum = 0.1f;
    int nb = count_blocks(c->depth), units = 1 + 2 * nb + 3;
    m->net = calloc(1, sizeof *m->net);
    m->table.t = calloc((size_t)4 * units + 2, sizeof *m->table.t);
    m->buffers.t = calloc((size_t)2 * units, sizeof *m->buffers.t);
    if (!m->net || !m->table.t || !m->buffers.t ||
        !(m->net->blocks = calloc((size_t)nb, sizeof *m->net->blocks))) {
        st = sotu_error(SOTU_ERR_NOMEM, "model: cannot allocate the tensor tables (%d units)",
                        units);
        goto cleanup;
    }
    m->net->nblocks = nb;
    net_build(m);
    m->trainable = malloc((size_t)m->table.n * sizeof *m->trainable);
    m->num_params = m->table.total;
    m->params = alloc_floats(m->num_params);
    m->grads = alloc_floats(m->num_params);
    m->running = alloc_floats(m->buffers.total);
    if (!m->trainable || !m->params || !m->grads || !m->running) {
        st = sotu_error(SOTU_ERR_NOMEM, "model: cannot allocate 2 x %zu bytes of parameters",
                        m->num_params * sizeof(float));
        goto cleanup;
    }
    for (int i = 0; i < m->table.n; i++)
        m->trainable[i] = true;
    memset(m->params, 0, m->num_params * sizeof(float));
    memset(m->grads, 0, m->num_params * sizeof(float));
    for (int i = 0; i < m->buffers.n; i++) {
        const sotu_tensor_info *t = &m->buffers.t[i];
        bool var = strstr(t->name, "running_var") != NULL;
        for (size_t k = 0; k < t->count; k++)
            m->running[t->offset + k] = var ? 1.0f : 0.0f;
    }

    size_t nacts = net_layout(m, NULL);
    m->net->block = alloc_floats(nacts);
    m->net->labels = malloc((size_t)batch_cap * sizeof *m->net->labels);
    size_t narg = c->small_input ? 1 : (size_t)batch_cap * c->width * m->net->Hp * m->net->Wp;
    m->net->arg = malloc(narg * sizeof *m->net->arg);
    if (!m->net->block || !m->net->labels || !m->net->arg) {
        st = sotu_error(SOTU_ERR_NOMEM,
                        "model: cannot allocate %zu bytes of activations for batch %d",
                        nacts * sizeof(float), batch_cap);
        goto cleanup;
    }
    net_layout(m, m->net->block);

cleanup:
    if (st != SOTU_OK)
        resnet_free(m);
    return st;
}

static void clr_identity(float *w, size_t count)
{
    for (size_t k = 0; k < count; k++)
        w[k] = k % 9 == 4 ? 1.0f : 0.0f;
}

static bool is_clr(const sotu_tensor_info *t)
{
    size_t len = strlen(t->name);
    return len > 11 && !strcmp(t->name + len - 11, ".clr.weight");
}

void resnet_clr_reset(resnet_model *m)
{
    for (int i = 0; i < m->table.n; i++)
        if (is_clr(&m->table.t[i]))
            clr_identity(PARAM(m, i), m->table.t[i].count);
}

/* torchvision's ResNet.__init__: kaiming_normal_(mode="fan_out",
 * nonlinearity="relu") for convolutions, BatchNorm 1 / 0, and nn.Linear's
 * own reset (kaiming-uniform with a = sqrt(5), i.e. +-1/sqrt(fan_in), and
 * the same bound for the bias). */
void resnet_init_random(resnet_model *m, uint64_t seed)
{
    sotu_rng r;
    sotu_rng_init(&r, seed, SOTU_STREAM_INIT);
    resnet_net *net = m->net;
    float fc_bound = 1.0f / sqrtf((float)m->feature_dim);
    for (int i = 0; i < m->table.n; i++) {
        const sotu_tensor_info *t = &m->table.t[i];
        float *p = PARAM(m, i);
        if (is_clr(t)) {
            clr_identity(p, t->count);
        } else if (i == net->fc_w || i == net->fc_b) {
            for (size_t k = 0; k < t->count; k++)
                p[k] = fc_bound * (2.0f * sotu_rng_uniform(&r) - 1.0f);
        } else if (t->ndim == 4) {
            float std = sqrtf(2.0f / (float)(t->shape[0] * t->shape[2] * t->shape[3]));
            for (size_t k = 0; k < t->count; k++)
                p[k] = std * sotu_rng_normal(&r);
        } else {
            size_t len = strlen(t->name);
            bool bias = len > 5 && !strcmp(t->name + len - 5, ".bias");
            for (size_t k = 0; k < t->count; k++)
                p[k] = bias ? 0.0f : 1.0f;
        }
    }
    for (int i = 0; i < m->buffers.n; i++) {
        const sotu_tensor_info *t = &m->buffers.t[i];
        bool var = strstr(t->name, "running_var") != NULL;
        for (size_t k = 0; k < t->count; k++)
            m->running[t->offset + k] = var ? 1.0f : 0.0f;
    }
    m->num_batches_tracked = 0;
}

/* Scratch floats of one unit's convolution and CLR layer (used one after
 * the other, never at once). */
static size_t unit_scratch_floats(const resnet_unit *u, int batch_cap, int threads)
{
    const resnet_conv_shape *s = &u->s;
    size_t a = resnet_conv_scratch_floats(s, threads);
    size_t b = u->clr >= 0 ? resnet_dwconv_scratch_floats(batch_cap, s->Co, s->Ho, s->Wo,
                                                           threads)
                           : 0;
    return a > b ? a : b;
}

/* The kernels' scratch for the current thread count. */
static float *net_scratch(resnet_model *m)
{
    resnet_net *net = m->net;
    int nt = omp_get_max_threads();
    size_t need = unit_scratch_floats(&net->stem, m->batch_cap, nt);
    for (int i = 0; i < net->nblocks; i++) {
        const resnet_block *blk = &net->blocks[i];
        size_t a = unit_scratch_floats(&blk->c1, m->batch_cap, nt);
        size_t b = unit_scratch_floats(&blk->c2, m->batch_cap, nt);
        size_t d = blk->has_ds ? unit_scratch_floats(&blk->ds, m->batch_cap, nt) : 0;
        need = a > need ? a : need;
        need = b > need ? b : need;
        need = d > need ? d : need;
    }
    if (need > net->scratch_floats) {
        free(net->scratch);
        net->scratch = alloc_floats(need);
        assert(net->scratch && "convolution scratch");
        net->scratch_floats = need;
    }
    return net->scratch;
}

static void unit_forward(resnet_model *m, resnet_unit *u, const float *in, int B, float *scratch)
{
    const resnet_conv_shape *s = &u->s;
    int HWo = s->Ho * s->Wo;
    u->in = in;
    resnet_conv_forward(u->y, in, PARAM(m, u->w), scratch, s, B);
    const float *bn_in = u->y;
    if (u->clr >= 0) {
        resnet_dwconv_forward(u->z, u->y, PARAM(m, u->clr), B, s->Co, s->Ho, s->Wo);
        bn_in = u->z;
    }
    resnet_batchnorm_forward(u->out, u->mean, u->rstd, bn_in, PARAM(m, u->bn_w),
                             PARAM(m, u->bn_b), RUNNING(m, u->rm), RUNNING(m, u->rv),
                             m->training, m->bn_momentum, B, s->Co, HWo);
}

float resnet_forward(resnet_model *m, const float *images, const int32_t *labels, int B)
{
    assert(B > 0 && B <= m->batch_cap);
    resnet_net *net = m->net;
    int K = m->cfg.classes, Cf = m->feature_dim;
    float *scratch = net_scratch(m);

    resnet_unit *st = &net->stem;
    unit_forward(m, st, images, B, scratch);
    resnet_relu_forward(st->out, (size_t)B * st->s.Co * st->s.Ho * st->s.Wo);
    const float *x = st->out;
    if (!m->cfg.small_input) {
        resnet_maxpool_forward(net->pool, net->arg, st->out, B, st->s.Co, st->s.Ho, st->s.Wo,
                               net->Hp, net->Wp);
        x = net->pool;
    }
    for (int i = 0; i < net->nblocks; i++) {
        resnet_block *blk = &net->blocks[i];
        blk->in = x;
        unit_forward(m, &blk->c1, x, B, scratch);
        size_t n = (size_t)B * blk->c1.s.Co * blk->c1.s.Ho * blk->c1.s.Wo;
        resnet_relu_forward(blk->c1.out, n);
        unit_forward(m, &blk->c2, blk->c1.out, B, scratch);
        const float *shortcut = x;
        if (blk->has_ds) {
            unit_forward(m, &blk->ds, x, B, scratch);
            shortcut = blk->ds.out;
        }
        float *out = blk->c2.out;
#pragma omp parallel for simd schedule(static)
        for (size_t k = 0; k < n; k++) {
            float v = out[k] + shortcut[k];
            out[k] = v > 0.0f ? v : 0.0f;
        }
        x = out;
    }
    resnet_avgpool_forward(m->features, x, B, Cf, net->top_hw);
    nn_matmul_forward(m->logits, m->features, PARAM(m, net->fc_w), PARAM(m, net->fc_b), NULL,
                       B, Cf, K);
    if (m->training)
        m->num_batches_tracked++;

    net->B = B;
    net->bn_training = m->training;
    net->has_labels = labels != NULL;
    m->loss = 0.0f;
    if (labels) {
        memcpy(net->labels, labels, (size_t)B * sizeof *labels);
        m->loss = nn_crossentropy_forward(net->probs, m->logits, labels, m->label_smoothing, B,
                                           K);
    }
    return m->loss;
}

/* Index of the first trainable tensor in forward order (table.n if none). */
static int first_trainable(const resnet_model *m)
{
    for (int i = 0; i < m->table.n; i++)
        if (m->trainable[i])
            return i;
    return m->table.n;
}

/* Backward of one unit from dout = d(BatchNorm output) (t[0], t[1] are its
 * scratch). upstream: something before the unit trains, so dinp (the
 * gradient of its input, overwritten) is needed. */
static void unit_backward(resnet_model *m, const resnet_unit *u, const float *dout, float *dinp,
                          bool upstream, int B, float *scratch)
{
    resnet_net *net = m->net;
    const resnet_conv_shape *s = &u->s;
    int HWo = s->Ho * s->Wo;
    bool conv_in = upstream || m->trainable[u->w];
    bool bn_in = conv_in || (u->clr >= 0 && m->trainable[u->clr]);
    assert(!upstream || dinp);
    resnet_batchnorm_backward(bn_in ? net->t[0] : NULL, GRAD(m, u->bn_w), GRAD(m, u->bn_b), dout,
                              u->clr >= 0 ? u->z : u->y, PARAM(m, u->bn_w), u->mean, u->rstd,
                              net->bn_training, B, s->Co, HWo);
    if (!bn_in)
        return;
    const float *dy = net->t[0];
    if (u->clr >= 0) {
        resnet_dwconv_backward(conv_in ? net->t[1] : NULL, GRAD(m, u->clr), net->t[0], u->y,
                               PARAM(m, u->clr), scratch, B, s->Co, s->Ho, s->Wo);
        dy = net->t[1];
    }
    if (conv_in)
        resnet_conv_backward(upstream ? dinp : NULL, GRAD(m, u->w), dy, u->in, PARAM(m, u->w),
                             scratch, s, B);
}

/* The last tensor index of a block. */
static int block_last(const resnet_block *blk)
{
    return blk->has_ds ? blk->ds.bn_b : blk->c2.bn_b;
}

void resnet_backward(resnet_model *m)
{
    resnet_net *net = m->net;
    assert(net->has_labels && "resnet_backward needs a forward with labels");
    int B = net->B, K = m->cfg.classes, Cf = m->feature_dim;
    int ft = first_trainable(m);
    if (ft == m->table.n)
        return;
    float *scratch = net_scratch(m);
    float **g = net->g;

    nn_crossentropy_backward(net->dlogits, net->probs, net->labels, m->label_smoothing, B, K);
    bool below_fc = ft < net->fc_w;
    nn_matmul_backward(below_fc ? net->dfeat : NULL, GRAD(m, net->fc_w), GRAD(m, net->fc_b),
                        net->dlogits, m->features, PARAM(m, net->fc_w), net->wscratch, B, Cf, K);
    if (!below_fc)
        return;
    resnet_avgpool_backward(g[0], net->dfeat, B, Cf, net->top_hw);

    /* g[0] holds d(block output); it becomes d(block input). */
    for (int i = net->nblocks - 1; i >= 0; i--) {
        const resnet_block *blk = &net->blocks[i];
        if (ft > block_last(blk))
            return;
        const resnet_unit *c1 = &blk->c1, *c2 = &blk->c2;
        size_t n_out = (size_t)B * c2->s.Co * c2->s.Ho * c2->s.Wo;
        size_t n_in = (size_t)B * c1->s.Ci * c1->s.H * c1->s.W;
        bool up = ft < c1->w;
        resnet_relu_backward(g[0], c2->out, n_out);
        if (blk->has_ds)
            unit_backward(m, &blk->ds, g[0], up ? g[3] : NULL, up, B, scratch);
        bool into_c1 = ft < c2->w;
        unit_backward(m, c2, g[0], into_c1 ? g[1] : NULL, into_c1, B, scratch);
        if (into_c1) {
            resnet_relu_backward(g[1], c1->out, n_out);
            unit_backward(m, c1, g[1], up ? g[2] : NULL, up, B, scratch);
        }
        if (!up)
            return;
        const float *dshort = blk->has_ds ? g[3] : g[0];
        float *d = g[0], *dmain = g[2];
#pragma omp parallel for simd schedule(static)
        for (size_t k = 0; k < n_in; k++)
            d[k] = dmain[k] + dshort[k];
    }

    resnet_unit *st = &net->stem;
    size_t n_stem = (size_t)B * st->s.Co * st->s.Ho * st->s.Wo;
    float *dstem = g[0];
    if (!m->cfg.small_input) {
        resnet_maxpool_backward(g[1], g[0], net->arg, B, st->s.Co, st->s.Ho, st->s.Wo, net->Hp,
                                net->Wp);
        dstem = g[1];
    }
    resnet_relu_backward(dstem, st->out, n_stem);
    unit_backward(m, st, dstem, NULL, false, B, scratch);
}

void resnet_zero_grad(resnet_model *m)
{
    for (int i = 0; i < m->table.n; i++)
        if (m->trainable[i])
            memset(m->grads + m->table.t[i].offset, 0, m->table.t[i].count * sizeof(float));
}

sotu_status resnet_set_trainable(resnet_model *m, const char *spec)
{
    const bool has_clr = m->cfg.clr != RESNET_CLR_NONE;
    const sotu_tune_word words[] = {
        {"all", "*", NULL},
        {"conv", "conv1.weight|*.conv?.weight|*.downsample.0.weight", NULL},
        {"bn", "bn1.*|*.bn?.*|*.downsample.1.*", NULL},
        {"head", "fc.*", NULL},
        {"fc", "fc.*", NULL},
        {"clr", "*.clr.weight|bn1.*|*.bn?.*|*.downsample.1.*|fc.*",
         has_clr ? NULL : "'clr' needs CLR layers (model.clr clr or clr-full)"},
    };
    return sotu_tensor_select(&m->table, spec, words, (int)(sizeof words / sizeof words[0]),
                              "all, conv, bn, head, clr", "torchvision names such as layer4.*",
                              m->trainable);
}

resnet_param_counts resnet_count_params(const resnet_model *m)
{
    resnet_param_counts c = {0};
    const resnet_net *net = m->net;
    for (int i = 0; i < m->table.n; i++) {
        const sotu_tensor_info *t = &m->table.t[i];
        if (i == net->fc_w || i == net->fc_b)
            c.head += t->count;
        else if (is_clr(t))
            c.clr += t->count;
        else if (t->ndim == 4)
            c.conv += t->count;
        else
            c.bn += t->count;
    }
    c.backbone = c.conv + c.bn;
    return c;
}

/* Forward and backward multiply-adds of one unit, following unit_backward. */
static double unit_flops(const resnet_model *m, const resnet_unit *u, bool upstream, int B)
{
    const resnet_conv_shape *s = &u->s;
    double conv = 2.0 * s->Co * s->Ci * s->k * s->k * s->Ho * s->Wo;
    double clr = u->clr >= 0 ? 2.0 * 9.0 * s->Co * s->Ho * s->Wo : 0.0;
    bool conv_in = upstream || m->trainable[u->w];
    bool bn_in = conv_in || (u->clr >= 0 && m->trainable[u->clr]);
    double f = conv + clr;
    if (bn_in && u->clr >= 0)
        f += (m->trainable[u->clr] ? clr : 0.0) + (conv_in ? clr : 0.0);
    if (conv_in)
        f += (m->trainable[u->w] ? conv : 0.0) + (upstream ? conv : 0.0);
    return B * f;
}

double resnet_train_flops(const resnet_model *m, int B)
{
    const resnet_net *net = m->net;
    int ft = first_trainable(m);
    double fc = 2.0 * B * m->feature_dim * m->cfg.classes;
    double f = fc + (ft < net->fc_w ? fc : 0.0) + (ft < m->table.n ? fc : 0.0);
    f += unit_flops(m, &net->stem, false, B);
    for (int i = 0; i < net->nblocks; i++) {
        const resnet_block *blk = &net->blocks[i];
        bool up = ft < blk->c1.w;
        f += unit_flops(m, &blk->c1, up, B) + unit_flops(m, &blk->c2, ft < blk->c2.w, B);
        if (blk->has_ds)
            f += unit_flops(m, &blk->ds, up, B);
    }
    return f;
}

void resnet_free(resnet_model *m)
{
    if (!m)
        return;
    if (m->net) {
        free(m->net->block);
        free(m->net->arg);
        free(m->net->labels);
        free(m->net->blocks);
        free(m->net->scratch);
        free(m->net);
    }
    free(m->table.t);
    free(m->buffers.t);
    free(m->params);
    free(m->grads);
    free(m->running);
    free(m->trainable);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------ */
/* Weights files                                                             */
/* ------------------------------------------------------------------------ */

/* m's tensors as io/resnet_io.h reads and writes them. */
static resnet_tensors tensors_of(const resnet_model *m)
{
    return (resnet_tensors){.cfg = m->cfg,
                            .table = &m->table,
                            .params = m->params,
                            .buffers = &m->buffers,
                            .running = m->running,
                            .num_batches_tracked = m->num_batches_tracked};
}

sotu_status resnet_weights_write(const char *path, const resnet_model *m)
{
    resnet_tensors t = tensors_of(m);
    return resnet_tensors_write(path, &t);
}

sotu_status resnet_weights_write_group(int64_t loc, const char *group, const resnet_model *m,
                                       const char *path_for_errors)
{
    resnet_tensors t = tensors_of(m);
    return resnet_tensors_write_group(loc, group, &t, path_for_errors);
}

sotu_status resnet_weights_read(const char *path, const char *group, resnet_model *m)
{
    resnet_tensors t = tensors_of(m);
    sotu_status s = resnet_tensors_read(path, group, &t);
    m->num_batches_tracked = t.num_batches_tracked;
    return s;
}
