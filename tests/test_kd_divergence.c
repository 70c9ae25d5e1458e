/* Tests of the distillation divergences (kd_divergence.h) and the
 * per-position trust weights (kd_trust.h): every loss in both tail modes at
 * several temperatures, with and without -inf teacher entries and a repeated
 * id, against a double-precision reference written from the definitions, the
 * gradient against a fourth-order central finite difference of that
 * reference; zero at the teacher; the limits (gjsd / beta -> fkl, gjsd /
 * (1 - beta) -> rkl, skew 0 = fkl / rkl, skew -> 1 gives 0); general fkl
 * against kd_loss_position; the trust weights, their normalisation, and a
 * skipped position's zero gradient. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "base/rng.h"
#include "nn/kd_divergence.h"
#include "nn/kd_trust.h"
#include "support_fixtures.h"
#include "../train/objective.h"

enum { V = 30, K = 5, KMAX = K + 3 };

/* A teacher: top-K of a random distribution (ids, log-probs, tail); with
 * extra != 0 also two -inf entries on other ids and a repeat of ids[1]
 * carrying part of its mass. @return the number of entries. */
static int make_teacher(rng_state *rng, int extra, int32_t *ids, float *logprobs, float *tail)
{
    sfix_kd_teacher(rng, V, K, 1.5, ids, logprobs, tail);
    int used[V] = {0};
    for (int r = 0; r < K; r++)
        used[ids[r]] = 1;
    if (!extra)
        return K;
    int n = K;
    for (int j = 0; j < V && n < K + 2; j++)
        if (!used[j]) {
            ids[n] = j;
            logprobs[n++] = -INFINITY;
        }
    /* ids[1]'s mass split 3:1 over two entries */
    ids[n] = ids[1];
    logprobs[n++] = (float)((double)logprobs[1] + log(0.25));
    logprobs[1] = (float)((double)logprobs[1] + log(0.75));
    return n;
}

/* The definitions, the obvious way: the full softmax, cells by id. */
static double reference(const double *z, const int32_t *ids, const float *logprobs, float tail, int k,
                        double tau, kd_tail_mode mode, const kd_divergence *d)
{
    double q[V + 1] = {0}, p[V + 1] = {0};
    int in_s[V] = {0}, cell[V];
    int n = 0;
    for (int r = 0; r < k; r++)
        if (!in_s[ids[r]]) {
            in_s[ids[r]] = 1;
            cell[ids[r]] = n++;
        }
    if (mode == KD_TAIL_BUCKET) {
        double zmax = z[0], sum = 0.0;
        for (int j = 1; j < V; j++)
            zmax = fmax(zmax, z[j]);
        for (int j = 0; j < V; j++)
            sum += exp((z[j] - zmax) / tau);
        for (int j = 0; j < V; j++)
            p[in_s[j] ? cell[j] : n] += exp((z[j] - zmax) / tau) / sum;
        for (int r = 0; r < k; r++)
            q[cell[ids[r]]] += exp((double)logprobs[r]);
        q[n] = tail > 0.0f ? tail : 0.0;
        n++;
    } else {
        double qs = 0.0, ps = 0.0;
        for (int r = 0; r < k; r++)
            qs += exp((double)logprobs[r] / tau);
        for (int j = 0; j < V; j++)
            if (in_s[j])
                ps += exp(z[j] / tau);
        for (int r = 0; r < k; r++)
            q[cell[ids[r]]] += exp((double)logprobs[r] / tau) / qs;
        for (int j = 0; j < V; j++)
            if (in_s[j])
                p[cell[j]] = exp(z[j] / tau) / ps;
    }
    const double b = d->beta, a = d->skew, floor_q = exp(KD_LOG_Q_FLOOR);
    double D = 0.0;
    for (int c = 0; c < n; c++) {
        double qf = fmax(q[c], floor_q), m;
        switch (d->kind) {
        case KD_LOSS_FKL: D += q[c] > 0 ? q[c] * log(q[c] / p[c]) : 0; break;
        case KD_LOSS_RKL: D += p[c] * log(p[c] / qf); break;
        case KD_LOSS_GJSD:
            m = b * q[c] + (1 - b) * p[c];
            D += (q[c] > 0 ? b * q[c] * log(q[c] / m) : 0) + (1 - b) * p[c] * log(p[c] / m);
            break;
        case KD_LOSS_SKL:
            m = a * q[c] + (1 - a) * p[c];
            D += q[c] > 0 ? q[c] * log(q[c] / m) : 0;
            break;
        case KD_LOSS_SRKL:
            m = a * p[c] + (1 - a) * qf;
            D += p[c] * log(p[c] / m);
            break;
        case KD_LOSS_TVD: D += 0.5 * fabs(q[c] - p[c]); break;
        }
    }
    return tau * tau * D;
}

static void random_logits(rng_state *rng, float *z, double *zd)
{
    for (int j = 0; j < V; j++) {
        z[j] = 1.5f * rng_normal(rng);
        zd[j] = z[j];
    }
}

static const kd_divergence all_losses[] = {
    {KD_LOSS_FKL, 0, 0},    {KD_LOSS_RKL, 0, 0},    {KD_LOSS_GJSD, 0.5, 0}, {KD_LOSS_GJSD, 0.1, 0},
    {KD_LOSS_GJSD, 0.9, 0}, {KD_LOSS_SKL, 0, 0.1},  {KD_LOSS_SKL, 0, 0},    {KD_LOSS_SRKL, 0, 0.1},
    {KD_LOSS_SRKL, 0, 0.5}, {KD_LOSS_TVD, 0, 0},
};
enum { N_LOSSES = sizeof all_losses / sizeof *all_losses };

static void check_one(const kd_divergence *d, kd_tail_mode mode, float tau, int extra, uint64_t seed)
{
    rng_state rng;
    rng_seed(&rng, seed);
    int32_t ids[KMAX];
    float logprobs[KMAX], tail, z[V];
    double zd[V];
    int k = make_teacher(&rng, extra, ids, logprobs, &tail);
    random_logits(&rng, z, zd);
    double ref = reference(zd, ids, logprobs, tail, k, tau, mode, d);
    double got = kd_divergence_position(z, V, ids, logprobs, tail, k, tau, mode, d, 1.0f);
    if (!(fabs(got - ref) <= 1e-5 * (1.0 + fabs(ref))))
        fail_msg("%s mode %d tau %g extra %d: loss %.10g, reference %.10g", kd_loss_kind_name(d->kind),
                 mode, tau, extra, got, ref);
    assert_true(ref > 0.0);
    const double h = 1e-3;
    for (int j = 0; j < V; j++) {
        double save = zd[j], f[4];
        const double off[4] = {-2, -1, 1, 2};
        for (int s = 0; s < 4; s++) {
            zd[j] = save + off[s] * h;
            f[s] = reference(zd, ids, logprobs, tail, k, tau, mode, d);
        }
        zd[j] = save;
        double fd = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h);
        if (fabs(z[j] - fd) > 2e-5 + 1e-4 * fabs(fd))
            fail_msg("%s mode %d tau %g extra %d j %d: analytic %.8g, finite difference %.8g",
                     kd_loss_kind_name(d->kind), mode, tau, extra, j, z[j], fd);
    }
}

static void test_gradients(void **state)
{
    (void)state;
    const float taus[3] = {0.5f, 1.0f, 2.0f};
    for (int li = 0; li < N_LOSSES; li++)
        for (int mode = 0; mode < 2; mode++)
            for (int ti = 0; ti < 3; ti++)
                for (int extra = 0; extra < 2; extra++)
                    for (uint64_t seed = 1; seed <= 3; seed++)
                        check_one(&all_losses[li], (kd_tail_mode)mode, taus[ti], extra, seed);
}

/* General fkl is kd_loss_position (distinct ids; a repeated id is a separate
 * term there and a merged cell here). */
static void test_fkl_matches_kd_loss(void **state)
{
    (void)state;
    const kd_divergence fkl = {KD_LOSS_FKL, 0, 0};
    for (int mode = 0; mode < 2; mode++)
        for (uint64_t seed = 1; seed <= 5; seed++) {
            rng_state rng;
            rng_seed(&rng, seed);
            int32_t ids[KMAX];
            float logprobs[KMAX], tail, z1[V], z2[V];
            double zd[V];
            make_teacher(&rng, 0, ids, logprobs, &tail);
            random_logits(&rng, z1, zd);
            memcpy(z2, z1, sizeof z1);
            double a = kd_loss_position(z1, V, ids, logprobs, tail, K, 1.5f, (kd_tail_mode)mode, 0.5f);
            double b = kd_divergence_position(z2, V, ids, logprobs, tail, K, 1.5f, (kd_tail_mode)mode, &fkl, 0.5f);
            assert_true(fabs(a - b) <= 1e-6 * (1.0 + fabs(a)));
            for (int j = 0; j < V; j++)
                assert_true(fabs(z1[j] - z2[j]) <= 1e-6 + 1e-5 * fabs(z1[j]));
        }
}

/* L and its gradient of loss d on a fixed teacher and student (seed). */
static double loss_grad(const kd_divergence *d, kd_tail_mode mode, uint64_t seed, float *grad)
{
    rng_state rng;
    rng_seed(&rng, seed);
    int32_t ids[KMAX];
    float logprobs[KMAX], tail;
    double zd[V];
    make_teacher(&rng, 0, ids, logprobs, &tail);
    random_logits(&rng, grad, zd);
    return kd_divergence_position(grad, V, ids, logprobs, tail, K, 1.0f, mode, d, 1.0f);
}

/* close: |a / s - b| small relative to b, for loss and every gradient entry. */
static void assert_limit(const kd_divergence *d, double s, const kd_divergence *target, double tol)
{
    for (int mode = 0; mode < 2; mode++)
        for (uint64_t seed = 1; seed <= 3; seed++) {
            float g1[V], g2[V];
            double a = loss_grad(d, (kd_tail_mode)mode, seed, g1);
            double b = loss_grad(target, (kd_tail_mode)mode, seed, g2);
            if (!(fabs(a / s - b) <= tol * (1e-3 + fabs(b))))
                fail_msg("%s %g mode %d: L / s %.10g, limit %.10g", kd_loss_kind_name(d->kind), s, mode,
                         a / s, b);
            for (int j = 0; j < V; j++)
                if (!(fabs(g1[j] / s - g2[j]) <= tol * (1e-3 + fabs(g2[j]))))
                    fail_msg("%s %g mode %d j %d: grad / s %.10g, limit %.10g", kd_loss_kind_name(d->kind),
                             s, mode, j, g1[j] / s, g2[j]);
        }
}

static void test_limits(void **state)
{
    (void)state;
    const kd_divergence fkl = {KD_LOSS_FKL, 0, 0}, rkl = {KD_LOSS_RKL, 0, 0};
    const double eps = 1e-6;
    /* gjsd: D / beta -> KL(q || p) as beta -> 0, D / (1 - beta) -> KL(p || q) as beta -> 1 */
    assert_limit(&(kd_divergence){KD_LOSS_GJSD, eps, 0}, eps, &fkl, 1e-3);
    assert_limit(&(kd_divergence){KD_LOSS_GJSD, 1.0 - eps, 0}, eps, &rkl, 1e-3);
    /* skew 0 is the plain KL in both directions */
    assert_limit(&(kd_divergence){KD_LOSS_SKL, 0, 0}, 1.0, &fkl, 1e-6);
    assert_limit(&(kd_divergence){KD_LOSS_SRKL, 0, 0}, 1.0, &rkl, 1e-6);
    /* skew -> 1: the mixture becomes the teacher (skl) or the student (srkl): D -> 0 */
    for (int kind = KD_LOSS_SKL; kind <= KD_LOSS_SRKL; kind++) {
        float g[V];
        double l = loss_grad(&(kd_divergence){(kd_loss_kind)kind, 0, 1.0 - 1e-6}, KD_TAIL_BUCKET, 1, g);
        assert_true(fabs(l) < 1e-5);
    }
}

/* Student = teacher: every divergence and its gradient are 0 (renorm:
 * logits on S = the teacher's log-probs; the rest of the row is ignored). */
static void test_zero_at_teacher(void **state)
{
    (void)state;
    for (int li = 0; li < N_LOSSES; li++) {
        rng_state rng;
        rng_seed(&rng, 7);
        int32_t ids[KMAX];
        float logprobs[KMAX], tail, z[V];
        make_teacher(&rng, 0, ids, logprobs, &tail);
        for (int j = 0; j < V; j++)
            z[j] = -3.0f;
        for (int r = 0; r < K; r++)
            z[ids[r]] = logprobs[r];
        double l = kd_divergence_position(z, V, ids, logprobs, tail, K, 2.0f, KD_TAIL_RENORM,
                                          &all_losses[li], 1.0f);
        assert_true(fabs(l) < 1e-6);
        /* TVD's subgradient at p = q is not 0 once rounding separates them */
        for (int j = 0; j < V && all_losses[li].kind != KD_LOSS_TVD; j++)
            assert_true(fabs(z[j]) < 1e-6);
    }
}

static void test_parse(void **state)
{
    (void)state;
    const char *names[] = {"fkl", "rkl", "gjsd", "skl", "srkl", "tvd"};
    for (int i = 0; i < 6; i++) {
        kd_loss_kind kind;
        assert_int_equal(kd_loss_kind_parse(names[i], &kind), 0);
        assert_string_equal(kd_loss_kind_name(kind), names[i]);
        assert_int_equal(kd_loss_kind_sampled_ok(kind), i == 0);
    }
    kd_loss_kind kind;
    assert_int_equal(kd_loss_kind_parse("kl", &kind), -1);
    kd_weight_mode w;
    assert_int_equal(kd_weight_parse("entropy", &w), 0);
    assert_int_equal(w, KD_WEIGHT_ENTROPY);
    assert_string_equal(kd_weight_name(KD_WEIGHT_CONF), "conf");
    assert_int_equal(kd_weight_parse("top1", &w), -1);
}

/* Three labeled positions and one unlabeled, k = 2. */
static const int32_t trust_targets[4] = {5, 5, -1, 5};
static const float trust_tail[4] = {0.1f, 0.0f, 0.5f, 0.4f};
static float trust_lp[8];

static void fill_trust_lp(void)
{
    const double q[8] = {0.8, 0.1, 0.5, 0.5, 0.25, 0.25, 0.3, 0.3};
    for (int i = 0; i < 8; i++)
        trust_lp[i] = (float)log(q[i]);
}

static void test_trust_weights(void **state)
{
    (void)state;
    fill_trust_lp();
    assert_true(fabs(kd_confidence(trust_lp, 2) - 0.8) < 1e-6);
    /* one-hot: certainty 1; k + 1 equal cells: certainty 0 */
    const float onehot[2] = {0.0f, -INFINITY}, flat[2] = {(float)log(1.0 / 3), (float)log(1.0 / 3)};
    assert_true(fabs(kd_certainty(onehot, 0.0f, 2) - 1.0) < 1e-6);
    assert_true(fabs(kd_certainty(flat, 1.0f / 3, 2)) < 1e-6);
    float w[4];
    /* none: 1 on labeled, 0 elsewhere */
    assert_int_equal(kd_trust_weights(w, trust_targets, trust_lp, trust_tail, 2, 4, KD_WEIGHT_NONE, 0.0), 3);
    assert_true(w[0] == 1.0f && w[1] == 1.0f && w[2] == 0.0f && w[3] == 1.0f);
    /* conf: proportional to top-1 (0.8, 0.5, 0.3), mean 1 over the labeled */
    kd_trust_weights(w, trust_targets, trust_lp, trust_tail, 2, 4, KD_WEIGHT_CONF, 0.0);
    assert_true(fabs(w[0] - 0.8 * 3 / 1.6) < 1e-5 && fabs(w[1] - 0.5 * 3 / 1.6) < 1e-5);
    assert_true(w[2] == 0.0f && fabs(w[3] - 0.3 * 3 / 1.6) < 1e-5);
    /* entropy: 1 - H / log 3, mean 1 */
    kd_trust_weights(w, trust_targets, trust_lp, trust_tail, 2, 4, KD_WEIGHT_ENTROPY, 0.0);
    double u[3] = {kd_certainty(trust_lp, trust_tail[0], 2), kd_certainty(trust_lp + 2, trust_tail[1], 2),
                   kd_certainty(trust_lp + 6, trust_tail[3], 2)};
    double us = u[0] + u[1] + u[2];
    assert_true(fabs(w[0] - u[0] * 3 / us) < 1e-5 && fabs(w[3] - u[2] * 3 / us) < 1e-5);
    assert_true(fabs(w[0] + w[1] + w[3] - 3.0) < 1e-5);
    /* min-conf 0.4 skips the third labeled position (top-1 0.3) */
    assert_int_equal(kd_trust_weights(w, trust_targets, trust_lp, trust_tail, 2, 4, KD_WEIGHT_NONE, 0.4), 2);
    assert_true(w[0] == 1.5f && w[1] == 1.5f && w[2] == 0.0f && w[3] == 0.0f);
    /* nothing kept: all 0 */
    assert_int_equal(kd_trust_weights(w, trust_targets, trust_lp, trust_tail, 2, 4, KD_WEIGHT_CONF, 0.9), 0);
    for (int i = 0; i < 4; i++)
        assert_true(w[i] == 0.0f);
}

/* A weight scales the gradient through the kernels' scale argument (the
 * objective passes scale * w, and skips a row of weight 0): the gradient is
 * linear in it, and weight 0 gives a zero row. */
static void test_weight_scales_gradient(void **state)
{
    (void)state;
    for (int li = 0; li < N_LOSSES; li++) {
        float g1[V], g2[V];
        rng_state rng;
        rng_seed(&rng, 3);
        int32_t ids[KMAX];
        float logprobs[KMAX], tail;
        double zd[V];
        make_teacher(&rng, 0, ids, logprobs, &tail);
        random_logits(&rng, g1, zd);
        memcpy(g2, g1, sizeof g1);
        double a = kd_divergence_position(g1, V, ids, logprobs, tail, K, 1.0f, KD_TAIL_BUCKET, &all_losses[li], 1.0f);
        double b = kd_divergence_position(g2, V, ids, logprobs, tail, K, 1.0f, KD_TAIL_BUCKET, &all_losses[li], 0.25f);
        assert_true(a == b);
        for (int j = 0; j < V; j++)
            assert_true(fabs(0.25f * g1[j] - g2[j]) <= 1e-7 + 1e-6 * fabs(g2[j]));
    }
}

/* Through the objective: a row of weight w gets w times the unweighted
 * gradient and adds w * KD to the sum; a skipped position (weight 0) and an
 * unlabeled one get a zero row. Every loss, 2 threads. */
static void test_objective_weights(void **state)
{
    (void)state;
    enum { N = 4 };
    objective *o = objective_create(2);
    assert_non_null(o);
    const int32_t targets[N] = {1, 1, -1, 1};
    const float weights[N] = {2.0f, 0.0f, 0.0f, 1.0f};
    int32_t ids[N * KMAX];
    float lp[N * KMAX], tail[N], z0[N * V], z1[N * V], z2[N * V];
    rng_state rng;
    rng_seed(&rng, 11);
    for (int i = 0; i < N; i++) {
        double zd[V];
        make_teacher(&rng, 0, ids + i * K, lp + i * K, tail + i);
        random_logits(&rng, z0 + i * V, zd);
    }
    for (int li = 0; li < N_LOSSES; li++) {
        memcpy(z1, z0, sizeof z0);
        memcpy(z2, z0, sizeof z0);
        objective_kd_spec plain = {.tau = 1.0f, .mode = KD_TAIL_BUCKET, .div = all_losses[li]};
        objective_kd_spec weighted = plain;
        weighted.weights = weights;
        double a = objective_kd(o, z1, targets, ids, lp, tail, K, N, V, &plain, 0.5f);
        double b = objective_kd(o, z2, targets, ids, lp, tail, K, N, V, &weighted, 0.5f);
        float zr[V];
        memcpy(zr, z0 + V, sizeof zr);
        double kd1 = kd_divergence_position(zr, V, ids + K, lp + K, tail[1], K, 1.0f, KD_TAIL_BUCKET,
                                            &all_losses[li], 1.0f);
        memcpy(zr, z0, sizeof zr);
        double kd0 = kd_divergence_position(zr, V, ids, lp, tail[0], K, 1.0f, KD_TAIL_BUCKET,
                                            &all_losses[li], 1.0f);
        memcpy(zr, z0 + 3 * V, sizeof zr);
        double kd3 = kd_divergence_position(zr, V, ids + 3 * K, lp + 3 * K, tail[3], K, 1.0f,
                                            KD_TAIL_BUCKET, &all_losses[li], 1.0f);
        assert_true(fabs(a - (kd0 + kd1 + kd3)) <= 1e-6 * (1.0 + a));
        assert_true(fabs(b - (2 * kd0 + kd3)) <= 1e-6 * (1.0 + b));
        for (int j = 0; j < V; j++) {
            assert_true(fabs(z2[j] - 2 * z1[j]) <= 1e-7 + 1e-6 * fabs(z2[j]));
            assert_true(z2[V + j] == 0.0f && z2[2 * V + j] == 0.0f && z1[2 * V + j] == 0.0f);
            assert_true(z2[3 * V + j] == z1[3 * V + j]);
        }
    }
    objective_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_fkl_matches_kd_loss),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_zero_at_teacher),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_trust_weights),
        cmocka_unit_test(test_weight_scales_gradient),
        cmocka_unit_test(test_objective_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
