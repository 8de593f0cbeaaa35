#include "common/mask.h"
#include "common/mask_internal.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/isa.h"
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

/* One block's permutation: its four round tables and its bound R_β. */
typedef struct {
    uint32_t block;
    uint32_t w[4];
    uint32_t bound;
} block_perm;

static inline uint32_t round_f(uint32_t w, uint32_t v) { return (w >> (3 * v)) & 7u; }

static inline uint32_t tie_of(const sotu_mask *m, uint32_t block, uint32_t r)
{
    return mix(mix((block * 64u + r) ^ m->key[4]) ^ m->key[5]);
}

static inline uint32_t bound_of(const sotu_mask *m, uint32_t block)
{
    if (m->full >= SOTU_MASK_BLOCK)
        return SOTU_MASK_BLOCK;
    return m->full + (m->tie > 0 && (uint64_t)tie_of(m, block, m->full) < m->tie);
}

static inline block_perm perm_of(const sotu_mask *m, uint32_t block)
{
    block_perm p = {.block = block};
    for (uint32_t r = 0; r < 4; r++)
        p.w[r] = mix((4u * block + r) ^ m->key[r]);
    p.bound = bound_of(m, block);
    return p;
}

static inline uint32_t perm_rank(const block_perm *p, uint32_t o)
{
    uint32_t hi = o >> 3, lo = o & 7u;
    hi ^= round_f(p->w[0], lo);
    lo ^= round_f(p->w[1], hi);
    hi ^= round_f(p->w[2], lo);
    lo ^= round_f(p->w[3], hi);
    return hi << 3 | lo;
}

static inline uint32_t perm_offset(const block_perm *p, uint32_t r)
{
    uint32_t hi = r >> 3, lo = r & 7u;
    lo ^= round_f(p->w[3], hi);
    hi ^= round_f(p->w[2], lo);
    lo ^= round_f(p->w[1], hi);
    hi ^= round_f(p->w[0], lo);
    return hi << 3 | lo;
}

uint32_t sotu_mask_rank(const sotu_mask *m, uint32_t i)
{
    block_perm p = perm_of(m, i / SOTU_MASK_BLOCK);
    return perm_rank(&p, i % SOTU_MASK_BLOCK);
}

uint32_t sotu_mask_offset(const sotu_mask *m, uint32_t block, uint32_t r)
{
    assert(r < SOTU_MASK_BLOCK);
    block_perm p = perm_of(m, block);
    return perm_offset(&p, r);
}

uint32_t sotu_mask_tie(const sotu_mask *m, uint32_t block, uint32_t r) { return tie_of(m, block, r); }

uint32_t sotu_mask_block_bound(const sotu_mask *m, uint32_t block) { return bound_of(m, block); }

bool sotu_mask_keeps(const sotu_mask *m, uint32_t i)
{
    if (m->full >= SOTU_MASK_BLOCK)
        return true;
    block_perm p = perm_of(m, i / SOTU_MASK_BLOCK);
    return perm_rank(&p, i % SOTU_MASK_BLOCK) < p.bound;
}

double sotu_mask_u(const sotu_mask *m, uint32_t i)
{
    uint32_t r = sotu_mask_rank(m, i);
    return ldexp((double)r * 4294967296.0 + (double)tie_of(m, i / SOTU_MASK_BLOCK, r), -38);
}

uint32_t sotu_mask_u32(const sotu_mask *m, uint32_t i)
{
    uint32_t r = sotu_mask_rank(m, i);
    return r << 26 | tie_of(m, i / SOTU_MASK_BLOCK, r) >> 6;
}

sotu_mask sotu_mask_of(uint64_t seed, uint32_t task, uint32_t tensor, uint64_t n, double keep)
{
    assert(n >= 1 && n <= SOTU_MASK_COUNT_MAX && keep >= 0.0 && keep <= 1.0);
    sotu_mask m;
    memset(&m, 0, sizeof m);
    m.n = n;
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t out[4];
    sotu_philox4x32((const uint32_t[4]){0, 0x5eed0004u, tensor, task}, key, out);
    memcpy(m.key, out, sizeof out);
    sotu_philox4x32((const uint32_t[4]){1, 0x5eed0004u, tensor, task}, key, out);
    m.key[4] = out[0];
    m.key[5] = out[1];
    if (keep >= 1.0) {
        m.full = SOTU_MASK_BLOCK;
        return m;
    }
    /* 64 keep = F + frac exactly (a power-of-two scaling); rank F is kept
     * iff its tie bits g < frac 2^32, i.e. g < ceil(frac 2^32). */
    double x = ldexp(keep, 6), f = floor(x);
    m.full = (uint32_t)f;
    m.tie = (uint64_t)ceil(ldexp(x - f, 32));
    return m;
}

uint64_t sotu_mask_kept_max(const sotu_mask *m)
{
    if (m->full >= SOTU_MASK_BLOCK)
        return m->n;
    uint64_t blocks = (m->n + SOTU_MASK_BLOCK - 1) / SOTU_MASK_BLOCK,
             most = blocks * (m->full + (m->tie > 0));
    return most < m->n ? most : m->n;
}

/* ------------------------------------------------------------- listing
 *
 * Both ways walk the blocks in order. Words: block β's word has bit
 * P_β^-1(r) for r < R_β (offsets past a short last block dropped), and its
 * set bits are the kept offsets. Pairs (F <= 1, so R_β <= 2): the one or
 * two offsets are ordered by a min and a max. The AVX2 kernel runs eight
 * whole blocks a step (lanes = blocks; one round is a variable shift, an
 * and and an xor); the scalar code does the rest and is the reference.
 *
 * Room: out has cap + SOTU_MASK_SLACK entries. A lister writes while what
 * it has listed fits in cap and only counts after that, so a count above
 * cap means out holds nothing useful. */

/* The set bits of w as indices base + bit: four stores whatever the count
 * (branch-free for the sparse words of a small keep; a missing bit stores
 * garbage past the count, inside the slack), then a loop for the rest. */
static inline void list_word(uint64_t w, uint32_t base, uint32_t *out)
{
    for (int k = 0; k < 4; k++) {
        out[k] = base + (uint32_t)__builtin_ctzll(w | (uint64_t)1 << 63); /* no branch */
        w &= w - 1;
    }
    for (int k = 4; w; k++) {
        out[k] = base + (uint32_t)__builtin_ctzll(w);
        w &= w - 1;
    }
}

typedef struct {
    uint32_t *out;
    uint64_t cap, count;
    bool writing; /* everything so far fits in cap */
} lister;

static inline void emit_word(lister *l, uint64_t w, uint32_t base)
{
    uint64_t k = (uint64_t)__builtin_popcountll(w);
    if (l->writing && l->count + k <= l->cap)
        list_word(w, base, l->out + l->count);
    else
        l->writing = false;
    l->count += k;
}

/* Block β by the scalar code (either way gives the same word). */
static void block_scalar(const sotu_mask *m, uint32_t block, lister *l)
{
    block_perm p = perm_of(m, block);
    uint64_t first = (uint64_t)block * SOTU_MASK_BLOCK, left = m->n - first;
    uint32_t size = left < SOTU_MASK_BLOCK ? (uint32_t)left : SOTU_MASK_BLOCK;
    uint64_t w = 0;
    for (uint32_t r = 0; r < p.bound; r++) {
        uint32_t o = perm_offset(&p, r);
        if (o < size)
            w |= (uint64_t)1 << o;
    }
    emit_word(l, w, (uint32_t)first);
}

#ifdef SOTU_MASK_X86
__attribute__((target("avx2"))) static inline __m256i mix8(__m256i x)
{
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7feb352d));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)0x846ca68bu));
    return _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
}

/* Eight blocks b..b+7 (b a vector of block numbers): the four tables,
 * the bounds R, and P^-1 of one rank r in every lane. */
typedef struct {
    __m256i w[4], bound;
} perm8;

/* R of the eight blocks b (F, plus one where g(F) < tie). */
__attribute__((target("avx2"))) static inline __m256i bound8(const sotu_mask *m, __m256i b)
{
    __m256i full = _mm256_set1_epi32((int)m->full);
    if (m->tie == 0)
        return full;
    if (m->tie > UINT32_MAX) /* every g is below it */
        return _mm256_add_epi32(full, _mm256_set1_epi32(1));
    __m256i at = _mm256_add_epi32(_mm256_slli_epi32(b, 6), full);
    __m256i g = mix8(_mm256_xor_si256(mix8(_mm256_xor_si256(at, _mm256_set1_epi32((int)m->key[4]))),
                                      _mm256_set1_epi32((int)m->key[5])));
    /* g < tie unsigned, as a signed compare after flipping the top bits */
    const __m256i flip = _mm256_set1_epi32(INT32_MIN);
    __m256i extra = _mm256_cmpgt_epi32(_mm256_xor_si256(_mm256_set1_epi32((int)(uint32_t)m->tie), flip),
                                       _mm256_xor_si256(g, flip));
    return _mm256_sub_epi32(full, extra);
}

/* The round tables of the eight blocks b (bound left unset). */
__attribute__((target("avx2"))) static inline perm8 perm8_tables(const sotu_mask *m, __m256i b)
{
    perm8 p;
    __m256i b4 = _mm256_slli_epi32(b, 2);
    for (int r = 0; r < 4; r++)
        p.w[r] = mix8(_mm256_xor_si256(_mm256_add_epi32(b4, _mm256_set1_epi32(r)),
                                       _mm256_set1_epi32((int)m->key[r])));
    p.bound = _mm256_setzero_si256();
    return p;
}

__attribute__((target("avx2"))) static inline perm8 perm8_of(const sotu_mask *m, __m256i b)
{
    perm8 p = perm8_tables(m, b);
    p.bound = bound8(m, b);
    return p;
}

__attribute__((target("avx2"))) static inline __m256i round8(__m256i w, __m256i v)
{
    __m256i three_v = _mm256_add_epi32(v, _mm256_add_epi32(v, v));
    return _mm256_and_si256(_mm256_srlv_epi32(w, three_v), _mm256_set1_epi32(7));
}

__attribute__((target("avx2"))) static inline __m256i offset8(const perm8 *p, uint32_t r)
{
    __m256i hi = _mm256_set1_epi32((int)(r >> 3)), lo = _mm256_set1_epi32((int)(r & 7u));
    lo = _mm256_xor_si256(lo, round8(p->w[3], hi));
    hi = _mm256_xor_si256(hi, round8(p->w[2], lo));
    lo = _mm256_xor_si256(lo, round8(p->w[1], hi));
    hi = _mm256_xor_si256(hi, round8(p->w[0], lo));
    return _mm256_or_si256(_mm256_slli_epi32(hi, 3), lo);
}

/* Words of the whole blocks [0, groups * 8). */
__attribute__((target("avx2"), always_inline)) static inline void words8(const sotu_mask *m,
                                                                          uint64_t groups,
                                                                          lister *l)
{
    const uint32_t most = m->full + (m->tie > 0); /* the largest R of any block */
    const __m256i one = _mm256_set1_epi32(1), m32 = _mm256_set1_epi32(32);
    __m256i b = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    uint32_t lo_w[8], hi_w[8];
    for (uint64_t g = 0; g < groups; g++) {
        perm8 p = perm8_of(m, b);
        __m256i lo32 = _mm256_setzero_si256(), hi32 = _mm256_setzero_si256();
        for (uint32_t r = 0; r < most; r++) {
            __m256i o = offset8(&p, r);
            __m256i on = _mm256_cmpgt_epi32(p.bound, _mm256_set1_epi32((int)r));
            /* a shift by 32 or more (or by a negative count) gives 0 */
            lo32 = _mm256_or_si256(lo32, _mm256_and_si256(on, _mm256_sllv_epi32(one, o)));
            hi32 = _mm256_or_si256(hi32, _mm256_and_si256(on, _mm256_sllv_epi32(one,
                                                           _mm256_sub_epi32(o, m32))));
        }
        _mm256_storeu_si256((__m256i *)lo_w, lo32);
        _mm256_storeu_si256((__m256i *)hi_w, hi32);
        uint32_t base = (uint32_t)(g * 8 * SOTU_MASK_BLOCK);
        for (int k = 0; k < 8; k++)
            emit_word(l, (uint64_t)hi_w[k] << 32 | lo_w[k], base + (uint32_t)k * SOTU_MASK_BLOCK);
        b = _mm256_add_epi32(b, _mm256_set1_epi32(8));
    }
}

/* F <= 1: each whole block of [0, groups * 8) keeps P^-1(0) (R >= 1) and
 * P^-1(1) (R = 2), written in order as min, max. */
__attribute__((target("avx2"), always_inline)) static inline void pairs8(const sotu_mask *m,
                                                                          uint64_t groups,
                                                                          lister *l)
{
    __m256i b = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i two = _mm256_set1_epi32(2);
    uint32_t first[8], second[8], count[8];
    if (m->full == 0) {
        /* Keep below 1/64: a block keeps P^-1(0) iff its tie bits say so,
         * which most do not; the tables only for those that do. */
        for (uint64_t g = 0; g < groups; g++) {
            __m256i bound = bound8(m, b);
            unsigned lanes = (unsigned)_mm256_movemask_ps(
                _mm256_castsi256_ps(_mm256_cmpgt_epi32(bound, _mm256_setzero_si256())));
            if (lanes) {
                perm8 p = perm8_tables(m, b);
                _mm256_storeu_si256((__m256i *)first,
                                    _mm256_add_epi32(_mm256_slli_epi32(b, 6), offset8(&p, 0)));
            }
            for (; lanes; lanes &= lanes - 1) {
                if (l->writing && l->count < l->cap)
                    l->out[l->count] = first[__builtin_ctz(lanes)];
                else
                    l->writing = false;
                l->count++;
            }
            b = _mm256_add_epi32(b, _mm256_set1_epi32(8));
        }
        return;
    }
    for (uint64_t g = 0; g < groups; g++) {
        perm8 p = perm8_of(m, b);
        __m256i o0 = offset8(&p, 0), o1 = offset8(&p, 1);
        __m256i both = _mm256_cmpeq_epi32(p.bound, two);
        __m256i base = _mm256_slli_epi32(b, 6);
        __m256i lo = _mm256_blendv_epi8(o0, _mm256_min_epu32(o0, o1), both);
        _mm256_storeu_si256((__m256i *)first, _mm256_add_epi32(base, lo));
        _mm256_storeu_si256((__m256i *)second,
                            _mm256_add_epi32(base, _mm256_max_epu32(o0, o1)));
        _mm256_storeu_si256((__m256i *)count, p.bound);
        /* A group adds at most 16: it fits in the slack once count <= cap. */
        if (l->writing && l->count <= l->cap) {
            uint32_t *out = l->out;
            uint64_t c = l->count;
            for (int k = 0; k < 8; k++) {
                out[c] = first[k];
                out[c + 1] = second[k];
                c += count[k];
            }
            l->count = c;
        } else {
            l->writing = false;
            for (int k = 0; k < 8; k++)
                l->count += count[k];
        }
        b = _mm256_add_epi32(b, _mm256_set1_epi32(8));
    }
    if (l->count > l->cap)
        l->writing = false;
}

/* The eight-block kernels compiled for the avx2 and the avx512 levels
 * (common/isa.h): the same AVX2 intrinsics, which the AVX-512 copy may
 * encode with its extra registers and instructions. */
SOTU_TARGET_AVX2 static void words_avx2(const sotu_mask *m, uint64_t groups, lister *l)
{
    words8(m, groups, l);
}
SOTU_TARGET_AVX2 static void pairs_avx2(const sotu_mask *m, uint64_t groups, lister *l)
{
    pairs8(m, groups, l);
}
SOTU_TARGET_AVX512 static void words_avx512(const sotu_mask *m, uint64_t groups, lister *l)
{
    words8(m, groups, l);
}
SOTU_TARGET_AVX512 static void pairs_avx512(const sotu_mask *m, uint64_t groups, lister *l)
{
    pairs8(m, groups, l);
}
#endif

bool sotu_mask_kernel_available(sotu_mask_kernel_id k)
{
    switch (k) {
    case SOTU_MASK_KERNEL_SCALAR: return true;
#ifdef SOTU_MASK_X86
    case SOTU_MASK_KERNEL_AVX2: return sotu_isa_supported(SOTU_ISA_AVX2);
    case SOTU_MASK_KERNEL_AVX512: return sotu_isa_supported(SOTU_ISA_AVX512);
#endif
    default: return false;
    }
}

const char *sotu_mask_kernel_name(sotu_mask_kernel_id k)
{
    static const char *const names[] = {"scalar", "avx2", "avx512"};
    return (unsigned)k < SOTU_MASK_KERNEL_COUNT ? names[k] : "?";
}

/* The kernel of the active ISA level (common/isa.h). */
static sotu_mask_kernel_id best_kernel(void)
{
#ifdef SOTU_MASK_X86
    if (sotu_isa_active() == SOTU_ISA_AVX512)
        return SOTU_MASK_KERNEL_AVX512;
    if (sotu_isa_active() == SOTU_ISA_AVX2)
        return SOTU_MASK_KERNEL_AVX2;
#endif
    return SOTU_MASK_KERNEL_SCALAR;
}

const char *sotu_mask_kernel(void) { return sotu_mask_kernel_name(best_kernel()); }

uint64_t sotu_mask_list_with(sotu_mask_kernel_id k, sotu_mask_way way, const sotu_mask *m,
                             uint32_t *out, uint64_t cap)
{
    assert(sotu_mask_kernel_available(k));
    if (m->full >= SOTU_MASK_BLOCK) { /* keep 1: every element */
        if (out && m->n <= cap)
            for (uint64_t i = 0; i < m->n; i++)
                out[i] = (uint32_t)i;
        return m->n;
    }
    if (way == SOTU_MASK_WAY_AUTO)
        way = m->full <= 1 ? SOTU_MASK_WAY_PAIRS : SOTU_MASK_WAY_WORDS;
    assert(way != SOTU_MASK_WAY_PAIRS || m->full <= 1);
    lister l = {.out = out, .cap = cap, .count = 0, .writing = out != NULL};
    const uint64_t blocks = (m->n + SOTU_MASK_BLOCK - 1) / SOTU_MASK_BLOCK;
    uint64_t done = 0;
#ifdef SOTU_MASK_X86
    if (k == SOTU_MASK_KERNEL_AVX2 || k == SOTU_MASK_KERNEL_AVX512) {
        uint64_t groups = m->n / SOTU_MASK_BLOCK / 8; /* whole blocks, eight at a time */
        bool wide = k == SOTU_MASK_KERNEL_AVX512;
        if (way == SOTU_MASK_WAY_PAIRS)
            (wide ? pairs_avx512 : pairs_avx2)(m, groups, &l);
        else
            (wide ? words_avx512 : words_avx2)(m, groups, &l);
        done = groups * 8;
    }
#endif
    (void)way; /* the scalar code gives both ways' words */
    for (uint64_t b = done; b < blocks; b++)
        block_scalar(m, (uint32_t)b, &l);
    return l.count;
}

uint64_t sotu_mask_list(const sotu_mask *m, uint32_t *out, uint64_t cap)
{
    return sotu_mask_list_with(best_kernel(), SOTU_MASK_WAY_AUTO, m, out, cap);
}

size_t sotu_mask_filter(const sotu_mask *m, const uint32_t *idx, const float *val, size_t k,
                        uint32_t *out_idx, float *out_val)
{
    size_t c = 0;
    if (m->full >= SOTU_MASK_BLOCK) {
        for (size_t e = 0; e < k; e++) {
            out_idx[e] = idx[e];
            if (val)
                out_val[e] = val[e];
        }
        return k;
    }
    /* Many candidates: list the mask (eight blocks a step) and walk both
     * ascending lists, instead of a permutation per candidate. */
    const uint64_t blocks = (m->n + SOTU_MASK_BLOCK - 1) / SOTU_MASK_BLOCK, most = sotu_mask_kept_max(m);
    uint32_t *listed = NULL;
    if ((uint64_t)k * 8 > blocks)
        listed = malloc(((size_t)most + SOTU_MASK_SLACK) * sizeof *listed);
    if (listed) {
        uint64_t n_listed = sotu_mask_list(m, listed, most);
        assert(n_listed <= most);
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
    /* Few candidates (or no memory for the list): test each, reusing a
     * block's permutation while the ascending indices stay in it. */
    block_perm p = {.block = UINT32_MAX};
    for (size_t e = 0; e < k; e++) {
        uint32_t i = idx[e], block = i / SOTU_MASK_BLOCK;
        if (block != p.block)
            p = perm_of(m, block);
        out_idx[c] = i;
        if (val)
            out_val[c] = val[e];
        c += perm_rank(&p, i % SOTU_MASK_BLOCK) < p.bound;
    }
    return c;
}
