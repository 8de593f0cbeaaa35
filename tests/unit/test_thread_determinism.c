/* Results do not depend on the thread count: every ViT and ResNet kernel
 * whose work is split among threads (matrix products, LayerNorm, attention,
 * the patch embedding's gradients, convolutions, the CLR layer, BatchNorm,
 * gradient clipping, AdamW) gives bitwise the same output at 1, 2, 3 and 4
 * threads (more than this machine's cores is fine: only the split matters),
 * at sizes past the kernels' fixed tiles with ragged edges; and a few
 * training steps of a ViT (grad clipping on) and of a CLR ResNet end with
 * bitwise the same parameters at 1, 2, 3 and 4 threads.
 * Seed: argv[1] or 17. */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/rng.h"
#include "common/threads.h"
#include "worker/optim.h"
#include "worker/resnet.h"
#include "worker/resnet_internal.h"
#include "worker/vit.h"
#include "worker/nn.h"
#include "worker/vit_internal.h"

#define MAX_THREADS 4

static sotu_rng rng;

static float *randn(size_t n, float scale)
{
    float *x = malloc(n * sizeof *x);
    if (!x) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        x[i] = scale * sotu_rng_normal(&rng);
    return x;
}

static float *copy_of(const float *x, size_t n)
{
    float *y = malloc(n * sizeof *y);
    if (!y) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    memcpy(y, x, n * sizeof *y);
    return y;
}

/* Compares out (computed at nt threads) with ref (1 thread) bit for bit. */
static void expect_same(const char *what, int nt, const float *out, const float *ref, size_t n)
{
    size_t diff = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(out + i, ref + i, sizeof *out)) {
            if (!diff)
                first = i;
            diff++;
        }
    if (diff)
        printf("  %-28s %d threads: %zu of %zu differ (first [%zu]: %.9g vs %.9g)\n", what, nt,
               diff, n, first, (double)out[first], (double)ref[first]);
    CHECK_MSG(diff == 0, "%s at %d threads differs from 1 thread in %zu of %zu values", what, nt,
              diff, n);
}

/* ------------------------------------------------------------------------ */
/* ViT kernels                                                               */
/* ------------------------------------------------------------------------ */

static void test_matmul(int M, int In, int Out)
{
    printf("matmul M %d In %d Out %d\n", M, In, Out);
    float *x = randn((size_t)M * In, 1), *w = randn((size_t)Out * In, 1), *b = randn(Out, 1);
    float *res = randn((size_t)M * Out, 1), *dout = randn((size_t)M * Out, 1);
    float *dw0 = randn((size_t)Out * In, 1), *db0 = randn(Out, 1);
    float *wscratch = malloc((nn_matmul_scratch_floats(M, In, Out) + 1) * sizeof *wscratch);
    float *ref[4] = {0};
    for (int nt = 1; nt <= MAX_THREADS; nt++) {
        sotu_threads_set(nt);
        float *out = malloc((size_t)M * Out * sizeof *out), *dx = malloc((size_t)M * In * 4);
        float *dw = copy_of(dw0, (size_t)Out * In), *db = copy_of(db0, Out);
        nn_matmul_forward(out, x, w, b, res, M, In, Out);
        nn_matmul_backward(dx, dw, db, dout, x, w, wscratch, M, In, Out);
        float *got[4] = {out, dx, dw, db};
        size_t n[4] = {(size_t)M * Out, (size_t)M * In, (size_t)Out * In, (size_t)Out};
        const char *name[4] = {"matmul forward", "matmul d input", "matmul d weight",
                               "matmul d bias"};
        for (int k = 0; k < 4; k++) {
            if (nt == 1)
                ref[k] = got[k];
            else {
                expect_same(name[k], nt, got[k], ref[k], n[k]);
                free(got[k]);
            }
        }
    }
    for (int k = 0; k < 4; k++)
        free(ref[k]);
    free(x), free(w), free(b), free(res), free(dout), free(dw0), free(db0), free(wscratch);
}

static void test_layernorm(int M, int D)
{
    printf("layernorm M %d D %d\n", M, D);
    float *x = randn((size_t)M * D, 1), *w = randn(D, 1), *b = randn(D, 1);
    float *dout = randn((size_t)M * D, 1), *dx0 = randn((size_t)M * D, 1);
    float *dw0 = randn(D, 1), *db0 = randn(D, 1);
    float *ref[5] = {0};
    for (int nt = 1; nt <= MAX_THREADS; nt++) {
        sotu_threads_set(nt);
        float *out = malloc((size_t)M * D * 4), *mean = malloc((size_t)M * 4);
        float *rstd = malloc((size_t)M * 4), *dx = copy_of(dx0, (size_t)M * D);
        float *dw = copy_of(dw0, D), *db = copy_of(db0, D);
        vit_layernorm_forward(out, mean, rstd, x, w, b, M, D);
        vit_layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, M, D);
        free(mean), free(rstd);
        float *got[4] = {out, dx, dw, db};
        size_t n[4] = {(size_t)M * D, (size_t)M * D, (size_t)D, (size_t)D};
        const char *name[4] = {"layernorm forward", "layernorm d input", "layernorm d weight",
                               "layernorm d bias"};
        for (int k = 0; k < 4; k++) {
            if (nt == 1)
                ref[k] = got[k];
            else {
                expect_same(name[k], nt, got[k], ref[k], n[k]);
                free(got[k]);
            }
        }
    }
    for (int k = 0; k < 4; k++)
        free(ref[k]);
    free(x), free(w), free(b), free(dout), free(dx0), free(dw0), free(db0);
}

static void test_attention(int B, int T, int Tq, int D, int H)
{
    printf("attention B %d T %d Tq %d D %d H %d\n", B, T, Tq, D, H);
    size_t nqkv = (size_t)B * T * 3 * D, nout = (size_t)B * Tq * D, natt = (size_t)B * H * Tq * T;
    float *qkv = randn(nqkv, 1), *dout = randn(nout, 1);
    float *ref[3] = {0};
    for (int nt = 1; nt <= MAX_THREADS; nt++) {
        sotu_threads_set(nt);
        float *out = malloc(nout * 4), *att = malloc(natt * 4), *datt = malloc(natt * 4);
        float *dqkv = malloc(nqkv * 4);
        vit_attention_forward(out, att, qkv, B, T, Tq, D, H);
        vit_attention_backward(dqkv, datt, dout, qkv, att, B, T, Tq, D, H);
        free(datt);
        float *got[3] = {out, att, dqkv};
        size_t n[3] = {nout, natt, nqkv};
        const char *name[3] = {"attention forward", "attention probabilities",
                               "attention d qkv"};
        for (int k = 0; k < 3; k++) {
            if (nt == 1)
                ref[k] = got[k];
            else {
                expect_same(name[k], nt, got[k], ref[k], n[k]);
                free(got[k]);
            }
        }
    }
    for (int k = 0; k < 3; k++)
        free(ref[k]);
    free(qkv), free(dout);
}

static void test_embed(int B, int N, int CPP, int D)
{
    printf("patch embedding gradients B %d N %d CPP %d D %d\n", B, N, CPP, D);
    int T = N + 1;
    float *dx = randn((size_t)B * T * D, 1), *patches = randn((size_t)B * N * CPP, 1);
    float *dw0 = randn((size_t)D * CPP, 1), *db0 = randn(D, 1), *dcls0 = randn(D, 1);
    float *dpos0 = randn((size_t)T * D, 1);
    float *wscratch = malloc((nn_matmul_scratch_floats(B * N, CPP, D) + 1) * sizeof *wscratch);
    float *ref[4] = {0};
    for (int nt = 1; nt <= MAX_THREADS; nt++) {
        sotu_threads_set(nt);
        float *dw = copy_of(dw0, (size_t)D * CPP), *db = copy_of(db0, D);
        float *dcls = copy_of(dcls0, D), *dpos = copy_of(dpos0, (size_t)T * D);
        float *scratch = malloc((size_t)B * N * D * 4);
        vit_embed_backward(dw, db, dcls, dpos, scratch, wscratch, dx, patches, B, N, CPP, D);
        free(scratch);
        float *got[4] = {dw, db, dcls, dpos};
        size_t n[4] = {(size_t)D * CPP, (size_t)D, (size_t)D, (size_t)T * D};
        const char *name[4] = {"embed d weight", "embed d bias", "embed d cls", "embed d pos"};
        for (int k = 0; k < 4; k++) {
            if (nt == 1)
                ref[k] = got[k];
            else {
                expect_same(name[k], nt, got[k], ref[k], n[k]);
                free(got[k]);
            }
        }
    }
    for (int k = 0; k < 4; k++)
        free(ref[k]);
    free(dx), free(patches), free(dw0), free(db0), free(dcls0), free(dpos0), free(wscratch);
}

/* Gradient clipping (a global norm) and AdamW over a table of ragged
 * tensors, one large enough to be split among threads. */
static void test_optim(void)
{
    printf("clip_grad_norm + AdamW\n");
    sotu_tensor_table tab = {0};
    sotu_tensor_info t[3];
    memset(t, 0, sizeof t);
    tab.t = t;
    SOTU_TENSOR_ADD(&tab, "a.weight", 517, 1031);
    SOTU_TENSOR_ADD(&tab, "a.bias", 517);
    SOTU_TENSOR_ADD(&tab, "b.weight", 3, 70001);
    bool trainable[3] = {true, true, true};
    float *p0 = randn(tab.total, 1), *g0 = randn(tab.total, 1);
    float *ref_p = NULL, ref_norm = 0;
    for (int nt = 1; nt <= MAX_THREADS; nt++) {
        sotu_threads_set(nt);
        float *p = copy_of(p0, tab.total), *g = copy_of(g0, tab.total);
        optim_config oc = optim_config_default(OPTIM_ADAMW);
        optim_state o;
        CHECK(optim_init(&o, &oc, &tab, trainable) == SOTU_OK);
        float norm = optim_clip_grad_norm(&tab, trainable, g, 1.0f);
        optim_step(&o, p, g, 1e-3f);
        optim_step(&o, p, g, 1e-3f);
        optim_free(&o);
        free(g);
        if (nt == 1) {
            ref_p = p;
            ref_norm = norm;
        } else {
            CHECK_MSG(!memcmp(&norm, &ref_norm, sizeof norm),
                      "gradient norm at %d threads %.9g, at 1 thread %.9g", nt, (double)norm,
                      (double)ref_norm);
            expect_same("clip + AdamW parameters", nt, p, ref_p, tab.total);
            free(p);
        }
    }
    free(ref_p), free(p0), free(g0);
}

/* ------------------------------------------------------------------------ */
/* ResNet kernels                                                            */
/* ------------------------------------------------------------------------ */

static void test_conv(int B, int Ci, int H, int W, int Co, int k, int stride, int pad)
{
    resnet_conv_shape s = resnet_conv_shape_make(Ci, H, W, Co, k, stride, pad);
    printf("conv B %d, %d->%d, %dx%d, k %d/%d pad %d\n", B, Ci, Co, H, W, k, stride, pad);
    size_t nx = (size_t)B * Ci * H * W, nw = (size_t)Co * Ci * k * k;
    size_t no = (size_t)B * Co * s.Ho * s.Wo;
    float *x = randn(nx, 1), *w = randn(nw, 1), *dout = randn(no, 1), *dw0 = randn(nw, 1);
    float *ref[3] = {0};
    for (int nt = 1; nt <= MAX_THREADS; nt++) {
        sotu_threads_set(nt);
        float *scratch = malloc(resnet_conv_scratch_floats(&s, nt) * sizeof(float));
        float *out = malloc(no * 4), *dx = malloc(nx * 4), *dw = copy_of(dw0, nw);
        resnet_conv_forward(out, x, w, scratch, &s, B);
        resnet_conv_backward(dx, dw, dout, x, w, scratch, &s, B);
        free(scratch);
        float *got[3] = {out, dx, dw};
        size_t n[3] = {no, nx, nw};
        const char *name[3] = {"conv forward", "conv d input", "conv d weight"};
        for (int j = 0; j < 3; j++) {
            if (nt == 1)
                ref[j] = got[j];
            else {
                expect_same(name[j], nt, got[j], ref[j], n[j]);
                free(got[j]);
            }
        }
    }
    for (int j = 0; j < 3; j++)
        free(ref[j]);
    free(x), free(w), free(dout), free(dw0);
}

static void test_dwconv_batchnorm(int B, int C, int H, int W)
{
    printf("CLR depthwise conv and BatchNorm B %d C %d %dx%d\n", B, C, H, W);
    size_t n = (size_t)B * C * H * W;
    float *x = randn(n, 1), *k = randn((size_t)C * 9, 1), *dout = randn(n, 1);
    float *dk0 = randn((size_t)C * 9, 1), *bw = randn(C, 1), *bb = randn(C, 1);
    float *ref[4] = {0};
    for (int nt = 1; nt <= MAX_THREADS; nt++) {
        sotu_threads_set(nt);
        float *scratch = malloc(resnet_dwconv_scratch_floats(B, C, H, W, nt) * sizeof(float));
        float *out = malloc(n * 4), *dx = malloc(n * 4), *dk = copy_of(dk0, (size_t)C * 9);
        resnet_dwconv_forward(out, x, k, B, C, H, W);
        resnet_dwconv_backward(dx, dk, dout, x, k, scratch, B, C, H, W);
        free(scratch);
        float *bn = malloc(n * 4), *mean = malloc((size_t)C * 4), *rstd = malloc((size_t)C * 4);
        float *rm = calloc((size_t)C, 4), *rv = calloc((size_t)C, 4);
        float *dbw = calloc((size_t)C, 4), *dbb = calloc((size_t)C, 4), *dbx = malloc(n * 4);
        resnet_batchnorm_forward(bn, mean, rstd, x, bw, bb, rm, rv, true, 0.1f, B, C, H * W);
        resnet_batchnorm_backward(dbx, dbw, dbb, dout, x, bw, mean, rstd, true, B, C, H * W);
        free(mean), free(rstd), free(rm), free(rv), free(dbw), free(dbb);
        float *got[4] = {dx, dk, bn, dbx};
        size_t cnt[4] = {n, (size_t)C * 9, n, n};
        const char *name[4] = {"dwconv d input", "dwconv d weight", "batchnorm forward",
                               "batchnorm d input"};
        free(out);
        for (int j = 0; j < 4; j++) {
            if (nt == 1)
                ref[j] = got[j];
            else {
                expect_same(name[j], nt, got[j], ref[j], cnt[j]);
                free(got[j]);
            }
        }
    }
    for (int j = 0; j < 4; j++)
        free(ref[j]);
    free(x), free(k), free(dout), free(dk0), free(bw), free(bb);
}

/* ------------------------------------------------------------------------ */
/* Whole models: a few training steps                                        */
/* ------------------------------------------------------------------------ */

#define STEPS 3

static void test_vit_training(void)
{
    /* bench's tiny model, 2 blocks, 24 images (T = 50: 1,200 token rows) */
    vit_config c = {28, 1, 4, 96, 2, 3, 384, 10};
    int B = 24;
    printf("ViT training, %d steps of %d images\n", STEPS, B);
    size_t img = (size_t)c.channels * c.image_size * c.image_size;
    float *x = randn(img * B, 1);
    int32_t y[24];
    for (int b = 0; b < B; b++)
        y[b] = (int32_t)sotu_rng_below(&rng, (uint64_t)c.classes);
    float *ref = NULL;
    size_t n = 0;
    for (int nt = 1; nt <= MAX_THREADS; nt++) {
        sotu_threads_set(nt);
        vit_model m;
        CHECK(vit_init(&m, &c, B) == SOTU_OK);
        vit_init_random(&m, 5);
        optim_config oc = optim_config_default(OPTIM_ADAMW);
        optim_state o;
        CHECK(optim_init(&o, &oc, &m.table, m.trainable) == SOTU_OK);
        for (int s = 0; s < STEPS; s++) {
            vit_zero_grad(&m);
            vit_forward(&m, x, y, B);
            vit_backward(&m);
            optim_clip_grad_norm(&m.table, m.trainable, m.grads, 0.5f);
            optim_step(&o, m.params, m.grads, 1e-3f);
        }
        optim_free(&o);
        if (nt == 1) {
            n = m.num_params;
            ref = copy_of(m.params, n);
        } else {
            expect_same("ViT parameters", nt, m.params, ref, n);
        }
        vit_free(&m);
    }
    free(ref), free(x);
}

static void test_resnet_training(void)
{
    resnet_config c = {18, 8, 1, 28, 10, true, RESNET_CLR_CONV3};
    int B = 10;
    printf("CLR ResNet-18 training, %d steps of %d images\n", STEPS, B);
    size_t img = (size_t)c.channels * c.image_size * c.image_size;
    float *x = randn(img * B, 1);
    int32_t y[10];
    for (int b = 0; b < B; b++)
        y[b] = (int32_t)sotu_rng_below(&rng, (uint64_t)c.classes);
    float *ref = NULL, *ref_run = NULL;
    size_t n = 0, nrun = 0;
    for (int nt = 1; nt <= MAX_THREADS; nt++) {
        sotu_threads_set(nt);
        resnet_model m;
        CHECK(resnet_init(&m, &c, B) == SOTU_OK);
        resnet_init_random(&m, 5);
        CHECK(resnet_set_trainable(&m, "all") == SOTU_OK);
        optim_config oc = optim_config_default(OPTIM_ADAMW);
        optim_state o;
        CHECK(optim_init(&o, &oc, &m.table, m.trainable) == SOTU_OK);
        for (int s = 0; s < STEPS; s++) {
            resnet_zero_grad(&m);
            resnet_forward(&m, x, y, B);
            resnet_backward(&m);
            optim_clip_grad_norm(&m.table, m.trainable, m.grads, 0.5f);
            optim_step(&o, m.params, m.grads, 1e-3f);
        }
        optim_free(&o);
        if (nt == 1) {
            n = m.num_params;
            nrun = m.buffers.total;
            ref = copy_of(m.params, n);
            ref_run = copy_of(m.running, nrun);
        } else {
            expect_same("ResNet parameters", nt, m.params, ref, n);
            expect_same("ResNet running statistics", nt, m.running, ref_run, nrun);
        }
        resnet_free(&m);
    }
    free(ref), free(ref_run), free(x);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 17;
    printf("seed %llu\n", (unsigned long long)seed);
    sotu_rng_init(&rng, seed, 0);

    test_matmul(1201, 96, 288);  /* qkv of 24 tiny images */
    test_matmul(1201, 384, 96);  /* fc2 */
    test_matmul(333, 200, 1000); /* a head */
    test_matmul(7, 33, 5);
    test_matmul(40, 1024, 1000); /* column tiles, weight gradient tiled */
    test_layernorm(1201, 96);
    test_layernorm(9, 768);
    test_attention(5, 50, 50, 96, 3);
    test_attention(5, 50, 1, 96, 3);
    test_embed(24, 49, 16, 96);
    test_embed(40, 16, 192, 96); /* weight gradient over row chunks */
    test_optim();
    test_conv(10, 8, 28, 28, 8, 3, 1, 1);
    test_conv(10, 16, 14, 14, 32, 3, 2, 1);
    test_conv(10, 16, 14, 14, 32, 1, 2, 0);
    test_conv(9, 16, 7, 7, 16, 1, 1, 0);
    test_dwconv_batchnorm(10, 8, 28, 28);
    test_vit_training();
    test_resnet_training();
    sotu_threads_set(1);
    return check_finish("test_thread_determinism");
}
