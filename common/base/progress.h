/* progress: status lines on stderr for long work (items done, percent, rate,
 * ETA, and whatever the caller appends, e.g. the loss).
 *
 * On a terminal one line is redrawn in place at most four times a second and
 * cleared by progress_finish. When stderr is not a terminal (nohup, CI, a log
 * file) whole lines are printed instead: the first after 2 seconds, then one
 * every PROGRESS_LOG_SECONDS (15) seconds, so a log shows that the work moves
 * and how fast without filling up. The environment variable
 * W2S_PROGRESS_SECONDS (a positive number) sets that interval, and the first
 * line comes after at most the interval (tests use a small one). Quiet
 * prints nothing. Percent and ETA appear when the total is known (> 0). */
#ifndef W2S_PROGRESS_H
#define W2S_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#define PROGRESS_LOG_SECONDS 15.0

typedef struct progress {
    const char *label;
    const char *unit;
    uint64_t total;       /* 0 when unknown: no percent or ETA is shown */
    double start_time;
    double next_draw;     /* time of the next line (log) or redraw (terminal) */
    double interval;      /* seconds between log lines */
    bool enabled;
    bool terminal;        /* redraw in place; else whole lines for a log */
    bool drawn;
} progress;

void progress_start(progress *p, const char *label, uint64_t total, const char *unit, bool quiet);
/* done: items so far; extra: optional text appended to the line (may be NULL). */
void progress_update(progress *p, uint64_t done, const char *extra);
/* Clears the terminal line, leaving the terminal as it was (logs keep theirs). */
void progress_finish(progress *p);

/* Monotonic wall-clock seconds. */
double time_now(void);

#endif
