/* Crash, disk-full and NaN tests of the train and distill programs,
 * black box: the programs run as subprocesses from $BUILD.
 *
 * - kill -9 at seeded random instants (a few ms up to the length of an
 *   uninterrupted run), then the same command again (train with --resume):
 *   distill ends with the rows of an uninterrupted run (canonical dump: rows
 *   by identity, every column but seq_id) and PRAGMA integrity_check = ok
 *   after every kill; train ends with the same checkpoint bytes.
 * - a full disk (a 1 MiB tmpfs when mount is allowed, and RLIMIT_FSIZE with
 *   SIGXFSZ ignored so write() fails with EFBIG): distill and train fail with
 *   one clear line, the database keeps its committed rows and passes the
 *   integrity check, the last checkpoint is byte-unchanged, and with space
 *   back train --resume still ends identical to an uninterrupted run.
 * - the NaN/Inf guard: a resumable checkpoint whose AdamW second moments are
 *   negative (sqrt -> NaN, so the parameters go non-finite on the first
 *   step) stops train with a message naming the step; the last good
 *   checkpoint is unchanged and evaluates. (--lr is capped at 10, too small
 *   to make the loss overflow within a test.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "nn/checkpoint.h"
#include "base/fileio.h"
#include "base/rng.h"
#include "support_cli.h"
#include "support_fixtures.h"

/* Kills per seed; a run that finished before its kill is redone with a
 * shorter delay, at most MAX_TRIES runs per seed. */
enum { SEEDS = 4, KILLS_PER_SEED = 2, MAX_TRIES = 6 };

static char *dir, *corpus, *corpus_small, *corpus_big, *teacher;
static char *mounted; /* the tmpfs mount point while mounted */
static double distill_seconds, train_seconds;
static uint64_t ref_db_hash, ref_ckpt_hash, ref_resume_hash;
static long ref_db_rows;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- commands (relative outputs, run with cwd = a per-run directory) ---- */

static void distill_argv(const char **argv, const char *input)
{
    const char *a[] = {"distill", "--teacher", teacher, "--db", "labels.db", "--input", input,
                       "--records", "fortune", "--topk", "8", "--batch", "4", "--threads", "1",
                       "--quiet", NULL};
    memcpy(argv, a, sizeof a);
}

/* train of the tiny student; resume adds --resume, stop_at > 0 --stop-at. */
static void train_argv(const char **argv, int resume, const char *stop_at)
{
    const char *a[] = {"train", "--gt", corpus, "--records", "fortune", "--out", "m.ckpt",
                       "--layers", "1", "--heads", "2", "--channels", "32", "--seq", "32",
                       "--vocab", "300", "--steps", "60", "--checkpoint-every", "10",
                       "--batch", "4", "--threads", "1", "--seed", "3", "--quiet", NULL, NULL,
                       NULL, NULL};
    size_t n = sizeof a / sizeof *a - 4;
    if (resume)
        a[n++] = "--resume";
    if (stop_at) {
        a[n++] = "--stop-at";
        a[n++] = stop_at;
    }
    memcpy(argv, a, sizeof a);
}

static char *subdir(const char *name)
{
    char *p = scli_path(dir, name);
    scli_rmtree(p);
    assert_int_equal(mkdir(p, 0755), 0);
    return p;
}

/* Owns the last captured stderr until the next one or teardown, so that a
 * failing assertion leaks nothing (the suite also runs under LeakSanitizer).
 * @return text. */
static char *keep_err(char *text)
{
    static char *kept;
    free(kept);
    kept = text;
    return text;
}

/* Runs argv in cwd to completion. @return exit status; stderr into *err
 * (owned by keep_err) when err is given. */
static int run_in(const char *cwd, const char *const *argv, char **err)
{
    scli_result r;
    assert_int_equal(scli_run_in(cwd, argv, &r), 0);
    if (err)
        *err = keep_err(strdup(r.err));
    else if (r.status != 0)
        fprintf(stderr, "%s in %s exited %d:\n%s", argv[0], cwd, r.status, r.err);
    int status = r.status;
    scli_result_free(&r);
    return status;
}

static uint64_t hash_of(const char *d, const char *name)
{
    char *p = scli_path(d, name);
    uint64_t h = 0;
    if (scli_hash_file(p, &h) != 0)
        fail_msg("%s cannot be read", p);
    free(p);
    return h;
}

/* ---- labels.db checks ---- */

/* XXH3 of every row (all columns but seq_id, by identity order) whose source
 * is `source` (NULL = all), plus the meta rows but created_at and complete
 * (which says whether the last run finished); *rows = count. */
static uint64_t dump_hash(const char *path, const char *source, long *rows)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    XXH3_state_t *h = XXH3_createState();
    assert_non_null(h);
    XXH3_64bits_reset(h);
    static const char *const queries[] = {
        "SELECT key, value FROM meta WHERE key NOT IN ('created_at', 'complete') ORDER BY key",
        "SELECT source, member, record_index, window, content_hash, n_tokens, tokens, topk, "
        "mean_nll, mean_entropy, mean_tail_mass, mean_top1_prob FROM sequences "
        "WHERE ?1 IS NULL OR source = ?1 ORDER BY source, member, record_index, window",
    };
    *rows = 0;
    for (int q = 0; q < 2; q++) {
        assert_int_equal(sqlite3_prepare_v2(db, queries[q], -1, &st, NULL), SQLITE_OK);
        if (q == 1 && source)
            sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                int type = sqlite3_column_type(st, c);
                XXH3_64bits_update(h, &type, sizeof type);
                if (type == SQLITE_INTEGER) {
                    sqlite3_int64 v = sqlite3_column_int64(st, c);
                    XXH3_64bits_update(h, &v, sizeof v);
                } else if (type == SQLITE_FLOAT) {
                    double v = sqlite3_column_double(st, c);
                    XXH3_64bits_update(h, &v, sizeof v);
                } else if (type != SQLITE_NULL) {
                    const void *b = sqlite3_column_blob(st, c);
                    int n = sqlite3_column_bytes(st, c);
                    XXH3_64bits_update(h, &n, sizeof n);
                    if (n)
                        XXH3_64bits_update(h, b, (size_t)n);
                }
            }
            if (q == 1)
                (*rows)++;
        }
        assert_int_equal(rc, SQLITE_DONE);
        sqlite3_finalize(st);
    }
    uint64_t out = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    return out;
}

/* ---- fixtures ---- */

static int setup(void **state)
{
    (void)state;
    dir = scli_tempdir("crash");
    if (!dir)
        return -1;
    corpus = scli_path(dir, "corpus.txt");
    corpus_small = scli_path(dir, "small.txt");
    corpus_big = scli_path(dir, "big.txt");
    teacher = scli_path(dir, "t.ckpt");
    if (scli_write_fortunes(corpus, 11, 400) || scli_write_fortunes(corpus_small, 12, 40) ||
        scli_write_fortunes(corpus_big, 13, 6000) || scli_make_teacher(corpus, teacher, 10, 300))
        return -1;

    /* Uninterrupted references, timed to spread the kills over a run. */
    const char *argv[40];
    char *d = subdir("ref-distill");
    distill_argv(argv, corpus);
    double t0 = now();
    if (run_in(d, argv, NULL) != 0)
        return -1;
    distill_seconds = now() - t0;
    char *db = scli_path(d, "labels.db");
    ref_db_hash = dump_hash(db, NULL, &ref_db_rows);
    free(db);
    free(d);

    d = subdir("ref-train");
    train_argv(argv, 0, NULL);
    t0 = now();
    if (run_in(d, argv, NULL) != 0)
        return -1;
    train_seconds = now() - t0;
    ref_ckpt_hash = hash_of(d, "m.ckpt");
    ref_resume_hash = hash_of(d, "m.ckpt.resume");
    free(d);
    printf("  uninterrupted: distill %.3f s (%ld rows), train %.3f s\n", distill_seconds,
           ref_db_rows, train_seconds);
    return 0;
}

static void unmount_tmpfs(void)
{
    if (mounted) {
        if (umount2(mounted, MNT_DETACH) != 0)
            perror(mounted);
        free(mounted);
        mounted = NULL;
    }
}

static int teardown(void **state)
{
    (void)state;
    keep_err(NULL);
    unmount_tmpfs();
    if (dir)
        scli_rmtree(dir);
    free(dir);
    free(corpus);
    free(corpus_small);
    free(corpus_big);
    free(teacher);
    return 0;
}

/* ---- kill -9 at random instants ---- */

/* Starts argv in cwd, kills it after a seeded delay in [2 ms, max_seconds].
 * @return 1 if it was killed, 0 if it had already finished (status 0). */
static int kill_at_random(const char *cwd, const char *const *argv, rng_state *rng, double max_seconds)
{
    double lo = 0.002, hi = max_seconds > lo ? max_seconds : lo + 0.001;
    double delay = lo + (hi - lo) * rng_uniform(rng);
    char *log = scli_path(cwd, "killed.log");
    assert_non_null(log);
    remove(log);
    pid_t pid = scli_spawn(argv, cwd, log, 0);
    assert_true(pid > 0);
    struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int status = scli_wait(pid);
    unsigned char *said = NULL;
    size_t said_len = 0;
    if (status != 0 && status != 128 + SIGKILL && file_read_all(log, &said, &said_len) == 0)
        fail_msg("%s exited %d before the kill: %s", argv[0], status, (char *)said);
    remove(log);
    free(log);
    free(said);
    if (status == 128 + SIGKILL)
        return 1;
    if (status != 0)
        fail_msg("%s exited %d before the kill", argv[0], status);
    return 0;
}

/* Kills the program of argv in d at random moments (up to max_seconds in,
 * rng seeded with seed) KILLS_PER_SEED times; when it finishes first, d is
 * emptied and the next kill aims earlier. With db, the database must pass
 * the integrity check after every kill that left one. @return the kills. */
static int kill_repeatedly(const char *d, const char *const *argv, uint64_t seed, double max_seconds,
                           const char *db)
{
    rng_state rng;
    rng_seed(&rng, seed);
    int k = 0;
    for (int tries = 0; k < KILLS_PER_SEED && tries < MAX_TRIES; tries++) {
        if (!kill_at_random(d, argv, &rng, max_seconds)) {
            max_seconds *= 0.5;
            scli_rmtree(d);
            assert_int_equal(mkdir(d, 0755), 0);
            continue;
        }
        k++;
        if (db && access(db, F_OK) == 0)
            assert_int_equal(sfix_db_integrity(db, SQLITE_OPEN_READWRITE), 0);
    }
    return k;
}

static void test_distill_killed_and_rerun(void **state)
{
    (void)state;
    const char *argv[40];
    distill_argv(argv, corpus);
    int kills = 0;
    for (int seed = 1; seed <= SEEDS; seed++) {
        char name[32];
        snprintf(name, sizeof name, "distill-kill-%d", seed);
        char *d = subdir(name), *db = scli_path(d, "labels.db");
        kills += kill_repeatedly(d, argv, (uint64_t)seed, distill_seconds, db);
        assert_int_equal(run_in(d, argv, NULL), 0);
        assert_int_equal(sfix_db_integrity(db, SQLITE_OPEN_READWRITE), 0);
        long rows;
        uint64_t h = dump_hash(db, NULL, &rows);
        if (rows != ref_db_rows || h != ref_db_hash)
            fail_msg("seed %d: %ld rows (uninterrupted %ld), dump %s", seed, rows, ref_db_rows,
                     h == ref_db_hash ? "equal" : "differs");
        free(db);
        free(d);
    }
    printf("  distill: %d kills over %d seeds (uninterrupted %.3f s)\n", kills, SEEDS, distill_seconds);
}

static void test_train_killed_and_resumed(void **state)
{
    (void)state;
    const char *argv[40];
    train_argv(argv, 1, NULL);
    int kills = 0;
    for (int seed = 1; seed <= SEEDS; seed++) {
        char name[32];
        snprintf(name, sizeof name, "train-kill-%d", seed);
        char *d = subdir(name);
        kills += kill_repeatedly(d, argv, 100 + (uint64_t)seed, train_seconds, NULL);
        assert_int_equal(run_in(d, argv, NULL), 0);
        if (hash_of(d, "m.ckpt") != ref_ckpt_hash || hash_of(d, "m.ckpt.resume") != ref_resume_hash)
            fail_msg("seed %d: the final checkpoint differs from the uninterrupted run's", seed);
        free(d);
    }
    printf("  train: %d kills over %d seeds (uninterrupted %.3f s)\n", kills, SEEDS, train_seconds);
}

/* ---- full disk ---- */

/* Exactly one stderr line, naming what. */
static void check_one_line_naming(const char *err, const char *what)
{
    if (scli_count_lines(err) != 1 || !strstr(err, what))
        fail_msg("expected one line naming %s, got:\n%s", what, err);
}

/* No "<name>.tmp.*" left in d (a leftover would keep eating the full disk). */
static void check_no_temporaries(const char *d)
{
    DIR *dp = opendir(d);
    assert_non_null(dp);
    struct dirent *e;
    while ((e = readdir(dp)))
        if (strstr(e->d_name, ".tmp."))
            fail_msg("%s/%s left behind", d, e->d_name);
    closedir(dp);
}

/* distill into d/labels.db: a small corpus fits; a big one fails (limit or
 * full disk), keeping the small corpus's rows and the integrity. */
static void distill_until_full(const char *d, long long fsize_limit)
{
    const char *argv[40];
    distill_argv(argv, corpus_small);
    assert_int_equal(run_in(d, argv, NULL), 0);
    char *db = scli_path(d, "labels.db");
    long rows_small;
    uint64_t small = dump_hash(db, NULL, &rows_small);
    assert_true(rows_small > 0);

    distill_argv(argv, corpus_big);
    char *err = NULL;
    int status;
    if (fsize_limit > 0) {
        char *log = scli_path(d, "distill.log");
        pid_t pid = scli_spawn(argv, d, log, fsize_limit);
        assert_true(pid > 0);
        status = scli_wait(pid);
        unsigned char *text;
        size_t len;
        assert_int_equal(file_read_all(log, &text, &len), 0);
        err = keep_err((char *)text);
        unlink(log);
        free(log);
    } else {
        status = run_in(d, argv, &err);
    }
    printf("  distill on a full disk: exit %d: %s", status, err);
    assert_true(status >= 1 && status < 128);
    check_one_line_naming(err, "labels.db");

    assert_int_equal(sfix_db_integrity(db, SQLITE_OPEN_READWRITE), 0);
    long rows;
    assert_int_equal(dump_hash(db, corpus_small, &rows), small);
    assert_int_equal(rows, rows_small);
    free(db);
}

/* train into d: a checkpoint at step 20, then a resumed run that cannot
 * write its next checkpoint (fsize_limit, or fill_disk: a filler file leaves
 * 64 KiB free) fails and keeps it; with room again, --resume ends identical
 * to the uninterrupted run. */
static void train_until_full(const char *d, long long fsize_limit, int fill_disk)
{
    const char *argv[40];
    train_argv(argv, 0, "20");
    assert_int_equal(run_in(d, argv, NULL), 0);
    uint64_t resume = hash_of(d, "m.ckpt.resume");

    char *filler = NULL;
    if (fill_disk) {
        struct statvfs vfs;
        assert_int_equal(statvfs(d, &vfs), 0);
        long long avail = (long long)vfs.f_bavail * (long long)vfs.f_frsize - 65536;
        assert_true(avail > 0);
        unsigned char *zeros = calloc(1, (size_t)avail);
        assert_non_null(zeros);
        filler = scli_path(d, "filler");
        assert_int_equal(scli_write_file(filler, zeros, (size_t)avail), 0);
        free(zeros);
    }
    train_argv(argv, 1, NULL);
    char *log = scli_path(d, "train.log");
    pid_t pid = scli_spawn(argv, d, log, fsize_limit);
    assert_true(pid > 0);
    int status = scli_wait(pid);
    unsigned char *err;
    size_t len;
    assert_int_equal(file_read_all(log, &err, &len), 0);
    keep_err((char *)err);
    unlink(log);
    free(log);
    printf("  train on a full disk: exit %d: %s", status, (char *)err);
    assert_true(status >= 1 && status < 128);
    check_one_line_naming((char *)err, "m.ckpt");
    assert_true(hash_of(d, "m.ckpt.resume") == resume);
    check_no_temporaries(d);

    if (filler)
        assert_int_equal(unlink(filler), 0);
    free(filler);
    assert_int_equal(run_in(d, argv, NULL), 0);
    assert_true(hash_of(d, "m.ckpt") == ref_ckpt_hash);
    assert_true(hash_of(d, "m.ckpt.resume") == ref_resume_hash);
}

static void test_disk_full_tmpfs(void **state)
{
    (void)state;
    char *d = subdir("tmpfs");
    /* Needs root (CAP_SYS_ADMIN); containers often forbid it. The
     * RLIMIT_FSIZE test below covers the same paths everywhere. */
    if (mount("tmpfs", d, "tmpfs", 0, "size=1m") != 0) {
        printf("  cannot mount a tmpfs here (%s): skipped\n", strerror(errno));
        free(d);
        skip();
    }
    mounted = d;
    distill_until_full(d, 0);

    /* Make room: the failed run's WAL may have taken the rest. */
    static const char *const db_files[] = {"labels.db", "labels.db-wal", "labels.db-shm"};
    for (int i = 0; i < 3; i++) {
        char *p = scli_path(d, db_files[i]);
        scli_rmtree(p);
        free(p);
    }
    train_until_full(d, 0, 1);
    unmount_tmpfs();
}

static void test_disk_full_rlimit(void **state)
{
    (void)state;
    char *d = subdir("rlimit");
    char *db = scli_path(d, "labels.db");
    /* A limit a little above what the small run wrote: the big run hits it. */
    const char *argv[40];
    distill_argv(argv, corpus_small);
    assert_int_equal(run_in(d, argv, NULL), 0);
    struct stat st;
    assert_int_equal(stat(db, &st), 0);
    scli_rmtree(db);
    distill_until_full(d, (long long)st.st_size + 65536);
    free(db);

    train_until_full(d, 100000, 0);
    free(d);
}

/* ---- NaN / Inf guard ---- */

static void test_nan_guard_keeps_last_checkpoint(void **state)
{
    (void)state;
    char *d = subdir("nan");
    const char *argv[40];
    train_argv(argv, 0, "20");
    assert_int_equal(run_in(d, argv, NULL), 0);

    /* Poison the optimiser state only: the weights stay good, the first
     * resumed update makes them NaN. */
    char *resume = scli_path(d, "m.ckpt.resume");
    checkpoint ck;
    assert_int_equal(checkpoint_read(resume, &ck), 0);
    assert_non_null(ck.adam_v);
    size_t n = model_config_num_params(&ck.config);
    for (size_t i = 0; i < n; i++)
        ck.adam_v[i] = -1.0f;
    assert_int_equal(checkpoint_write(resume, &ck), 0);
    checkpoint_free(&ck);
    uint64_t good = hash_of(d, "m.ckpt.resume");
    char *out = scli_path(d, "m.ckpt");
    uint64_t out_hash = 0;
    int had_out = scli_hash_file(out, &out_hash) == 0;

    train_argv(argv, 1, NULL);
    char *err;
    int status = run_in(d, argv, &err);
    printf("  non-finite loss: exit %d: %s", status, err);
    assert_true(status >= 1 && status < 128);
    const char *s = strstr(err, "step");
    if (!s)
        fail_msg("the message does not name the step: %s", err);
    long step = 0;
    for (; *s && !step; s++)
        if (*s >= '0' && *s <= '9')
            step = strtol(s, NULL, 10);
    assert_in_range(step, 21, 30);

    assert_true(hash_of(d, "m.ckpt.resume") == good);
    uint64_t out_after = 0;
    if (had_out)
        assert_true(scli_hash_file(out, &out_after) == 0 && out_after == out_hash);
    else
        assert_true(access(out, F_OK) != 0);

    const char *eval[] = {"train", "--eval", "--model", resume, "--input", corpus_small,
                          "--records", "fortune", "--threads", "1", "--json", NULL};
    scli_result r;
    assert_int_equal(scli_run(eval, &r), 0);
    const char *l = strstr(r.out, "\"loss\":");
    int status_eval = r.status, finite = l && isfinite(atof(l + 7));
    if (status_eval != 0 || !finite)
        fprintf(stderr, "train --eval of the kept checkpoint: exit %d: %s%s", r.status, r.err, r.out);
    scli_result_free(&r);
    assert_int_equal(status_eval, 0);
    assert_true(finite);
    free(resume);
    free(out);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distill_killed_and_rerun),
        cmocka_unit_test(test_train_killed_and_resumed),
        cmocka_unit_test(test_disk_full_tmpfs),
        cmocka_unit_test(test_disk_full_rlimit),
        cmocka_unit_test(test_nan_guard_keeps_last_checkpoint),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
