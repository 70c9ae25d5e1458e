/* metrics: the machine-readable record of a training run's steps -- one JSON
 * object per step and line (common/base/json_out.h) in the --metrics file.
 * The --json summary at the end is trainer.c's. */
#ifndef W2S_METRICS_H
#define W2S_METRICS_H

#include <stdio.h>

typedef struct metrics_step {
    long step;
    int has_lm, has_kd, has_eval;    /* which of the losses below apply */
    double lm_loss, kd_loss, loss, lr, grad_norm, tokens_per_s, eval_loss;
} metrics_step;

typedef struct metrics metrics;

/* Opens path for JSON lines, truncating it, or appending when append (a
 * resumed run). @return the writer, or NULL + message naming path. */
metrics *metrics_open(const char *path, int append);
/* The is_kind test of base/output_path.h for --metrics: 1 when path's first
 * line is a step object of this writer, 0 when not, -1 + message. */
int metrics_file_is_ours(const char *path);
/* Appends one line and flushes it. @return 0, or -1 + message naming the file. */
int metrics_write(metrics *mt, const metrics_step *s);
/* Closes the file. @return 0, or -1 + message (write error). NULL is fine. */
int metrics_close(metrics *mt);

#endif
