/* Exclusive use of a run directory: at most one `sotu train` writes it.
 *
 * The lock is an fcntl(2) record lock (F_SETLK, F_WRLCK) on DIR/.sotu.lock,
 * held until the process exits: the kernel drops it when the process dies,
 * by kill -9 too, so a crashed run never leaves a stale lock behind and
 * `--resume` can start at once. The file itself stays (removing it would
 * let a third run lock a fresh file beside a second run's).
 *
 *   a whole run                bytes [0, end of file and beyond) (l_len 0)
 *   job array element E        byte 1 + E only: elements of one sweep write
 *                              their own deltas into one directory side by
 *                              side; an element runs once at a time and
 *                              never beside a whole run
 *
 * A whole run writes "pid P on host H since T" into the file, so a refused
 * run can say who holds the directory; F_GETLK names the holding pid and,
 * for an element, its index.
 *
 * Over NFS: fcntl locks are forwarded to the server on NFSv4 (and on NFSv3
 * through lockd/NLM), so two runs on two hosts exclude each other; a client
 * that dies holding a lock keeps it until the server's lease ends (NFSv4,
 * 90 s by default). A mount with `local_lock=posix` or `nolock` keeps locks
 * on one host only.
 *
 * POSIX record locks belong to the process, and closing any descriptor of
 * the file drops them: so each directory's file is opened once here and
 * kept open, and locking a directory this process already holds is a
 * no-op. Not thread-safe (rank 0's main thread only).
 */
#ifndef SOTU_IO_DIRLOCK_H
#define SOTU_IO_DIRLOCK_H

#include "common/status.h"

#define SOTU_DIRLOCK_FILE ".sotu.lock"

/* Makes dir (mkdir -p) and locks it for this process: the whole directory
 * (element -1) or array element `element` (>= 0). Refused: SOTU_ERR_USAGE
 * (exit status 2) naming the directory and the holder (pid, host, since
 * when, or the element). SOTU_ERR_IO when the lock file cannot be made. */
sotu_status sotu_dir_lock(const char *dir, int element);

/* Drops every lock this process holds (also done by the kernel at exit). */
void sotu_dir_unlock_all(void);

#endif
