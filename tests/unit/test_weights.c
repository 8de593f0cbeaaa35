/* Weights files: round trip of tensors and model config, shape mismatch,
 * missing tensor, non-float tensor, missing config attribute, skipping the
 * head, and a second group written into an existing file. The one HDF5
 * writer (io/h5util.h, sotu_h5_write_file): the same content gives the same
 * bytes, every float tensor carries a Fletcher32 checksum, a fill that fails
 * with objects left open leaves no file, no temporary file and no open
 * HDF5 object. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "io/h5util.h"
#include "io/weights.h"

static char dir[64];

/* A table of n tensors with the given names and shapes, laid out in order. */
static void make_table(sotu_tensor_table *tab, sotu_tensor_info *infos, int n,
                       const char *const *names, const int64_t (*shapes)[4], const int *ndims)
{
    memset(infos, 0, (size_t)n * sizeof *infos);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        snprintf(infos[i].name, sizeof infos[i].name, "%s", names[i]);
        infos[i].ndim = ndims[i];
        infos[i].count = 1;
        for (int k = 0; k < ndims[i]; k++) {
            infos[i].shape[k] = shapes[i][k];
            infos[i].count *= (size_t)shapes[i][k];
        }
        infos[i].offset = off;
        off += infos[i].count;
    }
    tab->n = n;
    tab->t = infos;
    tab->total = off;
}

static const char *const names[] = {"cls_token", "patch_embed.proj.weight",
                                    "blocks.0.attn.qkv.weight", "head.weight", "head.bias"};
static const int64_t shapes[][4] = {{1, 1, 8}, {8, 1, 4, 4}, {24, 8}, {3, 8}, {3}};
static const int ndims[] = {3, 4, 2, 2, 1};
enum { NT = 5 };

/* A fill that fails half-way with a group and a dataset still open. */
static sotu_status fill_and_fail(hid_t f, const void *ctx, const char *path)
{
    hid_t g = H5Gcreate2(f, "/half", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t n = 4;
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(g, "x", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    (void)d;
    H5Sclose(sp);
    return sotu_error(SOTU_ERR_IO, "%s: made-up failure", path);
}

static int same_bytes(const char *a, const char *b)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

static void expect_bad(const char *path, const sotu_tensor_table *tab, float *buf, int flags,
                       const char *want1, const char *want2)
{
    sotu_status s = sotu_weights_read_into(path, "/weights", tab, buf, flags);
    const char *msg = sotu_last_error();
    CHECK_MSG(s == SOTU_ERR_DATA, "status %d: %s", (int)s, msg);
    CHECK_MSG(strstr(msg, path) != NULL, "message does not name the file: %s", msg);
    CHECK_MSG(!want1 || strstr(msg, want1), "message lacks '%s': %s", want1, msg);
    CHECK_MSG(!want2 || strstr(msg, want2), "message lacks '%s': %s", want2, msg);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sotu-test-weights-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[256];
    snprintf(path, sizeof path, "%s/w.h5", dir);

    sotu_tensor_info infos[NT + 1];
    sotu_tensor_table tab;
    make_table(&tab, infos, NT, names, shapes, ndims);
    float *params = malloc(tab.total * sizeof *params);
    float *back = calloc(tab.total, sizeof *back);
    for (size_t i = 0; i < tab.total; i++)
        params[i] = (float)i * 0.25f - 3.0f;
    sotu_vit_config cfg = {.image_size = 16, .channels = 1, .patch = 4, .dim = 8, .depth = 1,
                           .heads = 2, .mlp_hidden = 32, .classes = 3};

    /* Round trip. */
    CHECK_MSG(sotu_weights_write(path, &cfg, &tab, params) == SOTU_OK, "%s", sotu_last_error());
    sotu_vit_config rc;
    CHECK(sotu_weights_read_config(path, &rc) == SOTU_OK);
    CHECK(!memcmp(&rc, &cfg, sizeof cfg));
    CHECK_MSG(sotu_weights_read_into(path, "/weights", &tab, back, 0) == SOTU_OK, "%s",
              sotu_last_error());
    CHECK(!memcmp(back, params, tab.total * sizeof *params));

    /* Skipping the head leaves it untouched. */
    memset(back, 0, tab.total * sizeof *back);
    CHECK(sotu_weights_read_into(path, "/weights", &tab, back, SOTU_WEIGHTS_SKIP_HEAD) ==
          SOTU_OK);
    CHECK(back[infos[3].offset] == 0.0f && back[infos[4].offset] == 0.0f);
    CHECK(back[infos[2].offset] == params[infos[2].offset]);

    /* Shape mismatch names the tensor and both shapes; a head of another
     * class count is fine with SKIP_HEAD. */
    int64_t shapes2[NT][4];
    memcpy(shapes2, shapes, sizeof shapes2);
    shapes2[2][0] = 12;
    sotu_tensor_info infos2[NT + 1];
    sotu_tensor_table tab2;
    make_table(&tab2, infos2, NT, names, (const int64_t(*)[4])shapes2, ndims);
    float *big = calloc(tab.total + 64, sizeof *big);
    expect_bad(path, &tab2, big, 0, "blocks.0.attn.qkv.weight", "[24,8]");
    expect_bad(path, &tab2, big, 0, "[12,8]", NULL);
    memcpy(shapes2, shapes, sizeof shapes2);
    shapes2[3][0] = 10;
    shapes2[4][0] = 10;
    make_table(&tab2, infos2, NT, names, (const int64_t(*)[4])shapes2, ndims);
    expect_bad(path, &tab2, big, 0, "head.weight", "[10,8]");
    CHECK(sotu_weights_read_into(path, "/weights", &tab2, big, SOTU_WEIGHTS_SKIP_HEAD) ==
          SOTU_OK);
    int ndims2[NT];
    memcpy(ndims2, ndims, sizeof ndims2);
    ndims2[0] = 2; /* cls_token as [1,1] */
    make_table(&tab2, infos2, NT, names, shapes, ndims2);
    expect_bad(path, &tab2, big, 0, "cls_token", "[1,1,8]");

    /* Missing tensor. */
    const char *names3[NT + 1] = {names[0], names[1], names[2], names[3], names[4], "norm.weight"};
    int64_t shapes3[NT + 1][4];
    memcpy(shapes3, shapes, sizeof shapes);
    shapes3[NT][0] = 8;
    int ndims3[NT + 1] = {3, 4, 2, 2, 1, 1};
    make_table(&tab2, infos2, NT + 1, names3, (const int64_t(*)[4])shapes3, ndims3);
    expect_bad(path, &tab2, big, 0, "norm.weight", "missing");

    /* Missing group. */
    CHECK(sotu_weights_read_into(path, "/merged", &tab, back, 0) == SOTU_ERR_DATA);
    CHECK(strstr(sotu_last_error(), "/merged") != NULL);

    /* A non-float tensor and a missing config attribute, made with HDF5. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(f >= 0);
    CHECK(H5Ldelete(f, "/weights/head.bias", H5P_DEFAULT) >= 0);
    hsize_t three = 3;
    hid_t sp = H5Screate_simple(1, &three, NULL);
    hid_t d = H5Dcreate2(f, "/weights/head.bias", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
    CHECK(d >= 0);
    int32_t ib[3] = {1, 2, 3};
    CHECK(H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, ib) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    CHECK(H5Adelete(f, "heads") >= 0);
    H5Fclose(f);
    expect_bad(path, &tab, back, 0, "head.bias", "floating point");
    CHECK(sotu_weights_read_config(path, &rc) == SOTU_ERR_DATA);
    CHECK(strstr(sotu_last_error(), "heads") != NULL && strstr(sotu_last_error(), path));

    /* write_group and write_config_attrs into an open file, nested group. */
    snprintf(path, sizeof path, "%s/ck.h5", dir);
    f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(f >= 0);
    CHECK(sotu_weights_write_config_attrs((int64_t)f, &cfg, path) == SOTU_OK);
    CHECK(sotu_weights_write_group((int64_t)f, "/merged", &tab, params, path) == SOTU_OK);
    CHECK(sotu_weights_write_group((int64_t)f, "keep/0.1/merged", &tab, params, path) == SOTU_OK);
    H5Fclose(f);
    memset(back, 0, tab.total * sizeof *back);
    CHECK(sotu_weights_read_into(path, "/merged", &tab, back, 0) == SOTU_OK);
    CHECK(!memcmp(back, params, tab.total * sizeof *params));
    memset(back, 0, tab.total * sizeof *back);
    CHECK(sotu_weights_read_into(path, "/keep/0.1/merged", &tab, back, 0) == SOTU_OK);
    CHECK(!memcmp(back, params, tab.total * sizeof *params));
    CHECK(sotu_weights_read_config(path, &rc) == SOTU_OK && rc.mlp_hidden == 32);

    /* The one writer: same content, same bytes; a checksum per tensor. */
    {
        char a[300], b[300];
        snprintf(a, sizeof a, "%s/same-a.h5", dir);
        snprintf(b, sizeof b, "%s/same-b.h5", dir);
        CHECK(sotu_weights_write(a, &cfg, &tab, params) == SOTU_OK);
        CHECK(sotu_weights_write(b, &cfg, &tab, params) == SOTU_OK);
        CHECK_MSG(same_bytes(a, b), "%s and %s differ", a, b);
        hid_t wf = H5Fopen(a, H5F_ACC_RDONLY, H5P_DEFAULT);
        for (int i = 0; i < NT; i++) {
            char name[96];
            snprintf(name, sizeof name, "/weights/%s", names[i]);
            hid_t wd = H5Dopen2(wf, name, H5P_DEFAULT);
            hid_t dcpl = H5Dget_create_plist(wd);
            unsigned flags, cd[4];
            size_t ncd = 4;
            CHECK_MSG(H5Pget_nfilters(dcpl) == 1 &&
                          H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, 0, NULL, NULL) ==
                              H5Z_FILTER_FLETCHER32,
                      "%s has no Fletcher32 checksum", name);
            H5Pclose(dcpl);
            H5Dclose(wd);
        }
        H5Fclose(wf);
        CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);

        /* A failed fill: its status, no file, no temporary file, nothing open. */
        snprintf(a, sizeof a, "%s/failed.h5", dir);
        sotu_status fs = sotu_h5_write_file(a, fill_and_fail, NULL);
        CHECK_MSG(fs == SOTU_ERR_IO && strstr(sotu_last_error(), "made-up failure"), "%d %s",
                  (int)fs, sotu_last_error());
        CHECK(access(a, F_OK) != 0);
        char cmd[400];
        snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", dir);
        CHECK_MSG(system(cmd) != 0, "a temporary file was left in %s", dir);
        CHECK_MSG(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0,
                  "%zd HDF5 objects are still open", H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL));
    }

    /* Writing into a missing directory fails cleanly. */
    snprintf(path, sizeof path, "%s/none/w.h5", dir);
    CHECK(sotu_weights_write(path, &cfg, &tab, params) == SOTU_ERR_IO);
    snprintf(path, sizeof path, "%s/absent.h5", dir);
    CHECK(sotu_weights_read_config(path, &rc) == SOTU_ERR_IO);

    free(params);
    free(back);
    free(big);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_finish("test_weights");
}
