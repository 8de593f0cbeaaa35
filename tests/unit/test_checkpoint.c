/* Checkpoint writer and reader: round trip of a small synthetic ViT table
 * with tasks, heads, statistics and extra keeps; clean errors for damaged
 * files; atomicity (a write that fails for lack of space, forced with
 * RLIMIT_FSIZE in a child, leaves the previous checkpoint readable and no
 * temporary file behind). */
#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "common/rng.h"
#include "io/checkpoint.h"
#include "io/fsutil.h"
#include "io/weights.h"

static void table_add(sotu_tensor_table *tab, const char *name, int ndim, int64_t a, int64_t b,
                      int64_t c, int64_t d)
{
    sotu_tensor_info *t = &tab->t[tab->n++];
    int64_t shape[4] = {a, b, c, d};
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->count = 1;
    for (int k = 0; k < ndim; k++)
        t->count *= (size_t)(t->shape[k] = shape[k]);
    t->offset = tab->total;
    tab->total += t->count;
}

/* The ViT table of worker/vit.h, built here so this test needs no model. */
static void build_table(sotu_tensor_table *tab, const sotu_vit_config *c)
{
    int64_t D = c->dim, F = c->mlp_hidden, N = (c->image_size / c->patch) * (c->image_size / c->patch);
    tab->n = 0;
    tab->total = 0;
    tab->t = calloc((size_t)(8 + 12 * c->depth), sizeof *tab->t);
    table_add(tab, "cls_token", 3, 1, 1, D, 0);
    table_add(tab, "pos_embed", 3, 1, N + 1, D, 0);
    table_add(tab, "patch_embed.proj.weight", 4, D, c->channels, c->patch, c->patch);
    table_add(tab, "patch_embed.proj.bias", 1, D, 0, 0, 0);
    for (int i = 0; i < c->depth; i++) {
        char n[96];
#define BLK(suffix, nd, a, b)                                \
        snprintf(n, sizeof n, "blocks.%d.%s", i, suffix); \
        table_add(tab, n, nd, a, b, 0, 0)
        BLK("norm1.weight", 1, D, 0);
        BLK("norm1.bias", 1, D, 0);
        BLK("attn.qkv.weight", 2, 3 * D, D);
        BLK("attn.qkv.bias", 1, 3 * D, 0);
        BLK("attn.proj.weight", 2, D, D);
        BLK("attn.proj.bias", 1, D, 0);
        BLK("norm2.weight", 1, D, 0);
        BLK("norm2.bias", 1, D, 0);
        BLK("mlp.fc1.weight", 2, F, D);
        BLK("mlp.fc1.bias", 1, F, 0);
        BLK("mlp.fc2.weight", 2, D, F);
        BLK("mlp.fc2.bias", 1, D, 0);
#undef BLK
    }
    table_add(tab, "norm.weight", 1, D, 0, 0, 0);
    table_add(tab, "norm.bias", 1, D, 0, 0, 0);
    table_add(tab, "head.weight", 2, c->classes, D, 0, 0);
    table_add(tab, "head.bias", 1, c->classes, 0, 0, 0);
}

static float *random_floats(size_t n, uint64_t seed, uint64_t stream)
{
    float *p = malloc(n * sizeof *p + 1);
    sotu_rng r;
    sotu_rng_init(&r, seed, stream);
    for (size_t i = 0; i < n; i++)
        p[i] = sotu_rng_normal(&r);
    return p;
}

enum { T = 3 };

typedef struct {
    sotu_vit_config cfg;
    sotu_tensor_table tab;
    float *merged, *merged_k1, *merged_k2;
    float *hw[T], *hb[T];
    sotu_checkpoint_task tasks[T];
    double cosine[T * T], acc[T * T];
    sotu_checkpoint_figure summary[2];
    sotu_checkpoint_keep keeps[2];
    sotu_checkpoint ck;
} fixture;

static const char *const task_names[T] = {"tops", "shoes.v2", "bags"};
static const int task_classes[T] = {3, 2, 4};

static void fixture_init(fixture *fx, uint64_t seed)
{
    memset(fx, 0, sizeof *fx);
    fx->cfg = (sotu_vit_config){.image_size = 8, .channels = 1, .patch = 4, .dim = 8,
                                .depth = 2, .heads = 2, .mlp_hidden = 16, .classes = 4};
    build_table(&fx->tab, &fx->cfg);
    fx->merged = random_floats(fx->tab.total, seed, 1);
    fx->merged_k1 = random_floats(fx->tab.total, seed, 2);
    fx->merged_k2 = random_floats(fx->tab.total, seed, 3);
    for (int t = 0; t < T; t++) {
        fx->hw[t] = random_floats((size_t)task_classes[t] * fx->cfg.dim, seed, 10 + t);
        fx->hb[t] = random_floats((size_t)task_classes[t], seed, 20 + t);
        /* stored out of index order on purpose: the reader sorts */
        int idx = (t + 1) % T;
        fx->tasks[t] = (sotu_checkpoint_task){
            .name = task_names[t], .index = idx, .classes = task_classes[t], .keep = 0.2,
            .seed = 0xfedcba9876543210ull + (uint64_t)t, .lr = 1e-3 * (t + 1), .epochs = 2 + t,
            .train_seconds = 1.5 * t, .finetuned_acc = t == 2 ? NAN : 0.9 - 0.1 * t,
            .kept_values = 1000 + t, .bytes = 3500 + (int64_t)t * 7, .failed = t == 2,
            .status = t == 2 ? "left_out" : NULL, .head_weight = t == 2 ? NULL : fx->hw[t], .head_bias = t == 2 ? NULL : fx->hb[t]};
    }
    for (int i = 0; i < T * T; i++) {
        fx->cosine[i] = i % (T + 1) == 0 ? 1.0 : 0.01 * i;
        fx->acc[i] = (i % T) <= (i / T) ? 0.5 + 0.01 * i : NAN;
    }
    fx->summary[0] = (sotu_checkpoint_figure){"final_avg_acc", 0.75};
    fx->summary[1] = (sotu_checkpoint_figure){"forgetting", 0.031};
    fx->keeps[0] = (sotu_checkpoint_keep){0.05, fx->merged_k2};
    fx->keeps[1] = (sotu_checkpoint_keep){0.1, fx->merged_k1};
    fx->ck = (sotu_checkpoint){.config_yaml = "method: sotu\ntrain:\n  epochs: 2\n",
                               .model = fx->cfg, .table = &fx->tab, .merged = fx->merged,
                               .keep = 0.2, .n_tasks = T, .tasks = fx->tasks,
                               .cosine = fx->cosine, .collision_rate = 0.125,
                               .merge_mode = "sum", .merge_scale = 0.9, .n_keeps = 2,
                               .keeps = fx->keeps, .acc_matrix = fx->acc, .n_summary = 2,
                               .summary = fx->summary};
}

static void fixture_free(fixture *fx)
{
    free(fx->tab.t);
    free(fx->merged);
    free(fx->merged_k1);
    free(fx->merged_k2);
    for (int t = 0; t < T; t++) {
        free(fx->hw[t]);
        free(fx->hb[t]);
    }
}

static int same_or_both_nan(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

static int floats_equal(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

static void check_info(const fixture *fx, const sotu_checkpoint_info *info)
{
    CHECK(info->format_version == 1);
    CHECK(!strcmp(info->sotu_version, SOTU_VERSION));
    CHECK(strlen(info->created) == 20 && info->created[10] == 'T' && info->created[19] == 'Z');
    CHECK(!strcmp(info->config_yaml, fx->ck.config_yaml));
    CHECK(!memcmp(&info->model, &fx->cfg, sizeof fx->cfg));
    CHECK(info->n_merged_tensors == fx->tab.n);
    CHECK(info->merged_values == (int64_t)fx->tab.total);
    CHECK(info->keep == 0.2);
    CHECK(info->n_keeps == 2 && info->keeps[0] == 0.1 && info->keeps[1] == 0.05);
    CHECK(info->n_tasks == T);
    for (int t = 0; t < T && info->n_tasks == T; t++) {
        const sotu_checkpoint_task *w = &fx->tasks[t];
        int i = sotu_checkpoint_find_task(info, w->name);
        CHECK_MSG(i == w->index, "task %s at %d, expected %d", w->name, i, w->index);
        if (i < 0)
            continue;
        const sotu_checkpoint_task_info *r = &info->tasks[i];
        CHECK(r->index == i && r->classes == w->classes && r->epochs == w->epochs);
        CHECK(r->keep == w->keep && r->lr == w->lr && r->train_seconds == w->train_seconds);
        CHECK(same_or_both_nan(r->finetuned_acc, w->finetuned_acc));
        CHECK(r->seed == w->seed && r->kept_values == w->kept_values && r->bytes == w->bytes);
        CHECK(r->failed == w->failed);
        CHECK(!strcmp(r->status, w->status ? w->status : "ok"));
        CHECK(!r->head_weight == !w->head_weight && !r->head_bias == !w->head_bias);
        if (r->head_weight && w->head_weight) {
            CHECK(floats_equal(r->head_weight, w->head_weight, (size_t)w->classes * fx->cfg.dim));
            CHECK(floats_equal(r->head_bias, w->head_bias, (size_t)w->classes));
        }
    }
    int cos_ok = 1, acc_ok = 1;
    for (int i = 0; i < T * T; i++) {
        cos_ok &= info->cosine[i] == fx->cosine[i];
        acc_ok &= same_or_both_nan(info->acc_matrix[i], fx->acc[i]);
    }
    CHECK(cos_ok);
    CHECK(acc_ok);
    CHECK(info->collision_rate == 0.125 && info->merge_scale == 0.9);
    CHECK(!strcmp(info->merge_mode, "sum"));
    CHECK(info->n_summary == 2);
    for (int i = 0; i < info->n_summary; i++) {
        int j = !strcmp(info->summary_names[i], "forgetting");
        CHECK(!strcmp(info->summary_names[i], fx->summary[j].name));
        CHECK(info->summary_values[i] == fx->summary[j].value);
    }
}

static void test_round_trip(const char *dir, uint64_t seed)
{
    fixture fx;
    fixture_init(&fx, seed);
    char path[1024];
    snprintf(path, sizeof path, "%s/ck.h5", dir);
    sotu_status s = sotu_checkpoint_write(path, &fx.ck);
    CHECK_MSG(s == SOTU_OK, "write: %s", sotu_last_error());

    sotu_checkpoint_info info;
    float *params = calloc(fx.tab.total, sizeof *params);
    s = sotu_checkpoint_read(path, &fx.tab, params, &info);
    CHECK_MSG(s == SOTU_OK, "read: %s", sotu_last_error());
    if (s == SOTU_OK) {
        check_info(&fx, &info);
        CHECK(floats_equal(params, fx.merged, fx.tab.total));
        sotu_checkpoint_info_free(&info);
        sotu_checkpoint_info_free(&info);
    }
    CHECK(sotu_checkpoint_read_merged(path, 0.1, &fx.tab, params, 0) == SOTU_OK);
    CHECK(floats_equal(params, fx.merged_k1, fx.tab.total));
    CHECK(sotu_checkpoint_read_merged(path, 0.05, &fx.tab, params, 0) == SOTU_OK);
    CHECK(floats_equal(params, fx.merged_k2, fx.tab.total));
    CHECK(sotu_checkpoint_read_merged(path, 0.2, &fx.tab, params, 0) == SOTU_OK);
    CHECK(floats_equal(params, fx.merged, fx.tab.total));
    s = sotu_checkpoint_read_merged(path, 0.3, &fx.tab, params, 0);
    CHECK(s == SOTU_ERR_DATA);
    CHECK_MSG(strstr(sotu_last_error(), "keep 0.3") && strstr(sotu_last_error(), "0.05"), "%s",
              sotu_last_error());

    /* A table of another model is refused naming the tensor. */
    sotu_vit_config other = fx.cfg;
    other.dim = 16;
    sotu_tensor_table tab2;
    build_table(&tab2, &other);
    float *p2 = calloc(tab2.total, sizeof *p2);
    s = sotu_checkpoint_read_merged(path, 0, &tab2, p2, 0);
    CHECK(s == SOTU_ERR_DATA);
    CHECK_MSG(strstr(sotu_last_error(), "cls_token") != NULL, "%s", sotu_last_error());
    free(p2);
    free(tab2.t);

    /* The same content written again gives the same merged weights (a
     * rewrite replaces the file). */
    fx.ck.n_keeps = 0;
    fx.ck.acc_matrix = NULL;
    fx.ck.cosine = NULL;
    CHECK(sotu_checkpoint_write(path, &fx.ck) == SOTU_OK);
    CHECK(sotu_checkpoint_read_info(path, &info) == SOTU_OK);
    CHECK(info.n_keeps == 0 && isnan(info.cosine[0]) && isnan(info.acc_matrix[T * T - 1]));
    sotu_checkpoint_info_free(&info);

    /* Before any task has finished. */
    fx.ck.n_tasks = 0;
    CHECK_MSG(sotu_checkpoint_write(path, &fx.ck) == SOTU_OK, "%s", sotu_last_error());
    s = sotu_checkpoint_read(path, &fx.tab, params, &info);
    CHECK_MSG(s == SOTU_OK, "empty run: %s", sotu_last_error());
    CHECK(info.n_tasks == 0 && floats_equal(params, fx.merged, fx.tab.total));
    sotu_checkpoint_info_free(&info);
    free(params);
    fixture_free(&fx);
}

static void test_bad_input(const char *dir, uint64_t seed)
{
    fixture fx;
    fixture_init(&fx, seed);
    char path[1024];
    snprintf(path, sizeof path, "%s/bad.h5", dir);
    fx.tasks[1].index = fx.tasks[0].index;
    CHECK(sotu_checkpoint_write(path, &fx.ck) == SOTU_ERR_DATA);
    CHECK(strstr(sotu_last_error(), "exactly once") != NULL);
    fx.tasks[1].index = (1 + 1) % T;
    fx.tasks[0].name = "a/b";
    CHECK(sotu_checkpoint_write(path, &fx.ck) == SOTU_ERR_DATA);
    fx.tasks[0].name = task_names[0];
    fx.tasks[0].head_bias = NULL;
    CHECK(sotu_checkpoint_write(path, &fx.ck) == SOTU_ERR_DATA);
    fx.tasks[0].head_bias = fx.hb[0];
    CHECK(!sotu_file_exists(path));

    snprintf(path, sizeof path, "%s/no/such/dir/ck.h5", dir);
    sotu_status s = sotu_checkpoint_write(path, &fx.ck);
    CHECK(s == SOTU_ERR_IO);
    CHECK_MSG(strstr(sotu_last_error(), path) != NULL, "%s", sotu_last_error());

    sotu_checkpoint_info info;
    CHECK(sotu_checkpoint_read_info(path, &info) == SOTU_ERR_IO);
    CHECK(info.tasks == NULL && info.n_tasks == 0);

    /* A pretrained weights file is not a checkpoint. */
    snprintf(path, sizeof path, "%s/weights.h5", dir);
    CHECK(sotu_weights_write(path, &fx.cfg, &fx.tab, fx.merged) == SOTU_OK);
    s = sotu_checkpoint_read_info(path, &info);
    CHECK(s == SOTU_ERR_DATA);
    CHECK_MSG(strstr(sotu_last_error(), "sotu-checkpoint") != NULL, "%s", sotu_last_error());

    /* Damaged checkpoints: each edit must be named by the reader. */
    struct {
        const char *what, *expect;
    } cases[] = {
        {"drop /merge", "/merge is missing"},
        {"shrink head bias", "/heads/tops/bias has shape [2], expected [3]"},
        {"drop task index", "/tasks/bags has no attribute 'index'"},
        {"bad status", "status 'maybe'"},
        {"cosine shape", "/merge/cosine has shape [2,3], expected [3,3]"},
        {"format version", "format_version' is 2"},
        {"drop /merged tensor", "pos_embed"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        snprintf(path, sizeof path, "%s/damaged%zu.h5", dir, c);
        CHECK(sotu_checkpoint_write(path, &fx.ck) == SOTU_OK);
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        CHECK(f >= 0);
        herr_t e = 0;
        if (c == 0) {
            e = H5Ldelete(f, "/merge", H5P_DEFAULT);
        } else if (c == 1 || c == 4) {
            const char *name = c == 1 ? "/heads/tops/bias" : "/merge/cosine";
            hsize_t dims[2] = {c == 1 ? 2 : 2, 3};
            e = H5Ldelete(f, name, H5P_DEFAULT);
            hid_t sp = H5Screate_simple(c == 1 ? 1 : 2, dims, NULL);
            hid_t d = H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                                 H5P_DEFAULT);
            e |= (d < 0);
            H5Dclose(d);
            H5Sclose(sp);
        } else if (c == 2) {
            e = H5Adelete_by_name(f, "/tasks/bags", "index", H5P_DEFAULT);
        } else if (c == 3) {
            hid_t g = H5Gopen2(f, "/tasks/tops", H5P_DEFAULT);
            e = H5Adelete(g, "status");
            H5Gclose(g);
            g = H5Gopen2(f, "/tasks/tops", H5P_DEFAULT);
            hid_t t = H5Tcopy(H5T_C_S1);
            H5Tset_size(t, 6);
            hid_t sp = H5Screate(H5S_SCALAR);
            hid_t a = H5Acreate2(g, "status", t, sp, H5P_DEFAULT, H5P_DEFAULT);
            e |= H5Awrite(a, t, "maybe");
            H5Aclose(a);
            H5Sclose(sp);
            H5Tclose(t);
            H5Gclose(g);
        } else if (c == 5) {
            hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
            int v = 2;
            e = H5Awrite(a, H5T_NATIVE_INT, &v);
            H5Aclose(a);
        } else if (c == 6) {
            e = H5Ldelete(f, "/merged/pos_embed", H5P_DEFAULT);
        }
        CHECK_MSG(e >= 0, "edit '%s' failed", cases[c].what);
        H5Fclose(f);
        float *params = calloc(fx.tab.total, sizeof *params);
        s = sotu_checkpoint_read(path, &fx.tab, params, &info);
        CHECK_MSG(s == SOTU_ERR_DATA, "%s: status %d", cases[c].what, (int)s);
        CHECK_MSG(strstr(sotu_last_error(), cases[c].expect) != NULL, "%s: '%s' lacks '%s'",
                  cases[c].what, sotu_last_error(), cases[c].expect);
        CHECK(info.tasks == NULL && info.cosine == NULL);
        free(params);
    }
    fixture_free(&fx);
}

static int count_tmp_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

/* A second write runs in a child whose files may not grow past 8 KiB, as
 * on a full disk; it must fail with SOTU_ERR_IO and leave the first. */
static void test_atomic(const char *dir, uint64_t seed)
{
    fixture fx;
    fixture_init(&fx, seed);
    char path[1024];
    snprintf(path, sizeof path, "%s/atomic.h5", dir);
    fx.ck.n_keeps = 0;
    CHECK(sotu_checkpoint_write(path, &fx.ck) == SOTU_OK);

    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {8192, 8192};
        setrlimit(RLIMIT_FSIZE, &rl);
        fixture big;
        fixture_init(&big, seed + 1);
        sotu_status s = sotu_checkpoint_write(path, &big.ck);
        fprintf(stderr, "child write (expected to fail): %s\n", sotu_last_error());
        _exit(s == SOTU_ERR_IO && strstr(sotu_last_error(), path) ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status 0x%x", status);
    CHECK(count_tmp_files(dir, "atomic.h5.tmp") == 0);

    sotu_checkpoint_info info;
    float *params = calloc(fx.tab.total, sizeof *params);
    sotu_status s = sotu_checkpoint_read(path, &fx.tab, params, &info);
    CHECK_MSG(s == SOTU_OK, "previous checkpoint after a failed write: %s", sotu_last_error());
    if (s == SOTU_OK) {
        CHECK(floats_equal(params, fx.merged, fx.tab.total));
        CHECK(info.n_tasks == T && info.n_keeps == 0);
        sotu_checkpoint_info_free(&info);
    }
    free(params);
    fixture_free(&fx);
}

int main(void)
{
    uint64_t seed = 20240501;
    printf("test_checkpoint: seed %llu\n", (unsigned long long)seed);
    char dir[256];
    snprintf(dir, sizeof dir, "test_checkpoint.%ld", (long)getpid());
    if (sotu_mkdirs(dir) != SOTU_OK) {
        fprintf(stderr, "%s\n", sotu_last_error());
        return 1;
    }
    test_round_trip(dir, seed);
    test_bad_input(dir, seed);
    test_atomic(dir, seed);
    int rc = check_finish("test_checkpoint");
    if (rc == 0) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return rc;
}
