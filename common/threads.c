#define _GNU_SOURCE /* sched_getaffinity, CPU_* */
#include "common/threads.h"

#include <cblas.h>
#include <omp.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int threads_current = 1;

/* What MPI found (sotu_threads_set_node); node_ranks 0 = not recorded. */
static struct {
    int node_ranks, ranks_sharing, node_cpus;
} mpi_node;

/* The leading positive number of an environment variable ("4" or "4,2" for
 * OMP_NUM_THREADS's nested list), 0 when unset or not a number. */
static int env_positive(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    long n = strtol(v, &end, 10);
    bool ok = (*end == '\0' || *end == ',') && end != v && n > 0 && n < 1 << 16;
    return ok ? (int)n : 0;
}

static int affinity_count(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 0;
    return CPU_COUNT(&set);
}

void sotu_threads_affinity_list(char *buf, size_t cap)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    snprintf(buf, cap, "?");
    if (sched_getaffinity(0, sizeof set, &set) != 0 || cap == 0)
        return;
    size_t len = 0;
    buf[0] = '\0';
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &set))
            continue;
        int last = c;
        while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set))
            last++;
        int n = last > c ? snprintf(buf + len, cap - len, "%s%d-%d", len ? "," : "", c, last)
                         : snprintf(buf + len, cap - len, "%s%d", len ? "," : "", c);
        if (n < 0 || (size_t)n >= cap - len)
            return;
        len += (size_t)n;
        c = last;
    }
}

void sotu_threads_set_node(int node_ranks, int ranks_sharing, int node_cpus)
{
    mpi_node.node_ranks = node_ranks > 0 ? node_ranks : 1;
    mpi_node.ranks_sharing = ranks_sharing > 0 ? ranks_sharing : 1;
    mpi_node.node_cpus = node_cpus;
}

/* Ranks sharing this process's CPUs from the launcher's variables; only
 * when the process is not bound (may run on every CPU of the node). */
static void env_sharing(sotu_threads_plan *p)
{
    static const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS",
                                 "SLURM_NTASKS_PER_NODE"};
    p->ranks_sharing = 1;
    p->node_ranks = 1;
    p->node_cpus = p->affinity_cpus;
    snprintf(p->sharing_from, sizeof p->sharing_from, "no launcher");
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        int n = env_positive(vars[i]);
        if (!n)
            continue;
        p->node_ranks = n;
        bool unbound = p->affinity_cpus >= p->online_cpus;
        p->ranks_sharing = unbound ? n : 1;
        p->node_cpus = unbound ? p->online_cpus : n * p->affinity_cpus;
        snprintf(p->sharing_from, sizeof p->sharing_from, "%s=%d%s", vars[i], n,
                 unbound ? "" : ", bound");
        return;
    }
}

void sotu_threads_plan_make(int option, int config, sotu_threads_plan *p)
{
    memset(p, 0, sizeof *p);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    p->online_cpus = online > 0 ? (int)online : 1;
    p->affinity_cpus = affinity_count();
    if (p->affinity_cpus <= 0)
        p->affinity_cpus = p->online_cpus;
    p->slurm_cpus_per_task = env_positive("SLURM_CPUS_PER_TASK");
    p->omp_num_threads = env_positive("OMP_NUM_THREADS");
    if (mpi_node.node_ranks) {
        p->node_ranks = mpi_node.node_ranks;
        p->ranks_sharing = mpi_node.ranks_sharing;
        p->node_cpus = mpi_node.node_cpus;
        snprintf(p->sharing_from, sizeof p->sharing_from, "MPI");
    } else {
        env_sharing(p);
    }

    if (option > 0) {
        p->threads = option;
        p->source = "--threads";
        snprintf(p->why, sizeof p->why, "--threads %d", option);
        return;
    }
    if (config > 0) {
        p->threads = config;
        p->source = "train.threads";
        snprintf(p->why, sizeof p->why, "train.threads: %d", config);
        return;
    }
    if (p->omp_num_threads > 0) {
        p->threads = p->omp_num_threads;
        p->source = "OMP_NUM_THREADS";
        snprintf(p->why, sizeof p->why, "OMP_NUM_THREADS=%d", p->omp_num_threads);
        return;
    }
    p->source = "cpus";
    int n = p->affinity_cpus / p->ranks_sharing;
    n = n < 1 ? 1 : n;
    int len = snprintf(p->why, sizeof p->why, "sched_getaffinity: %d CPU%s", p->affinity_cpus,
                       p->affinity_cpus == 1 ? "" : "s");
    if (p->ranks_sharing > 1)
        len += snprintf(p->why + len, sizeof p->why - (size_t)len, ", %d ranks share them [%s]",
                        p->ranks_sharing, p->sharing_from);
    if (p->slurm_cpus_per_task > 0 && p->slurm_cpus_per_task < n) {
        n = p->slurm_cpus_per_task;
        snprintf(p->why + len, sizeof p->why - (size_t)len, ", SLURM_CPUS_PER_TASK=%d",
                 p->slurm_cpus_per_task);
    }
    p->threads = n;
}

int sotu_threads_default(void)
{
    sotu_threads_plan p;
    sotu_threads_plan_make(0, 0, &p);
    return p.threads;
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
