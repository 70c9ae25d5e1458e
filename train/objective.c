/* objective: thread-split CE and KD over a batch of logits; see objective.h. */
#include "objective.h"

#include "base/err.h"
#include "nn/loss.h"
#include "base/mem.h"
#include "base/parallel.h"

#include <stdlib.h>
#include <string.h>

enum { MAX_PARTS = 256 };

struct objective {
    parallel_pool *pool;
};

typedef struct job {
    float *logits;
    const int32_t *targets, *ids;
    const float *logprobs, *tail;
    int k, V;
    long n;
    float scale;
    const objective_kd_spec *kd;
    double sums[MAX_PARTS];
} job;

objective *objective_create(int threads)
{
    objective *o = mem_calloc(1, sizeof *o, "loss threads");
    if (!o)
        return NULL;
    o->pool = parallel_create(threads > MAX_PARTS ? MAX_PARTS : threads);
    if (!o->pool) {
        free(o);
        return NULL;
    }
    return o;
}

void objective_free(objective *o)
{
    if (!o)
        return;
    parallel_free(o->pool);
    free(o);
}

static double total(const job *j, int parts)
{
    double s = 0.0;
    for (int t = 0; t < parts; t++)
        s += j->sums[t];
    return s;
}

static void ce_part(void *ctx, int tid, int nthreads)
{
    job *j = ctx;
    long begin, end;
    parallel_split(j->n, tid, nthreads, &begin, &end);
    j->sums[tid] = loss_cross_entropy(j->logits + begin * (long)j->V, j->targets + begin, end - begin,
                                      j->V, j->scale);
}

double objective_ce(objective *o, float *logits, const int32_t *targets, long n, int V, float scale)
{
    job j = {.logits = logits, .targets = targets, .n = n, .V = V, .scale = scale};
    parallel_run(o->pool, ce_part, &j);
    return total(&j, parallel_threads(o->pool));
}

static void kd_part(void *ctx, int tid, int nthreads)
{
    job *j = ctx;
    long begin, end;
    parallel_split(j->n, tid, nthreads, &begin, &end);
    const objective_kd_spec *kd = j->kd;
    double sum = 0.0;
    for (long i = begin; i < end; i++) {
        float *row = j->logits + i * (long)j->V;
        const float w = kd->weights ? kd->weights[i] : 1.0f;
        if (j->targets[i] < 0 || !(w > 0.0f)) {
            memset(row, 0, sizeof *row * (size_t)j->V);
            continue;
        }
        const int32_t *ids = j->ids + i * j->k;
        const float *lp = j->logprobs + i * j->k;
        if (kd->div.kind == KD_LOSS_FKL)
            sum += w * kd_loss_position_aux(row, j->V, ids, lp, j->tail[i], j->k, kd->tau, kd->mode,
                                            kd->aux, w * j->scale);
        else
            sum += w * kd_divergence_position(row, j->V, ids, lp, j->tail[i], j->k, kd->tau, kd->mode,
                                              &kd->div, w * j->scale);
    }
    j->sums[tid] = sum;
}

double objective_kd(objective *o, float *logits, const int32_t *targets, const int32_t *ids,
                    const float *logprobs, const float *tail, int k, long n, int V,
                    const objective_kd_spec *spec, float scale)
{
    job j = {.logits = logits, .targets = targets, .ids = ids, .logprobs = logprobs, .tail = tail,
             .k = k, .V = V, .n = n, .scale = scale, .kd = spec};
    parallel_run(o->pool, kd_part, &j);
    return total(&j, parallel_threads(o->pool));
}

float objective_aux_weight(double beta, long warmup, long total_steps, long step)
{
    return kd_aux_weight(beta, step, warmup >= 0 ? warmup : total_steps / 5);
}
