/* Finite-difference helpers shared by the ViT and ResNet gradient checks:
 * a double-precision forward fills `out`, numeric_grad differentiates
 * sum(out * R) by central differences, expect_close compares the float
 * backward with it (max relative error, NaN counts as a failure). */
#ifndef SOTU_TESTS_GRADCHECK_H
#define SOTU_TESTS_GRADCHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"

/* A double forward: fills out from the current parameter values. */
typedef void (*forward_fn)(double *out, void *ctx);

static inline double *to_double(const float *x, size_t n)
{
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

/* d(sum out * R)/d(theta[i]) by central differences, theta perturbed in place. */
static inline void numeric_grad(double *grad, double *theta, size_t n, forward_fn f, void *ctx,
                                const float *R, size_t nout)
{
    double *out = malloc(nout * sizeof *out);
    const double h = 1e-5;
    for (size_t i = 0; i < n; i++) {
        double keep = theta[i], lp = 0.0, lm = 0.0;
        theta[i] = keep + h;
        f(out, ctx);
        for (size_t k = 0; k < nout; k++)
            lp += out[k] * R[k];
        theta[i] = keep - h;
        f(out, ctx);
        for (size_t k = 0; k < nout; k++)
            lm += out[k] * R[k];
        theta[i] = keep;
        grad[i] = (lp - lm) / (2 * h);
    }
    free(out);
}

static inline void expect_close(const char *what, const float *analytic, const double *numeric,
                                size_t n, double tol)
{
    double err = 0.0, ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(analytic[i] - numeric[i]);
        err = e > err || e != e ? e : err;
        ref = fmax(ref, fabs(numeric[i]));
    }
    double rel = ref > 0 ? err / ref : err;
    printf("  %-40s max rel error %.3g\n", what, rel);
    CHECK_MSG(rel <= tol, "%s: relative error %.3g > %.g", what, rel, tol);
}

#endif
