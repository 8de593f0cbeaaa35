/* Resize, centre crop, channel conversion and normalisation (preprocess.h). */
#include "io/preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Per output position along one axis: the first input index and the
 * weights of taps consecutive inputs (unused taps weigh 0). */
typedef struct {
    int taps;
    int *first; /* [out] */
    float *w;   /* [out, taps] */
} axis_weights;

static void axis_free(axis_weights *a)
{
    free(a->first);
    free(a->w);
}

static int axis_init(axis_weights *a, int in, int out)
{
    double scale = (double)in / out;
    a->taps = in > out ? (int)ceil(scale) + 1 : 2;
    a->first = malloc(sizeof *a->first * (size_t)out);
    a->w = calloc((size_t)out * (size_t)a->taps, sizeof *a->w);
    if (!a->first || !a->w) {
        axis_free(a);
        return -1;
    }
    for (int o = 0; o < out; o++) {
        float *w = a->w + (size_t)o * a->taps;
        if (in > out) {
            /* Output o averages the input interval [lo, hi) by overlap. */
            double lo = o * scale, hi = (o + 1) * scale;
            int i0 = (int)floor(lo);
            a->first[o] = i0;
            for (int k = 0; k < a->taps && i0 + k < in; k++) {
                double l = fmax(lo, i0 + k), h = fmin(hi, i0 + k + 1);
                w[k] = h > l ? (float)((h - l) / scale) : 0.0f;
            }
        } else {
            double x = (o + 0.5) * scale - 0.5;
            if (x < 0)
                x = 0;
            if (x > in - 1)
                x = in - 1;
            int i0 = (int)floor(x);
            if (i0 > in - 2)
                i0 = in > 1 ? in - 2 : 0;
            double f = x - i0;
            a->first[o] = i0;
            w[0] = (float)(1.0 - f);
            if (in > 1)
                w[1] = (float)f;
        }
    }
    return 0;
}

int sotu_resize_f32(const float *src, int H, int W, int C, float *dst, int OH, int OW)
{
    if (H == OH && W == OW) {
        memcpy(dst, src, sizeof(float) * (size_t)H * W * C);
        return 0;
    }
    axis_weights ax = {0}, ay = {0};
    float *tmp = malloc(sizeof(float) * (size_t)H * OW * C);
    int rc = -1;
    if (!tmp || axis_init(&ax, W, OW) || axis_init(&ay, H, OH))
        goto cleanup;
    for (int y = 0; y < H; y++)
        for (int o = 0; o < OW; o++)
            for (int c = 0; c < C; c++) {
                float acc = 0.0f;
                for (int k = 0; k < ax.taps; k++) {
                    int x = ax.first[o] + k;
                    float w = ax.w[(size_t)o * ax.taps + k];
                    if (w != 0.0f)
                        acc += w * src[((size_t)y * W + x) * C + c];
                }
                tmp[((size_t)y * OW + o) * C + c] = acc;
            }
    for (int o = 0; o < OH; o++)
        for (int x = 0; x < OW; x++)
            for (int c = 0; c < C; c++) {
                float acc = 0.0f;
                for (int k = 0; k < ay.taps; k++) {
                    int y = ay.first[o] + k;
                    float w = ay.w[(size_t)o * ay.taps + k];
                    if (w != 0.0f)
                        acc += w * tmp[((size_t)y * OW + x) * C + c];
                }
                dst[((size_t)o * OW + x) * C + c] = acc;
            }
    rc = 0;
cleanup:
    axis_free(&ax);
    axis_free(&ay);
    free(tmp);
    return rc;
}

sotu_status sotu_preprocess_from_config(const sotu_config *cfg, int size, int channels,
                                        sotu_preprocess *p)
{
    static const float inet_mean[3] = {0.485f, 0.456f, 0.406f}, inet_std[3] = {0.229f, 0.224f,
                                                                               0.225f};
    memset(p, 0, sizeof *p);
    if (size < 1 || channels < 1)
        return sotu_error(SOTU_ERR_CONFIG, "preprocessing: image size %d, channels %d", size,
                          channels);
    p->size = size;
    p->channels = channels;
    p->crop_pct = cfg->data.crop_pct > 0 ? cfg->data.crop_pct : 1.0;
    for (int c = 0; c < 3; c++) {
        if (!strcmp(cfg->data.normalize, "imagenet")) {
            p->mean[c] = inet_mean[c];
            p->std[c] = inet_std[c];
        } else if (!strcmp(cfg->data.normalize, "inception")) {
            p->mean[c] = p->std[c] = 0.5f;
        } else if (!strcmp(cfg->data.normalize, "scalar") || !cfg->data.normalize[0]) {
            p->mean[c] = (float)cfg->data.mean;
            p->std[c] = (float)cfg->data.std;
        } else {
            return sotu_error(SOTU_ERR_CONFIG,
                              "data.normalize '%s': expected scalar, inception or imagenet",
                              cfg->data.normalize);
        }
    }
    return SOTU_OK;
}

sotu_status sotu_preprocess_images(const sotu_preprocess *p, const uint8_t *src, int n, int H,
                                   int W, int C, float *dst)
{
    int OC = p->channels, S = p->size;
    if (C != OC && !(C == 1 && OC == 3) && !(C == 3 && OC == 1) && !(C == 4 && OC == 3))
        return sotu_error(SOTU_ERR_DATA,
                          "preprocessing: images have %d channels, the model takes %d (only "
                          "1 -> 3, 3 -> 1 and 4 -> 3 convert)",
                          C, OC);
    /* timm/torchvision: shorter side to floor(S / crop_pct), the other in
     * proportion (truncated), then the centre S x S with rounded offsets. */
    int short_side = (int)floor(S / p->crop_pct + 1e-9);
    int RH, RW;
    if (H <= W) {
        RH = short_side;
        RW = (int)((int64_t)short_side * W / H);
    } else {
        RW = short_side;
        RH = (int)((int64_t)short_side * H / W);
    }
    if (p->crop_pct >= 1.0 && H == S && W == S)
        RH = RW = S;
    if (RH < S || RW < S)
        return sotu_error(SOTU_ERR_DATA, "preprocessing: %dx%d images resize to %dx%d, smaller "
                          "than the %dx%d crop", H, W, RH, RW, S, S);
    int top = (int)lround((RH - S) / 2.0), left = (int)lround((RW - S) / 2.0);
    size_t in_px = (size_t)H * W, rs_px = (size_t)RH * RW;
    float *img = malloc(sizeof(float) * in_px * OC), *rs = malloc(sizeof(float) * rs_px * OC);
    if (!img || !rs) {
        free(img);
        free(rs);
        return sotu_error(SOTU_ERR_NOMEM, "preprocessing: scratch for %dx%d images", RH, RW);
    }
    for (int i = 0; i < n; i++) {
        const uint8_t *s = src + (size_t)i * in_px * C;
        for (size_t q = 0; q < in_px; q++) {
            const uint8_t *px = s + q * C;
            float *o = img + q * OC;
            if (C == OC) {
                for (int c = 0; c < C; c++)
                    o[c] = px[c] / 255.0f;
            } else if (C == 1) {
                o[0] = o[1] = o[2] = px[0] / 255.0f;
            } else if (OC == 1) {
                o[0] = (0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2]) / 255.0f;
            } else {
                for (int c = 0; c < 3; c++)
                    o[c] = px[c] / 255.0f;
            }
        }
        if (sotu_resize_f32(img, H, W, OC, rs, RH, RW)) {
            free(img);
            free(rs);
            return sotu_error(SOTU_ERR_NOMEM, "preprocessing: resize scratch");
        }
        float *d = dst + (size_t)i * OC * S * S;
        for (int c = 0; c < OC; c++) {
            float m = p->mean[c < 3 ? c : 0], sd = p->std[c < 3 ? c : 0];
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++)
                    d[((size_t)c * S + y) * S + x] =
                        (rs[((size_t)(y + top) * RW + (x + left)) * OC + c] - m) / sd;
        }
    }
    free(img);
    free(rs);
    return SOTU_OK;
}
