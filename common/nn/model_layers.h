/* model_layers: the GPT-2 layer kernels behind model.c, kept separate so
 * tests can check each one against a double-precision reference and finite
 * differences. Private to the model module (tests include it too).
 *
 * Conventions (as in llm.c): outputs first, then inputs, explicit sizes;
 * shapes are row-major, weights (OC, C) = out x in. N counts tokens. Each
 * backward says whether it overwrites or accumulates. Every matrix product is
 * one cblas_sgemm call (or one bfloat16 product, below); the element-wise loops are written so the compiler
 * vectorises them (no calls into libm inside hot loops: exp is vec_expf, a
 * vectorisable polynomial, and the row sums are vecmath.h's). The kernels
 * are single-threaded; the model runs them on disjoint row ranges from its
 * thread pool. */
#ifndef W2S_MODEL_LAYERS_H
#define W2S_MODEL_LAYERS_H

#include "nn/matmul_bf16.h"

#include <stdint.h>

#define MODEL_LN_EPS 1e-5f

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

/* The matrix products below run in fp32 (cblas_sgemm, the reference) when
 * bf is NULL, else in bfloat16 with fp32 accumulation through bf
 * (matmul_bf16.h) with wbf, w's bfloat16 copy: the fp32 operands are rounded
 * to bfloat16 on the way in. Should oneDNN refuse a product, that product
 * runs in fp32 instead. */

/* out (N,OC) = [add (N,OC)] + inp (N,C) w^T + [bias (OC)]; add and bias may
 * be NULL; add may equal out. */
void model_matmul_forward(float *out, const float *add, const float *inp, const float *w,
                          const float *bias, long N, int C, int OC, matmul_bf16 *bf,
                          const uint16_t *wbf);
/* Overwrites dinp (N,C) (skipped when NULL), dw (OC,C) and db (OC) (skipped
 * when NULL) with the gradients of out = inp w^T + b given dout (N,OC). */
void model_matmul_backward(float *dinp, float *dw, float *db, const float *dout,
                           const float *inp, const float *w, long N, int C, int OC,
                           matmul_bf16 *bf, const uint16_t *wbf);

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
