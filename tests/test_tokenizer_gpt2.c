/* Tests of the GPT-2 kind tokenizer: GPT-2's real vocabulary
 * (tests/data/gpt2/encoder.json + vocab.bpe) against golden encodings made
 * by two independent GPT-2 encoders (tests/data/gpt2/make_golden.js), for
 * varied valid text and for invalid UTF-8; pieces against the Python regex
 * module's on hand-picked cases; BPE of long pieces against a slow
 * reference; exact round trips of any bytes; the version 2 blob (golden file,
 * canonical round trip, corrupt blobs refused); vocab.json + merges.txt
 * saved and loaded back identically, and malformed files refused with the
 * file and the problem named; ids beyond 65535; tokenizer.json read like the
 * two files, and refused when its pipeline is not GPT-2's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/rng.h"
#include "text/tok_gpt2.h"
#include "support_cli.h"
#include "support_tok.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define DATA "tests/data/gpt2/"
#define GPT2_VOCAB DATA "encoder.json"
#define GPT2_MERGES DATA "vocab.bpe"
#define TINY_VOCAB DATA "tiny_vocab.json"
#define TINY_MERGES DATA "tiny_merges.txt"
#define TINY_BLOB DATA "tiny_v2.tok"
/* tok_hash of GPT-2 loaded from the two files: pins the version 2 form. */
#define GPT2_HASH 0xa74b5a0a58ca3695ULL

static tokenizer *gpt2;  /* loaded once from the real files */
static char *tmp;        /* a scratch directory */

static int setup(void **state)
{
    (void)state;
    gpt2 = tok_gpt2_load(GPT2_VOCAB, GPT2_MERGES);
    if (!gpt2)
        fprintf(stderr, "%s\n", err_message());
    tmp = scli_tempdir("tokgpt2");
    return gpt2 && tmp ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tok_free(gpt2);
    scli_rmtree(tmp);
    free(tmp);
    return 0;
}

static unsigned char *read_data(const char *path, size_t *len)
{
    unsigned char *data = NULL;
    if (file_read_all(path, &data, len) < 0)
        fail_msg("%s", err_message());
    return data;
}

/* The whitespace-separated ids of a golden .ids file; *n receives the count. */
static int32_t *read_ids(const char *path, size_t *n)
{
    size_t len;
    char *text = (char *)read_data(path, &len);
    int32_t *ids = malloc((len / 2 + 1) * sizeof *ids);
    assert_non_null(ids);
    size_t k = 0;
    for (char *p = text, *end; *p; p = end) {
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        ids[k++] = (int32_t)v;
    }
    free(text);
    *n = k;
    return ids;
}

/* stok_roundtrip, asserted. @return the id count. */
static size_t check_roundtrip(tokenizer *t, const unsigned char *s, size_t len, int32_t *ids)
{
    size_t n;
    assert_int_equal(stok_roundtrip(t, s, len, ids, &n), 0);
    return n;
}

/* text_path encoded by t must give exactly the ids of ids_path. */
static void check_golden(tokenizer *t, const char *text_path, const char *ids_path)
{
    size_t len, n_want;
    unsigned char *text = read_data(text_path, &len);
    int32_t *want = read_ids(ids_path, &n_want);
    int32_t *got = malloc((len + 1) * sizeof *got);
    assert_non_null(got);
    size_t n = check_roundtrip(t, text, len, got);
    for (size_t i = 0; i < n && i < n_want; i++)
        if (got[i] != want[i])
            fail_msg("%s: id %zu is %d, the golden %d", text_path, i, got[i], want[i]);
    assert_int_equal(n, n_want);
    free(got);
    free(want);
    free(text);
}

static void test_golden_text(void **state)
{
    (void)state;
    check_golden(gpt2, DATA "golden.txt", DATA "golden.ids");
}

static void test_golden_invalid_utf8(void **state)
{
    (void)state;
    check_golden(gpt2, DATA "golden_invalid.bin", DATA "golden_invalid.ids");
}

static void test_loaded_vocabulary(void **state)
{
    (void)state;
    assert_int_equal(tok_kind(gpt2), TOK_KIND_GPT2);
    assert_int_equal(tok_vocab_size(gpt2), 50257);
    assert_int_equal(tok_eot(gpt2), 50256);
    assert_true(tok_hash(gpt2) == GPT2_HASH);
    size_t len;
    const unsigned char *b = tok_token_bytes(gpt2, 50256, &len);
    assert_true(b && len == 0);
    b = tok_token_bytes(gpt2, 0, &len);
    assert_true(len == 1 && b[0] == '!');
    b = tok_token_bytes(gpt2, 220, &len);
    assert_true(len == 1 && b[0] == ' ');
    b = tok_token_bytes(gpt2, 198, &len);
    assert_true(len == 1 && b[0] == '\n');
    assert_null(tok_token_bytes(gpt2, 50257, &len));
    /* GPT-2 numbers merge r's result 256 + r: every merge spells its result. */
    for (int32_t id = 256; id < 50256; id++) {
        int32_t l, r;
        size_t nl, nr, n;
        assert_int_equal(tok_merge_pair(gpt2, id, &l, &r), 0);
        const unsigned char *bl = tok_token_bytes(gpt2, l, &nl), *br = tok_token_bytes(gpt2, r, &nr);
        b = tok_token_bytes(gpt2, id, &n);
        assert_true(l < id && r < id && n == nl + nr);
        assert_memory_equal(b, bl, nl);
        assert_memory_equal(b + nl, br, nr);
    }
    int32_t l, r;
    assert_int_equal(tok_merge_pair(gpt2, 64, &l, &r), -1); /* 'a', a byte */
    assert_int_equal(tok_merge_pair(gpt2, 50256, &l, &r), -1);
}

/* Pieces by the Python regex module (GPT-2's engine) for the same pattern. */
static void test_pieces_match_python_regex(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int lens[8];
    } cases[] = {
        {"'s", {2}},
        {"'S", {1, 1}},
        {"'ll've", {3, 3}},
        {" hello world", {6, 6}},
        {"  hello", {1, 6}},
        {"a   b", {1, 2, 2}},
        {"a\n\nb", {1, 1, 1, 1}},
        {"x\xc2\x85\xc2\x85z", {1, 2, 2, 1}},         /* U+0085 is \s */
        {"!\xc2\x85", {1, 2}},
        {"!\xef\xbb\xbf", {4}},                       /* U+FEFF is not */
        {" \xef\xbb\xbf" "b", {4, 1}},
        {"e\xcc\x81", {1, 2}},                        /* a combining mark */
        {"123456", {6}},
        {" 42x", {3, 1}},
        {"\t\tx", {1, 1, 1}},
        {"a \t b", {1, 2, 2}},
        {"\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c", {6, 3, 6}},
        {"\xf0\x9f\x98\x80\xf0\x9f\x98\x80 ok", {8, 3}},
        {"\xe2\x85\xab\xc2\xbd", {5}},                /* Nl then No: both \p{N} */
        {"a\xc2\xa0" "b", {1, 2, 1}},
        {"  \n  ", {5}},
        {"x  ", {1, 2}},
        {"<|endoftext|>", {2, 9, 2}},
        /* Invalid UTF-8: one piece per byte, read by no match. */
        {"ab\xff" "cd", {2, 1, 2}},
        {"  \xff  ", {2, 1, 2}},
        {"'\xff" "s", {1, 1, 1}},
        {"\xe4\xbd", {1, 1}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const unsigned char *s = (const unsigned char *)cases[k].text;
        size_t len = strlen(cases[k].text), pos = 0;
        for (int i = 0; cases[k].lens[i]; i++) {
            size_t n = tok_first_piece(gpt2, s + pos, len - pos);
            if (n != (size_t)cases[k].lens[i])
                fail_msg("case %zu piece %d: %zu bytes, Python's %d", k, i, n, cases[k].lens[i]);
            pos += n;
        }
        assert_int_equal(pos, len);
    }
    assert_int_equal(tok_first_piece(gpt2, NULL, 0), 0);
}

/* The merges of GPT-2 as a sorted table of (left << 32 | right, rank), for
 * the reference below. GPT-2's merge r makes id 256 + r (checked in
 * test_loaded_vocabulary). */
typedef struct ref_pair {
    uint64_t key;
    int32_t rank;
} ref_pair;

static int ref_pair_cmp(const void *a, const void *b)
{
    uint64_t x = ((const ref_pair *)a)->key, y = ((const ref_pair *)b)->key;
    return x < y ? -1 : x > y;
}

/* Slow reference BPE: the single-byte ids, then, as long as some adjacent
 * pair is a merge, merge the lowest-ranked one, leftmost first. */
static size_t ref_bpe(const unsigned char *p, size_t n, const int32_t *byte_id, const ref_pair *pairs,
                      int32_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = byte_id[p[i]];
    for (;;) {
        size_t best = n;
        int32_t best_rank = INT32_MAX;
        for (size_t i = 0; i + 1 < n; i++) {
            ref_pair want = {(uint64_t)(uint32_t)out[i] << 32 | (uint32_t)out[i + 1], 0};
            const ref_pair *hit = bsearch(&want, pairs, 50000, sizeof *pairs, ref_pair_cmp);
            if (hit && hit->rank < best_rank) {
                best_rank = hit->rank;
                best = i;
            }
        }
        if (best == n)
            return n;
        out[best] = 256 + best_rank;
        memmove(out + best + 1, out + best + 2, (n - best - 2) * sizeof *out);
        n--;
    }
}

static void test_long_pieces_match_reference(void **state)
{
    (void)state;
    ref_pair *pairs = malloc(50000 * sizeof *pairs);
    assert_non_null(pairs);
    for (int32_t r = 0; r < 50000; r++) {
        int32_t l, rt;
        assert_int_equal(tok_merge_pair(gpt2, 256 + r, &l, &rt), 0);
        pairs[r] = (ref_pair){(uint64_t)(uint32_t)l << 32 | (uint32_t)rt, r};
    }
    qsort(pairs, 50000, sizeof *pairs, ref_pair_cmp);
    int32_t byte_id[256];
    for (int32_t id = 0; id < 50256; id++) {
        size_t n;
        const unsigned char *b = tok_token_bytes(gpt2, id, &n);
        if (n == 1)
            byte_id[b[0]] = id;
    }
    rng_state rng;
    rng_seed(&rng, 7);
    /* One-piece texts: letter runs (common letters, so that merges happen)
     * and digit runs, short (the rank array) and long (the heap). */
    static const char letters[] = "etaoinshrdlucmfwyp", digits[] = "0123456789";
    const size_t lens[] = {2, 5, 47, 48, 49, 120, 300};
    unsigned char s[300];
    int32_t got[300], want[300];
    for (int kind = 0; kind < 2; kind++)
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++)
            for (int rep = 0; rep < 3; rep++) {
                size_t n = lens[li];
                for (size_t i = 0; i < n; i++)
                    s[i] = kind ? (unsigned char)digits[rng_below(&rng, 10)]
                                : (unsigned char)letters[rng_below(&rng, sizeof letters - 1)];
                assert_int_equal(tok_first_piece(gpt2, s, n), n);
                size_t ng = tok_encode(gpt2, s, n, got), nw = ref_bpe(s, n, byte_id, pairs, want);
                assert_int_equal(ng, nw);
                assert_memory_equal(got, want, ng * sizeof *got);
            }
    free(pairs);
}

static void test_roundtrip_any_bytes(void **state)
{
    (void)state;
    rng_state rng;
    rng_seed(&rng, 11);
    size_t big = 1u << 20;
    unsigned char *s = malloc(big);
    int32_t *ids = malloc(big * sizeof *ids);
    assert_true(s && ids);
    /* Random bytes (NUL and invalid UTF-8 included), then text from a mixed
     * alphabet of single- and multi-byte characters. */
    static const char *alphabet[] = {" ", "  ", "\n", "\t", "a", "Z", "7", "'s", "'", ".", "\0",
                                     "\xc3\xa9", "\xce\xb1", "\xe4\xbd\xa0", "\xf0\x9f\x98\x80",
                                     "\xcc\x81", "\xc2\x85", "\xe3\x80\x80", "\xff", "\xc3", "\x80"};
    for (int round = 0; round < 200; round++) {
        size_t len = rng_below(&rng, 400);
        if (round % 2) {
            for (size_t i = 0; i < len; i++)
                s[i] = (unsigned char)rng_below(&rng, 256);
        } else {
            size_t n = 0;
            while (n + 4 < len) {
                const char *c = alphabet[rng_below(&rng, sizeof alphabet / sizeof *alphabet)];
                size_t cl = c[0] ? strlen(c) : 1;
                memcpy(s + n, c, cl);
                n += cl;
            }
            len = n;
        }
        check_roundtrip(gpt2, s, len, ids);
    }
    /* Runs that are one piece each: letters, digits, spaces, punctuation,
     * CJK; and 1 MB of random bytes. */
    const char *runs[] = {"ab", "09", " ", "!?", "\xe5\xa4\xa9"};
    for (size_t k = 0; k < sizeof runs / sizeof *runs; k++) {
        size_t rl = strlen(runs[k]), len = 200000 / rl * rl;
        for (size_t i = 0; i < len; i++)
            s[i] = (unsigned char)runs[k][i % rl];
        check_roundtrip(gpt2, s, len, ids);
    }
    for (size_t i = 0; i < big; i++)
        s[i] = (unsigned char)rng_below(&rng, 256);
    check_roundtrip(gpt2, s, big, ids);
    free(s);
    free(ids);
}

static unsigned char *blob_of(const tokenizer *t, size_t *len)
{
    unsigned char *blob;
    assert_int_equal(tok_serialize(t, &blob, len), 0);
    return blob;
}

static void test_serialize_roundtrip(void **state)
{
    (void)state;
    size_t len, len2;
    unsigned char *blob = blob_of(gpt2, &len);
    assert_memory_equal(blob, "W2STOK\x02\x00\x02\x00", 10);
    assert_true(XXH3_64bits(blob, len) == tok_hash(gpt2));
    tokenizer *t = tok_deserialize(blob, len);
    assert_non_null(t);
    assert_true(tok_hash(t) == tok_hash(gpt2));
    assert_int_equal(tok_kind(t), TOK_KIND_GPT2);
    assert_int_equal(tok_eot(t), 50256);
    unsigned char *blob2 = blob_of(t, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(blob, blob2, len);
    check_golden(t, DATA "golden.txt", DATA "golden.ids");
    tok_free(t);
    free(blob);
    free(blob2);
}

/* The version 2 golden file is the tiny vocabulary's blob. */
static void test_golden_v2_blob(void **state)
{
    (void)state;
    size_t len, golden_len;
    unsigned char *golden = read_data(TINY_BLOB, &golden_len);
    tokenizer *t = tok_deserialize(golden, golden_len);
    assert_non_null(t);
    assert_int_equal(tok_vocab_size(t), 267);
    assert_int_equal(tok_eot(t), 266);
    assert_true(tok_hash(t) == XXH3_64bits(golden, golden_len));
    int32_t ids[16];
    const int32_t want[] = {262, 220, 66, 265, 264, 265}; /* " the" " " "c" "at" " s" "at" */
    assert_int_equal(tok_encode(t, (const unsigned char *)" the cat sat", 12, ids), 6);
    assert_memory_equal(ids, want, sizeof want);
    tokenizer *from_files = tok_gpt2_load(TINY_VOCAB, TINY_MERGES);
    assert_non_null(from_files);
    unsigned char *blob = blob_of(from_files, &len);
    assert_int_equal(len, golden_len);
    assert_memory_equal(blob, golden, len);
    free(blob);
    tok_free(from_files);
    tok_free(t);
    free(golden);
}

static void reseal(unsigned char *blob, size_t len)
{
    uint64_t h = XXH3_64bits(blob, len - 8);
    for (int i = 0; i < 8; i++)
        blob[len - 8 + i] = (unsigned char)(h >> (8 * i));
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void expect_reject(const unsigned char *blob, size_t len, const char *fragment)
{
    err_clear();
    tokenizer *t = tok_deserialize(blob, len);
    if (t)
        fail_msg("corrupt blob accepted (expected \"%s\")", fragment);
    if (!strstr(err_message(), fragment) || !strstr(err_message(), "tokenizer blob"))
        fail_msg("message \"%s\" lacks \"%s\"", err_message(), fragment);
}

static void test_corrupt_v2_blobs_rejected(void **state)
{
    (void)state;
    size_t len;
    unsigned char *blob = read_data(TINY_BLOB, &len);
    unsigned char *c = malloc(len + 4);
    assert_non_null(c);
    /* Layout of the tiny blob: V 267, M 10, S 1, B = 256 + 22 + 13. */
    const size_t lens = 30, bytes = lens + 4 * 267, merges = bytes + 256 + 22 + 13, specials = merges + 120;
    assert_int_equal(len, specials + 4 + 8);

    for (size_t cut = 0; cut < len; cut++)
        expect_reject(blob, cut, "truncated");
    memcpy(c, blob, len);
    memset(c + len, 0, 4);
    expect_reject(c, len + 4, "trailing bytes");
    for (size_t i = 0; i < len; i++) {
        memcpy(c, blob, len);
        c[i] ^= 0x10;
        expect_reject(c, len, "");
    }
    memcpy(c, blob, len);
    c[bytes + 3] ^= 1;
    expect_reject(c, len, "checksum mismatch");

    struct {
        size_t at, width; /* a u16 or u32 field */
        uint32_t value;
        const char *fragment;
    } damage[] = {
        {8, 2, TOK_KIND_BYTE_BPE, "kind 1"},
        {8, 2, 7, "kind 7"},
        {10, 4, 256, "vocab size 256"},
        {18, 4, 0, "0 special tokens"},
        {22, 4, 265, "end-of-text id 265 is not a special token"},
        {26, 4, 256 + 22 + 12, "trailing bytes"},
        {lens + 4 * 266, 4, 12, "do not add up"},
        {merges + 8, 4, 257, "is not token"},                   /* merge 0 made "Ġa" */
        {merges + 4, 4, 266, "special token 266"},
        {merges, 4, 300, "outside the vocabulary"},
        {specials, 4, 300, "special token id 300"},
    };
    for (size_t k = 0; k < sizeof damage / sizeof *damage; k++) {
        memcpy(c, blob, len);
        put32(c + damage[k].at, damage[k].value);
        if (damage[k].width == 2)
            memcpy(c + damage[k].at + 2, blob + damage[k].at + 2, 2);
        reseal(c, len);
        expect_reject(c, len, damage[k].fragment);
    }
    /* Merge 9 a copy of merge 8; token 5 of no bytes (token 6 of two). */
    memcpy(c, blob, len);
    memcpy(c + merges + 12 * 9, c + merges + 12 * 8, 12);
    reseal(c, len);
    expect_reject(c, len, "repeats the pair");
    memcpy(c, blob, len);
    put32(c + lens + 4 * 5, 0);
    put32(c + lens + 4 * 6, 2);
    reseal(c, len);
    expect_reject(c, len, "token 5 has no bytes");
    /* Token 0 ("!") spelled "\"": two tokens with the same bytes, and no '!'. */
    memcpy(c, blob, len);
    c[bytes] = '"';
    reseal(c, len);
    expect_reject(c, len, "same bytes");
    free(c);
    free(blob);
}

static char *tmp_path(const char *name)
{
    char *p = scli_path(tmp, name);
    assert_non_null(p);
    return p;
}

static void test_save_load_roundtrip(void **state)
{
    (void)state;
    char *vocab = tmp_path("vocab.json"), *merges = tmp_path("merges.txt");
    assert_int_equal(tok_gpt2_save(gpt2, vocab, merges), 0);
    tokenizer *t = tok_gpt2_load(vocab, merges);
    assert_non_null(t);
    assert_true(tok_hash(t) == tok_hash(gpt2));
    tok_free(t);

    /* The tiny files are in the saved form byte for byte. */
    tokenizer *tiny = tok_gpt2_load(TINY_VOCAB, TINY_MERGES);
    assert_non_null(tiny);
    assert_int_equal(tok_gpt2_save(tiny, vocab, merges), 0);
    const char *pairs[2][2] = {{TINY_VOCAB, vocab}, {TINY_MERGES, merges}};
    for (int k = 0; k < 2; k++) {
        size_t la, lb;
        unsigned char *a = read_data(pairs[k][0], &la), *b = read_data(pairs[k][1], &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
        free(a);
        free(b);
    }
    tok_free(tiny);

    /* A byte BPE tokenizer cannot be expressed in these files. */
    byte_span span = {(const unsigned char *)"the cat sat on the mat", 22};
    tokenizer *own = tok_train(&span, 1, 260);
    assert_non_null(own);
    err_clear();
    assert_int_equal(tok_gpt2_save(own, vocab, merges), -1);
    assert_non_null(strstr(err_message(), "pre-split rule"));
    tok_free(own);
    free(vocab);
    free(merges);
}

/* Writes text to tmp/name. @return the malloc'ed path. */
static char *write_tmp(const char *name, const char *text, size_t len)
{
    char *p = tmp_path(name);
    assert_int_equal(scli_write_file(p, text, len), 0);
    return p;
}

/* Copy of the tiny file at path with the first occurrence of from replaced
 * by to (from must occur). */
static char *edited(const char *path, const char *from, const char *to, size_t *out_len)
{
    size_t len;
    unsigned char *data;
    assert_int_equal(file_read_all(path, &data, &len), 0);
    const char *text = (const char *)data, *at = strstr(text, from);
    if (!at)
        fail_msg("%s lacks \"%s\"", path, from);
    size_t head = (size_t)(at - text), fl = strlen(from), tl = strlen(to);
    char *out = malloc(len - fl + tl + 1);
    assert_non_null(out);
    memcpy(out, text, head);
    memcpy(out + head, to, tl);
    memcpy(out + head + tl, text + head + fl, len - head - fl + 1);
    *out_len = len - fl + tl;
    free(data);
    return out;
}

static void expect_load_refused(const char *vocab, const char *merges, const char *file, const char *fragment)
{
    err_clear();
    tokenizer *t = tok_gpt2_load(vocab, merges);
    if (t)
        fail_msg("accepted (expected \"%s\")", fragment);
    if (!strstr(err_message(), file) || !strstr(err_message(), fragment))
        fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", err_message(), file, fragment);
}

static void test_malformed_files_refused(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to, *fragment;
    } vocab_edits[] = {
        {"{", "[", "line 1"},                                   /* bad JSON */
        {"{\"!\":0,", "{\"!\":\"0\",", "id is not an integer"},
        {"\"!\":0", "\"!\":-1", "id is not an integer"},
        {"\"!\":0", "\"!\":16777216", "id is not an integer"},
        {"\"!\":0", "\"!\":267", "id 0 has no token"},
        {"\"!\":0", "\"!\":1", "id 1 is used by both"},
        {"\"!\":0", "\"\\u20ac\":0", "byte 0xe2 starts no character"},
        {"\"<|endoftext|>\":266", "\"<|end|>\":266", "no special token <|endoftext|>"},
        {"\"\xc4\x80\":188", "\"<|x|>\":188", "byte 0x00 has no token"},  /* U+0100 = byte 0 */
        {"\"!\":0", "\"!\":0,\"!\":0", "duplicate"},
        {"\"Ġthe\":262", "\"Ġthe\":262,\"!!\":300", "id 267 has no token"},
    };
    static const struct {
        const char *from, *to, *fragment;
    } merge_edits[] = {
        {"h e\n", "he\n", "line 4: \"he\" is not two tokens"},
        {"h e\n", "h  e\n", "line 4: \"h  e\" is not two tokens"},
        {"h e\n", "h e x\n", "is not two tokens"},
        {"h e\n", "\n", "line 4: \"\" is not two tokens"},
        {"h e\n", "hh e\n", "its left token is not in the vocabulary"},
        {"h e\n", "h ee\n", "its right token is not in the vocabulary"},
        {"h e\n", "h q\n", "\"h q\": the merged token is not in the vocabulary"},
        {"h e\n", "h \xe2\x82\xac\n", "character"},
        {"h e\n", "h \xff\n", "byte 0xff"},
        {"a t\n", "a t\nh e\n", "repeats the pair"},
    };
    size_t len;
    for (size_t k = 0; k < sizeof vocab_edits / sizeof *vocab_edits; k++) {
        char *text = edited(TINY_VOCAB, vocab_edits[k].from, vocab_edits[k].to, &len);
        char *p = write_tmp("bad_vocab.json", text, len);
        expect_load_refused(p, TINY_MERGES, p, vocab_edits[k].fragment);
        free(text);
        free(p);
    }
    for (size_t k = 0; k < sizeof merge_edits / sizeof *merge_edits; k++) {
        char *text = edited(TINY_MERGES, merge_edits[k].from, merge_edits[k].to, &len);
        char *p = write_tmp("bad_merges.txt", text, len);
        expect_load_refused(TINY_VOCAB, p, p, merge_edits[k].fragment);
        free(text);
        free(p);
    }
    /* Missing files, and a vocab.json that is not an object of tokens. */
    expect_load_refused(DATA "no_such_vocab.json", TINY_MERGES, "no_such_vocab.json", "");
    expect_load_refused(TINY_VOCAB, DATA "no_such_merges.txt", "no_such_merges.txt", "");
    char *p = write_tmp("array.json", "[1, 2]", 6);
    expect_load_refused(p, TINY_MERGES, p, "not a JSON object");
    free(p);
    /* "\r\n" line ends and no header are accepted, and load the same. */
    char *text = edited(TINY_MERGES, "#version: 0.2\n", "", &len);
    p = write_tmp("bare_merges.txt", text, len);
    tokenizer *a = tok_gpt2_load(TINY_VOCAB, p), *b = tok_gpt2_load(TINY_VOCAB, TINY_MERGES);
    assert_true(a && b && tok_hash(a) == tok_hash(b));
    tok_free(a);
    free(text);
    free(p);
    text = edited(TINY_MERGES, "h e\n", "h e\r\n", &len);
    p = write_tmp("crlf_merges.txt", text, len);
    a = tok_gpt2_load(TINY_VOCAB, p);
    assert_true(a && tok_hash(a) == tok_hash(b));
    tok_free(a);
    tok_free(b);
    free(text);
    free(p);
}

/* GPT-2's byte-to-unicode spelling of byte b, JSON-escaped, appended at *w. */
static void spell(unsigned char b, char *out, size_t *w)
{
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    unsigned cp = (unsigned)b;
    if (!printable) {
        cp = 256;
        for (unsigned x = 0; x < b; x++)
            cp += !((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE));
    }
    if (cp == '"' || cp == '\\')
        out[(*w)++] = '\\';
    if (cp < 0x80) {
        out[(*w)++] = (char)cp;
    } else {
        out[(*w)++] = (char)(0xC0 | cp >> 6);
        out[(*w)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* A vocabulary of 70,261 ids: the bytes, 70,000 three-byte tokens no merge
 * makes, then "he" "ll" "hell" "hello" (ids 70256..70259) and EOT. */
static void test_ids_beyond_65535(void **state)
{
    (void)state;
    const int n_filler = 70000;
    char *json = malloc(20u << 20);
    assert_non_null(json);
    size_t w = 0;
    json[w++] = '{';
    for (int id = 0; id < 256; id++) {
        json[w++] = '"';
        spell((unsigned char)id, json, &w);
        w += (size_t)sprintf(json + w, "\":%d,", id);
    }
    for (int i = 0; i < n_filler; i++) {
        json[w++] = '"';
        for (int k = 2; k >= 0; k--)
            spell((unsigned char)(i >> (8 * k)), json, &w);
        w += (size_t)sprintf(json + w, "\":%d,", 256 + i);
    }
    int base = 256 + n_filler;
    w += (size_t)sprintf(json + w, "\"he\":%d,\"ll\":%d,\"hell\":%d,\"hello\":%d,\"<|endoftext|>\":%d}", base,
                         base + 1, base + 2, base + 3, base + 4);
    static const char merges_text[] = "#version: 0.2\nh e\nl l\nhe ll\nhell o\n";
    char *vocab = write_tmp("big_vocab.json", json, w), *merges = write_tmp("big_merges.txt", merges_text,
                                                                             sizeof merges_text - 1);
    tokenizer *t = tok_gpt2_load(vocab, merges);
    if (!t)
        fail_msg("%s", err_message());
    assert_int_equal(tok_vocab_size(t), base + 5);
    assert_int_equal(tok_eot(t), base + 4);
    int32_t ids[64];
    const unsigned char text[] = "hello hell he";
    size_t n = check_roundtrip(t, text, sizeof text - 1, ids);
    assert_int_equal(n, 5); /* "hello" " " "hell" " " "he" */
    assert_true(ids[0] == base + 3 && ids[2] == base + 2 && ids[4] == base);
    size_t len;
    unsigned char *blob = blob_of(t, &len);
    tokenizer *u = tok_deserialize(blob, len);
    assert_non_null(u);
    assert_true(tok_hash(u) == tok_hash(t));
    assert_int_equal(tok_encode(u, text, sizeof text - 1, ids), 5);
    assert_int_equal(ids[0], base + 3);
    assert_int_equal(tok_gpt2_save(u, vocab, merges), 0);
    tokenizer *v = tok_gpt2_load(vocab, merges);
    assert_true(v && tok_hash(v) == tok_hash(t));
    tok_free(v);
    tok_free(u);
    tok_free(t);
    free(blob);
    free(vocab);
    free(merges);
    free(json);
}

/* A tokenizer.json as Hugging Face writes GPT-2's, from vocab and merges
 * files; merges as "a b" strings, or as ["a", "b"] pairs. */
static json_t *tokenizer_json(const char *vocab_path, const char *merges_path, int pairs)
{
    json_error_t jerr;
    json_t *vocab = json_load_file(vocab_path, 0, &jerr), *merges = json_array();
    size_t len = 0;
    unsigned char *data = NULL;
    assert_true(vocab && merges);
    assert_int_equal(file_read_all(merges_path, &data, &len), 0);
    char *text = (char *)data;
    /* Every line after the header is "left right\n". */
    for (size_t at = (size_t)(strchr(text, '\n') - text) + 1; at < len;) {
        size_t space = at + strcspn(text + at, " "), end = space + strcspn(text + space, "\n");
        text[space] = text[end] = '\0';
        json_array_append_new(merges, pairs ? json_pack("[ss]", text + at, text + space + 1)
                                            : json_pack("s++", text + at, " ", text + space + 1));
        at = end + 1;
    }
    free(text);
    json_int_t eot = json_integer_value(json_object_get(vocab, "<|endoftext|>"));
    json_t *added = json_pack("[{s:I,s:s,s:b,s:b}]", "id", eot, "content", "<|endoftext|>", "special", 1,
                              "normalized", 1);
    json_t *pre = json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1,
                            "use_regex", 1);
    json_t *model = json_pack("{s:s,s:n,s:n,s:s,s:s,s:b,s:o,s:o}", "type", "BPE", "dropout", "unk_token",
                              "continuing_subword_prefix", "", "end_of_word_suffix", "", "fuse_unk", 0, "vocab",
                              vocab, "merges", merges);
    json_t *root = json_pack("{s:o,s:n,s:o,s:o}", "added_tokens", added, "normalizer", "pre_tokenizer", pre,
                             "model", model);
    assert_non_null(root);
    return root;
}

static char *write_json(const char *name, json_t *root)
{
    char *p = tmp_path(name);
    assert_int_equal(json_dump_file(root, p, JSON_COMPACT), 0);
    return p;
}

static void expect_tokenizer_json_refused(json_t *root, const char *fragment)
{
    char *p = write_json("bad_tokenizer.json", root);
    err_clear();
    tokenizer *t = tok_gpt2_load_tokenizer_json(p);
    if (t)
        fail_msg("accepted (expected \"%s\")", fragment);
    if (!strstr(err_message(), p) || !strstr(err_message(), fragment))
        fail_msg("message \"%s\" lacks \"%s\"", err_message(), fragment);
    free(p);
}

static void test_tokenizer_json(void **state)
{
    (void)state;
    /* GPT-2's, both merge spellings: the same tokenizer as the two files. */
    for (int pairs = 0; pairs < 2; pairs++) {
        json_t *root = tokenizer_json(GPT2_VOCAB, GPT2_MERGES, pairs);
        char *p = write_json("tokenizer.json", root);
        tokenizer *t = tok_gpt2_load_tokenizer_json(p);
        if (!t)
            fail_msg("%s", err_message());
        assert_true(tok_hash(t) == GPT2_HASH);
        tok_free(t);
        json_decref(root);
        free(p);
    }
    /* A special token past the model vocabulary extends it. */
    json_t *root = tokenizer_json(TINY_VOCAB, TINY_MERGES, 1);
    json_t *added = json_object_get(root, "added_tokens");
    json_array_append_new(added, json_pack("{s:i,s:s,s:b}", "id", 267, "content", "<|im_start|>", "special", 1));
    char *p = write_json("tokenizer.json", root);
    tokenizer *t = tok_gpt2_load_tokenizer_json(p);
    assert_non_null(t);
    assert_int_equal(tok_vocab_size(t), 268);
    assert_int_equal(tok_eot(t), 266);
    size_t len;
    assert_non_null(tok_token_bytes(t, 267, &len));
    assert_int_equal(len, 0);
    int32_t ids[32];
    const unsigned char text[] = "<|im_start|> the";
    /* Ordinary text: "<|" "im" "_" "start" "|>" " the" in 13 ids. */
    assert_int_equal(check_roundtrip(t, text, sizeof text - 1, ids), 13);
    char *vocab = tmp_path("v.json"), *merges = tmp_path("m.txt");
    err_clear();
    assert_int_equal(tok_gpt2_save(t, vocab, merges), -1);
    assert_non_null(strstr(err_message(), "only one special token"));
    tok_free(t);
    json_decref(root);
    free(vocab);
    free(merges);
    free(p);

    /* What w2s would not encode the same way is refused by name. */
    static const struct {
        const char *field, *key;
        const char *json, *fragment;
    } edits[] = {
        {"model", "type", "\"WordPiece\"", "model.type is \"WordPiece\""},
        {"model", "ignore_merges", "true", "model.ignore_merges is set"},
        {"model", "dropout", "0.1", "model.dropout is set"},
        {"model", "continuing_subword_prefix", "\"##\"", "continuing_subword_prefix is set"},
        {"model", "merges", "[\"h e\", 7]", "model.merges[1] is neither"},
        {"model", "merges", "[[\"h\", \"q\"]]", "model.merges[0]: \"h q\": the merged token"},
        {"model", "vocab", "[]", "model.vocab is not a JSON object"},
        {"pre_tokenizer", "type", "\"Sequence\"", "pre_tokenizer.type is \"Sequence\""},
        {"pre_tokenizer", "add_prefix_space", "true", "add_prefix_space"},
        {NULL, "normalizer", "{\"type\": \"NFC\"}", "normalizer is set"},
        {NULL, "added_tokens", "[{\"id\": 266, \"content\": \"<|endoftext|>\", \"special\": false}]",
         "is not special"},
        {NULL, "added_tokens", "[{\"id\": 265, \"content\": \"<|endoftext|>\", \"special\": true}]",
         "has the id 265 of \"at\""},
        {NULL, "added_tokens", "[{\"id\": 300, \"content\": \"<|x|>\", \"special\": true}]",
         "id 267 has no token"},
        {NULL, "added_tokens", "[]", "no special token <|endoftext|>"},
    };
    for (size_t k = 0; k < sizeof edits / sizeof *edits; k++) {
        root = tokenizer_json(TINY_VOCAB, TINY_MERGES, 0);
        json_error_t jerr;
        json_t *value = json_loads(edits[k].json, JSON_DECODE_ANY, &jerr);
        assert_non_null(value);
        json_t *parent = edits[k].field ? json_object_get(root, edits[k].field) : root;
        json_object_set_new(parent, edits[k].key, value);
        expect_tokenizer_json_refused(root, edits[k].fragment);
        json_decref(root);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_text),
        cmocka_unit_test(test_golden_invalid_utf8),
        cmocka_unit_test(test_loaded_vocabulary),
        cmocka_unit_test(test_pieces_match_python_regex),
        cmocka_unit_test(test_long_pieces_match_reference),
        cmocka_unit_test(test_roundtrip_any_bytes),
        cmocka_unit_test(test_serialize_roundtrip),
        cmocka_unit_test(test_golden_v2_blob),
        cmocka_unit_test(test_corrupt_v2_blobs_rejected),
        cmocka_unit_test(test_save_load_roundtrip),
        cmocka_unit_test(test_malformed_files_refused),
        cmocka_unit_test(test_ids_beyond_65535),
        cmocka_unit_test(test_tokenizer_json),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
