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

struct tokenizer {
    int vocab;              /* 257 + n_merges */
    int n_merges;
    int32_t *merges;        /* (n_merges, 2): left, right of id 256 + i */
    uint32_t *tok_off;      /* (vocab + 1) offsets of each token's bytes in tok_bytes */
    unsigned char *tok_bytes;
    int32_t *pair_slots;    /* open addressing: merge index + 1, 0 = empty */
    int pair_shift;         /* 64 - log2(slot count) */
    uint64_t hash;          /* XXH3 of the serialised form */
    tok_cache *cache;       /* created on first encode; NULL if that failed */
    int cache_failed;
    /* scratch for the heap merge of one piece (<= TOK_PIECE_MAX symbols) */
    int32_t sym[TOK_PIECE_MAX], next[TOK_PIECE_MAX], prev[TOK_PIECE_MAX];
    uint64_t heap[3 * TOK_PIECE_MAX];
};

/* Builds a tokenizer from n_merges (left, right) pairs, validating that each
 * refers to earlier ids, that no pair repeats and that no token exceeds
 * TOK_PIECE_MAX bytes. @return NULL + message ("merge N ...") on
 * invalid merges or out of memory. */
tokenizer *tok_build(const int32_t *merges, int n_merges);

/* The id produced by merging (left, right), or -1 when no merge exists. */
static inline int32_t tok_pair_find(const tokenizer *t, int32_t left, int32_t right)
{
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    size_t mask = ((size_t)1 << (64 - t->pair_shift)) - 1;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> t->pair_shift);
    for (;; i = (i + 1) & mask) {
        int32_t m = t->pair_slots[i];
        if (m == 0)
            return -1;
        if (t->merges[2 * (m - 1)] == left && t->merges[2 * (m - 1) + 1] == right)
            return 256 + m - 1;
    }
}

/* Frees the encode cache of t (tok_free calls it). */
void tok_cache_free(tok_cache *c);

#endif
