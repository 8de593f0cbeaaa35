/* Fashion-MNIST presets: two builds of fmnist5 give identical files;
 * split5/split10 have disjoint classes under one shared transform;
 * labels in range, classes balanced, names as documented; the fmnist53
 * plan; transform identities; requests the split cannot supply fail
 * without leaving files. Needs Debian's dataset-fashion-mnist (or
 * SOTU_FMNIST_DIR). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "io/fmnist.h"
#include "io/taskset.h"

static char dir[64];

static const char *data_dir(void)
{
    const char *d = getenv("SOTU_FMNIST_DIR");
    return d && d[0] ? d : SOTU_FMNIST_DEFAULT_DIR;
}

static int files_equal(const char *a, const char *b)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

static void build_tf(const char *sub, const char *preset, const char *transform,
                     int32_t n_train, int32_t n_test, uint64_t seed)
{
    char out[128];
    snprintf(out, sizeof out, "%s/%s", dir, sub);
    sotu_fmnist_options o = {.preset = preset, .transform = transform, .data_dir = data_dir(),
                             .out_dir = out, .n_train = n_train, .n_test = n_test, .seed = seed};
    CHECK_MSG(sotu_fmnist_build(&o) == SOTU_OK, "%s", sotu_last_error());
}

static void build(const char *sub, const char *preset, int32_t n_train, int32_t n_test,
                  uint64_t seed)
{
    build_tf(sub, preset, NULL, n_train, n_test, seed);
}

static void test_fmnist5_deterministic(void)
{
    build("a", "fmnist5", 61, 30, 0);
    build("b", "fmnist5", 61, 30, 0);
    build("c", "fmnist5", 61, 30, 1);
    char path[256];
    snprintf(path, sizeof path, "%s/a/manifest.yaml", dir);
    sotu_manifest m;
    CHECK_MSG(sotu_manifest_read(path, &m) == SOTU_OK, "%s", sotu_last_error());
    CHECK(m.n_tasks == 5 && !strcmp(m.name, "fmnist5"));
    static const char *const want_names[5] = {"t00-rot90-2cls", "t01-inv-2cls",
                                              "t02-vflip-2cls", "t03-gauss5-2cls",
                                              "t04-pperm-2cls"};
    int seed_differs = 0;
    for (int t = 0; t < m.n_tasks; t++) {
        const sotu_manifest_task *mt = &m.tasks[t];
        CHECK(!strcmp(mt->name, want_names[t]));
        CHECK(mt->classes == 2 && mt->n_train == 61 && mt->n_test == 30);
        char pb[256], pc[256];
        snprintf(pb, sizeof pb, "%s/b/%s", dir, mt->file);
        snprintf(pc, sizeof pc, "%s/c/%s", dir, mt->file);
        CHECK_MSG(files_equal(mt->path, pb), "%s and %s differ", mt->path, pb);

        sotu_taskset a, b, c;
        CHECK(sotu_taskset_read(mt->path, &a) == SOTU_OK);
        CHECK(sotu_taskset_read(pb, &b) == SOTU_OK);
        CHECK(sotu_taskset_read(pc, &c) == SOTU_OK);
        CHECK(a.n_train == 61 && a.n_test == 30 && a.height == 28 && a.width == 28 &&
              a.channels == 1);
        CHECK(!memcmp(a.train_images, b.train_images, 61 * 784));
        CHECK(!memcmp(a.test_images, b.test_images, 30 * 784));
        CHECK(!memcmp(a.train_labels, b.train_labels, 61 * sizeof(int32_t)));
        CHECK(!memcmp(a.test_labels, b.test_labels, 30 * sizeof(int32_t)));
        seed_differs += memcmp(a.train_images, c.train_images, 61 * 784) != 0;
        CHECK(!strcmp(a.name, want_names[t]) && a.classes == 2);
        CHECK(!strcmp(a.class_names[0], sotu_fmnist_class_names[2 * t]));
        CHECK(!strcmp(a.class_names[1], sotu_fmnist_class_names[2 * t + 1]));
        int count[2][2] = {{0, 0}, {0, 0}};
        for (int i = 0; i < a.n_train; i++)
            if (a.train_labels[i] >= 0 && a.train_labels[i] < 2)
                count[0][a.train_labels[i]]++;
        for (int i = 0; i < a.n_test; i++)
            if (a.test_labels[i] >= 0 && a.test_labels[i] < 2)
                count[1][a.test_labels[i]]++;
        CHECK(count[0][0] + count[0][1] == 61);
        CHECK_MSG(abs(count[0][0] - count[0][1]) == 1, "train %d/%d", count[0][0], count[0][1]);
        CHECK_MSG(count[1][0] == 15 && count[1][1] == 15, "test %d/%d", count[1][0],
                  count[1][1]);
        /* Shuffled, not sorted by class. */
        int switches = 0;
        for (int i = 1; i < a.n_train; i++)
            switches += a.train_labels[i] != a.train_labels[i - 1];
        CHECK(switches > 10);
        sotu_taskset_free(&a);
        sotu_taskset_free(&b);
        sotu_taskset_free(&c);
    }
    CHECK(seed_differs == 5);
    sotu_manifest_free(&m);
}

/* The inv task of fmnist5 holds inverted images: the background is white. */
static void test_transform_applied(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/a/t01.h5", dir);
    sotu_taskset t;
    CHECK(sotu_taskset_read(path, &t) == SOTU_OK);
    double corner = 0;
    for (int i = 0; i < t.n_train; i++)
        corner += t.train_images[(size_t)i * 784];
    CHECK(corner / t.n_train > 200);
    sotu_taskset_free(&t);
}

static void test_plan53(void)
{
    sotu_fmnist_task_plan plan[53];
    CHECK(sotu_fmnist_plan("fmnist53", NULL, 0, plan, 53) == 53);
    CHECK(sotu_fmnist_plan("fmnist5", NULL, 0, NULL, 0) == 5);
    CHECK(sotu_fmnist_plan("fmnist7", NULL, 0, NULL, 0) == 0);
    int sizes[11] = {0};
    uint8_t img[784], out[784];
    for (int i = 0; i < 784; i++)
        img[i] = (uint8_t)(i * 13);
    for (int t = 0; t < 53; t++) {
        const sotu_fmnist_task_plan *p = &plan[t];
        CHECK(p->classes >= 2 && p->classes <= 10);
        sizes[p->classes]++;
        for (int i = 1; i < p->classes; i++)
            CHECK(p->class_ids[i] > p->class_ids[i - 1]);
        CHECK(p->class_ids[0] >= 0 && p->class_ids[p->classes - 1] <= 9);
        char want[80];
        snprintf(want, sizeof want, "t%02d-%s-%dcls", t, p->recipe, p->classes);
        CHECK(!strcmp(p->name, want));
        for (int u = 0; u < t; u++)
            CHECK(strcmp(plan[u].recipe, p->recipe) != 0);
        CHECK_MSG(sotu_fmnist_transform(p->recipe, 0, t, img, out, 1) == SOTU_OK, "%s",
                  sotu_last_error());
    }
    int kinds = 0;
    for (int k = 2; k <= 10; k++)
        kinds += sizes[k] > 0;
    CHECK(kinds >= 6);
}

static void apply(const char *recipe, const uint8_t *src, uint8_t *dst)
{
    CHECK_MSG(sotu_fmnist_transform(recipe, 3, 4, src, dst, 1) == SOTU_OK, "%s",
              sotu_last_error());
}

static int cmp_u8(const void *a, const void *b)
{
    return *(const uint8_t *)a - *(const uint8_t *)b;
}

static void test_transforms(void)
{
    uint8_t img[784], a[784], b[784];
    for (int i = 0; i < 784; i++)
        img[i] = (uint8_t)((i * 31 + i / 28 * 7) & 0xff);
    apply("rot90+rot90+rot90+rot90", img, a);
    CHECK(!memcmp(a, img, 784));
    apply("rot90+rot270", img, a);
    CHECK(!memcmp(a, img, 784));
    apply("rot90+rot90", img, a);
    apply("rot180", img, b);
    CHECK(!memcmp(a, b, 784));
    apply("hflip+vflip", img, a);
    CHECK(!memcmp(a, b, 784));
    apply("inv+inv", img, a);
    CHECK(!memcmp(a, img, 784));
    apply("orig", img, a);
    CHECK(!memcmp(a, img, 784));
    /* rot90 moves the top-right pixel to the top-left (counter-clockwise). */
    apply("rot90", img, a);
    CHECK(a[0] == img[27] && a[27] == img[27 * 28 + 27]);
    /* Permutations keep the multiset of pixels and are fixed per task. */
    const char *perms[2] = {"pperm", "xperm"};
    for (int k = 0; k < 2; k++) {
        apply(perms[k], img, a);
        CHECK(memcmp(a, img, 784) != 0);
        memcpy(b, img, 784);
        qsort(b, 784, 1, cmp_u8);
        uint8_t s[784];
        memcpy(s, a, 784);
        qsort(s, 784, 1, cmp_u8);
        CHECK(!memcmp(s, b, 784));
        CHECK(sotu_fmnist_transform(perms[k], 3, 4, img, b, 1) == SOTU_OK);
        CHECK(!memcmp(a, b, 784));
        CHECK(sotu_fmnist_transform(perms[k], 3, 5, img, b, 1) == SOTU_OK);
        CHECK(memcmp(a, b, 784) != 0);
    }
    /* pperm moves whole 7x7 patches. */
    apply("pperm", img, a);
    for (int p = 0; p < 16; p++) {
        int py = p / 4 * 7, px = p % 4 * 7, found = 0;
        for (int q = 0; q < 16 && !found; q++) {
            int qy = q / 4 * 7, qx = q % 4 * 7, same = 1;
            for (int y = 0; y < 7 && same; y++)
                same = !memcmp(a + (py + y) * 28 + px, img + (qy + y) * 28 + qx, 7);
            found = same;
        }
        CHECK(found);
    }
    /* A flat image stays flat under blur and zoom, and contrast maps 128 to 128. */
    memset(img, 100, 784);
    const char *flat[] = {"box3", "box5", "gauss3", "gauss5", "zoom20", "zoom16"};
    for (int k = 0; k < 6; k++) {
        apply(flat[k], img, a);
        int ok = 1;
        for (int i = 0; i < 784; i++)
            ok &= a[i] == 100;
        CHECK_MSG(ok, "%s changed a flat image", flat[k]);
    }
    memset(img, 128, 784);
    apply("lowcon+highcon", img, a);
    CHECK(a[0] == 128 && a[783] == 128);
    img[0] = 0;
    apply("lowcon", img, a);
    CHECK(a[0] == 64);
    apply("highcon", img, a);
    CHECK(a[0] == 0);
    /* A small rotation keeps the centre pixel. */
    memset(img, 0, 784);
    img[14 * 28 + 14] = 200;
    apply("rot15", img, a);
    CHECK(a[14 * 28 + 14] > 100);

    CHECK(sotu_fmnist_transform("rot90+blur", 0, 0, img, a, 1) == SOTU_ERR_USAGE);
    CHECK(strstr(sotu_last_error(), "'blur'") != NULL);
    CHECK(sotu_fmnist_transform("", 0, 0, img, a, 1) == SOTU_ERR_USAGE);
}

static void test_too_many(void)
{
    char out[128], path[256];
    snprintf(out, sizeof out, "%s/too-many", dir);
    sotu_fmnist_options o = {.preset = "fmnist5", .data_dir = data_dir(), .out_dir = out,
                             .n_train = 12001, .n_test = 10};
    CHECK(sotu_fmnist_build(&o) == SOTU_ERR_USAGE);
    CHECK(strstr(sotu_last_error(), "12000") != NULL);
    snprintf(path, sizeof path, "%s/manifest.yaml", out);
    CHECK(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/t00.h5", out);
    CHECK(access(path, F_OK) != 0);
    /* Exactly the whole split works (both classes exhausted). */
    snprintf(out, sizeof out, "%s/all", dir);
    o.out_dir = out;
    o.n_train = 12000;
    o.n_test = 2000;
    o.preset = "fmnist5";
    CHECK_MSG(sotu_fmnist_build(&o) == SOTU_OK, "%s", sotu_last_error());

    o.preset = "mnist";
    CHECK(sotu_fmnist_build(&o) == SOTU_ERR_USAGE);
    snprintf(out, sizeof out, "%s/no-data", dir);
    o.preset = "fmnist5";
    o.data_dir = out;
    CHECK(sotu_fmnist_build(&o) == SOTU_ERR_IO);
    CHECK(strstr(sotu_last_error(), "train-images-idx3-ubyte.gz") != NULL);
}

/* split5/split10: tasks of disjoint classes covering all ten, every task's
 * images the orig build's images under ONE transform (pperm with task 0's
 * permutation, not the task's own), the manifest named after the preset and
 * transform; the refusals. */
static void check_split(const char *preset, int n_tasks, const char *sub, const char *orig_sub)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s/manifest.yaml", dir, sub);
    sotu_manifest m;
    CHECK_MSG(sotu_manifest_read(path, &m) == SOTU_OK, "%s", sotu_last_error());
    char want[64];
    snprintf(want, sizeof want, "%s-pperm", preset);
    CHECK_MSG(!strcmp(m.name, want), "manifest name %s, expected %s", m.name, want);
    CHECK(m.n_tasks == n_tasks);
    int k = 10 / n_tasks, seen[10] = {0}, own_perm_differs = 0;
    uint8_t *tf = malloc(40 * 784), *own = malloc(40 * 784);
    CHECK(tf && own);
    for (int t = 0; t < m.n_tasks && tf && own; t++) {
        const sotu_manifest_task *mt = &m.tasks[t];
        snprintf(want, sizeof want, "t%02d-pperm-%dcls", t, k);
        CHECK_MSG(!strcmp(mt->name, want), "task %s, expected %s", mt->name, want);
        CHECK(mt->classes == k && mt->n_train == 40 && mt->n_test == 20);
        sotu_taskset a, o;
        CHECK(sotu_taskset_read(mt->path, &a) == SOTU_OK);
        snprintf(path, sizeof path, "%s/%s/%s", dir, orig_sub, mt->file);
        CHECK(sotu_taskset_read(path, &o) == SOTU_OK);
        CHECK(a.classes == k);
        for (int i = 0; i < a.classes; i++)
            for (int c = 0; c < 10; c++)
                if (!strcmp(a.class_names[i], sotu_fmnist_class_names[c])) {
                    CHECK_MSG(c == k * t + i, "task %d class %d is %d", t, i, c);
                    seen[c]++;
                }
        /* The same draws as the orig build, under the shared transform. */
        CHECK(!memcmp(a.train_labels, o.train_labels, 40 * sizeof(int32_t)));
        CHECK(sotu_fmnist_transform("pperm", 0, 0, o.train_images, tf, 40) == SOTU_OK);
        CHECK_MSG(!memcmp(a.train_images, tf, 40 * 784), "task %d: not the shared pperm", t);
        CHECK(sotu_fmnist_transform("pperm", 0, 0, o.test_images, tf, 20) == SOTU_OK);
        CHECK(!memcmp(a.test_images, tf, 20 * 784));
        CHECK(sotu_fmnist_transform("pperm", 0, t, o.train_images, own, 40) == SOTU_OK);
        own_perm_differs += memcmp(a.train_images, own, 40 * 784) != 0;
        sotu_taskset_free(&a);
        sotu_taskset_free(&o);
    }
    for (int c = 0; c < 10; c++)
        CHECK_MSG(seen[c] == 1, "class %d in %d tasks (disjoint, all ten: 1)", c, seen[c]);
    CHECK(own_perm_differs == n_tasks - 1);
    free(tf);
    free(own);
    sotu_manifest_free(&m);
}

static void test_split_presets(void)
{
    build_tf("s5", "split5", "pperm", 40, 20, 0);
    build_tf("s5o", "split5", "orig", 40, 20, 0);
    check_split("split5", 5, "s5", "s5o");
    build_tf("s10", "split10", "pperm", 40, 20, 0);
    build_tf("s10o", "split10", "orig", 40, 20, 0);
    check_split("split10", 10, "s10", "s10o");
    CHECK(sotu_fmnist_plan("split5", "rot90", 0, NULL, 0) == 5);
    CHECK(sotu_fmnist_plan("split10", "rot90", 0, NULL, 0) == 10);

    char out[128];
    snprintf(out, sizeof out, "%s/split-refused", dir);
    sotu_fmnist_options o = {.preset = "split5", .data_dir = data_dir(), .out_dir = out,
                             .n_train = 10, .n_test = 10};
    CHECK(sotu_fmnist_build(&o) == SOTU_ERR_USAGE); /* no transform */
    CHECK(strstr(sotu_last_error(), "transform") != NULL);
    o.preset = "fmnist5";
    o.transform = "rot90";
    CHECK(sotu_fmnist_build(&o) == SOTU_ERR_USAGE); /* fmnist5 has its own */
    o.preset = "split5";
    o.transform = "rot90+blur";
    CHECK(sotu_fmnist_build(&o) == SOTU_ERR_USAGE);
    CHECK(strstr(sotu_last_error(), "'blur'") != NULL);
    snprintf(out, sizeof out, "%s/split-refused/manifest.yaml", dir);
    CHECK(access(out, F_OK) != 0);
}

int main(void)
{
    char probe[512];
    snprintf(probe, sizeof probe, "%s/train-images-idx3-ubyte.gz", data_dir());
    if (access(probe, R_OK) != 0) {
        fprintf(stderr, "test_fmnist: %s is missing (apt-get install dataset-fashion-mnist)\n",
                probe);
        return 1;
    }
    snprintf(dir, sizeof dir, "/tmp/sotu-test-fmnist-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_fmnist5_deterministic();
    test_transform_applied();
    test_plan53();
    test_transforms();
    test_too_many();
    test_split_presets();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_finish("test_fmnist");
}
