/* Bad-input table for the train and distill programs, black box:
 * the programs run as subprocesses from $BUILD on fixtures made here (a tiny
 * teacher trained by `train`, a labels.db written by `distill`, damaged
 * copies of both, broken archives, odd text).
 *
 * Each table row is one cmocka test asserting the exit status (2 for usage
 * errors, else non-zero without a signal), exactly one stderr line naming the
 * offending file or option, and that the pre-existing outputs it lists are
 * byte-unchanged (and the outputs it must not create are absent).
 *
 * Accepted inputs have their own tests: invalid UTF-8 and NUL bytes, and a
 * single record far longer than T, both round-trip exactly (train --eval
 * counts every byte; distill's stored windows decode back to the record). */
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
#include <sys/stat.h>
#include <unistd.h>

#include "labels/labels_db.h"
#include "base/rng.h"
#include "support_cli.h"
#include "text/tokenizer.h"

static char *dir;
/* The last run's output: freed by the next run and at teardown, so that a
 * failing assertion leaks nothing (the suite also runs under LeakSanitizer). */
static scli_result r;

static void run(const char *const *argv)
{
    scli_result_free(&r);
    assert_int_equal(scli_run_in(dir, argv, &r), 0);
}

/* ---- fixtures ---- */

static void write_text(const char *name, const void *data, size_t len)
{
    char *p = scli_path(dir, name);
    assert_int_equal(scli_write_file(p, data, len), 0);
    free(p);
}

static void copy_in(const char *from, const char *to)
{
    char *a = scli_path(dir, from), *b = scli_path(dir, to);
    assert_int_equal(scli_copy_file(a, b), 0);
    free(a);
    free(b);
}

static void exec_sql(const char *name, const char *sql)
{
    char *p = scli_path(dir, name);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    free(p);
}

static long long file_size(const char *name)
{
    char *p = scli_path(dir, name);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    free(p);
    return (long long)st.st_size;
}

static void run_ok(const char *const *argv)
{
    run(argv);
    if (r.status != 0)
        fprintf(stderr, "%s exited %d:\n%s", argv[0], r.status, r.err);
    assert_int_equal(r.status, 0);
}

static int setup(void **state)
{
    (void)state;
    dir = scli_tempdir("bad-input");
    if (!dir)
        return -1;
    char *gt = scli_path(dir, "gt.txt"), *gt2 = scli_path(dir, "gt2.txt");
    char *t = scli_path(dir, "t.ckpt"), *t2 = scli_path(dir, "t2.ckpt");
    int rc = scli_write_fortunes(gt, 1, 200) || scli_write_fortunes(gt2, 2, 200) ||
             scli_make_teacher(gt, t, 10, 300) ||
             /* Another tokenizer: other text, other vocabulary. */
             scli_make_teacher(gt2, t2, 3, 280);
    free(gt);
    free(gt2);
    free(t);
    free(t2);
    if (rc)
        return -1;

    const char *distill[] = {"distill", "--teacher", "t.ckpt", "--db", "labels.db", "--input",
                             "gt.txt", "--records", "fortune", "--topk", "8", "--threads", "1",
                             "--quiet", NULL};
    run_ok(distill);
    copy_in("labels.db", "l99.db");
    exec_sql("l99.db", "PRAGMA user_version = 99");

    /* Pre-existing outputs the failing runs must leave alone. */
    copy_in("t.ckpt", "out.ckpt");
    copy_in("t.ckpt", "out.ckpt.resume");

    /* Damaged checkpoints (schemas/checkpoint.md: version u32 at offset 8). */
    long long ck = file_size("t.ckpt");
    char *p;
    copy_in("t.ckpt", "trunc.ckpt");
    assert_int_equal(scli_truncate(p = scli_path(dir, "trunc.ckpt"), ck / 2), 0);
    free(p);
    copy_in("t.ckpt", "flip.ckpt");
    assert_int_equal(scli_flip_byte(p = scli_path(dir, "flip.ckpt"), ck / 2, 0x10), 0);
    free(p);
    copy_in("t.ckpt", "v2.ckpt");
    assert_int_equal(scli_flip_byte(p = scli_path(dir, "v2.ckpt"), 8, 0x03), 0); /* 1 -> 2 */
    free(p);
    /* A damaged resumable state must stop --resume, not restart silently. */
    copy_in("flip.ckpt", "rs.ckpt.resume");
    copy_in("t.ckpt", "rs.ckpt");

    unsigned char noise[8192];
    rng_state rng;
    rng_seed(&rng, 99);
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (unsigned char)rng_next(&rng);
    write_text("random.db", noise, sizeof noise);
    /* Random bytes named like a compressed tar. */
    unsigned char *big_noise = malloc(100 * 1024);
    assert_non_null(big_noise);
    for (size_t i = 0; i < 100 * 1024; i++)
        big_noise[i] = (unsigned char)rng_next(&rng);
    write_text("noise.tar.gz", big_noise, 100 * 1024);
    free(big_noise);

    write_text("empty.txt", "", 0);
    const char blank[] = "  \n%\n\t\n%\n\n%\n%\n   \n";
    write_text("blank.txt", blank, sizeof blank - 1);

    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && cp gt.txt a.txt && cp gt2.txt b.txt && tar czf good.tar.gz a.txt b.txt",
             dir);
    if (system(cmd) != 0)
        return -1;
    long long gz = file_size("good.tar.gz");
    copy_in("good.tar.gz", "half.tar.gz");
    assert_int_equal(scli_truncate(p = scli_path(dir, "half.tar.gz"), gz / 2), 0);
    free(p);
    copy_in("good.tar.gz", "corrupt.tar.gz");
    p = scli_path(dir, "corrupt.tar.gz");
    for (long long at = gz / 3; at < gz / 3 + 64; at++)
        assert_int_equal(scli_flip_byte(p, at, 0x5a), 0);
    free(p);

    p = scli_path(dir, "adir");
    assert_int_equal(mkdir(p, 0755), 0);
    free(p);
    write_text("afile", "x", 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    scli_result_free(&r);
    if (dir)
        scli_rmtree(dir);
    free(dir);
    return 0;
}

/* ---- the table ---- */

enum { EXPECT_FAIL = -1, EXPECT_USAGE = 2 };

typedef struct bad_case {
    const char *name;
    const char *argv[48];
    int expect;            /* EXPECT_USAGE, or EXPECT_FAIL: any non-zero exit, no signal */
    const char *names;     /* the stderr line must contain this */
    const char *names_alt; /* ... or this (NULL = no alternative) */
    const char *keep[4];   /* existing files that must stay byte-identical */
    const char *absent;    /* a file the failed run must not leave behind */
} bad_case;

#define TRAIN_SHAPE "--layers", "1", "--heads", "2", "--channels", "32", "--seq", "32", \
                    "--steps", "3", "--threads", "1", "--quiet"
#define TRAIN_GT "train", "--gt", "gt.txt", "--records", "fortune"
#define DISTILL_OPTS "--records", "fortune", "--topk", "8", "--threads", "1", "--quiet"
#define OUTS {"out.ckpt", "out.ckpt.resume"}
#define OUTS_DB {"out.ckpt", "out.ckpt.resume", "labels.db"}

static const bad_case cases[] = {
    /* missing files */
    {"train_missing_gt", {TRAIN_GT, "--gt", "missing.txt", "--out", "out.ckpt", "--vocab", "300", TRAIN_SHAPE},
     EXPECT_FAIL, "missing.txt", NULL, OUTS, NULL},
    {"train_eval_missing_model", {"train", "--eval", "--model", "missing.ckpt", "--input", "gt.txt"},
     EXPECT_FAIL, "missing.ckpt", NULL, OUTS, NULL},
    {"train_missing_labels", {TRAIN_GT, "--labels", "missing.db", "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_FAIL, "missing.db", NULL, OUTS, "missing.db"},
    {"train_missing_tokenizer", {TRAIN_GT, "--tokenizer", "missing.ckpt", "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_FAIL, "missing.ckpt", NULL, OUTS, NULL},
    {"distill_missing_teacher", {"distill", "--teacher", "missing.ckpt", "--db", "labels.db", "--input", "gt.txt", DISTILL_OPTS},
     EXPECT_FAIL, "missing.ckpt", NULL, {"labels.db"}, NULL},
    {"distill_missing_input", {"distill", "--teacher", "t.ckpt", "--db", "labels.db", "--input", "missing.txt", DISTILL_OPTS},
     EXPECT_FAIL, "missing.txt", NULL, {"labels.db"}, NULL},
    {"distill_info_missing_db", {"distill", "info", "missing.db"},
     EXPECT_FAIL, "missing.db", NULL, {"labels.db"}, "missing.db"},
    {"distill_merge_missing_shard", {"distill", "merge", "--db", "merged.db", "missing.db", "--quiet"},
     EXPECT_FAIL, "missing.db", NULL, {"labels.db"}, "missing.db"},
    {"split_missing_input", {"distill", "split", "--input", "missing.txt", "--out", "adir", "--parts", "a:50,b:50", "--quiet"},
     EXPECT_FAIL, "missing.txt", NULL, {"labels.db"}, "adir/a.tar"},

    /* a name that promises a format the content does not have */
    {"distill_noise_named_tar_gz", {"distill", "--teacher", "t.ckpt", "--db", "labels.db", "--input", "noise.tar.gz", DISTILL_OPTS},
     EXPECT_FAIL, "noise.tar.gz: not a gzip file (its name says it is)", NULL, {"labels.db"}, NULL},
    {"train_noise_named_tar_gz", {TRAIN_GT, "--eval-input", "noise.tar.gz", "--out", "out.ckpt", "--vocab", "300", TRAIN_SHAPE},
     EXPECT_FAIL, "noise.tar.gz: not a gzip file (its name says it is)", NULL, OUTS, NULL},
    {"train_eval_noise_named_tar_gz", {"train", "--eval", "--model", "t.ckpt", "--input", "noise.tar.gz", "--allow-binary"},
     EXPECT_FAIL, "noise.tar.gz: not a gzip file (its name says it is)", NULL, OUTS, NULL},

    /* a directory where a file is expected */
    {"distill_teacher_dir", {"distill", "--teacher", "adir", "--db", "labels.db", "--input", "gt.txt", DISTILL_OPTS},
     EXPECT_FAIL, "adir", NULL, {"labels.db"}, NULL},
    {"distill_db_dir", {"distill", "--teacher", "t.ckpt", "--db", "adir", "--input", "gt.txt", DISTILL_OPTS},
     EXPECT_FAIL, "adir", NULL, {"labels.db"}, NULL},
    {"train_eval_model_dir", {"train", "--eval", "--model", "adir", "--input", "gt.txt"},
     EXPECT_FAIL, "adir", NULL, OUTS, NULL},
    {"train_init_dir", {TRAIN_GT, "--init", "adir", "--out", "out.ckpt", "--steps", "3", "--threads", "1", "--quiet"},
     EXPECT_FAIL, "adir", NULL, OUTS, NULL},
    {"train_labels_dir", {TRAIN_GT, "--labels", "adir", "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_FAIL, "adir", NULL, OUTS, NULL},
    {"train_out_dir", {TRAIN_GT, "--out", "adir", "--vocab", "300", TRAIN_SHAPE},
     EXPECT_FAIL, "adir", NULL, OUTS, NULL},

    /* empty corpora */
    {"train_gt_empty_file", {"train", "--gt", "empty.txt", "--records", "fortune", "--out", "out.ckpt", "--vocab", "300", TRAIN_SHAPE},
     EXPECT_FAIL, "empty.txt", NULL, OUTS, NULL},
    {"train_gt_blank_records", {"train", "--gt", "blank.txt", "--records", "fortune", "--out", "out.ckpt", "--vocab", "300", TRAIN_SHAPE},
     EXPECT_FAIL, "blank.txt", NULL, OUTS, NULL},
    {"train_eval_empty_input", {"train", "--eval", "--model", "t.ckpt", "--input", "empty.txt", "--records", "fortune"},
     EXPECT_FAIL, "empty.txt", NULL, OUTS, NULL},
    {"distill_input_empty_file", {"distill", "--teacher", "t.ckpt", "--db", "labels.db", "--input", "empty.txt", DISTILL_OPTS},
     EXPECT_FAIL, "empty.txt", NULL, {"labels.db"}, NULL},
    {"distill_input_blank_records", {"distill", "--teacher", "t.ckpt", "--db", "labels.db", "--input", "blank.txt", DISTILL_OPTS},
     EXPECT_FAIL, "blank.txt", NULL, {"labels.db"}, NULL},

    /* corrupt and truncated archives */
    {"train_gt_corrupt_archive", {"train", "--gt", "corrupt.tar.gz", "--records", "fortune", "--out", "out.ckpt", "--vocab", "300", TRAIN_SHAPE},
     EXPECT_FAIL, "corrupt.tar.gz", NULL, OUTS, NULL},
    {"distill_corrupt_archive", {"distill", "--teacher", "t.ckpt", "--db", "labels.db", "--input", "corrupt.tar.gz", DISTILL_OPTS},
     EXPECT_FAIL, "corrupt.tar.gz", NULL, {"labels.db"}, NULL},
    {"train_gt_truncated_archive", {"train", "--gt", "half.tar.gz", "--records", "fortune", "--out", "out.ckpt", "--vocab", "300", TRAIN_SHAPE},
     EXPECT_FAIL, "half.tar.gz", NULL, OUTS, NULL},
    {"distill_truncated_archive", {"distill", "--teacher", "t.ckpt", "--db", "labels.db", "--input", "half.tar.gz", DISTILL_OPTS},
     EXPECT_FAIL, "half.tar.gz", NULL, {"labels.db"}, NULL},
    {"train_eval_truncated_archive", {"train", "--eval", "--model", "t.ckpt", "--input", "half.tar.gz", "--records", "fortune"},
     EXPECT_FAIL, "half.tar.gz", NULL, OUTS, NULL},

    /* damaged checkpoints */
    {"distill_teacher_truncated", {"distill", "--teacher", "trunc.ckpt", "--db", "labels.db", "--input", "gt.txt", DISTILL_OPTS},
     EXPECT_FAIL, "trunc.ckpt", NULL, {"labels.db"}, NULL},
    {"train_eval_truncated", {"train", "--eval", "--model", "trunc.ckpt", "--input", "gt.txt"},
     EXPECT_FAIL, "trunc.ckpt", NULL, OUTS, NULL},
    {"train_init_truncated", {TRAIN_GT, "--init", "trunc.ckpt", "--out", "out.ckpt", "--steps", "3", "--threads", "1", "--quiet"},
     EXPECT_FAIL, "trunc.ckpt", NULL, OUTS, NULL},
    {"distill_teacher_flipped", {"distill", "--teacher", "flip.ckpt", "--db", "labels.db", "--input", "gt.txt", DISTILL_OPTS},
     EXPECT_FAIL, "flip.ckpt", NULL, {"labels.db"}, NULL},
    {"train_eval_flipped", {"train", "--eval", "--model", "flip.ckpt", "--input", "gt.txt"},
     EXPECT_FAIL, "flip.ckpt", NULL, OUTS, NULL},
    {"train_tokenizer_flipped", {TRAIN_GT, "--tokenizer", "flip.ckpt", "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_FAIL, "flip.ckpt", NULL, OUTS, NULL},
    {"train_resume_flipped", {TRAIN_GT, "--tokenizer", "t.ckpt", "--out", "rs.ckpt", "--resume", TRAIN_SHAPE},
     EXPECT_FAIL, "rs.ckpt.resume", NULL, {"rs.ckpt", "rs.ckpt.resume"}, NULL},
    {"distill_teacher_version2", {"distill", "--teacher", "v2.ckpt", "--db", "labels.db", "--input", "gt.txt", DISTILL_OPTS},
     EXPECT_FAIL, "v2.ckpt", NULL, {"labels.db"}, NULL},
    {"train_eval_version2", {"train", "--eval", "--model", "v2.ckpt", "--input", "gt.txt"},
     EXPECT_FAIL, "v2.ckpt", NULL, OUTS, NULL},

    /* labels.db of another schema version */
    {"train_labels_version99", {TRAIN_GT, "--labels", "l99.db", "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_FAIL, "l99.db", NULL, {"out.ckpt", "out.ckpt.resume", "l99.db"}, NULL},
    {"distill_db_version99", {"distill", "--teacher", "t.ckpt", "--db", "l99.db", "--input", "gt.txt", DISTILL_OPTS},
     EXPECT_FAIL, "l99.db", NULL, {"l99.db"}, NULL},
    {"distill_info_version99", {"distill", "info", "l99.db"},
     EXPECT_FAIL, "l99.db", NULL, {"l99.db"}, NULL},
    {"distill_merge_version99", {"distill", "merge", "--db", "merged.db", "l99.db", "--quiet"},
     EXPECT_FAIL, "l99.db", NULL, {"l99.db"}, NULL},

    /* labels.db from another tokenizer */
    {"train_labels_other_tokenizer", {TRAIN_GT, "--labels", "labels.db", "--tokenizer", "t2.ckpt", "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_FAIL, "t2.ckpt", "labels.db", OUTS_DB, NULL},
    {"train_labels_other_init", {TRAIN_GT, "--labels", "labels.db", "--init", "t2.ckpt", "--out", "out.ckpt", "--steps", "3", "--threads", "1", "--quiet"},
     EXPECT_FAIL, "t2.ckpt", "labels.db", OUTS_DB, NULL},
    {"distill_db_other_teacher", {"distill", "--teacher", "t2.ckpt", "--db", "labels.db", "--input", "gt.txt", DISTILL_OPTS},
     EXPECT_FAIL, "labels.db", NULL, {"labels.db"}, NULL},

    /* a database that is not SQLite */
    {"train_labels_random_bytes", {TRAIN_GT, "--labels", "random.db", "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_FAIL, "random.db", NULL, {"out.ckpt", "out.ckpt.resume", "random.db"}, NULL},
    {"distill_db_random_bytes", {"distill", "--teacher", "t.ckpt", "--db", "random.db", "--input", "gt.txt", DISTILL_OPTS},
     EXPECT_FAIL, "random.db", NULL, {"random.db"}, NULL},
    {"distill_info_random_bytes", {"distill", "info", "random.db"},
     EXPECT_FAIL, "random.db", NULL, {"random.db"}, NULL},
    {"distill_merge_random_bytes", {"distill", "merge", "--db", "merged.db", "random.db", "--quiet"},
     EXPECT_FAIL, "random.db", NULL, {"random.db"}, NULL},
    {"distill_merge_into_random_bytes", {"distill", "merge", "--db", "random.db", "labels.db", "--quiet"},
     EXPECT_FAIL, "random.db", NULL, {"random.db", "labels.db"}, NULL},

    /* an output directory that cannot be written: the parent is a regular
     * file, which stops root too (chmod 0555 does not) */
    {"train_out_unwritable", {TRAIN_GT, "--out", "afile/o.ckpt", "--vocab", "300", TRAIN_SHAPE},
     EXPECT_FAIL, "afile/o.ckpt", NULL, {"afile"}, NULL},
    {"distill_db_unwritable", {"distill", "--teacher", "t.ckpt", "--db", "afile/x.db", "--input", "gt.txt", DISTILL_OPTS},
     EXPECT_FAIL, "afile/x.db", NULL, {"afile"}, NULL},
    {"distill_merge_unwritable", {"distill", "merge", "--db", "afile/x.db", "labels.db", "--quiet"},
     EXPECT_FAIL, "afile/x.db", NULL, {"afile", "labels.db"}, NULL},
    {"split_out_unwritable", {"distill", "split", "--input", "gt.txt", "--out", "afile", "--parts", "a:50,b:50", "--quiet"},
     EXPECT_FAIL, "afile", NULL, {"afile"}, NULL},
    {"train_metrics_unwritable", {TRAIN_GT, "--out", "out.ckpt", "--metrics", "afile/m.jsonl", "--vocab", "300", TRAIN_SHAPE},
     EXPECT_FAIL, "afile/m.jsonl", NULL, OUTS, NULL},

    /* out-of-range values */
    {"distill_topk_above_vocab", {"distill", "--teacher", "t.ckpt", "--db", "new.db", "--input", "gt.txt", "--topk", "301", "--threads", "1", "--quiet"},
     EXPECT_FAIL, "--topk", NULL, {"labels.db"}, "new.db"},
    {"train_alpha_1_5", {TRAIN_GT, "--labels", "labels.db", "--alpha", "1.5", "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_USAGE, "--alpha", NULL, OUTS_DB, NULL},
    {"train_alpha_negative", {TRAIN_GT, "--labels", "labels.db", "--alpha", "-0.1", "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_USAGE, "--alpha", NULL, OUTS_DB, NULL},
    {"train_alpha_nan", {TRAIN_GT, "--labels", "labels.db", "--alpha", "nan", "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_USAGE, "--alpha", NULL, OUTS_DB, NULL},
    {"distill_shard_3_of_2", {"distill", "--teacher", "t.ckpt", "--db", "new.db", "--input", "gt.txt", "--shard", "3/2", DISTILL_OPTS},
     EXPECT_USAGE, "--shard", NULL, {"labels.db"}, "new.db"},
    {"distill_shard_2_of_2", {"distill", "--teacher", "t.ckpt", "--db", "new.db", "--input", "gt.txt", "--shard", "2/2", DISTILL_OPTS},
     EXPECT_USAGE, "--shard", NULL, {"labels.db"}, "new.db"},
    {"distill_shard_0_of_0", {"distill", "--teacher", "t.ckpt", "--db", "new.db", "--input", "gt.txt", "--shard", "0/0", DISTILL_OPTS},
     EXPECT_USAGE, "--shard", NULL, {"labels.db"}, "new.db"},
    {"train_kd_tail_unknown", {TRAIN_GT, "--labels", "labels.db", "--kd-tail", "tail", "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_USAGE, "--kd-tail: 'tail' is not bucket or renorm", NULL, OUTS_DB, NULL},

    /* --labels-where that tries to write or escape */
    {"where_delete", {TRAIN_GT, "--labels", "labels.db", "--labels-where", "1); DELETE FROM sequences; --", "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_FAIL, "labels.db", "--labels-where", OUTS_DB, NULL},
    {"where_load_extension", {TRAIN_GT, "--labels", "labels.db", "--labels-where", "(SELECT load_extension('x'))", "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_FAIL, "labels.db", "--labels-where", OUTS_DB, NULL},
    {"where_drop_table", {TRAIN_GT, "--labels", "labels.db", "--labels-where", "1; DROP TABLE sequences", "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_FAIL, "labels.db", "--labels-where", OUTS_DB, NULL},
    {"where_never_ends", {TRAIN_GT, "--labels", "labels.db", "--labels-where-seconds", "0.5", "--labels-where",
                          "seq_id IN (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c WHERE x = 0)",
                          "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_FAIL, "--labels-where: labels.db: the condition", "did not finish within 0.5 s", OUTS_DB, NULL},
    {"where_pragma_writable", {TRAIN_GT, "--labels", "labels.db", "--labels-where", "(SELECT 1 FROM pragma_user_version(5))", "--out", "out.ckpt", TRAIN_SHAPE},
     EXPECT_FAIL, "labels.db", "--labels-where", OUTS_DB, NULL},

    /* unknown options and missing values */
    {"train_unknown_option", {"train", "--bogus"}, EXPECT_USAGE, "--bogus", NULL, OUTS, NULL},
    {"train_missing_value", {TRAIN_GT, "--out"}, EXPECT_USAGE, "--out", NULL, OUTS, NULL},
    {"train_no_out", {TRAIN_GT, "--vocab", "300", TRAIN_SHAPE}, EXPECT_USAGE, "--out", NULL, OUTS, NULL},
    {"distill_unknown_option", {"distill", "--bogus"}, EXPECT_USAGE, "--bogus", NULL, {"labels.db"}, NULL},
    {"distill_no_db", {"distill", "--teacher", "t.ckpt", "--input", "gt.txt", "--quiet"}, EXPECT_USAGE, "--db", NULL, {"labels.db"}, NULL},
    {"distill_merge_unknown_option", {"distill", "merge", "--bogus"}, EXPECT_USAGE, "--bogus", NULL, {"labels.db"}, NULL},
    {"distill_info_unknown_option", {"distill", "info", "--bogus"}, EXPECT_USAGE, "--bogus", NULL, {"labels.db"}, NULL},
    {"distill_split_unknown_option", {"distill", "split", "--bogus"}, EXPECT_USAGE, "--bogus", NULL, {"labels.db"}, NULL},
    {"distill_split_bad_parts", {"distill", "split", "--input", "gt.txt", "--out", "adir", "--parts", "a:50,b:60"},
     EXPECT_USAGE, "--parts", NULL, {"labels.db"}, "adir/a.txt"},
};

static void check_unchanged_setup(const bad_case *c, uint64_t *hashes)
{
    for (int i = 0; i < 4 && c->keep[i]; i++) {
        char *p = scli_path(dir, c->keep[i]);
        if (scli_hash_file(p, &hashes[i]) != 0)
            fail_msg("fixture %s missing", c->keep[i]);
        free(p);
    }
}

static void run_case(void **state)
{
    const bad_case *c = *state;
    uint64_t before[4] = {0}, after[4] = {0};
    check_unchanged_setup(c, before);

    run(c->argv);
    /* Echo what the program said: the report shows each message. */
    printf("  [%s] exit %d: %s", c->name, r.status, r.err_len ? r.err : "(no stderr)\n");
    if (c->expect == EXPECT_USAGE)
        assert_int_equal(r.status, EXPECT_USAGE);
    else
        assert_true(r.status >= 1 && r.status < 128);
    assert_true(r.err_len > 0);
    if (scli_count_lines(r.err) != 1)
        fail_msg("%s: expected one stderr line, got %d:\n%s", c->name, scli_count_lines(r.err), r.err);
    if (!strstr(r.err, c->names) && !(c->names_alt && strstr(r.err, c->names_alt)))
        fail_msg("%s: stderr does not name '%s': %s", c->name, c->names, r.err);

    check_unchanged_setup(c, after);
    for (int i = 0; i < 4 && c->keep[i]; i++)
        if (before[i] != after[i])
            fail_msg("%s: %s changed", c->name, c->keep[i]);
    if (c->absent) {
        char *p = scli_path(dir, c->absent);
        int there = access(p, F_OK) == 0;
        free(p);
        if (there)
            fail_msg("%s: the failed run left %s behind", c->name, c->absent);
    }
}

/* ---- --help of every program and subcommand ---- */

static void test_help(void **state)
{
    (void)state;
    static const char *const helps[][4] = {
        {"train", "--help"},
        {"distill", "--help"},
        {"distill", "merge", "--help"},
        {"distill", "info", "--help"},
        {"distill", "split", "--help"},
    };
    for (size_t i = 0; i < sizeof helps / sizeof *helps; i++) {
        run(helps[i]);
        if (r.status != 0 || r.out_len == 0 || r.err_len != 0)
            fail_msg("%s %s: exit %d, %zu bytes of usage, stderr: %s", helps[i][0], helps[i][1],
                     r.status, r.out_len, r.err);
        assert_non_null(strstr(r.out, "usage"));
    }
}

/* ---- accepted inputs that must round-trip ---- */

/* Concatenates the stored windows of (source, record 0) (window w > 0 repeats
 * the last token of window w - 1), drops the leading EOT and detokenizes with
 * the tokenizer stored in the database. @return malloc'ed bytes. */
static unsigned char *decode_record(const char *db_name, const char *source, size_t *len, int *windows)
{
    char *p = scli_path(dir, db_name);
    labels_db *ldb = labels_db_open_read(p);
    assert_non_null(ldb);
    labels_meta meta;
    assert_int_equal(labels_db_meta(ldb, &meta), 0);
    tokenizer *tok = tok_deserialize(meta.tokenizer, meta.tokenizer_len);
    assert_non_null(tok);
    labels_meta_free(&meta);
    assert_int_equal(labels_db_close(ldb), 0);

    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT window, n_tokens, tokens FROM sequences WHERE source = ?1 "
                                        "AND record_index = 0 ORDER BY window",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    size_t cap = 1 << 16, n = 0;
    unsigned char *out = malloc(cap);
    assert_non_null(out);
    int w = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        assert_int_equal(sqlite3_column_int(st, 0), w);
        int nt = sqlite3_column_int(st, 1);
        const unsigned char *b = sqlite3_column_blob(st, 2);
        assert_int_equal(sqlite3_column_bytes(st, 2), 2 * nt);
        /* Window 0 starts with the EOT; later windows with the shared token. */
        for (int i = 1; i < nt; i++) {
            int32_t id = (int32_t)(b[2 * i] | b[2 * i + 1] << 8);
            assert_true(id != tok_eot(tok));
            size_t tl;
            const unsigned char *tb = tok_token_bytes(tok, id, &tl);
            assert_true(n + tl <= cap);
            memcpy(out + n, tb, tl);
            n += tl;
        }
        if (w == 0) {
            int32_t first = (int32_t)(b[0] | b[1] << 8);
            assert_int_equal(first, tok_eot(tok));
        }
        w++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    tok_free(tok);
    free(p);
    *len = n;
    *windows = w;
    return out;
}

/* Number of bytes train --eval counted: tokens * loss / (ln 2 * bits_per_byte). */
static double eval_bytes(const char *input)
{
    const char *argv[] = {"train", "--eval", "--model", "t.ckpt", "--input", input, "--records",
                          "file", "--allow-binary", "--threads", "1", "--json", NULL};
    run(argv);
    if (r.status != 0)
        fail_msg("train --eval %s: exit %d: %s", input, r.status, r.err);
    const char *t = strstr(r.out, "\"tokens\":"), *l = strstr(r.out, "\"loss\":"),
               *b = strstr(r.out, "\"bits_per_byte\":");
    assert_true(t && l && b);
    double tokens = atof(t + 9), loss = atof(l + 7), bpb = atof(b + 16);
    assert_true(tokens > 0 && bpb > 0);
    return tokens * loss / (log(2.0) * bpb);
}

static void accepted_roundtrip(const char *name, const unsigned char *data, size_t len, int min_windows)
{
    write_text(name, data, len);
    double counted = eval_bytes(name);
    if (fabs(counted - (double)len) > 0.01 * (double)len + 0.5)
        fail_msg("train --eval %s counted %.1f bytes, the file has %zu", name, counted, len);

    char db[64];
    snprintf(db, sizeof db, "%s.db", name);
    const char *argv[] = {"distill", "--teacher", "t.ckpt", "--db", db, "--input", name,
                          "--records", "file", "--allow-binary", "--topk", "4", "--threads", "1", "--quiet", NULL};
    run(argv);
    if (r.status != 0)
        fail_msg("distill %s: exit %d: %s", name, r.status, r.err);

    size_t got_len;
    int windows;
    unsigned char *got = decode_record(db, name, &got_len, &windows);
    assert_true(windows >= min_windows);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, data, len);
    free(got);

    const char *train[] = {"train", "--gt", name, "--allow-binary", "--tokenizer", "t.ckpt",
                           "--out", "acc.ckpt", TRAIN_SHAPE, NULL};
    run(train);
    if (r.status != 0)
        fail_msg("train --gt %s: exit %d: %s", name, r.status, r.err);
}

/* NUL bytes make a file binary: refused by name unless --allow-binary, then
 * read byte-exact like invalid UTF-8 always is. */
static void test_invalid_utf8_and_nul_accepted(void **state)
{
    (void)state;
    static const unsigned char text[] =
        "caf\xc3\xa9 \xff\xfe bad \x00 nul \xc3 cut \xed\xa0\x80 surrogate \xf8\x88\x80\x80 "
        "\x00\x00 end";
    write_text("weird.bin", text, sizeof text - 1);
    const char *refused[][24] = {
        {"distill", "--teacher", "t.ckpt", "--db", "weird.db", "--input", "weird.bin", "--quiet", NULL},
        {"train", "--gt", "weird.bin", "--tokenizer", "t.ckpt", "--out", "w.ckpt", TRAIN_SHAPE, NULL},
        {"train", "--eval", "--model", "t.ckpt", "--input", "weird.bin", NULL},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        run(refused[i]);
        if (r.status != 1 || !strstr(r.err, "weird.bin: not text") || !strstr(r.err, "--allow-binary"))
            fail_msg("%s on a file with NUL bytes: exit %d: %s", refused[i][0], r.status, r.err);
    }
    accepted_roundtrip("weird.bin", text, sizeof text - 1, 1);
    /* Mostly text with invalid UTF-8 needs no option. */
    static const unsigned char latin1[] = "Le caf\xe9 est tr\xe8s bon \xff\xfe, \xc3 cut, \xed\xa0\x80 end\n";
    write_text("latin1.txt", latin1, sizeof latin1 - 1);
    const char *eval[] = {"train", "--eval", "--model", "t.ckpt", "--input", "latin1.txt", NULL};
    run(eval);
    if (r.status != 0)
        fail_msg("train --eval latin1.txt: exit %d: %s", r.status, r.err);
}

static void test_record_far_longer_than_T(void **state)
{
    (void)state;
    enum { LEN = 6000 };
    unsigned char *text = malloc(LEN);
    assert_non_null(text);
    rng_state rng;
    rng_seed(&rng, 5);
    /* Words with the odd raw byte: many tokens, every byte value possible. */
    for (size_t i = 0; i < LEN; i++)
        text[i] = rng_below(&rng, 8) == 0 ? (unsigned char)rng_next(&rng)
                                          : (unsigned char)"the cat sat on a mat "[i % 21];
    accepted_roundtrip("long.bin", text, LEN, 10);
    free(text);
}

/* With stderr not a terminal, distill prints whole progress lines (here at
 * every batch: W2S_PROGRESS_SECONDS is tiny) with the percent of the input
 * bytes and the ETA; no terminal codes. */
static void test_distill_progress_in_logs(void **state)
{
    (void)state;
    assert_int_equal(setenv("W2S_PROGRESS_SECONDS", "0.000001", 1), 0);
    const char *argv[] = {"distill", "--teacher", "t.ckpt", "--db", "progress.db", "--input", "gt.txt",
                          "--records", "fortune", "--topk", "4", "--batch", "2", "--threads", "1", NULL};
    run(argv);
    unsetenv("W2S_PROGRESS_SECONDS");
    if (r.status != 0)
        fail_msg("distill: exit %d: %s", r.status, r.err);
    assert_non_null(strstr(r.err, " bytes, "));
    assert_non_null(strstr(r.err, "% ("));
    assert_non_null(strstr(r.err, "ETA "));
    assert_null(strchr(r.err, '\r'));
    assert_null(strchr(r.err, '\033'));
}

int main(void)
{
    enum { N = sizeof cases / sizeof *cases };
    struct CMUnitTest tests[N + 4];
    for (size_t i = 0; i < N; i++)
        tests[i] = (struct CMUnitTest){cases[i].name, run_case, NULL, NULL, (void *)&cases[i]};
    tests[N] = (struct CMUnitTest)cmocka_unit_test(test_help);
    tests[N + 1] = (struct CMUnitTest)cmocka_unit_test(test_invalid_utf8_and_nul_accepted);
    tests[N + 2] = (struct CMUnitTest)cmocka_unit_test(test_record_far_longer_than_T);
    tests[N + 3] = (struct CMUnitTest)cmocka_unit_test(test_distill_progress_in_logs);
    return _cmocka_run_group_tests("bad_input", tests, N + 4, setup, teardown);
}
