/* tok_gpt2: the GPT-2 kind vocabulary -- validated construction from its
 * parts (every id's bytes, ranked merges, special tokens) and its serialised
 * form, version 2 of schemas/tokenizer.md. The Hugging Face files are read
 * and written by tok_gpt2_files.c, which indexes token bytes with the
 * tok_index defined here. */
#include "text/tok_internal.h"

#include "base/bytes.h"
#include "base/err.h"
#include "base/mem.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define V2_HEADER_LEN (6 + 2 + 2 + 5 * 4)
#define V2_CHECKSUM_LEN 8

struct tok_index {
    const uint32_t *off;       /* the indexed table, owned by the caller */
    const unsigned char *bytes;
    size_t mask;
    int32_t *slots;            /* id + 1, 0 = empty */
};

static size_t index_slot(const tok_index *x, const unsigned char *p, size_t len, int32_t *found)
{
    size_t i = (size_t)XXH3_64bits(p, len) & x->mask;
    for (;; i = (i + 1) & x->mask) {
        int32_t s = x->slots[i];
        if (s == 0 || (x->off[s] - x->off[s - 1] == len && memcmp(x->bytes + x->off[s - 1], p, len) == 0)) {
            *found = s - 1;
            return i;
        }
    }
}

tok_index *tok_index_create(const uint32_t *tok_off, const unsigned char *tok_bytes, int n)
{
    tok_index *x = mem_calloc(1, sizeof *x, "tokenizer byte index");
    if (!x)
        return NULL;
    size_t slots = 16;
    while (slots < 2 * (size_t)n)
        slots *= 2;
    x->off = tok_off;
    x->bytes = tok_bytes;
    x->mask = slots - 1;
    x->slots = mem_calloc(slots, sizeof *x->slots, "tokenizer byte index");
    if (!x->slots) {
        tok_index_free(x);
        return NULL;
    }
    for (int id = 0; id < n; id++) {
        int32_t prior;
        size_t i = index_slot(x, tok_bytes + tok_off[id], tok_off[id + 1] - tok_off[id], &prior);
        if (prior >= 0) {
            err_set("tokens %d and %d have the same bytes", prior, id);
            tok_index_free(x);
            return NULL;
        }
        x->slots[i] = id + 1;
    }
    return x;
}

int32_t tok_index_find(const tok_index *x, const unsigned char *p, size_t len)
{
    int32_t id;
    index_slot(x, p, len, &id);
    return id;
}

void tok_index_free(tok_index *x)
{
    if (!x)
        return;
    free(x->slots);
    free(x);
}

static size_t token_len(const tokenizer *t, int32_t id)
{
    return t->tok_off[id + 1] - t->tok_off[id];
}

static uint64_t blob_size(const tokenizer *t)
{
    return V2_HEADER_LEN + 4 * (uint64_t)t->vocab + t->tok_off[t->vocab] + 12 * (uint64_t)t->n_merges +
           4 * (uint64_t)t->n_specials + V2_CHECKSUM_LEN;
}

int tok_gpt2_serialize(const tokenizer *t, unsigned char **blob, size_t *len)
{
    size_t n = (size_t)blob_size(t);
    unsigned char *out = mem_alloc(n, "tokenizer blob");
    if (!out)
        return -1;
    memcpy(out, "W2STOK", 6);
    bytes_put_u16(out + 6, TOK_FORMAT_GPT2);
    bytes_put_u16(out + 8, TOK_KIND_GPT2);
    bytes_put_u32(out + 10, (uint32_t)t->vocab);
    bytes_put_u32(out + 14, (uint32_t)t->n_merges);
    bytes_put_u32(out + 18, (uint32_t)t->n_specials);
    bytes_put_u32(out + 22, (uint32_t)t->eot);
    bytes_put_u32(out + 26, t->tok_off[t->vocab]);
    unsigned char *p = out + V2_HEADER_LEN;
    for (int id = 0; id < t->vocab; id++, p += 4)
        bytes_put_u32(p, (uint32_t)token_len(t, id));
    memcpy(p, t->tok_bytes, t->tok_off[t->vocab]);
    p += t->tok_off[t->vocab];
    for (int i = 0; i < t->n_merges; i++, p += 12) {
        bytes_put_u32(p, (uint32_t)t->merges[2 * i]);
        bytes_put_u32(p + 4, (uint32_t)t->merges[2 * i + 1]);
        bytes_put_u32(p + 8, (uint32_t)t->merge_result[i]);
    }
    for (int id = 0; id < t->vocab; id++)
        if (t->special[id]) {
            bytes_put_u32(p, (uint32_t)id);
            p += 4;
        }
    bytes_put_u64(p, XXH3_64bits(out, (size_t)(p - out)));
    *blob = out;
    *len = n;
    return 0;
}

/* The checks of tok_gpt2_build on the token table and the special tokens;
 * fills t->special and t->byte_id. */
static int check_tokens(tokenizer *t, const int32_t *specials, int32_t eot)
{
    if (t->vocab < 257 || t->vocab > TOK_GPT2_MAX_VOCAB)
        return err_set("vocab size %d outside 257..%d", t->vocab, TOK_GPT2_MAX_VOCAB);
    for (int id = 0; id < t->vocab; id++)
        if (token_len(t, id) == 0)
            return err_set("token %d has no bytes", id);
    if (t->n_specials < 1 || t->n_specials > t->vocab)
        return err_set("%d special tokens (must be 1..%d)", t->n_specials, t->vocab);
    t->special = mem_calloc((size_t)t->vocab, 1, "tokenizer special flags");
    if (!t->special)
        return -1;
    for (int i = 0; i < t->n_specials; i++) {
        if (specials[i] < 0 || specials[i] >= t->vocab)
            return err_set("special token id %d outside the vocabulary of %d", specials[i], t->vocab);
        if (i > 0 && specials[i] <= specials[i - 1])
            return err_set("special token ids not in ascending order (%d after %d)", specials[i],
                           specials[i - 1]);
        t->special[specials[i]] = 1;
    }
    if (eot < 0 || eot >= t->vocab || !t->special[eot])
        return err_set("end-of-text id %d is not a special token", eot);
    t->eot = eot;
    tok_index *x = tok_index_create(t->tok_off, t->tok_bytes, t->vocab);
    if (!x)
        return -1;
    int rc = 0;
    for (int b = 0; b < 256 && rc == 0; b++) {
        unsigned char c = (unsigned char)b;
        t->byte_id[b] = tok_index_find(x, &c, 1);
        if (t->byte_id[b] < 0 || t->special[t->byte_id[b]])
            rc = err_set("byte 0x%02x has no token", b);
    }
    tok_index_free(x);
    return rc;
}

/* The checks of tok_gpt2_build on the merges (before the pair table). */
static int check_merges(const tokenizer *t)
{
    for (int i = 0; i < t->n_merges; i++) {
        int32_t ids[3] = {t->merges[2 * i], t->merges[2 * i + 1], t->merge_result[i]};
        for (int k = 0; k < 3; k++) {
            if (ids[k] < 0 || ids[k] >= t->vocab)
                return err_set("merge %d refers to id %d, outside the vocabulary of %d", i, ids[k], t->vocab);
            if (t->special[ids[k]])
                return err_set("merge %d refers to the special token %d", i, ids[k]);
        }
        size_t nl = token_len(t, ids[0]), nr = token_len(t, ids[1]);
        const unsigned char *res = t->tok_bytes + t->tok_off[ids[2]];
        if (token_len(t, ids[2]) != nl + nr || memcmp(res, t->tok_bytes + t->tok_off[ids[0]], nl) != 0 ||
            memcmp(res + nl, t->tok_bytes + t->tok_off[ids[1]], nr) != 0)
            return err_set("merge %d: token %d is not token %d followed by token %d", i, ids[2], ids[0],
                           ids[1]);
    }
    return 0;
}

static void parts_free(tok_gpt2_parts *parts)
{
    free(parts->tok_off);
    free(parts->tok_bytes);
    free(parts->merges);
    free(parts->specials);
    memset(parts, 0, sizeof *parts);
}

tokenizer *tok_gpt2_build(tok_gpt2_parts *parts)
{
    tokenizer *t = mem_calloc(1, sizeof *t, "tokenizer");
    int ok = t != NULL;
    if (ok) {
        t->kind = TOK_KIND_GPT2;
        t->vocab = parts->vocab;
        t->tok_off = parts->tok_off;
        t->tok_bytes = parts->tok_bytes;
        t->n_specials = parts->n_specials;
        parts->tok_off = NULL;
        parts->tok_bytes = NULL;
        ok = check_tokens(t, parts->specials, parts->eot) == 0;
    }
    if (ok && (parts->n_merges < 0 || parts->n_merges > TOK_GPT2_MAX_VOCAB)) {
        err_set("%d merges (must be 0..%d)", parts->n_merges, TOK_GPT2_MAX_VOCAB);
        ok = 0;
    }
    if (ok) {
        size_t m = (size_t)parts->n_merges;
        t->n_merges = parts->n_merges;
        t->merges = mem_alloc(sizeof(int32_t) * 2 * (m ? m : 1), "tokenizer merges");
        t->merge_result = mem_alloc(sizeof(int32_t) * (m ? m : 1), "tokenizer merges");
        ok = t->merges && t->merge_result;
        for (size_t i = 0; ok && i < m; i++) {
            t->merges[2 * i] = parts->merges[3 * i];
            t->merges[2 * i + 1] = parts->merges[3 * i + 1];
            t->merge_result[i] = parts->merges[3 * i + 2];
        }
    }
    ok = ok && check_merges(t) == 0 && tok_index_merges(t) == 0 && (t->regex = tok_regex_create()) != NULL;
    unsigned char *blob = NULL;
    size_t len;
    ok = ok && tok_gpt2_serialize(t, &blob, &len) == 0;
    if (ok)
        t->hash = XXH3_64bits(blob, len);
    free(blob);
    parts_free(parts);
    if (!ok) {
        tok_free(t);
        return NULL;
    }
    return t;
}

tokenizer *tok_gpt2_deserialize(const unsigned char *blob, size_t len)
{
    if (tok_blob_need(len, V2_HEADER_LEN + V2_CHECKSUM_LEN) < 0)
        return NULL;
    uint32_t kind = bytes_get_u16(blob + 8), vocab = bytes_get_u32(blob + 10);
    uint32_t n_merges = bytes_get_u32(blob + 14), n_specials = bytes_get_u32(blob + 18);
    uint32_t eot = bytes_get_u32(blob + 22), n_bytes = bytes_get_u32(blob + 26);
    if (kind != TOK_KIND_GPT2) {
        err_set("tokenizer blob: kind %u in a version 2 blob (only GPT-2, kind %d, is written so)", kind,
                TOK_KIND_GPT2);
        return NULL;
    }
    if (vocab < 257 || vocab > TOK_GPT2_MAX_VOCAB || n_merges > TOK_GPT2_MAX_VOCAB || n_specials < 1 ||
        n_specials > vocab) {
        err_set("tokenizer blob: vocab size %u, %u merges, %u special tokens (must be 257..%d, 0..%d, "
                "1..vocab size)", vocab, n_merges, n_specials, TOK_GPT2_MAX_VOCAB, TOK_GPT2_MAX_VOCAB);
        return NULL;
    }
    uint64_t want = V2_HEADER_LEN + 4 * (uint64_t)vocab + n_bytes + 12 * (uint64_t)n_merges +
                    4 * (uint64_t)n_specials + V2_CHECKSUM_LEN;
    if (tok_blob_sealed(blob, len, want, vocab) < 0)
        return NULL;
    tok_gpt2_parts parts = {.vocab = (int)vocab, .n_merges = (int)n_merges, .n_specials = (int)n_specials,
                            .eot = (int32_t)eot};
    parts.tok_off = mem_alloc(sizeof(uint32_t) * ((size_t)vocab + 1), "tokenizer token offsets");
    parts.tok_bytes = mem_alloc(n_bytes ? n_bytes : 1, "tokenizer token bytes");
    parts.merges = mem_alloc(sizeof(int32_t) * 3 * (n_merges ? n_merges : 1), "tokenizer merges");
    parts.specials = mem_alloc(sizeof(int32_t) * n_specials, "tokenizer special tokens");
    if (!parts.tok_off || !parts.tok_bytes || !parts.merges || !parts.specials) {
        parts_free(&parts);
        return NULL;
    }
    /* Offsets from the lengths, stopping as soon as they exceed the total. */
    const unsigned char *p = blob + V2_HEADER_LEN;
    uint64_t sum = 0;
    parts.tok_off[0] = 0;
    for (uint32_t id = 0; id < vocab && sum <= n_bytes; id++, p += 4) {
        sum += bytes_get_u32(p);
        parts.tok_off[id + 1] = (uint32_t)sum;
    }
    if (sum != n_bytes) {
        err_set("tokenizer blob: token lengths do not add up to the %u bytes declared", n_bytes);
        parts_free(&parts);
        return NULL;
    }
    memcpy(parts.tok_bytes, p, n_bytes);
    p += n_bytes;
    for (uint32_t i = 0; i < 3 * n_merges; i++, p += 4)
        parts.merges[i] = (int32_t)bytes_get_u32(p);
    for (uint32_t i = 0; i < n_specials; i++, p += 4)
        parts.specials[i] = (int32_t)bytes_get_u32(p);
    tokenizer *t = tok_gpt2_build(&parts);
    if (!t)
        err_wrap("tokenizer blob");
    return t;
}
