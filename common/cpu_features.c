#include "common/cpu_features.h"

#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* XCR0 state components (Intel SDM vol. 1, 13.1). */
enum {
    XCR0_SSE = 1u << 1,
    XCR0_YMM = 1u << 2,
    XCR0_OPMASK = 1u << 5,
    XCR0_ZMM_HI256 = 1u << 6,
    XCR0_HI16_ZMM = 1u << 7,
};

static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static bool bit(uint32_t reg, int n) { return (reg >> n) & 1u; }

void sotu_cpu_features_read(sotu_cpu_features *f)
{
    memset(f, 0, sizeof *f);
    uint32_t a, b, c, d, max_leaf;
    if (!__get_cpuid(0, &max_leaf, &b, &c, &d))
        return;
    memcpy(f->vendor, &b, 4);
    memcpy(f->vendor + 4, &d, 4);
    memcpy(f->vendor + 8, &c, 4);

    uint32_t max_ext = __get_cpuid_max(0x80000000u, NULL);
    if (max_ext >= 0x80000004u) {
        uint32_t r[12];
        for (uint32_t i = 0; i < 3; i++)
            __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        char raw[49];
        memcpy(raw, r, 48);
        raw[48] = '\0';
        const char *s = raw;
        while (*s == ' ')
            s++;
        snprintf(f->brand, sizeof f->brand, "%s", s);
        for (size_t n = strlen(f->brand); n > 0 && f->brand[n - 1] == ' '; n--)
            f->brand[n - 1] = '\0';
    }

    __get_cpuid(1, &a, &b, &c, &d);
    bool osxsave = bit(c, 27);
    f->xcr0 = osxsave ? read_xcr0() : 0;
    f->os_avx = (f->xcr0 & (XCR0_SSE | XCR0_YMM)) == (XCR0_SSE | XCR0_YMM);
    f->os_avx512 = f->os_avx && (f->xcr0 & (XCR0_OPMASK | XCR0_ZMM_HI256 | XCR0_HI16_ZMM)) ==
                                    (XCR0_OPMASK | XCR0_ZMM_HI256 | XCR0_HI16_ZMM);
    f->sse42 = bit(c, 20);
    f->avx = bit(c, 28) && f->os_avx;
    f->fma = bit(c, 12) && f->os_avx;
    if (max_leaf < 7)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    f->avx2 = bit(b, 5) && f->os_avx;
    f->avx512f = bit(b, 16) && f->os_avx512;
    f->avx512dq = bit(b, 17) && f->os_avx512;
    f->avx512bw = bit(b, 30) && f->os_avx512;
    f->avx512vl = bit(b, 31) && f->os_avx512;
    f->avx512_vnni = bit(c, 11) && f->os_avx512;
    f->amx_bf16 = bit(d, 22);
    f->amx_tile = bit(d, 24);
    uint32_t sub = a;
    if (sub >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        f->avx512_bf16 = bit(a, 5) && f->os_avx512;
    }
}
#else
void sotu_cpu_features_read(sotu_cpu_features *f) { memset(f, 0, sizeof *f); }
#endif

void sotu_cpu_features_format(const sotu_cpu_features *f, char *buf, size_t cap)
{
    const struct {
        bool on;
        const char *name;
    } names[] = {
        {f->sse42, "sse4.2"},         {f->avx, "avx"},
        {f->fma, "fma"},              {f->avx2, "avx2"},
        {f->avx512f, "avx512f"},      {f->avx512bw, "avx512bw"},
        {f->avx512dq, "avx512dq"},    {f->avx512vl, "avx512vl"},
        {f->avx512_vnni, "avx512_vnni"}, {f->avx512_bf16, "avx512_bf16"},
        {f->amx_tile, "amx_tile"},    {f->amx_bf16, "amx_bf16"},
    };
    size_t len = 0;
    if (cap == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!names[i].on)
            continue;
        int n = snprintf(buf + len, cap - len, "%s%s", len ? " " : "", names[i].name);
        if (n < 0 || (size_t)n >= cap - len)
            return;
        len += (size_t)n;
    }
    if (len == 0)
        snprintf(buf, cap, "none");
}
