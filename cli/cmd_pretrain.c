/* `sotu pretrain CONFIG [--set ...] [--out PATH]`: supervised pretraining of
 * the backbone of model.* (model.arch: the small ViT or a ResNet-18/34) on
 * the upright Fashion-MNIST training split, evaluated on its test split every
 * epoch; the weights file is written atomically after every epoch, so a crash
 * loses at most one. Both models share the data, the schedule, the loop
 * (worker/finetune.h) and the report; only building the model and writing
 * its file differ. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/status.h"
#include "common/threads.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "mpi/node.h"
#include "io/fsutil.h"
#include "io/idx.h"
#include "io/taskset.h"
#include "io/weights.h"
#include "worker/finetune.h"
#include "worker/resnet.h"
#include "worker/vit.h"

static const char *const fmnist_classes[10] = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                               "sandal", "shirt", "sneaker", "bag", "boot"};

static void pretrain_usage(FILE *f)
{
    fprintf(f,
            "usage: sotu pretrain [CONFIG] [--set key=value ...] [--out PATH] [--init PATH]\n"
            "                     [--force] [--print-config]\n"
            "Supervised pretraining of the backbone of model.* on the Fashion-MNIST training\n"
            "split read from pretrain.data_dir ({train,t10k}-{images-idx3,labels-idx1}-ubyte.gz):\n"
            "model.arch vit (image_size, channels, patch, dim, depth, heads, mlp_ratio) or\n"
            "resnet18 | resnet34 (width, small_input; no CLR layers), with\n"
            "pretrain.{epochs,batch_size,lr,warmup_steps} and the other train.* settings.\n"
            "Evaluates on the 10k test split after every epoch and writes the weights\n"
            "(group /weights, head of 10 classes) to --out or pretrain.out after each epoch.\n"
            "--init PATH starts from the weights in PATH (same architecture) instead of a\n"
            "random initialisation: more epochs on top of an earlier run (into a new --out).\n"
            "An existing output file is refused unless --force; the output is never --init.\n"
            "\nexit codes: 0 ok, 2 usage/config (also: the output exists, or is --init),\n"
            "3 bad input data, 4 I/O error\n");
}

/* Reads one IDX images/labels pair of Fashion-MNIST into the uint8 NHWC and
 * int32 arrays of a task set. */
static sotu_status read_split(const char *dir, const char *prefix, uint8_t **images,
                              int32_t **labels, int32_t *n, int *rows, int *cols)
{
    char ipath[SOTU_PATH_MAX + 64], lpath[SOTU_PATH_MAX + 64], name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", prefix);
    sotu_path_join(ipath, sizeof ipath, dir, name);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", prefix);
    sotu_path_join(lpath, sizeof lpath, dir, name);
    sotu_idx im = {0}, lb = {0};
    sotu_status st = sotu_idx_read(ipath, SOTU_IDX_MAGIC_IMAGES, &im);
    if (st != SOTU_OK)
        goto cleanup;
    st = sotu_idx_read(lpath, SOTU_IDX_MAGIC_LABELS, &lb);
    if (st != SOTU_OK)
        goto cleanup;
    if (lb.n != im.n) {
        st = sotu_error(SOTU_ERR_DATA, "%s: %d labels for %d images in %s", lpath, lb.n, im.n,
                        ipath);
        goto cleanup;
    }
    *labels = malloc(sizeof(int32_t) * (size_t)lb.n);
    if (!*labels) {
        st = sotu_error(SOTU_ERR_NOMEM, "%s: %d labels", lpath, lb.n);
        goto cleanup;
    }
    for (int32_t i = 0; i < lb.n; i++) {
        if (lb.data[i] >= 10) {
            st = sotu_error(SOTU_ERR_DATA, "%s: label %d of item %d, expected 0..9", lpath,
                            lb.data[i], i);
            goto cleanup;
        }
        (*labels)[i] = lb.data[i];
    }
    *images = im.data; /* [n, rows, cols] is NHWC with C = 1 */
    im.data = NULL;
    *n = im.n;
    *rows = im.rows;
    *cols = im.cols;
cleanup:
    sotu_idx_free(&im);
    sotu_idx_free(&lb);
    return st;
}

static sotu_status read_fmnist(const char *dir, sotu_taskset *t)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "fashion-mnist");
    t->classes = 10;
    t->channels = 1;
    int r2, c2;
    sotu_status st = read_split(dir, "train", &t->train_images, &t->train_labels, &t->n_train,
                                &t->height, &t->width);
    if (st == SOTU_OK)
        st = read_split(dir, "t10k", &t->test_images, &t->test_labels, &t->n_test, &r2, &c2);
    if (st == SOTU_OK && (r2 != t->height || c2 != t->width))
        st = sotu_error(SOTU_ERR_DATA, "%s: test images are %dx%d, training images %dx%d", dir,
                        r2, c2, t->height, t->width);
    if (st == SOTU_OK) {
        t->class_names = malloc(sizeof *t->class_names * 10);
        if (!t->class_names)
            st = sotu_error(SOTU_ERR_NOMEM, "class names");
        else
            for (int k = 0; k < 10; k++)
                snprintf(t->class_names[k], SOTU_TASK_NAME_MAX, "%s", fmnist_classes[k]);
    }
    if (st != SOTU_OK)
        sotu_taskset_free(t);
    return st;
}

typedef struct {
    const char *out;
} pretrain_ctx;

static void log_written(const pretrain_ctx *ctx, const sotu_finetune_epoch *e)
{
    SOTU_INFO("pretrain: wrote %s after epoch %d (test acc %.2f%%)", ctx->out, e->epoch,
              100.0 * e->test_acc);
}

static sotu_status vit_epoch(void *vctx, const vit_model *m, const sotu_finetune_epoch *e)
{
    pretrain_ctx *ctx = vctx;
    sotu_status st = sotu_weights_write(ctx->out, &m->cfg, &m->table, m->params);
    if (st == SOTU_OK)
        log_written(ctx, e);
    return st;
}

static sotu_status resnet_epoch(void *vctx, const resnet_model *m, const sotu_finetune_epoch *e)
{
    pretrain_ctx *ctx = vctx;
    sotu_status st = resnet_weights_write(ctx->out, m);
    if (st == SOTU_OK)
        log_written(ctx, e);
    return st;
}

/* Builds the ViT of model.* (random, or from --init), logs it and runs the loop. */
static sotu_status pretrain_vit(const sotu_config *cfg, const sotu_taskset *t, const char *init,
                                sotu_finetune_opts *fo, sotu_finetune_result *res)
{
    vit_model m = {0};
    vit_config vc = {.image_size = cfg->model.image_size, .channels = cfg->model.channels,
                     .patch = cfg->model.patch, .dim = cfg->model.dim, .depth = cfg->model.depth,
                     .heads = cfg->model.heads,
                     .mlp_hidden = cfg->model.mlp_ratio * cfg->model.dim, .classes = 10};
    sotu_status st = vit_init(&m, &vc, cfg->train.batch_size);
    if (st != SOTU_OK)
        goto cleanup;
    if (init) {
        vit_config fc;
        st = sotu_weights_read_config(init, &fc);
        if (st != SOTU_OK)
            goto cleanup;
        if (memcmp(&fc, &vc, sizeof fc)) {
            st = sotu_error(SOTU_ERR_CONFIG, "--init %s: its architecture (patch %d dim %d depth "
                            "%d heads %d) differs from model.* (patch %d dim %d depth %d heads %d)",
                            init, fc.patch, fc.dim, fc.depth, fc.heads, vc.patch, vc.dim,
                            vc.depth, vc.heads);
            goto cleanup;
        }
        st = sotu_weights_read_into(init, SOTU_WEIGHTS_GROUP, &m.table, m.params, 0);
        if (st != SOTU_OK)
            goto cleanup;
    } else {
        vit_init_random(&m, cfg->train.seed);
    }
    SOTU_INFO("pretrain: ViT %dx%dx%d patch %d dim %d depth %d heads %d, %zu parameters",
              vc.image_size, vc.image_size, vc.channels, vc.patch, vc.dim, vc.depth, vc.heads,
              m.num_params);
    fo->on_epoch = vit_epoch;
    st = sotu_finetune_run(&m, t, cfg, fo, res);
cleanup:
    vit_free(&m);
    return st;
}

/* A pretrained file of the other architecture at the output path is somebody's
 * finished backbone (the default pretrain.out is the ViT's): say so, rather
 * than only that the file exists. */
static bool refuses_other_arch(const char *out, const char *model_arch)
{
    char have[16];
    if (access(out, F_OK) != 0 || sotu_weights_arch(out, have, sizeof have) != SOTU_OK)
        return false;
    bool want_vit = !strcmp(model_arch, "vit");
    if (want_vit == !strcmp(have, "vit"))
        return false;
    sotu_error(SOTU_ERR_USAGE, "%s holds a pretrained %s model and model.arch is %s: give this "
               "model its own file with --out or pretrain.out (or pass --force)", out, have,
               model_arch);
    return true;
}

/* The same for a ResNet of model.arch/width/small_input without CLR layers. */
static sotu_status pretrain_resnet(const sotu_config *cfg, const sotu_taskset *t,
                                   const char *init, sotu_finetune_opts *fo,
                                   sotu_finetune_result *res)
{
    resnet_model m = {0};
    resnet_config rc = {.depth = !strcmp(cfg->model.arch, "resnet34") ? 34 : 18,
                        .width = cfg->model.width, .channels = cfg->model.channels,
                        .image_size = cfg->model.image_size, .classes = 10,
                        .small_input = cfg->model.small_input, .clr = RESNET_CLR_NONE};
    sotu_status st = resnet_init(&m, &rc, cfg->train.batch_size);
    if (st != SOTU_OK)
        goto cleanup;
    if (init) {
        resnet_config fc;
        st = resnet_weights_read_config(init, &fc);
        if (st != SOTU_OK)
            goto cleanup;
        if (fc.depth != rc.depth || fc.width != rc.width || fc.small_input != rc.small_input ||
            fc.channels != rc.channels || fc.classes != rc.classes) {
            st = sotu_error(SOTU_ERR_CONFIG, "--init %s: its architecture (resnet%d width %d "
                            "small_input %d, %d classes) differs from model.* (resnet%d width %d "
                            "small_input %d, 10 classes)", init, fc.depth, fc.width,
                            fc.small_input, fc.classes, rc.depth, rc.width, rc.small_input);
            goto cleanup;
        }
        st = resnet_weights_read(init, SOTU_WEIGHTS_GROUP, &m);
        if (st != SOTU_OK)
            goto cleanup;
    } else {
        resnet_init_random(&m, cfg->train.seed);
    }
    SOTU_INFO("pretrain: ResNet-%d %dx%dx%d width %d%s, %zu parameters", rc.depth,
              rc.image_size, rc.image_size, rc.channels, rc.width,
              rc.small_input ? " small_input" : "", m.num_params);
    fo->on_epoch_resnet = resnet_epoch;
    st = sotu_finetune_run_resnet(&m, t, cfg, fo, res);
cleanup:
    resnet_free(&m);
    return st;
}

int sotu_cmd_pretrain(int argc, char **argv)
{
    static const struct option opts[] = {
        SOTU_CLI_OPTIONS, {"out", required_argument, NULL, 'o'},
        {"init", required_argument, NULL, 'i'}, {"force", no_argument, NULL, 'F'},
        {NULL, 0, NULL, 0}};
    sotu_cli_args a = {0};
    const char *out = NULL, *init = NULL;
    bool force = false;
    int o;
    optind = 0;
    while ((o = getopt_long(argc, argv, SOTU_CLI_SHORT "o:", opts, NULL)) != -1) {
        int r = sotu_cli_option(&a, "pretrain", o, optarg);
        if (r < 0)
            return SOTU_EXIT_USAGE;
        if (r > 0)
            continue;
        if (o == 'o') {
            out = optarg;
        } else if (o == 'i') {
            init = optarg;
        } else if (o == 'F') {
            force = true;
        } else {
            pretrain_usage(stderr);
            return SOTU_EXIT_USAGE;
        }
    }
    if (a.help) {
        pretrain_usage(stdout);
        return SOTU_EXIT_OK;
    }
    if (sotu_cli_positionals("pretrain", argc, argv, optind, 0, 1, "CONFIG file")) {
        pretrain_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    sotu_config cfg;
    int rc = sotu_cli_config("pretrain", optind < argc ? argv[optind] : NULL, a.sets, a.n_sets,
                             &cfg);
    if (rc)
        return rc;
    if (a.print_config) {
        sotu_config_print(&cfg, stdout);
        return SOTU_EXIT_OK;
    }
    if (!out)
        out = cfg.pretrain.out;

    sotu_taskset t = {0};
    char dir[SOTU_PATH_MAX];
    const char *inputs[] = {init, optind < argc ? argv[optind] : NULL};
    sotu_status ost = sotu_output_check(out, inputs, 2, true);
    if (ost == SOTU_OK && !force && refuses_other_arch(out, cfg.model.arch))
        ost = SOTU_ERR_USAGE;
    if (ost == SOTU_OK)
        ost = sotu_output_check(out, NULL, 0, force);
    if (ost != SOTU_OK)
        return sotu_cmd_fail("pretrain", ost);
    sotu_status st = sotu_node_setup(0, cfg.train.threads, NULL);
    if (st == SOTU_OK)
        st = read_fmnist(cfg.pretrain.data_dir, &t);
    if (st != SOTU_OK)
        goto cleanup;
    if (cfg.model.image_size != t.height || t.height != t.width || cfg.model.channels != 1) {
        st = sotu_error(SOTU_ERR_CONFIG, "model.image_size %d, model.channels %d: the data in %s "
                        "is %dx%d with 1 channel", cfg.model.image_size, cfg.model.channels,
                        cfg.pretrain.data_dir, t.height, t.width);
        goto cleanup;
    }
    cfg.train.epochs = cfg.pretrain.epochs;
    cfg.train.head_epochs = 0; /* no linear probe: pretraining trains everything */
    cfg.train.batch_size = cfg.pretrain.batch_size;
    cfg.train.lr = cfg.pretrain.lr;
    cfg.train.warmup_steps = cfg.pretrain.warmup_steps;
    snprintf(cfg.train.tune, sizeof cfg.train.tune, "all");
    sotu_path_dirname(dir, sizeof dir, out);
    st = sotu_mkdirs(dir);
    if (st != SOTU_OK)
        goto cleanup;

    SOTU_INFO("pretrain: %s; %d train / %d test images, %d epochs, batch %d, lr %g, %d threads",
              cfg.model.arch, t.n_train, t.n_test, cfg.train.epochs, cfg.train.batch_size,
              cfg.train.lr, sotu_threads_get());
    pretrain_ctx ctx = {.out = out};
    sotu_finetune_opts fo = sotu_finetune_opts_default();
    fo.label = "pretrain";
    fo.eval_every_epoch = true;
    fo.ctx = &ctx;
    sotu_finetune_result res;
    st = !strcmp(cfg.model.arch, "vit") ? pretrain_vit(&cfg, &t, init, &fo, &res)
                                        : pretrain_resnet(&cfg, &t, init, &fo, &res);
    if (st != SOTU_OK)
        goto cleanup;
    printf("pretrain: %s test_acc %.4f train_loss %.4f epochs %d steps %lld seconds %.1f\n", out,
           res.test_acc, res.train_loss, res.epochs, (long long)res.steps, res.seconds);
    if (res.test_acc < 0.88)
        SOTU_WARN("pretrain: test accuracy %.2f%% is below the 88%% the quick start expects; "
                  "raise pretrain.epochs", 100.0 * res.test_acc);

cleanup:
    rc = st == SOTU_OK ? SOTU_EXIT_OK : sotu_cmd_fail("pretrain", st);
    sotu_taskset_free(&t);
    return rc;
}
