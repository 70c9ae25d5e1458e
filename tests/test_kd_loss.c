/* Tests of the KD loss: value against a double-precision reference, gradient
 * against central finite differences of that reference, zero loss and
 * gradient at the teacher's own distribution, and the scale factor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kd_loss.h"
#include "rng.h"

enum { V = 40, K = 6 };

/* The DESIGN §8 definition, written out the slow and obvious way. */
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
        kd += q * log(q / p);
    }
    return tau * tau * kd;
}

/* A random teacher: top-k of a random distribution, its log-probs and tail. */
static void make_teacher(rng_state *rng, int32_t *ids, float *logprobs, float *tail)
{
    double t[V], sum = 0.0;
    for (int j = 0; j < V; j++)
        sum += t[j] = exp(2.0 * rng_normal(rng));
    int used[V] = {0};
    double top = 0.0;
    for (int r = 0; r < K; r++) {
        int best = -1;
        for (int j = 0; j < V; j++)
            if (!used[j] && (best < 0 || t[j] > t[best]))
                best = j;
        used[best] = 1;
        ids[r] = best;
        logprobs[r] = (float)log(t[best] / sum);
        top += exp((double)logprobs[r]);
    }
    *tail = (float)fmax(0.0, 1.0 - top);
}

static void check_gradient(kd_tail_mode mode, float tau, uint64_t seed)
{
    rng_state rng;
    rng_seed(&rng, seed);
    int32_t ids[K];
    float logprobs[K], tail, z[V];
    double zd[V];
    make_teacher(&rng, ids, logprobs, &tail);
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
            make_teacher(&rng, ids, logprobs, &tail);
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
        make_teacher(&rng, ids, logprobs, &tail);
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
    assert_string_equal(kd_tail_name(KD_TAIL_RENORM), "renorm");
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
