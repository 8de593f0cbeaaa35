/* The BLAS core choice (common/blas_core.h) as pure functions: core levels,
 * the best core for a feature set, when sotu switches (never over a user's
 * OPENBLAS_CORETYPE); and, on the real OpenBLAS, the sgemm check (passing,
 * and failing through the test hook) and the measurement.
 * The re-exec itself runs in tests/node/blas_reexec.sh on the real binary. */
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "check.h"
#include "common/blas_core.h"
#include "common/cpu_features.h"

static void test_levels(void)
{
    CHECK(sotu_blas_core_level("Prescott") == 0);
    CHECK(sotu_blas_core_level("NEHALEM") == 0);
    CHECK(sotu_blas_core_level("sandybridge") == 1);
    CHECK(sotu_blas_core_level("Excavator") == 1);
    CHECK(sotu_blas_core_level("Haswell") == 2);
    CHECK(sotu_blas_core_level("Zen") == 2);
    CHECK(sotu_blas_core_level("SkylakeX") == 3);
    CHECK(sotu_blas_core_level("Cooperlake") == 3);
    CHECK(sotu_blas_core_level("CooperLake") == 3);
    CHECK(sotu_blas_core_level("SapphireRapids") == 3);
    CHECK(sotu_blas_core_level("NeoverseN1") == -1);
    CHECK(sotu_blas_core_level("") == -1);
    CHECK(sotu_blas_core_level(NULL) == -1);
}

static void test_best(void)
{
    sotu_cpu_features f;
    memset(&f, 0, sizeof f);
    CHECK(sotu_blas_best_core(&f) == NULL);
    f.avx = f.avx2 = true;
    CHECK(sotu_blas_best_core(&f) == NULL); /* AVX2 without FMA */
    f.fma = true;
    CHECK(!strcmp(sotu_blas_best_core(&f), "Haswell"));
    f.avx512f = f.avx512bw = f.avx512dq = true;
    CHECK(!strcmp(sotu_blas_best_core(&f), "Haswell")); /* no VL */
    f.avx512vl = true;
    CHECK(!strcmp(sotu_blas_best_core(&f), "SkylakeX"));
}

static void test_switch(void)
{
    /* A user's value is never changed, whatever it is. */
    CHECK(sotu_blas_switch_target("Prescott", "Prescott", "SkylakeX") == NULL);
    CHECK(sotu_blas_switch_target("Haswell", "Cooperlake", "SkylakeX") == NULL);
    /* Unset or empty: switch up only. */
    CHECK(!strcmp(sotu_blas_switch_target(NULL, "Prescott", "SkylakeX"), "SkylakeX"));
    CHECK(!strcmp(sotu_blas_switch_target("", "Prescott", "Haswell"), "Haswell"));
    CHECK(!strcmp(sotu_blas_switch_target(NULL, "Haswell", "SkylakeX"), "SkylakeX"));
    CHECK(!strcmp(sotu_blas_switch_target(NULL, "Sandybridge", "Haswell"), "Haswell"));
    CHECK(sotu_blas_switch_target(NULL, "Cooperlake", "SkylakeX") == NULL);
    CHECK(sotu_blas_switch_target(NULL, "SapphireRapids", "SkylakeX") == NULL);
    CHECK(sotu_blas_switch_target(NULL, "Zen", "Haswell") == NULL);
    CHECK(sotu_blas_switch_target(NULL, "SkylakeX", "Haswell") == NULL); /* never down */
    CHECK(sotu_blas_switch_target(NULL, "Prescott", NULL) == NULL);
    CHECK(sotu_blas_switch_target(NULL, "FutureLake", "SkylakeX") == NULL); /* unranked */
}

static void test_check_and_measure(void)
{
    double err = -1;
    unsetenv("SOTU_TEST_BLAS_BAD_CORE");
    CHECK(sotu_blas_check(&err) == SOTU_OK);
    CHECK_MSG(err >= 0 && err < 1e-5, "error %g of core %s", err, openblas_get_corename());

    /* The hook corrupts one output of the running core: the check must see it. */
    char list[80];
    snprintf(list, sizeof list, "Nothing,%s", openblas_get_corename());
    setenv("SOTU_TEST_BLAS_BAD_CORE", list, 1);
    CHECK(sotu_blas_check(&err) == SOTU_ERR_NUMERIC);
    CHECK(err > 0.5);
    CHECK_MSG(strstr(sotu_last_error(), openblas_get_corename()) != NULL, "%s",
              sotu_last_error());
    setenv("SOTU_TEST_BLAS_BAD_CORE", "Nothing", 1);
    CHECK(sotu_blas_check(NULL) == SOTU_OK);
    unsetenv("SOTU_TEST_BLAS_BAD_CORE");

    int n = 0;
    double g = sotu_blas_measure(0.01, &n);
    printf("core %s: sgemm %d^3 %.1f GFLOP/s on %d threads\n", openblas_get_corename(), n, g,
           openblas_get_num_threads());
    CHECK(g > 0.1 && n >= 256);
}

static void test_info(void)
{
    const sotu_blas_info *b = sotu_blas_get_info();
    CHECK(!strncmp(b->config, "OpenBLAS ", 9));
    CHECK(!strcmp(b->core, openblas_get_corename()));
    char s[512];
    sotu_blas_describe(b, s, sizeof s);
    CHECK(strstr(s, "OPENBLAS_CORETYPE") != NULL);
    sotu_cpu_features f;
    sotu_cpu_features_read(&f);
    char names[256];
    sotu_cpu_features_format(&f, names, sizeof names);
    printf("features: %s; best core %s\n", names, b->best[0] ? b->best : "-");
    /* Usable AVX-512 implies usable AVX2 state on every real CPU. */
    CHECK(!f.avx512f || f.os_avx);
}

int main(void)
{
    test_levels();
    test_best();
    test_switch();
    test_check_and_measure();
    test_info();
    return check_finish("test_blas_core");
}
