/* Benchmark of the train program: training tokens/s with KD against without
 * (same student, same step size in rows; target ratio >= 0.9), the label
 * reader alone (train --labels-only: read + decode + pack) against the rate at
 * which KD training consumes labels (target >= 20x), and the KD kernel per
 * position against the CE kernel. Each measurement checks its result first.
 * Human lines on stdout, JSON lines appended to $BUILD/bench.jsonl. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "nn/checkpoint.h"
#include "base/err.h"
#include "nn/kd_loss.h"
#include "labels/labels_db.h"
#include "nn/loss.h"
#include "nn/model.h"
#include "base/progress.h"
#include "base/rng.h"
#include "labels/softlabel.h"
#include "text/tokenizer.h"
#include "text/window.h"
#include "support_fixtures.h"

enum { K = 32 };

static char dir[256], train_bin[512];

static void die(const char *what)
{
    fprintf(stderr, "bench_train: %s: %s\n", what, err_message());
    exit(1);
}

/* Runs train in dir and returns the number after "key": in its stdout. */
static double run_train(const char *key, const char *fmt, ...) W2S_PRINTF(2, 3);
static double run_train(const char *key, const char *fmt, ...)
{
    char args[2048], cmd[4096], out[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd %s && %s %s --quiet --json", dir, train_bin, args);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[n] = 0;
    if (!p || pclose(p) != 0) {
        fprintf(stderr, "bench_train: failed: %s\n", cmd);
        exit(1);
    }
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(out, pattern);
    if (!at) {
        fprintf(stderr, "bench_train: no %s in: %s\n", key, out);
        exit(1);
    }
    return strtod(at + strlen(pattern), NULL);
}

static void write_text(const char *name, int lines, uint64_t seed)
{
    static const char *w[] = {"the", "cat", "dog", "sees", "likes", "a", "red", "green", "ball",
                              "box", "moon", "at", "night", "today", "old", "man", "eats", "bread"};
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    if (!fp)
        die(path);
    rng_state rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < lines; i++) {
        int len = 6 + (int)rng_below(&rng, 20), prev = 0;
        for (int j = 0; j < len; j++) {
            prev = (int)((prev * 7 + rng_below(&rng, 5)) % 18);
            fprintf(fp, "%s%s", j ? " " : "", w[prev]);
        }
        fputs(".\n", fp);
    }
    fclose(fp);
}

/* labels.db from the teacher's forward on every window of text_name. */
static void write_labels(const char *teacher_name, const char *text_name, const char *db_name)
{
    char path[600];
    checkpoint ck;
    snprintf(path, sizeof path, "%s/%s", dir, teacher_name);
    if (checkpoint_read(path, &ck) < 0)
        die("teacher");
    tokenizer *tok = tok_deserialize(ck.tokenizer, ck.tokenizer_len);
    const int T = ck.config.seq_len, V = ck.config.vocab;
    model *m = model_create(&ck.config, 1, 0);
    if (!tok || !m || V < K || T < 2)
        die("teacher");
    memcpy(model_params(m), ck.params, model_num_params(m) * sizeof(float));
    labels_meta meta = {.teacher_hash = ck.hash, .teacher_config = ck.config,
                        .tokenizer = ck.tokenizer, .tokenizer_len = ck.tokenizer_len,
                        .tokenizer_hash = tok_hash(tok), .k = K,
                        .codec_version = SOFTLABEL_CODEC_VERSION};
    snprintf(meta.tool_version, sizeof meta.tool_version, "bench");
    snprintf(meta.label_kind, sizeof meta.label_kind, "topk");
    snprintf(path, sizeof path, "%s/%s", dir, db_name);
    labels_db *db = labels_db_open_write(path, &meta);
    softlabel_codec *codec = softlabel_codec_create();
    snprintf(path, sizeof path, "%s/%s", dir, text_name);
    FILE *fp = fopen(path, "r");
    int32_t *seq = malloc(sizeof *seq * 8192), *pos = malloc(sizeof *pos * (size_t)T);
    int32_t *ids = malloc(sizeof *ids * (size_t)T * K);
    float *lp = malloc(sizeof *lp * (size_t)T * K);
    unsigned char *used = malloc((size_t)(unsigned)V);
    unsigned char *blob = NULL;
    size_t blob_cap = 0, blob_len;
    char line[8192];
    if (!db || !codec || !fp || !seq || !pos || !ids || !lp || !used || labels_db_begin(db) < 0)
        die("labels");
    for (uint64_t r = 0; fgets(line, sizeof line, fp); r++) {
        size_t len = strcspn(line, "\n");
        seq[0] = tok_eot(tok);
        size_t n = 1 + tok_encode(tok, (unsigned char *)line, len, seq + 1);
        for (size_t wi = 0; wi < window_count(n, T); wi++) {
            size_t start, wl;
            window_span(wi, n, T, &start, &wl);
            for (size_t i = 0; i < wl; i++)
                pos[i] = (int32_t)i;
            float *logits = model_forward(m, seq + start, pos, 1, (int)wl);
            for (size_t i = 0; i + 1 < wl; i++)
                sfix_topk_row(logits + i * (size_t)V, V, K, used, ids + i * K, lp + i * K, NULL);
            if (softlabel_encode(codec, ids, lp, (int)wl - 1, K, V, &blob, &blob_cap, &blob_len) < 0)
                die("encode");
            labels_row row = {.source = text_name, .member = "", .record_index = r, .window = (int)wi,
                              .hash = XXH3_64bits(line, len), .n_tokens = (int)wl,
                              .tokens = seq + start, .topk = blob, .topk_len = blob_len};
            if (labels_db_insert(db, &row) < 0)
                die("insert");
        }
    }
    if (labels_db_commit(db) < 0 || labels_db_close(db) < 0)
        die("labels");
    fclose(fp);
    free(seq);
    free(pos);
    free(ids);
    free(lp);
    free(used);
    free(blob);
    softlabel_codec_free(codec);
    model_free(m);
    tok_free(tok);
    checkpoint_free(&ck);
}

/* KD against CE per position, V = 4096, after checking KD's value against
 * a direct computation on one row. */
static void bench_kernels(void)
{
    enum { V = 4096, N = 2048 };
    float *z = malloc(sizeof *z * V * N), *work = malloc(sizeof *work * V * N);
    int32_t *ids = malloc(sizeof *ids * K * N), *targets = malloc(sizeof *targets * N);
    float *lp = malloc(sizeof *lp * K * N), *tail = malloc(sizeof *tail * N);
    rng_state rng;
    rng_seed(&rng, 5);
    for (long i = 0; i < (long)V * N; i++)
        z[i] = 2.0f * rng_normal(&rng);
    for (int i = 0; i < N; i++) {
        double s = 0.0;
        for (int q = 0; q < K; q++) {
            ids[i * K + q] = (q * 127 + i) % V;
            lp[i * K + q] = -3.5f - 0.15f * (float)q;
            s += exp(lp[i * K + q]);
        }
        tail[i] = (float)(1.0 - s);
        targets[i] = ids[i * K];
    }
    /* check: KD of row 0 equals sum q log q - sum q log p computed directly */
    memcpy(work, z, sizeof *z * V);
    double kd = kd_loss_position(work, V, ids, lp, tail[0], K, 1.0f, KD_TAIL_BUCKET, 1.0f);
    double mx = z[0], sum = 0.0, in_s = 0.0, ref = 0.0;
    for (int j = 1; j < V; j++)
        mx = fmax(mx, z[j]);
    for (int j = 0; j < V; j++)
        sum += exp(z[j] - mx);
    for (int q = 0; q < K; q++) {
        double p = exp(z[ids[q]] - mx) / sum;
        in_s += p;
        ref += exp(lp[q]) * (lp[q] - log(p));
    }
    ref += tail[0] * (log(tail[0]) - log(1.0 - in_s));
    if (!(fabs(kd - ref) < 1e-4 * (1 + fabs(ref)))) {
        fprintf(stderr, "bench_train: KD check failed: %g vs %g\n", kd, ref);
        exit(1);
    }
    double best_kd = 1e30, best_ce = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        memcpy(work, z, sizeof *z * V * N);
        double t0 = time_now();
        for (int i = 0; i < N; i++)
            kd_loss_position(work + (long)i * V, V, ids + i * K, lp + i * K, tail[i], K, 1.0f,
                             KD_TAIL_BUCKET, 1.0f);
        best_kd = fmin(best_kd, time_now() - t0);
        memcpy(work, z, sizeof *z * V * N);
        t0 = time_now();
        loss_cross_entropy(work, targets, N, V, 1.0f);
        best_ce = fmin(best_ce, time_now() - t0);
    }
    sfix_bench_emit("kd_loss_position V=4096 k=32", best_kd / N * 1e9, "ns/position");
    sfix_bench_emit("loss_cross_entropy V=4096", best_ce / N * 1e9, "ns/position");
    sfix_bench_emit("kd_loss cost / ce cost", best_kd / best_ce, "ratio");
    free(z);
    free(work);
    free(ids);
    free(targets);
    free(lp);
    free(tail);
}

int main(void)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char cwd[256];
    if (!getcwd(cwd, sizeof cwd))
        return 1;
    snprintf(train_bin, sizeof train_bin, "%s%s%s/train", build[0] == '/' ? "" : cwd,
             build[0] == '/' ? "" : "/", build);
    snprintf(dir, sizeof dir, "/tmp/w2s_bench_train_XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    bench_kernels();

    write_text("gt.txt", 3000, 1);
    write_text("unlabeled.txt", 3000, 2);
    run_train("loss", "--gt gt.txt --records line --layers 1 --heads 2 --channels 64 --seq 128 "
                      "--vocab 1024 --steps 20 --batch 8 --lr 3e-3 --out teacher.ckpt");
    write_labels("teacher.ckpt", "unlabeled.txt", "labels.db");

    /* the same student and rows per step, without and with KD */
    const char *student = "--gt gt.txt --records line --preset tiny --tokenizer teacher.ckpt --steps 24 "
                          "--checkpoint-every 0 --lr 1e-3";
    double lm_first = run_train("loss", "%s --steps 1 --batch 16 --out plain1.ckpt", student);
    double lm_last = run_train("loss", "%s --batch 16 --out plain.ckpt", student);
    if (!(lm_last < lm_first)) {
        fprintf(stderr, "bench_train: plain training did not learn (%g -> %g)\n", lm_first, lm_last);
        return 1;
    }
    double plain = run_train("tokens_per_s", "%s --batch 16 --out plain.ckpt", student);
    double kd_loss = run_train("kd_loss", "%s --batch 8 --labels labels.db --kd-batch 8 --out kd.ckpt", student);
    if (!isfinite(kd_loss) || kd_loss < 0) {
        fprintf(stderr, "bench_train: bad KD loss %g\n", kd_loss);
        return 1;
    }
    double kd = run_train("tokens_per_s", "%s --batch 8 --labels labels.db --kd-batch 8 --out kd.ckpt", student);
    sfix_bench_emit("train tiny, LM only (16 rows)", plain, "tokens/s");
    sfix_bench_emit("train tiny, LM + KD (8 + 8 rows)", kd, "tokens/s");
    sfix_bench_emit("train KD / LM-only throughput", kd / plain, "ratio");

    double reader = run_train("tokens_per_s", "--gt gt.txt --labels labels.db --labels-only --preset tiny "
                                              "--kd-batch 8 --steps 400 --out none.ckpt");
    double consumed = kd * 0.5; /* half the rows of a KD step are labeled */
    sfix_bench_emit("label reader (read + decode + pack)", reader, "tokens/s");
    sfix_bench_emit("label reader / KD training consumption", reader / consumed, "ratio");
    int ok = kd / plain >= 0.9 && reader / consumed >= 20.0;
    printf("targets (KD/LM >= 0.9, reader >= 20x): %s\n", ok ? "met" : "NOT MET");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
