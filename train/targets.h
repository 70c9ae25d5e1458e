/* targets: the next-token targets that go with a packed batch
 * (common/text/window.h) -- one id per cell of the batch's rows: the token
 * that follows the cell's token in its window, or -1 where nothing is
 * predicted (a window's last token, the unused end of a row), which the
 * losses skip (objective.h). The GT batches (gt_batch.c), the labeled ones
 * (label_reader.c) and the evaluation batches (eval.c) all use it. */
#ifndef W2S_TARGETS_H
#define W2S_TARGETS_H

#include <stdint.h>

#include "text/window.h"

/* Sets cells targets to -1 (before a batch is packed). */
void targets_clear(int32_t *targets, long cells);

/* Places the window tok[0 .. len) into p and its next tokens into targets at
 * the same cells. @return the offset of its first cell, or -1 when it does
 * not fit (nothing written). */
long targets_place_window(packer *p, int32_t *targets, const int32_t *tok, int len);

#endif
