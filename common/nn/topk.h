/* topk: the teacher's next-token distribution at one position, reduced to
 * what labels.db keeps (schemas/labels.sql): the k most probable token ids in rank
 * order, their log-probabilities at temperature 1, and per-position
 * statistics (entropy of the full softmax, NLL of the actual next token,
 * tail mass outside the top k, top-1 probability).
 *
 * Workload: one call per predicted token of a distill run, on a logits row of
 * V (4096 .. 65536) floats, so it must cost a small fraction of the teacher
 * forward that produced the row (about 5 us at V = 4096, k = 32 on the
 * development machines). The fast kernel reads the row three times, all
 * vectorised: (1) the maximum, and in each lane of each of a few chunks the
 * r <= 4 largest entries (8 lanes x r x chunks >= k), whose smallest r-th
 * one, t0, is a lower bound of the k-th largest logit; (2) exp(x - max) with an own
 * polynomial (relative error ~1e-7) and the sums for the normaliser, the
 * entropy and the mass below t0, accumulated per block in float and across
 * blocks in double; (3) the few entries >= t0 (about 1.3 k), ranked by
 * insertion into the k-entry result (by a heap for k > 256). The tail mass is summed directly over the entries left out, never
 * as 1 - sum(top-k), so it keeps its relative accuracy (~1e-6) even at
 * 1e-12. Nothing is allocated; the caller provides scratch.
 *
 * Order: descending probability, equal logits by ascending id. A slow
 * reference (full sort, every sum in double) sits next to the fast kernel for
 * tests and benchmarks. */
#ifndef W2S_TOPK_H
#define W2S_TOPK_H

#include <stddef.h>
#include <stdint.h>

typedef struct topk_stats {
    double entropy;   /* -sum p log p over all V, nats */
    double nll;       /* -log p[target]; NAN when target < 0 */
    double tail;      /* 1 - sum of the top-k probs, summed over the rest */
    double top1;      /* largest probability */
} topk_stats;

/* Bytes of scratch topk_row needs for a row of V logits. */
size_t topk_scratch_bytes(int V);

/* Top-k of one row of V logits (1 <= k <= V): ids[k] in rank order and
 * logprobs[k] = log_softmax(logits)[ids], plus *st; target in [0, V) is the
 * actual next token, or < 0 for none. scratch: topk_scratch_bytes(V) bytes,
 * clobbered. Thread-safe (no shared state).
 * @return 0, or -1 with a message when the row holds NaN or an infinity. */
int topk_row(const float *logits, int V, int k, int32_t target, void *scratch,
             int32_t *ids, float *logprobs, topk_stats *st);

/* The obvious reference: full sort of all V entries, every sum in double.
 * Same contract as topk_row (no scratch; allocates, -1 on out of memory). */
int topk_row_reference(const float *logits, int V, int k, int32_t target,
                       int32_t *ids, float *logprobs, topk_stats *st);

#endif
