/* tok_gpt2: GPT-2's tokenizer files (vocab.json + merges.txt) to and from a
 * w2s tokenizer.
 *
 * TEMPORARY (branch h5): this header only declares the two functions that
 * h4's tokenizer branch provides, with the signatures agreed for it; h4's
 * own common/text/tok_gpt2.h replaces this file when both are merged. */
#ifndef W2S_TOK_GPT2_H
#define W2S_TOK_GPT2_H

#include "text/tokenizer.h"

/* Loads GPT-2's byte-level BPE from its vocab.json and merges.txt.
 * @return a new tokenizer (tok_free), or NULL with a message naming the file
 * and the problem. */
tokenizer *tok_gpt2_load(const char *vocab_json_path, const char *merges_txt_path);

/* Writes t as GPT-2 vocab.json and merges.txt. @return 0, or -1 with a
 * message when t's kind cannot be expressed as GPT-2 files (e.g. w2s's own
 * byte-level BPE) or on I/O failure. */
int tok_gpt2_save(const tokenizer *t, const char *vocab_json_path, const char *merges_txt_path);

#endif
