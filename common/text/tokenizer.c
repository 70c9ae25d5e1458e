/* tokenizer: the BPE vocabulary itself -- building it from a merge list
 * (validated), token bytes, decoding, and the versioned serialised form with
 * its checksum and identifying hash. Training is in tok_train.c, encoding in
 * tok_encode.c, the pre-split rule in tok_pretokenize.c. */
#include "text/tok_internal.h"

#include "base/bytes.h"
#include "base/err.h"
#include "base/mem.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define TOK_MAGIC "W2STOK"
#define TOK_MAGIC_LEN 6
#define TOK_HEADER_LEN (TOK_MAGIC_LEN + 2 + 4 + 4)
#define TOK_CHECKSUM_LEN 8

static size_t blob_size(int n_merges)
{
    return TOK_HEADER_LEN + 4 * (size_t)n_merges + TOK_CHECKSUM_LEN;
}

/* Writes the serialised form into out (room for blob_size() bytes). */
static void blob_write(const tokenizer *t, unsigned char *out)
{
    memcpy(out, TOK_MAGIC, TOK_MAGIC_LEN);
    bytes_put_u16(out + TOK_MAGIC_LEN, TOK_FORMAT_VERSION);
    bytes_put_u32(out + TOK_MAGIC_LEN + 2, (uint32_t)t->vocab);
    bytes_put_u32(out + TOK_MAGIC_LEN + 6, (uint32_t)t->n_merges);
    unsigned char *p = out + TOK_HEADER_LEN;
    for (int i = 0; i < t->n_merges; i++, p += 4) {
        bytes_put_u16(p, (uint32_t)t->merges[2 * i]);
        bytes_put_u16(p + 2, (uint32_t)t->merges[2 * i + 1]);
    }
    bytes_put_u64(p, XXH3_64bits(out, (size_t)(p - out)));
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
    t->vocab = 257 + n_merges;
    t->n_merges = n_merges;
    size_t slots = 16;
    while (slots < 2 * (size_t)n_merges)
        slots *= 2;
    t->pair_shift = 64 - __builtin_ctzll(slots);
    t->merges = mem_alloc(sizeof(int32_t) * 2 * (size_t)(n_merges ? n_merges : 1), "tokenizer merges");
    t->pair_slots = mem_calloc(slots, sizeof(int32_t), "tokenizer merge table");
    t->tok_off = mem_alloc(sizeof(uint32_t) * ((size_t)t->vocab + 1), "tokenizer token offsets");
    if (!t->merges || !t->pair_slots || !t->tok_off)
        goto fail;

    /* Token lengths first, so the byte table is allocated once. */
    t->tok_off[0] = 0;
    for (int id = 0; id < 256; id++)
        t->tok_off[id + 1] = (uint32_t)id + 1;
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
        if (tok_pair_find(t, l, r) >= 0) {
            err_set("merge %d (id %d) repeats the pair (%d, %d) of id %d", i, id, l, r,
                    tok_pair_find(t, l, r));
            goto fail;
        }
        t->merges[2 * i] = l;
        t->merges[2 * i + 1] = r;
        size_t mask = slots - 1;
        uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
        size_t s = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> t->pair_shift);
        while (t->pair_slots[s])
            s = (s + 1) & mask;
        t->pair_slots[s] = i + 1;
        t->tok_off[id + 1] = t->tok_off[id] + (uint32_t)n;
    }
    t->tok_off[t->vocab] = t->tok_off[t->vocab - 1]; /* EOT: no bytes */

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
    if (tok_serialize(t, &blob, &len) < 0)
        goto fail;
    t->hash = XXH3_64bits(blob, len);
    free(blob);
    return t;
fail:
    tok_free(t);
    return NULL;
}

int tok_vocab_size(const tokenizer *t)
{
    return t->vocab;
}

int32_t tok_eot(const tokenizer *t)
{
    return t->vocab - 1;
}

const unsigned char *tok_token_bytes(const tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->vocab) {
        *len = 0;
        return NULL;
    }
    *len = t->tok_off[id + 1] - t->tok_off[id];
    return t->tok_bytes + t->tok_off[id];
}

int tok_decode(const tokenizer *t, const int32_t *ids, size_t n, unsigned char *out, size_t cap,
               size_t *out_len)
{
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const unsigned char *b = tok_token_bytes(t, ids[i], &len);
        if (!b)
            return err_set("tokenizer: decode: id %d at position %zu is outside the vocabulary of %d",
                           ids[i], i, t->vocab);
        if (len > cap - used)
            return err_set("tokenizer: decode: output needs more than %zu bytes", cap);
        memcpy(out + used, b, len);
        used += len;
    }
    *out_len = used;
    return 0;
}

int tok_merge_pair(const tokenizer *t, int32_t id, int32_t *left, int32_t *right)
{
    if (id < 256 || id >= 256 + t->n_merges)
        return err_set("tokenizer: id %d is not a merge (merges are 256..%d)", id, 255 + t->n_merges);
    *left = t->merges[2 * (id - 256)];
    *right = t->merges[2 * (id - 256) + 1];
    return 0;
}

int tok_serialize(const tokenizer *t, unsigned char **blob, size_t *len)
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

tokenizer *tok_deserialize(const unsigned char *blob, size_t len)
{
    if (len < TOK_HEADER_LEN + TOK_CHECKSUM_LEN) {
        err_set("tokenizer blob: truncated (%zu bytes, at least %d needed)", len,
                TOK_HEADER_LEN + TOK_CHECKSUM_LEN);
        return NULL;
    }
    if (memcmp(blob, TOK_MAGIC, TOK_MAGIC_LEN) != 0) {
        err_set("tokenizer blob: bad magic (not a w2s tokenizer)");
        return NULL;
    }
    uint32_t version = bytes_get_u16(blob + TOK_MAGIC_LEN);
    if (version != TOK_FORMAT_VERSION) {
        err_set("tokenizer blob: unsupported version %u (this build reads version %d)", version,
                TOK_FORMAT_VERSION);
        return NULL;
    }
    uint32_t vocab = bytes_get_u32(blob + TOK_MAGIC_LEN + 2);
    uint32_t n_merges = bytes_get_u32(blob + TOK_MAGIC_LEN + 6);
    if (vocab < 257 || vocab > TOK_MAX_VOCAB) {
        err_set("tokenizer blob: vocab size %u outside 257..%d", vocab, TOK_MAX_VOCAB);
        return NULL;
    }
    if (n_merges != vocab - 257) {
        err_set("tokenizer blob: %u merges for vocab size %u (expected %u)", n_merges, vocab, vocab - 257);
        return NULL;
    }
    size_t want = blob_size((int)n_merges);
    if (len != want) {
        err_set("tokenizer blob: %s (%zu bytes, expected %zu for vocab size %u)",
                len < want ? "truncated" : "trailing bytes", len, want, vocab);
        return NULL;
    }
    if (bytes_get_u64(blob + want - TOK_CHECKSUM_LEN) != XXH3_64bits(blob, want - TOK_CHECKSUM_LEN)) {
        err_set("tokenizer blob: checksum mismatch (corrupt)");
        return NULL;
    }
    int32_t *merges = mem_alloc(sizeof(int32_t) * 2 * (n_merges ? n_merges : 1), "tokenizer merges");
    if (!merges)
        return NULL;
    for (uint32_t i = 0; i < 2 * n_merges; i++)
        merges[i] = (int32_t)bytes_get_u16(blob + TOK_HEADER_LEN + 2 * (size_t)i);
    tokenizer *t = tok_build(merges, (int)n_merges);
    free(merges);
    if (!t)
        err_wrap("tokenizer blob");
    return t;
}

uint64_t tok_hash(const tokenizer *t)
{
    return t->hash;
}

void tok_free(tokenizer *t)
{
    if (!t)
        return;
    tok_cache_free(t->cache);
    free(t->merges);
    free(t->pair_slots);
    free(t->tok_off);
    free(t->tok_bytes);
    free(t);
}
