/* softlabel: the codec for one sequence's soft labels (byte format in
 * schemas/softlabel.md). Two kinds of blob:
 *
 * Top-k (kind 0): for n_pos positions, the teacher's k most probable token
 * ids in rank order and their natural-log probabilities at temperature 1.
 * Log-probs are quantised with a step that grows as the probability falls
 * (the KL cost of a relative error is proportional to the probability); the
 * mass left by ranks 1..k-1 (ranks count from 0) is split between rank 0 and
 * the tail by a stored log-odds code, so the tail keeps its relative accuracy.
 *
 * Sampled (kind 1): for n_pos positions, N tokens drawn with replacement
 * from the teacher's full distribution, stored exactly as the distinct ids
 * with their counts (summing to N <= 255). softlabel_decode presents such a
 * blob like a top-k one of k = N: the distinct ids with log-prob
 * log(count / N), padded to N entries by entries that repeat the position's
 * first id with log-prob -INFINITY (no mass), and tail 0 -- so the bucket KD
 * of kd_loss becomes tau^2 * (sum (c/N) log(c/N) - sum (c/N) log p), the
 * unbiased sampled estimate up to the teacher-entropy constant.
 * softlabel_decode_sampled gives the exact counts.
 *
 * Ids are move-to-front coded in both kinds; all codes go into byte planes
 * compressed as one zstd frame. Each kind has a narrow version (16-bit id
 * codes, vocab <= SOFTLABEL_NARROW_VOCAB) and a wide one (24-bit id codes,
 * vocab <= SOFTLABEL_MAX_VOCAB); encoders write the narrow version whenever
 * the vocabulary allows it, so small vocabularies cost what they always did
 * (softlabel_version_for). Workload: distill encodes one blob per window;
 * train decodes continuously, so decoding reuses the codec's zstd context
 * and scratch and allocates nothing once warmed up.
 *
 * A codec is not thread-safe; use one per thread. */
#ifndef W2S_SOFTLABEL_H
#define W2S_SOFTLABEL_H

#include <stddef.h>
#include <stdint.h>

/* Version bytes (schemas/softlabel.md). Top-k (kind 0): 3 is written for
 * vocabularies up to SOFTLABEL_NARROW_VOCAB, 4 (3 with 24-bit id codes and a
 * 32-bit vocabulary field) above; 1 (3 with finer quantisation steps) is
 * still decoded. Sampled (kind 1): 2 narrow, 5 wide. */
#define SOFTLABEL_CODEC_VERSION 3
#define SOFTLABEL_TOPK_V1_VERSION 1
#define SOFTLABEL_TOPK_WIDE_VERSION 4
#define SOFTLABEL_SAMPLED_VERSION 2
#define SOFTLABEL_SAMPLED_WIDE_VERSION 5
/* Largest number of samples per position of a sampled blob. */
#define SOFTLABEL_MAX_SAMPLES 255

typedef enum { SOFTLABEL_KIND_TOPK = 0, SOFTLABEL_KIND_SAMPLED = 1 } softlabel_kind;

/* What a blob's header says. k: the top-k k, or the samples per position N of
 * a sampled blob (the width softlabel_decode presents). entries: the total
 * number of (id, count) pairs of a sampled blob, n_pos * k for top-k.
 * id_bytes: bytes per id code (2 narrow, 3 wide); header_size: bytes before
 * the zstd frame. */
typedef struct softlabel_info {
    int version;
    softlabel_kind kind;
    int n_pos, k, vocab;
    long entries;
    int id_bytes;
    size_t header_size;
} softlabel_info;
/* Largest k the format allows. */
#define SOFTLABEL_MAX_K 1024
/* Largest vocabulary of the narrow versions (3, 1, 2) and of any version. */
#define SOFTLABEL_NARROW_VOCAB 65536
#define SOFTLABEL_MAX_VOCAB (1 << 24)
/* Largest n_pos the format allows (a window of up to 1 Mi tokens). */
#define SOFTLABEL_MAX_POS (1 << 20)

typedef struct softlabel_codec softlabel_codec;   /* reusable zstd contexts + scratch */

/* The version byte encoders write for blobs of kind over a vocabulary of
 * vocab ids (the labels.db codec_version of such labels): the narrow version
 * when vocab <= SOFTLABEL_NARROW_VOCAB, the wide one above. */
int softlabel_version_for(softlabel_kind kind, int vocab);

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
