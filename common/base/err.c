/* err: thread-local last-error message; see err.h. */
#include "base/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ERR_CAPACITY 1024

static _Thread_local char err_buffer[ERR_CAPACITY];

int err_set(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buffer, sizeof err_buffer, fmt, ap);
    va_end(ap);
    return -1;
}

int err_errno(const char *path, const char *what)
{
    return err_set("%s: %s: %s", path, what, strerror(errno));
}

int err_wrap(const char *fmt, ...)
{
    char old[ERR_CAPACITY];
    char prefix[ERR_CAPACITY];
    memcpy(old, err_buffer, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[2 * ERR_CAPACITY + 2];
    snprintf(joined, sizeof joined, "%s: %s", prefix, old);
    /* Truncation to the buffer is intended: the message stays one line. */
    size_t n = strnlen(joined, ERR_CAPACITY - 1);
    memcpy(err_buffer, joined, n);
    err_buffer[n] = '\0';
    return -1;
}

const char *err_message(void)
{
    return err_buffer;
}

void err_clear(void)
{
    err_buffer[0] = '\0';
}
