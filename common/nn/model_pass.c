/* model_pass: the forward and backward passes and the parallel loss.
 *
 * Rows are independent until the weight gradients, so each thread of the
 * pool runs the whole stack on its own contiguous block of rows, calling
 * single-threaded sgemm: its activations stay in its core's caches and no
 * barrier is needed inside a pass. Weight gradients go to a per-thread copy
 * (thread 0: the real gradient buffer), summed afterwards in thread order,
 * so a fixed thread count gives bit-identical results. */
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

static void forward_rows(model *m, int tid, int r0, int r1)
{
    const model_config *c = &m->cfg;
    int C = c->channels, H = c->heads, t = m->t;
    long cap = (long)m->max_rows * c->seq_len; /* per-layer stride in tokens */
    long o = (long)r0 * t, N = (long)(r1 - r0) * t;
    const int32_t *pos = m->pos + o;
    int *seg = m->seg + (long)tid * (c->seq_len + 1);
    float *p = m->params;

    model_embed_forward(m->resid + o * C, m->tokens + o, pos, model_tensor(m, p, MODEL_WTE),
                        model_tensor(m, p, MODEL_WPE), N, C);
    for (int l = 0; l < c->layers; l++) {
        long lo = model_layer_slot(m, l) * cap + o;
        const float *x = m->resid + (model_resid_slot(m, l) * cap + o) * C;
        float *out = m->resid + (model_resid_slot(m, l + 1) * cap + o) * C, *mid = m->mid + lo * C;
        float *ln1 = m->ln1 + lo * C, *ln2 = m->ln2 + lo * C, *qkv = m->qkv + lo * 3 * C;
        float *atty = m->atty + lo * C, *fch = m->fch + lo * 4 * C, *fcg = m->fcg + lo * 4 * C;
        float *att = m->att + model_layer_slot(m, l) * m->max_rows * H * c->seq_len * c->seq_len +
                     (long)r0 * H * t * t;
        model_layernorm_forward(ln1, m->ln1_mean + lo, m->ln1_rstd + lo, x,
                                model_tensor(m, p, MODEL_LN1W) + l * C,
                                model_tensor(m, p, MODEL_LN1B) + l * C, N, C);
        model_matmul_forward(qkv, NULL, ln1, model_tensor(m, p, MODEL_QKVW) + (long)l * 3 * C * C,
                             model_tensor(m, p, MODEL_QKVB) + l * 3 * C, N, C, 3 * C);
        model_attention_forward(atty, att, qkv, pos, r1 - r0, t, C, H, seg);
        model_matmul_forward(mid, x, atty, model_tensor(m, p, MODEL_APW) + (long)l * C * C,
                             model_tensor(m, p, MODEL_APB) + l * C, N, C, C);
        model_layernorm_forward(ln2, m->ln2_mean + lo, m->ln2_rstd + lo, mid,
                                model_tensor(m, p, MODEL_LN2W) + l * C,
                                model_tensor(m, p, MODEL_LN2B) + l * C, N, C);
        model_matmul_forward(fch, NULL, ln2, model_tensor(m, p, MODEL_FCW) + (long)l * 4 * C * C,
                             model_tensor(m, p, MODEL_FCB) + l * 4 * C, N, C, 4 * C);
        model_gelu_forward(fcg, fch, N * 4 * C);
        model_matmul_forward(out, mid, fcg, model_tensor(m, p, MODEL_FPW) + (long)l * 4 * C * C,
                             model_tensor(m, p, MODEL_FPB) + l * C, N, 4 * C, C);
    }
    float *x = m->resid + (model_resid_slot(m, c->layers) * cap + o) * C;
    model_layernorm_forward(m->lnf + o * C, m->lnf_mean + o, m->lnf_rstd + o, x,
                            model_tensor(m, p, MODEL_LNFW), model_tensor(m, p, MODEL_LNFB), N, C);
    model_matmul_forward(m->logits + o * c->vocab, NULL, m->lnf + o * C,
                         model_tensor(m, p, MODEL_WTE), NULL, N, C, c->vocab);
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
    parallel_run(m->pool, forward_region, m);
    return m->logits;
}

static void backward_rows(model *m, int tid, int r0, int r1, float *g)
{
    const model_config *c = &m->cfg;
    int C = c->channels, H = c->heads, V = c->vocab, t = m->t;
    long cap = (long)m->max_rows * c->seq_len;
    long o = (long)r0 * t, N = (long)(r1 - r0) * t;
    const int32_t *pos = m->pos + o;
    int *seg = m->seg + (long)tid * (c->seq_len + 1);
    float *dscratch = m->dscratch + (long)tid * c->seq_len * c->seq_len;
    float *p = m->params;
    float *dresid = m->dresid + o * C, *dln = m->dln + o * C, *datty = m->datty + o * C;
    float *dwide = m->dwide + o * 4 * C;

    /* Tied head: logits = lnf wte^T. Writes g.wte; the embedding adds later. */
    model_matmul_backward(dln, model_tensor(m, g, MODEL_WTE), NULL, m->logits + o * V,
                          m->lnf + o * C, model_tensor(m, p, MODEL_WTE), N, C, V);
    memset(dresid, 0, (size_t)N * C * sizeof *dresid);
    float *glnfw = model_tensor(m, g, MODEL_LNFW), *glnfb = model_tensor(m, g, MODEL_LNFB);
    memset(glnfw, 0, (size_t)C * sizeof *glnfw);
    memset(glnfb, 0, (size_t)C * sizeof *glnfb);
    model_layernorm_backward(dresid, glnfw, glnfb, dln, m->resid + ((long)c->layers * cap + o) * C,
                             model_tensor(m, p, MODEL_LNFW), m->lnf_mean + o, m->lnf_rstd + o, N, C);

    for (int l = c->layers - 1; l >= 0; l--) {
        long lo = l * cap + o;
        const float *x = m->resid + lo * C, *mid = m->mid + lo * C;
        const float *ln1 = m->ln1 + lo * C, *ln2 = m->ln2 + lo * C, *qkv = m->qkv + lo * 3 * C;
        const float *atty = m->atty + lo * C, *fch = m->fch + lo * 4 * C,
                    *fcg = m->fcg + lo * 4 * C;
        const float *att = m->att + (long)l * m->max_rows * H * c->seq_len * c->seq_len +
                           (long)r0 * H * t * t;
        /* MLP: out = mid + gelu(ln2(mid) fc^T + b) fp^T + b */
        model_matmul_backward(dwide, model_tensor(m, g, MODEL_FPW) + (long)l * 4 * C * C,
                              model_tensor(m, g, MODEL_FPB) + l * C, dresid, fcg,
                              model_tensor(m, p, MODEL_FPW) + (long)l * 4 * C * C, N, 4 * C, C);
        model_gelu_backward(dwide, fch, dwide, N * 4 * C);
        model_matmul_backward(dln, model_tensor(m, g, MODEL_FCW) + (long)l * 4 * C * C,
                              model_tensor(m, g, MODEL_FCB) + l * 4 * C, dwide, ln2,
                              model_tensor(m, p, MODEL_FCW) + (long)l * 4 * C * C, N, C, 4 * C);
        float *gw = model_tensor(m, g, MODEL_LN2W) + l * C, *gb = model_tensor(m, g, MODEL_LN2B) + l * C;
        memset(gw, 0, (size_t)C * sizeof *gw);
        memset(gb, 0, (size_t)C * sizeof *gb);
        model_layernorm_backward(dresid, gw, gb, dln, mid, model_tensor(m, p, MODEL_LN2W) + l * C,
                                 m->ln2_mean + lo, m->ln2_rstd + lo, N, C);
        /* Attention: mid = x + attn(ln1(x)) ap^T + b */
        model_matmul_backward(datty, model_tensor(m, g, MODEL_APW) + (long)l * C * C,
                              model_tensor(m, g, MODEL_APB) + l * C, dresid, atty,
                              model_tensor(m, p, MODEL_APW) + (long)l * C * C, N, C, C);
        model_attention_backward(dwide, dscratch, seg, datty, qkv, att, pos, r1 - r0, t, C, H);
        model_matmul_backward(dln, model_tensor(m, g, MODEL_QKVW) + (long)l * 3 * C * C,
                              model_tensor(m, g, MODEL_QKVB) + l * 3 * C, dwide, ln1,
                              model_tensor(m, p, MODEL_QKVW) + (long)l * 3 * C * C, N, C, 3 * C);
        /* A key bias adds q.b to every score of a query row, which softmax
         * cancels: its gradient is exactly 0, and what the sum above leaves
         * is rounding noise that AdamW would blow up into lr-sized steps
         * (and into run-to-run divergence across thread and rank counts). */
        memset(model_tensor(m, g, MODEL_QKVB) + l * 3 * C + C, 0, (size_t)C * sizeof(float));
        gw = model_tensor(m, g, MODEL_LN1W) + l * C;
        gb = model_tensor(m, g, MODEL_LN1B) + l * C;
        memset(gw, 0, (size_t)C * sizeof *gw);
        memset(gb, 0, (size_t)C * sizeof *gb);
        model_layernorm_backward(dresid, gw, gb, dln, x, model_tensor(m, p, MODEL_LN1W) + l * C,
                                 m->ln1_mean + lo, m->ln1_rstd + lo, N, C);
    }
    float *gwpe = model_tensor(m, g, MODEL_WPE);
    memset(gwpe, 0, (m->offset[MODEL_WPE + 1] - m->offset[MODEL_WPE]) * sizeof *gwpe);
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
