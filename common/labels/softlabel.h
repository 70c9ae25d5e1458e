/* softlabel: the codec for one sequence's soft labels (byte format in
 * schemas/softlabel.md). Two kinds of blob:
 *
 * Top-k (kind 0, codec version 3; version 1 still decoded): for n_pos positions, the teacher's k most
 * probable token ids in rank order and their natural-log probabilities at
 * temperature 1. Log-probs are quantised with a step that grows as the
 * probability falls (the KL cost of a relative error is proportional to the
 * probability); the mass left by ranks 1..k-1 is split between rank 0 and the
 * tail by a stored log-odds code, so the tail keeps its relative accuracy.
 *
 * Sampled (kind 1, codec version 2): for n_pos positions, N tokens drawn with
 * replacement from the teacher's full distribution, stored exactly as the
 * distinct ids with their counts (summing to N <= 255). softlabel_decode
 * presents such a blob like a top-k one of k = N: the distinct ids with
 * log-prob log(count / N), padded to N entries by entries that repeat the
 * position's first id with log-prob -INFINITY (no mass), and tail 0 -- so the
 * bucket KD of kd_loss becomes tau^2 * (sum (c/N) log(c/N) - sum (c/N) log p),
 * the unbiased sampled estimate up to the teacher-entropy constant.
 * softlabel_decode_sampled gives the exact counts.
 *
 * Ids are move-to-front coded in both kinds; all codes go into byte planes
 * compressed as one zstd frame. Workload: distill encodes one blob per
 * window; train decodes continuously, so decoding reuses the codec's zstd
 * context and scratch and allocates nothing once warmed up.
 *
 * A codec is not thread-safe; use one per thread. */
#ifndef W2S_SOFTLABEL_H
#define W2S_SOFTLABEL_H

#include <stddef.h>
#include <stdint.h>

/* The version byte of the top-k blobs written now (kind 0; the labels.db
 * codec_version of a top-k database). Version 1 differs only in its coarser
 * quantisation steps; its blobs are still decoded (schemas/softlabel.md). */
#define SOFTLABEL_CODEC_VERSION 3
#define SOFTLABEL_TOPK_V1_VERSION 1
/* The version byte of sampled blobs (kind 1), the format version that added
 * them (the labels.db codec_version of a sampled database). */
#define SOFTLABEL_SAMPLED_VERSION 2
/* Largest number of samples per position of a sampled blob. */
#define SOFTLABEL_MAX_SAMPLES 255

typedef enum { SOFTLABEL_KIND_TOPK = 0, SOFTLABEL_KIND_SAMPLED = 1 } softlabel_kind;

/* What a blob's header says. k: the top-k k, or the samples per position N of
 * a sampled blob (the width softlabel_decode presents). entries: the total
 * number of (id, count) pairs of a sampled blob, n_pos * k for top-k. */
typedef struct softlabel_info {
    int version;
    softlabel_kind kind;
    int n_pos, k, vocab;
    long entries;
} softlabel_info;
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

/* Sampled labels: ids, counts (n_pos, n_samples) row-major; per position the
 * entries of count > 0 are the distinct ids drawn (in any order; entries of
 * count 0 are ignored, whatever their id) and their counts sum to n_samples.
 * 1 <= n_samples <= SOFTLABEL_MAX_SAMPLES, 1 <= n_pos <= SOFTLABEL_MAX_POS,
 * ids < vocab <= SOFTLABEL_MAX_VOCAB. Stores each position's pairs in the
 * canonical order (count descending, then id ascending). Writes the blob like
 * softlabel_encode. @return 0, or -1 + message (bad argument, allocation,
 * zstd failure). */
int softlabel_encode_sampled(softlabel_codec *c, const int32_t *ids, const uint8_t *counts, int n_pos,
                             int n_samples, int vocab, unsigned char **out, size_t *out_cap,
                             size_t *out_len);

/* Decodes either kind into caller arrays with room for max_pos * max_k entries
 * (ids and logprobs, row-major (n_pos, k)) and max_pos tail values; validates
 * every length/bound (ids < the blob's vocab <= vocab) -> -1 + message, never
 * reads or writes out of bounds.
 * Top-k: tail (n_pos) = 1 - sum of decoded probs, >= 0. Decoded log-probs of
 * ranks >= 1 are within softlabel_error_bound; rank 0 and the tail share the
 * rounding of the others (schemas/softlabel.md).
 * Sampled: *k = N; each position's distinct ids in canonical order with
 * log-prob (float)log(count / N), then pad entries (the position's first id,
 * log-prob -INFINITY) up to N; tail 0. */
int softlabel_decode(softlabel_codec *c, const unsigned char *blob, size_t len, int vocab,
                     int max_pos, int max_k, int32_t *ids, float *logprobs, float *tail,
                     int *n_pos, int *k);

/* Decodes a sampled blob exactly: ids, counts (n_pos, N) row-major (room for
 * max_pos * max_n), each row the distinct ids in canonical order with their
 * counts, then entries of count 0 (id = the row's first id) up to N; a row's
 * distinct ids are its entries of count > 0. Validates like softlabel_decode
 * and also rejects a top-k blob. @return 0, or -1 + message. */
int softlabel_decode_sampled(softlabel_codec *c, const unsigned char *blob, size_t len, int vocab,
                             int max_pos, int max_n, int32_t *ids, uint8_t *counts, int *n_pos,
                             int *n_samples);

/* Reads the header only: n_pos, k (N for a sampled blob) and the vocabulary
 * the blob was encoded with. @return 0, or -1 + message when the header is
 * invalid. */
int softlabel_peek(const unsigned char *blob, size_t len, int *n_pos, int *k, int *vocab);

/* Reads the header only, with the kind and version. @return 0, or -1 + message. */
int softlabel_peek_info(const unsigned char *blob, size_t len, softlabel_info *info);

/* Parses a label kind as distill's --labels and labels.db's meta label_kind
 * spell it: "topk" (*n = 0: k not given), "topk:K" (1 <= K <= SOFTLABEL_MAX_K)
 * or "sample:N" (1 <= N <= SOFTLABEL_MAX_SAMPLES); *n = K or N.
 * @return 0, or -1 + message naming the text. */
int softlabel_kind_parse(const char *text, softlabel_kind *kind, int *n);

/* The largest |decoded - exact| error, in nats, of the log-prob of an entry of
 * rank >= 1 whose exact log-prob is logprob (in -63..0; inputs sorted by rank). */
double softlabel_error_bound(float logprob);

#endif
