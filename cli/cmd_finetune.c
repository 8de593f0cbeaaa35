/* `sotu finetune CONFIG --task NAME|INDEX [--frozen]`: the worker's loop on
 * one task in one process, for debugging and for the per-task figures. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "common/status.h"
#include "common/threads.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "mpi/node.h"
#include "io/taskset.h"
#include "io/weights.h"
#include "worker/finetune.h"
#include "worker/vit.h"

static void finetune_usage(FILE *f)
{
    fprintf(f,
            "usage: sotu finetune [CONFIG] --task NAME|INDEX [--frozen] [--set key=value ...]\n"
            "                     [--print-config]\n"
            "Fine-tunes one task of data.manifest from model.pretrained with the train.*\n"
            "settings (a fresh head sized for the task) on its training split less the\n"
            "data.val_fraction validation hold-out, and prints its test and validation\n"
            "accuracy (val_acc=nan with data.val_fraction=0):\n"
            "  finetune task=NAME index=I tune=SPEC test_acc=A train_loss=L steps=S seconds=T\n"
            "           val_acc=V\n"
            "--frozen trains the head only (train.tune=head): the frozen-backbone figure.\n");
}

/* The index of the task called name, or given by its 0-based index. */
static int find_task(const sotu_manifest *man, const char *name)
{
    for (int i = 0; i < man->n_tasks; i++)
        if (!strcmp(man->tasks[i].name, name))
            return i;
    char *end;
    long v = strtol(name, &end, 10);
    if (*name && !*end && v >= 0 && v < man->n_tasks)
        return (int)v;
    return -1;
}

int sotu_cmd_finetune(int argc, char **argv)
{
    static const struct option opts[] = {SOTU_CLI_OPTIONS,
                                         {"task", required_argument, NULL, 't'},
                                         {"frozen", no_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    sotu_cli_args a = {0};
    const char *task_arg = NULL;
    bool frozen = false;
    int o;
    optind = 0;
    while ((o = getopt_long(argc, argv, SOTU_CLI_SHORT "t:", opts, NULL)) != -1) {
        int r = sotu_cli_option(&a, "finetune", o, optarg);
        if (r < 0)
            return SOTU_EXIT_USAGE;
        if (r > 0)
            continue;
        if (o == 't') {
            task_arg = optarg;
        } else if (o == 'f') {
            frozen = true;
        } else {
            finetune_usage(stderr);
            return SOTU_EXIT_USAGE;
        }
    }
    if (a.help) {
        finetune_usage(stdout);
        return SOTU_EXIT_OK;
    }
    if (sotu_cli_positionals("finetune", argc, argv, optind, 0, 1, "CONFIG file")) {
        finetune_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    if (!task_arg && !a.print_config) {
        fprintf(stderr, "sotu finetune: --task NAME|INDEX is required\n");
        finetune_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    sotu_config cfg;
    int rc = sotu_cli_config("finetune", optind < argc ? argv[optind] : NULL, a.sets, a.n_sets,
                             &cfg);
    if (rc)
        return rc;
    if (frozen)
        snprintf(cfg.train.tune, sizeof cfg.train.tune, "head");
    if (a.print_config) {
        sotu_config_print(&cfg, stdout);
        return SOTU_EXIT_OK;
    }

    sotu_manifest man = {0};
    sotu_taskset t = {0};
    vit_model m = {0};
    sotu_status st = sotu_node_setup(0, cfg.train.threads, NULL);
    if (st == SOTU_OK)
        st = sotu_manifest_read(cfg.data.manifest, &man);
    if (st != SOTU_OK)
        goto cleanup;
    int ti = find_task(&man, task_arg);
    if (ti < 0) {
        st = sotu_error(SOTU_ERR_USAGE, "--task %s: no such task in %s (%d tasks: give a name "
                        "or an index 0..%d)", task_arg, man.path, man.n_tasks, man.n_tasks - 1);
        goto cleanup;
    }
    sotu_manifest one = man; /* this task only */
    one.tasks = &man.tasks[ti];
    one.n_tasks = 1;
    st = sotu_manifest_check_files(&one, true);
    if (st == SOTU_OK)
        st = sotu_taskset_read(man.tasks[ti].path, &t);
    if (st == SOTU_OK)
        st = sotu_taskset_hold_out(&t, cfg.data.val_fraction, cfg.train.seed, (uint32_t)ti);
    if (st != SOTU_OK)
        goto cleanup;
    vit_config vc;
    st = sotu_weights_read_config(cfg.model.pretrained, &vc);
    if (st != SOTU_OK)
        goto cleanup;
    st = vit_init(&m, &vc, cfg.train.batch_size);
    if (st != SOTU_OK)
        goto cleanup;
    st = sotu_weights_read_into(cfg.model.pretrained, SOTU_WEIGHTS_GROUP, &m.table, m.params, 0);
    if (st != SOTU_OK)
        goto cleanup;
    st = sotu_finetune_reset_head(&m, t.classes, cfg.train.batch_size, cfg.train.seed,
                                  (uint32_t)ti);
    if (st != SOTU_OK)
        goto cleanup;

    char label[96];
    snprintf(label, sizeof label, "fine-tune %s", t.name);
    SOTU_INFO("%s: %d classes, %d train / %d test images, tune %s, %d epochs, lr %g, %d threads",
              label, t.classes, t.n_train, t.n_test, cfg.train.tune, cfg.train.epochs,
              cfg.train.lr, sotu_threads_get());
    sotu_finetune_opts fo = sotu_finetune_opts_default();
    fo.task = (uint32_t)ti;
    fo.label = label;
    sotu_finetune_result res;
    st = sotu_finetune_run(&m, &t, &cfg, &fo, &res);
    double val_acc = NAN;
    if (st == SOTU_OK && t.n_val > 0)
        st = sotu_finetune_eval_cfg(&m, t.val_images, t.val_labels, t.n_val, t.height, t.width,
                                    t.channels, &cfg, &val_acc, NULL, NULL);
    if (st != SOTU_OK)
        goto cleanup;
    printf("finetune task=%s index=%d tune=%s test_acc=%.4f train_loss=%.4f steps=%lld "
           "seconds=%.1f val_acc=%.4f\n", t.name, ti, cfg.train.tune, res.test_acc,
           res.train_loss, (long long)res.steps, res.seconds, val_acc);

cleanup:
    rc = st == SOTU_OK ? SOTU_EXIT_OK : sotu_cmd_fail("finetune", st);
    vit_free(&m);
    sotu_taskset_free(&t);
    sotu_manifest_free(&man);
    return rc;
}
