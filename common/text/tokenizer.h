/* tokenizer: byte-level BPE of two kinds, behind one API.
 *
 * TOK_KIND_BYTE_BPE is w2s's own, trained by w2s on the text it is given.
 * Ids 0..255 are the single bytes, then one id per learned merge in the order
 * the merges were learned (id 256 + i = merge i = left id + right id), and the
 * last id is the special EOT. Its pre-split rule is below.
 *
 * TOK_KIND_GPT2 is a pretrained vocabulary in GPT-2's form, read from Hugging
 * Face files by tok_gpt2_load() (text/tok_gpt2.h): any ids for the 256 bytes
 * and the other tokens, ranked merges (left id, right id) -> result id whose
 * bytes are the left's then the right's, and special tokens (GPT-2 has one,
 * <|endoftext|> = 50256, which is its EOT). Up to TOK_GPT2_MAX_VOCAB ids.
 * Pre-split by GPT-2's regex, see "GPT-2 pre-split" below.
 *
 * For both kinds: special tokens (EOT) have no bytes, are never produced by
 * tok_encode, and text that spells one ("<|endoftext|>") is encoded as
 * ordinary text. Any byte sequence (invalid UTF-8, NUL bytes) round-trips
 * exactly: concatenating tok_token_bytes() of tok_encode(x) gives x. Pieces
 * are encoded independently by standard BPE: repeatedly apply the
 * lowest-ranked merge among adjacent pairs (leftmost first on ties); a byte
 * BPE merge's rank is its index, a GPT-2 merge's its line in merges.txt.
 *
 * Byte BPE pre-split rule (merges never cross the pieces it produces). Bytes
 * fall in four classes: LETTER = A-Z a-z and every byte >= 0x80 (so UTF-8
 * letters stay together), DIGIT = 0-9, SPACE = ' ' \t \n \v \f \r, OTHER =
 * all remaining bytes (punctuation, control bytes, NUL, DEL). At each
 * position the next piece is:
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
 *
 * GPT-2 pre-split: at each position, the match of GPT-2's pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * anchored there (PCRE2 with UTF and Unicode properties: \s is Unicode
 * White_Space, U+0085 included and U+FEFF not, as in the Python regex module
 * GPT-2 was made with). A byte that does not start a valid UTF-8 character
 * there is a piece of its own, and no match reads across it: (?!\S) sees it
 * as the end of the text. So text with invalid UTF-8 encodes as its valid
 * stretches would alone, with one byte token per invalid byte in between.
 * Pieces have no length limit (a 10 MB word is one piece, as in GPT-2).
 *
 * Byte BPE training counts the distinct pieces of all texts, then learns
 * merges on (piece, count) pairs with pair counts kept incrementally (an
 * index from each pair to the pieces containing it and a lazy max-heap): the
 * merge chosen is the pair with the highest count, ties broken by the
 * smallest (left, right). Training is deterministic.
 *
 * Serialised form: schemas/tokenizer.md, byte-exact. Byte BPE tokenizers are
 * written as version 1 ("W2STOK", u16 1, u32 vocab size, u32 merge count,
 * merges as (u16 left, u16 right), u64 XXH3-64 of all preceding bytes), GPT-2
 * ones as version 2 (the kind, every id's bytes, the merges as u32 triples,
 * the special ids, the EOT id, the checksum). tok_hash() identifies a
 * tokenizer by the XXH3-64 of this whole blob. */
#ifndef W2S_TOKENIZER_H
#define W2S_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#define TOK_DEFAULT_VOCAB 4096
#define TOK_MIN_VOCAB 258      /* 256 bytes + at least one merge + EOT */
#define TOK_MAX_VOCAB 65536    /* byte BPE: ids fit in uint16 */
#define TOK_GPT2_MAX_VOCAB (1 << 24) /* GPT-2 kind: ids in u32, far above 152K vocabularies */
#define TOK_PIECE_MAX 1024     /* byte BPE: longest pre-split piece, see rule 4 */
#define TOK_FORMAT_BYTE_BPE 1  /* blob version written for each kind */
#define TOK_FORMAT_GPT2 2

typedef enum tok_kind_t { TOK_KIND_BYTE_BPE = 1, TOK_KIND_GPT2 = 2 } tok_kind_t;

typedef struct tokenizer tokenizer;
typedef struct byte_span { const unsigned char *data; size_t len; } byte_span;

/* Learns byte BPE merges from texts until vocab_size tokens:
 * ids 0..255 are the bytes, then merges, and the last id is the special EOT.
 * vocab_size must be in TOK_MIN_VOCAB..TOK_MAX_VOCAB. When the texts run out
 * of pairs to merge first, training stops early and the vocabulary is smaller
 * (always check tok_vocab_size()). @return a new tokenizer (tok_free), or
 * NULL + message on a bad vocab_size or out of memory. */
tokenizer *tok_train(const byte_span *texts, size_t n_texts, int vocab_size);

/* TOK_KIND_BYTE_BPE or TOK_KIND_GPT2. */
tok_kind_t tok_kind(const tokenizer *t);

/* Number of ids including the 256 bytes and the special tokens. */
int tok_vocab_size(const tokenizer *t);

/* The EOT id: tok_vocab_size() - 1 for byte BPE, the id of <|endoftext|>
 * for GPT-2 (50256). */
int32_t tok_eot(const tokenizer *t);

/* Encodes len bytes into out (room for len ids); returns the count (<= len).
 * Never emits a special token. Not thread-safe (an internal cache, scratch
 * and the regex match data). Cannot fail: if the cache or the scratch of a
 * long piece cannot be allocated, encoding goes on without them (slower,
 * same ids), and should the regex engine fail on a resource limit, the byte
 * at that position becomes a piece of its own (never seen in tests). */
size_t tok_encode(tokenizer *t, const unsigned char *text, size_t len, int32_t *out);

/* The bytes of token id ("" for EOT and the other special tokens); *len
 * receives their count. @return a pointer owned by t (valid until tok_free),
 * or NULL for an id outside 0..vocab-1 (then *len = 0). */
const unsigned char *tok_token_bytes(const tokenizer *t, int32_t id, size_t *len);

/* Serialises t into a malloc'ed *blob of *len bytes (caller frees):
 * version 1 for byte BPE, version 2 for GPT-2 (schemas/tokenizer.md).
 * @return 0, or -1 + message when out of memory. */
int tok_serialize(const tokenizer *t, unsigned char **blob, size_t *len);

/* Rebuilds a tokenizer from a version 1 or 2 blob written by tok_serialize.
 * Validates everything (magic, version, kind, sizes, checksum; version 1:
 * merge ids referring to earlier ids, no repeated merge, token lengths;
 * version 2: ids in range, each merge's result spelling its two parts, no
 * repeated merge pair, every byte present once, no two tokens with the same
 * bytes, special tokens outside every merge) and never reads outside
 * blob[0..len). An accepted blob is canonical: tok_serialize gives it back.
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

/* The two ids merged into id (byte BPE: 256 <= id < EOT; GPT-2: the
 * lowest-ranked merge whose result is id). @return 0, or -1 + message when no
 * merge produces id. */
int tok_merge_pair(const tokenizer *t, int32_t id, int32_t *left, int32_t *right);

/* Length of the first pre-split piece of text[0..len) by the byte BPE rule
 * above (1..TOK_PIECE_MAX; 0 only when len is 0). */
size_t tok_pretokenize(const unsigned char *text, size_t len);

/* Length of the first pre-split piece of text[0..len) by t's rule: byte BPE
 * as tok_pretokenize, GPT-2 by the regex (1 for a byte that does not start a
 * valid UTF-8 character). 0 only when len is 0. Not thread-safe. */
size_t tok_first_piece(tokenizer *t, const unsigned char *text, size_t len);

#endif
