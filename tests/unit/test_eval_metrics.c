/* Accuracy-matrix metrics on hand-made matrices; NCM and ridge on synthetic
 * separable features; the report writer. With an argument, writes a report
 * of a synthetic evaluation into that directory (for the Chromium test). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/rng.h"
#include "eval/classifier.h"
#include "eval/metrics.h"
#include "eval/report.h"

static void test_metrics(void)
{
    /* T = 3, every row evaluated. */
    const double A[9] = {0.9, NAN, NAN,
                         0.8, 0.7, NAN,
                         0.6, 0.5, 0.4};
    sotu_cl_metrics m;
    sotu_metrics_compute(A, 3, &m);
    CHECK(m.rows == 3 && m.last_row == 2);
    CHECK_NEAR(m.final_avg_acc, 0.5, 1e-12);
    CHECK_NEAR(m.avg_inc_acc, (0.9 + 0.75 + 0.5) / 3, 1e-12);
    /* forgetting: task 0 max(0.9, 0.8) - 0.6 = 0.3; task 1 0.7 - 0.5 = 0.2 */
    CHECK_NEAR(m.forgetting, 0.25, 1e-12);
    /* bwt: (0.6 - 0.9 + 0.5 - 0.7) / 2 */
    CHECK_NEAR(m.bwt, -0.25, 1e-12);

    /* Improving learner: negative forgetting, positive BWT. */
    const double B[4] = {0.5, NAN, 0.7, 0.9};
    sotu_metrics_compute(B, 2, &m);
    CHECK_NEAR(m.forgetting, -0.2, 1e-12);
    CHECK_NEAR(m.bwt, 0.2, 1e-12);
    CHECK_NEAR(m.final_avg_acc, 0.8, 1e-12);

    /* Thinned rows (eval.every = 2 of T = 4: rows 1 and 3) and a failed task 2. */
    const double C[16] = {NAN, NAN, NAN, NAN,
                          1.0, 0.8, NAN, NAN,
                          NAN, NAN, NAN, NAN,
                          0.9, 0.8, NAN, 0.6};
    CHECK(!sotu_metrics_row_selected(0, 4, 2) && sotu_metrics_row_selected(1, 4, 2));
    CHECK(!sotu_metrics_row_selected(2, 4, 2) && sotu_metrics_row_selected(3, 4, 2));
    CHECK(!sotu_metrics_row_selected(1, 4, 0) && sotu_metrics_row_selected(3, 4, 0));
    sotu_metrics_compute(C, 4, &m);
    CHECK(m.rows == 2 && m.last_row == 3);
    CHECK_NEAR(m.final_avg_acc, (0.9 + 0.8 + 0.6) / 3, 1e-12);
    CHECK_NEAR(m.avg_inc_acc, (0.9 + (0.9 + 0.8 + 0.6) / 3) / 2, 1e-12);
    CHECK_NEAR(m.forgetting, (0.1 + 0.0) / 2, 1e-12);
    CHECK_NEAR(m.bwt, 0.0, 1e-12); /* only task 1 has its diagonal: 0.8 - 0.8 */

    double none[4] = {NAN, NAN, NAN, NAN};
    sotu_metrics_compute(none, 2, &m);
    CHECK(m.rows == 0 && isnan(m.final_avg_acc) && isnan(m.forgetting));
    sotu_metrics_compute((const double[1]){0.75}, 1, &m);
    CHECK_NEAR(m.final_avg_acc, 0.75, 0);
    CHECK(isnan(m.forgetting) && isnan(m.bwt));
}

/* C classes of Gaussian blobs around orthogonal-ish means in D dims. */
static void blobs(sotu_rng *r, int n, int C, int D, float noise, float *x, int32_t *y)
{
    for (int k = 0; k < n; k++) {
        int c = k % C;
        y[k] = c;
        for (int i = 0; i < D; i++)
            x[(size_t)k * D + i] = (i % C == c ? 2.0f : 0.0f) + noise * sotu_rng_normal(r);
    }
}

static void test_classifiers(uint64_t seed)
{
    enum { C = 6, D = 12, N = 600, NT = 300 };
    sotu_rng r;
    sotu_rng_init(&r, seed, 99);
    float *x = malloc(sizeof(float) * N * D), *xt = malloc(sizeof(float) * NT * D);
    int32_t y[N], yt[NT], pred[NT];
    bool held[N];
    blobs(&r, N, C, D, 0.3f, x, y);
    blobs(&r, NT, C, D, 0.3f, xt, yt);
    for (int k = 0; k < N; k++)
        held[k] = k % 5 == 4;

    for (int rp = 0; rp <= 64; rp += 64) {
        int M = rp ? rp : D;
        float *R = rp ? malloc(sizeof(float) * M * D) : NULL;
        float *h = malloc(sizeof(float) * N * M), *ht = malloc(sizeof(float) * NT * M);
        if (R)
            sotu_cls_projection(R, M, D, seed);
        sotu_cls_project(R, M, D, x, N, h);
        sotu_cls_project(R, M, D, xt, NT, ht);

        /* Per "task" sums (classes 0-2 and 3-5) added at offsets equal the whole. */
        sotu_cls_stats all, t0, t1, sum;
        CHECK(sotu_cls_stats_init(&all, C, D, M) == SOTU_OK);
        CHECK(sotu_cls_stats_init(&t0, 3, D, M) == SOTU_OK);
        CHECK(sotu_cls_stats_init(&t1, 3, D, M) == SOTU_OK);
        CHECK(sotu_cls_stats_init(&sum, C, D, M) == SOTU_OK);
        CHECK(sotu_cls_stats_accumulate(&all, x, h, y, held, N) == SOTU_OK);
        for (int k = 0; k < N; k++) {
            int32_t l = y[k] % 3;
            CHECK(sotu_cls_stats_accumulate(y[k] < 3 ? &t0 : &t1, x + (size_t)k * D,
                                            h + (size_t)k * M, &l, &held[k], 1) == SOTU_OK);
        }
        sotu_cls_stats_add(&sum, &t0, 0);
        sotu_cls_stats_add(&sum, &t1, 3);
        double maxdiff = 0;
        for (size_t i = 0; i < sotu_cls_stats_size(C, D, M); i++)
            if (fabs(sum.data[i] - all.data[i]) > maxdiff)
                maxdiff = fabs(sum.data[i] - all.data[i]);
        CHECK_MSG(maxdiff < 1e-6 * N, "per-task sums differ from the whole by %g", maxdiff);
        CHECK_NEAR(all.n_val[0], N / 5, 0);

        sotu_cls_model m;
        CHECK(sotu_cls_model_init(&m, C, D, M) == SOTU_OK);
        CHECK(sotu_cls_fit(&all, C, true, &m, NULL) == SOTU_OK);
        CHECK(m.lambda > 0);
        int right_ncm = 0, right_ridge = 0;
        CHECK(sotu_cls_predict_ncm(&m, xt, NT, 0, C, pred) == SOTU_OK);
        for (int k = 0; k < NT; k++)
            right_ncm += pred[k] == yt[k];
        CHECK(sotu_cls_predict_ridge(&m, ht, NT, 0, C, pred) == SOTU_OK);
        for (int k = 0; k < NT; k++)
            right_ridge += pred[k] == yt[k];
        CHECK_MSG(right_ncm >= NT * 98 / 100, "NCM %d/%d (rp %d)", right_ncm, NT, rp);
        CHECK_MSG(right_ridge >= NT * 98 / 100, "ridge %d/%d (rp %d)", right_ridge, NT, rp);
        /* Restricted to classes [3, 6): predictions stay in range. */
        CHECK(sotu_cls_predict_ridge(&m, ht, NT, 3, 6, pred) == SOTU_OK);
        for (int k = 0; k < NT; k++)
            CHECK(pred[k] >= 3 && pred[k] < 6);
        /* Only classes [0, 3) fitted: others invalid, never predicted. */
        CHECK(sotu_cls_fit(&all, 3, true, &m, NULL) == SOTU_OK);
        CHECK(m.valid[2] && !m.valid[3]);
        CHECK(sotu_cls_predict_ncm(&m, xt, NT, 0, C, pred) == SOTU_OK);
        for (int k = 0; k < NT; k++)
            CHECK(pred[k] >= 0 && pred[k] < 3);
        sotu_cls_model_free(&m);
        sotu_cls_stats_free(&all);
        sotu_cls_stats_free(&t0);
        sotu_cls_stats_free(&t1);
        sotu_cls_stats_free(&sum);
        free(R);
        free(h);
        free(ht);
    }
    free(x);
    free(xt);
}

/* A synthetic evaluation of T tasks: sotu, dense, frozen, a keep point. */
static void fill_report(sotu_eval_report *rep, int T)
{
    rep->T = T;
    bool all[SOTU_EV_N] = {true, true, true, true, true};
    const char *names[] = {"sotu", "dense", "frozen", "sotu@0.05"};
    const double keeps[] = {0.2, 1.0, NAN, 0.05};
    for (int k = 0; k < 4; k++) {
        sotu_eval_method *m = sotu_eval_report_add(rep, names[k], keeps[k], all);
        CHECK(m != NULL);
        if (!m)
            return;
        m->last_row_only = k == 3;
        for (int c = 0; c < SOTU_EV_N; c++)
            for (int i = 0; i < T; i++)
                for (int j = 0; j <= i; j++)
                    if (k != 3 || i == T - 1)
                        m->acc[c][(size_t)i * T + j] =
                            0.95 - 0.03 * (i - j) * (k == 1 ? 2 : 1) - 0.02 * c - 0.05 * (k == 3);
        sotu_eval_method_finish(m, T);
    }
}

static void test_report(const char *dir)
{
    enum { T = 5 };
    sotu_eval_report rep = {0};
    fill_report(&rep, T);
    const char *names[T] = {"t00-a", "t01-b<&>", "t02-c", "t03-d", "t04-e"};
    int classes[T] = {2, 2, 2, 2, 2};
    double ft[T] = {0.97, 0.96, 0.99, 0.98, NAN};
    int64_t kept[T] = {1234, 1235, 1236, 1237, 1238}, bytes[T] = {5001, 5002, 5003, 5004, 5005};
    /* training curves: 4 logged steps per task, the loss falling */
    double x[4] = {1, 2, 3, 4}, loss[T][4], lr[4] = {1e-3, 1e-3, 5e-4, 1e-4},
           gn[4] = {2.0, 1.5, 1.2, 1.0};
    sotu_scalar_curve curves[T];
    for (int t = 0; t < T; t++) {
        for (int k = 0; k < 4; k++)
            loss[t][k] = 0.7 - 0.1 * k + 0.01 * t;
        curves[t] = (sotu_scalar_curve){4, 4, x, loss[t], lr, gn};
    }
    char *args[] = {"sotu", "train", "cfg<1>.yaml", NULL};
    sotu_report_set_command(3, args);
    sotu_report_info info = {.title = dir, .T = T, .task_names = names, .classes = classes,
                             .finetuned = ft, .keep = 0.2, .merge_mode = "sum",
                             .collision_rate = 0.1, .seconds = 12.5, .ranks = 3,
                             .kept = kept, .bytes = bytes, .max_cosine = 0.0123,
                             .config_yaml = "train:\n  lr: 0.001\n", .threads = 2,
                             .curves = curves};
    CHECK(sotu_report_write(dir, &info, &rep) == SOTU_OK);
    char path[1200];
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    int lines = 0, ch;
    while (f && (ch = fgetc(f)) != EOF)
        lines += ch == '\n';
    if (f)
        fclose(f);
    CHECK_MSG(lines == 1 + 4 * SOTU_EV_N, "summary.csv has %d lines", lines);
    snprintf(path, sizeof path, "%s/report.html", dir);
    f = fopen(path, "r");
    CHECK(f != NULL);
    char *html = calloc(1, 1 << 20);
    size_t n = f ? fread(html, 1, (1 << 20) - 1, f) : 0;
    if (f)
        fclose(f);
    CHECK(n > 1000);
    CHECK(strstr(html, "id=\"heatmap-task-heads\"") && strstr(html, "id=\"lines-til\"") &&
          strstr(html, "id=\"lines-cil\"") && strstr(html, "id=\"per-task\"") &&
          strstr(html, "id=\"keep-curve\""));
    CHECK(strstr(html, "t01-b&lt;&amp;&gt;") && !strstr(html, "<script"));
    CHECK(strstr(html, "id=\"provenance\"") && strstr(html, "cfg&lt;1&gt;.yaml") &&
          strstr(html, "id=\"glossary\"") && strstr(html, "id=\"curve-loss\"") &&
          strstr(html, "<td>1234</td><td>5001</td>") && strstr(html, "max |cosine|"));
    free(html);
    sotu_eval_report_free(&rep);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        test_report(argv[1]);
        return check_finish("test_eval_metrics (report)");
    }
    uint64_t seed = 20240501;
    printf("seed %llu\n", (unsigned long long)seed);
    test_metrics();
    test_classifiers(seed);
    char dir[] = "/tmp/sotu-report-XXXXXX";
    if (mkdtemp(dir)) {
        test_report(dir);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
    return check_finish("test_eval_metrics");
}
