/* One thread setting for OpenMP loops and OpenBLAS. */
#ifndef SOTU_COMMON_THREADS_H
#define SOTU_COMMON_THREADS_H

/* The default thread count: SLURM_CPUS_PER_TASK, else OMP_NUM_THREADS,
 * else 1 (ranks share a node; oversubscription is the costly mistake). */
int sotu_threads_default(void);

/* Sets OpenMP and OpenBLAS to n threads (n >= 1). */
void sotu_threads_set(int n);
int sotu_threads_get(void);

#endif
