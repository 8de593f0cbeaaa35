#include "io/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static _Thread_local int last_errno;

int sotu_io_last_errno(void) { return last_errno; }

int sotu_io_out_of_space(void)
{
    return last_errno == ENOSPC || last_errno == EDQUOT || last_errno == EFBIG;
}

/* Records err for sotu_io_last_errno, removes af's temporary file and
 * reports "path: what: strerror". */
static sotu_status atomic_fail(sotu_atomic_file *af, int err, const char *what)
{
    sotu_atomic_abort(af);
    last_errno = err;
    return sotu_error(SOTU_ERR_IO, "%s: %s: %s", af->path, what, strerror(err));
}

sotu_status sotu_atomic_open(sotu_atomic_file *af, const char *path)
{
    af->fd = -1;
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    last_errno = 0;
    af->fd = open(af->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (af->fd < 0) {
        last_errno = errno;
        return sotu_error(SOTU_ERR_IO, "%s: cannot create the temporary file %s: %s", path,
                          af->tmp, strerror(last_errno));
    }
    return SOTU_OK;
}

sotu_status sotu_atomic_write(sotu_atomic_file *af, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        /* At most 1 GiB per call: Linux writes at most 0x7ffff000 bytes anyway. */
        ssize_t w = write(af->fd, p, n < (1u << 30) ? n : (1u << 30));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return atomic_fail(af, w < 0 ? errno : EIO, "write failed");
        p += w;
        n -= (size_t)w;
    }
    return SOTU_OK;
}

void sotu_atomic_abort(sotu_atomic_file *af)
{
    if (af->fd >= 0) {
        close(af->fd);
        af->fd = -1;
        unlink(af->tmp);
    }
}

/* fsync of a directory; some file systems refuse it, which loses no data. */
static int fsync_dir(const char *path)
{
    char dir[4096];
    sotu_path_dirname(dir, sizeof dir, path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int err = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return err == EINVAL || err == EBADF ? 0 : err;
}

sotu_status sotu_atomic_finish(sotu_atomic_file *af)
{
    if (fsync(af->fd) != 0)
        return atomic_fail(af, errno, "fsync failed");
    int rc = close(af->fd);
    af->fd = -1;
    if (rc != 0) {
        /* NFS reports a failed write back at close. */
        int err = errno;
        unlink(af->tmp);
        last_errno = err;
        return sotu_error(SOTU_ERR_IO, "%s: closing %s failed: %s", af->path, af->tmp,
                          strerror(err));
    }
    if (rename(af->tmp, af->path) != 0) {
        int err = errno;
        unlink(af->tmp);
        last_errno = err;
        return sotu_error(SOTU_ERR_IO, "%s: rename from %s failed: %s", af->path, af->tmp,
                          strerror(err));
    }
    int err = fsync_dir(af->path);
    if (err) {
        last_errno = err;
        return sotu_error(SOTU_ERR_IO, "%s: fsync of its directory failed: %s", af->path,
                          strerror(err));
    }
    return SOTU_OK;
}

sotu_status sotu_write_file_atomic(const char *path, const void *data, size_t n)
{
    sotu_atomic_file af;
    sotu_status s = sotu_atomic_open(&af, path);
    if (s == SOTU_OK)
        s = sotu_atomic_write(&af, data, n);
    if (s == SOTU_OK)
        s = sotu_atomic_finish(&af);
    return s;
}

sotu_status sotu_output_check(const char *out, const char *const *inputs, int n, int force)
{
    struct stat so;
    if (stat(out, &so) != 0)
        return SOTU_OK;
    for (int i = 0; i < n; i++) {
        struct stat si;
        if (inputs[i] && stat(inputs[i], &si) == 0 && si.st_dev == so.st_dev &&
            si.st_ino == so.st_ino)
            return sotu_error(SOTU_ERR_USAGE, "%s is also an input (%s); write the output to "
                              "another file", out, inputs[i]);
    }
    if (!force)
        return sotu_error(SOTU_ERR_USAGE, "refusing to overwrite %s (exists); pass --force",
                          out);
    return SOTU_OK;
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
