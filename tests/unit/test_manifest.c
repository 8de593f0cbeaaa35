/* Task manifest (YAML): round trip, and each error names the manifest, the
 * line and the problem (missing file with both paths, missing key, bad
 * classes, bad YAML, unknown key, duplicate name, empty list). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "io/taskset.h"

static char dir[64];

static void touch(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fclose(f);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void test_round_trip(void)
{
    touch("t00.h5");
    touch("sub dir.h5");
    sotu_manifest_task tasks[2];
    memset(tasks, 0, sizeof tasks);
    snprintf(tasks[0].name, sizeof tasks[0].name, "t00-rot90-2cls");
    snprintf(tasks[0].file, sizeof tasks[0].file, "t00.h5");
    tasks[0].classes = 2;
    tasks[0].n_train = 1000;
    tasks[0].n_test = 500;
    snprintf(tasks[1].name, sizeof tasks[1].name, "t01: odd name, with 'quotes'");
    snprintf(tasks[1].file, sizeof tasks[1].file, "sub dir.h5");
    tasks[1].classes = 10;
    tasks[1].n_train = 7;
    tasks[1].n_test = 0;
    sotu_manifest m = {.n_tasks = 2, .tasks = tasks};
    snprintf(m.name, sizeof m.name, "unit");
    char path[256];
    snprintf(path, sizeof path, "%s/manifest.yaml", dir);
    CHECK(sotu_manifest_write(path, &m) == SOTU_OK);

    sotu_manifest r;
    CHECK_MSG(sotu_manifest_read(path, &r) == SOTU_OK, "%s", sotu_last_error());
    CHECK(!strcmp(r.name, "unit") && r.n_tasks == 2 && !strcmp(r.path, path));
    for (int i = 0; i < 2 && r.n_tasks == 2; i++) {
        CHECK(!strcmp(r.tasks[i].name, tasks[i].name));
        CHECK(!strcmp(r.tasks[i].file, tasks[i].file));
        CHECK(r.tasks[i].classes == tasks[i].classes);
        CHECK(r.tasks[i].n_train == tasks[i].n_train && r.tasks[i].n_test == tasks[i].n_test);
        char want[512];
        snprintf(want, sizeof want, "%s/%s", dir, tasks[i].file);
        CHECK(!strcmp(r.tasks[i].path, want));
    }
    sotu_manifest_free(&r);
    sotu_manifest_free(&r);
    sotu_manifest_free(NULL);

    /* Hand-written: block style, no name (taken from the directory), no
     * sizes, comments. */
    write_text(path, "# two tasks\n"
                     "tasks:\n"
                     "  - name: a\n"
                     "    file: t00.h5\n"
                     "    classes: 3\n");
    CHECK_MSG(sotu_manifest_read(path, &r) == SOTU_OK, "%s", sotu_last_error());
    CHECK(r.n_tasks == 1 && r.tasks[0].classes == 3 && r.tasks[0].n_train == 0);
    CHECK(!strncmp(r.name, "sotu-test-manifest-", 19));
    sotu_manifest_free(&r);
}

/* Writes text as a manifest and expects a DATA error whose message starts
 * with "path:line:" and contains want1 and want2. */
static void expect_bad(const char *name, const char *text, int line, const char *want1,
                       const char *want2)
{
    char path[256], prefix[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_text(path, text);
    sotu_manifest m;
    sotu_status s = sotu_manifest_read(path, &m);
    const char *msg = sotu_last_error();
    CHECK_MSG(s == SOTU_ERR_DATA, "%s: status %d: %s", name, (int)s, msg);
    snprintf(prefix, sizeof prefix, "%s:%d:", path, line);
    CHECK_MSG(!strncmp(msg, prefix, strlen(prefix)), "expected '%s' at the start: %s", prefix,
              msg);
    CHECK_MSG(!want1 || strstr(msg, want1), "message lacks '%s': %s", want1, msg);
    CHECK_MSG(!want2 || strstr(msg, want2), "message lacks '%s': %s", want2, msg);
    CHECK(m.tasks == NULL && m.n_tasks == 0);
}

static void test_errors(void)
{
    char resolved[256];
    snprintf(resolved, sizeof resolved, "%s/t09.h5", dir);
    expect_bad("missing-file.yaml",
               "name: x\n"
               "tasks:\n"
               "  - {name: a, file: t00.h5, classes: 2}\n"
               "  - {name: b, file: t09.h5, classes: 2}\n",
               4, "'t09.h5'", resolved);
    expect_bad("missing-key.yaml",
               "tasks:\n"
               "  - {name: a, file: t00.h5, classes: 2}\n"
               "  - name: b\n"
               "    classes: 2\n",
               3, "task 1", "missing key 'file'");
    expect_bad("missing-classes.yaml", "tasks:\n  - {name: a, file: t00.h5}\n", 2,
               "missing key 'classes'", NULL);
    expect_bad("bad-classes.yaml", "tasks:\n  - {name: a, file: t00.h5, classes: two}\n", 2,
               "'classes'", "'two'");
    expect_bad("zero-classes.yaml", "tasks:\n  - {name: a, file: t00.h5, classes: 0}\n", 2,
               "'classes'", "1..");
    expect_bad("list-classes.yaml", "tasks:\n  - {name: a, file: t00.h5, classes: [1, 2]}\n",
               2, "'classes'", "not a scalar");
    expect_bad("negative-train.yaml",
               "tasks:\n  - {name: a, file: t00.h5, classes: 2, train: -5}\n", 2, "'train'",
               NULL);
    expect_bad("bad-yaml.yaml", "name: x\ntasks:\n  - {name: a, file: t00.h5, classes: 2\n", 4,
               "YAML error", NULL);
    expect_bad("bad-indent.yaml", "name: x\ntasks:\n  - name: a\n   file: t00.h5\n", 4,
               "YAML error", NULL);
    expect_bad("unknown-key.yaml",
               "tasks:\n  - {name: a, file: t00.h5, classes: 2}\n"
               "  - {name: b, file: t00.h5, clases: 2}\n",
               3, "unknown key 'clases'", NULL);
    expect_bad("unknown-top.yaml", "name: x\ntask:\n  - {name: a}\n", 2, "unknown key 'task'",
               NULL);
    expect_bad("no-tasks.yaml", "name: x\n", 1, "missing key 'tasks'", NULL);
    expect_bad("empty-tasks.yaml", "name: x\ntasks: []\n", 2, "non-empty list", NULL);
    expect_bad("scalar-root.yaml", "just text\n", 1, "mapping", NULL);
    expect_bad("empty.yaml", "", 1, "mapping", NULL);
    expect_bad("duplicate.yaml",
               "tasks:\n  - {name: a, file: t00.h5, classes: 2}\n"
               "  - {name: a, file: t00.h5, classes: 3}\n",
               3, "'a' is used twice", NULL);
    expect_bad("long-name.yaml",
               "tasks:\n  - {name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
               "aaaaaaaaa, file: t00.h5, classes: 2}\n",
               2, "longer than 63", NULL);

    sotu_manifest m;
    char path[256];
    snprintf(path, sizeof path, "%s/absent.yaml", dir);
    CHECK(sotu_manifest_read(path, &m) == SOTU_ERR_IO);
    CHECK(strstr(sotu_last_error(), path) != NULL);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sotu-test-manifest-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_errors();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_finish("test_manifest");
}
