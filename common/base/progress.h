/* progress: one status line on stderr for long work (items done, rate, ETA).
 * On a terminal it is redrawn in place at most a few times a second; when
 * stderr is not a terminal, or when quiet, it prints nothing. */
#ifndef W2S_PROGRESS_H
#define W2S_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct progress {
    const char *label;
    const char *unit;
    uint64_t total;       /* 0 when unknown: no ETA is shown */
    double start_time;
    double last_draw;
    bool enabled;
    bool drawn;
} progress;

void progress_start(progress *p, const char *label, uint64_t total, const char *unit, bool quiet);
/* done: items so far; extra: optional text appended to the line (may be NULL). */
void progress_update(progress *p, uint64_t done, const char *extra);
/* Clears the line, leaving the terminal as it was. */
void progress_finish(progress *p);

/* Monotonic wall-clock seconds. */
double time_now(void);

#endif
