#include "common/threads.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

static int threads_current = 1;

static int env_positive(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    long n = strtol(v, &end, 10);
    return (*end == '\0' && n > 0 && n < 4096) ? (int)n : 0;
}

int sotu_threads_default(void)
{
    int n = env_positive("SLURM_CPUS_PER_TASK");
    if (!n)
        n = env_positive("OMP_NUM_THREADS");
    return n ? n : 1;
}

void sotu_threads_set(int n)
{
    if (n < 1)
        n = 1;
    threads_current = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int sotu_threads_get(void) { return threads_current; }
