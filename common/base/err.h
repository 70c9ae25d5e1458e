/* err: how the w2s library reports failure.
 *
 * Library functions return 0 (or a valid pointer) on success and -1 (or NULL)
 * on failure, after recording one line that names the file and the problem,
 * e.g. "teacher.ckpt: bad magic (not a w2s checkpoint)". Only main() prints it
 * and exits. The message lives in thread-local storage, so worker threads
 * report independently; a new err_set() replaces the previous message. */
#ifndef W2S_ERR_H
#define W2S_ERR_H

#include <stddef.h>

#define W2S_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/* Records a formatted message. @return -1, so `return err_set(...)` reads well. */
int err_set(const char *fmt, ...) W2S_PRINTF(1, 2);

/* Records "<path>: <what>: <strerror(errno)>". @return -1. */
int err_errno(const char *path, const char *what);

/* Prefixes the current message: "<prefix>: <old message>". @return -1. */
int err_wrap(const char *fmt, ...) W2S_PRINTF(1, 2);

/* The last recorded message of this thread ("" if none). */
const char *err_message(void);

void err_clear(void);

/* Propagates a failure: evaluates expr once and returns -1 if it is negative. */
#define TRY(expr) do { if ((expr) < 0) return -1; } while (0)

#endif
