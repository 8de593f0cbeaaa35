#include "common/rng.h"
#include "common/rng_internal.h"

#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SOTU_MASK_X86 1
#endif

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

/* The mask hash: Philox derives two 32-bit keys for (seed, task, tensor,
 * index / 2^32) once, then each element costs two keyed rounds of a 32-bit
 * integer mixer (Wellons' lowbias32): a bijection of the low index bits per
 * key, so a tensor's values are distinct, and a loop of 32-bit multiplies
 * and shifts that compilers vectorise (~0.1 ns an element with AVX2). */
static void mask_keys(uint64_t seed, uint32_t task, uint32_t tensor, uint32_t segment,
                      uint32_t keys[2])
{
    uint32_t ctr[4] = {segment, 0x5eedu, tensor, task};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, out[4];
    sotu_philox4x32(ctr, key, out);
    keys[0] = out[0];
    keys[1] = out[1];
}

static inline uint32_t mask_mix(uint32_t x, uint32_t k0, uint32_t k1)
{
    return sotu_mask_mix(sotu_mask_mix(x ^ k0) ^ k1);
}

float sotu_mask_threshold(double keep)
{
    /* u = m 2^-24 < keep  <=>  m < ceil(keep 2^24), exactly representable. */
    return (float)(ceil(keep * 0x1.0p24) * 0x1.0p-24);
}

float sotu_mask_u(uint64_t seed, uint32_t task, uint32_t tensor, uint64_t index)
{
    uint32_t k[2];
    mask_keys(seed, task, tensor, (uint32_t)(index >> 32), k);
    return (float)(mask_mix((uint32_t)index, k[0], k[1]) >> 8) * 0x1.0p-24f;
}

void sotu_mask_u_fill(uint64_t seed, uint32_t task, uint32_t tensor, uint64_t first, size_t n,
                      float *out)
{
    size_t k = 0;
    while (k < n) {
        uint64_t index = first + k;
        uint32_t keys[2], lo = (uint32_t)index;
        mask_keys(seed, task, tensor, (uint32_t)(index >> 32), keys);
        /* Elements up to the end of this 2^32 segment share the keys. */
        uint64_t room = ((uint64_t)1 << 32) - lo;
        size_t m = n - k < room ? n - k : (size_t)room;
        const uint32_t k0 = keys[0], k1 = keys[1];
        float *dst = out + k;
        for (size_t e = 0; e < m; e++)
            dst[e] = (float)(mask_mix(lo + (uint32_t)e, k0, k1) >> 8) * 0x1.0p-24f;
        k += m;
    }
}

/* ------------------------------------------------------------ mask scan */

sotu_mask_key sotu_mask_key_of(uint64_t seed, uint32_t task, uint32_t tensor)
{
    uint32_t k[2];
    mask_keys(seed, task, tensor, 0, k);
    return (sotu_mask_key){k[0], k[1]};
}

uint32_t sotu_mask_bound(double keep)
{
    assert(keep >= 0.0 && keep <= 1.0);
    return (uint32_t)ceil(keep * 0x1.0p24);
}

/* The reference: every kernel must give its indices. Branch-free
 * compaction (a kept/dropped branch mispredicts often). */
static size_t scan_scalar(sotu_mask_key key, uint32_t first, size_t n, uint32_t bound,
                          uint32_t *out)
{
    size_t c = 0;
    for (size_t e = 0; e < n; e++) {
        uint32_t i = first + (uint32_t)e;
        out[c] = i;
        c += sotu_mask_m(key, i) < bound;
    }
    return c;
}

#ifdef SOTU_MASK_X86
/* Eight (AVX2) or sixteen (AVX-512) indices at a time: the same two keyed
 * lowbias32 rounds in 32-bit lanes, compare m < bound (both below 2^31, so
 * the signed compare of AVX2 is exact), then pack the kept lanes. */
__attribute__((target("avx2"))) static inline __m256i mix8(__m256i x)
{
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7feb352d));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)0x846ca68bu));
    return _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
}

__attribute__((target("avx2"))) static size_t scan_avx2(sotu_mask_key key, uint32_t first,
                                                        size_t n, uint32_t bound, uint32_t *out)
{
    const __m256i k0 = _mm256_set1_epi32((int)key.k0), k1 = _mm256_set1_epi32((int)key.k1);
    const __m256i vb = _mm256_set1_epi32((int)bound), eight = _mm256_set1_epi32(8);
    __m256i idx = _mm256_add_epi32(_mm256_set1_epi32((int)first),
                                   _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    size_t c = 0, e = 0;
    for (; e + 8 <= n; e += 8) {
        __m256i x = mix8(_mm256_xor_si256(mix8(_mm256_xor_si256(idx, k0)), k1));
        __m256i kept = _mm256_cmpgt_epi32(vb, _mm256_srli_epi32(x, 8));
        unsigned bits = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(kept));
        if (bits) /* rare at small keep, so the branch predicts well there */
            for (unsigned l = 0; l < 8; l++) {
                out[c] = first + (uint32_t)e + l;
                c += (bits >> l) & 1u;
            }
        idx = _mm256_add_epi32(idx, eight);
    }
    return c + scan_scalar(key, first + (uint32_t)e, n - e, bound, out + c);
}

__attribute__((target("avx512f"))) static inline __m512i mix16(__m512i x)
{
    x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x7feb352d));
    x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 15));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32((int)0x846ca68bu));
    return _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
}

__attribute__((target("avx512f"))) static size_t scan_avx512(sotu_mask_key key, uint32_t first,
                                                             size_t n, uint32_t bound,
                                                             uint32_t *out)
{
    const __m512i k0 = _mm512_set1_epi32((int)key.k0), k1 = _mm512_set1_epi32((int)key.k1);
    const __m512i vb = _mm512_set1_epi32((int)bound), sixteen = _mm512_set1_epi32(16);
    __m512i idx = _mm512_add_epi32(_mm512_set1_epi32((int)first),
                                   _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                                     13, 14, 15));
    size_t c = 0, e = 0;
    for (; e + 16 <= n; e += 16) {
        __m512i x = mix16(_mm512_xor_si512(mix16(_mm512_xor_si512(idx, k0)), k1));
        __mmask16 kept = _mm512_cmplt_epu32_mask(_mm512_srli_epi32(x, 8), vb);
        /* Compress in a register, then a plain store: the memory form of
         * vpcompressd is microcoded and slow on some CPUs (AMD Zen 4). */
        _mm512_storeu_si512(out + c, _mm512_maskz_compress_epi32(kept, idx));
        c += (size_t)__builtin_popcount(kept);
        idx = _mm512_add_epi32(idx, sixteen);
    }
    return c + scan_scalar(key, first + (uint32_t)e, n - e, bound, out + c);
}
#endif

bool sotu_mask_kernel_available(sotu_mask_kernel_id k)
{
    switch (k) {
    case SOTU_MASK_KERNEL_SCALAR: return true;
#ifdef SOTU_MASK_X86
    case SOTU_MASK_KERNEL_AVX2: return __builtin_cpu_supports("avx2");
    case SOTU_MASK_KERNEL_AVX512: return __builtin_cpu_supports("avx512f");
#endif
    default: return false;
    }
}

const char *sotu_mask_kernel_name(sotu_mask_kernel_id k)
{
    static const char *const names[] = {"scalar", "avx2", "avx512"};
    return (unsigned)k < SOTU_MASK_KERNEL_COUNT ? names[k] : "?";
}

size_t sotu_mask_scan_with(sotu_mask_kernel_id k, sotu_mask_key key, uint64_t first, size_t n,
                           uint32_t bound, uint32_t *out)
{
    assert(first + n <= ((uint64_t)1 << 32) && sotu_mask_kernel_available(k));
#ifdef SOTU_MASK_X86
    if (k == SOTU_MASK_KERNEL_AVX512)
        return scan_avx512(key, (uint32_t)first, n, bound, out);
    if (k == SOTU_MASK_KERNEL_AVX2)
        return scan_avx2(key, (uint32_t)first, n, bound, out);
#endif
    return scan_scalar(key, (uint32_t)first, n, bound, out);
}

static sotu_mask_kernel_id best_kernel(void)
{
    /* Racing first calls from several threads store the same value. */
    static atomic_int best = -1;
    int k = atomic_load_explicit(&best, memory_order_relaxed);
    if (k < 0) {
        k = SOTU_MASK_KERNEL_COUNT - 1;
        while (!sotu_mask_kernel_available((sotu_mask_kernel_id)k))
            k--;
        atomic_store_explicit(&best, k, memory_order_relaxed);
    }
    return (sotu_mask_kernel_id)k;
}

size_t sotu_mask_scan(sotu_mask_key key, uint64_t first, size_t n, uint32_t bound, uint32_t *out)
{
    return sotu_mask_scan_with(best_kernel(), key, first, n, bound, out);
}

const char *sotu_mask_scan_kernel(void) { return sotu_mask_kernel_name(best_kernel()); }
