/* SEEDED masks through delta extraction: nested across keep values,
 * identical in two processes (fork), kept fraction close to keep,
 * independent of the thread count; all-zero and excluded tensors omitted. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "common/mask.h"
#include "delta_fixture.h"
#include "io/delta.h"
#include "worker/delta_extract.h"

static const uint64_t SEED = 99;

static sotu_tensor_table tab;
static float *theta0, *thetat;

static sotu_delta extract(double keep, uint32_t task)
{
    sotu_extract_opts o = {.task_index = task, .task_name = "mask-test", .seed = SEED,
                           .keep = keep, .dtype = SOTU_DELTA_F32, .prov = fixture_provenance()};
    sotu_delta d;
    sotu_status s = sotu_delta_extract(&tab, theta0, thetat, &o, &d);
    CHECK_MSG(s == SOTU_OK, "%s", sotu_last_error());
    return d;
}

static uint8_t *encode(const sotu_delta *d, size_t *n)
{
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    size_t cap = sotu_delta_encode_bound(d);
    uint8_t *buf = malloc(cap);
    CHECK(sotu_delta_encode(buf, cap, n, d, cctx, 3) == SOTU_OK);
    ZSTD_freeCCtx(cctx);
    return buf;
}

static void test_nested(void)
{
    const double keeps[] = {1.0, 0.5, 0.2, 0.05, 0.01};
    sotu_delta prev = extract(keeps[0], 4);
    for (int k = 1; k < 5; k++) {
        sotu_delta d = extract(keeps[k], 4);
        int not_subset = 0, value_mismatch = 0;
        for (int i = 0; i < d.n_tensors; i++) {
            const sotu_delta_tensor *small = &d.tensors[i], *large = &prev.tensors[i];
            if (small->mask != SOTU_MASK_SEEDED)
                continue;
            uint64_t q = 0;
            for (uint64_t m = 0; m < small->kept; m++) {
                while (q < large->kept && large->indices[q] < small->indices[m])
                    q++;
                if (q == large->kept || large->indices[q] != small->indices[m])
                    not_subset++;
                else if (large->values[q] != small->values[m])
                    value_mismatch++;
            }
            /* Directly from the mask values as well. */
            sotu_mask mk = sotu_mask_of(SEED, 4, small->table_index, small->count, keeps[k]);
            for (uint64_t m = 0; m < small->kept; m += 97)
                CHECK(sotu_mask_u(&mk, small->indices[m]) < keeps[k]);
        }
        CHECK_MSG(not_subset == 0 && value_mismatch == 0,
                  "keep %g vs %g: %d not in the larger mask, %d values differ", keeps[k],
                  keeps[k - 1], not_subset, value_mismatch);
        sotu_delta_free(&prev);
        prev = d;
    }
    sotu_delta_free(&prev);
}

static void test_fraction(void)
{
    const double keeps[] = {0.5, 0.1, 1.0 / 53};
    for (int k = 0; k < 3; k++) {
        sotu_delta d = extract(keeps[k], 7);
        uint64_t kept = 0, total = 0;
        for (int i = 0; i < d.n_tensors; i++)
            if (d.tensors[i].mask == SOTU_MASK_SEEDED)
                kept += d.tensors[i].kept, total += d.tensors[i].count;
        double frac = (double)kept / (double)total, p = keeps[k];
        double sigma = sqrt(p * (1 - p) / (double)total);
        printf("keep %.4f: kept %.5f of %llu (%.1f sigma)\n", p, frac,
               (unsigned long long)total, (frac - p) / sigma);
        CHECK(fabs(frac - p) < 5 * sigma);
        sotu_delta_free(&d);
    }
    /* Different tasks draw different masks. */
    sotu_delta a = extract(0.1, 1), b = extract(0.1, 2);
    int same = a.tensors[5].kept == b.tensors[5].kept &&
               !memcmp(a.tensors[5].indices, b.tensors[5].indices,
                       a.tensors[5].kept * sizeof *a.tensors[5].indices);
    CHECK(!same);
    sotu_delta_free(&a);
    sotu_delta_free(&b);
}

/* A child process extracts and encodes; its bytes must equal the parent's. */
static void test_across_processes(void)
{
    int fd[2];
    CHECK(pipe(fd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        omp_set_num_threads(1);
        sotu_delta d = extract(0.1, 11);
        size_t n;
        uint8_t *buf = encode(&d, &n);
        int ok = write(fd[1], &n, sizeof n) == sizeof n && write(fd[1], buf, n) == (ssize_t)n;
        _exit(ok ? 0 : 1);
    }
    close(fd[1]);
    sotu_delta d = extract(0.1, 11);
    size_t n, child_n = 0;
    uint8_t *buf = encode(&d, &n);
    CHECK(read(fd[0], &child_n, sizeof child_n) == sizeof child_n);
    uint8_t *child = malloc(child_n + 1);
    size_t got = 0;
    while (got < child_n) {
        ssize_t r = read(fd[0], child + got, child_n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_MSG(got == n && child_n == n && !memcmp(buf, child, n),
              "child encoded %zu bytes, parent %zu", child_n, n);
    close(fd[0]);
    free(child);
    free(buf);
    sotu_delta_free(&d);
}

static void test_threads(void)
{
    omp_set_num_threads(1);
    sotu_delta d1 = extract(0.3, 2);
    omp_set_num_threads(3);
    sotu_delta d3 = extract(0.3, 2);
    size_t n1, n3;
    uint8_t *b1 = encode(&d1, &n1), *b3 = encode(&d3, &n3);
    CHECK(n1 == n3 && !memcmp(b1, b3, n1));
    free(b1);
    free(b3);
    sotu_delta_free(&d1);
    sotu_delta_free(&d3);
}

static void test_omitted(void)
{
    /* norm.weight unchanged, pos_embed excluded: neither ships. */
    int jn = sotu_tensor_find(&tab, "norm.weight"), jp = sotu_tensor_find(&tab, "pos_embed");
    float *t2 = malloc(tab.total * sizeof(float));
    memcpy(t2, thetat, tab.total * sizeof(float));
    memcpy(t2 + tab.t[jn].offset, theta0 + tab.t[jn].offset, tab.t[jn].count * sizeof(float));
    bool *include = malloc((size_t)tab.n * sizeof(bool));
    for (int j = 0; j < tab.n; j++)
        include[j] = j != jp;
    sotu_extract_opts o = {.task_index = 0, .task_name = "omit", .seed = SEED, .keep = 0.5,
                           .include = include, .prov = fixture_provenance()};
    sotu_delta d;
    CHECK(sotu_delta_extract(&tab, theta0, t2, &o, &d) == SOTU_OK);
    CHECK(d.n_tensors == tab.n - 2);
    for (int i = 0; i < d.n_tensors; i++)
        CHECK((int)d.tensors[i].table_index != jn && (int)d.tensors[i].table_index != jp);
    sotu_delta_free(&d);
    o.keep = 0.0;
    CHECK(sotu_delta_extract(&tab, theta0, t2, &o, &d) == SOTU_ERR_CONFIG);
    o.keep = 1.0 + 1e-9;
    CHECK(sotu_delta_extract(&tab, theta0, t2, &o, &d) == SOTU_ERR_CONFIG);
    free(include);
    free(t2);
}

int main(void)
{
    printf("seed %llu\n", (unsigned long long)SEED);
    tab = fixture_table(64);
    theta0 = malloc(tab.total * sizeof(float));
    thetat = malloc(tab.total * sizeof(float));
    fixture_perturb(&tab, NULL, theta0, SEED, 0.02f);
    fixture_perturb(&tab, theta0, thetat, SEED + 1, 1e-3f);
    /* Fork before any OpenMP region: libgomp's thread pool does not survive fork. */
    test_across_processes();
    test_nested();
    test_fraction();
    test_threads();
    test_omitted();
    free(tab.t);
    free(theta0);
    free(thetat);
    return check_finish("test_delta_mask");
}
