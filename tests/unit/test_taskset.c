/* Task files: round trip, and every malformed file the reader must refuse
 * (built with the HDF5 API): missing dataset, wrong dtype, wrong rank,
 * mismatched counts, labels out of range, missing or bad attributes. */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "io/taskset.h"

enum { H = 5, W = 4, C = 2, NTR = 7, NTE = 3, K = 3 };

static char dir[64];

static void make_task(sotu_taskset *t, char (*names)[SOTU_TASK_NAME_MAX])
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "t01-unit");
    t->classes = K;
    snprintf(names[0], SOTU_TASK_NAME_MAX, "cat");
    snprintf(names[1], SOTU_TASK_NAME_MAX, "dog");
    snprintf(names[2], SOTU_TASK_NAME_MAX, "T-shirt/top");
    t->class_names = names;
    t->height = H;
    t->width = W;
    t->channels = C;
    t->n_train = NTR;
    t->n_test = NTE;
    t->train_images = malloc(NTR * H * W * C);
    t->test_images = malloc(NTE * H * W * C);
    t->train_labels = malloc(NTR * sizeof(int32_t));
    t->test_labels = malloc(NTE * sizeof(int32_t));
    for (int i = 0; i < NTR * H * W * C; i++)
        t->train_images[i] = (uint8_t)(i * 7);
    for (int i = 0; i < NTE * H * W * C; i++)
        t->test_images[i] = (uint8_t)(255 - i);
    for (int i = 0; i < NTR; i++)
        t->train_labels[i] = i % K;
    for (int i = 0; i < NTE; i++)
        t->test_labels[i] = (i + 1) % K;
}

static void free_task(sotu_taskset *t)
{
    free(t->train_images);
    free(t->test_images);
    free(t->train_labels);
    free(t->test_labels);
}

static int no_tmp_files(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q '\\.tmp\\.'", dir);
    return system(cmd) != 0;
}

static void test_round_trip(const char *path)
{
    char names[K][SOTU_TASK_NAME_MAX];
    sotu_taskset t, r;
    make_task(&t, names);
    CHECK(sotu_taskset_write(path, &t) == SOTU_OK);
    CHECK(no_tmp_files());
    CHECK_MSG(sotu_taskset_read(path, &r) == SOTU_OK, "%s", sotu_last_error());
    CHECK(!strcmp(r.name, t.name) && r.classes == K);
    for (int i = 0; i < K; i++)
        CHECK(!strcmp(r.class_names[i], names[i]));
    CHECK(r.height == H && r.width == W && r.channels == C);
    CHECK(r.n_train == NTR && r.n_test == NTE);
    CHECK(!memcmp(r.train_images, t.train_images, NTR * H * W * C));
    CHECK(!memcmp(r.test_images, t.test_images, NTE * H * W * C));
    CHECK(!memcmp(r.train_labels, t.train_labels, NTR * sizeof(int32_t)));
    CHECK(!memcmp(r.test_labels, t.test_labels, NTE * sizeof(int32_t)));
    sotu_taskset_free(&r);
    sotu_taskset_free(&r);
    sotu_taskset_free(NULL);

    /* The writer refuses labels out of range and leaves nothing behind. */
    char bad_path[128];
    snprintf(bad_path, sizeof bad_path, "%s/bad-write.h5", dir);
    t.train_labels[3] = K;
    CHECK(sotu_taskset_write(bad_path, &t) == SOTU_ERR_DATA);
    CHECK(access(bad_path, F_OK) != 0 && no_tmp_files());
    t.train_labels[3] = 0;

    /* An unwritable destination is an I/O error and leaves nothing. */
    snprintf(bad_path, sizeof bad_path, "%s/no-such-dir/t.h5", dir);
    CHECK(sotu_taskset_write(bad_path, &t) == SOTU_ERR_IO);
    CHECK(strstr(sotu_last_error(), bad_path) != NULL);
    free_task(&t);
}

/* Copies the good file to name and opens the copy read-write. */
static hid_t copy_open(const char *good, const char *name, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", good, path);
    CHECK(system(cmd) == 0);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(f >= 0);
    return f;
}

/* Replaces dataset name with one of the given type and shape, filled with
 * value (converted). */
static void replace(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims,
                    double value)
{
    if (H5Lexists(f, name, H5P_DEFAULT) > 0)
        CHECK(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(d >= 0);
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= dims[i];
    double *buf = malloc((n + 1) * sizeof *buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = value;
    CHECK(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    free(buf);
    H5Dclose(d);
    H5Sclose(sp);
}

static void expect_bad(const char *path, const char *want1, const char *want2)
{
    sotu_taskset r;
    sotu_status s = sotu_taskset_read(path, &r);
    const char *msg = sotu_last_error();
    CHECK_MSG(s == SOTU_ERR_DATA, "%s: status %d: %s", path, (int)s, msg);
    CHECK_MSG(strstr(msg, path) != NULL, "message does not name the file: %s", msg);
    CHECK_MSG(!want1 || strstr(msg, want1), "message lacks '%s': %s", want1, msg);
    CHECK_MSG(!want2 || strstr(msg, want2), "message lacks '%s': %s", want2, msg);
    CHECK(r.train_images == NULL && r.class_names == NULL);
}

static void test_bad_files(const char *good)
{
    char path[256];
    hid_t f;
    hsize_t img[4] = {NTR, H, W, C}, lab[1] = {NTR};

    f = copy_open(good, "missing-dataset.h5", path, sizeof path);
    CHECK(H5Ldelete(f, "/test/images", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    expect_bad(path, "/test/images", "missing");

    f = copy_open(good, "missing-group.h5", path, sizeof path);
    CHECK(H5Ldelete(f, "/train", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    expect_bad(path, "/train/images", "missing");

    f = copy_open(good, "float-labels.h5", path, sizeof path);
    replace(f, "/train/labels", H5T_IEEE_F32LE, 1, lab, 1.0);
    H5Fclose(f);
    expect_bad(path, "/train/labels", "float32");

    f = copy_open(good, "int16-images.h5", path, sizeof path);
    replace(f, "/train/images", H5T_STD_I16LE, 4, img, 3.0);
    H5Fclose(f);
    expect_bad(path, "/train/images", "int16");

    f = copy_open(good, "float-images.h5", path, sizeof path);
    replace(f, "/test/images", H5T_IEEE_F64LE, 4, (hsize_t[]){NTE, H, W, C}, 0.5);
    H5Fclose(f);
    expect_bad(path, "/test/images", "float64");

    f = copy_open(good, "rank3-images.h5", path, sizeof path);
    replace(f, "/train/images", H5T_STD_U8LE, 3, (hsize_t[]){NTR, H, W}, 1.0);
    H5Fclose(f);
    expect_bad(path, "/train/images", "rank 3");

    f = copy_open(good, "rank2-labels.h5", path, sizeof path);
    replace(f, "/test/labels", H5T_STD_I32LE, 2, (hsize_t[]){NTE, 1}, 0.0);
    H5Fclose(f);
    expect_bad(path, "/test/labels", "rank 2");

    f = copy_open(good, "count-mismatch.h5", path, sizeof path);
    replace(f, "/train/labels", H5T_STD_I32LE, 1, (hsize_t[]){NTR - 1}, 0.0);
    H5Fclose(f);
    expect_bad(path, "/train/labels", "6 labels");

    f = copy_open(good, "shape-mismatch.h5", path, sizeof path);
    replace(f, "/test/images", H5T_STD_U8LE, 4, (hsize_t[]){NTE, H + 1, W, C}, 0.0);
    H5Fclose(f);
    expect_bad(path, "/test/images", "6x4x2");

    f = copy_open(good, "label-too-big.h5", path, sizeof path);
    replace(f, "/train/labels", H5T_STD_I32LE, 1, lab, (double)K);
    H5Fclose(f);
    expect_bad(path, "/train/labels", "expected 0..2");

    f = copy_open(good, "label-negative.h5", path, sizeof path);
    replace(f, "/test/labels", H5T_STD_I32LE, 1, (hsize_t[]){NTE}, -1.0);
    H5Fclose(f);
    expect_bad(path, "/test/labels", "-1");

    f = copy_open(good, "label-int64-huge.h5", path, sizeof path);
    replace(f, "/test/labels", H5T_STD_I64LE, 1, (hsize_t[]){NTE}, 1e12);
    H5Fclose(f);
    expect_bad(path, "/test/labels", "expected 0..2");

    f = copy_open(good, "no-classes.h5", path, sizeof path);
    CHECK(H5Adelete(f, "classes") >= 0);
    H5Fclose(f);
    expect_bad(path, "classes", "missing");

    f = copy_open(good, "zero-classes.h5", path, sizeof path);
    {
        int32_t zero = 0;
        hid_t a = H5Aopen(f, "classes", H5P_DEFAULT);
        CHECK(H5Awrite(a, H5T_NATIVE_INT32, &zero) >= 0);
        H5Aclose(a);
    }
    H5Fclose(f);
    expect_bad(path, "classes", "is 0");

    f = copy_open(good, "float-classes.h5", path, sizeof path);
    {
        CHECK(H5Adelete(f, "classes") >= 0);
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, "classes", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        float v = 3.0f;
        CHECK(H5Awrite(a, H5T_NATIVE_FLOAT, &v) >= 0);
        H5Aclose(a);
        H5Sclose(sp);
    }
    H5Fclose(f);
    expect_bad(path, "classes", "integer");

    f = copy_open(good, "short-class-names.h5", path, sizeof path);
    {
        CHECK(H5Adelete(f, "class_names") >= 0);
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 8);
        hsize_t two = 2;
        hid_t sp = H5Screate_simple(1, &two, NULL);
        hid_t a = H5Acreate2(f, "class_names", t, sp, H5P_DEFAULT, H5P_DEFAULT);
        CHECK(H5Awrite(a, t, "aaaaaaaabbbbbbbb") >= 0);
        H5Aclose(a);
        H5Sclose(sp);
        H5Tclose(t);
    }
    H5Fclose(f);
    expect_bad(path, "class_names", "2 elements");

    f = copy_open(good, "other-format.h5", path, sizeof path);
    {
        CHECK(H5Adelete(f, "format") >= 0);
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 12);
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, "format", t, sp, H5P_DEFAULT, H5P_DEFAULT);
        CHECK(H5Awrite(a, t, "sotu-weights") >= 0);
        H5Aclose(a);
        H5Sclose(sp);
        H5Tclose(t);
    }
    H5Fclose(f);
    expect_bad(path, "format", "sotu-weights");

    /* Not HDF5 at all; and a file that does not exist (I/O). */
    snprintf(path, sizeof path, "%s/not-hdf5.h5", dir);
    FILE *txt = fopen(path, "w");
    fputs("name: not a task\n", txt);
    fclose(txt);
    expect_bad(path, "not an HDF5 file", NULL);
    sotu_taskset r;
    snprintf(path, sizeof path, "%s/absent.h5", dir);
    CHECK(sotu_taskset_read(path, &r) == SOTU_ERR_IO);
    CHECK(strstr(sotu_last_error(), path) != NULL);
}

/* Files from other tools: no format/name/class_names, int64 labels, fixed
 * strings. */
static void test_foreign_file(const char *good)
{
    char path[256];
    hid_t f = copy_open(good, "foreign.h5", path, sizeof path);
    CHECK(H5Adelete(f, "format") >= 0 && H5Adelete(f, "name") >= 0 &&
          H5Adelete(f, "class_names") >= 0);
    replace(f, "/train/labels", H5T_STD_I64LE, 1, (hsize_t[]){NTR}, 2.0);
    H5Fclose(f);
    sotu_taskset r;
    CHECK_MSG(sotu_taskset_read(path, &r) == SOTU_OK, "%s", sotu_last_error());
    CHECK(!strcmp(r.name, "foreign"));
    CHECK(r.classes == K && !strcmp(r.class_names[2], "2"));
    CHECK(r.train_labels[0] == 2 && r.train_labels[NTR - 1] == 2);
    sotu_taskset_free(&r);
}

/* A task whose training image i is filled with bytes (i, i >> 8, ...) and
 * label i % K, so every image says where it came from. */
static void synthetic(sotu_taskset *t, int32_t n, int classes)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "syn");
    t->classes = classes;
    t->height = t->width = 2;
    t->channels = 1;
    t->n_train = n;
    t->train_images = malloc((size_t)n * 4);
    t->train_labels = malloc(sizeof(int32_t) * (size_t)n);
    for (int32_t i = 0; i < n; i++) {
        t->train_images[i * 4 + 0] = (uint8_t)i;
        t->train_images[i * 4 + 1] = (uint8_t)(i >> 8);
        t->train_images[i * 4 + 2] = 7;
        t->train_images[i * 4 + 3] = 9;
        t->train_labels[i] = i % classes;
    }
}

static int32_t origin(const uint8_t *img) { return img[0] | img[1] << 8; }

/* data.val_fraction: the count rule, the hold-out a partition of the
 * training split (every image once, labels with it), the rest in file
 * order, the same for the same (fraction, seed, task) and different for
 * another seed or task; fraction 0 leaves the task bitwise alone. */
static void test_hold_out(void)
{
    CHECK(sotu_taskset_val_count(1000, 0.1) == 100);
    CHECK(sotu_taskset_val_count(1000, 0) == 0);
    CHECK(sotu_taskset_val_count(5, 0.01) == 1);   /* at least one */
    CHECK(sotu_taskset_val_count(2, 0.9) == 1);    /* at least one left to train on */
    CHECK(sotu_taskset_val_count(1, 0.5) == 0);
    CHECK(sotu_taskset_val_count(61, 0.1) == 6);

    sotu_taskset a, b, c, d, z;
    synthetic(&a, 1000, 3);
    synthetic(&b, 1000, 3);
    synthetic(&c, 1000, 3);
    synthetic(&d, 1000, 3);
    synthetic(&z, 1000, 3);
    CHECK(sotu_taskset_hold_out(&a, 0.1, 5, 2) == SOTU_OK);
    CHECK(sotu_taskset_hold_out(&b, 0.1, 5, 2) == SOTU_OK);
    CHECK(sotu_taskset_hold_out(&c, 0.1, 6, 2) == SOTU_OK);
    CHECK(sotu_taskset_hold_out(&d, 0.1, 5, 3) == SOTU_OK);
    CHECK(sotu_taskset_hold_out(&z, 0, 5, 2) == SOTU_OK);
    CHECK(a.n_val == 100 && a.n_train == 900);
    CHECK(z.n_val == 0 && z.n_train == 1000 && !z.val_images && !z.val_labels);
    for (int32_t i = 0; i < 1000; i++)
        CHECK(origin(z.train_images + i * 4) == i && z.train_labels[i] == i % 3);
    int seen[1000] = {0};
    int32_t prev = -1;
    for (int32_t i = 0; i < a.n_train; i++) {
        int32_t o = origin(a.train_images + i * 4);
        CHECK_MSG(o > prev, "training image %d comes from %d after %d: file order lost", i, o,
                  prev);
        prev = o;
        CHECK(a.train_labels[i] == o % 3 && a.train_images[i * 4 + 3] == 9);
        seen[o]++;
    }
    for (int32_t k = 0; k < a.n_val; k++) {
        int32_t o = origin(a.val_images + k * 4);
        CHECK(a.val_labels[k] == o % 3 && a.val_images[k * 4 + 2] == 7);
        seen[o]++;
    }
    int once = 0;
    for (int i = 0; i < 1000; i++)
        once += seen[i] == 1;
    CHECK_MSG(once == 1000, "%d of 1000 images once in train + val", once);
    CHECK(!memcmp(a.val_images, b.val_images, 400) && !memcmp(a.val_labels, b.val_labels, 400) &&
          !memcmp(a.train_images, b.train_images, 3600));
    CHECK(memcmp(a.val_images, c.val_images, 400) != 0);
    CHECK(memcmp(a.val_images, d.val_images, 400) != 0);
    sotu_taskset_free(&a);
    sotu_taskset_free(&b);
    sotu_taskset_free(&c);
    sotu_taskset_free(&d);
    sotu_taskset_free(&z);
}

int main(void)
{
    test_hold_out();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    snprintf(dir, sizeof dir, "/tmp/sotu-test-taskset-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char good[128];
    snprintf(good, sizeof good, "%s/good.h5", dir);
    test_round_trip(good);
    test_bad_files(good);
    test_foreign_file(good);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_finish("test_taskset");
}
