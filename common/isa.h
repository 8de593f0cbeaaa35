/* The instruction-set level of sotu's own hot kernels, chosen at run time.
 *
 * The default build targets baseline x86-64 (SSE2), so one binary runs on
 * every x86-64 node (SOTU_NATIVE=ON builds for the build machine's CPU
 * instead). The kernels that matter for speed are compiled once per level
 * and the level is picked once per process: the best the CPU and its OS
 * support, or the one the environment variable SOTU_ISA names (scalar,
 * avx2, avx512; auto or unset: the best). A level the CPU lacks is refused.
 *
 *   scalar  baseline x86-64 code (SSE2 vectors)
 *   avx2    AVX2, FMA, BMI1/2, POPCNT (Intel Haswell, AMD Zen and later)
 *   avx512  the above and AVX-512 F/BW/DQ/VL (Skylake-SP, Zen 4 and later)
 *
 * Every level gives the same bits: no FMA contraction (the build passes
 * -ffp-contract=off), and a reduction adds in SOTU_LANES fixed lanes
 * whatever the vector width. tests/unit/test_isa_kernels.c checks each
 * dispatched kernel at every level the machine runs against scalar.
 *
 * A kernel is written once as an always-inlined function (SOTU_ISA_INLINE)
 * without OpenMP regions in it (GCC outlines a region before inlining, so
 * it would not be compiled for the level); SOTU_ISA_VARIANTS makes one
 * copy per level and SOTU_ISA_PICK the active one:
 *
 *   SOTU_ISA_INLINE void scale_row(float *x, float a, int n) { ... }
 *   SOTU_ISA_VARIANTS(scale_row, (float *x, float a, int n), (x, a, n));
 *   ...
 *   SOTU_ISA_PICK(scale_row)(x, 2.0f, n);
 *
 * Why not GCC's target_clones: its resolver runs when the binary is
 * loaded and reads only the CPU, so SOTU_ISA could not choose the level,
 * and the test could not run each level on one machine.
 */
#ifndef SOTU_COMMON_ISA_H
#define SOTU_COMMON_ISA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/status.h"

typedef enum {
    SOTU_ISA_SCALAR = 0,
    SOTU_ISA_AVX2 = 1,
    SOTU_ISA_AVX512 = 2,
    SOTU_ISA_COUNT = 3,
} sotu_isa;

/* "scalar", "avx2", "avx512" ("?" out of range). */
const char *sotu_isa_name(sotu_isa level);

/* Whether this build and this CPU (with its OS saving the registers) can
 * run the level. */
bool sotu_isa_supported(sotu_isa level);

/* The best level this CPU supports. */
sotu_isa sotu_isa_best(void);

/* Reads SOTU_ISA and sets the active level. Fails (SOTU_ERR_CONFIG, the
 * message naming the value and the levels this CPU has) on an unknown name
 * or a level the CPU lacks; the active level is then the best one. */
sotu_status sotu_isa_init(void);

/* The active level (sotu_isa_init on the first call if nobody did). */
sotu_isa sotu_isa_active(void);

/* Sets the active level, which must be supported: tests and benchmarks. */
void sotu_isa_force(sotu_isa level);

/* "avx2 (best on this CPU: avx512; SOTU_ISA=avx2)": the active level and
 * how it was chosen, for logs. */
void sotu_isa_describe(char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Writing a dispatched kernel                                               */
/* ------------------------------------------------------------------------ */

#if defined(__x86_64__) && defined(__GNUC__)
#define SOTU_ISA_X86 1
#define SOTU_TARGET_AVX2 __attribute__((target("avx2,fma,bmi,bmi2,popcnt")))
#define SOTU_TARGET_AVX512                                                               \
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi,bmi2,popcnt")))
#else
#define SOTU_TARGET_AVX2
#define SOTU_TARGET_AVX512
#endif

#define SOTU_ISA_INLINE static inline __attribute__((always_inline))

/* Defines f_scalar, f_avx2, f_avx512 (f compiled for each level) and the
 * table f_isa of them. f returns void; params and args are parenthesised. */
#define SOTU_ISA_VARIANTS(f, params, args)                                              \
    static void f##_scalar params { f args; }                                           \
    SOTU_TARGET_AVX2 static void f##_avx2 params { f args; }                            \
    SOTU_TARGET_AVX512 static void f##_avx512 params { f args; }                        \
    static void (*const f##_isa[SOTU_ISA_COUNT]) params = {f##_scalar, f##_avx2,        \
                                                           f##_avx512}

/* The active level's copy of f. */
#define SOTU_ISA_PICK(f) (f##_isa[sotu_isa_active()])

/* Fixed-order reductions. A sum is kept in 16 lanes, sotu_f32x16 (GCC
 * vector extensions: one AVX-512, two AVX2 or four SSE registers, the same
 * lane-wise float operations at every level): lane l sums terms l, l + 16,
 * l + 32, ..., a short tail is added as zero-padded lanes, and the lanes
 * are then added pairwise (sotu_lanes_total). So a sum has the same bits at
 * every ISA level:
 *
 *   sotu_f32x16 acc = {0}, v;
 *   int64_t i = 0;
 *   for (; i + SOTU_LANES <= n; i += SOTU_LANES)
 *       acc += SOTU_F32X16(x + i);
 *   if (i < n) {
 *       sotu_lanes_tail(&v, x + i, n - i);
 *       acc += v;
 *   }
 *   float sum = sotu_lanes_total(&acc);
 */
#define SOTU_LANES 16
typedef float sotu_f32x16 __attribute__((vector_size(64), may_alias, aligned(4)));

/* The 16 floats at p, at any alignment. */
#define SOTU_F32X16(p) (*(const sotu_f32x16 *)(p))

/* v = the k < 16 floats at p, then zeros. */
SOTU_ISA_INLINE void sotu_lanes_tail(sotu_f32x16 *v, const float *p, int64_t k)
{
    float t[SOTU_LANES] = {0};
    memcpy(t, p, (size_t)k * sizeof *t);
    memcpy(v, t, sizeof t);
}

/* The lanes of acc added pairwise: (l, l + 8), then (l, l + 4), ... */
SOTU_ISA_INLINE float sotu_lanes_total(const sotu_f32x16 *acc)
{
    float a[SOTU_LANES];
    memcpy(a, acc, sizeof a);
    for (int w = SOTU_LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            a[l] += a[l + w];
    return a[0];
}

/* sum_{i < n} x[i], in the fixed order above. */
SOTU_ISA_INLINE float sotu_lanes_sum(const float *x, int64_t n)
{
    sotu_f32x16 acc = {0}, v;
    int64_t i = 0;
    for (; i + SOTU_LANES <= n; i += SOTU_LANES)
        acc += SOTU_F32X16(x + i);
    if (i < n) {
        sotu_lanes_tail(&v, x + i, n - i);
        acc += v;
    }
    return sotu_lanes_total(&acc);
}

/* sum_{i < n} a[i] b[i], in the fixed order above. */
SOTU_ISA_INLINE float sotu_lanes_dot(const float *a, const float *b, int64_t n)
{
    sotu_f32x16 acc = {0}, va, vb;
    int64_t i = 0;
    for (; i + SOTU_LANES <= n; i += SOTU_LANES)
        acc += SOTU_F32X16(a + i) * SOTU_F32X16(b + i);
    if (i < n) {
        sotu_lanes_tail(&va, a + i, n - i);
        sotu_lanes_tail(&vb, b + i, n - i);
        acc += va * vb;
    }
    return sotu_lanes_total(&acc);
}

#endif
