/* model_adamw: AdamW with global-norm clipping over the flat buffers, and
 * the learning-rate schedule. The norm is reduced per thread over a fixed
 * slice in double, then summed in thread order, so it is deterministic for a
 * thread count. GCC will not vectorise sqrtf while errno handling is on
 * (the project's flags keep it on), so the update has an AVX version; both
 * versions do the same correctly rounded IEEE operations in the same order
 * (no contraction into FMA), so they give identical bits. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif
#include "nn/model.h"

#include "nn/model_internal.h"
#include "nn/vecmath.h"

#include <math.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

typedef struct adamw_job {
    model *m;
    const adamw_config *cfg;
    long step;
    float norm;
} adamw_job;

/* 1 for the 2-D weight matrices that take weight decay. */
static int decays(int tensor)
{
    switch (tensor) {
    case MODEL_WTE: case MODEL_WPE: case MODEL_QKVW: case MODEL_APW: case MODEL_FCW: case MODEL_FPW:
        return 1;
    default:
        return 0;
    }
}

static void update(float *p, const float *g, float *mm, float *vv, long n, float lr, float b1,
                   float b2, float eps, float decay, float gscale, float c1, float c2)
{
    long k = 0;
#ifdef __AVX__
    const __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2),
                 va1 = _mm256_set1_ps(1.0f - b1), va2 = _mm256_set1_ps(1.0f - b2),
                 vc1 = _mm256_set1_ps(c1), vc2 = _mm256_set1_ps(c2), veps = _mm256_set1_ps(eps),
                 vlr = _mm256_set1_ps(lr), vdec = _mm256_set1_ps(decay),
                 vgs = _mm256_set1_ps(gscale);
    for (; k + 8 <= n; k += 8) {
        __m256 gk = _mm256_mul_ps(_mm256_loadu_ps(g + k), vgs);
        __m256 mk = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(mm + k)),
                                  _mm256_mul_ps(va1, gk));
        __m256 vk = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(vv + k)),
                                  _mm256_mul_ps(_mm256_mul_ps(va2, gk), gk));
        _mm256_storeu_ps(mm + k, mk);
        _mm256_storeu_ps(vv + k, vk);
        __m256 mhat = _mm256_div_ps(mk, vc1), vhat = _mm256_div_ps(vk, vc2);
        __m256 pk = _mm256_loadu_ps(p + k);
        __m256 upd = _mm256_add_ps(_mm256_div_ps(mhat, _mm256_add_ps(_mm256_sqrt_ps(vhat), veps)),
                                   _mm256_mul_ps(vdec, pk));
        _mm256_storeu_ps(p + k, _mm256_sub_ps(pk, _mm256_mul_ps(vlr, upd)));
    }
#endif
    for (; k < n; k++) {
        float gk = g[k] * gscale;
        float mk = b1 * mm[k] + (1.0f - b1) * gk;
        float vk = b2 * vv[k] + (1.0f - b2) * gk * gk;
        mm[k] = mk;
        vv[k] = vk;
        float mhat = mk / c1, vhat = vk / c2;
        p[k] -= lr * (mhat / (sqrtf(vhat) + eps) + decay * p[k]);
    }
}

static void adamw_region(void *ctx, int tid, int nthreads)
{
    adamw_job *job = ctx;
    model *m = job->m;
    const adamw_config *cfg = job->cfg;
    long b, e;
    parallel_split((long)m->num_params, tid, nthreads, &b, &e);
    double sq = 0.0;
    for (long k = b; k < e; k += 4096) {
        int n = e - k < 4096 ? (int)(e - k) : 4096;
        sq += vec_dot(m->grads + k, m->grads + k, n);
    }
    m->thread_sums[tid] = sq;
    parallel_barrier(m->pool);
    double total = 0.0;
    for (int i = 0; i < nthreads; i++)
        total += m->thread_sums[i];
    float norm = (float)sqrt(total);
    float gscale = cfg->clip > 0.0f && norm > cfg->clip ? cfg->clip / norm : 1.0f;
    if (tid == 0)
        job->norm = norm;
    float c1 = 1.0f - powf(cfg->beta1, (float)job->step);
    float c2 = 1.0f - powf(cfg->beta2, (float)job->step);
    for (int i = 0; i < MODEL_NUM_TENSORS; i++) {
        long lo = (long)m->offset[i] > b ? (long)m->offset[i] : b;
        long hi = (long)m->offset[i + 1] < e ? (long)m->offset[i + 1] : e;
        if (lo >= hi)
            continue;
        update(m->params + lo, m->grads + lo, m->adam_m + lo, m->adam_v + lo, hi - lo, cfg->lr,
               cfg->beta1, cfg->beta2, cfg->eps, decays(i) ? cfg->weight_decay : 0.0f, gscale,
               c1, c2);
    }
}

float model_adamw_step(model *m, const adamw_config *cfg, long step)
{
    if (!m->grads)
        return 0.0f;
    adamw_job job = {m, cfg, step < 1 ? 1 : step, 0.0f};
    parallel_run(m->pool, adamw_region, &job);
    m->bf16_stale = 1;
    return job.norm;
}

float model_lr_schedule(float peak, long step, long warmup, long total)
{
    if (step < 1)
        step = 1;
    if (step <= warmup)
        return peak * (float)step / (float)warmup;
    float floor_lr = 0.1f * peak;
    if (total <= warmup)
        return floor_lr;
    double progress = (double)(step - warmup) / (double)(total - warmup);
    if (progress > 1.0)
        progress = 1.0;
    return floor_lr + 0.5f * (peak - floor_lr) * (float)(1.0 + cos(M_PI * progress));
}
