/* tok_vocab: what both tokenizer kinds share once built -- the merge pair
 * table, token bytes, decoding, the accessors and freeing. Building and the
 * serialised forms are per kind (tok_byte_bpe.c, tok_gpt2.c), dispatched by
 * tokenizer.c; encoding is in tok_encode.c, pre-splitting in
 * tok_pretokenize.c. */
#include "text/tok_internal.h"

#include "base/bytes.h"
#include "base/err.h"
#include "base/mem.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

int tok_index_merges(tokenizer *t)
{
    size_t slots = 16;
    while (slots < 2 * (size_t)t->n_merges)
        slots *= 2;
    t->pair_shift = 64 - __builtin_ctzll(slots);
    t->pair_slots = mem_calloc(slots, sizeof(int32_t), "tokenizer merge table");
    t->merge_of = mem_alloc(sizeof(int32_t) * (size_t)t->vocab, "tokenizer merge results");
    if (!t->pair_slots || !t->merge_of)
        return -1;
    for (int id = 0; id < t->vocab; id++)
        t->merge_of[id] = -1;
    for (int i = 0; i < t->n_merges; i++) {
        int32_t l = t->merges[2 * i], r = t->merges[2 * i + 1];
        int32_t prior = tok_pair_rank(t, l, r);
        if (prior >= 0)
            return err_set("merge %d (id %d) repeats the pair (%d, %d) of merge %d (id %d)", i,
                           t->merge_result[i], l, r, prior, t->merge_result[prior]);
        uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
        size_t s = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> t->pair_shift);
        while (t->pair_slots[s])
            s = (s + 1) & (slots - 1);
        t->pair_slots[s] = i + 1;
        if (t->merge_of[t->merge_result[i]] < 0)
            t->merge_of[t->merge_result[i]] = i;
    }
    return 0;
}

int tok_blob_need(size_t len, size_t need)
{
    if (len < need)
        return err_set("tokenizer blob: truncated (%zu bytes, at least %zu needed)", len, need);
    return 0;
}

int tok_blob_sealed(const unsigned char *blob, size_t len, uint64_t want, uint32_t vocab)
{
    if (len != want)
        return err_set("tokenizer blob: %s (%zu bytes, expected %llu for vocab size %u)",
                       len < want ? "truncated" : "trailing bytes", len, (unsigned long long)want, vocab);
    if (bytes_get_u64(blob + len - 8) != XXH3_64bits(blob, len - 8))
        return err_set("tokenizer blob: checksum mismatch (corrupt)");
    return 0;
}

tok_kind_t tok_kind(const tokenizer *t)
{
    return t->kind;
}

int tok_vocab_size(const tokenizer *t)
{
    return t->vocab;
}

int32_t tok_eot(const tokenizer *t)
{
    return t->eot;
}

const unsigned char *tok_token_bytes(const tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->vocab) {
        *len = 0;
        return NULL;
    }
    *len = t->special && t->special[id] ? 0 : t->tok_off[id + 1] - t->tok_off[id];
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
    int32_t m = id >= 0 && id < t->vocab ? t->merge_of[id] : -1;
    if (m < 0)
        return err_set("tokenizer: no merge makes id %d", id);
    *left = t->merges[2 * m];
    *right = t->merges[2 * m + 1];
    return 0;
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
    tok_scratch_free(t);
    tok_regex_free(t->regex);
    free(t->merges);
    free(t->merge_result);
    free(t->merge_of);
    free(t->pair_slots);
    free(t->tok_off);
    free(t->tok_bytes);
    free(t->special);
    free(t);
}
