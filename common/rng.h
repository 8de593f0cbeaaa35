/* Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11).
 *
 * Every random draw is a pure function of (seed, stream, counter), so any rank
 * reproduces any stream without communication: stream 7 of seed 0 is the same
 * sequence on every machine. Streams used by sotu are listed in rng_streams
 * below so two users never share one by accident.
 * The SoTU mask (common/mask.h) keys its permutations with Philox too.
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
    SOTU_STREAM_VALIDATION = 7,  /* + (task << 8): the validation hold-out (io/taskset.h) */
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

#endif
