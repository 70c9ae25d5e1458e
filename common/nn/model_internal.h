/* model_internal: the model struct shared by model.c (creation, init),
 * model_pass.c (forward, backward, loss) and model_adamw.c (optimiser).
 * Private to the model module. */
#ifndef W2S_MODEL_INTERNAL_H
#define W2S_MODEL_INTERNAL_H

#include "nn/model.h"
#include "base/parallel.h"
#include "nn/matmul_bf16.h"

#include <stddef.h>
#include <stdint.h>

/* Parameter tensors in their stored order (README, "The model"). */
enum {
    MODEL_WTE, MODEL_WPE, MODEL_LN1W, MODEL_LN1B, MODEL_QKVW, MODEL_QKVB, MODEL_APW, MODEL_APB,
    MODEL_LN2W, MODEL_LN2B, MODEL_FCW, MODEL_FCB, MODEL_FPW, MODEL_FPB, MODEL_LNFW, MODEL_LNFB,
    MODEL_NUM_TENSORS
};

struct model {
    model_config cfg;
    int max_rows;
    size_t num_params;
    size_t offset[MODEL_NUM_TENSORS + 1]; /* of each tensor in the flat buffers */
    float *params, *grads, *adam_m, *adam_v;
    float *partial;  /* (threads - 1, num_params): per-thread weight gradients */
    float *acts;     /* every activation and backward scratch buffer below */
    /* Forward activations; per-layer tensors are strided by capacity
     * (max_rows * seq_len tokens), each layer compact in (rows, t). */
    float *resid;    /* (L + 1, BT, C): embeddings, then each block's output
                      * (inference models: model_resid_slot) */
    float *mid;      /* (L, BT, C): residual after attention */
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *atty;
    float *ln2, *ln2_mean, *ln2_rstd, *fch, *fcg;
    float *lnf, *lnf_mean, *lnf_rstd, *logits;
    /* Backward scratch. */
    float *dresid, *dln, *datty, *dwide; /* dwide: (BT, 4C), MLP then qkv grads */
    float *dscratch; /* (threads, T, T) */
    int *seg;        /* (threads, T + 1) */
    int32_t *tokens, *pos;  /* copies of the last forward's inputs */
    int rows, t;     /* of the last forward; t == 0 before any */
    parallel_pool *pool;
    int threads;
    double *thread_sums; /* (threads): per-thread partial sums */
    /* MODEL_BF16: a bfloat16 copy of the parameters, refreshed by the first
     * forward after they may have changed (bf16_stale), and one product
     * context per pool thread. NULL under MODEL_FP32. */
    model_precision precision;
    uint16_t *params_bf16;
    int bf16_stale;
    matmul_bf16 **bf16;
};

/* The bfloat16 copy of parameter tensor w (a pointer into m->params), or
 * NULL under MODEL_FP32. */
static inline const uint16_t *model_bf16_of(const model *m, const float *w)
{
    return m->precision == MODEL_BF16 ? m->params_bf16 + (w - m->params) : NULL;
}

/* Thread tid's bfloat16 product context, or NULL under MODEL_FP32. */
static inline matmul_bf16 *model_bf16_ctx(const model *m, int tid)
{
    return m->precision == MODEL_BF16 ? m->bf16[tid] : NULL;
}

/* Where layer l's activations sit, in tokens of per-layer stride: an
 * inference model (no gradients) keeps one layer's slots and alternates two
 * residual ones, since nothing is kept for a backward pass. */
static inline long model_layer_slot(const model *m, int l)
{
    return m->grads ? l : 0;
}

static inline long model_resid_slot(const model *m, int l)
{
    return m->grads ? l : l % 2;
}

/* Tensor i of a flat buffer laid out like the parameters. */
static inline float *model_tensor(const model *m, float *base, int i)
{
    return base + m->offset[i];
}

#endif
