/* tok_train: learning BPE merges. The texts are cut into pieces by the
 * pre-split rule and the distinct pieces counted (a few MB of text has ~10^5
 * of them). Merges are then learned on (piece, count) pairs: every adjacent
 * symbol pair has a weighted count, a list of the pieces that contain (or
 * once contained) it, and entries in a lazy max-heap. A merge rewrites only
 * the pieces on its list and adjusts the counts of the pairs around each
 * rewrite, so the cost per merge is proportional to the pieces it touches,
 * not to the corpus. */
#include "text/tok_internal.h"

#include "base/err.h"
#include "base/mem.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct train_pair {
    int32_t a, b;
    int64_t count;          /* sum of piece counts over occurrences */
    int32_t *words;         /* pieces that contain(ed) the pair; may repeat or be stale */
    size_t n_words, cap_words;
    uint32_t stamp;         /* merge that last touched it */
} train_pair;

/* Heap order: higher count first, then smaller (a, b) packed as a << 16 | b. */
typedef struct heap_entry {
    int64_t count;
    uint32_t ab;
    int32_t pair;
} heap_entry;

typedef struct trainer {
    /* distinct pieces: bytes at word_off, symbols in syms at the same offsets */
    unsigned char *bytes;
    size_t n_bytes, cap_bytes;
    size_t *word_off;
    uint32_t *word_len;      /* current symbol count */
    int64_t *word_count;
    uint64_t *word_hash;
    uint32_t *word_stamp;
    size_t n_words, cap_words;
    uint32_t *word_slots;    /* open addressing: word index + 1 */
    size_t word_mask;
    int32_t *syms;

    train_pair *pairs;
    size_t n_pairs, cap_pairs;
    int32_t *pair_slots;     /* open addressing: pair index + 1 */
    size_t pair_mask;

    heap_entry *heap;
    size_t heap_len, heap_cap;
    int32_t *touched;        /* pairs changed by the current merge */
    size_t n_touched, cap_touched;
    uint32_t stamp;
} trainer;

static size_t pair_home(int32_t a, int32_t b, size_t mask)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
}

static int words_grow_table(trainer *tr)
{
    size_t slots = (tr->word_mask + 1) * 2;
    uint32_t *s = mem_calloc(slots, sizeof *s, "tokenizer training piece table");
    if (!s)
        return -1;
    for (size_t w = 0; w < tr->n_words; w++) {
        size_t i = (size_t)tr->word_hash[w] & (slots - 1);
        while (s[i])
            i = (i + 1) & (slots - 1);
        s[i] = (uint32_t)w + 1;
    }
    free(tr->word_slots);
    tr->word_slots = s;
    tr->word_mask = slots - 1;
    return 0;
}

/* Counts one occurrence of piece p[0..n). */
static int words_add(trainer *tr, const unsigned char *p, size_t n)
{
    uint64_t h = XXH3_64bits(p, n);
    size_t i = (size_t)h & tr->word_mask;
    for (; tr->word_slots[i]; i = (i + 1) & tr->word_mask) {
        size_t w = tr->word_slots[i] - 1;
        if (tr->word_hash[w] == h && tr->word_len[w] == n && memcmp(tr->bytes + tr->word_off[w], p, n) == 0) {
            tr->word_count[w]++;
            return 0;
        }
    }
    if (tr->n_words >= UINT32_MAX - 1)
        return err_set("tokenizer training: more than %u distinct pieces", UINT32_MAX - 1);
    size_t w = tr->n_words, cap = tr->cap_words;
    if (w == cap) {
        size_t c;
        c = cap;
        TRY(mem_reserve((void **)&tr->word_off, &c, w + 1, sizeof *tr->word_off, "tokenizer training pieces"));
        c = cap;
        TRY(mem_reserve((void **)&tr->word_len, &c, w + 1, sizeof *tr->word_len, "tokenizer training pieces"));
        c = cap;
        TRY(mem_reserve((void **)&tr->word_count, &c, w + 1, sizeof *tr->word_count, "tokenizer training pieces"));
        c = cap;
        TRY(mem_reserve((void **)&tr->word_hash, &c, w + 1, sizeof *tr->word_hash, "tokenizer training pieces"));
        tr->cap_words = c;
    }
    TRY(mem_reserve((void **)&tr->bytes, &tr->cap_bytes, tr->n_bytes + n, 1, "tokenizer training piece bytes"));
    memcpy(tr->bytes + tr->n_bytes, p, n);
    tr->word_off[w] = tr->n_bytes;
    tr->word_len[w] = (uint32_t)n;
    tr->word_count[w] = 1;
    tr->word_hash[w] = h;
    tr->n_bytes += n;
    tr->n_words++;
    tr->word_slots[i] = (uint32_t)w + 1;
    if (2 * tr->n_words > tr->word_mask)
        TRY(words_grow_table(tr));
    return 0;
}

static int pairs_grow_table(trainer *tr)
{
    size_t slots = (tr->pair_mask + 1) * 2;
    int32_t *s = mem_calloc(slots, sizeof *s, "tokenizer training pair table");
    if (!s)
        return -1;
    for (size_t p = 0; p < tr->n_pairs; p++) {
        size_t i = pair_home(tr->pairs[p].a, tr->pairs[p].b, slots - 1);
        while (s[i])
            i = (i + 1) & (slots - 1);
        s[i] = (int32_t)p + 1;
    }
    free(tr->pair_slots);
    tr->pair_slots = s;
    tr->pair_mask = slots - 1;
    return 0;
}

/* Index of pair (a, b), created with count 0 when absent; -1 on failure. */
static int32_t pair_get(trainer *tr, int32_t a, int32_t b)
{
    size_t i = pair_home(a, b, tr->pair_mask);
    for (; tr->pair_slots[i]; i = (i + 1) & tr->pair_mask) {
        int32_t p = tr->pair_slots[i] - 1;
        if (tr->pairs[p].a == a && tr->pairs[p].b == b)
            return p;
    }
    if (tr->n_pairs >= INT32_MAX - 1)
        return err_set("tokenizer training: too many distinct pairs");
    TRY(mem_reserve((void **)&tr->pairs, &tr->cap_pairs, tr->n_pairs + 1, sizeof *tr->pairs,
                    "tokenizer training pairs"));
    int32_t p = (int32_t)tr->n_pairs++;
    tr->pairs[p] = (train_pair){.a = a, .b = b};
    tr->pair_slots[i] = p + 1;
    if (2 * tr->n_pairs > tr->pair_mask)
        TRY(pairs_grow_table(tr));
    return p;
}

static int pair_touch(trainer *tr, int32_t p)
{
    if (tr->pairs[p].stamp == tr->stamp)
        return 0;
    tr->pairs[p].stamp = tr->stamp;
    TRY(mem_reserve((void **)&tr->touched, &tr->cap_touched, tr->n_touched + 1, sizeof *tr->touched,
                    "tokenizer training touched pairs"));
    tr->touched[tr->n_touched++] = p;
    return 0;
}

/* Adds delta occurrences of (a, b) inside piece w. */
static int pair_add(trainer *tr, int32_t a, int32_t b, int32_t w, int64_t delta)
{
    int32_t p = pair_get(tr, a, b);
    TRY(p);
    train_pair *pr = &tr->pairs[p];
    pr->count += delta;
    if (delta > 0 && (pr->n_words == 0 || pr->words[pr->n_words - 1] != w)) {
        TRY(mem_reserve((void **)&pr->words, &pr->cap_words, pr->n_words + 1, sizeof *pr->words,
                        "tokenizer training pair index"));
        pr->words[pr->n_words++] = w;
    }
    return pair_touch(tr, p);
}

static int heap_better(const heap_entry *x, const heap_entry *y)
{
    return x->count > y->count || (x->count == y->count && x->ab < y->ab);
}

static int heap_push(trainer *tr, int32_t p)
{
    TRY(mem_reserve((void **)&tr->heap, &tr->heap_cap, tr->heap_len + 1, sizeof *tr->heap,
                    "tokenizer training heap"));
    heap_entry e = {tr->pairs[p].count, (uint32_t)tr->pairs[p].a << 16 | (uint32_t)tr->pairs[p].b, p};
    size_t i = tr->heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_better(&e, &tr->heap[parent]))
            break;
        tr->heap[i] = tr->heap[parent];
        i = parent;
    }
    tr->heap[i] = e;
    return 0;
}

static heap_entry heap_pop(trainer *tr)
{
    heap_entry top = tr->heap[0], v = tr->heap[--tr->heap_len];
    size_t i = 0, n = tr->heap_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_better(&tr->heap[c + 1], &tr->heap[c]))
            c++;
        if (!heap_better(&tr->heap[c], &v))
            break;
        tr->heap[i] = tr->heap[c];
        i = c;
    }
    if (n > 0)
        tr->heap[i] = v;
    return top;
}

/* Pushes the current count of every pair the last step touched. */
static int push_touched(trainer *tr)
{
    for (size_t i = 0; i < tr->n_touched; i++)
        if (tr->pairs[tr->touched[i]].count > 0)
            TRY(heap_push(tr, tr->touched[i]));
    tr->n_touched = 0;
    return 0;
}

/* Replaces each (a, b) in piece w by z, left to right, adjusting the counts
 * of the neighbouring pairs (the count of (a, b) itself is zeroed after). */
static int merge_word(trainer *tr, int32_t w, int32_t a, int32_t b, int32_t z)
{
    int32_t *s = tr->syms + tr->word_off[w];
    size_t n = tr->word_len[w], out = 0;
    int64_t cnt = tr->word_count[w];
    for (size_t r = 0; r < n;) {
        if (r + 1 < n && s[r] == a && s[r + 1] == b) {
            if (out > 0) {
                TRY(pair_add(tr, s[out - 1], a, w, -cnt));
                TRY(pair_add(tr, s[out - 1], z, w, cnt));
            }
            if (r + 2 < n) {
                TRY(pair_add(tr, b, s[r + 2], w, -cnt));
                TRY(pair_add(tr, z, s[r + 2], w, cnt));
            }
            s[out++] = z;
            r += 2;
        } else {
            s[out++] = s[r++];
        }
    }
    tr->word_len[w] = (uint32_t)out;
    return 0;
}

/* Learns up to max_merges merges into merges (max_merges, 2); *n_learned
 * receives how many (fewer when no pair is left). */
static int learn(trainer *tr, int max_merges, int32_t *merges, int *n_learned)
{
    tr->stamp = 1; /* differs from the 0 of new pairs, so they count as touched */
    for (size_t w = 0; w < tr->n_words; w++) {
        const int32_t *s = tr->syms + tr->word_off[w];
        for (uint32_t i = 0; i + 1 < tr->word_len[w]; i++)
            TRY(pair_add(tr, s[i], s[i + 1], (int32_t)w, tr->word_count[w]));
    }
    TRY(push_touched(tr));
    int m = 0;
    while (m < max_merges && tr->heap_len > 0) {
        heap_entry e = heap_pop(tr);
        if (tr->pairs[e.pair].count != e.count)
            continue; /* stale: a newer entry holds the current count */
        int32_t p = e.pair, a = tr->pairs[p].a, b = tr->pairs[p].b, z = 256 + m;
        merges[2 * m] = a;
        merges[2 * m + 1] = b;
        tr->stamp++;
        /* Taken over: merge_word never adds to the list of (a, b) itself. */
        int32_t *list = tr->pairs[p].words;
        size_t n_list = tr->pairs[p].n_words;
        tr->pairs[p].words = NULL;
        tr->pairs[p].n_words = tr->pairs[p].cap_words = 0;
        int rc = 0;
        for (size_t i = 0; i < n_list && rc == 0; i++) {
            int32_t w = list[i];
            if (tr->word_stamp[w] == tr->stamp)
                continue;
            tr->word_stamp[w] = tr->stamp;
            rc = merge_word(tr, w, a, b, z);
        }
        free(list);
        TRY(rc);
        tr->pairs[p].count = 0;
        TRY(push_touched(tr));
        m++;
    }
    *n_learned = m;
    return 0;
}

static void trainer_free(trainer *tr)
{
    free(tr->bytes);
    free(tr->word_off);
    free(tr->word_len);
    free(tr->word_count);
    free(tr->word_hash);
    free(tr->word_stamp);
    free(tr->word_slots);
    free(tr->syms);
    for (size_t p = 0; p < tr->n_pairs; p++)
        free(tr->pairs[p].words);
    free(tr->pairs);
    free(tr->pair_slots);
    free(tr->heap);
    free(tr->touched);
}

tokenizer *tok_train(const byte_span *texts, size_t n_texts, int vocab_size)
{
    if (vocab_size < TOK_MIN_VOCAB || vocab_size > TOK_MAX_VOCAB) {
        err_set("tokenizer: vocab size %d outside %d..%d", vocab_size, TOK_MIN_VOCAB, TOK_MAX_VOCAB);
        return NULL;
    }
    int max_merges = vocab_size - 257, n_learned = 0;
    tokenizer *t = NULL;
    int32_t *merges = NULL;
    trainer tr = {0};
    tr.word_mask = 1023;
    tr.pair_mask = 1023;
    tr.word_slots = mem_calloc(tr.word_mask + 1, sizeof *tr.word_slots, "tokenizer training piece table");
    tr.pair_slots = mem_calloc(tr.pair_mask + 1, sizeof *tr.pair_slots, "tokenizer training pair table");
    merges = mem_alloc(sizeof *merges * 2 * (size_t)max_merges, "tokenizer merges");
    if (!tr.word_slots || !tr.pair_slots || !merges)
        goto done;
    for (size_t k = 0; k < n_texts; k++) {
        const unsigned char *p = texts[k].data;
        size_t len = texts[k].len;
        while (len > 0) {
            size_t n = tok_pretokenize(p, len);
            if (n > 1 && words_add(&tr, p, n) < 0)
                goto done;
            p += n;
            len -= n;
        }
    }
    tr.syms = mem_alloc(sizeof *tr.syms * (tr.n_bytes ? tr.n_bytes : 1), "tokenizer training symbols");
    tr.word_stamp = mem_calloc(tr.n_words ? tr.n_words : 1, sizeof *tr.word_stamp, "tokenizer training stamps");
    if (!tr.syms || !tr.word_stamp)
        goto done;
    for (size_t i = 0; i < tr.n_bytes; i++)
        tr.syms[i] = tr.bytes[i];
    if (learn(&tr, max_merges, merges, &n_learned) < 0)
        goto done;
    t = tok_build(merges, n_learned);
done:
    if (!t)
        err_wrap("tokenizer training");
    free(merges);
    trainer_free(&tr);
    return t;
}
