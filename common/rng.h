/* Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11).
 *
 * Every random draw is a pure function of (seed, stream, counter), so any rank
 * reproduces any stream without communication: stream 7 of seed 0 is the same
 * sequence on every machine. Streams used by sotu are listed in rng_streams
 * below so two users never share one by accident.
 *
 * The SoTU mask value of element i of tensor j of task t is
 *   (k0, k1) = Philox(key = seed, counter = (i / 2^32, 0x5eed, j, t))[0..1]
 *   u(seed, t, j, i) = top 24 bits of M(M((i mod 2^32) ^ k0) ^ k1) * 2^-24
 * in [0, 1), with M Wellons' lowbias32 mixer (x ^= x>>16; x *= 0x7feb352d;
 * x ^= x>>15; x *= 0x846ca68b; x ^= x>>16). The element is kept iff
 * u < keep, so masks are nested across keep values and indices never
 * travel. Philox for every element was exact but cost ~7 ns; decoding a
 * delta regenerates its whole mask, so the per-element hash is the cheap
 * keyed mixer and Philox only separates (seed, task, tensor) streams.
 */
#ifndef SOTU_COMMON_RNG_H
#define SOTU_COMMON_RNG_H

#include <stddef.h>
#include <stdint.h>

/* Named streams (the high bits keep them apart from per-task streams). */
enum {
    SOTU_STREAM_INIT = 1,        /* model weight initialisation */
    SOTU_STREAM_SHUFFLE = 2,     /* + (task << 8): per-epoch shuffles */
    SOTU_STREAM_AUGMENT = 3,     /* + (task << 8): augmentation */
    SOTU_STREAM_DATA = 4,        /* dataset construction (presets) */
    SOTU_STREAM_PROJECTION = 5,  /* random projections in evaluation */
    SOTU_STREAM_DISJOINT = 6,    /* owner hash of the disjoint merge */
};

/* One Philox4x32-10 block. */
void sotu_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

typedef struct {
    uint32_t key[2];
    uint64_t stream;
    uint64_t counter; /* next block */
    uint32_t buf[4];
    int have;         /* unread words in buf (taken from the end) */
    int has_spare;
    float spare;      /* second Box-Muller value */
} sotu_rng;

void sotu_rng_init(sotu_rng *r, uint64_t seed, uint64_t stream);
/* Jumps to an absolute block counter (4 words per block). */
void sotu_rng_seek(sotu_rng *r, uint64_t block);
uint32_t sotu_rng_u32(sotu_rng *r);
/* Uniform in [0, 1) with 24 bits (float) or 53 bits (double). */
float sotu_rng_uniform(sotu_rng *r);
double sotu_rng_uniform_double(sotu_rng *r);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint64_t sotu_rng_below(sotu_rng *r, uint64_t n);
/* Standard normal (Box-Muller). */
float sotu_rng_normal(sotu_rng *r);
/* perm[0..n) becomes a uniform random permutation of 0..n-1. */
void sotu_rng_permutation(sotu_rng *r, int32_t *perm, int32_t n);

/* The SoTU mask value u(seed, task, tensor, index) in [0, 1) (see above). */
float sotu_mask_u(uint64_t seed, uint32_t task, uint32_t tensor, uint64_t index);
/* A float t with (u < t) == ((double)u < keep) for every mask value u
 * (multiples of 2^-24), so hot loops compare floats. keep in [0, 1]. */
float sotu_mask_threshold(double keep);

/* out[k] = sotu_mask_u(seed, task, tensor, first + k) for k < n, fast. */
void sotu_mask_u_fill(uint64_t seed, uint32_t task, uint32_t tensor, uint64_t first,
                      size_t n, float *out);

/* The mask in integers, for indices below 2^32 (key segment 0): with the
 * key of (seed, task, tensor), m = sotu_mask_m(key, i) is the 24-bit mask
 * value (u = m 2^-24) and element i is kept at keep iff
 * m < sotu_mask_bound(keep) = ceil(keep 2^24), which equals u < keep. */
typedef struct {
    uint32_t k0, k1;
} sotu_mask_key;

sotu_mask_key sotu_mask_key_of(uint64_t seed, uint32_t task, uint32_t tensor);
uint32_t sotu_mask_bound(double keep); /* keep in [0, 1]; result in [0, 2^24] */

static inline uint32_t sotu_mask_mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

static inline uint32_t sotu_mask_m(sotu_mask_key key, uint32_t i)
{
    return sotu_mask_mix(sotu_mask_mix(i ^ key.k0) ^ key.k1) >> 8;
}

/* Room past n that sotu_mask_scan may scribble on in out (vector stores). */
#define SOTU_MASK_SCAN_SLACK 16

/* The kept indices of [first, first + n): writes, ascending, every i in
 * that range with sotu_mask_m(key, i) < bound into out and returns how many.
 * first + n <= 2^32; out has room for n + SOTU_MASK_SCAN_SLACK entries.
 * Vectorised: an AVX-512 or AVX2 kernel picked once at run time from the
 * CPU (GCC target attributes, so it works in a baseline x86-64 build), the
 * scalar loop elsewhere; every kernel gives the same indices. */
size_t sotu_mask_scan(sotu_mask_key key, uint64_t first, size_t n, uint32_t bound,
                      uint32_t *out);
/* The kernel sotu_mask_scan uses: "avx512", "avx2" or "scalar". */
const char *sotu_mask_scan_kernel(void);

#endif
