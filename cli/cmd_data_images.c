/* `sotu data import-images ROOT --out TASK.h5`: one task file from a folder
 * of class folders of PNG/JPEG images (io/images.h); `sotu data manifest
 * DIR`: a manifest for a folder of task files (the real 53-task benchmark
 * imported folder by folder). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"
#include "cli/cli.h"
#include "cli/cmd_data_images.h"
#include "cli/commands.h"
#include "io/fsutil.h"
#include "io/h5util.h"
#include "io/images.h"
#include "io/taskset.h"

enum { IMG_HELP = 'h', IMG_FORCE = 0x2000, IMG_OUT, IMG_SIZE, IMG_CHANNELS, IMG_RATIO, IMG_SEED,
       IMG_ON_BAD, IMG_NAME };

/* The one positional argument (ROOT, DIR) left after getopt_long, into *arg. */
static sotu_status one_positional(int argc, char **argv, const char **arg)
{
    int n = 0;
    return sotu_cli_take_positionals(argc, argv, arg, 1, &n);
}

/* ------------------------------------------------------------------------ */
/* import-images                                                            */
/* ------------------------------------------------------------------------ */

static void import_images_usage(FILE *f)
{
    fprintf(f,
            "usage: sotu data import-images ROOT --out TASK.h5 --size S [--channels 1|3]\n"
            "                               [--split-ratio R] [--seed N] [--on-bad skip|fail]\n"
            "                               [--name NAME] [--force]\n\n"
            "Builds one task file from a folder of class folders of PNG/JPEG images:\n"
            "  ROOT/<class>/<image>                 split per class by --split-ratio, or\n"
            "  ROOT/train/<class>/<image> + ROOT/test/<class>/<image>   as given.\n"
            "Classes are the sorted folder names. Each image is converted to --channels,\n"
            "its shorter side resized to S (area average when shrinking, bilinear when\n"
            "growing) and the centre S x S kept.\n\n"
            "  --size S          output side in pixels (required)\n"
            "  --channels C      1 (greyscale) or 3 (RGB, the default)\n"
            "  --split-ratio R   share of each class for the test split (default 0.2)\n"
            "  --seed N          seed of the split (default 0)\n"
            "  --on-bad MODE     an unreadable image is reported by path and skipped\n"
            "                    (skip, the default) or ends the import with exit 3 (fail)\n"
            "  --name NAME       task name (default: ROOT's base name)\n"
            "  --force           replace TASK.h5 if it exists\n"
            "\nexit codes: 0 ok, 2 usage (also: TASK.h5 exists), 3 bad input data, 4 I/O error\n");
}

int sotu_data_import_images(int argc, char **argv)
{
    const char *cmd = "data import-images";
    sotu_image_folder_options o = {0};
    o.channels = 3;
    o.test_ratio = 0.2;
    o.skip_bad = true;
    const char *out = NULL, *ratio = NULL;
    bool force = false;
    sotu_status s = SOTU_OK;
    static const struct option opts[] = {{"help", no_argument, NULL, IMG_HELP},
                                         {"force", no_argument, NULL, IMG_FORCE},
                                         {"out", required_argument, NULL, IMG_OUT},
                                         {"size", required_argument, NULL, IMG_SIZE},
                                         {"channels", required_argument, NULL, IMG_CHANNELS},
                                         {"split-ratio", required_argument, NULL, IMG_RATIO},
                                         {"seed", required_argument, NULL, IMG_SEED},
                                         {"on-bad", required_argument, NULL, IMG_ON_BAD},
                                         {"name", required_argument, NULL, IMG_NAME},
                                         {NULL, 0, NULL, 0}};
    int c;
    optind = 0;
    opterr = 0;
    while (s == SOTU_OK && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        const char *v = optarg;
        switch (c) {
        case IMG_HELP: import_images_usage(stdout); return SOTU_EXIT_OK;
        case IMG_FORCE: force = true; break;
        case IMG_OUT: out = v; break;
        case IMG_SIZE: s = sotu_cli_int("--size", v, 1, SOTU_TASK_MAX_SIDE, &o.size); break;
        case IMG_CHANNELS:
            s = sotu_cli_int("--channels", v, 1, 3, &o.channels);
            if (s == SOTU_OK && o.channels == 2)
                s = sotu_error(SOTU_ERR_USAGE, "--channels 2: expected 1 or 3");
            break;
        case IMG_RATIO:
            ratio = v;
            s = sotu_cli_number("--split-ratio", v, 0, 1, SOTU_CLI_HI_OPEN, &o.test_ratio);
            break;
        case IMG_SEED: s = sotu_cli_uint64("--seed", v, &o.seed); break;
        case IMG_ON_BAD:
            if (strcmp(v, "skip") && strcmp(v, "fail"))
                s = sotu_error(SOTU_ERR_USAGE, "--on-bad '%s': expected skip or fail", v);
            o.skip_bad = !strcmp(v, "skip");
            break;
        case IMG_NAME:
            if (!v[0] || strlen(v) >= SOTU_TASK_NAME_MAX || strchr(v, '/'))
                s = sotu_error(SOTU_ERR_USAGE, "--name must have 1..%d characters and no '/'",
                               SOTU_TASK_NAME_MAX - 1);
            o.name = v;
            break;
        default: s = sotu_cli_getopt_error(c, argv); break;
        }
    }
    if (s == SOTU_OK)
        s = one_positional(argc, argv, &o.root);
    if (s == SOTU_OK && !o.root)
        s = sotu_error(SOTU_ERR_USAGE, "the image folder ROOT is required (see --help)");
    if (s == SOTU_OK && !out)
        s = sotu_error(SOTU_ERR_USAGE, "--out TASK.h5 is required");
    if (s == SOTU_OK && !o.size)
        s = sotu_error(SOTU_ERR_USAGE, "--size S is required (e.g. 224 for timm's ViT-B/16, "
                       "28 for the quick start's model)");
    if (s == SOTU_OK)
        s = sotu_output_check(out, NULL, 0, force);
    if (s != SOTU_OK)
        return sotu_cmd_fail(cmd, s);

    char train_dir[SOTU_PATH_MAX], test_dir[SOTU_PATH_MAX];
    sotu_path_join(train_dir, sizeof train_dir, o.root, "train");
    sotu_path_join(test_dir, sizeof test_dir, o.root, "test");
    if (ratio && sotu_file_exists(train_dir) && sotu_file_exists(test_dir))
        SOTU_WARN("%s has train/ and test/ folders: --split-ratio %s is not used", o.root, ratio);

    sotu_taskset t;
    sotu_image_folder_report rep;
    char dir[SOTU_PATH_MAX];
    if ((s = sotu_image_folder_read(&o, &t, &rep)) != SOTU_OK)
        return sotu_cmd_fail(cmd, s);
    sotu_path_dirname(dir, sizeof dir, out);
    if ((s = sotu_mkdirs(dir)) == SOTU_OK && (s = sotu_taskset_write(out, &t)) == SOTU_OK)
        printf("wrote %s (%s: %d classes, %d train, %d test, %dx%dx%d; %lld unreadable images "
               "skipped, %lld other files ignored)\n",
               out, t.name, t.classes, (int)t.n_train, (int)t.n_test, t.height, t.width,
               t.channels, (long long)rep.skipped, (long long)rep.ignored);
    sotu_taskset_free(&t);
    return s == SOTU_OK ? SOTU_EXIT_OK : sotu_cmd_fail(cmd, s);
}

/* ------------------------------------------------------------------------ */
/* manifest                                                                 */
/* ------------------------------------------------------------------------ */

static void manifest_usage(FILE *f)
{
    fprintf(f,
            "usage: sotu data manifest DIR [--out MANIFEST.yaml] [--name NAME] [--force]\n\n"
            "Writes a task manifest listing every task file (*.h5 with format sotu-task, or\n"
            "with /train and /test groups) in DIR, in file-name order, with each task's\n"
            "name, classes and image counts. The default output is DIR/manifest.yaml and\n"
            "the default name DIR's base name. Other HDF5 files are skipped with a note.\n"
            "--force replaces an existing manifest (never one of the task files).\n"
            "\nexit codes: 0 ok, 2 usage (also: the manifest exists), 3 bad task file,\n"
            "4 I/O error\n");
}

static sotu_status dataset_length(hid_t f, const char *name, const char *path, int64_t *n)
{
    hid_t d = H5Lexists(f, name, H5P_DEFAULT) > 0 ? H5Dopen2(f, name, H5P_DEFAULT)
                                                  : H5I_INVALID_HID;
    if (d < 0)
        return sotu_error(SOTU_ERR_DATA, "%s: no dataset /%s", path, name);
    hid_t sp = H5Dget_space(d);
    hsize_t dims[H5S_MAX_RANK];
    int rank = sp >= 0 ? H5Sget_simple_extent_dims(sp, dims, NULL) : -1;
    if (sp >= 0)
        H5Sclose(sp);
    H5Dclose(d);
    if (rank != 1)
        return sotu_error(SOTU_ERR_DATA, "%s: /%s has rank %d, expected 1", path, name, rank);
    *n = (int64_t)dims[0];
    return SOTU_OK;
}

/* Fills t from the attributes and label lengths of a task file without
 * reading the images. Returns SOTU_OK with t->classes 0 for an HDF5 file
 * that is not a task file. */
static sotu_status probe_task(const char *path, sotu_manifest_task *t)
{
    char format[64];
    hid_t f;
    const char *fmt = sotu_h5_file_format(path, format, sizeof format);
    if (fmt && strcmp(fmt, SOTU_TASK_FORMAT))
        return SOTU_OK;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    if (!fmt && (H5Lexists(f, "train", H5P_DEFAULT) <= 0 || H5Lexists(f, "test", H5P_DEFAULT) <= 0))
        goto cleanup;
    int64_t classes = 0;
    if ((s = sotu_h5_read_int_attr(f, "classes", &classes, path)) != SOTU_OK)
        goto cleanup;
    if (classes < 1 || classes > SOTU_TASK_MAX_CLASSES) {
        s = sotu_error(SOTU_ERR_DATA, "%s: classes %lld, expected 1..%d", path,
                       (long long)classes, SOTU_TASK_MAX_CLASSES);
        goto cleanup;
    }
    if (sotu_h5_has_attr(f, "name") > 0) {
        if ((s = sotu_h5_read_str_attr(f, "name", t->name, sizeof t->name, path)) != SOTU_OK)
            goto cleanup;
    } else {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        const char *dot = strrchr(base, '.');
        snprintf(t->name, sizeof t->name, "%.*s",
                 (int)(dot && dot != base ? (size_t)(dot - base) : strlen(base)), base);
    }
    if ((s = dataset_length(f, "train/labels", path, &t->n_train)) != SOTU_OK ||
        (s = dataset_length(f, "test/labels", path, &t->n_test)) != SOTU_OK)
        goto cleanup;
    t->classes = (int)classes;
cleanup:
    H5Fclose(f);
    return s;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static sotu_status build_manifest(const char *dir, const char *out, const char *name,
                                  bool force)
{
    sotu_manifest m = {0};
    char **files = NULL;
    int n_files = 0, cap = 0;
    sotu_status s = SOTU_OK;
    DIR *d = opendir(dir);
    if (!d)
        return sotu_error(SOTU_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL && s == SOTU_OK) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 4 || strcmp(e->d_name + len - 3, ".h5"))
            continue;
        if (n_files == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(files, sizeof *p * (size_t)cap);
            if (!p) {
                s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot list", dir);
                break;
            }
            files = p;
        }
        if (!(files[n_files] = strdup(e->d_name)))
            s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot list", dir);
        else
            n_files++;
    }
    closedir(d);
    if (s != SOTU_OK)
        goto cleanup;
    if (n_files)
        qsort(files, (size_t)n_files, sizeof *files, cmp_str);
    m.tasks = calloc((size_t)(n_files ? n_files : 1), sizeof *m.tasks);
    if (!m.tasks) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate", dir);
        goto cleanup;
    }
    char out_dir[SOTU_PATH_MAX], a[PATH_MAX], b[PATH_MAX];
    sotu_path_dirname(out_dir, sizeof out_dir, out);
    int same_dir = realpath(out_dir, a) && realpath(dir, b) && !strcmp(a, b);
    for (int i = 0; i < n_files; i++) {
        sotu_manifest_task *t = &m.tasks[m.n_tasks];
        sotu_path_join(t->path, sizeof t->path, dir, files[i]);
        if ((s = probe_task(t->path, t)) != SOTU_OK)
            goto cleanup;
        if (t->classes == 0) {
            SOTU_INFO("%s: not a task file, left out", t->path);
            continue;
        }
        for (int k = 0; k < m.n_tasks; k++)
            if (!strcmp(m.tasks[k].name, t->name)) {
                s = sotu_error(SOTU_ERR_DATA, "%s: task name '%s' is also the name of %s",
                               t->path, t->name, m.tasks[k].path);
                goto cleanup;
            }
        if (same_dir)
            snprintf(t->file, sizeof t->file, "%s", files[i]);
        else if (realpath(t->path, a))
            snprintf(t->file, sizeof t->file, "%s", a);
        else
            snprintf(t->file, sizeof t->file, "%s", t->path);
        m.n_tasks++;
    }
    if (m.n_tasks == 0) {
        s = sotu_error(SOTU_ERR_DATA, "%s: no task files (*.h5 with format %s)", dir,
                       SOTU_TASK_FORMAT);
        goto cleanup;
    }
    for (int i = 0; i < m.n_tasks && s == SOTU_OK; i++) {
        const char *input = m.tasks[i].path;
        s = sotu_output_check(out, &input, 1, true);
    }
    if (s == SOTU_OK)
        s = sotu_output_check(out, NULL, 0, force);
    if (s != SOTU_OK)
        goto cleanup;
    if (name) {
        snprintf(m.name, sizeof m.name, "%s", name);
    } else {
        const char *base = realpath(dir, b) ? strrchr(b, '/') : NULL;
        snprintf(m.name, sizeof m.name, "%s", base && base[1] ? base + 1 : "tasks");
    }
    if ((s = sotu_manifest_write(out, &m)) != SOTU_OK)
        goto cleanup;
    int64_t train = 0, test = 0;
    for (int i = 0; i < m.n_tasks; i++) {
        train += m.tasks[i].n_train;
        test += m.tasks[i].n_test;
    }
    printf("wrote %s (%s: %d tasks, %lld train, %lld test images)\n", out, m.name, m.n_tasks,
           (long long)train, (long long)test);
cleanup:
    for (int i = 0; i < n_files; i++)
        free(files[i]);
    free(files);
    free(m.tasks);
    return s;
}

int sotu_data_manifest(int argc, char **argv)
{
    const char *cmd = "data manifest", *dir = NULL, *out = NULL, *name = NULL;
    bool force = false;
    sotu_status s = SOTU_OK;
    static const struct option opts[] = {{"help", no_argument, NULL, IMG_HELP},
                                         {"force", no_argument, NULL, IMG_FORCE},
                                         {"out", required_argument, NULL, IMG_OUT},
                                         {"name", required_argument, NULL, IMG_NAME},
                                         {NULL, 0, NULL, 0}};
    int c;
    optind = 0;
    opterr = 0;
    while (s == SOTU_OK && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case IMG_HELP: manifest_usage(stdout); return SOTU_EXIT_OK;
        case IMG_FORCE: force = true; break;
        case IMG_OUT: out = optarg; break;
        case IMG_NAME: name = optarg; break;
        default: s = sotu_cli_getopt_error(c, argv); break;
        }
    }
    if (s == SOTU_OK)
        s = one_positional(argc, argv, &dir);
    if (s == SOTU_OK && !dir)
        s = sotu_error(SOTU_ERR_USAGE, "the folder DIR is required (see --help)");
    if (s == SOTU_OK && name && (!name[0] || strlen(name) >= SOTU_TASK_NAME_MAX))
        s = sotu_error(SOTU_ERR_USAGE, "--name must have 1..%d characters",
                       SOTU_TASK_NAME_MAX - 1);
    if (s != SOTU_OK)
        return sotu_cmd_fail(cmd, s);
    char path[SOTU_PATH_MAX];
    if (!out) {
        sotu_path_join(path, sizeof path, dir, "manifest.yaml");
        out = path;
    }
    s = build_manifest(dir, out, name, force);
    return s == SOTU_OK ? SOTU_EXIT_OK : sotu_cmd_fail(cmd, s);
}
