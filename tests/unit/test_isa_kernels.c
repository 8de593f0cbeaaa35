/* Every kernel compiled per ISA level (common/isa.h), run at every level this
 * CPU supports and compared with the scalar level bit for bit (every level
 * must give the same bits: no FMA contraction, reductions in fixed lanes):
 * the ViT's LayerNorm, GELU and attention softmax (forward and backward),
 * AdamW and SGD, the ResNet's BatchNorm, depthwise convolution and col2im,
 * the mask lister, the delta codec (byte shuffles, f32 and bf16) and the
 * merge (sum, streaming and scattered). Inputs are random (the seed is
 * printed; argv: [--seed S] [--bench [REPS]]) plus NaN, infinities, zeros
 * of both signs and subnormals where the kernel is element-wise.
 * --bench also times each kernel at each level (best of REPS calls). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>
#include <zstd.h>

#include "check.h"
#include "common/isa.h"
#include "common/mask.h"
#include "common/rng.h"
#include "coordinator/merge.h"
#include "delta_fixture.h"
#include "io/delta.h"
#include "worker/delta_extract.h"
#include "worker/optim.h"
#include "worker/resnet_internal.h"
#include "worker/vit_internal.h"

/* ---------------------------------------------------------------- buffers */

/* A case's state: its buffers (all freed by the harness), the first n_out
 * of them compared after a run, and whatever else it keeps. */
typedef struct {
    void *buf[24];
    size_t bytes[24];
    int n_buf, n_out;
    int dims[8];
    optim_state opt;
    sotu_tensor_table tab;
    sotu_delta deltas[4];
    int n_deltas;
    float *theta0; /* [tab.total] of the deltas */
} ctx;

static sotu_rng rng;

static void *add_buf(ctx *c, size_t bytes)
{
    /* 64-byte aligned, as the models' weight blocks */
    size_t size = (bytes + 64 + 63) / 64 * 64;
    void *p = c->n_buf < 24 ? aligned_alloc(64, size) : NULL;
    if (p)
        memset(p, 0, size);
    if (!p) {
        fprintf(stderr, "test_isa_kernels: out of memory (%zu bytes) or buffers\n", bytes);
        exit(1);
    }
    c->buf[c->n_buf] = p;
    c->bytes[c->n_buf++] = bytes;
    return p;
}

/* n normal floats times scale; with specials, some entries are replaced by
 * NaN, +-inf, +-0, subnormals and large values. */
static float *randn(ctx *c, size_t n, float scale, bool specials)
{
    float *x = add_buf(c, n * sizeof *x);
    static const float special[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-40f, -1e-41f,
                                    30.0f, -30.0f, 100.0f, -100.0f, 5.5f, -5.5f};
    for (size_t i = 0; i < n; i++)
        x[i] = scale * sotu_rng_normal(&rng);
    if (specials)
        for (size_t i = 0; i < n; i += 97)
            x[i] = special[(i / 97) % (sizeof special / sizeof special[0])];
    return x;
}

/* ------------------------------------------------------------------ cases */

/* Shapes: odd ones to test (tails of lanes and spans); --bench sets the
 * ViT's and ResNet's (bench_shapes). LayerNorm: D a multiple of 16 and D
 * with a tail. */
static int LN_M = 37, LN_D[2] = {192, 197};

static void ln_setup(ctx *c)
{
    for (int s = 0; s < 2; s++) {
        size_t md = (size_t)LN_M * LN_D[s];
        add_buf(c, md * sizeof(float));          /* out */
        add_buf(c, LN_M * sizeof(float));        /* mean */
        add_buf(c, LN_M * sizeof(float));        /* rstd */
        add_buf(c, md * sizeof(float));          /* dinp (added to) */
        add_buf(c, 2 * LN_D[s] * sizeof(float)); /* dw, db (added to) */
    }
    c->n_out = c->n_buf;
    for (int s = 0; s < 2; s++) {
        size_t md = (size_t)LN_M * LN_D[s];
        float *x = randn(c, md, 2.0f, false);
        for (size_t i = 0; i < md; i++)
            x[i] += 3.0f; /* a mean to subtract */
        randn(c, md, 1.0f, false);             /* dout */
        randn(c, 2 * LN_D[s], 1.0f, false);    /* w, b */
    }
    for (int s = 0; s < 2; s++) { /* accumulators start from random values */
        size_t md = (size_t)LN_M * LN_D[s];
        for (size_t i = 0; i < md; i++)
            ((float *)c->buf[5 * s + 3])[i] = sotu_rng_normal(&rng);
    }
}

static void ln_run(ctx *c)
{
    for (int s = 0; s < 2; s++) {
        int D = LN_D[s];
        float **o = (float **)&c->buf[5 * s];
        float *x = c->buf[c->n_out + 3 * s], *dout = c->buf[c->n_out + 3 * s + 1];
        float *wb = c->buf[c->n_out + 3 * s + 2];
        vit_layernorm_forward(o[0], o[1], o[2], x, wb, wb + D, LN_M, D);
        vit_layernorm_backward(o[3], o[4], o[4] + D, dout, x, wb, o[1], o[2], LN_M, D);
        vit_layernorm_backward(o[3], NULL, NULL, dout, x, wb, o[1], o[2], LN_M, D);
    }
}

static int GELU_N = 3 * 4096 + 77;

static void gelu_setup(ctx *c)
{
    add_buf(c, GELU_N * sizeof(float)); /* out */
    add_buf(c, GELU_N * sizeof(float)); /* deriv, over a copy of the input */
    add_buf(c, GELU_N * sizeof(float)); /* dinp */
    c->n_out = 3;
    randn(c, GELU_N, 3.0f, true);  /* inp */
    randn(c, GELU_N, 1.0f, false); /* dout */
}

static void gelu_run(ctx *c)
{
    float *out = c->buf[0], *deriv = c->buf[1], *dinp = c->buf[2];
    memcpy(deriv, c->buf[3], GELU_N * sizeof(float));
    vit_gelu_forward(out, deriv, deriv, GELU_N); /* in place, as vit.c calls it */
    vit_gelu_backward(dinp, deriv, c->buf[4], GELU_N);
}

/* B, T, Tq, D, H: T with a tail of lanes, the last block's Tq = 1, T = 197. */
static int ATT[3][5] = {{2, 17, 17, 48, 3}, {2, 17, 1, 48, 3}, {1, 197, 197, 64, 2}};

static void att_setup(ctx *c)
{
    for (int s = 0; s < 3; s++) {
        int B = ATT[s][0], T = ATT[s][1], Tq = ATT[s][2], D = ATT[s][3], H = ATT[s][4];
        add_buf(c, (size_t)B * Tq * D * sizeof(float));     /* out */
        add_buf(c, (size_t)B * H * Tq * T * sizeof(float)); /* att */
        add_buf(c, (size_t)B * T * 3 * D * sizeof(float));  /* dqkv */
    }
    c->n_out = c->n_buf;
    for (int s = 0; s < 3; s++) {
        int B = ATT[s][0], T = ATT[s][1], Tq = ATT[s][2], D = ATT[s][3], H = ATT[s][4];
        randn(c, (size_t)B * T * 3 * D, 1.5f, false); /* qkv */
        randn(c, (size_t)B * Tq * D, 1.0f, false);    /* dout */
        add_buf(c, (size_t)B * H * Tq * T * sizeof(float)); /* datt scratch */
    }
}

static void att_run(ctx *c)
{
    for (int s = 0; s < 3; s++) {
        int B = ATT[s][0], T = ATT[s][1], Tq = ATT[s][2], D = ATT[s][3], H = ATT[s][4];
        float *qkv = c->buf[c->n_out + 3 * s], *dout = c->buf[c->n_out + 3 * s + 1];
        vit_attention_forward(c->buf[3 * s], c->buf[3 * s + 1], qkv, B, T, Tq, D, H);
        vit_attention_backward(c->buf[3 * s + 2], c->buf[c->n_out + 3 * s + 2], dout, qkv,
                               c->buf[3 * s + 1], B, T, Tq, D, H);
    }
}

/* Parameters of three tensors, one big enough for the threaded blocks. */
static sotu_tensor_info optim_infos[3] = {
    {.name = "blocks.0.w", .ndim = 2, .shape = {300, 301}, .offset = 0, .count = 90300},
    {.name = "blocks.0.b", .ndim = 1, .shape = {77}, .offset = 90300, .count = 77},
    {.name = "pos_embed", .ndim = 3, .shape = {1, 5, 3}, .offset = 90377, .count = 15},
};
enum { OPT_N = 90392 };

static void optim_setup_kind(ctx *c, optim_kind kind)
{
    c->tab = (sotu_tensor_table){.n = 3, .t = optim_infos, .total = OPT_N};
    randn(c, OPT_N, 0.1f, false); /* params: the output */
    c->n_out = 1;
    for (int step = 0; step < 3; step++)
        randn(c, OPT_N, 0.01f, false); /* gradients */
    bool trainable[3] = {true, true, true};
    optim_config cfg = optim_config_default(kind);
    cfg.weight_decay = 0.05f;
    CHECK(optim_init(&c->opt, &cfg, &c->tab, trainable) == SOTU_OK);
}

static void adamw_setup(ctx *c) { optim_setup_kind(c, OPTIM_ADAMW); }
static void sgd_setup(ctx *c) { optim_setup_kind(c, OPTIM_SGD); }

static void optim_run(ctx *c)
{
    for (int step = 0; step < 3; step++)
        optim_step(&c->opt, c->buf[0], c->buf[1 + step], 1e-3f * (float)(step + 1));
}

/* B, C, HW with a tail; the eval path too. */
static int BN_B = 3, BN_C = 5, BN_HW = 7 * 7;

static void bn_setup(ctx *c)
{
    size_t n = (size_t)BN_B * BN_C * BN_HW;
    add_buf(c, n * sizeof(float));        /* out (training) */
    add_buf(c, n * sizeof(float));        /* out (eval) */
    add_buf(c, 4 * BN_C * sizeof(float)); /* mean, rstd, dw, db */
    add_buf(c, n * sizeof(float));        /* dinp */
    float *run = add_buf(c, 2 * BN_C * sizeof(float)); /* running mean, var */
    c->n_out = c->n_buf;
    for (int i = 0; i < BN_C; i++)
        run[BN_C + i] = 1.0f;
    float *x = randn(c, n, 2.0f, false);
    for (size_t i = 0; i < n; i++)
        x[i] += 1.0f;
    randn(c, n, 1.0f, false);          /* dout */
    randn(c, 2 * BN_C, 1.0f, false);   /* w, b */
}

static void bn_run(ctx *c)
{
    float *st = c->buf[2], *run = c->buf[4];
    float *x = c->buf[5], *dout = c->buf[6], *wb = c->buf[7];
    resnet_batchnorm_forward(c->buf[0], st, st + BN_C, x, wb, wb + BN_C, run, run + BN_C, true,
                             0.1f, BN_B, BN_C, BN_HW);
    resnet_batchnorm_backward(c->buf[3], st + 2 * BN_C, st + 3 * BN_C, dout, x, wb, st,
                              st + BN_C, true, BN_B, BN_C, BN_HW);
    float est[2 * 64];
    resnet_batchnorm_forward(c->buf[1], est, est + BN_C, x, wb, wb + BN_C, run, run + BN_C,
                             false, 0.1f, BN_B, BN_C, BN_HW);
}

/* Depthwise 3x3: a plane with an interior and a 1-wide one. */
static int DW[2][4] = {{2, 3, 9, 21}, {1, 2, 5, 1}};

static void dw_setup(ctx *c)
{
    for (int s = 0; s < 2; s++) {
        size_t n = (size_t)DW[s][0] * DW[s][1] * DW[s][2] * DW[s][3];
        add_buf(c, n * sizeof(float));             /* out */
        add_buf(c, n * sizeof(float));             /* dinp */
        add_buf(c, (size_t)DW[s][1] * 9 * sizeof(float)); /* dw (added to) */
    }
    c->n_out = c->n_buf;
    for (int s = 0; s < 2; s++) {
        int B = DW[s][0], C = DW[s][1], H = DW[s][2], W = DW[s][3];
        size_t n = (size_t)B * C * H * W;
        randn(c, n, 1.0f, false);         /* inp */
        randn(c, n, 1.0f, false);         /* dout */
        randn(c, (size_t)C * 9, 0.5f, false); /* w */
        add_buf(c, resnet_dwconv_scratch_floats(B, C, H, W, omp_get_max_threads()) *
                       sizeof(float));
    }
}

static void dw_run(ctx *c)
{
    for (int s = 0; s < 2; s++) {
        int B = DW[s][0], C = DW[s][1], H = DW[s][2], W = DW[s][3];
        float **in = (float **)&c->buf[c->n_out + 4 * s];
        resnet_dwconv_forward(c->buf[3 * s], in[0], in[2], B, C, H, W);
        resnet_dwconv_backward(c->buf[3 * s + 1], c->buf[3 * s + 2], in[1], in[0], in[2], in[3],
                               B, C, H, W);
    }
}

static int COL_C = 3, COL_H = 11, COL_W = 13;

static resnet_conv_shape col_shape(int s)
{
    return resnet_conv_shape_make(COL_C, COL_H, COL_W, 4, 3, s + 1, 1);
}

static void col_setup(ctx *c)
{
    for (int s = 0; s < 2; s++) {
        resnet_conv_shape sh = col_shape(s);
        randn(c, (size_t)sh.Ci * sh.H * sh.W, 1.0f, false); /* img, added to */
    }
    c->n_out = 2;
    for (int s = 0; s < 2; s++) {
        resnet_conv_shape sh = col_shape(s);
        randn(c, (size_t)sh.Ci * sh.k * sh.k * sh.Ho * sh.Wo, 1.0f, false);
    }
}

static void col_run(ctx *c)
{
    for (int s = 0; s < 2; s++) {
        resnet_conv_shape sh = col_shape(s);
        resnet_col2im(c->buf[s], c->buf[2 + s], &sh);
    }
}

/* Masks of 3 sizes at 3 keeps (words, and pairs below 2/64). */
static const double MASK_KEEP[3] = {0.2, 1.0 / 53, 0.001};
static const uint64_t MASK_N[3] = {64 * 8 * 37 + 5, 100000, 3};

static void mask_setup(ctx *c)
{
    for (int k = 0; k < 3; k++) {
        size_t room = 0;
        for (int s = 0; s < 3; s++) {
            sotu_mask m = sotu_mask_of(7, 3, (uint32_t)(k * 3 + s), MASK_N[s], MASK_KEEP[k]);
            room += (size_t)sotu_mask_kept_max(&m) + SOTU_MASK_SLACK;
        }
        add_buf(c, room * sizeof(uint32_t));
    }
    c->n_out = 3;
}

static void mask_run(ctx *c)
{
    for (int k = 0; k < 3; k++) {
        uint32_t *out = c->buf[k];
        size_t at = 0;
        for (int s = 0; s < 3; s++) {
            sotu_mask m = sotu_mask_of(7, 3, (uint32_t)(k * 3 + s), MASK_N[s], MASK_KEEP[k]);
            uint64_t most = sotu_mask_kept_max(&m);
            uint64_t got = sotu_mask_list(&m, out + at, most);
            CHECK(got <= most);
            at += (size_t)most + SOTU_MASK_SLACK;
        }
    }
}

/* Deltas of a small ViT-shaped model: two f32 at keep 0.3, one at keep 1,
 * one bf16, extracted once per setup (the extraction is not dispatched). */
static void deltas_setup(ctx *c)
{
    c->tab = fixture_table(24);
    c->theta0 = malloc(c->tab.total * sizeof(float));
    float *thetat = malloc(c->tab.total * sizeof(float));
    CHECK(c->theta0 && thetat);
    fixture_perturb(&c->tab, NULL, c->theta0, 99, 0.02f);
    c->n_deltas = 4;
    for (int t = 0; t < 4; t++) {
        fixture_perturb(&c->tab, c->theta0, thetat, 100 + (uint64_t)t, 1e-3f);
        char name[16];
        snprintf(name, sizeof name, "t%d", t);
        sotu_extract_opts o = {.task_index = (uint32_t)t, .task_name = name, .seed = 5,
                               .keep = t == 2 ? 1.0 : 0.3, .rescale = t == 1,
                               .dtype = t == 3 ? SOTU_DELTA_BF16 : SOTU_DELTA_F32,
                               .prov = fixture_provenance()};
        CHECK_MSG(sotu_delta_extract(&c->tab, c->theta0, thetat, &o, &c->deltas[t]) == SOTU_OK,
                  "%s", sotu_last_error());
    }
    free(thetat);
}

/* Outputs: each delta encoded, then its values decoded again. */
static void codec_setup(ctx *c)
{
    deltas_setup(c);
    size_t enc = 0, vals = 0;
    for (int t = 0; t < 4; t++) {
        enc += sotu_delta_encode_bound(&c->deltas[t]);
        for (int i = 0; i < c->deltas[t].n_tensors; i++)
            vals += (size_t)c->deltas[t].tensors[i].kept;
    }
    add_buf(c, enc);
    add_buf(c, vals * sizeof(float));
    c->n_out = 2;
}

static void codec_run(ctx *c)
{
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    uint8_t *enc = c->buf[0];
    float *vals = c->buf[1];
    for (int t = 0; t < 4; t++) {
        size_t cap = sotu_delta_encode_bound(&c->deltas[t]), written = 0;
        CHECK(sotu_delta_encode(enc, cap, &written, &c->deltas[t], cc, SOTU_DELTA_ZSTD_LEVEL) ==
              SOTU_OK);
        sotu_delta back;
        CHECK_MSG(sotu_delta_decode(enc, written, &c->tab, &back, dc, "test") == SOTU_OK, "%s",
                  sotu_last_error());
        for (int i = 0; i < back.n_tensors; i++) {
            memcpy(vals, back.tensors[i].values, (size_t)back.tensors[i].kept * sizeof *vals);
            vals += back.tensors[i].kept;
        }
        sotu_delta_free(&back);
        enc += cap;
    }
    ZSTD_freeCCtx(cc);
    ZSTD_freeDCtx(dc);
}

/* Outputs: the merged block at k_use 0.3 (lists cut from the keep-1 delta,
 * scattered adds) and at each shipped keep (keep 1 streams). */
static void merge_setup(ctx *c)
{
    deltas_setup(c);
    add_buf(c, c->tab.total * sizeof(float));
    add_buf(c, c->tab.total * sizeof(float));
    c->n_out = 2;
}

static void merge_run(ctx *c)
{
    const sotu_delta *list[4] = {&c->deltas[0], &c->deltas[1], &c->deltas[2], &c->deltas[3]};
    sotu_merge_opts o = {.mode = SOTU_MERGE_SUM, .scale = 1.0, .keep = 0.3, .n_tasks = 4};
    CHECK_MSG(sotu_merge_apply(&c->tab, c->theta0, list, 4, &o, c->buf[0], NULL) == SOTU_OK,
              "%s", sotu_last_error());
    o.keep = 0.0;
    CHECK_MSG(sotu_merge_apply(&c->tab, c->theta0, list, 4, &o, c->buf[1], NULL) == SOTU_OK,
              "%s", sotu_last_error());
}

/* Sizes of the benchmark: tiny (B 64, T 50, D 96) and ViT-B (B 8, T 197,
 * D 768) rows, resnet18-w8 planes (B 64, 28x28). */
static void bench_shapes(void)
{
    LN_M = 64 * 50, LN_D[0] = 96, LN_D[1] = 768;
    GELU_N = 64 * 50 * 384;
    int att[3][5] = {{64, 50, 50, 96, 3}, {64, 65, 65, 192, 3}, {8, 197, 197, 768, 12}};
    memcpy(ATT, att, sizeof att);
    BN_B = 64, BN_C = 8, BN_HW = 28 * 28;
    int dw[2][4] = {{64, 8, 28, 28}, {64, 64, 7, 7}};
    memcpy(DW, dw, sizeof dw);
    COL_C = 8, COL_H = 28, COL_W = 28;
}

typedef struct {
    const char *name;
    void (*setup)(ctx *);
    void (*run)(ctx *);
} kernel_case;

static const kernel_case cases[] = {
    {"vit layernorm forward+backward", ln_setup, ln_run},
    {"vit gelu forward+backward", gelu_setup, gelu_run},
    {"vit attention softmax forward+backward", att_setup, att_run},
    {"optim adamw", adamw_setup, optim_run},
    {"optim sgd", sgd_setup, optim_run},
    {"resnet batchnorm forward+backward", bn_setup, bn_run},
    {"resnet depthwise conv forward+backward", dw_setup, dw_run},
    {"resnet col2im", col_setup, col_run},
    {"mask list", mask_setup, mask_run},
    {"delta codec (shuffles)", codec_setup, codec_run},
    {"merge", merge_setup, merge_run},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

static void ctx_free(ctx *c)
{
    for (int i = 0; i < c->n_buf; i++)
        free(c->buf[i]);
    optim_free(&c->opt);
    for (int t = 0; t < c->n_deltas; t++)
        sotu_delta_free(&c->deltas[t]);
    if (c->tab.t && c->tab.t != optim_infos)
        free(c->tab.t);
    free(c->theta0);
    memset(c, 0, sizeof *c);
}

static void ctx_setup(ctx *c, const kernel_case *k, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    sotu_rng_init(&rng, seed, 1);
    k->setup(c);
}

/* CPU seconds of this thread: on a loaded machine a wall clock also counts
 * the time other processes ran (run the benchmark with one thread). */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv)
{
    uint64_t seed = (uint64_t)time(NULL);
    int bench = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--bench"))
            bench = i + 1 < argc && argv[i + 1][0] != '-' ? atoi(argv[++i]) : 200;
    }
    printf("test_isa_kernels: seed %llu (rerun: --seed %llu)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    int levels = 0;
    for (int l = 0; l < SOTU_ISA_COUNT; l++) {
        bool ok = sotu_isa_supported((sotu_isa)l);
        printf("  level %-6s %s\n", sotu_isa_name((sotu_isa)l),
               ok ? "supported: tested" : "not supported by this CPU: skipped");
        levels += ok;
    }
    for (int k = 0; k < N_CASES; k++) {
        ctx ref, c;
        sotu_isa_force(SOTU_ISA_SCALAR);
        ctx_setup(&ref, &cases[k], seed);
        cases[k].run(&ref);
        for (int l = 1; l < SOTU_ISA_COUNT; l++) {
            if (!sotu_isa_supported((sotu_isa)l))
                continue;
            sotu_isa_force((sotu_isa)l);
            ctx_setup(&c, &cases[k], seed);
            cases[k].run(&c);
            for (int b = 0; b < ref.n_out; b++) {
                size_t first = SIZE_MAX;
                for (size_t i = 0; i < ref.bytes[b] && first == SIZE_MAX; i++)
                    if (((uint8_t *)ref.buf[b])[i] != ((uint8_t *)c.buf[b])[i])
                        first = i;
                CHECK_MSG(first == SIZE_MAX,
                          "%s at %s: output %d differs from scalar from byte %zu on (float %zu: "
                          "%.9g vs %.9g)", cases[k].name, sotu_isa_name((sotu_isa)l), b, first,
                          first / 4, (double)((float *)c.buf[b])[first / 4],
                          (double)((float *)ref.buf[b])[first / 4]);
            }
            ctx_free(&c);
        }
        printf("  %-40s same bits at %d level%s\n", cases[k].name, levels, levels > 1 ? "s" : "");
        ctx_free(&ref);
    }
    if (bench) {
        bench_shapes();
        printf("\nbest of %d calls, CPU microseconds (and speed-up over scalar):\n", bench);
        printf("  %-40s", "kernel");
        for (int l = 0; l < SOTU_ISA_COUNT; l++)
            printf(" %16s", sotu_isa_name((sotu_isa)l));
        printf("\n");
        for (int k = 0; k < N_CASES; k++) {
            printf("  %-40s", cases[k].name);
            double base = 0;
            for (int l = 0; l < SOTU_ISA_COUNT; l++) {
                if (!sotu_isa_supported((sotu_isa)l)) {
                    printf(" %16s", "-");
                    continue;
                }
                sotu_isa_force((sotu_isa)l);
                ctx c;
                ctx_setup(&c, &cases[k], seed);
                double best = 1e30;
                for (int r = 0; r < bench; r++) {
                    double t0 = now();
                    cases[k].run(&c);
                    double t = now() - t0;
                    best = t < best ? t : best;
                }
                ctx_free(&c);
                if (l == 0)
                    base = best;
                printf(" %9.1f (%4.2fx)", best * 1e6, base / best);
            }
            printf("\n");
        }
    }
    sotu_isa_force(sotu_isa_best());
    return check_finish("test_isa_kernels");
}
