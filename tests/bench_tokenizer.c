/* Benchmark of the BPE tokenizer against the issue-4 targets: training a
 * 4096 vocabulary on ~5 MB of English (the fortune files concatenated
 * repeatedly, or generated English-like text) in under 20 s; encoding at
 * 10 MB/s or more on one core; and linear cost in the record length, shown by
 * encoding 1 MB and 10 MB single-line records (English with newlines turned
 * into spaces, a run of random letters, a run of spaces) and comparing the
 * best of three times. Then GPT-2's tokenizer (tests/data/gpt2, run from the
 * repository root): encoding its golden text (many scripts, code, emoji)
 * repeated to 5 MB, first pass and warm.
 * Every result is verified (exact round trip) before it is timed. Appends JSON
 * lines to $BUILD/bench.jsonl. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/progress.h"
#include "base/rng.h"
#include "base/fileio.h"
#include "text/tok_gpt2.h"
#include "support_fixtures.h"
#include "support_tok.h"

#define TRAIN_BYTES (5u << 20)
#define MB (1u << 20)

/* English-like filler from a small word list (when no fortune files exist). */
static unsigned char *generate_english(size_t want, size_t *len)
{
    static const char *words[] = {
        "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with",
        "be", "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which",
        "people", "time", "computer", "program", "language", "system", "question", "answer",
        "wisdom", "fortune", "always", "never", "something", "government", "remember", "life"};
    rng_state rng;
    rng_seed(&rng, 1);
    unsigned char *t = malloc(want + 32);
    if (!t)
        return NULL;
    size_t n = 0;
    while (n < want) {
        const char *w = words[rng_below(&rng, sizeof words / sizeof *words)];
        memcpy(t + n, w, strlen(w));
        n += strlen(w);
        t[n++] = rng_below(&rng, 10) ? ' ' : (rng_below(&rng, 2) ? '\n' : '.');
    }
    *len = n;
    return t;
}

/* Fills out[0..len) by repeating src. */
static void repeat_into(unsigned char *out, size_t len, const unsigned char *src, size_t src_len)
{
    for (size_t pos = 0; pos < len; pos += src_len)
        memcpy(out + pos, src, len - pos < src_len ? len - pos : src_len);
}

/* Encodes text, checks the exact round trip, and returns the best of reps
 * timed runs in seconds (*n_tokens receives the token count). */
static double time_encode(tokenizer *t, const unsigned char *text, size_t len, int32_t *ids, int reps,
                          size_t *n_tokens)
{
    size_t n;
    if (stok_roundtrip(t, text, len, ids, &n) < 0) {
        fprintf(stderr, "bench_tokenizer: round trip FAILED (%zu bytes)\n", len);
        exit(1);
    }
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = time_now();
        size_t m = tok_encode(t, text, len, ids);
        double dt = time_now() - t0;
        if (m != n) {
            fprintf(stderr, "bench_tokenizer: encoding is not repeatable\n");
            exit(1);
        }
        best = dt < best ? dt : best;
    }
    *n_tokens = n;
    return best;
}

int main(void)
{

    size_t src_len;
    unsigned char *src = sfix_load_fortunes(&src_len);
    const char *source = "fortune files";
    if (!src || src_len < MB) {
        free(src);
        src = generate_english(2 * MB, &src_len);
        source = "generated English-like text";
    }
    unsigned char *text = malloc(10 * MB);
    int32_t *ids = malloc(10 * MB * sizeof *ids);
    if (!src || !text || !ids) {
        fprintf(stderr, "bench_tokenizer: out of memory\n");
        return 1;
    }

    /* Training. */
    repeat_into(text, TRAIN_BYTES, src, src_len);
    byte_span span = {text, TRAIN_BYTES};
    double t0 = time_now();
    tokenizer *t = tok_train(&span, 1, TOK_DEFAULT_VOCAB);
    double train_s = time_now() - t0;
    if (!t || tok_vocab_size(t) != TOK_DEFAULT_VOCAB) {
        fprintf(stderr, "bench_tokenizer: training failed: %s\n", t ? "vocab too small" : err_message());
        return 1;
    }
    printf("train: vocab %d from %.1f MB of %s in %.2f s (target < 20 s: %.1fx under)\n",
           tok_vocab_size(t), TRAIN_BYTES / (double)MB, source, train_s, 20.0 / train_s);
    sfix_bench_record("tokenizer_train_4096_5MB", train_s, "s");

    /* Throughput on ordinary text (5 MB): cold cache first, then warm. */
    tokenizer *cold = NULL;
    {
        unsigned char *blob;
        size_t blen;
        if (tok_serialize(t, &blob, &blen) == 0) {
            cold = tok_deserialize(blob, blen);
            free(blob);
        }
        if (!cold) {
            fprintf(stderr, "bench_tokenizer: %s\n", err_message());
            return 1;
        }
    }
    double c0 = time_now();
    size_t n_cold = tok_encode(cold, text, TRAIN_BYTES, ids);
    double cold_s = time_now() - c0;
    tok_free(cold);
    size_t n_tok;
    double enc_s = time_encode(t, text, TRAIN_BYTES, ids, 3, &n_tok);
    if (n_tok != n_cold) {
        fprintf(stderr, "bench_tokenizer: cold and warm cache disagree\n");
        return 1;
    }
    double mbps = TRAIN_BYTES / (double)MB / enc_s, cold_mbps = TRAIN_BYTES / (double)MB / cold_s;
    printf("encode: %.1f MB/s warm, %.1f MB/s first pass (target >= 10 MB/s: %.1fx), %.3f tokens/byte\n",
           mbps, cold_mbps, cold_mbps / 10.0, (double)n_tok / TRAIN_BYTES);
    sfix_bench_record("tokenizer_encode_warm", mbps, "MB/s");
    sfix_bench_record("tokenizer_encode_first_pass", cold_mbps, "MB/s");
    sfix_bench_record("tokenizer_tokens_per_byte", (double)n_tok / TRAIN_BYTES, "tokens/byte");

    /* Single-line records of 1 MB and 10 MB: time per MB must not grow. */
    const char *kinds[] = {"english_one_line", "random_letters", "spaces"};
    rng_state rng;
    rng_seed(&rng, 2);
    for (int k = 0; k < 3; k++) {
        if (k == 0) {
            /* Ten copies of one 1 MB line, so that 1 MB and 10 MB have the same
             * word statistics and the cache helps both alike. */
            repeat_into(text, MB, src, src_len);
            for (size_t i = 0; i < MB; i++)
                text[i] = text[i] == '\n' ? ' ' : text[i];
            repeat_into(text + MB, 9 * MB, text, MB);
        } else if (k == 1) {
            for (size_t i = 0; i < 10 * MB; i++)
                text[i] = (unsigned char)('a' + rng_below(&rng, 26));
        } else {
            memset(text, ' ', 10 * MB);
        }
        size_t n1, n10;
        double s1 = time_encode(t, text, MB, ids, 3, &n1);
        double s10 = time_encode(t, text, 10 * MB, ids, 3, &n10);
        double ratio = s10 / s1;
        printf("one line %-16s 1 MB %.3f s, 10 MB %.3f s (%.1f MB/s): 10 MB / 1 MB time = %.1f (linear = 10)\n",
               kinds[k], s1, s10, 10.0 / s10, ratio);
        char name[96];
        snprintf(name, sizeof name, "tokenizer_10MB_line_%s", kinds[k]);
        sfix_bench_record(name, s10, "s");
        snprintf(name, sizeof name, "tokenizer_10MB_vs_1MB_time_ratio_%s", kinds[k]);
        sfix_bench_record(name, ratio, "x");
    }

    tok_free(t);

    /* GPT-2: its regex pre-split and BPE by rank on the golden text. */
    double l0 = time_now();
    tokenizer *gpt2 = tok_gpt2_load("tests/data/gpt2/encoder.json", "tests/data/gpt2/vocab.bpe");
    double load_s = time_now() - l0;
    unsigned char *golden;
    size_t golden_len;
    if (!gpt2 || file_read_all("tests/data/gpt2/golden.txt", &golden, &golden_len) < 0) {
        fprintf(stderr, "bench_tokenizer: %s\n", err_message());
        return 1;
    }
    repeat_into(text, TRAIN_BYTES, golden, golden_len);
    double g0 = time_now();
    size_t n_first = tok_encode(gpt2, text, TRAIN_BYTES, ids);
    double first_s = time_now() - g0;
    double warm_s = time_encode(gpt2, text, TRAIN_BYTES, ids, 3, &n_tok);
    if (n_tok != n_first) {
        fprintf(stderr, "bench_tokenizer: GPT-2 first and warm passes disagree\n");
        return 1;
    }
    double g_first = TRAIN_BYTES / (double)MB / first_s, g_warm = TRAIN_BYTES / (double)MB / warm_s;
    printf("gpt2: load %.2f s; encode %.1f MB/s warm, %.1f MB/s first pass on the golden text, "
           "%.3f tokens/byte\n", load_s, g_warm, g_first, (double)n_tok / TRAIN_BYTES);
    sfix_bench_record("tokenizer_gpt2_load", load_s, "s");
    sfix_bench_record("tokenizer_gpt2_encode_warm", g_warm, "MB/s");
    sfix_bench_record("tokenizer_gpt2_encode_first_pass", g_first, "MB/s");
    tok_free(gpt2);
    free(golden);
    free(src);
    free(text);
    free(ids);
    return 0;
}
