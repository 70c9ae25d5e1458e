/* Tests of the bfloat16 products (common/nn/matmul_bf16.h) and of the model
 * under MODEL_BF16 against its fp32 reference: the rounding, each product
 * shape against a double reference, the whole model's logits and gradients,
 * determinism for a fixed thread count, and the KL divergence between a
 * small trained teacher's fp32 and bfloat16 distributions. Every test is
 * skipped, with oneDNN's reason, where oneDNN cannot run bfloat16.
 *
 * Tolerances. bfloat16 keeps 8 significant bits: rounding an operand costs
 * a relative error of at most 2^-8 ~ 4e-3, and a product of two rounded
 * operands up to 2^-7 ~ 8e-3 per term, averaging down over a sum of
 * K random-signed terms. Against a double reference of the ROUNDED operands
 * a product is off only by fp32 accumulation (~K 2^-24 of the sum of
 * |terms|): 1e-5 of that sum is allowed. Against the unrounded operands the
 * error is at most 2^-7 of the sum of |terms|: 2e-2 allowed. Through the
 * model (two layers, each product's input rounded again) the relative L2
 * error of logits and gradients measures 0.8% and 1.2%; 6e-2 is allowed,
 * while a wrong term or a missing accumulation is O(1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/rng.h"
#include "labels/softlabel.h"
#include "nn/matmul_bf16.h"
#include "nn/model.h"
#include "nn/topk.h"
#include "support_fixtures.h"

/* Skips the calling test where oneDNN has no bfloat16 here. */
static void require_bf16(void)
{
    if (!matmul_bf16_available()) {
        print_message("skipped: %s\n", err_message());
        skip();
    }
}

static void fill(float *x, long n, rng_state *rng, float scale)
{
    for (long i = 0; i < n; i++)
        x[i] = scale * rng_normal(rng);
}

static void test_rounding(void **state)
{
    (void)state;
    /* 1 + 2^-8 is halfway between bfloat16 1 and 1 + 2^-7: to even (1);
     * 1 + 3 * 2^-8 halfway between 1 + 2^-7 and 1 + 2^-6: to even (1 + 2^-6). */
    float in[6] = {1.0f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -2.5f, INFINITY, NAN};
    float want[5] = {1.0f, 1.0f, 1.0f + 0x1p-6f, -2.5f, INFINITY};
    uint16_t b[6];
    float back[6];
    matmul_bf16_from_f32(b, in, 6);
    matmul_bf16_to_f32(back, b, 6);
    assert_memory_equal(back, want, sizeof want);
    assert_true(isnan(back[5]));
    /* every value: relative error at most half an ulp, 2^-8 */
    rng_state rng;
    rng_seed(&rng, 3);
    float x[1000], y[1000];
    uint16_t xb[1000];
    fill(x, 1000, &rng, 100.0f);
    matmul_bf16_from_f32(xb, x, 1000);
    matmul_bf16_to_f32(y, xb, 1000);
    for (int i = 0; i < 1000; i++)
        assert_true(fabsf(y[i] - x[i]) <= 0x1p-8f * fabsf(x[i]));
}

/* op(x)[i][j] of a row-major x stored (rows, cols), or its transpose. */
static double at(const float *x, int trans, long ld, long i, long j)
{
    return trans ? x[j * ld + i] : x[i * ld + j];
}

static void test_gemm_shapes(void **state)
{
    (void)state;
    require_bf16();
    matmul_bf16 *ctx = matmul_bf16_create(1);
    assert_non_null(ctx);
    enum { M = 13, N = 37, K = 70 };
    rng_state rng;
    rng_seed(&rng, 5);
    float a[M * K], b[K * N], ar[M * K], br[K * N], c[M * N], c0[M * N];
    uint16_t ab[M * K], bb[K * N];
    fill(a, M * K, &rng, 1.0f);
    fill(b, K * N, &rng, 1.0f);
    fill(c0, M * N, &rng, 1.0f);
    matmul_bf16_from_f32(ab, a, M * K);
    matmul_bf16_from_f32(bb, b, K * N);
    matmul_bf16_to_f32(ar, ab, M * K);
    matmul_bf16_to_f32(br, bb, K * N);
    for (int shape = 0; shape < 8; shape++) {
        int ta = shape & 1, tb = (shape >> 1) & 1, acc = shape >> 2;
        long lda = ta ? M : K, ldb = tb ? K : N;
        memcpy(c, c0, sizeof c);
        assert_int_equal(matmul_bf16_gemm(ctx, ta, tb, M, N, K, ab, bb, c, acc), 0);
        for (long i = 0; i < M; i++)
            for (long j = 0; j < N; j++) {
                double rounded = acc ? c0[i * N + j] : 0.0, exact = rounded, mag = fabs(rounded);
                for (long k = 0; k < K; k++) {
                    rounded += at(ar, ta, lda, i, k) * at(br, tb, ldb, k, j);
                    exact += at(a, ta, lda, i, k) * at(b, tb, ldb, k, j);
                    mag += fabs(at(a, ta, lda, i, k) * at(b, tb, ldb, k, j));
                }
                double got = c[i * N + j];
                if (!(fabs(got - rounded) <= 1e-5 * mag && fabs(got - exact) <= 2e-2 * mag)) {
                    print_error("shape %d [%ld][%ld]: got %.9g, rounded %.9g, exact %.9g\n",
                                shape, i, j, got, rounded, exact);
                    fail();
                }
            }
    }
    matmul_bf16_free(ctx);
}

/* ||got - want|| / ||want|| over n values. */
static double rel_l2(const float *got, const float *want, long n)
{
    double d = 0, w = 0;
    for (long i = 0; i < n; i++) {
        d += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        w += (double)want[i] * want[i];
    }
    return sqrt(d / (w > 0 ? w : 1));
}

static const model_config cfg = {97, 2, 4, 64, 24};
#define ROWS 4

static void batch(int32_t *tok, int32_t *pos, int32_t *tgt)
{
    rng_state rng;
    rng_seed(&rng, 11);
    for (int i = 0; i < ROWS * cfg.seq_len; i++) {
        tok[i] = (int32_t)rng_below(&rng, (uint64_t)cfg.vocab);
        pos[i] = i % cfg.seq_len;
    }
    for (int i = 0; i < ROWS * cfg.seq_len; i++)
        tgt[i] = pos[i] + 1 < cfg.seq_len ? tok[i + 1] : -1;
}

/* Logits (rows, T, V) and gradients of one forward + cross-entropy +
 * backward at `precision`, into malloc'ed copies. */
static void forward_backward(model_precision precision, int threads, float **logits,
                             float **grads)
{
    model *m = model_create(&cfg, ROWS, threads);
    assert_non_null(m);
    model_init_gpt2(m, 8);
    /* larger than GPT-2's init so attention and GELU are far from linear
     * (but not so large that attention turns chaotic: at 10x an fp32-vs-fp32
     * perturbation of one ulp would already move the gradients) */
    float *p = model_params(m);
    for (size_t i = 0; i < model_num_params(m); i++)
        p[i] *= 3.0f;
    assert_int_equal(model_set_precision(m, precision), 0);
    int32_t tok[ROWS * 24], pos[ROWS * 24], tgt[ROWS * 24];
    batch(tok, pos, tgt);
    long nl = (long)ROWS * cfg.seq_len * cfg.vocab;
    const float *z = model_forward(m, tok, pos, ROWS, cfg.seq_len);
    assert_non_null(z);
    *logits = malloc((size_t)nl * sizeof **logits);
    *grads = malloc(model_num_params(m) * sizeof **grads);
    assert_true(*logits && *grads);
    memcpy(*logits, z, (size_t)nl * sizeof **logits);
    model_loss_cross_entropy(m, tgt, 1.0f / (ROWS * (cfg.seq_len - 1)));
    model_backward(m);
    memcpy(*grads, model_grads(m), model_num_params(m) * sizeof **grads);
    model_free(m);
}

static void test_model_close_to_fp32(void **state)
{
    (void)state;
    require_bf16();
    float *zf, *gf, *zb, *gb;
    forward_backward(MODEL_FP32, 2, &zf, &gf);
    forward_backward(MODEL_BF16, 2, &zb, &gb);
    long nl = (long)ROWS * cfg.seq_len * cfg.vocab;
    size_t np = model_config_num_params(&cfg);
    double ez = rel_l2(zb, zf, nl), eg = rel_l2(gb, gf, (long)np);
    print_message("bf16 vs fp32: logits rel L2 %.3g, gradients rel L2 %.3g\n", ez, eg);
    assert_true(ez > 0 && ez < 6e-2); /* > 0: the products did run in bfloat16 */
    assert_true(eg > 0 && eg < 6e-2);
    free(zf);
    free(gf);
    free(zb);
    free(gb);
}

/* Two bfloat16 runs of a few training steps give bit-identical parameters. */
static void test_deterministic(void **state)
{
    (void)state;
    require_bf16();
    float *runs[2];
    size_t np = model_config_num_params(&cfg);
    for (int r = 0; r < 2; r++) {
        model *m = model_create(&cfg, ROWS, 2);
        assert_non_null(m);
        model_init_gpt2(m, 9);
        assert_int_equal(model_set_precision(m, MODEL_BF16), 0);
        int32_t tok[ROWS * 24], pos[ROWS * 24], tgt[ROWS * 24];
        batch(tok, pos, tgt);
        adamw_config adam = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
        for (int s = 1; s <= 4; s++) {
            assert_non_null(model_forward(m, tok, pos, ROWS, cfg.seq_len));
            model_loss_cross_entropy(m, tgt, 1.0f / (ROWS * (cfg.seq_len - 1)));
            model_backward(m);
            model_adamw_step(m, &adam, s);
        }
        runs[r] = malloc(np * sizeof(float));
        assert_non_null(runs[r]);
        memcpy(runs[r], model_params(m), np * sizeof(float));
        model_free(m);
    }
    assert_memory_equal(runs[0], runs[1], np * sizeof(float));
    free(runs[0]);
    free(runs[1]);
}

/* KL(p_fp32 || p_bf16) per token, in nats, of two logits rows sets. */
static double mean_kl(const float *zf, const float *zb, long n, int V)
{
    double sum = 0;
    for (long i = 0; i < n; i++) {
        const float *a = zf + i * V, *b = zb + i * V;
        double ma = a[0], mb = b[0], sa = 0, sb = 0, kl = 0;
        for (int v = 1; v < V; v++) {
            ma = fmax(ma, a[v]);
            mb = fmax(mb, b[v]);
        }
        for (int v = 0; v < V; v++) {
            sa += exp(a[v] - ma);
            sb += exp(b[v] - mb);
        }
        for (int v = 0; v < V; v++) {
            double la = a[v] - ma - log(sa), lb = b[v] - mb - log(sb);
            kl += exp(la) * (la - lb);
        }
        sum += kl;
    }
    return sum / (double)n;
}

/* The labels distill would store from logits (rows of T positions, V wide,
 * top k): decoded ids, log-probs and tails, (rows * T, k) and (rows * T);
 * and the exact top-k and tail they quantise (exact_lp, exact_tail). */
static void stored_labels(const float *z, int rows, int T, int V, int k, int32_t *ids, float *lp,
                          float *tail, float *exact_lp, float *exact_tail)
{
    softlabel_codec *c = softlabel_codec_create();
    void *scratch = malloc(topk_scratch_bytes(V));
    unsigned char *blob = NULL;
    size_t cap = 0, len;
    assert_true(c && scratch);
    for (int r = 0; r < rows; r++) {
        size_t at = (size_t)r * T;
        for (int p = 0; p < T; p++) {
            topk_stats st;
            assert_int_equal(topk_row(z + (at + p) * V, V, k, -1, scratch, ids + (at + p) * k,
                                      exact_lp + (at + p) * k, &st), 0);
            exact_tail[at + p] = (float)st.tail;
        }
        assert_int_equal(softlabel_encode(c, ids + at * k, exact_lp + at * k, T, k, V, &blob, &cap, &len), 0);
        int n_pos, got_k;
        assert_int_equal(softlabel_decode(c, blob, len, V, T, k, ids + at * k, lp + at * k, tail + at,
                                          &n_pos, &got_k), 0);
        assert_true(n_pos == T && got_k == k);
    }
    free(blob);
    free(scratch);
    softlabel_codec_free(c);
}

/* Mean KL, per position, from the stored fp32 label to the stored bf16 label
 * on the fp32 label's partition (its k ids + one tail bucket), the bf16
 * label's tail spread evenly over the ids it left out: the KD loss (README,
 * "The objective") a student matching the bf16 labels exactly would still
 * see against the fp32 ones. */
static double mean_label_kl(const int32_t *ids_f, const float *lp_f, const float *tail_f,
                            const int32_t *ids_b, const float *lp_b, const float *tail_b, long n,
                            int k, int V)
{
    double *q = malloc((size_t)V * sizeof *q), sum = 0;
    assert_non_null(q);
    for (long i = 0; i < n; i++) {
        for (int v = 0; v < V; v++)
            q[v] = tail_b[i] / (V - k);
        for (int j = 0; j < k; j++)
            q[ids_b[i * k + j]] = exp(lp_b[i * k + j]);
        double kl = 0, q_tail = 0;
        for (int j = 0; j < k; j++) {
            double p = exp(lp_f[i * k + j]), qj = q[ids_f[i * k + j]];
            if (p > 0)
                kl += p * log(p / qj);
            q[ids_f[i * k + j]] = 0; /* what is left is q's mass in the bucket */
        }
        for (int v = 0; v < V; v++)
            q_tail += q[v];
        if (tail_f[i] > 0)
            kl += tail_f[i] * log(tail_f[i] / q_tail);
        sum += kl;
    }
    free(q);
    return sum / (double)n;
}

/* A byte-level teacher trained briefly on the fortunes (or generated text)
 * labels held-out windows in fp32 and in bfloat16: the distributions a
 * distill run would store differ by a small KL. */
static void test_teacher_kl(void **state)
{
    (void)state;
    require_bf16();
    const model_config tc = {256, 2, 4, 64, 64};
    const int rows = 8, T = tc.seq_len, steps = 150;
    size_t len;
    unsigned char *text = sfix_load_fortunes(&len);
    if (!text || len < 100000) {
        free(text);
        len = 100000;
        text = malloc(len);
        assert_non_null(text);
        rng_state g;
        rng_seed(&g, 4);
        for (size_t i = 0; i < len; i++)
            text[i] = (unsigned char)("etaoin shrdlu\n"[rng_below(&g, 14)]);
    }
    model *m = model_create(&tc, rows, 2);
    assert_non_null(m);
    model_init_gpt2(m, 21);
    int32_t tok[8 * 64], pos[8 * 64], tgt[8 * 64];
    rng_state rng;
    rng_seed(&rng, 22);
    adamw_config adam = {0, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
    size_t train_end = len - len / 10;
    double first = 0, loss = 0;
    for (int s = 1; s <= steps; s++) {
        for (int r = 0; r < rows; r++) {
            size_t at0 = (size_t)rng_below(&rng, train_end - (size_t)T - 1);
            for (int i = 0; i < T; i++) {
                tok[r * T + i] = text[at0 + (size_t)i];
                tgt[r * T + i] = text[at0 + (size_t)i + 1];
                pos[r * T + i] = i;
            }
        }
        assert_non_null(model_forward(m, tok, pos, rows, T));
        loss = model_loss_cross_entropy(m, tgt, 1.0f / (rows * T)) / (rows * T);
        first = s == 1 ? loss : first;
        model_backward(m);
        adam.lr = model_lr_schedule(3e-3f, s, 10, steps);
        model_adamw_step(m, &adam, s);
    }
    assert_true(loss < first - 1.0); /* it learned something */
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < T; i++) {
            tok[r * T + i] = text[train_end + (size_t)(r * T + i)];
            pos[r * T + i] = i;
        }
    long n = (long)rows * T;
    float *zf = malloc((size_t)n * 256 * sizeof *zf);
    assert_non_null(zf);
    memcpy(zf, model_forward(m, tok, pos, rows, T), (size_t)n * 256 * sizeof *zf);
    assert_int_equal(model_set_precision(m, MODEL_BF16), 0);
    const float *zb = model_forward(m, tok, pos, rows, T);
    assert_non_null(zb);
    double kl = mean_kl(zf, zb, n, 256);
    /* The stored labels differ more than the distributions: a rank near
     * the k-th can swap in or out of the top k, and a log-prob near a
     * boundary of the codec's grid rounds the other way. The yardstick is
     * what the codec alone costs the fp32 labels. */
    const int k = 32;
    int32_t *ids = malloc(2 * (size_t)n * k * sizeof *ids);
    float *lp = malloc(4 * (size_t)n * k * sizeof *lp), *tail = malloc(4 * (size_t)n * sizeof *tail);
    assert_true(ids && lp && tail);
    float *lp_b = lp + n * k, *exact_lp = lp + 2 * n * k, *tail_b = tail + n, *exact_tail = tail + 2 * n;
    stored_labels(zf, rows, T, 256, k, ids, lp, tail, exact_lp, exact_tail);
    double codec_kl = mean_label_kl(ids, exact_lp, exact_tail, ids, lp, tail, n, k, 256);
    double same_kl = mean_label_kl(ids, lp, tail, ids, lp, tail, n, k, 256);
    stored_labels(zb, rows, T, 256, k, ids + n * k, lp_b, tail_b, exact_lp + n * k, exact_tail + n);
    double label_kl = mean_label_kl(ids, lp, tail, ids + n * k, lp_b, tail_b, n, k, 256);
    print_message("teacher (loss %.3f -> %.3f): mean KL(fp32 || bf16) %.3g nats/token; stored top-%d "
                  "labels %.3g (the codec alone: %.3g)\n", first, loss, kl, k, label_kl, codec_kl);
    assert_true(kl > 0 && kl < 1e-4); /* measured ~1e-6 */
    assert_true(fabs(same_kl) < 1e-9); /* the measure itself: 0 for equal labels */
    assert_true(label_kl >= 0 && label_kl < 1e-3); /* measured ~1e-4 */
    free(tail);
    free(lp);
    free(ids);
    free(zf);
    free(text);
    model_free(m);
}

/* "auto" picks bf16 exactly where it is native; bad names are refused. */
static void test_precision_parse(void **state)
{
    (void)state;
    model_precision p;
    assert_int_equal(model_precision_parse("fp32", &p), 0);
    assert_int_equal(p, MODEL_FP32);
    assert_int_equal(model_precision_parse("auto", &p), 0);
    assert_int_equal(p, matmul_bf16_available() && matmul_bf16_native() ? MODEL_BF16 : MODEL_FP32);
    assert_int_equal(model_precision_parse("fp16", &p), -1);
    assert_non_null(strstr(err_message(), "fp16"));
    assert_int_equal(model_precision_parse("bf16", &p), matmul_bf16_available() ? 0 : -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rounding),
        cmocka_unit_test(test_gemm_shapes),
        cmocka_unit_test(test_model_close_to_fp32),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_teacher_kl),
        cmocka_unit_test(test_precision_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
