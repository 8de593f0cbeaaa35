/* Fault injection at the unit level (docs/RELIABILITY.md):
 *  - a model too large for memory fails in vit_init with SOTU_ERR_NOMEM and
 *    the bytes it needs, before allocating (also for sizes whose float
 *    count overflows 64 bits);
 *  - a delta file and a task file written over a previous one in a child
 *    whose files may not grow past 4 KiB (RLIMIT_FSIZE, as on a full disk)
 *    fail with SOTU_ERR_IO naming the file, and the previous file still
 *    reads back unchanged. (Checkpoints: test_checkpoint's test_atomic.) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "io/delta.h"
#include "io/fsutil.h"
#include "io/taskset.h"
#include "../unit/delta_fixture.h"
#include "worker/delta_extract.h"
#include "worker/vit.h"

static void test_model_too_large(void)
{
    const vit_config big[] = {
        {.image_size = 224, .channels = 3, .patch = 16, .dim = 65536, .depth = 1024,
         .heads = 64, .mlp_hidden = 262144, .classes = 1000},
        {.image_size = 1 << 20, .channels = 16, .patch = 1, .dim = 1 << 20, .depth = 1 << 20,
         .heads = 1, .mlp_hidden = 1 << 30, .classes = 1 << 30},
    };
    for (int i = 0; i < 2; i++) {
        vit_model m;
        clock_t t0 = clock();
        sotu_status s = vit_init(&m, &big[i], 1 << 20);
        double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
        printf("model %d: %s (%.3f s)\n", i, sotu_last_error(), secs);
        CHECK(s == SOTU_ERR_NOMEM);
        CHECK(strstr(sotu_last_error(), "needs about") != NULL);
        CHECK(strstr(sotu_last_error(), "bytes") != NULL);
        CHECK(m.params == NULL && m.acts == NULL);
        CHECK(secs < 1.0);
    }
    vit_config small = {.image_size = 28, .channels = 1, .patch = 4, .dim = 32, .depth = 2,
                        .heads = 2, .mlp_hidden = 64, .classes = 10};
    vit_model m;
    CHECK_MSG(vit_init(&m, &small, 8) == SOTU_OK, "%s", sotu_last_error());
    vit_free(&m);
}

/* Runs write(path) in a child limited to 4 KiB files; the child exits 0
 * iff the write failed with SOTU_ERR_IO and a message naming path. */
static int write_in_full_disk(const char *path, sotu_status (*write)(const char *, void *),
                              void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {4096, 4096};
        setrlimit(RLIMIT_FSIZE, &rl);
        sotu_status s = write(path, arg);
        fprintf(stderr, "child write (expected to fail): %s\n", sotu_last_error());
        _exit(s == SOTU_ERR_IO && strstr(sotu_last_error(), path) ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static sotu_status write_delta(const char *path, void *d) { return sotu_delta_write_file(path, d, 3); }
static sotu_status write_task(const char *path, void *t) { return sotu_taskset_write(path, t); }

static void test_delta_write_fails(const char *dir)
{
    sotu_tensor_table tab = fixture_table(16);
    float *t0 = malloc(tab.total * sizeof *t0), *t1 = malloc(tab.total * sizeof *t1);
    fixture_perturb(&tab, NULL, t0, 1, 0.5f);
    fixture_perturb(&tab, t0, t1, 2, 0.01f);
    sotu_extract_opts small = {.task_name = "small", .seed = 3, .keep = 0.01,
                               .prov = fixture_provenance()},
                      large = {.task_name = "large", .seed = 3, .keep = 1.0,
                               .prov = fixture_provenance()};
    sotu_delta a, b, back;
    CHECK(sotu_delta_extract(&tab, t0, t1, &small, &a) == SOTU_OK);
    CHECK(sotu_delta_extract(&tab, t0, t1, &large, &b) == SOTU_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/task.sotud", dir);
    CHECK(sotu_delta_write_file(path, &a, 3) == SOTU_OK);
    CHECK_MSG(write_in_full_disk(path, write_delta, &b), "delta write did not fail cleanly");
    CHECK_MSG(sotu_delta_read_file(path, &tab, &back) == SOTU_OK, "%s", sotu_last_error());
    CHECK(strcmp(back.task_name, "small") == 0 && back.n_tensors == a.n_tensors);
    for (int i = 0; i < a.n_tensors && i < back.n_tensors; i++)
        CHECK(back.tensors[i].kept == a.tensors[i].kept &&
              !memcmp(back.tensors[i].values, a.tensors[i].values,
                      a.tensors[i].kept * sizeof(float)));
    sotu_delta_free(&back);
    sotu_delta_free(&a);
    sotu_delta_free(&b);
    free(tab.t);
    free(t0);
    free(t1);
}

static void test_task_write_fails(const char *dir)
{
    char names[2][SOTU_TASK_NAME_MAX] = {"a", "b"};
    enum { N = 64, S = 28 };
    uint8_t *img = malloc((size_t)N * S * S);
    int32_t lab[N];
    for (int i = 0; i < N * S * S; i++)
        img[i] = (uint8_t)(i * 2654435761u >> 24);
    for (int i = 0; i < N; i++)
        lab[i] = i % 2;
    sotu_taskset small = {.classes = 2, .class_names = names, .height = S, .width = S,
                          .channels = 1, .n_train = 2, .n_test = 1, .train_images = img,
                          .train_labels = lab, .test_images = img, .test_labels = lab};
    sotu_taskset large = small;
    strcpy(small.name, "small");
    strcpy(large.name, "large");
    large.n_train = large.n_test = N;
    char path[512];
    snprintf(path, sizeof path, "%s/task.h5", dir);
    CHECK(sotu_taskset_write(path, &small) == SOTU_OK);
    CHECK_MSG(write_in_full_disk(path, write_task, &large), "task write did not fail cleanly");
    sotu_taskset back;
    CHECK_MSG(sotu_taskset_read(path, &back) == SOTU_OK, "%s", sotu_last_error());
    CHECK(strcmp(back.name, "small") == 0 && back.n_train == 2 && back.n_test == 1);
    sotu_taskset_free(&back);
    free(img);
}

int main(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "test_faults.%ld", (long)getpid());
    if (sotu_mkdirs(dir) != SOTU_OK) {
        fprintf(stderr, "%s\n", sotu_last_error());
        return 1;
    }
    test_model_too_large();
    test_delta_write_fails(dir);
    test_task_write_fails(dir);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return check_finish("test_faults");
}
