/* kd_divergence: the general divergences on the stored partition; see
 * kd_divergence.h. Each position is reduced to at most k + 1 cells (the
 * distinct top-k ids, plus the tail bucket), the divergence and its
 * log-derivatives h_c are computed there in double, and one pass over the row
 * writes the chain rule through the softmax. The row passes mirror kd_loss.c's
 * bucket kernel: the S entries are set to -inf so the exponential pass sums
 * the tail alone. */
#include "nn/kd_divergence.h"

#include "base/err.h"
#include "nn/vecmath.h"

#include <float.h>
#include <math.h>
#include <string.h>

static const char *const kind_names[] = {"fkl", "rkl", "gjsd", "skl", "srkl", "tvd"};

int kd_loss_kind_parse(const char *text, kd_loss_kind *kind)
{
    for (int i = 0; i < (int)(sizeof kind_names / sizeof *kind_names); i++)
        if (!strcmp(text, kind_names[i])) {
            *kind = (kd_loss_kind)i;
            return 0;
        }
    return err_set("'%s' is not one of fkl, rkl, gjsd, skl, srkl, tvd", text);
}

const char *kd_loss_kind_name(kd_loss_kind kind)
{
    return kind_names[kind];
}

int kd_loss_kind_sampled_ok(kd_loss_kind kind)
{
    return kind == KD_LOSS_FKL;
}

/* The partition of one position: n cells, the first n_s of them ids. */
typedef struct cells {
    int n, n_s;
    int32_t id[KD_MAX_K + 1];
    double q[KD_MAX_K + 1], log_q[KD_MAX_K + 1], p[KD_MAX_K + 1], log_p[KD_MAX_K + 1];
} cells;

static double log_add(double a, double b)
{
    double hi = a > b ? a : b, lo = a > b ? b : a;
    if (hi == -INFINITY)
        return -INFINITY;
    return hi + log1p(exp(lo - hi));
}

/* Merges the top-k into distinct cells; log_q is the teacher's log-prob as
 * stored (bucket) or divided by tau (renorm, normalised later). */
static void collect_ids(cells *c, const int32_t *ids, const float *logprobs, int k, double inv_tau)
{
    c->n_s = 0;
    for (int r = 0; r < k; r++) {
        double lq = (double)logprobs[r] * inv_tau;
        int at = 0;
        while (at < c->n_s && c->id[at] != ids[r])
            at++;
        if (at == c->n_s) {
            c->id[at] = ids[r];
            c->log_q[at] = lq;
            c->n_s++;
        } else {
            c->log_q[at] = log_add(c->log_q[at], lq);
        }
    }
}

/* Bucket: p of every cell from the row (left holding exp((z - max) / tau)
 * outside S and 0 on S); @return the tail's sum of those exponentials. */
static double bucket_cells(cells *c, float *z, int V, float tail, double inv_tau)
{
    float m = vec_max(z, V);
    double zs[KD_MAX_K + 1];
    for (int i = 0; i < c->n_s; i++) {
        zs[i] = ((double)z[c->id[i]] - m) * inv_tau;
        z[c->id[i]] = -INFINITY;
    }
    double e_tail = 0.0;
    for (int j = 0; j < V; j++) {
        float e = z[j] == -INFINITY ? 0.0f : (float)exp(((double)z[j] - m) * inv_tau);
        z[j] = e;
        e_tail += e;
    }
    double e_all = e_tail;
    for (int i = 0; i < c->n_s; i++)
        e_all += exp(zs[i]);
    const double log_all = log(e_all);
    for (int i = 0; i < c->n_s; i++)
        c->log_p[i] = zs[i] - log_all;
    const double e_tail_c = e_tail > DBL_MIN ? e_tail : DBL_MIN;
    c->n = c->n_s + 1;
    c->log_p[c->n_s] = log(e_tail_c) - log_all;
    c->log_q[c->n_s] = tail > 0.0f ? log((double)tail) : -INFINITY;
    return e_tail_c;
}

/* Renorm: the teacher's log_q (already / tau) and the student's log p
 * normalised over the distinct ids. */
static void renorm_cells(cells *c, const float *z, double inv_tau)
{
    double lq_max = c->log_q[0], zm = z[c->id[0]];
    for (int i = 1; i < c->n_s; i++) {
        lq_max = c->log_q[i] > lq_max ? c->log_q[i] : lq_max;
        zm = z[c->id[i]] > zm ? z[c->id[i]] : zm;
    }
    double qsum = 0.0, psum = 0.0;
    for (int i = 0; i < c->n_s; i++) {
        qsum += exp(c->log_q[i] - lq_max);
        psum += exp(((double)z[c->id[i]] - zm) * inv_tau);
    }
    const double lq_norm = lq_max + log(qsum), lp_norm = log(psum);
    for (int i = 0; i < c->n_s; i++) {
        c->log_q[i] -= lq_norm;
        c->log_p[i] = ((double)z[c->id[i]] - zm) * inv_tau - lp_norm;
    }
    c->n = c->n_s;
}

/* x log(x / y) in logs, 0 when x = 0. */
static double xlogx_over(double x, double log_x, double log_y)
{
    return x > 0.0 ? x * (log_x - log_y) : 0.0;
}

/* D over the cells; h[c] = p_c dD/dp_c. */
static double divergence(const cells *c, const kd_divergence *d, double *h)
{
    const double beta = d->beta, a = d->skew;
    double D = 0.0;
    for (int i = 0; i < c->n; i++) {
        const double q = c->q[i], p = c->p[i], lq = c->log_q[i], lp = c->log_p[i];
        const double lq_floor = lq > KD_LOG_Q_FLOOR ? lq : KD_LOG_Q_FLOOR;
        double lm, t, hi;
        switch (d->kind) {
        case KD_LOSS_FKL:
            t = xlogx_over(q, lq, lp);
            hi = -q;
            break;
        case KD_LOSS_RKL:
            t = xlogx_over(p, lp, lq_floor);
            hi = p * (lp - lq_floor + 1.0);
            break;
        case KD_LOSS_GJSD:
            lm = log_add(log(beta) + lq, log1p(-beta) + lp);
            t = beta * xlogx_over(q, lq, lm) + (1.0 - beta) * xlogx_over(p, lp, lm);
            hi = (1.0 - beta) * xlogx_over(p, lp, lm);
            break;
        case KD_LOSS_SKL:
            lm = log_add(a > 0.0 ? log(a) + lq : -INFINITY, log1p(-a) + lp);
            t = xlogx_over(q, lq, lm);
            hi = q > 0.0 ? -(1.0 - a) * q * exp(lp - lm) : 0.0;
            break;
        case KD_LOSS_SRKL:
            lm = log_add(a > 0.0 ? log(a) + lp : -INFINITY, log1p(-a) + lq_floor);
            t = xlogx_over(p, lp, lm);
            hi = p > 0.0 ? p * (lp - lm + 1.0 - a * exp(lp - lm)) : 0.0;
            break;
        default: /* KD_LOSS_TVD */
            t = 0.5 * fabs(q - p);
            hi = 0.5 * p * (p > q ? 1.0 : p < q ? -1.0 : 0.0);
            break;
        }
        D += t;
        h[i] = hi;
    }
    return D;
}

double kd_divergence_position(float *z, int V, const int32_t *ids, const float *logprobs, float tail,
                              int k, float tau, kd_tail_mode mode, const kd_divergence *d, float scale)
{
    cells c;
    double h[KD_MAX_K + 1];
    const double inv_tau = 1.0 / tau;
    collect_ids(&c, ids, logprobs, k, mode == KD_TAIL_BUCKET ? 1.0 : inv_tau);
    double e_tail = 0.0;
    if (mode == KD_TAIL_BUCKET)
        e_tail = bucket_cells(&c, z, V, tail, inv_tau);
    else
        renorm_cells(&c, z, inv_tau);
    for (int i = 0; i < c.n; i++) {
        c.q[i] = exp(c.log_q[i]);
        c.p[i] = exp(c.log_p[i]);
    }
    const double D = divergence(&c, d, h);
    double H = 0.0;
    for (int i = 0; i < c.n; i++)
        H += h[i];
    const double g = (double)scale * tau;
    if (mode == KD_TAIL_BUCKET) {
        /* z holds exp((z - max) / tau) outside S: s_j = that / e_all and
         * s_j / p_tail = that / e_tail */
        const double p_tail = c.p[c.n_s];
        const float c_rest = (float)(g * (h[c.n_s] / e_tail - H * p_tail / e_tail));
        for (int j = 0; j < V; j++)
            z[j] *= c_rest;
    } else {
        memset(z, 0, sizeof *z * (size_t)V);
    }
    for (int i = 0; i < c.n_s; i++)
        z[c.id[i]] = (float)(g * (h[i] - c.p[i] * H));
    return (double)tau * tau * D;
}
