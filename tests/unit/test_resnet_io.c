/* ResNet weight files (io/resnet_io.h): write/read round trip of
 * parameters, running statistics and num_batches_tracked; the config
 * attributes; a plain backbone loaded into a CLR model (identity CLR); fc
 * left alone for another class count; sotu_weights_arch on ResNet and ViT
 * files; and bad files (missing or out-of-range attributes, a ViT file,
 * missing and misshapen tensors, a float counter, not HDF5) that must fail
 * with SOTU_ERR_DATA naming file and field.
 *
 *   test_resnet_io [seed]                 the checks above (seed default 5)
 *   test_resnet_io --export DIR [seed]    writes DIR/plain.h5 and DIR/std.h5
 *       (small and torchvision stems, random weights and running statistics)
 *       and DIR/logits.h5 (/<name>/inputs, /<name>/logits in eval mode) for
 *       tests/reference/check_resnet_weights.py. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/rng.h"
#include "io/h5util.h"
#include "io/weights.h"
#include "worker/resnet.h"

static char dir[64];
static sotu_rng rng;

static resnet_config config(int width, int S, int K, bool small, resnet_clr clr)
{
    return (resnet_config){.depth = 18, .width = width, .channels = small ? 1 : 3,
                           .image_size = S, .classes = K, .small_input = small, .clr = clr};
}

/* A model with random weights, CLR layers away from the identity and
 * non-trivial running statistics. */
static sotu_status make_model(resnet_model *m, const resnet_config *c, int batch_cap)
{
    sotu_status s = resnet_init(m, c, batch_cap);
    if (s != SOTU_OK)
        return s;
    resnet_init_random(m, sotu_rng_u32(&rng));
    for (size_t i = 0; i < m->num_params; i++)
        m->params[i] += 0.05f * sotu_rng_normal(&rng);
    for (int i = 0; i < m->buffers.n; i++) {
        const sotu_tensor_info *t = &m->buffers.t[i];
        bool var = strstr(t->name, "running_var") != NULL;
        for (size_t k = 0; k < t->count; k++)
            m->running[t->offset + k] =
                var ? 0.5f + sotu_rng_uniform(&rng) : 0.1f * sotu_rng_normal(&rng);
    }
    m->num_batches_tracked = 1234567890123LL;
    return SOTU_OK;
}

static void path_in(char *dst, size_t cap, const char *name)
{
    snprintf(dst, cap, "%s/%s", dir, name);
}

static bool same_tensor(const resnet_model *a, const resnet_model *b, const char *name)
{
    int i = sotu_tensor_find(&a->table, name), j = sotu_tensor_find(&b->table, name);
    if (i < 0 || j < 0 || a->table.t[i].count != b->table.t[j].count)
        return false;
    return !memcmp(a->params + a->table.t[i].offset, b->params + b->table.t[j].offset,
                   a->table.t[i].count * sizeof(float));
}

static void test_round_trip(void)
{
    resnet_model a, b;
    resnet_config c = config(4, 16, 3, true, RESNET_CLR_CONV3);
    CHECK(make_model(&a, &c, 2) == SOTU_OK);
    char path[128];
    path_in(path, sizeof path, "clr.h5");
    CHECK_MSG(resnet_weights_write(path, &a) == SOTU_OK, "%s", sotu_last_error());

    resnet_config r;
    CHECK_MSG(resnet_weights_read_config(path, &r) == SOTU_OK, "%s", sotu_last_error());
    CHECK(r.depth == 18 && r.width == 4 && r.channels == 1 && r.image_size == 16 &&
          r.classes == 3 && r.small_input && r.clr == RESNET_CLR_CONV3);
    char arch[16];
    CHECK(sotu_weights_arch(path, arch, sizeof arch) == SOTU_OK && !strcmp(arch, "resnet"));

    CHECK(resnet_init(&b, &r, 2) == SOTU_OK);
    CHECK_MSG(resnet_weights_read(path, SOTU_WEIGHTS_GROUP, &b) == SOTU_OK, "%s",
              sotu_last_error());
    CHECK(!memcmp(a.params, b.params, a.num_params * sizeof(float)));
    CHECK(!memcmp(a.running, b.running, a.buffers.total * sizeof(float)));
    CHECK(b.num_batches_tracked == a.num_batches_tracked);

    /* Every BatchNorm has its counter, an int64 scalar. */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0);
    hid_t d = H5Dopen2(f, "/weights/layer3.0.downsample.1.num_batches_tracked", H5P_DEFAULT);
    CHECK(d >= 0);
    if (d >= 0) {
        hid_t t = H5Dget_type(d);
        CHECK(H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 8);
        H5Tclose(t);
        H5Dclose(d);
    }
    H5Fclose(f);
    resnet_free(&b);

    /* The same weights read into a clr-full model: the downsample CLR
     * weights are not in the file, so they start as the identity. */
    r.clr = RESNET_CLR_ALL;
    CHECK(resnet_init(&b, &r, 2) == SOTU_OK);
    resnet_init_random(&b, 99);
    int ds = sotu_tensor_find(&b.table, "layer2.0.downsample.0.clr.weight");
    CHECK(ds >= 0);
    b.params[b.table.t[ds].offset + 4] = 7.0f;
    CHECK_MSG(resnet_weights_read(path, SOTU_WEIGHTS_GROUP, &b) == SOTU_OK, "%s",
              sotu_last_error());
    CHECK(same_tensor(&a, &b, "layer1.0.conv1.clr.weight"));
    CHECK(b.params[b.table.t[ds].offset + 4] == 1.0f && b.params[b.table.t[ds].offset] == 0.0f);
    resnet_free(&b);
    resnet_free(&a);
}

static void test_plain_into_clr(void)
{
    resnet_model a, b;
    resnet_config c = config(4, 16, 3, true, RESNET_CLR_NONE);
    CHECK(make_model(&a, &c, 2) == SOTU_OK);
    char path[128];
    path_in(path, sizeof path, "plain.h5");
    CHECK(resnet_weights_write(path, &a) == SOTU_OK);

    /* Into a CLR model with 5 classes: CLR identity, fc untouched. */
    resnet_config r = c;
    r.clr = RESNET_CLR_CONV3;
    r.classes = 5;
    CHECK(resnet_init(&b, &r, 2) == SOTU_OK);
    resnet_init_random(&b, 7);
    for (size_t i = 0; i < b.num_params; i++)
        b.params[i] += 0.5f; /* CLR far from the identity */
    int fw = sotu_tensor_find(&b.table, "fc.weight");
    float fc0 = b.params[b.table.t[fw].offset];
    CHECK_MSG(resnet_weights_read(path, SOTU_WEIGHTS_GROUP, &b) == SOTU_OK, "%s",
              sotu_last_error());
    CHECK(b.params[b.table.t[fw].offset] == fc0);
    CHECK(same_tensor(&a, &b, "conv1.weight") && same_tensor(&a, &b, "layer4.1.bn2.bias"));
    CHECK(!memcmp(a.running, b.running, a.buffers.total * sizeof(float)));
    bool identity = true;
    for (int i = 0; i < b.table.n; i++) {
        const sotu_tensor_info *t = &b.table.t[i];
        if (!strstr(t->name, ".clr.weight"))
            continue;
        for (size_t k = 0; k < t->count; k++)
            identity &= b.params[t->offset + k] == (k % 9 == 4 ? 1.0f : 0.0f);
    }
    CHECK(identity);
    resnet_free(&b);

    /* The same class count: fc is read. */
    r.classes = 3;
    CHECK(resnet_init(&b, &r, 2) == SOTU_OK);
    CHECK(resnet_weights_read(path, SOTU_WEIGHTS_GROUP, &b) == SOTU_OK);
    CHECK(same_tensor(&a, &b, "fc.weight") && same_tensor(&a, &b, "fc.bias"));
    resnet_free(&b);
    resnet_free(&a);
}

static void expect_error(sotu_status s, sotu_status want, const char *path, const char *w1,
                         const char *w2)
{
    const char *msg = sotu_last_error();
    printf("  -> %s\n", msg);
    CHECK_MSG(s == want, "status %d, expected %d: %s", (int)s, (int)want, msg);
    CHECK_MSG(strstr(msg, path) != NULL, "message does not name the file: %s", msg);
    CHECK_MSG(!w1 || strstr(msg, w1), "message lacks '%s': %s", w1, msg);
    CHECK_MSG(!w2 || strstr(msg, w2), "message lacks '%s': %s", w2, msg);
}

/* Copies good to name in dir and opens it for writing. */
static hid_t copy_open(const char *good, const char *name, char *path, size_t cap)
{
    path_in(path, cap, name);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", good, path);
    if (system(cmd) != 0)
        return H5I_INVALID_HID;
    return H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
}

static void write_scalar(hid_t f, const char *name, hid_t type, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d);
    H5Sclose(sp);
}

/* Replaces dataset name of f by a zero float32 dataset of the given shape. */
static void replace_floats(hid_t f, const char *name, int rank, const hsize_t *dims)
{
    H5Ldelete(f, name, H5P_DEFAULT);
    float zeros[64] = {0};
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
    H5Dclose(d);
    H5Sclose(sp);
}

static void test_bad_files(void)
{
    resnet_model m;
    resnet_config c = config(4, 16, 3, true, RESNET_CLR_NONE), r;
    CHECK(make_model(&m, &c, 2) == SOTU_OK);
    char good[128], path[128];
    path_in(good, sizeof good, "good.h5");
    CHECK(resnet_weights_write(good, &m) == SOTU_OK);

    printf("missing attribute\n");
    hid_t f = copy_open(good, "noattr.h5", path, sizeof path);
    H5Adelete(f, "width");
    H5Fclose(f);
    expect_error(resnet_weights_read_config(path, &r), SOTU_ERR_DATA, path, "width", "missing");
    CHECK(r.depth == 0);

    printf("depth 50\n");
    f = copy_open(good, "depth50.h5", path, sizeof path);
    H5Adelete(f, "depth");
    sotu_h5_write_int_attr(f, "depth", 50, path);
    H5Fclose(f);
    expect_error(resnet_weights_read_config(path, &r), SOTU_ERR_DATA, path, "depth", "18 or 34");

    printf("clr 3\n");
    f = copy_open(good, "clr3.h5", path, sizeof path);
    H5Adelete(f, "clr");
    sotu_h5_write_int_attr(f, "clr", 3, path);
    H5Fclose(f);
    expect_error(resnet_weights_read_config(path, &r), SOTU_ERR_DATA, path, "clr", NULL);

    printf("arch as an integer\n");
    f = copy_open(good, "archint.h5", path, sizeof path);
    H5Adelete(f, "arch");
    sotu_h5_write_int_attr(f, "arch", 1, path);
    H5Fclose(f);
    char arch[16];
    expect_error(sotu_weights_arch(path, arch, sizeof arch), SOTU_ERR_DATA, path, "arch", NULL);

    printf("unknown arch\n");
    f = copy_open(good, "archvgg.h5", path, sizeof path);
    H5Adelete(f, "arch");
    sotu_h5_write_str_attr(f, "arch", "vgg", path);
    H5Fclose(f);
    expect_error(resnet_weights_read_config(path, &r), SOTU_ERR_DATA, path, "vgg", NULL);

    printf("a ViT file\n");
    sotu_vit_config vc = {16, 1, 4, 8, 1, 2, 16, 3};
    sotu_tensor_info ti = {.name = "cls_token", .ndim = 3, .shape = {1, 1, 8}, .count = 8};
    sotu_tensor_table tab = {1, &ti, 8};
    float z[8] = {0};
    path_in(path, sizeof path, "vit.h5");
    CHECK(sotu_weights_write(path, &vc, &tab, z) == SOTU_OK);
    CHECK(sotu_weights_arch(path, arch, sizeof arch) == SOTU_OK && !strcmp(arch, "vit"));
    expect_error(resnet_weights_read_config(path, &r), SOTU_ERR_DATA, path, "vit", NULL);
    expect_error(resnet_weights_read(path, SOTU_WEIGHTS_GROUP, &m), SOTU_ERR_DATA, path,
                 "conv1.weight", "missing");

    printf("missing tensor\n");
    f = copy_open(good, "notensor.h5", path, sizeof path);
    H5Ldelete(f, "/weights/layer2.1.conv2.weight", H5P_DEFAULT);
    H5Fclose(f);
    expect_error(resnet_weights_read(path, SOTU_WEIGHTS_GROUP, &m), SOTU_ERR_DATA, path,
                 "layer2.1.conv2.weight", "missing");

    printf("missing running_var\n");
    f = copy_open(good, "novar.h5", path, sizeof path);
    H5Ldelete(f, "/weights/layer1.0.bn1.running_var", H5P_DEFAULT);
    H5Fclose(f);
    expect_error(resnet_weights_read(path, SOTU_WEIGHTS_GROUP, &m), SOTU_ERR_DATA, path,
                 "layer1.0.bn1.running_var", "missing");

    printf("wrong shape\n");
    f = copy_open(good, "shape.h5", path, sizeof path);
    hsize_t five = 5;
    replace_floats(f, "/weights/bn1.weight", 1, &five);
    H5Fclose(f);
    expect_error(resnet_weights_read(path, SOTU_WEIGHTS_GROUP, &m), SOTU_ERR_DATA, path,
                 "bn1.weight", "[5]");

    printf("fc of another width\n");
    f = copy_open(good, "fcwidth.h5", path, sizeof path);
    hsize_t fdims[2] = {3, 5};
    replace_floats(f, "/weights/fc.weight", 2, fdims);
    H5Fclose(f);
    expect_error(resnet_weights_read(path, SOTU_WEIGHTS_GROUP, &m), SOTU_ERR_DATA, path,
                 "fc.weight", "[3,5]");

    printf("float counter\n");
    f = copy_open(good, "nbtfloat.h5", path, sizeof path);
    H5Ldelete(f, "/weights/bn1.num_batches_tracked", H5P_DEFAULT);
    float one = 1.0f;
    write_scalar(f, "/weights/bn1.num_batches_tracked", H5T_NATIVE_FLOAT, &one);
    H5Fclose(f);
    expect_error(resnet_weights_read(path, SOTU_WEIGHTS_GROUP, &m), SOTU_ERR_DATA, path,
                 "num_batches_tracked", "integer");

    printf("no counter: 0\n");
    f = copy_open(good, "nonbt.h5", path, sizeof path);
    H5Ldelete(f, "/weights/bn1.num_batches_tracked", H5P_DEFAULT);
    H5Fclose(f);
    CHECK(resnet_weights_read(path, SOTU_WEIGHTS_GROUP, &m) == SOTU_OK &&
          m.num_batches_tracked == 0);

    printf("missing group\n");
    expect_error(resnet_weights_read(good, "/merged", &m), SOTU_ERR_DATA, good, "/merged",
                 "missing");

    printf("not HDF5\n");
    path_in(path, sizeof path, "text.h5");
    FILE *t = fopen(path, "w");
    fputs("not hdf5\n", t);
    fclose(t);
    sotu_status s = resnet_weights_read_config(path, &r);
    CHECK_MSG(s == SOTU_ERR_DATA, "%s", sotu_last_error());
    s = sotu_weights_arch(path, arch, sizeof arch);
    CHECK_MSG(s == SOTU_ERR_DATA, "%s", sotu_last_error());
    path_in(path, sizeof path, "absent.h5");
    CHECK(resnet_weights_read(path, SOTU_WEIGHTS_GROUP, &m) == SOTU_ERR_IO);

    printf("unwritable\n");
    s = resnet_weights_write("/nonexistent-dir/x.h5", &m);
    CHECK(s == SOTU_ERR_IO && strstr(sotu_last_error(), "/nonexistent-dir/x.h5"));
    resnet_free(&m);
}

/* Writes a weights file and eval-mode logits of the same model on random
 * inputs, for the PyTorch check. */
static int export_case(const char *out, const char *name, const resnet_config *c, hid_t lf)
{
    const int B = 3;
    resnet_model m;
    if (make_model(&m, c, B) != SOTU_OK) {
        fprintf(stderr, "%s\n", sotu_last_error());
        return 1;
    }
    size_t n = (size_t)B * c->channels * c->image_size * c->image_size;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = sotu_rng_normal(&rng);
    m.training = false;
    resnet_forward(&m, x, NULL, B);
    char path[512];
    snprintf(path, sizeof path, "%s/%s.h5", out, name);
    sotu_status s = resnet_weights_write(path, &m);
    hid_t g = H5Gcreate2(lf, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t xd[4] = {(hsize_t)B, (hsize_t)c->channels, (hsize_t)c->image_size,
                     (hsize_t)c->image_size};
    hsize_t ld[2] = {(hsize_t)B, (hsize_t)c->classes};
    hid_t xs = H5Screate_simple(4, xd, NULL), ls = H5Screate_simple(2, ld, NULL);
    hid_t xds = H5Dcreate2(g, "inputs", H5T_IEEE_F32LE, xs, H5P_DEFAULT, H5P_DEFAULT,
                           H5P_DEFAULT);
    hid_t lds = H5Dcreate2(g, "logits", H5T_IEEE_F32LE, ls, H5P_DEFAULT, H5P_DEFAULT,
                           H5P_DEFAULT);
    int bad = s != SOTU_OK || g < 0 || xds < 0 || lds < 0 ||
              H5Dwrite(xds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0 ||
              H5Dwrite(lds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, m.logits) < 0;
    if (s != SOTU_OK)
        fprintf(stderr, "%s\n", sotu_last_error());
    H5Dclose(xds);
    H5Dclose(lds);
    H5Sclose(xs);
    H5Sclose(ls);
    H5Gclose(g);
    free(x);
    resnet_free(&m);
    return bad;
}

static int export_fixture(const char *out)
{
    char path[512];
    snprintf(path, sizeof path, "%s/logits.h5", out);
    hid_t lf = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (lf < 0) {
        fprintf(stderr, "cannot create %s\n", path);
        return 1;
    }
    resnet_config plain = config(4, 16, 3, true, RESNET_CLR_NONE);
    resnet_config std = config(3, 32, 5, false, RESNET_CLR_NONE);
    std.depth = 34;
    resnet_config clr = config(4, 16, 3, true, RESNET_CLR_ALL);
    int bad = export_case(out, "plain", &plain, lf) | export_case(out, "std", &std, lf) |
              export_case(out, "clrfull", &clr, lf);
    H5Fclose(lf);
    return bad;
}

int main(int argc, char **argv)
{
    sotu_h5_quiet();
    if (argc >= 3 && !strcmp(argv[1], "--export")) {
        uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 5;
        printf("seed %llu\n", (unsigned long long)seed);
        sotu_rng_init(&rng, seed, 0);
        return export_fixture(argv[2]);
    }
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 5;
    printf("seed %llu\n", (unsigned long long)seed);
    sotu_rng_init(&rng, seed, 0);
    snprintf(dir, sizeof dir, "/tmp/sotu-test-resnet-io-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_plain_into_clr();
    test_bad_files();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return check_finish("test_resnet_io");
}
