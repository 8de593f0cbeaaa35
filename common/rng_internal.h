/* The kernels behind sotu_mask_scan (common/rng.h), for tests that check
 * every kernel the CPU runs gives the scalar loop's indices. */
#ifndef SOTU_COMMON_RNG_INTERNAL_H
#define SOTU_COMMON_RNG_INTERNAL_H

#include <stdbool.h>

#include "common/rng.h"

typedef enum {
    SOTU_MASK_KERNEL_SCALAR = 0,
    SOTU_MASK_KERNEL_AVX2 = 1,
    SOTU_MASK_KERNEL_AVX512 = 2,
    SOTU_MASK_KERNEL_COUNT = 3,
} sotu_mask_kernel_id;

/* Whether this build and this CPU can run kernel k. */
bool sotu_mask_kernel_available(sotu_mask_kernel_id k);
const char *sotu_mask_kernel_name(sotu_mask_kernel_id k);

/* sotu_mask_scan with kernel k (which must be available). */
size_t sotu_mask_scan_with(sotu_mask_kernel_id k, sotu_mask_key key, uint64_t first, size_t n,
                           uint32_t bound, uint32_t *out);

#endif
