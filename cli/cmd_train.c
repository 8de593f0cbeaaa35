/* `sotu train CONFIG [--set ...] [--resume]`: the main job. Parses the
 * options, starts MPI, reads the configuration and sets up the node and the
 * stop signals, then runs coordinator/train.h (method sotu) or
 * coordinator/clr/clr_train.h (method clr).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/log.h"
#include "coordinator/clr/clr_train.h"
#include "coordinator/signals.h"
#include "coordinator/train.h"
#include "mpi/mpi_util.h"
#include "mpi/node.h"

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: [mpiexec -n N | srun --mpi=pmix] sotu train CONFIG [--set key=value ...]\n"
            "                  [--resume [--retrain-changed]] [--print-config]\n"
            "Fine-tunes every task of data.manifest from model.pretrained (rank 0 coordinates,\n"
            "ranks 1..N-1 fine-tune), merges the sparse deltas and writes output.dir:\n"
            "  checkpoint.h5, deltas/<task>.sotud, metrics.jsonl, config.yaml, report.html,\n"
            "  steps.jsonl and steps.csv (loss, lr, grad norm, images/s every train.log_every\n"
            "  steps of every task).\n"
            "--resume  keep every delta already in output.dir/deltas that verifies and train\n"
            "          only the rest (automatic when Slurm restarts the job). A stored delta\n"
            "          trained from another model.pretrained (θ0 fingerprint) is refused (exit\n"
            "          2); so is one trained with other training settings (train.*, data\n"
            "          preprocessing and val_fraction, sotu.rescale/value_dtype/tuning, method;\n"
            "          the differing keys are listed) or on a task file that changed since,\n"
            "          unless:\n"
            "--retrain-changed  retrain exactly the tasks whose stored delta was trained\n"
            "          with other settings or task data (config.yaml is then updated).\n"
            "A `sweep:` block trains (point x task) jobs on one queue; every point gets its run\n"
            "directory output.dir/points/<label>/ and output.dir/sweep.{csv,md} ranks them\n"
            "by merged task-head accuracy on the validation hold-out (data.val_fraction of\n"
            "each task's training images, default 0.1), never by test accuracy (every\n"
            "classifier, forgetting, BWT, bytes and seconds per point; sweep_seeds.csv:\n"
            "mean and std over a seed axis; report.html: the charts). Each distinct merged\n"
            "model or baseline is evaluated once per sweep (the README's \"Sweep summaries\").\n"
            "sotu.tuning masked trains only each task's shipped SoTU mask (README).\n"
            "--array-index I   array mode (default: $SLURM_ARRAY_TASK_ID when set): train\n"
            "          only element I = group * N + shard of the sweep's training groups x\n"
            "          --shard-count N shards (task t is in shard t %% N) and write its deltas\n"
            "          without merging; an element always keeps its verified deltas. Then\n"
            "          `sotu merge output.dir` (slurm/merge-after.sbatch) merges them into\n"
            "          output.dir/merges/.\n"
            "--shard-count N   split each group's tasks over N array elements (default 1)\n"
            "--array-size      print the number of array elements (groups x shards) and exit\n"
            "output.dir is locked while the run lasts (output.dir/.sotu.lock): a second run into\n"
            "it exits 2 naming the holder. mpi.task_timeout (auto | seconds | 0) hands a task\n"
            "whose rank stops answering to another rank.\n"
            "Exit status 75: stopped by SIGTERM/SIGINT/SIGUSR1/SIGUSR2 with the finished tasks\n"
            "saved; run again with --resume (slurm/sotu.sbatch requeues the job). Open MPI's\n"
            "mpiexec exits 1 on SIGTERM/SIGINT whatever the ranks return: start it through\n"
            "scripts/sotu-mpiexec to get 75 (README, Signals).\n"

            "Exit status 4: a delta or the checkpoint could not be written (full disk,\n"
            "quota, file-size limit; the message names the file). A full disk stops the\n"
            "hand-out of tasks; the deltas stored so far stay valid for --resume.\n");
}

/* The array element's (group, shard), from --array-index or
 * SLURM_ARRAY_TASK_ID; false when this is not an array run. */
static bool array_element(int option_index, int *element)
{
    if (option_index >= 0) {
        *element = option_index;
        return true;
    }
    const char *v = getenv("SLURM_ARRAY_TASK_ID");
    if (!v || !*v)
        return false;
    char *end;
    long e = strtol(v, &end, 10);
    *element = (*end || e < 0 || e > 1000000) ? -1 : (int)e;
    return true;
}

int sotu_cmd_train(int argc, char **argv)
{
    enum { OPT_ARRAY_INDEX = 0x2000, OPT_SHARD_COUNT, OPT_ARRAY_SIZE, OPT_RETRAIN_CHANGED };
    static const struct option opts[] = {SOTU_CLI_OPTIONS,
                                         {"resume", no_argument, NULL, 'r'},
                                         {"array-index", required_argument, NULL, OPT_ARRAY_INDEX},
                                         {"shard-count", required_argument, NULL, OPT_SHARD_COUNT},
                                         {"array-size", no_argument, NULL, OPT_ARRAY_SIZE},
                                         {"retrain-changed", no_argument, NULL,
                                          OPT_RETRAIN_CHANGED},
                                         {NULL, 0, NULL, 0}};
    sotu_cli_args a = {0};
    bool resume = false, print_array_size = false, retrain_changed = false;
    int array_index = -1, shard_count = 1;
    int o;
    optind = 0;
    while ((o = getopt_long(argc, argv, SOTU_CLI_SHORT "r", opts, NULL)) != -1) {
        int r = sotu_cli_option(&a, "train", o, optarg);
        if (r < 0)
            return SOTU_EXIT_USAGE;
        if (r > 0)
            continue;
        if (o == 'r') {
            resume = true;
        } else if (o == OPT_ARRAY_INDEX || o == OPT_SHARD_COUNT) {
            sotu_status ps = o == OPT_ARRAY_INDEX
                                 ? sotu_cli_int("--array-index", optarg, 0, 1000000, &array_index)
                                 : sotu_cli_int("--shard-count", optarg, 1, 1000000, &shard_count);
            if (ps != SOTU_OK)
                return sotu_cmd_fail("train", ps);
        } else if (o == OPT_ARRAY_SIZE) {
            print_array_size = true;
        } else if (o == OPT_RETRAIN_CHANGED) {
            retrain_changed = true;
        } else {
            train_usage(stderr);
            return SOTU_EXIT_USAGE;
        }
    }
    if (a.help) {
        train_usage(stdout);
        return SOTU_EXIT_OK;
    }
    if (sotu_cli_positionals("train", argc, argv, optind, 1, 1, "CONFIG file")) {
        train_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    const char *restart = getenv("SLURM_RESTART_COUNT");
    if (restart && atoi(restart) > 0)
        resume = true;
    int element = -1;
    bool array_mode = !print_array_size && array_element(array_index, &element);

    int rank = 0, nranks = 1;
    sotu_status st = sotu_mpi_init(&argc, &argv, &rank, &nranks);
    if (st != SOTU_OK)
        return sotu_cmd_fail("train", st);

    sotu_config cfg;
    int rc = sotu_cli_config("train", argv[optind], a.sets, a.n_sets, &cfg);
    if (rc || a.print_config) {
        if (!rc && rank == 0)
            sotu_config_print(&cfg, stdout);
        sotu_mpi_finalize();
        return rc;
    }
    st = sotu_node_setup(0, cfg.train.threads, NULL);
    if (st != SOTU_OK)
        SOTU_ERROR("sotu train: %s", sotu_last_error());
    if (sotu_mpi_any(st != SOTU_OK)) {
        sotu_mpi_finalize();
        return st != SOTU_OK ? sotu_exit_code(st) : SOTU_EXIT_OTHER;
    }
    /* Rank 0 notices a stop only between its own tasks when it trains. */
    sotu_signals_install(rank == 0 && (nranks == 1 || cfg.mpi.coordinator_trains));
    if (!strcmp(cfg.method, "clr"))
        return sotu_clr_train(&cfg, resume, retrain_changed, array_mode || print_array_size, rank,
                              nranks);

    sotu_train_options opt = {.resume = resume, .retrain_changed = retrain_changed,
                              .array_mode = array_mode, .element = element,
                              .shard_count = shard_count, .print_array_size = print_array_size};
    return sotu_train(&cfg, &opt, rank, nranks);
}
