/* Golden files: one committed file per version of every file format
 * (tests/golden/, how each was made in tests/golden/README.md) -- the
 * soft-label blobs top-k v1, top-k v3 and sampled v2 (schemas/softlabel.md),
 * checkpoint format 1 with and without its optional sections, the train
 * state inside it (schemas/checkpoint.md, train/train_state.h) and the
 * tokenizer blob (schemas/tokenizer.md), and the per-position file of
 * train --eval --positions (schemas/positions.md). Each is decoded and every decoded
 * value checked against the values written here; the formats the current
 * writers produce are written again from those values and must give the same
 * bytes. A failure means files written before would stop loading, or the
 * writers changed the bytes: either is a new format version. Run from the
 * repository root (as `make test` does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "../train/positions.h"
#include "../train/train_state.h"
#include "base/bytes.h"
#include "base/fileio.h"
#include "labels/softlabel.h"
#include "nn/checkpoint.h"
#include "support_cli.h"
#include "support_fixtures.h"
#include "text/tokenizer.h"

/* The bytes of tests/golden/name (malloc'ed). */
static unsigned char *golden(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, "tests/golden/%s", name);
    unsigned char *data;
    assert_int_equal(file_read_all(path, &data, len), 0);
    return data;
}

/* ---- soft-label blobs ---- */

/* The top-k labels both top-k goldens were encoded from: 3 positions, k 4,
 * vocab 20. Position 0's probabilities sum to more than 1 (split code 0,
 * tail 0); the others leave a tail of about 5%. */
static const int32_t topk_ids[12] = {3, 7, 0, 19, 7, 3, 12, 0, 19, 18, 3, 7};
static const float topk_lp[12] = {-0.2f, -2.1f, -3.0f, -4.5f, -0.7f, -1.0f,
                                  -2.5f, -6.0f, -1.3f, -1.4f, -1.5f, -1.6f};

static softlabel_codec *cut_codec;

static int decode_cut(const unsigned char *blob, size_t len)
{
    int32_t ids[16 * 8];
    float lp[16 * 8], tail[16];
    int n_pos, k;
    return softlabel_decode(cut_codec, blob, len, 20, 16, 8, ids, lp, tail, &n_pos, &k);
}

/* Loads a soft-label golden of 3 positions and vocab 20 and checks its
 * header bytes (the first header_len of the blob) and what softlabel_peek_info
 * reads from them: version, kind, k and the number of entries. */
static unsigned char *golden_blob(const char *name, const unsigned char *header, size_t header_len,
                                  int version, softlabel_kind kind, int k, long entries, size_t *len)
{
    unsigned char *blob = golden(name, len);
    assert_memory_equal(blob, header, header_len);
    softlabel_info info;
    assert_int_equal(softlabel_peek_info(blob, *len, &info), 0);
    assert_int_equal(info.version, version);
    assert_int_equal(info.kind, kind);
    assert_int_equal(info.n_pos, 3);
    assert_int_equal(info.k, k);
    assert_int_equal(info.vocab, 20);
    assert_int_equal(info.entries, entries);
    return blob;
}

/* What a writer produced again equals the golden bytes. */
static void assert_same_bytes(const unsigned char *got, size_t got_len, const unsigned char *want,
                              size_t len)
{
    assert_int_equal(got_len, len);
    assert_memory_equal(got, want, len);
}

/* Decodes a top-k golden and checks its header, ids, log-probs (ranks >= 1
 * exactly -units/1024, rank 0 within 1e-6) and tails. */
static void check_topk(const char *name, int version, const int units[9], const float rank0[3],
                       const float want_tail[3])
{
    size_t len;
    const unsigned char header[12] = {'S', 'L', (unsigned char)version, 0, 3, 0, 0, 0, 4, 0, 19, 0};
    unsigned char *blob = golden_blob(name, header, sizeof header, version, SOFTLABEL_KIND_TOPK, 4,
                                      12, &len);
    softlabel_codec *c = softlabel_codec_create();
    assert_non_null(c);
    int32_t ids[12];
    float lp[12], tail[3];
    int n_pos, k;
    assert_int_equal(softlabel_decode(c, blob, len, 20, 3, 4, ids, lp, tail, &n_pos, &k), 0);
    assert_int_equal(n_pos, 3);
    assert_int_equal(k, 4);
    assert_memory_equal(ids, topk_ids, sizeof ids);
    for (int i = 0; i < 3; i++) {
        assert_true(fabsf(lp[4 * i] - rank0[i]) <= 1e-6f);
        double sum = exp((double)lp[4 * i]);
        for (int r = 1; r < 4; r++) {
            assert_true(lp[4 * i + r] == -(float)units[3 * i + r - 1] / 1024.0f);
            sum += exp((double)lp[4 * i + r]);
        }
        assert_true(fabsf(tail[i] - want_tail[i]) <= 1e-6f);
        assert_true(fabs((double)tail[i] - (sum < 1.0 ? 1.0 - sum : 0.0)) <= 1e-6);
    }
    cut_codec = c;
    assert_int_equal(sfix_blob_cuts_rejected(blob, len, decode_cut), 0);
    softlabel_codec_free(c);
    free(blob);
}

/* Version 1 (written by the encoder before the step table changed; read
 * only): the finer steps of its own table. */
static void test_softlabel_topk_v1(void **state)
{
    (void)state;
    const int units[9] = {2152, 3076, 4606, 1024, 2558, 6149, 1432, 1536, 1632};
    const float rank0[3] = {-0.202102631f, -0.699828804f, -1.30624557f};
    const float tail[3] = {0.0f, 0.0507380702f, 0.0558899567f};
    check_topk("softlabel_topk_v1.bin", SOFTLABEL_TOPK_V1_VERSION, units, rank0, tail);
}

/* Version 3, what the encoder writes now: decoded, and encoded again from
 * topk_ids / topk_lp to the same bytes. */
static void test_softlabel_topk_v3(void **state)
{
    (void)state;
    const int units[9] = {2150, 3074, 4592, 1020, 2554, 6138, 1430, 1532, 1634};
    const float rank0[3] = {-0.202701584f, -0.703101099f, -1.30918741f};
    const float tail[3] = {0.0f, 0.0505723096f, 0.0557257831f};
    check_topk("softlabel_topk_v3.bin", SOFTLABEL_CODEC_VERSION, units, rank0, tail);

    size_t len, out_len, cap = 0;
    unsigned char *want = golden("softlabel_topk_v3.bin", &len), *out = NULL;
    softlabel_codec *c = softlabel_codec_create();
    assert_int_equal(softlabel_encode(c, topk_ids, topk_lp, 3, 4, 20, &out, &cap, &out_len), 0);
    assert_same_bytes(out, out_len, want, len);
    softlabel_codec_free(c);
    free(out);
    free(want);
}

/* Sampled version 2: 3 positions of N = 5 draws, vocab 20. The encoder's
 * input is in no particular order (count-0 entries ignored); the blob holds
 * each position in canonical order. */
static void test_softlabel_sampled_v2(void **state)
{
    (void)state;
    const int32_t in_ids[15] = {4, 9, 0, 0, 0, 4, 0, 0, 0, 0, 17, 2, 9, 0, 5};
    const uint8_t in_counts[15] = {3, 2, 0, 0, 0, 5, 0, 0, 0, 0, 1, 1, 1, 2, 0};
    const int32_t want_ids[15] = {4, 9, 4, 4, 4, 4, 4, 4, 4, 4, 0, 2, 9, 17, 0};
    const uint8_t want_counts[15] = {3, 2, 0, 0, 0, 5, 0, 0, 0, 0, 2, 1, 1, 1, 0};
    size_t len;
    const unsigned char header[16] = {'S', 'L', 2, 1, 3, 0, 0, 0, 5, 0, 19, 0, 7, 0, 0, 0};
    unsigned char *blob = golden_blob("softlabel_sampled_v2.bin", header, sizeof header,
                                      SOFTLABEL_SAMPLED_VERSION, SOFTLABEL_KIND_SAMPLED, 5, 7, &len);

    softlabel_codec *c = softlabel_codec_create();
    int32_t ids[15];
    uint8_t counts[15];
    float lp[15], tail[3];
    int n_pos, n;
    assert_int_equal(softlabel_decode_sampled(c, blob, len, 20, 3, 5, ids, counts, &n_pos, &n), 0);
    assert_int_equal(n_pos, 3);
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want_ids, sizeof ids);
    assert_memory_equal(counts, want_counts, sizeof counts);
    /* As training sees it: log(c / N), pads of no mass, tail 0. */
    assert_int_equal(softlabel_decode(c, blob, len, 20, 3, 5, ids, lp, tail, &n_pos, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want_ids, sizeof ids);
    for (int i = 0; i < 15; i++) {
        if (want_counts[i])
            assert_true(lp[i] == (float)log(want_counts[i] / 5.0));
        else
            assert_true(isinf(lp[i]) && lp[i] < 0);
    }
    for (int i = 0; i < 3; i++)
        assert_true(tail[i] == 0.0f);

    unsigned char *out = NULL;
    size_t cap = 0, out_len;
    assert_int_equal(softlabel_encode_sampled(c, in_ids, in_counts, 3, 5, 20, &out, &cap, &out_len), 0);
    assert_same_bytes(out, out_len, blob, len);
    cut_codec = c;
    assert_int_equal(sfix_blob_cuts_rejected(blob, len, decode_cut), 0);
    softlabel_codec_free(c);
    free(out);
    free(blob);
}

/* ---- tokenizer ---- */

#define GOLDEN_TOKENIZER_HASH 0xea29a5da265dc475ULL

/* Version 1: vocab 262, learned from a short English text. */
static void test_tokenizer_v1(void **state)
{
    (void)state;
    size_t len;
    unsigned char *blob = golden("tokenizer_v1.bin", &len);
    assert_int_equal(len, 24 + 4 * 5);
    assert_memory_equal(blob, "W2STOK", 6);
    assert_int_equal(bytes_get_u16(blob + 6), 1);
    assert_int_equal(bytes_get_u32(blob + 8), 262);
    assert_int_equal(bytes_get_u32(blob + 12), 5);
    assert_true(bytes_get_u64(blob + len - 8) == XXH3_64bits(blob, len - 8));

    tokenizer *t = tok_deserialize(blob, len);
    assert_non_null(t);
    assert_int_equal(tok_vocab_size(t), 262);
    assert_int_equal(tok_eot(t), 261);
    const int32_t merges[5][2] = {{'a', 't'}, {'t', 'h'}, {' ', 257}, {258, 'e'}, {' ', 'c'}};
    const char *const text[5] = {"at", "th", " th", " the", " c"};
    for (int i = 0; i < 5; i++) {
        int32_t l, r;
        size_t n;
        assert_int_equal(tok_merge_pair(t, 256 + i, &l, &r), 0);
        assert_int_equal(l, merges[i][0]);
        assert_int_equal(r, merges[i][1]);
        const unsigned char *b = tok_token_bytes(t, 256 + i, &n);
        assert_int_equal(n, strlen(text[i]));
        assert_memory_equal(b, text[i], n);
    }
    int32_t ids[16];
    const int32_t want[7] = {257, 'e', 260, 256, ' ', 's', 256};
    assert_int_equal(tok_encode(t, (const unsigned char *)"the cat sat", 11, ids), 7);
    assert_memory_equal(ids, want, sizeof want);
    assert_true(tok_hash(t) == GOLDEN_TOKENIZER_HASH);
    assert_true(XXH3_64bits(blob, len) == GOLDEN_TOKENIZER_HASH);

    unsigned char *out;
    size_t out_len;
    assert_int_equal(tok_serialize(t, &out, &out_len), 0);
    assert_same_bytes(out, out_len, blob, len);
    free(out);
    tok_free(t);
    free(blob);
}

/* ---- checkpoints ---- */

/* The file's own checks, by the layout of schemas/checkpoint.md: size,
 * checksum and identity hash (config bytes 16..35, then the parameters). */
static void check_checkpoint_bytes(const unsigned char *file, size_t len, uint64_t tok_len,
                                   uint64_t n_params, int adam, uint64_t state_len, uint64_t identity)
{
    assert_memory_equal(file, "W2SCKPT", 8);
    assert_int_equal(bytes_get_u32(file + 8), 1);
    assert_int_equal(bytes_get_u32(file + 12), adam ? 1 : 0);
    assert_int_equal(bytes_get_u32(file + 36), 0);
    assert_true(bytes_get_u64(file + 40) == tok_len);
    assert_true(bytes_get_u64(file + 48) == n_params);
    assert_true(bytes_get_u64(file + 64) == state_len);
    assert_true(len == 72 + tok_len + 4 * n_params * (adam ? 3 : 1) + state_len + 8);
    assert_true(bytes_get_u64(file + len - 8) == XXH3_64bits(file, len - 8));
    XXH3_state_t *st = XXH3_createState();
    assert_non_null(st);
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, file + 16, 20);
    XXH3_64bits_update(st, file + 72 + tok_len, 4 * n_params);
    assert_true(XXH3_64bits_digest(st) == identity);
    XXH3_freeState(st);
}

/* checkpoint_write of ck gives exactly the golden bytes. */
static void check_rewrite(const checkpoint *ck, const unsigned char *want, size_t len)
{
    char *dir = scli_tempdir("golden");
    assert_non_null(dir);
    char *path = scli_path(dir, "again.ckpt");
    assert_int_equal(checkpoint_write(path, ck), 0);
    unsigned char *got;
    size_t got_len;
    assert_int_equal(file_read_all(path, &got, &got_len), 0);
    assert_same_bytes(got, got_len, want, len);
    free(got);
    assert_int_equal(scli_rmtree(dir), 0);
    free(path);
    free(dir);
}

/* What train --out writes: config V262 L1 H1 C2 T2, the golden tokenizer,
 * parameters, step 600, no optimiser or train state. */
static void test_checkpoint_v1(void **state)
{
    (void)state;
    size_t len, tok_len;
    unsigned char *file = golden("checkpoint_v1.ckpt", &len);
    unsigned char *tok = golden("tokenizer_v1.bin", &tok_len);
    check_checkpoint_bytes(file, len, tok_len, 606, 0, 0, 0x9131ee04c1266aa3ULL);

    checkpoint ck;
    assert_int_equal(checkpoint_read("tests/golden/checkpoint_v1.ckpt", &ck), 0);
    const model_config want = {262, 1, 1, 2, 2};
    assert_memory_equal(&ck.config, &want, sizeof want);
    assert_int_equal(model_config_num_params(&ck.config), 606);
    assert_int_equal(ck.tokenizer_len, tok_len);
    assert_memory_equal(ck.tokenizer, tok, tok_len);
    for (size_t i = 0; i < 606; i++)
        assert_true(ck.params[i] == (float)((int)(i % 19) - 9) / 64.0f);
    assert_null(ck.adam_m);
    assert_null(ck.adam_v);
    assert_int_equal(ck.step, 600);
    assert_int_equal(ck.train_state_len, 0);
    assert_true(ck.hash == 0x9131ee04c1266aa3ULL);
    check_rewrite(&ck, file, len);
    checkpoint_free(&ck);
    free(tok);
    free(file);
}

/* The resume checkpoints' shared part: config V3 L1 H1 C2 T2 without a
 * tokenizer, AdamW moments, step 7, and a train state of state_len bytes
 * whose version 1 fields are the golden values. The state is decoded into
 * *ts (release with train_state_free); ck stays open for the caller. */
static void check_resume_checkpoint(const char *name, size_t state_len, checkpoint *ck, train_state *ts,
                                    unsigned char **file, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, "tests/golden/%s", name);
    *file = golden(name, len);
    check_checkpoint_bytes(*file, *len, 0, 88, 1, state_len, 0x48a8e4809d14e78cULL);
    assert_int_equal(checkpoint_read(path, ck), 0);
    const model_config want = {3, 1, 1, 2, 2};
    assert_memory_equal(&ck->config, &want, sizeof want);
    assert_int_equal(ck->tokenizer_len, 0);
    assert_non_null(ck->adam_m);
    assert_non_null(ck->adam_v);
    for (size_t i = 0; i < 88; i++) {
        assert_true(ck->params[i] == (float)((int)(i % 7) - 3) / 8.0f);
        assert_true(ck->adam_m[i] == (float)(i % 5) / 16.0f);
        assert_true(ck->adam_v[i] == (float)(i % 3 + 1) / 32.0f);
    }
    assert_int_equal(ck->step, 7);
    assert_true(ck->hash == 0x48a8e4809d14e78cULL);
    assert_int_equal(ck->train_state_len, state_len);
    assert_memory_equal(ck->train_state, "W2STRAIN", 8);
    assert_int_equal(train_state_decode(ck->train_state, ck->train_state_len, "golden", ts), 0);
    assert_true(ts->settings_hash == 0x0123456789abcdefULL);
    assert_true(ts->gt.epoch == 1 && ts->gt.index == 2);
    assert_true(ts->kd.epoch == 3 && ts->kd.index == 4);
    assert_true(ts->best_eval == 2.5);
    assert_true(ts->best_step == 5);
    assert_true(ts->tokens_seen == 12345);
}

/* A resume checkpoint with a version 1 train state (no settings text): still
 * read; the checkpoint itself is written again byte for byte. */
static void test_checkpoint_v1_resume(void **state)
{
    (void)state;
    checkpoint ck;
    train_state ts;
    unsigned char *file;
    size_t len;
    check_resume_checkpoint("checkpoint_v1_resume.ckpt", TRAIN_STATE_V1_BYTES, &ck, &ts, &file, &len);
    assert_int_equal(bytes_get_u32(ck.train_state + 8), 1);
    assert_null(ts.settings);
    check_rewrite(&ck, file, len);
    checkpoint_free(&ck);
    free(file);
}

/* The same with a version 2 train state: the version 1 fields, then the
 * settings text, which train_state_encode writes again byte for byte. */
static void test_checkpoint_train_state_v2(void **state)
{
    (void)state;
    static const char text[] = "--lr\t0.003\n--gt gt.txt content\thash 00000000deadbeef\n";
    checkpoint ck;
    train_state ts;
    unsigned char *file;
    size_t len;
    check_resume_checkpoint("checkpoint_v1_train_state_v2.ckpt", TRAIN_STATE_V1_BYTES + 4 + strlen(text),
                            &ck, &ts, &file, &len);
    assert_int_equal(bytes_get_u32(ck.train_state + 8), 2);
    assert_string_equal(ts.settings, text);
    unsigned char *again;
    size_t again_len;
    assert_int_equal(train_state_encode(&ts, &again, &again_len), 0);
    assert_same_bytes(again, again_len, ck.train_state, ck.train_state_len);
    free(again);
    train_state_free(&ts);
    check_rewrite(&ck, file, len);
    checkpoint_free(&ck);
    free(file);
}

/* ---- per-position file ---- */

/* The lines of positions_v1.tsv as the schema reads them: the statistics of
 * five logits rows of V = 6 (tests/golden/README.md). */
static const positions_line golden_positions[5] = {
    {0, 0, 0, 0.619617, 0, 0.53815, 1.33418},
    {0, 1, 5, 1.27725, 2, 0.459667, 1.37119},
    {0, 2, 2, 8.0633e-05, 2, 0.999919, 0.000937893},
    {1, 0, 3, 1.79176, 0, 0.166667, 1.79176},
    {1, 1, 1, 9.52421, 0, 0.592025, 0.864206},
};

/* One field of a line at *p: digits (an integer, *i) or a non-negative
 * decimal number (*x), then sep; *p moves past sep. */
static void positions_field(const char **p, char sep, long long *i, double *x)
{
    char *end;
    assert_true(isdigit((unsigned char)**p));
    if (i)
        *i = strtoll(*p, &end, 10);
    else
        *x = strtod(*p, &end);
    assert_true(end > *p && *end == sep);
    *p = end + 1;
}

/* Version 1: the header line, then per line seven tab-separated fields, read
 * to the values above; the statistics are those of a softmax (p(target) <=
 * top1_prob, equal when target is top1). positions_format writes the file
 * again byte for byte. */
static void test_positions_v1(void **state)
{
    (void)state;
    static const char header[] = "window\tposition\ttarget\tnll\ttop1\ttop1_prob\tentropy\n";
    assert_string_equal(POSITIONS_HEADER, header);
    assert_int_equal(positions_file_is_ours("tests/golden/positions_v1.tsv"), 1);
    size_t len;
    unsigned char *file = golden("positions_v1.tsv", &len);
    assert_true(len > strlen(header));
    assert_memory_equal(file, header, strlen(header));
    const char *p = (const char *)file + strlen(header);
    char again[1024];
    size_t n = (size_t)snprintf(again, sizeof again, "%s", header);
    for (int k = 0; k < 5; k++) {
        const positions_line *want = &golden_positions[k];
        long long window, position, target, top1;
        double nll, top1_prob, entropy;
        positions_field(&p, '\t', &window, NULL);
        positions_field(&p, '\t', &position, NULL);
        positions_field(&p, '\t', &target, NULL);
        positions_field(&p, '\t', NULL, &nll);
        positions_field(&p, '\t', &top1, NULL);
        positions_field(&p, '\t', NULL, &top1_prob);
        positions_field(&p, '\n', NULL, &entropy);
        assert_true(window == (long long)want->window && position == want->position);
        assert_true(target == want->target && top1 == want->top1);
        assert_true(nll == want->nll && top1_prob == want->top1_prob && entropy == want->entropy);
        assert_true(top1_prob > 0 && top1_prob <= 1 && entropy >= 0);
        assert_true(nll >= -log(top1_prob) - 1e-5);
        if (target == top1)
            assert_true(fabs(nll + log(top1_prob)) < 1e-5);
        char line[POSITIONS_LINE_MAX];
        int line_len = positions_format(want, line);
        assert_true(n + (size_t)line_len < sizeof again);
        memcpy(again + n, line, (size_t)line_len);
        n += (size_t)line_len;
    }
    assert_true(p == (const char *)file + len);
    assert_same_bytes((const unsigned char *)again, n, file, len);
    free(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softlabel_topk_v1),
        cmocka_unit_test(test_softlabel_topk_v3),
        cmocka_unit_test(test_softlabel_sampled_v2),
        cmocka_unit_test(test_tokenizer_v1),
        cmocka_unit_test(test_checkpoint_v1),
        cmocka_unit_test(test_checkpoint_v1_resume),
        cmocka_unit_test(test_checkpoint_train_state_v2),
        cmocka_unit_test(test_positions_v1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
