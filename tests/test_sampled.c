/* Tests of sampled soft labels: the sampled blob kind round trip
 * (counts exact, canonical order, one blob per set of draws), rejection of bad
 * input and hostile blobs (truncated, patched headers, crafted payloads,
 * random bytes), their presentation through softlabel_decode, and the KD
 * loss on them against the documented formula and central finite
 * differences. End to end ($BUILD/distill and train on a tiny teacher):
 * `distill --labels sample:N` is deterministic (same seed: same rows; another
 * batch size or thread count: same labels; another seed: other draws), draws
 * from the teacher's distribution (the top-1 id's share of the draws matches
 * its probability), records its kind in meta, and train runs on the result
 * (also with --aux-conf) but refuses --kd-tail renorm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "base/err.h"
#include "nn/kd_loss.h"
#include "labels/labels_db.h"
#include "base/rng.h"
#include "labels/softlabel.h"
#include "support_fixtures.h"
#include "support_cli.h"

/* Draws of n_pos positions: ids/counts (n_pos, N) in a scrambled order with
 * count-0 entries (of arbitrary ids) mixed in, as an encoder may get them. */
typedef struct draws {
    int n_pos, n, vocab;
    int32_t *ids;
    uint8_t *counts;
} draws;

static void make_draws(draws *d, rng_state *rng, int n_pos, int n, int vocab, float sharp)
{
    d->n_pos = n_pos;
    d->n = n;
    d->vocab = vocab;
    d->ids = calloc((size_t)n_pos * n, sizeof *d->ids);
    d->counts = calloc((size_t)n_pos * n, sizeof *d->counts);
    double *w = malloc(sizeof *w * (size_t)vocab);
    int *tally = malloc(sizeof *tally * (size_t)vocab);
    assert_non_null(d->ids);
    assert_non_null(d->counts);
    assert_non_null(w);
    assert_non_null(tally);
    for (int i = 0; i < n_pos; i++) {
        double sum = 0.0;
        for (int v = 0; v < vocab; v++)
            sum += w[v] = exp(sharp * rng_normal(rng));
        memset(tally, 0, sizeof *tally * (size_t)vocab);
        for (int s = 0; s < n; s++) {
            double u = rng_uniform(rng) * sum, acc = 0.0;
            int v = 0;
            while (v < vocab - 1 && (acc += w[v]) <= u)
                v++;
            tally[v]++;
        }
        int slot = 0;
        int32_t *id = d->ids + (size_t)i * n;
        uint8_t *cnt = d->counts + (size_t)i * n;
        for (int v = 0; v < vocab; v++)
            if (tally[v]) {
                id[slot] = v;
                cnt[slot++] = (uint8_t)tally[v];
            }
        for (; slot < n; slot++)
            id[slot] = (int32_t)rng_below(rng, (uint64_t)vocab);   /* count 0: ignored */
        for (int s = n - 1; s > 0; s--) {                          /* scramble */
            int t = (int)rng_below(rng, (uint64_t)s + 1);
            int32_t ti = id[s];
            uint8_t tc = cnt[s];
            id[s] = id[t];
            cnt[s] = cnt[t];
            id[t] = ti;
            cnt[t] = tc;
        }
    }
    free(w);
    free(tally);
}

static void free_draws(draws *d)
{
    free(d->ids);
    free(d->counts);
}

static unsigned char *encode(softlabel_codec *c, const draws *d, size_t *len)
{
    unsigned char *blob = NULL;
    size_t cap = 0;
    if (softlabel_encode_sampled(c, d->ids, d->counts, d->n_pos, d->n, d->vocab, &blob, &cap, len) < 0)
        fail_msg("%s", err_message());
    return blob;
}

/* Count of id at position i of the draws (0 when not drawn). */
static int count_of(const draws *d, int i, int32_t id)
{
    for (int r = 0; r < d->n; r++)
        if (d->counts[(size_t)i * d->n + r] && d->ids[(size_t)i * d->n + r] == id)
            return d->counts[(size_t)i * d->n + r];
    return 0;
}

static void check_round_trip(softlabel_codec *c, const draws *d)
{
    size_t len, n = (size_t)d->n_pos * d->n;
    unsigned char *blob = encode(c, d, &len);
    softlabel_info info;
    assert_int_equal(softlabel_peek_info(blob, len, &info), 0);
    assert_int_equal(info.kind, SOFTLABEL_KIND_SAMPLED);
    assert_int_equal(info.version, d->vocab > SOFTLABEL_NARROW_VOCAB ? SOFTLABEL_SAMPLED_WIDE_VERSION
                                                                    : SOFTLABEL_SAMPLED_VERSION);
    assert_int_equal(info.version, softlabel_version_for(SOFTLABEL_KIND_SAMPLED, d->vocab));
    assert_int_equal(info.n_pos, d->n_pos);
    assert_int_equal(info.k, d->n);
    assert_int_equal(info.vocab, d->vocab);
    int32_t *ids = malloc(n * sizeof *ids), *ids2 = malloc(n * sizeof *ids2);
    uint8_t *counts = malloc(n);
    float *lp = malloc(n * sizeof *lp), *tail = malloc((size_t)d->n_pos * sizeof *tail);
    int np = 0, nn = 0;
    assert_int_equal(softlabel_decode_sampled(c, blob, len, d->vocab, d->n_pos, d->n, ids, counts, &np, &nn), 0);
    assert_int_equal(np, d->n_pos);
    assert_int_equal(nn, d->n);
    long pairs = 0;
    for (int i = 0; i < np; i++) {
        const int32_t *id = ids + (size_t)i * nn;
        const uint8_t *cnt = counts + (size_t)i * nn;
        int sum = 0, distinct = 0;
        for (int r = 0; r < nn; r++) {
            if (!cnt[r]) {
                assert_int_equal(id[r], id[0]);
                continue;
            }
            assert_int_equal(distinct, r);                    /* pairs first, pads after */
            assert_int_equal(cnt[r], count_of(d, i, id[r])); /* counts exact */
            if (r)                                            /* canonical order */
                assert_true(cnt[r] < cnt[r - 1] || (cnt[r] == cnt[r - 1] && id[r] > id[r - 1]));
            sum += cnt[r];
            distinct++;
        }
        assert_int_equal(sum, nn);
        for (int r = 0; r < nn; r++)   /* every drawn id is there */
            if (d->counts[(size_t)i * nn + r]) {
                int found = 0;
                for (int q = 0; q < distinct; q++)
                    found |= id[q] == d->ids[(size_t)i * nn + r];
                assert_true(found);
            }
        pairs += distinct;
    }
    assert_int_equal(info.entries, pairs);
    /* softlabel_decode: log(c / N), pads -inf repeating the first id, tail 0 */
    assert_int_equal(softlabel_decode(c, blob, len, d->vocab, d->n_pos, d->n, ids2, lp, tail, &np, &nn), 0);
    assert_int_equal(nn, d->n);
    assert_memory_equal(ids, ids2, n * sizeof *ids);
    for (size_t e = 0; e < n; e++) {
        if (counts[e])
            assert_true(lp[e] == (float)log((double)counts[e] / nn));
        else
            assert_true(isinf(lp[e]) && lp[e] < 0);
    }
    for (int i = 0; i < np; i++)
        assert_true(tail[i] == 0.0f);
    free(blob);
    free(ids);
    free(ids2);
    free(counts);
    free(lp);
    free(tail);
}

static void test_round_trip(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    assert_non_null(c);
    rng_state rng;
    rng_seed(&rng, 17);
    const int shapes[][4] = {   /* n_pos, N, vocab, sharpness x 10 */
        {1, 1, 1, 10}, {3, 1, 50, 10}, {5, 2, 2, 0}, {7, 255, 3, 5}, {40, 50, 4096, 20},
        {128, 50, 512, 30}, {9, 255, 65536, 5}, {200, 12, 100, 10}, {4, 255, 300, 0},
        {20, 50, 150001, 5}, {6, 255, 100000, 0}, {3, 8, 65537, 10},   /* the wide version */
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        draws d;
        make_draws(&d, &rng, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3] / 10.0f);
        check_round_trip(c, &d);
        free_draws(&d);
    }
    softlabel_codec_free(c);
}

/* The same draws in another entry order give the same bytes, also from a
 * codec that encoded something else first. */
static void test_canonical_bytes(void **state)
{
    (void)state;
    softlabel_codec *a = softlabel_codec_create(), *b = softlabel_codec_create();
    rng_state rng;
    rng_seed(&rng, 23);
    draws d, other;
    make_draws(&d, &rng, 60, 50, 1000, 2.0f);
    make_draws(&other, &rng, 90, 255, 3000, 1.0f);
    size_t xl, yl, ol;
    unsigned char *x = encode(a, &d, &xl);
    unsigned char *o = encode(b, &other, &ol);
    for (int i = 0; i < d.n_pos; i++) {   /* reverse each row */
        int32_t *id = d.ids + (size_t)i * d.n;
        uint8_t *cnt = d.counts + (size_t)i * d.n;
        for (int l = 0, r = d.n - 1; l < r; l++, r--) {
            int32_t ti = id[l];
            uint8_t tc = cnt[l];
            id[l] = id[r];
            cnt[l] = cnt[r];
            id[r] = ti;
            cnt[r] = tc;
        }
    }
    unsigned char *y = encode(b, &d, &yl);
    assert_int_equal(xl, yl);
    assert_memory_equal(x, y, xl);
    free(x);
    free(y);
    free(o);
    free_draws(&d);
    free_draws(&other);
    softlabel_codec_free(a);
    softlabel_codec_free(b);
}

static void test_encode_rejects_bad_input(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    unsigned char *blob = NULL;
    size_t cap = 0, len = 0;
    int32_t ids[4] = {1, 2, 3, 1};
    uint8_t counts[4] = {2, 1, 1, 0};
    assert_int_equal(softlabel_encode_sampled(c, ids, counts, 1, 4, 10, &blob, &cap, &len), 0);
    /* rows are 4 wide: the cases of N 0 and 256 are refused before any row is read */
    struct { int n_pos, n, vocab; uint8_t c3; int32_t id3; const char *message; } cases[] = {
        {1, 4, 3, 0, 1, "outside"},           /* id 3 >= vocab 3 */
        {1, 4, 10, 1, 1, "twice"},            /* id 1 with count 2 and count 1 */
        {1, 4, 10, 1, 7, "sum to 5"},
        {0, 4, 10, 0, 1, "n_pos"},
        {1, 0, 10, 0, 1, "samples"},
        {1, 256, 10, 0, 1, "samples"},
        {1, 4, 0, 0, 1, "vocab"},
        {1, 4, SOFTLABEL_MAX_VOCAB + 1, 0, 1, "vocab"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        counts[3] = cases[i].c3;
        ids[3] = cases[i].id3;
        assert_int_equal(softlabel_encode_sampled(c, ids, counts, cases[i].n_pos, cases[i].n, cases[i].vocab,
                                                  &blob, &cap, &len), -1);
        if (!strstr(err_message(), cases[i].message))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err_message(), cases[i].message);
    }
    int32_t neg[2] = {-1, 0};
    uint8_t two[2] = {1, 1};
    assert_int_equal(softlabel_encode_sampled(c, neg, two, 1, 2, 10, &blob, &cap, &len), -1);
    free(blob);
    softlabel_codec_free(c);
}

static unsigned char *valid_blob(softlabel_codec *c, size_t *len)
{
    rng_state rng;
    rng_seed(&rng, 31);
    draws d;
    make_draws(&d, &rng, 30, 50, 4096, 2.0f);
    unsigned char *blob = encode(c, &d, len);
    free_draws(&d);
    return blob;
}

static int decode_into_room(softlabel_codec *c, const unsigned char *blob, size_t len, int vocab)
{
    static int32_t ids[64 * 64], ids2[64 * 64];
    static float lp[64 * 64], tail[64];
    static uint8_t counts[64 * 64];
    int np, k, np2, k2;
    int a = softlabel_decode(c, blob, len, vocab, 64, 64, ids, lp, tail, &np, &k);
    char message[512];
    snprintf(message, sizeof message, "%s", err_message());
    int b = softlabel_decode_sampled(c, blob, len, vocab, 64, 64, ids2, counts, &np2, &k2);
    /* both entry points validate alike */
    if (a == 0 && b == 0) {
        assert_memory_equal(ids, ids2, (size_t)np * k * sizeof *ids);
        for (int i = 0; i < np; i++)
            assert_true(tail[i] == 0.0f);
    }
    if ((a == 0) != (b == 0) && !strstr(err_message(), "not sampled"))
        fail_msg("decode %d (%s) but decode_sampled %d (%s)", a, message, b, err_message());
    if (a < 0)
        err_set("%s", message);
    return a;
}

/* The codec sfix_blob_cuts_rejected decodes with (it takes only the blob). */
static softlabel_codec *cut_codec;

static int decode_cut(const unsigned char *blob, size_t len)
{
    return decode_into_room(cut_codec, blob, len, 4096);
}

static void test_truncated_and_trailing(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    size_t len;
    unsigned char *blob = valid_blob(c, &len);
    assert_int_equal(decode_into_room(c, blob, len, 4096), 0);
    cut_codec = c;
    assert_int_equal(sfix_blob_cuts_rejected(blob, len, decode_cut), 0);
    free(blob);
    softlabel_codec_free(c);
}

static void test_patched_headers(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    size_t len;
    unsigned char *blob = valid_blob(c, &len);
    unsigned saved_entries = blob[12] | (unsigned)blob[13] << 8;
    struct { int at; unsigned char value; const char *message; } cases[] = {
        {2, 1, "kind 1 for codec version 1"}, {2, 3, "version 3"}, {3, 0, "kind 0 for codec version 2"},
        {3, 2, "kind 2"}, {4, 0, "n_pos"}, {7, 0x80, "n_pos"},
        {8, 0, "samples"}, {9, 1, "samples"},                  /* N 0 and N 256 + 50 */
        {8, 49, "count 0"},                       /* N 49: a position's last count of 1 becomes 0 */
        {10, 99, "outside vocab"},                              /* vocab 100 */
        {12, 0, "entries"}, {15, 0x40, "entries"},              /* D 0 and D huge */
        {12, 1, "payload declares"},                            /* D changed in range */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char saved = blob[cases[i].at], saved11 = blob[11], saved13 = blob[13];
        blob[cases[i].at] = cases[i].value;
        if (cases[i].at == 10)
            blob[11] = 0;
        if (cases[i].at == 12 && cases[i].value == 0)
            blob[13] = 0;
        if (cases[i].at == 12 && cases[i].value == 1)
            blob[12] = (unsigned char)(saved_entries - 1);
        assert_int_equal(decode_into_room(c, blob, len, 4096), -1);
        if (!strstr(err_message(), cases[i].message))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err_message(), cases[i].message);
        blob[cases[i].at] = saved;
        blob[11] = saved11;
        blob[13] = saved13;
    }
    assert_int_equal(decode_into_room(c, blob, len, 4096), 0);
    assert_int_equal(decode_into_room(c, blob, len, 4000), -1);   /* the caller's vocab is smaller */
    int32_t ids[64 * 49];
    float lp[64 * 49], tail[64];
    int np, k;
    assert_int_equal(softlabel_decode(c, blob, len, 4096, 64, 49, ids, lp, tail, &np, &k), -1);
    assert_non_null(strstr(err_message(), "exceed the room"));
    free(blob);
    softlabel_codec_free(c);
}

static int decode_wide_cut(const unsigned char *blob, size_t len)
{
    return decode_into_room(cut_codec, blob, len, 150001);
}

/* A wide (version 5) blob: cut, patched and pointed at a smaller vocabulary. */
static void test_wide_hostile(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    rng_state rng;
    rng_seed(&rng, 37);
    draws d;
    make_draws(&d, &rng, 30, 50, 150001, 1.0f);
    size_t len;
    unsigned char *blob = encode(c, &d, &len);
    assert_int_equal(decode_into_room(c, blob, len, 150001), 0);
    cut_codec = c;
    assert_int_equal(sfix_blob_cuts_rejected(blob, len, decode_wide_cut), 0);
    const sfix_patch cases[] = {
        {2, SOFTLABEL_SAMPLED_VERSION, "entries"},     /* a 16-byte header: D read from the vocab field */
        {14, 0, "payload declares"}, {17, 0x40, "entries"},   /* D changed in range, D huge */
    };
    assert_int_equal(sfix_patches_rejected(blob, len, cases, sizeof cases / sizeof cases[0], decode_wide_cut), 0);
    assert_int_equal(sfix_patches_rejected(blob, len, sfix_wide_vocab_patches, SFIX_WIDE_VOCAB_PATCHES,
                                           decode_wide_cut), 0);
    assert_int_equal(decode_into_room(c, blob, len, 150001), 0);
    free(blob);
    free_draws(&d);
    softlabel_codec_free(c);
}

/* The version 5 golden blob (tests/golden/softlabel_sampled_v5.bin): 3
 * positions of N 8 over vocab 150000, {70000: 5, 3: 2, 149999: 1},
 * {65536: 8}, {12: 2, 70000: 2, 100000: 2, 149999: 2}. It decodes to these
 * counts in canonical order and today's encoder writes it byte for byte. */
static void test_version5_golden(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    const int32_t in_ids[24] = {3, 149999, 70000, 0, 0, 0, 0, 0,
                                65536, 0, 0, 0, 0, 0, 0, 0,
                                149999, 100000, 70000, 12, 0, 0, 0, 0};
    const uint8_t in_counts[24] = {2, 1, 5, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0};
    const int32_t want_ids[24] = {70000, 3, 149999, 70000, 70000, 70000, 70000, 70000,
                                  65536, 65536, 65536, 65536, 65536, 65536, 65536, 65536,
                                  12, 70000, 100000, 149999, 12, 12, 12, 12};
    const uint8_t want_counts[24] = {5, 2, 1, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0};
    unsigned char *blob = NULL;
    size_t cap = 0, len = 0;
    assert_int_equal(softlabel_encode_sampled(c, in_ids, in_counts, 3, 8, 150000, &blob, &cap, &len), 0);
    assert_int_equal(sfix_golden_matches("softlabel_sampled_v5.bin", blob, len), 0);
    free(blob);
    blob = sfix_golden_read("softlabel_sampled_v5.bin", &len);
    assert_non_null(blob);
    softlabel_info info;
    assert_int_equal(softlabel_peek_info(blob, len, &info), 0);
    assert_int_equal(info.version, SOFTLABEL_SAMPLED_WIDE_VERSION);
    assert_int_equal(info.kind, SOFTLABEL_KIND_SAMPLED);
    assert_int_equal(info.vocab, 150000);
    assert_int_equal(info.entries, 8);
    int32_t ids[24];
    uint8_t counts[24];
    int np, n;
    assert_int_equal(softlabel_decode_sampled(c, blob, len, 150000, 3, 8, ids, counts, &np, &n), 0);
    assert_int_equal(np, 3);
    assert_int_equal(n, 8);
    assert_memory_equal(ids, want_ids, sizeof ids);
    assert_memory_equal(counts, want_counts, sizeof counts);
    cut_codec = c;
    assert_int_equal(sfix_blob_cuts_rejected(blob, len, decode_wide_cut), 0);
    free(blob);
    softlabel_codec_free(c);
}

/* A sampled blob with the given header fields and raw planes. */
static size_t craft(unsigned char *out, size_t cap, int n_pos, int n, int vocab, unsigned entries,
                    const unsigned char *raw, size_t raw_len)
{
    unsigned char h[16] = {'S', 'L', SOFTLABEL_SAMPLED_VERSION, SOFTLABEL_KIND_SAMPLED,
                           (unsigned char)n_pos, (unsigned char)(n_pos >> 8), 0, 0,
                           (unsigned char)n, (unsigned char)(n >> 8),
                           (unsigned char)(vocab - 1), (unsigned char)((vocab - 1) >> 8),
                           (unsigned char)entries, (unsigned char)(entries >> 8), 0, 0};
    memcpy(out, h, sizeof h);
    size_t z = ZSTD_compress(out + 16, cap - 16, raw, raw_len, 3);
    assert_false(ZSTD_isError(z));
    return 16 + z;
}

static void test_crafted_payloads(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    unsigned char blob[256];
    /* Planes: d - 1 (n), id lo (D), id hi (D), counts but the last (D - n).
     * One position, N 5, two pairs: MTF indexes 3 then 3 (ids 3, 2: the list
     * after moving 3 to the front is 3 0 1 2 4 ...), counts 3 + implied 2. */
    const unsigned char ok[] = {1, 3, 3, 0, 0, 3};
    size_t len = craft(blob, sizeof blob, 1, 5, 10, 2, ok, sizeof ok);
    int32_t ids[16];
    uint8_t counts[16];
    int np, n;
    assert_int_equal(softlabel_decode_sampled(c, blob, len, 10, 4, 16, ids, counts, &np, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(ids[0], 3);
    assert_int_equal(ids[1], 2);
    assert_int_equal(counts[0], 3);
    assert_int_equal(counts[1], 2);
    assert_int_equal(counts[2], 0);
    assert_int_equal(ids[4], 3);
    struct { const unsigned char raw[8]; size_t len; int n_pos, n; unsigned entries; const char *message; } cases[] = {
        {{1, 3, 3, 0, 0, 2}, 6, 1, 5, 2, "canonical"},        /* counts 2, then implied 3 */
        {{1, 3, 3, 0, 0, 0}, 6, 1, 5, 2, "count 0"},
        {{1, 3, 3, 0, 0, 5}, 6, 1, 5, 2, "count 0"},          /* implied last 0 */
        {{1, 3, 3, 0, 0, 9}, 6, 1, 5, 2, "count -4"},
        {{1, 10, 3, 0, 0, 3}, 6, 1, 5, 2, "outside vocab"},
        {{1, 3, 0, 0, 0, 3}, 6, 1, 5, 2, "twice"},            /* index 0 after 3: id 3 again */
        {{5, 3, 3, 0, 0, 3}, 6, 1, 5, 2, "distinct"},         /* d 6 > N 5 */
        {{1, 0, 3, 3, 0, 0, 0, 0}, 6, 2, 5, 2, "pairs beyond"}, /* position 0 takes both pairs */
        {{0, 0, 3, 3, 0, 0}, 6, 2, 5, 3, "payload declares"},
        {{0, 0, 0, 3, 0, 0, 0, 0}, 8, 1, 5, 1, "payload declares"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        len = craft(blob, sizeof blob, cases[i].n_pos, cases[i].n, 10, cases[i].entries, cases[i].raw,
                    cases[i].len);
        assert_int_equal(softlabel_decode_sampled(c, blob, len, 10, 4, 16, ids, counts, &np, &n), -1);
        if (!strstr(err_message(), cases[i].message))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err_message(), cases[i].message);
    }
    /* equal counts need ascending ids: ids 3 then 2 with counts 2, 2 (N 4) */
    const unsigned char tie_desc[] = {1, 3, 3, 0, 0, 2};
    len = craft(blob, sizeof blob, 1, 4, 10, 2, tie_desc, sizeof tie_desc);
    assert_int_equal(softlabel_decode_sampled(c, blob, len, 10, 4, 16, ids, counts, &np, &n), -1);
    assert_non_null(strstr(err_message(), "canonical"));
    const unsigned char tie_asc[] = {1, 2, 3, 0, 0, 2};   /* ids 2, 3 (list 2 0 1 3 ...) */
    len = craft(blob, sizeof blob, 1, 4, 10, 2, tie_asc, sizeof tie_asc);
    assert_int_equal(softlabel_decode_sampled(c, blob, len, 10, 4, 16, ids, counts, &np, &n), 0);
    /* a top-k blob is not sampled */
    int32_t tid[2] = {1, 2};
    float tlp[2] = {-0.5f, -1.5f};
    unsigned char *tb = NULL;
    size_t tcap = 0, tlen = 0;
    assert_int_equal(softlabel_encode(c, tid, tlp, 1, 2, 10, &tb, &tcap, &tlen), 0);
    assert_int_equal(softlabel_decode_sampled(c, tb, tlen, 10, 4, 16, ids, counts, &np, &n), -1);
    assert_non_null(strstr(err_message(), "not sampled"));
    free(tb);
    softlabel_codec_free(c);
}

static void test_random_bytes(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    size_t len;
    unsigned char *blob = valid_blob(c, &len);
    rng_state rng;
    rng_seed(&rng, 5);
    unsigned char *copy = malloc(len);
    for (int trial = 0; trial < 2000; trial++) {
        memcpy(copy, blob, len);
        int flips = 1 + (int)rng_below(&rng, 4);
        for (int f = 0; f < flips; f++)
            copy[rng_below(&rng, len)] ^= (unsigned char)(1 + rng_below(&rng, 255));
        (void)decode_into_room(c, copy, len, 4096);   /* any outcome but a crash */
        size_t n = (size_t)rng_below(&rng, len);
        for (size_t i = 16; i < n; i++)
            copy[i] = (unsigned char)rng_next(&rng);
        (void)decode_into_room(c, copy, n, 4096);
    }
    /* random planes behind a valid header and frame: decoded or rejected, never a crash */
    unsigned char raw[3 * 40], crafted[512];
    for (int trial = 0; trial < 2000; trial++) {
        for (size_t i = 0; i < sizeof raw; i++)
            raw[i] = (unsigned char)rng_below(&rng, trial % 2 ? 4 : 256);
        size_t cl = craft(crafted, sizeof crafted, 10, 1 + (int)rng_below(&rng, 8), 7, 40, raw, sizeof raw);
        (void)decode_into_room(c, crafted, cl, 4096);
    }
    free(copy);
    free(blob);
    softlabel_codec_free(c);
}

/* tau^2 * (sum (c/N) log(c/N) - sum (c/N) log softmax(z / tau)), double. */
static double sampled_reference(const double *z, int V, const int32_t *ids, const uint8_t *counts, int n,
                                double tau)
{
    double m = z[0], sum = 0.0;
    for (int j = 1; j < V; j++)
        m = fmax(m, z[j]);
    for (int j = 0; j < V; j++)
        sum += exp((z[j] - m) / tau);
    double kd = 0.0;
    for (int r = 0; r < n; r++) {
        if (!counts[r])
            continue;
        double q = (double)counts[r] / n;
        kd += q * (log(q) - ((z[ids[r]] - m) / tau - log(sum)));
    }
    return tau * tau * kd;
}

/* The KD of a decoded sampled position (pads of q = 0, tail 0) equals the
 * documented formula, and its gradient the finite differences of it. */
static void test_sampled_kd_gradient(void **state)
{
    (void)state;
    enum { V = 40, N = 50 };
    softlabel_codec *c = softlabel_codec_create();
    rng_state rng;
    rng_seed(&rng, 41);
    for (int trial = 0; trial < 6; trial++) {
        draws d;
        make_draws(&d, &rng, 1, trial % 3 ? N : 3, V, trial % 2 ? 2.5f : 0.5f);
        int n = d.n;
        size_t len;
        unsigned char *blob = encode(c, &d, &len);
        int32_t ids[N], ids2[N];
        float lp[N], tail;
        uint8_t counts[N];
        int np, k;
        assert_int_equal(softlabel_decode(c, blob, len, V, 1, N, ids, lp, &tail, &np, &k), 0);
        assert_int_equal(softlabel_decode_sampled(c, blob, len, V, 1, N, ids2, counts, &np, &k), 0);
        for (int ti = 0; ti < 2; ti++) {
            float tau = ti ? 2.0f : 1.0f, z[V];
            double zd[V];
            for (int j = 0; j < V; j++)
                zd[j] = z[j] = 1.5f * rng_normal(&rng);
            double ref = sampled_reference(zd, V, ids2, counts, n, tau);
            double got = kd_loss_position(z, V, ids, lp, tail, n, tau, KD_TAIL_BUCKET, 1.0f);
            if (!(fabs(got - ref) <= 1e-5 * (1.0 + fabs(ref))))
                fail_msg("trial %d tau %g: KD %.9g, formula %.9g", trial, tau, got, ref);
            const double h = 1e-4;
            double gsum = 0.0;
            for (int j = 0; j < V; j++) {
                assert_true(isfinite(z[j]));
                gsum += z[j];
                double save = zd[j];
                zd[j] = save + h;
                double up = sampled_reference(zd, V, ids2, counts, n, tau);
                zd[j] = save - h;
                double down = sampled_reference(zd, V, ids2, counts, n, tau);
                zd[j] = save;
                double fd = (up - down) / (2 * h);
                if (fabs(z[j] - fd) > 1e-4 + 1e-3 * fabs(fd))
                    fail_msg("trial %d tau %g j %d: analytic %.8g, finite difference %.8g", trial, tau, j,
                             z[j], fd);
            }
            assert_true(fabs(gsum) < 1e-4);
        }
        free(blob);
        free_draws(&d);
    }
    softlabel_codec_free(c);
}

/* ---- end to end: distill --labels sample:N, then train ---- */

enum { E2E_N = 20, E2E_VOCAB = 300 };

typedef struct e2e {
    char *dir, *gt, *teacher;
} e2e;

static e2e fx;

static int e2e_setup(void **state)
{
    (void)state;
    fx.dir = scli_tempdir("sampled");
    if (!fx.dir)
        return -1;
    fx.gt = scli_path(fx.dir, "gt.txt");
    fx.teacher = scli_path(fx.dir, "teacher.ckpt");
    if (!fx.gt || !fx.teacher || scli_write_fortunes(fx.gt, 3, 60) < 0 ||
        scli_make_teacher(fx.gt, fx.teacher, 20, E2E_VOCAB) < 0)
        return -1;
    return 0;
}

static int e2e_teardown(void **state)
{
    (void)state;
    int rc = scli_rmtree(fx.dir);
    free(fx.dir);
    free(fx.gt);
    free(fx.teacher);
    return rc;
}

/* Runs distill into dir/name with the given --labels, --seed, --batch and
 * --threads; fails the test unless it succeeds. */
static char *distill_into(const char *name, const char *labels, const char *seed, const char *batch,
                          const char *threads)
{
    char *db = scli_path(fx.dir, name);
    assert_non_null(db);
    const char *argv[] = {"distill", "--teacher", fx.teacher, "--db", db, "--input", fx.gt, "--records",
                          "fortune", "--labels", labels, "--seed", seed, "--batch", batch, "--threads",
                          threads, "--quiet", NULL};
    scli_result r;
    assert_int_equal(scli_run(argv, &r), 0);
    if (r.status != 0)
        fail_msg("distill %s exited %d: %s", labels, r.status, r.err);
    scli_result_free(&r);
    return db;
}

/* The rows of a labels.db, one string per row, in identity order. */
typedef struct rows {
    char **text;
    unsigned char **blob;
    int *blob_len;
    int n;
} rows;

static void read_rows(const char *db_path, int with_stats, rows *out)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT source, member, record_index, window, hex(tokens), "
                                        "mean_nll, mean_entropy, mean_tail_mass, mean_top1_prob, topk "
                                        "FROM sequences ORDER BY source, member, record_index, window",
                                        -1, &st, NULL), SQLITE_OK);
    memset(out, 0, sizeof *out);
    while (sqlite3_step(st) == SQLITE_ROW) {
        out->text = realloc(out->text, sizeof *out->text * (size_t)(out->n + 1));
        out->blob = realloc(out->blob, sizeof *out->blob * (size_t)(out->n + 1));
        out->blob_len = realloc(out->blob_len, sizeof *out->blob_len * (size_t)(out->n + 1));
        assert_non_null(out->text);
        assert_non_null(out->blob);
        assert_non_null(out->blob_len);
        char *t = sqlite3_mprintf("%s|%s|%lld|%d|%s", sqlite3_column_text(st, 0), sqlite3_column_text(st, 1),
                                  (long long)sqlite3_column_int64(st, 2), sqlite3_column_int(st, 3),
                                  sqlite3_column_text(st, 4));
        if (with_stats)
            t = sqlite3_mprintf("%z|%.17g|%.17g|%.17g|%.17g", t, sqlite3_column_double(st, 5),
                                sqlite3_column_double(st, 6), sqlite3_column_double(st, 7),
                                sqlite3_column_double(st, 8));
        out->text[out->n] = t;
        int len = sqlite3_column_bytes(st, 9);
        out->blob[out->n] = malloc((size_t)len + 1);
        memcpy(out->blob[out->n], sqlite3_column_blob(st, 9), (size_t)len);
        out->blob_len[out->n++] = len;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_true(out->n > 10);
}

static void free_rows(rows *r)
{
    for (int i = 0; i < r->n; i++) {
        sqlite3_free(r->text[i]);
        free(r->blob[i]);
    }
    free(r->text);
    free(r->blob);
    free(r->blob_len);
}

/* @return the number of rows whose blobs differ (identities must match). */
static int blobs_differing(const rows *a, const rows *b)
{
    assert_int_equal(a->n, b->n);
    int differ = 0;
    for (int i = 0; i < a->n; i++) {
        assert_string_equal(a->text[i], b->text[i]);
        differ += a->blob_len[i] != b->blob_len[i] || memcmp(a->blob[i], b->blob[i], (size_t)a->blob_len[i]);
    }
    return differ;
}

static void test_distill_sampled_deterministic(void **state)
{
    (void)state;
    char *a = distill_into("a.db", "sample:20", "1", "3", "1");
    char *a2 = distill_into("a2.db", "sample:20", "1", "3", "1");
    char *b = distill_into("b.db", "sample:20", "1", "7", "2");
    char *c = distill_into("c.db", "sample:20", "2", "3", "1");
    rows ra, ra2, rb, rc;
    read_rows(a, 1, &ra);
    read_rows(a2, 1, &ra2);
    assert_int_equal(blobs_differing(&ra, &ra2), 0);   /* with the statistics, bit for bit */
    free_rows(&ra);
    read_rows(a, 0, &ra);   /* another batch or thread count: same labels (statistics may round apart) */
    read_rows(b, 0, &rb);
    read_rows(c, 0, &rc);
    assert_int_equal(blobs_differing(&ra, &rb), 0);
    assert_true(blobs_differing(&ra, &rc) > ra.n / 2);
    labels_db *db = labels_db_open_read(a);
    assert_non_null(db);
    labels_meta m;
    assert_int_equal(labels_db_meta(db, &m), 0);
    assert_string_equal(m.label_kind, "sample:20");
    assert_int_equal(m.k, E2E_N);
    assert_int_equal(m.codec_version, SOFTLABEL_SAMPLED_VERSION);
    assert_string_equal(m.sample_seed, "1");
    labels_meta_free(&m);
    labels_db_close(db);
    /* Resuming with another seed would mix two sets of draws: refused. */
    const char *argv[] = {"distill", "--teacher", fx.teacher, "--db", a, "--input", fx.gt, "--records",
                          "fortune", "--labels", "sample:20", "--seed", "2", "--quiet", NULL};
    scli_result r;
    assert_int_equal(scli_run(argv, &r), 0);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "labels drawn with --seed 1, not 2"));
    scli_result_free(&r);
    free_rows(&ra);
    free_rows(&ra2);
    free_rows(&rb);
    free_rows(&rc);
    free(a);
    free(a2);
    free(b);
    free(c);
}

/* The share of the draws that hit the teacher's top-1 id (from a topk:1
 * database of the same text) matches the top-1 probability on average. */
static void test_distill_draws_follow_teacher(void **state)
{
    (void)state;
    char *s = distill_into("s.db", "sample:20", "5", "4", "1");
    char *t = distill_into("t.db", "topk:1", "1", "4", "1");
    rows rs, rt;
    read_rows(s, 0, &rs);
    read_rows(t, 0, &rt);
    assert_int_equal(rs.n, rt.n);
    softlabel_codec *c = softlabel_codec_create();
    static int32_t ids[64 * E2E_N], top[64];
    static uint8_t counts[64 * E2E_N];
    static float lp[64], tail[64];
    double hits = 0.0, p_top = 0.0;
    long positions = 0;
    for (int i = 0; i < rs.n; i++) {
        assert_string_equal(rs.text[i], rt.text[i]);
        int np, n, np1, k1;
        assert_int_equal(softlabel_decode_sampled(c, rs.blob[i], (size_t)rs.blob_len[i], E2E_VOCAB, 64, E2E_N,
                                                  ids, counts, &np, &n), 0);
        assert_int_equal(softlabel_decode(c, rt.blob[i], (size_t)rt.blob_len[i], E2E_VOCAB, 64, 1, top, lp,
                                          tail, &np1, &k1), 0);
        assert_int_equal(np, np1);
        for (int p = 0; p < np; p++) {
            int sum = 0;
            for (int r = 0; r < n; r++) {
                sum += counts[p * n + r];
                if (counts[p * n + r] && ids[p * n + r] == top[p])
                    hits += counts[p * n + r];
            }
            assert_int_equal(sum, E2E_N);
            p_top += exp((double)lp[p]);
            positions++;
        }
    }
    double share = hits / ((double)positions * E2E_N), want = p_top / (double)positions;
    double sigma = 0.5 / sqrt((double)positions * E2E_N);
    if (fabs(share - want) > 6 * sigma + 0.002)
        fail_msg("top-1 share of the draws %.4f, mean top-1 probability %.4f (%ld positions)", share, want,
                 positions);
    softlabel_codec_free(c);
    free_rows(&rs);
    free_rows(&rt);
    free(s);
    free(t);
}

static int train_on(const char *db, const char *extra1, const char *extra2, scli_result *r)
{
    char *out = scli_path(fx.dir, "student.ckpt");
    const char *argv[] = {"train", "--gt", fx.gt, "--records", "fortune", "--labels", db, "--out", out,
                          "--layers", "1", "--heads", "2", "--channels", "32", "--seq", "32", "--steps", "4",
                          "--batch", "2", "--kd-batch", "2", "--threads", "1", "--quiet", "--json",
                          extra1, extra2, NULL};
    int rc = scli_run(argv, r);
    free(out);
    return rc;
}

static void test_train_on_sampled(void **state)
{
    (void)state;
    char *db = distill_into("train.db", "sample:20", "1", "4", "1");
    scli_result r;
    assert_int_equal(train_on(db, "--aux-conf", "0.5", &r), 0);
    if (r.status != 0)
        fail_msg("train exited %d: %s", r.status, r.err);
    assert_non_null(strstr(r.out, "\"kd_loss\""));
    scli_result_free(&r);
    assert_int_equal(train_on(db, "--kd-tail", "bucket", &r), 0);
    assert_int_equal(r.status, 0);
    scli_result_free(&r);
    assert_int_equal(train_on(db, "--kd-tail", "renorm", &r), 0);
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "sampled"));
    scli_result_free(&r);
    /* forward KL only: the others need the teacher off the sample's support */
    assert_int_equal(train_on(db, "--kd-loss", "rkl", &r), 0);
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "sampled"));
    assert_non_null(strstr(r.err, "fkl"));
    scli_result_free(&r);
    assert_int_equal(train_on(db, "--kd-weight", "conf", &r), 0);
    assert_int_equal(r.status, 0);
    scli_result_free(&r);
    free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_canonical_bytes),
        cmocka_unit_test(test_encode_rejects_bad_input),
        cmocka_unit_test(test_truncated_and_trailing),
        cmocka_unit_test(test_patched_headers),
        cmocka_unit_test(test_wide_hostile),
        cmocka_unit_test(test_version5_golden),
        cmocka_unit_test(test_crafted_payloads),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_sampled_kd_gradient),
    };
    const struct CMUnitTest e2e_tests[] = {
        cmocka_unit_test(test_distill_sampled_deterministic),
        cmocka_unit_test(test_distill_draws_follow_teacher),
        cmocka_unit_test(test_train_on_sampled),
    };
    int failed = cmocka_run_group_tests_name("sampled codec and loss", tests, NULL, NULL);
    return failed + cmocka_run_group_tests_name("sampled distill and train", e2e_tests, e2e_setup,
                                                e2e_teardown);
}
