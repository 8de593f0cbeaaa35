/* coordinator/result_dir.h: a result directory appears whole or not at all
 * and never replaces anything. Covers the races a test of the real process
 * cannot time: a fresh name taken while the result is built moves on to the
 * next number; an explicit one that appears with entries is not written over. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "coordinator/result_dir.h"

static char root[256];

static void put_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static int exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* Number of entries of dir whose names start with prefix. */
static int count_prefix(const char *dir, const char *prefix)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -c '^%s' || true", dir, prefix);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

static void test_explicit(void)
{
    char dir[512], file[512];
    sotu_result_dir rd;
    snprintf(dir, sizeof dir, "%s/out", root);
    CHECK(sotu_result_dir_explicit(&rd, dir) == SOTU_OK); /* does not exist */
    CHECK(mkdir(dir, 0777) == 0);
    CHECK(sotu_result_dir_explicit(&rd, dir) == SOTU_OK); /* empty */
    put_file(dir, "keep.txt", "x");
    CHECK(sotu_result_dir_explicit(&rd, dir) == SOTU_ERR_USAGE);
    CHECK(strstr(sotu_last_error(), "not empty") != NULL);
    snprintf(file, sizeof file, "%s/keep.txt", dir);
    CHECK(sotu_result_dir_explicit(&rd, file) == SOTU_ERR_USAGE);
    CHECK(strstr(sotu_last_error(), "not a directory") != NULL);

    /* An empty directory is replaced by the result; trailing slashes are fine. */
    char empty[512], slash[520];
    snprintf(empty, sizeof empty, "%s/empty", root);
    snprintf(slash, sizeof slash, "%s/", empty);
    CHECK(mkdir(empty, 0777) == 0);
    CHECK(sotu_result_dir_explicit(&rd, slash) == SOTU_OK && !strcmp(rd.final, empty));
    CHECK(sotu_result_dir_begin(&rd) == SOTU_OK);
    put_file(rd.tmp, "checkpoint.h5", "c");
    CHECK(sotu_result_dir_commit(&rd) == SOTU_OK);
    snprintf(file, sizeof file, "%s/checkpoint.h5", empty);
    CHECK(exists(file));
    CHECK(count_prefix(root, ".empty.tmp") == 0);

    /* The explicit name appears with entries while the result is built. */
    char late[512];
    snprintf(late, sizeof late, "%s/late", root);
    CHECK(sotu_result_dir_explicit(&rd, late) == SOTU_OK);
    CHECK(sotu_result_dir_begin(&rd) == SOTU_OK);
    put_file(rd.tmp, "checkpoint.h5", "mine");
    CHECK(mkdir(late, 0777) == 0);
    put_file(late, "theirs.txt", "theirs");
    CHECK(sotu_result_dir_commit(&rd) == SOTU_ERR_USAGE);
    snprintf(file, sizeof file, "%s/checkpoint.h5", late);
    CHECK(!exists(file));
    CHECK(count_prefix(root, ".late.tmp") == 0);
}

static void test_fresh(void)
{
    char parent[512], path[600];
    sotu_result_dir rd;
    snprintf(parent, sizeof parent, "%s/run/merges", root);
    CHECK(sotu_result_dir_fresh(&rd, parent, "0.3-sum") == SOTU_OK);
    snprintf(path, sizeof path, "%s/0.3-sum", parent);
    CHECK(!strcmp(rd.final, path));
    CHECK(sotu_result_dir_begin(&rd) == SOTU_OK); /* makes run/merges */
    CHECK(strstr(rd.tmp, "/.0.3-sum.tmp.") != NULL && exists(rd.tmp));
    put_file(rd.tmp, "report.md", "first");
    CHECK(sotu_result_dir_commit(&rd) == SOTU_OK && !strcmp(rd.final, path) && !rd.tmp[0]);

    /* The next one is -2; someone takes -2 while it is built: it becomes -3. */
    CHECK(sotu_result_dir_fresh(&rd, parent, "0.3-sum") == SOTU_OK);
    snprintf(path, sizeof path, "%s/0.3-sum-2", parent);
    CHECK(!strcmp(rd.final, path));
    CHECK(sotu_result_dir_begin(&rd) == SOTU_OK);
    put_file(rd.tmp, "report.md", "second");
    CHECK(mkdir(path, 0777) == 0);
    put_file(path, "report.md", "someone else's");
    CHECK(sotu_result_dir_commit(&rd) == SOTU_OK);
    snprintf(path, sizeof path, "%s/0.3-sum-3", parent);
    CHECK_MSG(!strcmp(rd.final, path), "%s", rd.final);
    snprintf(path, sizeof path, "%s/0.3-sum-3/report.md", parent);
    CHECK(exists(path));

    /* abort removes a nested tree. */
    CHECK(sotu_result_dir_fresh(&rd, parent, "sweep") == SOTU_OK);
    CHECK(sotu_result_dir_begin(&rd) == SOTU_OK);
    char sub[700];
    snprintf(sub, sizeof sub, "%s/points", rd.tmp);
    CHECK(mkdir(sub, 0777) == 0);
    put_file(sub, "x", "y");
    sotu_result_dir_abort(&rd);
    CHECK(count_prefix(parent, ".sweep.tmp") == 0);
    snprintf(path, sizeof path, "%s/sweep", parent);
    CHECK(!exists(path));
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/sotu-result-dir.XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    test_explicit();
    test_fresh();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return check_finish("test_result_dir");
}
