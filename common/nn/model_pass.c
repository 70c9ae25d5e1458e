/* model_pass: the forward and backward passes and the parallel loss.
 *
 * Rows are independent until the weight gradients, so each thread of the
 * pool runs the whole stack on its own contiguous block of rows, calling
 * single-threaded sgemm: its activations stay in its core's caches and no
 * barrier is needed inside a pass. Weight gradients go to a per-thread copy
 * (thread 0: the real gradient buffer), summed afterwards in thread order,
 * so a fixed thread count gives bit-identical results. A block's weights,
 * gradients and activations are reached through structs of named pointers
 * (layer_params, layer_activations), so each pass reads like the math. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif
#include "nn/model.h"

#include "base/err.h"
#include "nn/loss.h"
#include "nn/model_internal.h"
#include "nn/model_layers.h"

#include <string.h>

/* Rows [*r0, *r1) of thread tid; threads beyond the row count get none. */
static int thread_rows(const model *m, int tid, int *r0, int *r1)
{
    int active = m->rows < m->threads ? m->rows : m->threads;
    if (tid >= active)
        return 0;
    long b, e;
    parallel_split(m->rows, tid, active, &b, &e);
    *r0 = (int)b;
    *r1 = (int)e;
    return 1;
}

/* Layer l's slice of every per-layer tensor of a flat buffer laid out like
 * the parameters (the parameters themselves, or a gradient buffer). Shapes
 * as the kernels take them: weights (OC, C) = out x in. */
typedef struct layer_tensors {
    float *ln1w, *ln1b;           /* (C), (C) */
    float *qkvw, *qkvb;           /* (3C, C), (3C): q | k | v */
    float *attprojw, *attprojb;   /* (C, C), (C) */
    float *ln2w, *ln2b;           /* (C), (C) */
    float *fcw, *fcb;             /* (4C, C), (4C) */
    float *fcprojw, *fcprojb;     /* (C, 4C), (C) */
} layer_tensors;

static layer_tensors layer_params(const model *m, float *buf, int l)
{
    long C = m->cfg.channels;
    return (layer_tensors){
        .ln1w = model_tensor(m, buf, MODEL_LN1W) + l * C,
        .ln1b = model_tensor(m, buf, MODEL_LN1B) + l * C,
        .qkvw = model_tensor(m, buf, MODEL_QKVW) + l * 3 * C * C,
        .qkvb = model_tensor(m, buf, MODEL_QKVB) + l * 3 * C,
        .attprojw = model_tensor(m, buf, MODEL_APW) + l * C * C,
        .attprojb = model_tensor(m, buf, MODEL_APB) + l * C,
        .ln2w = model_tensor(m, buf, MODEL_LN2W) + l * C,
        .ln2b = model_tensor(m, buf, MODEL_LN2B) + l * C,
        .fcw = model_tensor(m, buf, MODEL_FCW) + l * 4 * C * C,
        .fcb = model_tensor(m, buf, MODEL_FCB) + l * 4 * C,
        .fcprojw = model_tensor(m, buf, MODEL_FPW) + l * 4 * C * C,
        .fcprojb = model_tensor(m, buf, MODEL_FPB) + l * C,
    };
}

/* The residual stream after l blocks (0: the embeddings), (N, C), at token
 * offset o. */
static float *resid_at(const model *m, int l, long o)
{
    long cap = (long)m->max_rows * m->cfg.seq_len; /* per-layer stride in tokens */
    return m->resid + (model_resid_slot(m, l) * cap + o) * m->cfg.channels;
}

/* Layer l's activations for the rows from r0 of the last forward (N tokens
 * from offset o = r0 * t): what the forward writes and the backward reads. */
typedef struct layer_acts {
    float *x, *out;                   /* (N, C): the block's input and output */
    float *ln1, *ln1_mean, *ln1_rstd; /* (N, C), (N), (N) */
    float *qkv;                       /* (N, 3C) */
    float *att;                       /* (rows, H, t, t): softmax probabilities */
    float *atty;                      /* (N, C): attention output before its projection */
    float *mid;                       /* (N, C): x + attention */
    float *ln2, *ln2_mean, *ln2_rstd; /* (N, C), (N), (N) */
    float *fch, *fcg;                 /* (N, 4C): MLP hidden before and after GELU */
} layer_acts;

static layer_acts layer_activations(const model *m, int l, int r0)
{
    const model_config *c = &m->cfg;
    long C = c->channels, H = c->heads, T = c->seq_len, t = m->t;
    long slot = model_layer_slot(m, l), o = r0 * t;
    long lo = slot * m->max_rows * T + o;
    return (layer_acts){
        .x = resid_at(m, l, o),
        .out = resid_at(m, l + 1, o),
        .ln1 = m->ln1 + lo * C,
        .ln1_mean = m->ln1_mean + lo,
        .ln1_rstd = m->ln1_rstd + lo,
        .qkv = m->qkv + lo * 3 * C,
        .att = m->att + slot * m->max_rows * H * T * T + r0 * H * t * t,
        .atty = m->atty + lo * C,
        .mid = m->mid + lo * C,
        .ln2 = m->ln2 + lo * C,
        .ln2_mean = m->ln2_mean + lo,
        .ln2_rstd = m->ln2_rstd + lo,
        .fch = m->fch + lo * 4 * C,
        .fcg = m->fcg + lo * 4 * C,
    };
}

static void forward_rows(model *m, int tid, int r0, int r1)
{
    const model_config *c = &m->cfg;
    int C = c->channels, H = c->heads, V = c->vocab, t = m->t;
    long o = (long)r0 * t, N = (long)(r1 - r0) * t;
    const int32_t *pos = m->pos + o;
    int *seg = m->seg + (long)tid * (c->seq_len + 1);
    float *p = m->params, *wte = model_tensor(m, p, MODEL_WTE);
    matmul_bf16 *bf = model_bf16_ctx(m, tid);

    model_embed_forward(resid_at(m, 0, o), m->tokens + o, pos, wte, model_tensor(m, p, MODEL_WPE),
                        N, C);
    for (int l = 0; l < c->layers; l++) {
        layer_tensors w = layer_params(m, p, l);
        layer_acts a = layer_activations(m, l, r0);
        /* mid = x + attn(ln1(x) qkv^T + b) attproj^T + b */
        model_layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, a.x, w.ln1w, w.ln1b, N, C);
        model_matmul_forward(a.qkv, NULL, a.ln1, w.qkvw, w.qkvb, N, C, 3 * C, bf,
                             model_bf16_of(m, w.qkvw));
        model_attention_forward(a.atty, a.att, a.qkv, pos, r1 - r0, t, C, H, seg);
        model_matmul_forward(a.mid, a.x, a.atty, w.attprojw, w.attprojb, N, C, C, bf,
                             model_bf16_of(m, w.attprojw));
        /* out = mid + gelu(ln2(mid) fc^T + b) fcproj^T + b */
        model_layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.mid, w.ln2w, w.ln2b, N, C);
        model_matmul_forward(a.fch, NULL, a.ln2, w.fcw, w.fcb, N, C, 4 * C, bf,
                             model_bf16_of(m, w.fcw));
        model_gelu_forward(a.fcg, a.fch, N * 4 * C);
        model_matmul_forward(a.out, a.mid, a.fcg, w.fcprojw, w.fcprojb, N, 4 * C, C, bf,
                             model_bf16_of(m, w.fcprojw));
    }
    /* logits = lnf(x) wte^T (tied head) */
    model_layernorm_forward(m->lnf + o * C, m->lnf_mean + o, m->lnf_rstd + o,
                            resid_at(m, c->layers, o), model_tensor(m, p, MODEL_LNFW),
                            model_tensor(m, p, MODEL_LNFB), N, C);
    model_matmul_forward(m->logits + o * V, NULL, m->lnf + o * C, wte, NULL, N, C, V, bf,
                         model_bf16_of(m, wte));
}

static void forward_region(void *ctx, int tid, int nthreads)
{
    model *m = ctx;
    int r0, r1;
    (void)nthreads;
    if (thread_rows(m, tid, &r0, &r1))
        forward_rows(m, tid, r0, r1);
}

float *model_forward(model *m, const int32_t *tokens, const int32_t *pos, int rows, int t)
{
    const model_config *c = &m->cfg;
    if (rows < 1 || rows > m->max_rows || t < 1 || t > c->seq_len) {
        err_set("model_forward: batch %d x %d outside 1..%d x 1..%d", rows, t, m->max_rows,
                c->seq_len);
        return NULL;
    }
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < t; i++) {
            long k = (long)r * t + i;
            if (tokens[k] < 0 || tokens[k] >= c->vocab) {
                err_set("model_forward: row %d position %d: token %d outside 0..%d", r, i,
                        tokens[k], c->vocab - 1);
                return NULL;
            }
            if (pos[k] < 0 || pos[k] > i) {
                err_set("model_forward: row %d position %d: pos %d outside 0..%d", r, i, pos[k], i);
                return NULL;
            }
        }
    size_t n = (size_t)rows * (size_t)t;
    memcpy(m->tokens, tokens, n * sizeof *tokens);
    memcpy(m->pos, pos, n * sizeof *pos);
    m->rows = rows;
    m->t = t;
    if (m->precision == MODEL_BF16 && m->bf16_stale) {
        matmul_bf16_from_f32(m->params_bf16, m->params, (long)m->num_params);
        m->bf16_stale = 0;
    }
    parallel_run(m->pool, forward_region, m);
    return m->logits;
}

/* Zeroes n floats of a gradient that a kernel then accumulates into. */
static void zero(float *x, long n)
{
    memset(x, 0, (size_t)n * sizeof *x);
}

static void backward_rows(model *m, int tid, int r0, int r1, float *g)
{
    const model_config *c = &m->cfg;
    int C = c->channels, H = c->heads, V = c->vocab, t = m->t;
    long o = (long)r0 * t, N = (long)(r1 - r0) * t;
    const int32_t *pos = m->pos + o;
    int *seg = m->seg + (long)tid * (c->seq_len + 1);
    float *dscratch = m->dscratch + (long)tid * c->seq_len * c->seq_len;
    float *p = m->params;
    matmul_bf16 *bf = model_bf16_ctx(m, tid);
    float *dresid = m->dresid + o * C, *dln = m->dln + o * C, *datty = m->datty + o * C;
    float *dwide = m->dwide + o * 4 * C;

    /* Tied head: logits = lnf wte^T. Writes g.wte; the embedding adds later. */
    model_matmul_backward(dln, model_tensor(m, g, MODEL_WTE), NULL, m->logits + o * V,
                          m->lnf + o * C, model_tensor(m, p, MODEL_WTE), N, C, V, bf,
                          model_bf16_of(m, model_tensor(m, p, MODEL_WTE)));
    zero(dresid, N * C);
    float *glnfw = model_tensor(m, g, MODEL_LNFW), *glnfb = model_tensor(m, g, MODEL_LNFB);
    zero(glnfw, C);
    zero(glnfb, C);
    model_layernorm_backward(dresid, glnfw, glnfb, dln, resid_at(m, c->layers, o),
                             model_tensor(m, p, MODEL_LNFW), m->lnf_mean + o, m->lnf_rstd + o, N, C);

    for (int l = c->layers - 1; l >= 0; l--) {
        layer_tensors w = layer_params(m, p, l), gw = layer_params(m, g, l);
        layer_acts a = layer_activations(m, l, r0);
        /* MLP: out = mid + gelu(ln2(mid) fc^T + b) fcproj^T + b */
        model_matmul_backward(dwide, gw.fcprojw, gw.fcprojb, dresid, a.fcg, w.fcprojw, N, 4 * C,
                              C, bf, model_bf16_of(m, w.fcprojw));
        model_gelu_backward(dwide, a.fch, dwide, N * 4 * C);
        model_matmul_backward(dln, gw.fcw, gw.fcb, dwide, a.ln2, w.fcw, N, C, 4 * C, bf,
                              model_bf16_of(m, w.fcw));
        zero(gw.ln2w, C);
        zero(gw.ln2b, C);
        model_layernorm_backward(dresid, gw.ln2w, gw.ln2b, dln, a.mid, w.ln2w, a.ln2_mean,
                                 a.ln2_rstd, N, C);
        /* Attention: mid = x + attn(ln1(x) qkv^T + b) attproj^T + b */
        model_matmul_backward(datty, gw.attprojw, gw.attprojb, dresid, a.atty, w.attprojw, N, C,
                              C, bf, model_bf16_of(m, w.attprojw));
        model_attention_backward(dwide, dscratch, seg, datty, a.qkv, a.att, pos, r1 - r0, t, C, H);
        model_matmul_backward(dln, gw.qkvw, gw.qkvb, dwide, a.ln1, w.qkvw, N, C, 3 * C, bf,
                              model_bf16_of(m, w.qkvw));
        /* A key bias adds q.b to every score of a query row, which softmax
         * cancels: its gradient is exactly 0, and what the sum above leaves
         * is rounding noise that AdamW would blow up into lr-sized steps
         * (and into run-to-run divergence across thread and rank counts). */
        zero(gw.qkvb + C, C);
        zero(gw.ln1w, C);
        zero(gw.ln1b, C);
        model_layernorm_backward(dresid, gw.ln1w, gw.ln1b, dln, a.x, w.ln1w, a.ln1_mean,
                                 a.ln1_rstd, N, C);
    }
    float *gwpe = model_tensor(m, g, MODEL_WPE);
    zero(gwpe, (long)(m->offset[MODEL_WPE + 1] - m->offset[MODEL_WPE]));
    model_embed_backward(model_tensor(m, g, MODEL_WTE), gwpe, dresid, m->tokens + o, pos, N, C);
}

static void backward_region(void *ctx, int tid, int nthreads)
{
    model *m = ctx;
    int r0, r1;
    int active = m->rows < m->threads ? m->rows : m->threads;
    if (thread_rows(m, tid, &r0, &r1))
        backward_rows(m, tid, r0, r1,
                      tid == 0 ? m->grads : m->partial + (size_t)(tid - 1) * m->num_params);
    if (active < 2)
        return;
    parallel_barrier(m->pool);
    long b, e;
    parallel_split((long)m->num_params, tid, nthreads, &b, &e);
    for (int j = 1; j < active; j++) {
        const float *src = m->partial + (size_t)(j - 1) * m->num_params;
        for (long k = b; k < e; k++)
            m->grads[k] += src[k];
    }
}

void model_backward(model *m)
{
    if (m->t == 0 || !m->grads)
        return;
    parallel_run(m->pool, backward_region, m);
}

typedef struct loss_job {
    model *m;
    const int32_t *targets;
    float scale;
} loss_job;

static void loss_region(void *ctx, int tid, int nthreads)
{
    loss_job *job = ctx;
    model *m = job->m;
    long b, e;
    parallel_split((long)m->rows * m->t, tid, nthreads, &b, &e);
    m->thread_sums[tid] = loss_cross_entropy(m->logits + b * m->cfg.vocab, job->targets + b,
                                             e - b, m->cfg.vocab, job->scale);
}

double model_loss_cross_entropy(model *m, const int32_t *targets, float scale)
{
    if (m->t == 0)
        return 0.0;
    loss_job job = {m, targets, scale};
    parallel_run(m->pool, loss_region, &job);
    double sum = 0.0;
    for (int i = 0; i < m->threads; i++)
        sum += m->thread_sums[i];
    return sum;
}
