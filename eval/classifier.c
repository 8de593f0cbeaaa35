#include "eval/classifier.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

/* LAPACK (OpenBLAS carries it): Cholesky factorisation and solve. */
extern void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda,
                   double *b, const int *ldb, int *info);

size_t sotu_cls_stats_size(int C, int D, int M)
{
    return 2 * ((size_t)C * D + (size_t)C) + 2 * (size_t)M * M + 2 * (size_t)C * M + 1;
}

static void stats_layout(sotu_cls_stats *s)
{
    size_t C = (size_t)s->C, D = (size_t)s->D, M = (size_t)s->M;
    s->sum = s->data;
    s->count = s->sum + C * D;
    s->G_fit = s->count + C;
    s->G_val = s->G_fit + M * M;
    s->S_fit = s->G_val + M * M;
    s->S_val = s->S_fit + C * M;
    s->n_val = s->S_val + C * M;
    s->sum_fit = s->n_val + 1;
    s->count_fit = s->sum_fit + C * D;
}

void sotu_cls_stats_wrap(sotu_cls_stats *s, int C, int D, int M, double *data)
{
    *s = (sotu_cls_stats){.C = C, .D = D, .M = M, .data = data};
    stats_layout(s);
}

sotu_status sotu_cls_stats_init(sotu_cls_stats *s, int C, int D, int M)
{
    *s = (sotu_cls_stats){.C = C, .D = D, .M = M};
    s->data = calloc(sotu_cls_stats_size(C, D, M), sizeof(double));
    if (!s->data)
        return sotu_error(SOTU_ERR_NOMEM, "classifier statistics for %d classes, %d features", C,
                          M);
    stats_layout(s);
    return SOTU_OK;
}

void sotu_cls_stats_zero(sotu_cls_stats *s)
{
    memset(s->data, 0, sotu_cls_stats_size(s->C, s->D, s->M) * sizeof(double));
}

void sotu_cls_stats_free(sotu_cls_stats *s)
{
    if (!s)
        return;
    free(s->data);
    *s = (sotu_cls_stats){0};
}

void sotu_cls_stats_add(sotu_cls_stats *dst, const sotu_cls_stats *src, int offset)
{
    assert(dst->D == src->D && dst->M == src->M && offset >= 0 && offset + src->C <= dst->C);
    size_t D = (size_t)dst->D, M = (size_t)dst->M;
    for (size_t i = 0; i < (size_t)src->C * D; i++)
        dst->sum[(size_t)offset * D + i] += src->sum[i];
    for (int c = 0; c < src->C; c++)
        dst->count[offset + c] += src->count[c];
    for (size_t i = 0; i < (size_t)src->C * D; i++)
        dst->sum_fit[(size_t)offset * D + i] += src->sum_fit[i];
    for (int c = 0; c < src->C; c++)
        dst->count_fit[offset + c] += src->count_fit[c];
    for (size_t i = 0; i < M * M; i++) {
        dst->G_fit[i] += src->G_fit[i];
        dst->G_val[i] += src->G_val[i];
    }
    for (size_t i = 0; i < (size_t)src->C * M; i++) {
        dst->S_fit[(size_t)offset * M + i] += src->S_fit[i];
        dst->S_val[(size_t)offset * M + i] += src->S_val[i];
    }
    dst->n_val[0] += src->n_val[0];
}

void sotu_cls_projection(float *R, int M, int D, uint64_t seed)
{
    sotu_rng r;
    sotu_rng_init(&r, seed, SOTU_STREAM_PROJECTION);
    for (size_t i = 0; i < (size_t)M * D; i++)
        R[i] = sotu_rng_normal(&r);
}

void sotu_cls_project(const float *R, int M, int D, const float *phi, int n, float *h)
{
    if (!R) {
        memcpy(h, phi, sizeof(float) * (size_t)n * D);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, M, D, 1.0f, phi, D, R, D, 0.0f, h, M);
    for (size_t i = 0; i < (size_t)n * M; i++)
        h[i] = h[i] > 0 ? h[i] : 0;
}

/* G += Σ_k h_k h_kᵀ over the n rows of Hd [n, M]. */
static void gram_add(double *G, const double *Hd, int n, int M)
{
    if (n > 0)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, M, n, 1.0, Hd, M, Hd, M, 1.0, G,
                    M);
}

sotu_status sotu_cls_stats_accumulate(sotu_cls_stats *s, const float *phi, const float *h,
                                      const int32_t *labels, const bool *held_out, int n)
{
    size_t D = (size_t)s->D, M = (size_t)s->M;
    enum { CHUNK = 256 };
    double *fit = malloc(sizeof(double) * CHUNK * M), *val = malloc(sizeof(double) * CHUNK * M);
    if (!fit || !val) {
        free(fit);
        free(val);
        return sotu_error(SOTU_ERR_NOMEM, "classifier statistics: two %d x %zu chunk buffers",
                          (int)CHUNK, M);
    }
    for (int k0 = 0; k0 < n; k0 += CHUNK) {
        int nf = 0, nv = 0;
        for (int k = k0; k < n && k < k0 + CHUNK; k++) {
            int c = labels[k];
            assert(c >= 0 && c < s->C);
            bool v = held_out && held_out[k];
            double *row = v ? val + (size_t)nv++ * M : fit + (size_t)nf++ * M;
            double *S = (v ? s->S_val : s->S_fit) + (size_t)c * M;
            for (size_t i = 0; i < M; i++) {
                row[i] = h[(size_t)k * M + i];
                S[i] += row[i];
            }
            for (size_t i = 0; i < D; i++)
                s->sum[(size_t)c * D + i] += phi[(size_t)k * D + i];
            s->count[c] += 1;
            s->n_val[0] += v;
            if (!v) {
                for (size_t i = 0; i < D; i++)
                    s->sum_fit[(size_t)c * D + i] += phi[(size_t)k * D + i];
                s->count_fit[c] += 1;
            }
        }
        gram_add(s->G_fit, fit, nf, (int)M);
        gram_add(s->G_val, val, nv, (int)M);
    }
    free(fit);
    free(val);
    return SOTU_OK;
}

sotu_status sotu_cls_model_init(sotu_cls_model *m, int C, int D, int M)
{
    *m = (sotu_cls_model){.C = C, .D = D, .M = M};
    m->valid = calloc((size_t)C, sizeof *m->valid);
    m->protos = calloc((size_t)C * D, sizeof *m->protos);
    m->W = calloc((size_t)C * M, sizeof *m->W);
    if (!m->valid || !m->protos || !m->W) {
        sotu_cls_model_free(m);
        return sotu_error(SOTU_ERR_NOMEM, "classifier for %d classes", C);
    }
    return SOTU_OK;
}

void sotu_cls_model_free(sotu_cls_model *m)
{
    if (!m)
        return;
    free(m->valid);
    free(m->protos);
    free(m->W);
    *m = (sotu_cls_model){0};
}

/* X [C, M] = (G + λI)^-1 Sᵀ (rows of S are the right-hand sides); a [M, M]
 * is scratch. Returns LAPACK's info (0 on success). */
static int ridge_solve(const double *G, double lambda, const double *S, int C, int M, double *a,
                       double *X)
{
    memcpy(a, G, sizeof(double) * (size_t)M * M);
    for (int i = 0; i < M; i++)
        a[(size_t)i * M + i] += lambda;
    memcpy(X, S, sizeof(double) * (size_t)C * M);
    int info = 0;
    dposv_("U", &M, &C, a, &M, X, &M, &info);
    return info;
}

/* Held-out squared error Σ ||y - Xh||² = n_val - 2 Σ_c X_c·S_val,c + Σ_c X_cᵀ G_val X_c. */
static double ridge_val_error(const sotu_cls_stats *s, const double *X, int C, double *Y)
{
    int M = s->M;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, M, M, 1.0, X, M, s->G_val, M, 0.0, Y,
                M);
    double e = s->n_val[0];
    for (size_t i = 0; i < (size_t)C * M; i++)
        e += X[i] * (Y[i] - 2 * s->S_val[i]);
    return e;
}

/* m emptied, then NCM prototypes from the class sums sum [C, D] of the
 * classes [0, C_use) with count > 0. */
static void fit_ncm(const double *sum, const double *count, int C_use, sotu_cls_model *m)
{
    int D = m->D;
    memset(m->valid, 0, sizeof *m->valid * (size_t)m->C);
    memset(m->protos, 0, sizeof *m->protos * (size_t)m->C * D);
    memset(m->W, 0, sizeof *m->W * (size_t)m->C * m->M);
    m->lambda = NAN;
    for (int c = 0; c < C_use; c++) {
        if (count[c] <= 0)
            continue;
        double norm = 0;
        for (int i = 0; i < D; i++)
            norm += sum[(size_t)c * D + i] * sum[(size_t)c * D + i];
        norm = sqrt(norm);
        m->valid[c] = true;
        for (int i = 0; i < D; i++)
            m->protos[(size_t)c * D + i] = norm > 0 ? (float)(sum[(size_t)c * D + i] / norm) : 0;
    }
}

sotu_status sotu_cls_fit(const sotu_cls_stats *s, int C_use, bool ridge, sotu_cls_model *m,
                         sotu_cls_model *fit_only)
{
    assert(m->C == s->C && m->D == s->D && m->M == s->M && C_use <= s->C);
    assert(!fit_only || (fit_only->C == s->C && fit_only->D == s->D && fit_only->M == s->M));
    int M = s->M;
    fit_ncm(s->sum, s->count, C_use, m);
    if (fit_only)
        fit_ncm(s->sum_fit, s->count_fit, C_use, fit_only);
    if (!ridge || C_use == 0)
        return SOTU_OK;

    sotu_status st = SOTU_OK;
    bool have_fit = false; /* Xfit holds (G_fit + λI)^-1 S_fit at best_lambda */
    double *a = malloc(sizeof(double) * (size_t)M * M), *X = malloc(sizeof(double) * C_use * M),
           *Y = malloc(sizeof(double) * C_use * M), *G = malloc(sizeof(double) * (size_t)M * M),
           *S = malloc(sizeof(double) * C_use * M),
           *Xfit = fit_only ? malloc(sizeof(double) * C_use * M) : NULL;
    if (!a || !X || !Y || !G || !S || (fit_only && !Xfit)) {
        st = sotu_error(SOTU_ERR_NOMEM, "ridge classifier with %d features, %d classes", M, C_use);
        goto cleanup;
    }
    double trace = 0;
    for (int i = 0; i < M; i++)
        trace += s->G_fit[(size_t)i * M + i];
    double base = trace > 0 ? trace / M : 1.0, best = INFINITY, best_lambda = NAN;
    for (int k = -8; k <= 2; k++) {
        double lambda = base * pow(10.0, k);
        if (s->n_val[0] <= 0) {
            best_lambda = base * 1e-3;
            break;
        }
        if (ridge_solve(s->G_fit, lambda, s->S_fit, C_use, M, a, X) != 0)
            continue;
        double e = ridge_val_error(s, X, C_use, Y);
        if (isfinite(e) && e < best) {
            best = e;
            best_lambda = lambda;
            if (Xfit) {
                memcpy(Xfit, X, sizeof(double) * C_use * M);
                have_fit = true;
            }
        }
    }
    if (isnan(best_lambda)) {
        st = sotu_error(SOTU_ERR_NUMERIC, "ridge classifier: G + λI is not positive definite for "
                        "any λ in %g * [1e-8, 1e2]", base);
        goto cleanup;
    }
    for (size_t i = 0; i < (size_t)M * M; i++)
        G[i] = s->G_fit[i] + s->G_val[i];
    for (size_t i = 0; i < (size_t)C_use * M; i++)
        S[i] = s->S_fit[i] + s->S_val[i];
    if (ridge_solve(G, best_lambda, S, C_use, M, a, X) != 0) {
        st = sotu_error(SOTU_ERR_NUMERIC, "ridge classifier: G + λI is not positive definite at "
                        "λ = %g", best_lambda);
        goto cleanup;
    }
    for (size_t i = 0; i < (size_t)C_use * M; i++)
        m->W[i] = (float)X[i];
    m->lambda = best_lambda;
    /* Without held-out images no λ was tried; a fit-only W that cannot be
     * solved stays zero with λ NaN (nothing is evaluated on it then). */
    if (fit_only && !have_fit)
        have_fit = ridge_solve(s->G_fit, best_lambda, s->S_fit, C_use, M, a, Xfit) == 0;
    if (fit_only && have_fit) {
        for (size_t i = 0; i < (size_t)C_use * M; i++)
            fit_only->W[i] = (float)Xfit[i];
        fit_only->lambda = best_lambda;
    }
cleanup:
    free(a);
    free(X);
    free(Y);
    free(G);
    free(S);
    free(Xfit);
    return st;
}

static sotu_status predict(const bool *valid, int C, const float *x, int width,
                           const float *rows, int n, int lo, int hi, int32_t *pred)
{
    float *scores = malloc(sizeof(float) * (size_t)n * C);
    if (!scores)
        return sotu_error(SOTU_ERR_NOMEM, "classifier: scores of %d images x %d classes", n, C);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, C, width, 1.0f, x, width, rows, width,
                0.0f, scores, C);
    for (int k = 0; k < n; k++) {
        int32_t best = -1;
        for (int c = lo; c < hi; c++)
            if (valid[c] && (best < 0 || scores[(size_t)k * C + c] > scores[(size_t)k * C + best]))
                best = c;
        pred[k] = best;
    }
    free(scores);
    return SOTU_OK;
}

sotu_status sotu_cls_predict_ncm(const sotu_cls_model *m, const float *phi, int n, int lo,
                                 int hi, int32_t *pred)
{
    return predict(m->valid, m->C, phi, m->D, m->protos, n, lo, hi, pred);
}

sotu_status sotu_cls_predict_ridge(const sotu_cls_model *m, const float *h, int n, int lo,
                                   int hi, int32_t *pred)
{
    return predict(m->valid, m->C, h, m->M, m->W, n, lo, hi, pred);
}
