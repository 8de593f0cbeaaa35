/* The ResNet's im2col + sgemm convolution against a naive seven-deep loop
 * in double, at odd sizes and every shape the network uses (3x3/1, 3x3/2,
 * 7x7/2 pad 3, 1x1/2 and the 1x1/1 path that skips im2col), under 1 and 2
 * threads with more images than threads: forward, input gradient
 * (overwritten) and weight gradient (which must ADD onto what is there);
 * the CLR depthwise convolution against its naive loop the same way (at
 * 1-wide and 1-high planes too), its two gradients alone equal to both at
 * once and its weight gradient bit-identical under another thread count; and
 * im2col / col2im as adjoints (<col2im(c), x> = <c, im2col(x)>).
 * Seed: argv[1] or 13. */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/rng.h"
#include "common/threads.h"
#include "worker/resnet_internal.h"

static sotu_rng rng;

static float *randn(size_t n, float scale)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * sotu_rng_normal(&rng);
    return x;
}

static void expect_close(const char *what, const float *fast, const double *naive, size_t n,
                         double tol)
{
    double err = 0.0, ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(fast[i] - naive[i]);
        err = e > err || e != e ? e : err;
        ref = fmax(ref, fabs(naive[i]));
    }
    double rel = ref > 0 ? err / ref : err;
    printf("    %-26s max rel error %.3g\n", what, rel);
    CHECK_MSG(rel <= tol, "%s: relative error %.3g > %.g", what, rel, tol);
}

static void test_conv(int B, int Ci, int H, int W, int Co, int k, int stride, int pad)
{
    resnet_conv_shape s = resnet_conv_shape_make(Ci, H, W, Co, k, stride, pad);
    printf("  conv B %d, %d->%d, %dx%d, k %d/%d pad %d -> %dx%d\n", B, Ci, Co, H, W, k, stride,
           pad, s.Ho, s.Wo);
    size_t nx = (size_t)B * Ci * H * W, nw = (size_t)Co * Ci * k * k;
    size_t no = (size_t)B * Co * s.Ho * s.Wo;
    float *x = randn(nx, 1), *w = randn(nw, 1), *dout = randn(no, 1), *dw0 = randn(nw, 1);
    float *out = malloc(no * sizeof *out), *dx = randn(nx, 1), *dw = malloc(nw * sizeof *dw);
    float *scratch = malloc(resnet_conv_scratch_floats(&s, omp_get_max_threads()) * sizeof(float));
    double *ref = calloc(no > nx ? (no > nw ? no : nw) : (nx > nw ? nx : nw), sizeof *ref);
    double *rdx = calloc(nx, sizeof *rdx), *rdw = calloc(nw, sizeof *rdw);
    memcpy(dw, dw0, nw * sizeof *dw);
    for (size_t i = 0; i < nw; i++)
        rdw[i] = dw0[i];
    for (int b = 0; b < B; b++)
        for (int o = 0; o < Co; o++)
            for (int oy = 0; oy < s.Ho; oy++)
                for (int ox = 0; ox < s.Wo; ox++) {
                    size_t oi = (((size_t)b * Co + o) * s.Ho + oy) * s.Wo + ox;
                    double sum = 0;
                    for (int i = 0; i < Ci; i++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                    continue;
                                size_t xi = (((size_t)b * Ci + i) * H + iy) * W + ix;
                                size_t wi = (((size_t)o * Ci + i) * k + ky) * k + kx;
                                sum += (double)w[wi] * x[xi];
                                rdx[xi] += (double)w[wi] * dout[oi];
                                rdw[wi] += (double)dout[oi] * x[xi];
                            }
                    ref[oi] = sum;
                }
    resnet_conv_forward(out, x, w, scratch, &s, B);
    expect_close("forward", out, ref, no, 1e-5);
    resnet_conv_backward(dx, dw, dout, x, w, scratch, &s, B);
    expect_close("d input (overwritten)", dx, rdx, nx, 1e-5);
    expect_close("d weight (added)", dw, rdw, nw, 1e-5);
    free(x), free(w), free(dout), free(dw0), free(out), free(dx), free(dw), free(scratch);
    free(ref), free(rdx), free(rdw);
}

static void test_dwconv(int B, int C, int H, int W)
{
    printf("  depthwise B %d, C %d, %dx%d\n", B, C, H, W);
    size_t n = (size_t)B * C * H * W, nw = (size_t)C * 9;
    float *x = randn(n, 1), *w = randn(nw, 1), *dout = randn(n, 1), *dw0 = randn(nw, 1);
    float *out = malloc(n * sizeof *out), *dx = randn(n, 1), *dw = malloc(nw * sizeof *dw);
    double *ref = calloc(n, sizeof *ref), *rdx = calloc(n, sizeof *rdx);
    double *rdw = calloc(nw, sizeof *rdw);
    memcpy(dw, dw0, nw * sizeof *dw);
    for (size_t i = 0; i < nw; i++)
        rdw[i] = dw0[i];
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++) {
                    size_t oi = (((size_t)b * C + c) * H + y) * W + xx;
                    for (int i = 0; i < 3; i++)
                        for (int j = 0; j < 3; j++) {
                            int iy = y + i - 1, ix = xx + j - 1;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                continue;
                            size_t xi = (((size_t)b * C + c) * H + iy) * W + ix;
                            ref[oi] += (double)w[c * 9 + i * 3 + j] * x[xi];
                            rdx[xi] += (double)w[c * 9 + i * 3 + j] * dout[oi];
                            rdw[c * 9 + i * 3 + j] += (double)dout[oi] * x[xi];
                        }
                }
    float *scratch =
        malloc(resnet_dwconv_scratch_floats(B, C, H, W, omp_get_max_threads()) * sizeof *scratch);
    resnet_dwconv_forward(out, x, w, B, C, H, W);
    expect_close("forward", out, ref, n, 1e-5);
    resnet_dwconv_backward(dx, dw, dout, x, w, scratch, B, C, H, W);
    expect_close("d input (overwritten)", dx, rdx, n, 1e-5);
    expect_close("d weight (added)", dw, rdw, nw, 1e-5);
    /* each gradient alone gives the same bits */
    float *dx1 = malloc(n * sizeof *dx1), *dw1 = malloc(nw * sizeof *dw1);
    memcpy(dw1, dw0, nw * sizeof *dw1);
    resnet_dwconv_backward(dx1, NULL, dout, x, w, scratch, B, C, H, W);
    resnet_dwconv_backward(NULL, dw1, dout, x, w, scratch, B, C, H, W);
    CHECK(!memcmp(dx1, dx, n * sizeof *dx));
    CHECK(!memcmp(dw1, dw, nw * sizeof *dw));
    /* the weight gradient's bits do not depend on the thread count */
    int threads = omp_get_max_threads();
    sotu_threads_set(threads == 1 ? 3 : 1);
    float *scratch2 =
        malloc(resnet_dwconv_scratch_floats(B, C, H, W, omp_get_max_threads()) * sizeof *scratch);
    memcpy(dw1, dw0, nw * sizeof *dw1);
    resnet_dwconv_backward(dx1, dw1, dout, x, w, scratch2, B, C, H, W);
    sotu_threads_set(threads);
    CHECK(!memcmp(dx1, dx, n * sizeof *dx));
    CHECK(!memcmp(dw1, dw, nw * sizeof *dw));
    free(x), free(w), free(dout), free(dw0), free(out), free(dx), free(dw);
    free(ref), free(rdx), free(rdw), free(scratch), free(scratch2), free(dx1), free(dw1);
}

static void test_adjoint(int Ci, int H, int W, int k, int stride, int pad)
{
    resnet_conv_shape s = resnet_conv_shape_make(Ci, H, W, 1, k, stride, pad);
    size_t nx = (size_t)Ci * H * W, nc = (size_t)Ci * k * k * s.Ho * s.Wo;
    float *x = randn(nx, 1), *c = randn(nc, 1), *colx = malloc(nc * sizeof *colx);
    float *img = calloc(nx, sizeof *img);
    resnet_im2col(colx, x, &s);
    resnet_col2im(img, c, &s);
    double a = 0, b = 0;
    for (size_t i = 0; i < nc; i++)
        a += (double)c[i] * colx[i];
    for (size_t i = 0; i < nx; i++)
        b += (double)img[i] * x[i];
    printf("  im2col/col2im adjoint k %d/%d pad %d: %.9g vs %.9g\n", k, stride, pad, a, b);
    CHECK_NEAR(a, b, 1e-4 * fabs(a));
    free(x), free(c), free(colx), free(img);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 13;
    printf("seed %llu\n", (unsigned long long)seed);
    sotu_rng_init(&rng, seed, 0);
    for (int threads = 1; threads <= 2; threads++) {
        printf("-- %d thread(s)\n", threads);
        sotu_threads_set(threads);
        test_conv(3, 3, 11, 9, 5, 3, 1, 1);
        test_conv(5, 4, 11, 10, 6, 3, 2, 1);
        test_conv(3, 3, 17, 15, 8, 7, 2, 3);
        test_conv(3, 5, 9, 7, 7, 1, 2, 0);
        test_conv(3, 5, 6, 7, 4, 1, 1, 0);
        test_conv(1, 2, 1, 1, 3, 3, 1, 1);
        test_dwconv(3, 5, 7, 9);
        test_dwconv(2, 3, 1, 1);
        test_dwconv(2, 2, 2, 5);
        test_dwconv(2, 3, 1, 6);
        test_dwconv(2, 3, 5, 1);
        test_dwconv(2, 2, 3, 2);
        test_dwconv(5, 4, 28, 28);
        test_dwconv(3, 6, 4, 4);
    }
    test_adjoint(3, 7, 6, 3, 2, 1);
    test_adjoint(2, 9, 9, 7, 2, 3);
    return check_finish("test_resnet_kernels");
}
