/* Tests of labels.db access: creation and reopening, refusal of another
 * teacher / tokenizer / k / schema version / non-database file, resumable
 * record lookup, read-only conditions, corrupt rows, shard merging, and
 * integrity after all of it; token ids beyond 16 bits (schema version 2) and
 * the golden databases of versions 1 and 2. Files live in a fresh temporary
 * directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/err.h"
#include "labels/labels_db.h"
#include "labels/softlabel.h"
#include "support_cli.h"
#include "support_fixtures.h"

static char dir[256];

static int make_dir(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/w2s_labels_db_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *path_of(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static unsigned char tok_blob[5] = {1, 2, 3, 4, 5};

static labels_meta meta_of(uint64_t teacher, uint64_t tokenizer, int k)
{
    labels_meta m;
    memset(&m, 0, sizeof m);
    m.teacher_hash = teacher;
    m.teacher_config = (model_config){4096, 2, 4, 128, 128};
    m.tokenizer = tok_blob;
    m.tokenizer_len = sizeof tok_blob;
    m.tokenizer_hash = tokenizer;
    m.k = k;
    m.codec_version = 1;
    strcpy(m.tool_version, "test");
    strcpy(m.label_kind, "topk");
    return m;
}

static void insert_row(labels_db *db, const char *source, uint64_t index, int window, uint64_t hash,
                       int n_tokens, double entropy)
{
    int32_t tokens[16];
    for (int i = 0; i < n_tokens; i++)
        tokens[i] = (int32_t)(index * 100 + i + (i == 1 ? 60000 : 0));
    unsigned char topk[3] = {'b', (unsigned char)index, (unsigned char)window};
    labels_row row = {source, "", index, window, hash, n_tokens, tokens, topk, sizeof topk,
                      1.5, entropy, 0.01, 0.5};
    if (labels_db_insert(db, &row) < 0)
        fail_msg("%s", err_message());
}

static void exec_raw(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

/* A creation killed midway leaves "<path>.new-<pid>" (and its journal);
 * the next creation of that path removes them when the pid is gone, and
 * leaves a living process's and unrelated files alone. */
static void test_stale_creations_removed(void **state)
{
    (void)state;
    pid_t dead = fork();
    assert_true(dead >= 0);
    if (dead == 0)
        _exit(0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    char stale[2][512], live[512], other[512];
    snprintf(stale[0], sizeof stale[0], "%s.new-%ld", path_of("s.db"), (long)dead);
    snprintf(stale[1], sizeof stale[1], "%s.new-%ld-journal", path_of("s.db"), (long)dead);
    snprintf(live, sizeof live, "%s.new-%ld", path_of("s.db"), (long)getppid());
    snprintf(other, sizeof other, "%s.new-%ld.keep", path_of("s.db"), (long)dead);
    const char *all[] = {stale[0], stale[1], live, other};
    for (int i = 0; i < 4; i++)
        assert_int_equal(scli_write_file(all[i], "x", 1), 0);
    labels_meta m = meta_of(1, 2, 8);
    labels_db *db = labels_db_open_write(path_of("s.db"), &m);
    if (!db)
        fail_msg("%s", err_message());
    assert_int_equal(labels_db_created(db), 1);
    labels_db_close(db);
    assert_int_not_equal(access(stale[0], F_OK), 0);
    assert_int_not_equal(access(stale[1], F_OK), 0);
    assert_int_equal(access(live, F_OK), 0);
    assert_int_equal(access(other, F_OK), 0);
}

static void test_create_reopen_meta(void **state)
{
    (void)state;
    const char *p = path_of("a.db");
    labels_meta m = meta_of(0xfedcba9876543210u, 0x0123456789abcdefu, 32);
    labels_db *db = labels_db_open_write(p, &m);
    if (!db)
        fail_msg("%s", err_message());
    assert_int_equal(labels_db_close(db), 0);
    db = labels_db_open_write(p, &m);
    assert_non_null(db);
    labels_meta got;
    assert_int_equal(labels_db_meta(db, &got), 0);
    assert_true(got.teacher_hash == m.teacher_hash);
    assert_true(got.tokenizer_hash == m.tokenizer_hash);
    assert_int_equal(got.k, 32);
    assert_int_equal(got.codec_version, 1);
    assert_int_equal(got.teacher_config.channels, 128);
    assert_int_equal(got.teacher_config.vocab, 4096);
    assert_int_equal(got.tokenizer_len, sizeof tok_blob);
    assert_memory_equal(got.tokenizer, tok_blob, sizeof tok_blob);
    assert_string_equal(got.label_kind, "topk");
    assert_string_equal(got.tool_version, "test");
    labels_meta_free(&got);
    assert_int_equal(labels_db_close(db), 0);

    db = labels_db_open_read(p);
    assert_non_null(db);
    int64_t seqs = -1, toks = -1;
    assert_int_equal(labels_db_count(db, &seqs, &toks), 0);
    assert_true(seqs == 0 && toks == 0);
    assert_int_equal(labels_db_insert(db, &(labels_row){0}), -1);   /* read-only handle */
    assert_int_equal(labels_db_close(db), 0);
    assert_int_equal(sfix_db_integrity(p, SQLITE_OPEN_READONLY), 0);
}

static void expect_open_write_fails(const char *p, const labels_meta *m, const char *what)
{
    labels_db *db = labels_db_open_write(p, m);
    if (db)
        fail_msg("%s was accepted", what);
    if (!strstr(err_message(), p) || !strstr(err_message(), what))
        fail_msg("message \"%s\" does not name the file and \"%s\"", err_message(), what);
}

static void test_refuses_mismatch(void **state)
{
    (void)state;
    const char *p = path_of("b.db");
    labels_meta m = meta_of(1, 2, 32);
    labels_db *db = labels_db_open_write(p, &m);
    assert_non_null(db);
    labels_db_close(db);
    labels_meta other = meta_of(9, 2, 32);
    expect_open_write_fails(p, &other, "teacher");
    other = meta_of(1, 9, 32);
    expect_open_write_fails(p, &other, "tokenizer");
    other = meta_of(1, 2, 16);
    expect_open_write_fails(p, &other, "top 32");
    other = meta_of(1, 2, 32);
    other.codec_version = 2;
    expect_open_write_fails(p, &other, "codec version");
    /* b.db predates the precision key: its labels count as fp32 */
    other = meta_of(1, 2, 32);
    strcpy(other.teacher_precision, "bf16");
    expect_open_write_fails(p, &other, "products in fp32, not bf16");
    strcpy(other.teacher_precision, "fp32");
    db = labels_db_open_write(p, &other);
    assert_non_null(db);
    labels_db_close(db);
    const char *q = path_of("b16.db");
    strcpy(other.teacher_precision, "bf16");
    db = labels_db_open_write(q, &other);
    assert_non_null(db);
    labels_meta got;
    assert_int_equal(labels_db_meta(db, &got), 0);
    assert_string_equal(got.teacher_precision, "bf16");
    labels_meta_free(&got);
    labels_db_close(db);
    strcpy(other.teacher_precision, "fp32");
    expect_open_write_fails(q, &other, "products in bf16, not fp32");

    exec_raw(p, "PRAGMA user_version = 3");
    expect_open_write_fails(p, &m, "schema version 3");
    assert_null(labels_db_open_read(p));
    assert_non_null(strstr(err_message(), "schema version 3"));
    assert_non_null(strstr(err_message(), p));
}

static void test_not_a_database(void **state)
{
    (void)state;
    const char *p = path_of("text.db");
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not an SQLite file at all\n", f);
    fclose(f);
    labels_meta m = meta_of(1, 2, 32);
    expect_open_write_fails(p, &m, "not an SQLite database");
    assert_null(labels_db_open_read(p));
    assert_non_null(strstr(err_message(), "not an SQLite database"));
    assert_null(labels_db_open_read(path_of("missing.db")));
    assert_non_null(strstr(err_message(), "missing.db"));
    /* An empty SQLite file is no labels.db for a reader. */
    exec_raw(path_of("empty.db"), "PRAGMA user_version = 0");
    assert_null(labels_db_open_read(path_of("empty.db")));
}

static void test_insert_stored_windows(void **state)
{
    (void)state;
    const char *p = path_of("c.db");
    labels_meta m = meta_of(1, 2, 32);
    labels_db *db = labels_db_open_write(p, &m);
    assert_non_null(db);
    assert_int_equal(labels_db_begin(db), 0);
    insert_row(db, "corpus.tar", 0, 0, 0xffffffffffffff00u, 5, 1.0);
    insert_row(db, "corpus.tar", 0, 1, 0xffffffffffffff00u, 3, 2.0);
    insert_row(db, "corpus.tar", 1, 0, 77, 4, 3.0);
    assert_int_equal(labels_db_commit(db), 0);
    int64_t stored = -1;
    assert_int_equal(labels_db_stored_windows(db, "corpus.tar", "", 0, 0xffffffffffffff00u, &stored), 0);
    assert_int_equal(stored, 2);
    assert_int_equal(labels_db_stored_windows(db, "corpus.tar", "", 1, 77, &stored), 0);
    assert_int_equal(stored, 1);
    assert_int_equal(labels_db_stored_windows(db, "corpus.tar", "", 2, 5, &stored), 0);
    assert_int_equal(stored, 0);
    assert_int_equal(labels_db_stored_windows(db, "other", "", 1, 77, &stored), 0);
    assert_int_equal(stored, 0);
    assert_int_equal(labels_db_stored_windows(db, "corpus.tar", "", 1, 78, &stored), -1);
    assert_non_null(strstr(err_message(), "input changed"));
    /* windows that are not 0 .. n - 1 are not distill's */
    assert_int_equal(labels_db_begin(db), 0);
    insert_row(db, "gaps", 0, 1, 9, 3, 1.0);
    assert_int_equal(labels_db_commit(db), 0);
    assert_int_equal(labels_db_stored_windows(db, "gaps", "", 0, 9, &stored), -1);
    assert_non_null(strstr(err_message(), "not windows 0 to 0"));
    /* The same identity twice is refused. */
    int32_t tokens[2] = {1, 2};
    labels_row dup = {"corpus.tar", "", 1, 0, 77, 2, tokens, tok_blob, 1, 0, 0, 0, 0};
    assert_int_equal(labels_db_insert(db, &dup), -1);
    assert_non_null(strstr(err_message(), p));
    tokens[1] = 70000;
    dup.record_index = 9;
    assert_int_equal(labels_db_insert(db, &dup), -1);
    int64_t seqs, toks;
    assert_int_equal(labels_db_count(db, &seqs, &toks), 0);
    assert_true(seqs == 4 && toks == 15);   /* with the "gaps" row */
    /* An uncommitted batch is rolled back at close. */
    assert_int_equal(labels_db_begin(db), 0);
    insert_row(db, "corpus.tar", 5, 0, 5, 3, 1.0);
    assert_int_equal(labels_db_close(db), 0);
    db = labels_db_open_read(p);
    assert_int_equal(labels_db_count(db, &seqs, &toks), 0);
    assert_true(seqs == 4);

    int32_t got[8];
    unsigned char *blob = NULL;
    size_t cap = 0, len = 0;
    int n = 0;
    assert_int_equal(labels_db_read(db, 1, got, 8, &n, &blob, &cap, &len), 0);
    assert_int_equal(n, 5);
    assert_int_equal(got[0], 0);
    assert_int_equal(got[1], 60001);
    assert_int_equal(got[4], 4);
    assert_int_equal(len, 3);
    assert_int_equal(blob[0], 'b');
    assert_int_equal(labels_db_read(db, 1, got, 4, &n, &blob, &cap, &len), -1);   /* no room */
    assert_int_equal(labels_db_read(db, 99, got, 8, &n, &blob, &cap, &len), -1);
    assert_non_null(strstr(err_message(), "seq_id 99"));
    free(blob);
    labels_db_close(db);
    assert_int_equal(sfix_db_integrity(p, SQLITE_OPEN_READONLY), 0);
}

static void test_select_conditions(void **state)
{
    (void)state;
    const char *p = path_of("d.db");
    labels_meta m = meta_of(1, 2, 32);
    labels_db *w = labels_db_open_write(p, &m);
    assert_int_equal(labels_db_begin(w), 0);
    for (int i = 0; i < 10; i++)
        insert_row(w, i < 5 ? "a" : "b", (uint64_t)i, 0, (uint64_t)i, 3, i * 0.5);
    assert_int_equal(labels_db_commit(w), 0);
    labels_db_close(w);

    labels_db *db = labels_db_open_read(p);
    int64_t *ids;
    size_t n;
    assert_int_equal(labels_db_select_ids(db, NULL, 0, &ids, &n), 0);
    assert_int_equal(n, 10);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ids[i], (int64_t)i + 1);
    free(ids);
    assert_int_equal(labels_db_select_ids(db, "mean_entropy < 2.5 AND source = 'b'", 0, &ids, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(labels_db_select_ids(db, "mean_entropy >= 1.0 -- trailing comment", 0, &ids, &n), 0);
    assert_int_equal(n, 8);
    assert_int_equal(ids[0], 3);
    free(ids);
    assert_int_equal(labels_db_select_ids(db, "seq_id IN (SELECT seq_id FROM uncertain_sequences LIMIT 2)",
                                          0, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 9);
    free(ids);

    const char *bad[] = {
        "mean_entropy <",                                      /* syntax */
        "no_such_column > 1",
        "1); DELETE FROM sequences; --",
        "1) OR (1",                                            /* harmless, but see below */
        "(SELECT 1 FROM (SELECT load_extension('x')))",
        "1); ATTACH DATABASE 'x.db' AS x; --",
        "1) ; PRAGMA user_version = 7; --",
        "seq_id IN (WITH t(x) AS (SELECT 1) SELECT x FROM t)) UNION SELECT name FROM sqlite_master --",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = labels_db_select_ids(db, bad[i], 0, &ids, &n);
        if (i == 3) {      /* balanced parentheses: still a read-only condition */
            assert_int_equal(rc, 0);
            free(ids);
            continue;
        }
        if (rc != -1)
            fail_msg("condition \"%s\" accepted", bad[i]);
        assert_non_null(strstr(err_message(), p));
        assert_null(ids);
    }
    labels_db_close(db);

    /* Also on a write handle: nothing was deleted, nothing was attached. */
    w = labels_db_open_write(p, &m);
    assert_int_equal(labels_db_select_ids(w, "1); DELETE FROM sequences; --", 0, &ids, &n), -1);
    assert_int_equal(labels_db_select_ids(w, "(SELECT count(*) FROM pragma_table_info('meta')) > 0", 0, &ids, &n), -1);
    int64_t seqs, toks;
    assert_int_equal(labels_db_count(w, &seqs, &toks), 0);
    assert_int_equal(seqs, 10);
    labels_db_close(w);
    assert_int_equal(sfix_db_integrity(p, SQLITE_OPEN_READONLY), 0);
}

static void test_corrupt_rows(void **state)
{
    (void)state;
    const char *p = path_of("e.db");
    labels_meta m = meta_of(1, 2, 32);
    labels_db *w = labels_db_open_write(p, &m);
    assert_int_equal(labels_db_begin(w), 0);
    for (int i = 0; i < 4; i++)
        insert_row(w, "s", (uint64_t)i, 0, 1, 4, 1.0);
    assert_int_equal(labels_db_commit(w), 0);
    labels_db_close(w);
    exec_raw(p, "UPDATE sequences SET tokens = x'0102030405' WHERE seq_id = 1;"
                "UPDATE sequences SET n_tokens = 5 WHERE seq_id = 2;"
                "UPDATE sequences SET tokens = x'' WHERE seq_id = 3;"
                "UPDATE sequences SET n_tokens = -4 WHERE seq_id = 4;");
    labels_db *db = labels_db_open_read(p);
    int32_t tokens[8];
    unsigned char *blob = NULL;
    size_t cap = 0, len;
    int n;
    for (int64_t id = 1; id <= 4; id++) {
        assert_int_equal(labels_db_read(db, id, tokens, 8, &n, &blob, &cap, &len), -1);
        char want[32];
        snprintf(want, sizeof want, "seq_id %d", (int)id);
        assert_non_null(strstr(err_message(), want));
        assert_non_null(strstr(err_message(), p));
    }
    free(blob);
    labels_db_close(db);

    exec_raw(p, "DELETE FROM meta WHERE key = 'k'");
    db = labels_db_open_read(p);
    labels_meta got;
    assert_int_equal(labels_db_meta(db, &got), -1);
    assert_non_null(strstr(err_message(), "meta"));
    labels_db_close(db);
    exec_raw(p, "UPDATE meta SET value = 'zz' WHERE key = 'teacher_hash'");
    assert_null(labels_db_open_write(p, &m));
}

static void make_shard(const char *p, uint64_t teacher, int first, int count, uint64_t hash_salt)
{
    labels_meta m = meta_of(teacher, 2, 32);
    labels_db *w = labels_db_open_write(p, &m);
    assert_non_null(w);
    assert_int_equal(labels_db_begin(w), 0);
    for (int i = first; i < first + count; i++)
        insert_row(w, "corpus", (uint64_t)i, 0, (uint64_t)i + hash_salt, 3, 1.0);
    assert_int_equal(labels_db_commit(w), 0);
    labels_db_close(w);
}

static void test_merge(void **state)
{
    (void)state;
    const char *s1 = path_of("shard 1 of 2.db"), *s2 = path_of("shard%2#2?.db");
    make_shard(s1, 1, 0, 6, 0);
    make_shard(s2, 1, 4, 6, 0);                 /* overlaps s1 in records 4 and 5 */
    const char *out = path_of("merged.db");
    labels_meta m = meta_of(1, 2, 32);
    labels_db *db = labels_db_open_write(out, &m);
    if (labels_db_merge_from(db, s1) < 0 || labels_db_merge_from(db, s2) < 0)
        fail_msg("%s", err_message());
    int64_t seqs, toks;
    assert_int_equal(labels_db_count(db, &seqs, &toks), 0);
    assert_int_equal(seqs, 10);
    assert_int_equal(toks, 30);
    assert_int_equal(labels_db_merge_from(db, s2), 0);   /* idempotent */
    assert_int_equal(labels_db_count(db, &seqs, &toks), 0);
    assert_int_equal(seqs, 10);

    const char *other = path_of("other-teacher.db");
    make_shard(other, 5, 20, 2, 0);
    assert_int_equal(labels_db_merge_from(db, other), -1);
    assert_non_null(strstr(err_message(), other));
    assert_non_null(strstr(err_message(), "teacher"));
    const char *changed = path_of("changed.db");
    make_shard(changed, 1, 8, 4, 1000);        /* records 8, 9 differ, 10, 11 new */
    assert_int_equal(labels_db_merge_from(db, changed), -1);
    assert_non_null(strstr(err_message(), "record 8"));
    assert_int_equal(labels_db_merge_from(db, path_of("absent.db")), -1);
    assert_int_equal(labels_db_count(db, &seqs, &toks), 0);
    assert_int_equal(seqs, 10);                /* nothing of the refused shards */
    assert_int_equal(labels_db_close(db), 0);
    assert_int_equal(sfix_db_integrity(out, SQLITE_OPEN_READONLY), 0);
    assert_int_equal(sfix_db_integrity(s1, SQLITE_OPEN_READONLY), 0);
}

/* A teacher of 152,064 ids (Qwen's): 4-byte token ids, read back exactly;
 * such a shard does not merge into a database of 2-byte ids. */
static void test_wide_tokens(void **state)
{
    (void)state;
    const char *p = path_of("wide.db");
    labels_meta m = meta_of(1, 2, 32);
    m.teacher_config.vocab = 152064;
    labels_db *db = labels_db_open_write(p, &m);
    assert_non_null(db);
    int32_t tokens[6] = {0, 65535, 65536, 150000, 152063, 7};
    labels_row row = {"wide", "", 0, 0, 1, 6, tokens, tok_blob, 1, 0, 0, 0, 0};
    assert_int_equal(labels_db_begin(db), 0);
    assert_int_equal(labels_db_insert(db, &row), 0);
    assert_int_equal(labels_db_commit(db), 0);
    labels_meta got;
    assert_int_equal(labels_db_meta(db, &got), 0);
    assert_int_equal(got.token_bytes, 4);
    labels_meta_free(&got);
    assert_int_equal(labels_db_close(db), 0);

    db = labels_db_open_read(p);
    assert_non_null(db);
    int32_t back[8];
    unsigned char *blob = NULL;
    size_t cap = 0, len = 0;
    int n = 0;
    assert_int_equal(labels_db_read(db, 1, back, 8, &n, &blob, &cap, &len), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(back, tokens, sizeof tokens);
    free(blob);
    labels_db_close(db);
    assert_int_equal(labels_token_bytes(65536), 2);
    assert_int_equal(labels_token_bytes(65537), 4);

    /* same teacher and tokenizer hashes, other token width */
    const char *narrow = path_of("narrow.db");
    labels_meta nm = meta_of(1, 2, 32);
    db = labels_db_open_write(narrow, &nm);
    assert_non_null(db);
    assert_int_equal(labels_db_merge_from(db, p), -1);
    assert_non_null(strstr(err_message(), "token ids of 4 bytes"));
    assert_int_equal(labels_db_close(db), 0);
}

/* Reads seq_id 1 and 2 of a golden database and checks their tokens and
 * that each blob decodes to its row's next tokens at rank 0. */
static void check_golden_rows(labels_db *db, const int32_t *row2, int vocab)
{
    static const int32_t row1[9] = {'h', 0xc3, 0xa9, 'l', 'l', 'o', 0, ' ', 'w'};
    const int32_t *want[2] = {row1, row2};
    const int lens[2] = {9, 5};
    softlabel_codec *c = softlabel_codec_create();
    int32_t tokens[16], ids[16 * 4];
    float lp[16 * 4], tail[16];
    unsigned char *blob = NULL;
    size_t cap = 0, len = 0;
    for (int r = 0; r < 2; r++) {
        int n = 0, np, k;
        assert_int_equal(labels_db_read(db, r + 1, tokens, 16, &n, &blob, &cap, &len), 0);
        assert_int_equal(n, lens[r]);
        assert_memory_equal(tokens, want[r], (size_t)n * sizeof *tokens);
        assert_int_equal(softlabel_decode(c, blob, len, vocab, 16, 4, ids, lp, tail, &np, &k), 0);
        assert_int_equal(np, n - 1);
        for (int i = 0; i < np; i++)
            assert_int_equal(ids[i * 4], tokens[i + 1]);
    }
    free(blob);
    softlabel_codec_free(c);
}

/* Reads path with plain sqlite3: its user_version is version and the tokens
 * blob of the row matching where is hex, byte for byte. */
static void expect_raw_tokens(const char *path, const char *where, int version, const char *hex)
{
    sqlite3 *raw;
    sqlite3_stmt *st;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT (SELECT user_version FROM pragma_user_version), hex(tokens) "
                              "FROM sequences WHERE %s", where);
    assert_int_equal(sqlite3_open_v2(path, &raw, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(raw, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), version);
    assert_string_equal((const char *)sqlite3_column_text(st, 1), hex);
    sqlite3_finalize(st);
    sqlite3_close(raw);
}

/* tests/golden/labels_v1.db, written by the schema version 1 library (2-byte
 * tokens, no token_bytes in meta, codec version 3, vocab 270), vacuumed to
 * 512-byte pages: still read, and a writer resuming it adds 2-byte rows
 * without changing its version. */
static void test_golden_v1_database(void **state)
{
    (void)state;
    const char *p = path_of("golden_v1.db");
    assert_int_equal(scli_copy_file("tests/golden/labels_v1.db", p), 0);
    labels_db *db = labels_db_open_read(p);
    if (!db)
        fail_msg("%s", err_message());
    labels_meta m;
    assert_int_equal(labels_db_meta(db, &m), 0);
    assert_int_equal(m.token_bytes, 2);
    assert_int_equal(m.codec_version, SOFTLABEL_CODEC_VERSION);
    assert_int_equal(m.teacher_config.vocab, 270);
    const int32_t row2[5] = {3, 257, 269, 260, 100};
    check_golden_rows(db, row2, 270);
    labels_db_close(db);

    db = labels_db_open_write(p, &m);
    if (!db)
        fail_msg("%s", err_message());
    int32_t tokens[3] = {5, 6, 269};
    labels_row row = {"more", "", 0, 0, 1, 3, tokens, tok_blob, 1, 0, 0, 0, 0};
    assert_int_equal(labels_db_begin(db), 0);
    assert_int_equal(labels_db_insert(db, &row), 0);
    tokens[2] = 70000;
    row.record_index = 1;
    assert_int_equal(labels_db_insert(db, &row), -1);
    assert_non_null(strstr(err_message(), "does not fit 2 bytes"));
    assert_int_equal(labels_db_commit(db), 0);
    assert_int_equal(labels_db_close(db), 0);
    labels_meta_free(&m);
    expect_raw_tokens(p, "source = 'more'", LABELS_SCHEMA_V1, "050006000D01");
    assert_int_equal(sfix_db_integrity(p, SQLITE_OPEN_READONLY), 0);
}

/* tests/golden/labels_v2.db, written by this library for a teacher of vocab
 * 150000 (its tokenizer, of 270 ids, only fills the meta row): 4-byte tokens
 * little-endian, codec version 4 blobs. */
static void test_golden_v2_database(void **state)
{
    (void)state;
    labels_db *db = labels_db_open_read("tests/golden/labels_v2.db");
    if (!db)
        fail_msg("%s", err_message());
    labels_meta m;
    assert_int_equal(labels_db_meta(db, &m), 0);
    assert_int_equal(m.token_bytes, 4);
    assert_int_equal(m.codec_version, SOFTLABEL_TOPK_WIDE_VERSION);
    assert_int_equal(m.teacher_config.vocab, 150000);
    labels_meta_free(&m);
    const int32_t row2[5] = {3, 257, 149999, 70000, 65535};
    check_golden_rows(db, row2, 150000);
    labels_db_close(db);
    expect_raw_tokens("tests/golden/labels_v2.db", "seq_id = 2", LABELS_SCHEMA_VERSION,
                      "0300000001010000EF49020070110100FFFF0000");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_reopen_meta),
        cmocka_unit_test(test_stale_creations_removed),
        cmocka_unit_test(test_refuses_mismatch),
        cmocka_unit_test(test_not_a_database),
        cmocka_unit_test(test_insert_stored_windows),
        cmocka_unit_test(test_select_conditions),
        cmocka_unit_test(test_corrupt_rows),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_wide_tokens),
        cmocka_unit_test(test_golden_v1_database),
        cmocka_unit_test(test_golden_v2_database),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
