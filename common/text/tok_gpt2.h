/* tok_gpt2: GPT-2 kind tokenizers (tokenizer.h, TOK_KIND_GPT2) from and to
 * the Hugging Face files of a pretrained model, so that its checkpoints can
 * be imported and w2s models exported with the tokenizer they were trained
 * with.
 *
 * vocab.json (OpenAI's encoder.json is the same file) is one JSON object
 * mapping each token to its id, ids 0..V-1 each exactly once. A token is
 * spelled in GPT-2's byte-to-unicode alphabet: the bytes '!'..'~',
 * 0xA1..0xAC and 0xAE..0xFF stand for the code point of the same number, the
 * 68 others, in byte order, for U+0100..U+0143 (so ' ' is 'Ġ' U+0120 and
 * '\n' is 'Ċ' U+010A). The key <|endoftext|> is the one special token and
 * the end-of-text id (50256 in GPT-2).
 *
 * merges.txt (OpenAI's vocab.bpe) starts with a "#version" line; then line r
 * (from 0) is merge r, two tokens in the same alphabet separated by one space,
 * whose result is the token spelling both together. Lines end with "\n"
 * ("\r\n" is accepted); no empty lines.
 *
 * The resulting tokenizer encodes exactly as GPT-2 does (tokenizer.h, "GPT-2
 * pre-split"), and its blob is version 2 of schemas/tokenizer.md. */
#ifndef W2S_TOK_GPT2_H
#define W2S_TOK_GPT2_H

#include "text/tokenizer.h"

/* Reads vocab.json and merges.txt. @return a new tokenizer (tok_free), or
 * NULL + message naming the file and the problem: unreadable, bad JSON, an
 * id that is not an integer below 2^24 or is used twice, an id of 0..V-1
 * with no token, a character outside the byte alphabet, no <|endoftext|>, a merges line that is not two tokens, a
 * merge whose parts or result are not in the vocabulary, a merge repeated,
 * a byte with no token, two tokens with the same bytes. */
tokenizer *tok_gpt2_load(const char *vocab_json_path, const char *merges_txt_path);

/* Reads a Hugging Face tokenizer.json: model.vocab and model.merges ("a b"
 * strings or ["a", "b"] pairs) as in the two files above, and added_tokens,
 * which must all be special (an id outside model.vocab extends the
 * vocabulary; one inside must be the same text); <|endoftext|> must be
 * among them. The rest must be GPT-2's: model.type "BPE" with no dropout,
 * prefix, suffix, byte fallback or ignore_merges; pre_tokenizer ByteLevel
 * without add_prefix_space; no normalizer. Anything else (Llama 3's or
 * Qwen's split regex, say) is refused by name, since w2s would cut the text
 * differently. @return a new tokenizer, or NULL + message naming path and
 * the field. */
tokenizer *tok_gpt2_load_tokenizer_json(const char *path);

/* Writes t as vocab.json (compact, ids in order, UTF-8) and merges.txt
 * ("#version: 0.2" header), each replaced atomically; tok_gpt2_load reads
 * them back to a tokenizer with the same tok_hash. @return 0, or -1 +
 * message: for a byte BPE tokenizer (its pre-split rule is w2s's own, not
 * GPT-2's regex, so no Hugging Face GPT-2 tokenizer encodes like it), for
 * special tokens other than one <|endoftext|> EOT (vocab.json cannot mark
 * them), or on a write error naming the file. */
int tok_gpt2_save(const tokenizer *t, const char *vocab_json_path, const char *merges_txt_path);

#endif
