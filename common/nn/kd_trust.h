/* kd_trust: per-position trust in the teacher's stored labels (README, "The
 * objective"), computed from the labels alone (no teacher run). Finer than
 * --labels-where, which keeps or drops whole rows.
 *
 * For one position with stored log-probs l_1..l_k and tail mass m:
 *   confidence  c = max_i exp(l_i), the teacher's top-1 probability;
 *   certainty   u = 1 - H / log(k + 1), H = -sum q log q over the stored
 *               partition (the k entries and the tail bucket, q = 0 terms 0),
 *               so u = 1 for a one-hot teacher and u = 0 when all k + 1 cells
 *               are equal.
 * The weights of a batch of n positions (labeled where targets >= 0):
 *   raw_i = 1 (KD_WEIGHT_NONE), c_i (KD_WEIGHT_CONF) or u_i (KD_WEIGHT_ENTROPY),
 *   and raw_i = 0 when c_i < min_conf (the position is skipped) or it is not
 *   labeled; then w_i = raw_i * N / sum raw, N the labeled positions, so the
 *   mean weight over the batch's labeled positions is 1 and the KD term keeps
 *   its total weight, redistributed. When every raw_i is 0 all w_i are 0 (the
 *   step has no KD gradient). A position of weight w adds w * KD to the sum
 *   and w times its gradient (objective.h); w = 0 contributes nothing. */
#ifndef W2S_KD_TRUST_H
#define W2S_KD_TRUST_H

#include <stdint.h>

typedef enum { KD_WEIGHT_NONE, KD_WEIGHT_CONF, KD_WEIGHT_ENTROPY } kd_weight_mode;

/* Parses none, conf or entropy. @return 0, or -1 + "'TEXT' is not ...". */
int kd_weight_parse(const char *text, kd_weight_mode *mode);
const char *kd_weight_name(kd_weight_mode mode);

/* c and u of one position (logprobs: k >= 1 natural-log entries, -INFINITY
 * allowed; tail: the stored tail mass, <= 0 means none). */
double kd_confidence(const float *logprobs, int k);
double kd_certainty(const float *logprobs, float tail, int k);

/* Writes w (n) as above for the positions' logprobs (n, k) and tail (n).
 * @return the number of labeled positions kept (raw_i > 0). */
long kd_trust_weights(float *w, const int32_t *targets, const float *logprobs, const float *tail, int k,
                      long n, kd_weight_mode mode, double min_conf);

#endif
