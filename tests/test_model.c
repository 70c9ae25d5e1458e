/* Tests of the model: every layer kernel against a slow double-precision
 * reference (forward) and central finite differences of that reference
 * (backward); the whole model's gradient on a toy config with packed rows;
 * packed == unpacked; loss at init; overfitting; AdamW and the schedule;
 * determinism.
 *
 * Tolerances: the references run in double and their central differences
 * (h = 1e-5) have truncation error ~h^2 |f'''| < 1e-9 and rounding error
 * ~1e-16 / h = 1e-11, so the comparison measures only the float32 kernels.
 * A float32 kernel summing K terms carries a relative error of a few
 * K * 2^-24 (~1e-6 for K <= 64) of the magnitudes involved; the layer checks
 * allow 1e-4 of the largest gradient magnitude plus 1e-3 relative, about
 * 50x that bound, and still catch any wrong term (which is O(1) relative). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/checkpoint.h"
#include "base/err.h"
#include "nn/loss.h"
#include "nn/model.h"
#include "nn/model_layers.h"
#include "base/rng.h"

#define FD_H 1e-5

static void fill(float *x, long n, rng_state *rng, float scale)
{
    for (long i = 0; i < n; i++)
        x[i] = scale * rng_normal(rng);
}

static double *to_double(const float *x, long n)
{
    double *d = malloc((size_t)n * sizeof *d);
    assert_non_null(d);
    for (long i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

/* Asserts |got - want| <= atol + rtol |want| elementwise, atol relative to
 * the largest |want|. */
static void assert_close(const float *got, const double *want, long n, double atol_frac,
                         double rtol, const char *what)
{
    double mx = 0.0;
    for (long i = 0; i < n; i++)
        mx = fmax(mx, fabs(want[i]));
    double atol = atol_frac * (mx > 0 ? mx : 1.0);
    for (long i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= atol + rtol * fabs(want[i]))) {
            print_error("%s[%ld]: got %.9g want %.9g (max %.3g)\n", what, i, (double)got[i],
                        want[i], mx);
            fail();
        }
    }
}

/* ---- double references ------------------------------------------------ */

static void ref_layernorm(double *out, const double *x, const double *w, const double *b, long N,
                          int C)
{
    for (long i = 0; i < N; i++) {
        double m = 0, v = 0;
        for (int c = 0; c < C; c++)
            m += x[i * C + c];
        m /= C;
        for (int c = 0; c < C; c++)
            v += (x[i * C + c] - m) * (x[i * C + c] - m);
        v /= C;
        double s = 1.0 / sqrt(v + 1e-5);
        for (int c = 0; c < C; c++)
            out[i * C + c] = (x[i * C + c] - m) * s * w[c] + b[c];
    }
}

static void ref_matmul(double *out, const double *x, const double *w, const double *b, long N,
                       int C, int OC)
{
    for (long i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int c = 0; c < C; c++)
                s += x[i * C + c] * w[(long)o * C + c];
            out[i * OC + o] = s;
        }
}

static double ref_gelu(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

static void ref_attention(double *out, const double *qkv, const int32_t *pos, int rows, int t,
                          int C, int H)
{
    int hs = C / H;
    double *w = malloc((size_t)t * sizeof *w);
    assert_non_null(w);
    for (int b = 0; b < rows; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < t; i++) {
                const double *q = qkv + ((long)b * t + i) * 3 * C + h * hs;
                int lo = i - pos[b * t + i];
                double mx = -1e300, sum = 0;
                for (int j = lo; j <= i; j++) {
                    const double *k = qkv + ((long)b * t + j) * 3 * C + C + h * hs;
                    double s = 0;
                    for (int d = 0; d < hs; d++)
                        s += q[d] * k[d];
                    w[j] = s / sqrt((double)hs);
                    mx = fmax(mx, w[j]);
                }
                for (int j = lo; j <= i; j++)
                    sum += (w[j] = exp(w[j] - mx));
                double *o = out + ((long)b * t + i) * C + h * hs;
                for (int d = 0; d < hs; d++) {
                    double s = 0;
                    for (int j = lo; j <= i; j++)
                        s += w[j] / sum * qkv[((long)b * t + j) * 3 * C + 2 * C + h * hs + d];
                    o[d] = s;
                }
            }
    free(w);
}

static double ref_cross_entropy(const double *logits, const int32_t *targets, long n, int V)
{
    double total = 0;
    for (long r = 0; r < n; r++) {
        if (targets[r] < 0)
            continue;
        const double *x = logits + r * V;
        double mx = x[0], s = 0;
        for (int j = 1; j < V; j++)
            mx = fmax(mx, x[j]);
        for (int j = 0; j < V; j++)
            s += exp(x[j] - mx);
        total += log(s) + mx - x[targets[r]];
    }
    return total;
}

/* Parameters in their stored order (README, "The model"), as offsets into a
 * flat double array. */
typedef struct ref_layout {
    long wte, wpe, ln1w, ln1b, qkvw, qkvb, apw, apb, ln2w, ln2b, fcw, fcb, fpw, fpb, lnfw, lnfb,
        total;
} ref_layout;

static ref_layout ref_offsets(const model_config *c)
{
    long V = c->vocab, L = c->layers, C = c->channels, T = c->seq_len, o = 0;
    ref_layout r;
    r.wte = o, o += V * C;
    r.wpe = o, o += T * C;
    r.ln1w = o, o += L * C;
    r.ln1b = o, o += L * C;
    r.qkvw = o, o += L * 3 * C * C;
    r.qkvb = o, o += L * 3 * C;
    r.apw = o, o += L * C * C;
    r.apb = o, o += L * C;
    r.ln2w = o, o += L * C;
    r.ln2b = o, o += L * C;
    r.fcw = o, o += L * 4 * C * C;
    r.fcb = o, o += L * 4 * C;
    r.fpw = o, o += L * 4 * C * C;
    r.fpb = o, o += L * C;
    r.lnfw = o, o += C;
    r.lnfb = o, o += C;
    r.total = o;
    return r;
}

/* The whole model in double: logits (rows*t, V). */
static void ref_forward(double *logits, const double *p, const model_config *c,
                        const int32_t *tok, const int32_t *pos, int rows, int t)
{
    ref_layout r = ref_offsets(c);
    long N = (long)rows * t;
    int C = c->channels, V = c->vocab;
    double *x = calloc((size_t)N * C, sizeof *x), *ln = calloc((size_t)N * C, sizeof *x),
           *qkv = calloc((size_t)N * 3 * C, sizeof *x), *y = calloc((size_t)N * C, sizeof *x),
           *h = calloc((size_t)N * 4 * C, sizeof *x), *tmp = calloc((size_t)N * C, sizeof *x);
    assert_true(x && ln && qkv && y && h && tmp);
    for (long i = 0; i < N; i++)
        for (int k = 0; k < C; k++)
            x[i * C + k] = p[r.wte + (long)tok[i] * C + k] + p[r.wpe + (long)pos[i] * C + k];
    for (int l = 0; l < c->layers; l++) {
        ref_layernorm(ln, x, p + r.ln1w + l * C, p + r.ln1b + l * C, N, C);
        ref_matmul(qkv, ln, p + r.qkvw + (long)l * 3 * C * C, p + r.qkvb + l * 3 * C, N, C, 3 * C);
        ref_attention(y, qkv, pos, rows, t, C, c->heads);
        ref_matmul(tmp, y, p + r.apw + (long)l * C * C, p + r.apb + l * C, N, C, C);
        for (long i = 0; i < N * C; i++)
            x[i] += tmp[i];
        ref_layernorm(ln, x, p + r.ln2w + l * C, p + r.ln2b + l * C, N, C);
        ref_matmul(h, ln, p + r.fcw + (long)l * 4 * C * C, p + r.fcb + l * 4 * C, N, C, 4 * C);
        for (long i = 0; i < N * 4 * C; i++)
            h[i] = ref_gelu(h[i]);
        ref_matmul(tmp, h, p + r.fpw + (long)l * 4 * C * C, p + r.fpb + l * C, N, 4 * C, C);
        for (long i = 0; i < N * C; i++)
            x[i] += tmp[i];
    }
    ref_layernorm(ln, x, p + r.lnfw, p + r.lnfb, N, C);
    ref_matmul(logits, ln, p + r.wte, NULL, N, C, V);
    free(x), free(ln), free(qkv), free(y), free(h), free(tmp);
}

/* ---- layer checks ------------------------------------------------------ */

static void test_layernorm(void **state)
{
    (void)state;
    enum { N = 5, C = 37 };
    rng_state rng;
    rng_seed(&rng, 1);
    float x[N * C], w[C], b[C], g[N * C], out[N * C], mean[N], rstd[N];
    fill(x, N * C, &rng, 2.0f);
    for (int i = 0; i < N * C; i++)
        x[i] += 0.5f;
    fill(w, C, &rng, 1.0f);
    fill(b, C, &rng, 1.0f);
    fill(g, N * C, &rng, 1.0f);
    model_layernorm_forward(out, mean, rstd, x, w, b, N, C);
    double *xd = to_double(x, N * C), *wd = to_double(w, C), *bd = to_double(b, C);
    double ref[N * C], up[N * C], dn[N * C];
    ref_layernorm(ref, xd, wd, bd, N, C);
    assert_close(out, ref, N * C, 1e-5, 1e-5, "layernorm out");

    float dx[N * C] = {0}, dw[C] = {0}, db[C] = {0};
    model_layernorm_backward(dx, dw, db, g, x, w, mean, rstd, N, C);
    /* central differences of L = sum(out * g) in each input */
    double num_dx[N * C], num_dw[C], num_db[C];
    double *vars[3] = {xd, wd, bd}, *nums[3] = {num_dx, num_dw, num_db};
    int counts[3] = {N * C, C, C};
    for (int v = 0; v < 3; v++)
        for (int i = 0; i < counts[v]; i++) {
            double keep = vars[v][i], lp = 0, lm = 0;
            vars[v][i] = keep + FD_H;
            ref_layernorm(up, xd, wd, bd, N, C);
            vars[v][i] = keep - FD_H;
            ref_layernorm(dn, xd, wd, bd, N, C);
            vars[v][i] = keep;
            for (int k = 0; k < N * C; k++) {
                lp += up[k] * g[k];
                lm += dn[k] * g[k];
            }
            nums[v][i] = (lp - lm) / (2 * FD_H);
        }
    assert_close(dx, num_dx, N * C, 1e-4, 1e-3, "layernorm dx");
    assert_close(dw, num_dw, C, 1e-4, 1e-3, "layernorm dw");
    assert_close(db, num_db, C, 1e-4, 1e-3, "layernorm db");
    free(xd), free(wd), free(bd);
}

static void test_matmul(void **state)
{
    (void)state;
    enum { N = 7, C = 19, OC = 23 };
    rng_state rng;
    rng_seed(&rng, 2);
    float x[N * C], w[OC * C], b[OC], add[N * OC], g[N * OC], out[N * OC];
    fill(x, N * C, &rng, 1.0f);
    fill(w, OC * C, &rng, 1.0f);
    fill(b, OC, &rng, 1.0f);
    fill(add, N * OC, &rng, 1.0f);
    fill(g, N * OC, &rng, 1.0f);
    double *xd = to_double(x, N * C), *wd = to_double(w, OC * C), *bd = to_double(b, OC);
    double ref[N * OC];
    ref_matmul(ref, xd, wd, bd, N, C, OC);
    for (int i = 0; i < N * OC; i++)
        ref[i] += add[i];
    memcpy(out, add, sizeof out);
    model_matmul_forward(out, out, x, w, b, N, C, OC, NULL, NULL); /* in place residual */
    assert_close(out, ref, N * OC, 1e-5, 1e-5, "matmul out");
    model_matmul_forward(out, NULL, x, w, NULL, N, C, OC, NULL, NULL);
    ref_matmul(ref, xd, wd, NULL, N, C, OC);
    assert_close(out, ref, N * OC, 1e-5, 1e-5, "matmul out (no bias)");

    /* out = x w^T + b is linear: the exact gradients are products, which
     * the finite differences reproduce to rounding. */
    float dx[N * C], dw[OC * C], db[OC];
    model_matmul_backward(dx, dw, db, g, x, w, N, C, OC, NULL, NULL);
    double num_dx[N * C], num_dw[OC * C], num_db[OC], up[N * OC], dn[N * OC];
    double *vars[3] = {xd, wd, bd}, *nums[3] = {num_dx, num_dw, num_db};
    int counts[3] = {N * C, OC * C, OC};
    for (int v = 0; v < 3; v++)
        for (int i = 0; i < counts[v]; i++) {
            double keep = vars[v][i], lp = 0, lm = 0;
            vars[v][i] = keep + FD_H;
            ref_matmul(up, xd, wd, bd, N, C, OC);
            vars[v][i] = keep - FD_H;
            ref_matmul(dn, xd, wd, bd, N, C, OC);
            vars[v][i] = keep;
            for (int k = 0; k < N * OC; k++) {
                lp += up[k] * g[k];
                lm += dn[k] * g[k];
            }
            nums[v][i] = (lp - lm) / (2 * FD_H);
        }
    assert_close(dx, num_dx, N * C, 1e-4, 1e-3, "matmul dx");
    assert_close(dw, num_dw, OC * C, 1e-4, 1e-3, "matmul dw");
    assert_close(db, num_db, OC, 1e-4, 1e-3, "matmul db");
    free(xd), free(wd), free(bd);
}

static void test_gelu(void **state)
{
    (void)state;
    enum { N = 301 };
    float x[N], out[N], g[N], dx[N];
    double ref[N], num[N];
    rng_state rng;
    rng_seed(&rng, 3);
    for (int i = 0; i < N; i++) {
        x[i] = -8.0f + 16.0f * (float)i / (N - 1);
        g[i] = rng_normal(&rng);
        ref[i] = ref_gelu(x[i]);
        num[i] = g[i] * (ref_gelu(x[i] + FD_H) - ref_gelu(x[i] - FD_H)) / (2 * FD_H);
    }
    model_gelu_forward(out, x, N);
    /* the fast tanh is accurate to ~1e-7 absolute, so compare absolutely */
    assert_close(out, ref, N, 1e-6, 0, "gelu out");
    model_gelu_backward(dx, x, g, N);
    assert_close(dx, num, N, 1e-5, 1e-4, "gelu dx");
}

static void test_embedding(void **state)
{
    (void)state;
    enum { V = 5, T = 4, C = 3, N = 6 };
    int32_t tok[N] = {1, 4, 1, 0, 2, 1}, pos[N] = {0, 1, 2, 0, 1, 0};
    float wte[V * C], wpe[T * C], out[N * C], dout[N * C], dwte[V * C] = {0}, dwpe[T * C] = {0};
    rng_state rng;
    rng_seed(&rng, 4);
    fill(wte, V * C, &rng, 1.0f);
    fill(wpe, T * C, &rng, 1.0f);
    fill(dout, N * C, &rng, 1.0f);
    model_embed_forward(out, tok, pos, wte, wpe, N, C);
    double want_te[V * C] = {0}, want_pe[T * C] = {0};
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) {
            assert_true(out[i * C + c] == wte[tok[i] * C + c] + wpe[pos[i] * C + c]);
            want_te[tok[i] * C + c] += dout[i * C + c];
            want_pe[pos[i] * C + c] += dout[i * C + c];
        }
    model_embed_backward(dwte, dwpe, dout, tok, pos, N, C);
    assert_close(dwte, want_te, V * C, 1e-6, 1e-6, "embed dwte");
    assert_close(dwpe, want_pe, T * C, 1e-6, 1e-6, "embed dwpe");
}

static void test_attention_segments(void **state)
{
    (void)state;
    int seg[10];
    const int32_t a[6] = {0, 1, 2, 0, 1, 0};
    assert_int_equal(model_attention_segments(seg, a, 6), 3);
    assert_int_equal(seg[0], 0);
    assert_int_equal(seg[1], 3);
    assert_int_equal(seg[2], 5);
    assert_int_equal(seg[3], 6);
    /* position 4 reaches back past the restart at 3: the runs merge */
    const int32_t b[6] = {0, 1, 0, 1, 4, 0};
    assert_int_equal(model_attention_segments(seg, b, 6), 2);
    assert_int_equal(seg[0], 0);
    assert_int_equal(seg[1], 5);
    assert_int_equal(seg[2], 6);
}

/* Attention forward against the reference and its backward against finite
 * differences on every stride-th input. */
static void check_attention(const int32_t *pos, int R, int T, int C, int H, int stride,
                            uint64_t seed)
{
    long N = (long)R * T;
    float *qkv = malloc(N * 3 * C * sizeof *qkv), *g = malloc(N * C * sizeof *g),
          *out = malloc(N * C * sizeof *out), *att = malloc((long)R * H * T * T * sizeof *att),
          *dqkv = malloc(N * 3 * C * sizeof *dqkv), *scratch = malloc((long)T * T * sizeof *scratch);
    int *seg = malloc((T + 1) * sizeof *seg);
    double *ref = malloc(N * C * sizeof *ref), *up = malloc(N * C * sizeof *up),
           *dn = malloc(N * C * sizeof *dn), *num = malloc(N * 3 * C * sizeof *num);
    assert_true(qkv && g && out && att && dqkv && scratch && seg && ref && up && dn && num);
    rng_state rng;
    rng_seed(&rng, seed);
    fill(qkv, N * 3 * C, &rng, 1.0f);
    fill(g, N * C, &rng, 1.0f);
    model_attention_forward(out, att, qkv, pos, R, T, C, H, seg);
    double *qd = to_double(qkv, N * 3 * C);
    ref_attention(ref, qd, pos, R, T, C, H);
    assert_close(out, ref, N * C, 1e-5, 1e-5, "attention out");
    model_attention_backward(dqkv, scratch, seg, g, qkv, att, pos, R, T, C, H);
    long checked = 0;
    for (long i = 0; i < N * 3 * C; i += stride) {
        double keep = qd[i], lp = 0, lm = 0;
        qd[i] = keep + FD_H;
        ref_attention(up, qd, pos, R, T, C, H);
        qd[i] = keep - FD_H;
        ref_attention(dn, qd, pos, R, T, C, H);
        qd[i] = keep;
        for (long k = 0; k < N * C; k++) {
            lp += up[k] * g[k];
            lm += dn[k] * g[k];
        }
        num[checked] = (lp - lm) / (2 * FD_H);
        dqkv[checked++] = dqkv[i];
    }
    assert_close(dqkv, num, checked, 1e-4, 1e-3, "attention dqkv");
    free(qkv), free(g), free(out), free(att), free(dqkv), free(scratch), free(seg);
    free(ref), free(up), free(dn), free(num), free(qd);
}

static void test_attention(void **state)
{
    (void)state;
    /* row 0: two windows; row 1: a window of 3, two singletons (padding),
     * a window of 4 whose last position reaches back only 2 */
    const int32_t pos[18] = {0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2, 0, 0, 0, 1, 2, 2};
    check_attention(pos, 2, 9, 12, 3, 1, 5);
}

/* Windows longer than the query block (64): the blocked causal path. */
static void test_attention_long(void **state)
{
    (void)state;
    enum { T = 150 };
    int32_t pos[T];
    for (int i = 0; i < T; i++)
        pos[i] = i < 137 ? i : i - 137;
    pos[100] = 30; /* a position that sees only part of its window */
    check_attention(pos, 1, T, 8, 2, 7, 12);
}

static void test_cross_entropy(void **state)
{
    (void)state;
    enum { N = 4, V = 37 };
    const int32_t targets[N] = {3, -1, 36, 0};
    float x[N * V];
    rng_state rng;
    rng_seed(&rng, 6);
    fill(x, N * V, &rng, 3.0f);
    x[V * 3 + 5] = 80.0f; /* stability: a huge logit must not overflow */
    double *xd = to_double(x, N * V), num[N * V];
    double want = ref_cross_entropy(xd, targets, N, V);
    const float scale = 0.25f;
    double got = loss_cross_entropy(x, targets, N, V, scale);
    assert_true(fabs(got - want) <= 1e-5 * fabs(want));
    for (int i = 0; i < N * V; i++) {
        double keep = xd[i];
        xd[i] = keep + FD_H;
        double lp = ref_cross_entropy(xd, targets, N, V);
        xd[i] = keep - FD_H;
        double lm = ref_cross_entropy(xd, targets, N, V);
        xd[i] = keep;
        num[i] = scale * (lp - lm) / (2 * FD_H);
    }
    assert_close(x, num, N * V, 1e-5, 1e-4, "cross-entropy grad");
    for (int j = 0; j < V; j++)
        assert_true(x[V + j] == 0.0f); /* the masked row */
    free(xd);
}

/* ---- whole model -------------------------------------------------------- */

static const model_config toy = {37, 2, 2, 16, 8};

/* Toy parameters larger than GPT-2's init so every nonlinearity is
 * exercised (attention far from uniform, GELU off its linear part). */
static void toy_params(model *m, uint64_t seed)
{
    rng_state rng;
    rng_seed(&rng, seed);
    float *p = model_params(m);
    ref_layout r = ref_offsets(&toy);
    fill(p, r.total, &rng, 0.3f);
    long C = toy.channels, L = toy.layers;
    long ln_w[3] = {r.ln1w, r.ln2w, r.lnfw}, n_w[3] = {L * C, L * C, C};
    for (int k = 0; k < 3; k++)
        for (long i = 0; i < n_w[k]; i++)
            p[ln_w[k] + i] += 1.0f;
}

/* Two rows of 8: row 0 packs windows of 5 and 3; row 1 a window of 4, a
 * singleton pad and a window of 3. */
static const int32_t toy_tok[16] = {36, 3, 7, 7, 1, 36, 20, 21, 36, 5, 6, 8, 0, 36, 30, 2};
static const int32_t toy_pos[16] = {0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3, 0, 0, 1, 2};
static const int32_t toy_tgt[16] = {3, 7, 7, 1, -1, 20, 21, -1, 5, 6, 8, -1, -1, 30, 2, -1};

static double ref_loss(const double *p, double *logits)
{
    ref_forward(logits, p, &toy, toy_tok, toy_pos, 2, 8);
    return ref_cross_entropy(logits, toy_tgt, 16, toy.vocab) / 10.0; /* 10 targets */
}

/* d loss / d p[i] of the double reference, by central difference. */
static double central_difference(double *pd, long i, double *ref_logits)
{
    double keep = pd[i];
    pd[i] = keep + FD_H;
    double lp = ref_loss(pd, ref_logits);
    pd[i] = keep - FD_H;
    double lm = ref_loss(pd, ref_logits);
    pd[i] = keep;
    return (lp - lm) / (2 * FD_H);
}

static void test_model_gradient(void **state)
{
    (void)state;
    model *m = model_create(&toy, 2, 2);
    assert_non_null(m);
    toy_params(m, 7);
    size_t P = model_num_params(m);
    ref_layout r = ref_offsets(&toy);
    assert_int_equal(P, (size_t)r.total);
    assert_int_equal(P, model_config_num_params(&toy));

    float *logits = model_forward(m, toy_tok, toy_pos, 2, 8);
    assert_non_null(logits);
    double *pd = to_double(model_params(m), (long)P);
    double *ref_logits = malloc(16 * toy.vocab * sizeof *ref_logits);
    assert_non_null(ref_logits);
    double want = ref_loss(pd, ref_logits);
    assert_close(logits, ref_logits, 16 * toy.vocab, 1e-5, 1e-4, "model logits");
    double got = model_loss_cross_entropy(m, toy_tgt, 1.0f / 10.0f) / 10.0;
    assert_true(fabs(got - want) <= 1e-5 * want);
    model_backward(m);
    const float *grads = model_grads(m);

    /* every tensor: a spread of entries (all of the small ones) */
    long starts[17] = {r.wte, r.wpe, r.ln1w, r.ln1b, r.qkvw, r.qkvb, r.apw, r.apb, r.ln2w,
                       r.ln2b, r.fcw, r.fcb, r.fpw, r.fpb, r.lnfw, r.lnfb, r.total};
    double gmax = 0;
    for (size_t i = 0; i < P; i++)
        gmax = fmax(gmax, fabs(grads[i]));
    for (int k = 0; k < 16; k++) {
        long n = starts[k + 1] - starts[k], stride = n > 40 ? n / 40 : 1;
        for (long i = starts[k]; i < starts[k + 1]; i += stride) {
            double num = central_difference(pd, i, ref_logits);
            /* ~20 float32 layers deep: allow 1e-4 of the largest gradient */
            if (!(fabs(grads[i] - num) <= 1e-4 * gmax + 1e-3 * fabs(num))) {
                print_error("tensor %d index %ld: got %.9g want %.9g (max %.3g)\n", k,
                            i - starts[k], (double)grads[i], num, gmax);
                fail();
            }
        }
    }
    /* Key biases shift a query's scores by a constant softmax removes: the
     * reference says 0 up to double rounding, and the model says exactly 0. */
    int C = toy.channels;
    for (int l = 0; l < toy.layers; l++)
        for (int j = 0; j < C; j++) {
            long i = r.qkvb + (long)l * 3 * C + C + j;
            assert_true(grads[i] == 0.0f);
            assert_true(fabs(central_difference(pd, i, ref_logits)) <= 1e-9);
        }
    free(pd);
    free(ref_logits);
    model_free(m);
}

/* The packed rows give the same logits and gradients as each window alone
 * in its own row (the rest of the row padding). */
static void test_packed_equals_unpacked(void **state)
{
    (void)state;
    model *m = model_create(&toy, 4, 1);
    assert_non_null(m);
    toy_params(m, 8);
    int32_t tok[32] = {0}, pos[32] = {0}, tgt[32];
    for (int i = 0; i < 32; i++)
        tgt[i] = -1;
    /* windows of row 0 (5 and 3) into rows 0 and 1, of row 1 into 2 and 3 */
    const int at[4][3] = {{0, 0, 5}, {5, 8, 3}, {8, 16, 4}, {13, 24, 3}}; /* src, dst, len */
    for (int w = 0; w < 4; w++)
        for (int i = 0; i < at[w][2]; i++) {
            tok[at[w][1] + i] = toy_tok[at[w][0] + i];
            pos[at[w][1] + i] = toy_pos[at[w][0] + i];
            tgt[at[w][1] + i] = toy_tgt[at[w][0] + i];
        }
    float *lp = model_forward(m, toy_tok, toy_pos, 2, 8);
    assert_non_null(lp);
    float *packed = malloc(16 * toy.vocab * sizeof *packed);
    assert_non_null(packed);
    memcpy(packed, lp, 16 * toy.vocab * sizeof *packed);
    double loss_p = model_loss_cross_entropy(m, toy_tgt, 1.0f);
    model_backward(m);
    size_t P = model_num_params(m);
    double *gp = to_double(model_grads(m), (long)P);

    float *lu = model_forward(m, tok, pos, 4, 8);
    assert_non_null(lu);
    int V = toy.vocab;
    for (int w = 0; w < 4; w++) {
        double *want = to_double(packed + (long)at[w][0] * V, (long)at[w][2] * V);
        assert_close(lu + (long)at[w][1] * V, want, (long)at[w][2] * V, 1e-5, 1e-5, "unpacked");
        free(want);
    }
    double loss_u = model_loss_cross_entropy(m, tgt, 1.0f);
    assert_true(fabs(loss_p - loss_u) <= 1e-5 * loss_p);
    model_backward(m);
    assert_close(model_grads(m), gp, (long)P, 1e-5, 1e-4, "unpacked grads");
    free(gp);
    free(packed);
    model_free(m);
}

static void test_bad_input_rejected(void **state)
{
    (void)state;
    model *m = model_create(&toy, 2, 1);
    assert_non_null(m);
    int32_t tok[8] = {0}, pos[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    tok[3] = 37;
    assert_null(model_forward(m, tok, pos, 1, 8));
    assert_non_null(strstr(err_message(), "token 37"));
    tok[3] = 0;
    pos[2] = 3;
    assert_null(model_forward(m, tok, pos, 1, 8));
    assert_non_null(strstr(err_message(), "pos 3"));
    pos[2] = 2;
    assert_null(model_forward(m, tok, pos, 3, 8));
    assert_null(model_forward(m, tok, pos, 1, 9));
    assert_non_null(model_forward(m, tok, pos, 1, 8));
    model_config bad = toy;
    bad.heads = 3;
    assert_null(model_create(&bad, 1, 1));
    assert_non_null(strstr(err_message(), "heads"));
    assert_int_equal(model_config_preset("huge", &bad), -1);
    model_free(m);
}

static void test_presets(void **state)
{
    (void)state;
    model_config c = {4096, 0, 0, 0, 0};
    assert_int_equal(model_config_preset("tiny", &c), 0);
    assert_int_equal(c.layers, 2);
    assert_int_equal(c.heads, 4);
    assert_int_equal(c.channels, 128);
    assert_int_equal(c.seq_len, 128);
    assert_int_equal(c.vocab, 4096);
    assert_int_equal(model_config_check(&c), 0);
    assert_int_equal(model_config_preset("small", &c), 0);
    assert_int_equal(c.layers * 1000 + c.heads * 100 + c.channels, 6984);
    assert_int_equal(c.seq_len, 256);
    /* 12 C^2 + 13 C per layer, plus (V + T) C + 2 C */
    size_t C = 384, want = 6 * (12 * C * C + 13 * C) + (4096 + 256) * C + 2 * C;
    assert_int_equal(model_config_num_params(&c), want);
}

/* Random windows of T tokens, each predicting the next. (No shared EOT
 * start: identical contexts with different targets could not overfit.) */
static void random_batch(int32_t *tok, int32_t *pos, int32_t *tgt, int rows, int T, int V,
                         uint64_t seed)
{
    rng_state rng;
    rng_seed(&rng, seed);
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < T; i++) {
            tok[r * T + i] = (int32_t)rng_below(&rng, (uint64_t)V);
            pos[r * T + i] = i;
        }
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < T; i++)
            tgt[r * T + i] = i + 1 < T ? tok[r * T + i + 1] : -1;
}

static void test_loss_at_init(void **state)
{
    (void)state;
    model_config c = {256, 2, 4, 64, 32};
    model *m = model_create(&c, 4, 2);
    assert_non_null(m);
    model_init_gpt2(m, 42);
    int32_t tok[128], pos[128], tgt[128];
    random_batch(tok, pos, tgt, 4, 32, 256, 9);
    assert_non_null(model_forward(m, tok, pos, 4, 32));
    double loss = model_loss_cross_entropy(m, tgt, 1.0f) / (4 * 31);
    assert_true(fabs(loss - log(256.0)) <= 0.02 * log(256.0));
    model_free(m);
}

static const adamw_config adam = {0, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f};

/* Trains on one fixed batch; returns the final loss. Records each loss. */
static double train_fixed(int threads, int steps, double *losses, const char *ckpt_path)
{
    model_config c = {64, 2, 2, 32, 16};
    model *m = model_create(&c, 4, threads);
    assert_non_null(m);
    model_init_gpt2(m, 1234);
    int32_t tok[64], pos[64], tgt[64];
    random_batch(tok, pos, tgt, 4, 16, 64, 77);
    double loss = 0;
    adamw_config cfg = adam;
    cfg.weight_decay = 0.01f;
    for (int s = 1; s <= steps; s++) {
        assert_non_null(model_forward(m, tok, pos, 4, 16));
        loss = model_loss_cross_entropy(m, tgt, 1.0f / 60) / 60;
        if (losses)
            losses[s - 1] = loss;
        model_backward(m);
        cfg.lr = model_lr_schedule(1e-2f, s, 10, steps);
        model_adamw_step(m, &cfg, s);
    }
    if (ckpt_path) {
        checkpoint ck = {.config = c, .params = model_params(m), .adam_m = model_adam_m(m),
                         .adam_v = model_adam_v(m), .step = steps};
        assert_int_equal(checkpoint_write(ckpt_path, &ck), 0);
    }
    model_free(m);
    return loss;
}

static void test_overfit(void **state)
{
    (void)state;
    double loss = train_fixed(2, 300, NULL, NULL);
    assert_true(loss < 0.05);
}

static int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    assert_true(fa && fb);
    int ca, cb, same = 1;
    do {
        ca = fgetc(fa);
        cb = fgetc(fb);
        if (ca != cb)
            same = 0;
    } while (same && ca != EOF);
    fclose(fa);
    fclose(fb);
    return same;
}

static void test_determinism(void **state)
{
    (void)state;
    char a[64], b[64];
    snprintf(a, sizeof a, "/tmp/w2s_test_model_%d_a.ckpt", (int)getpid());
    snprintf(b, sizeof b, "/tmp/w2s_test_model_%d_b.ckpt", (int)getpid());
    double la[20], lb[20];
    train_fixed(2, 20, la, a);
    train_fixed(2, 20, lb, b);
    assert_memory_equal(la, lb, sizeof la);
    assert_true(same_file(a, b));
    /* another thread count may round differently, but not much */
    train_fixed(1, 20, lb, NULL);
    for (int i = 0; i < 20; i++)
        assert_true(fabs(la[i] - lb[i]) <= 1e-3 * la[i]);
    unlink(a);
    unlink(b);
}

/* An inference model gives the training model's logits bit for bit (toy
 * has two layers, so the shared layer slots and the alternating residual
 * are both used) and holds no gradients. */
static void test_inference_model(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 2; threads++) {
        model *train = model_create(&toy, 2, threads), *infer = model_create_inference(&toy, 2, threads);
        assert_non_null(train);
        assert_non_null(infer);
        toy_params(train, 12);
        memcpy(model_params(infer), model_params(train), model_num_params(train) * sizeof(float));
        const float *want = model_forward(train, toy_tok, toy_pos, 2, 8);
        const float *got = model_forward(infer, toy_tok, toy_pos, 2, 8);
        assert_non_null(want);
        assert_non_null(got);
        assert_memory_equal(got, want, 16 * (size_t)toy.vocab * sizeof(float));
        assert_null(model_grads(infer));
        assert_null(model_adam_m(infer));
        model_backward(infer);
        adamw_config cfg = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
        assert_true(model_adamw_step(infer, &cfg, 1) == 0.0f);
        model_free(train);
        model_free(infer);
    }
}

static void test_adamw(void **state)
{
    (void)state;
    model *m = model_create(&toy, 1, 2);
    assert_non_null(m);
    toy_params(m, 10);
    size_t P = model_num_params(m);
    ref_layout r = ref_offsets(&toy);
    float *p = model_params(m), *g = model_grads(m);
    rng_state rng;
    rng_seed(&rng, 11);
    fill(g, (long)P, &rng, 0.1f);
    double *pd = to_double(p, (long)P), *md = calloc(P, sizeof *md), *vd = calloc(P, sizeof *vd);
    assert_true(md && vd);
    adamw_config cfg = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f};
    for (long step = 1; step <= 3; step++) {
        double sq = 0;
        for (size_t i = 0; i < P; i++)
            sq += (double)g[i] * g[i];
        double norm = sqrt(sq), k = norm > cfg.clip ? cfg.clip / norm : 1.0;
        float got = model_adamw_step(m, &cfg, step);
        assert_true(fabs(got - norm) <= 1e-5 * norm);
        for (size_t i = 0; i < P; i++) {
            long j = (long)i;
            int matrix = (j >= r.wte && j < r.ln1w) || (j >= r.qkvw && j < r.qkvb) ||
                         (j >= r.apw && j < r.apb) || (j >= r.fcw && j < r.fcb) ||
                         (j >= r.fpw && j < r.fpb);
            double gi = g[i] * k;
            md[i] = 0.9 * md[i] + 0.1 * gi;
            vd[i] = 0.95 * vd[i] + 0.05 * gi * gi;
            double mh = md[i] / (1 - pow(0.9, step)), vh = vd[i] / (1 - pow(0.95, step));
            pd[i] -= 1e-2 * (mh / (sqrt(vh) + 1e-8) + (matrix ? 0.1 * pd[i] : 0.0));
        }
        assert_close(p, pd, (long)P, 1e-6, 1e-5, "adamw params");
    }
    free(pd), free(md), free(vd);
    model_free(m);
}

static void test_lr_schedule(void **state)
{
    (void)state;
    assert_true(fabsf(model_lr_schedule(1.0f, 1, 10, 100) - 0.1f) < 1e-7f);
    assert_true(fabsf(model_lr_schedule(1.0f, 10, 10, 100) - 1.0f) < 1e-7f);
    assert_true(fabsf(model_lr_schedule(1.0f, 55, 10, 100) - 0.55f) < 1e-6f);
    assert_true(fabsf(model_lr_schedule(1.0f, 100, 10, 100) - 0.1f) < 1e-6f);
    assert_true(fabsf(model_lr_schedule(1.0f, 500, 10, 100) - 0.1f) < 1e-6f);
    for (long s = 11; s < 100; s++)
        assert_true(model_lr_schedule(1.0f, s + 1, 10, 100) <= model_lr_schedule(1.0f, s, 10, 100));
    assert_true(fabsf(model_lr_schedule(2.0f, 1, 0, 1) - 0.2f) < 1e-6f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_attention_segments),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_long),
        cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_model_gradient),
        cmocka_unit_test(test_packed_equals_unpacked),
        cmocka_unit_test(test_bad_input_rejected),
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_loss_at_init),
        cmocka_unit_test(test_overfit),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_inference_model),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_lr_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
