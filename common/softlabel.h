/* softlabel: the codec for one sequence's top-k soft labels (byte format in
 * schemas/softlabel.md).
 *
 * A blob holds, for n_pos positions, the teacher's k most probable token ids in
 * rank order and their natural-log probabilities at temperature 1. Log-probs
 * are quantised with a step that grows as the probability falls (the KL cost
 * of a relative error is proportional to the probability); the mass left by
 * ranks 2..k is split between rank 1 and the tail by a stored log-odds code,
 * so the tail keeps its relative accuracy. Ids are move-to-front coded; all
 * codes go into byte planes compressed as one zstd frame. Workload: distill encodes one blob per
 * window; train decodes continuously, so decoding reuses the codec's zstd
 * context and scratch and allocates nothing once warmed up.
 *
 * A codec is not thread-safe; use one per thread. */
#ifndef W2S_SOFTLABEL_H
#define W2S_SOFTLABEL_H

#include <stddef.h>
#include <stdint.h>

#define SOFTLABEL_CODEC_VERSION 1
/* Largest k and vocabulary the format allows. */
#define SOFTLABEL_MAX_K 1024
#define SOFTLABEL_MAX_VOCAB 65536
/* Largest n_pos the format allows (a window of up to 1 Mi tokens). */
#define SOFTLABEL_MAX_POS (1 << 20)

typedef struct softlabel_codec softlabel_codec;   /* reusable zstd contexts + scratch */

/* @return a codec, or NULL + message on allocation failure. */
softlabel_codec *softlabel_codec_create(void);
void softlabel_codec_free(softlabel_codec *c);

/* ids (n_pos, k) in rank order (descending prob), logprobs (n_pos, k) natural-log
 * probs at temperature 1 (-inf allowed, NaN/+inf/positive values refused).
 * 1 <= k <= SOFTLABEL_MAX_K, 1 <= n_pos <= SOFTLABEL_MAX_POS, ids < vocab <=
 * SOFTLABEL_MAX_VOCAB. Writes a blob into *out (grown with mem_reserve, *out_cap
 * its capacity); *out_len its length. @return 0, or -1 + message (bad argument,
 * allocation, zstd failure); *out stays owned by the caller either way. */
int softlabel_encode(softlabel_codec *c, const int32_t *ids, const float *logprobs,
                     int n_pos, int k, int vocab, unsigned char **out, size_t *out_cap, size_t *out_len);

/* Decodes into caller arrays with room for max_pos * max_k entries (ids and
 * logprobs, row-major (n_pos, k)) and max_pos tail values; validates every
 * length/bound (ids < the blob's vocab <= vocab) -> -1 + message, never reads
 * or writes out of bounds. tail (n_pos) = 1 - sum of decoded probs, >= 0.
 * Decoded log-probs of ranks >= 2 are within softlabel_error_bound; rank 1 and
 * the tail share the rounding of the others (schemas/softlabel.md). */
int softlabel_decode(softlabel_codec *c, const unsigned char *blob, size_t len, int vocab,
                     int max_pos, int max_k, int32_t *ids, float *logprobs, float *tail,
                     int *n_pos, int *k);

/* Reads the header only: n_pos, k and the vocabulary the blob was encoded with.
 * @return 0, or -1 + message when the header is invalid. */
int softlabel_peek(const unsigned char *blob, size_t len, int *n_pos, int *k, int *vocab);

/* The largest |decoded - exact| error, in nats, of the log-prob of an entry of
 * rank >= 2 whose exact log-prob is logprob (in -63..0; inputs sorted by rank). */
double softlabel_error_bound(float logprob);

#endif
