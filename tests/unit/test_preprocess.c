/* io/preprocess: area/bilinear resize against hand-computed values, mean
 * preservation, centre crop, channel conversion, normalisations, and the
 * identity case against worker/finetune.h's conversion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/config.h"
#include "io/preprocess.h"
#include "worker/finetune.h"

static void test_resize(void)
{
    /* Shrinking by 2 averages 2x2 blocks exactly. */
    float src[16], dst[16];
    for (int i = 0; i < 16; i++)
        src[i] = (float)i;
    CHECK(sotu_resize_f32(src, 4, 4, 1, dst, 2, 2) == 0);
    CHECK_NEAR(dst[0], (0 + 1 + 4 + 5) / 4.0, 1e-6);
    CHECK_NEAR(dst[3], (10 + 11 + 14 + 15) / 4.0, 1e-6);

    /* Growing 2 -> 4 is bilinear with half-pixel centres, edges clamped. */
    const float two[2] = {0.0f, 1.0f};
    CHECK(sotu_resize_f32(two, 1, 2, 1, dst, 1, 4) == 0);
    CHECK_NEAR(dst[0], 0.0, 1e-6);
    CHECK_NEAR(dst[1], 0.25, 1e-6);
    CHECK_NEAR(dst[2], 0.75, 1e-6);
    CHECK_NEAR(dst[3], 1.0, 1e-6);

    /* A constant stays constant; area averaging keeps the mean (5 -> 3). */
    float img[7 * 5 * 2], out[11 * 9 * 2];
    for (int i = 0; i < 70; i++)
        img[i] = 0.5f;
    CHECK(sotu_resize_f32(img, 7, 5, 2, out, 11, 9) == 0);
    for (int i = 0; i < 11 * 9 * 2; i++)
        CHECK_NEAR(out[i], 0.5, 1e-6);
    float row[5] = {1, 2, 3, 4, 10}, r3[3];
    CHECK(sotu_resize_f32(row, 1, 5, 1, r3, 1, 3) == 0);
    CHECK_NEAR((r3[0] + r3[1] + r3[2]) / 3, 4.0, 1e-5);
    CHECK_NEAR(r3[0], (1 + 2 * (2.0 / 3)) / (5.0 / 3), 1e-5);
}

static void test_preprocess(void)
{
    sotu_config cfg;
    sotu_config_defaults(&cfg);
    sotu_preprocess p;

    /* Identity geometry, scalar normalisation == sotu_finetune_to_float. */
    enum { S = 6, C = 3, N = 2 };
    uint8_t im[N * S * S * C];
    for (int i = 0; i < N * S * S * C; i++)
        im[i] = (uint8_t)(i * 37 + 11);
    float a[N * C * S * S], b[N * C * S * S];
    CHECK(sotu_preprocess_from_config(&cfg, S, C, &p) == SOTU_OK);
    CHECK(sotu_preprocess_images(&p, im, N, S, S, C, a) == SOTU_OK);
    sotu_finetune_to_float(b, im, N, S, S, C, (float)cfg.data.mean, (float)cfg.data.std);
    float worst = 0;
    for (int i = 0; i < N * C * S * S; i++)
        worst = fmaxf(worst, fabsf(a[i] - b[i]));
    CHECK_MSG(worst < 1e-6f, "identity vs finetune_to_float: %g", (double)worst);

    /* ImageNet normalisation per channel. */
    CHECK(sotu_config_set(&cfg, "data.normalize=imagenet") == SOTU_OK);
    CHECK(sotu_preprocess_from_config(&cfg, S, C, &p) == SOTU_OK);
    CHECK(sotu_preprocess_images(&p, im, 1, S, S, C, a) == SOTU_OK);
    CHECK_NEAR(a[0], (im[0] / 255.0 - 0.485) / 0.229, 1e-5);
    CHECK_NEAR(a[S * S], (im[1] / 255.0 - 0.456) / 0.224, 1e-5);
    CHECK_NEAR(a[2 * S * S], (im[2] / 255.0 - 0.406) / 0.225, 1e-5);
    CHECK(sotu_config_set(&cfg, "data.normalize=inception") == SOTU_OK);
    CHECK(sotu_preprocess_from_config(&cfg, S, C, &p) == SOTU_OK);
    CHECK(p.mean[1] == 0.5f && p.std[2] == 0.5f);

    /* Centre crop: 8x8 images, crop_pct 6/8 keeps 8 and cuts offset 1. */
    CHECK(sotu_config_set(&cfg, "data.normalize=scalar") == SOTU_OK);
    CHECK(sotu_config_set(&cfg, "data.mean=0") == SOTU_OK);
    CHECK(sotu_config_set(&cfg, "data.std=1") == SOTU_OK);
    CHECK(sotu_config_set(&cfg, "data.crop_pct=0.75") == SOTU_OK);
    uint8_t big[8 * 8];
    for (int i = 0; i < 64; i++)
        big[i] = (uint8_t)(3 * i);
    float crop[S * S];
    CHECK(sotu_preprocess_from_config(&cfg, S, 1, &p) == SOTU_OK);
    CHECK(sotu_preprocess_images(&p, big, 1, 8, 8, 1, crop) == SOTU_OK);
    CHECK_NEAR(crop[0], big[1 * 8 + 1] / 255.0, 1e-6);
    CHECK_NEAR(crop[S * S - 1], big[6 * 8 + 6] / 255.0, 1e-6);

    /* Grey -> RGB repeats; RGB -> grey is luma; 2 channels do not convert. */
    CHECK(sotu_config_set(&cfg, "data.crop_pct=1") == SOTU_OK);
    uint8_t g[S * S];
    memset(g, 200, sizeof g);
    CHECK(sotu_preprocess_from_config(&cfg, S, 3, &p) == SOTU_OK);
    CHECK(sotu_preprocess_images(&p, g, 1, S, S, 1, a) == SOTU_OK);
    CHECK_NEAR(a[0], 200 / 255.0, 1e-6);
    CHECK_NEAR(a[2 * S * S + 5], 200 / 255.0, 1e-6);
    CHECK(sotu_preprocess_from_config(&cfg, S, 1, &p) == SOTU_OK);
    CHECK(sotu_preprocess_images(&p, im, 1, S, S, 3, a) == SOTU_OK);
    CHECK_NEAR(a[0], (0.299 * im[0] + 0.587 * im[1] + 0.114 * im[2]) / 255.0, 1e-5);
    CHECK(sotu_preprocess_images(&p, im, 1, S, S, 2, a) == SOTU_ERR_DATA);

    /* Smaller images grow to the model's size. */
    CHECK(sotu_preprocess_from_config(&cfg, 16, 1, &p) == SOTU_OK);
    float grown[16 * 16];
    CHECK(sotu_preprocess_images(&p, g, 1, S, S, 1, grown) == SOTU_OK);
    CHECK_NEAR(grown[100], 200 / 255.0, 1e-5);
}

int main(void)
{
    test_resize();
    test_preprocess();
    return check_finish("test_preprocess");
}
