/* The SoTU mask (common/mask.h): every block's P is a permutation and
 * sotu_mask_offset its inverse; every kernel and listing way gives the
 * brute-force elements (P_β(o) < R_β) for awkward sizes and keeps; masks
 * nest; u < keep agrees with the integer rule; and the statistics a merge
 * relies on: kept fraction, rows kept evenly (stratified by block) and
 * columns like independent draws, two tasks' masks overlapping like
 * independent draws, small tensors unbiased, mask values uniform. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/mask.h"
#include "common/mask_internal.h"

/* Every block's P is a permutation of [0, 64) and sotu_mask_offset its
 * inverse; R is F or F + 1. */
static void test_permutation(void)
{
    const double keeps[] = {0.0, 1.0 / 53, 0.3, 1.0};
    for (size_t k = 0; k < sizeof keeps / sizeof *keeps; k++) {
        sotu_mask m = sotu_mask_of(5, 2, (uint32_t)k, 64 * 500, keeps[k]);
        int bad = 0, bad_bound = 0;
        for (uint32_t b = 0; b < 500; b++) {
            uint8_t seen[64] = {0};
            for (uint32_t o = 0; o < 64; o++) {
                uint32_t r = sotu_mask_rank(&m, b * 64 + o);
                bad += r >= 64 || seen[r]++ || sotu_mask_offset(&m, b, r) != o;
            }
            uint32_t bound = sotu_mask_block_bound(&m, b);
            bad_bound += bound < m.full || bound > m.full + 1 || bound > 64;
        }
        CHECK_MSG(bad == 0 && bad_bound == 0, "keep %g: %d ranks repeated or not inverted, %d bounds",
                  keeps[k], bad, bad_bound);
    }
}

/* Brute force: every i < n whose rank is below its block's bound. */
static uint64_t reference(const sotu_mask *m, uint32_t *out)
{
    uint64_t c = 0;
    for (uint64_t i = 0; i < m->n; i++)
        if (sotu_mask_keeps(m, (uint32_t)i))
            out[c++] = (uint32_t)i;
    return c;
}

static void test_kernels_and_ways(void)
{
    const uint64_t sizes[] = {1, 2, 3, 5, 63, 64, 65, 127, 511, 512, 513, 1000, 4096, 4097,
                              100003, ((uint64_t)1 << 20) + 7};
    const double keeps[] = {0.0, 1e-6, 1.0 / 64, 1.0 / 53, 1.0 / 32, 0.1, 0.2, 0.5, 0.999999, 1.0};
    int ran[SOTU_MASK_KERNEL_COUNT] = {0};
    printf("mask lister: best kernel %s\n", sotu_mask_kernel());
    for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
        for (size_t b = 0; b < sizeof keeps / sizeof *keeps; b++) {
            sotu_mask m = sotu_mask_of(11, 7, (uint32_t)a, sizes[a], keeps[b]);
            uint32_t *want = malloc((sizes[a] + SOTU_MASK_SLACK) * sizeof *want);
            uint32_t *got = malloc((sizes[a] + SOTU_MASK_SLACK) * sizeof *got);
            uint64_t k = reference(&m, want);
            CHECK(k <= sotu_mask_kept_max(&m));
            CHECK(sotu_mask_list(&m, NULL, 0) == k);
            for (int kern = 0; kern < SOTU_MASK_KERNEL_COUNT; kern++) {
                if (!sotu_mask_kernel_available((sotu_mask_kernel_id)kern))
                    continue;
                for (int way = SOTU_MASK_WAY_AUTO; way <= SOTU_MASK_WAY_PAIRS; way++) {
                    if (way == SOTU_MASK_WAY_PAIRS && m.full > 1)
                        continue;
                    memset(got, 0xff, (sizes[a] + SOTU_MASK_SLACK) * sizeof *got);
                    uint64_t c = sotu_mask_list_with((sotu_mask_kernel_id)kern,
                                                     (sotu_mask_way)way, &m, got, k);
                    CHECK_MSG(c == k && !memcmp(got, want, k * sizeof *got),
                              "kernel %s way %d, n %llu keep %g: %llu kept, want %llu",
                              sotu_mask_kernel_name((sotu_mask_kernel_id)kern), way,
                              (unsigned long long)sizes[a], keeps[b], (unsigned long long)c,
                              (unsigned long long)k);
                    if (k > 0) /* too little room: still counted, nothing past the slack */
                        CHECK(sotu_mask_list_with((sotu_mask_kernel_id)kern, (sotu_mask_way)way,
                                                  &m, got, k - 1) == k);
                }
                ran[kern]++;
            }
            free(want);
            free(got);
        }
    for (int kern = 0; kern < SOTU_MASK_KERNEL_COUNT; kern++)
        printf("  %-6s %d cases\n", sotu_mask_kernel_name((sotu_mask_kernel_id)kern), ran[kern]);
}

static void test_nesting_and_u(void)
{
    const uint64_t n = 300007;
    const double keeps[] = {0.003, 1.0 / 53, 0.05, 0.2, 0.7};
    uint8_t *prev = NULL;
    for (int k = 0; k < 5; k++) {
        sotu_mask m = sotu_mask_of(3, 9, 4, n, keeps[k]);
        uint8_t *in = calloc(n, 1);
        int u_disagree = 0, not_nested = 0;
        for (uint64_t i = 0; i < n; i++) {
            in[i] = sotu_mask_keeps(&m, (uint32_t)i);
            /* n < 2^20: u is exact in a double */
            u_disagree += (sotu_mask_u(&m, (uint32_t)i) < keeps[k]) != in[i];
            not_nested += prev && prev[i] && !in[i];
        }
        CHECK_MSG(u_disagree == 0 && not_nested == 0, "keep %g: %d u disagree, %d not nested",
                  keeps[k], u_disagree, not_nested);
        free(prev);
        prev = in;
    }
    free(prev);

    /* sotu_mask_filter keeps exactly the elements the mask keeps. */
    sotu_mask big = sotu_mask_of(3, 9, 4, n, 0.2), small = sotu_mask_of(3, 9, 4, n, 0.05);
    uint32_t *idx = malloc((n + SOTU_MASK_SLACK) * sizeof *idx);
    float *val = malloc(n * sizeof *val);
    uint64_t k = sotu_mask_list(&big, idx, n);
    for (uint64_t e = 0; e < k; e++)
        val[e] = (float)idx[e];
    size_t f = sotu_mask_filter(&small, idx, val, (size_t)k, idx, val);
    uint32_t *want = malloc((n + SOTU_MASK_SLACK) * sizeof *want);
    uint64_t w = sotu_mask_list(&small, want, n);
    CHECK(f == w && !memcmp(idx, want, w * sizeof *want));
    for (size_t e = 0; e < f; e++)
        CHECK(val[e] == (float)idx[e]);
    /* A few candidates: tested one by one (the other way). */
    uint32_t few[64];
    size_t nf = 0, want_few = 0;
    for (uint32_t i = 0; i < 64; i++) {
        few[nf++] = i * 4099;
        want_few += sotu_mask_keeps(&small, i * 4099);
    }
    CHECK(sotu_mask_filter(&small, few, NULL, nf, few, NULL) == want_few);
    free(idx);
    free(val);
    free(want);
}

static void test_statistics(void)
{
    /* Kept fraction of a large tensor. */
    const uint64_t n = 1000003;
    const double p = 1.0 / 53;
    sotu_mask m = sotu_mask_of(42, 1, 3, n, p);
    uint64_t k = sotu_mask_list(&m, NULL, 0);
    double sd = sqrt((double)n * p * (1 - p)), z = ((double)k - (double)n * p) / sd;
    printf("kept %llu of %llu at keep 1/53 (z = %.2f)\n", (unsigned long long)k,
           (unsigned long long)n, z);
    CHECK(fabs(z) < 5);

    /* Rows of a 768 x 768 matrix: a row is 12 whole blocks, each keeping F
     * or F + 1, so per-row counts spread far less than binomials (dispersion
     * index 12 frac (1 - frac) / (768 p (1 - p)) = 0.14 at 1/53); a column
     * takes one offset of a block per row, so its count spreads like a
     * binomial (index near 1): no rows or columns favoured. */
    const int side = 768;
    sotu_mask mm = sotu_mask_of(42, 5, 6, (uint64_t)side * side, p);
    uint32_t *kept = malloc(((size_t)side * side + SOTU_MASK_SLACK) * sizeof *kept);
    uint64_t total = sotu_mask_list(&mm, kept, (uint64_t)side * side);
    double rows[768] = {0}, cols[768] = {0};
    for (uint64_t e = 0; e < total; e++) {
        rows[kept[e] / side]++;
        cols[kept[e] % side]++;
    }
    double mean = (double)total / side, vr = 0, vc = 0;
    for (int r = 0; r < side; r++) {
        vr += (rows[r] - mean) * (rows[r] - mean);
        vc += (cols[r] - mean) * (cols[r] - mean);
    }
    vr /= side - 1, vc /= side - 1;
    double var = side * p * (1 - p);
    printf("768x768 at 1/53: row dispersion %.3f, column dispersion %.3f\n", vr / var, vc / var);
    const double frac = 64 * p - 1, strat = 12 * frac * (1 - frac) / var;
    CHECK(vr / var > 0.6 * strat && vr / var < 1.6 * strat && vc / var > 0.75 && vc / var < 1.3);

    /* Two tasks' masks overlap like independent draws (p^2 n). */
    sotu_mask other = sotu_mask_of(42, 6, 6, (uint64_t)side * side, p);
    uint64_t both = 0;
    for (uint64_t e = 0; e < total; e++)
        both += sotu_mask_keeps(&other, kept[e]);
    double want = (double)side * side * p * p, zo = ((double)both - want) / sqrt(want);
    printf("overlap of two tasks: %llu, independent draws %.1f (z = %.2f)\n",
           (unsigned long long)both, want, zo);
    CHECK(fabs(zo) < 5);
    free(kept);

    /* A 64-element bias at keep 1/53 keeps 64/53 on average over tasks. */
    double sum = 0;
    const int tasks = 4000;
    for (int t = 0; t < tasks; t++) {
        sotu_mask b = sotu_mask_of(42, (uint32_t)t, 1, 64, p);
        for (uint32_t i = 0; i < 64; i++)
            sum += sotu_mask_keeps(&b, i);
    }
    double avg = sum / tasks, se = sqrt(64 * p * (1 - p) / tasks);
    printf("64 elements at 1/53: %.4f kept on average, want %.4f (z = %.2f)\n", avg, 64 * p,
           (avg - 64 * p) / se);
    CHECK(fabs(avg - 64 * p) < 5 * se);

    /* Mask values are uniform: chi-square over 100 bins, many tensors. */
    enum { BINS = 100 };
    double counts[BINS] = {0};
    const int draws = 200000;
    for (int d = 0; d < draws; d++) {
        sotu_mask t = sotu_mask_of(7, (uint32_t)(d % 53), (uint32_t)(d % 11), 1000 + d % 977, 0.5);
        counts[(int)(sotu_mask_u(&t, (uint32_t)(d % 1000)) * BINS)]++;
    }
    double chi = 0, e = (double)draws / BINS;
    for (int b = 0; b < BINS; b++)
        chi += (counts[b] - e) * (counts[b] - e) / e;
    printf("mask value chi-square (99 dof): %.1f\n", chi);
    CHECK(chi < 160);
}

int main(void)
{
    test_permutation();
    test_kernels_and_ways();
    test_nesting_and_u();
    test_statistics();
    return check_finish("test_mask");
}
