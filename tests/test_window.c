/* Tests of window cutting and row packing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "text/window.h"

static void test_every_token_predicted_once(void **state)
{
    (void)state;
    for (int T = 2; T <= 9; T++) {
        for (size_t n = 0; n <= 40; n++) {
            int predicted[41] = {0};
            size_t count = window_count(n, T);
            for (size_t w = 0; w < count; w++) {
                size_t start, len;
                window_span(w, n, T, &start, &len);
                assert_true(len >= 2 && len <= (size_t)T);
                assert_true(start + len <= n);
                for (size_t i = 1; i < len; i++)
                    predicted[start + i]++;
            }
            for (size_t i = 1; i < n; i++)
                assert_int_equal(predicted[i], 1);
            assert_int_equal(predicted[0], 0);
        }
    }
}

static void test_packer_next_fit(void **state)
{
    (void)state;
    int32_t tokens[3 * 5], pos[3 * 5];
    packer p;
    packer_reset(&p, 3, 5, tokens, pos);
    const int32_t a[3] = {1, 2, 3}, b[2] = {4, 5}, c[4] = {6, 7, 8, 9};
    assert_int_equal(packer_place(&p, a, 3), 0);
    assert_int_equal(packer_place(&p, b, 2), 3);
    assert_int_equal(packer_place(&p, c, 4), 5);
    assert_int_equal(packer_place(&p, a, 3), 10);
    assert_int_equal(packer_rows_used(&p), 3);
    assert_int_equal(packer_place(&p, c, 4), -1);
    const int32_t want_pos[15] = {0, 1, 2, 0, 1, 0, 1, 2, 3, 0, 0, 1, 2, 0, 0};
    const int32_t want_tok[15] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 0, 0};
    assert_memory_equal(pos, want_pos, sizeof want_pos);
    assert_memory_equal(tokens, want_tok, sizeof want_tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_token_predicted_once),
        cmocka_unit_test(test_packer_next_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
