#include "eval/metrics.h"

#include <math.h>

int sotu_metrics_row_selected(int i, int T, int every)
{
    if (i == T - 1)
        return 1;
    return every > 0 && (i + 1) % every == 0;
}

/* Mean of the non-NaN entries A[i][0..i]; NaN if none. */
static double row_mean(const double *A, int T, int i)
{
    double s = 0;
    int n = 0;
    for (int j = 0; j <= i; j++) {
        double v = A[(long)i * T + j];
        if (!isnan(v)) {
            s += v;
            n++;
        }
    }
    return n ? s / n : NAN;
}

void sotu_metrics_compute(const double *A, int T, sotu_cl_metrics *out)
{
    *out = (sotu_cl_metrics){NAN, NAN, NAN, NAN, 0, -1};
    double inc = 0;
    int n_inc = 0;
    for (int i = 0; i < T; i++) {
        double m = row_mean(A, T, i);
        if (isnan(m))
            continue;
        out->rows++;
        out->last_row = i;
        inc += m;
        n_inc++;
    }
    if (out->last_row < 0)
        return;
    int L = out->last_row;
    out->avg_inc_acc = inc / n_inc;
    out->final_avg_acc = row_mean(A, T, L);

    double f = 0, b = 0;
    int nf = 0, nb = 0;
    for (int j = 0; j < L; j++) {
        double last = A[(long)L * T + j];
        if (isnan(last))
            continue;
        double best = NAN;
        for (int i = j; i < L; i++) {
            double v = A[(long)i * T + j];
            if (!isnan(v) && (isnan(best) || v > best))
                best = v;
        }
        if (!isnan(best)) {
            f += best - last;
            nf++;
        }
        double diag = A[(long)j * T + j];
        if (!isnan(diag)) {
            b += last - diag;
            nb++;
        }
    }
    out->forgetting = nf ? f / nf : NAN;
    out->bwt = nb ? b / nb : NAN;
}
