/* Little-endian integers in byte buffers and the crc32 of a buffer of any
 * size: the pieces the binary formats (io/delta.h, io/module.h) share. */
#ifndef SOTU_IO_BYTES_H
#define SOTU_IO_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* Writes the low `bytes` bytes of x at p, little-endian; returns p + bytes. */
static inline uint8_t *sotu_put_le(uint8_t *p, uint64_t x, int bytes)
{
    for (int b = 0; b < bytes; b++)
        p[b] = (uint8_t)(x >> (8 * b));
    return p + bytes;
}

/* The little-endian integer of `bytes` bytes at p. */
static inline uint64_t sotu_get_le(const uint8_t *p, int bytes)
{
    uint64_t x = 0;
    for (int b = 0; b < bytes; b++)
        x |= (uint64_t)p[b] << (8 * b);
    return x;
}

/* zlib's crc32 of p[0, n), in pieces below 4 GiB. */
uint32_t sotu_crc32(const void *p, size_t n);

#endif
