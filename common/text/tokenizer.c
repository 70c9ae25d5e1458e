/* tokenizer: the serialised form's entry points, dispatching on the blob's
 * version (schemas/tokenizer.md): version 1 is w2s's byte BPE
 * (tok_byte_bpe.c), version 2 holds a kind and is written for GPT-2 kind
 * tokenizers only (tok_gpt2.c), so that every byte BPE tokenizer keeps the
 * bytes and the tok_hash it always had. */
#include "text/tok_internal.h"

#include "base/bytes.h"
#include "base/err.h"

#include <string.h>

int tok_serialize(const tokenizer *t, unsigned char **blob, size_t *len)
{
    return t->kind == TOK_KIND_GPT2 ? tok_gpt2_serialize(t, blob, len)
                                    : tok_byte_bpe_serialize(t, blob, len);
}

tokenizer *tok_deserialize(const unsigned char *blob, size_t len)
{
    if (len < 8) {
        err_set("tokenizer blob: truncated (%zu bytes, at least 8 needed)", len);
        return NULL;
    }
    if (memcmp(blob, "W2STOK", 6) != 0) {
        err_set("tokenizer blob: bad magic (not a w2s tokenizer)");
        return NULL;
    }
    uint32_t version = bytes_get_u16(blob + 6);
    if (version == TOK_FORMAT_BYTE_BPE)
        return tok_byte_bpe_deserialize(blob, len);
    if (version == TOK_FORMAT_GPT2)
        return tok_gpt2_deserialize(blob, len);
    err_set("tokenizer blob: unsupported version %u (this build reads versions %d and %d)", version,
            TOK_FORMAT_BYTE_BPE, TOK_FORMAT_GPT2);
    return NULL;
}
