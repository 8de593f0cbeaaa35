/* `sotu data SUB [options]`: build task datasets (Fashion-MNIST presets,
 * IDX import). Every output file is written atomically; a failure leaves no
 * partial file behind. */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"
#include "cli/cli.h"
#include "cli/cmd_data_images.h"
#include "cli/commands.h"
#include "io/fmnist.h"
#include "io/fsutil.h"
#include "io/idx.h"
#include "io/taskset.h"

/* getopt_long over argv[1..) of a `sotu data SUB` (argv[0] is SUB); the
 * option string starts with ':' so a missing value comes back as ':'. */
#define DATA_SHORT ":h"
enum { DATA_HELP = 'h', DATA_FORCE = 0x2000, DATA_OUT, DATA_NAME, DATA_PRESET, DATA_DIR,
       DATA_TRAIN, DATA_TEST, DATA_SEED, DATA_CLASS_NAMES, DATA_TRANSFORM, DATA_IDX };

/* No argument may be left after the options. */
static sotu_status no_positionals(int argc, char **argv)
{
    int n = 0;
    return sotu_cli_take_positionals(argc, argv, NULL, 0, &n);
}

/* ------------------------------------------------------------------------ */
/* sotu data fmnist                                                         */
/* ------------------------------------------------------------------------ */

static void fmnist_usage(FILE *f)
{
    fprintf(f,
            "usage: sotu data fmnist --preset fmnist5|fmnist53|split5|split10 --out DIR\n"
            "                        [--transform R] [--data-dir D] [--train N] [--test M]\n"
            "                        [--seed S] [--force]\n\n"
            "Builds a task stream from the Fashion-MNIST IDX files: DIR/tNN.h5 per task and\n"
            "DIR/manifest.yaml (written last). The same options give the same bytes.\n\n"
            "  --preset P     fmnist5: 5 tasks, class pairs 0/1 .. 8/9, one transform each\n"
            "                 fmnist53: 53 tasks, 2-10 classes, varied transforms\n"
            "                 split5: ONE domain (--transform) split into 5 tasks of disjoint\n"
            "                 class pairs 0/1 .. 8/9 (the paper's class-incremental protocol)\n"
            "                 split10: the same, 10 tasks of one class each (class-incremental\n"
            "                 classifiers only: a one-class head gives no training signal)\n"
            "  --transform R  split5/split10 (required there): the recipe every task shares,\n"
            "                 tokens joined by '+': orig rot90 rot180 rot270 rot15 rot30 rot45\n"
            "                 rotm15 rotm30 hflip vflip inv pperm xperm box3 box5 gauss3\n"
            "                 gauss5 zoom20 zoom16 lowcon highcon (e.g. pperm, rot90+inv)\n"
            "  --out DIR      output directory (created if missing)\n"
            "  --data-dir D   directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz\n"
            "                 (default %s)\n"
            "  --train N      training images per task (default %d)\n"
            "  --test M       test images per task (default %d)\n"
            "  --seed S       seed of the class subsets, sampling and permutations (default 0)\n"
            "  --force        replace task files and the manifest already in DIR\n"
            "\nexit codes: 0 ok, 2 usage (also: an output file exists), 3 bad input data,\n"
            "4 I/O error\n",
            SOTU_FMNIST_DEFAULT_DIR, SOTU_FMNIST_DEFAULT_TRAIN, SOTU_FMNIST_DEFAULT_TEST);
}

/* Every file data fmnist would write (DIR/tNN.h5 of the preset, then
 * DIR/manifest.yaml) against the output check, with the IDX files as the
 * inputs. */
static sotu_status fmnist_check_outputs(const sotu_fmnist_options *o, bool force)
{
    static const char *const idx_names[4] = {
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    const char *dir = o->data_dir ? o->data_dir : SOTU_FMNIST_DEFAULT_DIR;
    char in[4][SOTU_PATH_MAX], out[SOTU_PATH_MAX];
    const char *inputs[4];
    for (int i = 0; i < 4; i++) {
        sotu_path_join(in[i], sizeof in[i], dir, idx_names[i]);
        inputs[i] = in[i];
    }
    int n = sotu_fmnist_plan(o->preset, o->transform, o->seed, NULL, 0);
    sotu_fmnist_task_plan *plan = calloc((size_t)n + 1, sizeof *plan);
    if (!plan)
        return sotu_error(SOTU_ERR_NOMEM, "task plan of %s", o->preset);
    sotu_fmnist_plan(o->preset, o->transform, o->seed, plan, n);
    sotu_status s = SOTU_OK;
    for (int t = 0; t <= n && s == SOTU_OK; t++) {
        sotu_path_join(out, sizeof out, o->out_dir, t < n ? plan[t].file : "manifest.yaml");
        s = sotu_output_check(out, inputs, 4, force);
    }
    free(plan);
    return s;
}

static int data_fmnist(int argc, char **argv)
{
    const char *cmd = "data fmnist";
    static const struct option opts[] = {{"help", no_argument, NULL, DATA_HELP},
                                         {"force", no_argument, NULL, DATA_FORCE},
                                         {"preset", required_argument, NULL, DATA_PRESET},
                                         {"out", required_argument, NULL, DATA_OUT},
                                         {"transform", required_argument, NULL, DATA_TRANSFORM},
                                         {"data-dir", required_argument, NULL, DATA_DIR},
                                         {"train", required_argument, NULL, DATA_TRAIN},
                                         {"test", required_argument, NULL, DATA_TEST},
                                         {"seed", required_argument, NULL, DATA_SEED},
                                         {NULL, 0, NULL, 0}};
    sotu_fmnist_options o = {0};
    sotu_status s = SOTU_OK;
    bool force = false;
    int c;
    optind = 0;
    opterr = 0;
    while (s == SOTU_OK && (c = getopt_long(argc, argv, DATA_SHORT, opts, NULL)) != -1) {
        switch (c) {
        case DATA_HELP: fmnist_usage(stdout); return SOTU_EXIT_OK;
        case DATA_FORCE: force = true; break;
        case DATA_PRESET: o.preset = optarg; break;
        case DATA_OUT: o.out_dir = optarg; break;
        case DATA_TRANSFORM: o.transform = optarg; break;
        case DATA_DIR: o.data_dir = optarg; break;
        case DATA_TRAIN: s = sotu_cli_int("--train", optarg, 1, 60000, &o.n_train); break;
        case DATA_TEST: s = sotu_cli_int("--test", optarg, 1, 10000, &o.n_test); break;
        case DATA_SEED: s = sotu_cli_uint64("--seed", optarg, &o.seed); break;
        default: s = sotu_cli_getopt_error(c, argv); break;
        }
    }
    if (s == SOTU_OK)
        s = no_positionals(argc, argv);
    if (s == SOTU_OK && !o.preset)
        s = sotu_error(SOTU_ERR_USAGE, "--preset is required (fmnist5, fmnist53, split5 or "
                       "split10)");
    if (s == SOTU_OK && !o.out_dir)
        s = sotu_error(SOTU_ERR_USAGE, "--out DIR is required");
    if (s == SOTU_OK && sotu_fmnist_plan(o.preset, NULL, 0, NULL, 0) == 0)
        s = sotu_error(SOTU_ERR_USAGE, "--preset '%s': expected fmnist5, fmnist53, split5 or "
                       "split10", o.preset);
    bool shared = s == SOTU_OK && sotu_fmnist_preset_shared(o.preset);
    if (s == SOTU_OK && shared && !o.transform)
        s = sotu_error(SOTU_ERR_USAGE, "--preset %s needs --transform R (the recipe every task "
                       "shares, e.g. pperm; see --help)", o.preset);
    if (s == SOTU_OK && !shared && o.transform)
        s = sotu_error(SOTU_ERR_USAGE, "--transform: preset %s has its own transforms (--transform "
                       "is for split5 and split10)", o.preset);
    if (s == SOTU_OK && o.transform && strlen(o.transform) > SOTU_FMNIST_TRANSFORM_MAX)
        s = sotu_error(SOTU_ERR_USAGE, "--transform '%s': longer than %d characters", o.transform,
                       SOTU_FMNIST_TRANSFORM_MAX);
    if (s == SOTU_OK && o.transform)
        s = sotu_fmnist_transform(o.transform, 0, 0, NULL, NULL, 0); /* names the bad token */
    if (s == SOTU_OK)
        s = fmnist_check_outputs(&o, force);
    if (s == SOTU_OK)
        s = sotu_fmnist_build(&o);
    return s == SOTU_OK ? SOTU_EXIT_OK : sotu_cmd_fail(cmd, s);
}

/* ------------------------------------------------------------------------ */
/* sotu data import-idx                                                     */
/* ------------------------------------------------------------------------ */

static void import_idx_usage(FILE *f)
{
    fprintf(f,
            "usage: sotu data import-idx --images X.gz --labels Y.gz --test-images X.gz\n"
            "                            --test-labels Y.gz --out TASK.h5 [--name N]\n"
            "                            [--class-names a,b,...] [--force]\n\n"
            "Writes one task file from four IDX files (gzip or plain): uint8 images\n"
            "[N,rows,cols] become [N,rows,cols,1], labels become int32. classes is the\n"
            "largest label + 1 (or the number of --class-names). --force replaces TASK.h5\n"
            "if it exists (never one of the inputs).\n"
            "\nexit codes: 0 ok, 2 usage (also: TASK.h5 exists, or is an input), 3 bad input\n"
            "data, 4 I/O error\n");
}

/* Splits a comma-separated list into names; returns the count. */
static int split_names(const char *list, char (**names)[SOTU_TASK_NAME_MAX])
{
    int n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    *names = calloc((size_t)n, sizeof **names);
    if (!*names)
        return -1;
    const char *p = list;
    for (int i = 0; i < n; i++) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || len >= SOTU_TASK_NAME_MAX)
            return -2;
        memcpy((*names)[i], p, len);
        p = e ? e + 1 : p + len;
    }
    return n;
}

static sotu_status import_idx(const char *const paths[4], const char *out, const char *name,
                              const char *class_list)
{
    sotu_idx idx[4] = {{0}};
    sotu_taskset t = {0};
    sotu_status s = SOTU_OK;
    for (int i = 0; i < 4 && s == SOTU_OK; i++)
        s = sotu_idx_read(paths[i], i % 2 ? SOTU_IDX_MAGIC_LABELS : SOTU_IDX_MAGIC_IMAGES,
                          &idx[i]);
    if (s != SOTU_OK)
        goto cleanup;
    for (int i = 0; i < 4; i += 2)
        if (idx[i].n != idx[i + 1].n) {
            s = sotu_error(SOTU_ERR_DATA, "%s has %d labels but %s has %d images", paths[i + 1],
                           idx[i + 1].n, paths[i], idx[i].n);
            goto cleanup;
        }
    if (idx[0].rows != idx[2].rows || idx[0].cols != idx[2].cols) {
        s = sotu_error(SOTU_ERR_DATA, "%s has %dx%d images but %s has %dx%d", paths[2],
                       idx[2].rows, idx[2].cols, paths[0], idx[0].rows, idx[0].cols);
        goto cleanup;
    }
    int max_label = 0;
    for (int i = 1; i < 4; i += 2)
        for (int32_t j = 0; j < idx[i].n; j++)
            if (idx[i].data[j] > max_label)
                max_label = idx[i].data[j];
    if (class_list) {
        int n = split_names(class_list, &t.class_names);
        if (n < 0) {
            s = n == -1 ? sotu_error(SOTU_ERR_NOMEM, "cannot allocate class names")
                        : sotu_error(SOTU_ERR_USAGE,
                                     "--class-names: empty name or longer than %d characters",
                                     SOTU_TASK_NAME_MAX - 1);
            goto cleanup;
        }
        if (n <= max_label) {
            s = sotu_error(SOTU_ERR_DATA, "--class-names lists %d classes but the labels go up to %d",
                           n, max_label);
            goto cleanup;
        }
        t.classes = n;
    } else {
        t.classes = max_label + 1;
        t.class_names = calloc((size_t)t.classes, sizeof *t.class_names);
        if (!t.class_names) {
            s = sotu_error(SOTU_ERR_NOMEM, "cannot allocate class names");
            goto cleanup;
        }
        for (int i = 0; i < t.classes; i++)
            snprintf(t.class_names[i], sizeof t.class_names[i], "%d", i);
    }
    if (name) {
        snprintf(t.name, sizeof t.name, "%s", name);
    } else {
        const char *base = strrchr(out, '/');
        base = base ? base + 1 : out;
        const char *dot = strrchr(base, '.');
        snprintf(t.name, sizeof t.name, "%.*s",
                 (int)(dot && dot != base ? (size_t)(dot - base) : strlen(base)), base);
    }
    t.height = idx[0].rows;
    t.width = idx[0].cols;
    t.channels = 1;
    t.n_train = idx[0].n;
    t.n_test = idx[2].n;
    t.train_images = idx[0].data;
    t.test_images = idx[2].data;
    t.train_labels = malloc(((size_t)t.n_train + 1) * sizeof(int32_t));
    t.test_labels = malloc(((size_t)t.n_test + 1) * sizeof(int32_t));
    if (!t.train_labels || !t.test_labels) {
        s = sotu_error(SOTU_ERR_NOMEM, "cannot allocate labels");
        goto cleanup;
    }
    for (int32_t j = 0; j < t.n_train; j++)
        t.train_labels[j] = idx[1].data[j];
    for (int32_t j = 0; j < t.n_test; j++)
        t.test_labels[j] = idx[3].data[j];
    char dir[SOTU_PATH_MAX];
    sotu_path_dirname(dir, sizeof dir, out);
    if ((s = sotu_mkdirs(dir)) != SOTU_OK)
        goto cleanup;
    if ((s = sotu_taskset_write(out, &t)) != SOTU_OK)
        goto cleanup;
    SOTU_INFO("wrote %s (%s: %d classes, %d train, %d test, %dx%d)", out, t.name, t.classes,
              (int)t.n_train, (int)t.n_test, t.height, t.width);
cleanup:
    t.train_images = t.test_images = NULL; /* owned by idx */
    sotu_taskset_free(&t);
    for (int i = 0; i < 4; i++)
        sotu_idx_free(&idx[i]);
    return s;
}

static int data_import_idx(int argc, char **argv)
{
    const char *cmd = "data import-idx";
    const char *paths[4] = {NULL, NULL, NULL, NULL}, *out = NULL, *name = NULL, *classes = NULL;
    static const char *const names[4] = {"--images", "--labels", "--test-images",
                                         "--test-labels"};
    static const struct option opts[] = {{"help", no_argument, NULL, DATA_HELP},
                                         {"force", no_argument, NULL, DATA_FORCE},
                                         {"images", required_argument, NULL, DATA_IDX + 0},
                                         {"labels", required_argument, NULL, DATA_IDX + 1},
                                         {"test-images", required_argument, NULL, DATA_IDX + 2},
                                         {"test-labels", required_argument, NULL, DATA_IDX + 3},
                                         {"out", required_argument, NULL, DATA_OUT},
                                         {"name", required_argument, NULL, DATA_NAME},
                                         {"class-names", required_argument, NULL,
                                          DATA_CLASS_NAMES},
                                         {NULL, 0, NULL, 0}};
    sotu_status s = SOTU_OK;
    bool force = false;
    int c;
    optind = 0;
    opterr = 0;
    while (s == SOTU_OK && (c = getopt_long(argc, argv, DATA_SHORT, opts, NULL)) != -1) {
        if (c >= DATA_IDX && c < DATA_IDX + 4) {
            paths[c - DATA_IDX] = optarg;
            continue;
        }
        switch (c) {
        case DATA_HELP: import_idx_usage(stdout); return SOTU_EXIT_OK;
        case DATA_FORCE: force = true; break;
        case DATA_OUT: out = optarg; break;
        case DATA_NAME: name = optarg; break;
        case DATA_CLASS_NAMES: classes = optarg; break;
        default: s = sotu_cli_getopt_error(c, argv); break;
        }
    }
    if (s == SOTU_OK)
        s = no_positionals(argc, argv);
    for (int k = 0; k < 4 && s == SOTU_OK; k++)
        if (!paths[k])
            s = sotu_error(SOTU_ERR_USAGE, "%s is required", names[k]);
    if (s == SOTU_OK && !out)
        s = sotu_error(SOTU_ERR_USAGE, "--out TASK.h5 is required");
    if (s == SOTU_OK && name && (!name[0] || strlen(name) >= SOTU_TASK_NAME_MAX))
        s = sotu_error(SOTU_ERR_USAGE, "--name must have 1..%d characters",
                       SOTU_TASK_NAME_MAX - 1);
    if (s == SOTU_OK)
        s = sotu_output_check(out, paths, 4, force);
    if (s == SOTU_OK)
        s = import_idx(paths, out, name, classes);
    return s == SOTU_OK ? SOTU_EXIT_OK : sotu_cmd_fail(cmd, s);
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                 */
/* ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} data_commands[] = {
    {"fmnist", data_fmnist, "task stream from Fashion-MNIST (presets fmnist5, fmnist53, split5, split10)"},
    {"import-idx", data_import_idx, "one task file from four IDX files"},
    {"import-images", sotu_data_import_images, "one task file from a folder of PNG/JPEG class folders"},
    {"manifest", sotu_data_manifest, "a manifest for a folder of task files"},
};
enum { N_DATA_COMMANDS = sizeof data_commands / sizeof data_commands[0] };

static void data_usage(FILE *f)
{
    fprintf(f, "usage: sotu data SUB [options]   (sotu data SUB --help for each)\n\n");
    for (int i = 0; i < N_DATA_COMMANDS; i++)
        fprintf(f, "  %-11s %s\n", data_commands[i].name, data_commands[i].summary);
}

int sotu_cmd_data(int argc, char **argv)
{
    if (argc < 2) {
        data_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        data_usage(stdout);
        return SOTU_EXIT_OK;
    }
    for (int i = 0; i < N_DATA_COMMANDS; i++)
        if (!strcmp(argv[1], data_commands[i].name))
            return data_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "sotu data: unknown subcommand '%s'\n", argv[1]);
    data_usage(stderr);
    return SOTU_EXIT_USAGE;
}
