/* filelock: one writer per file, across processes and within one.
 *
 * A writer holds an open-file-description lock (Linux F_OFD_SETLK) on one
 * byte far beyond any data, so it never meets SQLite's own byte-range locks
 * (near offset 1 GiB) and survives other descriptors of the same file being
 * closed, unlike classic POSIX locks. It also locks a second byte at an offset
 * that encodes its pid, which lets anyone who finds the file locked name the
 * holder. The kernel drops both when the process dies, so a killed writer
 * never leaves a stale lock behind. Taking a lock writes nothing to the file. */
#ifndef W2S_FILELOCK_H
#define W2S_FILELOCK_H

#include <sys/types.h>

typedef struct filelock { int fd; } filelock;

/* Takes the writer lock on path (which must exist). @return 0; -1 + message
 * "<path>: is being written by another process (pid N)" when another writer
 * holds it, or naming the system error. On failure l->fd is -1. */
int filelock_acquire(filelock *l, const char *path, const char *what);

/* The lock of an output that is replaced whole by renames (fileio.h's
 * atomic_file_commit_locked): creates path empty when it is missing (then
 * *created = 1, else 0), locks it, and when path was replaced meanwhile (its
 * holder moved the lock to the new file) tries again on the new file.
 * @return 0, or -1 + the message of filelock_acquire. */
int filelock_acquire_output(filelock *l, const char *path, const char *what, int *created);

/* 1 when l holds the lock on the file path names now, 0 when not. */
int filelock_holds(const filelock *l, const char *path);

/* Releases the lock (safe on a released or zeroed-then-failed lock). */
void filelock_release(filelock *l);

/* The pid of the process holding the writer lock on path, 0 when nobody holds
 * it (or path does not exist), -1 + message on a system error. */
pid_t filelock_holder(const char *path);

#endif
