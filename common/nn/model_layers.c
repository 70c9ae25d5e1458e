/* model_layers: GPT-2 layer kernels; see model_layers.h. The GCC pragma lets
 * the vectoriser handle loops of unknown trip count at -O2 (GCC 12's default
 * "very cheap" cost model refuses them); results do not depend on it because
 * no reduction here relies on reassociation by the compiler. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif
#include "nn/model_layers.h"

#include "nn/vecmath.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void model_embed_forward(float *out, const int32_t *tokens, const int32_t *pos,
                         const float *wte, const float *wpe, long N, int C)
{
    for (long i = 0; i < N; i++) {
        const float *te = wte + (long)tokens[i] * C, *pe = wpe + (long)pos[i] * C;
        float *o = out + i * C;
        for (int c = 0; c < C; c++)
            o[c] = te[c] + pe[c];
    }
}

void model_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                          const int32_t *pos, long N, int C)
{
    for (long i = 0; i < N; i++) {
        float *te = dwte + (long)tokens[i] * C, *pe = dwpe + (long)pos[i] * C;
        const float *d = dout + i * C;
        for (int c = 0; c < C; c++) {
            te[c] += d[c];
            pe[c] += d[c];
        }
    }
}

void model_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *w, const float *b, long N, int C)
{
    for (long i = 0; i < N; i++) {
        const float *x = inp + i * C;
        float *o = out + i * C;
        float m = vec_sum(x, C) / (float)C;
        float acc[16] = {0};
        int c = 0;
        for (; c + 16 <= C; c += 16)
            for (int u = 0; u < 16; u++) {
                float d = x[c + u] - m;
                acc[u] += d * d;
            }
        float var = 0.0f;
        for (int u = 0; u < 16; u++)
            var += acc[u];
        for (; c < C; c++)
            var += (x[c] - m) * (x[c] - m);
        float s = 1.0f / sqrtf(var / (float)C + MODEL_LN_EPS);
        for (c = 0; c < C; c++)
            o[c] = (x[c] - m) * s * w[c] + b[c];
        mean[i] = m;
        rstd[i] = s;
    }
}

void model_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, const float *mean,
                              const float *rstd, long N, int C)
{
    for (long i = 0; i < N; i++) {
        const float *x = inp + i * C, *d = dout + i * C;
        float *dx = dinp + i * C;
        float m = mean[i], s = rstd[i];
        float a1[16] = {0}, a2[16] = {0};
        int c = 0;
        for (; c + 16 <= C; c += 16)
            for (int u = 0; u < 16; u++) {
                float n = (x[c + u] - m) * s, dn = d[c + u] * w[c + u];
                a1[u] += dn;
                a2[u] += dn * n;
            }
        float sum_dn = 0.0f, sum_dnn = 0.0f;
        for (int u = 0; u < 16; u++) {
            sum_dn += a1[u];
            sum_dnn += a2[u];
        }
        for (; c < C; c++) {
            float n = (x[c] - m) * s, dn = d[c] * w[c];
            sum_dn += dn;
            sum_dnn += dn * n;
        }
        float mean_dn = sum_dn / (float)C, mean_dnn = sum_dnn / (float)C;
        for (c = 0; c < C; c++) {
            float n = (x[c] - m) * s;
            dw[c] += d[c] * n;
            db[c] += d[c];
            dx[c] += (d[c] * w[c] - mean_dn - n * mean_dnn) * s;
        }
    }
}

void model_matmul_forward(float *out, const float *add, const float *inp, const float *w,
                          const float *bias, long N, int C, int OC, matmul_bf16 *bf,
                          const uint16_t *wbf)
{
    float beta = 0.0f;
    if (add || bias) {
        for (long i = 0; i < N; i++) {
            float *o = out + i * OC;
            const float *a = add ? add + i * OC : NULL;
            if (a && bias)
                for (int c = 0; c < OC; c++)
                    o[c] = a[c] + bias[c];
            else if (a)
                memmove(o, a, (size_t)OC * sizeof *o);
            else
                memcpy(o, bias, (size_t)OC * sizeof *o);
        }
        beta = 1.0f;
    }
    if (bf) {
        const uint16_t *x = matmul_bf16_convert(bf, 0, inp, N * C);
        if (x && matmul_bf16_gemm(bf, 0, 1, N, OC, C, x, wbf, out, beta != 0.0f) == 0)
            return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, OC, C, 1.0f, inp, C, w, C,
                beta, out, OC);
}

/* dinp (N,C) = dout (N,OC) w and dw (OC,C) = dout^T inp in bfloat16; dout
 * is rounded once for both. @return 0, or -1 (nothing is left half done
 * that the fp32 path would not overwrite). */
static int matmul_backward_bf16(matmul_bf16 *bf, float *dinp, float *dw, const float *dout,
                                const float *inp, const uint16_t *wbf, long N, int C, int OC)
{
    const uint16_t *d = matmul_bf16_convert(bf, 0, dout, N * OC);
    if (!d || (dinp && matmul_bf16_gemm(bf, 0, 0, N, C, OC, d, wbf, dinp, 0) < 0))
        return -1;
    const uint16_t *x = matmul_bf16_convert(bf, 1, inp, N * C);
    return x && matmul_bf16_gemm(bf, 1, 0, OC, C, N, d, x, dw, 0) == 0 ? 0 : -1;
}

void model_matmul_backward(float *dinp, float *dw, float *db, const float *dout,
                           const float *inp, const float *w, long N, int C, int OC,
                           matmul_bf16 *bf, const uint16_t *wbf)
{
    if (!bf || matmul_backward_bf16(bf, dinp, dw, dout, inp, wbf, N, C, OC) < 0) {
        if (dinp)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, C, OC, 1.0f, dout,
                        OC, w, C, 0.0f, dinp, C);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, (int)N, 1.0f, dout, OC, inp,
                    C, 0.0f, dw, C);
    }
    if (db) {
        memset(db, 0, (size_t)OC * sizeof *db);
        for (long i = 0; i < N; i++) {
            const float *d = dout + i * OC;
            for (int c = 0; c < OC; c++)
                db[c] += d[c];
        }
    }
}

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

/* tanh(u) = 1 - 2 / (exp(2u) + 1): saturates cleanly through vec_expf's clamp. */
static inline float fast_tanh(float u)
{
    return 1.0f - 2.0f / (vec_expf(2.0f * u) + 1.0f);
}

void model_gelu_forward(float *out, const float *inp, long n)
{
    for (long i = 0; i < n; i++) {
        float x = inp[i];
        float th = fast_tanh(GELU_K * (x + 0.044715f * x * x * x));
        out[i] = 0.5f * x * (1.0f + th);
    }
}

void model_gelu_backward(float *dinp, const float *inp, const float *dout, long n)
{
    for (long i = 0; i < n; i++) {
        float x = inp[i];
        float th = fast_tanh(GELU_K * (x + 0.044715f * x * x * x));
        float dudx = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        float g = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * dudx;
        dinp[i] = g * dout[i];
    }
}

int model_attention_segments(int *start, const int32_t *pos, int t)
{
    int n = 0;
    for (int i = 0; i < t; i++) {
        int lo = i - pos[i];
        if (pos[i] == 0 || n == 0)
            start[n++] = i;
        else
            while (n > 1 && start[n - 1] > lo)
                n--;
    }
    start[n] = t;
    return n;
}

/* Softmax of row i of a segment's score block over keys lo .. i, zero
 * elsewhere in 0 .. n-1. */
static void masked_softmax(float *p, int lo, int i, int n)
{
    float mx;
    float sum = vec_exp_sub_max(p + lo, i + 1 - lo, &mx);
    float inv = 1.0f / sum;
    for (int j = lo; j <= i; j++)
        p[j] *= inv;
    for (int j = 0; j < lo; j++)
        p[j] = 0.0f;
    for (int j = i + 1; j < n; j++)
        p[j] = 0.0f;
}

/* Queries per block: a causal segment is processed in query blocks that
 * only score keys up to the block's end, so little is computed above the
 * diagonal, while each sgemm stays large enough to run near peak. */
#define ATT_QBLOCK 64

void model_attention_forward(float *out, float *att, const float *qkv, const int32_t *pos,
                             int rows, int t, int C, int H, int *seg)
{
    int hs = C / H, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < rows; b++) {
        const int32_t *rp = pos + (long)b * t;
        int nseg = model_attention_segments(seg, rp, t);
        for (int sg = 0; sg < nseg; sg++) {
            int s = seg[sg], n = seg[sg + 1] - s;
            for (int h = 0; h < H; h++) {
                const float *q = qkv + ((long)b * t + s) * C3 + h * hs;
                const float *k = q + C, *v = q + 2 * C;
                float *p = att + (((long)b * H + h) * t + s) * t + s;
                float *y = out + ((long)b * t + s) * C + h * hs;
                for (int q0 = 0; q0 < n; q0 += ATT_QBLOCK) {
                    int nq = n - q0 < ATT_QBLOCK ? n - q0 : ATT_QBLOCK, kend = q0 + nq;
                    float *pb = p + (long)q0 * t;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, kend, hs, scale,
                                q + (long)q0 * C3, C3, k, C3, 0.0f, pb, t);
                    for (int i = q0; i < kend; i++)
                        masked_softmax(p + (long)i * t, i - rp[s + i], i, kend);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hs, kend, 1.0f, pb,
                                t, v, C3, 0.0f, y + (long)q0 * C, C);
                }
            }
        }
    }
}

void model_attention_backward(float *dqkv, float *scratch, int *seg, const float *dout,
                              const float *qkv, const float *att, const int32_t *pos,
                              int rows, int t, int C, int H)
{
    int hs = C / H, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < rows; b++) {
        int nseg = model_attention_segments(seg, pos + (long)b * t, t);
        for (int sg = 0; sg < nseg; sg++) {
            int s = seg[sg], n = seg[sg + 1] - s;
            for (int h = 0; h < H; h++) {
                long base = ((long)b * t + s) * C3 + h * hs;
                const float *q = qkv + base, *k = q + C, *v = q + 2 * C;
                float *dq = dqkv + base, *dk = dq + C, *dv = dq + 2 * C;
                const float *dy = dout + ((long)b * t + s) * C + h * hs;
                const float *p = att + (((long)b * H + h) * t + s) * t + s;
                /* The last query block sees every key of the segment: done
                 * first, it overwrites dK and dV; earlier blocks add. */
                int q0 = (n - 1) / ATT_QBLOCK * ATT_QBLOCK;
                for (float beta = 0.0f; q0 >= 0; q0 -= ATT_QBLOCK, beta = 1.0f) {
                    int nq = n - q0 < ATT_QBLOCK ? n - q0 : ATT_QBLOCK, kend = q0 + nq;
                    const float *pb = p + (long)q0 * t, *dyb = dy + (long)q0 * C;
                    float *ds = scratch;
                    /* dP = dY V^T, dV += P^T dY */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, kend, hs, 1.0f, dyb,
                                C, v, C3, 0.0f, ds, kend);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kend, hs, nq, 1.0f, pb, t,
                                dyb, C, beta, dv, C3);
                    /* dS = P (dP - rowsum(P dP)); P is zero outside the mask,
                     * so is dS, and whole rows vectorise. */
                    for (int i = 0; i < nq; i++) {
                        const float *pi = pb + (long)i * t;
                        float *di = ds + (long)i * kend;
                        float dot = vec_dot(pi, di, q0 + i + 1);
                        for (int j = 0; j < kend; j++)
                            di[j] = pi[j] * (di[j] - dot);
                    }
                    /* dQ = scale dS K, dK += scale dS^T Q */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hs, kend, scale, ds,
                                kend, k, C3, 0.0f, dq + (long)q0 * C3, C3);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kend, hs, nq, scale, ds,
                                kend, q + (long)q0 * C3, C3, beta, dk, C3);
                }
            }
        }
    }
}
