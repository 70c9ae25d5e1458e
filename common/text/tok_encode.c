/* tok_encode: text -> token ids, for both kinds. Text is cut into pieces by
 * the kind's pre-split rule and each piece is merged independently, starting
 * from its bytes' ids. Most pieces are short, common words, so a cache maps
 * recently seen pieces to their ids; short cache misses are merged with a
 * rank array (quadratic but tiny), long pieces (byte BPE: up to
 * TOK_PIECE_MAX bytes; GPT-2: any length) with a min-heap over adjacent pairs
 * and a linked list, O(n log n). Total cost is linear in the text length for
 * byte BPE, O(n log n) for one huge GPT-2 piece. */
#include "text/tok_internal.h"

#include "base/mem.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define CACHE_SLOTS (1u << 16)
#define CACHE_MAX_ENTRIES (CACHE_SLOTS / 2)
#define CACHE_BYTES (1u << 20)
#define CACHE_IDS (1u << 19)
/* Merge scratch beyond this many symbols is freed after each tok_encode. */
#define SCRATCH_KEEP (1u << 16)

typedef struct cache_slot {
    uint64_t hash;
    uint32_t byte_off, id_off;
    uint16_t len, n_ids;   /* len 0 = empty slot */
} cache_slot;

struct tok_cache {
    cache_slot *slots;     /* CACHE_SLOTS */
    unsigned char *bytes;  /* CACHE_BYTES: the cached pieces */
    int32_t *ids;          /* CACHE_IDS: their encodings */
    uint32_t n_entries, bytes_used, ids_used;
};

void tok_cache_free(tok_cache *c)
{
    if (!c)
        return;
    free(c->slots);
    free(c->bytes);
    free(c->ids);
    free(c);
}

static tok_cache *cache_create(void)
{
    tok_cache *c = mem_calloc(1, sizeof *c, "tokenizer cache");
    if (!c)
        return NULL;
    c->slots = mem_calloc(CACHE_SLOTS, sizeof *c->slots, "tokenizer cache slots");
    c->bytes = mem_alloc(CACHE_BYTES, "tokenizer cache bytes");
    c->ids = mem_alloc(CACHE_IDS * sizeof *c->ids, "tokenizer cache ids");
    if (!c->slots || !c->bytes || !c->ids) {
        tok_cache_free(c);
        return NULL;
    }
    return c;
}

/* The rank of the merge of (a, b), or INT32_MAX when there is none. */
static int32_t pair_rank_or_max(const tokenizer *t, int32_t a, int32_t b)
{
    int32_t r = tok_pair_rank(t, a, b);
    return r < 0 ? INT32_MAX : r;
}

/* Merges a short piece by repeatedly applying the lowest-ranked adjacent
 * pair (leftmost on ties). @return the id count. */
static size_t merge_short(const tokenizer *t, const unsigned char *p, size_t n, int32_t *out)
{
    int32_t rank[TOK_SHORT_PIECE];
    for (size_t i = 0; i < n; i++)
        out[i] = t->byte_id[p[i]];
    for (size_t i = 0; i + 1 < n; i++)
        rank[i] = pair_rank_or_max(t, out[i], out[i + 1]);
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (rank[i] < rank[best])
                best = i;
        if (rank[best] == INT32_MAX)
            break;
        out[best] = t->merge_result[rank[best]];
        memmove(out + best + 1, out + best + 2, (n - best - 2) * sizeof *out);
        memmove(rank + best, rank + best + 1, (n - best - 2) * sizeof *rank);
        n--;
        if (best > 0)
            rank[best - 1] = pair_rank_or_max(t, out[best - 1], out[best]);
        if (best + 1 < n)
            rank[best] = pair_rank_or_max(t, out[best], out[best + 1]);
    }
    return n;
}

/* merge_short without the rank array, in O(n^2) pair look-ups: for a long
 * piece whose scratch could not be allocated. */
static size_t merge_in_place(const tokenizer *t, const unsigned char *p, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = t->byte_id[p[i]];
    while (n > 1) {
        size_t best = 0;
        int32_t best_rank = INT32_MAX;
        for (size_t i = 0; i + 1 < n; i++) {
            int32_t r = pair_rank_or_max(t, out[i], out[i + 1]);
            if (r < best_rank) {
                best_rank = r;
                best = i;
            }
        }
        if (best_rank == INT32_MAX)
            break;
        out[best] = t->merge_result[best_rank];
        memmove(out + best + 1, out + best + 2, (n - best - 2) * sizeof *out);
        n--;
    }
    return n;
}

/* Heap entries pack (merge rank, position) so that the smallest value is the
 * lowest-ranked merge, leftmost on ties. */
static void heap_push(uint64_t *heap, size_t *len, uint64_t v)
{
    size_t i = (*len)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (heap[parent] <= v)
            break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = v;
}

static uint64_t heap_pop(uint64_t *heap, size_t *len)
{
    uint64_t top = heap[0], v = heap[--*len];
    size_t i = 0, n = *len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap[c + 1] < heap[c])
            c++;
        if (heap[c] >= v)
            break;
        heap[i] = heap[c];
        i = c;
    }
    if (n > 0)
        heap[i] = v;
    return top;
}

static void push_pair(tokenizer *t, size_t *heap_len, int32_t pos)
{
    int32_t nx = t->next[pos];
    if (nx < 0)
        return;
    int32_t rank = tok_pair_rank(t, t->sym[pos], t->sym[nx]);
    if (rank >= 0)
        heap_push(t->heap, heap_len, (uint64_t)rank << 32 | (uint32_t)pos);
}

void tok_scratch_free(tokenizer *t)
{
    free(t->sym);
    free(t->next);
    free(t->prev);
    free(t->heap);
    t->sym = t->next = t->prev = NULL;
    t->heap = NULL;
    t->scratch_cap = 0;
}

/* Room in the scratch of t for a piece of n symbols (each merge pushes at
 * most two heap entries after the n - 1 first ones). @return 0, or -1 when
 * memory ran out (the scratch is then empty). */
static int scratch_reserve(tokenizer *t, size_t n)
{
    if (n <= t->scratch_cap)
        return 0;
    tok_scratch_free(t);
    if (n > INT32_MAX)
        return -1;
    size_t cap = n < TOK_PIECE_MAX ? TOK_PIECE_MAX : n;
    t->sym = mem_alloc(cap * sizeof *t->sym, "tokenizer merge scratch");
    t->next = mem_alloc(cap * sizeof *t->next, "tokenizer merge scratch");
    t->prev = mem_alloc(cap * sizeof *t->prev, "tokenizer merge scratch");
    t->heap = mem_alloc(3 * cap * sizeof *t->heap, "tokenizer merge scratch");
    if (!t->sym || !t->next || !t->prev || !t->heap) {
        tok_scratch_free(t);
        return -1;
    }
    t->scratch_cap = cap;
    return 0;
}

/* Same result as merge_short for any length, in O(n log n). Symbols live in
 * a linked list over the scratch arrays of t; a heap entry is stale when its
 * position was absorbed or its pair changed. */
static size_t merge_long(tokenizer *t, const unsigned char *p, size_t n, int32_t *out)
{
    if (scratch_reserve(t, n) < 0)
        return merge_in_place(t, p, n, out);
    size_t heap_len = 0;
    for (size_t i = 0; i < n; i++) {
        t->sym[i] = t->byte_id[p[i]];
        t->prev[i] = (int32_t)i - 1;
        t->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++)
        push_pair(t, &heap_len, (int32_t)i);
    while (heap_len > 0) {
        uint64_t e = heap_pop(t->heap, &heap_len);
        int32_t rank = (int32_t)(e >> 32), pos = (int32_t)(uint32_t)e;
        int32_t nx = t->next[pos];
        if (t->sym[pos] < 0 || nx < 0 || t->sym[pos] != t->merges[2 * rank] ||
            t->sym[nx] != t->merges[2 * rank + 1])
            continue;
        t->sym[pos] = t->merge_result[rank];
        t->sym[nx] = -1;
        t->next[pos] = t->next[nx];
        if (t->next[nx] >= 0)
            t->prev[t->next[nx]] = pos;
        if (t->prev[pos] >= 0)
            push_pair(t, &heap_len, t->prev[pos]);
        push_pair(t, &heap_len, pos);
    }
    size_t count = 0;
    for (int32_t i = 0; i >= 0; i = t->next[i])
        out[count++] = t->sym[i];
    return count;
}

static size_t merge_piece(tokenizer *t, const unsigned char *p, size_t n, int32_t *out)
{
    return n <= TOK_SHORT_PIECE ? merge_short(t, p, n, out) : merge_long(t, p, n, out);
}

/* Encodes one piece through the cache. */
static size_t encode_cached(tokenizer *t, const unsigned char *p, size_t n, int32_t *out)
{
    tok_cache *c = t->cache;
    uint64_t h = XXH3_64bits(p, n);
    uint32_t i = (uint32_t)h & (CACHE_SLOTS - 1);
    for (; c->slots[i].len; i = (i + 1) & (CACHE_SLOTS - 1)) {
        cache_slot *s = &c->slots[i];
        if (s->hash == h && s->len == n && memcmp(c->bytes + s->byte_off, p, n) == 0) {
            memcpy(out, c->ids + s->id_off, s->n_ids * sizeof *out);
            return s->n_ids;
        }
    }
    size_t count = merge_piece(t, p, n, out);
    if (c->n_entries >= CACHE_MAX_ENTRIES || c->bytes_used + n > CACHE_BYTES ||
        c->ids_used + count > CACHE_IDS) {
        /* Full: start over rather than track recency; frequent words return fast. */
        memset(c->slots, 0, CACHE_SLOTS * sizeof *c->slots);
        c->n_entries = c->bytes_used = c->ids_used = 0;
        i = (uint32_t)h & (CACHE_SLOTS - 1);
    }
    cache_slot *s = &c->slots[i];
    s->hash = h;
    s->len = (uint16_t)n;
    s->n_ids = (uint16_t)count;
    s->byte_off = c->bytes_used;
    s->id_off = c->ids_used;
    memcpy(c->bytes + c->bytes_used, p, n);
    memcpy(c->ids + c->ids_used, out, count * sizeof *out);
    c->bytes_used += (uint32_t)n;
    c->ids_used += (uint32_t)count;
    c->n_entries++;
    return count;
}

size_t tok_encode(tokenizer *t, const unsigned char *text, size_t len, int32_t *out)
{
    if (!t->cache && !t->cache_failed) {
        t->cache = cache_create();
        t->cache_failed = t->cache == NULL;
    }
    size_t count = 0;
    int by_regex = t->kind == TOK_KIND_GPT2; /* byte BPE: straight to its table rule */
    while (len > 0) {
        size_t n = by_regex ? tok_first_piece(t, text, len) : tok_pretokenize(text, len);
        if (n == 1)
            out[count++] = t->byte_id[text[0]];
        else if (t->cache && n <= TOK_CACHE_PIECE_MAX)
            count += encode_cached(t, text, n, out + count);
        else
            count += merge_piece(t, text, n, out + count);
        text += n;
        len -= n;
    }
    /* The scratch of a pathological piece (36 bytes per byte) is not kept. */
    if (t->scratch_cap > SCRATCH_KEEP)
        tok_scratch_free(t);
    return count;
}
