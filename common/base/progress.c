/* progress: an in-place status line on a terminal; see progress.h. */
#include "base/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(progress *p, const char *label, uint64_t total, const char *unit, bool quiet)
{
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->start_time = time_now();
    p->last_draw = 0;
    p->enabled = !quiet && isatty(STDERR_FILENO);
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
    if (now - p->last_draw < 0.25 && done != p->total)
        return;
    p->last_draw = now;
    double elapsed = now - p->start_time;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    char eta[32] = "";
    if (p->total && rate > 0 && done <= p->total) {
        char d[24];
        format_duration(d, sizeof d, (double)(p->total - done) / rate);
        snprintf(eta, sizeof eta, ", ETA %s", d);
    }
    if (p->total)
        fprintf(stderr, "\r\033[K%s: %llu/%llu %s (%.0f %s/s%s)%s%s", p->label,
                (unsigned long long)done, (unsigned long long)p->total, p->unit, rate, p->unit,
                eta, extra ? " " : "", extra ? extra : "");
    else
        fprintf(stderr, "\r\033[K%s: %llu %s (%.0f %s/s)%s%s", p->label, (unsigned long long)done,
                p->unit, rate, p->unit, extra ? " " : "", extra ? extra : "");
    fflush(stderr);
    p->drawn = true;
}

void progress_finish(progress *p)
{
    if (p->enabled && p->drawn)
        fprintf(stderr, "\r\033[K");
    p->drawn = false;
}
