/* Tests of the soft-label codec: round trips (ids exact, log-probs within the
 * documented bound, tail consistent), KL against a direct computation,
 * hostile blobs (truncated, patched headers, crafted payloads, random bytes)
 * rejected with a message, the wide version over vocabularies beyond 16-bit
 * ids, and the golden blobs of versions 1 and 4. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "base/err.h"
#include "base/rng.h"
#include "labels/softlabel.h"
#include "labels/softlabel_frame.h"
#include "support_fixtures.h"

typedef struct labels {
    int n_pos, k, vocab;
    int32_t *ids;
    float *lp;
} labels;

/* Random top-k of a softmax over vocab logits of the given sharpness. */
static void make_labels(labels *l, rng_state *rng, int n_pos, int k, int vocab, float sharp)
{
    l->n_pos = n_pos;
    l->k = k;
    l->vocab = vocab;
    l->ids = malloc((size_t)n_pos * k * sizeof *l->ids);
    l->lp = malloc((size_t)n_pos * k * sizeof *l->lp);
    double *logit = malloc((size_t)vocab * sizeof *logit);
    char *used = malloc((size_t)vocab);
    assert_non_null(l->ids);
    assert_non_null(l->lp);
    assert_non_null(logit);
    assert_non_null(used);
    for (int i = 0; i < n_pos; i++) {
        double max = -1e30, sum = 0.0;
        for (int v = 0; v < vocab; v++) {
            logit[v] = sharp * rng_normal(rng);
            max = logit[v] > max ? logit[v] : max;
        }
        for (int v = 0; v < vocab; v++)
            sum += exp(logit[v] - max);
        double lse = max + log(sum);
        memset(used, 0, (size_t)vocab);
        for (int r = 0; r < k; r++) {
            int best = -1;
            for (int v = 0; v < vocab; v++)
                if (!used[v] && (best < 0 || logit[v] > logit[best]))
                    best = v;
            used[best] = 1;
            l->ids[i * k + r] = best;
            l->lp[i * k + r] = (float)(logit[best] - lse);
        }
    }
    free(logit);
    free(used);
}

static void free_labels(labels *l)
{
    free(l->ids);
    free(l->lp);
}

/* Encodes l, decodes it back and checks the contract; returns the mean KL. */
static double round_trip(softlabel_codec *c, const labels *l)
{
    unsigned char *blob = NULL;
    size_t cap = 0, len = 0;
    if (softlabel_encode(c, l->ids, l->lp, l->n_pos, l->k, l->vocab, &blob, &cap, &len) < 0)
        fail_msg("%s", err_message());
    size_t n = (size_t)l->n_pos * l->k;
    int32_t *ids = malloc(n * sizeof *ids);
    float *lp = malloc(n * sizeof *lp), *tail = malloc((size_t)l->n_pos * sizeof *tail);
    int np = 0, kk = 0;
    assert_int_equal(softlabel_decode(c, blob, len, l->vocab, l->n_pos, l->k, ids, lp, tail, &np, &kk), 0);
    assert_int_equal(np, l->n_pos);
    assert_int_equal(kk, l->k);
    assert_memory_equal(ids, l->ids, n * sizeof *ids);
    double kl = 0.0;
    for (int i = 0; i < np; i++) {
        double sum_exact = 0.0, sum_dec = 0.0, kl_i = 0.0;
        for (int r = 0; r < kk; r++) {
            float want = l->lp[i * kk + r], got = lp[i * kk + r];
            assert_true(fabs((double)got - want) <= (r ? softlabel_error_bound(want) : 1.0 / 32));
            double q = exp((double)want);
            sum_exact += q;
            sum_dec += exp((double)got);
            kl_i += q * ((double)want - got);
        }
        double t_exact = 1.0 - sum_exact;
        assert_true(tail[i] >= 0.0f);
        assert_true(fabs(tail[i] - (1.0 - sum_dec)) < 1e-5);
        if (t_exact > 1e-6) {
            /* Tail and rank 0 share the rounding of the others (softlabel.md). */
            assert_true(fabs(log(tail[i] / t_exact)) <= 1.0 / 32);
            kl_i += t_exact * log(t_exact / tail[i]);
        }
        kl += kl_i;
    }
    free(blob);
    free(ids);
    free(lp);
    free(tail);
    return kl / np;
}

static void test_round_trip_shapes(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    assert_non_null(c);
    rng_state rng;
    rng_seed(&rng, 7);
    const int shapes[][3] = {   /* n_pos, k, vocab */
        {1, 1, 2}, {1, 32, 4096}, {127, 32, 4096}, {50, 64, 4096}, {20, 1, 300},
        {3, 5, 5}, {9, 64, 65536}, {40, 8, 256}, {127, 32, 300},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (float sharp = 1.0f; sharp <= 4.0f; sharp += 1.5f) {
            labels l;
            make_labels(&l, &rng, shapes[s][0], shapes[s][1], shapes[s][2], sharp);
            double kl = round_trip(c, &l);
            assert_true(kl < 5e-4);
            free_labels(&l);
        }
    }
    softlabel_codec_free(c);
}

/* Extreme values: a certain token (tail 0), ties, -inf and tiny log-probs,
 * and a flat top-k, where rank 0 absorbs the rounding of 63 tied entries. */
static void test_round_trip_extremes(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    const int k = 64;
    int32_t ids[2 * 64];
    float lp[2 * 64];
    for (int r = 0; r < k; r++) {
        ids[r] = r;
        ids[k + r] = 1000 - r;
        lp[r] = r == 0 ? 0.0f : r < 10 ? -80.0f : -INFINITY;
        lp[k + r] = logf(1.0f / k);
    }
    unsigned char *blob = NULL;
    size_t cap = 0, len = 0;
    assert_int_equal(softlabel_encode(c, ids, lp, 2, k, 1001, &blob, &cap, &len), 0);
    int32_t dids[2 * 64];
    float dlp[2 * 64], tail[2];
    int np, kk;
    assert_int_equal(softlabel_decode(c, blob, len, 1001, 2, k, dids, dlp, tail, &np, &kk), 0);
    assert_memory_equal(dids, ids, sizeof ids);
    assert_true(fabs(dlp[0]) < 1e-6);
    assert_true(dlp[1] <= -63.9f);
    assert_true(tail[0] == 0.0f);
    double sum = 0.0;
    for (int r = 0; r < k; r++) {
        if (r > 0)
            assert_true(fabs(dlp[k + r] - lp[k + r]) <= softlabel_error_bound(lp[k + r]));
        sum += exp((double)dlp[k + r]);
    }
    assert_true(fabs(sum + tail[1] - 1.0) < 1e-5);
    free(blob);
    softlabel_codec_free(c);
}

static void test_encode_rejects_bad_input(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    int32_t ids[2] = {0, 5};
    float lp[2] = {-0.1f, -3.0f};
    unsigned char *blob = NULL;
    size_t cap = 0, len = 0;
    assert_int_equal(softlabel_encode(c, ids, lp, 1, 2, 5, &blob, &cap, &len), -1);
    assert_non_null(strstr(err_message(), "id 5"));
    assert_int_equal(softlabel_encode(c, ids, lp, 0, 2, 6, &blob, &cap, &len), -1);
    assert_int_equal(softlabel_encode(c, ids, lp, 1, 0, 6, &blob, &cap, &len), -1);
    assert_int_equal(softlabel_encode(c, ids, lp, 1, 2, SOFTLABEL_MAX_VOCAB + 1, &blob, &cap, &len), -1);
    assert_non_null(strstr(err_message(), "vocab"));
    lp[1] = NAN;
    assert_int_equal(softlabel_encode(c, ids, lp, 1, 2, 6, &blob, &cap, &len), -1);
    lp[1] = 0.5f;
    assert_int_equal(softlabel_encode(c, ids, lp, 1, 2, 6, &blob, &cap, &len), -1);
    free(blob);
    softlabel_codec_free(c);
}

/* A valid blob of 30 positions at k 16, vocab 4096. */
static unsigned char *valid_blob(softlabel_codec *c, size_t *len)
{
    rng_state rng;
    rng_seed(&rng, 99);
    labels l;
    make_labels(&l, &rng, 30, 16, 4096, 3.0f);
    unsigned char *blob = NULL;
    size_t cap = 0;
    assert_int_equal(softlabel_encode(c, l.ids, l.lp, 30, 16, 4096, &blob, &cap, len), 0);
    free_labels(&l);
    return blob;
}

static int decode_into_room(softlabel_codec *c, const unsigned char *blob, size_t len, int vocab)
{
    static int32_t ids[64 * 64];
    static float lp[64 * 64], tail[64];
    int np, k;
    return softlabel_decode(c, blob, len, vocab, 64, 64, ids, lp, tail, &np, &k);
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
    struct { int at; unsigned char value; const char *message; } cases[] = {
        {0, 'X', "magic"}, {2, 2, "version"}, {3, 1, "kind"},
        {4, 31, "payload declares"},          /* n_pos 31 instead of 30 */
        {4, 0, "n_pos"}, {7, 0x80, "n_pos"},  /* 0 and beyond the format's limit */
        {8, 15, "payload declares"}, {8, 0, "k 0"}, {9, 4, "k"},
        {10, 99, "outside vocab"},            /* vocab 100: the first MTF index is too big */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char saved = blob[cases[i].at];
        blob[cases[i].at] = cases[i].value;
        if (cases[i].at == 10)
            blob[11] = 0;
        assert_int_equal(decode_into_room(c, blob, len, 4096), -1);
        if (!strstr(err_message(), cases[i].message))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err_message(), cases[i].message);
        blob[cases[i].at] = saved;
        blob[11] = 0x0f;
    }
    assert_int_equal(decode_into_room(c, blob, len, 4096), 0);
    /* The caller's vocabulary is smaller than the blob's; the room is too small. */
    assert_int_equal(decode_into_room(c, blob, len, 4000), -1);
    int32_t ids[16 * 16];
    float lp[16 * 16], tail[16];
    int np, k;
    assert_int_equal(softlabel_decode(c, blob, len, 4096, 16, 16, ids, lp, tail, &np, &k), -1);
    assert_non_null(strstr(err_message(), "exceed the room"));
    free(blob);
    softlabel_codec_free(c);
}

/* A blob with the given header and raw (uncompressed) planes. */
static size_t craft(unsigned char *out, size_t cap, int n_pos, int k, int vocab,
                    const unsigned char *raw, size_t raw_len)
{
    unsigned char h[12] = {'S', 'L', SOFTLABEL_CODEC_VERSION, 0,
                           (unsigned char)n_pos, (unsigned char)(n_pos >> 8), 0, 0,
                           (unsigned char)k, (unsigned char)(k >> 8),
                           (unsigned char)(vocab - 1), (unsigned char)((vocab - 1) >> 8)};
    memcpy(out, h, sizeof h);
    size_t z = ZSTD_compress(out + 12, cap - 12, raw, raw_len, 3);
    assert_false(ZSTD_isError(z));
    return 12 + z;
}

static void test_crafted_payloads(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    unsigned char blob[256];
    /* k 1, one position: planes id lo, id hi, tail lo, tail hi. */
    const unsigned char ok1[4] = {7, 0, 33, 0};
    size_t len = craft(blob, sizeof blob, 1, 1, 10, ok1, 4);
    assert_int_equal(decode_into_room(c, blob, len, 10), 0);
    const unsigned char big_id[4] = {10, 0, 33, 0};
    len = craft(blob, sizeof blob, 1, 1, 10, big_id, 4);
    assert_int_equal(decode_into_room(c, blob, len, 10), -1);
    assert_non_null(strstr(err_message(), "outside vocab"));
    /* k 2: id planes of rank 0 and rank 1, the gap plane of rank 1, the tail. */
    const unsigned char certain_rank2[8] = {1, 0, 2, 0, 0, 0, 33, 0};  /* rank 2 has prob 1 */
    len = craft(blob, sizeof blob, 1, 2, 10, certain_rank2, 8);
    assert_int_equal(decode_into_room(c, blob, len, 10), -1);
    assert_non_null(strstr(err_message(), "sum above 1"));
    const unsigned char deep[8] = {1, 0, 2, 0, 0xff, 0xff, 33, 0};
    len = craft(blob, sizeof blob, 1, 2, 10, deep, 8);
    assert_int_equal(decode_into_room(c, blob, len, 10), -1);
    assert_non_null(strstr(err_message(), "-64 nats"));
    len = craft(blob, sizeof blob, 1, 2, 10, deep, 7);      /* frame one byte short */
    assert_int_equal(decode_into_room(c, blob, len, 10), -1);
    assert_non_null(strstr(err_message(), "payload declares 7"));
    /* A frame without a declared size is refused before decompression. */
    craft(blob, sizeof blob, 1, 1, 10, ok1, 4);
    ZSTD_CCtx *z = ZSTD_createCCtx();
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_contentSizeFlag, 0)));
    ZSTD_outBuffer ob = {blob + 12, sizeof blob - 12, 0};
    ZSTD_inBuffer ib = {ok1, 4, 0};
    assert_int_equal(ZSTD_compressStream2(z, &ob, &ib, ZSTD_e_end), 0);
    ZSTD_freeCCtx(z);
    assert_int_equal(decode_into_room(c, blob, 12 + ob.pos, 10), -1);
    assert_non_null(strstr(err_message(), "declared size"));
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
    for (int trial = 0; trial < 3000; trial++) {
        memcpy(copy, blob, len);
        int flips = 1 + (int)rng_below(&rng, 4);
        for (int f = 0; f < flips; f++)
            copy[rng_below(&rng, len)] ^= (unsigned char)(1 + rng_below(&rng, 255));
        (void)decode_into_room(c, copy, len, 4096);   /* any outcome but a crash */
        size_t n = (size_t)rng_below(&rng, len);
        for (size_t i = 0; i < n; i++)
            copy[i] = (unsigned char)rng_next(&rng);
        assert_int_equal(decode_into_room(c, copy, n, 4096), -1);
    }
    free(copy);
    free(blob);
    softlabel_codec_free(c);
}

static void test_deterministic_bytes(void **state)
{
    (void)state;
    softlabel_codec *a = softlabel_codec_create(), *b = softlabel_codec_create();
    rng_state rng;
    rng_seed(&rng, 3);
    labels l;
    make_labels(&l, &rng, 60, 32, 1000, 2.5f);
    unsigned char *x = NULL, *y = NULL;
    size_t xc = 0, yc = 0, xl = 0, yl = 0;
    assert_int_equal(softlabel_encode(a, l.ids, l.lp, 60, 32, 1000, &x, &xc, &xl), 0);
    /* b encodes something bigger first: reused scratch must not leak into the output. */
    labels big;
    make_labels(&big, &rng, 100, 64, 1000, 1.0f);
    assert_int_equal(softlabel_encode(b, big.ids, big.lp, 100, 64, 1000, &y, &yc, &yl), 0);
    assert_int_equal(softlabel_encode(b, l.ids, l.lp, 60, 32, 1000, &y, &yc, &yl), 0);
    assert_int_equal(xl, yl);
    assert_memory_equal(x, y, xl);
    free(x);
    free(y);
    free_labels(&l);
    free_labels(&big);
    softlabel_codec_free(a);
    softlabel_codec_free(b);
}

/* Labels over a wide vocabulary: k distinct ids per position, a quarter from
 * a small pool that recurs across positions, the rest anywhere below vocab
 * (mostly >= 65536); log-probs of sorted random logits next to a tail bucket. */
static void make_wide_labels(labels *l, rng_state *rng, int n_pos, int k, int vocab)
{
    l->n_pos = n_pos;
    l->k = k;
    l->vocab = vocab;
    l->ids = malloc((size_t)n_pos * k * sizeof *l->ids);
    l->lp = malloc((size_t)n_pos * k * sizeof *l->lp);
    double *z = malloc((size_t)k * sizeof *z);
    assert_non_null(l->ids);
    assert_non_null(l->lp);
    assert_non_null(z);
    for (int i = 0; i < n_pos; i++) {
        int32_t *id = l->ids + (size_t)i * k;
        for (int r = 0; r < k; r++) {
            int fresh;
            do {
                id[r] = (int32_t)(rng_below(rng, 4) ? rng_below(rng, (uint64_t)vocab) : rng_below(rng, 16));
                fresh = 1;
                for (int q = 0; q < r; q++)
                    fresh &= id[q] != id[r];
            } while (!fresh);
            z[r] = 2.0 * rng_normal(rng);
        }
        for (int r = 1; r < k; r++)   /* descending */
            for (int q = r; q > 0 && z[q] > z[q - 1]; q--) {
                double t = z[q];
                z[q] = z[q - 1];
                z[q - 1] = t;
            }
        double sum = exp(z[k - 1] - z[0] - 1.0);   /* the tail bucket */
        for (int r = 0; r < k; r++)
            sum += exp(z[r] - z[0]);
        for (int r = 0; r < k; r++)
            l->lp[(size_t)i * k + r] = (float)(z[r] - z[0] - log(sum));
    }
    free(z);
}

static int encoded_version(softlabel_codec *c, const labels *l)
{
    unsigned char *blob = NULL;
    size_t cap = 0, len = 0;
    softlabel_info info;
    assert_int_equal(softlabel_encode(c, l->ids, l->lp, l->n_pos, l->k, l->vocab, &blob, &cap, &len), 0);
    assert_int_equal(softlabel_peek_info(blob, len, &info), 0);
    assert_int_equal(info.vocab, l->vocab);
    free(blob);
    return info.version;
}

/* Ids of 17 to 24 bits round-trip in the wide version (4); a vocabulary that
 * fits 16 bits keeps version 3. */
static void test_wide_vocab(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    assert_non_null(c);
    rng_state rng;
    rng_seed(&rng, 11);
    const int shapes[][3] = {   /* n_pos, k, vocab */
        {20, 32, 150001}, {5, 4, 65537}, {50, 8, 100000}, {1, 1, 70000}, {3, 16, SOFTLABEL_MAX_VOCAB},
        {9, 32, 65536}, {9, 32, 50257},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        labels l;
        make_wide_labels(&l, &rng, shapes[s][0], shapes[s][1], shapes[s][2]);
        assert_true(round_trip(c, &l) < 5e-4);
        int want = l.vocab > SOFTLABEL_NARROW_VOCAB ? SOFTLABEL_TOPK_WIDE_VERSION : SOFTLABEL_CODEC_VERSION;
        assert_int_equal(encoded_version(c, &l), want);
        assert_int_equal(softlabel_version_for(SOFTLABEL_KIND_TOPK, l.vocab), want);
        free_labels(&l);
    }
    softlabel_codec_free(c);
}

static int decode_wide_cut(const unsigned char *blob, size_t len)
{
    return decode_into_room(cut_codec, blob, len, 150001);
}

static void test_wide_hostile(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    rng_state rng;
    rng_seed(&rng, 12);
    labels l;
    make_wide_labels(&l, &rng, 30, 16, 150001);
    unsigned char *blob = NULL;
    size_t cap = 0, len = 0;
    assert_int_equal(softlabel_encode(c, l.ids, l.lp, 30, 16, 150001, &blob, &cap, &len), 0);
    assert_int_equal(decode_into_room(c, blob, len, 150001), 0);
    cut_codec = c;
    assert_int_equal(sfix_blob_cuts_rejected(blob, len, decode_wide_cut), 0);
    const sfix_patch narrow = {2, SOFTLABEL_CODEC_VERSION, "zstd frame"};   /* 12-byte header: the frame moves */
    assert_int_equal(sfix_patches_rejected(blob, len, &narrow, 1, decode_wide_cut), 0);
    assert_int_equal(sfix_patches_rejected(blob, len, sfix_wide_vocab_patches, SFIX_WIDE_VOCAB_PATCHES,
                                           decode_wide_cut), 0);
    assert_int_equal(decode_into_room(c, blob, len, 150001), 0);
    free(blob);
    free_labels(&l);
    softlabel_codec_free(c);
}

/* The move-to-front codes of the codec (the list for small vocabularies, the
 * Fenwick trees above) against the obvious list of 32-bit ids, coding and
 * decoding: ids that recur, ids never seen, the last id of the vocabulary. */
static void test_mtf_against_reference(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    rng_state rng;
    rng_seed(&rng, 21);
    const int vocabs[] = {1, 2, 300, 8192, 8193, 50257, 150001};
    enum { USES = 3000 };
    uint32_t *ref = malloc(sizeof *ref * 150001), ids[USES];
    unsigned codes[USES];
    assert_non_null(ref);
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) {
        int vocab = vocabs[v];
        for (int i = 0; i < vocab; i++)
            ref[i] = (uint32_t)i;
        softlabel_mtf m;
        assert_int_equal(softlabel_mtf_start(c, vocab, USES, &m), 0);
        assert_int_equal(m.tree, vocab > 8192);
        for (int u = 0; u < USES; u++) {
            uint32_t id = u == 7 ? (uint32_t)vocab - 1 : rng_below(&rng, 3) ? (uint32_t)rng_below(&rng, 40) % (uint32_t)vocab
                                                                           : (uint32_t)rng_below(&rng, (uint64_t)vocab);
            unsigned at = 0;
            while (ref[at] != id)
                at++;
            memmove(ref + 1, ref, at * sizeof *ref);
            ref[0] = id;
            ids[u] = id;
            codes[u] = softlabel_mtf_encode(&m, id);
            if (codes[u] != at)
                fail_msg("vocab %d use %d: code %u, the list says %u", vocab, u, codes[u], at);
        }
        assert_int_equal(softlabel_mtf_start(c, vocab, USES, &m), 0);
        for (int u = 0; u < USES; u++)
            assert_int_equal(softlabel_mtf_decode(&m, codes[u]), ids[u]);
    }
    free(ref);
    softlabel_codec_free(c);
}

/* The version 4 golden blob (tests/golden/softlabel_topk_v4.bin): 3
 * positions, k 4, vocab 150000, ids {3 70000 149999 65536} {70000 3 100000
 * 12} {149999 65535 3 70000}, the log-probs of the version 1 golden blob. It
 * decodes to these values and today's encoder writes it byte for byte. */
static void test_version4_golden(void **state)
{
    (void)state;
    softlabel_codec *c = softlabel_codec_create();
    const int32_t want_ids[12] = {3, 70000, 149999, 65536, 70000, 3, 100000, 12, 149999, 65535, 3, 70000};
    const float in_lp[12] = {-0.2f, -2.1f, -3.0f, -4.5f, -0.7f, -1.0f, -2.5f, -6.0f,
                             -1.3f, -1.4f, -1.5f, -1.6f};
    /* ranks >= 2 on the 1/1024-nat grid with the version 3 steps */
    const float want_lp[12] = {-0.202701584f, -2.09960938f, -3.00195312f, -4.484375f,
                               -0.703101099f, -0.99609375f, -2.49414062f, -5.99414062f,
                               -1.30918741f, -1.39648438f, -1.49609375f, -1.59570312f};
    const float want_tail[3] = {0.0f, 0.0505723096f, 0.0557257831f};
    unsigned char *blob = NULL;
    size_t cap = 0, len = 0;
    assert_int_equal(softlabel_encode(c, want_ids, in_lp, 3, 4, 150000, &blob, &cap, &len), 0);
    assert_int_equal(sfix_golden_matches("softlabel_topk_v4.bin", blob, len), 0);
    free(blob);
    blob = sfix_golden_read("softlabel_topk_v4.bin", &len);
    assert_non_null(blob);
    softlabel_info info;
    assert_int_equal(softlabel_peek_info(blob, len, &info), 0);
    assert_int_equal(info.version, SOFTLABEL_TOPK_WIDE_VERSION);
    assert_int_equal(info.kind, SOFTLABEL_KIND_TOPK);
    assert_int_equal(info.vocab, 150000);
    int32_t ids[12];
    float lp[12], tail[3];
    int np, k;
    assert_int_equal(softlabel_decode(c, blob, len, 150000, 3, 4, ids, lp, tail, &np, &k), 0);
    assert_int_equal(np, 3);
    assert_int_equal(k, 4);
    assert_memory_equal(ids, want_ids, sizeof ids);
    for (int i = 0; i < 12; i++)
        assert_true(fabsf(lp[i] - want_lp[i]) <= 1e-6f);
    for (int i = 0; i < 3; i++)
        assert_true(fabsf(tail[i] - want_tail[i]) <= 1e-6f);
    cut_codec = c;
    assert_int_equal(sfix_blob_cuts_rejected(blob, len, decode_wide_cut), 0);
    free(blob);
    softlabel_codec_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_shapes),
        cmocka_unit_test(test_round_trip_extremes),
        cmocka_unit_test(test_encode_rejects_bad_input),
        cmocka_unit_test(test_truncated_and_trailing),
        cmocka_unit_test(test_version4_golden),
        cmocka_unit_test(test_wide_vocab),
        cmocka_unit_test(test_mtf_against_reference),
        cmocka_unit_test(test_wide_hostile),
        cmocka_unit_test(test_patched_headers),
        cmocka_unit_test(test_crafted_payloads),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_deterministic_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
