/* tokenizer: byte-level BPE, trained by w2s on the text it is given.
 *
 * Ids 0..255 are the single bytes, then one id per learned merge in the order
 * the merges were learned (id 256 + i = merge i = left id + right id), and the
 * last id is the special EOT, which has no bytes and is never produced by
 * tok_encode. Any byte sequence (invalid UTF-8, NUL bytes) round-trips
 * exactly: concatenating tok_token_bytes() of tok_encode(x) gives x.
 *
 * Pre-split rule (merges never cross the pieces it produces). Bytes fall in
 * four classes: LETTER = A-Z a-z and every byte >= 0x80 (so UTF-8 letters
 * stay together), DIGIT = 0-9, SPACE = ' ' \t \n \v \f \r, OTHER = all
 * remaining bytes (punctuation, control bytes, NUL, DEL). At each position
 * the next piece is:
 *   1. a ' ' followed by a non-SPACE byte of class C: the space plus the
 *      maximal run of class C after it (" hello", " 42", " ...");
 *   2. otherwise a non-SPACE byte of class C: the maximal run of class C;
 *   3. otherwise (a SPACE byte) the maximal run of SPACE bytes, except that
 *      when the run is longer than one byte, is followed by a non-SPACE byte
 *      and ends with ' ', that last ' ' is left to start the next piece
 *      ("a   b" -> "a" "  " " b"; "a\n\nb" -> "a" "\n\n" "b").
 *   4. A piece longer than TOK_PIECE_MAX bytes is cut after TOK_PIECE_MAX
 *      bytes and the rule restarts there (only pathological runs, e.g. 10 MB
 *      of letters, are affected; this bounds the cost of merging one piece).
 * Pieces are encoded independently by standard BPE: repeatedly apply the
 * earliest-learned merge among adjacent pairs (leftmost first on ties).
 *
 * Training counts the distinct pieces of all texts, then learns merges on
 * (piece, count) pairs with pair counts kept incrementally (an index from each
 * pair to the pieces containing it and a lazy max-heap): the merge chosen is
 * the pair with the highest count, ties broken by the smallest (left, right).
 * Training is deterministic.
 *
 * Serialised form (little-endian): "W2STOK", u16 version (1), u32 vocab size,
 * u32 merge count (= vocab size - 257), merges as (u16 left, u16 right), u64
 * XXH3-64 of all preceding bytes. tok_hash() identifies a tokenizer by the
 * XXH3-64 of this whole blob. */
#ifndef W2S_TOKENIZER_H
#define W2S_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#define TOK_DEFAULT_VOCAB 4096
#define TOK_MIN_VOCAB 258      /* 256 bytes + at least one merge + EOT */
#define TOK_MAX_VOCAB 65536    /* ids fit in uint16 */
#define TOK_PIECE_MAX 1024     /* longest pre-split piece, see rule 4 */
#define TOK_FORMAT_VERSION 1

typedef struct tokenizer tokenizer;
typedef struct byte_span { const unsigned char *data; size_t len; } byte_span;

/* Learns byte-level BPE merges from texts until vocab_size tokens:
 * ids 0..255 are the bytes, then merges, and the last id is the special EOT.
 * vocab_size must be in TOK_MIN_VOCAB..TOK_MAX_VOCAB. When the texts run out
 * of pairs to merge first, training stops early and the vocabulary is smaller
 * (always check tok_vocab_size()). @return a new tokenizer (tok_free), or
 * NULL + message on a bad vocab_size or out of memory. */
tokenizer *tok_train(const byte_span *texts, size_t n_texts, int vocab_size);

/* Number of ids including the 256 bytes and EOT. */
int tok_vocab_size(const tokenizer *t);

/* The EOT id (tok_vocab_size() - 1). */
int32_t tok_eot(const tokenizer *t);

/* Encodes len bytes into out (room for len ids); returns the count (<= len).
 * Never emits EOT. Not thread-safe (may use an internal cache). Cannot fail:
 * if the cache cannot be allocated, encoding goes on without it. */
size_t tok_encode(tokenizer *t, const unsigned char *text, size_t len, int32_t *out);

/* The bytes of token id ("" for EOT); *len receives their count. @return a
 * pointer owned by t (valid until tok_free), or NULL for an id outside
 * 0..vocab-1 (then *len = 0). */
const unsigned char *tok_token_bytes(const tokenizer *t, int32_t id, size_t *len);

/* Serialises t into a malloc'ed *blob of *len bytes (caller frees).
 * @return 0, or -1 + message when out of memory. */
int tok_serialize(const tokenizer *t, unsigned char **blob, size_t *len);

/* Rebuilds a tokenizer from a blob written by tok_serialize. Validates
 * everything (magic, version, sizes, checksum, merge ids referring to earlier
 * ids, no repeated merge, token lengths) and never reads outside blob[0..len).
 * @return a new tokenizer, or NULL + message saying what is wrong. */
tokenizer *tok_deserialize(const unsigned char *blob, size_t len);

/* XXH3-64 of the serialised form: equal hashes = same tokenizer. */
uint64_t tok_hash(const tokenizer *t);

/* Frees t (NULL is fine). */
void tok_free(tokenizer *t);

/* --- additions beyond the brief API --- */

/* Writes the bytes of ids[0..n) to out (room for cap bytes) and sets *out_len.
 * @return 0, or -1 + message on an id outside the vocabulary or when the
 * bytes do not fit in cap (nothing guaranteed about out then). */
int tok_decode(const tokenizer *t, const int32_t *ids, size_t n, unsigned char *out, size_t cap,
               size_t *out_len);

/* The two ids merged into id (256 <= id < EOT). @return 0, or -1 + message
 * when id is not a merge. */
int tok_merge_pair(const tokenizer *t, int32_t id, int32_t *left, int32_t *right);

/* Length of the first pre-split piece of text[0..len) by the rule above
 * (1..TOK_PIECE_MAX; 0 only when len is 0). */
size_t tok_pretokenize(const unsigned char *text, size_t len);

#endif
