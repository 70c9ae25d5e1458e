/* Tests of checkpoint files: byte-identical round trips with and without
 * the optional sections, and rejection (with a message naming the file and
 * the reason) of truncated files, wrong magic, wrong version, invalid
 * configs and every single flipped byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/checkpoint.h"
#include "base/err.h"
#include "base/fileio.h"
#include "base/rng.h"

static const model_config cfg = {11, 1, 2, 4, 3};

typedef struct fixture {
    char path[64], other[64];
    float *params, *m, *v;
    unsigned char tok[23], ts[9];
    checkpoint ck;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->path, sizeof f->path, "/tmp/w2s_test_ckpt_%d.ckpt", (int)getpid());
    snprintf(f->other, sizeof f->other, "/tmp/w2s_test_ckpt_%d_b.ckpt", (int)getpid());
    size_t n = model_config_num_params(&cfg);
    f->params = malloc(n * sizeof(float));
    f->m = malloc(n * sizeof(float));
    f->v = malloc(n * sizeof(float));
    if (!f->params || !f->m || !f->v)
        return -1;
    rng_state rng;
    rng_seed(&rng, 3);
    for (size_t i = 0; i < n; i++) {
        f->params[i] = rng_normal(&rng);
        f->m[i] = rng_normal(&rng);
        f->v[i] = rng_uniform(&rng);
    }
    for (size_t i = 0; i < sizeof f->tok; i++)
        f->tok[i] = (unsigned char)(i * 37 + 1);
    for (size_t i = 0; i < sizeof f->ts; i++)
        f->ts[i] = (unsigned char)(200 - i);
    f->ck = (checkpoint){.config = cfg, .tokenizer = f->tok, .tokenizer_len = sizeof f->tok,
                         .params = f->params, .adam_m = f->m, .adam_v = f->v, .step = 1234,
                         .train_state = f->ts, .train_state_len = sizeof f->ts};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    unlink(f->path);
    unlink(f->other);
    free(f->params);
    free(f->m);
    free(f->v);
    free(f);
    return 0;
}

static void slurp(const char *path, unsigned char **data, size_t *len)
{
    assert_int_equal(file_read_all(path, data, len), 0);
}

static void test_round_trip(void **state)
{
    fixture *f = *state;
    size_t n = model_config_num_params(&cfg);
    assert_int_equal(checkpoint_write(f->path, &f->ck), 0);
    checkpoint r;
    assert_int_equal(checkpoint_read(f->path, &r), 0);
    assert_memory_equal(&r.config, &cfg, sizeof cfg);
    assert_int_equal(r.tokenizer_len, sizeof f->tok);
    assert_memory_equal(r.tokenizer, f->tok, sizeof f->tok);
    assert_memory_equal(r.params, f->params, n * sizeof(float));
    assert_memory_equal(r.adam_m, f->m, n * sizeof(float));
    assert_memory_equal(r.adam_v, f->v, n * sizeof(float));
    assert_int_equal(r.step, 1234);
    assert_int_equal(r.train_state_len, sizeof f->ts);
    assert_memory_equal(r.train_state, f->ts, sizeof f->ts);
    assert_true(r.hash == checkpoint_hash(&cfg, f->params));
    /* writing what was read gives the same bytes */
    assert_int_equal(checkpoint_write(f->other, &r), 0);
    unsigned char *a, *b;
    size_t la, lb;
    slurp(f->path, &a, &la);
    slurp(f->other, &b, &lb);
    assert_int_equal(la, lb);
    assert_int_equal(la, 72 + sizeof f->tok + 3 * 4 * n + sizeof f->ts + 8);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    checkpoint_free(&r);
    assert_null(r.params);
}

static void test_optional_sections_absent(void **state)
{
    fixture *f = *state;
    checkpoint ck = {.config = cfg, .params = f->params};
    assert_int_equal(checkpoint_write(f->path, &ck), 0);
    checkpoint r;
    assert_int_equal(checkpoint_read(f->path, &r), 0);
    assert_null(r.adam_m);
    assert_null(r.adam_v);
    assert_null(r.tokenizer);
    assert_null(r.train_state);
    assert_int_equal(r.step, 0);
    /* the hash covers config + params only: the teacher identity */
    assert_true(r.hash == checkpoint_hash(&cfg, f->params));
    checkpoint_free(&r);
    assert_int_equal(checkpoint_read(f->path, &r), 0);
    uint64_t h = r.hash;
    checkpoint_free(&r);
    f->params[0] += 1.0f;
    assert_int_equal(checkpoint_write(f->path, &ck), 0);
    assert_int_equal(checkpoint_read(f->path, &r), 0);
    assert_true(r.hash != h);
    checkpoint_free(&r);
}

/* Writes bytes to path and expects checkpoint_read to fail with a message
 * holding the path and reason. */
static void expect_rejected(const char *path, const unsigned char *data, size_t len,
                            const char *reason)
{
    /* plain writes to a fresh file: thousands of fsyncs (or ext4's flush on
     * truncate-and-rewrite) would make the test slow */
    unlink(path);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    checkpoint r;
    memset(&r, 0x5a, sizeof r);
    assert_int_equal(checkpoint_read(path, &r), -1);
    const char *msg = err_message();
    if (!strstr(msg, path) || (reason && !strstr(msg, reason))) {
        print_error("message '%s' lacks '%s' / '%s'\n", msg, path, reason ? reason : "");
        fail();
    }
    assert_null(r.params);
}

static void test_truncated(void **state)
{
    fixture *f = *state;
    assert_int_equal(checkpoint_write(f->path, &f->ck), 0);
    unsigned char *data;
    size_t len;
    slurp(f->path, &data, &len);
    size_t cuts[] = {0, 7, 8, 40, 71, 79, 100, len / 2, len - 9, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        expect_rejected(f->other, data, cuts[i], "truncated");
    /* one byte too many is not accepted either */
    unsigned char *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, data, len);
    longer[len] = 0;
    expect_rejected(f->other, longer, len + 1, "trailing");
    free(longer);
    free(data);
}

static void test_bad_magic_version_config(void **state)
{
    fixture *f = *state;
    assert_int_equal(checkpoint_write(f->path, &f->ck), 0);
    unsigned char *data;
    size_t len;
    slurp(f->path, &data, &len);
    data[0] ^= 0x20;
    expect_rejected(f->other, data, len, "bad magic");
    data[0] ^= 0x20;
    data[8] = 2;
    expect_rejected(f->other, data, len, "version 2");
    data[8] = 1;
    data[24] = 3; /* heads = 3 does not divide channels = 4 */
    expect_rejected(f->other, data, len, "invalid config");
    data[24] = 2;
    data[48] ^= 1; /* parameter count */
    expect_rejected(f->other, data, len, "parameter count");
    data[48] ^= 1;
    data[47] = 0xff; /* a huge tokenizer length must not be allocated */
    expect_rejected(f->other, data, len, "truncated");
    free(data);
    checkpoint r;
    assert_int_equal(checkpoint_read("/nonexistent/dir/x.ckpt", &r), -1);
    assert_non_null(strstr(err_message(), "/nonexistent/dir/x.ckpt"));
}

static void test_every_flipped_byte(void **state)
{
    fixture *f = *state;
    assert_int_equal(checkpoint_write(f->path, &f->ck), 0);
    unsigned char *data;
    size_t len;
    slurp(f->path, &data, &len);
    for (size_t i = 0; i < len; i++) {
        data[i] ^= 0x10;
        expect_rejected(f->other, data, len, i >= 72 ? "checksum mismatch" : NULL);
        data[i] ^= 0x10;
    }
    free(data);
}

static void test_write_rejects_bad_input(void **state)
{
    fixture *f = *state;
    checkpoint ck = f->ck;
    ck.config.layers = 0;
    assert_int_equal(checkpoint_write(f->other, &ck), -1);
    assert_non_null(strstr(err_message(), f->other));
    ck = f->ck;
    ck.params = NULL;
    assert_int_equal(checkpoint_write(f->other, &ck), -1);
    assert_int_equal(checkpoint_write("/nonexistent/dir/x.ckpt", &f->ck), -1);
    assert_non_null(strstr(err_message(), "/nonexistent/dir/x.ckpt"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_optional_sections_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_magic_version_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_flipped_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_rejects_bad_input, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
