/* Distributed evaluation equals serial evaluation exactly: a tiny random ViT,
 * four small random tasks (one inactive), per-row perturbed backbones;
 * sotu_evaluate_matrices on 3 ranks, then on rank 0 alone (nranks 1, no MPI),
 * every accuracy matrix, the ridge λ and every validation figure (task heads
 * and the fit-only classifiers) compared bit for bit.
 *
 * Then, on rank 0, the fit-only classifiers' validation figures against an
 * independent reference (reference_val): the final row's features of every
 * task's fitting and hold-out images, NCM and ridge (h = φ: eval.rp_dim 0)
 * refitted here in double with plain loops and Gaussian elimination (no
 * BLAS, LAPACK or eval/classifier.c), λ checked against the grid's held-out
 * errors, the hold-out images classified and counted. */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/log.h"
#include "common/rng.h"
#include "eval/evaluate.h"
#include "io/taskset.h"
#include "mpi/mpi_util.h"
#include "worker/finetune.h"
#include "worker/vit.h"

enum { T = 4, S = 8 };

typedef struct {
    const float *theta0;
    size_t n;
} ctx_t;

static sotu_status backbone(void *ctx, int row, float *params)
{
    const ctx_t *c = ctx;
    for (size_t i = 0; i < c->n; i++)
        params[i] = c->theta0[i] * (1.0f + 0.05f * (float)row * ((float)(i % 7) - 3.0f) / 3.0f);
    return SOTU_OK;
}

/* Rank 0 writes the tasks and the manifest into dir. */
static void make_tasks(const char *dir, uint64_t seed)
{
    sotu_manifest man = {0};
    snprintf(man.name, sizeof man.name, "tiny");
    man.n_tasks = T;
    man.tasks = calloc(T, sizeof *man.tasks);
    sotu_rng r;
    sotu_rng_init(&r, seed, 77);
    for (int t = 0; t < T; t++) {
        sotu_taskset ts = {0};
        snprintf(ts.name, sizeof ts.name, "task%d", t);
        ts.classes = 2 + t % 2;
        ts.class_names = calloc((size_t)ts.classes, sizeof *ts.class_names);
        for (int c = 0; c < ts.classes; c++)
            snprintf(ts.class_names[c], sizeof ts.class_names[c], "c%d", c);
        ts.height = ts.width = S;
        ts.channels = 1;
        ts.n_train = 45 + 3 * t;
        ts.n_test = 21 + t;
        ts.train_images = malloc((size_t)ts.n_train * S * S);
        ts.test_images = malloc((size_t)ts.n_test * S * S);
        ts.train_labels = malloc(sizeof(int32_t) * (size_t)ts.n_train);
        ts.test_labels = malloc(sizeof(int32_t) * (size_t)ts.n_test);
        for (int k = 0; k < ts.n_train + ts.n_test; k++) {
            bool tr = k < ts.n_train;
            int idx = tr ? k : k - ts.n_train, c = (int)sotu_rng_below(&r, (uint64_t)ts.classes);
            uint8_t *img = (tr ? ts.train_images : ts.test_images) + (size_t)idx * S * S;
            for (int p = 0; p < S * S; p++)
                img[p] = (uint8_t)((p % ts.classes == c ? 150 : 40) + sotu_rng_below(&r, 60));
            (tr ? ts.train_labels : ts.test_labels)[idx] = c;
        }
        char path[1200];
        snprintf(path, sizeof path, "%s/t%d.h5", dir, t);
        CHECK(sotu_taskset_write(path, &ts) == SOTU_OK);
        snprintf(man.tasks[t].name, sizeof man.tasks[t].name, "%s", ts.name);
        snprintf(man.tasks[t].file, sizeof man.tasks[t].file, "t%d.h5", t);
        man.tasks[t].classes = ts.classes;
        man.tasks[t].n_train = ts.n_train;
        man.tasks[t].n_test = ts.n_test;
        sotu_taskset_free(&ts);
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/manifest.yaml", dir);
    CHECK(sotu_manifest_write(path, &man) == SOTU_OK);
    sotu_manifest_free(&man);
}

/* Solves A X = B in place (A [n, n], B [n, r], row-major) by Gaussian
 * elimination with partial pivoting; false if A is singular. */
static bool gauss_solve(double *A, double *B, int n, int r)
{
    for (int k = 0; k < n; k++) {
        int p = k;
        for (int i = k + 1; i < n; i++)
            if (fabs(A[i * n + k]) > fabs(A[p * n + k]))
                p = i;
        if (A[p * n + k] == 0)
            return false;
        for (int j = 0; j < n; j++) {
            double t = A[k * n + j];
            A[k * n + j] = A[p * n + j];
            A[p * n + j] = t;
        }
        for (int j = 0; j < r; j++) {
            double t = B[k * r + j];
            B[k * r + j] = B[p * r + j];
            B[p * r + j] = t;
        }
        for (int i = k + 1; i < n; i++) {
            double f = A[i * n + k] / A[k * n + k];
            for (int j = k; j < n; j++)
                A[i * n + j] -= f * A[k * n + j];
            for (int j = 0; j < r; j++)
                B[i * r + j] -= f * B[k * r + j];
        }
    }
    for (int k = n - 1; k >= 0; k--)
        for (int j = 0; j < r; j++) {
            double v = B[k * r + j];
            for (int i = k + 1; i < n; i++)
                v -= A[k * n + i] * B[i * r + j];
            B[k * r + j] = v / A[k * n + k];
        }
    return true;
}

/* X [D, C] = (G + λI)^-1 S with G [D, D], S [D, C]. */
static bool ridge_ref(const double *G, const double *Sm, double lambda, int D, int C, double *X)
{
    double *A = malloc(sizeof(double) * D * D);
    memcpy(A, G, sizeof(double) * D * D);
    for (int i = 0; i < D; i++)
        A[i * D + i] += lambda;
    memcpy(X, Sm, sizeof(double) * D * C);
    bool ok = gauss_solve(A, X, D, C);
    free(A);
    return ok;
}

/* Σ over the n images (x [n, D], global labels y) of ||onehot(y) - Xᵀx||². */
static double sq_error(const double *X, const float *x, const int32_t *y, int n, int D, int C)
{
    double e = 0;
    for (int k = 0; k < n; k++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int i = 0; i < D; i++)
                s += X[i * C + c] * x[(size_t)k * D + i];
            e += ((c == y[k]) - s) * ((c == y[k]) - s);
        }
    return e;
}

/* The class in [lo, hi) with a fitting image (valid) scoring highest for x
 * (first on ties): cosine to the class means, or xᵀ X[:, c]. */
static int argmax_ref(const double *mean, const double *X, const bool *valid, const float *x,
                      int D, int C, int lo, int hi)
{
    int best = -1;
    double bs = 0;
    for (int c = lo; c < hi; c++) {
        if (!valid[c])
            continue;
        double s = 0, nm = 0, nx = 0;
        for (int i = 0; i < D; i++) {
            double w = mean ? mean[c * D + i] : X[i * C + c];
            s += w * x[i];
            nm += w * w;
            nx += (double)x[i] * x[i];
        }
        if (mean)
            s /= sqrt(nm) * sqrt(nx);
        if (best < 0 || s > bs)
            best = c, bs = s;
    }
    return best;
}

/* Rank 0: sotu's fit-only validation figures of the final row (val[c][t],
 * λ lambda) against the reference (file comment). cfg has eval.rp_dim 0,
 * eval.fit_per_task 0 (every training image left after the hold-out fits). */
static void reference_val(const sotu_manifest *man, const sotu_config *cfg, const vit_config *vc,
                          const ctx_t *ctx, const bool *active, double *const val[SOTU_EV_N],
                          double lambda)
{
    int D = vc->dim, off[T + 1], C = 0;
    off[0] = 0;
    for (int t = 0; t < T; t++)
        off[t + 1] = C += man->tasks[t].classes;
    float *params = malloc(sizeof(float) * ctx->n);
    backbone((void *)ctx, T - 1, params);
    float *fx[T] = {0}, *vx[T] = {0};
    int32_t *fy[T] = {0}, *vy[T] = {0};
    int nf[T] = {0}, nv[T] = {0};
    double *G = calloc((size_t)D * D, sizeof(double)), *Sy = calloc((size_t)D * C, sizeof(double));
    double *mean = calloc((size_t)C * D, sizeof(double)), trace = 0;
    bool *valid = calloc((size_t)C, sizeof(bool));
    for (int t = 0; t < T; t++) {
        if (!active[t])
            continue;
        sotu_taskset ts = {0};
        vit_model m = {0};
        CHECK(sotu_taskset_read(man->tasks[t].path, &ts) == SOTU_OK);
        CHECK(sotu_taskset_hold_out(&ts, cfg->data.val_fraction, cfg->train.seed,
                                    (uint32_t)t) == SOTU_OK);
        CHECK(vit_init(&m, vc, cfg->train.batch_size) == SOTU_OK);
        memcpy(m.params, params, sizeof(float) * ctx->n);
        CHECK(sotu_finetune_reset_head(&m, ts.classes, cfg->train.batch_size, 0, (uint32_t)t) ==
              SOTU_OK);
        nf[t] = ts.n_train;
        nv[t] = ts.n_val;
        fx[t] = malloc(sizeof(float) * (size_t)nf[t] * D);
        vx[t] = malloc(sizeof(float) * (size_t)nv[t] * D);
        fy[t] = malloc(sizeof(int32_t) * (size_t)nf[t]);
        vy[t] = malloc(sizeof(int32_t) * (size_t)nv[t]);
        CHECK(sotu_finetune_eval_cfg(&m, ts.train_images, NULL, nf[t], S, S, 1, cfg, NULL,
                                     fx[t], NULL) == SOTU_OK);
        CHECK(sotu_finetune_eval_cfg(&m, ts.val_images, NULL, nv[t], S, S, 1, cfg, NULL, vx[t],
                                     NULL) == SOTU_OK);
        for (int k = 0; k < nf[t]; k++)
            fy[t][k] = off[t] + ts.train_labels[k];
        for (int k = 0; k < nv[t]; k++)
            vy[t][k] = off[t] + ts.val_labels[k];
        /* fitting images only: class sums, G = Σ x xᵀ, Sy = Σ x yᵀ */
        for (int k = 0; k < nf[t]; k++) {
            const float *x = fx[t] + (size_t)k * D;
            int c = fy[t][k];
            valid[c] = true;
            for (int i = 0; i < D; i++) {
                mean[c * D + i] += x[i];
                Sy[i * C + c] += x[i];
                for (int j = 0; j < D; j++)
                    G[i * D + j] += (double)x[i] * x[j];
            }
        }
        vit_free(&m);
        sotu_taskset_free(&ts);
    }
    for (int i = 0; i < D; i++)
        trace += G[i * D + i];

    /* λ: sotu's is on the grid and its held-out error is the grid's least.
     * Relative 1e-6: the features here come in other batches than sotu's
     * (file order, not the fitting subset's), which moves float rounding. */
    double *X = malloc(sizeof(double) * D * C), best = INFINITY, base = trace / D;
    bool on_grid = false;
    for (int k = -8; k <= 2; k++) {
        double l = base * pow(10.0, k), e = 0;
        CHECK(ridge_ref(G, Sy, l, D, C, X));
        for (int t = 0; t < T; t++)
            if (active[t])
                e += sq_error(X, vx[t], vy[t], nv[t], D, C);
        best = fmin(best, e);
        on_grid |= fabs(lambda - l) <= 1e-6 * l;
    }
    CHECK_MSG(on_grid, "ridge λ %.17g is not on the grid %g * 10^[-8, 2]", lambda, base);
    double e_sotu = 0;
    CHECK(ridge_ref(G, Sy, lambda, D, C, X));
    for (int t = 0; t < T; t++)
        if (active[t])
            e_sotu += sq_error(X, vx[t], vy[t], nv[t], D, C);
    CHECK_MSG(e_sotu <= best * (1 + 1e-6), "held-out error at sotu's λ %.17g, the grid's least "
              "%.17g", e_sotu, best);

    int n_checked = 0;
    for (int t = 0; t < T; t++) {
        if (!active[t])
            continue;
        int right[SOTU_EV_N] = {0};
        for (int k = 0; k < nv[t]; k++) {
            const float *x = vx[t] + (size_t)k * D;
            int y = vy[t][k], lo = off[t], hi = off[t + 1];
            right[SOTU_EV_NCM] += argmax_ref(mean, NULL, valid, x, D, C, 0, C) == y;
            right[SOTU_EV_NCM_TIL] += argmax_ref(mean, NULL, valid, x, D, C, lo, hi) == y;
            right[SOTU_EV_RIDGE] += argmax_ref(NULL, X, valid, x, D, C, 0, C) == y;
            right[SOTU_EV_RIDGE_TIL] += argmax_ref(NULL, X, valid, x, D, C, lo, hi) == y;
        }
        for (int c = 1; c < SOTU_EV_N; c++) {
            double want = (double)right[c] / nv[t];
            CHECK_MSG(val[c][t] == want, "task %d %s: sotu's validation accuracy %.6f, the "
                      "reference's %.6f (%d of %d)", t, sotu_eval_classifier_name(c), val[c][t],
                      want, right[c], nv[t]);
            n_checked++;
        }
        printf("reference task %d: %d fitting, %d hold-out images; ncm %d ridge %d ncm_til %d "
               "ridge_til %d right\n", t, nf[t], nv[t], right[SOTU_EV_NCM], right[SOTU_EV_RIDGE],
               right[SOTU_EV_NCM_TIL], right[SOTU_EV_RIDGE_TIL]);
    }
    CHECK(n_checked == 3 * 4);
    printf("reference: λ %.6g (grid base %.6g), %d validation figures equal\n", lambda, base,
           n_checked);
    for (int t = 0; t < T; t++) {
        free(fx[t]);
        free(vx[t]);
        free(fy[t]);
        free(vy[t]);
    }
    free(params);
    free(G);
    free(Sy);
    free(mean);
    free(valid);
    free(X);
}

static bool same(const double *a, const double *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i]))))
            return false;
    return true;
}

int main(int argc, char **argv)
{
    int rank = 0, nranks = 1;
    if (sotu_mpi_init(&argc, &argv, &rank, &nranks) != SOTU_OK)
        return 1;
    uint64_t seed = 4242;
    if (rank == 0)
        printf("seed %llu, %d ranks\n", (unsigned long long)seed, nranks);
    char dir[256] = "/tmp/sotu-evalmpi-XXXXXX";
    if (rank == 0 && !mkdtemp(dir))
        sotu_mpi_fail(MPI_ERR_OTHER, "mkdtemp", __FILE__, __LINE__);
    if (rank == 0)
        make_tasks(dir, seed);
    sotu_mpi_bcast_bytes(dir, sizeof dir, 0);
    SOTU_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));

    sotu_config cfg;
    sotu_config_defaults(&cfg);
    cfg.train.batch_size = 8;
    cfg.eval.rp_dim = 24;
    cfg.eval.fit_per_task = 40;
    cfg.eval.every = 1;
    char mpath[300];
    snprintf(mpath, sizeof mpath, "%s/manifest.yaml", dir);
    sotu_manifest man = {0};
    CHECK(sotu_manifest_read(mpath, &man) == SOTU_OK);

    vit_config vc = {S, 1, 4, 16, 2, 2, 32, 5};
    vit_model m0 = {0};
    CHECK(vit_init(&m0, &vc, 1) == SOTU_OK);
    vit_init_random(&m0, seed);
    /* timm's 0.02 init leaves images nearly indistinguishable: amplify the patches. */
    const sotu_tensor_info *pe = &m0.table.t[sotu_tensor_find(&m0.table, "patch_embed.proj.weight")];
    for (size_t i = 0; i < pe->count; i++)
        m0.params[pe->offset + i] *= 40.0f;
    ctx_t ctx = {m0.params, m0.num_params};

    bool active[T] = {true, true, false, true};
    float *hw[T] = {0}, *hb[T] = {0};
    sotu_rng r;
    sotu_rng_init(&r, seed, 5);
    for (int t = 0; t < T; t++) {
        int K = man.tasks[t].classes;
        hw[t] = malloc(sizeof(float) * (size_t)K * vc.dim);
        hb[t] = malloc(sizeof(float) * (size_t)K);
        for (int i = 0; i < K * vc.dim; i++)
            hw[t][i] = 0.3f * sotu_rng_normal(&r);
        for (int i = 0; i < K; i++)
            hb[t][i] = 0.1f * sotu_rng_normal(&r);
    }
    sotu_eval_input in = {.vc = &vc, .n_params = m0.num_params, .man = &man, .cfg = &cfg,
                          .active = active, .head_w = hw, .head_b = hb, .backbone = backbone,
                          .ctx = &ctx, .want = {true, true, true, true, true}, .label = "test"};
    double *dist[SOTU_EV_N] = {0}, *ser[SOTU_EV_N] = {0};
    for (int c = 0; c < SOTU_EV_N; c++) {
        dist[c] = malloc(sizeof(double) * T * T);
        ser[c] = malloc(sizeof(double) * T * T);
    }
    /* Validation figures, [0]: the task heads' (val_acc), [c]: classifier c's. */
    double vd[SOTU_EV_N][T], vs[SOTU_EV_N][T];
    in.val_acc = vd[0];
    for (int c = 1; c < SOTU_EV_N; c++)
        in.cls_val_acc[c] = vd[c];
    double lam_d = 0, lam_s = 0;
    CHECK(sotu_evaluate_matrices(&in, rank, nranks, dist, &lam_d) == SOTU_OK);
    if (rank == 0) {
        in.val_acc = vs[0];
        for (int c = 1; c < SOTU_EV_N; c++)
            in.cls_val_acc[c] = vs[c];
        CHECK(sotu_evaluate_matrices(&in, 0, 1, ser, &lam_s) == SOTU_OK);
        for (int c = 0; c < SOTU_EV_N; c++) {
            CHECK_MSG(same(vd[c], vs[c], T), "validation figure of %s differs",
                      sotu_eval_classifier_name(c));
            printf("%-10s validation:", sotu_eval_classifier_name(c));
            for (int t = 0; t < T; t++) {
                CHECK_MSG(active[t] ? vd[c][t] >= 0 && vd[c][t] <= 1 : isnan(vd[c][t]),
                          "%s validation of task %d: %g", sotu_eval_classifier_name(c), t,
                          vd[c][t]);
                printf(" %.4f", vd[c][t]);
            }
            printf("\n");
        }
        CHECK_MSG(lam_d == lam_s, "ridge lambda %.17g (distributed) vs %.17g (serial)", lam_d,
                  lam_s);
        CHECK(lam_d > 0);
        for (int c = 0; c < SOTU_EV_N; c++) {
            CHECK_MSG(same(dist[c], ser[c], T * T), "classifier %s differs",
                      sotu_eval_classifier_name(c));
            int n = 0;
            for (int i = 0; i < T; i++)
                for (int j = 0; j < T; j++) {
                    double v = dist[c][i * T + j];
                    bool want = j <= i && active[j];
                    CHECK_MSG(want ? (v >= 0 && v <= 1) : isnan(v), "%s A[%d][%d] = %g",
                              sotu_eval_classifier_name(c), i, j, v);
                    n += !isnan(v);
                }
            CHECK(n == 1 + 2 + 2 + 3);
            printf("%-10s last row:", sotu_eval_classifier_name(c));
            for (int j = 0; j < T; j++)
                printf(" %.4f", dist[c][(T - 1) * T + j]);
            printf("\n");
        }
        /* The fit-only classifiers against the reference: h = φ, every
         * training image left after a larger hold-out fits, the last row. */
        sotu_config rc = cfg;
        rc.eval.rp_dim = 0;
        rc.eval.fit_per_task = 0;
        rc.data.val_fraction = 0.3;
        sotu_eval_input ri = in;
        ri.cfg = &rc;
        ri.last_row_only = true;
        ri.val_acc = NULL;
        for (int c = 1; c < SOTU_EV_N; c++)
            ri.cls_val_acc[c] = vs[c];
        double lam_r = NAN;
        CHECK(sotu_evaluate_matrices(&ri, 0, 1, ser, &lam_r) == SOTU_OK);
        reference_val(&man, &rc, &vc, &ctx, active, (double *const *)(double *[SOTU_EV_N]){
                          NULL, vs[1], vs[2], vs[3], vs[4]}, lam_r);

        /* Without a hold-out no validation figure. */
        rc.data.val_fraction = 0;
        ri.val_acc = vs[0];
        CHECK(sotu_evaluate_matrices(&ri, 0, 1, ser, &lam_r) == SOTU_OK);
        for (int c = 0; c < SOTU_EV_N; c++)
            for (int t = 0; t < T; t++)
                CHECK_MSG(isnan(vs[c][t]), "val_fraction 0: %s validation of task %d is %g",
                          sotu_eval_classifier_name(c), t, vs[c][t]);

        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
    for (int c = 0; c < SOTU_EV_N; c++) {
        free(dist[c]);
        free(ser[c]);
    }
    for (int t = 0; t < T; t++) {
        free(hw[t]);
        free(hb[t]);
    }
    vit_free(&m0);
    sotu_manifest_free(&man);
    int fails = check_failures, any = 0;
    SOTU_MPI_CHECK(MPI_Allreduce(&fails, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
    int rc = rank == 0 ? check_finish("test_eval_mpi") : (fails ? 1 : 0);
    sotu_mpi_finalize();
    return any ? (rc ? rc : 1) : rc;
}
