/* eval: held-out evaluation of a model on a window set -- the mean
 * cross-entropy in nats over every predicted token (each token after a
 * record's EOT exactly once, common/window.h), the perplexity and the
 * tokenizer-independent bits per byte. Windows go through the model in packed
 * batches of the rows the model was created for; the order is fixed, so the
 * result is deterministic for a fixed thread count. Under MPI the batches are
 * dealt round-robin to the ranks and the sums added, so every rank must call
 * it and all get the same result. */
#ifndef W2S_EVAL_H
#define W2S_EVAL_H

#include <stdbool.h>
#include <stdint.h>

#include "gt_data.h"
#include "nn/model.h"
#include "objective.h"

typedef struct eval_result {
    uint64_t tokens;        /* predicted tokens */
    uint64_t bytes;         /* record bytes */
    double nats;            /* total cross-entropy */
    double loss;            /* nats / tokens */
    double ppl;             /* exp(loss) */
    double bits_per_byte;   /* nats / (ln 2 * bytes) */
} eval_result;

/* Evaluates m on every window of w (w->T <= the model's seq_len), rows at a
 * time (<= the model's max_rows), the loss split over obj's threads; unless
 * quiet, rank 0 shows progress in windows (base/progress.h). positions_path,
 * when not NULL, also gets the per-position file of positions.h (one line
 * per predicted token, w's window indices); a single process only, since
 * under MPI each rank sees only its own batches.
 * Clobbers the model's activations.
 * @return 0, or -1 + message (out of memory, no windows, the positions
 * file: then it is left as it was). */
int eval_windows(model *m, objective *obj, int rows, const gt_windows *w, bool quiet,
                 const char *positions_path, eval_result *out);

#endif
