#include "io/dirlock.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/fsutil.h"

typedef struct {
    int fd;
    dev_t dev;
    ino_t ino;
} held_lock;

static held_lock *held;
static int n_held, cap_held;

/* What the file says about its holder ("pid 12 on host a since ..."). */
static void read_holder(int fd, char *dst, size_t cap)
{
    ssize_t n = pread(fd, dst, cap - 1, 0);
    dst[n > 0 ? n : 0] = '\0';
    dst[strcspn(dst, "\n")] = '\0';
}

static void write_holder(int fd)
{
    char host[256] = "?", when[64] = "?", text[512];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %z", &tm);
    int len = snprintf(text, sizeof text, "pid %ld on host %s since %s\n", (long)getpid(), host,
                       when);
    /* Best effort: the lock is what counts, the text only names it. */
    if (ftruncate(fd, 0) == 0 && pwrite(fd, text, (size_t)len, 0) == len)
        fsync(fd);
}

sotu_status sotu_dir_lock(const char *dir, int element)
{
    sotu_status st = sotu_mkdirs(dir);
    if (st != SOTU_OK)
        return st;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, SOTU_DIRLOCK_FILE);
    /* Held already? Checked before opening: closing a second descriptor of
     * the file would drop this process's lock. */
    struct stat sb;
    if (stat(path, &sb) == 0)
        for (int i = 0; i < n_held; i++)
            if (held[i].dev == sb.st_dev && held[i].ino == sb.st_ino)
                return SOTU_OK;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return sotu_error(SOTU_ERR_IO, "%s: cannot open the run directory's lock file: %s", path,
                          strerror(errno));
    if (fstat(fd, &sb) != 0) {
        st = sotu_error(SOTU_ERR_IO, "%s: %s", path, strerror(errno));
        close(fd);
        return st;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    fl.l_start = element < 0 ? 0 : 1 + (off_t)element;
    fl.l_len = element < 0 ? 0 : 1;
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        int err = errno;
        if (err != EACCES && err != EAGAIN) {
            close(fd);
            return sotu_error(SOTU_ERR_IO, "%s: cannot lock the run directory: %s", path,
                              strerror(err));
        }
        char holder[400] = "", who[512];
        struct flock q = fl;
        bool known = fcntl(fd, F_GETLK, &q) == 0 && q.l_type != F_UNLCK;
        if (known && q.l_len == 1 && q.l_start >= 1)
            snprintf(who, sizeof who, "array element %lld of a job array (pid %ld)",
                     (long long)q.l_start - 1, (long)q.l_pid);
        else if ((read_holder(fd, holder, sizeof holder), holder[0]))
            snprintf(who, sizeof who, "%s", holder);
        else if (known)
            snprintf(who, sizeof who, "pid %ld", (long)q.l_pid);
        else
            snprintf(who, sizeof who, "another process");
        close(fd);
        return sotu_error(SOTU_ERR_USAGE, "%s is in use by another sotu train (%s; lock file %s): "
                          "wait for it to end, or choose another output.dir", dir, who, path);
    }
    if (n_held == cap_held) {
        int cap = cap_held ? 2 * cap_held : 8;
        held_lock *p = realloc(held, sizeof *held * (size_t)cap);
        if (!p) {
            close(fd); /* drops the lock just taken: nothing else holds this file */
            return sotu_error(SOTU_ERR_NOMEM, "%s: the list of locked run directories", dir);
        }
        held = p;
        cap_held = cap;
    }
    held[n_held++] = (held_lock){fd, sb.st_dev, sb.st_ino};
    if (element < 0)
        write_holder(fd);
    return SOTU_OK;
}

void sotu_dir_unlock_all(void)
{
    for (int i = 0; i < n_held; i++)
        close(held[i].fd);
    free(held);
    held = NULL;
    n_held = cap_held = 0;
}
