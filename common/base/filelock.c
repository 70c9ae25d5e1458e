/* filelock: the writer lock of filelock.h, on Linux open-file-description
 * locks. Offsets are far above any file w2s writes (2^60), and the pid byte
 * sits at 2^60 + 1 + pid, so F_OFD_GETLK over that range returns it. */
#include "base/filelock.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"

#define LOCK_BASE ((off_t)1 << 60)
#define PID_RANGE ((off_t)1 << 32)

static int lock_range(int fd, int cmd, short type, off_t start, off_t len, struct flock *fl)
{
    memset(fl, 0, sizeof *fl);
    fl->l_type = type;
    fl->l_whence = SEEK_SET;
    fl->l_start = start;
    fl->l_len = len;
    return fcntl(fd, cmd, fl);
}

/* The holder's pid from the pid byte, 0 if none is locked. */
static pid_t holder_of(int fd)
{
    struct flock fl;
    if (lock_range(fd, F_OFD_GETLK, F_WRLCK, LOCK_BASE + 1, PID_RANGE, &fl) < 0 ||
        fl.l_type == F_UNLCK)
        return 0;
    return (pid_t)(fl.l_start - LOCK_BASE - 1);
}

int filelock_acquire(filelock *l, const char *path, const char *what)
{
    l->fd = open(path, O_RDWR | O_CLOEXEC);
    if (l->fd < 0)
        return err_errno(path, "opening to lock");
    struct flock fl;
    if (lock_range(l->fd, F_OFD_SETLK, F_WRLCK, LOCK_BASE, 1, &fl) < 0) {
        int e = errno;
        pid_t pid = (e == EAGAIN || e == EACCES) ? holder_of(l->fd) : 0;
        close(l->fd);
        l->fd = -1;
        if (e != EAGAIN && e != EACCES) {
            errno = e;
            return err_errno(path, "locking");
        }
        if (pid > 0)
            return err_set("%s: is being written by another %s (pid %ld)", path, what, (long)pid);
        return err_set("%s: is being written by another %s", path, what);
    }
    if (lock_range(l->fd, F_OFD_SETLK, F_WRLCK, LOCK_BASE + 1 + getpid(), 1, &fl) < 0) {
        err_errno(path, "locking");
        filelock_release(l);
        return -1;
    }
    return 0;
}

void filelock_release(filelock *l)
{
    if (l->fd >= 0)
        close(l->fd);   /* closing the description drops its OFD locks */
    l->fd = -1;
}

pid_t filelock_holder(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : err_errno(path, "opening to check its lock");
    struct flock fl;
    pid_t pid = 0;
    if (lock_range(fd, F_OFD_GETLK, F_WRLCK, LOCK_BASE, 1, &fl) < 0)
        pid = err_errno(path, "checking its lock");
    else if (fl.l_type != F_UNLCK)
        pid = holder_of(fd);
    close(fd);
    return pid;
}

int filelock_holds(const filelock *l, const char *path)
{
    struct stat held, now;
    return l->fd >= 0 && fstat(l->fd, &held) == 0 && stat(path, &now) == 0 &&
           held.st_dev == now.st_dev && held.st_ino == now.st_ino;
}

int filelock_acquire_output(filelock *l, const char *path, const char *what, int *created)
{
    *created = 0;
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            close(fd);
            *created = 1;
        } else if (errno != EEXIST) {
            return err_errno(path, "creating");
        }
        if (filelock_acquire(l, path, what) < 0)
            return -1;
        if (filelock_holds(l, path))
            return 0;
        filelock_release(l);   /* replaced meanwhile: the new file is what counts */
        *created = 0;
    }
    l->fd = -1;
    return err_set("%s: keeps being replaced by another %s", path, what);
}
