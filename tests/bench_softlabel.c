/* Benchmark of the soft-label codec at k = 32, on two kinds of teacher
 * distributions:
 *
 * - synthetic ones shaped like a calibration's (top-1 mean ~0.49, top-32
 *   tail mean ~0.01): logits from a shuffled Zipf prior over a 4096
 *   vocabulary, a handful of context tokens boosted per position, Gaussian
 *   noise on all; the same over Qwen's 152,064 ids (codec version 4), on
 *   fewer positions;
 * - real ones: `tiny` teachers (L2 H4 C128 T128) trained by build/train on
 *   half of the fortune files (/usr/share/games/fortunes), run forward on
 *   windows of the other half, the exact top-k taken by topk_row. One
 *   byte-level teacher (vocab 258, peaked distributions) and one with a
 *   1024-token BPE vocabulary (flat ones: the hard case). The teachers are
 *   trained once (about a minute each) and kept in $BUILD/bench_fixture;
 *   SOFTLABEL_BENCH_TEACHERS="A.ckpt B.ckpt" uses given checkpoints instead.
 *
 * Reports bytes per position, the mean KL(exact top-k + tail || decoded
 * top-k + tail) in nats, and encode/decode throughput (positions/s). The
 * round trip is verified (ids exact, log-probs of ranks >= 1 within the
 * documented bound) before anything is timed. Target: at most 40
 * bytes per position at a mean KL of at most 1e-4 nats on real text. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nn/checkpoint.h"
#include "text/corpus.h"
#include "base/err.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "nn/model.h"
#include "base/progress.h"
#include "base/rng.h"
#include "labels/softlabel.h"
#include "support_fixtures.h"
#include "text/tokenizer.h"
#include "nn/topk.h"
#include "text/window.h"

#define K 32
#define SYN_VOCAB 4096
#define SEQ_POS 127                 /* positions per synthetic blob: a T = 128 window */
#define N_SEQ 400                   /* 50,800 synthetic positions */
#define WIDE_VOCAB 152064           /* Qwen's: beyond 16-bit ids */
#define WIDE_SEQ 20                 /* 2,540 positions: a logit per id to draw at each */
#define FORTUNE_DIR "/usr/share/games/fortunes"
#define REAL_POSITIONS 60000        /* real positions labeled per teacher */
#define MAX_FILES 64
#define FORWARD_ROWS 16

/* Blobs of one dataset: blob s holds positions start[s] .. start[s + 1). */
typedef struct dataset {
    int vocab, n_seq, seq_cap;
    size_t *start;                  /* n_seq + 1 */
    int32_t *ids;                   /* (start[n_seq], K) */
    float *logprobs;
    size_t pos_cap;
} dataset;

static int dataset_add(dataset *d, int n_pos, const int32_t *ids, const float *lp)
{
    size_t at = d->n_seq ? d->start[d->n_seq] : 0;
    if (d->n_seq + 2 > d->seq_cap) {
        d->seq_cap = 2 * d->seq_cap + 64;
        d->start = realloc(d->start, (size_t)d->seq_cap * sizeof *d->start);
        if (!d->start)
            return err_set("bench: out of memory");
    }
    if (mem_reserve((void **)&d->ids, &d->pos_cap, (at + (size_t)n_pos) * K, sizeof *d->ids, "ids") < 0)
        return -1;
    size_t cap = d->pos_cap;
    float *l = realloc(d->logprobs, cap * sizeof *l);
    if (!l)
        return err_set("bench: out of memory");
    d->logprobs = l;
    memcpy(d->ids + at * K, ids, (size_t)n_pos * K * sizeof *ids);
    memcpy(d->logprobs + at * K, lp, (size_t)n_pos * K * sizeof *lp);
    d->start[d->n_seq] = at;
    d->start[++d->n_seq] = at + (size_t)n_pos;
    return 0;
}

static void dataset_free(dataset *d)
{
    free(d->start);
    free(d->ids);
    free(d->logprobs);
}

/* One position's top-K of softmax(logits) into ids/lp, rank order. */
static void top_k(const float *logits, int vocab, int32_t *ids, float *lp)
{
    double max = logits[0], sum = 0.0;
    for (int v = 1; v < vocab; v++)
        max = logits[v] > max ? logits[v] : max;
    for (int v = 0; v < vocab; v++)
        sum += exp(logits[v] - max);
    double lse = max + log(sum);
    int n = 0;
    for (int v = 0; v < vocab; v++) {
        float x = logits[v];
        if (n == K && x <= logits[ids[K - 1]])
            continue;
        int at = n < K ? n++ : K - 1;
        while (at > 0 && logits[ids[at - 1]] < x) {
            ids[at] = ids[at - 1];
            at--;
        }
        ids[at] = v;
    }
    for (int r = 0; r < K; r++)
        lp[r] = (float)(logits[ids[r]] - lse);
}

static int make_synthetic(dataset *d, uint64_t seed, int vocab, int n_seq)
{
    float *prior = mem_alloc((size_t)vocab * sizeof *prior, "bench prior");
    float *logits = mem_alloc((size_t)vocab * sizeof *logits, "bench logits");
    uint32_t *perm = mem_alloc((size_t)vocab * sizeof *perm, "bench permutation");
    int32_t *ids = mem_alloc(SEQ_POS * K * sizeof *ids, "bench ids");
    float *lp = mem_alloc(SEQ_POS * K * sizeof *lp, "bench logprobs");
    if (!prior || !logits || !perm || !ids || !lp)
        return -1;
    d->vocab = vocab;
    rng_state rng;
    rng_seed(&rng, seed);
    sfix_zipf_prior(&rng, (uint32_t)vocab, perm, prior);
    for (int s = 0; s < n_seq; s++) {
        for (int i = 0; i < SEQ_POS; i++) {
            for (int v = 0; v < vocab; v++)
                logits[v] = prior[v] + 0.6f * rng_normal(&rng);
            /* Context: a few plausible continuations, drawn Zipf-like. */
            int n_ctx = 1 + (int)rng_below(&rng, 8);
            for (int j = 0; j < n_ctx; j++) {
                uint32_t r = (uint32_t)((float)vocab * powf(rng_uniform(&rng), 3.0f));
                logits[perm[r]] += 2.5f + 2.0f * rng_normal(&rng) - 0.6f * (float)j;
            }
            for (int v = 0; v < vocab; v++)
                logits[v] *= 1.6f;
            top_k(logits, vocab, ids + i * K, lp + i * K);
        }
        if (dataset_add(d, SEQ_POS, ids, lp) < 0)
            return -1;
    }
    free(prior);
    free(logits);
    free(perm);
    free(ids);
    free(lp);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The plain fortune files (no .dat / .u8 indexes), sorted; even-numbered
 * ones for training (part 0), odd-numbered ones for labeling (part 1).
 * @return their count. */
static int fortune_files(int part, char **paths)
{
    DIR *dir = opendir(FORTUNE_DIR);
    if (!dir)
        return 0;
    char *names[256];
    int n = 0, count = 0;
    struct dirent *e;
    while ((e = readdir(dir)) && n < 256) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || (l > 4 && !strcmp(e->d_name + l - 4, ".dat")) ||
            (l > 3 && !strcmp(e->d_name + l - 3, ".u8")))
            continue;
        names[n++] = strdup(e->d_name);
    }
    closedir(dir);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        char path[512];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", FORTUNE_DIR, names[i]);
        if (i % 2 == part && count < MAX_FILES && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            paths[count++] = strdup(path);
        free(names[i]);
    }
    return count;
}

/* Trains a tiny teacher of the given vocabulary on the training half of the
 * fortune files with build/train, unless out exists. @return 0, or -1. */
static int train_teacher(const char *build, const char *out, int vocab, int steps)
{
    if (file_exists(out))
        return 0;
    char *files[MAX_FILES];
    int n = fortune_files(0, files);
    if (n == 0)
        return err_set("%s: no fortune files", FORTUNE_DIR);
    char bin[512], vocab_s[16], steps_s[16];
    snprintf(bin, sizeof bin, "%s/train", build);
    snprintf(vocab_s, sizeof vocab_s, "%d", vocab);
    snprintf(steps_s, sizeof steps_s, "%d", steps);
    const char *argv[MAX_FILES + 32];
    int a = 0;
    const char *fixed[] = {bin, "--out", out, "--records", "fortune", "--vocab", vocab_s, "--preset",
                           "tiny", "--steps", steps_s, "--batch", "32", "--lr", "4e-3", "--seed", "1",
                           "--checkpoint-every", "0", "--quiet", "--gt"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        argv[a++] = fixed[i];
    for (int i = 0; i < n; i++)
        argv[a++] = files[i];
    argv[a] = NULL;
    printf("training a tiny teacher, vocab %d, %d steps, into %s\n", vocab, steps, out);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int status;
    int ok = pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    for (int i = 0; i < n; i++)
        free(files[i]);
    char resume[600];
    snprintf(resume, sizeof resume, "%s.resume", out);
    remove(resume);
    return ok ? 0 : err_set("%s failed", bin);
}

/* The teacher's forward over the labeling half of the fortune files: one
 * window per row, each window's exact top-K into the dataset. */
typedef struct labeler {
    model *m;
    tokenizer *tok;
    int T, V, rows;
    int32_t *tokens, *pos, *seq;
    int lens[FORWARD_ROWS];
    size_t seq_cap;
    void *scratch;
    int32_t *ids;
    float *lp;
    dataset *d;
} labeler;

static int labeler_flush(labeler *l)
{
    if (l->rows == 0)
        return 0;
    const float *logits = model_forward(l->m, l->tokens, l->pos, l->rows, l->T);
    if (!logits)
        return -1;
    for (int r = 0; r < l->rows; r++) {
        int n_pos = l->lens[r] - 1;
        for (int p = 0; p < n_pos; p++) {
            topk_stats st;
            TRY(topk_row(logits + ((size_t)r * l->T + p) * l->V, l->V, K, -1, l->scratch,
                         l->ids + p * K, l->lp + p * K, &st));
        }
        TRY(dataset_add(l->d, n_pos, l->ids, l->lp));
    }
    l->rows = 0;
    return 0;
}

static int label_record(void *ctx, const corpus_record *rec)
{
    labeler *l = ctx;
    if (l->d->n_seq && l->d->start[l->d->n_seq] >= REAL_POSITIONS)
        return 0;
    TRY(mem_reserve((void **)&l->seq, &l->seq_cap, rec->len + 1, sizeof *l->seq, "tokens"));
    l->seq[0] = tok_eot(l->tok);
    size_t n = 1 + tok_encode(l->tok, rec->data, rec->len, l->seq + 1);
    for (size_t w = 0; w < window_count(n, l->T); w++) {
        size_t start, len;
        window_span(w, n, l->T, &start, &len);
        int32_t *row = l->tokens + (size_t)l->rows * l->T, *pos = l->pos + (size_t)l->rows * l->T;
        for (int i = 0; i < l->T; i++) {
            row[i] = i < (int)len ? l->seq[start + i] : 0;
            pos[i] = i < (int)len ? i : 0;
        }
        l->lens[l->rows++] = (int)len;
        if (l->rows == FORWARD_ROWS)
            TRY(labeler_flush(l));
    }
    return 0;
}

static int make_real(dataset *d, const char *ckpt)
{
    checkpoint ck;
    TRY(checkpoint_read(ckpt, &ck));
    labeler l = {.T = ck.config.seq_len, .V = ck.config.vocab, .d = d};
    int rc = -1;
    char *files[MAX_FILES];
    int n_files = fortune_files(1, files);
    d->vocab = l.V;
    l.tok = tok_deserialize(ck.tokenizer, ck.tokenizer_len);
    l.m = model_create_inference(&ck.config, FORWARD_ROWS, 0);
    l.tokens = mem_alloc((size_t)FORWARD_ROWS * l.T * sizeof *l.tokens, "tokens");
    l.pos = mem_alloc((size_t)FORWARD_ROWS * l.T * sizeof *l.pos, "positions");
    l.scratch = mem_alloc(topk_scratch_bytes(l.V), "top-k scratch");
    l.ids = mem_alloc((size_t)l.T * K * sizeof *l.ids, "ids");
    l.lp = mem_alloc((size_t)l.T * K * sizeof *l.lp, "log-probs");
    if (!l.tok || !l.m || !l.tokens || !l.pos || !l.scratch || !l.ids || !l.lp)
        goto done;
    memcpy(model_params(l.m), ck.params, model_num_params(l.m) * sizeof(float));
    record_spec spec;
    corpus_parse_mode("fortune", &spec);
    for (int i = 0; i < n_files; i++)
        if (corpus_read(files[i], &spec, label_record, &l) < 0)
            goto done;
    rc = labeler_flush(&l);
done:
    for (int i = 0; i < n_files; i++)
        free(files[i]);
    free(l.tokens);
    free(l.pos);
    free(l.scratch);
    free(l.ids);
    free(l.lp);
    free(l.seq);
    model_free(l.m);
    tok_free(l.tok);
    checkpoint_free(&ck);
    return rc;
}

/* KL(exact || decoded) over the top-K entries plus the tail bucket. */
static double kl_position(const float *lp, const float *dlp, float dtail)
{
    double kl = 0.0, sum = 0.0;
    for (int r = 0; r < K; r++) {
        double q = exp((double)lp[r]);
        sum += q;
        kl += q * ((double)lp[r] - (double)dlp[r]);
    }
    double tail = 1.0 - sum;
    if (tail > 0)
        kl += tail * log(tail / (double)dtail);
    return kl;
}

static void emit(const char *prefix, const char *bench, double value, const char *unit)
{
    char name[128];
    snprintf(name, sizeof name, "softlabel_%s%s", prefix, bench);
    sfix_bench_emit(name, value, unit);
}

/* Encodes every blob of d, verifies the round trip, reports size, KL and
 * speed under names softlabel_<prefix>... @return 0, or -1. */
static int measure(softlabel_codec *c, const dataset *d, const char *what, const char *prefix)
{
    size_t n = d->start[d->n_seq];
    double top1 = 0.0, tailsum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int r = 0; r < K; r++)
            s += exp((double)d->logprobs[i * K + r]);
        top1 += exp((double)d->logprobs[i * K]);
        tailsum += 1.0 - s;
    }
    printf("%s: vocab %d, %zu positions in %d blobs, top-1 mean %.3f, tail mean %.4f\n", what,
           d->vocab, n, d->n_seq, top1 / n, tailsum / n);

    int rc = -1, max_pos = 0;
    for (int s = 0; s < d->n_seq; s++)
        max_pos = (int)(d->start[s + 1] - d->start[s]) > max_pos ? (int)(d->start[s + 1] - d->start[s])
                                                                 : max_pos;
    unsigned char **blobs = mem_calloc((size_t)d->n_seq, sizeof *blobs, "blobs");
    size_t *caps = mem_calloc((size_t)d->n_seq, sizeof *caps, "blob sizes");
    size_t *lens = mem_calloc((size_t)d->n_seq, sizeof *lens, "blob sizes");
    int32_t *ids = mem_alloc((size_t)max_pos * K * sizeof *ids, "decoded ids");
    float *lp = mem_alloc((size_t)max_pos * K * sizeof *lp, "decoded logprobs");
    float *tail = mem_alloc((size_t)max_pos * sizeof *tail, "decoded tail");
    if (!blobs || !caps || !lens || !ids || !lp || !tail)
        goto done;

    double t0 = time_now();
    size_t bytes = 0;
    for (int s = 0; s < d->n_seq; s++) {
        size_t at = d->start[s];
        if (softlabel_encode(c, d->ids + at * K, d->logprobs + at * K, (int)(d->start[s + 1] - at), K,
                             d->vocab, &blobs[s], &caps[s], &lens[s]) < 0)
            goto done;
        bytes += lens[s];
    }
    double t_enc = time_now() - t0;

    /* Verify before timing the decoder. */
    double kl = 0.0, kl_max = 0.0;
    for (int s = 0; s < d->n_seq; s++) {
        int np, kk, want_np = (int)(d->start[s + 1] - d->start[s]);
        if (softlabel_decode(c, blobs[s], lens[s], d->vocab, max_pos, K, ids, lp, tail, &np, &kk) < 0)
            goto done;
        const int32_t *want_ids = d->ids + d->start[s] * K;
        const float *want_lp = d->logprobs + d->start[s] * K;
        if (np != want_np || kk != K || memcmp(ids, want_ids, (size_t)np * K * sizeof *ids) != 0) {
            err_set("ids differ after the round trip (blob %d)", s);
            goto done;
        }
        for (int i = 0; i < np * K; i++) {
            if (i % K && fabs(lp[i] - want_lp[i]) > softlabel_error_bound(want_lp[i])) {
                err_set("log-prob %g decoded as %g (blob %d entry %d)", (double)want_lp[i],
                        (double)lp[i], s, i);
                goto done;
            }
        }
        for (int i = 0; i < np; i++) {
            double x = kl_position(want_lp + i * K, lp + i * K, tail[i]);
            kl += x;
            kl_max = x > kl_max ? x : kl_max;
        }
    }
    int reps = 5;
    t0 = time_now();
    for (int rep = 0; rep < reps; rep++) {
        for (int s = 0; s < d->n_seq; s++) {
            int np, kk;
            if (softlabel_decode(c, blobs[s], lens[s], d->vocab, max_pos, K, ids, lp, tail, &np, &kk) < 0)
                goto done;
        }
    }
    double t_dec = time_now() - t0;

    emit(prefix, "bytes_per_position_k32", (double)bytes / n, "bytes");
    emit(prefix, "mean_kl_k32", kl / n, "nats");
    emit(prefix, "max_kl_k32", kl_max, "nats");
    emit(prefix, "encode_positions_per_s", n / t_enc, "positions/s");
    emit(prefix, "decode_positions_per_s", reps * n / t_dec, "positions/s");
    rc = 0;
done:
    for (int s = 0; blobs && s < d->n_seq; s++)
        free(blobs[s]);
    free(blobs);
    free(caps);
    free(lens);
    free(ids);
    free(lp);
    free(tail);
    return rc;
}

/* Real teachers: those named by SOFTLABEL_BENCH_TEACHERS, else the byte-level
 * and the 1024-token teachers of $BUILD/bench_fixture (trained when absent). */
static int bench_real(softlabel_codec *c)
{
    const char *build = getenv("BUILD") && *getenv("BUILD") ? getenv("BUILD") : "build";
    char paths[2][512];
    const char *names[2] = {"real_v258_", "real_v1024_"};
    int n = 0;
    const char *given = getenv("SOFTLABEL_BENCH_TEACHERS");
    if (given && *given) {
        char copy[1100];
        snprintf(copy, sizeof copy, "%s", given);
        for (char *save, *t = strtok_r(copy, " ", &save); t && n < 2; t = strtok_r(NULL, " ", &save))
            snprintf(paths[n++], sizeof paths[0], "%s", t);
        names[0] = "real_a_";
        names[1] = "real_b_";
    } else {
        char *probe[MAX_FILES];
        int files = fortune_files(1, probe);
        for (int i = 0; i < files; i++)
            free(probe[i]);
        if (files == 0) {
            printf("no fortune files in %s: real-teacher benchmark skipped\n", FORTUNE_DIR);
            return 0;
        }
        char dir[512];
        snprintf(dir, sizeof dir, "%s/bench_fixture", build);
        mkdir(dir, 0755);
        snprintf(paths[0], sizeof paths[0], "%s/teacher_v258.ckpt", dir);
        snprintf(paths[1], sizeof paths[1], "%s/teacher_v1024.ckpt", dir);
        TRY(train_teacher(build, paths[0], 258, 300));
        TRY(train_teacher(build, paths[1], 1024, 300));
        n = 2;
    }
    for (int i = 0; i < n; i++) {
        dataset d = {0};
        int rc = make_real(&d, paths[i]);
        if (rc == 0)
            rc = measure(c, &d, paths[i], names[i]);
        dataset_free(&d);
        TRY(rc);
    }
    return 0;
}

int main(void)
{
    dataset d = {0}, wide = {0};
    softlabel_codec *c = softlabel_codec_create();
    if (!c || make_synthetic(&d, 42, SYN_VOCAB, N_SEQ) < 0 || measure(c, &d, "synthetic", "") < 0 ||
        make_synthetic(&wide, 43, WIDE_VOCAB, WIDE_SEQ) < 0 ||
        measure(c, &wide, "synthetic, Qwen-sized vocabulary (codec version 4)", "synthetic_v152064_") < 0 ||
        bench_real(c) < 0) {
        fprintf(stderr, "bench_softlabel: %s\n", err_message());
        return 1;
    }
    dataset_free(&d);
    dataset_free(&wide);
    softlabel_codec_free(c);
    return 0;
}
