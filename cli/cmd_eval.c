/* `sotu eval CKPT --tasks MANIFEST [--out DIR] [--set key=value ...]`:
 * evaluates a checkpoint's merged model on a task manifest the way `sotu
 * train` does at its end (eval/evaluate.h): task heads, NCM and ridge,
 * at the primary keep and at every keep under /keeps. Only the final row of
 * the accuracy matrix: a checkpoint holds the merged model, not the deltas.
 * The settings (data normalisation, batch size, eval.*) come from the
 * configuration stored in the checkpoint, then the --set overrides.
 * Serial, or under mpiexec with the tasks shared over ranks.
 *
 * A CLR checkpoint ("sotu-clr-checkpoint") has no merged model: each
 * manifest task it holds a module for is evaluated task-incrementally with
 * its own model (frozen backbone + the task's CLR layers, BatchNorm and fc)
 * by clr_evaluate, and the run's table printed with the new accuracies in
 * its "clr eval" column (coordinator/clr/clr_checkpoint.h).
 */
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "cli/cli.h"
#include "coordinator/clr/clr_checkpoint.h"
#include "coordinator/clr/clr_eval.h"
#include "cli/commands.h"
#include "eval/evaluate.h"
#include "mpi/mpi_util.h"
#include "mpi/node.h"
#include "eval/report.h"
#include "io/checkpoint.h"
#include "io/fsutil.h"

static void eval_usage(FILE *f)
{
    fprintf(f, "usage: [mpiexec -n N] sotu eval CKPT --tasks MANIFEST [--out DIR [--force]]\n"
               "                               [--set k=v ...]\n"
               "Evaluates the merged model of CKPT on the tasks of MANIFEST: each task's head\n"
               "(task-incremental), NCM and ridge over all tasks' classes (class-incremental),\n"
               "at the checkpoint's keep and at every keep stored under /keeps. Settings come\n"
               "from the checkpoint's configuration, then --set (e.g. eval.rp_dim=1024).\n"
               "--out DIR  also write DIR/summary.csv, report.md and report.html\n"
               "A CLR checkpoint (method clr) is evaluated task by task, each task with its\n"
               "own model (backbone + its CLR module), task-incremental accuracy only; --out\n"
               "then also writes DIR/checkpoint.h5 with this evaluation.\n"
               "--force    replace those files if they exist (never CKPT itself)\n"
               "\nexit codes: 0 ok, 2 usage/config (also: an output file exists, or is CKPT),\n"
               "3 bad input data, 4 I/O error\n");
}

typedef struct {
    const char *path;
    double keep;          /* 0 = primary */
    const sotu_tensor_table *tab;
} ckpt_ctx;

static sotu_status backbone_ckpt(void *ctx, int row, float *params)
{
    const ckpt_ctx *c = ctx;
    (void)row;
    return sotu_checkpoint_read_merged(c->path, c->keep, c->tab, params, 0);
}

/* The configuration stored in the checkpoint (the defaults if it has none)
 * with the overrides on top, validated. */
static sotu_status load_config(const sotu_checkpoint_info *info, char *const *sets, int n_sets,
                               sotu_config *cfg)
{
    sotu_status s = SOTU_OK;
    char path[] = "/tmp/sotu-eval-config-XXXXXX";
    int fd = info->config_yaml && info->config_yaml[0] ? mkstemp(path) : -1;
    if (fd >= 0) {
        close(fd);
        s = sotu_write_file_atomic(path, info->config_yaml, strlen(info->config_yaml));
        if (s == SOTU_OK)
            s = sotu_config_load(cfg, path);
        unlink(path);
    } else {
        sotu_config_defaults(cfg);
    }
    for (int i = 0; s == SOTU_OK && i < n_sets; i++)
        s = sotu_config_set(cfg, sets[i]);
    if (s == SOTU_OK)
        s = sotu_config_validate(cfg);
    return s;
}

/* Every rank: re-evaluates each module of the CLR checkpoint ckpt on the
 * tasks of the manifest, rank 0 prints the run's table (and with out writes
 * the checkpoint and reports there). */
static sotu_status eval_clr(const char *ckpt, const char *tasks, const char *out,
                            const sotu_cli_args *a, int rank, int nranks)
{
    sotu_config cfg;
    sotu_manifest man = {0};
    resnet_model base = {0};
    clr_run run = {0};
    sotu_eval_report rep = {0};
    double *acc = NULL, t0 = sotu_now();
    int found = 0;
    sotu_status st = clr_checkpoint_read_config(ckpt, a->sets, a->n_sets, &cfg);
    if (st == SOTU_OK && out) {
        char set[SOTU_PATH_MAX + 32];
        snprintf(set, sizeof set, "output.dir=%s", out);
        st = sotu_config_set(&cfg, set);
    }
    if (st == SOTU_OK)
        st = sotu_manifest_read(tasks, &man);
    if (st == SOTU_OK)
        st = sotu_manifest_check_files(&man, false);
    if (st == SOTU_OK)
        st = sotu_node_setup(0, cfg.train.threads, NULL);
    if (st == SOTU_OK)
        st = clr_checkpoint_read_backbone(ckpt, 1, &base);
    if (st == SOTU_OK)
        st = clr_run_init(&run, &cfg, &man, &base, false);
    if (st == SOTU_OK && rank == 0) {
        st = clr_checkpoint_fill_run(ckpt, &run, &found);
        if (st == SOTU_OK && found == 0)
            st = sotu_error(SOTU_ERR_DATA, "%s: no module for any of the %d tasks of %s (the "
                            "checkpoint's tasks are listed by `sotu inspect %s`)", ckpt,
                            man.n_tasks, tasks, ckpt);
        if (st == SOTU_OK)
            SOTU_INFO("eval %s: CLR checkpoint, %d of %d tasks have a module, %d ranks", ckpt,
                      found, man.n_tasks, nranks);
    }
    if (st == SOTU_OK && !(acc = calloc((size_t)man.n_tasks, sizeof *acc)))
        st = sotu_error(SOTU_ERR_NOMEM, "evaluation of %d tasks", man.n_tasks);
    if (!sotu_mpi_all_ok(&st, nranks, "CLR evaluation setup"))
        goto cleanup;
    if ((st = clr_evaluate(&run, rank, nranks, acc)) != SOTU_OK || rank != 0)
        goto cleanup;
    clr_cost cost;
    if ((st = clr_cost_compute(&run, &cost)) == SOTU_OK)
        st = clr_eval_report(&run, acc, &rep);
    if (st != SOTU_OK)
        goto cleanup;
    clr_print_table(&run, acc, &cost, stdout);
    sotu_eval_report_print(&rep, stdout);
    if (out) {
        if ((st = sotu_mkdirs(out)) == SOTU_OK)
            st = clr_write_outputs(&run, acc, &rep, &cost, nranks, sotu_now() - t0);
        if (st == SOTU_OK)
            printf("checkpoint: %s   report: %s/report.html (also report.md, summary.csv)\n",
                   run.checkpoint_path, out);
    }
cleanup:
    sotu_eval_report_free(&rep);
    free(acc);
    clr_run_free(&run);
    resnet_free(&base);
    sotu_manifest_free(&man);
    return st;
}

int sotu_cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {SOTU_CLI_OPTIONS,
                                         {"tasks", required_argument, NULL, 't'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"force", no_argument, NULL, 'F'},
                                         {NULL, 0, NULL, 0}};
    sotu_cli_args a = {0};
    const char *tasks = NULL, *out = NULL;
    bool force = false;
    int o;
    optind = 0;
    while ((o = getopt_long(argc, argv, SOTU_CLI_SHORT "t:o:", opts, NULL)) != -1) {
        int r = sotu_cli_option(&a, "eval", o, optarg);
        if (r < 0)
            return SOTU_EXIT_USAGE;
        if (r > 0)
            continue;
        if (o == 't') {
            tasks = optarg;
        } else if (o == 'o') {
            out = optarg;
        } else if (o == 'F') {
            force = true;
        } else {
            eval_usage(stderr);
            return SOTU_EXIT_USAGE;
        }
    }
    if (a.help) {
        eval_usage(stdout);
        return SOTU_EXIT_OK;
    }
    if (optind != argc - 1 || !tasks) {
        fprintf(stderr, "sotu eval: expected one CKPT and --tasks MANIFEST\n");
        eval_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    const char *ckpt = argv[optind];
    /* --out DIR: the files written there (checkpoint.h5 only for CLR). */
    static const char *const outputs[] = {"summary.csv", "report.md", "report.html",
                                          "checkpoint.h5"};
    int n_outputs = clr_checkpoint_detect(ckpt) ? 4 : 3;
    for (int i = 0; out && i < n_outputs; i++) {
        char path[SOTU_PATH_MAX];
        const char *inputs[] = {ckpt, tasks};
        sotu_path_join(path, sizeof path, out, outputs[i]);
        sotu_status ost = sotu_output_check(path, inputs, 2, force);
        if (ost != SOTU_OK)
            return sotu_cmd_fail("eval", ost);
    }
    int rank = 0, nranks = 1;
    sotu_status st = sotu_mpi_init(&argc, &argv, &rank, &nranks);
    if (st != SOTU_OK)
        return sotu_cmd_fail("eval", st);
    if (clr_checkpoint_detect(ckpt)) {
        st = eval_clr(ckpt, tasks, out, &a, rank, nranks);
        int crc = st == SOTU_OK ? SOTU_EXIT_OK : sotu_cmd_fail("eval", st);
        sotu_mpi_finalize();
        return crc;
    }

    sotu_checkpoint_info info = {0};
    sotu_manifest man = {0};
    sotu_config cfg;
    vit_model m = {0};
    sotu_eval_report rep = {0};
    bool *active = NULL;
    float **hw = NULL, **hb = NULL;
    double *ft = NULL;
    const char **names = NULL;
    int *classes = NULL;
    int rc = SOTU_EXIT_OK;
    double t0 = sotu_now();

    /* Each rank reads its inputs itself (they may differ between nodes): every
     * failure goes to the vote below, so no rank leaves the others waiting in
     * a collective. */
    if ((st = sotu_checkpoint_read_info(ckpt, &info)) == SOTU_OK)
        st = sotu_manifest_read(tasks, &man);
    if (st == SOTU_OK)
        st = sotu_manifest_check_files(&man, false);
    if (st == SOTU_OK)
        st = load_config(&info, a.sets, a.n_sets, &cfg);
    if (st == SOTU_OK)
        st = sotu_node_setup(0, cfg.train.threads, NULL);
    if (st == SOTU_OK)
        st = vit_init(&m, &info.model, 1);
    int T = man.n_tasks;
    rep.T = T;
    if (st == SOTU_OK) {
        active = calloc((size_t)T, sizeof *active);
        hw = calloc((size_t)T, sizeof *hw);
        hb = calloc((size_t)T, sizeof *hb);
        ft = calloc((size_t)T, sizeof *ft);
        names = calloc((size_t)T, sizeof *names);
        classes = calloc((size_t)T, sizeof *classes);
        if (!active || !hw || !hb || !ft || !names || !classes)
            st = sotu_error(SOTU_ERR_NOMEM, "evaluation of %d tasks", T);
    }
    int with_head = 0;
    for (int t = 0; st == SOTU_OK && t < T; t++) {
        int k = sotu_checkpoint_find_task(&info, man.tasks[t].name);
        active[t] = true;
        names[t] = man.tasks[t].name;
        classes[t] = man.tasks[t].classes;
        ft[t] = NAN;
        if (k < 0 || !info.tasks[k].head_weight)
            continue;
        if (info.tasks[k].classes != man.tasks[t].classes) {
            st = sotu_error(SOTU_ERR_DATA, "%s: task %s has %d classes in the checkpoint, %d in "
                            "%s", ckpt, man.tasks[t].name, info.tasks[k].classes,
                            man.tasks[t].classes, tasks);
            break;
        }
        hw[t] = info.tasks[k].head_weight;
        hb[t] = info.tasks[k].head_bias;
        ft[t] = info.tasks[k].finetuned_acc;
        with_head++;
    }
    if (!sotu_mpi_all_ok(&st, nranks, "evaluation setup")) {
        rc = sotu_cmd_fail("eval", st);
        goto done;
    }
    if (rank == 0)
        SOTU_INFO("eval %s: %d tasks (%d with a head in the checkpoint), %d ranks, keep %g and "
                  "%d more", ckpt, T, with_head, nranks, info.keep, info.n_keeps);

    bool want[SOTU_EV_N];
    sotu_eval_wanted(&cfg, want);
    for (int k = -1; k < info.n_keeps; k++) {
        double keep = k < 0 ? info.keep : info.keeps[k];
        char name[32];
        if (k < 0)
            snprintf(name, sizeof name, "sotu");
        else
            snprintf(name, sizeof name, "sotu@%.6g", keep);
        sotu_eval_method *me = NULL;
        double *acc[SOTU_EV_N] = {0};
        if (rank == 0 && !(me = sotu_eval_report_add(&rep, name, keep, want)))
            st = sotu_error(SOTU_ERR_NOMEM, "the report's accuracy tables of %s", name);
        if (!sotu_mpi_all_ok(&st, nranks, "evaluation report"))
            break;
        if (rank == 0)
            memcpy(acc, me->acc, sizeof acc);
        ckpt_ctx cc = {ckpt, k < 0 ? 0 : keep, &m.table};
        sotu_eval_input in = {.vc = &info.model, .n_params = m.num_params, .man = &man,
                              .cfg = &cfg, .active = active, .head_w = hw, .head_b = hb,
                              .backbone = backbone_ckpt, .ctx = &cc, .last_row_only = true,
                              .label = name};
        memcpy(in.want, want, sizeof want);
        double t1 = sotu_now(), lambda = NAN;
        if ((st = sotu_evaluate_matrices(&in, rank, nranks, acc, &lambda)) != SOTU_OK)
            break;
        if (rank == 0) {
            me->lambda = lambda;
            me->last_row_only = true;
            me->seconds = sotu_now() - t1;
            sotu_eval_method_finish(me, T);
        }
    }
    if (st != SOTU_OK) {
        rc = sotu_cmd_fail("eval", st);
        goto done;
    }
    if (rank == 0) {
        sotu_eval_report_print(&rep, stdout);
        if (out) {
            sotu_report_info ri = {.title = ckpt, .T = T, .task_names = names,
                                   .classes = classes, .finetuned = ft, .keep = info.keep,
                                   .merge_mode = info.merge_mode,
                                   .collision_rate = info.collision_rate,
                                   .seconds = sotu_now() - t0, .ranks = nranks};
            if ((st = sotu_mkdirs(out)) == SOTU_OK)
                st = sotu_report_write(out, &ri, &rep);
            if (st != SOTU_OK)
                rc = sotu_cmd_fail("eval", st);
            else
                printf("report: %s/report.html (also report.md, summary.csv)\n", out);
        }
    }
done:
    sotu_eval_report_free(&rep);
    free(active);
    free(hw);
    free(hb);
    free(ft);
    free(names);
    free(classes);
    vit_free(&m);
    sotu_manifest_free(&man);
    sotu_checkpoint_info_free(&info);
    sotu_mpi_finalize();
    return rc;
}
