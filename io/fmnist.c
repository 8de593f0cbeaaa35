#include "io/fmnist.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/rng.h"
#include "io/fsutil.h"
#include "io/idx.h"

#define SIDE SOTU_FMNIST_SIDE
#define NPIX (SIDE * SIDE)
#define PATCH 7
#define GRID (SIDE / PATCH)
#define MAX_OPS 4

_Static_assert(SIDE % PATCH == 0, "patches tile the image");

const char *const sotu_fmnist_class_names[SOTU_FMNIST_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static const char *const fmnist5_recipes[] = {"rot90", "inv", "vflip", "gauss5", "pperm"};

/* Singles first, then pairs and triples, so every transform appears alone
 * and combined. */
static const char *const fmnist53_recipes[] = {
    "orig",         "rot90",          "rot180",          "rot270",
    "rot15",        "rotm15",         "rot30",           "rotm30",
    "rot45",        "hflip",          "vflip",           "inv",
    "pperm",        "xperm",          "box3",            "box5",
    "gauss3",       "gauss5",         "zoom20",          "zoom16",
    "lowcon",       "highcon",        "rot90+inv",       "rot180+inv",
    "hflip+inv",    "vflip+rot90",    "hflip+rot270",    "rot15+gauss3",
    "rotm30+box3",  "inv+gauss5",     "pperm+inv",       "pperm+rot90",
    "pperm+hflip",  "xperm+inv",      "zoom20+rot90",    "zoom16+inv",
    "zoom20+hflip", "lowcon+inv",     "highcon+box3",    "lowcon+rot180",
    "gauss3+highcon", "rot45+inv",    "vflip+gauss5",    "zoom20+rotm15",
    "box5+inv",     "pperm+gauss3",   "rot270+lowcon",   "hflip+vflip+inv",
    "rot90+zoom20+gauss3", "rot30+inv+box3", "pperm+vflip+highcon",
    "rot15+zoom20+lowcon", "inv+rot180+gauss5"};

enum {
    N_FMNIST5 = 5,
    N_FMNIST53 = sizeof fmnist53_recipes / sizeof fmnist53_recipes[0],
    N_SPLIT5 = 5,
    N_SPLIT10 = 10
};
_Static_assert(N_FMNIST53 == 53, "fmnist53 has 53 tasks");

/* ------------------------------------------------------------------------ */
/* Transforms                                                               */
/* ------------------------------------------------------------------------ */

typedef enum {
    OP_ORIG, OP_ROT90, OP_ROT180, OP_ROT270, OP_ROT15, OP_ROT30, OP_ROT45, OP_ROTM15,
    OP_ROTM30, OP_HFLIP, OP_VFLIP, OP_INV, OP_PPERM, OP_XPERM, OP_BOX3, OP_BOX5, OP_GAUSS3,
    OP_GAUSS5, OP_ZOOM20, OP_ZOOM16, OP_LOWCON, OP_HIGHCON, OP_COUNT_
} op_kind;

static const char *const op_names[OP_COUNT_] = {
    "orig",  "rot90", "rot180", "rot270", "rot15",  "rot30",  "rot45",  "rotm15",
    "rotm30", "hflip", "vflip", "inv",    "pperm",  "xperm",  "box3",   "box5",
    "gauss3", "gauss5", "zoom20", "zoom16", "lowcon", "highcon"};

typedef struct {
    int n_ops;
    op_kind ops[MAX_OPS];
    int32_t patch_perm[GRID * GRID];
    int32_t pixel_perm[NPIX];
} transform;

static sotu_status transform_init(transform *tf, const char *recipe, uint64_t seed, int task)
{
    memset(tf, 0, sizeof *tf);
    char buf[64];
    if (strlen(recipe) >= sizeof buf)
        return sotu_error(SOTU_ERR_USAGE, "recipe '%s' is too long", recipe);
    snprintf(buf, sizeof buf, "%s", recipe);
    char *save = NULL;
    for (char *tok = strtok_r(buf, "+", &save); tok; tok = strtok_r(NULL, "+", &save)) {
        int k = 0;
        while (k < OP_COUNT_ && strcmp(op_names[k], tok))
            k++;
        if (k == OP_COUNT_)
            return sotu_error(SOTU_ERR_USAGE, "recipe '%s': unknown transform '%s'", recipe, tok);
        if (tf->n_ops == MAX_OPS)
            return sotu_error(SOTU_ERR_USAGE, "recipe '%s': more than %d transforms", recipe,
                              MAX_OPS);
        tf->ops[tf->n_ops++] = (op_kind)k;
    }
    if (tf->n_ops == 0)
        return sotu_error(SOTU_ERR_USAGE, "recipe '%s' is empty", recipe);
    sotu_rng r;
    sotu_rng_init(&r, seed, SOTU_STREAM_DATA + ((uint64_t)(task + 1) << 8) + ((uint64_t)2 << 32));
    sotu_rng_permutation(&r, tf->patch_perm, GRID * GRID);
    sotu_rng_permutation(&r, tf->pixel_perm, NPIX);
    return SOTU_OK;
}

static float clampf(float v) { return v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v; }

/* Bilinear sample of src at (x, y) in pixel coordinates; zero outside. */
static float sample(const float *src, float x, float y)
{
    int x0 = (int)floorf(x), y0 = (int)floorf(y);
    float fx = x - (float)x0, fy = y - (float)y0, v = 0.0f;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            int xx = x0 + dx, yy = y0 + dy;
            if (xx < 0 || yy < 0 || xx >= SIDE || yy >= SIDE)
                continue;
            float w = (dx ? fx : 1.0f - fx) * (dy ? fy : 1.0f - fy);
            v += w * src[yy * SIDE + xx];
        }
    return v;
}

static void rotate(const float *src, float *dst, float degrees)
{
    const float c = (SIDE - 1) * 0.5f, a = degrees * (float)M_PI / 180.0f;
    const float ca = cosf(a), sa = sinf(a);
    /* Counter-clockwise on screen (y down): the inverse map rotates back. */
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            float dx = (float)x - c, dy = (float)y - c;
            dst[y * SIDE + x] = sample(src, c + ca * dx - sa * dy, c + sa * dx + ca * dy);
        }
}

static void zoom(const float *src, float *dst, int crop)
{
    const float o = (float)(SIDE - crop) * 0.5f, scale = (float)crop / (float)SIDE;
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++)
            dst[y * SIDE + x] = sample(src, o + ((float)x + 0.5f) * scale - 0.5f,
                                    o + ((float)y + 0.5f) * scale - 0.5f);
}

/* Separable blur with kernel w[0..k) (sum 1), edges clamped. */
static void blur(const float *src, float *dst, const float *w, int k)
{
    float tmp[NPIX];
    int h = k / 2;
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            float v = 0.0f;
            for (int i = 0; i < k; i++) {
                int xx = x + i - h;
                xx = xx < 0 ? 0 : xx >= SIDE ? SIDE - 1 : xx;
                v += w[i] * src[y * SIDE + xx];
            }
            tmp[y * SIDE + x] = v;
        }
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            float v = 0.0f;
            for (int i = 0; i < k; i++) {
                int yy = y + i - h;
                yy = yy < 0 ? 0 : yy >= SIDE ? SIDE - 1 : yy;
                v += w[i] * tmp[yy * SIDE + x];
            }
            dst[y * SIDE + x] = v;
        }
}

static void apply_op(const transform *tf, op_kind op, const float *src, float *dst)
{
    static const float box3[3] = {1.f / 3, 1.f / 3, 1.f / 3};
    static const float box5[5] = {0.2f, 0.2f, 0.2f, 0.2f, 0.2f};
    static const float gauss3[3] = {0.25f, 0.5f, 0.25f};
    static const float gauss5[5] = {1.f / 16, 4.f / 16, 6.f / 16, 4.f / 16, 1.f / 16};
    switch (op) {
    case OP_ORIG: memcpy(dst, src, NPIX * sizeof *dst); break;
    case OP_ROT90:
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++)
                dst[y * SIDE + x] = src[x * SIDE + (SIDE - 1 - y)];
        break;
    case OP_ROT180:
        for (int i = 0; i < NPIX; i++)
            dst[i] = src[NPIX - 1 - i];
        break;
    case OP_ROT270:
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++)
                dst[y * SIDE + x] = src[(SIDE - 1 - x) * SIDE + y];
        break;
    case OP_ROT15: rotate(src, dst, 15.0f); break;
    case OP_ROT30: rotate(src, dst, 30.0f); break;
    case OP_ROT45: rotate(src, dst, 45.0f); break;
    case OP_ROTM15: rotate(src, dst, -15.0f); break;
    case OP_ROTM30: rotate(src, dst, -30.0f); break;
    case OP_HFLIP:
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++)
                dst[y * SIDE + x] = src[y * SIDE + (SIDE - 1 - x)];
        break;
    case OP_VFLIP:
        for (int y = 0; y < SIDE; y++)
            memcpy(dst + y * SIDE, src + (SIDE - 1 - y) * SIDE, SIDE * sizeof *dst);
        break;
    case OP_INV:
        for (int i = 0; i < NPIX; i++)
            dst[i] = 255.0f - src[i];
        break;
    case OP_PPERM:
        for (int p = 0; p < GRID * GRID; p++) {
            int q = tf->patch_perm[p];
            int py = p / GRID * PATCH, px = p % GRID * PATCH;
            int qy = q / GRID * PATCH, qx = q % GRID * PATCH;
            for (int y = 0; y < PATCH; y++)
                memcpy(dst + (py + y) * SIDE + px, src + (qy + y) * SIDE + qx, PATCH * sizeof *dst);
        }
        break;
    case OP_XPERM:
        for (int i = 0; i < NPIX; i++)
            dst[i] = src[tf->pixel_perm[i]];
        break;
    case OP_BOX3: blur(src, dst, box3, 3); break;
    case OP_BOX5: blur(src, dst, box5, 5); break;
    case OP_GAUSS3: blur(src, dst, gauss3, 3); break;
    case OP_GAUSS5: blur(src, dst, gauss5, 5); break;
    case OP_ZOOM20: zoom(src, dst, 20); break;
    case OP_ZOOM16: zoom(src, dst, 16); break;
    case OP_LOWCON:
        for (int i = 0; i < NPIX; i++)
            dst[i] = clampf(128.0f + 0.5f * (src[i] - 128.0f));
        break;
    case OP_HIGHCON:
        for (int i = 0; i < NPIX; i++)
            dst[i] = clampf(128.0f + 1.8f * (src[i] - 128.0f));
        break;
    case OP_COUNT_: assert(0); break;
    }
}

static void transform_image(const transform *tf, const uint8_t *src, uint8_t *dst)
{
    float a[NPIX], b[NPIX];
    for (int i = 0; i < NPIX; i++)
        a[i] = src[i];
    float *cur = a, *next = b;
    for (int k = 0; k < tf->n_ops; k++) {
        apply_op(tf, tf->ops[k], cur, next);
        float *t = cur;
        cur = next;
        next = t;
    }
    for (int i = 0; i < NPIX; i++)
        dst[i] = (uint8_t)lrintf(clampf(cur[i]));
}

sotu_status sotu_fmnist_transform(const char *recipe, uint64_t seed, int task,
                                  const uint8_t *src, uint8_t *dst, int32_t n)
{
    transform *tf = malloc(sizeof *tf);
    if (!tf)
        return sotu_error(SOTU_ERR_NOMEM, "cannot allocate a transform");
    sotu_status s = transform_init(tf, recipe, seed, task);
    if (s == SOTU_OK)
        for (int32_t i = 0; i < n; i++)
            transform_image(tf, src + (size_t)i * NPIX, dst + (size_t)i * NPIX);
    free(tf);
    return s;
}

/* ------------------------------------------------------------------------ */
/* Presets                                                                  */
/* ------------------------------------------------------------------------ */

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

bool sotu_fmnist_preset_shared(const char *preset)
{
    return !strcmp(preset, "split5") || !strcmp(preset, "split10");
}

int sotu_fmnist_plan(const char *preset, const char *shared_recipe, uint64_t seed,
                     sotu_fmnist_task_plan *plan, int cap)
{
    int n;
    if (!strcmp(preset, "fmnist5"))
        n = N_FMNIST5;
    else if (!strcmp(preset, "fmnist53"))
        n = N_FMNIST53;
    else if (!strcmp(preset, "split5"))
        n = N_SPLIT5;
    else if (!strcmp(preset, "split10"))
        n = N_SPLIT10;
    else
        return 0;
    bool shared = sotu_fmnist_preset_shared(preset);
    sotu_rng r;
    sotu_rng_init(&r, seed, SOTU_STREAM_DATA);
    for (int t = 0; t < n && t < cap; t++) {
        sotu_fmnist_task_plan *p = &plan[t];
        memset(p, 0, sizeof *p);
        if (shared) {
            /* Disjoint classes in Fashion-MNIST order, one recipe for all. */
            int k = SOTU_FMNIST_CLASSES / n;
            snprintf(p->recipe, sizeof p->recipe, "%s", shared_recipe ? shared_recipe : "orig");
            p->classes = k;
            for (int i = 0; i < k; i++)
                p->class_ids[i] = k * t + i;
        } else if (n == N_FMNIST5) {
            snprintf(p->recipe, sizeof p->recipe, "%s", fmnist5_recipes[t]);
            p->classes = 2;
            p->class_ids[0] = 2 * t;
            p->class_ids[1] = 2 * t + 1;
        } else {
            int32_t perm[SOTU_FMNIST_CLASSES];
            snprintf(p->recipe, sizeof p->recipe, "%s", fmnist53_recipes[t]);
            p->classes = 2 + (int)sotu_rng_below(&r, SOTU_FMNIST_CLASSES - 1);
            sotu_rng_permutation(&r, perm, SOTU_FMNIST_CLASSES);
            for (int i = 0; i < p->classes; i++)
                p->class_ids[i] = perm[i];
            qsort(p->class_ids, (size_t)p->classes, sizeof p->class_ids[0], cmp_int);
        }
        snprintf(p->name, sizeof p->name, "t%02d-%s-%dcls", t, p->recipe, p->classes);
        snprintf(p->file, sizeof p->file, "t%02d.h5", t);
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Building                                                                 */
/* ------------------------------------------------------------------------ */

/* One IDX split with its indices grouped by class. */
typedef struct {
    sotu_idx images, labels;
    int32_t *by_class[SOTU_FMNIST_CLASSES];
    int32_t count[SOTU_FMNIST_CLASSES];
    const char *name; /* "train" | "test" */
} split;

static void split_free(split *sp)
{
    sotu_idx_free(&sp->images);
    sotu_idx_free(&sp->labels);
    for (int c = 0; c < SOTU_FMNIST_CLASSES; c++)
        free(sp->by_class[c]);
}

static sotu_status split_load(split *sp, const char *dir, const char *prefix, const char *name)
{
    char ipath[SOTU_PATH_MAX], lpath[SOTU_PATH_MAX], file[64];
    snprintf(file, sizeof file, "%s-images-idx3-ubyte.gz", prefix);
    sotu_path_join(ipath, sizeof ipath, dir, file);
    snprintf(file, sizeof file, "%s-labels-idx1-ubyte.gz", prefix);
    sotu_path_join(lpath, sizeof lpath, dir, file);
    sp->name = name;
    sotu_status s = sotu_idx_read(ipath, SOTU_IDX_MAGIC_IMAGES, &sp->images);
    if (s == SOTU_OK)
        s = sotu_idx_read(lpath, SOTU_IDX_MAGIC_LABELS, &sp->labels);
    if (s != SOTU_OK)
        return s;
    if (sp->images.rows != SIDE || sp->images.cols != SIDE)
        return sotu_error(SOTU_ERR_DATA, "%s: images are %dx%d, expected %dx%d", ipath,
                          sp->images.rows, sp->images.cols, SIDE, SIDE);
    if (sp->images.n != sp->labels.n)
        return sotu_error(SOTU_ERR_DATA, "%s has %d labels but %s has %d images", lpath,
                          sp->labels.n, ipath, sp->images.n);
    for (int32_t i = 0; i < sp->labels.n; i++) {
        uint8_t l = sp->labels.data[i];
        if (l >= SOTU_FMNIST_CLASSES)
            return sotu_error(SOTU_ERR_DATA, "%s: label %d of item %d, expected 0..%d", lpath,
                              l, (int)i, SOTU_FMNIST_CLASSES - 1);
        sp->count[l]++;
    }
    for (int c = 0; c < SOTU_FMNIST_CLASSES; c++) {
        sp->by_class[c] = malloc(((size_t)sp->count[c] + 1) * sizeof(int32_t));
        if (!sp->by_class[c])
            return sotu_error(SOTU_ERR_NOMEM, "cannot allocate the %s class index", name);
        sp->count[c] = 0;
    }
    for (int32_t i = 0; i < sp->labels.n; i++) {
        uint8_t l = sp->labels.data[i];
        sp->by_class[l][sp->count[l]++] = i;
    }
    return SOTU_OK;
}

/* Draws n items of plan's classes from sp without replacement, balanced as
 * far as the class counts allow, shuffled; writes transformed images and
 * local labels. */
static sotu_status draw(const split *sp, const sotu_fmnist_task_plan *plan, const transform *tf,
                        uint64_t seed, int task, int purpose, int32_t n, uint8_t *images,
                        int32_t *labels)
{
    const int k = plan->classes;
    int32_t quota[SOTU_FMNIST_CLASSES] = {0}, order[SOTU_FMNIST_CLASSES];
    int64_t avail = 0;
    for (int i = 0; i < k; i++)
        avail += sp->count[plan->class_ids[i]];
    if (n > avail)
        return sotu_error(SOTU_ERR_USAGE,
                          "task %s: %d %s images requested, its %d classes have only %lld", plan->name,
                          (int)n, sp->name, k, (long long)avail);
    sotu_rng r;
    sotu_rng_init(&r, seed, SOTU_STREAM_DATA + ((uint64_t)(task + 1) << 8) +
                                ((uint64_t)purpose << 32));
    sotu_rng_permutation(&r, order, k);
    /* Round robin in a random class order: the first n % k classes get one
     * more, and a class that runs out hands its share to the others. */
    for (int32_t left = n; left > 0;)
        for (int j = 0; j < k && left > 0; j++) {
            int i = order[j];
            if (quota[i] < sp->count[plan->class_ids[i]]) {
                quota[i]++;
                left--;
            }
        }

    sotu_status s = SOTU_OK;
    int32_t *pick = malloc(((size_t)n + 1) * sizeof *pick);
    int32_t *local = malloc(((size_t)n + 1) * sizeof *local);
    int32_t *perm = malloc(((size_t)n + 1) * sizeof *perm);
    int32_t *pool = malloc(((size_t)sp->images.n + 1) * sizeof *pool);
    if (!pick || !local || !perm || !pool) {
        s = sotu_error(SOTU_ERR_NOMEM, "task %s: cannot allocate %d indices", plan->name, (int)n);
        goto cleanup;
    }
    int32_t m = 0;
    for (int i = 0; i < k; i++) {
        int c = plan->class_ids[i];
        int32_t cnt = sp->count[c];
        memcpy(pool, sp->by_class[c], (size_t)cnt * sizeof *pool);
        for (int32_t j = 0; j < quota[i]; j++) {
            int32_t x = j + (int32_t)sotu_rng_below(&r, (uint64_t)(cnt - j));
            int32_t t = pool[j];
            pool[j] = pool[x];
            pool[x] = t;
            pick[m] = pool[j];
            local[m] = i;
            m++;
        }
    }
    assert(m == n);
    sotu_rng_permutation(&r, perm, n);
    for (int32_t j = 0; j < n; j++) {
        int32_t src = pick[perm[j]];
        transform_image(tf, sp->images.data + (size_t)src * NPIX, images + (size_t)j * NPIX);
        labels[j] = local[perm[j]];
    }
cleanup:
    free(pick);
    free(local);
    free(perm);
    free(pool);
    return s;
}

static sotu_status build_task(const sotu_fmnist_options *o, const split *train, const split *test,
                              const sotu_fmnist_task_plan *plan, int t, int32_t n_train,
                              int32_t n_test, const char *path)
{
    sotu_taskset ts = {0};
    transform *tf = malloc(sizeof *tf);
    sotu_status s = SOTU_OK;
    char(*names)[SOTU_TASK_NAME_MAX] = calloc((size_t)plan->classes, sizeof *names);
    ts.train_images = malloc((size_t)n_train * NPIX + 1);
    ts.train_labels = malloc(((size_t)n_train + 1) * sizeof(int32_t));
    ts.test_images = malloc((size_t)n_test * NPIX + 1);
    ts.test_labels = malloc(((size_t)n_test + 1) * sizeof(int32_t));
    if (!tf || !names || !ts.train_images || !ts.train_labels || !ts.test_images ||
        !ts.test_labels) {
        s = sotu_error(SOTU_ERR_NOMEM, "task %s: cannot allocate its images", plan->name);
        goto cleanup;
    }
    /* The single-domain presets share task 0's permutations (one domain). */
    int tf_task = sotu_fmnist_preset_shared(o->preset) ? 0 : t;
    if ((s = transform_init(tf, plan->recipe, o->seed, tf_task)) != SOTU_OK)
        goto cleanup;
    snprintf(ts.name, sizeof ts.name, "%s", plan->name);
    ts.classes = plan->classes;
    for (int i = 0; i < plan->classes; i++)
        snprintf(names[i], sizeof names[i], "%s", sotu_fmnist_class_names[plan->class_ids[i]]);
    ts.class_names = names;
    ts.height = ts.width = SIDE;
    ts.channels = 1;
    ts.n_train = n_train;
    ts.n_test = n_test;
    s = draw(train, plan, tf, o->seed, t, 0, n_train, ts.train_images, ts.train_labels);
    if (s == SOTU_OK)
        s = draw(test, plan, tf, o->seed, t, 1, n_test, ts.test_images, ts.test_labels);
    if (s == SOTU_OK)
        s = sotu_taskset_write(path, &ts);
cleanup:
    ts.class_names = NULL;
    free(names);
    free(tf);
    sotu_taskset_free(&ts);
    return s;
}

sotu_status sotu_fmnist_build(const sotu_fmnist_options *o)
{
    sotu_fmnist_task_plan plan[N_FMNIST53];
    int n = sotu_fmnist_plan(o->preset, o->transform, o->seed, plan, N_FMNIST53);
    if (n == 0)
        return sotu_error(SOTU_ERR_USAGE,
                          "unknown preset '%s', expected fmnist5, fmnist53, split5 or split10",
                          o->preset);
    bool shared = sotu_fmnist_preset_shared(o->preset);
    if (shared != (o->transform != NULL))
        return sotu_error(SOTU_ERR_USAGE, shared ? "preset %s needs a transform (--transform)"
                                                 : "preset %s has its own transforms: "
                                                   "--transform is for split5 and split10",
                          o->preset);
    if (shared) {
        sotu_status v = sotu_fmnist_transform(o->transform, o->seed, 0, NULL, NULL, 0);
        if (v != SOTU_OK)
            return v;
    }
    int32_t n_train = o->n_train > 0 ? o->n_train : SOTU_FMNIST_DEFAULT_TRAIN;
    int32_t n_test = o->n_test > 0 ? o->n_test : SOTU_FMNIST_DEFAULT_TEST;
    const char *dir = o->data_dir ? o->data_dir : SOTU_FMNIST_DEFAULT_DIR;

    split train = {0}, test = {0};
    sotu_manifest m = {0};
    sotu_progress prog;
    double t0 = sotu_now();
    sotu_status s = split_load(&train, dir, "train", "train");
    if (s == SOTU_OK)
        s = split_load(&test, dir, "t10k", "test");
    if (s == SOTU_ERR_IO && !o->data_dir) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sotu_last_error());
        s = sotu_error(s, "%s (install Debian's dataset-fashion-mnist or pass --data-dir)", msg);
    }
    if (s != SOTU_OK)
        goto cleanup;
    SOTU_INFO("read Fashion-MNIST from %s: %d train, %d test images (%.2fs)", dir, train.images.n,
              test.images.n, sotu_now() - t0);
    if ((s = sotu_mkdirs(o->out_dir)) != SOTU_OK)
        goto cleanup;

    m.tasks = calloc((size_t)n, sizeof *m.tasks);
    if (!m.tasks) {
        s = sotu_error(SOTU_ERR_NOMEM, "cannot allocate the manifest");
        goto cleanup;
    }
    m.n_tasks = n;
    if (shared)
        snprintf(m.name, sizeof m.name, "%s-%s", o->preset, o->transform);
    else
        snprintf(m.name, sizeof m.name, "%s", o->preset);
    sotu_progress_begin(&prog, o->preset, "tasks", n);
    for (int t = 0; t < n; t++) {
        sotu_manifest_task *mt = &m.tasks[t];
        snprintf(mt->name, sizeof mt->name, "%s", plan[t].name);
        snprintf(mt->file, sizeof mt->file, "%s", plan[t].file);
        sotu_path_join(mt->path, sizeof mt->path, o->out_dir, plan[t].file);
        mt->classes = plan[t].classes;
        mt->n_train = n_train;
        mt->n_test = n_test;
        s = build_task(o, &train, &test, &plan[t], t, n_train, n_test, mt->path);
        if (s != SOTU_OK)
            goto cleanup;
        SOTU_DEBUG("wrote %s (%s: %d classes, %d train, %d test)", mt->path, mt->name,
                   mt->classes, (int)n_train, (int)n_test);
        sotu_progress_update(&prog, t + 1, mt->name);
    }
    sotu_progress_end(&prog);
    char mpath[SOTU_PATH_MAX];
    sotu_path_join(mpath, sizeof mpath, o->out_dir, "manifest.yaml");
    if ((s = sotu_manifest_write(mpath, &m)) != SOTU_OK)
        goto cleanup;
    SOTU_INFO("wrote %s: %d tasks, %d train + %d test images each (%.2fs)", mpath, n,
              (int)n_train, (int)n_test, sotu_now() - t0);
cleanup:
    sotu_manifest_free(&m);
    split_free(&train);
    split_free(&test);
    return s;
}
