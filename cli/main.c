/* sotu: Sparse Orthogonal Tuning continual learning on clusters. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/blas_core.h"
#include "common/build_info.h"
#include "common/isa.h"
#include "common/log.h"
#include "common/status.h"
#include "cli/commands.h"
#include "eval/report.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"train", sotu_cmd_train, "fine-tune every task, merge sparse deltas, evaluate (mpirun/srun/serial)"},
    {"pretrain", sotu_cmd_pretrain, "supervised pretraining of a small ViT (the quick start's backbone)"},
    {"finetune", sotu_cmd_finetune, "fine-tune one task in one process and print its accuracy"},
    {"data", sotu_cmd_data, "build task datasets (fmnist presets, IDX and image import)"},
    {"merge", sotu_cmd_merge, "re-merge stored deltas of a run into a new result directory"},
    {"eval", sotu_cmd_eval, "evaluate a checkpoint on a task manifest"},
    {"predict", sotu_cmd_predict, "logits and predicted classes for images"},
    {"import", sotu_cmd_import, "import safetensors weights"},
    {"export", sotu_cmd_export, "export a checkpoint as safetensors"},
    {"inspect", sotu_cmd_inspect, "describe a .h5, manifest, .sotud or .safetensors file"},
    {"bench", sotu_cmd_bench, "benchmarks: train, codec, merge (one JSON line each)"},
    {"doctor", sotu_cmd_doctor, "this node's CPU, cores, threads, BLAS kernel and libraries"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *f)
{
    fprintf(f, "usage: sotu [-v|-q] COMMAND [options]   (sotu COMMAND --help for each)\n\n"
               "Sparse Orthogonal Tuning: per-task fine-tuning of a Vision Transformer on MPI\n"
               "ranks, merged from sparse random-masked weight deltas.\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        if (commands[i].run)
            fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\noptions: -v more logging, -q errors only, --version\n"
               "environment: SOTU_ISA=scalar|avx2|avx512 forces the instruction set of the\n"
               "  kernels (default: the best this CPU has; -v logs it)\n"
               "exit codes: 0 ok, 2 usage/config, 3 input data (also: tasks failed or left out,\n"
               "the rest written), 4 I/O, 5 numerical, 75 stopped by a signal (run again with\n"
               "--resume), 1 other\n");
}


int main(int argc, char **argv)
{
    /* Before anything else (MPI_Init included): may restart this process with
     * a faster OpenBLAS core (common/blas_core.h). */
    sotu_status blas = sotu_blas_select(argv);
    sotu_report_set_command(argc, argv); /* what the reports record, as given */
    /* Global flags may stand anywhere; strip them before dispatch. */
    int n = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
            sotu_log_set_level(SOTU_LOG_DEBUG);
        else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet"))
            sotu_log_set_level(SOTU_LOG_ERROR);
        else
            argv[n++] = argv[i];
    }
    argc = n;
    argv[argc] = NULL;
    sotu_elapsed(); /* start the log clock */
    /* Past a file-size limit (ulimit -f) a write then fails with EFBIG, which
     * the writers report like a full disk, instead of SIGXFSZ killing sotu
     * with a core dump. */
    signal(SIGXFSZ, SIG_IGN);

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? SOTU_EXIT_USAGE : SOTU_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("sotu %s (commit %s)\n", sotu_build_version(), sotu_build_commit());
        return SOTU_EXIT_OK;
    }
    /* A BLAS that computes wrong products stops every command but the one
     * that reports it. */
    if (blas != SOTU_OK && strcmp(argv[1], "doctor")) {
        fprintf(stderr, "sotu: %s\n", sotu_last_error());
        return SOTU_EXIT_NUMERIC;
    }
    /* The ISA level of the hot kernels (common/isa.h), before any runs. */
    if (sotu_isa_init() != SOTU_OK) {
        fprintf(stderr, "sotu: %s\n", sotu_last_error());
        return SOTU_EXIT_USAGE;
    }
    char isa[96];
    sotu_isa_describe(isa, sizeof isa);
    const char *isa_env = getenv("SOTU_ISA");
    sotu_log(isa_env && *isa_env && strcmp(isa_env, "auto") ? SOTU_LOG_INFO : SOTU_LOG_DEBUG,
             "kernels: %s", isa);
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name))
            continue;
        if (!commands[i].run) {
            fprintf(stderr, "sotu: '%s' is not part of this build yet\n", argv[1]);
            return SOTU_EXIT_USAGE;
        }
        return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "sotu: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return SOTU_EXIT_USAGE;
}
