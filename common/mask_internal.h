/* The kernels and the two listing strategies behind sotu_mask_list
 * (common/mask.h), for tests that check every combination the CPU runs
 * gives the scalar reference's elements. */
#ifndef SOTU_COMMON_MASK_INTERNAL_H
#define SOTU_COMMON_MASK_INTERNAL_H

#include "common/mask.h"

typedef enum {
    SOTU_MASK_KERNEL_SCALAR = 0,
    SOTU_MASK_KERNEL_AVX2 = 1,
    SOTU_MASK_KERNEL_AVX512 = 2,
    SOTU_MASK_KERNEL_COUNT = 3,
} sotu_mask_kernel_id;

typedef enum {
    SOTU_MASK_WAY_AUTO = 0,  /* whichever is cheaper for the mask */
    SOTU_MASK_WAY_RANKS = 1, /* P^-1 of every rank below R */
    SOTU_MASK_WAY_SCAN = 2,  /* P of every element */
    SOTU_MASK_WAY_SORT = 3,  /* P^-1 of the ranks below R, then sorted */
} sotu_mask_way;

/* Whether this build and this CPU can run kernel k. */
bool sotu_mask_kernel_available(sotu_mask_kernel_id k);
const char *sotu_mask_kernel_name(sotu_mask_kernel_id k);

/* sotu_mask_list with kernel k (which must be available) and a way. */
uint64_t sotu_mask_list_with(sotu_mask_kernel_id k, sotu_mask_way way, const sotu_mask *m,
                             uint32_t *out, uint64_t cap, uint64_t *scratch);

#endif
