/* tok_byte_bpe: w2s's own byte BPE vocabulary -- building it from a merge
 * list (validated) and its serialised form, version 1 of
 * schemas/tokenizer.md, which every byte BPE tokenizer keeps (its tok_hash is
 * stored in checkpoints and labels.db). Training is in tok_train.c. */
#include "text/tok_internal.h"

#include "base/bytes.h"
#include "base/err.h"
#include "base/mem.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define V1_HEADER_LEN (6 + 2 + 4 + 4)
#define V1_CHECKSUM_LEN 8

static size_t blob_size(int n_merges)
{
    return V1_HEADER_LEN + 4 * (size_t)n_merges + V1_CHECKSUM_LEN;
}

/* Writes the serialised form into out (room for blob_size() bytes). */
static void blob_write(const tokenizer *t, unsigned char *out)
{
    memcpy(out, "W2STOK", 6);
    bytes_put_u16(out + 6, TOK_FORMAT_BYTE_BPE);
    bytes_put_u32(out + 8, (uint32_t)t->vocab);
    bytes_put_u32(out + 12, (uint32_t)t->n_merges);
    unsigned char *p = out + V1_HEADER_LEN;
    for (int i = 0; i < t->n_merges; i++, p += 4) {
        bytes_put_u16(p, (uint32_t)t->merges[2 * i]);
        bytes_put_u16(p + 2, (uint32_t)t->merges[2 * i + 1]);
    }
    bytes_put_u64(p, XXH3_64bits(out, (size_t)(p - out)));
}

int tok_byte_bpe_serialize(const tokenizer *t, unsigned char **blob, size_t *len)
{
    size_t n = blob_size(t->n_merges);
    unsigned char *out = mem_alloc(n, "tokenizer blob");
    if (!out)
        return -1;
    blob_write(t, out);
    *blob = out;
    *len = n;
    return 0;
}

tokenizer *tok_build(const int32_t *merges, int n_merges)
{
    if (n_merges < 0 || n_merges > TOK_MAX_VOCAB - 257) {
        err_set("tokenizer: %d merges (must be 0..%d)", n_merges, TOK_MAX_VOCAB - 257);
        return NULL;
    }
    tokenizer *t = mem_calloc(1, sizeof *t, "tokenizer");
    if (!t)
        return NULL;
    t->kind = TOK_KIND_BYTE_BPE;
    t->vocab = 257 + n_merges;
    t->n_merges = n_merges;
    t->eot = t->vocab - 1;
    t->merges = mem_alloc(sizeof(int32_t) * 2 * (size_t)(n_merges ? n_merges : 1), "tokenizer merges");
    t->merge_result = mem_alloc(sizeof(int32_t) * (size_t)(n_merges ? n_merges : 1), "tokenizer merges");
    t->tok_off = mem_alloc(sizeof(uint32_t) * ((size_t)t->vocab + 1), "tokenizer token offsets");
    if (!t->merges || !t->merge_result || !t->tok_off)
        goto fail;

    /* Token lengths first, so the byte table is allocated once. */
    t->tok_off[0] = 0;
    for (int id = 0; id < 256; id++) {
        t->tok_off[id + 1] = (uint32_t)id + 1;
        t->byte_id[id] = id;
    }
    for (int i = 0; i < n_merges; i++) {
        int32_t l = merges[2 * i], r = merges[2 * i + 1], id = 256 + i;
        if (l < 0 || l >= id || r < 0 || r >= id) {
            err_set("merge %d (id %d) refers to id %d, not an earlier id", i, id,
                    (l < 0 || l >= id) ? l : r);
            goto fail;
        }
        size_t n = (size_t)(t->tok_off[l + 1] - t->tok_off[l]) + (t->tok_off[r + 1] - t->tok_off[r]);
        if (n > TOK_PIECE_MAX) {
            err_set("merge %d (id %d) makes a token of %zu bytes, longer than the %d-byte piece limit",
                    i, id, n, TOK_PIECE_MAX);
            goto fail;
        }
        t->merges[2 * i] = l;
        t->merges[2 * i + 1] = r;
        t->merge_result[i] = id;
        t->tok_off[id + 1] = t->tok_off[id] + (uint32_t)n;
    }
    t->tok_off[t->vocab] = t->tok_off[t->vocab - 1]; /* EOT: no bytes */
    if (tok_index_merges(t) < 0)
        goto fail;

    t->tok_bytes = mem_alloc(t->tok_off[t->vocab], "tokenizer token bytes");
    if (!t->tok_bytes)
        goto fail;
    for (int id = 0; id < 256; id++)
        t->tok_bytes[id] = (unsigned char)id;
    for (int i = 0; i < n_merges; i++) {
        int32_t l = t->merges[2 * i], r = t->merges[2 * i + 1];
        uint32_t nl = t->tok_off[l + 1] - t->tok_off[l];
        unsigned char *dst = t->tok_bytes + t->tok_off[256 + i];
        memcpy(dst, t->tok_bytes + t->tok_off[l], nl);
        memcpy(dst + nl, t->tok_bytes + t->tok_off[r], t->tok_off[r + 1] - t->tok_off[r]);
    }

    unsigned char *blob;
    size_t len;
    if (tok_byte_bpe_serialize(t, &blob, &len) < 0)
        goto fail;
    t->hash = XXH3_64bits(blob, len);
    free(blob);
    return t;
fail:
    tok_free(t);
    return NULL;
}

tokenizer *tok_byte_bpe_deserialize(const unsigned char *blob, size_t len)
{
    if (tok_blob_need(len, V1_HEADER_LEN + V1_CHECKSUM_LEN) < 0)
        return NULL;
    uint32_t vocab = bytes_get_u32(blob + 8);
    uint32_t n_merges = bytes_get_u32(blob + 12);
    if (vocab < 257 || vocab > TOK_MAX_VOCAB) {
        err_set("tokenizer blob: vocab size %u outside 257..%d", vocab, TOK_MAX_VOCAB);
        return NULL;
    }
    if (n_merges != vocab - 257) {
        err_set("tokenizer blob: %u merges for vocab size %u (expected %u)", n_merges, vocab, vocab - 257);
        return NULL;
    }
    if (tok_blob_sealed(blob, len, blob_size((int)n_merges), vocab) < 0)
        return NULL;
    int32_t *merges = mem_alloc(sizeof(int32_t) * 2 * (n_merges ? n_merges : 1), "tokenizer merges");
    if (!merges)
        return NULL;
    for (uint32_t i = 0; i < 2 * n_merges; i++)
        merges[i] = (int32_t)bytes_get_u16(blob + V1_HEADER_LEN + 2 * (size_t)i);
    tokenizer *t = tok_build(merges, (int)n_merges);
    free(merges);
    if (!t)
        err_wrap("tokenizer blob");
    return t;
}
