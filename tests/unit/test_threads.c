/* The thread rule (common/threads.h) on the real process: --threads, then
 * train.threads, then OMP_NUM_THREADS, then the CPUs of sched_getaffinity
 * divided among the ranks sharing them, at most SLURM_CPUS_PER_TASK.
 * tests/node/threads_rule.sh runs the real binary under taskset and mpiexec. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/threads.h"

static const char *vars[] = {"OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK", "OMPI_COMM_WORLD_LOCAL_SIZE",
                             "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static int plan(int option, int config)
{
    sotu_threads_plan p;
    sotu_threads_plan_make(option, config, &p);
    return p.threads;
}

int main(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CHECK(sched_getaffinity(0, sizeof set, &set) == 0);
    int cpus = CPU_COUNT(&set), online = (int)sysconf(_SC_NPROCESSORS_ONLN);
    printf("affinity %d CPUs, %d online\n", cpus, online);
    clear_env();

    sotu_threads_plan p;
    sotu_threads_plan_make(0, 0, &p);
    CHECK(p.threads == cpus && !strcmp(p.source, "cpus"));
    CHECK(p.affinity_cpus == cpus && p.online_cpus == online && p.ranks_sharing == 1);
    CHECK(strstr(p.why, "sched_getaffinity") != NULL);
    CHECK(sotu_threads_default() == cpus);

    /* Overrides, in order. */
    CHECK(plan(5, 0) == 5);
    CHECK(plan(0, 6) == 6);
    CHECK(plan(5, 6) == 5);
    setenv("OMP_NUM_THREADS", "7", 1);
    CHECK(plan(0, 0) == 7);
    CHECK(plan(0, 6) == 6);
    CHECK(plan(5, 6) == 5);
    setenv("OMP_NUM_THREADS", "3,2", 1); /* a nested list: its first level */
    CHECK(plan(0, 0) == 3);
    setenv("OMP_NUM_THREADS", "many", 1);
    CHECK(plan(0, 0) == cpus);
    setenv("OMP_NUM_THREADS", "0", 1);
    CHECK(plan(0, 0) == cpus);
    unsetenv("OMP_NUM_THREADS");

    /* Slurm caps the CPUs it did not grant, never raises the count. */
    setenv("SLURM_CPUS_PER_TASK", "1", 1);
    sotu_threads_plan_make(0, 0, &p);
    CHECK(p.threads == 1 && strstr(p.why, "SLURM_CPUS_PER_TASK=1"));
    setenv("SLURM_CPUS_PER_TASK", "4096", 1);
    CHECK(plan(0, 0) == cpus);
    CHECK(plan(0, 2) == 2);
    unsetenv("SLURM_CPUS_PER_TASK");

    /* Ranks from the launcher's variables divide only when unbound. */
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
    sotu_threads_plan_make(0, 0, &p);
    if (cpus >= online) {
        CHECK(p.ranks_sharing == 2 && p.threads == (cpus / 2 > 0 ? cpus / 2 : 1));
        CHECK(p.node_ranks == 2 && p.node_cpus == online);
    } else {
        CHECK(p.ranks_sharing == 1 && p.threads == cpus);
        CHECK(strstr(p.sharing_from, "bound") != NULL);
    }
    unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    setenv("SLURM_NTASKS_PER_NODE", "64", 1);
    sotu_threads_plan_make(0, 0, &p);
    CHECK(p.threads == 1 || cpus < online);
    unsetenv("SLURM_NTASKS_PER_NODE");

    /* What MPI found takes the place of the variables. */
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "8", 1);
    sotu_threads_set_node(3, 3, cpus);
    sotu_threads_plan_make(0, 0, &p);
    CHECK(p.ranks_sharing == 3 && p.node_ranks == 3 && p.threads == (cpus / 3 ? cpus / 3 : 1));
    CHECK(strstr(p.why, "3 ranks share them [MPI]") != NULL);
    sotu_threads_set_node(2, 1, 2 * cpus); /* bound ranks: each its own CPUs */
    CHECK(plan(0, 0) == cpus);
    CHECK(plan(0, 4) == 4);
    clear_env();

    sotu_threads_set(2);
    CHECK(sotu_threads_get() == 2);
    sotu_threads_set(0);
    CHECK(sotu_threads_get() == 1);

    char list[64];
    sotu_threads_affinity_list(list, sizeof list);
    printf("affinity list %s\n", list);
    CHECK(list[0] >= '0' && list[0] <= '9');
    return check_finish("test_threads");
}
