/* tok_internal: the tokenizer struct and helpers shared by the tok_*.c files
 * (not part of the public API; include tokenizer.h instead). */
#ifndef W2S_TOK_INTERNAL_H
#define W2S_TOK_INTERNAL_H

#include "text/tokenizer.h"

#include <stdint.h>

/* Pieces up to this length are remembered in the encode cache. */
#define TOK_CACHE_PIECE_MAX 256
/* Pieces longer than this are merged with the heap algorithm. */
#define TOK_SHORT_PIECE 48

typedef struct tok_cache tok_cache;
typedef struct tok_regex tok_regex;

struct tokenizer {
    tok_kind_t kind;
    int vocab;
    int n_merges;
    int32_t eot;
    int32_t *merges;        /* (n_merges, 2): left, right of the merge of rank i */
    int32_t *merge_result;  /* n_merges: the id merge i makes (byte BPE: 256 + i) */
    int32_t *merge_of;      /* vocab: the lowest rank making the id, -1 if none */
    int32_t byte_id[256];   /* the id of each single byte */
    uint32_t *tok_off;      /* (vocab + 1) offsets of each token's bytes in tok_bytes */
    unsigned char *tok_bytes; /* a GPT-2 special token's entry is its text */
    unsigned char *special; /* GPT-2 kind: vocab flags; NULL for byte BPE */
    int n_specials;
    int32_t *pair_slots;    /* open addressing: merge rank + 1, 0 = empty */
    int pair_shift;         /* 64 - log2(slot count) */
    uint64_t hash;          /* XXH3 of the serialised form */
    tok_cache *cache;       /* created on first encode; NULL if that failed */
    int cache_failed;
    tok_regex *regex;       /* GPT-2 kind: the compiled pre-split pattern */
    /* scratch for the heap merge of one long piece, grown on demand */
    size_t scratch_cap;
    int32_t *sym, *next, *prev;
    uint64_t *heap;         /* 3 * scratch_cap */
};

/* Builds a byte BPE tokenizer from n_merges (left, right) pairs, validating
 * that each refers to earlier ids, that no pair repeats and that no token
 * exceeds TOK_PIECE_MAX bytes. @return NULL + message ("merge N ...") on
 * invalid merges or out of memory. */
tokenizer *tok_build(const int32_t *merges, int n_merges);

/* A GPT-2 kind tokenizer's parts, all malloc'ed: tok_gpt2_build owns them
 * from the call on (it frees them even when it fails). */
typedef struct tok_gpt2_parts {
    int vocab;
    uint32_t *tok_off;       /* vocab + 1 offsets into tok_bytes */
    unsigned char *tok_bytes; /* every id's bytes, a special token's text */
    int n_merges;
    int32_t *merges;         /* (n_merges, 3): left, right, result in rank order */
    int n_specials;
    int32_t *specials;       /* ascending */
    int32_t eot;
} tok_gpt2_parts;

/* The version 1 and 2 forms of tok_serialize / tok_deserialize (the magic
 * and version already checked by tokenizer.c). */
int tok_byte_bpe_serialize(const tokenizer *t, unsigned char **blob, size_t *len);
tokenizer *tok_byte_bpe_deserialize(const unsigned char *blob, size_t len);
int tok_gpt2_serialize(const tokenizer *t, unsigned char **blob, size_t *len);
tokenizer *tok_gpt2_deserialize(const unsigned char *blob, size_t len);

/* Validates parts as tok_deserialize documents for version 2 and builds the
 * tokenizer (compiling the pre-split regex). @return NULL + message naming
 * the token or merge at fault. */
tokenizer *tok_gpt2_build(tok_gpt2_parts *parts);

/* Fills the merge pair table, merge_of and the hash of t from t->merges and
 * t->merge_result (tok_build and tok_gpt2_build share it). @return 0, or -1 +
 * message on a repeated pair or out of memory. */
int tok_index_merges(tokenizer *t);

/* Blob framing shared by both versions (messages start "tokenizer blob:"):
 * tok_blob_need fails when len < need ("truncated"); tok_blob_sealed when
 * len is not want ("truncated" / "trailing bytes", naming the vocab size)
 * or the last 8 bytes are not the XXH3-64 of the others. @return 0 or -1. */
int tok_blob_need(size_t len, size_t need);
int tok_blob_sealed(const unsigned char *blob, size_t len, uint64_t want, uint32_t vocab);

/* An index from token bytes to ids, for loading and validating vocabularies. */
typedef struct tok_index tok_index;

/* Indexes tokens 0..n-1 of (tok_off, tok_bytes). @return the index, or NULL
 * + message on out of memory or when two tokens have the same bytes (the
 * message names both ids). */
tok_index *tok_index_create(const uint32_t *tok_off, const unsigned char *tok_bytes, int n);
/* The id whose bytes are p[0..len), or -1. */
int32_t tok_index_find(const tok_index *x, const unsigned char *p, size_t len);
void tok_index_free(tok_index *x);

/* The rank of the merge of (left, right), or -1 when no merge exists. */
static inline int32_t tok_pair_rank(const tokenizer *t, int32_t left, int32_t right)
{
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    size_t mask = ((size_t)1 << (64 - t->pair_shift)) - 1;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> t->pair_shift);
    for (;; i = (i + 1) & mask) {
        int32_t m = t->pair_slots[i];
        if (m == 0)
            return -1;
        if (t->merges[2 * (m - 1)] == left && t->merges[2 * (m - 1) + 1] == right)
            return m - 1;
    }
}

/* GPT-2's pre-split pattern, compiled (JIT when available). @return NULL +
 * message when PCRE2 fails (out of memory). */
tok_regex *tok_regex_create(void);
void tok_regex_free(tok_regex *r);

/* Frees the encode cache of t (tok_free calls it). */
void tok_cache_free(tok_cache *c);

/* Frees the merge scratch of t (tok_free calls it). */
void tok_scratch_free(tokenizer *t);

#endif
