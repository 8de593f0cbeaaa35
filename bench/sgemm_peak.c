/* OpenBLAS sgemm throughput at N threads: the peak that `sotu bench train`
 * is measured against. Prints one JSON object per shape:
 *   {"bench":"sgemm","threads":N,"shape":"square","m":..,"n":..,"k":..,
 *    "seconds":..,"gflops":..}
 * Shapes: large squares (1024, 2048) and the ViT-B/16 training GEMMs at
 * batch 8 (8 * 197 tokens; qkv, proj, fc1, fc2 forward shapes).
 * with "core" naming the OpenBLAS core, picked as sotu picks it (common/blas_core.h:
 * a faster core than OpenBLAS's own choice when OPENBLAS_CORETYPE is unset).
 * usage: sotu_sgemm_peak [--threads N] [--min-seconds S] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/blas_core.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* C[m,n] = A[m,k] B[n,k]^T, the layout of a linear layer's forward. Repeats
 * until min_seconds have passed and reports the best single call. */
static double time_sgemm(int m, int n, int k, double min_seconds, double *best_out)
{
    float *a = malloc(sizeof(float) * (size_t)m * k);
    float *b = malloc(sizeof(float) * (size_t)n * k);
    float *c = malloc(sizeof(float) * (size_t)m * n);
    if (!a || !b || !c) {
        fprintf(stderr, "sotu_sgemm_peak: out of memory at %dx%dx%d\n", m, n, k);
        exit(1);
    }
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < (size_t)n * k; i++)
        b[i] = (float)((i * 40503u) % 1000) * 1e-3f - 0.5f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
    double best = 1e30, start = now();
    int reps = 0;
    while (reps < 3 || now() - start < min_seconds) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c,
                    n);
        double dt = now() - t0;
        if (dt < best)
            best = dt;
        reps++;
    }
    free(a);
    free(b);
    free(c);
    *best_out = best;
    return 2.0 * m * n * (double)k / best / 1e9;
}

int main(int argc, char **argv)
{
    if (sotu_blas_select(argv) != SOTU_OK) {
        fprintf(stderr, "sotu_sgemm_peak: %s\n", sotu_last_error());
        return 5;
    }
    int threads = 1;
    double min_seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-seconds") && i + 1 < argc)
            min_seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: sotu_sgemm_peak [--threads N] [--min-seconds S]\n");
            return 2;
        }
    }
    if (threads < 1) {
        fprintf(stderr, "sotu_sgemm_peak: --threads must be >= 1\n");
        return 2;
    }
    openblas_set_num_threads(threads);
    static const struct {
        const char *shape;
        int m, n, k;
    } shapes[] = {
        {"square", 1024, 1024, 1024},  {"square", 2048, 2048, 2048},
        {"vitb_qkv", 1576, 2304, 768}, {"vitb_proj", 1576, 768, 768},
        {"vitb_fc1", 1576, 3072, 768}, {"vitb_fc2", 1576, 768, 3072},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        double secs;
        double gf = time_sgemm(shapes[i].m, shapes[i].n, shapes[i].k, min_seconds, &secs);
        printf("{\"bench\":\"sgemm\",\"threads\":%d,\"shape\":\"%s\",\"m\":%d,\"n\":%d,\"k\":%d,"
               "\"seconds\":%.6f,\"gflops\":%.2f,\"core\":\"%s\"}\n",
               threads, shapes[i].shape, shapes[i].m, shapes[i].n, shapes[i].k, secs, gf,
               openblas_get_corename());
        fflush(stdout);
    }
    return 0;
}
