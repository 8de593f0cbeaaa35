/* Classifiers fitted on backbone features, built from sums so that ranks
 * can accumulate their share of the data and rank 0 adds the shares up.
 *
 * Features φ [n, D] are the final-norm class tokens of the backbone. Classes
 * carry global labels (task offset + local label) in [0, C).
 *
 *   NCM    prototype μ_c = mean of φ over class c's fitting images; an image
 *          goes to argmax_c cos(φ, μ_c) (SimpleCIL, Zhou et al., and
 *          SoTU's class-incremental protocol).
 *   ridge  h = ReLU(R φ) with R [M, D] standard normal from (seed, stream
 *          SOTU_STREAM_PROJECTION) when M > 0 (RanPAC, McDonnell et al.),
 *          else h = φ (M = D); W = (G + λ I)^-1 S with G = Σ h hᵀ [M, M] and
 *          S = Σ h yᵀ [M, C] over one-hot targets y; an image goes to
 *          argmax_c hᵀ W[:, c]. λ is picked from a grid relative to
 *          trace(G_fit) / M by the squared error on the held-out images
 *          (G_val, S_val; RanPAC's rule), then W is refitted on all images.
 *
 * Validation figures (what a sweep may rank by, eval.rank_by) need
 * classifiers that never saw the held-out images: sotu_cls_fit can also give
 * the fit-only model, NCM prototypes from the fitting images' class means
 * (sum_fit) and W = (G_fit + λ I)^-1 S_fit at the λ picked.
 *
 * Statistics are one block of doubles (sotu_cls_stats.data) so a rank can
 * send them as they are; sotu_cls_stats_add adds a task's block (classes
 * [0, K)) into the global block at a class offset. Addition order decides
 * the rounding: callers add per-task blocks in task order on one rank so
 * that any number of ranks gives bitwise the same classifier.
 */
#ifndef SOTU_EVAL_CLASSIFIER_H
#define SOTU_EVAL_CLASSIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef struct {
    int C, D, M;
    double *data;    /* one block of sotu_cls_stats_size(C, D, M) doubles: */
    double *sum;     /* [C, D] Σ φ per class (fit and held-out images) */
    double *count;   /* [C] */
    double *G_fit;   /* [M, M] */
    double *G_val;   /* [M, M] */
    double *S_fit;   /* [C, M] Σ h per class, fitting images */
    double *S_val;   /* [C, M] held-out images */
    double *n_val;   /* [1] */
    double *sum_fit; /* [C, D] Σ φ per class, fitting images only */
    double *count_fit; /* [C] */
} sotu_cls_stats;

size_t sotu_cls_stats_size(int C, int D, int M);
sotu_status sotu_cls_stats_init(sotu_cls_stats *s, int C, int D, int M);
void sotu_cls_stats_zero(sotu_cls_stats *s);
void sotu_cls_stats_free(sotu_cls_stats *s); /* accepts NULL and zeroed */
/* Points s's fields into data (sotu_cls_stats_size(C, D, M) doubles, not
 * owned), e.g. a block received from a rank. */
void sotu_cls_stats_wrap(sotu_cls_stats *s, int C, int D, int M, double *data);

/* dst (C classes) += src (K classes) with src's class k at dst's class
 * offset + k. Same D and M. */
void sotu_cls_stats_add(sotu_cls_stats *dst, const sotu_cls_stats *src, int offset);

/* The projection R [M, D] (M > 0) from seed; the same on every rank. */
void sotu_cls_projection(float *R, int M, int D, uint64_t seed);

/* h [n, M] = ReLU(φ Rᵀ), or a copy of φ when R is NULL (M = D). */
void sotu_cls_project(const float *R, int M, int D, const float *phi, int n, float *h);

/* Adds n images (features phi [n, D], projected h [n, M], labels in [0, C))
 * to s; held_out[k] (may be NULL: none) sends image k to the held-out sums.
 * SOTU_ERR_NOMEM (s unchanged) if its chunk buffers cannot be allocated. */
sotu_status sotu_cls_stats_accumulate(sotu_cls_stats *s, const float *phi, const float *h,
                               const int32_t *labels, const bool *held_out, int n);

typedef struct {
    int C, D, M;
    bool *valid;     /* [C] classes with at least one fitting image */
    float *protos;   /* [C, D] unit-norm class means (zero when not valid) */
    float *W;        /* [C, M] ridge weights, row c = W[:, c] */
    double lambda;   /* the ridge λ picked */
} sotu_cls_model;

/* Fits NCM prototypes and, with ridge, the ridge weights on the classes
 * [0, C_use) of s (the others stay invalid). fit_only (may be NULL) gets the
 * same classifiers from the fitting images alone (prototypes from sum_fit,
 * valid where count_fit > 0; W = (G_fit + λ I)^-1 S_fit at m's λ), for
 * figures on the held-out images; m is the same with or without it.
 * SOTU_ERR_NUMERIC if G + λI is not positive definite for any λ of the grid;
 * SOTU_ERR_NOMEM. */
sotu_status sotu_cls_fit(const sotu_cls_stats *s, int C_use, bool ridge, sotu_cls_model *m,
                         sotu_cls_model *fit_only);
sotu_status sotu_cls_model_init(sotu_cls_model *m, int C, int D, int M);
void sotu_cls_model_free(sotu_cls_model *m); /* accepts NULL and zeroed */

/* pred[k] = the valid class in [lo, hi) with the highest score for image k
 * (the first on ties; -1 if none is valid): cosine to the prototypes (NCM,
 * from phi [n, D]) or the ridge score (from h [n, M]). SOTU_ERR_NOMEM if the
 * [n, C] score buffer cannot be allocated. */
sotu_status sotu_cls_predict_ncm(const sotu_cls_model *m, const float *phi, int n, int lo,
                                 int hi, int32_t *pred);
sotu_status sotu_cls_predict_ridge(const sotu_cls_model *m, const float *h, int n, int lo,
                                   int hi, int32_t *pred);

#endif
