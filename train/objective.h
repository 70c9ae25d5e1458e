/* objective: the per-position losses of a training step (README, "The objective"), run over
 * a batch's logits in place and split across a thread pool by contiguous
 * position ranges. Each range's sum is accumulated in position order and the
 * ranges are added in range order, so results are bit-identical for a fixed
 * thread count. */
#ifndef W2S_OBJECTIVE_H
#define W2S_OBJECTIVE_H

#include <stdint.h>

#include "nn/kd_divergence.h"
#include "nn/kd_loss.h"

typedef struct objective objective;

/* threads: as the model's (>= 1). @return the pool, or NULL + message. */
objective *objective_create(int threads);
void objective_free(objective *o);

/* Cross-entropy of n positions (loss_cross_entropy semantics: targets < 0
 * masked, rows overwritten with scale * dloss/dlogits). @return the sum. */
double objective_ce(objective *o, float *logits, const int32_t *targets, long n, int V, float scale);

/* How the KD positions of a step are scored. div: the divergence (forward
 * KL runs kd_loss_position_aux, the others kd_divergence_position); aux: the
 * auxiliary-confidence weight b in [0, 1] of this step (forward KL only; 0 =
 * plain KD); weights: one per position (kd_trust.h), NULL = all 1. */
typedef struct objective_kd_spec {
    float tau;
    kd_tail_mode mode;
    kd_divergence div;
    float aux;
    const float *weights;
} objective_kd_spec;

/* KD of n positions: position i is labeled when targets[i] >= 0, with the
 * teacher's ids / logprobs (n, k) and tail (n); unlabeled rows and rows of
 * weight 0 get a zero gradient, a row of weight w gets w * scale * dKD/dz.
 * @return the weighted sum of KD over labeled positions (against the mixed
 * target when aux > 0). */
double objective_kd(objective *o, float *logits, const int32_t *targets, const int32_t *ids,
                    const float *logprobs, const float *tail, int k, long n, int V,
                    const objective_kd_spec *spec, float scale);

/* The aux-confidence weight of a 1-based step: kd_aux_weight(beta, step, w)
 * with w = warmup, or 20% of total_steps when warmup < 0 (--aux-warmup
 * unset). */
float objective_aux_weight(double beta, long warmup, long total_steps, long step);

#endif
