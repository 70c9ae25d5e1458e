/* End-to-end tests of the train program (run as a subprocess, $BUILD/train)
 * on tiny models: alpha = 1 equals plain LM training bit for bit, alpha = 0
 * ignores GT, resume (stopped or killed) equals an uninterrupted run byte for
 * byte, tokenizer / schema / sequence-length mismatches and bad options are
 * refused without touching OUT, labels.db is left unchanged, a student
 * trained by KD beats an untrained one on the teacher's text, and --eval
 * --positions writes lines that add up to the evaluation's loss.
 *
 * The group setup writes synthetic text, trains a teacher with train itself
 * and writes a labels.db from the teacher's forward passes with the
 * labels_db / softlabel API (top-k computed here), as distill would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glob.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "nn/checkpoint.h"
#include "base/err.h"
#include "base/fileio.h"
#include "labels/labels_db.h"
#include "nn/matmul_bf16.h"
#include "nn/model.h"
#include "base/rng.h"
#include "labels/softlabel.h"
#include "text/tokenizer.h"
#include "text/window.h"
#include "support_cli.h"
#include "support_fixtures.h"

enum { TEACHER_K = 8 };

static char dir[256];
static char train_bin[512];
static const char *TINY = "--layers 1 --heads 2 --channels 32 --seq 32";

static const char *path_in(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static char *read_text(const char *name)
{
    unsigned char *data;
    size_t len;
    if (file_read_all(path_in(name), &data, &len) < 0)
        return NULL;
    return (char *)data;
}

/* Runs train with printf-formatted arguments; @return its exit status
 * (stderr goes to DIR/stderr.txt, stdout to DIR/stdout.txt). */
static int run_train(const char *fmt, ...) W2S_PRINTF(1, 2);
static int run_train(const char *fmt, ...)
{
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd %s && %s %s >stdout.txt 2>stderr.txt", dir, train_bin, args);
    int status = system(cmd);
    /* under ASan a sanitizer report may exit 1 like an expected error */
    char *err = read_text("stderr.txt");
    if (err && (strstr(err, "Sanitizer") || strstr(err, "runtime error")))
        fail_msg("train %s:\n%s", args, err);
    free(err);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int stderr_has(const char *needle)
{
    char *text = read_text("stderr.txt");
    int found = text && strstr(text, needle);
    if (!found)
        print_message("stderr was: %s\n", text ? text : "(none)");
    free(text);
    return found;
}

static uint64_t file_hash(const char *name)
{
    unsigned char *data;
    size_t len;
    if (file_read_all(path_in(name), &data, &len) < 0)
        return 0;
    uint64_t h = XXH3_64bits(data, len);
    free(data);
    return h;
}

static int same_file(const char *a, const char *b)
{
    unsigned char *x, *y;
    size_t lx, ly;
    if (file_read_all(path_in(a), &x, &lx) < 0)
        return 0;
    if (file_read_all(path_in(b), &y, &ly) < 0) {
        free(x);
        return 0;
    }
    int same = lx == ly && !memcmp(x, y, lx);
    free(x);
    free(y);
    return same;
}

/* Lines of a toy language with structure a small model can learn. */
static void write_text(const char *name, int lines, uint64_t seed)
{
    static const char *subj[] = {"the cat", "a dog", "my friend", "the old man", "she", "he"};
    static const char *verb[] = {"sees", "likes", "eats", "finds", "wants"};
    static const char *obj[] = {"the fish", "a red ball", "some bread", "the moon", "a green box"};
    static const char *end[] = {".", " today.", " again.", " at night."};
    rng_state rng;
    rng_seed(&rng, seed);
    FILE *fp = fopen(path_in(name), "w");
    assert_non_null(fp);
    for (int i = 0; i < lines; i++) {
        int s = (int)rng_below(&rng, 6), v = (int)rng_below(&rng, 5);
        int o = (int)((v + rng_below(&rng, 2)) % 5);
        fprintf(fp, "%s %s %s%s\n", subj[s], verb[v], obj[o], end[(s + o) % 4]);
    }
    fclose(fp);
}

/* Reads text lines of path into records for labeling. */
typedef struct text_lines { char **text; int n; } text_lines;

static void read_lines(const char *name, text_lines *out)
{
    char *text = read_text(name);
    assert_non_null(text);
    out->n = 0;
    out->text = NULL;
    for (char *save = NULL, *tok = strtok_r(text, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save)) {
        out->text = realloc(out->text, sizeof *out->text * (size_t)(out->n + 1));
        out->text[out->n++] = strdup(tok);
    }
    free(text);
}

/* Writes labels.db from teacher.ckpt's forward on every window of name,
 * as distill does: top-k ids + log-probs per position, statistics per row.
 * onehot: instead, k = 1 and the label is the actual next token with
 * probability 1, so KD equals the LM loss on the same positions. */
static void write_labels(const char *db_name, const char *teacher_name, const char *text_name,
                         int onehot)
{
    checkpoint ck;
    assert_int_equal(checkpoint_read(path_in(teacher_name), &ck), 0);
    tokenizer *tok = tok_deserialize(ck.tokenizer, ck.tokenizer_len);
    assert_non_null(tok);
    const int T = ck.config.seq_len, V = ck.config.vocab;
    model *m = model_create(&ck.config, 1, 1);
    assert_non_null(m);
    memcpy(model_params(m), ck.params, model_num_params(m) * sizeof(float));
    labels_meta meta = {.teacher_hash = ck.hash, .teacher_config = ck.config,
                        .tokenizer = ck.tokenizer, .tokenizer_len = ck.tokenizer_len,
                        .tokenizer_hash = tok_hash(tok), .k = onehot ? 1 : TEACHER_K,
                        .codec_version = SOFTLABEL_CODEC_VERSION};
    snprintf(meta.tool_version, sizeof meta.tool_version, "test");
    snprintf(meta.label_kind, sizeof meta.label_kind, "topk");
    labels_db *db = labels_db_open_write(path_in(db_name), &meta);
    if (!db)
        fail_msg("%s", err_message());
    softlabel_codec *codec = softlabel_codec_create();
    text_lines ls;
    read_lines(text_name, &ls);
    unsigned char *blob = NULL;
    size_t blob_cap = 0, blob_len;
    int32_t *seq = malloc(sizeof *seq * 4096), pos[64], ids[64 * TEACHER_K];
    float logprobs[64 * TEACHER_K];
    unsigned char used[1024];
    assert_true(V <= (int)sizeof used);
    assert_int_equal(labels_db_begin(db), 0);
    for (int r = 0; r < ls.n; r++) {
        size_t len = strlen(ls.text[r]);
        seq[0] = tok_eot(tok);
        size_t n = 1 + tok_encode(tok, (const unsigned char *)ls.text[r], len, seq + 1);
        for (size_t w = 0; w < window_count(n, T); w++) {
            size_t start, wl;
            window_span(w, n, T, &start, &wl);
            for (size_t i = 0; i < wl; i++)
                pos[i] = (int32_t)i;
            float *logits = model_forward(m, seq + start, pos, 1, (int)wl);
            double nll = 0.0;
            for (size_t i = 0; i + 1 < wl; i++) {
                const float *z = logits + i * (size_t)V;
                double mx, log_sum = sfix_topk_row(z, V, TEACHER_K, used, ids + i * TEACHER_K,
                                                   logprobs + i * TEACHER_K, &mx);
                nll += -(z[seq[start + i + 1]] - mx - log_sum);
                if (onehot) {
                    ids[i] = seq[start + i + 1];
                    logprobs[i] = 0.0f;
                }
            }
            assert_int_equal(softlabel_encode(codec, ids, logprobs, (int)wl - 1, meta.k, V, &blob,
                                              &blob_cap, &blob_len), 0);
            labels_row row = {.source = text_name, .member = "", .record_index = (uint64_t)r,
                              .window = (int)w, .hash = XXH3_64bits(ls.text[r], len),
                              .n_tokens = (int)wl, .tokens = seq + start, .topk = blob,
                              .topk_len = blob_len, .mean_nll = nll / (double)(wl - 1),
                              .mean_entropy = (double)(r % 5), .mean_tail = 0.01, .mean_top1 = 0.5};
            if (labels_db_insert(db, &row) < 0)
                fail_msg("%s", err_message());
        }
        free(ls.text[r]);
    }
    assert_int_equal(labels_db_commit(db), 0);
    assert_int_equal(labels_db_close(db), 0);
    free(ls.text);
    free(seq);
    free(blob);
    softlabel_codec_free(codec);
    model_free(m);
    tok_free(tok);
    checkpoint_free(&ck);
}

static int setup(void **state)
{
    (void)state;
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char cwd[256];
    if (!getcwd(cwd, sizeof cwd))
        return -1;
    snprintf(train_bin, sizeof train_bin, "%s%s%s/train", build[0] == '/' ? "" : cwd,
             build[0] == '/' ? "" : "/", build);
    snprintf(dir, sizeof dir, "/tmp/w2s_test_train_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    write_text("gt.txt", 150, 1);
    write_text("unlabeled.txt", 300, 2);
    write_text("heldout.txt", 60, 3);
    write_text("other.txt", 150, 4);
    if (run_train("--gt gt.txt --records line %s --vocab 300 --steps 40 --batch 4 --lr 3e-3 "
                  "--out teacher.ckpt --quiet", TINY) != 0) {
        print_error("teacher training failed: see %s/stderr.txt\n", dir);
        return -1;
    }
    write_labels("labels.db", "teacher.ckpt", "unlabeled.txt", 0);
    write_labels("onehot.db", "teacher.ckpt", "unlabeled.txt", 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_alpha1_is_plain_lm(void **state)
{
    (void)state;
    assert_int_equal(run_train("--gt gt.txt --records line %s --steps 12 --batch 3 --labels labels.db "
                               "--alpha 1 --tokenizer teacher.ckpt --out a1.ckpt --quiet", TINY), 0);
    assert_int_equal(run_train("--gt gt.txt --records line %s --steps 12 --batch 3 "
                               "--tokenizer teacher.ckpt --out plain.ckpt --quiet", TINY), 0);
    assert_true(same_file("a1.ckpt", "plain.ckpt"));
}

static void test_alpha0_ignores_gt(void **state)
{
    (void)state;
    assert_int_equal(run_train("--gt gt.txt --records line %s --steps 8 --kd-batch 3 --labels labels.db "
                               "--alpha 0 --out g1.ckpt --quiet", TINY), 0);
    assert_int_equal(run_train("--gt other.txt --records line %s --steps 8 --kd-batch 3 --labels labels.db "
                               "--alpha 0 --out g2.ckpt --quiet", TINY), 0);
    assert_true(same_file("g1.ckpt", "g2.ckpt"));
}

static const char *kd_args = "--gt gt.txt --records line --layers 1 --heads 2 --channels 32 --seq 48 "
                             "--steps 14 --batch 2 --kd-batch 3 --labels labels.db --alpha 0.5 --tau 2 "
                             "--eval-input heldout.txt --eval-every 4 --quiet";

static void test_resume_after_stop(void **state)
{
    (void)state;
    assert_int_equal(run_train("%s --out full.ckpt --checkpoint-every 5", kd_args), 0);
    assert_int_equal(run_train("%s --out part.ckpt --checkpoint-every 5 --stop-at 6", kd_args), 0);
    assert_false(same_file("full.ckpt.resume", "part.ckpt.resume"));
    assert_int_equal(run_train("%s --out part.ckpt --checkpoint-every 3 --resume", kd_args), 0);
    assert_true(same_file("full.ckpt", "part.ckpt"));
    assert_true(same_file("full.ckpt.resume", "part.ckpt.resume"));
    /* other settings are refused */
    assert_int_not_equal(run_train("%s --out part.ckpt --lr 0.5 --resume", kd_args), 0);
    assert_true(stderr_has("part.ckpt.resume"));
}

/* A resume with other data or settings is refused, naming each difference. */
static void test_resume_names_what_changed(void **state)
{
    (void)state;
    assert_int_equal(scli_copy_file(path_in("gt.txt"), path_in("gt_copy.txt")), 0);
    const char *args = "--records line --layers 1 --heads 2 --channels 32 --seq 32 --steps 6 --batch 2 "
                       "--tokenizer teacher.ckpt --out fp.ckpt --quiet";
    assert_int_equal(run_train("--gt gt_copy.txt %s --lr 3e-3 --stop-at 2", args), 0);
    assert_int_equal(run_train("--gt gt_copy.txt %s --lr 1e-3 --resume", args), 1);
    assert_true(stderr_has("fp.ckpt.resume: the run differs from the one that wrote it: "
                           "--lr: 0.003 in the run, 0.001 now; rerun without --resume"));
    write_text("gt_copy.txt", 150, 9);
    uint64_t before = file_hash("fp.ckpt.resume");
    assert_int_equal(run_train("--gt gt_copy.txt %s --lr 3e-3 --resume", args), 1);
    assert_true(stderr_has("--gt gt_copy.txt: content changed since the run started (hash "));
    assert_int_equal(file_hash("fp.ckpt.resume"), before);
    assert_int_equal(scli_copy_file(path_in("gt.txt"), path_in("gt_copy.txt")), 0);
    assert_int_equal(run_train("--gt gt_copy.txt %s --lr 3e-3 --resume", args), 0);
}

/* Killed at an arbitrary moment (after some checkpoint), resumed: same end. */
static void test_resume_after_kill(void **state)
{
    (void)state;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && exec %s %s --out killed.ckpt --checkpoint-every 1 2>/dev/null",
             dir, train_bin, kd_args);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 3000 && !file_exists(path_in("killed.ckpt.resume")); i++)
        usleep(10000);
    usleep(20000);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_int_equal(run_train("%s --out killed.ckpt --checkpoint-every 1 --resume", kd_args), 0);
    assert_true(same_file("full.ckpt", "killed.ckpt"));
    assert_true(same_file("full.ckpt.resume", "killed.ckpt.resume"));
}

/* Refused (exit 1, message naming out and why), leaving every file as it was. */
static void refused_unchanged(const char *args, const char *name, const char *why)
{
    uint64_t before = file_hash(name);
    assert_int_equal(run_train("--gt gt.txt --records line --steps 2 --batch 2 --quiet %s", args), 1);
    assert_true(stderr_has(why));
    assert_int_equal(file_hash(name), before);
}

/* Outputs go to new paths or over files w2s made, never over a user's file
 * or an input of the same run. */
static void test_outputs_never_overwrite_user_files(void **state)
{
    (void)state;
    assert_int_equal(scli_copy_file(path_in("gt.txt"), path_in("mine.txt")), 0);
    assert_int_equal(scli_copy_file(path_in("teacher.ckpt"), path_in("init.ckpt")), 0);
    refused_unchanged("--out gt.txt", "gt.txt", "gt.txt: --out is also --gt (refusing to overwrite it)");
    refused_unchanged("--out mine.txt", "mine.txt",
                      "mine.txt: exists and is not a w2s checkpoint (refusing to overwrite it)");
    refused_unchanged("--out o.ckpt --metrics mine.txt", "mine.txt",
                      "mine.txt: exists and is not a w2s metrics file (refusing to overwrite it)");
    refused_unchanged("--out o.ckpt --labels labels.db --metrics labels.db", "labels.db",
                      "--metrics is also --labels");
    refused_unchanged("--out init.ckpt --init init.ckpt", "init.ckpt", "--out is also --init");
    refused_unchanged("--out o.ckpt --tokenizer init.ckpt --metrics init.ckpt", "init.ckpt",
                      "--metrics is also --tokenizer");
    refused_unchanged("--out o.ckpt --eval-input mine.txt --metrics mine.txt", "mine.txt",
                      "--metrics is also --eval-input");
    assert_int_equal(scli_copy_file(path_in("gt.txt"), path_in("user.ckpt.resume")), 0);
    refused_unchanged("--out user.ckpt", "user.ckpt.resume", "user.ckpt.resume: exists and is not a w2s");
    refused_unchanged("--out ./o.ckpt --metrics o.ckpt", "gt.txt", "--metrics is also --out");
    assert_false(file_exists(path_in("o.ckpt")));
    assert_false(file_exists(path_in("user.ckpt")));
    /* its own outputs are overwritten, and empty files are taken */
    assert_int_equal(scli_write_file(path_in("empty.ckpt"), "", 0), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(run_train("--gt gt.txt --records line %s --steps 2 --batch 2 --quiet "
                                   "--tokenizer teacher.ckpt --out empty.ckpt --metrics m.jsonl", TINY), 0);
    assert_true(checkpoint_has_magic(path_in("empty.ckpt")) == 1);
}

/* A second train on the same OUT is refused by name while the first runs. */
static void test_two_trains_on_one_out(void **state)
{
    (void)state;
    const char *argv[] = {"train", "--gt", "gt.txt", "--records", "line", "--layers", "1", "--heads",
                          "2", "--channels", "32", "--seq", "32", "--steps", "1000000", "--batch", "2",
                          "--tokenizer", "teacher.ckpt", "--out", "busy.ckpt", "--quiet", NULL};
    pid_t pid = scli_spawn(argv, dir, NULL, 0);
    assert_true(pid > 0);
    for (int i = 0; i < 3000 && !file_exists(path_in("busy.ckpt")); i++)
        usleep(10000);
    int rc = run_train("--gt gt.txt --records line %s --steps 2 --batch 2 --tokenizer teacher.ckpt "
                       "--out busy.ckpt --quiet", TINY);
    char want[128];
    snprintf(want, sizeof want, "busy.ckpt: is being written by another train (pid %ld)", (long)pid);
    int named = stderr_has(want);
    kill(pid, SIGKILL);
    assert_int_equal(scli_wait(pid), 128 + SIGKILL);
    assert_int_equal(rc, 1);
    assert_true(named);
    /* the killed run leaves at most an empty OUT, which the next run takes */
    assert_int_equal(run_train("--gt gt.txt --records line %s --steps 2 --batch 2 --tokenizer teacher.ckpt "
                               "--out busy.ckpt --quiet", TINY), 0);
    assert_true(checkpoint_has_magic(path_in("busy.ckpt")) == 1);
    /* a refused setup leaves no OUT behind */
    assert_int_equal(run_train("--gt missing.txt %s --out never.ckpt --quiet", TINY), 1);
    assert_false(file_exists(path_in("never.ckpt")));
}

/* A labels.db that distill is still writing is refused with the writer's
 * pid; one an interrupted distill left unfinished needs --allow-partial-labels. */
static void test_unfinished_labels_refused(void **state)
{
    (void)state;
    assert_int_equal(scli_copy_file(path_in("labels.db"), path_in("partial.db")), 0);
    labels_db *rd = labels_db_open_read(path_in("partial.db"));
    assert_non_null(rd);
    labels_meta meta;
    assert_int_equal(labels_db_meta(rd, &meta), 0);
    assert_int_equal(meta.complete, 1);   /* no 'complete' key: an older database, complete */
    labels_db_close(rd);
    labels_db *db = labels_db_open_write(path_in("partial.db"), &meta);
    assert_non_null(db);
    assert_int_equal(labels_db_set_complete(db, 0), 0);
    const char *args = "--gt gt.txt --records line --layers 1 --heads 2 --channels 32 --seq 32 --steps 2 "
                       "--batch 2 --kd-batch 2 --labels partial.db --quiet";
    assert_int_equal(run_train("%s --out p.ckpt", args), 1);
    char want[128];
    snprintf(want, sizeof want, "partial.db is being written by distill (pid %ld); wait for it to finish",
             (long)getpid());
    assert_true(stderr_has(want));
    assert_int_equal(labels_db_close(db), 0);
    labels_meta_free(&meta);
    assert_int_equal(run_train("%s --out p.ckpt", args), 1);
    assert_true(stderr_has("partial.db: left unfinished by an interrupted distill"));
    assert_false(file_exists(path_in("p.ckpt")));
    assert_int_equal(run_train("%s --out p.ckpt --allow-partial-labels", args), 0);
}

/* mpirun -np 2 of the plain build would run two whole jobs writing the same
 * --metrics and --out: refused before anything is written. */
static void test_plain_build_under_mpirun_refused(void **state)
{
    (void)state;
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    int rc = run_train("--gt gt.txt --records line %s --steps 2 --out mpi.ckpt --metrics mpi.jsonl --quiet", TINY);
    unsetenv("OMPI_COMM_WORLD_SIZE");
    assert_int_equal(rc, 1);
    assert_true(stderr_has("started by mpirun as one of 2 processes, but this build has no MPI"));
    assert_false(file_exists(path_in("mpi.jsonl")));
    assert_false(file_exists(path_in("mpi.ckpt")));
}

static void test_labels_db_unchanged(void **state)
{
    (void)state;
    uint64_t before = file_hash("labels.db");
    assert_int_equal(run_train("--gt gt.txt --records line %s --steps 5 --labels labels.db "
                               "--labels-where 'mean_entropy < 3' --kd-batch 2 --batch 2 --out u.ckpt --quiet",
                               TINY), 0);
    assert_int_equal(file_hash("labels.db"), before);
}

/* An OUT that a failed run must leave alone: it starts like a checkpoint, so
 * only the failure under test can refuse the run. */
static const char keep_ckpt[] = "W2SCKPT\0keep";

static int keep_unchanged(void)
{
    unsigned char *data;
    size_t len;
    if (file_read_all(path_in("keep.ckpt"), &data, &len) < 0)
        return 0;
    int same = len == sizeof keep_ckpt && memcmp(data, keep_ckpt, len) == 0;
    free(data);
    return same;
}

static void test_mismatched_tokenizer_refused(void **state)
{
    (void)state;
    assert_int_equal(run_train("--gt other.txt --records line %s --vocab 280 --steps 2 --out othertok.ckpt --quiet",
                               TINY), 0);
    assert_int_equal(file_write_atomic(path_in("keep.ckpt"), keep_ckpt, sizeof keep_ckpt), 0);
    assert_int_not_equal(run_train("--gt gt.txt --records line %s --steps 2 --labels labels.db "
                                   "--tokenizer othertok.ckpt --out keep.ckpt", TINY), 0);
    assert_true(stderr_has("othertok.ckpt"));
    assert_int_not_equal(run_train("--gt gt.txt --records line --steps 2 --labels labels.db "
                                   "--init othertok.ckpt --out keep.ckpt"), 0);
    assert_true(stderr_has("othertok.ckpt"));
    assert_true(keep_unchanged());
    assert_false(file_exists(path_in("keep.ckpt.resume")));
}

static void test_bad_inputs_refused(void **state)
{
    (void)state;
    assert_int_equal(file_write_atomic(path_in("keep.ckpt"), keep_ckpt, sizeof keep_ckpt), 0);
    /* alpha outside [0, 1]: usage error */
    assert_int_equal(run_train("--gt gt.txt --labels labels.db --alpha 1.5 --out keep.ckpt"), 2);
    assert_int_equal(run_train("--gt gt.txt --bogus --out keep.ckpt"), 2);
    /* SQL that SQLite rejects */
    assert_int_equal(run_train("--gt gt.txt --records line %s --labels labels.db --labels-where 'nonsense ((' "
                               "--steps 2 --out keep.ckpt", TINY), 1);
    assert_true(stderr_has("labels.db"));
    /* teacher T 32 > student T 16 */
    assert_int_equal(run_train("--gt gt.txt --records line --layers 1 --heads 2 --channels 32 --seq 16 "
                               "--labels labels.db --steps 2 --out keep.ckpt"), 1);
    assert_true(stderr_has("labels.db"));
    /* missing files, empty GT */
    assert_int_equal(run_train("--gt missing.txt %s --steps 2 --out keep.ckpt", TINY), 1);
    assert_true(stderr_has("missing.txt"));
    assert_int_equal(run_train("--gt gt.txt --records line %s --labels missing.db --steps 2 --out keep.ckpt", TINY), 1);
    assert_true(stderr_has("missing.db"));
    assert_int_equal(file_write_atomic(path_in("empty.txt"), "", 0), 0);
    assert_int_equal(run_train("--gt empty.txt %s --steps 2 --out keep.ckpt", TINY), 1);
    assert_true(stderr_has("empty"));
    /* a labels.db of another schema version */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp %s %s", path_in("labels.db"), path_in("v99.db"));
    assert_int_equal(system(cmd), 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path_in("v99.db"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(run_train("--gt gt.txt --records line %s --labels v99.db --steps 2 --out keep.ckpt", TINY), 1);
    assert_true(stderr_has("v99.db"));
    assert_true(keep_unchanged());
    assert_false(file_exists(path_in("keep.ckpt.resume")));
}

static double eval_loss(const char *model_name, const char *input)
{
    if (run_train("--eval --model %s --input %s --records line --json", model_name, input) != 0)
        return NAN;
    char *out = read_text("stdout.txt");
    const char *p = out ? strstr(out, "\"loss\":") : NULL;
    double loss = p ? strtod(p + 7, NULL) : NAN;
    free(out);
    return loss;
}

static void test_kd_student_learns_teacher_text(void **state)
{
    (void)state;
    assert_int_equal(run_train("--gt gt.txt --records line %s --steps 1 --lr 0 --labels labels.db --alpha 0 "
                               "--kd-batch 2 --out untrained.ckpt --quiet", TINY), 0);
    assert_int_equal(run_train("--gt gt.txt --records line %s --steps 40 --lr 3e-3 --labels labels.db --alpha 0 "
                               "--kd-batch 4 --kd-tail renorm --out kd.ckpt --quiet", TINY), 0);
    assert_int_equal(run_train("--gt gt.txt --records line %s --steps 40 --lr 3e-3 --labels labels.db --alpha 0 "
                               "--kd-batch 4 --out kdb.ckpt --quiet", TINY), 0);
    double untrained = eval_loss("untrained.ckpt", "unlabeled.txt");
    double kd = eval_loss("kd.ckpt", "unlabeled.txt");
    double kdb = eval_loss("kdb.ckpt", "unlabeled.txt");
    double teacher = eval_loss("teacher.ckpt", "unlabeled.txt");
    print_message("teacher %.4f, untrained %.4f, KD renorm %.4f, KD bucket %.4f\n", teacher,
                  untrained, kd, kdb);
    /* renorm teaches the order within the top-k only, so it gains less */
    assert_true(kd < untrained - 0.1);
    assert_true(kdb < untrained - 0.5);
}

/* Every divergence and the trust weights train a student (the KD losses
 * differ, so only "it learns" is checked: held-out loss on the teacher's text
 * well below the untrained model's; this small teacher's top-1 probability is
 * mostly below 0.1, hence the low --kd-min-conf); inconsistent KD options are
 * refused. */
static void test_kd_losses_and_trust(void **state)
{
    (void)state;
    static const char *variants[] = {"--kd-loss rkl", "--kd-loss gjsd --kd-beta 0.5", "--kd-loss tvd",
                                     "--kd-loss skl --kd-skew 0.1", "--kd-loss srkl --kd-skew 0.1",
                                     "--kd-loss rkl --kd-tail renorm", "--kd-weight conf --kd-min-conf 0.05",
                                     "--kd-weight entropy --kd-loss gjsd"};
    assert_int_equal(run_train("--gt gt.txt --records line %s --steps 1 --lr 0 --labels labels.db --alpha 0 "
                               "--kd-batch 2 --out untrained.ckpt --quiet", TINY), 0);
    double untrained = eval_loss("untrained.ckpt", "unlabeled.txt");
    for (size_t i = 0; i < sizeof variants / sizeof *variants; i++) {
        assert_int_equal(run_train("--gt gt.txt --records line %s --steps 40 --lr 3e-3 --labels labels.db "
                                   "--alpha 0 --kd-batch 4 %s --out variant.ckpt --quiet", TINY, variants[i]), 0);
        double got = eval_loss("variant.ckpt", "unlabeled.txt");
        print_message("%s: %.4f (untrained %.4f)\n", variants[i], got, untrained);
        if (!(got < untrained - 0.1))
            fail_msg("%s: held-out %.4f, untrained %.4f", variants[i], got, untrained);
    }
    static const char *refused[] = {"--kd-beta 0.5", "--kd-loss gjsd --kd-beta 1", "--kd-loss gjsd --kd-beta 0",
                                    "--kd-loss skl --kd-skew 1", "--kd-loss kl", "--kd-weight top1",
                                    "--kd-loss rkl --labels-hard", "--kd-min-conf 0.5 --labels-hard",
                                    "--kd-loss tvd --aux-conf 0.5", "--kd-skew 0.2 --kd-loss gjsd"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        if (run_train("--gt gt.txt --records line %s --steps 2 --labels labels.db %s --out keep.ckpt", TINY,
                      refused[i]) != 2)
            fail_msg("'%s' was not refused as a usage error", refused[i]);
    assert_int_equal(run_train("--gt gt.txt --records line %s --steps 2 --kd-loss rkl --out keep.ckpt", TINY), 2);
    assert_true(stderr_has("--labels"));
}

/* Per-step kd_loss values of a --metrics file. */
static int read_kd_losses(const char *name, double *out, int max)
{
    char *text = read_text(name);
    int n = 0;
    for (const char *p = text; p && n < max && (p = strstr(p, "\"kd_loss\":")); p++)
        out[n++] = strtod(p + 10, NULL);
    free(text);
    return n;
}

/* With one-hot labels on the actual next tokens, KD is the LM loss: the soft
 * run and the hard-label run must see the same losses, which holds only if
 * every packed position gets the decoded label of its own window position. */
static void test_label_positions_line_up(void **state)
{
    (void)state;
    const char *args = "--gt gt.txt --records line --layers 1 --heads 2 --channels 32 --seq 80 "
                       "--steps 4 --labels onehot.db --alpha 0 --kd-batch 3 --quiet";
    assert_int_equal(run_train("%s --metrics soft.jsonl --out soft.ckpt", args), 0);
    assert_int_equal(run_train("%s --labels-hard --metrics hard.jsonl --out hard1.ckpt", args), 0);
    double soft[4], hard[4];
    assert_int_equal(read_kd_losses("soft.jsonl", soft, 4), 4);
    assert_int_equal(read_kd_losses("hard.jsonl", hard, 4), 4);
    for (int i = 0; i < 4; i++)
        if (fabs(soft[i] - hard[i]) > 1e-4 * hard[i])
            fail_msg("step %d: KD %.8g, LM on the same tokens %.8g", i + 1, soft[i], hard[i]);
}

static void test_hard_labels_and_outputs(void **state)
{
    (void)state;
    assert_int_equal(run_train("--gt gt.txt --records line %s --steps 6 --labels labels.db --labels-hard "
                               "--batch 2 --kd-batch 2 --metrics m.jsonl --json --quiet --out hard.ckpt", TINY), 0);
    char *out = read_text("stdout.txt");
    assert_non_null(out);
    assert_non_null(strstr(out, "\"kd_loss\":"));
    free(out);
    char *metrics = read_text("m.jsonl");
    assert_non_null(metrics);
    int lines = 0;
    for (char *p = metrics; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 6);
    assert_non_null(strstr(metrics, "\"step\":6,\"lm_loss\":"));
    free(metrics);
    /* bits per byte = nats / (ln 2 * bytes) of the evaluated text */
    assert_int_equal(run_train("--eval --model hard.ckpt --input heldout.txt --records line --json"), 0);
    out = read_text("stdout.txt");
    unsigned long long tokens = 0;
    double loss = 0, ppl = 0, bpb = 0;
    assert_int_equal(sscanf(out, "{\"tokens\":%llu,\"loss\":%lf,\"ppl\":%lf,\"bits_per_byte\":%lf}",
                            &tokens, &loss, &ppl, &bpb), 4);
    free(out);
    char *text = read_text("heldout.txt");
    size_t bytes = 0, records = 0;
    for (char *p = text; *p; p++) {
        if (*p == '\n')
            records++;
        else
            bytes++;
    }
    free(text);
    assert_true(tokens >= records && tokens <= bytes);
    assert_true(fabs(ppl - exp(loss)) < 1e-6 * ppl);
    assert_true(fabs(bpb - loss * (double)tokens / (log(2.0) * (double)bytes)) < 1e-6 * bpb);
}

/* Reads a --positions file: the header, then per line the seven fields of
 * schemas/positions.md, each line checked (top1_prob in (0, 1], entropy and
 * nll >= 0, windows in order). @return the number of lines after the
 * header; *mean_nll gets the mean of the nll column. */
static long read_positions(const char *name, double *mean_nll)
{
    char *text = read_text(name);
    assert_non_null(text);
    static const char header[] = "window\tposition\ttarget\tnll\ttop1\ttop1_prob\tentropy\n";
    assert_memory_equal(text, header, strlen(header));
    long lines = 0;
    unsigned long long last_window = 0;
    double sum = 0.0;
    for (const char *p = text + strlen(header); *p; lines++) {
        unsigned long long window;
        int position, target, top1, used = -1;
        double nll, top1_prob, entropy;
        if (sscanf(p, "%llu\t%d\t%d\t%lf\t%d\t%lf\t%lf\n%n", &window, &position, &target, &nll, &top1,
                   &top1_prob, &entropy, &used) != 7 || used < 0 || p[used - 1] != '\n')
            fail_msg("%s: line %ld: %.80s", name, lines + 2, p);
        assert_true(window >= last_window && position >= 0 && target >= 0 && top1 >= 0);
        assert_true(top1_prob > 0 && top1_prob <= 1 && entropy >= 0 && nll >= 0);
        last_window = window;
        sum += nll;
        p += used;
    }
    free(text);
    *mean_nll = lines ? sum / (double)lines : NAN;
    return lines;
}

/* The tokens and loss of the --json summary in stdout.txt. */
static void eval_summary(unsigned long long *tokens, double *loss)
{
    char *out = read_text("stdout.txt");
    assert_non_null(out);
    assert_int_equal(sscanf(out, "{\"tokens\":%llu,\"loss\":%lf", tokens, loss), 2);
    free(out);
}

/* No temporary file of an atomic write of name is left in the directory. */
static int no_temporary_left(const char *name)
{
    char pattern[600];
    snprintf(pattern, sizeof pattern, "%s.tmp.*", path_in(name));
    glob_t g;
    int found = glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0;
    globfree(&g);
    return !found;
}

/* --eval --positions: one line per predicted token whose NLLs average to the
 * loss; it replaces its own earlier file, never a user's file, an input or
 * the model, and a failed run leaves the old file; it goes with --eval only. */
static void test_eval_positions(void **state)
{
    (void)state;
    unsigned long long tokens;
    double loss, mean_nll;
    const char *eval = "--eval --model teacher.ckpt --records line --json --quiet";
    assert_int_equal(run_train("%s --input heldout.txt --batch 3 --positions pos.tsv", eval), 0);
    eval_summary(&tokens, &loss);
    assert_int_equal(read_positions("pos.tsv", &mean_nll), tokens);
    if (!(fabs(mean_nll - loss) <= 1e-5 * loss))
        fail_msg("mean nll %.9g, eval loss %.9g", mean_nll, loss);
    /* its own earlier file is replaced */
    assert_int_equal(run_train("%s --input other.txt --positions pos.tsv", eval), 0);
    eval_summary(&tokens, &loss);
    assert_int_equal(read_positions("pos.tsv", &mean_nll), tokens);
    assert_true(fabs(mean_nll - loss) <= 1e-5 * loss);
    uint64_t before = file_hash("pos.tsv");
    /* a user's file, an input and the model are refused, unchanged */
    assert_int_equal(scli_copy_file(path_in("heldout.txt"), path_in("mine.tsv")), 0);
    uint64_t mine = file_hash("mine.tsv"), ckpt = file_hash("teacher.ckpt");
    assert_int_equal(run_train("%s --input heldout.txt --positions mine.tsv", eval), 1);
    assert_true(stderr_has("mine.tsv: exists and is not a w2s positions file (refusing to overwrite it)"));
    assert_int_equal(run_train("%s --input other.txt mine.tsv --positions ./mine.tsv", eval), 1);
    assert_true(stderr_has("./mine.tsv: --positions is also --input (refusing to overwrite it)"));
    assert_int_equal(run_train("%s --input heldout.txt --positions teacher.ckpt", eval), 1);
    assert_true(stderr_has("teacher.ckpt: --positions is also --model (refusing to overwrite it)"));
    assert_int_equal(file_hash("mine.tsv"), mine);
    assert_int_equal(file_hash("teacher.ckpt"), ckpt);
    /* a run that fails while writing (logits of NaN) leaves the old file */
    checkpoint ck;
    assert_int_equal(checkpoint_read(path_in("teacher.ckpt"), &ck), 0);
    for (size_t i = 0; i < model_config_num_params(&ck.config); i++)
        ck.params[i] = NAN;
    assert_int_equal(checkpoint_write(path_in("nan.ckpt"), &ck), 0);
    checkpoint_free(&ck);
    assert_int_equal(run_train("--eval --model nan.ckpt --input heldout.txt --records line --positions pos.tsv"),
                     1);
    assert_true(stderr_has("pos.tsv: window 0, position 0: "));
    assert_int_equal(file_hash("pos.tsv"), before);
    assert_true(no_temporary_left("pos.tsv"));
    /* --positions belongs to --eval */
    assert_int_equal(run_train("--gt gt.txt --records line --steps 2 --out never.ckpt --positions p.tsv"), 2);
    assert_true(stderr_has("--positions is for --eval"));
    assert_false(file_exists(path_in("p.tsv")));
}

/* --precision: bf16 runs say so (start-up line, --json), rerun bit for bit
 * and resume only as bf16; fp32 is the default; a bad name is a usage error. */
static void test_precision(void **state)
{
    (void)state;
    assert_int_equal(run_train("--gt gt.txt --records line %s --steps 2 --precision fp16 --out p.ckpt", TINY), 2);
    assert_true(stderr_has("fp16"));
    assert_int_equal(run_train("--gt gt.txt --records line %s --steps 2 --json --out p32.ckpt", TINY), 0);
    assert_true(stderr_has("fp32 (OpenBLAS) products"));
    char *out = read_text("stdout.txt");
    assert_non_null(strstr(out, "\"precision\":\"fp32\""));
    free(out);
    if (!matmul_bf16_available()) {
        print_message("skipped: %s\n", err_message());
        skip();
    }
    const char *args = "--gt gt.txt --records line --layers 1 --heads 2 --channels 32 --seq 32 --steps 3 "
                       "--precision bf16 --json";
    assert_int_equal(run_train("%s --out b1.ckpt", args), 0);
    assert_true(stderr_has("bf16 (oneDNN"));
    out = read_text("stdout.txt");
    assert_non_null(strstr(out, "\"precision\":\"bf16\""));
    free(out);
    assert_int_equal(run_train("%s --out b2.ckpt", args), 0);
    assert_true(same_file("b1.ckpt", "b2.ckpt"));
    assert_false(same_file("b1.ckpt", "p32.ckpt"));
    /* a bf16 run's resume state is refused by an fp32 run */
    assert_int_equal(run_train("--gt gt.txt --records line %s --steps 3 --resume --out b1.ckpt", TINY), 1);
    assert_true(stderr_has("--precision: bf16 in the run, fp32 now"));
}

static void test_help_and_version(void **state)
{
    (void)state;
    assert_int_equal(run_train("--help"), 0);
    char *out = read_text("stdout.txt");
    static const char *opts[] = {"--gt", "--records", "--out", "--labels", "--labels-where",
                                 "--labels-hard", "--alpha", "--tau", "--kd-tail", "--preset",
                                 "--layers", "--init", "--tokenizer", "--vocab", "--steps",
                                 "--epochs", "--batch", "--kd-batch", "--lr", "--warmup",
                                 "--weight-decay", "--clip", "--seed", "--threads", "--eval-input",
                                 "--eval-every", "--checkpoint-every", "--resume", "--metrics",
                                 "--quiet", "--json", "--eval", "--model", "--input", "--stop-at",
                                 "--precision", "--kd-loss", "--kd-beta", "--kd-skew", "--kd-weight",
                                 "--kd-min-conf", "--positions"};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
        if (!strstr(out, opts[i]))
            fail_msg("--help does not describe %s", opts[i]);
    free(out);
    assert_int_equal(run_train("--version"), 0);
    out = read_text("stdout.txt");
    assert_non_null(strstr(out, "w2s "));
    free(out);
}

/* With stderr in a file (a log, nohup, CI) training and --eval print whole
 * progress lines (here at every update: W2S_PROGRESS_SECONDS is tiny) with the
 * percent, the ETA and, once measured, the held-out loss; no terminal codes. */
static void test_progress_lines_in_logs(void **state)
{
    (void)state;
    assert_int_equal(setenv("W2S_PROGRESS_SECONDS", "0.000001", 1), 0);
    int rc = run_train("--gt gt.txt --records line %s --tokenizer teacher.ckpt --steps 12 --batch 2 "
                       "--eval-input heldout.txt --eval-every 5 --out progress.ckpt", TINY);
    assert_int_equal(rc, 0);
    char *err = read_text("stderr.txt");
    assert_non_null(err);
    if (!strstr(err, "train: 1/12 steps, 8%") || !strstr(err, "train: 12/12 steps, 100%") ||
        !strstr(err, "ETA ") || !strstr(err, "held-out ") || strchr(err, '\r') || strchr(err, '\033'))
        fail_msg("train progress in a log:\n%s", err);
    free(err);
    rc = run_train("--eval --model progress.ckpt --input heldout.txt --records line");
    assert_int_equal(rc, 0);
    unsetenv("W2S_PROGRESS_SECONDS");
    assert_true(stderr_has("eval: ") && stderr_has(" windows, "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_progress_lines_in_logs),
        cmocka_unit_test(test_precision),
        cmocka_unit_test(test_alpha1_is_plain_lm),
        cmocka_unit_test(test_alpha0_ignores_gt),
        cmocka_unit_test(test_resume_after_stop),
        cmocka_unit_test(test_resume_after_kill),
        cmocka_unit_test(test_resume_names_what_changed),
        cmocka_unit_test(test_labels_db_unchanged),
        cmocka_unit_test(test_unfinished_labels_refused),
        cmocka_unit_test(test_plain_build_under_mpirun_refused),
        cmocka_unit_test(test_outputs_never_overwrite_user_files),
        cmocka_unit_test(test_two_trains_on_one_out),
        cmocka_unit_test(test_mismatched_tokenizer_refused),
        cmocka_unit_test(test_bad_inputs_refused),
        cmocka_unit_test(test_kd_student_learns_teacher_text),
        cmocka_unit_test(test_kd_losses_and_trust),
        cmocka_unit_test(test_hard_labels_and_outputs),
        cmocka_unit_test(test_eval_positions),
        cmocka_unit_test(test_label_positions_line_up),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
