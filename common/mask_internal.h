/* The kernels and listing ways behind sotu_mask_list (common/mask.h), for
 * tests that check every combination the CPU runs against brute force. */
#ifndef SOTU_COMMON_MASK_INTERNAL_H
#define SOTU_COMMON_MASK_INTERNAL_H

#include "common/mask.h"

typedef enum {
    SOTU_MASK_KERNEL_SCALAR = 0,
    SOTU_MASK_KERNEL_AVX2 = 1,   /* eight blocks a step, AVX2 intrinsics */
    SOTU_MASK_KERNEL_AVX512 = 2, /* the same compiled for the avx512 level */
    SOTU_MASK_KERNEL_COUNT = 3,
} sotu_mask_kernel_id;

typedef enum {
    SOTU_MASK_WAY_AUTO = 0,  /* pairs when F <= 1, else words */
    SOTU_MASK_WAY_WORDS = 1, /* a 64-bit word per block from its R ranks, then its bits */
    SOTU_MASK_WAY_PAIRS = 2, /* F <= 1 only: a block's at most two offsets by min/max */
} sotu_mask_way;

/* Whether this build and this CPU can run kernel k. */
bool sotu_mask_kernel_available(sotu_mask_kernel_id k);
const char *sotu_mask_kernel_name(sotu_mask_kernel_id k);

/* sotu_mask_list with kernel k (which must be available) and a way (PAIRS
 * only when m->full <= 1). */
uint64_t sotu_mask_list_with(sotu_mask_kernel_id k, sotu_mask_way way, const sotu_mask *m,
                             uint32_t *out, uint64_t cap);

#endif
