/* fileio: whole-file reads and crash-safe writes.
 *
 * Outputs that must never be torn (checkpoints, reports) are written through
 * an atomic_file: data goes to "<path>.tmp.<pid>", is flushed and fsync'ed,
 * then renamed over <path>. A crash or an error at any point leaves either the
 * old file or the new one, and the temporary file is removed on error. */
#ifndef W2S_FILEIO_H
#define W2S_FILEIO_H

#include <stdio.h>
#include <stddef.h>

#include "base/filelock.h"

/* Reads all of path into a malloc'ed buffer (NUL-terminated for convenience,
 * the terminator not counted in *len). @return 0, or -1 naming path. */
int file_read_all(const char *path, unsigned char **data, size_t *len);

typedef struct atomic_file {
    FILE *fp;
    char *path;
    char *tmp_path;
} atomic_file;

/* Opens a temporary file next to path. @return 0, or -1 naming path. */
int atomic_file_open(atomic_file *af, const char *path);
/* @return 0, or -1 (e.g. disk full) naming the final path; the caller then
 * calls atomic_file_abort(). */
int atomic_file_write(atomic_file *af, const void *data, size_t len);
/* Flushes, fsyncs and renames into place; on failure removes the temporary
 * file and leaves any old file at path untouched. Releases af either way. */
int atomic_file_commit(atomic_file *af);
/* atomic_file_commit for an output whose writer lock (base/filelock.h,
 * filelock_acquire_output) lock holds: the temporary file is locked before
 * it is renamed into place and the old file's lock released after, so the
 * path is locked at every instant; lock then holds the new file. what names
 * the writer in a refusal ("train"). */
int atomic_file_commit_locked(atomic_file *af, filelock *lock, const char *what);
/* Removes the temporary file and releases af. Safe on a zeroed atomic_file. */
void atomic_file_abort(atomic_file *af);

/* One-shot atomic write of a buffer. */
int file_write_atomic(const char *path, const void *data, size_t len);

/* 1 if path exists, 0 if not. */
int file_exists(const char *path);

#endif
