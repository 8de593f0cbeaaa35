#include "common/rng.h"

#include <assert.h>
#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void sotu_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void sotu_rng_init(sotu_rng *r, uint64_t seed, uint64_t stream)
{
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->stream = stream;
    r->counter = 0;
    r->have = 0;
    r->has_spare = 0;
}

void sotu_rng_seek(sotu_rng *r, uint64_t block)
{
    r->counter = block;
    r->have = 0;
    r->has_spare = 0;
}

uint32_t sotu_rng_u32(sotu_rng *r)
{
    if (r->have == 0) {
        uint32_t ctr[4] = {(uint32_t)r->counter, (uint32_t)(r->counter >> 32),
                           (uint32_t)r->stream, (uint32_t)(r->stream >> 32)};
        sotu_philox4x32(ctr, r->key, r->buf);
        r->counter++;
        r->have = 4;
    }
    return r->buf[--r->have];
}

float sotu_rng_uniform(sotu_rng *r) { return (float)(sotu_rng_u32(r) >> 8) * 0x1.0p-24f; }

double sotu_rng_uniform_double(sotu_rng *r)
{
    uint64_t hi = sotu_rng_u32(r) >> 5, lo = sotu_rng_u32(r) >> 6;
    return (double)((hi << 26) | lo) * 0x1.0p-53;
}

uint64_t sotu_rng_below(sotu_rng *r, uint64_t n)
{
    assert(n > 0);
    if (n <= UINT32_MAX) {
        /* Lemire's multiply-shift with rejection. */
        uint32_t n32 = (uint32_t)n;
        uint64_t m = (uint64_t)sotu_rng_u32(r) * n32;
        uint32_t low = (uint32_t)m;
        if (low < n32) {
            uint32_t threshold = (uint32_t)(-n32) % n32;
            while (low < threshold) {
                m = (uint64_t)sotu_rng_u32(r) * n32;
                low = (uint32_t)m;
            }
        }
        return m >> 32;
    }
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, x;
    do {
        x = ((uint64_t)sotu_rng_u32(r) << 32) | sotu_rng_u32(r);
    } while (x >= limit);
    return x % n;
}

float sotu_rng_normal(sotu_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = 1.0 - sotu_rng_uniform_double(r); /* (0, 1] so log is finite */
    double u2 = sotu_rng_uniform_double(r);
    double radius = sqrt(-2.0 * log(u1)), angle = 2.0 * M_PI * u2;
    r->spare = (float)(radius * sin(angle));
    r->has_spare = 1;
    return (float)(radius * cos(angle));
}

void sotu_rng_permutation(sotu_rng *r, int32_t *perm, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        perm[i] = i;
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)sotu_rng_below(r, (uint64_t)i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
