/* Which OpenBLAS kernel runs, and a check that it computes.
 *
 * OpenBLAS built with DYNAMIC_ARCH (Debian's) picks a "core" (a set of
 * kernels: Prescott, Haswell, SkylakeX, ...) when it loads, from the CPU it
 * recognises. Debian 12's 0.3.21 does not recognise newer CPUs (Sapphire
 * Rapids) and falls back to a generic SSE core, 4-6x slower than the AVX-512
 * one. OPENBLAS_CORETYPE, read once at load, forces a core, so a process can
 * only change its core by starting again with the variable set.
 *
 * sotu_blas_select(), first in main(), before MPI_Init: when the user has not
 * set OPENBLAS_CORETYPE and the CPU (and OS) run a faster core than the one
 * OpenBLAS chose (AVX-512F/BW/DQ/VL: SkylakeX; AVX2+FMA: Haswell), it sets
 * OPENBLAS_CORETYPE and re-executes /proc/self/exe with the same argv and
 * environment (same pid, so an MPI launcher's PMIx connection is unaffected),
 * plus the marker SOTU_BLAS_REEXEC so that it happens once. The new process
 * checks an sgemm against a naive product; if they disagree it re-executes
 * once more with OpenBLAS's own choice forced, and if that disagrees too it
 * refuses to run. A user's OPENBLAS_CORETYPE is never changed.
 *
 * Test hooks (environment, for tests only):
 *   SOTU_TEST_BLAS_CHOSEN=NAME    pretend OpenBLAS chose core NAME
 *   SOTU_TEST_BLAS_BAD_CORE=NAME  make the sgemm check fail while core NAME runs
 */
#ifndef SOTU_COMMON_BLAS_CORE_H
#define SOTU_COMMON_BLAS_CORE_H

#include <stddef.h>

#include "common/cpu_features.h"
#include "common/status.h"

typedef enum {
    SOTU_BLAS_CORE_AUTO,     /* OpenBLAS's choice, and nothing faster runs here */
    SOTU_BLAS_CORE_USER,     /* OPENBLAS_CORETYPE set by the user: kept */
    SOTU_BLAS_CORE_SWITCHED, /* sotu re-executed with a faster core */
    SOTU_BLAS_CORE_FALLBACK, /* the faster core failed the check: OpenBLAS's choice forced */
    SOTU_BLAS_CORE_UNRANKED, /* OpenBLAS chose a core sotu does not rank (newer OpenBLAS) */
    SOTU_BLAS_CORE_NO_EXEC,  /* a faster core runs here but the re-exec failed */
} sotu_blas_origin;

typedef struct {
    char config[192];  /* openblas_get_config(): "OpenBLAS 0.3.21 DYNAMIC_ARCH ..." */
    char version[32];  /* "0.3.21" */
    char core[32];     /* the core running now (openblas_get_corename()) */
    char chosen[32];   /* the core OpenBLAS chose by itself, "" when the user set one */
    char user[64];     /* OPENBLAS_CORETYPE as the user set it, "" when unset */
    char best[32];     /* the fastest core this CPU and OS run: "SkylakeX", "Haswell", "" */
    char failed[32];   /* FALLBACK: the core whose sgemm check failed */
    double failed_error; /* ... and its largest error */
    sotu_blas_origin origin;
} sotu_blas_info;

/* The instruction-set level of an OpenBLAS x86-64 core name, case-insensitive:
 * 0 SSE (Prescott, Nehalem, Atom, Opteron, ...), 1 AVX (Sandybridge,
 * Bulldozer, Piledriver, Steamroller, Excavator), 2 AVX2+FMA (Haswell, Zen),
 * 3 AVX-512 (SkylakeX, Cooperlake, SapphireRapids); -1 for a name not known. */
int sotu_blas_core_level(const char *core);

/* The fastest core f's usable features run: "SkylakeX" for AVX-512F, BW, DQ
 * and VL, "Haswell" for AVX2 and FMA, else NULL. */
const char *sotu_blas_best_core(const sotu_cpu_features *f);

/* The core sotu switches to, or NULL: only when user_coretype is unset or
 * empty, chosen has a known level and best is of a higher level. */
const char *sotu_blas_switch_target(const char *user_coretype, const char *chosen,
                                    const char *best);

/* First thing in main(), with main's untouched argv: may re-execute the
 * process (module comment) and then does not return. Returns SOTU_ERR_NUMERIC
 * when the sgemm check fails with no other core to fall back to (the message
 * names the core, the error and what to set); SOTU_OK otherwise (a failed
 * re-exec is recorded as SOTU_BLAS_CORE_NO_EXEC and the run goes on). */
sotu_status sotu_blas_select(char **argv);

/* What sotu_blas_select found (filled on first use if it was not called). */
const sotu_blas_info *sotu_blas_get_info(void);

/* One sentence on the choice and what sotu did about it, e.g.
 * "OPENBLAS_CORETYPE unset; OpenBLAS chose Prescott; this CPU supports
 * SkylakeX; sotu re-executed with OPENBLAS_CORETYPE=SkylakeX". */
void sotu_blas_describe(const sotu_blas_info *b, char *buf, size_t cap);

/* Short form of the origin for log lines and JSON: "chosen by OpenBLAS",
 * "OPENBLAS_CORETYPE", "switched from Prescott", ... */
void sotu_blas_origin_short(const sotu_blas_info *b, char *buf, size_t cap);

/* Multiplies fixed 67x129 and 129x45 matrices (odd sizes, so the kernels'
 * edge cases run) with cblas_sgemm in the layouts the models use (NN, NT and
 * TN, with beta 1) and compares each with a double-precision loop. *max_error (may be NULL) gets the largest absolute
 * error; SOTU_ERR_NUMERIC naming the core when it exceeds 1e-4 (a correct
 * fp32 kernel stays below 1e-5 on these sizes). */
sotu_status sotu_blas_check(double *max_error);

/* sgemm GFLOP/s on the current OpenBLAS thread count: n x n x n products
 * (n from 256 for one thread up to 1024 for 16 or more) after one warm-up,
 * repeated for about budget_s seconds. *n_out (may be NULL) gets n. */
double sotu_blas_measure(double budget_s, int *n_out);

#endif
