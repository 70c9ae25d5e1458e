/* progress: an in-place status line on a terminal, periodic lines in a log;
 * see progress.h. */
#include "base/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_FIRST_LOG_SECONDS 2.0
#define PROGRESS_REDRAW_SECONDS 0.25

double time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* W2S_PROGRESS_SECONDS when it is a positive number, else the default. */
static double log_interval(void)
{
    const char *text = getenv("W2S_PROGRESS_SECONDS");
    if (text && *text) {
        char *end;
        double s = strtod(text, &end);
        if (*end == '\0' && s > 0 && s < 1e9)
            return s;
    }
    return PROGRESS_LOG_SECONDS;
}

void progress_start(progress *p, const char *label, uint64_t total, const char *unit, bool quiet)
{
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->start_time = time_now();
    p->enabled = !quiet;
    p->terminal = isatty(STDERR_FILENO);
    p->interval = log_interval();
    double first = p->interval < PROGRESS_FIRST_LOG_SECONDS ? p->interval : PROGRESS_FIRST_LOG_SECONDS;
    p->next_draw = p->terminal ? p->start_time : p->start_time + first;
    p->drawn = false;
}

static void format_duration(char *out, size_t cap, double seconds)
{
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(out, cap, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else
        snprintf(out, cap, "%ldm%02lds", s / 60, s % 60);
}

void progress_update(progress *p, uint64_t done, const char *extra)
{
    if (!p->enabled)
        return;
    double now = time_now();
    if (now < p->next_draw && !(p->terminal && done == p->total))
        return;
    p->next_draw = now + (p->terminal ? PROGRESS_REDRAW_SECONDS : p->interval);
    double elapsed = now - p->start_time;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    char count[96], eta[32] = "";
    if (p->total) {
        snprintf(count, sizeof count, "%llu/%llu %s, %.0f%%", (unsigned long long)done,
                 (unsigned long long)p->total, p->unit, 100.0 * (double)done / (double)p->total);
        if (rate > 0 && done <= p->total) {
            char d[24];
            format_duration(d, sizeof d, (double)(p->total - done) / rate);
            snprintf(eta, sizeof eta, ", ETA %s", d);
        }
    } else {
        snprintf(count, sizeof count, "%llu %s", (unsigned long long)done, p->unit);
    }
    fprintf(stderr, "%s%s: %s (%.0f %s/s%s)%s%s%s", p->terminal ? "\r\033[K" : "", p->label, count,
            rate, p->unit, eta, extra ? " " : "", extra ? extra : "", p->terminal ? "" : "\n");
    fflush(stderr);
    p->drawn = true;
}

void progress_finish(progress *p)
{
    if (p->enabled && p->terminal && p->drawn)
        fprintf(stderr, "\r\033[K");
    p->drawn = false;
}
