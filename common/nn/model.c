/* model: configuration, creation and GPT-2 initialisation; the passes live
 * in model_pass.c, the optimiser in model_adamw.c, the kernels in
 * model_layers.c. Creation sizes and touches every buffer once (first touch
 * is slow: README, "Memory and speed"), so a training step never allocates. */
#include "nn/model.h"

#include "base/err.h"
#include "base/mem.h"
#include "nn/model_internal.h"
#include "base/rng.h"

#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds that keep every size product far from overflow and reject corrupt
 * headers early; real models are orders of magnitude inside them. */
#define MAX_VOCAB (1 << 20)
#define MAX_LAYERS 1024
#define MAX_CHANNELS (1 << 16)
#define MAX_SEQ (1 << 16)
#define MAX_PARAMS ((size_t)1 << 34)

int model_config_preset(const char *name, model_config *cfg)
{
    if (strcmp(name, "tiny") == 0) {
        cfg->layers = 2, cfg->heads = 4, cfg->channels = 128, cfg->seq_len = 128;
    } else if (strcmp(name, "small") == 0) {
        cfg->layers = 6, cfg->heads = 6, cfg->channels = 384, cfg->seq_len = 256;
    } else {
        return err_set("unknown model preset '%s' (known: tiny, small)", name);
    }
    return 0;
}

static void tensor_sizes(const model_config *c, size_t size[MODEL_NUM_TENSORS])
{
    size_t V = (size_t)c->vocab, L = (size_t)c->layers, C = (size_t)c->channels,
           T = (size_t)c->seq_len;
    size[MODEL_WTE] = V * C;
    size[MODEL_WPE] = T * C;
    size[MODEL_LN1W] = size[MODEL_LN1B] = L * C;
    size[MODEL_QKVW] = L * 3 * C * C;
    size[MODEL_QKVB] = L * 3 * C;
    size[MODEL_APW] = L * C * C;
    size[MODEL_APB] = L * C;
    size[MODEL_LN2W] = size[MODEL_LN2B] = L * C;
    size[MODEL_FCW] = L * 4 * C * C;
    size[MODEL_FCB] = L * 4 * C;
    size[MODEL_FPW] = L * C * 4 * C;
    size[MODEL_FPB] = L * C;
    size[MODEL_LNFW] = size[MODEL_LNFB] = C;
}

int model_config_check(const model_config *c)
{
    if (c->vocab < 1 || c->vocab > MAX_VOCAB)
        return err_set("model config: vocab %d outside 1..%d", c->vocab, MAX_VOCAB);
    if (c->layers < 1 || c->layers > MAX_LAYERS)
        return err_set("model config: layers %d outside 1..%d", c->layers, MAX_LAYERS);
    if (c->channels < 1 || c->channels > MAX_CHANNELS)
        return err_set("model config: channels %d outside 1..%d", c->channels, MAX_CHANNELS);
    if (c->heads < 1 || c->heads > c->channels || c->channels % c->heads != 0)
        return err_set("model config: channels %d not divisible into %d heads", c->channels,
                       c->heads);
    if (c->seq_len < 1 || c->seq_len > MAX_SEQ)
        return err_set("model config: seq_len %d outside 1..%d", c->seq_len, MAX_SEQ);
    if (model_config_num_params(c) > MAX_PARAMS)
        return err_set("model config: %zu parameters, more than %zu",
                       model_config_num_params(c), MAX_PARAMS);
    return 0;
}

size_t model_config_num_params(const model_config *cfg)
{
    size_t size[MODEL_NUM_TENSORS], n = 0;
    tensor_sizes(cfg, size);
    for (int i = 0; i < MODEL_NUM_TENSORS; i++)
        n += size[i];
    return n;
}

/* Carves the activation buffer: with base == NULL only counts floats. */
static size_t layout_acts(model *m, float *base)
{
    size_t L = (size_t)m->cfg.layers, C = (size_t)m->cfg.channels, H = (size_t)m->cfg.heads,
           T = (size_t)m->cfg.seq_len, V = (size_t)m->cfg.vocab, B = (size_t)m->max_rows;
    size_t BT = B * T, used = 0;
    size_t R = L + 1;
    if (!m->grads) {   /* inference: one layer's slots, two residual ones */
        L = 1;
        R = 2;
    }
#define CARVE(field, count) \
    do { m->field = base ? base + used : NULL; used += ((count) + 15) & ~(size_t)15; } while (0)
    CARVE(resid, R * BT * C);
    CARVE(mid, L * BT * C);
    CARVE(ln1, L * BT * C);
    CARVE(ln1_mean, L * BT);
    CARVE(ln1_rstd, L * BT);
    CARVE(qkv, L * BT * 3 * C);
    CARVE(att, L * B * H * T * T);
    CARVE(atty, L * BT * C);
    CARVE(ln2, L * BT * C);
    CARVE(ln2_mean, L * BT);
    CARVE(ln2_rstd, L * BT);
    CARVE(fch, L * BT * 4 * C);
    CARVE(fcg, L * BT * 4 * C);
    CARVE(lnf, BT * C);
    CARVE(lnf_mean, BT);
    CARVE(lnf_rstd, BT);
    CARVE(logits, BT * V);
    if (m->grads) {
        CARVE(dresid, BT * C);
        CARVE(dln, BT * C);
        CARVE(datty, BT * C);
        CARVE(dwide, BT * 4 * C);
        CARVE(dscratch, (size_t)m->threads * T * T);
    }
#undef CARVE
    return used;
}

static model *create(const model_config *cfg, int max_rows, int threads, bool training)
{
    if (model_config_check(cfg) < 0)
        return NULL;
    if (max_rows < 1 || (long)max_rows * cfg->seq_len > (1L << 30)) {
        err_set("model: max_rows %d outside 1..%ld", max_rows, (1L << 30) / cfg->seq_len);
        return NULL;
    }
    model *m = mem_calloc(1, sizeof *m, "model");
    if (!m)
        return NULL;
    m->cfg = *cfg;
    m->max_rows = max_rows;
    m->pool = parallel_create(threads);
    if (!m->pool)
        goto fail;
    m->threads = parallel_threads(m->pool);
    /* The model parallelises over rows itself, each thread calling OpenBLAS
     * single-threaded, so OpenBLAS's own workers stay asleep. */
    openblas_set_num_threads(1);

    size_t size[MODEL_NUM_TENSORS];
    tensor_sizes(cfg, size);
    m->offset[0] = 0;
    for (int i = 0; i < MODEL_NUM_TENSORS; i++)
        m->offset[i + 1] = m->offset[i] + size[i];
    m->num_params = m->offset[MODEL_NUM_TENSORS];
    size_t pbytes = m->num_params * sizeof(float);
    if (!(m->params = mem_alloc_big(pbytes, "model parameters")))
        goto fail;
    if (training &&
        (!(m->grads = mem_alloc_big(pbytes, "model gradients")) ||
         !(m->adam_m = mem_alloc_big(pbytes, "AdamW first moments")) ||
         !(m->adam_v = mem_alloc_big(pbytes, "AdamW second moments")) ||
         (m->threads > 1 &&
          !(m->partial = mem_alloc_big((size_t)(m->threads - 1) * pbytes, "per-thread gradients")))))
        goto fail;
    size_t nacts = layout_acts(m, NULL);
    if (!(m->acts = mem_alloc_big(nacts * sizeof(float), "model activations")))
        goto fail;
    layout_acts(m, m->acts);
    size_t BT = (size_t)max_rows * (size_t)cfg->seq_len;
    if (!(m->seg = mem_calloc((size_t)m->threads * ((size_t)cfg->seq_len + 1), sizeof *m->seg,
                              "attention segments")) ||
        !(m->tokens = mem_calloc(BT, sizeof *m->tokens, "model tokens")) ||
        !(m->pos = mem_calloc(BT, sizeof *m->pos, "model positions")) ||
        !(m->thread_sums = mem_calloc((size_t)m->threads, sizeof *m->thread_sums,
                                      "model thread sums")))
        goto fail;
    return m;
fail:
    model_free(m);
    return NULL;
}

model *model_create(const model_config *cfg, int max_rows, int threads)
{
    return create(cfg, max_rows, threads, true);
}

model *model_create_inference(const model_config *cfg, int max_rows, int threads)
{
    return create(cfg, max_rows, threads, false);
}

void model_free(model *m)
{
    if (!m)
        return;
    parallel_free(m->pool);
    mem_free_big(m->params);
    mem_free_big(m->grads);
    mem_free_big(m->adam_m);
    mem_free_big(m->adam_v);
    mem_free_big(m->partial);
    mem_free_big(m->acts);
    free(m->seg);
    free(m->tokens);
    free(m->pos);
    free(m->thread_sums);
    if (m->bf16)
        for (int i = 0; i < m->threads; i++)
            matmul_bf16_free(m->bf16[i]);
    free(m->bf16);
    mem_free_big(m->params_bf16);
    free(m);
}

const model_config *model_get_config(const model *m) { return &m->cfg; }
size_t model_num_params(const model *m) { return m->num_params; }
float *model_params(model *m)
{
    m->bf16_stale = 1;
    return m->params;
}
float *model_grads(model *m) { return m->grads; }
float *model_adam_m(model *m) { return m->adam_m; }
float *model_adam_v(model *m) { return m->adam_v; }
int model_threads(const model *m) { return m->threads; }

void model_init_gpt2(model *m, uint64_t seed)
{
    rng_state rng;
    rng_seed(&rng, seed);
    float resid_std = 0.02f / sqrtf(2.0f * (float)m->cfg.layers);
    for (int i = 0; i < MODEL_NUM_TENSORS; i++) {
        float *p = model_tensor(m, m->params, i);
        size_t n = m->offset[i + 1] - m->offset[i];
        float std = 0.0f, fill = 0.0f;
        switch (i) {
        case MODEL_WTE: case MODEL_WPE: case MODEL_QKVW: case MODEL_FCW:
            std = 0.02f;
            break;
        case MODEL_APW: case MODEL_FPW:
            std = resid_std;
            break;
        case MODEL_LN1W: case MODEL_LN2W: case MODEL_LNFW:
            fill = 1.0f;
            break;
        default:
            break;
        }
        for (size_t k = 0; k < n; k++)
            p[k] = std > 0.0f ? std * rng_normal(&rng) : fill;
    }
    if (m->adam_m) {
        memset(m->adam_m, 0, m->num_params * sizeof(float));
        memset(m->adam_v, 0, m->num_params * sizeof(float));
    }
    m->bf16_stale = 1;
}

int model_precision_parse(const char *name, model_precision *out)
{
    if (!strcmp(name, "fp32")) {
        *out = MODEL_FP32;
    } else if (!strcmp(name, "bf16")) {
        if (!matmul_bf16_available())
            return -1;
        *out = MODEL_BF16;
    } else if (!strcmp(name, "auto")) {
        *out = matmul_bf16_available() && matmul_bf16_native() ? MODEL_BF16 : MODEL_FP32;
    } else {
        err_set("precision '%s' is not fp32, bf16 or auto", name);
        return -1;
    }
    return 0;
}

const char *model_precision_name(model_precision p)
{
    return p == MODEL_BF16 ? "bf16" : "fp32";
}

void model_precision_describe(model_precision p, char *buf, size_t size)
{
    if (p == MODEL_BF16)
        snprintf(buf, size, "bf16 (oneDNN, %s, %s)", matmul_bf16_isa(),
                 matmul_bf16_native() ? "native" : "emulated");
    else
        snprintf(buf, size, "fp32 (OpenBLAS)");
}

/* Per-thread conversion buffers for the largest products of a thread's
 * rows: slot 0 takes a product's activation or output gradient (up to the
 * logits' vocab wide), slot 1 a weight gradient's input (up to 4C). */
static int reserve_bf16(model *m)
{
    long rows = (m->max_rows + m->threads - 1) / m->threads;
    long n = rows * m->cfg.seq_len, C = m->cfg.channels;
    long wide = 4 * C > m->cfg.vocab ? 4 * C : m->cfg.vocab;
    for (int i = 0; i < m->threads; i++)
        if (matmul_bf16_reserve(m->bf16[i], n * wide, m->grads ? n * 4 * C : 0) < 0)
            return -1;
    return 0;
}

int model_set_precision(model *m, model_precision p)
{
    if (p == MODEL_BF16 && !m->bf16) {
        if (!matmul_bf16_available())
            return -1;
        if (!(m->params_bf16 = mem_alloc_big(m->num_params * sizeof *m->params_bf16,
                                             "bfloat16 parameters")) ||
            !(m->bf16 = mem_calloc((size_t)m->threads, sizeof *m->bf16, "bfloat16 contexts")))
            return -1;
        for (int i = 0; i < m->threads; i++)
            if (!(m->bf16[i] = matmul_bf16_create(1)))
                return -1;
        if (reserve_bf16(m) < 0)
            return -1;
    }
    m->precision = p;
    m->bf16_stale = 1;
    return 0;
}

model_precision model_get_precision(const model *m) { return m->precision; }
