/* End-to-end tests of the distill program, run as a subprocess ($BUILD/distill)
 * on fixtures built here: a tokenizer trained on generated fortune-style
 * text, tiny random-init teachers (L1 H2 C32 T16) written as checkpoints.
 *
 * - the stored top-k equal the teacher's own forward on each stored window
 *   (ids exactly, log-probs within the codec's bound), and the stored tokens
 *   are the windows of [EOT] + encode(record);
 * - kill -9 at several points + reruns give the rows of an uninterrupted run
 *   (canonical dump: rows by identity, every column but seq_id), and the
 *   database passes PRAGMA integrity_check after each kill;
 * - 3 shards + merge hold the rows of the unsharded run (equal up to the
 *   forward's rounding noise, see assert_same_labels);
 * - a rerun does nothing and says so; another teacher, --topk > V and a
 *   changed record are refused with nothing lost; --help, bad options, info. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nn/checkpoint.h"
#include "text/corpus.h"
#include "base/err.h"
#include "base/fileio.h"
#include "labels/labels_db.h"
#include "nn/matmul_bf16.h"
#include "nn/model.h"
#include "base/rng.h"
#include "labels/softlabel.h"
#include "text/tokenizer.h"
#include "nn/topk.h"
#include "text/window.h"
#include "support_cli.h"
#include "support_fixtures.h"

enum { VOCAB = 300, K = 8 };

static char dir[64];
static char teacher[128], teacher2[128], input_a[128], input_b[128], ref_db[128];
static char distill_bin[512];

/* ---- fixtures ---- */

static const char *const words[] = {
    "the", "a", "cat", "dog", "sat", "on", "mat", "and", "ran", "far", "away", "from",
    "home", "while", "it", "rained", "all", "day", "long", "but", "nobody", "cared",
    "because", "coffee", "was", "hot", "never", "trust", "computer", "you", "cannot",
    "see", "fortune", "favors", "bold", "bugs", "are", "features", "in", "disguise",
};

/* Fortune-style text: n records of 1..max_words words, separated by "%" lines. */
static char *make_fortunes(uint64_t seed, int n, int max_words, size_t *len)
{
    rng_state rng;
    rng_seed(&rng, seed);
    size_t cap = (size_t)n * ((size_t)max_words * 12 + 8) + 1, at = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    for (int r = 0; r < n; r++) {
        int nw = 1 + (int)rng_below(&rng, (uint64_t)(r % 17 == 0 ? max_words * 4 : max_words));
        for (int w = 0; w < nw; w++) {
            const char *word = words[rng_below(&rng, sizeof words / sizeof *words)];
            at += (size_t)snprintf(text + at, cap - at, "%s%s", w ? (w % 9 == 0 ? ".\n" : " ") : "",
                                   word);
            assert_true(at < cap);
        }
        at += (size_t)snprintf(text + at, cap - at, "\n%%\n");
    }
    *len = at;
    return text;
}

static void write_teacher(const char *path, const unsigned char *tok_blob, size_t tok_len,
                          int vocab, uint64_t seed)
{
    model_config cfg = {.vocab = vocab, .layers = 1, .heads = 2, .channels = 32, .seq_len = 16};
    model *m = model_create(&cfg, 1, 1);
    assert_non_null(m);
    model_init_gpt2(m, seed);
    checkpoint ck = {.config = cfg, .tokenizer = (unsigned char *)tok_blob,
                     .tokenizer_len = tok_len, .params = model_params(m)};
    assert_int_equal(checkpoint_write(path, &ck), 0);
    model_free(m);
}

/* Runs distill with args (NULL-terminated); stdout and stderr go to files in
 * dir. @return the exit status, or 128 + signal. */
static pid_t spawn(const char *const *args)
{
    char out[160], err[160];
    snprintf(out, sizeof out, "%s/stdout", dir);
    snprintf(err, sizeof err, "%s/stderr", dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
            _exit(127);
        const char *argv[64];
        int n = 0;
        argv[n++] = distill_bin;
        for (; args[n - 1]; n++)
            argv[n] = args[n - 1];
        argv[n] = NULL;
        execv(distill_bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int wait_status(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int run(const char *const *args)
{
    return wait_status(spawn(args));
}

static char *slurp(const char *name)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unsigned char *data;
    size_t len;
    assert_int_equal(file_read_all(path, &data, &len), 0);
    return (char *)data;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

static int run_labels(const char *db, const char *teacher_path, const char *extra)
{
    const char *args[] = {"--teacher", teacher_path, "--db", db, "--input", input_a, input_b,
                          "--records", "fortune", "--topk", "8", "--batch", "3", "--threads",
                          "1", extra, NULL};
    return run(args);
}

static int group_setup(void **state)
{
    (void)state;
    const char *build = getenv("BUILD");
    snprintf(distill_bin, sizeof distill_bin, "%s/distill", build && *build ? build : "build");
    snprintf(dir, sizeof dir, "/tmp/w2s_test_distill_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(teacher, sizeof teacher, "%s/teacher.ckpt", dir);
    snprintf(teacher2, sizeof teacher2, "%s/teacher2.ckpt", dir);
    snprintf(input_a, sizeof input_a, "%s/a.txt", dir);
    snprintf(input_b, sizeof input_b, "%s/b.txt", dir);
    snprintf(ref_db, sizeof ref_db, "%s/ref.db", dir);
    size_t la, lb;
    char *a = make_fortunes(1, 260, 24, &la), *b = make_fortunes(2, 140, 12, &lb);
    if (file_write_atomic(input_a, a, la) < 0 || file_write_atomic(input_b, b, lb) < 0)
        return -1;
    byte_span spans[2] = {{(unsigned char *)a, la}, {(unsigned char *)b, lb}};
    tokenizer *tok = tok_train(spans, 2, VOCAB);
    if (!tok)
        return -1;
    unsigned char *blob;
    size_t blob_len;
    if (tok_serialize(tok, &blob, &blob_len) < 0)
        return -1;
    write_teacher(teacher, blob, blob_len, tok_vocab_size(tok), 5);
    write_teacher(teacher2, blob, blob_len, tok_vocab_size(tok), 6);
    free(blob);
    tok_free(tok);
    free(a);
    free(b);
    if (run_labels(ref_db, teacher, "--quiet") != 0) {
        char *err = slurp("stderr");
        print_error("reference run failed: %s", err);
        free(err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- database helpers (plain SQL over the documented schema) ---- */

static sqlite3 *open_ro(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    return db;
}

/* Every row of sequences but seq_id, ordered by identity, as text. */
static char *canonical_dump(const char *path)
{
    sqlite3 *db = open_ro(path);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
        "SELECT source, member, record_index, window, content_hash, n_tokens, hex(tokens), "
        "hex(topk), printf('%.17g %.17g %.17g %.17g', mean_nll, mean_entropy, mean_tail_mass, "
        "mean_top1_prob) FROM sequences ORDER BY source, member, record_index, window",
        -1, &st, NULL), SQLITE_OK);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const char *text = (const char *)sqlite3_column_text(st, c);
            size_t n = strlen(text ? text : "");
            while (len + n + 2 > cap) {
                cap *= 2;
                out = realloc(out, cap);
                assert_non_null(out);
            }
            memcpy(out + len, text ? text : "", n);
            len += n;
            out[len++] = c + 1 < sqlite3_column_count(st) ? '|' : '\n';
            out[len] = 0;
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static long long query_int(const char *path, const char *sql)
{
    sqlite3 *db = open_ro(path);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void assert_same_rows(const char *path)
{
    char *want = canonical_dump(ref_db), *got = canonical_dump(path);
    assert_true(strlen(want) > 1000);
    if (strcmp(got, want) != 0) {
        size_t at = 0, line = 1;
        for (; got[at] == want[at]; at++)
            line += got[at] == '\n';
        size_t from = at > 60 ? at - 60 : 0;
        fail_msg("%s differs from the uninterrupted run at row %zu, byte %zu:\n  want %.120s\n"
                 "  got  %.120s", path, line, at, want + from, got + from);
    }
    free(want);
    free(got);
}

/* Same rows as the reference, up to the rounding noise of the teacher's
 * forward: a sharded run packs windows differently, and BLAS kernels treat
 * the lanes of a tile differently by a rounding unit. Identity, hash and
 * tokens must be equal; a blob may differ only by one quantisation step of
 * an entry with the same ids; means agree to 1e-6. */
static void assert_same_labels(const char *path)
{
    const char *sql = "SELECT source, member, record_index, window, content_hash, n_tokens, "
                      "tokens, topk, mean_nll, mean_entropy, mean_tail_mass, mean_top1_prob "
                      "FROM sequences ORDER BY source, member, record_index, window";
    sqlite3 *a = open_ro(ref_db), *b = open_ro(path);
    sqlite3_stmt *sa, *sb;
    assert_int_equal(sqlite3_prepare_v2(a, sql, -1, &sa, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(b, sql, -1, &sb, NULL), SQLITE_OK);
    softlabel_codec *codec = softlabel_codec_create();
    int32_t ids_a[16 * K], ids_b[16 * K];
    float lp_a[16 * K], lp_b[16 * K], tail[16];
    long rows = 0, blobs_differ = 0;
    int rc;
    while ((rc = sqlite3_step(sa)) == SQLITE_ROW) {
        assert_int_equal(sqlite3_step(sb), SQLITE_ROW);
        for (int c = 0; c < 8; c++) {
            int n = sqlite3_column_bytes(sa, c);
            assert_int_equal(n, sqlite3_column_bytes(sb, c));
            if (c < 7)
                assert_memory_equal(sqlite3_column_blob(sa, c), sqlite3_column_blob(sb, c), n);
        }
        for (int c = 8; c < 12; c++)
            assert_true(fabs(sqlite3_column_double(sa, c) - sqlite3_column_double(sb, c)) <=
                        1e-6 * (1 + fabs(sqlite3_column_double(sa, c))));
        if (memcmp(sqlite3_column_blob(sa, 7), sqlite3_column_blob(sb, 7),
                   (size_t)sqlite3_column_bytes(sa, 7)) != 0) {
            int na, nb, ka, kb;
            assert_int_equal(softlabel_decode(codec, sqlite3_column_blob(sa, 7),
                                              (size_t)sqlite3_column_bytes(sa, 7), VOCAB, 16, K,
                                              ids_a, lp_a, tail, &na, &ka), 0);
            assert_int_equal(softlabel_decode(codec, sqlite3_column_blob(sb, 7),
                                              (size_t)sqlite3_column_bytes(sb, 7), VOCAB, 16, K,
                                              ids_b, lp_b, tail, &nb, &kb), 0);
            assert_int_equal(na, nb);
            assert_memory_equal(ids_a, ids_b, sizeof *ids_a * (size_t)(na * ka));
            for (int i = 0; i < na * ka; i++)
                assert_true(fabs(lp_a[i] - lp_b[i]) <= 2 * softlabel_error_bound(lp_a[i]) + 1e-6);
            blobs_differ++;
        }
        rows++;
    }
    assert_int_equal(rc, SQLITE_DONE);
    assert_int_equal(sqlite3_step(sb), SQLITE_DONE);
    assert_true(rows > 100);
    assert_true(blobs_differ * 100 < rows);
    sqlite3_finalize(sa);
    sqlite3_finalize(sb);
    sqlite3_close(a);
    sqlite3_close(b);
    softlabel_codec_free(codec);
}

/* ---- tests ---- */

/* Tokens of every record, in corpus order, for checking stored windows. */
typedef struct token_book {
    tokenizer *tok;
    int32_t **seqs;
    size_t *lens;
    size_t n, cap;
} token_book;

static int book_record(void *ctx, const corpus_record *rec)
{
    token_book *b = ctx;
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->seqs = realloc(b->seqs, b->cap * sizeof *b->seqs);
        b->lens = realloc(b->lens, b->cap * sizeof *b->lens);
    }
    int32_t *seq = malloc((rec->len + 1) * sizeof *seq);
    seq[0] = tok_eot(b->tok);
    b->lens[b->n] = 1 + tok_encode(b->tok, rec->data, rec->len, seq + 1);
    b->seqs[b->n++] = seq;
    return 0;
}

static void test_labels_match_teacher(void **state)
{
    (void)state;
    checkpoint ck;
    assert_int_equal(checkpoint_read(teacher, &ck), 0);
    model *m = model_create(&ck.config, 1, 1);
    assert_non_null(m);
    memcpy(model_params(m), ck.params, model_num_params(m) * sizeof(float));
    int V = ck.config.vocab, T = ck.config.seq_len;
    token_book book = {.tok = tok_deserialize(ck.tokenizer, ck.tokenizer_len)};
    assert_non_null(book.tok);
    record_spec spec;
    assert_int_equal(corpus_parse_mode("fortune", &spec), 0);
    assert_int_equal(corpus_read(input_a, &spec, book_record, &book), 0);
    size_t n_a = book.n;
    assert_int_equal(corpus_read(input_b, &spec, book_record, &book), 0);

    sqlite3 *db = open_ro(ref_db);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
        "SELECT source, record_index, window, n_tokens, tokens, topk, mean_nll, mean_top1_prob "
        "FROM sequences ORDER BY seq_id", -1, &st, NULL), SQLITE_OK);
    softlabel_codec *codec = softlabel_codec_create();
    int32_t ids[16 * K], ref_ids[K], pos[16];
    float lps[16 * K], tails[16], ref_lps[K];
    long rows = 0, windows_expected = 0;
    for (size_t i = 0; i < book.n; i++)
        windows_expected += (long)window_count(book.lens[i], T);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *source = (const char *)sqlite3_column_text(st, 0);
        size_t rec = (size_t)sqlite3_column_int64(st, 1) + (strcmp(source, input_a) ? n_a : 0);
        assert_true(rec < book.n);
        int window = sqlite3_column_int(st, 2), n_tokens = sqlite3_column_int(st, 3);
        size_t start, len;
        window_span((size_t)window, book.lens[rec], T, &start, &len);
        assert_int_equal(n_tokens, (int)len);
        const unsigned char *tb = sqlite3_column_blob(st, 4);
        assert_int_equal(sqlite3_column_bytes(st, 4), 2 * n_tokens);
        int32_t tokens[16];
        for (int i = 0; i < n_tokens; i++) {
            tokens[i] = tb[2 * i] | tb[2 * i + 1] << 8;
            assert_int_equal(tokens[i], book.seqs[rec][start + (size_t)i]);
            pos[i] = i;
        }
        int n_pos, k;
        assert_int_equal(softlabel_decode(codec, sqlite3_column_blob(st, 5),
                                          (size_t)sqlite3_column_bytes(st, 5), V, 16, K, ids,
                                          lps, tails, &n_pos, &k), 0);
        assert_int_equal(n_pos, n_tokens - 1);
        assert_int_equal(k, K);
        const float *logits = model_forward(m, tokens, pos, 1, n_tokens);
        assert_non_null(logits);
        double nll = 0, top1 = 0;
        for (int p = 0; p < n_pos; p++) {
            topk_stats ref;
            assert_int_equal(topk_row_reference(logits + (size_t)p * V, V, K, tokens[p + 1],
                                                ref_ids, ref_lps, &ref), 0);
            nll += ref.nll;
            top1 += ref.top1;
            for (int r = 0; r < K; r++) {
                assert_int_equal(ids[p * K + r], ref_ids[r]);
                double err = fabs((double)lps[p * K + r] - ref_lps[r]);
                double bound = r == 0 ? 0.01 : softlabel_error_bound(ref_lps[r]) + 1e-5;
                if (err > bound)
                    fail_msg("row %ld pos %d rank %d: %g vs %g", rows, p, r, lps[p * K + r],
                             ref_lps[r]);
            }
            assert_true(fabs(tails[p] - ref.tail) < 0.01);
        }
        assert_true(fabs(sqlite3_column_double(st, 6) - nll / n_pos) < 1e-4);
        assert_true(fabs(sqlite3_column_double(st, 7) - top1 / n_pos) < 1e-4);
        rows++;
    }
    assert_int_equal(rows, windows_expected);
    sqlite3_finalize(st);
    sqlite3_close(db);
    softlabel_codec_free(codec);
    for (size_t i = 0; i < book.n; i++)
        free(book.seqs[i]);
    free(book.seqs);
    free(book.lens);
    tok_free(book.tok);
    model_free(m);
    checkpoint_free(&ck);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long long rows_now(const char *path)
{
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 1000);
    sqlite3_stmt *st;
    long long n = -1;
    if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM sequences", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_kill_and_resume(void **state)
{
    (void)state;
    char db[160];
    snprintf(db, sizeof db, "%s/killed.db", dir);
    long long total = rows_now(ref_db);
    /* Kill points: right away, after some delays, after N rows appeared. */
    const double delays[] = {0.0, 0.02, 0.15};
    const long long at_rows[] = {1, total / 3, (2 * total) / 3};
    int kills = 0;
    for (int i = 0; i < 6; i++) {
        const char *args[] = {"--teacher", teacher, "--db", db, "--input", input_a, input_b,
                              "--records", "fortune", "--topk", "8", "--batch", "3",
                              "--threads", "1", "--quiet", NULL};
        pid_t pid = spawn(args);
        double start = now_seconds();
        if (i < 3) {
            while (now_seconds() - start < delays[i])
                usleep(1000);
        } else {
            while (now_seconds() - start < 20) {
                long long n = file_exists(db) ? rows_now(db) : -1;
                if (n >= at_rows[i - 3])
                    break;
                usleep(500);
            }
            usleep((useconds_t)(i - 3) * 20000);   /* into the next transaction */
        }
        kill(pid, SIGKILL);
        int status = wait_status(pid);
        kills += status == 128 + SIGKILL;
        if (status == 128 + SIGKILL && file_exists(db) && rows_now(db) > 0 && rows_now(db) < total)
            assert_int_equal(query_int(db, "SELECT value FROM meta WHERE key = 'complete'"), 0);
        if (getenv("TEST_VERBOSE"))
            print_message("kill %d: status %d, %lld rows\n", i, status, file_exists(db) ? rows_now(db) : -1);
        if (file_exists(db))
            assert_int_equal(sfix_db_integrity(db, SQLITE_OPEN_READONLY), 0);
    }
    assert_true(kills >= 3);
    assert_int_equal(run_labels(db, teacher, "--quiet"), 0);
    assert_int_equal(query_int(db, "SELECT value FROM meta WHERE key = 'complete'"), 1);
    assert_int_equal(sfix_db_integrity(db, SQLITE_OPEN_READONLY), 0);
    assert_same_rows(db);
}

/* The integer under key in the one JSON object of text (-1 when text is not
 * JSON or key holds no integer). */
static long long json_int_of(const char *text, const char *key)
{
    json_t *j = json_loads(text, 0, NULL);
    json_t *v = json_object_get(j, key);
    long long n = json_is_integer(v) ? json_integer_value(v) : -1;
    json_decref(j);
    return n;
}

/* One long record (the whole file, --records file): a kill inside it keeps
 * the windows committed so far, and the rerun goes on from there to exactly
 * the rows of an uninterrupted run, with no window twice or missing. */
static void test_kill_inside_one_long_record(void **state)
{
    (void)state;
    char text[160], ref[160], db[160];
    snprintf(text, sizeof text, "%s/long.txt", dir);
    snprintf(ref, sizeof ref, "%s/long-ref.db", dir);
    snprintf(db, sizeof db, "%s/long-killed.db", dir);
    size_t len;
    char *data = make_fortunes(7, 2000, 24, &len);
    assert_int_equal(file_write_atomic(text, data, len), 0);
    free(data);
    const char *ref_args[] = {"--teacher", teacher, "--db", ref, "--input", text, "--topk", "8",
                              "--batch", "3", "--threads", "1", "--quiet", NULL};
    assert_int_equal(run(ref_args), 0);
    long long total = rows_now(ref);
    assert_true(total > 300);
    const char *args[] = {"--teacher", teacher, "--db", db, "--input", text, "--topk", "8",
                          "--batch", "3", "--threads", "1", "--quiet", "--json", NULL};
    pid_t pid = spawn(args);
    double start = now_seconds();
    long long rows = -1;
    while (now_seconds() - start < 60) {
        rows = file_exists(db) ? rows_now(db) : -1;
        if (rows >= total / 3)
            break;
        usleep(500);
    }
    kill(pid, SIGKILL);
    assert_int_equal(wait_status(pid), 128 + SIGKILL);
    rows = rows_now(db);
    if (getenv("TEST_VERBOSE"))
        print_message("killed inside the record at %lld of %lld rows\n", rows, total);
    assert_true(rows > 0 && rows < total);
    assert_int_equal(sfix_db_integrity(db, SQLITE_OPEN_READONLY), 0);
    assert_int_equal(run(args), 0);
    char *out = slurp("stdout");
    assert_int_equal(json_int_of(out, "records"), 1);
    free(out);
    char *want = canonical_dump(ref), *got = canonical_dump(db);
    assert_string_equal(want, got);
    free(want);
    free(got);
}

/* Two distills started together on one new database: the second is refused
 * by name and pid, and neither removes or damages the first one's work. */
static void test_two_writers(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        char db[160], log[2][160];
        snprintf(db, sizeof db, "%s/two-%d.db", dir, round);
        pid_t pid[2];
        for (int i = 0; i < 2; i++) {
            snprintf(log[i], sizeof log[i], "%s/two-%d-%d.log", dir, round, i);
            const char *args[] = {"distill", "--teacher", teacher, "--db", db, "--input", input_a,
                                  input_b, "--records", "fortune", "--topk", "8", "--batch", "3",
                                  "--threads", "1", "--quiet", NULL};
            pid[i] = scli_spawn(args, NULL, log[i], 0);
            assert_true(pid[i] > 0);
        }
        int status[2] = {scli_wait(pid[0]), scli_wait(pid[1])};
        assert_true(status[0] == 0 || status[1] == 0);
        for (int i = 0; i < 2; i++) {
            if (status[i] == 0)
                continue;
            char *text = slurp(strrchr(log[i], '/') + 1);
            if (!strstr(text, "is being written by another distill (pid "))
                fail_msg("refused writer said: %s", text);
            free(text);
        }
        assert_true(file_exists(db));
        assert_int_equal(sfix_db_integrity(db, SQLITE_OPEN_READONLY), 0);
        assert_same_rows(db);
    }
}

/* Kills in the first milliseconds, while the database is being created:
 * whenever the file exists it opens read-only (no hot journal to roll back)
 * and passes the integrity check, and a rerun completes it. */
static void test_kill_during_creation(void **state)
{
    (void)state;
    char db[160];
    snprintf(db, sizeof db, "%s/born.db", dir);
    for (int i = 0; i < 12; i++) {
        const char *args[] = {"--teacher", teacher, "--db", db, "--input", input_a, input_b,
                              "--records", "fortune", "--topk", "8", "--batch", "3",
                              "--threads", "1", "--quiet", NULL};
        pid_t pid = spawn(args);
        usleep((useconds_t)(i * 1500));
        kill(pid, SIGKILL);
        wait_status(pid);
        if (file_exists(db))
            assert_int_equal(sfix_db_integrity(db, SQLITE_OPEN_READONLY), 0);
    }
    assert_int_equal(run_labels(db, teacher, "--quiet"), 0);
    assert_same_rows(db);
}

static void test_shards_merge(void **state)
{
    (void)state;
    char shard[3][160], shard_arg[3][8], merged[160];
    for (int i = 0; i < 3; i++) {
        snprintf(shard[i], sizeof shard[i], "%s/shard%d.db", dir, i);
        snprintf(shard_arg[i], sizeof shard_arg[i], "%d/3", i);
        const char *args[] = {"--teacher", teacher, "--db", shard[i], "--input", input_a,
                              "--input", input_b, "--records", "fortune", "--topk", "8",
                              "--batch", "5", "--shard", shard_arg[i], "--quiet", NULL};
        assert_int_equal(run(args), 0);
        assert_true(rows_now(shard[i]) > 0);
    }
    snprintf(merged, sizeof merged, "%s/merged.db", dir);
    const char *args[] = {"merge", "--db", merged, shard[0], shard[1], shard[2], "--quiet", NULL};
    assert_int_equal(run(args), 0);
    assert_int_equal(sfix_db_integrity(merged, SQLITE_OPEN_READONLY), 0);
    assert_same_labels(merged);
    /* Finished databases leave WAL mode: read-only opens (the merge read the
     * shards, the checks above read the output) leave no files beside them. */
    const char *finished[] = {merged, shard[0], shard[1], shard[2]};
    for (int i = 0; i < 4; i++) {
        char side[200];
        snprintf(side, sizeof side, "%s-wal", finished[i]);
        assert_int_not_equal(access(side, F_OK), 0);
        snprintf(side, sizeof side, "%s-shm", finished[i]);
        assert_int_not_equal(access(side, F_OK), 0);
    }
    /* A shard of another teacher is refused and changes nothing. */
    char other[160];
    snprintf(other, sizeof other, "%s/other.db", dir);
    const char *args2[] = {"--teacher", teacher2, "--db", other, "--input", input_b, "--records",
                           "fortune", "--topk", "8", "--quiet", NULL};
    assert_int_equal(run(args2), 0);
    const char *args3[] = {"merge", "--db", merged, other, "--quiet", NULL};
    assert_int_equal(run(args3), 1);
    assert_same_labels(merged);
}


static void test_rerun_does_nothing(void **state)
{
    (void)state;
    const char *args[] = {"--teacher", teacher, "--db", ref_db, "--input", input_a, input_b,
                          "--records", "fortune", "--topk", "8", "--json", NULL};
    char *before = canonical_dump(ref_db);
    assert_int_equal(run(args), 0);
    char *err = slurp("stderr"), *out = slurp("stdout");
    assert_non_null(strstr(err, "nothing to do: 400 records already labeled"));
    assert_int_equal(json_int_of(out, "records"), 0);
    assert_int_equal(json_int_of(out, "skipped"), 400);
    char *after = canonical_dump(ref_db);
    assert_string_equal(before, after);
    free(before);
    free(after);
    free(err);
    free(out);
}

/* A bf16 teacher labels the same windows with statistics within bfloat16's
 * reach of the fp32 reference (per-sequence mean NLL within 0.2%), and says
 * so in its summary. */
static void test_bf16_teacher(void **state)
{
    (void)state;
    if (!matmul_bf16_available()) {
        print_message("skipped: %s\n", err_message());
        skip();
    }
    char db[160];
    snprintf(db, sizeof db, "%s/bf16.db", dir);
    const char *args[] = {"--teacher", teacher, "--db", db, "--input", input_a, input_b,
                          "--records", "fortune", "--topk", "8", "--batch", "3", "--threads",
                          "2", "--precision", "bf16", "--json", NULL};
    assert_int_equal(run(args), 0);
    char *out = slurp("stdout"), *err = slurp("stderr");
    json_t *j = json_loads(out, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "precision")), "bf16");
    json_decref(j);
    assert_non_null(strstr(err, "bf16 (oneDNN"));
    free(out);
    free(err);
    sqlite3 *a = open_ro(ref_db);
    char attach[256];
    snprintf(attach, sizeof attach, "ATTACH '%s' AS b", db);
    assert_int_equal(sqlite3_exec(a, attach, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(a,
        "SELECT count(*), max(abs(x.mean_nll - y.mean_nll) / x.mean_nll), "
        "(SELECT count(*) FROM main.sequences) FROM main.sequences x JOIN b.sequences y "
        "USING (source, member, record_index, window) WHERE x.tokens = y.tokens",
        -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long matched = sqlite3_column_int64(st, 0), rows = sqlite3_column_int64(st, 2);
    double worst = sqlite3_column_double(st, 1);
    print_message("bf16 teacher: %lld of %lld windows, mean NLL within %.3g relative\n", matched,
                  rows, worst);
    assert_true(rows > 100 && matched == rows);
    assert_true(worst > 0 && worst < 2e-3); /* measured 1.4e-4 */
    sqlite3_finalize(st);
    sqlite3_close(a);
}

static void test_refusals(void **state)
{
    (void)state;
    char *before = canonical_dump(ref_db);
    /* Another teacher on the same database. */
    assert_int_equal(run_labels(ref_db, teacher2, "--quiet"), 1);
    char *err = slurp("stderr");
    assert_non_null(strstr(err, ref_db));
    assert_int_equal(count_lines(err), 1);
    free(err);
    /* Another k. */
    const char *k_args[] = {"--teacher", teacher, "--db", ref_db, "--input", input_a, "--records",
                            "fortune", "--topk", "9", "--quiet", NULL};
    assert_int_equal(run(k_args), 1);
    /* k larger than V. */
    char big_db[160];
    snprintf(big_db, sizeof big_db, "%s/big_k.db", dir);
    const char *big_args[] = {"--teacher", teacher, "--db", big_db, "--input", input_a,
                              "--topk", "1000", "--quiet", NULL};
    assert_int_equal(run(big_args), 1);
    err = slurp("stderr");
    assert_non_null(strstr(err, "--topk"));
    free(err);
    /* A changed record is an error naming the input. */
    char changed[160];
    snprintf(changed, sizeof changed, "%s/changed.db", dir);
    const char *c_args[] = {"--teacher", teacher, "--db", changed, "--input", input_b,
                            "--records", "fortune", "--topk", "8", "--quiet", NULL};
    assert_int_equal(run(c_args), 0);
    long long rows = rows_now(changed);
    unsigned char *data;
    size_t len;
    assert_int_equal(file_read_all(input_b, &data, &len), 0);
    char moved[160];
    snprintf(moved, sizeof moved, "%s.orig", input_b);
    assert_int_equal(rename(input_b, moved), 0);
    data[0] = data[0] == 'x' ? 'y' : 'x';
    assert_int_equal(file_write_atomic(input_b, data, len), 0);
    assert_int_equal(run(c_args), 1);
    err = slurp("stderr");
    assert_non_null(strstr(err, input_b));
    free(err);
    assert_int_equal(rows_now(changed), rows);
    assert_int_equal(rename(moved, input_b), 0);
    free(data);
    char *after = canonical_dump(ref_db);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

/* Exit 1 with why on stderr, path unchanged. */
static void assert_refused_unchanged(const char *const *args, const char *path, const char *why)
{
    uint64_t before = 0, after = 1;
    assert_int_equal(scli_hash_file(path, &before), 0);
    int status = run(args);
    if (status != 1)
        fail_msg("distill %s %s %s: exit %d, not 1", args[0], args[1], args[2], status);
    char *err = slurp("stderr");
    if (!strstr(err, why))
        fail_msg("expected '%s', stderr was: %s", why, err);
    free(err);
    assert_int_equal(scli_hash_file(path, &after), 0);
    assert_true(before == after);
}

/* The database, merge's output and split's parts never overwrite an input or
 * a file w2s did not make. */
static void test_outputs_never_overwrite_user_files(void **state)
{
    (void)state;
    const char *into_input[] = {"--teacher", teacher, "--db", input_a, "--input", input_a, "--quiet", NULL};
    assert_refused_unchanged(into_input, input_a, "--db is also --input (refusing to overwrite it)");
    const char *into_teacher[] = {"--teacher", teacher, "--db", teacher, "--input", input_b, "--quiet", NULL};
    assert_refused_unchanged(into_teacher, teacher, "--db is also --teacher");
    char text[160];
    snprintf(text, sizeof text, "%s/notes.txt", dir);
    assert_int_equal(scli_write_file(text, "my notes\n", 9), 0);
    const char *into_text[] = {"--teacher", teacher, "--db", text, "--input", input_a, "--quiet", NULL};
    assert_refused_unchanged(into_text, text, "exists and is not a w2s labels database (refusing to overwrite it)");
    const char *merge_self[] = {"merge", "--db", ref_db, ref_db, "--quiet", NULL};
    assert_refused_unchanged(merge_self, ref_db, "--db is also a SHARD.db");
    const char *merge_text[] = {"merge", "--db", text, ref_db, "--quiet", NULL};
    assert_refused_unchanged(merge_text, text, "exists and is not a w2s labels database");
    /* split: a part named like an input, or over a file split did not write */
    char parts_arg[200], part_x[200], notes_tar[200];
    snprintf(parts_arg, sizeof parts_arg, "x:50,y:50");
    const char *split_ok[] = {"split", "--input", input_a, "--out", dir, "--parts", parts_arg, "--quiet", NULL};
    assert_int_equal(run(split_ok), 0);
    snprintf(part_x, sizeof part_x, "%s/x.tar", dir);
    snprintf(parts_arg, sizeof parts_arg, "x:50,z:50");
    const char *split_input[] = {"split", "--input", part_x, "--out", dir, "--parts", parts_arg, "--quiet", NULL};
    assert_refused_unchanged(split_input, part_x, "a part of --out is also --input");
    snprintf(notes_tar, sizeof notes_tar, "%s/notes.tar", dir);
    assert_int_equal(scli_write_file(notes_tar, "my notes\n", 9), 0);
    snprintf(parts_arg, sizeof parts_arg, "x:50,notes:50");
    const char *split_text[] = {"split", "--input", input_a, "--out", dir, "--parts", parts_arg, "--quiet", NULL};
    assert_refused_unchanged(split_text, notes_tar, "exists and is not a part written by distill split");
    /* its own parts are replaced on a rerun */
    snprintf(parts_arg, sizeof parts_arg, "x:50,y:50");
    for (int i = 0; i < 2; i++)
        assert_int_equal(run(split_ok), 0);
}

static void test_command_line(void **state)
{
    (void)state;
    const char *help[] = {"--help", NULL};
    assert_int_equal(run(help), 0);
    char *out = slurp("stdout");
    const char *opts[] = {"--teacher", "--db", "--input", "--records", "--topk", "--batch",
                          "--threads", "--precision", "--shard", "--quiet", "--json", "merge",
                          "info"};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
        assert_non_null(strstr(out, opts[i]));
    free(out);
    const char *bad[] = {"--teacher", teacher, "--frobnicate", NULL};
    assert_int_equal(run(bad), 2);
    char *err = slurp("stderr");
    assert_non_null(strstr(err, "--frobnicate"));
    assert_int_equal(count_lines(err), 1);
    free(err);
    const char *bad_k[] = {"--teacher", teacher, "--db", "x.db", "--input", input_a, "--topk",
                           "0", NULL};
    assert_int_equal(run(bad_k), 2);
    const char *missing[] = {"--db", "x.db", NULL};
    assert_int_equal(run(missing), 2);
    const char *version[] = {"--version", NULL};
    assert_int_equal(run(version), 0);
    const char *no_teacher[] = {"--teacher", "/nonexistent/t.ckpt", "--db", "x.db", "--input",
                                input_a, "--quiet", NULL};
    assert_int_equal(run(no_teacher), 1);
    err = slurp("stderr");
    assert_non_null(strstr(err, "/nonexistent/t.ckpt"));
    free(err);
}

static void test_info(void **state)
{
    (void)state;
    const char *args[] = {"info", ref_db, "--json", NULL};
    assert_int_equal(run(args), 0);
    char *out = slurp("stdout");
    assert_int_equal(json_int_of(out, "sequences"), query_int(ref_db, "SELECT COUNT(*) FROM sequences"));
    assert_int_equal(json_int_of(out, "k"), 8);
    assert_int_equal(json_int_of(out, "complete"), 1);
    assert_int_equal(json_int_of(out, "token_bytes"), 2);
    free(out);
    const char *human[] = {"info", ref_db, NULL};
    assert_int_equal(run(human), 0);
    out = slurp("stdout");
    assert_non_null(strstr(out, "per position"));
    free(out);
    const char *missing[] = {"info", "/nonexistent.db", NULL};
    assert_int_equal(run(missing), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels_match_teacher),
        cmocka_unit_test(test_kill_and_resume),
        cmocka_unit_test(test_kill_inside_one_long_record),
        cmocka_unit_test(test_two_writers),
        cmocka_unit_test(test_kill_during_creation),
        cmocka_unit_test(test_shards_merge),
        cmocka_unit_test(test_rerun_does_nothing),
        cmocka_unit_test(test_bf16_teacher),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_outputs_never_overwrite_user_files),
        cmocka_unit_test(test_command_line),
        cmocka_unit_test(test_info),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
