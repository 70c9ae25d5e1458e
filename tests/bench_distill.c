/* Benchmark of the distill program: end-to-end labeling throughput against
 * the teacher's forward-only throughput on the same packed batches, measured
 * in the same run, and bytes stored per position; for a `tiny` teacher (L2
 * H4 C128 T128, the case, target end-to-end >= 0.85 x forward) and a
 * `small` one (L6 H6 C384 T256).
 *
 * Fixture: a few hundred KB of fortune text (/usr/share/games/fortunes plain
 * files), a tokenizer trained on it (vocab 4096), each teacher trained for a
 * few batches of the same text, so that its distributions are peaked like a
 * real teacher's rather than near uniform (the worst case for the soft-label
 * codec). The result is verified first: the database must hold exactly the
 * windows the bench cut itself, and a sample of stored top-1 ids must equal
 * the teacher's. Human lines on stdout, JSON lines appended to
 * $BUILD/bench.jsonl.
 *
 * A third teacher has GPT-2 small's shape (L12 H12 C768 T256) and vocabulary
 * size (50,257 ids: a tokenizer trained to that size on all the fortune files),
 * randomly initialised: distill labels README.md (real text the tokenizer has
 * not seen, about 4,300 tokens) at k = 32, giving the bytes stored per
 * position and distill's tokens/s at that scale. */
#include <dirent.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nn/checkpoint.h"
#include "text/corpus.h"
#include "base/err.h"
#include "base/fileio.h"
#include "labels/labels_db.h"
#include "nn/model.h"
#include "base/progress.h"
#include "labels/softlabel.h"
#include "support_fixtures.h"
#include "text/tokenizer.h"
#include "nn/topk.h"
#include "text/window.h"

#define FORTUNE_DIR "/usr/share/games/fortunes"
enum { TARGET_BYTES = 300 * 1000, MAX_FILES = 64, BATCH = 16, K = 32, TRAIN_STEPS = 30 };
#define GPT2_VOCAB 50257
#define GPT2_TEXT "README.md"

static const char *build_dir;
static char tmp[64];

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "bench_distill: %s: %s\n", what, err_message());
    exit(1);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Plain fortune files (no .dat / .u8 indexes), sorted, until TARGET_BYTES. */
static int pick_inputs(char **paths, unsigned char **texts, size_t *lens)
{
    DIR *d = opendir(FORTUNE_DIR);
    if (!d)
        return 0;
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || (l > 4 && !strcmp(e->d_name + l - 4, ".dat")) ||
            (l > 3 && !strcmp(e->d_name + l - 3, ".u8")))
            continue;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int count = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", FORTUNE_DIR, names[i]);
        struct stat st;
        if (total < TARGET_BYTES && count < MAX_FILES && stat(path, &st) == 0 &&
            S_ISREG(st.st_mode) && file_read_all(path, &texts[count], &lens[count]) == 0) {
            paths[count] = strdup(path);
            total += lens[count++];
        }
        free(names[i]);
    }
    return count;
}

typedef struct forward_bench {
    model *m;
    tokenizer *tok;
    int T;
    int32_t *tokens, *pos, *targets, *seq;
    size_t seq_cap;
    packer pk;
    bool training;         /* each batch is a training step, train_steps of them */
    int train_steps;
    double seconds;
    long positions, windows, batches;
    const float *logits;   /* of the last batch */
    int rows;
} forward_bench;

static void run_batch(forward_bench *f)
{
    int rows = packer_rows_used(&f->pk);
    if (rows == 0)
        return;
    double t0 = time_now();
    f->logits = model_forward(f->m, f->tokens, f->pos, rows, f->T);
    if (!f->logits)
        die("forward");
    f->seconds += time_now() - t0;
    f->rows = rows;
    f->batches++;
    if (f->training) {
        long n = 0;
        for (long i = 0; i < (long)rows * f->T; i++)
            n += f->targets[i] >= 0;
        model_loss_cross_entropy(f->m, f->targets, 1.0f / (float)n);
        model_backward(f->m);
        adamw_config cfg = {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                            .weight_decay = 0.0f, .clip = 1.0f};
        model_adamw_step(f->m, &cfg, f->batches);
        f->train_steps--;
    }
    packer_reset(&f->pk, BATCH, f->T, f->tokens, f->pos);
    for (long i = 0; i < (long)BATCH * f->T; i++)
        f->targets[i] = -1;
}

/* The reader side of distill without the labels: same windows, same packing. */
static int forward_record(void *ctx, const corpus_record *rec)
{
    forward_bench *f = ctx;
    if (f->training && f->train_steps == 0)
        return 0;
    if (rec->len + 1 > f->seq_cap) {
        f->seq_cap = rec->len + 1;
        f->seq = realloc(f->seq, f->seq_cap * sizeof *f->seq);
        if (!f->seq)
            die("memory");
    }
    f->seq[0] = tok_eot(f->tok);
    size_t n = 1 + tok_encode(f->tok, rec->data, rec->len, f->seq + 1);
    for (size_t w = 0; w < window_count(n, f->T); w++) {
        size_t start, len;
        window_span(w, n, f->T, &start, &len);
        long at = packer_place(&f->pk, f->seq + start, (int)len);
        if (at < 0) {
            run_batch(f);
            at = packer_place(&f->pk, f->seq + start, (int)len);
        }
        for (size_t i = 0; i + 1 < len; i++)
            f->targets[at + (long)i] = f->seq[start + i + 1];
        f->positions += (long)len - 1;
        f->windows++;
    }
    return 0;
}

static int run_distill(char **inputs, int n_inputs, const char *records, const char *teacher,
                       const char *db, char *json, size_t json_cap)
{
    char out[128];
    snprintf(out, sizeof out, "%s/summary.json", tmp);
    const char *argv[MAX_FILES + 16];
    int a = 0;
    char bin[512];
    snprintf(bin, sizeof bin, "%s/distill", build_dir);
    argv[a++] = bin;
    argv[a++] = "--teacher";
    argv[a++] = teacher;
    argv[a++] = "--db";
    argv[a++] = db;
    argv[a++] = "--records";
    argv[a++] = records;
    argv[a++] = "--quiet";
    argv[a++] = "--json";
    argv[a++] = "--input";
    for (int i = 0; i < n_inputs; i++)
        argv[a++] = inputs[i];
    argv[a] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0)
            _exit(127);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return -1;
    FILE *f = fopen(out, "r");
    if (!f)
        return -1;
    size_t n = fread(json, 1, json_cap - 1, f);
    json[n] = 0;
    fclose(f);
    return 0;
}

static double json_number(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

static double thread_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Top-k kernel alone on the logits of one batch (checked against the
 * reference first). @return microseconds per position. */
static double time_topk(const float *logits, long n, int V)
{
    void *scratch = malloc(topk_scratch_bytes(V));
    int32_t ids[K], want[K];
    float lps[K], want_lp[K];
    topk_stats st, ref;
    for (long i = 0; i < n; i += 97) {
        if (topk_row(logits + i * V, V, K, 0, scratch, ids, lps, &st) < 0 ||
            topk_row_reference(logits + i * V, V, K, 0, want, want_lp, &ref) < 0 ||
            memcmp(ids, want, sizeof ids) != 0) {
            fprintf(stderr, "bench_distill: top-k of position %ld differs from the reference\n", i);
            exit(1);
        }
    }
    /* CPU time of this thread: on a shared machine wall time would also
     * count the time other processes held the core. */
    double t0 = thread_seconds(), sum = 0;
    for (long i = 0; i < n; i++) {
        topk_row(logits + i * V, V, K, 0, scratch, ids, lps, &st);
        sum += st.entropy;
    }
    double us = (thread_seconds() - t0) / (double)n * 1e6;
    free(scratch);
    return sum > 0 ? us : -1;
}

/* Stored top-1 of the first max_rows rows == the teacher's own top-1. */
static void verify_sample(const char *db_path, model *m, int V, int T, size_t max_rows)
{
    labels_db *db = labels_db_open_read(db_path);
    int64_t *ids = NULL;
    size_t n = 0;
    if (!db || labels_db_select_ids(db, NULL, 0, &ids, &n) < 0)
        die(db_path);
    softlabel_codec *codec = softlabel_codec_create();
    int32_t *tokens = malloc((size_t)T * sizeof *tokens), *pos = malloc((size_t)T * sizeof *pos);
    int32_t *got = malloc((size_t)T * K * sizeof *got), want[K];
    float *lps = malloc((size_t)T * K * sizeof *lps), *tails = malloc((size_t)T * sizeof *tails);
    float want_lp[K];
    if (!codec || !tokens || !pos || !got || !lps || !tails)
        die("memory");
    unsigned char *blob = NULL;
    size_t cap = 0, len;
    for (size_t i = 0; i < n && i < max_rows; i++) {
        int n_tokens, n_pos, k;
        if (labels_db_read(db, ids[i], tokens, T, &n_tokens, &blob, &cap, &len) < 0 ||
            softlabel_decode(codec, blob, len, V, T - 1, K, got, lps, tails, &n_pos, &k) < 0)
            die(db_path);
        for (int p = 0; p < n_tokens; p++)
            pos[p] = p;
        const float *logits = model_forward(m, tokens, pos, 1, n_tokens);
        for (int p = 0; p < n_pos; p++) {
            topk_stats st;
            topk_row_reference(logits + (size_t)p * V, V, K, -1, want, want_lp, &st);
            if (got[p * K] != want[0]) {
                fprintf(stderr, "bench_distill: row %lld position %d: top-1 %d, teacher says %d\n",
                        (long long)ids[i], p, got[p * K], want[0]);
                exit(1);
            }
        }
    }
    free(blob);
    free(ids);
    free(tokens);
    free(pos);
    free(got);
    free(lps);
    free(tails);
    softlabel_codec_free(codec);
    labels_db_close(db);
}

typedef struct corpus_files {
    char *paths[MAX_FILES];
    unsigned char *texts[MAX_FILES];
    size_t lens[MAX_FILES];
    int n;
    size_t bytes;
} corpus_files;

/* One teacher preset end to end: a short training run, the teacher written,
 * forward-only over distill's windows and packing, top-k alone, then the
 * distill program; metrics named prefix + what. */
static void bench_teacher(const char *preset, int train_steps, const char *prefix,
                          const corpus_files *in, tokenizer *tok, unsigned char *tok_blob,
                          size_t tok_blob_len)
{
    model_config cfg = {.vocab = tok_vocab_size(tok)};
    model_config_preset(preset, &cfg);
    model *m = model_create(&cfg, BATCH, 0);
    if (!m)
        die("model_create");
    model_init_gpt2(m, 1);
    printf("bench_distill: %d fortune files, %zu bytes, V=%d, %s teacher (%d training steps), "
           "batch %d, k %d, %d threads\n", in->n, in->bytes, cfg.vocab, preset, train_steps, BATCH,
           K, model_threads(m));

    /* A short training run, then the teacher is written. */
    size_t cells = (size_t)BATCH * (size_t)cfg.seq_len;
    forward_bench f = {.m = m, .tok = tok, .T = cfg.seq_len, .training = true,
                       .train_steps = train_steps};
    f.tokens = calloc(cells, sizeof *f.tokens);
    f.pos = calloc(cells, sizeof *f.pos);
    f.targets = malloc(cells * sizeof *f.targets);
    if (!f.tokens || !f.pos || !f.targets)
        die("memory");
    for (size_t i = 0; i < cells; i++)
        f.targets[i] = -1;
    packer_reset(&f.pk, BATCH, f.T, f.tokens, f.pos);
    record_spec spec;
    corpus_parse_mode("fortune", &spec);
    for (int i = 0; i < in->n; i++)
        if (corpus_read(in->paths[i], &spec, forward_record, &f) < 0)
            die(in->paths[i]);
    char teacher[128], db[128];
    snprintf(teacher, sizeof teacher, "%s/teacher-%s.ckpt", tmp, preset);
    snprintf(db, sizeof db, "%s/labels-%s.db", tmp, preset);
    checkpoint ck = {.config = cfg, .tokenizer = tok_blob, .tokenizer_len = tok_blob_len,
                     .params = model_params(m)};
    if (checkpoint_write(teacher, &ck) < 0)
        die(teacher);

    /* Forward only, same windows and packing as distill, on the same kind of
     * model distill runs (forward buffers only). */
    model *teacher_model = model_create_inference(&cfg, BATCH, 0);
    if (!teacher_model)
        die("model_create_inference");
    memcpy(model_params(teacher_model), model_params(m), model_num_params(m) * sizeof(float));
    model_free(m);
    m = f.m = teacher_model;
    f.training = false;
    f.seconds = 0;
    f.positions = f.windows = f.batches = 0;
    packer_reset(&f.pk, BATCH, f.T, f.tokens, f.pos);
    for (int i = 0; i < in->n; i++)
        if (corpus_read(in->paths[i], &spec, forward_record, &f) < 0)
            die(in->paths[i]);
    run_batch(&f);
    double topk_us = time_topk(f.logits, (long)f.rows * f.T, cfg.vocab);

    /* End to end. */
    char json[1024];
    if (run_distill((char **)in->paths, in->n, "fortune", teacher, db, json, sizeof json) < 0) {
        fprintf(stderr, "bench_distill: distill failed\n");
        exit(1);
    }
    double seconds = json_number(json, "seconds"), tokens = json_number(json, "tokens");
    double setup = json_number(json, "setup_seconds"), label = json_number(json, "label_seconds");
    double sequences = json_number(json, "sequences"), bytes = json_number(json, "blob_bytes");
    if (tokens != (double)f.positions || sequences != (double)f.windows) {
        fprintf(stderr, "bench_distill: distill stored %.0f windows / %.0f positions, expected "
                "%ld / %ld\n", sequences, tokens, f.windows, f.positions);
        exit(1);
    }
    verify_sample(db, m, cfg.vocab, cfg.seq_len, 20);

    double fwd = (double)f.positions / f.seconds, e2e = tokens / seconds;
    printf("  %ld windows, %ld positions in %ld batches\n", f.windows, f.positions, f.batches);
    const struct { const char *what; double value; const char *unit; } out[] = {
        {"forward_only_tokens_per_s", fwd, "tokens/s"},
        {"end_to_end_tokens_per_s", e2e, "tokens/s"},
        {"end_to_end_over_forward", e2e / fwd, "ratio (target >= 0.85)"},
        /* Long runs amortise the start-up (teacher load, buffers touched once). */
        {"steady_state_over_forward", tokens / (seconds - setup) / fwd, "ratio"},
        {"label_share", label / (seconds - setup), "of the run after start-up"},
        {"bytes_per_position", bytes / tokens, "bytes"},
        {"topk_us_per_position", topk_us, "us CPU (k=32, one thread)"},
    };
    for (size_t i = 0; i < sizeof out / sizeof *out; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s%s", prefix, out[i].what);
        sfix_bench_emit(name, out[i].value, out[i].unit);
    }
    free(f.tokens);
    free(f.pos);
    free(f.targets);
    free(f.seq);
    model_free(m);
}

/* The GPT-2-small-shaped teacher (see the file comment): its checkpoint is
 * written, distill runs on README.md as one record (windows of 256 tokens),
 * the stored windows are counted against the tokenizer's and the top-1 of
 * two windows checked against the teacher's forward. */
static void bench_gpt2_shape(void)
{
    unsigned char *text;
    size_t text_len;
    if (file_read_all(GPT2_TEXT, &text, &text_len) < 0) {
        printf("bench_distill: no %s (run from the repository root): GPT-2-shaped teacher skipped\n",
               GPT2_TEXT);
        return;
    }
    byte_span fortunes;
    unsigned char *all = sfix_load_fortunes(&fortunes.len);
    fortunes.data = all;
    tokenizer *tok = all ? tok_train(&fortunes, 1, GPT2_VOCAB) : NULL;
    free(all);
    unsigned char *blob;
    size_t blob_len;
    if (!tok || tok_serialize(tok, &blob, &blob_len) < 0)
        die("tokenizer");
    if (tok_vocab_size(tok) != GPT2_VOCAB) {
        printf("bench_distill: the fortune files gave a tokenizer of %d ids, not %d: GPT-2-shaped teacher "
               "skipped\n", tok_vocab_size(tok), GPT2_VOCAB);
        free(blob);
        free(text);
        tok_free(tok);
        return;
    }
    model_config cfg = {.vocab = GPT2_VOCAB, .layers = 12, .heads = 12, .channels = 768, .seq_len = 256};
    model *m = model_create_inference(&cfg, 1, 0);
    if (!m)
        die("model_create_inference");
    model_init_gpt2(m, 1);
    char teacher[128], db[128];
    snprintf(teacher, sizeof teacher, "%s/teacher-gpt2.ckpt", tmp);
    snprintf(db, sizeof db, "%s/labels-gpt2.db", tmp);
    checkpoint ck = {.config = cfg, .tokenizer = blob, .tokenizer_len = blob_len, .params = model_params(m)};
    if (checkpoint_write(teacher, &ck) < 0)
        die(teacher);
    int32_t *seq = malloc((text_len + 1) * sizeof *seq);
    if (!seq)
        die("memory");
    seq[0] = tok_eot(tok);
    size_t n = 1 + tok_encode(tok, text, text_len, seq + 1);
    long windows = 0, positions = 0;
    for (size_t w = 0; w < window_count(n, cfg.seq_len); w++) {
        size_t start, len;
        window_span(w, n, cfg.seq_len, &start, &len);
        windows++;
        positions += (long)len - 1;
    }
    printf("bench_distill: GPT-2-small-shaped teacher (L12 H12 C768 T256, V=%d, %zu parameters, random "
           "init), %s: %zu bytes, %ld windows, %ld positions, k %d\n", GPT2_VOCAB, model_num_params(m),
           GPT2_TEXT, text_len, windows, positions, K);

    char json[1024], *input = GPT2_TEXT;
    if (run_distill(&input, 1, "file", teacher, db, json, sizeof json) < 0) {
        fprintf(stderr, "bench_distill: distill failed on the GPT-2-shaped teacher\n");
        exit(1);
    }
    double seconds = json_number(json, "seconds"), tokens = json_number(json, "tokens");
    double setup = json_number(json, "setup_seconds"), bytes = json_number(json, "blob_bytes");
    if (tokens != (double)positions || json_number(json, "sequences") != (double)windows) {
        fprintf(stderr, "bench_distill: distill stored %.0f positions, expected %ld\n", tokens, positions);
        exit(1);
    }
    verify_sample(db, m, cfg.vocab, cfg.seq_len, 2);
    sfix_bench_emit("distill_gpt2_bytes_per_position_k32", bytes / tokens, "bytes");
    sfix_bench_emit("distill_gpt2_tokens_per_s", tokens / seconds, "tokens/s");
    sfix_bench_emit("distill_gpt2_tokens_per_s_after_startup", tokens / (seconds - setup), "tokens/s");
    free(seq);
    free(text);
    free(blob);
    tok_free(tok);
    model_free(m);
}

int main(void)
{
    build_dir = getenv("BUILD") && *getenv("BUILD") ? getenv("BUILD") : "build";
    corpus_files in = {.n = 0};
    in.n = pick_inputs(in.paths, in.texts, in.lens);
    if (in.n == 0) {
        printf("bench_distill: no fortune files in %s, skipped\n", FORTUNE_DIR);
        return 0;
    }
    snprintf(tmp, sizeof tmp, "/tmp/w2s_bench_distill_XXXXXX");
    if (!mkdtemp(tmp))
        return 1;
    byte_span spans[MAX_FILES];
    for (int i = 0; i < in.n; i++) {
        spans[i] = (byte_span){in.texts[i], in.lens[i]};
        in.bytes += in.lens[i];
    }
    tokenizer *tok = tok_train(spans, (size_t)in.n, 4096);
    unsigned char *blob;
    size_t blob_len;
    if (!tok || tok_serialize(tok, &blob, &blob_len) < 0)
        die("tokenizer");
    /* tiny is the case and the worst one: its forward is cheapest
     * against the labeling work per position, which does not depend on the
     * teacher's size; small shows how the ratio grows with the teacher. */
    bench_teacher("tiny", TRAIN_STEPS, "distill_", &in, tok, blob, blob_len);
    bench_teacher("small", TRAIN_STEPS / 3, "distill_small_", &in, tok, blob, blob_len);
    bench_gpt2_shape();

    /* BENCH_KEEP=1 keeps the fixture (teachers, databases) for profiling. */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (getenv("BENCH_KEEP"))
        printf("  fixture kept in %s\n", tmp);
    else if (system(cmd) != 0)
        return 1;
    for (int i = 0; i < in.n; i++) {
        free(in.paths[i]);
        free(in.texts[i]);
    }
    free(blob);
    tok_free(tok);
    return 0;
}
