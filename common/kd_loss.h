/* kd_loss: the knowledge-distillation loss of DESIGN §8 for one position,
 * fused in place on the student's logits row like loss_cross_entropy.
 *
 * The teacher is given as its stored top-k ids S with natural-log probs l_i
 * at temperature 1 and the tail mass m = 1 - sum exp(l_i). The student's
 * distribution is p = softmax(z / tau).
 *   KD_TAIL_BUCKET: teacher q_i = exp(l_i) on S plus one tail bucket q_tail = m;
 *     student p_i on S plus p_tail = sum of p outside S (summed directly, never
 *     as 1 - sum, so a small tail keeps its precision);
 *     KD = tau^2 * sum_{S + tail} q log(q / p), terms with q = 0 contribute 0.
 *     Exact KL(teacher || student) at tau = 1 up to the top-k quantisation.
 *   KD_TAIL_RENORM: q_i proportional to exp(l_i / tau) and p_i proportional to
 *     exp(z_i / tau), both renormalised over S only; KD = tau^2 * sum_S q log(q/p).
 * The gradient is analytic: with s = softmax(z / tau) and Q = sum_S q + q_tail,
 *   bucket: dKD/dz_j = tau * (Q s_j - q_j [j in S] - (q_tail / p_tail) s_j [j not in S])
 *   renorm: dKD/dz_j = tau * (p_j - q_j) for j in S, 0 elsewhere.
 * Sums are accumulated in double; the row is touched in three passes. */
#ifndef W2S_KD_LOSS_H
#define W2S_KD_LOSS_H

#include <stdint.h>

typedef enum { KD_TAIL_BUCKET, KD_TAIL_RENORM } kd_tail_mode;

/* Largest k kd_loss_position accepts (it keeps k values on the stack). */
#define KD_MAX_K 1024

/* Parses "bucket" or "renorm". @return 0, or -1 with a message. */
int kd_tail_parse(const char *text, kd_tail_mode *mode);
/* "bucket" or "renorm". */
const char *kd_tail_name(kd_tail_mode mode);

/* KD loss of one position. z: the student's logits (V), finite; ids, logprobs:
 * the teacher's top-k (k in [1, KD_MAX_K], ids in [0, V), distinct in
 * practice -- a repeated id is counted as separate terms consistently in loss
 * and gradient); tail: the teacher's tail mass (ignored by renorm); tau > 0.
 * Overwrites z with scale * dKD/dz and @return the KD value (not scaled). */
double kd_loss_position(float *z, int V, const int32_t *ids, const float *logprobs,
                        float tail, int k, float tau, kd_tail_mode mode, float scale);

#endif
