/* Optimizers against hand-computed torch formulas (AdamW with and without
 * decay, SGD with momentum and L2), the warm-up + cosine schedule, gradient
 * clipping, the finiteness check and state only for trainable tensors. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "worker/optim.h"

/* Three tensors: "w" [2,3] (decays), "b" [3] (no decay), "pos_embed" [1,2,3]
 * (no decay). */
static sotu_tensor_info infos[3] = {
    {.name = "w", .ndim = 2, .shape = {2, 3}, .offset = 0, .count = 6},
    {.name = "b", .ndim = 1, .shape = {3}, .offset = 6, .count = 3},
    {.name = "pos_embed", .ndim = 3, .shape = {1, 2, 3}, .offset = 9, .count = 6},
};
static sotu_tensor_table tab = {.n = 3, .t = infos, .total = 15};

static void test_adamw(void)
{
    bool trainable[3] = {true, true, false};
    optim_config c = optim_config_default(OPTIM_ADAMW);
    c.weight_decay = 0.1f;
    optim_state o;
    CHECK(optim_init(&o, &c, &tab, trainable) == SOTU_OK);
    CHECK(o.moment_count == 9);
    float p[15], g[15];
    double ref[15], m[15] = {0}, v[15] = {0};
    for (int i = 0; i < 15; i++)
        ref[i] = p[i] = 0.5f - 0.1f * i;
    for (int step = 1; step <= 3; step++) {
        for (int i = 0; i < 15; i++)
            g[i] = 0.3f * (i % 4) - 0.4f + 0.05f * step;
        float lr = 0.01f * step;
        optim_step(&o, p, g, lr);
        for (int i = 0; i < 9; i++) {
            double wd = i < 6 ? 0.1 : 0.0;
            ref[i] *= 1.0 - (double)lr * wd;
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.999 * v[i] + 0.001 * (double)g[i] * g[i];
            double mh = m[i] / (1 - pow(0.9, step)), vh = sqrt(v[i]) / sqrt(1 - pow(0.999, step));
            ref[i] -= (double)lr * mh / (vh + 1e-8);
        }
    }
    for (int i = 0; i < 15; i++)
        CHECK_NEAR(p[i], ref[i], 2e-6);
    optim_free(&o);
    optim_free(&o);
}

static void test_sgd(void)
{
    bool trainable[3] = {true, true, true};
    optim_config c = optim_config_default(OPTIM_SGD);
    c.weight_decay = 0.2f;
    optim_state o;
    CHECK(optim_init(&o, &c, &tab, trainable) == SOTU_OK);
    CHECK(o.v == NULL && o.moment_count == 15);
    float p[15], g[15];
    double ref[15], buf[15] = {0};
    for (int i = 0; i < 15; i++)
        ref[i] = p[i] = 0.1f * i - 0.7f;
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < 15; i++)
            g[i] = 0.2f * ((i + step) % 3) - 0.1f;
        optim_step(&o, p, g, 0.05f);
        for (int i = 0; i < 15; i++) {
            double gi = g[i] + (i < 6 ? 0.2 * ref[i] : 0.0);
            buf[i] = 0.9 * buf[i] + gi;
            ref[i] -= 0.05 * buf[i];
        }
    }
    for (int i = 0; i < 15; i++)
        CHECK_NEAR(p[i], ref[i], 1e-6);
    optim_free(&o);
}

static void test_schedule(void)
{
    CHECK_NEAR(optim_lr_at(1.0f, 0, 100, 10), 0.1, 1e-7);
    CHECK_NEAR(optim_lr_at(1.0f, 9, 100, 10), 1.0, 1e-7);
    CHECK_NEAR(optim_lr_at(1.0f, 10, 100, 10), 1.0, 1e-7);
    CHECK_NEAR(optim_lr_at(1.0f, 55, 100, 10), 0.5, 1e-6);
    CHECK(optim_lr_at(1.0f, 99, 100, 10) < 1e-3f);
    CHECK_NEAR(optim_lr_at(2.0f, 0, 10, 0), 2.0, 1e-7);
}

static void test_clip_and_finite(void)
{
    bool trainable[3] = {true, false, true};
    float g[15] = {0};
    g[0] = 3.0f;
    g[9] = 4.0f;
    g[7] = 100.0f; /* frozen: ignored */
    CHECK_NEAR(optim_clip_grad_norm(&tab, trainable, g, 0.0f), 5.0, 1e-6);
    CHECK(g[0] == 3.0f);
    CHECK_NEAR(optim_clip_grad_norm(&tab, trainable, g, 1.0f), 5.0, 1e-6);
    CHECK_NEAR(g[0], 0.6, 1e-6);
    CHECK_NEAR(g[9], 0.8, 1e-6);
    CHECK(g[7] == 100.0f);
    CHECK(optim_find_nonfinite(&tab, trainable, g) == -1);
    g[7] = NAN;
    CHECK(optim_find_nonfinite(&tab, trainable, g) == -1);
    g[12] = INFINITY;
    CHECK(optim_find_nonfinite(&tab, trainable, g) == 2);
}

int main(void)
{
    test_adamw();
    test_sgd();
    test_schedule();
    test_clip_and_finite();
    return check_finish("test_optim");
}
