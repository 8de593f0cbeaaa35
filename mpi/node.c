#define _GNU_SOURCE /* sched_getaffinity, CPU_* */
#include "mpi/node.h"

#include <mpi.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/blas_core.h"
#include "common/log.h"
#include "mpi/mpi_util.h"

/* This process's index among the node's ranks: from MPI once
 * sotu_node_layout_mpi ran, else from the launcher's variables (a command
 * without MPI started by mpiexec or srun), else 0. */
static int node_rank = -1;

static int env_node_rank(void)
{
    static const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return atoi(v);
    }
    return 0;
}

void sotu_node_layout_mpi(void)
{
    int rank = 0;
    SOTU_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_Comm node;
    SOTU_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank,
                                       MPI_INFO_NULL, &node));
    int local = 0, n = 1;
    SOTU_MPI_CHECK(MPI_Comm_rank(node, &local));
    SOTU_MPI_CHECK(MPI_Comm_size(node, &n));
    cpu_set_t mine;
    CPU_ZERO(&mine);
    if (sched_getaffinity(0, sizeof mine, &mine) != 0)
        for (long c = 0, m = sysconf(_SC_NPROCESSORS_ONLN); c < m && c < CPU_SETSIZE; c++)
            CPU_SET(c, &mine);
    cpu_set_t *all = malloc(sizeof(cpu_set_t) * (size_t)n);
    int failed = all == NULL, any_failed = 0;
    SOTU_MPI_CHECK(MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_LOR, node));
    /* Without the gather assume the worst: every rank of the node shares. */
    int sharing = n, cpus = CPU_COUNT(&mine) * n;
    if (!any_failed) {
        SOTU_MPI_CHECK(MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine,
                                     MPI_BYTE, node));
        sharing = 1;
        cpu_set_t any;
        CPU_ZERO(&any);
        for (int c = 0; c < CPU_SETSIZE; c++) {
            int holders = 0;
            for (int r = 0; r < n; r++)
                holders += CPU_ISSET(c, &all[r]) ? 1 : 0;
            if (holders)
                CPU_SET(c, &any);
            if (CPU_ISSET(c, &mine) && holders > sharing)
                sharing = holders;
        }
        cpus = CPU_COUNT(&any);
    }
    free(all);
    SOTU_MPI_CHECK(MPI_Comm_free(&node));
    node_rank = local;
    sotu_threads_set_node(n, sharing, cpus);
}

sotu_status sotu_node_setup(int option, int config, sotu_threads_plan *plan)
{
    sotu_threads_plan p;
    sotu_threads_plan_make(option, config, &p);
    sotu_threads_set(p.threads);
    if (plan)
        *plan = p;
    double err = 0;
    sotu_status st = sotu_blas_check(&err);
    if (st != SOTU_OK)
        return sotu_error_context(st, "BLAS check (set OPENBLAS_CORETYPE to another core; "
                                  "`sotu doctor` shows the choice)");
    if ((node_rank >= 0 ? node_rank : env_node_rank()) != 0) {
        SOTU_DEBUG("%d thread%s (%s); OpenBLAS core %s", p.threads, p.threads == 1 ? "" : "s",
                   p.why, sotu_blas_get_info()->core);
        return SOTU_OK;
    }
    char host[256] = "?";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    if (p.node_ranks * p.threads > p.node_cpus)
        SOTU_WARN("node %s: %d rank%s x %d thread%s = %d threads on %d CPUs: they slow each "
                  "other down; %s", host, p.node_ranks, p.node_ranks == 1 ? "" : "s", p.threads,
                  p.threads == 1 ? "" : "s", p.node_ranks * p.threads, p.node_cpus,
                  p.threads > 1 ? "lower train.threads (or --threads, OMP_NUM_THREADS) or "
                                  "start fewer ranks per node"
                                : "start fewer ranks per node");
    if (sotu_log_get_level() < SOTU_LOG_INFO)
        return SOTU_OK;
    const sotu_blas_info *b = sotu_blas_get_info();
    char origin[96];
    sotu_blas_origin_short(b, origin, sizeof origin);
    int n = 0;
    double gflops = sotu_blas_measure(SOTU_NODE_MEASURE_SECONDS, &n);
    SOTU_INFO("node %s: %d thread%s (%s); OpenBLAS %s, core %s (%s), sgemm %d^3 %.1f GFLOP/s",
              host, p.threads, p.threads == 1 ? "" : "s", p.why, b->version, b->core, origin, n,
              gflops);
    return SOTU_OK;
}
