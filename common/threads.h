/* One thread setting for OpenMP loops and OpenBLAS, and the one rule that
 * picks it for every command:
 *
 *   1. a command's --threads N
 *   2. train.threads (when > 0)
 *   3. OMP_NUM_THREADS (its first number)
 *   4. the CPUs granted to the process: sched_getaffinity's count, divided
 *      among the ranks on this node that share those CPUs, and at most
 *      SLURM_CPUS_PER_TASK when Slurm sets it.
 *
 * The ranks sharing the CPUs come from MPI when the command runs on MPI (the
 * coordinator counts, over the node's shared-memory communicator, how many
 * ranks' affinity masks hold each of this rank's CPUs and records it with
 * sotu_threads_set_node), else from the launcher's variables: Open MPI's
 * OMPI_COMM_WORLD_LOCAL_SIZE, MPICH's MPI_LOCALNRANKS, Slurm's
 * SLURM_NTASKS_PER_NODE, counted only when the process may run on every CPU
 * of the node (not bound by the launcher).
 * OPENBLAS_NUM_THREADS is overridden: OpenBLAS always gets the same count. */
#ifndef SOTU_COMMON_THREADS_H
#define SOTU_COMMON_THREADS_H

#include <stddef.h>

typedef struct {
    int threads;             /* what OpenMP and OpenBLAS get */
    char why[256];           /* the rule's step and its inputs, for logs and doctor */
    const char *source;      /* "--threads", "train.threads", "OMP_NUM_THREADS", "cpus" */
    int affinity_cpus;       /* CPUs in sched_getaffinity's mask, 0 if unknown */
    int online_cpus;         /* CPUs online on the node */
    int slurm_cpus_per_task; /* SLURM_CPUS_PER_TASK, 0 when unset */
    int omp_num_threads;     /* OMP_NUM_THREADS's first number, 0 when unset */
    int ranks_sharing;       /* ranks (this one included) whose CPUs include this one's */
    char sharing_from[64];   /* where ranks_sharing came from */
    int node_ranks;          /* ranks on this node, 1 without a launcher */
    int node_cpus;           /* CPUs the node's ranks may run on together */
} sotu_threads_plan;

/* The rule above. option and config are 0 when not given. */
void sotu_threads_plan_make(int option, int config, sotu_threads_plan *p);

/* Records what MPI found about this node (every rank, once MPI is up):
 * node_ranks ranks, ranks_sharing of them on this rank's CPUs, node_cpus
 * CPUs in the union of their masks. Later plans use it instead of the
 * launcher's variables. */
void sotu_threads_set_node(int node_ranks, int ranks_sharing, int node_cpus);

/* The rule's result without --threads or train.threads. */
int sotu_threads_default(void);

/* Sets OpenMP and OpenBLAS to n threads (n >= 1). */
void sotu_threads_set(int n);
int sotu_threads_get(void);

/* The CPUs this process may run on, as a list "0-3,8" (sched_getaffinity),
 * "?" when unknown. */
void sotu_threads_affinity_list(char *buf, size_t cap);

#endif
