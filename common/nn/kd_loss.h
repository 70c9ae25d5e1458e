/* kd_loss: the knowledge-distillation loss (README, "The objective") of one position,
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
 * Sums are accumulated in double; the row is touched in three passes.
 * Entries with l_i = -INFINITY (q_i = 0) are exact: they add no loss term, and
 * their gradient is tau * Q s_j (bucket) or tau * p_j (renorm), never NaN. An
 * entry that repeats an earlier id adds only its own -q term.
 *
 * Sampled labels (softlabel.h): decoded as q_i = c_i / N on the distinct ids,
 * pads of q = 0 and tail 0, the bucket KD is
 *   tau^2 * (sum_i (c_i/N) log(c_i/N) - sum_i (c_i/N) log softmax(z/tau)_i),
 * the unbiased estimate -sum (c_i/N) log p_i of the cross-entropy to the full
 * teacher (times tau^2) plus the constant sum (c_i/N) log(c_i/N) (minus the
 * empirical entropy), which has no gradient. Use bucket mode for them.
 *
 * Auxiliary confidence loss (Burns et al. 2023; kd_loss_position_aux): the
 * target becomes (1 - b) * teacher + b * onehot(a), a = argmax_j z_j (the
 * first index of the largest logit, detached: the target is a constant, the
 * gradient is exact for it). kd_aux_target builds it on the partition:
 *   bucket: q_i' = (1 - b) q_i + b [i = a] on S, q_tail' = (1 - b) q_tail.
 *     a in S: its (first) entry gains b. a not in S: the partition gets a as
 *     an extra singleton entry with q_a' = b, and the tail bucket becomes
 *     "outside S and a" with q_tail' = (1 - b) q_tail (the teacher's own mass
 *     on a is unknown inside the tail; it is counted with the rest of the
 *     tail, where p_tail no longer includes p_a).
 *   renorm: q = the teacher renormalised over S at tau (as without aux), then
 *     q' = (1 - b) q + b [i = a] over S, or over S + {a} (q_a' = b) when a is
 *     not in S; the student is renormalised over the same set.
 * b = kd_aux_weight(beta, step, warmup): a linear ramp from 0.
 *
 * The other divergences on the same partition (reverse KL, JSD, skew KLs,
 * TVD) are in kd_divergence.h. */
#ifndef W2S_KD_LOSS_H
#define W2S_KD_LOSS_H

#include <stdint.h>

typedef enum { KD_TAIL_BUCKET, KD_TAIL_RENORM } kd_tail_mode;

/* Largest k kd_loss_position and kd_loss_position_aux accept (they keep k + 1
 * values on the stack). */
#define KD_MAX_K 1024

/* Parses "bucket" or "renorm". @return 0, or -1 with the message "'TEXT' is
 * not bucket or renorm", which the caller prefixes with where TEXT came from
 * (train: the option name). */
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

/* The aux-confidence weight at a 1-based step: beta * min(1, step / warmup)
 * (warmup <= 0: beta from the first step). */
float kd_aux_weight(double beta, long step, long warmup);

/* The first index of the largest of z[0..V) (the student's argmax). */
int32_t kd_argmax(const float *z, int V);

/* Writes the mixed target for argmax a and weight b in [0, 1] (see above) as
 * a partition kd_loss_position takes in the same mode: out_ids, out_logprobs
 * (room for k + 1) and *out_tail. Bucket: out_logprobs = log q_i' (natural
 * log, float; -INFINITY for q_i' = 0). Renorm: out_logprobs = tau * log q_i',
 * so kd_loss_position's renormalisation at tau gives back q' (summing to 1).
 * Arguments as for kd_loss_position, 0 <= a < V. @return k or k + 1 (the
 * number of entries written). */
int kd_aux_target(const int32_t *ids, const float *logprobs, float tail, int k, int32_t a, float b,
                  float tau, kd_tail_mode mode, int32_t *out_ids, float *out_logprobs, float *out_tail);

/* kd_loss_position against the aux-confidence mixture of weight b in [0, 1]
 * (b = 0: exactly kd_loss_position). Overwrites z with scale * dKD/dz and
 * @return the KD value against the mixed target (not scaled). */
double kd_loss_position_aux(float *z, int V, const int32_t *ids, const float *logprobs, float tail, int k,
                            float tau, kd_tail_mode mode, float b, float scale);

#endif
