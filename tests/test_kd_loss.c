/* Tests of the KD loss: value against a double-precision reference, gradient
 * against central finite differences of that reference, zero loss and
 * gradient at the teacher's own distribution, the scale factor, entries of
 * zero probability, and the auxiliary confidence target (its mixture at each
 * point of the ramp, its loss and gradient). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "nn/kd_loss.h"
#include "base/rng.h"
#include "support_fixtures.h"

enum { V = 40, K = 6 };

/* The definition (README, "The objective"), written out the slow and obvious way. */
static double kd_reference(const double *z, const int32_t *ids, const float *logprobs,
                           float tail, int k, double tau, kd_tail_mode mode)
{
    double m = z[0];
    for (int j = 1; j < V; j++)
        m = fmax(m, z[j]);
    if (mode == KD_TAIL_BUCKET) {
        double sum = 0.0, s[V];
        for (int j = 0; j < V; j++)
            sum += s[j] = exp((z[j] - m) / tau);
        int in_s[V] = {0};
        double kd = 0.0;
        for (int r = 0; r < k; r++) {
            in_s[ids[r]] = 1;
            double q = exp((double)logprobs[r]);
            if (q > 0.0)   /* a term of q = 0 is 0 */
                kd += q * (log(q) - log(s[ids[r]] / sum));
        }
        double p_tail = 0.0;
        for (int j = 0; j < V; j++)
            if (!in_s[j])
                p_tail += s[j] / sum;
        if (tail > 0.0f)
            kd += tail * (log((double)tail) - log(p_tail));
        return tau * tau * kd;
    }
    double qs = 0.0, ps = 0.0;
    for (int r = 0; r < k; r++) {
        qs += exp(logprobs[r] / tau);
        ps += exp(z[ids[r]] / tau);
    }
    double kd = 0.0;
    for (int r = 0; r < k; r++) {
        double q = exp(logprobs[r] / tau) / qs, p = exp(z[ids[r]] / tau) / ps;
        if (q > 0.0)
            kd += q * log(q / p);
    }
    return tau * tau * kd;
}

static void check_gradient(kd_tail_mode mode, float tau, uint64_t seed)
{
    rng_state rng;
    rng_seed(&rng, seed);
    int32_t ids[K];
    float logprobs[K], tail, z[V];
    double zd[V];
    sfix_kd_teacher(&rng, V, K, 2.0, ids, logprobs, &tail);
    for (int j = 0; j < V; j++) {
        z[j] = 1.5f * rng_normal(&rng);
        zd[j] = z[j];
    }
    double ref = kd_reference(zd, ids, logprobs, tail, K, tau, mode);
    double got = kd_loss_position(z, V, ids, logprobs, tail, K, tau, mode, 1.0f);
    assert_true(fabs(got - ref) <= 1e-5 * (1.0 + fabs(ref)));
    assert_true(ref > 0.0);
    const double h = 1e-4;
    for (int j = 0; j < V; j++) {
        double save = zd[j];
        zd[j] = save + h;
        double up = kd_reference(zd, ids, logprobs, tail, K, tau, mode);
        zd[j] = save - h;
        double down = kd_reference(zd, ids, logprobs, tail, K, tau, mode);
        zd[j] = save;
        double fd = (up - down) / (2 * h);
        if (fabs(z[j] - fd) > 1e-4 + 1e-3 * fabs(fd))
            fail_msg("mode %d tau %g j %d: analytic %.8g, finite difference %.8g", mode, tau, j,
                     z[j], fd);
    }
}

static void test_bucket_gradient(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        check_gradient(KD_TAIL_BUCKET, 1.0f, seed);
        check_gradient(KD_TAIL_BUCKET, 2.0f, seed);
    }
}

static void test_renorm_gradient(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        check_gradient(KD_TAIL_RENORM, 1.0f, seed);
        check_gradient(KD_TAIL_RENORM, 2.0f, seed);
    }
}

/* Student logits whose tempered softmax is the teacher's top-k plus its tail
 * spread evenly over the other ids (bucket), or whose logits on S equal the
 * teacher's log-probs (renorm tempers both alike): KD 0, gradient 0. */
static void test_zero_at_teacher(void **state)
{
    (void)state;
    const kd_tail_mode modes[2] = {KD_TAIL_BUCKET, KD_TAIL_RENORM};
    for (int mi = 0; mi < 2; mi++)
        for (float tau = 1.0f; tau <= 2.0f; tau += 1.0f) {
            rng_state rng;
            rng_seed(&rng, 7);
            int32_t ids[K];
            float logprobs[K], tail, z[V];
            sfix_kd_teacher(&rng, V, K, 2.0, ids, logprobs, &tail);
            float rest = tau * logf(tail / (V - K));
            for (int j = 0; j < V; j++)
                z[j] = rest + 3.0f;
            for (int r = 0; r < K; r++)
                z[ids[r]] = (modes[mi] == KD_TAIL_BUCKET ? tau : 1.0f) * logprobs[r] + 3.0f;
            double kd = kd_loss_position(z, V, ids, logprobs, tail, K, tau, modes[mi], 1.0f);
            if (fabs(kd) > 1e-5)
                fail_msg("mode %d tau %g: KD %g", modes[mi], tau, kd);
            for (int j = 0; j < V; j++)
                assert_true(fabsf(z[j]) < 1e-5f);
        }
}

static void test_scale_applied(void **state)
{
    (void)state;
    const kd_tail_mode modes[2] = {KD_TAIL_BUCKET, KD_TAIL_RENORM};
    for (int mi = 0; mi < 2; mi++) {
        rng_state rng;
        rng_seed(&rng, 11);
        int32_t ids[K];
        float logprobs[K], tail, z1[V], z2[V];
        sfix_kd_teacher(&rng, V, K, 2.0, ids, logprobs, &tail);
        for (int j = 0; j < V; j++)
            z1[j] = z2[j] = rng_normal(&rng);
        double a = kd_loss_position(z1, V, ids, logprobs, tail, K, 2.0f, modes[mi], 1.0f);
        double b = kd_loss_position(z2, V, ids, logprobs, tail, K, 2.0f, modes[mi], 0.125f);
        assert_true(a == b);
        for (int j = 0; j < V; j++)
            assert_true(fabsf(z2[j] - 0.125f * z1[j]) <= 1e-7f + 1e-6f * fabsf(z1[j]));
    }
}

/* A tiny tail on both sides keeps its precision (summed directly). */
static void test_tiny_tail(void **state)
{
    (void)state;
    int32_t ids[2] = {3, 5};
    float logprobs[2] = {logf(0.6f), 0.0f}, tail = 1e-7f;
    logprobs[1] = (float)log(1.0 - 0.6 - 1e-7);
    float z[V];
    double zd[V];
    for (int j = 0; j < V; j++)
        zd[j] = z[j] = -12.0f;
    zd[3] = z[3] = 4.0f;
    zd[5] = z[5] = 3.5f;
    double ref = kd_reference(zd, ids, logprobs, tail, 2, 1.0, KD_TAIL_BUCKET);
    double got = kd_loss_position(z, V, ids, logprobs, tail, 2, 1.0f, KD_TAIL_BUCKET, 1.0f);
    assert_true(fabs(got - ref) <= 1e-6 * (1.0 + fabs(ref)));
    double sum = 0.0;
    for (int j = 0; j < V; j++)
        sum += z[j];
    assert_true(fabs(sum) < 1e-5); /* gradient of a KL over a full partition sums to ~0 */
}

static void test_parse(void **state)
{
    (void)state;
    kd_tail_mode m;
    assert_int_equal(kd_tail_parse("renorm", &m), 0);
    assert_int_equal(m, KD_TAIL_RENORM);
    assert_int_equal(kd_tail_parse("bucket", &m), 0);
    assert_int_equal(m, KD_TAIL_BUCKET);
    assert_int_equal(kd_tail_parse("tail", &m), -1);
    assert_string_equal(err_message(), "'tail' is not bucket or renorm"); /* train names the option */
    assert_string_equal(kd_tail_name(KD_TAIL_RENORM), "renorm");
}

/* Entries of log-prob -inf (sampled-label pads: q = 0, repeating an id, or
 * a distinct id) add nothing to the loss and a finite gradient. */
static void test_zero_prob_entries(void **state)
{
    (void)state;
    rng_state rng;
    rng_seed(&rng, 13);
    int32_t ids[K + 3];
    float logprobs[K + 3], tail, z[V], z2[V];
    double zd[V];
    sfix_kd_teacher(&rng, V, K, 2.0, ids, logprobs, &tail);
    for (int j = 0; j < V; j++)
        zd[j] = z[j] = z2[j] = rng_normal(&rng);
    ids[K] = ids[0];
    ids[K + 1] = ids[0];
    logprobs[K] = logprobs[K + 1] = -INFINITY;
    double ref = kd_reference(zd, ids, logprobs, tail, K, 1.0, KD_TAIL_BUCKET);
    double got = kd_loss_position(z, V, ids, logprobs, tail, K + 2, 1.0f, KD_TAIL_BUCKET, 1.0f);
    double plain = kd_loss_position(z2, V, ids, logprobs, tail, K, 1.0f, KD_TAIL_BUCKET, 1.0f);
    assert_true(fabs(got - ref) <= 1e-5 * (1.0 + fabs(ref)));
    assert_true(got == plain);
    for (int j = 0; j < V; j++)
        assert_true(z[j] == z2[j]);
    /* a distinct id of q = 0 moves out of the tail bucket: exact against the reference */
    int used[V] = {0};
    for (int r = 0; r < K; r++)
        used[ids[r]] = 1;
    int32_t other = 0;
    while (used[other])
        other++;
    ids[K] = other;
    const kd_tail_mode modes[2] = {KD_TAIL_BUCKET, KD_TAIL_RENORM};
    for (int mi = 0; mi < 2; mi++) {
        for (int j = 0; j < V; j++)
            z[j] = (float)zd[j];
        ref = kd_reference(zd, ids, logprobs, tail, K + 1, 2.0, modes[mi]);
        got = kd_loss_position(z, V, ids, logprobs, tail, K + 1, 2.0f, modes[mi], 1.0f);
        assert_true(isfinite(got));
        assert_true(fabs(got - ref) <= 1e-5 * (1.0 + fabs(ref)));
        for (int j = 0; j < V; j++)
            assert_true(isfinite(z[j]));
    }
}

/* The documented aux-confidence loss, written out directly: the mixture
 * (1 - b) q + b onehot(a) on the partition S (+ {a}) + tail (bucket), or over
 * S (+ {a}) after renormalising the teacher at tau (renorm). */
static double aux_reference(const double *z, const int32_t *ids, const float *logprobs, float tail, int k,
                            int32_t a, double b, double tau, kd_tail_mode mode)
{
    int32_t set[K + 1];
    double q[K + 1];
    int n = 0, a_in = 0;
    double norm = 0.0;
    for (int r = 0; r < k; r++)
        norm += exp(logprobs[r] / tau);
    for (int r = 0; r < k; r++) {
        double t = mode == KD_TAIL_BUCKET ? exp((double)logprobs[r]) : exp(logprobs[r] / tau) / norm;
        set[n] = ids[r];
        q[n++] = (1.0 - b) * t + (ids[r] == a ? b : 0.0);
        a_in |= ids[r] == a;
    }
    if (!a_in) {
        set[n] = a;
        q[n++] = b;
    }
    double m = z[0];
    for (int j = 1; j < V; j++)
        m = fmax(m, z[j]);
    double s[V], all = 0.0, on_set = 0.0;
    int in_set[V] = {0};
    for (int j = 0; j < V; j++)
        all += s[j] = exp((z[j] - m) / tau);
    for (int r = 0; r < n; r++) {
        in_set[set[r]] = 1;
        on_set += s[set[r]];
    }
    double kd = 0.0;
    for (int r = 0; r < n; r++)
        if (q[r] > 0.0)
            kd += q[r] * log(q[r] / (s[set[r]] / (mode == KD_TAIL_BUCKET ? all : on_set)));
    if (mode == KD_TAIL_BUCKET && tail > 0.0f) {
        double p_tail = 0.0, t = (1.0 - b) * tail;
        for (int j = 0; j < V; j++)
            if (!in_set[j])
                p_tail += s[j] / all;
        kd += t * log(t / p_tail);
    }
    return tau * tau * kd;
}

/* Student logits with the argmax at `a`. */
static void logits_with_argmax(rng_state *rng, float *z, double *zd, int32_t a)
{
    for (int j = 0; j < V; j++)
        z[j] = rng_normal(rng);
    z[a] = 4.0f;
    for (int j = 0; j < V; j++)
        zd[j] = z[j];
}

static int32_t outside_top_k(const int32_t *ids)
{
    int used[V] = {0};
    for (int r = 0; r < K; r++)
        used[ids[r]] = 1;
    int32_t j = V - 1;
    while (used[j])
        j--;
    return j;
}

/* kd_aux_target is exactly the documented mixture at the start, middle and
 * end of the ramp, and beyond it. */
static void test_aux_target_ramp(void **state)
{
    (void)state;
    const double beta = 0.5;
    const long warmup = 10, steps[4] = {0, 5, 10, 30};
    const double want_b[4] = {0.0, 0.25, 0.5, 0.5};
    const kd_tail_mode modes[2] = {KD_TAIL_BUCKET, KD_TAIL_RENORM};
    rng_state rng;
    rng_seed(&rng, 19);
    int32_t ids[K], out_ids[K + 1];
    float logprobs[K], tail, out_lp[K + 1], out_tail;
    sfix_kd_teacher(&rng, V, K, 2.0, ids, logprobs, &tail);
    assert_true(kd_aux_weight(0.3, 7, 0) == 0.3f);
    for (int si = 0; si < 4; si++) {
        float b = kd_aux_weight(beta, steps[si], warmup);
        assert_true(b == (float)want_b[si]);
        for (int mi = 0; mi < 2; mi++)
            for (int inside = 0; inside < 2; inside++) {
                float tau = mi ? 2.0f : 1.0f;
                int32_t a = inside ? ids[2] : outside_top_k(ids);
                int n = kd_aux_target(ids, logprobs, tail, K, a, b, tau, modes[mi], out_ids, out_lp, &out_tail);
                assert_int_equal(n, inside ? K : K + 1);
                double norm = 0.0, total = 0.0;
                for (int r = 0; r < K; r++)
                    norm += exp(logprobs[r] / (double)tau);
                for (int r = 0; r < n; r++) {
                    double teacher = r == K ? 0.0
                                   : modes[mi] == KD_TAIL_BUCKET ? exp((double)logprobs[r])
                                   : exp(logprobs[r] / (double)tau) / norm;
                    double want = (1.0 - b) * teacher + (out_ids[r] == a ? b : 0.0);
                    double got = modes[mi] == KD_TAIL_BUCKET ? exp((double)out_lp[r]) : exp(out_lp[r] / (double)tau);
                    assert_int_equal(out_ids[r], r < K ? ids[r] : a);
                    if (fabs(got - want) > 1e-6 * want)
                        fail_msg("step %ld mode %d a %s S: entry %d: %.9g, want %.9g", steps[si], mi,
                                 inside ? "in" : "not in", r, got, want);
                    total += got;
                }
                double want_tail = modes[mi] == KD_TAIL_BUCKET ? (1.0 - b) * tail : 0.0;
                assert_true(fabs(out_tail - want_tail) <= 1e-7 * want_tail + 1e-12);
                assert_true(fabs(total + out_tail - 1.0) < 1e-5);
            }
    }
}

/* Loss and gradient against the direct formula and its finite differences
 * (a held fixed: the target is detached); b = 0 is plain KD bit for bit. */
static void test_aux_loss_gradient(void **state)
{
    (void)state;
    const kd_tail_mode modes[2] = {KD_TAIL_BUCKET, KD_TAIL_RENORM};
    rng_state rng;
    rng_seed(&rng, 29);
    for (int trial = 0; trial < 3; trial++)
        for (int mi = 0; mi < 2; mi++)
            for (int inside = 0; inside < 2; inside++)
                for (int ti = 0; ti < 2; ti++) {
                    float tau = ti ? 2.0f : 1.0f, b = trial == 2 ? 1.0f : 0.3f, z[V], z0[V], z1[V];
                    double zd[V];
                    int32_t ids[K];
                    float logprobs[K], tail;
                    sfix_kd_teacher(&rng, V, K, 2.0, ids, logprobs, &tail);
                    int32_t a = inside ? ids[3] : outside_top_k(ids);
                    logits_with_argmax(&rng, z, zd, a);
                    assert_int_equal(kd_argmax(z, V), a);
                    memcpy(z0, z, sizeof z);
                    memcpy(z1, z, sizeof z);
                    double plain = kd_loss_position(z0, V, ids, logprobs, tail, K, tau, modes[mi], 1.0f);
                    double none = kd_loss_position_aux(z1, V, ids, logprobs, tail, K, tau, modes[mi], 0.0f, 1.0f);
                    assert_true(plain == none);
                    assert_memory_equal(z0, z1, sizeof z0);
                    double ref = aux_reference(zd, ids, logprobs, tail, K, a, b, tau, modes[mi]);
                    double got = kd_loss_position_aux(z, V, ids, logprobs, tail, K, tau, modes[mi], b, 1.0f);
                    if (fabs(got - ref) > 1e-5 * (1.0 + fabs(ref)))
                        fail_msg("mode %d tau %g b %g: KD %.9g, reference %.9g", mi, tau, b, got, ref);
                    const double h = 1e-4;
                    for (int j = 0; j < V; j++) {
                        double save = zd[j];
                        zd[j] = save + h;
                        double up = aux_reference(zd, ids, logprobs, tail, K, a, b, tau, modes[mi]);
                        zd[j] = save - h;
                        double down = aux_reference(zd, ids, logprobs, tail, K, a, b, tau, modes[mi]);
                        zd[j] = save;
                        double fd = (up - down) / (2 * h);
                        if (fabs(z[j] - fd) > 1e-4 + 1e-3 * fabs(fd))
                            fail_msg("mode %d tau %g a %s S j %d: analytic %.8g, finite difference %.8g", mi,
                                     tau, inside ? "in" : "not in", j, z[j], fd);
                    }
                }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_gradient),
        cmocka_unit_test(test_renorm_gradient),
        cmocka_unit_test(test_zero_at_teacher),
        cmocka_unit_test(test_scale_applied),
        cmocka_unit_test(test_tiny_tail),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_zero_prob_entries),
        cmocka_unit_test(test_aux_target_ramp),
        cmocka_unit_test(test_aux_loss_gradient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
