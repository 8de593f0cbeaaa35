/* `sotu inspect FILE`: describe a task file, manifest or weights file. */
#include <getopt.h>
#include <hdf5.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"
#include "coordinator/clr/clr_eval.h"
#include "cli/commands.h"
#include "cli/inspect/inspect.h"
#include "io/fsutil.h"
#include "io/h5util.h"
#include "io/taskset.h"
#include "io/weights.h"
#include "io/resnet_io.h"

static int verbose(void) { return sotu_log_get_level() >= SOTU_LOG_DEBUG; }

/* ------------------------------------------------------------------------ */
/* Task files                                                               */
/* ------------------------------------------------------------------------ */

static double pixel_mean(const uint8_t *p, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += p[i];
    return n ? sum / (double)n : 0.0;
}

int sotu_inspect_task(const char *path)
{
    sotu_taskset t;
    sotu_status s = sotu_taskset_read(path, &t);
    if (s != SOTU_OK)
        return sotu_cmd_fail("inspect", s);
    int64_t *hist = calloc(2 * (size_t)t.classes, sizeof *hist);
    if (!hist) {
        sotu_taskset_free(&t);
        return sotu_cmd_fail("inspect", sotu_error(SOTU_ERR_NOMEM, "cannot allocate"));
    }
    for (int32_t i = 0; i < t.n_train; i++)
        hist[t.train_labels[i]]++;
    for (int32_t i = 0; i < t.n_test; i++)
        hist[t.classes + t.test_labels[i]]++;
    size_t item = (size_t)t.height * t.width * t.channels;
    printf("task file   %s\n", path);
    printf("name        %s\n", t.name);
    printf("classes     %d\n", t.classes);
    printf("images      [N,%d,%d,%d] uint8, labels int32\n", t.height, t.width, t.channels);
    printf("train       %d images, pixel mean %.2f\n", (int)t.n_train,
           pixel_mean(t.train_images, (size_t)t.n_train * item));
    printf("test        %d images, pixel mean %.2f\n", (int)t.n_test,
           pixel_mean(t.test_images, (size_t)t.n_test * item));
    printf("\n%5s  %-24s %8s %8s\n", "label", "class", "train", "test");
    for (int c = 0; c < t.classes; c++)
        printf("%5d  %-24s %8lld %8lld\n", c, t.class_names[c], (long long)hist[c],
               (long long)hist[t.classes + c]);
    free(hist);
    sotu_taskset_free(&t);
    return SOTU_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* Manifests                                                                */
/* ------------------------------------------------------------------------ */

int sotu_inspect_manifest(const char *path)
{
    sotu_manifest m;
    sotu_status s = sotu_manifest_read(path, &m);
    if (s != SOTU_OK)
        return sotu_cmd_fail("inspect", s);
    int64_t train = 0, test = 0;
    printf("manifest    %s\n", path);
    printf("name        %s\n", m.name);
    printf("tasks       %d\n\n", m.n_tasks);
    printf("%4s  %-32s %-16s %7s %8s %8s\n", "#", "name", "file", "classes", "train", "test");
    for (int i = 0; i < m.n_tasks; i++) {
        const sotu_manifest_task *t = &m.tasks[i];
        printf("%4d  %-32s %-16s %7d %8lld %8lld\n", i, t->name, t->file, t->classes,
               (long long)t->n_train, (long long)t->n_test);
        train += t->n_train;
        test += t->n_test;
    }
    printf("%4s  %-32s %-16s %7s %8lld %8lld\n", "", "total", "", "", (long long)train,
           (long long)test);
    sotu_manifest_free(&m);
    return SOTU_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* Weights files                                                            */
/* ------------------------------------------------------------------------ */

typedef struct {
    int n;
    int64_t params;
    int failed;
} tensor_walk;

static herr_t visit_tensor(hid_t g, const char *name, const H5L_info_t *info, void *ctx)
{
    tensor_walk *w = ctx;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) {
        w->failed = 1;
        return 0;
    }
    hid_t sp = H5Dget_space(d);
    hsize_t dims[H5S_MAX_RANK];
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (nd >= 0) {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        int64_t count = 1;
        char shape[128];
        size_t len = (size_t)snprintf(shape, sizeof shape, "[");
        for (int k = 0; k < nd; k++) {
            count *= (int64_t)dims[k];
            if (len < sizeof shape)
                len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%llu", k ? "," : "",
                                        (unsigned long long)dims[k]);
        }
        if (len < sizeof shape)
            snprintf(shape + len, sizeof shape - len, "]");
        w->n++;
        w->params += count;
        if (verbose())
            printf("  %-40s %-20s %12lld\n", name, shape, (long long)count);
    } else {
        w->failed = 1;
    }
    if (sp >= 0)
        H5Sclose(sp);
    H5Dclose(d);
    return 0;
}

sotu_status sotu_inspect_checksums(const char *path)
{
    hid_t f;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    int n = 0, checked = 0;
    s = sotu_h5_verify_datasets(f, path, &n, &checked);
    H5Fclose(f);
    if (s != SOTU_OK)
        return s;
    if (checked == 0)
        printf("checksums   none (a file of an older sotu or of another tool): %d datasets "
               "read, not verified\n", n);
    else
        printf("checksums   %d of %d datasets carry a Fletcher32 checksum, all verified\n",
               checked, n);
    return SOTU_OK;
}

/* Prints the "arch" and "model" lines of a weights file. */
static sotu_status print_model(const char *path, bool *resnet)
{
    char arch[16];
    sotu_status s = sotu_weights_arch(path, arch, sizeof arch);
    if (s != SOTU_OK)
        return s;
    *resnet = !strcmp(arch, "resnet");
    if (*resnet) {
        resnet_config r;
        if ((s = resnet_weights_read_config(path, &r)) != SOTU_OK)
            return s;
        printf("weights     %s\n", path);
        printf("arch        resnet%d\n", r.depth);
        printf("model       image %d, channels %d, width %d, %s stem, clr %s, classes %d\n",
               r.image_size, r.channels, r.width,
               r.small_input ? "small-input (3x3/1, no max-pool)" : "torchvision (7x7/2, max-pool)",
               resnet_clr_name(r.clr), r.classes);
        return SOTU_OK;
    }
    sotu_vit_config c;
    if ((s = sotu_weights_read_config(path, &c)) != SOTU_OK)
        return s;
    printf("weights     %s\n", path);
    printf("arch        vit\n");
    printf("model       image %d, channels %d, patch %d, dim %d, depth %d, heads %d, "
           "mlp %d, classes %d\n",
           c.image_size, c.channels, c.patch, c.dim, c.depth, c.heads, c.mlp_hidden, c.classes);
    return SOTU_OK;
}

int sotu_inspect_weights(const char *path)
{
    bool resnet = false;
    sotu_status s = print_model(path, &resnet);
    if (s != SOTU_OK)
        return sotu_cmd_fail("inspect", s);
    hid_t f;
    if ((s = sotu_h5_open_read(path, &f)) != SOTU_OK)
        return sotu_cmd_fail("inspect", s);
    tensor_walk w = {0};
    hid_t g = H5Lexists(f, SOTU_WEIGHTS_GROUP, H5P_DEFAULT) > 0
                  ? H5Gopen2(f, SOTU_WEIGHTS_GROUP, H5P_DEFAULT)
                  : H5I_INVALID_HID;
    if (g < 0) {
        s = sotu_error(SOTU_ERR_DATA, "%s: group %s is missing", path, SOTU_WEIGHTS_GROUP);
    } else {
        hsize_t idx = 0;
        if (verbose())
            printf("\n  %-40s %-20s %12s\n", "tensor", "shape", "elements");
        if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, visit_tensor, &w) < 0 || w.failed)
            s = sotu_error(SOTU_ERR_DATA, "%s: group %s holds an unreadable tensor", path,
                           SOTU_WEIGHTS_GROUP);
        H5Gclose(g);
    }
    H5Fclose(f);
    if (s != SOTU_OK)
        return sotu_cmd_fail("inspect", s);
    printf("tensors     %d in %s, %lld %s (%.2f M)\n", w.n, SOTU_WEIGHTS_GROUP,
           (long long)w.params,
           resnet ? "values (parameters, running statistics, counters)" : "parameters",
           (double)w.params / 1e6);
    if ((s = sotu_inspect_checksums(path)) != SOTU_OK)
        return sotu_cmd_fail("inspect", s);
    return SOTU_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                 */
/* ------------------------------------------------------------------------ */

static void inspect_usage(FILE *f)
{
    fprintf(f, "usage: sotu [-v] inspect FILE\n\n"
               "Describes a sotu file:\n"
               "  task file (.h5, format sotu-task)     counts, shapes, classes, label\n"
               "                                        histogram, pixel mean\n"
               "  weights (.h5, format sotu-weights)    model config, tensors, parameters\n"
               "                                        (-v: every tensor's shape)\n"
               "  task manifest (.yaml, .yml)           the tasks in stream order\n"
               "  CLR module (.clrm)                    task, variant, tensors, bytes\n"
               "                                        (-v: every tensor)\n"
               "  CLR checkpoint (sotu-clr-checkpoint)  per-task accuracy, baselines, cost\n"
               "\nexit codes: 0 ok, 2 usage, 3 unknown or malformed file, 4 I/O error\n");
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int sotu_cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    bool help = false;
    int o;
    optind = 0;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (o != 'h') {
            inspect_usage(stderr);
            return SOTU_EXIT_USAGE;
        }
        help = true;
    }
    if (help && argc == 2) {
        inspect_usage(stdout);
        return SOTU_EXIT_OK;
    }
    if (help || optind != argc - 1) {
        inspect_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    const char *path = argv[optind];
    if (!sotu_file_exists(path))
        return sotu_cmd_fail("inspect", sotu_error(SOTU_ERR_IO, "%s: no such file", path));

    /* One branch per kind of file: by extension first, then by the root
     * "format" attribute of HDF5 files. */
    char format[64];
    if (has_suffix(path, ".yaml") || has_suffix(path, ".yml"))
        return sotu_inspect_manifest(path);
    if (has_suffix(path, ".sotud"))
        return sotu_inspect_delta(path);
    if (has_suffix(path, ".clrm"))
        return sotu_inspect_module(path);
    if (has_suffix(path, ".safetensors") || has_suffix(path, ".safetensors.index.json"))
        return sotu_inspect_safetensors(path);
    if (sotu_h5_file_format(path, format, sizeof format)) {
        if (!strcmp(format, SOTU_TASK_FORMAT))
            return sotu_inspect_task(path);
        if (!strcmp(format, "sotu-weights"))
            return sotu_inspect_weights(path);
        if (!strcmp(format, "sotu-checkpoint"))
            return sotu_inspect_checkpoint(path);
        if (!strcmp(format, SOTU_CLR_CHECKPOINT_FORMAT))
            return sotu_inspect_clr_checkpoint(path);
        return sotu_cmd_fail("inspect",
                             sotu_error(SOTU_ERR_DATA,
                                        "%s: HDF5 file of format '%s', which inspect does not "
                                        "know",
                                        path, format));
    }
    if (has_suffix(path, ".h5") || has_suffix(path, ".hdf5")) {
        /* Task files written by other tools may lack the format attribute. */
        hid_t f;
        sotu_status s = sotu_h5_open_read(path, &f);
        if (s != SOTU_OK)
            return sotu_cmd_fail("inspect", s);
        int looks_like_task = H5Lexists(f, "train", H5P_DEFAULT) > 0;
        H5Fclose(f);
        if (looks_like_task)
            return sotu_inspect_task(path);
        return sotu_cmd_fail("inspect",
                             sotu_error(SOTU_ERR_DATA,
                                        "%s: HDF5 file without a 'format' attribute or /train "
                                        "group; not a sotu file",
                                        path));
    }
    return sotu_cmd_fail("inspect",
                         sotu_error(SOTU_ERR_DATA,
                                    "%s: unknown kind of file (expected a .yaml manifest or an "
                                    "HDF5 file with format sotu-task or sotu-weights)",
                                    path));
}
