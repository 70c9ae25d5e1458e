/* kd_divergence: the distillation divergences other than forward KL (README,
 * "The objective"), on the same stored partition as kd_loss.h, fused in place
 * on one logits row. kd_loss.h stays the fast forward-KL kernel; this module
 * also computes forward KL by the general route, so tests can hold the two
 * against each other.
 *
 * Notation (as kd_loss.h): q is the teacher, p the student, both over the
 * cells c of the partition. The stored top-k ids S (an id repeated in S is
 * merged into its first entry: the cell's q is the sum of the entries' q)
 *   KD_TAIL_BUCKET: cells = the distinct ids of S plus one tail bucket;
 *     q_c = exp(l_c) at temperature 1, q_tail = the stored tail mass;
 *     p = softmax(z / tau), p_tail = the sum of p outside S (summed directly).
 *   KD_TAIL_RENORM: cells = the distinct ids of S; q proportional to
 *     exp(l / tau), p proportional to exp(z / tau), both renormalised over S.
 * Every loss is tau^2 * D(q, p) (the tau^2 of Hinton et al. keeps the
 * gradient's size independent of tau for KL; the other divergences take the
 * same factor so one --tau means one thing).
 *   fkl   D = sum_c q log(q / p)                                 KL(q || p)
 *   rkl   D = sum_c p (log p - log~q)                            KL(p || q)
 *   gjsd  D = beta KL(q || m) + (1 - beta) KL(p || m),  m = beta q + (1 - beta) p,
 *         beta in (0, 1): TRL's GKD convention with q the teacher; beta 0.5 is
 *         the Jensen-Shannon divergence. D / beta -> fkl as beta -> 0 and
 *         D / (1 - beta) -> rkl as beta -> 1 (D itself goes to 0 at both ends,
 *         so the endpoints are refused: use fkl or rkl).
 *   skl   D = KL(q || m),  m = a q + (1 - a) p                   (DistiLLM's
 *   srkl  D = KL(p || m),  m = a p + (1 - a) q, with log~q        skew KLs)
 *         a in [0, 1): a = 0 is fkl / rkl exactly; D -> 0 as a -> 1.
 *   tvd   D = 1/2 sum_c |q - p|
 * Terms with a zero factor in front of a log (q = 0 in q log ..., p = 0 in
 * p log ...) are 0. log~q = max(log q, KD_LOG_Q_FLOOR): reverse KL is
 * infinite where the teacher gives a cell 0 (a -inf entry, a zero tail) and
 * the student does not, so rkl and srkl floor the teacher's log there; the
 * other divergences treat q = 0 exactly.
 *
 * Gradient. With h_c = p_c dD/dp_c (the derivative in log p_c, finite even
 * where p_c underflows) and H = sum_c h_c, the chain rule through the
 * softmax gives, with s = softmax(z / tau),
 *   bucket: dL/dz_j = tau * (h_c - p_c H)              j in S, c its cell
 *           dL/dz_j = tau * s_j (h_tail / p_tail - H)    j not in S
 *   renorm: dL/dz_j = tau * (h_c - p_c H) on S, 0 elsewhere,
 * where
 *   fkl   h = -q
 *   rkl   h = p (log p - log~q + 1)
 *   gjsd  h = (1 - beta) p log(p / m)
 *   skl   h = -(1 - a) q p / m
 *   srkl  h = p (log(p / m) + 1 - a p / m)
 *   tvd   h = 1/2 p sign(p - q), sign(0) = 0 (TVD has a kink at p = q;
 *         this is its subgradient there).
 * Mixtures m are summed in log space, so m = 0 only where both terms are 0.
 *
 * Sampled labels (softlabel.h): an empirical distribution q^ of N draws.
 * Only forward KL is defined for them: -sum q^ log p is an unbiased estimate
 * of the cross-entropy to the teacher; every other divergence needs q on the
 * student's support (rkl, srkl, gjsd, tvd weigh p against q where the sample
 * has no draws) or is a biased nonlinear function of q^ (skl), and train
 * refuses them (kd_loss_kind_sampled_ok). */
#ifndef W2S_KD_DIVERGENCE_H
#define W2S_KD_DIVERGENCE_H

#include <stdint.h>

#include "nn/kd_loss.h"

typedef enum { KD_LOSS_FKL, KD_LOSS_RKL, KD_LOSS_GJSD, KD_LOSS_SKL, KD_LOSS_SRKL, KD_LOSS_TVD } kd_loss_kind;

/* The floor of the teacher's log-probability in rkl and srkl (see above):
 * about 2e-22, far below any stored top-k probability or tail we meet. */
#define KD_LOG_Q_FLOOR (-50.0)

/* A divergence and its parameter: beta for gjsd (0 < beta < 1), the skew a
 * for skl and srkl (0 <= a < 1); ignored by the others. */
typedef struct kd_divergence {
    kd_loss_kind kind;
    double beta, skew;
} kd_divergence;

/* Parses fkl, rkl, gjsd, skl, srkl or tvd. @return 0, or -1 with "'TEXT' is
 * not one of ...", which the caller prefixes (train: the option name). */
int kd_loss_kind_parse(const char *text, kd_loss_kind *kind);
const char *kd_loss_kind_name(kd_loss_kind kind);
/* 1 when the kind is defined for sampled labels (fkl only, see above). */
int kd_loss_kind_sampled_ok(kd_loss_kind kind);

/* The loss of one position: arguments as kd_loss_position (ids in [0, V),
 * k in [1, KD_MAX_K], z finite, -INFINITY log-probs allowed), d a valid
 * divergence. Overwrites z with scale * dL/dz and @return L (not scaled). */
double kd_divergence_position(float *z, int V, const int32_t *ids, const float *logprobs, float tail,
                              int k, float tau, kd_tail_mode mode, const kd_divergence *d, float scale);

#endif
