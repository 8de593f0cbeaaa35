/* Merge math: disjoint gives zero collisions and exactly zero off-diagonal
 * cosine; sum at keep 1/T shrinks the cosine of correlated deltas by ~keep
 * (printed); mean on collisions; permuted input order gives bitwise equal
 * output; rescale with a nested keep equals extracting at that keep; heads
 * stay per task; merging decoded deltas equals merging extracted ones; the
 * blocked, threaded fast path gives the general path's bits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/mask.h"
#include "common/threads.h"
#include "coordinator/merge.h"
#include "delta_fixture.h"
#include "io/delta.h"
#include "worker/delta_extract.h"

enum { T = 8 };
static const uint64_t SEED = 4242;

static sotu_tensor_table tab;
static float *theta0, *thetas[T];

static void extract_all(double keep, bool rescale, sotu_delta *d)
{
    for (int t = 0; t < T; t++) {
        char name[32];
        snprintf(name, sizeof name, "task%02d", t);
        sotu_extract_opts o = {.task_index = (uint32_t)t, .task_name = name, .seed = SEED,
                               .keep = keep, .rescale = rescale, .dtype = SOTU_DELTA_F32,
                               .prov = fixture_provenance()};
        sotu_status s = sotu_delta_extract(&tab, theta0, thetas[t], &o, &d[t]);
        CHECK_MSG(s == SOTU_OK, "%s", sotu_last_error());
    }
}

static void free_all(sotu_delta *d)
{
    for (int t = 0; t < T; t++)
        sotu_delta_free(&d[t]);
}

static double max_offdiag(const sotu_merge_stats *st)
{
    double m = 0;
    for (int a = 0; a < st->n; a++)
        for (int b = 0; b < st->n; b++)
            if (a != b && fabs(st->cosine[a * st->n + b]) > m)
                m = fabs(st->cosine[a * st->n + b]);
    return m;
}

static float *merge(sotu_delta *d, const int *order, sotu_merge_opts o, sotu_merge_stats *st)
{
    const sotu_delta *list[T];
    for (int t = 0; t < T; t++)
        list[t] = &d[order ? order[t] : t];
    float *out = malloc(tab.total * sizeof(float));
    sotu_status s = sotu_merge_apply(&tab, theta0, list, T, &o, out, st);
    CHECK_MSG(s == SOTU_OK, "%s", sotu_last_error());
    return out;
}

static void test_disjoint(void)
{
    const double keeps[] = {1.0, 0.5};
    for (int k = 0; k < 2; k++) {
        sotu_delta d[T];
        extract_all(keeps[k], false, d);
        sotu_merge_stats st;
        sotu_merge_opts o = {SOTU_MERGE_DISJOINT, 1.0, 0, T};
        float *m = merge(d, NULL, o, &st);
        printf("disjoint keep %.2f: touched %llu, collided %llu, max |off-diagonal cos| %g\n",
               keeps[k], (unsigned long long)st.touched, (unsigned long long)st.collided,
               max_offdiag(&st));
        CHECK(st.collided == 0 && st.collision_rate == 0.0);
        CHECK(max_offdiag(&st) == 0.0);
        for (int a = 0; a < T; a++)
            CHECK_NEAR(st.cosine[a * T + a], 1.0, 1e-12);
        /* Every backbone element is owned by one of the T tasks; at keep 1
         * every one is written by its owner with exactly its owner's δ. */
        int wrong = 0;
        size_t backbone = 0;
        for (int j = 0; j < tab.n; j++) {
            if (!strncmp(tab.t[j].name, "head.", 5))
                continue;
            backbone += tab.t[j].count;
            for (size_t i = 0; i < tab.t[j].count && k == 0; i++) {
                size_t x = tab.t[j].offset + i;
                uint32_t owner = sotu_merge_owner(SEED, (uint32_t)j, tab.t[j].count, i, T);
                float want = theta0[x] + (thetas[owner][x] - theta0[x]);
                wrong += memcmp(&m[x], &want, 4) != 0;
            }
        }
        CHECK_MSG(wrong == 0, "%d elements differ from their owner's delta", wrong);
        if (k == 0)
            CHECK(st.touched == backbone);
        sotu_merge_stats_free(&st);
        free(m);
        free_all(d);
    }
}

static void test_sum_cosine(void)
{
    sotu_delta dense[T], sparse[T];
    extract_all(1.0, false, dense);
    extract_all(1.0 / T, false, sparse);
    sotu_merge_stats sd, ss;
    sotu_merge_opts o = {SOTU_MERGE_SUM, 1.0, 0, T};
    float *md = merge(dense, NULL, o, &sd), *ms = merge(sparse, NULL, o, &ss);
    double cd = max_offdiag(&sd), cs = max_offdiag(&ss);
    printf("sum: max |cosine| dense %.4f, keep 1/%d %.4f; collision rate %.4f (dense %.2f)\n", cd,
           T, cs, ss.collision_rate, sd.collision_rate);
    CHECK(cd > 0.3);               /* the fixture's deltas share a component */
    CHECK(cs < 1.5 * cd / T + 0.02); /* independent masks shrink it by ~keep */
    CHECK(sd.collision_rate == 1.0);
    /* P(>=2 of T at keep 1/T | >= 1) */
    double p = 1.0 / T, none = pow(1 - p, T), one = T * p * pow(1 - p, T - 1);
    double expect = (1 - none - one) / (1 - none);
    CHECK_NEAR(ss.collision_rate, expect, 0.02);
    /* Per-tensor norms of the dense merge are each task's δ norms. */
    for (int j = 0; j < tab.n; j++) {
        double s2 = 0;
        for (size_t i = 0; i < tab.t[j].count; i++) {
            double v = thetas[2][tab.t[j].offset + i] - theta0[tab.t[j].offset + i];
            s2 += v * v;
        }
        CHECK_NEAR(sd.norms[2 * tab.n + j], sqrt(s2), 1e-6 * sqrt(s2) + 1e-12);
    }
    /* Heads are not merged; the task head goes on top. */
    int jh = sotu_tensor_find(&tab, "head.weight");
    CHECK(!memcmp(md + tab.t[jh].offset, theta0 + tab.t[jh].offset, tab.t[jh].count * 4));
    sotu_merge_task_head(&tab, theta0, &sparse[5], ms);
    int bad = 0;
    for (size_t i = 0; i < tab.t[jh].count; i++) {
        size_t x = tab.t[jh].offset + i;
        bad += ms[x] != theta0[x] + (thetas[5][x] - theta0[x]);
    }
    CHECK(bad == 0);
    sotu_merge_stats_free(&sd);
    sotu_merge_stats_free(&ss);
    free(md);
    free(ms);
    free_all(dense);
    free_all(sparse);
}

static void test_mean(void)
{
    sotu_delta d[T];
    extract_all(0.5, false, d);
    sotu_merge_opts o = {SOTU_MERGE_MEAN, 0.5, 0, T};
    float *m = merge(d, NULL, o, NULL);
    int j = sotu_tensor_find(&tab, "blocks.0.mlp.fc1.weight"), checked = 0, bad = 0, coll = 0;
    sotu_mask mk[T];
    for (int t = 0; t < T; t++)
        mk[t] = sotu_mask_of(SEED, (uint32_t)t, (uint32_t)j, tab.t[j].count, 0.5);
    for (size_t i = 0; i < tab.t[j].count; i++) {
        size_t x = tab.t[j].offset + i;
        int c = 0;
        for (int t = 0; t < T; t++)
            c += sotu_mask_keeps(&mk[t], (uint32_t)i);
        float want = theta0[x];
        for (int t = 0; t < T; t++)
            if (sotu_mask_keeps(&mk[t], (uint32_t)i))
                want += (float)((double)(thetas[t][x] - theta0[x]) * 0.5 / c);
        bad += memcmp(&want, &m[x], 4) != 0;
        coll += c > 1;
        checked++;
    }
    printf("mean: %d elements checked, %d with collisions, %d differ\n", checked, coll, bad);
    CHECK(bad == 0 && coll > 0);
    free(m);
    free_all(d);
}

static void test_order(void)
{
    sotu_delta d[T];
    extract_all(0.3, true, d);
    int perm[T] = {5, 2, 7, 0, 3, 6, 1, 4};
    for (int mode = 0; mode < 3; mode++) {
        sotu_merge_opts o = {(sotu_merge_mode)mode, 0.7, 0.2, T};
        sotu_merge_stats a, b;
        float *ma = merge(d, NULL, o, &a), *mb = merge(d, perm, o, &b);
        CHECK_MSG(!memcmp(ma, mb, tab.total * sizeof(float)), "mode %s",
                  sotu_merge_mode_name(o.mode));
        float *mc = merge(d, perm, o, NULL); /* the path without statistics */
        CHECK_MSG(!memcmp(ma, mc, tab.total * sizeof(float)), "mode %s without statistics",
                  sotu_merge_mode_name(o.mode));
        free(mc);
        CHECK(!memcmp(a.cosine, b.cosine, T * T * sizeof(double)));
        CHECK(!memcmp(a.norms, b.norms, (size_t)T * tab.n * sizeof(double)));
        CHECK(a.touched == b.touched && a.collided == b.collided);
        for (int t = 0; t < T; t++)
            CHECK(b.task_index[t] == (uint32_t)t);
        sotu_merge_stats_free(&a);
        sotu_merge_stats_free(&b);
        free(ma);
        free(mb);
    }
    free_all(d);
}

static void test_nested_rescale(void)
{
    sotu_delta shipped[T], direct[T];
    extract_all(0.5, true, shipped);
    extract_all(0.125, true, direct);
    sotu_merge_opts nested = {SOTU_MERGE_SUM, 1.0, 0.125, T};
    sotu_merge_opts own = {SOTU_MERGE_SUM, 1.0, 0, T};
    float *a = merge(shipped, NULL, nested, NULL), *b = merge(direct, NULL, own, NULL);
    CHECK(!memcmp(a, b, tab.total * sizeof(float)));
    /* One element by hand: the rescale is 1/0.125 = 8. */
    int j = sotu_tensor_find(&tab, "blocks.0.attn.qkv.weight");
    int found = 0;
    sotu_mask mk[T];
    for (int t = 0; t < T; t++)
        mk[t] = sotu_mask_of(SEED, (uint32_t)t, (uint32_t)j, tab.t[j].count, 0.125);
    for (size_t i = 0; i < tab.t[j].count && !found; i++) {
        int c = 0, who = -1;
        for (int t = 0; t < T; t++)
            if (sotu_mask_keeps(&mk[t], (uint32_t)i))
                c++, who = t;
        if (c != 1)
            continue;
        size_t x = tab.t[j].offset + i;
        float want = theta0[x] + (float)((double)(thetas[who][x] - theta0[x]) * 8.0);
        CHECK(!memcmp(&a[x], &want, 4));
        found = 1;
    }
    CHECK(found);
    /* keep above the shipped one is refused. */
    const sotu_delta *list[T];
    for (int t = 0; t < T; t++)
        list[t] = &shipped[t];
    sotu_merge_opts up = {SOTU_MERGE_SUM, 1.0, 0.75, T};
    CHECK(sotu_merge_apply(&tab, theta0, list, T, &up, a, NULL) == SOTU_ERR_CONFIG);
    list[1] = &shipped[0];
    CHECK(sotu_merge_apply(&tab, theta0, list, T, &own, a, NULL) == SOTU_ERR_DATA);
    free(a);
    free(b);
    free_all(shipped);
    free_all(direct);
}

/* Encoding and decoding in between changes nothing (f32). */
static void test_decoded(void)
{
    sotu_delta d[T], back[T];
    extract_all(0.25, true, d);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    for (int t = 0; t < T; t++) {
        size_t cap = sotu_delta_encode_bound(&d[t]), n;
        uint8_t *buf = malloc(cap);
        CHECK(sotu_delta_encode(buf, cap, &n, &d[t], cctx, 1) == SOTU_OK);
        CHECK(sotu_delta_decode(buf, n, &tab, &back[t], dctx, "test") == SOTU_OK);
        free(buf);
    }
    sotu_merge_opts o = {SOTU_MERGE_SUM, 1.0, 0, T};
    float *a = merge(d, NULL, o, NULL), *b = merge(back, NULL, o, NULL);
    CHECK(!memcmp(a, b, tab.total * sizeof(float)));
    free(a);
    free(b);
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
    free_all(d);
    free_all(back);
}

/* Tensors of several fast-path blocks (262,144 elements) merged on 1, 2 and
 * 3 threads give the same bits as each other and as the general path (with
 * statistics, one thread), for sum and disjoint, with and without a nested
 * keep and a scale, with tasks shipped at keep 1 among them. */
static void test_blocks_threads(void)
{
    sotu_tensor_table big = fixture_table(384); /* fc1 and fc2: 589,824 elements */
    float *t0 = malloc(big.total * sizeof(float));
    fixture_perturb(&big, NULL, t0, SEED + 50, 0.02f);
    sotu_delta d[T];
    const sotu_delta *list[T];
    float *tt = malloc(big.total * sizeof(float));
    for (int t = 0; t < T; t++) {
        fixture_perturb(&big, t0, tt, SEED + 60 + (uint64_t)t, 1e-3f);
        char name[32];
        snprintf(name, sizeof name, "task%02d", t);
        /* Every third task ships every element (keep 1: the streaming add). */
        sotu_extract_opts eo = {.task_index = (uint32_t)t, .task_name = name, .seed = SEED,
                                .keep = t % 3 == 0 ? 1.0 : 0.5, .rescale = t % 2 == 0,
                                .dtype = SOTU_DELTA_F32, .prov = fixture_provenance()};
        CHECK(sotu_delta_extract(&big, t0, tt, &eo, &d[t]) == SOTU_OK);
        list[t] = &d[t];
    }
    free(tt);
    const sotu_merge_opts opts[] = {
        {SOTU_MERGE_SUM, 1.0, 0, T},
        {SOTU_MERGE_SUM, 0.7, 0.2, T},
        {SOTU_MERGE_DISJOINT, 1.0, 0, T},
        {SOTU_MERGE_DISJOINT, 1.3, 0.3, T},
    };
    float *ref = malloc(big.total * sizeof(float)), *got = malloc(big.total * sizeof(float));
    int bad = 0, runs = 0;
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
        sotu_merge_stats st;
        sotu_threads_set(1);
        CHECK(sotu_merge_apply(&big, t0, list, T, &opts[k], ref, &st) == SOTU_OK);
        sotu_merge_stats_free(&st);
        for (int threads = 1; threads <= 3; threads++) {
            sotu_threads_set(threads);
            CHECK(sotu_merge_apply(&big, t0, list, T, &opts[k], got, NULL) == SOTU_OK);
            bad += memcmp(ref, got, big.total * sizeof(float)) != 0;
            runs++;
        }
    }
    sotu_threads_set(1);
    printf("blocks and threads: %d of %d fast-path merges differ from the general path\n", bad,
           runs);
    CHECK(bad == 0);
    free(ref);
    free(got);
    free_all(d);
    free(t0);
    free(big.t);
}

int main(void)
{
    printf("seed %llu\n", (unsigned long long)SEED);
    tab = fixture_table(32);
    theta0 = malloc(tab.total * sizeof(float));
    fixture_perturb(&tab, NULL, theta0, SEED, 0.02f);
    /* Correlated task deltas: a shared direction plus a task's own. */
    float *shared = malloc(tab.total * sizeof(float));
    fixture_perturb(&tab, NULL, shared, SEED + 100, 1e-3f);
    for (int t = 0; t < T; t++) {
        thetas[t] = malloc(tab.total * sizeof(float));
        fixture_perturb(&tab, theta0, thetas[t], SEED + 1 + (uint64_t)t, 1e-3f);
        for (size_t i = 0; i < tab.total; i++)
            thetas[t][i] += shared[i];
    }
    free(shared);
    test_disjoint();
    test_sum_cosine();
    test_mean();
    test_order();
    test_nested_rescale();
    test_decoded();
    test_blocks_threads();
    for (int t = 0; t < T; t++)
        free(thetas[t]);
    free(theta0);
    free(tab.t);
    return check_finish("test_merge");
}
