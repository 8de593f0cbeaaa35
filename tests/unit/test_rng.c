/* Counter-based RNG: known-answer vector, determinism across processes,
 * uniformity (chi-square), normal moments, permutations, nested masks. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "common/rng.h"
#include "common/rng_internal.h"

/* Philox4x32-10 known-answer test from Random123's kat_vectors. */
static void test_known_answer(void)
{
    uint32_t ctr[4] = {0, 0, 0, 0}, key[2] = {0, 0}, out[4];
    sotu_philox4x32(ctr, key, out);
    CHECK(out[0] == 0x6627e8d5u && out[1] == 0xe169c58du && out[2] == 0xbc57ac4cu &&
          out[3] == 0x9b00dbd8u);
    uint32_t ctr2[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    uint32_t key2[2] = {0xffffffffu, 0xffffffffu};
    sotu_philox4x32(ctr2, key2, out);
    CHECK(out[0] == 0x408f276du && out[1] == 0x41c83b0eu && out[2] == 0xa20bc7c6u &&
          out[3] == 0x6d5451fdu);
}

static uint64_t stream_digest(uint64_t seed, uint64_t stream)
{
    sotu_rng r;
    sotu_rng_init(&r, seed, stream);
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 1000; i++)
        h = (h ^ sotu_rng_u32(&r)) * 1099511628211ull;
    return h;
}

/* A child process draws the same stream and reports its digest via a pipe. */
static void test_across_processes(void)
{
    int fd[2];
    CHECK(pipe(fd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        uint64_t h = stream_digest(42, 7);
        ssize_t w = write(fd[1], &h, sizeof h);
        _exit(w == sizeof h ? 0 : 1);
    }
    uint64_t child = 0;
    CHECK(read(fd[0], &child, sizeof child) == sizeof child);
    int st;
    waitpid(pid, &st, 0);
    CHECK(child == stream_digest(42, 7));
    CHECK(stream_digest(42, 7) != stream_digest(42, 8));
    CHECK(stream_digest(42, 7) != stream_digest(43, 7));
    close(fd[0]);
    close(fd[1]);
}

/* 100 bins, 1e6 draws: chi-square with 99 dof; 99.9% quantile is 148.2. */
static void test_uniform_chi_square(void)
{
    enum { BINS = 100, DRAWS = 1000000 };
    static long counts[BINS];
    sotu_rng r;
    sotu_rng_init(&r, 12345, 1);
    for (int i = 0; i < DRAWS; i++) {
        float u = sotu_rng_uniform(&r);
        CHECK(u >= 0.0f && u < 1.0f);
        counts[(int)(u * BINS)]++;
    }
    double expect = (double)DRAWS / BINS, chi = 0;
    for (int b = 0; b < BINS; b++)
        chi += (counts[b] - expect) * (counts[b] - expect) / expect;
    printf("uniform chi-square (99 dof): %.1f\n", chi);
    CHECK(chi < 148.2);

    /* The mask hash, too, over (task, tensor, index). */
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < DRAWS; i++)
        counts[(int)(sotu_mask_u(7, (uint32_t)(i % 53), (uint32_t)(i % 11), (uint64_t)i) * BINS)]++;
    chi = 0;
    for (int b = 0; b < BINS; b++)
        chi += (counts[b] - expect) * (counts[b] - expect) / expect;
    printf("mask chi-square (99 dof): %.1f\n", chi);
    CHECK(chi < 148.2);
}

static void test_normal_moments(void)
{
    sotu_rng r;
    sotu_rng_init(&r, 99, 2);
    double s1 = 0, s2 = 0;
    enum { N = 400000 };
    for (int i = 0; i < N; i++) {
        double x = sotu_rng_normal(&r);
        s1 += x;
        s2 += x * x;
    }
    double mean = s1 / N, var = s2 / N - mean * mean;
    printf("normal: mean %.4f var %.4f\n", mean, var);
    CHECK(fabs(mean) < 0.01);
    CHECK(fabs(var - 1.0) < 0.01);
}

static void test_permutation(void)
{
    enum { N = 1000 };
    int32_t p[N], seen[N] = {0};
    sotu_rng r;
    sotu_rng_init(&r, 5, 3);
    sotu_rng_permutation(&r, p, N);
    int moved = 0;
    for (int i = 0; i < N; i++) {
        CHECK(p[i] >= 0 && p[i] < N);
        seen[p[i]]++;
        moved += p[i] != i;
    }
    for (int i = 0; i < N; i++)
        CHECK(seen[i] == 1);
    CHECK(moved > N / 2);
    /* Position 0 is uniform: 10 values over 20000 permutations of 10. */
    long first[10] = {0};
    for (int k = 0; k < 20000; k++) {
        int32_t q[10];
        sotu_rng_permutation(&r, q, 10);
        first[q[0]]++;
    }
    double chi = 0;
    for (int i = 0; i < 10; i++)
        chi += (first[i] - 2000.0) * (first[i] - 2000.0) / 2000.0;
    CHECK(chi < 27.9); /* 99.9% of chi-square with 9 dof */
}

static void test_mask_fill_and_nesting(void)
{
    enum { N = 4099 };
    static float u[N];
    sotu_mask_u_fill(3, 4, 5, 1, N, u);
    int mismatch = 0;
    for (int i = 0; i < N; i++)
        mismatch += u[i] != sotu_mask_u(3, 4, 5, (uint64_t)i + 1);
    CHECK(mismatch == 0);
    /* Keep 0.05 is a subset of keep 0.2 by construction; count both. */
    int k20 = 0, k05 = 0, violation = 0;
    for (int i = 0; i < N; i++) {
        k20 += u[i] < 0.2f;
        k05 += u[i] < 0.05f;
        violation += (u[i] < 0.05f) && !(u[i] < 0.2f);
    }
    CHECK(violation == 0);
    CHECK(abs(k20 - N / 5) < 120 && abs(k05 - N / 20) < 60);
}

/* Every mask-scan kernel the CPU runs gives the indices sotu_mask_u
 * defines, on random lengths (vector tails), keeps (0 and 1 included),
 * seeds and offsets (up to the end of the 2^32 key segment). */
static void test_mask_scan_kernels(void)
{
    enum { N_MAX = 5000, CASES = 300 };
    static uint32_t want[N_MAX + SOTU_MASK_SCAN_SLACK], got[N_MAX + SOTU_MASK_SCAN_SLACK];
    const uint64_t seed0 = 20260323;
    printf("mask scan: seed %llu, best kernel %s\n", (unsigned long long)seed0,
           sotu_mask_scan_kernel());
    sotu_rng r;
    sotu_rng_init(&r, seed0, 99);
    int ran[SOTU_MASK_KERNEL_COUNT] = {0}, bad = 0;
    for (int c = 0; c < CASES; c++) {
        uint64_t seed = sotu_rng_u32(&r);
        uint32_t task = sotu_rng_u32(&r) % 60, tensor = sotu_rng_u32(&r) % 200;
        size_t n = (size_t)sotu_rng_below(&r, N_MAX + 1);
        double keeps[] = {0.0, 1.0, 1.0 / 53, 0.2, 0.5, sotu_rng_uniform_double(&r)};
        double keep = keeps[c % 6];
        uint64_t first = c % 5 == 0 ? ((uint64_t)1 << 32) - n : sotu_rng_below(&r, 1u << 30);
        sotu_mask_key key = sotu_mask_key_of(seed, task, tensor);
        uint32_t bound = sotu_mask_bound(keep);
        size_t k = 0;
        for (size_t e = 0; e < n; e++)
            if ((double)sotu_mask_u(seed, task, tensor, first + e) < keep)
                want[k++] = (uint32_t)(first + e);
        for (int kern = 0; kern < SOTU_MASK_KERNEL_COUNT; kern++) {
            if (!sotu_mask_kernel_available((sotu_mask_kernel_id)kern))
                continue;
            size_t m = sotu_mask_scan_with((sotu_mask_kernel_id)kern, key, first, n, bound, got);
            if (m != k || memcmp(want, got, k * sizeof *got)) {
                bad++;
                fprintf(stderr, "case %d (seed %llu task %u tensor %u first %llu n %zu keep %g): "
                        "%s kept %zu, expected %zu\n", c, (unsigned long long)seed, task,
                        tensor, (unsigned long long)first, n, keep,
                        sotu_mask_kernel_name((sotu_mask_kernel_id)kern), m, k);
            }
            ran[kern]++;
        }
    }
    CHECK(bad == 0);
    CHECK(ran[SOTU_MASK_KERNEL_SCALAR] == CASES);
    for (int kern = 0; kern < SOTU_MASK_KERNEL_COUNT; kern++)
        printf("  %-6s %d cases\n", sotu_mask_kernel_name((sotu_mask_kernel_id)kern), ran[kern]);
}

int main(void)
{
    test_known_answer();
    test_across_processes();
    test_uniform_chi_square();
    test_normal_moments();
    test_permutation();
    test_mask_fill_and_nesting();
    test_mask_scan_kernels();
    return check_finish("test_rng");
}
