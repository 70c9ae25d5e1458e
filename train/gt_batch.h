/* gt_batch: the GT stream of a training run. Each epoch visits every window
 * once in a permutation drawn from (seed, epoch); batches take windows in that
 * order, packed next-fit into rows (common/window.h), and run on across epoch
 * boundaries, so every batch is full. A window that does not fit opens the
 * next batch. The position (epoch, index) is the whole state. */
#ifndef W2S_GT_BATCH_H
#define W2S_GT_BATCH_H

#include <stdint.h>

#include "gt_data.h"
#include "train_state.h"
#include "text/window.h"

typedef struct gt_sampler {
    const gt_windows *w;       /* borrowed */
    uint32_t *perm;            /* permutation of cur.epoch */
    uint64_t seed;
    int stream;
    train_cursor cur;
} gt_sampler;

/* Starts at cursor start (w->n >= 1). @return 0, or -1 + message (memory). */
int gt_sampler_init(gt_sampler *s, const gt_windows *w, uint64_t seed, int stream, train_cursor start);
void gt_sampler_free(gt_sampler *s);

/* Packs windows from the cursor into p (reset by the caller) until one does
 * not fit, advancing the cursor. targets (p->rows * p->T) receives each
 * position's next token, -1 where there is none. @return the number of
 * targets; *n_tokens the number of tokens placed. */
long gt_sampler_fill(gt_sampler *s, packer *p, int32_t *targets, long *n_tokens);

/* Number of batches of rows x T that consume epochs passes over w (at least
 * 1). @return the count, or -1 + message (memory). */
long gt_sampler_count_steps(const gt_windows *w, uint64_t seed, int stream, int rows, int T,
                            double epochs);

#endif
