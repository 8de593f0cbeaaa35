/* `sotu predict CKPT --images H5 --out H5`: logits and predicted classes of
 * every image, from a checkpoint's merged model (optionally with one task's
 * head), a pretrained weights file (ViT or ResNet), or one task's model of a
 * CLR checkpoint (coordinator/clr/clr_checkpoint.h: --task is required, each
 * task has its own model).
 *
 * Input: an HDF5 file with /images uint8 [N, H, W, C] (or [N, H, W] for
 * one channel), or a task file (its --split, test by default).
 * Output (written atomically):
 *   /logits  float32 [N, K]
 *   /pred    int32 [N], argmax of each row (the first on ties)
 *   root attributes: format "sotu-predictions", model (CKPT), task ("" for
 *   the file's own head), images (the input path), split ("" for /images),
 *   and class_names [K] when the checkpoint records the task's class names.
 * A run checkpoint with task heads needs --task (or --pretrained-head for
 * /merged's own head, the pretrained backbone's); --out must not exist
 * (--force replaces it) and is never an input.
 * Images go through io/preprocess.h with the configuration's data.* keys
 * (defaults, --config FILE, --set overrides; for a CLR checkpoint without
 * --config, the run's configuration stored in it). */
#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"
#include "cli/cli.h"
#include "coordinator/clr/clr_checkpoint.h"
#include "cli/commands.h"
#include "cli/model_source.h"
#include "mpi/node.h"
#include "io/fsutil.h"
#include "io/h5util.h"
#include "io/preprocess.h"
#include "io/taskset.h"
#include "worker/resnet.h"
#include "io/resnet_io.h"
#include "worker/vit.h"

static void predict_usage(FILE *f)
{
    fprintf(f,
            "usage: sotu predict CKPT --images H5 --out H5 [--task T | --pretrained-head]\n"
            "                    [--split test|train] [--batch B] [--threads N] [--config FILE]\n"
            "                    [--set key=value] [--force]\n\n"
            "Runs the model of CKPT (a run checkpoint's /merged, a pretrained weights file, or\n"
            "one task's model of a CLR checkpoint) on every image and writes /logits float32\n"
            "[N, K] and /pred int32 [N] to --out (with the head's class_names when the\n"
            "checkpoint records them).\n\n"
            "  --images H5   /images uint8 [N, H, W, C], or a task file (see --split)\n"
            "  --task T      use task T's own head (name or index; checkpoints only). Required\n"
            "                for a run checkpoint with task heads (/merged's head is the\n"
            "                pretrained backbone's, which no task trained), and for a CLR\n"
            "                checkpoint (method clr): each task has its own model, the\n"
            "                frozen backbone with task T's CLR layers, BatchNorm and fc\n"
            "  --pretrained-head  run a run checkpoint with /merged's own head anyway\n"
            "  --force       replace --out if it exists (never an input)\n"
            "  --split S     the split of a task file: test (default) or train\n"
            "  --batch B     images per forward pass (default 64)\n"
            "  --threads N   threads (default: train.threads, else all cores)\n"
            "  --config F    configuration whose data.* keys set the preprocessing:\n"
            "                data.normalize scalar|inception|imagenet, data.mean, data.std,\n"
            "                data.crop_pct (see io/preprocess.h); a CLR checkpoint's own\n"
            "                configuration when --config is not given\n"
            "\nexit codes: 0 ok, 2 usage (also: --out exists, or is an input), 3 bad input\n"
            "data, 4 I/O error\n");
}

typedef struct {
    uint8_t *pixels; /* [n, H, W, C] */
    int32_t n;
    int H, W, C;
} image_set;

static sotu_status read_plain_images(const char *path, image_set *im)
{
    hid_t f, d = H5I_INVALID_HID, sp = H5I_INVALID_HID, ty = H5I_INVALID_HID;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    if (H5Lexists(f, "images", H5P_DEFAULT) <= 0 ||
        (d = H5Dopen2(f, "images", H5P_DEFAULT)) < 0) {
        s = sotu_error(SOTU_ERR_DATA,
                       "%s: no dataset /images (expected uint8 [N, H, W, C], or a task file "
                       "with /train and /test)",
                       path);
        goto cleanup;
    }
    sp = H5Dget_space(d);
    ty = H5Dget_type(d);
    hsize_t dims[H5S_MAX_RANK];
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (ty < 0 || H5Tget_class(ty) != H5T_INTEGER || H5Tget_size(ty) != 1 ||
        H5Tget_sign(ty) != H5T_SGN_NONE) {
        s = sotu_error(SOTU_ERR_DATA, "%s: /images is not uint8", path);
        goto cleanup;
    }
    if (rank != 3 && rank != 4) {
        s = sotu_error(SOTU_ERR_DATA, "%s: /images has rank %d, expected [N, H, W, C] or "
                       "[N, H, W]", path, rank);
        goto cleanup;
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    hsize_t C = rank == 4 ? dims[3] : 1;
    if (dims[0] < 1 || dims[0] > INT32_MAX || dims[1] < 1 || dims[1] > SOTU_TASK_MAX_SIDE ||
        dims[2] < 1 || dims[2] > SOTU_TASK_MAX_SIDE || C < 1 || C > SOTU_TASK_MAX_CHANNELS) {
        s = sotu_error(SOTU_ERR_DATA,
                       "%s: /images has shape [%llu, %llu, %llu, %llu]; expected N >= 1, sides "
                       "1..%d, channels 1..%d",
                       path, (unsigned long long)dims[0], (unsigned long long)dims[1],
                       (unsigned long long)dims[2], (unsigned long long)C, SOTU_TASK_MAX_SIDE,
                       SOTU_TASK_MAX_CHANNELS);
        goto cleanup;
    }
    size_t bytes = (size_t)dims[0] * dims[1] * dims[2] * C;
    if (bytes > SOTU_TASK_MAX_BYTES || !(im->pixels = malloc(bytes))) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: /images needs %zu bytes", path, bytes);
        goto cleanup;
    }
    if (H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, im->pixels) < 0) {
        s = sotu_error(SOTU_ERR_IO, "%s: cannot read /images", path);
        goto cleanup;
    }
    im->n = (int32_t)dims[0];
    im->H = (int)dims[1];
    im->W = (int)dims[2];
    im->C = (int)C;
cleanup:
    if (ty >= 0)
        H5Tclose(ty);
    if (sp >= 0)
        H5Sclose(sp);
    if (d >= 0)
        H5Dclose(d);
    H5Fclose(f);
    return s;
}

static sotu_status read_images(const char *path, const char *split, image_set *im)
{
    hid_t f;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    int is_task = H5Lexists(f, "train", H5P_DEFAULT) > 0 && H5Lexists(f, "images", H5P_DEFAULT) <= 0;
    H5Fclose(f);
    if (!is_task) {
        if (split)
            return sotu_error(SOTU_ERR_USAGE, "%s: --split applies to task files; this file "
                              "has /images", path);
        return read_plain_images(path, im);
    }
    int train = split && !strcmp(split, "train");
    sotu_taskset t;
    if ((s = sotu_taskset_read(path, &t)) != SOTU_OK)
        return s;
    im->n = train ? t.n_train : t.n_test;
    im->H = t.height;
    im->W = t.width;
    im->C = t.channels;
    im->pixels = train ? t.train_images : t.test_images;
    if (train)
        t.train_images = NULL;
    else
        t.test_images = NULL;
    sotu_taskset_free(&t);
    if (im->n < 1)
        return sotu_error(SOTU_ERR_DATA, "%s: the %s split has no images", path,
                          train ? "train" : "test");
    return SOTU_OK;
}

static sotu_status write_dataset(hid_t f, const char *name, hid_t type, int rank,
                                 const hsize_t *dims, const void *data, const char *path)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = sotu_h5_dcpl_checked(rank, dims, H5Tget_size(type));
    hid_t d = sp >= 0 && dcpl >= 0 ? H5Dcreate2(f, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)
                                   : H5I_INVALID_HID;
    int ok = d >= 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    char why[256];
    sotu_status s = ok ? SOTU_OK
                       : sotu_error(SOTU_ERR_IO, "%s: cannot write %s: %s", path, name,
                                    sotu_h5_reason(why, sizeof why));
    if (d >= 0)
        H5Dclose(d);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (sp >= 0)
        H5Sclose(sp);
    return s;
}

typedef struct {
    const float *logits; /* [n, K] */
    const int32_t *pred; /* [n] */
    int32_t n;
    int K;
    const char *const (*attrs)[2]; /* [4] name, value */
    const char *const *class_names; /* [K] or NULL */
} predictions;

static sotu_status fill_predictions(hid_t f, const void *ctx, const char *path)
{
    const predictions *p = ctx;
    hsize_t dl[2] = {(hsize_t)p->n, (hsize_t)p->K}, dp[1] = {(hsize_t)p->n};
    sotu_status s = sotu_h5_write_str_attr(f, "format", "sotu-predictions", path);
    for (int i = 0; i < 4 && s == SOTU_OK; i++)
        s = sotu_h5_write_str_attr(f, p->attrs[i][0], p->attrs[i][1], path);
    if (s == SOTU_OK && p->class_names)
        s = sotu_h5_write_str_array_attr(f, "class_names", p->class_names, p->K, path);
    if (s == SOTU_OK)
        s = write_dataset(f, "logits", H5T_NATIVE_FLOAT, 2, dl, p->logits, path);
    if (s == SOTU_OK)
        s = write_dataset(f, "pred", H5T_NATIVE_INT32, 1, dp, p->pred, path);
    return s;
}

static sotu_status write_predictions(const char *path, const float *logits, const int32_t *pred,
                                     int32_t n, int K, const char *const attrs[4][2],
                                     const char *const *class_names)
{
    predictions p = {logits, pred, n, K, attrs, class_names};
    return sotu_h5_write_file(path, fill_predictions, &p);
}

/* The model being run: a ViT or a ResNet, behind one forward. */
typedef struct {
    bool resnet;
    bool clr;        /* one task's model of a CLR checkpoint */
    char clr_task[SOTU_TASK_NAME_MAX];
    vit_model vit;
    resnet_model rn;
    sotu_model_head head; /* the ViT's head: task, class names */
    int S, C, K; /* input side and channels, classes */
} predict_net;

static sotu_status net_load(const char *path, const char *task, bool pretrained_head, int batch,
                            predict_net *n)
{
    memset(n, 0, sizeof *n);
    char arch[16];
    sotu_status s = sotu_file_exists(path) ? sotu_weights_arch(path, arch, sizeof arch)
                                           : sotu_error(SOTU_ERR_IO, "%s: no such file", path);
    if (s != SOTU_OK)
        return s;
    n->resnet = !strcmp(arch, "resnet");
    if (clr_checkpoint_detect(path)) {
        if (!task)
            return sotu_error(SOTU_ERR_USAGE, "%s is a CLR checkpoint (method clr): it needs "
                              "--task T (a task name or index), each task has its own model",
                              path);
        if ((s = clr_checkpoint_load_task(path, task, batch, &n->rn, n->clr_task)) != SOTU_OK)
            return s;
        n->resnet = n->clr = true;
        n->S = n->rn.cfg.image_size;
        n->C = n->rn.cfg.channels;
        n->K = n->rn.cfg.classes;
    } else if (n->resnet) {
        if ((s = sotu_model_load_resnet(path, task, batch, &n->rn)) != SOTU_OK)
            return s;
        n->S = n->rn.cfg.image_size;
        n->C = n->rn.cfg.channels;
        n->K = n->rn.cfg.classes;
    } else {
        if ((s = sotu_model_load(path, task, pretrained_head, batch, &n->vit, &n->head)) !=
            SOTU_OK)
            return s;
        n->S = n->vit.cfg.image_size;
        n->C = n->vit.cfg.channels;
        n->K = n->vit.cfg.classes;
    }
    return SOTU_OK;
}

/* Logits [B, K] of B preprocessed images. */
static const float *net_forward(predict_net *n, const float *x, int B)
{
    if (n->resnet) {
        resnet_forward(&n->rn, x, NULL, B);
        return n->rn.logits;
    }
    vit_forward(&n->vit, x, NULL, B);
    return n->vit.logits;
}

static void net_free(predict_net *n)
{
    vit_free(&n->vit);
    resnet_free(&n->rn);
    sotu_model_head_free(&n->head);
}

static sotu_status predict(const char *ckpt, const char *images_path, const char *out,
                           const char *task, bool pretrained_head, const char *split, int batch,
                           const sotu_config *cfg)
{
    image_set im = {0};
    predict_net m = {0};
    float *x = NULL, *logits = NULL;
    int32_t *pred = NULL;
    const char **names = NULL;
    sotu_status s = read_images(images_path, split, &im);
    if (s != SOTU_OK)
        goto cleanup;
    if (batch > im.n)
        batch = im.n;
    if ((s = net_load(ckpt, task, pretrained_head, batch, &m)) != SOTU_OK)
        goto cleanup;
    sotu_preprocess pp;
    if ((s = sotu_preprocess_from_config(cfg, m.S, m.C, &pp)) != SOTU_OK)
        goto cleanup;
    int S = m.S, K = m.K;
    size_t in_img = (size_t)im.H * im.W * im.C, x_img = (size_t)m.C * S * S;
    x = malloc(sizeof(float) * x_img * (size_t)batch);
    logits = malloc(sizeof(float) * (size_t)im.n * K);
    pred = malloc(sizeof(int32_t) * (size_t)im.n);
    if (!x || !logits || !pred) {
        s = sotu_error(SOTU_ERR_NOMEM, "predict: buffers for %d images of %d classes", (int)im.n,
                       K);
        goto cleanup;
    }
    sotu_progress prog;
    sotu_progress_begin(&prog, "predict", "images", im.n);
    for (int32_t i = 0; i < im.n && s == SOTU_OK; i += batch) {
        int B = im.n - i < batch ? (int)(im.n - i) : batch;
        s = sotu_preprocess_images(&pp, im.pixels + in_img * (size_t)i, B, im.H, im.W, im.C, x);
        if (s != SOTU_OK) {
            s = sotu_error_context(s, "%s", images_path);
            break;
        }
        memcpy(logits + (size_t)i * K, net_forward(&m, x, B), sizeof(float) * (size_t)B * K);
        sotu_progress_update(&prog, i + B, NULL);
    }
    sotu_progress_end(&prog);
    if (s != SOTU_OK)
        goto cleanup;
    for (int32_t i = 0; i < im.n; i++) {
        const float *row = logits + (size_t)i * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (row[k] > row[best])
                best = k;
        pred[i] = best;
        if (!isfinite(row[best])) {
            s = sotu_error(SOTU_ERR_NUMERIC, "predict: image %d has a non-finite logit", (int)i);
            goto cleanup;
        }
    }
    const char *attrs[4][2] = {{"model", ckpt},
                               {"task", m.clr ? m.clr_task : m.head.task[0] ? m.head.task
                                                                           : task ? task : ""},
                               {"images", images_path},
                               {"split", split ? split : ""}};
    if (m.head.class_names && m.head.classes == K &&
        !(names = malloc(sizeof *names * (size_t)K))) {
        s = sotu_error(SOTU_ERR_NOMEM, "predict: %d class names", K);
        goto cleanup;
    }
    for (int k = 0; names && k < K; k++)
        names[k] = m.head.class_names[k];
    if ((s = write_predictions(out, logits, pred, im.n, K, attrs, names)) != SOTU_OK)
        goto cleanup;
    printf("predicted %d images with %s%s%s: %d classes -> %s\n", (int)im.n, ckpt,
           m.clr ? ", CLR model of task " : task ? ", head of task " : "",
           m.clr ? m.clr_task : task ? task : "", K, out);
cleanup:
    free(names);
    free(x);
    free(logits);
    free(pred);
    free(im.pixels);
    net_free(&m);
    return s;
}

int sotu_cmd_predict(int argc, char **argv)
{
    enum { O_IMAGES = 0x2000, O_OUT, O_TASK, O_SPLIT, O_BATCH, O_THREADS, O_CONFIG, O_PRETRAINED,
           O_FORCE };
    static const struct option opts[] = {SOTU_CLI_OPTIONS,
                                         {"images", required_argument, NULL, O_IMAGES},
                                         {"out", required_argument, NULL, O_OUT},
                                         {"task", required_argument, NULL, O_TASK},
                                         {"split", required_argument, NULL, O_SPLIT},
                                         {"batch", required_argument, NULL, O_BATCH},
                                         {"threads", required_argument, NULL, O_THREADS},
                                         {"config", required_argument, NULL, O_CONFIG},
                                         {"pretrained-head", no_argument, NULL, O_PRETRAINED},
                                         {"force", no_argument, NULL, O_FORCE},
                                         {NULL, 0, NULL, 0}};
    sotu_cli_args a = {0};
    const char *images = NULL, *out = NULL, *task = NULL, *split = NULL, *config = NULL;
    int batch = 64, threads = 0, o;
    bool pretrained_head = false, force = false;
    sotu_status s = SOTU_OK;
    optind = 0;
    while ((o = getopt_long(argc, argv, SOTU_CLI_SHORT, opts, NULL)) != -1 && s == SOTU_OK) {
        int r = sotu_cli_option(&a, "predict", o, optarg);
        if (r < 0)
            return SOTU_EXIT_USAGE;
        if (r > 0)
            continue;
        switch (o) {
        case O_IMAGES: images = optarg; break;
        case O_OUT: out = optarg; break;
        case O_TASK: task = optarg; break;
        case O_SPLIT: split = optarg; break;
        case O_CONFIG: config = optarg; break;
        case O_PRETRAINED: pretrained_head = true; break;
        case O_FORCE: force = true; break;
        case O_BATCH: s = sotu_cli_int("--batch", optarg, 1, 1 << 16, &batch); break;
        case O_THREADS: s = sotu_cli_int("--threads", optarg, 1, 4096, &threads); break;
        default:
            predict_usage(stderr);
            return SOTU_EXIT_USAGE;
        }
    }
    if (a.help) {
        predict_usage(stdout);
        return SOTU_EXIT_OK;
    }
    if (s == SOTU_OK && optind != argc - 1) {
        predict_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    if (s == SOTU_OK && (!images || !out))
        s = sotu_error(SOTU_ERR_USAGE, "--images H5 and --out H5 are required (see --help)");
    if (s == SOTU_OK && split && strcmp(split, "test") && strcmp(split, "train"))
        s = sotu_error(SOTU_ERR_USAGE, "--split '%s': expected test or train", split);
    if (s == SOTU_OK) {
        const char *inputs[] = {argv[optind], images, config};
        s = sotu_output_check(out, inputs, 3, force);
    }
    if (s != SOTU_OK)
        return sotu_cmd_fail("predict", s);
    sotu_config cfg;
    int rc = 0;
    if (!config && clr_checkpoint_detect(argv[optind])) {
        if ((s = clr_checkpoint_read_config(argv[optind], a.sets, a.n_sets, &cfg)) != SOTU_OK)
            return sotu_cmd_fail("predict", s);
    } else if ((rc = sotu_cli_config("predict", config, a.sets, a.n_sets, &cfg)) != 0) {
        return rc;
    }
    if (a.print_config) {
        sotu_config_print(&cfg, stdout);
        return SOTU_EXIT_OK;
    }
    s = sotu_node_setup(threads, cfg.train.threads, NULL);
    if (s == SOTU_OK)
        s = predict(argv[optind], images, out, task, pretrained_head, split, batch, &cfg);
    return s == SOTU_OK ? SOTU_EXIT_OK : sotu_cmd_fail("predict", s);
}
