/* Hugging Face interop: the safetensors reader and writer on good and hostile
 * files; GPT-2 directories (tests/support_hf.c writes a seeded L2 H2 C32
 * model in the hub's layout, F32, F16 or BF16) imported into w2s parameters
 * whose logits equal an independent double-precision GPT-2 forward written
 * here against the Hugging Face layout; weights exported and re-imported bit
 * for bit; every malformed directory refused with the file and the tensor or
 * key named; `train import` / `train export` on the command line; and
 * `train --init` (LM only and LM + KD), whose shape options must match the
 * checkpoint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fileio.h"
#include "nn/checkpoint.h"
#include "nn/hf_gpt2.h"
#include "nn/model.h"
#include "nn/safetensors.h"
#include "support_cli.h"
#include "support_hf.h"

enum { L = 2, H = 2, C = 32, T = 16 };

static char *dir;

static const char *path_in(const char *name)
{
    static char buf[8][1024];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 1024, "%s/%s", dir, name);
    return p;
}

static shf_options tiny(void)
{
    return (shf_options){.layers = L, .heads = H, .channels = C, .seq_len = T, .seed = 7};
}

static void write_gpt2(const char *name, const shf_options *o, shf_gpt2 *m)
{
    scli_rmtree(path_in(name));
    assert_int_equal(shf_write_gpt2(path_in(name), o, m), 0);
}

static int contains(const char *text, const char *part)
{
    if (strstr(text, part))
        return 1;
    fprintf(stderr, "expected \"%s\" in: %s\n", part, text);
    return 0;
}

/* Imports the weights (no tokenizer) of directory name into a new buffer. */
static float *read_weights(const char *name, model_config *cfg)
{
    if (hf_gpt2_read_config(path_in(name), cfg) < 0)
        return NULL;
    float *p = malloc(model_config_num_params(cfg) * sizeof *p);
    if (p && hf_gpt2_read_weights(path_in(name), cfg, p) < 0) {
        free(p);
        return NULL;
    }
    return p;
}

/* The weights import of name fails with a message holding each of parts. */
static void refused(const char *name, const char *part1, const char *part2)
{
    model_config cfg;
    float *p = read_weights(name, &cfg);
    free(p);
    assert_null(p);
    assert_true(contains(err_message(), part1));
    if (part2)
        assert_true(contains(err_message(), part2));
}

static int group_setup(void **state)
{
    (void)state;
    dir = scli_tempdir("hf");
    return dir ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    scli_rmtree(dir);
    free(dir);
    return 0;
}

/* ---- safetensors ---- */

static void test_st_roundtrip(void **state)
{
    (void)state;
    const char *path = path_in("rt.safetensors");
    float a[6] = {1.5f, -2.0f, 0.0f, 3.25f, -0.0f, 1e-30f}, b[3] = {INFINITY, -1.0f, 7.0f}, s = 42.0f;
    safetensors_decl decl[] = {{"a", 2, {2, 3}}, {"b", 1, {3}}, {"s", 0, {0}}, {"empty", 2, {0, 4}}};
    static const char *const meta[] = {"format", "pt", "note", "x", NULL};
    safetensors_writer w;
    assert_int_equal(safetensors_writer_open(&w, path, decl, 4, meta), 0);
    assert_int_equal(safetensors_writer_put(&w, a, 4), 0);   /* puts may split a tensor */
    assert_int_equal(safetensors_writer_put(&w, a + 4, 2), 0);
    assert_int_equal(safetensors_writer_put(&w, b, 3), 0);
    assert_int_equal(safetensors_writer_put(&w, &s, 1), 0);
    assert_int_equal(safetensors_writer_commit(&w), 0);

    unsigned char *bytes;
    size_t len;
    assert_int_equal(file_read_all(path, &bytes, &len), 0);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | bytes[i];
    assert_int_equal(n % 8, 0);                     /* the data starts 8-byte aligned */
    assert_int_equal(len, 8 + n + 4 * 10);
    assert_int_equal(bytes[8], '{');
    assert_true(bytes[8 + n - 1] == '}' || bytes[8 + n - 1] == ' ');
    free(bytes);

    safetensors_file *f = safetensors_open(path);
    assert_non_null(f);
    assert_int_equal(safetensors_count(f), 4);
    assert_string_equal(safetensors_metadata(f, "format"), "pt");
    assert_string_equal(safetensors_metadata(f, "note"), "x");
    assert_null(safetensors_metadata(f, "other"));
    const safetensors_tensor *t = safetensors_find(f, "a");
    assert_non_null(t);
    assert_int_equal(t->dtype, ST_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[1], 3);
    float got[6];
    assert_int_equal(safetensors_read_f32(f, t, 0, 6, got), 0);
    assert_memory_equal(got, a, sizeof a);
    assert_int_equal(safetensors_read_f32_transposed(f, t, got), 0);
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 3; c++)
            assert_memory_equal(&got[c * 2 + r], &a[r * 3 + c], sizeof(float));
    assert_int_equal(safetensors_read_f32(f, safetensors_find(f, "b"), 1, 2, got), 0);
    assert_memory_equal(got, b + 1, 2 * sizeof(float));
    t = safetensors_find(f, "s");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->count, 1);
    assert_int_equal(safetensors_read_f32(f, t, 0, 1, got), 0);
    assert_true(got[0] == 42.0f);
    assert_int_equal(safetensors_find(f, "empty")->count, 0);
    assert_int_not_equal(safetensors_read_f32(f, safetensors_find(f, "b"), 2, 2, got), 0);
    assert_true(contains(err_message(), "'b'"));
    assert_int_not_equal(safetensors_read_f32_transposed(f, safetensors_find(f, "b"), got), 0);
    safetensors_close(f);
}

/* Golden files (schemas/safetensors.md): one as the reference writer lays
 * it out (tensors by dtype size, then name; header padded to 8 bytes), read
 * back; and the exact bytes w2s's writer produces. */
static void test_st_golden(void **state)
{
    (void)state;
    static const char reference[] =
        "\x98\0\0\0\0\0\0\0"
        "{\"__metadata__\":{\"format\":\"pt\"},\"bias\":{\"dtype\":\"F32\",\"shape\":[2],"
        "\"data_offsets\":[0,8]},\"weight\":{\"dtype\":\"BF16\",\"shape\":[2,2],"
        "\"data_offsets\":[8,16]}}  "
        "\0\0\0\x3f\0\0\x80\xbf"            /* 0.5, -1 */
        "\x80\x3f\0\x40\x40\x40\x80\xbe";   /* 1, 2, 3, -0.25 */
    const char *path = path_in("golden.safetensors");
    assert_int_equal(scli_write_file(path, reference, sizeof reference - 1), 0);
    safetensors_file *f = safetensors_open(path);
    assert_non_null(f);
    float got[4];
    const float bias[2] = {0.5f, -1.0f}, weight[4] = {1.0f, 2.0f, 3.0f, -0.25f};
    assert_int_equal(safetensors_read_f32(f, safetensors_find(f, "bias"), 0, 2, got), 0);
    assert_memory_equal(got, bias, sizeof bias);
    assert_int_equal(safetensors_read_f32(f, safetensors_find(f, "weight"), 0, 4, got), 0);
    assert_memory_equal(got, weight, sizeof weight);
    assert_string_equal(safetensors_at(f, 1)->name, "weight");
    safetensors_close(f);

    static const char written[] =
        "\x90\0\0\0\0\0\0\0"
        "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
        "\"data_offsets\":[0,8]},\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],"
        "\"data_offsets\":[8,24]}}   "
        "\0\0\0\x3f\0\0\x80\xbf"
        "\0\0\x80\x3f\0\0\0\x40\0\0\x40\x40\0\0\x80\xbe";
    safetensors_decl decl[] = {{"b", 1, {2}}, {"w", 2, {2, 2}}};
    static const char *const meta[] = {"format", "pt", NULL};
    safetensors_writer w;
    assert_int_equal(safetensors_writer_open(&w, path, decl, 2, meta), 0);
    assert_int_equal(safetensors_writer_put(&w, bias, 2), 0);
    assert_int_equal(safetensors_writer_put(&w, weight, 4), 0);
    assert_int_equal(safetensors_writer_commit(&w), 0);
    unsigned char *bytes;
    size_t len;
    assert_int_equal(file_read_all(path, &bytes, &len), 0);
    assert_int_equal(len, sizeof written - 1);
    assert_memory_equal(bytes, written, len);
    free(bytes);
}

static void test_st_half_floats(void **state)
{
    (void)state;
    /* binary16 and bfloat16 bit patterns with their exact float32 values */
    static const uint16_t f16[] = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x0400, 0x7bff, 0x7c00, 0xfc00,
                                   0x8000, 0x3555, 0x7e00};
    const float f16_want[] = {1.0f, -2.0f, 0x1p-24f, 1023 * 0x1p-24f, 0x1p-14f, 65504.0f, INFINITY,
                              -INFINITY, -0.0f, 0x1.554p-2f, NAN};
    static const uint16_t bf16[] = {0x3f80, 0xc0a0, 0x0001, 0x7f80, 0x8000, 0x3eab};
    const float bf16_want[] = {1.0f, -5.0f, 0x1p-133f, INFINITY, -0.0f, 0x1.56p-2f};
    unsigned char data[2 * 17];
    for (int i = 0; i < 11; i++) {
        data[2 * i] = (unsigned char)f16[i];
        data[2 * i + 1] = (unsigned char)(f16[i] >> 8);
    }
    for (int i = 0; i < 6; i++) {
        data[22 + 2 * i] = (unsigned char)bf16[i];
        data[22 + 2 * i + 1] = (unsigned char)(bf16[i] >> 8);
    }
    const char *header = "{\"h\":{\"dtype\":\"F16\",\"shape\":[11],\"data_offsets\":[0,22]},"
                         "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[22,34]}}";
    const char *path = path_in("half.safetensors");
    assert_int_equal(shf_write_raw_safetensors(path, strlen(header), header, data, sizeof data), 0);
    safetensors_file *f = safetensors_open(path);
    assert_non_null(f);
    float got[11];
    assert_int_equal(safetensors_read_f32(f, safetensors_find(f, "h"), 0, 11, got), 0);
    for (int i = 0; i < 10; i++) {
        if (got[i] != f16_want[i] || signbit(got[i]) != signbit(f16_want[i]))
            fail_msg("F16 %04x: got %a, want %a", f16[i], (double)got[i], (double)f16_want[i]);
    }
    assert_true(isnan(got[10]));
    assert_int_equal(safetensors_read_f32(f, safetensors_find(f, "b"), 0, 6, got), 0);
    for (int i = 0; i < 6; i++)
        if (got[i] != bf16_want[i] || signbit(got[i]) != signbit(bf16_want[i]))
            fail_msg("BF16 %04x: got %a, want %a", bf16[i], (double)got[i], (double)bf16_want[i]);
    safetensors_close(f);
}

static void test_st_bad_files(void **state)
{
    (void)state;
    static const struct {
        const char *header;
        uint64_t header_len;   /* 0: strlen(header) */
        size_t data_len;
        const char *want;
    } cases[] = {
        {"[]", 0, 0, "does not start with '{'"},
        {"{\"a\":", 0, 0, "not valid JSON"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 0, 8, "duplicate"},
        {"{}", 1000, 0, "runs past the end of the file"},
        {"{}", 1ull << 40, 0, "exceeds"},
        {"{\"a\":{\"dtype\":\"Q8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 0, 1, "unknown dtype 'Q8'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0, 8, "run past the end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 0, 12, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 0, 20, "before tensor 'b'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 12, "after the last tensor"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 8, "take 12"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 0, 8, "end before"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 0, 8, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]}}", 0, 1, "whole bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 0, 8, "unknown key 'x'"},
        {"{\"__metadata__\":{\"k\":1}}", 0, 0, "__metadata__ 'k'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 0, 8,
         "overflows"},
    };
    const char *path = path_in("bad.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint64_t hl = cases[i].header_len ? cases[i].header_len : strlen(cases[i].header);
        assert_int_equal(shf_write_raw_safetensors(path, hl, cases[i].header, NULL, cases[i].data_len), 0);
        safetensors_file *f = safetensors_open(path);
        if (f)
            fail_msg("case %zu accepted: %s", i, cases[i].header);
        if (!contains(err_message(), cases[i].want) || !contains(err_message(), path))
            fail_msg("case %zu", i);
    }
    assert_int_equal(scli_write_file(path, "\x02\0\0", 3), 0);
    assert_null(safetensors_open(path));
    assert_true(contains(err_message(), "truncated"));
    assert_null(safetensors_open(path_in("absent.safetensors")));
    assert_true(contains(err_message(), "absent.safetensors"));

    /* a known dtype that is not a float is refused when converted, by name */
    const char *ints = "{\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    assert_int_equal(shf_write_raw_safetensors(path, strlen(ints), ints, NULL, 8), 0);
    safetensors_file *f = safetensors_open(path);
    assert_non_null(f);
    float got[2];
    assert_int_not_equal(safetensors_read_f32(f, safetensors_at(f, 0), 0, 2, got), 0);
    assert_true(contains(err_message(), "'i' has dtype I32"));
    safetensors_close(f);
}

static void test_st_writer_refuses(void **state)
{
    (void)state;
    const char *path = path_in("w.safetensors");
    safetensors_writer w;
    safetensors_decl twice[] = {{"a", 1, {2}}, {"a", 1, {2}}};
    assert_int_not_equal(safetensors_writer_open(&w, path, twice, 2, NULL), 0);
    assert_true(contains(err_message(), "'a'"));
    safetensors_decl one[] = {{"a", 1, {2}}};
    float v[3] = {1, 2, 3};
    assert_int_equal(safetensors_writer_open(&w, path, one, 1, NULL), 0);
    assert_int_not_equal(safetensors_writer_put(&w, v, 3), 0);
    safetensors_writer_abort(&w);
    assert_int_equal(safetensors_writer_open(&w, path, one, 1, NULL), 0);
    assert_int_equal(safetensors_writer_put(&w, v, 1), 0);
    assert_int_not_equal(safetensors_writer_commit(&w), 0);
    assert_true(contains(err_message(), "never put"));
    assert_false(file_exists(path));
}

/* ---- GPT-2 weights ---- */

static void layer_norm(double *out, const double *x, const float *w, const float *b, int n)
{
    for (int t = 0; t < n; t++) {
        double mean = 0, var = 0;
        for (int c = 0; c < C; c++)
            mean += x[t * C + c] / C;
        for (int c = 0; c < C; c++)
            var += (x[t * C + c] - mean) * (x[t * C + c] - mean) / C;
        for (int c = 0; c < C; c++)
            out[t * C + c] = (x[t * C + c] - mean) / sqrt(var + 1e-5) * w[c] + b[c];
    }
}

/* Hugging Face's Conv1D: y = x W + b with W stored (in, out). */
static void conv1d(double *y, const double *x, const float *w, const float *b, int n, int in, int out)
{
    for (int t = 0; t < n; t++)
        for (int o = 0; o < out; o++) {
            double s = b[o];
            for (int i = 0; i < in; i++)
                s += x[t * in + i] * w[(size_t)i * out + o];
            y[t * out + o] = s;
        }
}

static const float *tensor(const shf_gpt2 *m, int layer, const char *name)
{
    char full[64];
    snprintf(full, sizeof full, "h.%d.%s", layer, name);
    const float *v = shf_get(m, full);
    assert_non_null(v);
    return v;
}

/* GPT-2 in double from the Hugging Face tensors: logits (n, V) of one
 * sequence, position i attending to 0..i. */
static void reference_logits(const shf_gpt2 *m, const int32_t *tok, int n, double *logits)
{
    int V = m->vocab, hs = C / H;
    double *x = calloc((size_t)n * C, sizeof *x), *h = calloc((size_t)n * C, sizeof *h);
    double *qkv = calloc((size_t)n * 3 * C, sizeof *qkv), *y = calloc((size_t)n * C, sizeof *y);
    double *f = calloc((size_t)n * 4 * C, sizeof *f), *att = calloc((size_t)n, sizeof *att);
    assert_true(x && h && qkv && y && f && att);
    const float *wte = shf_get(m, "wte.weight"), *wpe = shf_get(m, "wpe.weight");
    for (int t = 0; t < n; t++)
        for (int c = 0; c < C; c++)
            x[t * C + c] = (double)wte[tok[t] * C + c] + wpe[t * C + c];
    for (int l = 0; l < L; l++) {
        layer_norm(h, x, tensor(m, l, "ln_1.weight"), tensor(m, l, "ln_1.bias"), n);
        conv1d(qkv, h, tensor(m, l, "attn.c_attn.weight"), tensor(m, l, "attn.c_attn.bias"), n, C, 3 * C);
        for (int hd = 0; hd < H; hd++)
            for (int t = 0; t < n; t++) {
                const double *q = qkv + t * 3 * C + hd * hs;
                double mx = -INFINITY, sum = 0;
                for (int u = 0; u <= t; u++) {
                    double s = 0;
                    for (int i = 0; i < hs; i++)
                        s += q[i] * qkv[u * 3 * C + C + hd * hs + i];
                    att[u] = s / sqrt(hs);
                    mx = fmax(mx, att[u]);
                }
                for (int u = 0; u <= t; u++)
                    sum += (att[u] = exp(att[u] - mx));
                for (int i = 0; i < hs; i++) {
                    double s = 0;
                    for (int u = 0; u <= t; u++)
                        s += att[u] / sum * qkv[u * 3 * C + 2 * C + hd * hs + i];
                    y[t * C + hd * hs + i] = s;
                }
            }
        conv1d(h, y, tensor(m, l, "attn.c_proj.weight"), tensor(m, l, "attn.c_proj.bias"), n, C, C);
        for (int i = 0; i < n * C; i++)
            x[i] += h[i];
        layer_norm(h, x, tensor(m, l, "ln_2.weight"), tensor(m, l, "ln_2.bias"), n);
        conv1d(f, h, tensor(m, l, "mlp.c_fc.weight"), tensor(m, l, "mlp.c_fc.bias"), n, C, 4 * C);
        for (int i = 0; i < n * 4 * C; i++)   /* gelu_new */
            f[i] = 0.5 * f[i] * (1 + tanh(sqrt(2 / M_PI) * (f[i] + 0.044715 * f[i] * f[i] * f[i])));
        conv1d(h, f, tensor(m, l, "mlp.c_proj.weight"), tensor(m, l, "mlp.c_proj.bias"), n, 4 * C, C);
        for (int i = 0; i < n * C; i++)
            x[i] += h[i];
    }
    layer_norm(h, x, shf_get(m, "ln_f.weight"), shf_get(m, "ln_f.bias"), n);
    for (int t = 0; t < n; t++)   /* the head is wte, tied */
        for (int v = 0; v < V; v++) {
            double s = 0;
            for (int c = 0; c < C; c++)
                s += h[t * C + c] * wte[v * C + c];
            logits[(size_t)t * V + v] = s;
        }
    free(x), free(h), free(qkv), free(y), free(f), free(att);
}

static void test_hf_logits_match_reference(void **state)
{
    (void)state;
    shf_options o = tiny();
    o.prefix = o.buffers = o.lm_head = 1;
    shf_gpt2 ref;
    write_gpt2("ref", &o, &ref);
    model_config cfg;
    float *params = read_weights("ref", &cfg);
    assert_non_null(params);
    assert_int_equal(cfg.vocab, SHF_VOCAB);
    assert_int_equal(cfg.layers, L);
    assert_int_equal(cfg.heads, H);
    assert_int_equal(cfg.channels, C);
    assert_int_equal(cfg.seq_len, T);
    model *m = model_create_inference(&cfg, 1, 1);
    assert_non_null(m);
    memcpy(model_params(m), params, model_num_params(m) * sizeof(float));
    int32_t tok[T], pos[T];
    for (int t = 0; t < T; t++) {
        tok[t] = (int32_t)((t * 37 + 11) % SHF_VOCAB);
        pos[t] = t;
    }
    float *got = model_forward(m, tok, pos, 1, T);
    assert_non_null(got);
    double *want = malloc((size_t)T * SHF_VOCAB * sizeof *want), worst = 0, scale = 0;
    assert_non_null(want);
    reference_logits(&ref, tok, T, want);
    for (int i = 0; i < T * SHF_VOCAB; i++) {
        worst = fmax(worst, fabs(got[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    if (worst > 1e-4 || scale < 0.5)
        fail_msg("logits differ from the reference by %g (largest logit %g)", worst, scale);
    free(want);
    model_free(m);
    free(params);
    shf_free(&ref);
}

static void test_hf_dtypes_same_params(void **state)
{
    (void)state;
    shf_options o = tiny();
    write_gpt2("f32", &o, NULL);
    model_config cfg;
    float *want = read_weights("f32", &cfg);
    assert_non_null(want);
    size_t bytes = model_config_num_params(&cfg) * sizeof(float);
    const struct { const char *dtype; int prefix, buffers, lm_head; } variants[] = {
        {"F16", 0, 0, 0}, {"BF16", 0, 0, 0}, {"F32", 1, 1, 1}, {"BF16", 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof variants / sizeof *variants; i++) {
        o.dtype = variants[i].dtype;
        o.prefix = variants[i].prefix;
        o.buffers = variants[i].buffers;
        o.lm_head = variants[i].lm_head;
        write_gpt2("variant", &o, NULL);
        float *got = read_weights("variant", &cfg);
        if (!got)
            fail_msg("variant %zu: %s", i, err_message());
        assert_memory_equal(got, want, bytes);
        free(got);
    }
    free(want);
}

static void test_hf_weights_roundtrip(void **state)
{
    (void)state;
    shf_options o = tiny();
    o.dtype = "BF16";
    o.prefix = o.buffers = o.lm_head = 1;
    write_gpt2("src", &o, NULL);
    model_config cfg, again;
    float *p = read_weights("src", &cfg);
    assert_non_null(p);
    scli_rmtree(path_in("out"));
    assert_int_equal(mkdir(path_in("out"), 0777), 0);
    assert_int_equal(hf_gpt2_write_config(path_in("out"), &cfg, cfg.vocab - 1), 0);
    assert_int_equal(hf_gpt2_write_weights(path_in("out"), &cfg, p), 0);
    float *q = read_weights("out", &again);
    assert_non_null(q);
    assert_memory_equal(&again, &cfg, sizeof cfg);
    assert_memory_equal(q, p, model_config_num_params(&cfg) * sizeof(float));

    /* the hub's conventions: no prefix, Conv1D (in, out), F32, format pt */
    safetensors_file *f = safetensors_open(path_in("out/model.safetensors"));
    assert_non_null(f);
    assert_string_equal(safetensors_metadata(f, "format"), "pt");
    assert_int_equal(safetensors_count(f), 4 + 12 * L);
    const safetensors_tensor *t = safetensors_find(f, "h.1.mlp.c_proj.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, ST_F32);
    assert_int_equal(t->shape[0], 4 * C);
    assert_int_equal(t->shape[1], C);
    assert_null(safetensors_find(f, "lm_head.weight"));
    safetensors_close(f);
    unsigned char *text;
    size_t len;
    assert_int_equal(file_read_all(path_in("out/config.json"), &text, &len), 0);
    assert_true(contains((char *)text, "\"gelu_new\""));
    assert_true(contains((char *)text, "\"GPT2LMHeadModel\""));
    free(text);
    assert_true(file_exists(path_in("out/generation_config.json")));
    free(p);
    free(q);
}

static void test_hf_tensor_refusals(void **state)
{
    (void)state;
    const struct { const char *what, *name; const char *want1, *want2; } cases[] = {
        {"drop", "h.1.mlp.c_proj.bias", "tensor 'h.1.mlp.c_proj.bias' is missing", NULL},
        {"transpose", "h.0.attn.c_attn.weight", "'h.0.attn.c_attn.weight' has shape [96, 32]", "(in, out)"},
        {"transpose", "wte.weight", "'wte.weight' has shape [32, 265]", NULL},
        {"extra", "h.0.mlp.c_gate.weight", "unexpected tensor 'h.0.mlp.c_gate.weight'", NULL},
        {"extra", "h.2.ln_1.weight", "unexpected tensor 'h.2.ln_1.weight'", NULL},
        {"f64", "ln_f.bias", "'ln_f.bias' has dtype F64", NULL},
        {"lm_head", NULL, "'lm_head.weight' differs from wte.weight", "untied"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        shf_options o = tiny();
        if (strcmp(cases[i].what, "drop") == 0)
            o.drop = cases[i].name;
        else if (strcmp(cases[i].what, "transpose") == 0)
            o.transpose = cases[i].name;
        else if (strcmp(cases[i].what, "extra") == 0)
            o.extra = cases[i].name;
        else if (strcmp(cases[i].what, "f64") == 0)
            o.f64 = cases[i].name;
        else
            o.lm_head = 2;
        write_gpt2("bad", &o, NULL);
        refused("bad", cases[i].want1, cases[i].want2);
        assert_true(contains(err_message(), "model.safetensors"));
    }
    /* two names for one parameter */
    shf_options o = tiny();
    o.extra = "transformer.ln_f.weight";
    write_gpt2("bad", &o, NULL);
    refused("bad", "'ln_f.weight' and 'transformer.ln_f.weight'", NULL);
}

static void rewrite_config(const char *name, const char *from, const char *to)
{
    unsigned char *text;
    size_t len;
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", path_in(name));
    assert_int_equal(file_read_all(path, &text, &len), 0);
    char *at = strstr((char *)text, from);
    if (!at)
        fail_msg("no %s in %s", from, (char *)text);
    char out[8192];
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - (char *)text), (char *)text, to, at + strlen(from));
    assert_int_equal(scli_write_file(path, out, strlen(out)), 0);
    free(text);
}

static void test_hf_config_refusals(void **state)
{
    (void)state;
    shf_options o = tiny();
    o.model_type = "gpt_neox";
    write_gpt2("cfg", &o, NULL);
    refused("cfg", "model_type 'gpt_neox' is not supported", "config.json");
    o = tiny();
    o.activation = "gelu";
    write_gpt2("cfg", &o, NULL);
    refused("cfg", "activation_function 'gelu'", "tanh");
    o.activation = "gelu_pytorch_tanh";   /* the same tanh approximation: accepted */
    write_gpt2("cfg", &o, NULL);
    model_config cfg;
    float *p = read_weights("cfg", &cfg);
    assert_non_null(p);
    free(p);

    const struct { const char *from, *to, *want; } edits[] = {
        {"\"layer_norm_epsilon\":", "\"layer_norm_epsilon\": 1e-6, \"was\":", "layer_norm_epsilon"},
        {"\"n_head\": 2", "\"n_head\": 3", "3 heads"},         /* C % H != 0 */
        {"\"n_embd\": 32", "\"n_embd\": 0", "n_embd"},
        {"\"n_layer\": 2,", "", "n_layer is missing"},
        {"\"attn_pdrop\"", "\"n_inner\": 100, \"attn_pdrop\"", "n_inner"},
        {"\"attn_pdrop\"", "\"scale_attn_by_inverse_layer_idx\": true, \"attn_pdrop\"", "scale_attn_by_inverse_layer_idx"},
        {"\"attn_pdrop\"", "\"tie_word_embeddings\": false, \"attn_pdrop\"", "tie_word_embeddings"},
        {"{", "[", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        write_gpt2("cfg", &o, NULL);
        rewrite_config("cfg", edits[i].from, edits[i].to);
        refused("cfg", edits[i].want, "config.json");
    }
    /* n_ctx stands in for a missing n_positions */
    write_gpt2("cfg", &o, NULL);
    rewrite_config("cfg", "\"n_positions\"", "\"n_other\"");
    p = read_weights("cfg", &cfg);
    assert_non_null(p);
    assert_int_equal(cfg.seq_len, T);
    free(p);

    /* weights files w2s does not read */
    write_gpt2("cfg", &o, NULL);
    assert_int_equal(rename(path_in("cfg/model.safetensors"), path_in("cfg/pytorch_model.bin")), 0);
    refused("cfg", "pytorch_model.bin", "convert it to safetensors");
    assert_int_equal(scli_write_file(path_in("cfg/model.safetensors.index.json"), "{}", 2), 0);
    refused("cfg", "sharded", NULL);
    unlink(path_in("cfg/config.json"));
    refused("cfg", "config.json: missing", NULL);
}

/* ---- the command line ---- */

static scli_result last;

/* Runs $BUILD/argv[0] (train or distill) in the test directory. */
static int run(const char *const *argv)
{
    scli_result_free(&last);
    assert_int_equal(scli_run_in(dir, argv, &last), 0);
    if (strstr(last.err, "Sanitizer") || strstr(last.err, "runtime error"))
        fail_msg("%s", last.err);
    return last.status;
}

/* A refused command left the user's file name as it was: exactly text. */
static void assert_holds(const char *name, const char *text)
{
    unsigned char *kept;
    size_t len;
    assert_int_equal(file_read_all(path_in(name), &kept, &len), 0);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(kept, text, len);
    free(kept);
}

static void test_cli_import_refusals(void **state)
{
    (void)state;
    shf_options o = tiny();
    o.drop = "h.0.ln_2.weight";
    write_gpt2("cli", &o, NULL);
    const char *argv[] = {"train", "import", "--hf", "cli", "--out", "cli.ckpt", NULL};
    assert_int_equal(run(argv), 1);
    assert_true(contains(last.err, "cli/model.safetensors: tensor 'h.0.ln_2.weight' is missing"));
    assert_false(file_exists(path_in("cli.ckpt")));
    o = tiny();
    o.model_type = "llama";
    write_gpt2("cli", &o, NULL);
    assert_int_equal(run(argv), 1);
    assert_true(contains(last.err, "cli/config.json: model_type 'llama' is not supported"));
    const char *usage[] = {"train", "import", "--model", "x.ckpt", "--out", "y.ckpt", NULL};
    assert_int_equal(run(usage), 2);
    const char *help[] = {"train", "export", "--help", NULL};
    assert_int_equal(run(help), 0);
    assert_true(contains(last.out, "--model CKPT"));
}

static void test_cli_export_refusals(void **state)
{
    (void)state;
    assert_int_equal(scli_write_fortunes(path_in("gt.txt"), 3, 60), 0);
    assert_int_equal(scli_make_teacher(path_in("gt.txt"), path_in("w2s.ckpt"), 3, 300), 0);
    /* w2s's own BPE has no GPT-2 files: refused, nothing left behind */
    const char *argv[] = {"train", "export", "--model", "w2s.ckpt", "--out", "exp", NULL};
    assert_int_equal(run(argv), 1);
    assert_true(contains(last.err, "exp: the checkpoint's tokenizer cannot be exported"));
    assert_false(file_exists(path_in("exp")));
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp."))
            fail_msg("left behind: %s", e->d_name);
    closedir(d);
    /* a non-empty directory is never written into */
    assert_int_equal(mkdir(path_in("full"), 0777), 0);
    assert_int_equal(scli_write_file(path_in("full/mine.txt"), "mine", 4), 0);
    const char *full[] = {"train", "export", "--model", "w2s.ckpt", "--out", "full/", NULL};
    assert_int_equal(run(full), 1);
    assert_true(contains(last.err, "full: exists and is not empty"));
    assert_holds("full/mine.txt", "mine");
    const char *file[] = {"train", "export", "--model", "w2s.ckpt", "--out", "gt.txt", NULL};
    assert_int_equal(run(file), 1);
    assert_true(contains(last.err, "not a directory"));
}

/* --init: the checkpoint's weights, tokenizer and shape, a fresh optimiser. */
static void test_init_shape_options(void **state)
{
    (void)state;
    assert_true(file_exists(path_in("w2s.ckpt.resume")));   /* from the export test */
    const char *same[] = {"train", "--gt", "gt.txt", "--records", "fortune", "--init", "w2s.ckpt.resume",
                          "--layers", "1", "--channels", "32", "--steps", "1", "--lr", "0", "--batch", "2",
                          "--threads", "1", "--checkpoint-every", "0", "--out", "init.ckpt", "--quiet", NULL};
    assert_int_equal(run(same), 0);
    checkpoint from, to, resume;
    assert_int_equal(checkpoint_read(path_in("w2s.ckpt.resume"), &from), 0);
    assert_int_equal(checkpoint_read(path_in("init.ckpt"), &to), 0);
    assert_int_equal(checkpoint_read(path_in("init.ckpt.resume"), &resume), 0);
    assert_true(from.step > 1);
    assert_int_equal(resume.step, 1);                          /* the optimiser started afresh */
    assert_memory_equal(&to.config, &from.config, sizeof to.config);
    assert_int_equal(to.tokenizer_len, from.tokenizer_len);
    assert_memory_equal(to.tokenizer, from.tokenizer, to.tokenizer_len);
    assert_memory_equal(to.params, from.params, model_config_num_params(&to.config) * sizeof(float));
    checkpoint_free(&from);
    checkpoint_free(&to);
    checkpoint_free(&resume);
    /* LM + KD from --init: the labels' tokenizer is the checkpoint's */
    const char *label[] = {"distill", "--teacher", "w2s.ckpt", "--db", "labels.db", "--input", "gt.txt",
                           "--records", "fortune", "--topk", "4", "--threads", "1", "--quiet", NULL};
    assert_int_equal(run(label), 0);
    const char *kd[] = {"train", "--gt", "gt.txt", "--records", "fortune", "--init", "w2s.ckpt",
                        "--labels", "labels.db", "--steps", "2", "--batch", "2", "--kd-batch", "2",
                        "--threads", "1", "--out", "kd.ckpt", "--quiet", NULL};
    assert_int_equal(run(kd), 0);

    /* a checkpoint's magic, so only the shape check can refuse the run */
    static const char keep[] = "W2SCKPT\0keep";
    assert_int_equal(file_write_atomic(path_in("keep.ckpt"), keep, sizeof keep), 0);
    const char *bad[][4] = {{"--layers", "2", NULL}, {"--preset", "tiny", NULL}, {"--seq", "64", NULL}};
    for (size_t i = 0; i < 3; i++) {
        const char *argv[] = {"train", "--gt", "gt.txt", "--records", "fortune", "--init", "w2s.ckpt",
                              bad[i][0], bad[i][1], "--steps", "1", "--threads", "1", "--out",
                              "keep.ckpt", "--quiet", NULL};
        assert_int_equal(run(argv), 1);
        assert_true(contains(last.err, "w2s.ckpt: the checkpoint is L1 H2 C32 T32"));
    }
    unsigned char *kept;
    size_t kept_len;
    assert_int_equal(file_read_all(path_in("keep.ckpt"), &kept, &kept_len), 0);
    assert_int_equal(kept_len, sizeof keep);
    assert_memory_equal(kept, keep, sizeof keep);
    free(kept);
}

/* import -> export -> import gives the same checkpoint file, byte for byte;
 * a BF16 source imports to the same parameters; the import trains and
 * evaluates like any checkpoint. */
static void test_cli_import_export_roundtrip(void **state)
{
    (void)state;
    shf_options o = tiny();
    o.prefix = o.buffers = o.lm_head = 1;
    write_gpt2("gpt2", &o, NULL);
    o.dtype = "BF16";
    write_gpt2("gpt2-bf16", &o, NULL);
    scli_rmtree(path_in("exported"));
    const char *imp[] = {"train", "import", "--hf", "gpt2", "--out", "a.ckpt", "--quiet", NULL};
    const char *exp[] = {"train", "export", "--model", "a.ckpt", "--out", "exported", "--quiet", NULL};
    const char *again[] = {"train", "import", "--hf", "exported", "--out", "b.ckpt", "--quiet", NULL};
    const char *bf16[] = {"train", "import", "--hf", "gpt2-bf16", "--out", "c.ckpt", "--quiet", NULL};
    assert_int_equal(run(imp), 0);
    assert_int_equal(run(exp), 0);
    assert_int_equal(run(again), 0);
    assert_int_equal(run(bf16), 0);
    uint64_t a, b, c;
    assert_int_equal(scli_hash_file(path_in("a.ckpt"), &a), 0);
    assert_int_equal(scli_hash_file(path_in("b.ckpt"), &b), 0);
    assert_int_equal(scli_hash_file(path_in("c.ckpt"), &c), 0);
    assert_true(a == b);
    assert_true(a == c);
    static const char *files[] = {"config.json", "generation_config.json", "model.safetensors",
                                  "vocab.json", "merges.txt"};
    for (size_t i = 0; i < 5; i++) {
        char name[256];
        snprintf(name, sizeof name, "exported/%s", files[i]);
        assert_true(file_exists(path_in(name)));
    }
    const char *init[] = {"train", "--gt", "gt.txt", "--records", "fortune", "--init", "a.ckpt",
                          "--steps", "2", "--batch", "2", "--threads", "1", "--out", "tuned.ckpt",
                          "--quiet", NULL};
    assert_int_equal(run(init), 0);
    const char *eval[] = {"train", "--eval", "--model", "tuned.ckpt", "--input", "gt.txt",
                          "--records", "fortune", "--threads", "1", NULL};
    assert_int_equal(run(eval), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_st_roundtrip),
        cmocka_unit_test(test_st_golden),
        cmocka_unit_test(test_st_half_floats),
        cmocka_unit_test(test_st_bad_files),
        cmocka_unit_test(test_st_writer_refuses),
        cmocka_unit_test(test_hf_logits_match_reference),
        cmocka_unit_test(test_hf_dtypes_same_params),
        cmocka_unit_test(test_hf_weights_roundtrip),
        cmocka_unit_test(test_hf_tensor_refusals),
        cmocka_unit_test(test_hf_config_refusals),
        cmocka_unit_test(test_cli_import_refusals),
        cmocka_unit_test(test_cli_export_refusals),
        cmocka_unit_test(test_init_shape_options),
        cmocka_unit_test(test_cli_import_export_roundtrip),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    scli_result_free(&last);
    return failed;
}
