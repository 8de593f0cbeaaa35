/* `sotu merge RUN_DIR [--keep K] [--mode M] [--scale S] [--out DIR]`:
 * re-merges the stored deltas of a run without retraining.
 *
 * RUN_DIR is a run directory (config.yaml + deltas/, as `sotu train` or an
 * array element writes it) or a sweep directory (sweep.yaml + points/): then
 * every point is merged, evaluated and ranked. θ0 comes from the
 * configuration's model.pretrained. Under mpiexec/srun the evaluation is
 * shared over the ranks; serially it runs in one process.
 *
 * The run's own files are never modified: the result (checkpoint.h5,
 * report.md, report.html, summary.csv, metrics.jsonl; for a sweep
 * points/<label>/ of those plus sweep.csv and sweep.md) is a new directory,
 * RUN_DIR/merges/<keep>-<mode>[-n] or --out DIR, built under a temporary
 * name and renamed when complete (coordinator/result_dir.h). A task whose
 * delta is missing or does not verify is left out: the rest is merged and
 * written, marked partial, and the exit status is 3.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "coordinator/finish.h"
#include "mpi/mpi_util.h"
#include "mpi/node.h"
#include "coordinator/result_dir.h"
#include "coordinator/run.h"
#include "coordinator/sweep.h"
#include "io/fsutil.h"
#include "io/weights.h"

static void merge_usage(FILE *f)
{
    fprintf(f,
            "usage: [mpiexec -n N] sotu merge RUN_DIR [--keep K] [--mode sum|mean|disjoint]\n"
            "                  [--scale S] [--out DIR] [--set key=value ...]\n"
            "Merges the deltas stored in RUN_DIR/deltas (no retraining), evaluates the merged\n"
            "model and writes a NEW result directory: checkpoint.h5, report.md, report.html,\n"
            "summary.csv, metrics.jsonl. The run's own files are never modified.\n"
            "--out DIR  the result directory (refused if it exists and is not empty); default\n"
            "           RUN_DIR/merges/<keep>-<mode>, or <keep>-<mode>-2, -3, ... when taken\n"
            "--keep K  merge at keep K <= the keep the deltas were shipped at (a sub-mask)\n"
            "--mode, --scale  merge.mode and merge.scale for this merge\n"
            "RUN_DIR may be a sweep directory (sweep.yaml, points/): every point is merged\n"
            "into DIR/points/<label>/ and ranked in DIR/sweep.csv, sweep.md, report.html (and\n"
            "sweep_seeds.csv with a seed axis; default DIR: RUN_DIR/merges/sweep[-n]); what\n"
            "slurm/merge-after.sbatch runs after an array sweep. The points are ranked by\n"
            "the validation figure eval.rank_by names (--set eval.rank_by=ridge re-ranks).\n"
            "Exit status 3 when a task's delta is missing or does not verify: that task is\n"
            "left out (named in the message), the rest is merged and written, marked partial\n"
            "(report.md, summary.csv tasks_merged, checkpoint attribute partial). 4: I/O\n"
            "error (e.g. disk full): no result directory is left behind.\n");
}

/* θ0 read on every rank (merging is not worth a broadcast protocol). */
static sotu_status read_theta0(const char *path, vit_config *vc, vit_model *base)
{
    sotu_status st = sotu_weights_read_config(path, vc);
    if (st == SOTU_OK)
        st = vit_init(base, vc, 1);
    if (st == SOTU_OK)
        st = sotu_weights_read_into(path, SOTU_WEIGHTS_GROUP, &base->table, base->params, 0);
    return st;
}

/* The run directory's configuration with the merge options applied:
 * sotu.keep becomes [K, shipped keep] so the stored deltas still verify. */
static sotu_status merge_config(const char *config_path, const char *dir, char *const *sets,
                                int n_sets, const char *keep, const char *mode,
                                const char *scale, sotu_manifest *man, sotu_config *cfg)
{
    sotu_config trained;
    sotu_config_defaults(&trained);
    sotu_status st = sotu_config_load(&trained, config_path);
    if (st == SOTU_OK)
        st = sotu_manifest_read(trained.data.manifest, man);
    if (st != SOTU_OK)
        return st;
    double ship = sotu_sweep_keep_ship(&trained, man->n_tasks);
    *cfg = trained;
    char a[SOTU_PATH_MAX + 32];
    for (int i = 0; st == SOTU_OK && i < n_sets; i++)
        st = sotu_config_set(cfg, sets[i]);
    if (st == SOTU_OK && mode) {
        snprintf(a, sizeof a, "merge.mode=%s", mode);
        st = sotu_config_set(cfg, a);
    }
    if (st == SOTU_OK && scale) {
        snprintf(a, sizeof a, "merge.scale=%s", scale);
        st = sotu_config_set(cfg, a);
    }
    if (st == SOTU_OK) {
        snprintf(a, sizeof a, "output.dir=%s", dir);
        st = sotu_config_set(cfg, a);
    }
    if (st != SOTU_OK)
        return st;
    double k = cfg->sotu.n_keep ? cfg->sotu.keep[0] : 1.0 / man->n_tasks;
    if (keep && (st = sotu_cli_number("--keep", keep, 0, 1, SOTU_CLI_LO_OPEN, &k)) != SOTU_OK)
        return st;
    if (k > ship * (1 + 1e-12))
        return sotu_error(SOTU_ERR_USAGE, "--keep %g: the deltas in %s/deltas were shipped at "
                          "keep %g; a merge can only use a keep up to that (a sub-mask)", k, dir,
                          ship);
    if (fabs(k - ship) <= 1e-12 * ship)
        snprintf(a, sizeof a, "sotu.keep=[%.17g]", ship);
    else
        snprintf(a, sizeof a, "sotu.keep=[%.17g, %.17g]", k, ship);
    if ((st = sotu_config_set(cfg, a)) == SOTU_OK)
        st = sotu_config_validate(cfg);
    return st;
}

/* The left-out tasks as the final error (exit 3), after the rest was written. */
static sotu_status left_out_error(const sotu_finish_merge *merge, const char *result)
{
    return sotu_error(SOTU_ERR_DATA, "%d task%s left out of this merge: %s. The result of the "
                      "rest, marked partial, is in %s", merge->n_left_out,
                      merge->n_left_out == 1 ? "" : "s", merge->left_out, result);
}

/* Rank 0 after the finish: the result directory renamed into place, or
 * removed when st failed. */
static sotu_status merge_commit(sotu_status st, sotu_run *run, sotu_result_dir *rd)
{
    if (st == SOTU_OK && run && run->metrics) {
        bool bad = ferror(run->metrics) != 0;
        if (fclose(run->metrics) != 0)
            bad = true;
        run->metrics = NULL;
        if (bad)
            st = sotu_error(SOTU_ERR_IO, "%s/metrics.jsonl: write failed (disk full?)",
                            rd->final);
    }
    if (st == SOTU_OK)
        return sotu_result_dir_commit(rd);
    sotu_result_dir_abort(rd);
    return sotu_error_context(st, "%s not written (its temporary directory was removed)",
                              rd->final);
}

static sotu_status merge_run_dir(const char *dir, const sotu_cli_args *a, const char *keep,
                                 const char *mode, const char *scale, const char *out, int rank,
                                 int nranks)
{
    char path[SOTU_PATH_MAX + 32], name[96];
    sotu_path_join(path, sizeof path, dir, "config.yaml");
    sotu_config cfg;
    sotu_manifest man = {0};
    vit_config vc;
    vit_model base = {0};
    sotu_run run = {0};
    sotu_result_dir rd = {0};
    sotu_finish_merge merge = {0};
    double t0 = sotu_now(), mean = NAN;
    int loaded = 0, done = 0;
    sotu_status st = merge_config(path, dir, a->sets, a->n_sets, keep, mode, scale, &man, &cfg);
    if (st == SOTU_OK)
        st = sotu_manifest_check_files(&man, false);
    if (st == SOTU_OK)
        st = sotu_node_setup(0, cfg.train.threads, NULL);
    if (st == SOTU_OK)
        st = read_theta0(cfg.model.pretrained, &vc, &base);
    if (st == SOTU_OK)
        st = sotu_run_init(&run, &cfg, &man, &vc, &base.table, base.params, false);
    run.merging = true;
    if (st == SOTU_OK && rank == 0) {
        st = sotu_run_load_deltas(&run, &loaded);
        if (st == SOTU_OK && loaded == 0)
            st = sotu_error(SOTU_ERR_DATA, "%s: no delta verifies (expected <task>.sotud files "
                            "of the %d tasks of %s); nothing merged, nothing written",
                            run.deltas_dir, run.T, man.path);
        if (st == SOTU_OK && out) {
            st = sotu_result_dir_explicit(&rd, out);
        } else if (st == SOTU_OK) {
            char merges[SOTU_PATH_MAX + 16];
            sotu_path_join(merges, sizeof merges, dir, "merges");
            int n = snprintf(name, sizeof name, "%.6g-%s", run.keeps[0],
                             sotu_merge_mode_name(run.mode));
            if (run.cfg.merge.scale != 1.0)
                snprintf(name + n, sizeof name - (size_t)n, "-scale%.6g", run.cfg.merge.scale);
            st = sotu_result_dir_fresh(&rd, merges, name);
        }
        if (st == SOTU_OK)
            st = sotu_result_dir_begin(&rd);
        merge.dir = rd.tmp;
        merge.final_dir = rd.final;
        if (st == SOTU_OK)
            st = sotu_finish_merge_setup(&run, rd.tmp, rd.final, "", &merge);
        if (st == SOTU_OK)
            SOTU_INFO("merge %s: %d of %d tasks, keep %g (shipped at %g), %s scale %g, into %s",
                      dir, loaded, run.T, run.keeps[0], run.keep_ship, cfg.merge.mode,
                      cfg.merge.scale, rd.final);
    }
    if (sotu_mpi_all_ok(&st, nranks, "merge"))
        st = sotu_finish_run(&run, rank, nranks, t0, -1, -1, &mean, NULL, &done);
    if (rank == 0 && rd.tmp[0])
        st = merge_commit(st, &run, &rd);
    if (st == SOTU_OK && rank == 0) {
        printf("merged result: %s (checkpoint.h5, report.html, report.md, summary.csv, "
               "metrics.jsonl)%s\n", rd.final, merge.n_left_out ? ", PARTIAL" : "");
        if (merge.n_left_out)
            st = left_out_error(&merge, rd.final);
    }
    sotu_run_free(&run);
    vit_free(&base);
    sotu_manifest_free(&man);
    return st;
}

static sotu_status merge_sweep_dir(const char *dir, const sotu_cli_args *a, const char *out,
                                   int rank, int nranks)
{
    char path[SOTU_PATH_MAX + 32], set[SOTU_PATH_MAX + 32];
    sotu_path_join(path, sizeof path, dir, "sweep.yaml");
    sotu_config cfg;
    sotu_config_defaults(&cfg);
    sotu_manifest man = {0};
    sotu_sweep sw = {0};
    vit_config vc;
    vit_model base = {0};
    sotu_result_dir rd = {0};
    sotu_finish_merge merge = {0};
    sotu_status st = sotu_config_load(&cfg, path);
    for (int i = 0; st == SOTU_OK && i < a->n_sets; i++)
        st = sotu_config_set(&cfg, a->sets[i]);
    snprintf(set, sizeof set, "output.dir=%s", dir);
    if (st == SOTU_OK)
        st = sotu_config_set(&cfg, set);
    if (st == SOTU_OK)
        st = sotu_config_validate(&cfg);
    if (st == SOTU_OK)
        st = sotu_manifest_read(cfg.data.manifest, &man);
    if (st == SOTU_OK)
        st = sotu_manifest_check_files(&man, false);
    if (st == SOTU_OK)
        st = sotu_sweep_expand(&cfg, man.n_tasks, &sw);
    if (st == SOTU_OK)
        st = sotu_node_setup(0, cfg.train.threads, NULL);
    if (st == SOTU_OK)
        st = read_theta0(cfg.model.pretrained, &vc, &base);
    if (st == SOTU_OK && rank == 0) {
        char merges[SOTU_PATH_MAX + 16];
        sotu_path_join(merges, sizeof merges, dir, "merges");
        st = out ? sotu_result_dir_explicit(&rd, out) : sotu_result_dir_fresh(&rd, merges, "sweep");
        if (st == SOTU_OK)
            st = sotu_result_dir_begin(&rd);
        if (st == SOTU_OK)
            SOTU_INFO("merge of the %d points of %s into %s", sw.n_points, dir, rd.final);
    }
    merge.dir = rd.tmp;
    merge.final_dir = rd.final;
    if (sotu_mpi_all_ok(&st, nranks, "merge"))
        st = sotu_finish_sweep(&sw, &man, &vc, &base.table, base.params, rank, nranks, &merge);
    if (rank == 0 && rd.tmp[0])
        st = merge_commit(st, NULL, &rd);
    if (st == SOTU_OK && rank == 0) {
        printf("merged result: %s (sweep.csv, sweep.md, points/<label>/)%s\n", rd.final,
               merge.n_left_out ? ", PARTIAL" : "");
        if (merge.n_left_out)
            st = left_out_error(&merge, rd.final);
    }
    sotu_sweep_free(&sw);
    vit_free(&base);
    sotu_manifest_free(&man);
    return st;
}

int sotu_cmd_merge(int argc, char **argv)
{
    enum { OPT_KEEP = 0x2000, OPT_MODE, OPT_SCALE, OPT_OUT };
    static const struct option opts[] = {SOTU_CLI_OPTIONS,
                                         {"keep", required_argument, NULL, OPT_KEEP},
                                         {"mode", required_argument, NULL, OPT_MODE},
                                         {"scale", required_argument, NULL, OPT_SCALE},
                                         {"out", required_argument, NULL, OPT_OUT},
                                         {NULL, 0, NULL, 0}};
    sotu_cli_args a = {0};
    const char *keep = NULL, *mode = NULL, *scale = NULL, *out = NULL;
    int o;
    optind = 0;
    while ((o = getopt_long(argc, argv, SOTU_CLI_SHORT, opts, NULL)) != -1) {
        int r = sotu_cli_option(&a, "merge", o, optarg);
        if (r < 0)
            return SOTU_EXIT_USAGE;
        if (r > 0)
            continue;
        if (o == OPT_KEEP)
            keep = optarg;
        else if (o == OPT_MODE)
            mode = optarg;
        else if (o == OPT_SCALE)
            scale = optarg;
        else if (o == OPT_OUT)
            out = optarg;
        else {
            merge_usage(stderr);
            return SOTU_EXIT_USAGE;
        }
    }
    if (a.help) {
        merge_usage(stdout);
        return SOTU_EXIT_OK;
    }
    if (sotu_cli_positionals("merge", argc, argv, optind, 1, 1, "RUN_DIR")) {
        merge_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    const char *dir = argv[optind];
    char path[SOTU_PATH_MAX + 32];
    sotu_path_join(path, sizeof path, dir, "sweep.yaml");
    bool sweep = sotu_file_exists(path);
    sotu_path_join(path, sizeof path, dir, "config.yaml");
    if (!sweep && !sotu_file_exists(path)) {
        fprintf(stderr, "sotu merge: %s: neither a run directory (config.yaml, deltas/) nor a "
                "sweep directory (sweep.yaml, points/)\n", dir);
        return SOTU_EXIT_USAGE;
    }
    if (!sweep) {
        /* Before any weights are read: a CLR run has modules, no deltas. */
        sotu_config trained;
        sotu_config_defaults(&trained);
        if (sotu_config_load(&trained, path) == SOTU_OK && !strcmp(trained.method, "clr")) {
            fprintf(stderr, "sotu merge: %s is a CLR run (method clr): its tasks ship modules, "
                    "not deltas; nothing to merge (its checkpoint.h5 holds every task's model: "
                    "sotu predict CKPT --task T, sotu eval CKPT --tasks MANIFEST)\n", dir);
            return SOTU_EXIT_USAGE;
        }
    }
    if (sweep && (keep || mode || scale)) {
        fprintf(stderr, "sotu merge: %s is a sweep directory: --keep, --mode and --scale apply "
                "to one run directory (%s/points/<point>), or sweep them in the "
                "configuration\n", dir, dir);
        return SOTU_EXIT_USAGE;
    }
    if (out) {
        /* Refused before any work; checked again when the result is created. */
        size_t n = strlen(out);
        sotu_result_dir rd;
        sotu_status st = n > 3 && !strcmp(out + n - 3, ".h5")
                             ? sotu_error(SOTU_ERR_USAGE, "--out %s: names the result "
                                          "directory (checkpoint.h5, reports, metrics.jsonl "
                                          "go inside it), not a checkpoint file", out)
                             : sotu_result_dir_explicit(&rd, out);
        if (st != SOTU_OK)
            return sotu_cmd_fail("merge", st);
    }
    int rank = 0, nranks = 1;
    sotu_status st = sotu_mpi_init(&argc, &argv, &rank, &nranks);
    if (st != SOTU_OK)
        return sotu_cmd_fail("merge", st);
    st = sweep ? merge_sweep_dir(dir, &a, out, rank, nranks)
               : merge_run_dir(dir, &a, keep, mode, scale, out, rank, nranks);
    int rc = st == SOTU_OK ? SOTU_EXIT_OK : sotu_exit_code(st);
    if (st != SOTU_OK && rank == 0)
        fprintf(stderr, "sotu merge: %s\n", sotu_last_error());
    /* Every rank exits with rank 0's code (mpiexec reports the first non-zero
     * one: a refusal on rank 0 must not read as the others' exit 1). */
    if (nranks > 1)
        SOTU_MPI_CHECK(MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD));
    sotu_mpi_finalize();
    return rc;
}
