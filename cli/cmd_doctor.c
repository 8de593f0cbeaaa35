/* `sotu doctor [--json]`: what this node gives sotu and what sotu makes of
 * it: CPU features, the CPUs granted, the thread count every command uses and
 * why, the OpenBLAS core and what sotu changed about it, an sgemm check and
 * measurement, and the libraries' versions. Under mpiexec or srun every rank
 * reports its own threads and core, and rank 0 prints them all.
 * Exit 0, or 5 when OpenBLAS's sgemm disagrees with a naive product. */
#include <getopt.h>
#include <hdf5.h>
#include <jansson.h>
#include <mpi.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>
#include <zlib.h>
#include <zstd.h>

#include "common/blas_core.h"
#include "common/build_info.h"
#include "common/cpu_features.h"
#include "common/log.h"
#include "common/status.h"
#include "common/threads.h"
#include "cli/commands.h"
#include "mpi/mpi_util.h"

static void doctor_usage(FILE *f)
{
    fprintf(f, "usage: sotu doctor [--json]\n\n"
               "Reports what this node gives sotu: CPU features (cpuid, and the OS's AVX and\n"
               "AVX-512 state), the CPUs granted (sched_getaffinity, Slurm's variables), the\n"
               "thread count every command uses and why (README.md, Threads), the OpenBLAS\n"
               "core OpenBLAS chose and what sotu changed (OPENBLAS_CORETYPE), an sgemm check\n"
               "against a naive product and its GFLOP/s, and the versions of MPI, HDF5, zstd,\n"
               "OpenBLAS, libyaml, jansson and zlib. Under mpiexec or srun each rank reports\n"
               "its threads and core, and rank 0 prints them all.\n\n"
               "  --json   one JSON object instead of text\n\n"
               "Exit status: 0, or 5 when the sgemm check fails on some rank.\n");
}

/* What one rank found; also sent to rank 0 as fixed-size text. */
typedef struct {
    char host[128];
    char core[32];
    int threads;
    char why[256];
    int check_ok;
    double check_error;
} rank_report;

typedef struct {
    char host[128];
    sotu_cpu_features cpu;
    char features[256];
    int online_cpus;
    char affinity[512];
    sotu_threads_plan plan;
    const sotu_blas_info *blas;
    char origin[96];
    char action[512];
    bool check_ok;
    double check_error;
    char check_message[512];
    int n, n1;
    double gflops, gflops1;
    char mpi_library[MPI_MAX_LIBRARY_VERSION_STRING];
    int mpi_major, mpi_minor;
    char hdf5[32];
} node_report;

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

static void node_inspect(node_report *r)
{
    memset(r, 0, sizeof *r);
    if (gethostname(r->host, sizeof r->host) != 0)
        snprintf(r->host, sizeof r->host, "?");
    r->host[sizeof r->host - 1] = '\0';
    sotu_cpu_features_read(&r->cpu);
    sotu_cpu_features_format(&r->cpu, r->features, sizeof r->features);
    r->online_cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    sotu_threads_affinity_list(r->affinity, sizeof r->affinity);
    sotu_threads_plan_make(0, 0, &r->plan);
    sotu_threads_set(r->plan.threads);
    r->blas = sotu_blas_get_info();
    sotu_blas_origin_short(r->blas, r->origin, sizeof r->origin);
    sotu_blas_describe(r->blas, r->action, sizeof r->action);
    r->check_ok = sotu_blas_check(&r->check_error) == SOTU_OK;
    if (!r->check_ok)
        snprintf(r->check_message, sizeof r->check_message, "%s", sotu_last_error());
    r->gflops = sotu_blas_measure(0.05, &r->n);
    sotu_threads_set(1);
    r->gflops1 = sotu_blas_measure(0.05, &r->n1);
    sotu_threads_set(r->plan.threads);
    int len = 0;
    MPI_Get_library_version(r->mpi_library, &len);
    r->mpi_library[strcspn(r->mpi_library, "\n,")] = '\0'; /* first line, no build details */
    MPI_Get_version(&r->mpi_major, &r->mpi_minor);
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    snprintf(r->hdf5, sizeof r->hdf5, "%u.%u.%u", maj, min, rel);
}

static void compiled_isa(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s",
#if defined(__AVX512F__)
             "AVX-512 (built for this CPU family or newer)"
#elif defined(__AVX2__)
             "AVX2 (built for this CPU family or newer)"
#elif defined(__x86_64__)
             "x86-64 baseline"
#else
             "not x86-64"
#endif
    );
}

static void print_text(const node_report *r, const rank_report *ranks, int nranks)
{
    const sotu_threads_plan *p = &r->plan;
    const sotu_blas_info *b = r->blas;
    char isa[96];
    compiled_isa(isa, sizeof isa);
    printf("sotu %s (commit %s) on %s\n\n", sotu_build_version(), sotu_build_commit(), r->host);
    printf("CPU            %s (%s), %d CPUs online\n", r->cpu.brand[0] ? r->cpu.brand : "?",
           r->cpu.vendor[0] ? r->cpu.vendor : "?", r->online_cpus);
    printf("features       %s\n", r->features);
    printf("OS state       XCR0 0x%llx: AVX %s, AVX-512 %s\n", (unsigned long long)r->cpu.xcr0,
           r->cpu.os_avx ? "saved" : "NOT saved", r->cpu.os_avx512 ? "saved" : "NOT saved");
    printf("compiled for   %s\n", isa);
    printf("CPUs granted   %d (sched_getaffinity: %s); SLURM_CPUS_PER_TASK %s, "
           "SLURM_JOB_ID %s\n", p->affinity_cpus, r->affinity,
           env_or("SLURM_CPUS_PER_TASK", "unset"), env_or("SLURM_JOB_ID", "unset"));
    printf("ranks here     %d on this node, %d sharing these CPUs (%s)\n", p->node_ranks,
           p->ranks_sharing, p->sharing_from);
    printf("threads        %d per process: %s\n", p->threads, p->why);
    if (p->node_ranks * p->threads > p->node_cpus)
        printf("               warning: %d rank%s x %d thread%s = %d threads on %d CPUs\n",
               p->node_ranks, p->node_ranks == 1 ? "" : "s", p->threads,
               p->threads == 1 ? "" : "s", p->node_ranks * p->threads, p->node_cpus);
    printf("               every command: --threads N, then train.threads, then "
           "OMP_NUM_THREADS (%s),\n               then the CPUs granted / ranks sharing them, "
           "at most SLURM_CPUS_PER_TASK;\n               OpenBLAS gets the same count "
           "(OPENBLAS_NUM_THREADS: %s, overridden)\n", env_or("OMP_NUM_THREADS", "unset"),
           env_or("OPENBLAS_NUM_THREADS", "unset"));
    printf("BLAS           %s\n", b->config);
    printf("core           %s (%s)\n", b->core, r->origin);
    printf("BLAS action    %s\n", r->action);
    if (r->check_ok)
        printf("sgemm check    ok (largest error %.2g against a double-precision loop)\n",
               r->check_error);
    else
        printf("sgemm check    FAILED: %s\n", r->check_message);
    printf("sgemm          %d^3 on %d thread%s: %.1f GFLOP/s; %d^3 on 1 thread: %.1f GFLOP/s\n",
           r->n, p->threads, p->threads == 1 ? "" : "s", r->gflops, r->n1, r->gflops1);
    printf("MPI            %s (MPI %d.%d)\n", r->mpi_library, r->mpi_major, r->mpi_minor);
    printf("libraries      HDF5 %s, zstd %s, OpenBLAS %s, libyaml %s, jansson %s, zlib %s, "
           "OpenMP %d\n", r->hdf5, ZSTD_versionString(), b->version, yaml_get_version_string(),
           jansson_version_str(), zlibVersion(), _OPENMP);
    if (nranks > 1) {
        printf("\nrank  host                 core          threads  sgemm check  why\n");
        for (int i = 0; i < nranks; i++)
            printf("%4d  %-20s %-13s %7d  %-11s  %s\n", i, ranks[i].host, ranks[i].core,
                   ranks[i].threads, ranks[i].check_ok ? "ok" : "FAILED", ranks[i].why);
    }
}

static json_t *str_or_null(const char *v) { return v ? json_string(v) : json_null(); }

static int print_json(const node_report *r, const rank_report *ranks, int nranks, bool ok)
{
    const sotu_threads_plan *p = &r->plan;
    const sotu_blas_info *b = r->blas;
    static const char *origins[] = {"auto", "user", "switched", "fallback", "unranked",
                                    "exec_failed"};
    char isa[96], xcr0[32], mpi_std[16], copy[256];
    compiled_isa(isa, sizeof isa);
    snprintf(xcr0, sizeof xcr0, "0x%llx", (unsigned long long)r->cpu.xcr0);
    snprintf(mpi_std, sizeof mpi_std, "%d.%d", r->mpi_major, r->mpi_minor);

    json_t *features = json_array();
    snprintf(copy, sizeof copy, "%s", r->features);
    for (char *save = NULL, *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
        if (strcmp(t, "none"))
            json_array_append_new(features, json_string(t));
    json_t *cpu = json_pack("{s:s, s:s, s:i, s:o, s:s, s:b, s:b, s:s}", "vendor", r->cpu.vendor,
                            "brand", r->cpu.brand, "online_cpus", r->online_cpus, "features",
                            features, "xcr0", xcr0, "os_avx", r->cpu.os_avx, "os_avx512",
                            r->cpu.os_avx512, "compiled_for", isa);
    json_t *granted = json_pack("{s:i, s:s, s:o, s:o, s:o}", "affinity_cpus", p->affinity_cpus,
                                "affinity", r->affinity, "SLURM_CPUS_PER_TASK",
                                str_or_null(getenv("SLURM_CPUS_PER_TASK")), "SLURM_JOB_ID",
                                str_or_null(getenv("SLURM_JOB_ID")), "OMP_NUM_THREADS",
                                str_or_null(getenv("OMP_NUM_THREADS")));
    json_t *threads = json_pack("{s:i, s:s, s:s, s:i, s:i, s:s, s:i, s:b}", "threads", p->threads,
                                "source", p->source, "why", p->why, "ranks_sharing",
                                p->ranks_sharing, "node_ranks", p->node_ranks, "sharing_from",
                                p->sharing_from, "node_cpus", p->node_cpus, "oversubscribed",
                                p->node_ranks * p->threads > p->node_cpus);
    json_t *check = json_pack("{s:b, s:f}", "ok", r->check_ok, "max_error", r->check_error);
    if (check && !r->check_ok)
        json_object_set_new(check, "message", json_string(r->check_message));
    json_t *blas = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:{s:i, s:i, s:f}, s:{s:i, s:i, s:f}}",
        "library", "OpenBLAS", "version", b->version, "config", b->config, "core", b->core,
        "chosen_by_openblas", b->chosen, "OPENBLAS_CORETYPE_user", b->user, "best_for_cpu",
        b->best, "origin", origins[b->origin], "action", r->action, "check", check, "sgemm",
        "n", r->n, "threads", p->threads, "gflops", r->gflops, "sgemm_1thread", "n", r->n1,
        "threads", 1, "gflops", r->gflops1);
    json_t *libs = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "mpi",
                             r->mpi_library, "mpi_standard", mpi_std, "hdf5", r->hdf5, "zstd",
                             ZSTD_versionString(), "openblas", b->version, "libyaml",
                             yaml_get_version_string(), "jansson", jansson_version_str(), "zlib",
                             zlibVersion(), "openmp", _OPENMP);
    json_t *rank_list = json_array();
    for (int i = 0; i < nranks; i++)
        json_array_append_new(rank_list,
                              json_pack("{s:i, s:s, s:s, s:i, s:s, s:b, s:f}", "rank", i, "host",
                                        ranks[i].host, "core", ranks[i].core, "threads",
                                        ranks[i].threads, "why", ranks[i].why, "check_ok",
                                        ranks[i].check_ok, "check_max_error",
                                        ranks[i].check_error));
    json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:o, s:o, s:o, s:o, s:o, s:o}", "sotu_version",
                          sotu_build_version(), "sotu_commit", sotu_build_commit(), "host",
                          r->host, "ok", ok, "cpu", cpu, "cpus_granted", granted, "threads",
                          threads, "blas", blas, "libraries", libs, "ranks", rank_list);
    char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!s) {
        fprintf(stderr, "sotu doctor: could not build the JSON report\n");
        return SOTU_EXIT_OTHER;
    }
    printf("%s\n", s);
    free(s);
    return SOTU_EXIT_OK;
}

/* Started by mpiexec or srun --mpi=pmix: then every rank reports. */
static bool launched_by_mpi(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

int sotu_cmd_doctor(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    bool json = false;
    int o;
    optind = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'j': json = true; break;
        case 'h': doctor_usage(stdout); return SOTU_EXIT_OK;
        default: doctor_usage(stderr); return SOTU_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        doctor_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    int rank = 0, nranks = 1;
    bool mpi = launched_by_mpi();
    if (mpi) {
        sotu_status st = sotu_mpi_init(&argc, &argv, &rank, &nranks);
        if (st != SOTU_OK)
            return sotu_cmd_fail("doctor", st);
    }
    node_report r;
    node_inspect(&r);
    rank_report mine = {.threads = r.plan.threads, .check_ok = r.check_ok,
                        .check_error = r.check_error};
    snprintf(mine.host, sizeof mine.host, "%s", r.host);
    snprintf(mine.core, sizeof mine.core, "%s", r.blas->core);
    snprintf(mine.why, sizeof mine.why, "%s", r.plan.why);
    rank_report *all = &mine;
    if (mpi && nranks > 1) {
        all = rank == 0 ? calloc((size_t)nranks, sizeof *all) : NULL;
        if (rank == 0 && !all) {
            fprintf(stderr, "sotu doctor: out of memory for %d rank reports\n", nranks);
            MPI_Abort(MPI_COMM_WORLD, SOTU_EXIT_OTHER);
        }
        SOTU_MPI_CHECK(MPI_Gather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine,
                                  MPI_BYTE, 0, MPI_COMM_WORLD));
    }
    int rc = SOTU_EXIT_OK;
    if (rank == 0) {
        bool ok = true;
        for (int i = 0; i < nranks; i++)
            ok = ok && all[i].check_ok;
        if (json)
            rc = print_json(&r, all, nranks, ok);
        else
            print_text(&r, all, mpi ? nranks : 0);
        if (!ok) {
            fprintf(stderr, "sotu doctor: OpenBLAS's sgemm check failed%s: %s\n",
                    nranks > 1 ? " on some rank" : "",
                    r.check_ok ? "see the table" : r.check_message);
            rc = SOTU_EXIT_NUMERIC;
        }
    }
    if (all != &mine)
        free(all);
    if (mpi) {
        SOTU_MPI_CHECK(MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD));
        sotu_mpi_finalize();
    }
    return rc;
}
