/* Finite-difference checks of the ViT's float backward kernels against
 * central differences of naive double-precision forward loops written here:
 * layernorm, GELU, attention, softmax cross-entropy with label smoothing and
 * the patch embedding (conv weight, bias, class token, position embedding).
 * Each kernel's scalar loss is sum(out * R) for a random R (so dout = R),
 * except cross-entropy, whose loss is already a scalar. Seed: argv[1] or 7. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gradcheck.h"
#include "common/rng.h"
#include "worker/nn.h"
#include "worker/vit_internal.h"

static sotu_rng rng;

static void fill(float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = scale * sotu_rng_normal(&rng);
}

/* ---- layernorm ---- */
typedef struct { double *x, *w, *b; int M, D; } ln_ctx;

static void ln_ref(double *out, void *p)
{
    ln_ctx *c = p;
    for (int m = 0; m < c->M; m++) {
        const double *x = c->x + m * c->D;
        double mu = 0, var = 0;
        for (int i = 0; i < c->D; i++)
            mu += x[i];
        mu /= c->D;
        for (int i = 0; i < c->D; i++)
            var += (x[i] - mu) * (x[i] - mu);
        double rs = 1.0 / sqrt(var / c->D + VIT_LN_EPS);
        for (int i = 0; i < c->D; i++)
            out[m * c->D + i] = (x[i] - mu) * rs * c->w[i] + c->b[i];
    }
}

static void test_layernorm(void)
{
    enum { M = 3, D = 7 };
    float x[M * D], w[D], b[D], out[M * D], mean[M], rstd[M], R[M * D];
    fill(x, M * D, 1.0f);
    fill(w, D, 1.0f);
    fill(b, D, 0.5f);
    fill(R, M * D, 1.0f);
    vit_layernorm_forward(out, mean, rstd, x, w, b, M, D);
    float dx[M * D] = {0}, dw[D] = {0}, db[D] = {0};
    vit_layernorm_backward(dx, dw, db, R, x, w, mean, rstd, M, D);
    ln_ctx c = {to_double(x, M * D), to_double(w, D), to_double(b, D), M, D};
    double ref[M * D], g[M * D];
    ln_ref(ref, &c);
    expect_close("layernorm forward", out, ref, M * D, 1e-5);
    numeric_grad(g, c.x, M * D, ln_ref, &c, R, M * D);
    expect_close("layernorm d input", dx, g, M * D, 1e-4);
    numeric_grad(g, c.w, D, ln_ref, &c, R, M * D);
    expect_close("layernorm d weight", dw, g, D, 1e-4);
    numeric_grad(g, c.b, D, ln_ref, &c, R, M * D);
    expect_close("layernorm d bias", db, g, D, 1e-4);
    free(c.x);
    free(c.w);
    free(c.b);
}

/* ---- GELU ---- */
typedef struct { double *x; int n; } gelu_ctx;

static void gelu_ref(double *out, void *p)
{
    gelu_ctx *c = p;
    for (int i = 0; i < c->n; i++)
        out[i] = 0.5 * c->x[i] * (1.0 + erf(c->x[i] / sqrt(2.0)));
}

static void test_gelu(void)
{
    enum { n = 101 };
    float x[n], out[n], R[n], dx[n], deriv[n];
    for (int i = 0; i < n; i++)
        x[i] = -6.0f + 12.0f * i / (n - 1) + 0.01f * sotu_rng_normal(&rng);
    fill(R, n, 1.0f);
    vit_gelu_forward(out, deriv, x, n);
    vit_gelu_backward(dx, deriv, R, n);
    gelu_ctx c = {to_double(x, n), n};
    double ref[n], g[n];
    gelu_ref(ref, &c);
    expect_close("gelu forward", out, ref, n, 1e-6);
    numeric_grad(g, c.x, n, gelu_ref, &c, R, n);
    expect_close("gelu d input", dx, g, n, 1e-5);
    free(c.x);
}

/* ---- attention ---- */
typedef struct { double *qkv; int B, T, D, H; } att_ctx;

static void att_ref(double *out, void *p)
{
    att_ctx *c = p;
    int B = c->B, T = c->T, D = c->D, H = c->H, hd = D / H;
    double scale = 1.0 / sqrt(hd), s[64];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                const double *q = c->qkv + ((size_t)b * T + i) * 3 * D + h * hd;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    const double *k = c->qkv + ((size_t)b * T + j) * 3 * D + D + h * hd;
                    s[j] = 0;
                    for (int d = 0; d < hd; d++)
                        s[j] += q[d] * k[d] * scale;
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < T; j++)
                    sum += s[j] = exp(s[j] - mx);
                for (int d = 0; d < hd; d++) {
                    double o = 0;
                    for (int j = 0; j < T; j++)
                        o += s[j] / sum * c->qkv[((size_t)b * T + j) * 3 * D + 2 * D + h * hd + d];
                    out[((size_t)b * T + i) * D + h * hd + d] = o;
                }
            }
}

static void test_attention(void)
{
    enum { B = 2, T = 5, D = 8, H = 2 };
    float qkv[B * T * 3 * D], out[B * T * D], att[B * H * T * T], datt[B * H * T * T];
    float R[B * T * D], dqkv[B * T * 3 * D];
    fill(qkv, B * T * 3 * D, 1.0f);
    fill(R, B * T * D, 1.0f);
    vit_attention_forward(out, att, qkv, B, T, T, D, H);
    vit_attention_backward(dqkv, datt, R, qkv, att, B, T, T, D, H);
    att_ctx c = {to_double(qkv, B * T * 3 * D), B, T, D, H};
    double ref[B * T * D], g[B * T * 3 * D];
    att_ref(ref, &c);
    expect_close("attention forward", out, ref, B * T * D, 1e-5);
    numeric_grad(g, c.qkv, B * T * 3 * D, att_ref, &c, R, B * T * D);
    expect_close("attention d qkv", dqkv, g, B * T * 3 * D, 1e-4);
    free(c.qkv);
}

/* ---- softmax cross-entropy with label smoothing ---- */
typedef struct { double *z; const int32_t *y; double eps; int B, K; } ce_ctx;

static void ce_ref(double *out, void *p)
{
    ce_ctx *c = p;
    double total = 0;
    for (int b = 0; b < c->B; b++) {
        const double *z = c->z + b * c->K;
        double mx = z[0], sum = 0;
        for (int k = 1; k < c->K; k++)
            mx = fmax(mx, z[k]);
        for (int k = 0; k < c->K; k++)
            sum += exp(z[k] - mx);
        for (int k = 0; k < c->K; k++) {
            double q = c->eps / c->K + (k == c->y[b] ? 1.0 - c->eps : 0.0);
            total -= q * (z[k] - mx - log(sum));
        }
    }
    out[0] = total / c->B;
}

static void test_crossentropy(float eps)
{
    enum { B = 3, K = 5 };
    float z[B * K], probs[B * K], dz[B * K], one = 1.0f;
    int32_t y[B] = {0, 4, 2};
    fill(z, B * K, 2.0f);
    float loss = nn_crossentropy_forward(probs, z, y, eps, B, K);
    nn_crossentropy_backward(dz, probs, y, eps, B, K);
    ce_ctx c = {to_double(z, B * K), y, eps, B, K};
    double ref, g[B * K];
    ce_ref(&ref, &c);
    char what[64];
    snprintf(what, sizeof what, "cross-entropy loss, smoothing %.1f", eps);
    expect_close(what, &loss, &ref, 1, 1e-6);
    numeric_grad(g, c.z, B * K, ce_ref, &c, &one, 1);
    snprintf(what, sizeof what, "cross-entropy d logits, smoothing %.1f", eps);
    expect_close(what, dz, g, B * K, 1e-5);
    free(c.z);
}

/* ---- patch embedding: a direct convolution, stride = kernel = P ---- */
typedef struct { double *img, *w, *bias, *cls, *pos; int B, C, S, P, D; } pe_ctx;

static void pe_ref(double *out, void *p)
{
    pe_ctx *c = p;
    int G = c->S / c->P, T = G * G + 1, D = c->D, P = c->P, S = c->S;
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < T; t++)
            for (int o = 0; o < D; o++) {
                double v = c->pos[t * D + o];
                if (t == 0) {
                    v += c->cls[o];
                } else {
                    int gy = (t - 1) / G, gx = (t - 1) % G;
                    v += c->bias[o];
                    for (int ch = 0; ch < c->C; ch++)
                        for (int py = 0; py < P; py++)
                            for (int px = 0; px < P; px++)
                                v += c->w[((o * c->C + ch) * P + py) * P + px] *
                                     c->img[((b * c->C + ch) * S + gy * P + py) * S + gx * P + px];
                }
                out[((size_t)b * T + t) * D + o] = v;
            }
}

static void test_patch_embed(void)
{
    enum { B = 2, C = 2, S = 6, P = 3, G = S / P, N = G * G, T = N + 1, D = 5, CPP = C * P * P };
    float img[B * C * S * S], w[D * CPP], bias[D], cls[D], pos[T * D], R[B * T * D];
    float patches[B * N * CPP], x[B * T * D], proj[B * N * D], scratch[B * N * D];
    fill(img, B * C * S * S, 1.0f);
    fill(w, D * CPP, 0.3f);
    fill(bias, D, 0.5f);
    fill(cls, D, 0.5f);
    fill(pos, T * D, 0.5f);
    fill(R, B * T * D, 1.0f);
    vit_im2col(patches, img, B, C, S, P);
    vit_embed_forward(x, proj, patches, w, bias, cls, pos, B, N, CPP, D);
    float dw[D * CPP] = {0}, dbias[D] = {0}, dcls[D] = {0}, dpos[T * D] = {0};
    CHECK(nn_matmul_scratch_floats(B * N, CPP, D) == 0); /* too small to split */
    vit_embed_backward(dw, dbias, dcls, dpos, scratch, NULL, R, patches, B, N, CPP, D);
    pe_ctx c = {to_double(img, B * C * S * S), to_double(w, D * CPP), to_double(bias, D),
                to_double(cls, D), to_double(pos, T * D), B, C, S, P, D};
    double ref[B * T * D], g[T * D > D * CPP ? T * D : D * CPP];
    pe_ref(ref, &c);
    expect_close("patch embed forward", x, ref, B * T * D, 1e-5);
    numeric_grad(g, c.w, D * CPP, pe_ref, &c, R, B * T * D);
    expect_close("patch embed d weight", dw, g, D * CPP, 1e-5);
    numeric_grad(g, c.bias, D, pe_ref, &c, R, B * T * D);
    expect_close("patch embed d bias", dbias, g, D, 1e-5);
    numeric_grad(g, c.cls, D, pe_ref, &c, R, B * T * D);
    expect_close("patch embed d cls_token", dcls, g, D, 1e-5);
    numeric_grad(g, c.pos, T * D, pe_ref, &c, R, B * T * D);
    expect_close("patch embed d pos_embed", dpos, g, T * D, 1e-5);
    free(c.img);
    free(c.w);
    free(c.bias);
    free(c.cls);
    free(c.pos);
}

/* A NaN must survive every kernel (exit code 5 upstream depends on it). */
static void test_nan_propagates(void)
{
    float x[3] = {NAN, 1.0f, -200.0f}, y[3], dg[3], d[3], one[3] = {1, 1, 1};
    vit_gelu_forward(y, dg, x, 3);
    vit_gelu_backward(d, dg, one, 3);
    CHECK(isnan(y[0]) && isnan(d[0]) && isfinite(y[2]) && isfinite(d[2]));
    enum { T = 3, D = 4 };
    float qkv[T * 3 * D], out[T * D], att[T * T];
    for (int i = 0; i < T * 3 * D; i++)
        qkv[i] = 0.1f * i;
    qkv[0] = NAN;
    vit_attention_forward(out, att, qkv, 1, T, T, D, 1);
    CHECK(isnan(att[0]) && isnan(out[0]));
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 7;
    printf("seed %llu\n", (unsigned long long)seed);
    sotu_rng_init(&rng, seed, 0);
    test_layernorm();
    test_gelu();
    test_attention();
    test_crossentropy(0.0f);
    test_crossentropy(0.1f);
    test_patch_embed();
    test_nan_propagates();
    return check_finish("test_vit_gradcheck");
}
