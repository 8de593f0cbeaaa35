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

/* Fixed-order reductions: lane l of acc[SOTU_LANES] sums terms l, l + 16,
 * l + 32, ... and the lanes are then added pairwise (sotu_lanes_total). The
 * compiler keeps the 16 lanes in one AVX-512, two AVX2 or four SSE
 * registers, each lane doing the same float operations in the same order,
 * so the sum has the same bits at every ISA level:
 *
 *   float acc[SOTU_LANES] = {0}, t[SOTU_LANES] = {0};
 *   int64_t i = 0;
 *   for (; i + SOTU_LANES <= n; i += SOTU_LANES)
 *       for (int l = 0; l < SOTU_LANES; l++)
 *           acc[l] += f(i + l);
 *   for (int l = 0; i + l < n; l++)   // the tail as one more, zero-padded,
 *       t[l] = f(i + l);                // row of lanes: acc stays in registers
 *   for (int l = 0; l < SOTU_LANES; l++)
 *       acc[l] += t[l];
 *   float sum = sotu_lanes_total(acc);
 *
 * One sum per loop: GCC 12 vectorises two sums sharing a loop poorly, and
 * GCC's 64-byte vector type without AVX-512 worse still. */
#define SOTU_LANES 16

/* The lanes added pairwise: (l, l + 8), then (l, l + 4), (l, l + 2) and
 * the last two; written out so that it compiles to a few vector adds. */
SOTU_ISA_INLINE float sotu_lanes_total(const float acc[SOTU_LANES])
{
    _Static_assert(SOTU_LANES == 16, "the pairwise tree below is for 16 lanes");
    float h[8], q[4];
    for (int l = 0; l < 8; l++)
        h[l] = acc[l] + acc[l + 8];
    for (int l = 0; l < 4; l++)
        q[l] = h[l] + h[l + 4];
    return (q[0] + q[2]) + (q[1] + q[3]);
}

/* sum_{i < n} x[i], in the fixed order above. */
SOTU_ISA_INLINE float sotu_lanes_sum(const float *x, int64_t n)
{
    float acc[SOTU_LANES] = {0};
    int64_t i = 0;
    for (; i + SOTU_LANES <= n; i += SOTU_LANES)
        for (int l = 0; l < SOTU_LANES; l++)
            acc[l] += x[i + l];
    float t[SOTU_LANES] = {0}; /* the tail, zero-padded */
    for (int l = 0; i + l < n; l++)
        t[l] = x[i + l];
    for (int l = 0; l < SOTU_LANES; l++)
        acc[l] += t[l];
    return sotu_lanes_total(acc);
}

/* sum_{i < n} (x[i] - c)^2, in the fixed order above. */
SOTU_ISA_INLINE float sotu_lanes_sqdev(const float *x, float c, int64_t n)
{
    float acc[SOTU_LANES] = {0};
    int64_t i = 0;
    for (; i + SOTU_LANES <= n; i += SOTU_LANES)
        for (int l = 0; l < SOTU_LANES; l++)
            acc[l] += (x[i + l] - c) * (x[i + l] - c);
    float t[SOTU_LANES] = {0};
    for (int l = 0; i + l < n; l++)
        t[l] = (x[i + l] - c) * (x[i + l] - c);
    for (int l = 0; l < SOTU_LANES; l++)
        acc[l] += t[l];
    return sotu_lanes_total(acc);
}

/* sum_{i < n} a[i] b[i], in the fixed order above. */
SOTU_ISA_INLINE float sotu_lanes_dot(const float *a, const float *b, int64_t n)
{
    float acc[SOTU_LANES] = {0};
    int64_t i = 0;
    for (; i + SOTU_LANES <= n; i += SOTU_LANES)
        for (int l = 0; l < SOTU_LANES; l++)
            acc[l] += a[i + l] * b[i + l];
    float t[SOTU_LANES] = {0};
    for (int l = 0; i + l < n; l++)
        t[l] = a[i + l] * b[i + l];
    for (int l = 0; l < SOTU_LANES; l++)
        acc[l] += t[l];
    return sotu_lanes_total(acc);
}

#endif
