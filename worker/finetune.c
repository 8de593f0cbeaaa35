#include "worker/finetune.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/rng.h"
#include "io/preprocess.h"
#include "worker/optim.h"

/* ------------------------------------------------------------------------ */
/* Batches: uint8 NHWC -> normalised float NCHW, with crop and flip          */
/* ------------------------------------------------------------------------ */

static void pixel_table(float lut[256], float mean, float std)
{
    for (int v = 0; v < 256; v++)
        lut[v] = ((float)v / 255.0f - mean) / std;
}

/* One lookup table per channel (channels past the third reuse the first). */
typedef struct {
    float lut[3][256];
} pixel_tables;

static void pixel_tables_scalar(pixel_tables *pt, float mean, float std)
{
    for (int c = 0; c < 3; c++)
        pixel_table(pt->lut[c], mean, std);
}

/* The tables of cfg's data.normalize / data.mean / data.std (io/preprocess.h),
 * so a model imported with ImageNet statistics trains and evaluates with them. */
static sotu_status pixel_tables_from_config(pixel_tables *pt, const sotu_config *cfg, int size,
                                            int C)
{
    sotu_preprocess p;
    sotu_status st = sotu_preprocess_from_config(cfg, size, C, &p);
    if (st != SOTU_OK)
        return st;
    for (int c = 0; c < 3; c++)
        pixel_table(pt->lut[c], p.mean[c], p.std[c]);
    return SOTU_OK;
}

/* One image src [H, W, C] -> dst [C, H, W]; the output pixel (y, x) reads
 * source (y + dy, x' + dx) with x' = W-1-x when flipped, and pixel value 0
 * outside the image (the zero padding of a random crop). */
static void image_convert(float *dst, const uint8_t *src, int H, int W, int C, int dy, int dx,
                          bool flip, const pixel_tables *pt)
{
    for (int c = 0; c < C; c++) {
        const float *lut = pt->lut[c < 3 ? c : 0];
        for (int y = 0; y < H; y++) {
            float *row = dst + ((size_t)c * H + y) * W;
            int sy = y + dy;
            for (int x = 0; x < W; x++) {
                int sx = (flip ? W - 1 - x : x) + dx;
                uint8_t v = 0;
                if (sy >= 0 && sy < H && sx >= 0 && sx < W)
                    v = src[((size_t)sy * W + sx) * C + c];
                row[x] = lut[v];
            }
        }
    }
}

static void convert_all(float *dst, const uint8_t *src, int n, int H, int W, int C,
                        const pixel_tables *pt)
{
    size_t img = (size_t)H * W * C;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        image_convert(dst + img * i, src + img * i, H, W, C, 0, 0, false, pt);
}

void sotu_finetune_to_float(float *dst, const uint8_t *src, int n, int H, int W, int C,
                            float mean, float std)
{
    pixel_tables pt;
    pixel_tables_scalar(&pt, mean, std);
    convert_all(dst, src, n, H, W, C, &pt);
}

typedef struct {
    int dy, dx;
    bool flip;
} augment_draw;

/* Draws are taken serially in batch order so the result does not depend on
 * the thread count; the conversion itself runs in parallel. */
static void batch_build(float *dst, int32_t *labels, const sotu_taskset *t, const int32_t *order,
                        int B, const sotu_config *cfg, sotu_rng *aug, augment_draw *draws,
                        const pixel_tables *pt)
{
    int pad = cfg->train.augment_pad;
    for (int b = 0; b < B; b++) {
        draws[b].dy = pad ? (int)sotu_rng_below(aug, (uint64_t)(2 * pad + 1)) - pad : 0;
        draws[b].dx = pad ? (int)sotu_rng_below(aug, (uint64_t)(2 * pad + 1)) - pad : 0;
        draws[b].flip = cfg->train.augment_flip && (sotu_rng_u32(aug) & 1u);
        labels[b] = t->train_labels[order[b]];
    }
    int H = t->height, W = t->width, C = t->channels;
    size_t img = (size_t)H * W * C;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        image_convert(dst + img * b, t->train_images + img * order[b], H, W, C, draws[b].dy,
                      draws[b].dx, draws[b].flip, pt);
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* ------------------------------------------------------------------------ */
/* The model as the loop sees it: the ViT and the ResNet behind one adapter  */
/* ------------------------------------------------------------------------ */

typedef struct {
    void *model;
    const sotu_tensor_table *table;
    float *params, *grads;
    bool **trainable;          /* the model's field (set_trainable may rewrite it) */
    int image_size, channels, classes, batch_cap, feature_dim;
    int min_train_batch;       /* smaller training batches are skipped (BatchNorm needs 2) */
    float **logits, **features;
    float *label_smoothing;
    bool *training;            /* BatchNorm mode, NULL for a model without one */
    sotu_status (*set_trainable)(void *model, const char *spec);
    float (*forward)(void *model, const float *x, const int32_t *labels, int B);
    void (*backward)(void *model);
    void (*zero_grad)(void *model);
} ft_net;

static sotu_status vit_set_trainable_fn(void *m, const char *spec)
{
    return vit_set_trainable(m, spec);
}
static float vit_forward_fn(void *m, const float *x, const int32_t *labels, int B)
{
    return vit_forward(m, x, labels, B);
}
static void vit_backward_fn(void *m) { vit_backward(m); }
static void vit_zero_grad_fn(void *m) { vit_zero_grad(m); }

static ft_net net_vit(vit_model *m)
{
    return (ft_net){.model = m, .table = &m->table, .params = m->params, .grads = m->grads,
                    .trainable = &m->trainable, .image_size = m->cfg.image_size,
                    .channels = m->cfg.channels, .classes = m->cfg.classes,
                    .batch_cap = m->batch_cap, .feature_dim = m->cfg.dim, .min_train_batch = 1,
                    .logits = &m->logits, .features = &m->features,
                    .label_smoothing = &m->label_smoothing, .training = NULL,
                    .set_trainable = vit_set_trainable_fn, .forward = vit_forward_fn,
                    .backward = vit_backward_fn, .zero_grad = vit_zero_grad_fn};
}

static sotu_status resnet_set_trainable_fn(void *m, const char *spec)
{
    return resnet_set_trainable(m, spec);
}
static float resnet_forward_fn(void *m, const float *x, const int32_t *labels, int B)
{
    return resnet_forward(m, x, labels, B);
}
static void resnet_backward_fn(void *m) { resnet_backward(m); }
static void resnet_zero_grad_fn(void *m) { resnet_zero_grad(m); }

static ft_net net_resnet(resnet_model *m)
{
    return (ft_net){.model = m, .table = &m->table, .params = m->params, .grads = m->grads,
                    .trainable = &m->trainable, .image_size = m->cfg.image_size,
                    .channels = m->cfg.channels, .classes = m->cfg.classes,
                    .batch_cap = m->batch_cap, .feature_dim = m->feature_dim,
                    .min_train_batch = 2, .logits = &m->logits, .features = &m->features,
                    .label_smoothing = &m->label_smoothing, .training = &m->training,
                    .set_trainable = resnet_set_trainable_fn, .forward = resnet_forward_fn,
                    .backward = resnet_backward_fn, .zero_grad = resnet_zero_grad_fn};
}

/* ------------------------------------------------------------------------ */
/* Optimizer settings                                                          */
/* ------------------------------------------------------------------------ */

static optim_config optim_from_cfg(const sotu_config *cfg)
{
    bool sgd = !strcmp(cfg->train.optimizer, "sgd");
    optim_config oc = optim_config_default(sgd ? OPTIM_SGD : OPTIM_ADAMW);
    oc.weight_decay = (float)cfg->train.weight_decay;
    oc.beta1 = (float)cfg->train.beta1;
    oc.beta2 = (float)cfg->train.beta2;
    oc.eps = (float)cfg->train.eps;
    oc.momentum = (float)cfg->train.momentum;
    return oc;
}

/* ------------------------------------------------------------------------ */
/* Head                                                                      */
/* ------------------------------------------------------------------------ */

sotu_status sotu_finetune_reset_head(vit_model *m, int classes, int batch_cap, uint64_t seed,
                                     uint32_t task)
{
    if (classes < 1 || batch_cap < 1)
        return sotu_error(SOTU_ERR_CONFIG, "fine-tune: head with %d classes for batch %d, "
                          "expected both >= 1", classes, batch_cap);
    vit_config cfg = m->cfg;
    cfg.classes = classes;
    vit_model nm;
    memset(&nm, 0, sizeof nm);
    sotu_status st = vit_init(&nm, &cfg, batch_cap);
    if (st != SOTU_OK)
        return st;
    for (int j = 0; j < nm.table.n; j++) {
        const sotu_tensor_info *ti = &nm.table.t[j];
        float *dst = nm.params + ti->offset;
        if (!strncmp(ti->name, "head.", 5)) {
            if (!strcmp(ti->name, "head.weight")) {
                sotu_rng r;
                sotu_rng_init(&r, seed, SOTU_STREAM_INIT + ((uint64_t)task << 8));
                for (size_t i = 0; i < ti->count; i++) {
                    float z;
                    do
                        z = sotu_rng_normal(&r);
                    while (fabsf(z) > 2.0f);
                    dst[i] = 0.02f * z;
                }
            } else {
                memset(dst, 0, ti->count * sizeof *dst);
            }
            continue;
        }
        int k = sotu_tensor_find(&m->table, ti->name);
        assert(k >= 0 && m->table.t[k].count == ti->count);
        memcpy(dst, m->params + m->table.t[k].offset, ti->count * sizeof *dst);
    }
    nm.label_smoothing = m->label_smoothing;
    vit_free(m);
    *m = nm;
    return SOTU_OK;
}

/* ------------------------------------------------------------------------ */
/* Evaluation                                                                */
/* ------------------------------------------------------------------------ */

/* Evaluates in batches of the model's capacity, a BatchNorm model in eval
 * mode (its mode restored afterwards). */
static sotu_status eval_tables(const ft_net *net, const uint8_t *images, const int32_t *labels,
                               int32_t n, int H, int W, int C, const pixel_tables *pt,
                               double *acc, float *features, float *logits)
{
    if (H != net->image_size || W != net->image_size || C != net->channels)
        return sotu_error(SOTU_ERR_DATA, "evaluation: images are %dx%dx%d, the model expects "
                          "%dx%dx%d", H, W, C, net->image_size, net->image_size, net->channels);
    size_t img = (size_t)H * W * C;
    float *x = malloc(sizeof(float) * img * (size_t)net->batch_cap);
    if (!x)
        return sotu_error(SOTU_ERR_NOMEM, "evaluation: %zu bytes for a batch",
                          sizeof(float) * img * (size_t)net->batch_cap);
    bool was_training = net->training && *net->training;
    if (net->training)
        *net->training = false;
    int64_t right = 0;
    int K = net->classes, D = net->feature_dim;
    for (int32_t s = 0; s < n; s += net->batch_cap) {
        int B = n - s < net->batch_cap ? (int)(n - s) : net->batch_cap;
        convert_all(x, images + img * s, B, H, W, C, pt);
        net->forward(net->model, x, NULL, B);
        for (int b = 0; b < B; b++)
            if (labels && argmax(*net->logits + (size_t)b * K, K) == labels[s + b])
                right++;
        if (features)
            memcpy(features + (size_t)s * D, *net->features, sizeof(float) * (size_t)B * D);
        if (logits)
            memcpy(logits + (size_t)s * K, *net->logits, sizeof(float) * (size_t)B * K);
    }
    if (net->training)
        *net->training = was_training;
    free(x);
    if (acc)
        *acc = n > 0 && labels ? (double)right / n : 0.0;
    return SOTU_OK;
}

sotu_status sotu_finetune_eval(vit_model *m, const uint8_t *images, const int32_t *labels,
                               int32_t n, int H, int W, int C, float mean, float std,
                               double *acc, float *features, float *logits)
{
    pixel_tables pt;
    pixel_tables_scalar(&pt, mean, std);
    ft_net net = net_vit(m);
    return eval_tables(&net, images, labels, n, H, W, C, &pt, acc, features, logits);
}

static sotu_status eval_net_cfg(const ft_net *net, const uint8_t *images, const int32_t *labels,
                                int32_t n, int H, int W, int C, const sotu_config *cfg,
                                double *acc, float *features, float *logits)
{
    pixel_tables pt;
    sotu_status st = pixel_tables_from_config(&pt, cfg, net->image_size, C);
    if (st != SOTU_OK)
        return st;
    return eval_tables(net, images, labels, n, H, W, C, &pt, acc, features, logits);
}

static sotu_status eval_net_test(const ft_net *net, const sotu_taskset *t, const sotu_config *cfg,
                                 double *acc, float *features)
{
    sotu_status st = eval_net_cfg(net, t->test_images, t->test_labels, t->n_test, t->height,
                                  t->width, t->channels, cfg, acc, features, NULL);
    if (st != SOTU_OK)
        return sotu_error_context(st, "task %s", t->name);
    return SOTU_OK;
}

sotu_status sotu_finetune_eval_cfg(vit_model *m, const uint8_t *images, const int32_t *labels,
                                   int32_t n, int H, int W, int C, const sotu_config *cfg,
                                   double *acc, float *features, float *logits)
{
    ft_net net = net_vit(m);
    return eval_net_cfg(&net, images, labels, n, H, W, C, cfg, acc, features, logits);
}

sotu_status sotu_finetune_eval_test(vit_model *m, const sotu_taskset *t, const sotu_config *cfg,
                                    double *acc, float *features)
{
    ft_net net = net_vit(m);
    return eval_net_test(&net, t, cfg, acc, features);
}

sotu_status sotu_finetune_eval_resnet(resnet_model *m, const uint8_t *images,
                                      const int32_t *labels, int32_t n, int H, int W, int C,
                                      const sotu_config *cfg, double *acc, float *features,
                                      float *logits)
{
    ft_net net = net_resnet(m);
    return eval_net_cfg(&net, images, labels, n, H, W, C, cfg, acc, features, logits);
}

sotu_status sotu_finetune_eval_test_resnet(resnet_model *m, const sotu_taskset *t,
                                           const sotu_config *cfg, double *acc)
{
    ft_net net = net_resnet(m);
    return eval_net_test(&net, t, cfg, acc, NULL);
}

/* ------------------------------------------------------------------------ */
/* The loop                                                                  */
/* ------------------------------------------------------------------------ */

sotu_finetune_opts sotu_finetune_opts_default(void)
{
    sotu_finetune_opts o;
    memset(&o, 0, sizeof o);
    o.eval_at_end = true;
    return o;
}

static sotu_status check_inputs(const ft_net *net, const sotu_taskset *t, const sotu_config *cfg)
{
    if (t->height != net->image_size || t->width != net->image_size ||
        t->channels != net->channels)
        return sotu_error(SOTU_ERR_DATA, "task %s: images are %dx%dx%d, the model expects %dx%dx%d",
                          t->name, t->height, t->width, t->channels, net->image_size,
                          net->image_size, net->channels);
    if (t->classes != net->classes)
        return sotu_error(SOTU_ERR_CONFIG, "task %s: %d classes but the model's head has %d "
                          "(reset the head first)", t->name, t->classes, net->classes);
    if (t->n_train < net->min_train_batch)
        return sotu_error(SOTU_ERR_DATA, "task %s: %d training images, expected at least %d",
                          t->name, t->n_train, net->min_train_batch);
    if (cfg->train.batch_size < net->min_train_batch || cfg->train.batch_size > net->batch_cap)
        return sotu_error(SOTU_ERR_CONFIG, "train.batch_size: %d, expected %d..%d (the model's "
                          "batch capacity)", cfg->train.batch_size, net->min_train_batch,
                          net->batch_cap);
    if (!(cfg->data.std > 0))
        return sotu_error(SOTU_ERR_CONFIG, "data.std: %g, expected > 0", cfg->data.std);
    if (cfg->train.augment_pad < 0 || cfg->train.augment_pad >= net->image_size)
        return sotu_error(SOTU_ERR_CONFIG, "train.augment_pad: %d, expected 0..%d",
                          cfg->train.augment_pad, net->image_size - 1);
    return SOTU_OK;
}

/* The loop over any model; on_epoch gets the adapter's model. */
typedef sotu_status (*net_epoch_fn)(const sotu_finetune_opts *opts, const void *model,
                                    const sotu_finetune_epoch *e);

static sotu_status run_net(const ft_net *net, const sotu_taskset *t, const sotu_config *cfg,
                           const sotu_finetune_opts *opts_in, net_epoch_fn on_epoch,
                           sotu_finetune_result *res)
{
    sotu_finetune_opts opts = opts_in ? *opts_in : sotu_finetune_opts_default();
    sotu_finetune_result r = {.test_acc = -1.0};
    float *x = NULL;
    int32_t *order = NULL, *labels = NULL;
    augment_draw *draws = NULL;
    optim_state opt;
    memset(&opt, 0, sizeof opt);
    sotu_progress prog;
    bool prog_on = false;
    double t0 = sotu_now();

    sotu_status st = check_inputs(net, t, cfg);
    if (st != SOTU_OK)
        goto cleanup;
    *net->label_smoothing = (float)cfg->train.label_smoothing;

    /* A BatchNorm model skips a last batch smaller than it can normalise. */
    int Bmax = cfg->train.batch_size;
    int32_t n_used = t->n_train;
    if (n_used % Bmax && n_used % Bmax < net->min_train_batch)
        n_used -= n_used % Bmax;
    int64_t per_epoch = ((int64_t)n_used + Bmax - 1) / Bmax;

    size_t img = (size_t)t->height * t->width * t->channels;
    x = malloc(sizeof(float) * img * (size_t)Bmax);
    order = malloc(sizeof(int32_t) * (size_t)t->n_train);
    labels = malloc(sizeof(int32_t) * (size_t)Bmax);
    draws = malloc(sizeof(augment_draw) * (size_t)Bmax);
    if (!x || !order || !labels || !draws) {
        st = sotu_error(SOTU_ERR_NOMEM, "fine-tune %s: buffers for batch %d", t->name, Bmax);
        goto cleanup;
    }
    pixel_tables pt;
    if ((st = pixel_tables_from_config(&pt, cfg, net->image_size, t->channels)) != SOTU_OK)
        goto cleanup;
    int K = net->classes;

    /* LP-FT: with train.head_epochs > 0 a linear probe comes first, only the
     * head trainable on the frozen backbone (a BatchNorm model in eval mode,
     * so its running statistics stay θ0's), with its own optimizer state and
     * schedule and shuffle/augmentation streams started afresh: the run is
     * the probe (sotu_finetune_run with tune "head", epochs head_epochs) and
     * then a plain run of train.tune for train.epochs from that head. */
    for (int phase = cfg->train.head_epochs > 0 ? 0 : 1; phase <= 1; phase++) {
        bool probe = phase == 0;
        int epochs = probe ? cfg->train.head_epochs : cfg->train.epochs;
        st = net->set_trainable(net->model,
                                probe ? "head" : opts.tune ? opts.tune : cfg->train.tune);
        if (st != SOTU_OK)
            goto cleanup;
        if (net->training)
            *net->training = !probe;
        sotu_rng shuffle, aug;
        sotu_rng_init(&shuffle, cfg->train.seed,
                      SOTU_STREAM_SHUFFLE + ((uint64_t)opts.task << 8));
        sotu_rng_init(&aug, cfg->train.seed, SOTU_STREAM_AUGMENT + ((uint64_t)opts.task << 8));
        int64_t total = per_epoch * epochs;
        if (cfg->train.max_steps > 0 && cfg->train.max_steps < total)
            total = cfg->train.max_steps;
        optim_free(&opt);
        optim_config oc = optim_from_cfg(cfg);
        st = optim_init_sparse(&opt, &oc, net->table, *net->trainable, opts.mask_idx,
                               opts.mask_n);
        if (st != SOTU_OK)
            goto cleanup;

        char label[96];
        snprintf(label, sizeof label, "%s%s", opts.label ? opts.label : "fine-tune",
                 probe ? " (head)" : "");
        sotu_progress_begin(&prog, label, "steps", total);
        prog_on = true;

        int64_t step = 0;
        for (int epoch = 1; epoch <= epochs && step < total; epoch++) {
            sotu_rng_permutation(&shuffle, order, t->n_train);
            double loss_sum = 0;
            int64_t seen = 0, right = 0;
            for (int32_t s = 0; s < n_used && step < total; s += Bmax) {
                double t_step = sotu_now();
                int B = n_used - s < Bmax ? (int)(n_used - s) : Bmax;
                batch_build(x, labels, t, order + s, B, cfg, &aug, draws, &pt);
                net->zero_grad(net->model);
                float loss = net->forward(net->model, x, labels, B);
                if (!isfinite(loss)) {
                    st = sotu_error(SOTU_ERR_NUMERIC, "fine-tune %s: step %lld of %lld: loss is %g "
                                    "(tensor: loss; lower train.lr or set train.grad_clip)",
                                    t->name, (long long)step + 1, (long long)total, (double)loss);
                    goto cleanup;
                }
                for (int b = 0; b < B; b++)
                    right += argmax(*net->logits + (size_t)b * K, K) == labels[b];
                net->backward(net->model);
                int bad = optim_find_nonfinite(net->table, *net->trainable, net->grads);
                if (bad >= 0) {
                    st = sotu_error(SOTU_ERR_NUMERIC, "fine-tune %s: step %lld of %lld: gradient "
                                    "of %s holds NaN or Inf (lower train.lr or set "
                                    "train.grad_clip)",
                                    t->name, (long long)step + 1, (long long)total,
                                    net->table->t[bad].name);
                    goto cleanup;
                }
                optim_mask_grads(&opt, net->grads); /* sotu.tuning masked: none outside */
                bool log_step = opts.on_step && opts.step_every > 0 &&
                                ((step + 1) % opts.step_every == 0 || step + 1 == total);
                float grad_norm = NAN;
                if (cfg->train.grad_clip > 0 || log_step) /* max_norm 0: the norm alone */
                    grad_norm = optim_clip_grad_norm(net->table, *net->trainable, net->grads,
                                                     (float)cfg->train.grad_clip);
                float lr = optim_lr_at((float)cfg->train.lr, (long)step, (long)total,
                                       (long)cfg->train.warmup_steps);
                optim_step(&opt, net->params, net->grads, lr);
                step++;
                if (log_step) {
                    double now = sotu_now();
                    sotu_finetune_step ss = {.probe = probe, .epoch = epoch, .step = step,
                                             .total = total, .loss = loss, .lr = lr,
                                             .grad_norm = grad_norm, .images = B,
                                             .step_seconds = now - t_step, .seconds = now - t0};
                    opts.on_step(opts.step_ctx, &ss);
                }
                loss_sum += (double)loss * B;
                seen += B;
                char extra[96];
                snprintf(extra, sizeof extra, "epoch %d loss %.4f lr %.3g", epoch, (double)loss,
                         (double)lr);
                sotu_progress_update(&prog, step, extra);
            }
            if (!seen)
                break;
            sotu_finetune_epoch e = {.epoch = epoch, .epochs = epochs, .step = step,
                                     .train_loss = loss_sum / seen,
                                     .train_acc = (double)right / seen, .test_acc = -1.0};
            if (probe) {
                SOTU_INFO("%s epoch %d/%d  step %lld  train loss %.4f acc %.2f%%  (%.1fs)", label,
                          epoch, epochs, (long long)step, e.train_loss, 100.0 * e.train_acc,
                          sotu_now() - t0);
                continue;
            }
            bool last = epoch == cfg->train.epochs || step >= total;
            if (t->n_test > 0 && (opts.eval_every_epoch || (last && opts.eval_at_end))) {
                st = eval_net_test(net, t, cfg, &e.test_acc, NULL);
                if (st != SOTU_OK)
                    goto cleanup;
            }
            e.seconds = sotu_now() - t0;
            char test[48] = "";
            if (e.test_acc >= 0)
                snprintf(test, sizeof test, "  test acc %.2f%%", 100.0 * e.test_acc);
            SOTU_INFO("%s epoch %d/%d  step %lld  train loss %.4f acc %.2f%%%s  (%.1fs)", label,
                      epoch, cfg->train.epochs, (long long)step, e.train_loss, 100.0 * e.train_acc,
                      test, e.seconds);
            r.train_loss = e.train_loss;
            r.train_acc = e.train_acc;
            r.test_acc = e.test_acc;
            r.epochs = epoch;
            r.steps = step;
            if (on_epoch) {
                st = on_epoch(&opts, net->model, &e);
                if (st != SOTU_OK)
                    goto cleanup;
            }
        }
        sotu_progress_end(&prog);
        prog_on = false;
    }

cleanup:
    if (prog_on)
        sotu_progress_end(&prog);
    optim_free(&opt);
    free(x);
    free(order);
    free(labels);
    free(draws);
    r.seconds = sotu_now() - t0;
    if (res)
        *res = r;
    return st;
}

static sotu_status vit_epoch(const sotu_finetune_opts *o, const void *m,
                             const sotu_finetune_epoch *e)
{
    return o->on_epoch ? o->on_epoch(o->ctx, m, e) : SOTU_OK;
}

static sotu_status resnet_epoch(const sotu_finetune_opts *o, const void *m,
                                const sotu_finetune_epoch *e)
{
    return o->on_epoch_resnet ? o->on_epoch_resnet(o->ctx, m, e) : SOTU_OK;
}

sotu_status sotu_finetune_run(vit_model *m, const sotu_taskset *t, const sotu_config *cfg,
                              const sotu_finetune_opts *opts, sotu_finetune_result *res)
{
    ft_net net = net_vit(m);
    return run_net(&net, t, cfg, opts, vit_epoch, res);
}

sotu_status sotu_finetune_run_resnet(resnet_model *m, const sotu_taskset *t,
                                     const sotu_config *cfg, const sotu_finetune_opts *opts,
                                     sotu_finetune_result *res)
{
    ft_net net = net_resnet(m);
    return run_net(&net, t, cfg, opts, resnet_epoch, res);
}
