#include "io/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void sotu_tmp_path(char *dst, size_t cap, const char *path)
{
    snprintf(dst, cap, "%s.tmp.%ld", path, (long)getpid());
}

void sotu_path_dirname(char *dst, size_t cap, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dst, cap, ".");
    else if (slash == path)
        snprintf(dst, cap, "/");
    else
        snprintf(dst, cap, "%.*s", (int)(slash - path), path);
}

void sotu_path_join(char *dst, size_t cap, const char *dir, const char *name)
{
    if (name[0] == '/' || !dir || !dir[0])
        snprintf(dst, cap, "%s", name);
    else
        snprintf(dst, cap, "%s/%s", dir, name);
}

int sotu_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static sotu_status fsync_path(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return sotu_error(SOTU_ERR_IO, "%s: cannot open to sync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    /* Some file systems refuse fsync on directories; that is not data loss. */
    if (rc != 0 && !(flags & O_DIRECTORY && (err == EINVAL || err == EBADF)))
        return sotu_error(SOTU_ERR_IO, "%s: fsync failed: %s", path, strerror(err));
    return SOTU_OK;
}

sotu_status sotu_atomic_commit(const char *tmp, const char *path)
{
    sotu_status s = fsync_path(tmp, O_RDONLY);
    if (s != SOTU_OK) {
        unlink(tmp);
        return s;
    }
    if (rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return sotu_error(SOTU_ERR_IO, "%s: rename from %s failed: %s", path, tmp, strerror(err));
    }
    char dir[4096];
    sotu_path_dirname(dir, sizeof dir, path);
    return fsync_path(dir, O_RDONLY | O_DIRECTORY);
}

sotu_status sotu_write_file_atomic(const char *path, const void *data, size_t n)
{
    char tmp[4200];
    sotu_tmp_path(tmp, sizeof tmp, path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return sotu_error(SOTU_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    int err = errno;
    if (fclose(f) != 0 && w == n)
        err = errno, w = 0;
    if (w != n) {
        unlink(tmp);
        return sotu_error(SOTU_ERR_IO, "%s: write failed: %s", path, strerror(err));
    }
    return sotu_atomic_commit(tmp, path);
}

sotu_status sotu_read_file(const char *path, size_t max_bytes, char **data, size_t *n)
{
    *data = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sotu_error(SOTU_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    sotu_status s = SOTU_OK;
    char *buf = NULL;
    if (fseeko(f, 0, SEEK_END) != 0) {
        s = sotu_error(SOTU_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
        goto cleanup;
    }
    off_t size = ftello(f);
    if (size < 0 || (unsigned long long)size > max_bytes) {
        s = sotu_error(SOTU_ERR_DATA, "%s: %lld bytes, more than the %zu allowed", path,
                       (long long)size, max_bytes);
        goto cleanup;
    }
    rewind(f);
    buf = malloc((size_t)size + 1);
    if (!buf) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate %lld bytes", path, (long long)size);
        goto cleanup;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        s = sotu_error(SOTU_ERR_IO, "%s: short read", path);
        goto cleanup;
    }
    buf[size] = '\0';
    *data = buf;
    *n = (size_t)size;
    buf = NULL;
cleanup:
    free(buf);
    fclose(f);
    return s;
}

sotu_status sotu_mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return sotu_error(SOTU_ERR_IO, "%s: cannot create directory: %s", buf,
                                  strerror(errno));
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return SOTU_OK;
}
