#include "io/bytes.h"

#include <zlib.h>

uint32_t sotu_crc32(const void *p, size_t n)
{
    const uint8_t *b = p;
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < n;) {
        uInt step = (uInt)((n - off) > (1u << 30) ? (1u << 30) : (n - off));
        crc = crc32(crc, b + off, step);
        off += step;
    }
    return (uint32_t)crc;
}
