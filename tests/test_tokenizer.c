/* Tests of the BPE tokenizer: exact round trips of arbitrary bytes, the
 * encoder against a slow reference (documented pre-split rule re-implemented
 * naively + merges applied one by one in learned order), compression on
 * English text, serialisation and rejection of corrupt blobs, determinism and
 * argument bounds. One tokenizer (vocab 4096, trained on the fortune files or
 * on generated English-like text) is shared by the tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/err.h"
#include "base/rng.h"
#include "text/tokenizer.h"
#include "support_fixtures.h"
#include "support_tok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static unsigned char *corpus;      /* training text */
static size_t corpus_len;
static unsigned char *held_out;    /* English text not trained on */
static size_t held_out_len;
static tokenizer *shared;          /* vocab 4096 trained on corpus */

/* English-like text from a fixed word list, when no fortune files exist. */
static void generate_english(unsigned char **text, size_t *len, size_t want, uint64_t seed)
{
    static const char *words[] = {
        "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with",
        "be", "by", "on", "not", "he", "I", "this", "are", "or", "his", "from", "at", "which",
        "but", "have", "an", "had", "they", "you", "were", "their", "one", "all", "we", "can",
        "her", "has", "there", "been", "if", "more", "when", "will", "would", "who", "so",
        "no", "people", "time", "computer", "program", "language", "system", "question",
        "answer", "wisdom", "fortune", "always", "never", "something", "everything", "world",
        "government", "important", "understand", "remember", "beautiful", "nothing", "life"};
    size_t n_words = sizeof words / sizeof *words;
    rng_state rng;
    rng_seed(&rng, seed);
    *text = malloc(want + 64);
    assert_non_null(*text);
    size_t n = 0;
    int sentence = 0;
    while (n < want) {
        const char *w = words[rng_below(&rng, n_words)];
        size_t wl = strlen(w);
        memcpy(*text + n, w, wl);
        if (sentence == 0 && w[0] >= 'a')
            (*text)[n] = (unsigned char)(w[0] - 32);
        n += wl;
        sentence++;
        if (sentence > 4 && rng_below(&rng, 6) == 0) {
            (*text)[n++] = rng_below(&rng, 4) ? '.' : ',';
            sentence = (*text)[n - 1] == '.' ? 0 : sentence;
        }
        (*text)[n++] = rng_below(&rng, 12) ? ' ' : '\n';
    }
    *len = n;
}

static int setup(void **state)
{
    (void)state;
    size_t all_len;
    unsigned char *all = sfix_load_fortunes(&all_len);
    if (all_len < 200000) {
        free(all);
        generate_english(&all, &all_len, 1200000, 5);
    }
    /* Train on up to 1 MB, measure compression on the 200 kB at the end. */
    held_out_len = 200000;
    held_out = all + all_len - held_out_len;
    corpus = all;
    corpus_len = all_len - held_out_len < 1000000 ? all_len - held_out_len : 1000000;
    byte_span span = {corpus, corpus_len};
    shared = tok_train(&span, 1, 4096);
    return shared ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tok_free(shared);
    free(corpus);
    return 0;
}

/* --- references --- */

enum { REF_OTHER, REF_LETTER, REF_DIGIT, REF_SPACE };

static int ref_class(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80)
        return REF_LETTER;
    if (c >= '0' && c <= '9')
        return REF_DIGIT;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r')
        return REF_SPACE;
    return REF_OTHER;
}

/* The documented pre-split rule, computed naively: length of the piece at pos. */
static size_t ref_piece(const unsigned char *s, size_t len, size_t pos)
{
    size_t e;
    if (s[pos] == ' ' && pos + 1 < len && ref_class(s[pos + 1]) != REF_SPACE) {
        e = pos + 1;
        while (e < len && ref_class(s[e]) == ref_class(s[pos + 1]))
            e++;
    } else if (ref_class(s[pos]) != REF_SPACE) {
        e = pos;
        while (e < len && ref_class(s[e]) == ref_class(s[pos]))
            e++;
    } else {
        e = pos;
        while (e < len && ref_class(s[e]) == REF_SPACE)
            e++;
        if (e < len && e - pos > 1 && s[e - 1] == ' ')
            e--;
    }
    return e - pos > TOK_PIECE_MAX ? TOK_PIECE_MAX : e - pos;
}

/* BPE of one piece by applying every merge, in learned order, to all its
 * occurrences left to right (equivalent to lowest-rank-first merging). */
static size_t ref_encode_piece(const tokenizer *t, const unsigned char *p, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = p[i];
    for (int32_t id = 256; id < tok_eot(t) && n > 1; id++) {
        int32_t l, r;
        assert_int_equal(tok_merge_pair(t, id, &l, &r), 0);
        size_t w = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && out[i] == l && out[i + 1] == r) {
                out[w++] = id;
                i += 2;
            } else {
                out[w++] = out[i++];
            }
        }
        n = w;
    }
    return n;
}

/* Training by full recount: the distinct pieces with their counts, and per
 * merge a count of every adjacent pair over all of them. Writes the merges
 * (n_merges, 2) and returns how many were learned. */
static int ref_train(const unsigned char *s, size_t len, int vocab, int32_t *merges)
{
    int32_t *syms = malloc(len * sizeof *syms);
    size_t *start = malloc(len * sizeof *start), *wlen = malloc(len * sizeof *wlen);
    int64_t *count = malloc(len * sizeof *count);
    int64_t *pc = malloc((size_t)vocab * vocab * sizeof *pc);
    assert_true(syms && start && wlen && count && pc);
    size_t n_words = 0, used = 0;
    for (size_t pos = 0; pos < len;) {
        size_t n = ref_piece(s, len, pos), w;
        for (w = 0; w < n_words; w++)
            if (wlen[w] == n && memcmp(s + start[w], s + pos, n) == 0)
                break;
        if (w == n_words) {
            start[w] = pos;
            wlen[w] = n;
            count[w] = 0;
            n_words++;
        }
        count[w]++;
        pos += n;
    }
    for (size_t w = 0; w < n_words; w++) { /* symbols move to their own array */
        for (size_t i = 0; i < wlen[w]; i++)
            syms[used + i] = s[start[w] + i];
        start[w] = used;
        used += wlen[w];
    }
    int m = 0;
    for (; m < vocab - 257; m++) {
        memset(pc, 0, (size_t)vocab * vocab * sizeof *pc);
        for (size_t w = 0; w < n_words; w++)
            for (size_t i = 0; i + 1 < wlen[w]; i++)
                pc[(size_t)syms[start[w] + i] * vocab + syms[start[w] + i + 1]] += count[w];
        size_t best = 0;
        for (size_t k = 1; k < (size_t)vocab * vocab; k++)
            if (pc[k] > pc[best])
                best = k;
        if (pc[best] == 0)
            break;
        int32_t a = (int32_t)(best / vocab), b = (int32_t)(best % vocab);
        merges[2 * m] = a;
        merges[2 * m + 1] = b;
        for (size_t w = 0; w < n_words; w++) {
            int32_t *x = syms + start[w];
            size_t out = 0;
            for (size_t i = 0; i < wlen[w];) {
                if (i + 1 < wlen[w] && x[i] == a && x[i + 1] == b) {
                    x[out++] = 256 + m;
                    i += 2;
                } else {
                    x[out++] = x[i++];
                }
            }
            wlen[w] = out;
        }
    }
    free(syms);
    free(start);
    free(wlen);
    free(count);
    free(pc);
    return m;
}

static size_t ref_encode(const tokenizer *t, const unsigned char *s, size_t len, int32_t *out)
{
    size_t count = 0;
    for (size_t pos = 0; pos < len;) {
        size_t n = ref_piece(s, len, pos);
        count += ref_encode_piece(t, s + pos, n, out + count);
        pos += n;
    }
    return count;
}

/* stok_roundtrip, asserted. @return the id count. */
static size_t check_roundtrip(tokenizer *t, const unsigned char *s, size_t len, int32_t *ids)
{
    size_t n;
    assert_int_equal(stok_roundtrip(t, s, len, ids, &n), 0);
    return n;
}

/* Random text over a biased alphabet so that every pre-split case occurs. */
static void random_mixed(rng_state *rng, unsigned char *s, size_t len)
{
    static const unsigned char alphabet[] = " \n\t\r  aeiouxyzTHE0123456789.,!'\"(-)\x00\x7f\xc3\xa9\xe2\x80\x94";
    for (size_t i = 0; i < len; i++)
        s[i] = alphabet[rng_below(rng, sizeof alphabet - 1)];
}

/* --- tests --- */

static void test_roundtrip_random_bytes(void **state)
{
    (void)state;
    rng_state rng;
    rng_seed(&rng, 11);
    unsigned char buf[5000];
    int32_t ids[5000];
    for (int i = 0; i < 256; i++)
        buf[i] = (unsigned char)i;
    check_roundtrip(shared, buf, 256, ids);
    memset(buf, 0, 300);
    check_roundtrip(shared, buf, 300, ids);
    check_roundtrip(shared, buf, 0, ids);
    for (int trial = 0; trial < 300; trial++) {
        size_t len = rng_below(&rng, trial < 200 ? 64 : sizeof buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)rng_next(&rng);
        check_roundtrip(shared, buf, len, ids);
        random_mixed(&rng, buf, len);
        check_roundtrip(shared, buf, len, ids);
    }
}

static void test_roundtrip_text_and_long_runs(void **state)
{
    (void)state;
    size_t len = held_out_len;
    int32_t *ids = malloc(len * sizeof *ids);
    assert_non_null(ids);
    check_roundtrip(shared, held_out, len, ids);
    /* Runs beyond TOK_PIECE_MAX: letters, spaces, digits, a space-led word. */
    size_t big = 3 * TOK_PIECE_MAX + 17;
    unsigned char *s = malloc(big);
    assert_non_null(s);
    const char fills[] = "a .9";
    for (size_t f = 0; f < 4; f++) {
        memset(s, fills[f], big);
        check_roundtrip(shared, s, big, ids);
    }
    s[0] = ' ';
    memset(s + 1, 'e', big - 1);
    check_roundtrip(shared, s, big, ids);
    free(s);
    free(ids);
}

static void test_pretokenize_matches_rule(void **state)
{
    (void)state;
    const struct { const char *text; const char *pieces[8]; } cases[] = {
        {"Hello world", {"Hello", " world"}},
        {"a   b", {"a", "  ", " b"}},
        {"a\n\nb", {"a", "\n\n", "b"}},
        {"x \n  42.5!!", {"x", " \n ", " 42", ".", "5", "!!"}},
        {"caf\xc3\xa9 ok", {"caf\xc3\xa9", " ok"}},
        {"end  ", {"end", "  "}},
        {" ?! x", {" ?!", " x"}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const unsigned char *s = (const unsigned char *)cases[c].text;
        size_t len = strlen(cases[c].text), pos = 0;
        for (int k = 0; cases[c].pieces[k]; k++) {
            size_t n = tok_pretokenize(s + pos, len - pos);
            assert_int_equal(n, strlen(cases[c].pieces[k]));
            assert_memory_equal(s + pos, cases[c].pieces[k], n);
            pos += n;
        }
        assert_int_equal(pos, len);
    }
    assert_int_equal(tok_pretokenize(NULL, 0), 0);

    rng_state rng;
    rng_seed(&rng, 3);
    unsigned char buf[4000];
    for (int trial = 0; trial < 200; trial++) {
        size_t len = 1 + rng_below(&rng, sizeof buf - 1);
        random_mixed(&rng, buf, len);
        if (trial % 10 == 0) { /* a long run somewhere, to hit the cut */
            size_t start = rng_below(&rng, len), n = rng_below(&rng, len - start + 1);
            memset(buf + start, " a\n7"[trial / 10 % 4], n);
        }
        for (size_t pos = 0; pos < len;) {
            size_t n = tok_pretokenize(buf + pos, len - pos);
            assert_int_equal(n, ref_piece(buf, len, pos));
            pos += n;
        }
    }
}

static void test_encode_matches_reference(void **state)
{
    (void)state;
    rng_state rng;
    rng_seed(&rng, 21);
    int32_t got[4000], want[4000];
    /* English from the held-out text and mixed random text: short pieces. */
    for (int trial = 0; trial < 40; trial++) {
        size_t len = 1 + rng_below(&rng, 2000);
        size_t start = rng_below(&rng, held_out_len - len);
        size_t n = tok_encode(shared, held_out + start, len, got);
        assert_int_equal(ref_encode(shared, held_out + start, len, want), n);
        assert_memory_equal(got, want, n * sizeof *got);
    }
    unsigned char buf[4000];
    for (int trial = 0; trial < 20; trial++) {
        size_t len = 1 + rng_below(&rng, 1000);
        random_mixed(&rng, buf, len);
        size_t n = tok_encode(shared, buf, len, got);
        assert_int_equal(ref_encode(shared, buf, len, want), n);
        assert_memory_equal(got, want, n * sizeof *got);
    }
    /* Long pieces (heap algorithm): letter runs built from common words. */
    for (int trial = 0; trial < 6; trial++) {
        size_t len = 0, target = 40 + rng_below(&rng, 2500);
        while (len < target) {
            size_t start = rng_below(&rng, held_out_len - 16);
            for (size_t i = 0; i < 16 && len < target; i++) {
                unsigned char c = held_out[start + i];
                if (ref_class(c) == REF_LETTER)
                    buf[len++] = c;
            }
        }
        size_t n = tok_encode(shared, buf, len, got);
        assert_int_equal(ref_encode(shared, buf, len, want), n);
        assert_memory_equal(got, want, n * sizeof *got);
    }
}

static void test_merges_stay_inside_pieces(void **state)
{
    (void)state;
    size_t len = 50000;
    int32_t *ids = malloc(len * sizeof *ids);
    unsigned char *is_start = calloc(len + 1, 1);
    assert_non_null(ids);
    assert_non_null(is_start);
    for (size_t pos = 0; pos < len; pos += ref_piece(held_out, len, pos))
        is_start[pos] = 1;
    size_t n = tok_encode(shared, held_out, len, ids), pos = 0, merged = 0;
    for (size_t i = 0; i < n; i++) {
        size_t tl;
        tok_token_bytes(shared, ids[i], &tl);
        for (size_t k = 1; k < tl; k++)
            assert_false(is_start[pos + k]);
        merged += tl > 1;
        pos += tl;
    }
    assert_true(merged > n / 2); /* the check is not vacuous */
    /* Every learned token is itself within one piece. */
    for (int32_t id = 256; id < tok_eot(shared); id++) {
        size_t tl;
        const unsigned char *b = tok_token_bytes(shared, id, &tl);
        assert_int_equal(tok_pretokenize(b, tl), tl);
    }
    free(is_start);
    free(ids);
}

static void test_compression_english(void **state)
{
    (void)state;
    int32_t *ids = malloc(held_out_len * sizeof *ids);
    assert_non_null(ids);
    assert_int_equal(tok_vocab_size(shared), 4096);
    size_t n = tok_encode(shared, held_out, held_out_len, ids);
    double ratio = (double)n / (double)held_out_len;
    print_message("held-out text: %zu bytes -> %zu tokens (%.3f tokens/byte)\n", held_out_len, n, ratio);
    assert_true(ratio < 0.4);
    free(ids);
}

static void test_cache_consistent(void **state)
{
    (void)state;
    /* > 32768 distinct words so the cache fills and restarts mid-text. */
    rng_state rng;
    rng_seed(&rng, 8);
    size_t len = 400000;
    unsigned char *s = malloc(len);
    int32_t *a = malloc(len * sizeof *a), *b = malloc(len * sizeof *b);
    assert_true(s && a && b);
    for (size_t i = 0; i < len; i++)
        s[i] = i % 7 == 6 ? ' ' : (unsigned char)('a' + rng_below(&rng, 26));
    size_t na = tok_encode(shared, s, len, a);
    size_t nb = tok_encode(shared, s, len, b);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    /* A fresh tokenizer encoding piece by piece (cold cache) agrees. */
    unsigned char *blob;
    size_t blen;
    assert_int_equal(tok_serialize(shared, &blob, &blen), 0);
    tokenizer *t = tok_deserialize(blob, blen);
    assert_non_null(t);
    size_t nc = 0;
    for (size_t pos = 0; pos < len;) {
        size_t n = tok_pretokenize(s + pos, len - pos);
        nc += tok_encode(t, s + pos, n, b + nc);
        pos += n;
    }
    assert_int_equal(nc, na);
    assert_memory_equal(a, b, na * sizeof *a);
    tok_free(t);
    free(blob);
    free(s);
    free(a);
    free(b);
}

static void test_serialize_roundtrip(void **state)
{
    (void)state;
    unsigned char *blob, *blob2;
    size_t len, len2;
    assert_int_equal(tok_serialize(shared, &blob, &len), 0);
    assert_int_equal(len, 6 + 2 + 4 + 4 + 4 * (4096 - 257) + 8);
    assert_memory_equal(blob, "W2STOK", 6);
    assert_true(tok_hash(shared) == XXH3_64bits(blob, len));
    tokenizer *t = tok_deserialize(blob, len);
    assert_non_null(t);
    assert_true(tok_hash(t) == tok_hash(shared));
    assert_int_equal(tok_vocab_size(t), tok_vocab_size(shared));
    assert_int_equal(tok_serialize(t, &blob2, &len2), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(blob, blob2, len);
    for (int32_t id = 0; id < tok_vocab_size(t); id++) {
        size_t la, lb;
        const unsigned char *a = tok_token_bytes(shared, id, &la), *b = tok_token_bytes(t, id, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
    }
    int32_t x[1000], y[1000];
    size_t nx = tok_encode(shared, held_out, 1000, x), ny = tok_encode(t, held_out, 1000, y);
    assert_int_equal(nx, ny);
    assert_memory_equal(x, y, nx * sizeof *x);
    tok_free(t);
    free(blob);
    free(blob2);
}

/* Version 1 golden blob (schemas/tokenizer.md): tok_train of GOLDEN_V1_TEXT
 * to vocab 262, as every earlier w2s wrote it; checkpoints and labels.db
 * hold such blobs and their tok_hash. */
#define GOLDEN_V1_TEXT "the cat sat on the mat; the hat"
static const unsigned char golden_v1[] = {
    0x57, 0x32, 0x53, 0x54, 0x4f, 0x4b, 0x01, 0x00, 0x06, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x00, 0x00, 0x61, 0x00, 0x74, 0x00, 0x68, 0x00, 0x65, 0x00,
    0x74, 0x00, 0x01, 0x01, 0x20, 0x00, 0x02, 0x01, 0x20, 0x00, 0x63, 0x00,
    0x13, 0x7b, 0x82, 0xa3, 0xe9, 0x18, 0xfe, 0x74,
};

static void test_golden_v1_blob(void **state)
{
    (void)state;
    tokenizer *t = tok_deserialize(golden_v1, sizeof golden_v1);
    assert_non_null(t);
    assert_int_equal(tok_kind(t), TOK_KIND_BYTE_BPE);
    assert_int_equal(tok_vocab_size(t), 262);
    assert_int_equal(tok_eot(t), 261);
    assert_true(tok_hash(t) == XXH3_64bits(golden_v1, sizeof golden_v1));
    const int32_t want[5][2] = {{'a', 't'}, {'h', 'e'}, {'t', 257}, {' ', 258}, {' ', 'c'}};
    for (int m = 0; m < 5; m++) {
        int32_t l, r;
        assert_int_equal(tok_merge_pair(t, 256 + m, &l, &r), 0);
        assert_true(l == want[m][0] && r == want[m][1]);
    }
    int32_t ids[16];
    assert_int_equal(tok_encode(t, (const unsigned char *)"the cat", 7, ids), 3);
    assert_true(ids[0] == 258 && ids[1] == 260 && ids[2] == 256);
    unsigned char *blob;
    size_t len;
    assert_int_equal(tok_serialize(t, &blob, &len), 0);
    assert_int_equal(len, sizeof golden_v1);
    assert_memory_equal(blob, golden_v1, len);
    free(blob);
    tok_free(t);

    /* Training still makes the same blob. */
    byte_span span = {(const unsigned char *)GOLDEN_V1_TEXT, sizeof GOLDEN_V1_TEXT - 1};
    t = tok_train(&span, 1, 262);
    assert_non_null(t);
    assert_true(tok_hash(t) == XXH3_64bits(golden_v1, sizeof golden_v1));
    tok_free(t);
}

/* Rewrites the trailing checksum so that only the intended damage remains. */
static void reseal(unsigned char *blob, size_t len)
{
    uint64_t h = XXH3_64bits(blob, len - 8);
    for (int i = 0; i < 8; i++)
        blob[len - 8 + i] = (unsigned char)(h >> (8 * i));
}

static void expect_reject(const unsigned char *blob, size_t len, const char *fragment)
{
    err_clear();
    tokenizer *t = tok_deserialize(blob, len);
    if (t)
        fail_msg("corrupt blob accepted (expected \"%s\")", fragment);
    if (!strstr(err_message(), fragment))
        fail_msg("message \"%s\" lacks \"%s\"", err_message(), fragment);
    assert_non_null(strstr(err_message(), "tokenizer blob"));
}

static void put16(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void test_corrupt_blobs_rejected(void **state)
{
    (void)state;
    byte_span span = {held_out, 20000};
    tokenizer *small = tok_train(&span, 1, 400);
    assert_non_null(small);
    unsigned char *blob;
    size_t len;
    assert_int_equal(tok_serialize(small, &blob, &len), 0);
    unsigned char *c = malloc(len + 4);
    assert_non_null(c);

    for (size_t cut = 0; cut < len; cut++)
        expect_reject(blob, cut, "truncated");
    expect_reject(blob, len - 1, "truncated");
    memcpy(c, blob, len);
    memset(c + len, 0, 4);
    expect_reject(c, len + 4, "trailing bytes");
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(c, blob, len);
            c[i] ^= (unsigned char)(1u << bit);
            expect_reject(c, len, "");
        }
    }
    memcpy(c, blob, len);
    c[16 + 4 * 7] ^= 1;
    expect_reject(c, len, "checksum mismatch");
    memcpy(c, blob, len);
    c[0] = 'X';
    expect_reject(c, len, "bad magic");
    memcpy(c, blob, len);
    put16(c + 6, 3);
    reseal(c, len);
    expect_reject(c, len, "unsupported version 3");
    memcpy(c, blob, len);
    put16(c + 6, 2); /* a version 1 body read as version 2: its vocab size is no kind */
    reseal(c, len);
    expect_reject(c, len, "kind");
    memcpy(c, blob, len);
    c[8] ^= 1;
    reseal(c, len);
    expect_reject(c, len, "merges for vocab size");

    /* Merge 5 (id 261) referring to itself, to EOT, to a later id. */
    const uint32_t bad_ids[] = {261, 399, 300, 65535};
    for (size_t k = 0; k < 4; k++) {
        memcpy(c, blob, len);
        put16(c + 16 + 4 * 5 + 2 * (k % 2), bad_ids[k]);
        reseal(c, len);
        expect_reject(c, len, "not an earlier id");
    }
    /* Merge 5 repeating the pair of merge 2. */
    memcpy(c, blob, len);
    memcpy(c + 16 + 4 * 5, c + 16 + 4 * 2, 4);
    reseal(c, len);
    expect_reject(c, len, "repeats the pair");
    /* Doubling merges: (a,a), (256,256), ... exceed the token length limit. */
    memcpy(c, blob, len);
    put16(c + 16, 'a');
    put16(c + 18, 'a');
    for (int i = 1; i < 20; i++) {
        put16(c + 16 + 4 * i, (uint32_t)(255 + i));
        put16(c + 18 + 4 * i, (uint32_t)(255 + i));
    }
    reseal(c, len);
    expect_reject(c, len, "piece limit");

    free(c);
    free(blob);
    tok_free(small);
}

static void test_training_deterministic_and_small_cases(void **state)
{
    (void)state;
    byte_span spans[3] = {{held_out, 30000}, {held_out + 30000, 30000}, {(const unsigned char *)"", 0}};
    tokenizer *a = tok_train(spans, 3, 1000), *b = tok_train(spans, 3, 1000);
    assert_non_null(a);
    assert_non_null(b);
    unsigned char *ba, *bb;
    size_t la, lb;
    assert_int_equal(tok_serialize(a, &ba, &la), 0);
    assert_int_equal(tok_serialize(b, &bb, &lb), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    assert_true(tok_hash(a) == tok_hash(b));
    free(ba);
    free(bb);
    tok_free(a);
    tok_free(b);

    /* Ties go to the smallest (left, right): " c" (32, 99) before "ab", "cd". */
    byte_span tie = {(const unsigned char *)"ab cd", 5};
    tokenizer *t = tok_train(&tie, 1, 258);
    assert_non_null(t);
    int32_t l, r;
    assert_int_equal(tok_merge_pair(t, 256, &l, &r), 0);
    assert_int_equal(l, ' ');
    assert_int_equal(r, 'c');
    tok_free(t);

    /* Highest count first; overlapping pairs are counted; early stop. */
    byte_span abab = {(const unsigned char *)"abababab", 8};
    t = tok_train(&abab, 1, 4096);
    assert_non_null(t);
    assert_int_equal(tok_vocab_size(t), 257 + 3); /* ab, abab, abababab */
    assert_int_equal(tok_merge_pair(t, 256, &l, &r), 0);
    assert_true(l == 'a' && r == 'b');
    assert_int_equal(tok_merge_pair(t, 257, &l, &r), 0);
    assert_true(l == 256 && r == 256);
    int32_t ids[8];
    assert_int_equal(tok_encode(t, (const unsigned char *)"abababab", 8, ids), 1);
    assert_int_equal(ids[0], 258);
    assert_int_equal(tok_encode(t, (const unsigned char *)"ababa", 5, ids), 2);
    assert_true(ids[0] == 257 && ids[1] == 'a');
    tok_free(t);

    /* Nothing to merge: only bytes and EOT. */
    t = tok_train(NULL, 0, 4096);
    assert_non_null(t);
    assert_int_equal(tok_vocab_size(t), 257);
    assert_int_equal(tok_eot(t), 256);
    tok_free(t);
}

static void test_training_matches_full_recount(void **state)
{
    (void)state;
    const int vocab = 600;
    int32_t want[2 * 600];
    for (int variant = 0; variant < 2; variant++) {
        size_t len = 30000;
        unsigned char *s = malloc(len);
        assert_non_null(s);
        if (variant == 0) {
            memcpy(s, held_out + 1000, len);
        } else { /* repetitive runs: overlapping pairs like "aaaa" */
            rng_state rng;
            rng_seed(&rng, 99);
            for (size_t i = 0; i < len; i++)
                s[i] = "aab  ba\n"[rng_below(&rng, rng_below(&rng, 4) ? 3 : 8)];
        }
        int n = ref_train(s, len, vocab, want);
        byte_span span = {s, len};
        tokenizer *t = tok_train(&span, 1, vocab);
        assert_non_null(t);
        assert_int_equal(tok_vocab_size(t), 257 + n);
        for (int m = 0; m < n; m++) {
            int32_t l, r;
            assert_int_equal(tok_merge_pair(t, 256 + m, &l, &r), 0);
            if (l != want[2 * m] || r != want[2 * m + 1])
                fail_msg("variant %d merge %d: (%d, %d), reference (%d, %d)", variant, m, l, r,
                         want[2 * m], want[2 * m + 1]);
        }
        tok_free(t);
        free(s);
    }
}

static void test_vocab_bounds_and_ids(void **state)
{
    (void)state;
    byte_span span = {held_out, 1000};
    const int bad[] = {-1, 0, 256, 257, 65537, 1 << 20};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err_clear();
        assert_null(tok_train(&span, 1, bad[i]));
        assert_non_null(strstr(err_message(), "vocab size"));
    }
    tokenizer *t = tok_train(&span, 1, 258);
    assert_non_null(t);
    assert_int_equal(tok_vocab_size(t), 258);
    tok_free(t);

    size_t len = 99;
    assert_int_equal(tok_eot(shared), 4095);
    const unsigned char *b = tok_token_bytes(shared, tok_eot(shared), &len);
    assert_non_null(b);
    assert_int_equal(len, 0);
    assert_null(tok_token_bytes(shared, 4096, &len));
    assert_null(tok_token_bytes(shared, -1, &len));
    b = tok_token_bytes(shared, 'Q', &len);
    assert_true(len == 1 && b[0] == 'Q');

    int32_t l, r;
    assert_int_equal(tok_merge_pair(shared, 255, &l, &r), -1);
    assert_int_equal(tok_merge_pair(shared, tok_eot(shared), &l, &r), -1);
    int32_t ids[2] = {'a', 5000};
    unsigned char out[8];
    size_t n;
    assert_int_equal(tok_decode(shared, ids, 2, out, sizeof out, &n), -1);
    assert_non_null(strstr(err_message(), "outside the vocabulary"));
    ids[1] = tok_eot(shared);
    assert_int_equal(tok_decode(shared, ids, 2, out, sizeof out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(tok_decode(shared, ids, 2, out, 0, &n), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_random_bytes),
        cmocka_unit_test(test_roundtrip_text_and_long_runs),
        cmocka_unit_test(test_pretokenize_matches_rule),
        cmocka_unit_test(test_encode_matches_reference),
        cmocka_unit_test(test_merges_stay_inside_pieces),
        cmocka_unit_test(test_compression_english),
        cmocka_unit_test(test_cache_consistent),
        cmocka_unit_test(test_serialize_roundtrip),
        cmocka_unit_test(test_golden_v1_blob),
        cmocka_unit_test(test_corrupt_blobs_rejected),
        cmocka_unit_test(test_training_deterministic_and_small_cases),
        cmocka_unit_test(test_training_matches_full_recount),
        cmocka_unit_test(test_vocab_bounds_and_ids),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
