/* Tests of vocabularies beyond 16-bit ids through the labels path.
 *
 * The tokenizer cannot yet make more than 65,536 ids, so the layers below it
 * are tested directly with synthetic ids from 65,536 up to 150,000: a
 * labels.db of such a teacher (4-byte tokens, codec version 4 blobs) read by
 * train's label_reader (with a --labels-where condition) into batches whose
 * targets and decoded top-k match what was written, and the KD loss at
 * V = 150,001 against its formula. The programs are tested end to end at
 * GPT-2's vocabulary, 50,257 ids: a byte-level BPE tokenizer trained to that
 * size on generated words, a randomly initialised teacher (L1 C32), `distill`
 * into labels.db and `train` of a student on those labels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../train/label_reader.h"
#include "base/err.h"
#include "base/fileio.h"
#include "base/rng.h"
#include "labels/labels_db.h"
#include "labels/softlabel.h"
#include "nn/checkpoint.h"
#include "nn/kd_loss.h"
#include "nn/model.h"
#include "support_cli.h"
#include "text/tokenizer.h"

#define WIDE_V 150001
#define K 8
#define N_ROWS 12
#define MAX_LEN 40

static char *dir;

static int setup(void **state)
{
    (void)state;
    dir = scli_tempdir("wide-vocab");
    return dir ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int rc = scli_rmtree(dir);
    free(dir);
    return rc;
}

/* An id below WIDE_V: half of them 65,536 or more. */
static int32_t wide_id(rng_state *rng)
{
    return (int32_t)(rng_below(rng, 2) ? 65536 + rng_below(rng, WIDE_V - 65536) : rng_below(rng, 65536));
}

typedef struct wide_db {
    int32_t tokens[N_ROWS][MAX_LEN];
    int n_tokens[N_ROWS];
} wide_db;

/* A labels.db of a teacher of WIDE_V ids: N_ROWS rows of 2..MAX_LEN tokens;
 * at each position the top-k holds the actual next token at rank 0, then
 * other ids. */
static void write_wide_db(const char *path, wide_db *w)
{
    static unsigned char tok_blob[1] = {0};
    labels_meta m = {.teacher_hash = 7, .teacher_config = {WIDE_V, 1, 2, 32, MAX_LEN},
                     .tokenizer = tok_blob, .tokenizer_len = 1, .tokenizer_hash = 8, .k = K,
                     .codec_version = softlabel_version_for(SOFTLABEL_KIND_TOPK, WIDE_V)};
    strcpy(m.tool_version, "test");
    strcpy(m.label_kind, "topk");
    assert_int_equal(m.codec_version, SOFTLABEL_TOPK_WIDE_VERSION);
    labels_db *db = labels_db_open_write(path, &m);
    if (!db)
        fail_msg("%s", err_message());
    softlabel_codec *c = softlabel_codec_create();
    rng_state rng;
    rng_seed(&rng, 3);
    unsigned char *blob = NULL;
    size_t cap = 0, len;
    int32_t ids[MAX_LEN * K];
    float lp[MAX_LEN * K];
    assert_int_equal(labels_db_begin(db), 0);
    for (int s = 0; s < N_ROWS; s++) {
        int n = w->n_tokens[s] = 2 + (int)rng_below(&rng, MAX_LEN - 1);
        for (int i = 0; i < n; i++)
            w->tokens[s][i] = i == 1 && s == 3 ? WIDE_V - 1 : wide_id(&rng);
        for (int i = 0; i + 1 < n; i++) {
            for (int r = 0; r < K; r++) {
                int fresh;
                do {
                    ids[i * K + r] = r ? wide_id(&rng) : w->tokens[s][i + 1];
                    fresh = 1;
                    for (int q = 0; q < r; q++)
                        fresh &= ids[i * K + q] != ids[i * K + r];
                } while (!fresh);
                lp[i * K + r] = -0.5f - 0.6f * (float)r;
            }
        }
        assert_int_equal(softlabel_encode(c, ids, lp, n - 1, K, WIDE_V, &blob, &cap, &len), 0);
        labels_row row = {"wide", "", (uint64_t)s, 0, (uint64_t)s, n, w->tokens[s], blob, len,
                          1.0, (double)s, 0.1, 0.5};
        assert_int_equal(labels_db_insert(db, &row), 0);
    }
    assert_int_equal(labels_db_commit(db), 0);
    assert_int_equal(labels_db_close(db), 0);
    free(blob);
    softlabel_codec_free(c);
}

/* label_reader over 4-byte tokens and version 4 blobs: every labeled cell's
 * target is the next token of its row, and rank 0 of its decoded top-k is
 * that token; the condition keeps rows 3.. (mean_entropy = row index). */
static void test_reader_wide_ids(void **state)
{
    (void)state;
    char *path = scli_path(dir, "wide.db");
    static wide_db w;
    write_wide_db(path, &w);
    label_reader *r = label_reader_open(path, "mean_entropy >= 3", 0);
    if (!r)
        fail_msg("%s", err_message());
    assert_int_equal(label_reader_rows(r), N_ROWS - 3);
    assert_int_equal(label_reader_meta(r)->token_bytes, 4);
    const int rows = 2, T = MAX_LEN;
    assert_int_equal(label_reader_start(r, rows, T, WIDE_V, 1, 5, (train_cursor){0, 0}), 0);
    long labeled = 0, wide_targets = 0;
    for (int b = 0; b < 6; b++) {
        const label_batch *batch = label_reader_next(r);
        if (!batch)
            fail_msg("%s", err_message());
        for (long cell = 0; cell < (long)rows * T; cell++) {
            int32_t y = batch->targets[cell];
            if (y < 0)
                continue;
            /* the cell's token and target are consecutive tokens of some kept row */
            int found = 0;
            for (int s = 3; s < N_ROWS && !found; s++)
                for (int i = 0; i + 1 < w.n_tokens[s] && !found; i++)
                    found = w.tokens[s][i] == batch->tokens[cell] && w.tokens[s][i + 1] == y;
            assert_true(found);
            assert_int_equal(batch->ids[cell * K], y);
            assert_true(fabsf(batch->logprobs[cell * K + 1] - (-1.1f)) <= softlabel_error_bound(-1.1f));
            labeled++;
            wide_targets += y >= 65536;
        }
        label_reader_release(r);
    }
    assert_true(labeled > 0);
    assert_true(wide_targets > 0);
    label_reader_close(r);

    /* A student vocabulary smaller than the stored ids is refused by name. */
    r = label_reader_open(path, NULL, 0);
    assert_non_null(r);
    assert_int_equal(label_reader_start(r, rows, T, 100000, 1, 5, (train_cursor){0, 0}), 0);
    assert_null(label_reader_next(r));
    assert_non_null(strstr(err_message(), "outside the vocabulary of 100000"));
    label_reader_close(r);
    free(path);
}

/* Bucket KD at V = 150,001 with ids beyond 16 bits, against its definition:
 * sum q log(q / p) over the top-k and the tail bucket; gradient s - q on the
 * top-k, s (1 - q_tail / p_tail) outside. */
static void test_kd_loss_wide(void **state)
{
    (void)state;
    const int V = WIDE_V;
    float *z = malloc(sizeof *z * V), *g = malloc(sizeof *g * V);
    assert_non_null(z);
    assert_non_null(g);
    rng_state rng;
    rng_seed(&rng, 9);
    for (int j = 0; j < V; j++)
        z[j] = (float)rng_normal(&rng);
    const int32_t ids[4] = {149999, 65536, 3, 100000};
    const float lp[4] = {-0.5f, -1.8f, -2.7f, -3.2f};
    double q_sum = 0.0;
    for (int r = 0; r < 4; r++)
        q_sum += exp((double)lp[r]);
    float tail = (float)(1.0 - q_sum);
    double mx = z[0], zs = 0.0;
    for (int j = 1; j < V; j++)
        mx = z[j] > mx ? z[j] : mx;
    for (int j = 0; j < V; j++)
        zs += exp(z[j] - mx);
    double p_top = 0.0, want = 0.0;
    for (int r = 0; r < 4; r++) {
        double p = exp(z[ids[r]] - mx) / zs;
        p_top += p;
        want += exp((double)lp[r]) * ((double)lp[r] - log(p));
    }
    double p_tail = 1.0 - p_top;
    want += tail * log(tail / p_tail);
    memcpy(g, z, sizeof *z * V);
    double got = kd_loss_position(g, V, ids, lp, tail, 4, 1.0f, KD_TAIL_BUCKET, 1.0f);
    if (!(fabs(got - want) < 1e-5))
        fail_msg("KD %.9g, by its definition %.9g", got, want);
    for (int r = 0; r < 4; r++) {
        double s = exp(z[ids[r]] - mx) / zs;
        assert_true(fabs(g[ids[r]] - (s - exp((double)lp[r]))) < 1e-6);
    }
    for (int j = 65530; j < 65540; j++)
        if (j != 65536) {
            double s = exp(z[j] - mx) / zs;
            assert_true(fabs(g[j] - s * (1.0 - tail / p_tail)) < 1e-7);
        }
    free(z);
    free(g);
}

/* Generated words of 5..12 lowercase letters, one line of 12 words per
 * record: enough distinct letter pairs for a 50,257-id tokenizer. */
static char *make_words(int n_words, size_t *len)
{
    rng_state rng;
    rng_seed(&rng, 17);
    char *text = malloc((size_t)n_words * 14 + 1);
    assert_non_null(text);
    size_t at = 0;
    for (int w = 0; w < n_words; w++) {
        int l = 5 + (int)rng_below(&rng, 8);
        for (int i = 0; i < l; i++)
            text[at++] = (char)('a' + rng_below(&rng, 26));
        text[at++] = (char)(w % 12 == 11 ? '\n' : ' ');
    }
    *len = at;
    return text;
}

static int run_program(const char *const *argv, const char *what)
{
    scli_result res;
    if (scli_run_in(dir, argv, &res) != 0)
        return -1;
    int status = res.status;
    if (status != 0)
        print_message("%s exited %d:\n%s\n", what, status, res.err);
    scli_result_free(&res);
    return status;
}

/* distill and train at GPT-2's vocabulary through the programs. */
static void test_programs_gpt2_vocab(void **state)
{
    (void)state;
    size_t len;
    char *text = make_words(16000, &len);
    char *gt = scli_path(dir, "words.txt");
    assert_int_equal(scli_write_file(gt, text, len), 0);
    byte_span span = {(const unsigned char *)text, len};
    tokenizer *tok = tok_train(&span, 1, 50257);
    if (!tok)
        fail_msg("%s", err_message());
    assert_int_equal(tok_vocab_size(tok), 50257);
    unsigned char *tok_blob;
    size_t tok_len;
    assert_int_equal(tok_serialize(tok, &tok_blob, &tok_len), 0);
    model_config cfg = {.vocab = 50257, .layers = 1, .heads = 2, .channels = 32, .seq_len = 32};
    model *m = model_create(&cfg, 1, 1);
    assert_non_null(m);
    model_init_gpt2(m, 4);
    checkpoint ck = {.config = cfg, .tokenizer = tok_blob, .tokenizer_len = tok_len, .params = model_params(m)};
    char *teacher = scli_path(dir, "teacher.ckpt");
    assert_int_equal(checkpoint_write(teacher, &ck), 0);
    model_free(m);
    free(tok_blob);

    const char *distill[] = {"distill", "--teacher", "teacher.ckpt", "--db", "labels.db", "--input",
                             "words.txt", "--records", "line", "--topk", "16", "--threads", "1", "--quiet",
                             NULL};
    assert_int_equal(run_program(distill, "distill"), 0);
    char *db_path = scli_path(dir, "labels.db");
    labels_db *db = labels_db_open_read(db_path);
    assert_non_null(db);
    labels_meta meta;
    assert_int_equal(labels_db_meta(db, &meta), 0);
    assert_int_equal(meta.teacher_config.vocab, 50257);
    assert_int_equal(meta.codec_version, SOFTLABEL_CODEC_VERSION);   /* 50,257 ids fit 16 bits */
    assert_int_equal(meta.token_bytes, 2);
    labels_meta_free(&meta);
    int64_t seqs, toks;
    assert_int_equal(labels_db_count(db, &seqs, &toks), 0);
    assert_true(seqs > 100);
    /* the stored tokens are the tokenizer's: merges far beyond the bytes */
    int32_t tokens[32], max_id = 0;
    unsigned char *blob = NULL;
    size_t cap = 0, blob_len;
    int n;
    for (int64_t s = 1; s <= 20; s++) {
        assert_int_equal(labels_db_read(db, s, tokens, 32, &n, &blob, &cap, &blob_len), 0);
        for (int i = 0; i < n; i++)
            max_id = tokens[i] > max_id ? tokens[i] : max_id;
    }
    assert_true(max_id > 40000);
    free(blob);
    labels_db_close(db);

    const char *train[] = {"train", "--gt", "words.txt", "--records", "line", "--labels", "labels.db",
                           "--layers", "1", "--heads", "2", "--channels", "32", "--seq", "32", "--steps", "3",
                           "--batch", "2", "--kd-batch", "2", "--threads", "1", "--checkpoint-every", "0",
                           "--out", "student.ckpt", "--quiet", NULL};
    assert_int_equal(run_program(train, "train"), 0);
    checkpoint student;
    char *student_path = scli_path(dir, "student.ckpt");
    assert_int_equal(checkpoint_read(student_path, &student), 0);
    assert_int_equal(student.config.vocab, 50257);
    checkpoint_free(&student);
    free(student_path);
    free(db_path);
    free(teacher);
    free(gt);
    free(text);
    tok_free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_wide_ids),
        cmocka_unit_test(test_kd_loss_wide),
        cmocka_unit_test(test_programs_gpt2_vocab),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
