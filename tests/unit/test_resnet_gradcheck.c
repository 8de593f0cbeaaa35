/* Finite-difference checks of the ResNet's float backward kernels against
 * central differences of naive double-precision forward loops written here:
 * convolution (3x3/1, 3x3/2, 7x7/2, 1x1/2 and 1x1/1 shapes), the CLR
 * depthwise 3x3 convolution, BatchNorm in training mode (batch statistics)
 * and eval mode (fixed statistics), ReLU, max-pool 3x3/2 pad 1 and global
 * average pooling. Each kernel's scalar loss is sum(out * R) for a random R
 * (so dout = R). Seed: argv[1] or 5. */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gradcheck.h"
#include "common/rng.h"
#include "worker/resnet_internal.h"

static sotu_rng rng;

static float *randn(size_t n, float scale)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * sotu_rng_normal(&rng);
    return x;
}

/* ---- convolution ---- */
typedef struct { double *x, *w; resnet_conv_shape s; int B; } conv_ctx;

static void conv_ref(double *out, void *p)
{
    conv_ctx *c = p;
    const resnet_conv_shape *s = &c->s;
    for (int b = 0; b < c->B; b++)
        for (int o = 0; o < s->Co; o++)
            for (int oy = 0; oy < s->Ho; oy++)
                for (int ox = 0; ox < s->Wo; ox++) {
                    double sum = 0;
                    for (int i = 0; i < s->Ci; i++)
                        for (int ky = 0; ky < s->k; ky++)
                            for (int kx = 0; kx < s->k; kx++) {
                                int iy = oy * s->stride - s->pad + ky;
                                int ix = ox * s->stride - s->pad + kx;
                                if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W)
                                    continue;
                                sum += c->w[((o * s->Ci + i) * s->k + ky) * s->k + kx] *
                                       c->x[((b * s->Ci + i) * s->H + iy) * s->W + ix];
                            }
                    out[((b * s->Co + o) * s->Ho + oy) * s->Wo + ox] = sum;
                }
}

static void test_conv(int B, int Ci, int H, int W, int Co, int k, int stride, int pad)
{
    resnet_conv_shape s = resnet_conv_shape_make(Ci, H, W, Co, k, stride, pad);
    size_t nx = (size_t)B * Ci * H * W, nw = (size_t)Co * Ci * k * k;
    size_t no = (size_t)B * Co * s.Ho * s.Wo;
    float *x = randn(nx, 1), *w = randn(nw, 0.5f), *R = randn(no, 1);
    float *out = malloc(no * sizeof *out), *dx = randn(nx, 1), *dw = calloc(nw, sizeof *dw);
    float *scratch = malloc(resnet_conv_scratch_floats(&s, 64) * sizeof *scratch);
    resnet_conv_forward(out, x, w, scratch, &s, B);
    resnet_conv_backward(dx, dw, R, x, w, scratch, &s, B);
    conv_ctx c = {to_double(x, nx), to_double(w, nw), s, B};
    double *ref = malloc(no * sizeof *ref), *g = malloc((nx > nw ? nx : nw) * sizeof *g);
    char what[96];
    conv_ref(ref, &c);
    snprintf(what, sizeof what, "conv %dx%d/%d pad %d forward", k, k, stride, pad);
    expect_close(what, out, ref, no, 1e-5);
    numeric_grad(g, c.x, nx, conv_ref, &c, R, no);
    snprintf(what, sizeof what, "conv %dx%d/%d pad %d d input", k, k, stride, pad);
    expect_close(what, dx, g, nx, 1e-4);
    numeric_grad(g, c.w, nw, conv_ref, &c, R, no);
    snprintf(what, sizeof what, "conv %dx%d/%d pad %d d weight", k, k, stride, pad);
    expect_close(what, dw, g, nw, 1e-4);
    free(x), free(w), free(R), free(out), free(dx), free(dw), free(scratch);
    free(c.x), free(c.w), free(ref), free(g);
}

/* ---- CLR depthwise convolution ---- */
typedef struct { double *x, *w; int B, C, H, W; } dw_ctx;

static void dw_ref(double *out, void *p)
{
    dw_ctx *c = p;
    for (int b = 0; b < c->B; b++)
        for (int ch = 0; ch < c->C; ch++)
            for (int y = 0; y < c->H; y++)
                for (int x = 0; x < c->W; x++) {
                    double sum = 0;
                    for (int i = 0; i < 3; i++)
                        for (int j = 0; j < 3; j++) {
                            int yy = y + i - 1, xx = x + j - 1;
                            if (yy >= 0 && yy < c->H && xx >= 0 && xx < c->W)
                                sum += c->w[ch * 9 + i * 3 + j] *
                                       c->x[((b * c->C + ch) * c->H + yy) * c->W + xx];
                        }
                    out[((b * c->C + ch) * c->H + y) * c->W + x] = sum;
                }
}

static void test_dwconv(int B, int C, int H, int W)
{
    size_t n = (size_t)B * C * H * W, nw = (size_t)C * 9;
    float *x = randn(n, 1), *w = randn(nw, 0.5f), *R = randn(n, 1);
    float *out = malloc(n * sizeof *out), *dx = randn(n, 1), *dw = calloc(nw, sizeof *dw);
    resnet_dwconv_forward(out, x, w, B, C, H, W);
    float *scratch =
        malloc(resnet_dwconv_scratch_floats(B, C, H, W, omp_get_max_threads()) * sizeof *scratch);
    resnet_dwconv_backward(dx, dw, R, x, w, scratch, B, C, H, W);
    dw_ctx c = {to_double(x, n), to_double(w, nw), B, C, H, W};
    double *ref = malloc(n * sizeof *ref), *g = malloc((n > nw ? n : nw) * sizeof *g);
    char what[96];
    dw_ref(ref, &c);
    snprintf(what, sizeof what, "depthwise 3x3 on %dx%d forward", H, W);
    expect_close(what, out, ref, n, 1e-5);
    numeric_grad(g, c.x, n, dw_ref, &c, R, n);
    snprintf(what, sizeof what, "depthwise 3x3 on %dx%d d input", H, W);
    expect_close(what, dx, g, n, 1e-4);
    numeric_grad(g, c.w, nw, dw_ref, &c, R, n);
    snprintf(what, sizeof what, "depthwise 3x3 on %dx%d d weight", H, W);
    expect_close(what, dw, g, nw, 1e-4);
    free(x), free(w), free(R), free(out), free(dx), free(dw), free(c.x), free(c.w), free(ref),
        free(g), free(scratch);
}

/* ---- BatchNorm ---- */
typedef struct { double *x, *w, *b, *rm, *rv; bool training; int B, C, HW; } bn_ctx;

static void bn_ref(double *out, void *p)
{
    bn_ctx *c = p;
    double n = (double)c->B * c->HW;
    for (int ch = 0; ch < c->C; ch++) {
        double mu = c->rm[ch], var = c->rv[ch];
        if (c->training) {
            mu = var = 0;
            for (int b = 0; b < c->B; b++)
                for (int i = 0; i < c->HW; i++)
                    mu += c->x[(b * c->C + ch) * c->HW + i];
            mu /= n;
            for (int b = 0; b < c->B; b++)
                for (int i = 0; i < c->HW; i++) {
                    double d = c->x[(b * c->C + ch) * c->HW + i] - mu;
                    var += d * d;
                }
            var /= n;
        }
        for (int b = 0; b < c->B; b++)
            for (int i = 0; i < c->HW; i++) {
                size_t k = (size_t)(b * c->C + ch) * c->HW + i;
                out[k] = (c->x[k] - mu) / sqrt(var + RESNET_BN_EPS) * c->w[ch] + c->b[ch];
            }
    }
}

static void test_batchnorm(bool training, int B, int C, int HW)
{
    size_t n = (size_t)B * C * HW;
    float *x = randn(n, 2), *w = randn(C, 1), *b = randn(C, 1), *R = randn(n, 1);
    float *rm = randn(C, 0.5f), *rv = malloc(C * sizeof *rv);
    for (int i = 0; i < C; i++)
        rv[i] = 0.5f + sotu_rng_uniform(&rng);
    float *rm0 = malloc(C * sizeof *rm0), *rv0 = malloc(C * sizeof *rv0);
    memcpy(rm0, rm, C * sizeof *rm);
    memcpy(rv0, rv, C * sizeof *rv);
    float *out = malloc(n * sizeof *out), *mean = malloc(C * sizeof *mean);
    float *rstd = malloc(C * sizeof *rstd), *dx = randn(n, 1);
    float *dw = calloc(C, sizeof *dw), *db = calloc(C, sizeof *db);
    resnet_batchnorm_forward(out, mean, rstd, x, w, b, rm, rv, training, 0.1f, B, C, HW);
    resnet_batchnorm_backward(dx, dw, db, R, x, w, mean, rstd, training, B, C, HW);
    bn_ctx c = {to_double(x, n), to_double(w, C), to_double(b, C), to_double(rm0, C),
                to_double(rv0, C), training, B, C, HW};
    double *ref = malloc(n * sizeof *ref), *g = malloc(n * sizeof *g);
    const char *mode = training ? "train" : "eval";
    char what[96];
    bn_ref(ref, &c);
    snprintf(what, sizeof what, "batchnorm %s forward", mode);
    expect_close(what, out, ref, n, 1e-5);
    numeric_grad(g, c.x, n, bn_ref, &c, R, n);
    snprintf(what, sizeof what, "batchnorm %s d input", mode);
    expect_close(what, dx, g, n, 1e-4);
    numeric_grad(g, c.w, C, bn_ref, &c, R, n);
    snprintf(what, sizeof what, "batchnorm %s d weight", mode);
    expect_close(what, dw, g, C, 1e-4);
    numeric_grad(g, c.b, C, bn_ref, &c, R, n);
    snprintf(what, sizeof what, "batchnorm %s d bias", mode);
    expect_close(what, db, g, C, 1e-4);

    /* running statistics: momentum 0.1 toward the batch mean and unbiased variance */
    double nn = (double)B * HW, worst = 0;
    for (int ch = 0; ch < C; ch++) {
        double mu = 0, var = 0;
        for (int bb = 0; bb < B; bb++)
            for (int i = 0; i < HW; i++)
                mu += c.x[(bb * C + ch) * HW + i];
        mu /= nn;
        for (int bb = 0; bb < B; bb++)
            for (int i = 0; i < HW; i++)
                var += pow(c.x[(bb * C + ch) * HW + i] - mu, 2);
        double em = training ? 0.9 * rm0[ch] + 0.1 * mu : rm0[ch];
        double ev = training ? 0.9 * rv0[ch] + 0.1 * var / (nn - 1) : rv0[ch];
        worst = fmax(worst, fmax(fabs(rm[ch] - em), fabs(rv[ch] - ev) / ev));
    }
    printf("  %-40s max error %.3g\n", training ? "running stats update" : "running stats kept",
           worst);
    CHECK_MSG(worst <= 1e-6, "%s running statistics error %.3g", mode, worst);
    free(x), free(w), free(b), free(R), free(rm), free(rv), free(rm0), free(rv0), free(out);
    free(mean), free(rstd), free(dx), free(dw), free(db), free(c.x), free(c.w), free(c.b);
    free(c.rm), free(c.rv), free(ref), free(g);
}

/* ---- ReLU, max-pool, average pool ---- */
typedef struct { double *x; int B, C, H, W, Ho, Wo; } pool_ctx;

static void maxpool_ref(double *out, void *p)
{
    pool_ctx *c = p;
    for (int bc = 0; bc < c->B * c->C; bc++)
        for (int oy = 0; oy < c->Ho; oy++)
            for (int ox = 0; ox < c->Wo; ox++) {
                double best = -INFINITY;
                for (int iy = 2 * oy - 1; iy <= 2 * oy + 1; iy++)
                    for (int ix = 2 * ox - 1; ix <= 2 * ox + 1; ix++)
                        if (iy >= 0 && iy < c->H && ix >= 0 && ix < c->W)
                            best = fmax(best, c->x[(bc * c->H + iy) * c->W + ix]);
                out[(bc * c->Ho + oy) * c->Wo + ox] = best;
            }
}

static void avgpool_ref(double *out, void *p)
{
    pool_ctx *c = p;
    for (int bc = 0; bc < c->B * c->C; bc++) {
        double s = 0;
        for (int i = 0; i < c->H * c->W; i++)
            s += c->x[bc * c->H * c->W + i];
        out[bc] = s / (c->H * c->W);
    }
}

static void relu_ref(double *out, void *p)
{
    pool_ctx *c = p;
    for (int i = 0; i < c->B * c->C * c->H * c->W; i++)
        out[i] = fmax(c->x[i], 0.0);
}

static void test_pools(int B, int C, int H, int W)
{
    int Ho = (H - 1) / 2 + 1, Wo = (W - 1) / 2 + 1;
    size_t n = (size_t)B * C * H * W, no = (size_t)B * C * Ho * Wo, nbc = (size_t)B * C;
    /* distinct values 0.01 apart and none within 0.003 of 0: no max-pool ties
     * and no ReLU kink inside the finite-difference step */
    float *x = malloc(n * sizeof *x);
    int32_t *perm = malloc(n * sizeof *perm);
    sotu_rng_permutation(&rng, perm, (int32_t)n);
    for (size_t i = 0; i < n; i++)
        x[i] = 0.01f * (float)perm[i] - 0.005f * (float)n + 0.003f;
    float *R = randn(n, 1), *out = malloc(n * sizeof *out), *dx = randn(n, 1);
    int32_t *arg = malloc(no * sizeof *arg);
    pool_ctx c = {to_double(x, n), B, C, H, W, Ho, Wo};
    double *ref = malloc(n * sizeof *ref), *g = malloc(n * sizeof *g);

    resnet_maxpool_forward(out, arg, x, B, C, H, W, Ho, Wo);
    resnet_maxpool_backward(dx, R, arg, B, C, H, W, Ho, Wo);
    maxpool_ref(ref, &c);
    expect_close("max-pool 3x3/2 pad 1 forward", out, ref, no, 0.0);
    numeric_grad(g, c.x, n, maxpool_ref, &c, R, no);
    expect_close("max-pool 3x3/2 pad 1 d input", dx, g, n, 1e-4);

    resnet_avgpool_forward(out, x, B, C, H * W);
    resnet_avgpool_backward(dx, R, B, C, H * W);
    avgpool_ref(ref, &c);
    expect_close("global average pool forward", out, ref, nbc, 1e-5);
    numeric_grad(g, c.x, n, avgpool_ref, &c, R, nbc);
    expect_close("global average pool d input", dx, g, n, 1e-4);

    memcpy(out, x, n * sizeof *x);
    resnet_relu_forward(out, n);
    memcpy(dx, R, n * sizeof *dx);
    resnet_relu_backward(dx, out, n);
    relu_ref(ref, &c);
    expect_close("relu forward", out, ref, n, 0.0);
    numeric_grad(g, c.x, n, relu_ref, &c, R, n);
    expect_close("relu d input", dx, g, n, 1e-4);

    free(x), free(perm), free(R), free(out), free(dx), free(arg), free(c.x), free(ref), free(g);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 5;
    printf("seed %llu\n", (unsigned long long)seed);
    sotu_rng_init(&rng, seed, 0);

    test_conv(2, 3, 7, 6, 4, 3, 1, 1);
    test_conv(2, 3, 7, 6, 4, 3, 2, 1);
    test_conv(2, 2, 9, 8, 3, 7, 2, 3);
    test_conv(2, 3, 7, 6, 5, 1, 2, 0);
    test_conv(2, 3, 5, 4, 5, 1, 1, 0);
    test_dwconv(2, 3, 5, 6);
    test_dwconv(2, 2, 1, 1);
    test_dwconv(1, 2, 2, 3);
    test_batchnorm(true, 3, 4, 5);
    test_batchnorm(false, 3, 4, 5);
    test_batchnorm(true, 2, 3, 2);
    test_pools(2, 3, 7, 6);
    test_pools(1, 2, 8, 5);
    return check_finish("test_resnet_gradcheck");
}
