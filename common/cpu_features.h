/* What the CPU can run, read with cpuid, and what the operating system lets
 * it run: AVX and AVX-512 need the OS to save their register state on a
 * context switch (XCR0, read with xgetbv), else the instructions fault.
 * Every "usable" flag below is the CPU's bit AND the OS's state bits.
 * On a CPU other than x86-64 every flag is false. */
#ifndef SOTU_COMMON_CPU_FEATURES_H
#define SOTU_COMMON_CPU_FEATURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char vendor[16]; /* "GenuineIntel", "AuthenticAMD", "" */
    char brand[64];  /* the processor's brand string, trimmed */
    uint64_t xcr0;   /* the OS's enabled state components (0 without OSXSAVE) */
    bool os_avx;     /* XCR0 saves SSE and AVX (YMM) state */
    bool os_avx512;  /* ... and the AVX-512 opmask and ZMM state */
    bool sse42, avx, fma, avx2;
    bool avx512f, avx512bw, avx512dq, avx512vl, avx512_vnni, avx512_bf16;
    bool amx_tile, amx_bf16; /* the CPU's bits; Linux also wants a per-process request */
} sotu_cpu_features;

/* Fills f from cpuid and xgetbv (usable flags only). Cheap; no allocation. */
void sotu_cpu_features_read(sotu_cpu_features *f);

/* The usable features as space-separated names in the order of the struct
 * ("sse4.2 avx fma avx2 avx512f ..."), "none" when there is none.
 * Truncates to cap bytes (always terminated). */
void sotu_cpu_features_format(const sotu_cpu_features *f, char *buf, size_t cap);

#endif
