#include "common/isa.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const isa_names[SOTU_ISA_COUNT] = {"scalar", "avx2", "avx512"};

/* -1 until sotu_isa_init; racing first calls store the same level. */
static atomic_int isa_active = -1;
/* How the active level was chosen, for sotu_isa_describe. */
static atomic_int isa_how = 0; /* 0 best, 1 SOTU_ISA, 2 forced */

const char *sotu_isa_name(sotu_isa level)
{
    return (unsigned)level < SOTU_ISA_COUNT ? isa_names[level] : "?";
}

bool sotu_isa_supported(sotu_isa level)
{
#ifdef SOTU_ISA_X86
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
                __builtin_cpu_supports("popcnt");
    bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512vl");
#else
    bool avx2 = false, avx512 = false;
#endif
    switch (level) {
    case SOTU_ISA_SCALAR: return true;
    case SOTU_ISA_AVX2: return avx2;
    case SOTU_ISA_AVX512: return avx512;
    default: return false;
    }
}

sotu_isa sotu_isa_best(void)
{
    int k = SOTU_ISA_COUNT - 1;
    while (k > 0 && !sotu_isa_supported((sotu_isa)k))
        k--;
    return (sotu_isa)k;
}

sotu_status sotu_isa_init(void)
{
    sotu_isa best = sotu_isa_best();
    const char *v = getenv("SOTU_ISA");
    atomic_store(&isa_active, (int)best);
    atomic_store(&isa_how, 0);
    if (!v || !*v || !strcmp(v, "auto"))
        return SOTU_OK;
    for (int k = 0; k < SOTU_ISA_COUNT; k++) {
        if (strcmp(v, isa_names[k]))
            continue;
        if (!sotu_isa_supported((sotu_isa)k))
            return sotu_error(SOTU_ERR_CONFIG, "SOTU_ISA=%s: this CPU does not support %s "
                              "(it supports scalar%s%s)", v, v,
                              best >= SOTU_ISA_AVX2 ? ", avx2" : "",
                              best >= SOTU_ISA_AVX512 ? ", avx512" : "");
        atomic_store(&isa_active, k);
        atomic_store(&isa_how, 1);
        return SOTU_OK;
    }
    return sotu_error(SOTU_ERR_CONFIG, "SOTU_ISA=%s: expected scalar, avx2, avx512 or auto", v);
}

sotu_isa sotu_isa_active(void)
{
    int k = atomic_load_explicit(&isa_active, memory_order_relaxed);
    if (k < 0) {
        (void)sotu_isa_init(); /* a bad SOTU_ISA leaves the best level */
        k = atomic_load_explicit(&isa_active, memory_order_relaxed);
    }
    return (sotu_isa)k;
}

void sotu_isa_force(sotu_isa level)
{
    assert(sotu_isa_supported(level));
    atomic_store(&isa_active, (int)level);
    atomic_store(&isa_how, 2);
}

void sotu_isa_describe(char *buf, size_t cap)
{
    sotu_isa active = sotu_isa_active(), best = sotu_isa_best();
    int how = atomic_load(&isa_how);
    if (active == best && how == 0)
        snprintf(buf, cap, "%s (the best on this CPU)", sotu_isa_name(active));
    else
        snprintf(buf, cap, "%s (the best on this CPU: %s; %s)", sotu_isa_name(active),
                 sotu_isa_name(best), how == 1 ? "set by SOTU_ISA" : "forced");
}
