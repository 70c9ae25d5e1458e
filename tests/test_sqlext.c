/* Test of the SQLite extension build/softlabel.so in the stock sqlite3 shell:
 * (detokenize also on window edges that split UTF-8 characters, and on the
 * golden labels.db files of schema versions 1 and 2, tests/golden)
 * on a labels.db made here (a tokenizer trained on a few sentences, random
 * soft labels), the rows of `topk` and the values of topk_json, topk_entropy
 * and detokenize equal what the codec and the tokenizer give in C, and a bad
 * blob is an SQL error. A second database of sampled labels (sample:N) shows
 * one row per distinct id with its count, prob = count / N and log(prob). Skipped (cmocka skip) when W2S_ASAN is set or this
 * test is itself built with AddressSanitizer (an ASan-built .so cannot be
 * loaded into the uninstrumented shell), when the .so is not built, or when
 * no sqlite3 shell is installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/err.h"
#include "support_cli.h"
#include "labels/labels_db.h"
#include "base/rng.h"
#include "labels/softlabel.h"
#include "text/tokenizer.h"

#if defined(__SANITIZE_ADDRESS__)
#define BUILT_WITH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BUILT_WITH_ASAN 1
#endif
#endif
#ifndef BUILT_WITH_ASAN
#define BUILT_WITH_ASAN 0
#endif

#define K 8
#define N_SEQ 3
#define N_SAMPLES 20

static const char *texts[N_SEQ] = {
    "The teacher is weak, but the student listens anyway.",
    "Soft labels: the whole distribution, not just the argmax.",
    "A third record, to be damaged later on purpose.",
};

typedef struct fixture {
    char dir[256], db[300], sampled_db[300], so[4096];
    tokenizer *tok;
    unsigned char *blob[N_SEQ], *sblob[N_SEQ];
    size_t blob_len[N_SEQ], sblob_len[N_SEQ];
    int32_t tokens[N_SEQ][128];
    int n_tokens[N_SEQ];
} fixture;

static fixture fx;

/* A labels.db at path for fx.tok with a tiny teacher config and the given
 * identity. @return the open writer, or NULL. */
static labels_db *open_fixture_db(const char *path, uint64_t teacher_hash, int k, int codec_version,
                                  const char *label_kind)
{
    labels_meta m;
    memset(&m, 0, sizeof m);
    m.teacher_hash = teacher_hash;
    m.teacher_config = (model_config){tok_vocab_size(fx.tok), 1, 1, 8, 128};
    if (tok_serialize(fx.tok, &m.tokenizer, &m.tokenizer_len) < 0)
        return NULL;
    m.tokenizer_hash = tok_hash(fx.tok);
    m.k = k;
    m.codec_version = codec_version;
    strcpy(m.tool_version, "test");
    snprintf(m.label_kind, sizeof m.label_kind, "%s", label_kind);
    labels_db *db = labels_db_open_write(path, &m);
    free(m.tokenizer);
    return db;
}

/* The sampled database: the same tokens, N_SAMPLES draws per position from
 * a fixed skewed distribution over a few ids. */
static int make_sampled_db(void)
{
    int vocab = tok_vocab_size(fx.tok);
    char kind[32];
    snprintf(kind, sizeof kind, "sample:%d", N_SAMPLES);
    labels_db *db = open_fixture_db(fx.sampled_db, 43, N_SAMPLES, SOFTLABEL_SAMPLED_VERSION, kind);
    softlabel_codec *c = softlabel_codec_create();
    if (!db || !c || labels_db_begin(db) < 0)
        return -1;
    rng_state rng;
    rng_seed(&rng, 12);
    for (int s = 0; s < N_SEQ; s++) {
        int n_pos = fx.n_tokens[s] - 1;
        int32_t ids[128 * N_SAMPLES] = {0};
        uint8_t counts[128 * N_SAMPLES] = {0};
        for (int i = 0; i < n_pos; i++)
            for (int d = 0; d < N_SAMPLES; d++) {
                int slot = (int)(rng_uniform(&rng) * rng_uniform(&rng) * 6);   /* skewed to 0 */
                ids[i * N_SAMPLES + slot] = (int32_t)((i * 13 + slot * 7 + s) % vocab);
                counts[i * N_SAMPLES + slot]++;
            }
        size_t cap = 0;
        if (softlabel_encode_sampled(c, ids, counts, n_pos, N_SAMPLES, vocab, &fx.sblob[s], &cap,
                                     &fx.sblob_len[s]) < 0)
            return -1;
        labels_row row = {"src", "", (uint64_t)s, 0, (uint64_t)s, fx.n_tokens[s], fx.tokens[s],
                          fx.sblob[s], fx.sblob_len[s], 1.0, 1.0, 0.0, 0.4};
        if (labels_db_insert(db, &row) < 0)
            return -1;
    }
    softlabel_codec_free(c);
    return labels_db_commit(db) < 0 || labels_db_close(db) < 0 ? -1 : 0;
}

static int make_db(void)
{
    byte_span spans[N_SEQ];
    for (int i = 0; i < N_SEQ; i++)
        spans[i] = (byte_span){(const unsigned char *)texts[i], strlen(texts[i])};
    fx.tok = tok_train(spans, N_SEQ, 300);
    if (!fx.tok)
        return -1;
    int vocab = tok_vocab_size(fx.tok);
    labels_db *db = open_fixture_db(fx.db, 42, K, SOFTLABEL_CODEC_VERSION, "topk");
    softlabel_codec *c = softlabel_codec_create();
    if (!db || !c || labels_db_begin(db) < 0)
        return -1;
    rng_state rng;
    rng_seed(&rng, 11);
    for (int s = 0; s < N_SEQ; s++) {
        size_t len = strlen(texts[s]);
        fx.tokens[s][0] = tok_eot(fx.tok);
        fx.n_tokens[s] = 1 + (int)tok_encode(fx.tok, (const unsigned char *)texts[s], len, fx.tokens[s] + 1);
        int n_pos = fx.n_tokens[s] - 1;
        int32_t ids[128 * K];
        float lp[128 * K];
        for (int i = 0; i < n_pos; i++) {
            double z = 0.0, w[K];
            for (int r = 0; r < K; r++)
                z += w[r] = exp(-0.8 * r - 0.3 * rng_uniform(&rng));
            z *= 1.02;                          /* leave a tail */
            for (int r = 0; r < K; r++) {
                ids[i * K + r] = (int32_t)((i * 37 + r * 11 + s) % vocab);
                lp[i * K + r] = (float)log(w[r] / z);
            }
        }
        size_t cap = 0;
        if (softlabel_encode(c, ids, lp, n_pos, K, vocab, &fx.blob[s], &cap, &fx.blob_len[s]) < 0)
            return -1;
        labels_row row = {"src", "", (uint64_t)s, 0, (uint64_t)s, fx.n_tokens[s], fx.tokens[s],
                          fx.blob[s], fx.blob_len[s], 1.0, 1.0, 0.02, 0.4};
        if (labels_db_insert(db, &row) < 0)
            return -1;
    }
    softlabel_codec_free(c);
    return labels_db_commit(db) < 0 || labels_db_close(db) < 0 ? -1 : 0;
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(fx.dir, sizeof fx.dir, "%s/w2s_sqlext_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fx.dir))
        return -1;
    snprintf(fx.db, sizeof fx.db, "%s/labels.db", fx.dir);
    snprintf(fx.sampled_db, sizeof fx.sampled_db, "%s/sampled.db", fx.dir);
    const char *build = getenv("BUILD");
    char rel[4096];
    snprintf(rel, sizeof rel, "%s/softlabel.so", build && *build ? build : "build");
    if (!realpath(rel, fx.so))
        fx.so[0] = '\0';
    if (make_db() < 0 || make_sampled_db() < 0) {
        fprintf(stderr, "test_sqlext: %s\n", err_message());
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tok_free(fx.tok);
    for (int s = 0; s < N_SEQ; s++) {
        free(fx.blob[s]);
        free(fx.sblob[s]);
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx.dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void skip_unless_loadable(void)
{
    if (getenv("W2S_ASAN") || BUILT_WITH_ASAN)
        skip();                 /* an ASan .so cannot load into the stock shell */
    if (!fx.so[0] || access(fx.so, R_OK) != 0 || system("sqlite3 -version > /dev/null 2>&1") != 0)
        skip();
}

/* Runs sql in the sqlite3 shell on database db after loading the extension.
 * Output (stdout and stderr) into out; @return the shell's exit status. */
static int shell_on(const char *db, const char *sql, char *out, size_t cap)
{
    char script[400], cmd[1200];
    snprintf(script, sizeof script, "%s/script.sql", fx.dir);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fprintf(f, ".bail on\n.load '%s'\n%s\n", fx.so, sql);
    fclose(f);
    snprintf(cmd, sizeof cmd, "sqlite3 -batch '%s' < '%s' 2>&1", db, script);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int shell(const char *sql, char *out, size_t cap)
{
    return shell_on(fx.db, sql, out, cap);
}

static void decode(int s, int32_t *ids, float *lp, float *tail, int *n_pos)
{
    softlabel_codec *c = softlabel_codec_create();
    int k;
    assert_int_equal(softlabel_decode(c, fx.blob[s], fx.blob_len[s], tok_vocab_size(fx.tok), 128, K, ids, lp,
                                      tail, n_pos, &k), 0);
    assert_int_equal(k, K);
    softlabel_codec_free(c);
}

static void hex_of(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02X", b[i]);
    out[2 * n] = '\0';
}

static void test_topk_rows(void **state)
{
    (void)state;
    skip_unless_loadable();
    static char out[1 << 20];
    int rc = shell("SELECT pos, rank, token_id, hex(token_text), logprob, prob FROM topk WHERE seq_id = 2;",
                   out, sizeof out);
    if (rc != 0)
        fail_msg("sqlite3 exited %d: %s", rc, out);
    int32_t ids[128 * K];
    float lp[128 * K], tail[128];
    int n_pos;
    decode(1, ids, lp, tail, &n_pos);
    char *line = out, *next;
    int rows = 0;
    for (; *line; line = next) {
        next = strchr(line, '\n');
        next = next ? next + 1 : line + strlen(line);
        int pos, rank, id;
        char hex[256];
        double l, p;
        if (sscanf(line, "%d|%d|%d|%255[0-9A-F]|%lf|%lf", &pos, &rank, &id, hex, &l, &p) != 6) {
            /* An empty token text leaves an empty hex field. */
            assert_int_equal(sscanf(line, "%d|%d|%d||%lf|%lf", &pos, &rank, &id, &l, &p), 5);
            hex[0] = '\0';
        }
        assert_int_equal(pos, rows / K);
        assert_int_equal(rank, rows % K);
        assert_int_equal(id, ids[rows]);
        assert_true(fabs(l - lp[rows]) < 1e-6);
        assert_true(fabs(p - exp((double)lp[rows])) < 1e-9);
        size_t n;
        const unsigned char *bytes = tok_token_bytes(fx.tok, id, &n);
        char want[256];
        hex_of(bytes, n, want);
        assert_string_equal(hex, want);
        rows++;
    }
    assert_int_equal(rows, n_pos * K);

    int total = 0;
    for (int s = 0; s < N_SEQ; s++)
        total += (fx.n_tokens[s] - 1) * K;
    char want[256];
    snprintf(want, sizeof want, "%d\n%d\n%d\n0\n", total, K, (fx.n_tokens[0] - 1) * K);
    rc = shell("SELECT count(*) FROM topk;\n"
               "SELECT count(*) FROM topk WHERE seq_id = 2 AND pos = 3;\n"
               "SELECT count(*) FROM topk WHERE seq_id = 1;\n"
               "SELECT count(*) FROM topk WHERE seq_id = 2 AND pos = 999;", out, sizeof out);
    assert_int_equal(rc, 0);
    assert_string_equal(out, want);
}

static void test_scalar_functions(void **state)
{
    (void)state;
    skip_unless_loadable();
    static char out[1 << 20];
    int rc = shell("SELECT topk_json(topk) FROM sequences WHERE seq_id = 1;", out, sizeof out);
    if (rc != 0)
        fail_msg("sqlite3 exited %d: %s", rc, out);
    int32_t ids[128 * K];
    float lp[128 * K], tail[128];
    int n_pos;
    decode(0, ids, lp, tail, &n_pos);
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    if (!j)
        fail_msg("topk_json is not JSON: %s", jerr.text);
    assert_int_equal(json_array_size(j), n_pos);
    for (int i = 0; i < n_pos; i++) {
        json_t *row = json_array_get(j, (size_t)i);
        assert_int_equal(json_array_size(row), K);
        for (int r = 0; r < K; r++) {
            json_t *pair = json_array_get(row, (size_t)r);
            assert_int_equal(json_integer_value(json_array_get(pair, 0)), ids[i * K + r]);
            assert_true(fabs(json_number_value(json_array_get(pair, 1)) - lp[i * K + r]) < 1e-6);
        }
    }
    json_decref(j);

    rc = shell("SELECT topk_entropy(topk) FROM sequences WHERE seq_id = 1;", out, sizeof out);
    assert_int_equal(rc, 0);
    double h = 0.0;
    for (int i = 0; i < n_pos; i++) {
        for (int r = 0; r < K; r++)
            h -= exp((double)lp[i * K + r]) * lp[i * K + r];
        if (tail[i] > 0)
            h -= tail[i] * log((double)tail[i]);
    }
    assert_true(fabs(strtod(out, NULL) - h / n_pos) < 1e-9);

    rc = shell("SELECT hex(detokenize(tokens)) FROM sequences ORDER BY seq_id;", out, sizeof out);
    assert_int_equal(rc, 0);
    char want[4096] = "", hex[1024];
    for (int s = 0; s < N_SEQ; s++) {
        hex_of((const unsigned char *)texts[s], strlen(texts[s]), hex);
        strcat(want, hex);
        strcat(want, "\n");
    }
    assert_string_equal(out, want);
}

static void test_bad_blobs(void **state)
{
    (void)state;
    skip_unless_loadable();
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx.db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE sequences SET topk = x'534c0100ffff' WHERE seq_id = 3", NULL, NULL,
                                  NULL), SQLITE_OK);
    sqlite3_close(db);
    static char out[1 << 16];
    int rc = shell("SELECT topk_json(topk) FROM sequences WHERE seq_id = 3;", out, sizeof out);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "soft-label blob"));
    rc = shell("SELECT topk_entropy(x'00');", out, sizeof out);
    assert_int_not_equal(rc, 0);
    rc = shell("SELECT count(*) FROM topk WHERE seq_id = 3;", out, sizeof out);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "seq_id 3"));
    rc = shell("SELECT count(*) FROM topk;", out, sizeof out);        /* the scan reaches row 3 */
    assert_int_not_equal(rc, 0);
    rc = shell("SELECT detokenize(x'010203');", out, sizeof out);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "not whole 2-byte ids"));
    rc = shell("SELECT count(*) FROM topk WHERE seq_id = 1;", out, sizeof out);
    assert_int_equal(rc, 0);
}

static void decode_sampled(int s, int32_t *ids, uint8_t *counts, int *n_pos)
{
    softlabel_codec *c = softlabel_codec_create();
    int n;
    assert_int_equal(softlabel_decode_sampled(c, fx.sblob[s], fx.sblob_len[s], tok_vocab_size(fx.tok), 128,
                                              N_SAMPLES, ids, counts, n_pos, &n), 0);
    assert_int_equal(n, N_SAMPLES);
    softlabel_codec_free(c);
}

/* Sampled labels: a row per distinct id with its exact count, prob = count / N,
 * logprob = log(prob); top-k rows have a NULL count; topk_kind names both. */
static void test_sampled_rows(void **state)
{
    (void)state;
    skip_unless_loadable();
    static char out[1 << 20];
    int rc = shell_on(fx.sampled_db, "SELECT pos, rank, token_id, count, prob, logprob FROM topk "
                      "WHERE seq_id = 2;", out, sizeof out);
    if (rc != 0)
        fail_msg("sqlite3 exited %d: %s", rc, out);
    int32_t ids[128 * N_SAMPLES];
    uint8_t counts[128 * N_SAMPLES];
    int n_pos;
    decode_sampled(1, ids, counts, &n_pos);
    int at = 0, rows = 0;   /* at: the next (pos, rank) entry with a count */
    for (char *line = out, *next; *line; line = next) {
        next = strchr(line, '\n');
        next = next ? next + 1 : line + strlen(line);
        while (at < n_pos * N_SAMPLES && !counts[at])
            at++;
        int pos, rank, id, count;
        double p, l;
        assert_int_equal(sscanf(line, "%d|%d|%d|%d|%lf|%lf", &pos, &rank, &id, &count, &p, &l), 6);
        assert_true(at < n_pos * N_SAMPLES);
        assert_int_equal(pos, at / N_SAMPLES);
        assert_int_equal(rank, at % N_SAMPLES);
        assert_int_equal(id, ids[at]);
        assert_int_equal(count, counts[at]);
        assert_true(fabs(p - (double)count / N_SAMPLES) < 1e-12);
        assert_true(fabs(l - log((double)count / N_SAMPLES)) < 1e-9);
        at++;
        rows++;
    }
    int distinct = 0;
    for (int e = 0; e < n_pos * N_SAMPLES; e++)
        distinct += counts[e] > 0;
    assert_int_equal(rows, distinct);

    char want[256];
    snprintf(want, sizeof want, "0\n%d\nsample:%d\n", N_SAMPLES, N_SAMPLES);
    rc = shell_on(fx.sampled_db, "SELECT count(*) FROM (SELECT seq_id, pos, sum(count) AS n FROM topk "
                  "GROUP BY seq_id, pos) WHERE n != 20;\n"
                  "SELECT sum(count) FROM topk WHERE seq_id = 3 AND pos = 2;\n"
                  "SELECT topk_kind(topk) FROM sequences WHERE seq_id = 1;", out, sizeof out);
    if (rc != 0)
        fail_msg("sqlite3 exited %d: %s", rc, out);
    assert_string_equal(out, want);
    int total = 0;
    for (int s = 0; s < N_SEQ; s++)
        total += (fx.n_tokens[s] - 1) * K;
    snprintf(want, sizeof want, "%d\ntopk:%d\n", total, K);
    rc = shell("SELECT count(*) FROM topk WHERE count IS NULL;\n"
               "SELECT topk_kind(topk) FROM sequences WHERE seq_id = 1;", out, sizeof out);
    assert_int_equal(rc, 0);
    assert_string_equal(out, want);

    /* topk_json: [id, logprob, count] triples of the distinct ids; entropy of the counts */
    decode_sampled(0, ids, counts, &n_pos);
    rc = shell_on(fx.sampled_db, "SELECT topk_json(topk) FROM sequences WHERE seq_id = 1;", out, sizeof out);
    assert_int_equal(rc, 0);
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    if (!j)
        fail_msg("topk_json is not JSON: %s", jerr.text);
    assert_int_equal(json_array_size(j), n_pos);
    double h = 0.0;
    for (int i = 0; i < n_pos; i++) {
        json_t *row = json_array_get(j, (size_t)i);
        int d = 0;
        for (int r = 0; r < N_SAMPLES; r++) {
            int c = counts[i * N_SAMPLES + r];
            if (!c)
                continue;
            json_t *triple = json_array_get(row, (size_t)d++);
            assert_int_equal(json_array_size(triple), 3);
            assert_int_equal(json_integer_value(json_array_get(triple, 0)), ids[i * N_SAMPLES + r]);
            assert_true(fabs(json_number_value(json_array_get(triple, 1)) - log((double)c / N_SAMPLES)) < 1e-7);
            assert_int_equal(json_integer_value(json_array_get(triple, 2)), c);
            h -= (double)c / N_SAMPLES * log((double)c / N_SAMPLES);
        }
        assert_int_equal(json_array_size(row), d);
    }
    json_decref(j);
    rc = shell_on(fx.sampled_db, "SELECT topk_entropy(topk) FROM sequences WHERE seq_id = 1;", out, sizeof out);
    assert_int_equal(rc, 0);
    assert_true(fabs(strtod(out, NULL) - h / n_pos) < 1e-6);
}

/* train --labels-where runs on labels_db's own connection: the extension's
 * functions work there, and a condition that never ends is stopped. */
static void test_labels_where_functions_and_budget(void **state)
{
    (void)state;
    labels_db *db = labels_db_open_read(fx.db);
    assert_non_null(db);
    int64_t *ids;
    size_t n;
    if (labels_db_select_ids(db, "topk_entropy(topk) > 0 AND topk_kind(topk) = 'topk:8' AND "
                             "detokenize(tokens) LIKE '%student%'", 0, &ids, &n) != 0)
        fail_msg("%s", err_message());
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 1);
    free(ids);
    const char *forever = "seq_id IN (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                          "SELECT x FROM c WHERE x = 0)";
    assert_int_equal(labels_db_select_ids(db, forever, 0.5, &ids, &n), -1);
    assert_non_null(strstr(err_message(), "did not finish within 0.5 s"));
    assert_null(ids);
    /* The connection is usable again afterwards. */
    assert_int_equal(labels_db_select_ids(db, NULL, 0, &ids, &n), 0);
    assert_int_equal(n, N_SEQ);
    free(ids);
    labels_db_close(db);
}

/* Every statement of the README's ```sql block runs in the sqlite3 shell on
 * a small labels.db; the "most uncertain sequences" query lists them by
 * entropy (the rows' natural order differs from it here). */
static void test_readme_sql_examples(void **state)
{
    (void)state;
    skip_unless_loadable();
    FILE *f = fopen("README.md", "r");
    if (!f)
        skip();                 /* not run from the repository root */
    char db[400], cmd[1000], out[8192];
    snprintf(db, sizeof db, "%s/readme.db", fx.dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", fx.db, db);
    assert_int_equal(system(cmd), 0);
    shell_on(db, "UPDATE sequences SET mean_entropy = CASE seq_id WHEN 1 THEN 0.5 WHEN 2 THEN 2.5 ELSE 1.5 END;",
             out, sizeof out);
    char line[1024], stmt[4096] = "";
    int in_sql = 0, statements = 0, uncertain_checked = 0;
    while (fgets(line, sizeof line, f)) {
        if (!in_sql) {
            in_sql = strncmp(line, "```sql", 6) == 0;
            continue;
        }
        if (strncmp(line, "```", 3) == 0) {
            in_sql = 0;
            continue;
        }
        if (strncmp(line, "sqlite3 ", 8) == 0 || line[0] == '.' || strncmp(line, "--", 2) == 0)
            continue;
        assert_true(strlen(stmt) + strlen(line) < sizeof stmt);
        strcat(stmt, line);
        if (!strchr(line, ';'))
            continue;
        if (shell_on(db, stmt, out, sizeof out) != 0)
            fail_msg("README example failed:\n%s\n%s", stmt, out);
        if (strstr(stmt, "AS entropy") && strstr(stmt, "detokenize(")) {
            if (strncmp(out, "2|2.5|", 6) != 0 || !strstr(out, "\n3|1.5|"))
                fail_msg("most uncertain sequences out of order:\n%s", out);
            uncertain_checked = 1;
        }
        statements++;
        stmt[0] = '\0';
    }
    fclose(f);
    assert_true(statements >= 6);
    assert_true(uncertain_checked);
}

/* The tokens blob (2-byte ids) of the single bytes of b, as an SQL literal. */
static void byte_tokens_sql(const unsigned char *b, size_t n, char *out)
{
    out += sprintf(out, "x'");
    for (size_t i = 0; i < n; i++)
        out += sprintf(out, "%02X00", b[i]);
    sprintf(out, "'");
}

/* detokenize returns valid UTF-8 of the exact length: a NUL stays, every
 * maximal subpart of an ill-formed or cut sequence becomes U+FFFD (EF BF BD). */
static void test_detokenize_utf8(void **state)
{
    (void)state;
    skip_unless_loadable();
    static const struct { const char *in, *want; } cases[] = {
        {"h\xc3\xa9llo\0 w", "68C3A96C6C6F002077"},               /* NUL kept, é kept */
        {"\xa9llo", "EFBFBD6C6C6F"},                               /* window starts mid-character */
        {"ab\xc3", "6162EFBFBD"},                                  /* window ends mid-character */
        {"\xe2\x82x", "EFBFBD78"},                                /* one U+FFFD for E2 82 */
        {"\xed\xa0\x80", "EFBFBDEFBFBDEFBFBD"},                   /* a surrogate */
        {"\xf4\x90", "EFBFBDEFBFBD"},                             /* beyond U+10FFFF */
        {"\xc0\xaf", "EFBFBDEFBFBD"},                             /* overlong */
        {"\xf0\x9f\x98\x80!", "F09F988021"},                       /* U+1F600 */
        {"\xf0\x9f\x98", "EFBFBD"},                               /* ... cut */
    };
    static const size_t lens[] = {9, 4, 3, 3, 3, 2, 2, 5, 3};
    static char out[1 << 12], sql[1 << 12], want[1 << 12];
    char *q = sql;
    want[0] = '\0';
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char lit[256];
        byte_tokens_sql((const unsigned char *)cases[i].in, lens[i], lit);
        q += sprintf(q, "SELECT hex(detokenize(%s)), length(CAST(detokenize(%s) AS BLOB));\n", lit, lit);
        sprintf(want + strlen(want), "%s|%zu\n", cases[i].want, strlen(cases[i].want) / 2);
    }
    int rc = shell(sql, out, sizeof out);
    if (rc != 0)
        fail_msg("sqlite3 exited %d: %s", rc, out);
    assert_string_equal(out, want);
}

/* The golden databases: detokenize reads 2-byte ids (version 1, no
 * token_bytes) and 4-byte ids (version 2); topk shows ids beyond 16 bits. */
static void test_golden_databases(void **state)
{
    (void)state;
    skip_unless_loadable();
    static char out[1 << 12];
    char v1[400], v2[400];
    snprintf(v1, sizeof v1, "%s/golden_v1.db", fx.dir);
    snprintf(v2, sizeof v2, "%s/golden_v2.db", fx.dir);
    assert_int_equal(scli_copy_file("tests/golden/labels_v1.db", v1), 0);
    assert_int_equal(scli_copy_file("tests/golden/labels_v2.db", v2), 0);
    const char *sql = "SELECT hex(detokenize(tokens)) FROM sequences WHERE seq_id = 1;\n"
                      "SELECT token_id, hex(token_text) FROM topk WHERE seq_id = 1 AND pos = 1 AND rank = 0;\n"
                      "SELECT group_concat(token_id) FROM topk WHERE seq_id = 2 AND rank = 0;";
    int rc = shell_on(v1, sql, out, sizeof out);
    if (rc != 0)
        fail_msg("sqlite3 exited %d: %s", rc, out);
    assert_string_equal(out, "68C3A96C6C6F002077\n169|A9\n257,269,260,100\n");
    rc = shell_on(v2, sql, out, sizeof out);
    if (rc != 0)
        fail_msg("sqlite3 exited %d: %s", rc, out);
    assert_string_equal(out, "68C3A96C6C6F002077\n169|A9\n257,149999,70000,65535\n");
    /* ids beyond the stored tokenizer: no token text, and no text for detokenize */
    rc = shell_on(v2, "SELECT token_text IS NULL FROM topk WHERE seq_id = 2 AND pos = 2 AND rank = 0;", out,
                  sizeof out);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "1\n");
    rc = shell_on(v2, "SELECT detokenize(tokens) FROM sequences WHERE seq_id = 2;", out, sizeof out);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "token 149999 at 2 outside the vocabulary"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels_where_functions_and_budget),
        cmocka_unit_test(test_readme_sql_examples),
        cmocka_unit_test(test_topk_rows),
        cmocka_unit_test(test_scalar_functions),
        cmocka_unit_test(test_sampled_rows),
        cmocka_unit_test(test_detokenize_utf8),
        cmocka_unit_test(test_golden_databases),
        cmocka_unit_test(test_bad_blobs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
