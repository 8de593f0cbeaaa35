/* The fine-tuning loop (worker/finetune.c) on a synthetic separable task:
 * a tiny ViT learns it, two runs are bitwise equal, a huge learning rate
 * stops with SOTU_ERR_NUMERIC naming the step, the head reset keeps the
 * backbone, evaluation is independent of the batch size, and LP-FT
 * (train.head_epochs) is a head-only probe followed by the plain run, and
 * masked tuning (sotu.tuning masked) trains only the SoTU mask's entries. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "unit/quadrants_task.h"
#include "common/config.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/threads.h"
#include "common/mask.h"
#include "io/taskset.h"
#include "worker/delta_extract.h"
#include "worker/finetune.h"
#include "worker/optim.h"
#include "worker/resnet.h"
#include "worker/vit.h"

enum { S = 8, CH = 1, K = 4, N_TRAIN = 256, N_TEST = 64 };
static const uint64_t SEED = 1234;

static void make_task(sotu_taskset *t)
{
    quadrants_task(t, S, N_TRAIN, N_TEST, SEED);
}

static const vit_config tiny = {.image_size = S, .channels = CH, .patch = 4, .dim = 16,
                                .depth = 2, .heads = 2, .mlp_hidden = 32, .classes = K};

static void make_config(sotu_config *cfg)
{
    sotu_config_defaults(cfg);
    cfg->train.epochs = 20;
    cfg->train.batch_size = 24; /* 256 = 10 * 24 + 16: a partial last batch */
    cfg->train.lr = 3e-3;
    cfg->train.warmup_steps = 10;
    cfg->train.augment_pad = 0;
    cfg->train.augment_flip = false; /* a flip swaps quadrants 0/1 and 2/3 */
    cfg->train.seed = SEED;
    cfg->data.mean = 0.5;
    cfg->data.std = 0.25;
    snprintf(cfg->train.tune, sizeof cfg->train.tune, "all");
}

static void make_model(vit_model *m, int batch_cap)
{
    memset(m, 0, sizeof *m);
    sotu_status st = vit_init(m, &tiny, batch_cap);
    CHECK(st == SOTU_OK);
    vit_init_random(m, SEED);
}

static void test_learns_and_is_deterministic(const sotu_taskset *t)
{
    sotu_config cfg;
    make_config(&cfg);
    vit_model a, b;
    make_model(&a, cfg.train.batch_size);
    make_model(&b, cfg.train.batch_size);
    sotu_finetune_opts o = sotu_finetune_opts_default();
    o.task = 3;
    sotu_finetune_result ra, rb;
    CHECK(sotu_finetune_run(&a, t, &cfg, &o, &ra) == SOTU_OK);
    CHECK(sotu_finetune_run(&b, t, &cfg, &o, &rb) == SOTU_OK);
    CHECK(ra.steps == 20 * 11);
    double train_acc = 0;
    CHECK(sotu_finetune_eval(&a, t->train_images, t->train_labels, t->n_train, S, S, CH,
                             (float)cfg.data.mean, (float)cfg.data.std, &train_acc, NULL,
                             NULL) == SOTU_OK);
    printf("synthetic task: %lld steps, train loss %.4f (acc %.2f%% while training), train acc "
           "%.2f%%, test acc %.2f%%\n",
           (long long)ra.steps, ra.train_loss, 100 * ra.train_acc, 100 * train_acc,
           100 * ra.test_acc);
    CHECK(train_acc > 0.9);
    CHECK(ra.test_acc > 0.8);
    CHECK(a.num_params == b.num_params);
    CHECK(!memcmp(a.params, b.params, sizeof(float) * a.num_params));
    CHECK(ra.train_loss == rb.train_loss);

    /* Another task index draws other shuffles and flips: different weights. */
    vit_model c;
    make_model(&c, cfg.train.batch_size);
    o.task = 4;
    cfg.train.max_steps = 30;
    cfg.train.augment_flip = true;
    cfg.train.augment_pad = 1;
    CHECK(sotu_finetune_run(&c, t, &cfg, &o, NULL) == SOTU_OK);
    vit_model d;
    make_model(&d, cfg.train.batch_size);
    o.task = 3;
    CHECK(sotu_finetune_run(&d, t, &cfg, &o, NULL) == SOTU_OK);
    CHECK(memcmp(c.params, d.params, sizeof(float) * c.num_params) != 0);
    vit_model d2;
    make_model(&d2, cfg.train.batch_size);
    CHECK(sotu_finetune_run(&d2, t, &cfg, &o, NULL) == SOTU_OK);
    CHECK(!memcmp(d2.params, d.params, sizeof(float) * d.num_params));
    vit_free(&d2);

    /* Evaluation does not depend on the batch it runs in; features too. */
    vit_model e;
    make_model(&e, 7);
    memcpy(e.params, a.params, sizeof(float) * a.num_params);
    float *fa = malloc(sizeof(float) * N_TEST * tiny.dim);
    float *fe = malloc(sizeof(float) * N_TEST * tiny.dim);
    double acc_a, acc_e;
    CHECK(sotu_finetune_eval_test(&a, t, &cfg, &acc_a, fa) == SOTU_OK);
    CHECK(sotu_finetune_eval_test(&e, t, &cfg, &acc_e, fe) == SOTU_OK);
    CHECK(acc_a == acc_e && acc_a == ra.test_acc);
    double worst = 0;
    for (int i = 0; i < N_TEST * tiny.dim; i++)
        worst = fmax(worst, fabs((double)fa[i] - fe[i]));
    CHECK_MSG(worst < 1e-4, "features differ by %g between batch 24 and 7", worst);
    free(fa);
    free(fe);
    vit_free(&a);
    vit_free(&b);
    vit_free(&c);
    vit_free(&d);
    vit_free(&e);
}

static void test_numeric_failure(const sotu_taskset *t)
{
    sotu_config cfg;
    make_config(&cfg);
    cfg.train.lr = 1e30;
    cfg.train.warmup_steps = 0;
    cfg.train.grad_clip = 0;
    vit_model m;
    make_model(&m, cfg.train.batch_size);
    sotu_finetune_result r;
    sotu_status st = sotu_finetune_run(&m, t, &cfg, NULL, &r);
    printf("lr 1e30: %s\n", sotu_last_error());
    CHECK(st == SOTU_ERR_NUMERIC);
    CHECK(sotu_exit_code(st) == 5);
    CHECK(strstr(sotu_last_error(), "step ") != NULL);
    CHECK(strstr(sotu_last_error(), "quadrants") != NULL);
    CHECK(r.steps < 5);
    vit_free(&m);
}

static void test_reset_head_and_checks(const sotu_taskset *t)
{
    vit_model m;
    make_model(&m, 4);
    int pe = sotu_tensor_find(&m.table, "blocks.1.mlp.fc2.weight");
    CHECK(pe >= 0);
    size_t cnt = m.table.t[pe].count;
    float *keep = malloc(sizeof(float) * cnt);
    memcpy(keep, m.params + m.table.t[pe].offset, sizeof(float) * cnt);
    CHECK(sotu_finetune_reset_head(&m, 7, 16, SEED, 2) == SOTU_OK);
    CHECK(m.cfg.classes == 7 && m.batch_cap == 16);
    int hw = sotu_tensor_find(&m.table, "head.weight");
    int hb = sotu_tensor_find(&m.table, "head.bias");
    CHECK(hw >= 0 && hb >= 0 && m.table.t[hw].shape[0] == 7);
    int nonzero = 0;
    for (size_t i = 0; i < m.table.t[hw].count; i++)
        nonzero += m.params[m.table.t[hw].offset + i] != 0.0f;
    CHECK(nonzero == (int)m.table.t[hw].count);
    for (size_t i = 0; i < m.table.t[hb].count; i++)
        CHECK(m.params[m.table.t[hb].offset + i] == 0.0f);
    pe = sotu_tensor_find(&m.table, "blocks.1.mlp.fc2.weight");
    CHECK(!memcmp(keep, m.params + m.table.t[pe].offset, sizeof(float) * cnt));
    free(keep);

    /* 7 classes against a 4-class task, batch over capacity: config errors. */
    sotu_config cfg;
    make_config(&cfg);
    CHECK(sotu_finetune_run(&m, t, &cfg, NULL, NULL) == SOTU_ERR_CONFIG);
    CHECK(sotu_finetune_reset_head(&m, K, 16, SEED, 2) == SOTU_OK);
    CHECK(sotu_finetune_run(&m, t, &cfg, NULL, NULL) == SOTU_ERR_CONFIG);
    cfg.train.batch_size = 16;
    snprintf(cfg.train.tune, sizeof cfg.train.tune, "head");
    cfg.train.max_steps = 5;
    int blk = sotu_tensor_find(&m.table, "blocks.0.attn.qkv.weight");
    float before = m.params[m.table.t[blk].offset];
    CHECK(sotu_finetune_run(&m, t, &cfg, NULL, NULL) == SOTU_OK);
    CHECK(m.params[m.table.t[blk].offset] == before);
    vit_free(&m);
}

/* LP-FT: train.head_epochs = H runs a head-only probe (backbone bitwise θ0,
 * head changed) and then the plain run from that head, bit for bit the two
 * calls made by hand; deterministic; H = 0 is the plain run. */
static void test_head_epochs(const sotu_taskset *t)
{
    sotu_config cfg;
    make_config(&cfg);
    cfg.train.epochs = 3;
    cfg.train.augment_pad = 1; /* the augment stream is used too */
    sotu_finetune_opts o = sotu_finetune_opts_default();
    o.task = 5;
    vit_model theta0;
    make_model(&theta0, cfg.train.batch_size);
    CHECK(sotu_finetune_reset_head(&theta0, K, cfg.train.batch_size, SEED, o.task) == SOTU_OK);
    int hw = sotu_tensor_find(&theta0.table, "head.weight");
    CHECK(hw == theta0.table.n - 2); /* the head is the last two tensors */
    size_t backbone = theta0.table.t[hw].offset, n = theta0.num_params;

    /* The probe by hand: head only, 2 epochs. */
    vit_model probe;
    make_model(&probe, cfg.train.batch_size);
    CHECK(sotu_finetune_reset_head(&probe, K, cfg.train.batch_size, SEED, o.task) == SOTU_OK);
    sotu_config pc = cfg;
    pc.train.epochs = 2;
    snprintf(pc.train.tune, sizeof pc.train.tune, "head");
    sotu_finetune_result rp;
    CHECK(sotu_finetune_run(&probe, t, &pc, &o, &rp) == SOTU_OK);
    CHECK(rp.steps == 2 * 11);
    CHECK(!memcmp(probe.params, theta0.params, sizeof(float) * backbone));
    CHECK(memcmp(probe.params + backbone, theta0.params + backbone,
                 sizeof(float) * (n - backbone)) != 0);
    /* ... then the plain run from it. */
    sotu_finetune_result rh;
    CHECK(sotu_finetune_run(&probe, t, &cfg, &o, &rh) == SOTU_OK);

    /* head_epochs = 2 does both in one call, twice the same. */
    cfg.train.head_epochs = 2;
    vit_model a, b;
    make_model(&a, cfg.train.batch_size);
    make_model(&b, cfg.train.batch_size);
    CHECK(sotu_finetune_reset_head(&a, K, cfg.train.batch_size, SEED, o.task) == SOTU_OK);
    CHECK(sotu_finetune_reset_head(&b, K, cfg.train.batch_size, SEED, o.task) == SOTU_OK);
    sotu_finetune_result ra, rb;
    CHECK(sotu_finetune_run(&a, t, &cfg, &o, &ra) == SOTU_OK);
    CHECK(sotu_finetune_run(&b, t, &cfg, &o, &rb) == SOTU_OK);
    CHECK(!memcmp(a.params, probe.params, sizeof(float) * n));
    CHECK(!memcmp(a.params, b.params, sizeof(float) * n));
    CHECK(ra.steps == 3 * 11 && ra.steps == rh.steps && ra.train_loss == rh.train_loss);
    CHECK(ra.test_acc == rh.test_acc && ra.train_loss == rb.train_loss);
    printf("LP-FT: probe train acc %.2f%%, then test acc %.2f%%\n", 100 * rp.train_acc,
           100 * ra.test_acc);

    /* head_epochs = 0: the plain run from θ0, which LP-FT differs from. */
    cfg.train.head_epochs = 0;
    vit_model c, d;
    make_model(&c, cfg.train.batch_size);
    make_model(&d, cfg.train.batch_size);
    CHECK(sotu_finetune_reset_head(&c, K, cfg.train.batch_size, SEED, o.task) == SOTU_OK);
    CHECK(sotu_finetune_reset_head(&d, K, cfg.train.batch_size, SEED, o.task) == SOTU_OK);
    CHECK(sotu_finetune_run(&c, t, &cfg, &o, NULL) == SOTU_OK);
    snprintf(cfg.train.tune, sizeof cfg.train.tune, "head,blocks");
    o.tune = "all"; /* opts.tune wins over train.tune, as before */
    CHECK(sotu_finetune_run(&d, t, &cfg, &o, NULL) == SOTU_OK);
    CHECK(!memcmp(c.params, d.params, sizeof(float) * n));
    CHECK(memcmp(c.params, a.params, sizeof(float) * n) != 0);
    vit_free(&theta0);
    vit_free(&probe);
    vit_free(&a);
    vit_free(&b);
    vit_free(&c);
    vit_free(&d);
}

/* LP-FT on a ResNet: the probe runs BatchNorm in eval mode (no running
 * statistics update, num_batches_tracked counts only the second phase) and
 * trains fc alone; with train.tune fc the backbone stays bitwise θ0. */
static void test_head_epochs_resnet(const sotu_taskset *t)
{
    sotu_config cfg;
    make_config(&cfg);
    cfg.train.epochs = 1;
    cfg.train.head_epochs = 2;
    snprintf(cfg.train.tune, sizeof cfg.train.tune, "fc");
    resnet_config rc = {.depth = 18, .width = 4, .channels = CH, .image_size = S, .classes = K,
                        .small_input = true};
    resnet_model a = {0}, b = {0};
    CHECK(resnet_init(&a, &rc, cfg.train.batch_size) == SOTU_OK);
    CHECK(resnet_init(&b, &rc, cfg.train.batch_size) == SOTU_OK);
    resnet_init_random(&a, SEED);
    resnet_init_random(&b, SEED);
    int fw = sotu_tensor_find(&a.table, "fc.weight");
    CHECK(fw == a.table.n - 2);
    size_t backbone = a.table.t[fw].offset, n = a.num_params;
    float *p0 = malloc(sizeof(float) * n);
    memcpy(p0, a.params, sizeof(float) * n);
    sotu_finetune_result ra, rb;
    CHECK(sotu_finetune_run_resnet(&a, t, &cfg, NULL, &ra) == SOTU_OK);
    CHECK(sotu_finetune_run_resnet(&b, t, &cfg, NULL, &rb) == SOTU_OK);
    CHECK(ra.steps == 11 && a.num_batches_tracked == 11);
    CHECK(!memcmp(a.params, p0, sizeof(float) * backbone));
    CHECK(memcmp(a.params + backbone, p0 + backbone, sizeof(float) * (n - backbone)) != 0);
    CHECK(!memcmp(a.params, b.params, sizeof(float) * n));
    CHECK(!memcmp(a.running, b.running, sizeof(float) * a.buffers.total));
    free(p0);
    resnet_free(&a);
    resnet_free(&b);
}

/* sotu.tuning masked: the loop given each backbone tensor's SoTU mask
 * (the seeded mask delta extraction cuts with) trains only those entries:
 * every other entry stays bitwise θ0, the head trains whole, the run is
 * bitwise the same twice and at 1 thread; the extracted delta at that keep
 * lists exactly the mask's entries with θt − θ0 there, so it is every change
 * training made; the optimizer keeps moments for the mask's entries only. */
static void test_masked_tuning(const sotu_taskset *t)
{
    sotu_config cfg;
    make_config(&cfg);
    cfg.train.epochs = 3;
    cfg.train.weight_decay = 0.1; /* decay must not touch the entries outside */
    const double keep = 0.25;
    const uint32_t task = 3;
    sotu_finetune_opts o = sotu_finetune_opts_default();
    o.task = task;
    vit_model theta0, a, b, c;
    make_model(&theta0, cfg.train.batch_size);
    make_model(&a, cfg.train.batch_size);
    make_model(&b, cfg.train.batch_size);
    make_model(&c, cfg.train.batch_size);
    CHECK(sotu_finetune_reset_head(&theta0, K, cfg.train.batch_size, SEED, task) == SOTU_OK);
    CHECK(sotu_finetune_reset_head(&a, K, cfg.train.batch_size, SEED, task) == SOTU_OK);
    CHECK(sotu_finetune_reset_head(&b, K, cfg.train.batch_size, SEED, task) == SOTU_OK);
    CHECK(sotu_finetune_reset_head(&c, K, cfg.train.batch_size, SEED, task) == SOTU_OK);
    int n = theta0.table.n;
    uint32_t **idx = calloc((size_t)n, sizeof *idx);
    size_t *cnt = calloc((size_t)n, sizeof *cnt);
    bool *is_head = calloc((size_t)n, sizeof *is_head);
    CHECK(idx && cnt && is_head);
    size_t kept_total = 0, backbone_total = 0;
    for (int j = 0; j < n; j++) {
        const sotu_tensor_info *ti = &theta0.table.t[j];
        is_head[j] = !strncmp(ti->name, "head.", 5);
        if (is_head[j])
            continue;
        sotu_mask mk = sotu_mask_of(SEED, task, (uint32_t)j, ti->count, keep);
        uint64_t most = sotu_mask_kept_max(&mk);
        idx[j] = malloc(sizeof(uint32_t) * (size_t)(most + SOTU_MASK_SLACK));
        cnt[j] = (size_t)sotu_mask_list(&mk, idx[j], most);
        kept_total += cnt[j];
        backbone_total += ti->count;
    }
    o.mask_idx = (const uint32_t *const *)idx;
    o.mask_n = cnt;
    sotu_finetune_result ra;
    CHECK(sotu_finetune_run(&a, t, &cfg, &o, &ra) == SOTU_OK);
    CHECK(sotu_finetune_run(&b, t, &cfg, &o, NULL) == SOTU_OK);
    int threads = sotu_threads_get();
    sotu_threads_set(1);
    CHECK(sotu_finetune_run(&c, t, &cfg, &o, NULL) == SOTU_OK);
    sotu_threads_set(threads);
    CHECK(!memcmp(a.params, b.params, sizeof(float) * a.num_params));
    CHECK_MSG(!memcmp(a.params, c.params, sizeof(float) * a.num_params),
              "masked tuning differs at 1 thread and %d", threads);

    size_t outside_moved = 0, inside_moved = 0, head_moved = 0;
    for (int j = 0; j < n; j++) {
        const sotu_tensor_info *ti = &theta0.table.t[j];
        const float *p0 = theta0.params + ti->offset, *pa = a.params + ti->offset;
        if (is_head[j]) {
            for (size_t i = 0; i < ti->count; i++)
                head_moved += memcmp(&p0[i], &pa[i], sizeof(float)) != 0;
            continue;
        }
        size_t k = 0;
        for (size_t i = 0; i < ti->count; i++) {
            bool in = k < cnt[j] && idx[j][k] == i;
            bool moved = memcmp(&p0[i], &pa[i], sizeof(float)) != 0;
            if (in) {
                k++;
                inside_moved += moved;
            } else {
                outside_moved += moved;
            }
        }
    }
    CHECK_MSG(outside_moved == 0, "%zu entries outside the masks moved", outside_moved);
    CHECK_MSG(inside_moved > kept_total / 2, "%zu of %zu mask entries moved", inside_moved,
              kept_total);
    CHECK(head_moved > 0);

    /* The delta at that keep is what training changed, all of it. */
    float *start = malloc(sizeof(float) * theta0.num_params);
    CHECK(start != NULL);
    memcpy(start, theta0.params, sizeof(float) * theta0.num_params);
    sotu_extract_opts eo = {.task_index = task, .task_name = "masked", .seed = SEED,
                            .keep = keep, .dtype = SOTU_DELTA_F32};
    sotu_delta d;
    CHECK(sotu_delta_extract(&a.table, start, a.params, &eo, &d) == SOTU_OK);
    int seen = 0;
    for (int e = 0; e < d.n_tensors; e++) {
        const sotu_delta_tensor *dt = &d.tensors[e];
        int j = (int)dt->table_index;
        if (is_head[j])
            continue;
        seen++;
        const sotu_tensor_info *ti = &theta0.table.t[j];
        CHECK_MSG(dt->kept == cnt[j], "%s: %llu kept, mask %zu", ti->name,
                  (unsigned long long)dt->kept, cnt[j]);
        for (uint64_t k = 0; k < dt->kept && k < cnt[j]; k++) {
            uint32_t i = dt->indices[k];
            CHECK(i == idx[j][k]);
            float want = a.params[ti->offset + i] - theta0.params[ti->offset + i];
            CHECK(!memcmp(&dt->values[k], &want, sizeof want));
        }
    }
    CHECK(seen > 0);
    sotu_delta_free(&d);

    /* Moments only for the mask's entries (and the head's). */
    optim_state os;
    optim_config oc = optim_config_default(OPTIM_ADAMW);
    bool *all = malloc(sizeof(bool) * (size_t)n);
    CHECK(all != NULL);
    for (int j = 0; j < n; j++)
        all[j] = true;
    CHECK(optim_init_sparse(&os, &oc, &theta0.table, all, (const uint32_t *const *)idx, cnt) ==
          SOTU_OK);
    CHECK(os.moment_count == kept_total + (theta0.num_params - backbone_total));
    printf("masked tuning at keep %.2f: %zu of %zu backbone entries train, %zu moved; "
           "moments %zu floats (dense %zu); test acc %.2f%%\n", keep, kept_total,
           backbone_total, inside_moved, os.moment_count, theta0.num_params,
           100 * ra.test_acc);
    optim_free(&os);
    free(all);
    free(start);
    for (int j = 0; j < n; j++)
        free(idx[j]);
    free(idx);
    free(cnt);
    free(is_head);
    vit_free(&theta0);
    vit_free(&a);
    vit_free(&b);
    vit_free(&c);
}

int main(void)
{
    printf("seed %llu\n", (unsigned long long)SEED);
    sotu_log_set_level(SOTU_LOG_WARN);
    sotu_threads_set(sotu_threads_default());
    sotu_taskset t;
    make_task(&t);
    test_learns_and_is_deterministic(&t);
    test_numeric_failure(&t);
    test_reset_head_and_checks(&t);
    test_head_epochs(&t);
    test_head_epochs_resnet(&t);
    test_masked_tuning(&t);
    sotu_taskset_free(&t);
    return check_finish("test_finetune");
}
