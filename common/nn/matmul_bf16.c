/* matmul_bf16: bfloat16 products through oneDNN's matmul primitive; see
 * matmul_bf16.h. One process-wide CPU engine; each context owns a stream,
 * its primitives (one per shape, with memory objects whose data handles are
 * set per call) and two conversion buffers. */
#include "nn/matmul_bf16.h"

#include "base/err.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Shapes a context keeps primitives for: a model uses 3 per weight matrix
 * (forward, input gradient, weight gradient) for each batch shape. */
#define CACHE_SLOTS 48

typedef struct shape_key {
    long m, n, k;
    int trans_a, trans_b, accumulate;
} shape_key;

typedef struct cached_primitive {
    shape_key key;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c;
} cached_primitive;

struct matmul_bf16 {
    int threads;
    dnnl_stream_t stream;
    cached_primitive cache[CACHE_SLOTS];
    int used, next_victim;
    uint16_t *buf[2];
    long cap[2];
};

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static char probe_error[256];

static void probe(void)
{
    dnnl_status_t st = dnnl_engine_create(&engine, dnnl_cpu, 0);
    if (st != dnnl_success) {
        snprintf(probe_error, sizeof probe_error, "oneDNN: no CPU engine (status %d)", (int)st);
        engine = NULL;
        return;
    }
    /* A bf16 matmul only exists from AVX-512 (emulated) up. */
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {16, 16};
    dnnl_matmul_desc_t mm;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_desc_t cd;
    if (dnnl_memory_desc_init_by_tag(&md, 2, dims, dnnl_bf16, dnnl_ab) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&cd, 2, dims, dnnl_f32, dnnl_ab) != dnnl_success ||
        dnnl_matmul_desc_init(&mm, &md, &md, NULL, &cd) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &mm, NULL, engine, NULL) != dnnl_success)
        goto refuse;
    dnnl_primitive_desc_destroy(pd);
    return;
refuse:
    snprintf(probe_error, sizeof probe_error,
             "oneDNN has no bfloat16 matmul on this CPU (ISA %s)", matmul_bf16_isa());
    dnnl_engine_destroy(engine);
    engine = NULL;
}

int matmul_bf16_available(void)
{
    pthread_once(&probe_once, probe);
    if (!engine) {
        err_set("%s", probe_error);
        return 0;
    }
    return 1;
}

int matmul_bf16_native(void)
{
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) == (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}

const char *matmul_bf16_isa(void)
{
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

void matmul_bf16_from_f32(uint16_t *dst, const float *src, long n)
{
    for (long i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], sizeof u);
        /* Round half to even on the dropped 16 bits; a NaN keeps a mantissa bit. */
        uint32_t r = (u & 0x7fffffffu) > 0x7f800000u ? u | 0x00400000u
                                                     : u + 0x7fffu + ((u >> 16) & 1u);
        dst[i] = (uint16_t)(r >> 16);
    }
}

void matmul_bf16_to_f32(float *dst, const uint16_t *src, long n)
{
    for (long i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        memcpy(&dst[i], &u, sizeof u);
    }
}

matmul_bf16 *matmul_bf16_create(int threads)
{
    if (!matmul_bf16_available())
        return NULL;
    matmul_bf16 *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        err_set("matmul_bf16: out of memory for a context");
        return NULL;
    }
    ctx->threads = threads < 1 ? 1 : threads;
    if (dnnl_stream_create(&ctx->stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        err_set("matmul_bf16: oneDNN refused a stream");
        free(ctx);
        return NULL;
    }
    return ctx;
}

static void release(cached_primitive *p)
{
    dnnl_primitive_destroy(p->prim);
    dnnl_memory_destroy(p->a);
    dnnl_memory_destroy(p->b);
    dnnl_memory_destroy(p->c);
    memset(p, 0, sizeof *p);
}

void matmul_bf16_free(matmul_bf16 *ctx)
{
    if (!ctx)
        return;
    for (int i = 0; i < ctx->used; i++)
        release(&ctx->cache[i]);
    dnnl_stream_destroy(ctx->stream);
    free(ctx->buf[0]);
    free(ctx->buf[1]);
    free(ctx);
}

static int grow(matmul_bf16 *ctx, int slot, long n)
{
    if (n <= ctx->cap[slot])
        return 0;
    uint16_t *b = realloc(ctx->buf[slot], (size_t)n * sizeof *b);
    if (!b) {
        err_set("matmul_bf16: out of memory for %ld bfloat16 values", n);
        return -1;
    }
    ctx->buf[slot] = b;
    ctx->cap[slot] = n;
    return 0;
}

int matmul_bf16_reserve(matmul_bf16 *ctx, long n_slot0, long n_slot1)
{
    return grow(ctx, 0, n_slot0) < 0 || grow(ctx, 1, n_slot1) < 0 ? -1 : 0;
}

uint16_t *matmul_bf16_convert(matmul_bf16 *ctx, int slot, const float *x, long n)
{
    if (grow(ctx, slot, n) < 0)
        return NULL;
    matmul_bf16_from_f32(ctx->buf[slot], x, n);
    return ctx->buf[slot];
}

/* A (rows, cols) operand of the product stored row-major, or transposed:
 * stored (cols, rows) row-major, read through swapped strides. */
static dnnl_status_t operand_desc(dnnl_memory_desc_t *md, long rows, long cols, int trans,
                                  dnnl_data_type_t type)
{
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {trans ? 1 : cols, trans ? rows : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides);
}

static int create_primitive(const shape_key *k, cached_primitive *p)
{
    dnnl_memory_desc_t ad, bd, cd;
    dnnl_matmul_desc_t mm;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int rc = -1;
    memset(p, 0, sizeof *p);
    if (operand_desc(&ad, k->m, k->k, k->trans_a, dnnl_bf16) != dnnl_success ||
        operand_desc(&bd, k->k, k->n, k->trans_b, dnnl_bf16) != dnnl_success ||
        operand_desc(&cd, k->m, k->n, 0, dnnl_f32) != dnnl_success ||
        dnnl_matmul_desc_init(&mm, &ad, &bd, NULL, &cd) != dnnl_success ||
        dnnl_primitive_attr_create(&attr) != dnnl_success)
        goto done;
    if (k->accumulate &&
        (dnnl_post_ops_create(&ops) != dnnl_success ||
         dnnl_post_ops_append_sum(ops, 1.0f) != dnnl_success ||
         dnnl_primitive_attr_set_post_ops(attr, ops) != dnnl_success))
        goto done;
    if (dnnl_primitive_desc_create(&pd, &mm, attr, engine, NULL) != dnnl_success ||
        dnnl_primitive_create(&p->prim, pd) != dnnl_success)
        goto done;
    if (dnnl_memory_create(&p->a, &ad, engine, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&p->b, &bd, engine, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&p->c, &cd, engine, DNNL_MEMORY_NONE) != dnnl_success)
        goto done;
    p->key = *k;
    rc = 0;
done:
    if (rc < 0) {
        err_set("matmul_bf16: oneDNN refused a %ld x %ld x %ld product", k->m, k->n, k->k);
        release(p);
    }
    dnnl_primitive_desc_destroy(pd);
    dnnl_post_ops_destroy(ops);
    dnnl_primitive_attr_destroy(attr);
    return rc;
}

static cached_primitive *lookup(matmul_bf16 *ctx, const shape_key *k)
{
    for (int i = 0; i < ctx->used; i++)
        if (!memcmp(&ctx->cache[i].key, k, sizeof *k))
            return &ctx->cache[i];
    cached_primitive *p;
    if (ctx->used < CACHE_SLOTS) {
        p = &ctx->cache[ctx->used];
    } else {
        p = &ctx->cache[ctx->next_victim];
        ctx->next_victim = (ctx->next_victim + 1) % CACHE_SLOTS;
        release(p);
    }
    if (create_primitive(k, p) < 0)
        return NULL;
    if (p == &ctx->cache[ctx->used])
        ctx->used++;
    return p;
}

int matmul_bf16_gemm(matmul_bf16 *ctx, int trans_a, int trans_b, long M, long N, long K,
                     const uint16_t *a, const uint16_t *b, float *c, int accumulate)
{
    shape_key key;
    memset(&key, 0, sizeof key); /* padding too: keys compare with memcmp */
    key.m = M;
    key.n = N;
    key.k = K;
    key.trans_a = !!trans_a;
    key.trans_b = !!trans_b;
    key.accumulate = !!accumulate;
    cached_primitive *p = lookup(ctx, &key);
    if (!p)
        return -1;
    /* OpenMP thread counts are per calling thread: set ours before each run. */
    omp_set_num_threads(ctx->threads);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, p->a}, {DNNL_ARG_WEIGHTS, p->b},
                               {DNNL_ARG_DST, p->c}};
    if (dnnl_memory_set_data_handle(p->a, (void *)a) != dnnl_success ||
        dnnl_memory_set_data_handle(p->b, (void *)b) != dnnl_success ||
        dnnl_memory_set_data_handle(p->c, c) != dnnl_success ||
        dnnl_primitive_execute(p->prim, ctx->stream, 3, args) != dnnl_success ||
        dnnl_stream_wait(ctx->stream) != dnnl_success) {
        err_set("matmul_bf16: oneDNN failed a %ld x %ld x %ld product", M, N, K);
        return -1;
    }
    return 0;
}
