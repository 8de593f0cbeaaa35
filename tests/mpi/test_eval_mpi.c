/* Distributed evaluation equals serial evaluation exactly: a tiny random ViT,
 * four small random tasks (one inactive), per-row perturbed backbones;
 * sotu_evaluate_matrices on 3 ranks, then on rank 0 alone (nranks 1, no MPI),
 * every accuracy matrix and the ridge λ compared bit for bit. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/log.h"
#include "common/rng.h"
#include "eval/evaluate.h"
#include "mpi/mpi_util.h"
#include "worker/vit.h"

enum { T = 4, S = 8 };

typedef struct {
    const float *theta0;
    size_t n;
} ctx_t;

static sotu_status backbone(void *ctx, int row, float *params)
{
    const ctx_t *c = ctx;
    for (size_t i = 0; i < c->n; i++)
        params[i] = c->theta0[i] * (1.0f + 0.05f * (float)row * ((float)(i % 7) - 3.0f) / 3.0f);
    return SOTU_OK;
}

/* Rank 0 writes the tasks and the manifest into dir. */
static void make_tasks(const char *dir, uint64_t seed)
{
    sotu_manifest man = {0};
    snprintf(man.name, sizeof man.name, "tiny");
    man.n_tasks = T;
    man.tasks = calloc(T, sizeof *man.tasks);
    sotu_rng r;
    sotu_rng_init(&r, seed, 77);
    for (int t = 0; t < T; t++) {
        sotu_taskset ts = {0};
        snprintf(ts.name, sizeof ts.name, "task%d", t);
        ts.classes = 2 + t % 2;
        ts.class_names = calloc((size_t)ts.classes, sizeof *ts.class_names);
        for (int c = 0; c < ts.classes; c++)
            snprintf(ts.class_names[c], sizeof ts.class_names[c], "c%d", c);
        ts.height = ts.width = S;
        ts.channels = 1;
        ts.n_train = 45 + 3 * t;
        ts.n_test = 21 + t;
        ts.train_images = malloc((size_t)ts.n_train * S * S);
        ts.test_images = malloc((size_t)ts.n_test * S * S);
        ts.train_labels = malloc(sizeof(int32_t) * (size_t)ts.n_train);
        ts.test_labels = malloc(sizeof(int32_t) * (size_t)ts.n_test);
        for (int k = 0; k < ts.n_train + ts.n_test; k++) {
            bool tr = k < ts.n_train;
            int idx = tr ? k : k - ts.n_train, c = (int)sotu_rng_below(&r, (uint64_t)ts.classes);
            uint8_t *img = (tr ? ts.train_images : ts.test_images) + (size_t)idx * S * S;
            for (int p = 0; p < S * S; p++)
                img[p] = (uint8_t)((p % ts.classes == c ? 150 : 40) + sotu_rng_below(&r, 60));
            (tr ? ts.train_labels : ts.test_labels)[idx] = c;
        }
        char path[1200];
        snprintf(path, sizeof path, "%s/t%d.h5", dir, t);
        CHECK(sotu_taskset_write(path, &ts) == SOTU_OK);
        snprintf(man.tasks[t].name, sizeof man.tasks[t].name, "%s", ts.name);
        snprintf(man.tasks[t].file, sizeof man.tasks[t].file, "t%d.h5", t);
        man.tasks[t].classes = ts.classes;
        man.tasks[t].n_train = ts.n_train;
        man.tasks[t].n_test = ts.n_test;
        sotu_taskset_free(&ts);
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/manifest.yaml", dir);
    CHECK(sotu_manifest_write(path, &man) == SOTU_OK);
    sotu_manifest_free(&man);
}

static bool same(const double *a, const double *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i]))))
            return false;
    return true;
}

int main(int argc, char **argv)
{
    int rank = 0, nranks = 1;
    if (sotu_mpi_init(&argc, &argv, &rank, &nranks) != SOTU_OK)
        return 1;
    uint64_t seed = 4242;
    if (rank == 0)
        printf("seed %llu, %d ranks\n", (unsigned long long)seed, nranks);
    char dir[256] = "/tmp/sotu-evalmpi-XXXXXX";
    if (rank == 0 && !mkdtemp(dir))
        sotu_mpi_fail(MPI_ERR_OTHER, "mkdtemp", __FILE__, __LINE__);
    if (rank == 0)
        make_tasks(dir, seed);
    sotu_mpi_bcast_bytes(dir, sizeof dir, 0);
    SOTU_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));

    sotu_config cfg;
    sotu_config_defaults(&cfg);
    cfg.train.batch_size = 8;
    cfg.eval.rp_dim = 24;
    cfg.eval.fit_per_task = 40;
    cfg.eval.every = 1;
    char mpath[300];
    snprintf(mpath, sizeof mpath, "%s/manifest.yaml", dir);
    sotu_manifest man = {0};
    CHECK(sotu_manifest_read(mpath, &man) == SOTU_OK);

    vit_config vc = {S, 1, 4, 16, 2, 2, 32, 5};
    vit_model m0 = {0};
    CHECK(vit_init(&m0, &vc, 1) == SOTU_OK);
    vit_init_random(&m0, seed);
    /* timm's 0.02 init leaves images nearly indistinguishable: amplify the patches. */
    const sotu_tensor_info *pe = &m0.table.t[sotu_tensor_find(&m0.table, "patch_embed.proj.weight")];
    for (size_t i = 0; i < pe->count; i++)
        m0.params[pe->offset + i] *= 40.0f;
    ctx_t ctx = {m0.params, m0.num_params};

    bool active[T] = {true, true, false, true};
    float *hw[T] = {0}, *hb[T] = {0};
    sotu_rng r;
    sotu_rng_init(&r, seed, 5);
    for (int t = 0; t < T; t++) {
        int K = man.tasks[t].classes;
        hw[t] = malloc(sizeof(float) * (size_t)K * vc.dim);
        hb[t] = malloc(sizeof(float) * (size_t)K);
        for (int i = 0; i < K * vc.dim; i++)
            hw[t][i] = 0.3f * sotu_rng_normal(&r);
        for (int i = 0; i < K; i++)
            hb[t][i] = 0.1f * sotu_rng_normal(&r);
    }
    sotu_eval_input in = {.vc = &vc, .n_params = m0.num_params, .man = &man, .cfg = &cfg,
                          .active = active, .head_w = hw, .head_b = hb, .backbone = backbone,
                          .ctx = &ctx, .want = {true, true, true, true, true}, .label = "test"};
    double *dist[SOTU_EV_N] = {0}, *ser[SOTU_EV_N] = {0};
    for (int c = 0; c < SOTU_EV_N; c++) {
        dist[c] = malloc(sizeof(double) * T * T);
        ser[c] = malloc(sizeof(double) * T * T);
    }
    double lam_d = 0, lam_s = 0;
    CHECK(sotu_evaluate_matrices(&in, rank, nranks, dist, &lam_d) == SOTU_OK);
    if (rank == 0) {
        CHECK(sotu_evaluate_matrices(&in, 0, 1, ser, &lam_s) == SOTU_OK);
        CHECK_MSG(lam_d == lam_s, "ridge lambda %.17g (distributed) vs %.17g (serial)", lam_d,
                  lam_s);
        CHECK(lam_d > 0);
        for (int c = 0; c < SOTU_EV_N; c++) {
            CHECK_MSG(same(dist[c], ser[c], T * T), "classifier %s differs",
                      sotu_eval_classifier_name(c));
            int n = 0;
            for (int i = 0; i < T; i++)
                for (int j = 0; j < T; j++) {
                    double v = dist[c][i * T + j];
                    bool want = j <= i && active[j];
                    CHECK_MSG(want ? (v >= 0 && v <= 1) : isnan(v), "%s A[%d][%d] = %g",
                              sotu_eval_classifier_name(c), i, j, v);
                    n += !isnan(v);
                }
            CHECK(n == 1 + 2 + 2 + 3);
            printf("%-10s last row:", sotu_eval_classifier_name(c));
            for (int j = 0; j < T; j++)
                printf(" %.4f", dist[c][(T - 1) * T + j]);
            printf("\n");
        }
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
    for (int c = 0; c < SOTU_EV_N; c++) {
        free(dist[c]);
        free(ser[c]);
    }
    for (int t = 0; t < T; t++) {
        free(hw[t]);
        free(hb[t]);
    }
    vit_free(&m0);
    sotu_manifest_free(&man);
    int fails = check_failures, any = 0;
    SOTU_MPI_CHECK(MPI_Allreduce(&fails, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
    int rc = rank == 0 ? check_finish("test_eval_mpi") : (fails ? 1 : 0);
    sotu_mpi_finalize();
    return any ? (rc ? rc : 1) : rc;
}
