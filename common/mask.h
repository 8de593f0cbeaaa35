/* The SoTU mask: which elements of tensor j task t keeps at a given keep.
 *
 * Every element i of an n-element tensor has a mask value
 *   u(seed, t, j, i) = (P(i) + g(P(i)) 2^-32) 2^-b          in [0, 1)
 * and is kept iff u < keep. So masks are nested across keep values, the
 * same in every process, and indices never travel. The parts:
 *   b    the smallest width with 2^b >= n (at least 2);
 *   P    a keyed permutation of [0, 2^b): a four-round Feistel network
 *        on the b bits, split into a high half of b - b/2 bits and a low
 *        half of b/2; round r xors into one half F(other half, k_r) =
 *        the top bits of lowbias32(other ^ k_r) (Wellons' mixer: x ^=
 *        x>>16; x *= 0x7feb352d; x ^= x>>15; x *= 0x846ca68b; x ^= x>>16);
 *        rounds 0 and 2 change the high half, rounds 1 and 3 the low half;
 *   g    lowbias32(lowbias32(r ^ k_4) ^ k_5), 32 bits that break ties
 *        below the grid 2^-b, so a tensor of any size keeps each element
 *        with probability keep (to 2^-(b+32));
 *   keys k_0..k_5 = words of Philox4x32-10 (key = seed, counter = (c,
 *        0x5eed0003, j, t)) for c = 0 (k_0..k_3) and 1 (k_4, k_5).
 * Because u is increasing in P, "u < keep" is "P(i) < R" for one integer
 * R = floor(keep 2^b) + [g(floor(keep 2^b)) < frac(keep 2^b) 2^32]
 * (R = 2^b at keep 1): the kept elements are P^-1 of the ranks 0..R-1
 * that land below n. That is what makes a mask cheap both ways: testing
 * one element is one P, and listing the kept elements of a tensor costs
 * O(keep 2^b) evaluations of P^-1 (at most 2 keep n) plus a pass over an
 * n-bit bitmap (or, at keep below ~1/70, a radix sort of the elements
 * instead of the bitmap), not a hash of every element (at keep 1/53 that
 * is ~25x fewer evaluations). At large keep the lister evaluates P over
 * every element instead, whichever is cheaper; all ways give the same
 * elements.
 *
 * (Delta format version 3. Versions 1 and 2 used a 24-bit keyed hash of
 * every element, which could only be listed by hashing all n.)
 */
#ifndef SOTU_COMMON_MASK_H
#define SOTU_COMMON_MASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest tensor a mask covers: indices are 32-bit. */
#define SOTU_MASK_COUNT_MAX ((uint64_t)1 << 32)
/* Room past the kept count that sotu_mask_list may scribble on in out. */
#define SOTU_MASK_SLACK 16

typedef struct {
    uint64_t n;          /* elements of the tensor, 1..SOTU_MASK_COUNT_MAX */
    unsigned bits;       /* b: 2^b >= n */
    unsigned lo_bits;    /* width of the low half, b / 2 */
    uint32_t key[6];     /* round keys k_0..k_3, tie keys k_4, k_5 */
    uint64_t bound;      /* R: element i is kept iff P(i) < R; 2^b keeps all */
} sotu_mask;

/* The mask of tensor `tensor` (its table index j) of `task` at keep in
 * [0, 1], for a tensor of n elements (1 <= n <= SOTU_MASK_COUNT_MAX). */
sotu_mask sotu_mask_of(uint64_t seed, uint32_t task, uint32_t tensor, uint64_t n, double keep);

/* P(i), i < 2^b: the element's rank. */
uint32_t sotu_mask_rank(const sotu_mask *m, uint32_t i);
/* P^-1(r), r < 2^b: the element of rank r (may be >= n). */
uint32_t sotu_mask_element(const sotu_mask *m, uint32_t r);
/* The tie bits g(r). */
uint32_t sotu_mask_tie(const sotu_mask *m, uint32_t r);

static inline bool sotu_mask_keeps(const sotu_mask *m, uint32_t i)
{
    return sotu_mask_rank(m, i) < m->bound;
}

/* u(i) as a double (rounded to 53 bits; for tests and reports). */
double sotu_mask_u(const sotu_mask *m, uint32_t i);

/* Words of the bitmap scratch sotu_mask_list needs for m. */
size_t sotu_mask_scratch_words(const sotu_mask *m);

/* The kept elements of m: counts them and, if there are at most cap,
 * writes them ascending into out (which has room for cap +
 * SOTU_MASK_SLACK entries). Returns the count either way. scratch has
 * sotu_mask_scratch_words(m) words; NULL makes the call allocate its own
 * (and return UINT64_MAX if it cannot). A cap of m->bound always suffices. */
uint64_t sotu_mask_list(const sotu_mask *m, uint32_t *out, uint64_t cap, uint64_t *scratch);

/* The pairs (idx[e], val[e]), e < k, whose element m keeps, in order,
 * into out_idx and out_val (room for min(k, R); they may be idx and val
 * themselves); returns how many. idx ascending (a delta's kept indices);
 * val and out_val may be NULL. Lists m instead of testing each index when
 * that is cheaper (k > R / 4). */
size_t sotu_mask_filter(const sotu_mask *m, const uint32_t *idx, const float *val, size_t k,
                        uint32_t *out_idx, float *out_val);

/* The kernel the lister uses: "avx512", "avx2" or "scalar". */
const char *sotu_mask_kernel(void);

#endif
