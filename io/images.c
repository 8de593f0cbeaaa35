/* PNG/JPEG decoding (stb_image) and image-folder datasets (images.h). */
#include "io/images.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/rng.h"
#include "io/fsutil.h"
#include "io/preprocess.h"

/* stb_image is a single-header library: its implementation is compiled
 * here, static to this file, for PNG and JPEG only. */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STBI_MAX_DIMENSIONS 16384
/* Declared static but unused parts of the library are reported at the end
 * of the file, so this one stays off for the whole file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wmisleading-indentation"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

#define IMAGE_FILE_MAX ((size_t)1 << 28)    /* bytes of one encoded image */
#define IMAGE_PIXELS_MAX ((int64_t)1 << 28) /* decoded width x height */

/* 0 if a JPEG stream holds a Huffman table with more than 256 codes. The
 * stb_image packaged in Debian 12 writes past its tables on such input
 * (fixed upstream in stb_image 2.28), so these files are refused before
 * decoding. Walks the marker segments, skipping entropy-coded data; bytes
 * past the end count as 0, as stb reads them. */
static int jpeg_tables_ok(const uint8_t *p, size_t n)
{
    if (n < 2 || p[0] != 0xFF || p[1] != 0xD8)
        return 1;
    size_t i = 2;
    while (i + 4 <= n) {
        uint8_t m = p[i + 1];
        if (p[i] != 0xFF || m == 0xFF) {
            i++;
            continue;
        }
        if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
            i += 2;
            continue;
        }
        if (m == 0xD9)
            break;
        size_t len = (size_t)p[i + 2] << 8 | p[i + 3];
        if (m == 0xC4) {
            size_t q = i + 4, end = i + 2 + len;
            while (q < end && q < n) {
                size_t codes = 0;
                for (size_t k = 1; k <= 16 && q + k < n; k++)
                    codes += p[q + k];
                if (codes > 256)
                    return 0;
                q += 17 + codes;
            }
        }
        if (len < 2)
            break;
        i += 2 + len;
        if (m == 0xDA)
            while (i + 1 < n && !(p[i] == 0xFF && p[i + 1] != 0x00 &&
                                  !(p[i + 1] >= 0xD0 && p[i + 1] <= 0xD7)))
                i++;
    }
    return 1;
}

sotu_status sotu_image_load(const char *path, int channels, sotu_image *img)
{
    memset(img, 0, sizeof *img);
    char *data = NULL;
    size_t n = 0;
    sotu_status s = sotu_read_file(path, IMAGE_FILE_MAX, &data, &n);
    if (s != SOTU_OK)
        return s;
    int w, h, c;
    if (!jpeg_tables_ok((const uint8_t *)data, n)) {
        s = sotu_error(SOTU_ERR_DATA, "%s: not a readable JPEG image (a Huffman table has more "
                       "than 256 codes)", path);
        goto cleanup;
    }
    if (n > INT32_MAX || !stbi_info_from_memory((const stbi_uc *)data, (int)n, &w, &h, &c)) {
        s = sotu_error(SOTU_ERR_DATA, "%s: not a readable PNG or JPEG image (%s)", path,
                       stbi_failure_reason() ? stbi_failure_reason() : "unknown format");
        goto cleanup;
    }
    if ((int64_t)w * h > IMAGE_PIXELS_MAX) {
        s = sotu_error(SOTU_ERR_DATA, "%s: %dx%d pixels, more than the limit of %lld", path, w, h,
                       (long long)IMAGE_PIXELS_MAX);
        goto cleanup;
    }
    img->pixels = stbi_load_from_memory((const stbi_uc *)data, (int)n, &w, &h, &c, 3);
    if (!img->pixels) {
        s = sotu_error(SOTU_ERR_DATA, "%s: cannot decode the image (%s)", path,
                       stbi_failure_reason() ? stbi_failure_reason() : "unknown error");
        goto cleanup;
    }
    /* Greyscale from RGB with the luma weights of io/preprocess.h, so PNG
     * and JPEG sources convert alike (stb would take JPEG's Y plane). */
    if (channels == 1)
        for (size_t i = 0; i < (size_t)w * h; i++) {
            const stbi_uc *px = img->pixels + 3 * i;
            float y = 0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2] + 0.5f;
            img->pixels[i] = (stbi_uc)(y > 255.0f ? 255.0f : y);
        }
    img->width = w;
    img->height = h;
    img->channels = channels;
cleanup:
    free(data);
    return s;
}

void sotu_image_free(sotu_image *img)
{
    if (!img)
        return;
    stbi_image_free(img->pixels);
    memset(img, 0, sizeof *img);
}

sotu_status sotu_image_fit(const sotu_image *img, int size, uint8_t *dst)
{
    int H = img->height, W = img->width, C = img->channels;
    int RH = H <= W ? size : (int)((int64_t)size * H / W);
    int RW = H <= W ? (int)((int64_t)size * W / H) : size;
    if (RH < size)
        RH = size;
    if (RW < size)
        RW = size;
    float *in = malloc(sizeof(float) * (size_t)H * W * C);
    float *out = malloc(sizeof(float) * (size_t)RH * RW * C);
    sotu_status s = SOTU_OK;
    if (!in || !out) {
        s = sotu_error(SOTU_ERR_NOMEM, "cannot allocate resize buffers for a %dx%d image", W, H);
        goto cleanup;
    }
    for (size_t i = 0; i < (size_t)H * W * C; i++)
        in[i] = img->pixels[i];
    if (sotu_resize_f32(in, H, W, C, out, RH, RW)) {
        s = sotu_error(SOTU_ERR_NOMEM, "cannot allocate resize buffers for a %dx%d image", W, H);
        goto cleanup;
    }
    int top = (RH - size) / 2, left = (RW - size) / 2;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            for (int c = 0; c < C; c++) {
                float v = out[((size_t)(y + top) * RW + (x + left)) * C + c] + 0.5f;
                dst[((size_t)y * size + x) * C + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
cleanup:
    free(in);
    free(out);
    return s;
}

/* ------------------------------------------------------------------------ */
/* Folders                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    int n;
    char **names; /* sorted */
} name_list;

static void names_free(name_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    l->n = 0;
    l->names = NULL;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The non-hidden entries of dir that are directories (dirs) or regular
 * files (!dirs), sorted by name. */
static sotu_status list_dir(const char *dir, int dirs, name_list *out)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d)
        return sotu_error(SOTU_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    sotu_status s = SOTU_OK;
    int cap = 0;
    struct dirent *e;
    char path[SOTU_PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        sotu_path_join(path, sizeof path, dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0 || (dirs ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode)))
            continue;
        if (out->n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(out->names, sizeof *p * (size_t)cap);
            if (!p) {
                s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot list the directory", dir);
                break;
            }
            out->names = p;
        }
        if (!(out->names[out->n] = strdup(e->d_name))) {
            s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot list the directory", dir);
            break;
        }
        out->n++;
    }
    closedir(d);
    if (s != SOTU_OK) {
        names_free(out);
        return s;
    }
    if (out->n)
        qsort(out->names, (size_t)out->n, sizeof *out->names, cmp_names);
    return SOTU_OK;
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") ||
                   !strcasecmp(dot, ".jpeg"));
}

typedef struct {
    char *path;
    int32_t label;
    int test;
} entry;

typedef struct {
    int n, cap;
    entry *e;
} entry_list;

static sotu_status push_entry(entry_list *l, const char *path, int32_t label, int test)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        entry *p = realloc(l->e, sizeof *p * (size_t)cap);
        if (!p)
            return sotu_error(SOTU_ERR_NOMEM, "cannot allocate the image list");
        l->e = p;
        l->cap = cap;
    }
    if (!(l->e[l->n].path = strdup(path)))
        return sotu_error(SOTU_ERR_NOMEM, "cannot allocate the image list");
    l->e[l->n].label = label;
    l->e[l->n].test = test;
    l->n++;
    return SOTU_OK;
}

/* Appends the images of dir (class label) to l; split -1 splits them by
 * ratio with a seeded shuffle, else every image goes to that split. */
static sotu_status add_class(entry_list *l, const char *dir, int32_t label, int split,
                             const sotu_image_folder_options *o, int64_t *ignored, int *count)
{
    name_list files;
    sotu_status s = list_dir(dir, 0, &files);
    if (s != SOTU_OK)
        return s;
    int n = 0;
    for (int i = 0; i < files.n; i++) {
        if (is_image_name(files.names[i]))
            files.names[n++] = files.names[i];
        else {
            (*ignored)++;
            SOTU_DEBUG("%s/%s: ignored (not .png/.jpg/.jpeg)", dir, files.names[i]);
            free(files.names[i]);
        }
    }
    files.n = n;
    *count = n;
    /* test[i]: file i (in name order) goes to the test split. */
    int32_t *perm = NULL;
    char *test = calloc((size_t)(n ? n : 1), 1);
    if (!test || (split < 0 && n > 0 && !(perm = malloc(sizeof *perm * (size_t)n)))) {
        free(test);
        names_free(&files);
        return sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate", dir);
    }
    if (split < 0 && n > 0) {
        sotu_rng r;
        sotu_rng_init(&r, o->seed, SOTU_STREAM_DATA + ((uint64_t)(uint32_t)label << 8));
        sotu_rng_permutation(&r, perm, n);
        int n_test = (int)floor(n * o->test_ratio + 0.5);
        for (int k = 0; k < n_test; k++)
            test[perm[k]] = 1;
    } else {
        memset(test, split > 0, (size_t)n);
    }
    char path[SOTU_PATH_MAX];
    for (int i = 0; i < n && s == SOTU_OK; i++) {
        sotu_path_join(path, sizeof path, dir, files.names[i]);
        s = push_entry(l, path, label, test[i]);
    }
    free(test);
    free(perm);
    names_free(&files);
    return s;
}

static sotu_status collect(const sotu_image_folder_options *o, name_list *classes,
                           entry_list *l, int64_t *ignored)
{
    char train_dir[SOTU_PATH_MAX], test_dir[SOTU_PATH_MAX], dir[SOTU_PATH_MAX];
    sotu_path_join(train_dir, sizeof train_dir, o->root, "train");
    sotu_path_join(test_dir, sizeof test_dir, o->root, "test");
    int by_folder = is_dir(train_dir) && is_dir(test_dir);
    const char *class_root = by_folder ? train_dir : o->root;
    sotu_status s = list_dir(class_root, 1, classes);
    if (s != SOTU_OK)
        return s;
    if (classes->n == 0)
        return sotu_error(SOTU_ERR_DATA, "%s: no class folders (expected %s/<class>/*.png|jpg)",
                          class_root, class_root);
    for (int c = 0; c < classes->n && s == SOTU_OK; c++) {
        int count;
        sotu_path_join(dir, sizeof dir, class_root, classes->names[c]);
        s = add_class(l, dir, c, by_folder ? 0 : -1, o, ignored, &count);
        if (s == SOTU_OK && count == 0)
            s = sotu_error(SOTU_ERR_DATA, "%s: class folder has no .png/.jpg/.jpeg images", dir);
    }
    if (s != SOTU_OK || !by_folder)
        return s;
    name_list tests;
    if ((s = list_dir(test_dir, 1, &tests)) != SOTU_OK)
        return s;
    for (int i = 0; i < tests.n && s == SOTU_OK; i++) {
        char **hit = bsearch(&tests.names[i], classes->names, (size_t)classes->n,
                             sizeof *classes->names, cmp_names);
        int count;
        sotu_path_join(dir, sizeof dir, test_dir, tests.names[i]);
        if (!hit)
            s = sotu_error(SOTU_ERR_DATA, "%s: test class '%s' has no folder in %s", dir,
                           tests.names[i], train_dir);
        else
            s = add_class(l, dir, (int32_t)(hit - classes->names), 1, o, ignored, &count);
    }
    names_free(&tests);
    return s;
}

sotu_status sotu_image_folder_read(const sotu_image_folder_options *o, sotu_taskset *t,
                                   sotu_image_folder_report *rep)
{
    memset(t, 0, sizeof *t);
    memset(rep, 0, sizeof *rep);
    name_list classes = {0};
    entry_list l = {0};
    sotu_image img = {0};
    sotu_status s;
    if (!is_dir(o->root)) {
        s = sotu_error(SOTU_ERR_IO, "%s: not a directory", o->root);
        goto cleanup;
    }
    if ((s = collect(o, &classes, &l, &rep->ignored)) != SOTU_OK)
        goto cleanup;
    int S = o->size, C = o->channels;
    size_t item = (size_t)S * S * C;
    int n_test_max = 0;
    for (int i = 0; i < l.n; i++)
        n_test_max += l.e[i].test;
    int n_train_max = l.n - n_test_max;
    t->train_images = malloc(item * (size_t)(n_train_max ? n_train_max : 1));
    t->test_images = malloc(item * (size_t)(n_test_max ? n_test_max : 1));
    t->train_labels = malloc(sizeof(int32_t) * (size_t)(n_train_max + 1));
    t->test_labels = malloc(sizeof(int32_t) * (size_t)(n_test_max + 1));
    t->class_names = calloc((size_t)classes.n, sizeof *t->class_names);
    if (!t->train_images || !t->test_images || !t->train_labels || !t->test_labels ||
        !t->class_names) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate %d images of %dx%dx%d", o->root, l.n,
                       S, S, C);
        goto cleanup;
    }
    sotu_progress prog;
    sotu_progress_begin(&prog, "import images", "images", l.n);
    for (int i = 0; i < l.n; i++) {
        const entry *e = &l.e[i];
        s = sotu_image_load(e->path, C, &img);
        if (s == SOTU_ERR_DATA && o->skip_bad) {
            SOTU_WARN("skipped: %s", sotu_last_error());
            sotu_clear_error();
            rep->skipped++;
            s = SOTU_OK;
            continue;
        }
        if (s != SOTU_OK)
            break;
        uint8_t *dst = e->test ? t->test_images + item * (size_t)t->n_test
                               : t->train_images + item * (size_t)t->n_train;
        s = sotu_image_fit(&img, S, dst);
        sotu_image_free(&img);
        if (s != SOTU_OK)
            break;
        if (e->test)
            t->test_labels[t->n_test++] = e->label;
        else
            t->train_labels[t->n_train++] = e->label;
        sotu_progress_update(&prog, i + 1, NULL);
    }
    sotu_progress_end(&prog);
    if (s != SOTU_OK)
        goto cleanup;
    if (t->n_train == 0) {
        s = sotu_error(SOTU_ERR_DATA, "%s: no readable training images", o->root);
        goto cleanup;
    }
    t->classes = classes.n;
    for (int c = 0; c < classes.n; c++) {
        if (strlen(classes.names[c]) >= SOTU_TASK_NAME_MAX)
            SOTU_WARN("%s: class folder name '%s' shortened to %d characters", o->root,
                      classes.names[c], SOTU_TASK_NAME_MAX - 1);
        snprintf(t->class_names[c], SOTU_TASK_NAME_MAX, "%s", classes.names[c]);
    }
    t->height = t->width = S;
    t->channels = C;
    if (o->name) {
        snprintf(t->name, sizeof t->name, "%s", o->name);
    } else {
        char root[SOTU_PATH_MAX];
        snprintf(root, sizeof root, "%s", o->root);
        size_t n = strlen(root);
        while (n > 1 && root[n - 1] == '/')
            root[--n] = '\0';
        const char *base = strrchr(root, '/');
        snprintf(t->name, sizeof t->name, "%s", base && base[1] ? base + 1 : root);
    }
cleanup:
    sotu_image_free(&img);
    for (int i = 0; i < l.n; i++)
        free(l.e[i].path);
    free(l.e);
    names_free(&classes);
    if (s != SOTU_OK)
        sotu_taskset_free(t);
    return s;
}
