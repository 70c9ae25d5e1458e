/* model_layers: the GPT-2 layer kernels behind model.c, kept separate so
 * tests can check each one against a double-precision reference and finite
 * differences. Private to the model module (tests include it too).
 *
 * Conventions (as in llm.c): outputs first, then inputs, explicit sizes;
 * shapes are row-major, weights (OC, C) = out x in. N counts tokens. Each
 * backward says whether it overwrites or accumulates. Every matrix product is
 * one cblas_sgemm call; the element-wise loops are written so the compiler
 * vectorises them (no calls into libm inside hot loops: the exp below is a
 * vectorisable polynomial). The kernels are single-threaded; the model runs
 * them on disjoint row ranges from its thread pool. */
#ifndef W2S_MODEL_LAYERS_H
#define W2S_MODEL_LAYERS_H

#include <stdint.h>
#include <string.h>

#define MODEL_LN_EPS 1e-5f

/* exp(x) to about 2 ulp for x in [-87.3, 88.3] (clamped outside; NaN stays
 * NaN): Cephes' range reduction and degree-6 polynomial, written without
 * branches or float->int conversion so loops calling it vectorise. */
static inline float model_expf(float x)
{
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    float r = x * 1.44269504088896341f + 12582912.0f; /* round(x/ln2) in the low mantissa bits */
    uint32_t rbits;
    memcpy(&rbits, &r, sizeof rbits);
    float n = r - 12582912.0f;
    float f = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * f + 1.3981999507e-3f;
    p = p * f + 8.3334519073e-3f;
    p = p * f + 4.1665795894e-2f;
    p = p * f + 1.6666665459e-1f;
    p = p * f + 5.0000001201e-1f;
    float y = p * f * f + f + 1.0f;
    uint32_t sbits = (rbits - 0x4B400000u + 127u) << 23;
    float s;
    memcpy(&s, &sbits, sizeof s);
    return y * s;
}

/* Sum of n floats with 16 independent partial sums (vectorisable, and the
 * same order every call, so deterministic). */
static inline float model_sum(const float *x, int n)
{
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int u = 0; u < 16; u++)
            acc[u] += x[i + u];
    float s = 0.0f;
    for (int u = 0; u < 16; u++)
        s += acc[u];
    for (; i < n; i++)
        s += x[i];
    return s;
}

/* The unnormalised softmax in place: replaces x[0..n) (n >= 1) by
 * exp(x - max) with 16 independent partial sums, stores the max in *max_out
 * and returns the sum. Shared by the attention softmax and the CE loss so
 * both round identically. */
static inline float model_exp_sub_max(float *x, int n, float *max_out)
{
    float mx = x[0];
    for (int j = 1; j < n; j++)
        mx = x[j] > mx ? x[j] : mx;
    float acc[16] = {0};
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int u = 0; u < 16; u++) {
            float e = model_expf(x[j + u] - mx);
            x[j + u] = e;
            acc[u] += e;
        }
    float sum = 0.0f;
    for (int u = 0; u < 16; u++)
        sum += acc[u];
    for (; j < n; j++) {
        float e = model_expf(x[j] - mx);
        x[j] = e;
        sum += e;
    }
    *max_out = mx;
    return sum;
}

static inline float model_dot(const float *a, const float *b, int n)
{
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int u = 0; u < 16; u++)
            acc[u] += a[i + u] * b[i + u];
    float s = 0.0f;
    for (int u = 0; u < 16; u++)
        s += acc[u];
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* out (N,C) = wte[tokens] + wpe[pos]; wte (V,C), wpe (T,C). */
void model_embed_forward(float *out, const int32_t *tokens, const int32_t *pos,
                         const float *wte, const float *wpe, long N, int C);
/* Accumulates dwte[tokens[i]] += dout[i] and dwpe[pos[i]] += dout[i]. */
void model_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                          const int32_t *pos, long N, int C);

/* out (N,C), mean and rstd (N) saved for the backward; inp (N,C), w, b (C). */
void model_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *w, const float *b, long N, int C);
/* Accumulates into dinp (N,C), dw and db (C). */
void model_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, const float *mean,
                              const float *rstd, long N, int C);

/* out (N,OC) = [add (N,OC)] + inp (N,C) w^T + [bias (OC)]; add and bias may
 * be NULL; add may equal out. */
void model_matmul_forward(float *out, const float *add, const float *inp, const float *w,
                          const float *bias, long N, int C, int OC);
/* Overwrites dinp (N,C) (skipped when NULL), dw (OC,C) and db (OC) (skipped
 * when NULL) with the gradients of out = inp w^T + b given dout (N,OC). */
void model_matmul_backward(float *dinp, float *dw, float *db, const float *dout,
                           const float *inp, const float *w, long N, int C, int OC);

/* GELU, tanh approximation: out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
void model_gelu_forward(float *out, const float *inp, long n);
/* Overwrites dinp (may equal dout) with dout * gelu'(inp). */
void model_gelu_backward(float *dinp, const float *inp, const float *dout, long n);

/* Splits a row of t positions into attention segments: maximal runs such
 * that every position i of a run sees keys i - pos[i] .. i inside the run.
 * Writes starts into start[0..count-1] and t into start[count] (room for
 * t + 1). Needs 0 <= pos[i] <= i. @return count. */
int model_attention_segments(int *start, const int32_t *pos, int t);
/* Causal multi-head attention over rows packed as in window.h.
 * out (rows,t,C); att (rows,H,t,t) receives the softmax probabilities
 * (only the diagonal segment blocks are written, each in query blocks up to
 * the block's last key); qkv (rows,t,3C) = q | k | v;
 * pos (rows,t); seg: scratch for t + 1 ints. Scores are scaled by
 * 1/sqrt(C/H); position i attends to i - pos[i] .. i of its row. */
void model_attention_forward(float *out, float *att, const float *qkv, const int32_t *pos,
                             int rows, int t, int C, int H, int *seg);
/* Overwrites dqkv (rows,t,3C) given dout (rows,t,C) and the forward's qkv and
 * att. scratch: t*t floats; seg: t + 1 ints. */
void model_attention_backward(float *dqkv, float *scratch, int *seg, const float *dout,
                              const float *qkv, const float *att, const int32_t *pos,
                              int rows, int t, int C, int H);

#endif
