/* loss: the fused softmax cross-entropy the training and evaluation paths
 * share. One pass per row computes a stable log-sum-exp, the loss and the
 * gradient in place, so the logits never need a second buffer. */
#ifndef W2S_LOSS_H
#define W2S_LOSS_H

#include <stdint.h>

/* For n rows of logits (n, V): loss_i = -log softmax(row_i)[target_i]
 * (target < 0 = masked, contributes 0). Overwrites each row with
 * scale * dloss_i/dlogits (masked rows with zeros). Returns sum of losses
 * (double, accumulated in row order). Targets must be < V. */
double loss_cross_entropy(float *logits, const int32_t *targets, long n, int V, float scale);

#endif
