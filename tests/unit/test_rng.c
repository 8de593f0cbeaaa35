/* Counter-based RNG: known-answer vector, determinism across processes,
 * uniformity (chi-square), normal moments and permutations (masks: test_mask.c). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "common/rng.h"

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

int main(void)
{
    test_known_answer();
    test_across_processes();
    test_uniform_chi_square();
    test_normal_moments();
    test_permutation();
    return check_finish("test_rng");
}
