#include "common/blas_core.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/log.h"

#define REEXEC_MARKER "SOTU_BLAS_REEXEC"
#define CHECK_TOLERANCE 1e-4

static sotu_blas_info info;
static bool info_ready;

int sotu_blas_core_level(const char *core)
{
    static const struct {
        const char *name;
        int level;
    } cores[] = {
        {"Katmai", 0},     {"Coppermine", 0},     {"Northwood", 0},  {"Prescott", 0},
        {"Banias", 0},     {"Atom", 0},           {"Core2", 0},      {"Penryn", 0},
        {"Dunnington", 0}, {"Nehalem", 0},        {"Athlon", 0},     {"Opteron", 0},
        {"Opteron_SSE3", 0}, {"Barcelona", 0},    {"Nano", 0},       {"Bobcat", 0},
        {"Generic", 0},    {"Sandybridge", 1},    {"Bulldozer", 1},  {"Piledriver", 1},
        {"Steamroller", 1}, {"Excavator", 1},     {"Haswell", 2},    {"Zen", 2},
        {"SkylakeX", 3},   {"Cooperlake", 3},     {"SapphireRapids", 3},
    };
    if (!core)
        return -1;
    for (size_t i = 0; i < sizeof cores / sizeof cores[0]; i++)
        if (!strcasecmp(core, cores[i].name))
            return cores[i].level;
    return -1;
}

const char *sotu_blas_best_core(const sotu_cpu_features *f)
{
    if (f->avx512f && f->avx512bw && f->avx512dq && f->avx512vl)
        return "SkylakeX";
    if (f->avx2 && f->fma)
        return "Haswell";
    return NULL;
}

const char *sotu_blas_switch_target(const char *user_coretype, const char *chosen,
                                    const char *best)
{
    if (user_coretype && *user_coretype)
        return NULL;
    int have = sotu_blas_core_level(chosen), want = sotu_blas_core_level(best);
    return (have >= 0 && want > have) ? best : NULL;
}

static void copy(char *dst, size_t cap, const char *src) { snprintf(dst, cap, "%s", src ? src : ""); }

static void info_fill_base(void)
{
    memset(&info, 0, sizeof info);
    copy(info.config, sizeof info.config, openblas_get_config());
    /* "OpenBLAS 0.3.21 NO_LAPACKE ..." */
    if (sscanf(info.config, "OpenBLAS %31s", info.version) != 1)
        copy(info.version, sizeof info.version, "?");
    copy(info.core, sizeof info.core, openblas_get_corename());
    sotu_cpu_features f;
    sotu_cpu_features_read(&f);
    copy(info.best, sizeof info.best, sotu_blas_best_core(&f));
    info_ready = true;
}

const sotu_blas_info *sotu_blas_get_info(void)
{
    if (!info_ready) {
        info_fill_base();
        const char *user = getenv("OPENBLAS_CORETYPE");
        if (user && *user) {
            copy(info.user, sizeof info.user, user);
            info.origin = SOTU_BLAS_CORE_USER;
        } else {
            copy(info.chosen, sizeof info.chosen, info.core);
            info.origin = sotu_blas_core_level(info.core) < 0 ? SOTU_BLAS_CORE_UNRANKED
                                                               : SOTU_BLAS_CORE_AUTO;
        }
    }
    return &info;
}

/* True when the test hook names core among its comma-separated cores. */
static bool test_bad_core(const char *core)
{
    const char *list = getenv("SOTU_TEST_BLAS_BAD_CORE");
    if (!list || !*list)
        return false;
    size_t n = strlen(core);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncasecmp(p, core, n))
            return true;
        p += len + (end ? 1 : 0);
    }
    return false;
}

/* One product C = A op(B) (+ C) against a double loop; A is M x K, the
 * result M x N, both row-major, in the transposition asked for. */
static double check_one(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float *a,
                        float *b, float *c, bool corrupt)
{
    for (int i = 0; i < M * K; i++)
        a[i] = (float)((i * 7919 + 13) % 2001 - 1000) / 1000.0f;
    for (int i = 0; i < K * N; i++)
        b[i] = (float)((i * 104729 + 7) % 1999 - 999) / 999.0f;
    for (int i = 0; i < M * N; i++)
        c[i] = (float)(i % 17) / 17.0f;
    int lda = ta == CblasNoTrans ? K : M, ldb = tb == CblasNoTrans ? N : K;
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 0.5f, a, lda, b, ldb, 1.0f, c, N);
    if (corrupt)
        c[(M / 2) * N + N / 2] += 1.0f;
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double x = ta == CblasNoTrans ? a[i * K + k] : a[k * M + i];
                double y = tb == CblasNoTrans ? b[k * N + j] : b[j * K + k];
                s += x * y;
            }
            double want = 0.5 * s + (double)((i * N + j) % 17) / 17.0;
            double e = fabs(want - (double)c[i * N + j]);
            if (!(e <= worst)) /* NaN counts as the worst */
                worst = isnan(e) ? INFINITY : e;
        }
    return worst;
}

sotu_status sotu_blas_check(double *max_error)
{
    enum { M = 67, N = 45, K = 129 };
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N),
          *c = malloc(sizeof(float) * M * N);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return sotu_error(SOTU_ERR_NOMEM, "sgemm check buffers");
    }
    const char *core = openblas_get_corename();
    bool corrupt = test_bad_core(core ? core : "");
    double worst = check_one(CblasNoTrans, CblasNoTrans, M, N, K, a, b, c, corrupt);
    double e = check_one(CblasNoTrans, CblasTrans, M, N, K, a, b, c, false);
    worst = e > worst ? e : worst;
    e = check_one(CblasTrans, CblasNoTrans, M, N, K, a, b, c, false);
    worst = e > worst ? e : worst;
    free(a);
    free(b);
    free(c);
    if (max_error)
        *max_error = worst;
    if (worst <= CHECK_TOLERANCE)
        return SOTU_OK;
    return sotu_error(SOTU_ERR_NUMERIC, "OpenBLAS %s core: sgemm disagrees with a naive product "
                      "(largest error %.3g, tolerance %g)", core ? core : "?", worst,
                      CHECK_TOLERANCE);
}

double sotu_blas_measure(double budget_s, int *n_out)
{
    int t = openblas_get_num_threads();
    int n = 128 * (int)ceil(2.0 * sqrt(t > 0 ? (double)t : 1.0));
    n = n < 256 ? 256 : n > 1024 ? 1024 : n;
    if (n_out)
        *n_out = n;
    size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(sizeof(float) * nn), *b = malloc(sizeof(float) * nn),
          *c = malloc(sizeof(float) * nn);
    double gflops = 0;
    if (a && b && c) {
        for (size_t i = 0; i < nn; i++) {
            a[i] = (float)(i % 13) * 0.01f;
            b[i] = (float)(i % 7) * 0.02f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        double t0 = sotu_now(), dt = 0;
        int calls = 0;
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n,
                        0.0f, c, n);
            calls++;
            dt = sotu_now() - t0;
        } while (dt < budget_s);
        gflops = 2.0 * (double)n * n * n * calls / dt * 1e-9;
    }
    free(a);
    free(b);
    free(c);
    return gflops;
}

/* Re-executes this program with the same argv and the current environment;
 * returns only when execv failed (errno kept). */
static void reexec(char **argv)
{
    fflush(NULL);
    execv("/proc/self/exe", argv);
}

sotu_status sotu_blas_select(char **argv)
{
    info_fill_base();
    const char *marker = getenv(REEXEC_MARKER);
    char kind[16] = "", chosen[32] = "", other[32] = "";
    double err = 0;
    if (marker && *marker) {
        /* "switch:<chosen>:<target>" or "fallback:<chosen>:<failed>:<error>" */
        int n = sscanf(marker, "%15[^:]:%31[^:]:%31[^:]:%lf", kind, chosen, other, &err);
        unsetenv(REEXEC_MARKER);
        if (n < 3)
            kind[0] = '\0';
    }
    if (!strcmp(kind, "switch")) {
        info.origin = SOTU_BLAS_CORE_SWITCHED;
        copy(info.chosen, sizeof info.chosen, chosen);
        copy(info.best, sizeof info.best, other);
        double e = 0;
        if (sotu_blas_check(&e) == SOTU_OK)
            return SOTU_OK;
        char m[128];
        snprintf(m, sizeof m, "fallback:%s:%s:%.3g", chosen, info.core, e);
        if (setenv("OPENBLAS_CORETYPE", chosen, 1) == 0 && setenv(REEXEC_MARKER, m, 1) == 0)
            reexec(argv);
        return sotu_error(SOTU_ERR_NUMERIC, "OpenBLAS %s core (set by sotu for this CPU) fails "
                          "its sgemm check (largest error %.3g) and sotu could not restart with "
                          "OpenBLAS's own choice, %s: %s; set OPENBLAS_CORETYPE=%s", info.core, e,
                          chosen, strerror(errno), chosen);
    }
    if (!strcmp(kind, "fallback")) {
        info.origin = SOTU_BLAS_CORE_FALLBACK;
        copy(info.chosen, sizeof info.chosen, chosen);
        copy(info.failed, sizeof info.failed, other);
        info.failed_error = err;
        double e = 0;
        if (sotu_blas_check(&e) == SOTU_OK)
            return SOTU_OK;
        return sotu_error(SOTU_ERR_NUMERIC, "OpenBLAS's sgemm disagrees with a naive product on "
                          "this CPU with the %s core (largest error %.3g) and with the %s core "
                          "OpenBLAS chose (largest error %.3g): set OPENBLAS_CORETYPE to a core "
                          "that works here (e.g. Haswell or Prescott; `sotu doctor` checks)",
                          other, err, info.core, e);
    }

    const char *user = getenv("OPENBLAS_CORETYPE");
    if (user && *user) {
        copy(info.user, sizeof info.user, user);
        info.origin = SOTU_BLAS_CORE_USER;
        return SOTU_OK;
    }
    const char *fake = getenv("SOTU_TEST_BLAS_CHOSEN");
    copy(info.chosen, sizeof info.chosen, fake && *fake ? fake : info.core);
    const char *target = sotu_blas_switch_target(NULL, info.chosen, info.best);
    if (!target) {
        info.origin = sotu_blas_core_level(info.chosen) < 0 ? SOTU_BLAS_CORE_UNRANKED
                                                            : SOTU_BLAS_CORE_AUTO;
        return SOTU_OK;
    }
    char m[96];
    snprintf(m, sizeof m, "switch:%s:%s", info.chosen, target);
    if (setenv("OPENBLAS_CORETYPE", target, 1) == 0 && setenv(REEXEC_MARKER, m, 1) == 0)
        reexec(argv);
    int e = errno;
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(REEXEC_MARKER);
    info.origin = SOTU_BLAS_CORE_NO_EXEC;
    SOTU_DEBUG("re-executing /proc/self/exe with OPENBLAS_CORETYPE=%s failed: %s", target,
               strerror(e));
    return SOTU_OK;
}

void sotu_blas_origin_short(const sotu_blas_info *b, char *buf, size_t cap)
{
    switch (b->origin) {
    case SOTU_BLAS_CORE_AUTO: snprintf(buf, cap, "chosen by OpenBLAS"); break;
    case SOTU_BLAS_CORE_USER: snprintf(buf, cap, "OPENBLAS_CORETYPE=%s", b->user); break;
    case SOTU_BLAS_CORE_SWITCHED: snprintf(buf, cap, "switched by sotu from %s", b->chosen); break;
    case SOTU_BLAS_CORE_FALLBACK:
        snprintf(buf, cap, "chosen by OpenBLAS; %s failed the sgemm check", b->failed);
        break;
    case SOTU_BLAS_CORE_UNRANKED: snprintf(buf, cap, "chosen by OpenBLAS, unranked"); break;
    case SOTU_BLAS_CORE_NO_EXEC:
        snprintf(buf, cap, "chosen by OpenBLAS; switch to %s failed", b->best);
        break;
    }
}

void sotu_blas_describe(const sotu_blas_info *b, char *buf, size_t cap)
{
    const char *best = b->best[0] ? b->best : NULL;
    switch (b->origin) {
    case SOTU_BLAS_CORE_AUTO:
        if (best && sotu_blas_core_level(b->chosen) >= sotu_blas_core_level(best))
            snprintf(buf, cap, "OPENBLAS_CORETYPE unset; OpenBLAS chose %s, as fast a core as "
                     "this CPU supports (%s level); nothing to change", b->chosen, best);
        else
            snprintf(buf, cap, "OPENBLAS_CORETYPE unset; OpenBLAS chose %s; this CPU supports "
                     "no faster core; nothing to change", b->chosen);
        break;
    case SOTU_BLAS_CORE_USER:
        if (best && sotu_blas_core_level(b->core) >= 0 &&
            sotu_blas_core_level(best) > sotu_blas_core_level(b->core))
            snprintf(buf, cap, "OPENBLAS_CORETYPE=%s set by the user and kept (OpenBLAS runs "
                     "%s); this CPU runs a faster core, %s: unset the variable to let OpenBLAS "
                     "or sotu pick it", b->user, b->core, best);
        else
            snprintf(buf, cap, "OPENBLAS_CORETYPE=%s set by the user and kept (OpenBLAS runs "
                     "%s)", b->user, b->core);
        break;
    case SOTU_BLAS_CORE_SWITCHED:
        snprintf(buf, cap, "OPENBLAS_CORETYPE unset; OpenBLAS chose %s; this CPU supports %s; "
                 "sotu re-executed with OPENBLAS_CORETYPE=%s (OpenBLAS runs %s)", b->chosen,
                 b->best, b->best, b->core);
        break;
    case SOTU_BLAS_CORE_FALLBACK:
        snprintf(buf, cap, "OPENBLAS_CORETYPE unset; OpenBLAS chose %s; sotu switched to %s, "
                 "whose sgemm check failed (largest error %.3g), and went back to %s",
                 b->chosen, b->failed, b->failed_error, b->core);
        break;
    case SOTU_BLAS_CORE_UNRANKED:
        snprintf(buf, cap, "OPENBLAS_CORETYPE unset; OpenBLAS chose %s, a core sotu does not "
                 "rank (a newer OpenBLAS?); nothing to change", b->chosen);
        break;
    case SOTU_BLAS_CORE_NO_EXEC:
        snprintf(buf, cap, "OPENBLAS_CORETYPE unset; OpenBLAS chose %s; this CPU supports %s but "
                 "re-executing /proc/self/exe failed; set OPENBLAS_CORETYPE=%s", b->chosen,
                 b->best, b->best);
        break;
    }
}
