/* Each BLAS-backed or blocked ViT kernel against a naive triple loop, at odd
 * sizes and at sizes cut into several tiles (rows or columns) and weight
 * gradients summed over row chunks, under 1 and 2 threads: the linear layer (forward with bias and
 * residual; backward into input, weight and bias, which must ADD), the patch
 * embedding (im2col + sgemm against a direct convolution; its weight
 * gradient) and attention forward/backward (against textbook double loops),
 * also with fewer queries than keys (the last block's class-token path).
 * Seed: argv[1] or 11. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/rng.h"
#include "common/threads.h"
#include "worker/vit.h"
#include "worker/nn.h"
#include "worker/vit_internal.h"

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
    printf("  %-30s max rel error %.3g\n", what, rel);
    CHECK_MSG(rel <= tol, "%s: relative error %.3g > %.g", what, rel, tol);
}

static void test_matmul(int M, int In, int Out)
{
    float *x = randn((size_t)M * In, 1), *w = randn((size_t)Out * In, 1), *b = randn(Out, 1);
    float *res = randn((size_t)M * Out, 1), *dout = randn((size_t)M * Out, 1);
    float *out = malloc((size_t)M * Out * sizeof *out), *dx = malloc((size_t)M * In * sizeof *dx);
    float *dw = randn((size_t)Out * In, 1), *db = randn(Out, 1);
    float *wscratch = malloc((nn_matmul_scratch_floats(M, In, Out) + 1) * sizeof *wscratch);
    double *ref = malloc((size_t)(M > Out ? M : Out) * (In > Out ? In : Out) * sizeof *ref);

    nn_matmul_forward(out, x, w, b, res, M, In, Out);
    for (int m = 0; m < M; m++)
        for (int o = 0; o < Out; o++) {
            double s = (double)b[o] + res[(size_t)m * Out + o];
            for (int i = 0; i < In; i++)
                s += (double)x[(size_t)m * In + i] * w[(size_t)o * In + i];
            ref[(size_t)m * Out + o] = s;
        }
    expect_close("matmul forward", out, ref, (size_t)M * Out, 1e-5);

    /* backward: dw and db start non-zero and must be added to */
    float *dw0 = malloc((size_t)Out * In * sizeof *dw0), *db0 = malloc(Out * sizeof *db0);
    memcpy(dw0, dw, (size_t)Out * In * sizeof *dw);
    memcpy(db0, db, Out * sizeof *db);
    nn_matmul_backward(dx, dw, db, dout, x, w, wscratch, M, In, Out);
    for (int m = 0; m < M; m++)
        for (int i = 0; i < In; i++) {
            double s = 0;
            for (int o = 0; o < Out; o++)
                s += (double)dout[(size_t)m * Out + o] * w[(size_t)o * In + i];
            ref[(size_t)m * In + i] = s;
        }
    expect_close("matmul d input", dx, ref, (size_t)M * In, 1e-5);
    for (int o = 0; o < Out; o++)
        for (int i = 0; i < In; i++) {
            double s = dw0[(size_t)o * In + i];
            for (int m = 0; m < M; m++)
                s += (double)dout[(size_t)m * Out + o] * x[(size_t)m * In + i];
            ref[(size_t)o * In + i] = s;
        }
    expect_close("matmul d weight (added)", dw, ref, (size_t)Out * In, 1e-5);
    for (int o = 0; o < Out; o++) {
        double s = db0[o];
        for (int m = 0; m < M; m++)
            s += dout[(size_t)m * Out + o];
        ref[o] = s;
    }
    expect_close("matmul d bias (added)", db, ref, Out, 1e-5);
    free(x), free(w), free(b), free(res), free(dout), free(out), free(dx), free(dw), free(db);
    free(dw0), free(db0), free(wscratch), free(ref);
}

static void test_patch_embed(int B, int C, int S, int P, int D)
{
    int G = S / P, N = G * G, T = N + 1, CPP = C * P * P;
    float *img = randn((size_t)B * C * S * S, 1), *w = randn((size_t)D * CPP, 1);
    float *bias = randn(D, 1), *cls = randn(D, 1), *pos = randn((size_t)T * D, 1);
    float *dx = randn((size_t)B * T * D, 1), *dw = calloc((size_t)D * CPP, sizeof *dw);
    float *patches = malloc((size_t)B * N * CPP * sizeof *patches);
    float *x = malloc((size_t)B * T * D * sizeof *x), *proj = malloc((size_t)B * N * D * 4);
    float *wscratch = malloc((nn_matmul_scratch_floats(B * N, CPP, D) + 1) * sizeof *wscratch);
    double *ref = malloc((size_t)B * T * D * sizeof *ref + (size_t)D * CPP * sizeof *ref);
    vit_im2col(patches, img, B, C, S, P);
    vit_embed_forward(x, proj, patches, w, bias, cls, pos, B, N, CPP, D);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int o = 0; o < D; o++) {
                double v = (double)pos[(size_t)t * D + o];
                if (t == 0) {
                    v += cls[o];
                } else {
                    int gy = (t - 1) / G, gx = (t - 1) % G;
                    v += bias[o];
                    for (int c = 0; c < C; c++)
                        for (int py = 0; py < P; py++)
                            for (int px = 0; px < P; px++)
                                v += (double)w[(((size_t)o * C + c) * P + py) * P + px] *
                                     img[(((size_t)b * C + c) * S + gy * P + py) * S + gx * P + px];
                }
                ref[((size_t)b * T + t) * D + o] = v;
            }
    expect_close("patch embed forward", x, ref, (size_t)B * T * D, 1e-5);
    vit_embed_backward(dw, NULL, NULL, NULL, proj, wscratch, dx, patches, B, N, CPP, D);
    for (int o = 0; o < D; o++)
        for (int c = 0; c < C; c++)
            for (int py = 0; py < P; py++)
                for (int px = 0; px < P; px++) {
                    double s = 0;
                    for (int b = 0; b < B; b++)
                        for (int n = 0; n < N; n++) {
                            int gy = n / G, gx = n % G;
                            s += (double)dx[((size_t)b * T + 1 + n) * D + o] *
                                 img[(((size_t)b * C + c) * S + gy * P + py) * S + gx * P + px];
                        }
                    ref[(((size_t)o * C + c) * P + py) * P + px] = s;
                }
    expect_close("patch embed d weight", dw, ref, (size_t)D * CPP, 1e-5);
    free(img), free(w), free(bias), free(cls), free(pos), free(dx), free(dw), free(patches);
    free(x), free(proj), free(wscratch), free(ref);
}

/* Textbook attention in double: P = softmax(scale q k^T), out = P v;
 * dP = dout v^T, dS = P * (dP - rowsum(P * dP)), dq = scale dS k,
 * dk = scale dS^T q, dv = P^T dout. */
static void test_attention(int B, int T, int Tq, int D, int H)
{
    int hd = D / H;
    double scale = 1.0 / sqrt(hd);
    size_t n3 = (size_t)B * T * 3 * D, n1 = (size_t)B * Tq * D;
    float *qkv = randn(n3, 1), *dout = randn(n1, 1), *out = malloc(n1 * sizeof *out);
    float *att = malloc((size_t)B * H * T * T * sizeof *att);
    float *datt = malloc((size_t)B * H * T * T * sizeof *datt);
    float *dqkv = malloc(n3 * sizeof *dqkv);
    double *ref = calloc(n1, sizeof *ref), *dref = calloc(n3, sizeof *dref);
    double *Pm = malloc((size_t)T * T * sizeof *Pm), *dS = malloc((size_t)T * T * sizeof *dS);
    vit_attention_forward(out, att, qkv, B, T, Tq, D, H);
    vit_attention_backward(dqkv, datt, dout, qkv, att, B, T, Tq, D, H);
#define Q(b, t, d) ((double)qkv[((size_t)(b) * T + (t)) * 3 * D + h * hd + (d)])
#define K(b, t, d) ((double)qkv[((size_t)(b) * T + (t)) * 3 * D + D + h * hd + (d)])
#define V(b, t, d) ((double)qkv[((size_t)(b) * T + (t)) * 3 * D + 2 * D + h * hd + (d)])
#define G(b, t, d) ((double)dout[((size_t)(b) * Tq + (t)) * D + h * hd + (d)])
#define DQ(b, t, d) dref[((size_t)(b) * T + (t)) * 3 * D + h * hd + (d)]
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < Tq; i++) {
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    double s = 0;
                    for (int d = 0; d < hd; d++)
                        s += Q(b, i, d) * K(b, j, d);
                    Pm[i * T + j] = s * scale;
                    mx = fmax(mx, s * scale);
                }
                for (int j = 0; j < T; j++)
                    sum += Pm[i * T + j] = exp(Pm[i * T + j] - mx);
                for (int j = 0; j < T; j++)
                    Pm[i * T + j] /= sum;
                for (int d = 0; d < hd; d++)
                    for (int j = 0; j < T; j++)
                        ref[((size_t)b * Tq + i) * D + h * hd + d] += Pm[i * T + j] * V(b, j, d);
                double rs = 0;
                for (int j = 0; j < T; j++) {
                    double dp = 0;
                    for (int d = 0; d < hd; d++)
                        dp += G(b, i, d) * V(b, j, d);
                    dS[i * T + j] = dp;
                    rs += Pm[i * T + j] * dp;
                }
                for (int j = 0; j < T; j++)
                    dS[i * T + j] = Pm[i * T + j] * (dS[i * T + j] - rs);
            }
            for (int i = 0; i < Tq; i++)
                for (int j = 0; j < T; j++)
                    for (int d = 0; d < hd; d++) {
                        DQ(b, i, d) += scale * dS[i * T + j] * K(b, j, d);
                        DQ(b, j, D + d) += scale * dS[i * T + j] * Q(b, i, d);
                        DQ(b, j, 2 * D + d) += Pm[i * T + j] * G(b, i, d);
                    }
        }
#undef Q
#undef K
#undef V
#undef G
#undef DQ
    expect_close("attention forward", out, ref, n1, 1e-5);
    expect_close("attention backward", dqkv, dref, n3, 1e-5);
    free(qkv), free(dout), free(out), free(att), free(datt), free(dqkv), free(ref);
    free(dref), free(Pm), free(dS);
}

/* Config checks, the table, timm-style init and a forward/backward smoke run. */
static void test_model_init(void)
{
    vit_model m;
    vit_config bad = {30, 1, 4, 96, 2, 3, 384, 10};
    CHECK(vit_init(&m, &bad, 4) == SOTU_ERR_CONFIG);
    vit_config bad_heads = {28, 1, 4, 96, 2, 5, 384, 10};
    CHECK(vit_init(&m, &bad_heads, 4) == SOTU_ERR_CONFIG);
    vit_config c = {28, 1, 4, 48, 2, 3, 96, 10};
    CHECK(vit_init(&m, &c, 8) == SOTU_OK);
    CHECK(m.table.n == 4 + 12 * 2 + 4);
    CHECK(!strcmp(m.table.t[0].name, "cls_token") && !strcmp(m.table.t[6].name, "blocks.0.attn.qkv.weight"));
    CHECK(m.table.t[1].shape[1] == 50 && m.table.t[2].ndim == 4);
    CHECK(m.num_params == m.table.t[m.table.n - 1].offset + m.table.t[m.table.n - 1].count);
    vit_init_random(&m, 5);
    float *copy = malloc(m.num_params * sizeof *copy);
    memcpy(copy, m.params, m.num_params * sizeof *copy);
    vit_init_random(&m, 5);
    CHECK(memcmp(copy, m.params, m.num_params * sizeof *copy) == 0);
    int qkv = sotu_tensor_find(&m.table, "blocks.1.attn.qkv.weight");
    int n1 = sotu_tensor_find(&m.table, "blocks.1.norm1.weight");
    int hb = sotu_tensor_find(&m.table, "head.bias");
    double ss = 0;
    const sotu_tensor_info *t = &m.table.t[qkv];
    for (size_t i = 0; i < t->count; i++)
        ss += (double)m.params[t->offset + i] * m.params[t->offset + i];
    double sd = sqrt(ss / t->count);
    CHECK_MSG(sd > 0.019 && sd < 0.021, "qkv weight std %g, expected 0.02", sd);
    CHECK(m.params[m.table.t[n1].offset] == 1.0f && m.params[m.table.t[hb].offset] == 0.0f);
    float *img = randn((size_t)8 * 28 * 28, 1);
    int32_t labels[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    float loss = vit_forward(&m, img, labels, 8);
    CHECK_MSG(fabsf(loss - logf(10.0f)) < 0.3f, "initial loss %g, expected about log 10", loss);
    vit_zero_grad(&m);
    vit_backward(&m);
    double g = 0;
    for (size_t i = 0; i < m.num_params; i++)
        g += fabs(m.grads[i]);
    CHECK(g > 0 && isfinite(g));
    CHECK(vit_forward(&m, img, NULL, 3) == 0.0f);
    free(copy);
    free(img);
    vit_free(&m);
    vit_free(&m);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 11;
    printf("seed %llu\n", (unsigned long long)seed);
    sotu_rng_init(&rng, seed, 0);
    for (int threads = 1; threads <= 2; threads++) {
        sotu_threads_set(threads);
        printf("-- %d thread(s)\n", threads);
        test_matmul(37, 19, 23);
        test_matmul(1, 7, 3);
        test_matmul(130, 96, 288);
        test_matmul(1201, 96, 288);  /* row tiles; weight gradient summed over row chunks */
        test_matmul(40, 1024, 1000); /* column tiles; weight gradient tiled over its outputs */
        test_patch_embed(3, 3, 10, 5, 7);
        test_patch_embed(2, 1, 28, 4, 9);
        test_patch_embed(40, 3, 32, 8, 96); /* weight gradient over row chunks */
        test_attention(3, 13, 13, 12, 3);
        test_attention(2, 50, 50, 96, 3);
        test_attention(1, 17, 17, 64, 1);
        test_attention(3, 13, 1, 12, 3);
        test_attention(2, 23, 5, 20, 4);
    }
    test_model_init();
    return check_finish("test_vit_kernels");
}
