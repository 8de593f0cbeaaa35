/* IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or plain.
 *
 * Layout, all integers big-endian:
 *   bytes 0..3   magic: 0x00 0x00 <type> <ndim>; sotu reads type 0x08 (uint8)
 *                0x00000803  images, dims [n, rows, cols]
 *                0x00000801  labels, dims [n]
 *   then ndim    uint32 dimension sizes
 *   then         prod(dims) uint8 values, row-major, and nothing after them.
 *
 * The reader decompresses with zlib (a plain file is read as is), checks the
 * magic, bounds every dimension before allocating, and requires the data to
 * be exactly as long as the header says.
 */
#ifndef SOTU_IO_IDX_H
#define SOTU_IO_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define SOTU_IDX_MAGIC_IMAGES 0x00000803u
#define SOTU_IDX_MAGIC_LABELS 0x00000801u

/* Largest accepted item count, side length and payload. */
#define SOTU_IDX_MAX_ITEMS 100000000u
#define SOTU_IDX_MAX_SIDE 4096u
#define SOTU_IDX_MAX_BYTES ((size_t)1 << 31)

typedef struct {
    uint32_t magic;
    int ndim;          /* 3 for images, 1 for labels */
    int32_t n;         /* items */
    int32_t rows, cols; /* 0 for labels */
    uint8_t *data;     /* [n, rows, cols] or [n] */
    size_t size;       /* bytes in data */
} sotu_idx;

/* Reads path and requires its magic to be expect_magic (one of the two
 * above). Errors: SOTU_ERR_IO if the file cannot be opened; SOTU_ERR_DATA,
 * naming the file, for a truncated or corrupt gzip stream, a wrong magic,
 * a dimension out of bounds, or data shorter or longer than the header says
 * (both counts in the message); SOTU_ERR_NOMEM if allocation fails. On
 * failure *out is zeroed. */
sotu_status sotu_idx_read(const char *path, uint32_t expect_magic, sotu_idx *out);

void sotu_idx_free(sotu_idx *x); /* accepts NULL and zeroed structs */

#endif
