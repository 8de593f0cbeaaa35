/* The SoTU mask: which elements of tensor j task t keeps at a given keep.
 *
 * Element i of an n-element tensor lies in block β = floor(i / 64), at
 * offset o = i mod 64. Its mask value is
 *   u(seed, t, j, i) = (P_β(o) + g_β(P_β(o)) 2^-32) / 64        in [0, 1)
 * and it is kept iff u < keep. So masks are nested across keep values, the
 * same in every process, and indices never travel. The parts:
 *   P_β  a keyed permutation of [0, 64): a four-round Feistel network on
 *        the six bits of o, split into a high and a low half of 3 bits;
 *        round r xors into one half F_r(other half), where F_r(v) is bits
 *        3v..3v+2 of the table word W_r = lowbias32((4β + r) ^ k_r)
 *        (Wellons' mixer: x ^= x>>16; x *= 0x7feb352d; x ^= x>>15;
 *        x *= 0x846ca68b; x ^= x>>16), i.e. a random 8-entry table per
 *        round and block; rounds 0 and 2 change the high half, 1 and 3 the
 *        low half;
 *   g_β  g_β(r) = lowbias32(lowbias32((64β + r) ^ k_4) ^ k_5): 32 bits
 *        that break ties below the grid 1/64, so every element is kept
 *        with probability keep (to 2^-38);
 *   keys k_0..k_5 = words of Philox4x32-10 (key = seed, counter = (c,
 *        0x5eed0004, j, t)) for c = 0 (k_0..k_3) and 1 (k_4, k_5).
 * Because u is increasing in P_β(o), "u < keep" is "P_β(o) < R_β" with
 *   R_β = F + [g_β(F) < ceil(frac 2^32)],  F = floor(64 keep), frac = 64 keep − F
 * (R_β = 64 at keep 1): block β keeps the offsets P_β^-1(0), ...,
 * P_β^-1(R_β − 1) that exist (the last block may be short), F or F + 1 of
 * its 64 elements. Kept counts are stratified by block (a tensor's count is
 * within its block count of keep n, a row of a matrix keeps close to keep
 * times its length); across tasks and tensors the masks are independent.
 * Listing a mask is one pass over the blocks that builds each block's
 * 64-bit word in registers from its R_β ranks (eight blocks per AVX2 step;
 * below keep 2/64, where R_β <= 2, the kept offsets come out sorted by a
 * min and a max, without a word): O(n / 64 + kept) work, no bitmap in
 * memory and no sort. Testing one element is one P_β (and a g_β when its
 * rank is F).
 *
 * (Delta format version 4. Version 3 used one Feistel permutation over a
 * whole tensor, listed by scattering P^-1 of its ranks into an n-bit bitmap;
 * versions 1 and 2 a keyed hash of every element.)
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
/* Elements per block. */
#define SOTU_MASK_BLOCK 64

typedef struct {
    uint64_t n;      /* elements of the tensor, 1..SOTU_MASK_COUNT_MAX */
    uint32_t key[6]; /* table keys k_0..k_3, tie keys k_4, k_5 */
    uint32_t full;   /* F = floor(64 keep), 0..64 (64 keeps all) */
    uint64_t tie;    /* ceil(frac 2^32), 0..2^32: rank F is kept iff g_β(F) < tie */
} sotu_mask;

/* The mask of tensor `tensor` (its table index j) of `task` at keep in
 * [0, 1], for a tensor of n elements (1 <= n <= SOTU_MASK_COUNT_MAX). */
sotu_mask sotu_mask_of(uint64_t seed, uint32_t task, uint32_t tensor, uint64_t n, double keep);

/* P_β(i mod 64) for β = i / 64: the element's rank in its block, 0..63. */
uint32_t sotu_mask_rank(const sotu_mask *m, uint32_t i);
/* P_β^-1(r), r < 64: the offset of rank r in block β. */
uint32_t sotu_mask_offset(const sotu_mask *m, uint32_t block, uint32_t r);
/* The tie bits g_β(r). */
uint32_t sotu_mask_tie(const sotu_mask *m, uint32_t block, uint32_t r);
/* R_β: block β keeps its ranks below it (0..64). */
uint32_t sotu_mask_block_bound(const sotu_mask *m, uint32_t block);

bool sotu_mask_keeps(const sotu_mask *m, uint32_t i);

/* u(i) as a double (exact: 38 bits), and floor(u 2^32) (for ownership). */
double sotu_mask_u(const sotu_mask *m, uint32_t i);
uint32_t sotu_mask_u32(const sotu_mask *m, uint32_t i);

/* At most this many elements are kept (F + 1 a block, at most n). */
uint64_t sotu_mask_kept_max(const sotu_mask *m);

/* The kept elements of m: counts them and, if there are at most cap,
 * writes them ascending into out (which has room for cap +
 * SOTU_MASK_SLACK entries; out may be NULL with cap 0 to count). Returns
 * the count either way. */
uint64_t sotu_mask_list(const sotu_mask *m, uint32_t *out, uint64_t cap);

/* The pairs (idx[e], val[e]), e < k, whose element m keeps, in order,
 * into out_idx and out_val (room for min(k, sotu_mask_kept_max(m)); they
 * may be idx and val themselves); returns how many. idx ascending (a
 * delta's kept indices); val and out_val may be NULL. Lists m and walks
 * both lists when that is cheaper than testing each index. */
size_t sotu_mask_filter(const sotu_mask *m, const uint32_t *idx, const float *val, size_t k,
                        uint32_t *out_idx, float *out_val);

/* The kernel the lister uses: "avx2" or "scalar". */
const char *sotu_mask_kernel(void);

#endif
