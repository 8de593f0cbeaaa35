/* Whole-model checks of the ResNet that need no fixture: parameter counts
 * and names equal torchvision's resnet18/resnet34 (11,689,512 and
 * 21,797,672 with 1000 classes); CLR layer counts, and CLR's parameters per
 * task as a percentage of the backbone (printed for the report); identity
 * CLR layers leave the logits of the plain network unchanged; the "clr"
 * trainable set; training flops of CLR mode against full fine-tuning; config
 * errors; and a short CLR-mode AdamW run on a fixed batch that must lower
 * the loss, reproducibly. Seed: argv[1] or 3. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/rng.h"
#include "common/threads.h"
#include "worker/optim.h"
#include "worker/resnet.h"

static sotu_rng rng;

static resnet_config config(int depth, int width, int channels, int S, int K, bool small,
                            resnet_clr clr)
{
    resnet_config c = {.depth = depth, .width = width, .channels = channels, .image_size = S,
                       .classes = K, .small_input = small, .clr = clr};
    return c;
}

static const sotu_tensor_info *find(const resnet_model *m, const char *name)
{
    int i = sotu_tensor_find(&m->table, name);
    return i >= 0 ? &m->table.t[i] : NULL;
}

static void test_torchvision_counts(void)
{
    resnet_model m;
    resnet_config c = config(18, 64, 3, 32, 1000, false, RESNET_CLR_NONE);
    CHECK(resnet_init(&m, &c, 2) == SOTU_OK);
    printf("resnet18: %zu parameters, %zu running statistics, %d tensors\n", m.num_params,
           m.buffers.total, m.table.n);
    CHECK(m.num_params == 11689512);
    CHECK(m.table.n == 62);
    CHECK(m.buffers.n == 40);
    CHECK(!strcmp(m.table.t[0].name, "conv1.weight") && m.table.t[0].shape[3] == 7);
    CHECK(!strcmp(m.table.t[m.table.n - 1].name, "fc.bias"));
    const sotu_tensor_info *t = find(&m, "layer2.0.downsample.0.weight");
    CHECK(t && t->ndim == 4 && t->shape[0] == 128 && t->shape[1] == 64 && t->shape[2] == 1);
    t = find(&m, "fc.weight");
    CHECK(t && t->shape[0] == 1000 && t->shape[1] == 512);
    CHECK(sotu_tensor_find(&m.buffers, "layer4.1.bn2.running_var") == m.buffers.n - 1);
    CHECK(sotu_tensor_find(&m.table, "layer1.0.downsample.0.weight") < 0);
    resnet_param_counts pc = resnet_count_params(&m);
    CHECK(pc.backbone + pc.head == m.num_params && pc.clr == 0);
    CHECK(pc.bn == m.buffers.total);
    resnet_free(&m);

    c = config(34, 64, 3, 32, 1000, false, RESNET_CLR_NONE);
    CHECK(resnet_init(&m, &c, 1) == SOTU_OK);
    printf("resnet34: %zu parameters\n", m.num_params);
    CHECK(m.num_params == 21797672);
    CHECK(sotu_tensor_find(&m.table, "layer3.5.conv2.weight") >= 0);
    resnet_free(&m);
}

static void test_clr_counts(void)
{
    /* ResNet-18, CLR after the 17 non-1x1 convs: 9 (64 + 4*64 + 4*128 +
     * 4*256 + 4*512); clr-full adds the three downsample convs. */
    const size_t expect[] = {0, 35136, 35136 + 9 * (128 + 256 + 512)};
    for (int v = RESNET_CLR_CONV3; v <= RESNET_CLR_ALL; v++) {
        resnet_model m;
        resnet_config c = config(18, 64, 3, 32, 10, false, (resnet_clr)v);
        CHECK(resnet_init(&m, &c, 1) == SOTU_OK);
        resnet_param_counts pc = resnet_count_params(&m);
        CHECK(pc.clr == expect[v]);
        CHECK(pc.backbone == 11689512 - 513000);
        double per_task = (double)(pc.clr + pc.bn + pc.head);
        printf("resnet18 %-8s CLR %zu = %.3f%% of the %zu-parameter backbone; with BatchNorm "
               "and a 10-class head %.0f = %.3f%% per task\n",
               resnet_clr_name((resnet_clr)v), pc.clr, 100.0 * pc.clr / pc.backbone,
               pc.backbone, per_task, 100.0 * per_task / pc.backbone);
        CHECK(resnet_set_trainable(&m, "clr") == SOTU_OK);
        size_t trainable = 0;
        for (int i = 0; i < m.table.n; i++) {
            const sotu_tensor_info *t = &m.table.t[i];
            bool want = strstr(t->name, ".clr.") || t->ndim == 1 || !strcmp(t->name, "fc.weight");
            CHECK_MSG(m.trainable[i] == want, "clr set: %s trainable %d", t->name,
                      m.trainable[i]);
            trainable += m.trainable[i] ? t->count : 0;
        }
        CHECK(trainable == pc.clr + pc.bn + pc.head);
        double clr_flops = resnet_train_flops(&m, 8);
        CHECK(resnet_set_trainable(&m, "all") == SOTU_OK);
        double full_flops = resnet_train_flops(&m, 8);
        CHECK(resnet_set_trainable(&m, "head") == SOTU_OK);
        double head_flops = resnet_train_flops(&m, 8);
        printf("  training compute relative to full fine-tuning: CLR %.3f, head only %.3f\n",
               clr_flops / full_flops, head_flops / full_flops);
        CHECK(clr_flops < full_flops && clr_flops > 0.5 * full_flops);
        CHECK(head_flops < 0.4 * full_flops);
        resnet_free(&m);
    }
}

/* Identity CLR layers: the same logits as the plain network. */
static void test_identity_clr(void)
{
    resnet_model a, b;
    resnet_config ca = config(18, 4, 1, 12, 3, true, RESNET_CLR_ALL);
    resnet_config cb = config(18, 4, 1, 12, 3, true, RESNET_CLR_NONE);
    CHECK(resnet_init(&a, &ca, 3) == SOTU_OK);
    CHECK(resnet_init(&b, &cb, 3) == SOTU_OK);
    resnet_init_random(&a, 9);
    for (int i = 0; i < a.table.n; i++) {
        float *p = a.params + a.table.t[i].offset;
        if (strstr(a.table.t[i].name, ".clr."))
            for (size_t k = 0; k < a.table.t[i].count; k++)
                p[k] = sotu_rng_normal(&rng);
    }
    resnet_clr_reset(&a);
    for (int i = 0; i < b.table.n; i++) {
        const sotu_tensor_info *t = &b.table.t[i];
        const sotu_tensor_info *s = find(&a, t->name);
        CHECK(s && s->count == t->count);
        if (s)
            memcpy(b.params + t->offset, a.params + s->offset, t->count * sizeof(float));
    }
    float images[3 * 12 * 12];
    for (int i = 0; i < 3 * 144; i++)
        images[i] = sotu_rng_normal(&rng);
    resnet_forward(&a, images, NULL, 3);
    resnet_forward(&b, images, NULL, 3);
    double err = 0, ref = 0;
    for (int i = 0; i < 9; i++) {
        err = fmax(err, fabs(a.logits[i] - b.logits[i]));
        ref = fmax(ref, fabs(b.logits[i]));
    }
    printf("identity CLR vs plain: logits differ by %.3g (max |logit| %.3g)\n", err, ref);
    CHECK(err <= 1e-6 * ref);
    CHECK(memcmp(a.running, b.running, a.buffers.total * sizeof(float)) == 0);
    resnet_free(&a);
    resnet_free(&b);
}

static void test_config_errors(void)
{
    resnet_model m;
    resnet_config c = config(50, 64, 3, 32, 10, false, RESNET_CLR_NONE);
    CHECK(resnet_init(&m, &c, 1) == SOTU_ERR_CONFIG);
    CHECK(strstr(sotu_last_error(), "model.depth") != NULL);
    c = config(18, 0, 3, 32, 10, false, RESNET_CLR_NONE);
    CHECK(resnet_init(&m, &c, 1) == SOTU_ERR_CONFIG);
    c = config(18, 4, 3, 32, 10, false, RESNET_CLR_NONE);
    CHECK(resnet_init(&m, &c, 0) == SOTU_ERR_CONFIG);
    resnet_clr v = RESNET_CLR_NONE;
    CHECK(resnet_parse_clr("clr-full", "model.clr", &v) == SOTU_OK && v == RESNET_CLR_ALL);
    CHECK(resnet_parse_clr("lora", "model.clr", &v) == SOTU_ERR_CONFIG);
    CHECK(strstr(sotu_last_error(), "model.clr") != NULL);
    resnet_free(NULL);
    resnet_model zero = {0};
    resnet_free(&zero);
}

/* 30 CLR-mode AdamW steps on one fixed batch; returns the final loss. */
static float clr_run(float *first_loss, double *running_moved)
{
    enum { B = 8, S = 12, K = 2, STEPS = 30 };
    sotu_rng data;
    sotu_rng_init(&data, 77, 0);
    float images[B * S * S];
    int32_t labels[B];
    for (int b = 0; b < B; b++) {
        labels[b] = b % K;
        for (int i = 0; i < S * S; i++)
            images[b * S * S + i] = sotu_rng_normal(&data) + (labels[b] ? 0.5f : -0.5f) *
                                                                 (i % S < S / 2 ? 1.0f : -1.0f);
    }
    resnet_model m;
    resnet_config c = config(18, 4, 1, S, K, true, RESNET_CLR_CONV3);
    CHECK(resnet_init(&m, &c, B) == SOTU_OK);
    resnet_init_random(&m, 5);
    CHECK(resnet_set_trainable(&m, "clr") == SOTU_OK);
    float *conv0 = malloc(m.table.t[0].count * sizeof *conv0);
    memcpy(conv0, m.params, m.table.t[0].count * sizeof *conv0);
    optim_config oc = optim_config_default(OPTIM_ADAMW);
    optim_state opt;
    CHECK(optim_init(&opt, &oc, &m.table, m.trainable) == SOTU_OK);
    float loss = 0;
    for (int s = 0; s < STEPS; s++) {
        resnet_zero_grad(&m);
        loss = resnet_forward(&m, images, labels, B);
        if (s == 0)
            *first_loss = loss;
        resnet_backward(&m);
        CHECK(optim_find_nonfinite(&m.table, m.trainable, m.grads) == -1);
        optim_step(&opt, m.params, m.grads, 1e-2f);
    }
    CHECK(m.num_batches_tracked == STEPS);
    CHECK(memcmp(conv0, m.params, m.table.t[0].count * sizeof *conv0) == 0);
    *running_moved = 0;
    for (int i = 0; i < m.buffers.n; i++) {
        const sotu_tensor_info *t = &m.buffers.t[i];
        double init = strstr(t->name, "running_var") ? 1.0 : 0.0;
        for (size_t k = 0; k < t->count; k++)
            *running_moved = fmax(*running_moved, fabs(m.running[t->offset + k] - init));
    }
    optim_free(&opt);
    free(conv0);
    resnet_free(&m);
    return loss;
}

static void test_clr_training(void)
{
    float first, first2;
    double moved, moved2;
    float last = clr_run(&first, &moved);
    float last2 = clr_run(&first2, &moved2);
    printf("CLR mode, 30 AdamW steps: loss %.4f -> %.4f (again: %.4f -> %.4f)\n", first, last,
           first2, last2);
    CHECK(last < 0.5f * first);
    CHECK(first == first2 && last == last2);
    CHECK(moved > 0.01);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 3;
    printf("seed %llu\n", (unsigned long long)seed);
    sotu_rng_init(&rng, seed, 0);
    sotu_threads_set(sotu_threads_default());
    test_torchvision_counts();
    test_clr_counts();
    test_identity_clr();
    test_config_errors();
    test_clr_training();
    return check_finish("test_resnet_model");
}
