/* Tests of the shared row primitives (common/nn/vecmath.h) against double
 * references, at every length around the 16-lane blocks, and of their
 * contract: the lane order of the sums, the maximum's handling of -inf and
 * NaN, and the exp the softmax stores. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "base/rng.h"
#include "nn/vecmath.h"

#define MAX_N 100

static void fill(float *x, int n, rng_state *rng, float scale)
{
    for (int i = 0; i < n; i++)
        x[i] = scale * rng_normal(rng);
}

static void test_expf_accuracy(void **state)
{
    (void)state;
    for (double x = -87.0; x <= 88.0; x += 0.01373) {
        double want = exp((double)(float)x);
        double got = vec_expf((float)x);
        assert_true(fabs(got - want) <= 3e-7 * want);
    }
    assert_true(vec_expf(-1000.0f) < 1e-37f && vec_expf(-1000.0f) >= 0.0f);
    assert_true(isnan(vec_expf(NAN)));
}

/* The documented order, one addition at a time: lanes, then the rest. */
static float lane_sum(const float *x, int n)
{
    float lane[16] = {0};
    int full = n / 16 * 16;
    for (int i = 0; i < full; i++)
        lane[i % 16] += x[i];
    float s = 0.0f;
    for (int u = 0; u < 16; u++)
        s += lane[u];
    for (int i = full; i < n; i++)
        s += x[i];
    return s;
}

/* A float sum of n terms is within n * 2^-24 of the sum of magnitudes. */
static void assert_close(double got, double want, double magnitude, int n)
{
    assert_true(fabs(got - want) <= (n + 1) * 0x1p-24 * magnitude + 1e-30);
}

static void test_sum_and_dot(void **state)
{
    (void)state;
    rng_state rng;
    rng_seed(&rng, 1);
    float a[MAX_N], b[MAX_N];
    for (int n = 0; n <= MAX_N; n++) {
        fill(a, n, &rng, 1.0f);
        fill(b, n, &rng, 3.0f);
        double s = 0.0, sa = 0.0, d = 0.0, da = 0.0;
        for (int i = 0; i < n; i++) {
            s += a[i];
            sa += fabs(a[i]);
            d += (double)a[i] * b[i];
            da += fabs((double)a[i] * b[i]);
        }
        float got = vec_sum(a, n);
        assert_close(got, s, sa, n);
        assert_true(got == lane_sum(a, n));
        assert_close(vec_dot(a, b, n), d, da, n);
    }
}

/* The maximum at every length, wherever it sits, with -inf entries, and
 * with NaN: skipped after x[0], propagated from x[0]. */
static void test_max(void **state)
{
    (void)state;
    rng_state rng;
    rng_seed(&rng, 5);
    float x[MAX_N];
    for (int n = 1; n <= MAX_N; n++)
        for (int at = 0; at < n; at++) {
            fill(x, n, &rng, 3.0f);
            x[at] = 50.0f;
            if (n > 1)
                x[(at + 1) % n] = -INFINITY;
            assert_true(vec_max(x, n) == 50.0f);
            if (at > 0) {
                float keep = x[0];
                x[0] = NAN;
                assert_true(isnan(vec_max(x, n)));
                x[0] = keep;
                x[at == n - 1 ? 1 : n - 1] = NAN;
                if (at != (at == n - 1 ? 1 : n - 1))
                    assert_true(vec_max(x, n) == 50.0f);
            }
        }
    x[0] = -INFINITY;
    assert_true(vec_max(x, 1) == -INFINITY);
}

static void test_exp_sub_max(void **state)
{
    (void)state;
    rng_state rng;
    rng_seed(&rng, 2);
    float x[MAX_N], y[MAX_N];
    for (int n = 1; n <= MAX_N; n++) {
        fill(x, n, &rng, 5.0f);
        double mx = x[0];
        for (int i = 1; i < n; i++)
            mx = x[i] > mx ? x[i] : mx;
        for (int i = 0; i < n; i++)
            y[i] = x[i];
        float got_max;
        float sum = vec_exp_sub_max(y, n, &got_max);
        assert_true(got_max == (float)mx);
        double want = 0.0;
        for (int i = 0; i < n; i++) {
            float d = x[i] - got_max;
            double e = exp((double)d);
            assert_true(y[i] == vec_expf(d));
            assert_true(fabs(y[i] - e) <= 3e-7 * e);
            want += e;
        }
        assert_true(sum == lane_sum(y, n));
        assert_close(sum, want, want, 2 * n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expf_accuracy),
        cmocka_unit_test(test_sum_and_dot),
        cmocka_unit_test(test_max),
        cmocka_unit_test(test_exp_sub_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
