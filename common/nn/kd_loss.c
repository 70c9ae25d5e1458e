/* kd_loss: fused KD loss and gradient for one logits row; see kd_loss.h.
 *
 * Bucket mode sets the S entries of the row to -inf before the exponential
 * pass, so that pass sums the tail directly (no 1 - sum cancellation); the S
 * entries get their values from the k saved logits afterwards. The row passes
 * (max, exp + sum, scale) are written to vectorise, like loss_cross_entropy.
 * The aux-confidence loss only rewrites the (k + 1)-entry target on the stack
 * (kd_aux_target) and runs the same kernels on it, so its gradient is exact
 * for the mixed target by construction. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif
#include "nn/kd_loss.h"

#include "base/err.h"
#include "nn/vecmath.h"

#include <float.h>
#include <math.h>
#include <string.h>

int kd_tail_parse(const char *text, kd_tail_mode *mode)
{
    if (!strcmp(text, "bucket"))
        *mode = KD_TAIL_BUCKET;
    else if (!strcmp(text, "renorm"))
        *mode = KD_TAIL_RENORM;
    else
        return err_set("'%s' is not bucket or renorm", text);
    return 0;
}

const char *kd_tail_name(kd_tail_mode mode)
{
    return mode == KD_TAIL_RENORM ? "renorm" : "bucket";
}

static double kd_bucket(float *z, int V, const int32_t *ids, const float *logprobs,
                        float tail, int k, float tau, float scale)
{
    float zs[KD_MAX_K + 1], es[KD_MAX_K + 1], qs[KD_MAX_K + 1];
    unsigned char first[KD_MAX_K + 1];
    const float inv_tau = 1.0f / tau;
    const float m = vec_max(z, V);
    for (int r = 0; r < k; r++) {
        float v = z[ids[r]];
        first[r] = !(isinf(v) && v < 0);
        zs[r] = v;
        for (int q = 0; !first[r] && q < r; q++)
            if (ids[q] == ids[r]) {
                zs[r] = zs[q];
                break;
            }
        z[ids[r]] = -INFINITY;
    }
    /* the S entries are -inf now: this pass sums the tail alone */
    float acc[16] = {0};
    int j = 0;
    for (; j + 16 <= V; j += 16)
        for (int u = 0; u < 16; u++) {
            float x = z[j + u];
            float e = vec_expf((x - m) * inv_tau);
            e = x == -INFINITY ? 0.0f : e;
            z[j + u] = e;
            acc[u] += e;
        }
    double e_tail = 0.0;
    for (; j < V; j++) {
        float x = z[j];
        float e = x == -INFINITY ? 0.0f : vec_expf((x - m) * inv_tau);
        z[j] = e;
        e_tail += e;
    }
    for (int u = 0; u < 16; u++)
        e_tail += acc[u];
    double e_all = e_tail, q_sum = 0.0, cross = 0.0;
    for (int r = 0; r < k; r++) {
        es[r] = (float)exp((double)(zs[r] - m) * inv_tau);
        if (first[r])
            e_all += es[r];
        double q = exp((double)logprobs[r]);
        qs[r] = (float)q;
        q_sum += q;
        if (q > 0.0)
            cross += q * ((double)logprobs[r] - (double)(zs[r] - m) * inv_tau);
    }
    const double log_all = log(e_all);
    const double q_tail = tail > 0.0f ? (double)tail : 0.0;
    const double e_tail_c = e_tail > DBL_MIN ? e_tail : DBL_MIN;
    double kd = cross + q_sum * log_all;
    if (q_tail > 0.0)
        kd += q_tail * (log(q_tail) - log(e_tail_c) + log_all);
    const double Q = q_sum + q_tail, g = (double)scale * tau;
    const float c_rest = (float)(g * (Q / e_all - q_tail / e_tail_c));
    for (j = 0; j < V; j++)
        z[j] *= c_rest;
    /* S entries: set by their first occurrence, a repeated id adds its term */
    for (int r = 0; r < k; r++) {
        if (first[r])
            z[ids[r]] = (float)(g * (Q * (double)es[r] / e_all - (double)qs[r]));
        else
            z[ids[r]] -= (float)(g * (double)qs[r]);
    }
    return (double)tau * tau * kd;
}

static double kd_renorm(float *z, int V, const int32_t *ids, const float *logprobs, int k, float tau,
                        float scale)
{
    float p[KD_MAX_K + 1];
    const double inv_tau = 1.0 / tau;
    double lm = logprobs[0], zm = z[ids[0]];
    for (int r = 1; r < k; r++) {
        lm = logprobs[r] > lm ? logprobs[r] : lm;
        zm = z[ids[r]] > zm ? z[ids[r]] : zm;
    }
    double lsum = 0.0, zsum = 0.0;
    for (int r = 0; r < k; r++) {
        lsum += exp(((double)logprobs[r] - lm) * inv_tau);
        zsum += exp(((double)z[ids[r]] - zm) * inv_tau);
    }
    const double log_lsum = log(lsum), log_zsum = log(zsum);
    double kd = 0.0;
    for (int r = 0; r < k; r++) {
        double log_q = ((double)logprobs[r] - lm) * inv_tau - log_lsum;
        double log_p = ((double)z[ids[r]] - zm) * inv_tau - log_zsum;
        double q = exp(log_q);
        if (q > 0.0)
            kd += q * (log_q - log_p);
        p[r] = (float)(tau * (double)scale * (exp(log_p) - q));
    }
    memset(z, 0, sizeof *z * (size_t)V);
    for (int r = 0; r < k; r++)
        z[ids[r]] += p[r];
    return kd * tau * tau;
}

double kd_loss_position(float *z, int V, const int32_t *ids, const float *logprobs,
                        float tail, int k, float tau, kd_tail_mode mode, float scale)
{
    if (mode == KD_TAIL_BUCKET)
        return kd_bucket(z, V, ids, logprobs, tail, k, tau, scale);
    return kd_renorm(z, V, ids, logprobs, k, tau, scale);
}

float kd_aux_weight(double beta, long step, long warmup)
{
    if (warmup <= 0 || step >= warmup)
        return (float)beta;
    return (float)(beta * (double)(step > 0 ? step : 0) / (double)warmup);
}

int32_t kd_argmax(const float *z, int V)
{
    const float m = vec_max(z, V);
    int32_t j = 0;
    while (j < V - 1 && !(z[j] == m))
        j++;
    return j;
}

int kd_aux_target(const int32_t *ids, const float *logprobs, float tail, int k, int32_t a, float b,
                  float tau, kd_tail_mode mode, int32_t *out_ids, float *out_logprobs, float *out_tail)
{
    const double keep = 1.0 - (double)b;
    int at = -1;
    for (int r = 0; r < k && at < 0; r++)
        if (ids[r] == a)
            at = r;
    /* the teacher's probabilities on S as the mode sees them */
    double lm = logprobs[0], norm = 1.0, scale_log = 1.0, shift = 0.0;
    if (mode == KD_TAIL_RENORM) {
        for (int r = 1; r < k; r++)
            lm = logprobs[r] > lm ? logprobs[r] : lm;
        norm = 0.0;
        for (int r = 0; r < k; r++)
            norm += exp(((double)logprobs[r] - lm) / tau);
        scale_log = tau;
        shift = lm;
    }
    for (int r = 0; r < k; r++) {
        double q = mode == KD_TAIL_RENORM ? exp(((double)logprobs[r] - shift) / tau) / norm
                                          : exp((double)logprobs[r]);
        q = keep * q + (r == at ? (double)b : 0.0);
        out_ids[r] = ids[r];
        out_logprobs[r] = q > 0.0 ? (float)(scale_log * log(q)) : -INFINITY;
    }
    *out_tail = mode == KD_TAIL_RENORM || !(tail > 0.0f) ? 0.0f : (float)(keep * (double)tail);
    if (at >= 0)
        return k;
    out_ids[k] = a;
    out_logprobs[k] = b > 0.0f ? (float)(scale_log * log((double)b)) : -INFINITY;
    return k + 1;
}

double kd_loss_position_aux(float *z, int V, const int32_t *ids, const float *logprobs, float tail, int k,
                            float tau, kd_tail_mode mode, float b, float scale)
{
    if (!(b > 0.0f))
        return kd_loss_position(z, V, ids, logprobs, tail, k, tau, mode, scale);
    int32_t mixed_ids[KD_MAX_K + 1];
    float mixed_lp[KD_MAX_K + 1], mixed_tail;
    int km = kd_aux_target(ids, logprobs, tail, k, kd_argmax(z, V), b, tau, mode, mixed_ids, mixed_lp,
                           &mixed_tail);
    if (mode == KD_TAIL_BUCKET)
        return kd_bucket(z, V, mixed_ids, mixed_lp, mixed_tail, km, tau, scale);
    return kd_renorm(z, V, mixed_ids, mixed_lp, km, tau, scale);
}
