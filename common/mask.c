#include "common/mask.h"
#include "common/mask_internal.h"

#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SOTU_MASK_X86 1
#endif

/* Wellons' lowbias32: a bijection of 32-bit words with good avalanche,
 * two multiplies (vectorises as vpmulld). */
static inline uint32_t mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

static inline unsigned hi_bits(const sotu_mask *m) { return m->bits - m->lo_bits; }

/* Round function: w pseudo-random bits of (v, k). */
static inline uint32_t round_f(uint32_t v, uint32_t k, unsigned w) { return mix(v ^ k) >> (32 - w); }

uint32_t sotu_mask_rank(const sotu_mask *m, uint32_t i)
{
    const unsigned lb = m->lo_bits, hb = hi_bits(m);
    uint32_t hi = i >> lb, lo = i & ((1u << lb) - 1u);
    hi ^= round_f(lo, m->key[0], hb);
    lo ^= round_f(hi, m->key[1], lb);
    hi ^= round_f(lo, m->key[2], hb);
    lo ^= round_f(hi, m->key[3], lb);
    return hi << lb | lo;
}

uint32_t sotu_mask_element(const sotu_mask *m, uint32_t r)
{
    const unsigned lb = m->lo_bits, hb = hi_bits(m);
    uint32_t hi = r >> lb, lo = r & ((1u << lb) - 1u);
    lo ^= round_f(hi, m->key[3], lb);
    hi ^= round_f(lo, m->key[2], hb);
    lo ^= round_f(hi, m->key[1], lb);
    hi ^= round_f(lo, m->key[0], hb);
    return hi << lb | lo;
}

uint32_t sotu_mask_tie(const sotu_mask *m, uint32_t r) { return mix(mix(r ^ m->key[4]) ^ m->key[5]); }

double sotu_mask_u(const sotu_mask *m, uint32_t i)
{
    uint32_t r = sotu_mask_rank(m, i);
    return ldexp((double)r + ldexp((double)sotu_mask_tie(m, r), -32), -(int)m->bits);
}

sotu_mask sotu_mask_of(uint64_t seed, uint32_t task, uint32_t tensor, uint64_t n, double keep)
{
    assert(n >= 1 && n <= SOTU_MASK_COUNT_MAX && keep >= 0.0 && keep <= 1.0);
    sotu_mask m;
    memset(&m, 0, sizeof m);
    m.n = n;
    m.bits = 2;
    while (((uint64_t)1 << m.bits) < n)
        m.bits++;
    m.lo_bits = m.bits / 2;
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t out[4];
    sotu_philox4x32((const uint32_t[4]){0, 0x5eed0003u, tensor, task}, key, out);
    memcpy(m.key, out, sizeof out);
    sotu_philox4x32((const uint32_t[4]){1, 0x5eed0003u, tensor, task}, key, out);
    m.key[4] = out[0];
    m.key[5] = out[1];

    const uint64_t ranks = (uint64_t)1 << m.bits;
    if (keep >= 1.0) {
        m.bound = ranks;
        return m;
    }
    /* keep 2^b = f + frac exactly (a power-of-two scaling); rank f is kept
     * iff its tie bits g(f) < frac 2^32, i.e. g(f) < ceil(frac 2^32). */
    double x = ldexp(keep, (int)m.bits), f = floor(x);
    uint64_t tie = (uint64_t)ceil(ldexp(x - f, 32));
    m.bound = (uint64_t)f + (tie > 0 && sotu_mask_tie(&m, (uint32_t)f) < tie);
    return m;
}

size_t sotu_mask_scratch_words(const sotu_mask *m) { return (((size_t)1 << m->bits) + 63) / 64; }

size_t sotu_mask_filter(const sotu_mask *m, const uint32_t *idx, const float *val, size_t k,
                        uint32_t *out_idx, float *out_val)
{
    const uint64_t all = (uint64_t)1 << m->bits;
    uint32_t *listed = NULL;
    /* Many candidates: list the mask (O(R)) and walk both ascending lists,
     * instead of a P per candidate. */
    if (m->bound < all && k > m->bound / 4)
        listed = malloc(((size_t)m->bound + SOTU_MASK_SLACK) * sizeof *listed);
    size_t c = 0;
    if (listed) {
        uint64_t n_listed = sotu_mask_list(m, listed, m->bound, NULL);
        if (n_listed != UINT64_MAX) {
            size_t e = 0;
            for (uint64_t q = 0; q < n_listed; q++) {
                uint32_t i = listed[q];
                while (e < k && idx[e] < i)
                    e++;
                if (e == k)
                    break;
                if (idx[e] == i) {
                    out_idx[c] = i;
                    if (val)
                        out_val[c] = val[e];
                    c++;
                }
            }
            free(listed);
            return c;
        }
        free(listed);
    }
    for (size_t e = 0; e < k; e++) {
        uint32_t i = idx[e];
        out_idx[c] = i;
        if (val)
            out_val[c] = val[e];
        c += sotu_mask_rank(m, i) < m->bound;
    }
    return c;
}

/* ------------------------------------------------------------- kernels
 *
 * Three ways to list the kept elements:
 *   sort   (keep below ~1/70) P^-1 of every rank r < R, the elements
 *          below n collected and radix-sorted: O(R), no bitmap;
 *   ranks  (small keep) a bitmap zeroed, then bit P^-1(r) set for every
 *          r < R: O(R) evaluations and scattered single-bit writes;
 *   scan   (large keep) word q of the bitmap = the bits P(i) < R of
 *          elements 64q..64q+63: O(n) evaluations, sequential stores;
 * the bitmap ways then list the set bits below n. All kernels and ways
 * give the same elements; the vector kernels do 8 or 16 lanes of the
 * scalar one. */

/* Scalar: the reference. */
static void scan_scalar(const sotu_mask *m, uint64_t *bits, uint64_t from_word)
{
    const uint64_t words = (m->n + 63) / 64;
    for (uint64_t q = from_word; q < words; q++) {
        uint64_t w = 0;
        for (unsigned l = 0; l < 64; l++)
            w |= (uint64_t)(sotu_mask_rank(m, (uint32_t)(q * 64 + l)) < m->bound) << l;
        bits[q] = w;
    }
}

/* The set bits of one word as indices base + bit: four stores whatever
 * the count (branch-free for the sparse words of a small keep; a missing
 * bit stores garbage past the count, inside the caller's slack), then a
 * loop for the rest. Returns the count. */
static inline uint64_t list_word(uint64_t w, uint32_t base, uint32_t *out)
{
    uint64_t count = (uint64_t)__builtin_popcountll(w);
    for (int k = 0; k < 4; k++) {
        out[k] = base + (uint32_t)__builtin_ctzll(w | (uint64_t)1 << 63); /* no branch */
        w &= w - 1;
    }
    for (int k = 4; w; k++) {
        out[k] = base + (uint32_t)__builtin_ctzll(w);
        w &= w - 1;
    }
    return count;
}

/* The set bits of words [0, words) listed while they fit in cap (out has
 * cap + SOTU_MASK_SLACK entries: list_word writes at least 4), counted
 * after that: one pass for both, instead of a counting pass first.
 * Returns the count; out holds the list iff the count is <= cap. */
static uint64_t list_scalar(const uint64_t *bits, uint64_t words, uint32_t *out, uint64_t cap)
{
    uint64_t c = 0, q = 0;
    for (; q < words; q++) {
        uint64_t w = bits[q], k = (uint64_t)__builtin_popcountll(w);
        if (c + k > cap)
            break;
        c += list_word(w, (uint32_t)(q * 64), out + c);
    }
    for (; q < words; q++)
        c += (uint64_t)__builtin_popcountll(bits[q]);
    return c;
}

#ifdef SOTU_MASK_X86
/* The Feistel network on 16 (AVX-512) or 8 (AVX2) lanes. Shift counts
 * are run-time values: the _sll/_srl forms take them in a register. */
#define LANE_CONSTS(m)                                                                             \
    const unsigned lb = (m)->lo_bits, hb = (m)->bits - (m)->lo_bits;                               \
    const __m128i s_lb = _mm_cvtsi32_si128((int)lb), s_hr = _mm_cvtsi32_si128(32 - (int)hb),      \
                  s_lr = _mm_cvtsi32_si128(32 - (int)lb)

__attribute__((target("avx512f"))) static inline __m512i mix16(__m512i x)
{
    x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x7feb352d));
    x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 15));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32((int)0x846ca68bu));
    return _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
}

__attribute__((target("avx512f"))) static inline __m512i f16(__m512i v, uint32_t k, __m128i s)
{
    return _mm512_srl_epi32(mix16(_mm512_xor_si512(v, _mm512_set1_epi32((int)k))), s);
}

__attribute__((target("avx512f"))) static void scan_avx512(const sotu_mask *m, uint64_t *bits)
{
    LANE_CONSTS(m);
    const __m512i lo_mask = _mm512_set1_epi32((int)((1u << lb) - 1u));
    /* R <= 2^32 - 1 here (R = 2^b keeps all and never scans): unsigned compare. */
    const __m512i bound = _mm512_set1_epi32((int)(uint32_t)m->bound);
    const uint64_t full = m->n / 64; /* whole words; the rest is scan_scalar's */
    __m512i i = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (uint64_t q = 0; q < full; q++) {
        uint64_t w = 0;
        for (unsigned part = 0; part < 4; part++) {
            __m512i hi = _mm512_srl_epi32(i, s_lb), lo = _mm512_and_si512(i, lo_mask);
            hi = _mm512_xor_si512(hi, f16(lo, m->key[0], s_hr));
            lo = _mm512_xor_si512(lo, f16(hi, m->key[1], s_lr));
            hi = _mm512_xor_si512(hi, f16(lo, m->key[2], s_hr));
            lo = _mm512_xor_si512(lo, f16(hi, m->key[3], s_lr));
            __m512i p = _mm512_or_si512(_mm512_sll_epi32(hi, s_lb), lo);
            w |= (uint64_t)_mm512_cmplt_epu32_mask(p, bound) << (16 * part);
            i = _mm512_add_epi32(i, _mm512_set1_epi32(16));
        }
        bits[q] = w;
    }
    scan_scalar(m, bits, full);
}

/* The set bits below n, 16 at a time: compress the lanes' indices (for
 * dense bitmaps; list_scalar is faster below ~8 bits a word). */
__attribute__((target("avx512f"))) static uint64_t list_avx512(const uint64_t *bits, uint64_t n,
                                                               uint32_t *out)
{
    const uint64_t words = (n + 63) / 64;
    __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i sixteen = _mm512_set1_epi32(16), sixtyfour = _mm512_set1_epi32(64);
    uint64_t c = 0;
    for (uint64_t q = 0; q < words; q++) {
        uint64_t w = bits[q];
        if (w) {
            __m512i at = idx;
            for (unsigned part = 0; part < 4; part++, w >>= 16) {
                __mmask16 k = (__mmask16)w;
                /* Compress in a register, then a plain store: the memory
                 * form of vpcompressd is microcoded on some CPUs. */
                _mm512_storeu_si512(out + c, _mm512_maskz_compress_epi32(k, at));
                c += (uint64_t)__builtin_popcount(k);
                at = _mm512_add_epi32(at, sixteen);
            }
        }
        idx = _mm512_add_epi32(idx, sixtyfour);
    }
    return c;
}

__attribute__((target("avx2"))) static inline __m256i mix8(__m256i x)
{
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7feb352d));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)0x846ca68bu));
    return _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
}

__attribute__((target("avx2"))) static inline __m256i f8(__m256i v, uint32_t k, __m128i s)
{
    return _mm256_srl_epi32(mix8(_mm256_xor_si256(v, _mm256_set1_epi32((int)k))), s);
}

__attribute__((target("avx2"))) static void scan_avx2(const sotu_mask *m, uint64_t *bits)
{
    LANE_CONSTS(m);
    const __m256i lo_mask = _mm256_set1_epi32((int)((1u << lb) - 1u));
    /* p < R unsigned, as a signed compare after flipping the top bits. */
    const __m256i flip = _mm256_set1_epi32(INT32_MIN);
    const __m256i bound = _mm256_xor_si256(_mm256_set1_epi32((int)(uint32_t)m->bound), flip);
    const uint64_t full = m->n / 64; /* whole words; the rest is scan_scalar's */
    __m256i i = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (uint64_t q = 0; q < full; q++) {
        uint64_t w = 0;
        for (unsigned part = 0; part < 8; part++) {
            __m256i hi = _mm256_srl_epi32(i, s_lb), lo = _mm256_and_si256(i, lo_mask);
            hi = _mm256_xor_si256(hi, f8(lo, m->key[0], s_hr));
            lo = _mm256_xor_si256(lo, f8(hi, m->key[1], s_lr));
            hi = _mm256_xor_si256(hi, f8(lo, m->key[2], s_hr));
            lo = _mm256_xor_si256(lo, f8(hi, m->key[3], s_lr));
            __m256i p = _mm256_xor_si256(_mm256_or_si256(_mm256_sll_epi32(hi, s_lb), lo), flip);
            __m256i kept = _mm256_cmpgt_epi32(bound, p);
            w |= (uint64_t)(unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(kept)) << (8 * part);
            i = _mm256_add_epi32(i, _mm256_set1_epi32(8));
        }
        bits[q] = w;
    }
    scan_scalar(m, bits, full);
}

/* P^-1 of the 64 ranks r0..r0+63 into x (the inner step of the ranks and
 * sort ways). The rounds of one vector are a chain of ~60 cycles of
 * latency (eight multiplies), so four independent vectors are in flight
 * at a time; one vector per call left the multipliers idle (the AVX2
 * kernel ran at 1.8 ns a rank, latency-bound). */
#define INVERSE_ROUNDS(V, SRL, SLL, XOR, AND, OR, MIX, r, out)                                    \
    do {                                                                                           \
        V hi_ = SRL(r, s_lb), lo_ = AND(r, lo_mask);                                               \
        lo_ = XOR(lo_, SRL(MIX(XOR(hi_, k3)), s_lr));                                              \
        hi_ = XOR(hi_, SRL(MIX(XOR(lo_, k2)), s_hr));                                              \
        lo_ = XOR(lo_, SRL(MIX(XOR(hi_, k1)), s_lr));                                              \
        hi_ = XOR(hi_, SRL(MIX(XOR(lo_, k0)), s_hr));                                              \
        out = OR(SLL(hi_, s_lb), lo_);                                                             \
    } while (0)

__attribute__((target("avx512f"))) static void elements64_avx512(const sotu_mask *m, uint32_t r0,
                                                                 uint32_t *x)
{
    LANE_CONSTS(m);
    const __m512i lo_mask = _mm512_set1_epi32((int)((1u << lb) - 1u));
    const __m512i k0 = _mm512_set1_epi32((int)m->key[0]), k1 = _mm512_set1_epi32((int)m->key[1]),
                  k2 = _mm512_set1_epi32((int)m->key[2]), k3 = _mm512_set1_epi32((int)m->key[3]);
    const __m512i sixteen = _mm512_set1_epi32(16);
    __m512i r[4], e[4];
    r[0] = _mm512_add_epi32(_mm512_set1_epi32((int)r0),
                            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    for (int v = 1; v < 4; v++)
        r[v] = _mm512_add_epi32(r[v - 1], sixteen);
    for (int v = 0; v < 4; v++)
        INVERSE_ROUNDS(__m512i, _mm512_srl_epi32, _mm512_sll_epi32, _mm512_xor_si512,
                       _mm512_and_si512, _mm512_or_si512, mix16, r[v], e[v]);
    for (int v = 0; v < 4; v++)
        _mm512_storeu_si512(x + 16 * v, e[v]);
}

__attribute__((target("avx2"))) static void elements64_avx2(const sotu_mask *m, uint32_t r0,
                                                            uint32_t *x)
{
    LANE_CONSTS(m);
    const __m256i lo_mask = _mm256_set1_epi32((int)((1u << lb) - 1u));
    const __m256i k0 = _mm256_set1_epi32((int)m->key[0]), k1 = _mm256_set1_epi32((int)m->key[1]),
                  k2 = _mm256_set1_epi32((int)m->key[2]), k3 = _mm256_set1_epi32((int)m->key[3]);
    const __m256i eight = _mm256_set1_epi32(8);
    __m256i r = _mm256_add_epi32(_mm256_set1_epi32((int)r0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int half = 0; half < 2; half++) {
        __m256i rv[4], e[4];
        for (int v = 0; v < 4; v++) {
            rv[v] = r;
            r = _mm256_add_epi32(r, eight);
        }
        for (int v = 0; v < 4; v++)
            INVERSE_ROUNDS(__m256i, _mm256_srl_epi32, _mm256_sll_epi32, _mm256_xor_si256,
                           _mm256_and_si256, _mm256_or_si256, mix8, rv[v], e[v]);
        for (int v = 0; v < 4; v++)
            _mm256_storeu_si256((__m256i *)(x + 32 * half + 8 * v), e[v]);
    }
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

const char *sotu_mask_kernel(void) { return sotu_mask_kernel_name(best_kernel()); }

static void elements64_scalar(const sotu_mask *m, uint32_t r0, uint32_t *x)
{
    for (uint32_t l = 0; l < 64; l++)
        x[l] = sotu_mask_element(m, r0 + l);
}

/* LSD radix sort of a[0, n), values below 2^bits, 11 bits a pass, tmp as
 * long as a; insertion sort for short lists. */
static void sort_u32(uint32_t *a, uint32_t *tmp, size_t n, unsigned bits)
{
    if (n < 64) {
        for (size_t i = 1; i < n; i++) {
            uint32_t v = a[i];
            size_t j = i;
            for (; j > 0 && a[j - 1] > v; j--)
                a[j] = a[j - 1];
            a[j] = v;
        }
        return;
    }
    uint32_t *src = a, *dst = tmp;
    for (unsigned shift = 0; shift < bits; shift += 11) {
        size_t at[2048] = {0};
        for (size_t i = 0; i < n; i++)
            at[(src[i] >> shift) & 2047]++;
        for (size_t d = 0, sum = 0; d < 2048; d++) {
            size_t c = at[d];
            at[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[at[(src[i] >> shift) & 2047]++] = src[i];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
}

typedef void (*elements64_fn)(const sotu_mask *m, uint32_t r0, uint32_t *x);

static elements64_fn elements64_kernel(sotu_mask_kernel_id k)
{
#ifdef SOTU_MASK_X86
    if (k == SOTU_MASK_KERNEL_AVX512)
        return elements64_avx512;
    if (k == SOTU_MASK_KERNEL_AVX2)
        return elements64_avx2;
#endif
    (void)k;
    return elements64_scalar;
}

/* The ranks way: bit P^-1(r) set for every rank r < R (bits zeroed; they
 * cover all 2^b elements, so no lane needs a test). */
static void mark_ranks(sotu_mask_kernel_id k, const sotu_mask *m, uint64_t *bits)
{
    elements64_fn block = elements64_kernel(k);
    uint32_t x[64];
    for (uint64_t r0 = 0; r0 < m->bound; r0 += 64) {
        block(m, (uint32_t)r0, x);
        unsigned lanes = m->bound - r0 < 64 ? (unsigned)(m->bound - r0) : 64;
        for (unsigned l = 0; l < lanes; l++)
            bits[x[l] >> 6] |= (uint64_t)1 << (x[l] & 63);
    }
}

/* The sort way: the elements of the ranks below R, collected in rank
 * order into buf (room for 2 R: the second half is the sort's), sorted.
 * O(R) work and no n-bit bitmap, for very small keep. */
static uint64_t sorted_elements(sotu_mask_kernel_id k, const sotu_mask *m, uint32_t *buf)
{
    elements64_fn block = elements64_kernel(k);
    uint32_t x[64];
    uint64_t c = 0;
    for (uint64_t r0 = 0; r0 < m->bound; r0 += 64) {
        block(m, (uint32_t)r0, x);
        unsigned lanes = m->bound - r0 < 64 ? (unsigned)(m->bound - r0) : 64;
        for (unsigned l = 0; l < lanes; l++) {
            buf[c] = x[l];
            c += x[l] < m->n;
        }
    }
    sort_u32(buf, buf + m->bound, (size_t)c, m->bits);
    return c;
}

/* Listing by ranks costs a P^-1 and a scattered bit write per rank below
 * R, plus clearing and scanning an n-bit bitmap; scanning, a P per element
 * (vectorised, sequential stores); sorting, a P^-1 and a two- or
 * three-pass radix sort per rank, no bitmap. Measured on AVX-512 (ViT-B
 * shapes): ranks win below keep ~0.25, where R ~ n / 2; sorting below
 * keep ~1/70 (R ~ n / 48), where the bitmap costs more than the ranks:
 * listing at keep 1/100 3.4 ms against 4.7, at 1/1000 0.6 against 4.0. */
enum { RANKS_COST_PER_SCAN = 2, SORT_BELOW = 48 };

uint64_t sotu_mask_list_with(sotu_mask_kernel_id k, sotu_mask_way way, const sotu_mask *m,
                             uint32_t *out, uint64_t cap, uint64_t *scratch)
{
    assert(sotu_mask_kernel_available(k));
    const uint64_t n = m->n, words = sotu_mask_scratch_words(m);
    if (m->bound >= ((uint64_t)1 << m->bits)) { /* keep 1: every element */
        if (n <= cap)
            for (uint64_t i = 0; i < n; i++)
                out[i] = (uint32_t)i;
        return n;
    }
    if (way == SOTU_MASK_WAY_AUTO)
        way = m->bound * SORT_BELOW < n                ? SOTU_MASK_WAY_SORT
              : m->bound * RANKS_COST_PER_SCAN < n ? SOTU_MASK_WAY_RANKS
                                                     : SOTU_MASK_WAY_SCAN;
    if (way == SOTU_MASK_WAY_SORT) {
        /* 2 R words of 32 bits: the scratch when it is that large. */
        bool own = !scratch || 2 * m->bound + SOTU_MASK_SLACK > 2 * words;
        uint32_t *buf = own ? malloc((2 * (size_t)m->bound + SOTU_MASK_SLACK) * sizeof *buf)
                            : (uint32_t *)scratch;
        if (!buf)
            return UINT64_MAX;
        uint64_t count = sorted_elements(k, m, buf);
        if (count <= cap)
            memcpy(out, buf, (size_t)count * sizeof *out);
        if (own)
            free(buf);
        return count;
    }
    uint64_t *bits = scratch ? scratch : malloc(words * sizeof *bits);
    if (!bits)
        return UINT64_MAX;
    if (way == SOTU_MASK_WAY_RANKS) {
        memset(bits, 0, words * sizeof *bits);
        mark_ranks(k, m, bits);
    } else {
        switch (k) {
#ifdef SOTU_MASK_X86
        case SOTU_MASK_KERNEL_AVX512: scan_avx512(m, bits); break;
        case SOTU_MASK_KERNEL_AVX2: scan_avx2(m, bits); break;
#endif
        default: scan_scalar(m, bits, 0);
        }
    }
    /* Elements n..2^b-1 exist only as ranks' images: clear them. */
    const uint64_t last = (n - 1) / 64;
    if (n % 64)
        bits[last] &= ((uint64_t)1 << (n % 64)) - 1;
    uint64_t count = 0;
#ifdef SOTU_MASK_X86
    /* Dense bitmaps (about R n / 2^b set bits, over 8 a word): count, then
     * compress 16 lanes at a time. */
    if (k == SOTU_MASK_KERNEL_AVX512 &&
        ldexp((double)m->bound * (double)n, -(int)m->bits) > 8.0 * (double)(last + 1)) {
        for (uint64_t q = 0; q <= last; q++)
            count += (uint64_t)__builtin_popcountll(bits[q]);
        if (count <= cap)
            list_avx512(bits, n, out);
    } else
#endif
        count = list_scalar(bits, last + 1, out, cap);
    if (!scratch)
        free(bits);
    return count;
}

uint64_t sotu_mask_list(const sotu_mask *m, uint32_t *out, uint64_t cap, uint64_t *scratch)
{
    return sotu_mask_list_with(best_kernel(), SOTU_MASK_WAY_AUTO, m, out, cap, scratch);
}
