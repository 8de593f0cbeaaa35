#define _XOPEN_SOURCE 700 /* nftw */
#include "coordinator/result_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/fsutil.h"

/* 1 if path is a directory with no entries, 0 if it has some, -1 if it
 * cannot be read (errno set). */
static int dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int empty = 1;
    struct dirent *e;
    while (empty && (e = readdir(d)))
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    return empty;
}

sotu_status sotu_result_dir_explicit(sotu_result_dir *rd, const char *dir)
{
    memset(rd, 0, sizeof *rd);
    if (!dir[0] || strlen(dir) >= sizeof rd->final - 64)
        return sotu_error(SOTU_ERR_USAGE, "--out '%.64s': expected a directory name shorter "
                          "than %zu bytes", dir, sizeof rd->final - 64);
    snprintf(rd->final, sizeof rd->final, "%s", dir);
    size_t n = strlen(rd->final);
    while (n > 1 && rd->final[n - 1] == '/')
        rd->final[--n] = '\0';
    struct stat sb;
    if (lstat(rd->final, &sb) != 0) {
        if (errno == ENOENT)
            return SOTU_OK;
        return sotu_error(SOTU_ERR_IO, "%s: cannot check the result directory: %s", rd->final,
                          strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode))
        return sotu_error(SOTU_ERR_USAGE, "%s exists and is not a directory: a result is never "
                          "written over anything; choose another --out", rd->final);
    int empty = dir_is_empty(rd->final);
    if (empty < 0)
        return sotu_error(SOTU_ERR_IO, "%s: cannot read the directory: %s", rd->final,
                          strerror(errno));
    if (!empty)
        return sotu_error(SOTU_ERR_USAGE, "%s exists and is not empty: a result is never "
                          "written over another; choose another --out (or leave it out: "
                          "RUN/merges/ gets a fresh name)", rd->final);
    return SOTU_OK;
}

/* rd->final = the first of base, base-2, base-3, ... that does not exist. */
static sotu_status next_fresh(sotu_result_dir *rd, int from)
{
    for (int n = from; n < 100000; n++) {
        if (n == 1)
            snprintf(rd->final, sizeof rd->final, "%s", rd->base);
        else
            snprintf(rd->final, sizeof rd->final, "%s-%d", rd->base, n);
        struct stat sb;
        if (lstat(rd->final, &sb) != 0) {
            if (errno == ENOENT)
                return SOTU_OK;
            return sotu_error(SOTU_ERR_IO, "%s: cannot check the result directory: %s",
                              rd->final, strerror(errno));
        }
    }
    return sotu_error(SOTU_ERR_IO, "%s: no free name up to %s-99999", rd->base, rd->base);
}

sotu_status sotu_result_dir_fresh(sotu_result_dir *rd, const char *parent, const char *name)
{
    memset(rd, 0, sizeof *rd);
    if (strchr(name, '/') || strlen(parent) + strlen(name) + 2 >= sizeof rd->base - 64)
        return sotu_error(SOTU_ERR_USAGE, "%s/%s: not a usable result directory name", parent,
                          name);
    sotu_path_join(rd->base, sizeof rd->base, parent, name);
    rd->fresh = true;
    return next_fresh(rd, 1);
}

sotu_status sotu_result_dir_begin(sotu_result_dir *rd)
{
    char parent[SOTU_PATH_MAX];
    sotu_path_dirname(parent, sizeof parent, rd->final);
    sotu_status st = sotu_mkdirs(parent);
    if (st != SOTU_OK)
        return st;
    const char *slash = strrchr(rd->final, '/');
    const char *name = slash ? slash + 1 : rd->final;
    char tmp[SOTU_PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.XXXXXX", parent, name);
    if (strlen(tmp) >= sizeof rd->tmp)
        return sotu_error(SOTU_ERR_USAGE, "%s: path too long", rd->final);
    if (!mkdtemp(tmp))
        return sotu_error(SOTU_ERR_IO, "%s: cannot create the temporary directory %s: %s",
                          rd->final, tmp, strerror(errno));
    snprintf(rd->tmp, sizeof rd->tmp, "%s", tmp);
    mode_t mask = umask(0); /* mkdtemp makes it 0700; a result is as readable as a file */
    umask(mask);
    if (chmod(tmp, 0777 & ~mask) != 0) {
        st = sotu_error(SOTU_ERR_IO, "%s: chmod failed: %s", tmp, strerror(errno));
        sotu_result_dir_abort(rd);
    }
    return st;
}

/* nftw has no context argument: the first failure of one walk. */
static int walk_errno;
static char walk_path[SOTU_PATH_MAX];

static int fsync_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type != FTW_F && type != FTW_D && type != FTW_DP)
        return 0;
    int fd = open(path, O_RDONLY | (type == FTW_F ? 0 : O_DIRECTORY));
    if (fd < 0 || fsync(fd) != 0) {
        walk_errno = errno;
        snprintf(walk_path, sizeof walk_path, "%s", path);
        if (fd >= 0)
            close(fd);
        return 1;
    }
    close(fd);
    return 0;
}

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

sotu_status sotu_result_dir_commit(sotu_result_dir *rd)
{
    sotu_status st = SOTU_OK;
    walk_errno = 0;
    if (nftw(rd->tmp, fsync_one, 16, FTW_PHYS | FTW_DEPTH) != 0)
        st = sotu_error(SOTU_ERR_IO, "%s: fsync of %s failed (disk full?): %s", rd->final,
                        walk_errno ? walk_path : rd->tmp, strerror(walk_errno ? walk_errno : EIO));
    while (st == SOTU_OK && rename(rd->tmp, rd->final) != 0) {
        int err = errno;
        bool taken = err == EEXIST || err == ENOTEMPTY || err == ENOTDIR || err == EISDIR;
        if (taken && rd->fresh)
            st = next_fresh(rd, 2);
        else if (taken)
            st = sotu_error(SOTU_ERR_USAGE, "%s: appeared while the result was built and is "
                            "not empty; the result was not written over it", rd->final);
        else
            st = sotu_error(SOTU_ERR_IO, "%s: rename from %s failed: %s", rd->final, rd->tmp,
                            strerror(err));
    }
    if (st != SOTU_OK) {
        sotu_result_dir_abort(rd);
        return st;
    }
    rd->tmp[0] = '\0';
    char parent[SOTU_PATH_MAX];
    sotu_path_dirname(parent, sizeof parent, rd->final);
    int fd = open(parent, O_RDONLY | O_DIRECTORY);
    if (fd < 0 || fsync(fd) != 0)
        st = sotu_error(SOTU_ERR_IO, "%s: fsync of the directory %s failed: %s", rd->final,
                        parent, strerror(errno));
    if (fd >= 0)
        close(fd);
    return st;
}

void sotu_result_dir_abort(sotu_result_dir *rd)
{
    if (!rd->tmp[0])
        return;
    nftw(rd->tmp, remove_one, 16, FTW_PHYS | FTW_DEPTH);
    rd->tmp[0] = '\0';
}
