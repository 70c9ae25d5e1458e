/* Tests of the top-k kernel against its full-sort double reference: random
 * rows of many sizes and scales, ties, k = 1 and k = V, a peaked row whose
 * tail mass is ~1e-12, rejection of NaN and infinity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "base/rng.h"
#include "nn/topk.h"

/* Runs both kernels on one row and checks every output. */
static void check_row(const float *x, int V, int k, int32_t target)
{
    int32_t *ids = calloc((size_t)k, sizeof *ids), *ref_ids = calloc((size_t)k, sizeof *ref_ids);
    float *lp = calloc((size_t)k, sizeof *lp), *ref_lp = calloc((size_t)k, sizeof *ref_lp);
    void *scratch = calloc(1, topk_scratch_bytes(V));
    assert_non_null(ids);
    assert_non_null(ref_ids);
    assert_non_null(lp);
    assert_non_null(ref_lp);
    assert_non_null(scratch);
    topk_stats st, ref;
    assert_int_equal(topk_row(x, V, k, target, scratch, ids, lp, &st), 0);
    assert_int_equal(topk_row_reference(x, V, k, target, ref_ids, ref_lp, &ref), 0);
    for (int j = 0; j < k; j++) {
        assert_int_equal(ids[j], ref_ids[j]);
        assert_true(fabs((double)lp[j] - ref_lp[j]) <= 2e-6 + 1e-6 * fabs((double)ref_lp[j]));
        if (j > 0)
            assert_true(lp[j] <= lp[j - 1]);
    }
    assert_true(fabs(st.entropy - ref.entropy) <= 1e-5 * (1 + ref.entropy));
    assert_true(fabs(st.top1 - ref.top1) <= 1e-6 * ref.top1);
    assert_true(fabs(st.tail - ref.tail) <= 1e-5 * ref.tail + 1e-30);
    assert_true(st.tail >= 0 && st.tail <= 1);
    if (target >= 0)
        assert_true(fabs(st.nll - ref.nll) <= 1e-6 * (1 + ref.nll));
    else
        assert_true(isnan(st.nll) && isnan(ref.nll));
    free(ids);
    free(ref_ids);
    free(lp);
    free(ref_lp);
    free(scratch);
}

static void test_random_rows(void **state)
{
    (void)state;
    rng_state rng;
    rng_seed(&rng, 7);
    const int sizes[] = {1, 2, 7, 8, 9, 15, 16, 17, 33, 300, 1000, 4096, 5003};
    const float scales[] = {0.01f, 1.0f, 5.0f, 30.0f};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int V = sizes[s];
        float *x = malloc(sizeof *x * (size_t)V);
        assert_non_null(x);
        for (size_t c = 0; c < sizeof scales / sizeof *scales; c++) {
            for (int i = 0; i < V; i++)
                x[i] = (float)rng_normal(&rng) * scales[c] + 3.0f;
            const int ks[] = {1, 2, 5, 32, 100, V};
            for (size_t j = 0; j < sizeof ks / sizeof *ks; j++) {
                if (ks[j] > V)
                    continue;
                check_row(x, V, ks[j], (int32_t)rng_below(&rng, (uint64_t)V));
                check_row(x, V, ks[j], -1);
            }
        }
        free(x);
    }
}

static void test_ties_rank_by_id(void **state)
{
    (void)state;
    enum { V = 200 };
    float x[V];
    for (int i = 0; i < V; i++)
        x[i] = (float)(i % 7);   /* many equal logits */
    for (int k = 1; k <= V; k += 13)
        check_row(x, V, k, 3);
    /* The same past the insertion limit, where a heap ranks. */
    enum { WIDE = 2000 };
    float *wide = malloc(WIDE * sizeof *wide);
    assert_non_null(wide);
    for (int i = 0; i < WIDE; i++)
        wide[i] = (float)(i % 7);
    const int wide_ks[] = {256, 257, 300, 1000, WIDE};
    for (size_t j = 0; j < sizeof wide_ks / sizeof *wide_ks; j++)
        check_row(wide, WIDE, wide_ks[j], 3);
    free(wide);
    int32_t ids[5];
    float lp[5];
    static char scratch[V * 8];
    topk_stats st;
    assert_int_equal(topk_row(x, V, 5, -1, scratch, ids, lp, &st), 0);
    const int32_t want[5] = {6, 13, 20, 27, 34};
    assert_memory_equal(ids, want, sizeof want);
    for (int i = 0; i < V; i++)
        x[i] = 1.5f;   /* uniform: ids 0..k-1, entropy log V */
    check_row(x, V, 10, 0);
    assert_int_equal(topk_row(x, V, 5, 0, scratch, ids, lp, &st), 0);
    for (int j = 0; j < 5; j++)
        assert_int_equal(ids[j], j);
    assert_true(fabs(st.entropy - log((double)V)) < 1e-5);
    assert_true(fabs(st.tail - (V - 5.0) / V) < 1e-6);
}

static void test_peaked_tail_accurate(void **state)
{
    (void)state;
    enum { V = 4096 };
    static float x[V];
    rng_state rng;
    rng_seed(&rng, 11);
    for (int i = 0; i < V; i++)
        x[i] = (float)rng_normal(&rng) - 40.0f;
    x[17] = 0.0f;
    x[900] = -3.0f;
    check_row(x, V, 2, 17);
    static char scratch[V * 8];
    int32_t ids[2];
    float lp[2];
    topk_stats st;
    assert_int_equal(topk_row(x, V, 2, 900, scratch, ids, lp, &st), 0);
    assert_int_equal(ids[0], 17);
    assert_int_equal(ids[1], 900);
    assert_true(st.tail > 0 && st.tail < 1e-12);
    assert_true(fabs(st.nll - 3.0) < 0.1);
}

static void test_rejects_nonfinite(void **state)
{
    (void)state;
    float x[20], lp[3];
    char scratch[24 * 8];
    int32_t ids[3];
    topk_stats st;
    for (int bad = 0; bad < 3; bad++) {
        for (int i = 0; i < 20; i++)
            x[i] = (float)i;
        x[bad * 9] = bad == 0 ? NAN : bad == 1 ? INFINITY : -INFINITY;
        assert_int_equal(topk_row(x, 20, 3, 1, scratch, ids, lp, &st), -1);
        assert_int_equal(topk_row_reference(x, 20, 3, 1, ids, lp, &st), -1);
    }
    for (int i = 0; i < 20; i++)
        x[i] = -INFINITY;
    assert_int_equal(topk_row(x, 20, 3, 1, scratch, ids, lp, &st), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_rows),
        cmocka_unit_test(test_ties_rank_by_id),
        cmocka_unit_test(test_peaked_tail_accurate),
        cmocka_unit_test(test_rejects_nonfinite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
