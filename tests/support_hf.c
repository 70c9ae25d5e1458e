/* support_hf: a seeded GPT-2 written in Hugging Face layout for the import,
 * export and safetensors tests (see support_hf.h). The safetensors bytes,
 * the header and the byte-to-unicode vocabulary are produced here with their
 * own code, so a shared misunderstanding with the library would have to be
 * made twice. */
#include "support_hf.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/bytes.h"
#include "base/rng.h"

#define PREFIX "transformer."

static int fail(const char *what, const char *detail)
{
    fprintf(stderr, "support_hf: %s: %s\n", what, detail);
    return -1;
}

/* ---- the tensors ---- */

static shf_tensor *add_tensor(shf_gpt2 *m, const char *name, int ndim, uint64_t d0, uint64_t d1)
{
    shf_tensor *t = &m->tensors[m->n];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim == 2 ? d1 : 1;
    t->values = calloc(d0 * t->shape[1], sizeof *t->values);
    if (!t->values)
        return NULL;
    m->n++;
    return t;
}

/* kind: 'w' weights (|v| < 0.25), 'b' biases, 'g' LayerNorm gains around 1. */
static void fill(shf_tensor *t, rng_state *rng, char kind)
{
    size_t n = t->shape[0] * t->shape[1];
    for (size_t i = 0; i < n; i++) {
        if (kind == 'g')
            t->values[i] = 1.0f + (float)((int)rng_below(rng, 25) - 12) / 128.0f;
        else
            t->values[i] = (float)((int)rng_below(rng, kind == 'w' ? 127 : 31) - (kind == 'w' ? 63 : 15)) / 256.0f;
    }
}

static int make_tensors(const shf_options *o, shf_gpt2 *m)
{
    uint64_t C = (uint64_t)o->channels;
    m->vocab = SHF_VOCAB;
    m->tensors = calloc(4 + 12 * (size_t)o->layers, sizeof *m->tensors);
    if (!m->tensors)
        return fail("tensors", "out of memory");
    rng_state rng;
    rng_seed(&rng, o->seed);
    static const struct { const char *name; int ndim, d0, d1; char kind; } block[] = {
        {"ln_1.weight", 1, 1, 0, 'g'},        {"ln_1.bias", 1, 1, 0, 'b'},
        {"attn.c_attn.weight", 2, 1, 3, 'w'}, {"attn.c_attn.bias", 1, 3, 0, 'b'},
        {"attn.c_proj.weight", 2, 1, 1, 'w'}, {"attn.c_proj.bias", 1, 1, 0, 'b'},
        {"ln_2.weight", 1, 1, 0, 'g'},        {"ln_2.bias", 1, 1, 0, 'b'},
        {"mlp.c_fc.weight", 2, 1, 4, 'w'},    {"mlp.c_fc.bias", 1, 4, 0, 'b'},
        {"mlp.c_proj.weight", 2, 4, 1, 'w'},  {"mlp.c_proj.bias", 1, 1, 0, 'b'},
    };
    shf_tensor *t;
    if (!(t = add_tensor(m, "wte.weight", 2, SHF_VOCAB, C)))
        return fail("tensors", "out of memory");
    fill(t, &rng, 'w');
    if (!(t = add_tensor(m, "wpe.weight", 2, (uint64_t)o->seq_len, C)))
        return fail("tensors", "out of memory");
    fill(t, &rng, 'w');
    for (int l = 0; l < o->layers; l++)
        for (size_t i = 0; i < sizeof block / sizeof *block; i++) {
            char name[64];
            snprintf(name, sizeof name, "h.%d.%s", l, block[i].name);
            if (!(t = add_tensor(m, name, block[i].ndim, block[i].d0 * C, block[i].d1 * C)))
                return fail("tensors", "out of memory");
            fill(t, &rng, block[i].kind);
        }
    if (!(t = add_tensor(m, "ln_f.weight", 1, C, 0)))
        return fail("tensors", "out of memory");
    fill(t, &rng, 'g');
    if (!(t = add_tensor(m, "ln_f.bias", 1, C, 0)))
        return fail("tensors", "out of memory");
    fill(t, &rng, 'b');
    return 0;
}

const float *shf_get(const shf_gpt2 *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return m->tensors[i].values;
    return NULL;
}

void shf_free(shf_gpt2 *m)
{
    for (size_t i = 0; m->tensors && i < m->n; i++)
        free(m->tensors[i].values);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

/* ---- model.safetensors ---- */

typedef struct stored {
    char name[80];
    const char *dtype;
    int ndim;
    uint64_t shape[4];
    unsigned char *bytes;
    size_t nbytes;
} stored;

static uint32_t f32_bits(float v)
{
    uint32_t b;
    memcpy(&b, &v, 4);
    return b;
}

/* Exact for the grid values of fill() (normal in binary16, <= 11 bits). */
static uint32_t f16_bits(float v)
{
    uint32_t b = f32_bits(v);
    if ((b & 0x7fffffffu) == 0)
        return b >> 16;
    return (b >> 16 & 0x8000u) | (((b >> 23 & 0xffu) - 112) << 10) | (b & 0x7fffffu) >> 13;
}

/* Encodes n values row-major (transposed: the (d1, d0) transpose of a
 * (d0, d1) tensor) in dtype. */
static int encode(stored *s, const float *v, uint64_t d0, uint64_t d1, int transposed)
{
    size_t n = d0 * d1, width = strcmp(s->dtype, "F64") == 0 ? 8 : strcmp(s->dtype, "F32") == 0 ? 4 : 2;
    s->nbytes = n * width;
    if (!(s->bytes = malloc(s->nbytes ? s->nbytes : 1)))
        return fail("encode", "out of memory");
    for (size_t i = 0; i < n; i++) {
        float x = transposed ? v[(i % d0) * d1 + i / d0] : v[i];
        unsigned char *p = s->bytes + i * width;
        if (width == 8) {
            double d = x;
            uint64_t b;
            memcpy(&b, &d, 8);
            bytes_put_u64(p, b);
        } else if (width == 4) {
            bytes_put_u32(p, f32_bits(x));
        } else {
            bytes_put_u16(p, strcmp(s->dtype, "BF16") == 0 ? f32_bits(x) >> 16 : f16_bits(x));
        }
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const stored *)a)->name, ((const stored *)b)->name);
}

/* Writes the stored tensors in name order, as the reference writer does for
 * tensors of one dtype, with {"format": "pt"} metadata. */
static int write_safetensors(const char *path, stored *s, size_t n)
{
    qsort(s, n, sizeof *s, by_name);
    char *head = NULL;
    size_t head_len = 0;
    FILE *h = open_memstream(&head, &head_len);
    if (!h)
        return fail(path, "out of memory");
    fprintf(h, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        fprintf(h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", s[i].name, s[i].dtype);
        for (int d = 0; d < s[i].ndim; d++)
            fprintf(h, "%s%llu", d ? "," : "", (unsigned long long)s[i].shape[d]);
        fprintf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)at,
                (unsigned long long)(at + s[i].nbytes));
        at += s[i].nbytes;
    }
    fputc('}', h);
    while (ftell(h) % 8)
        fputc(' ', h);
    if (fclose(h) != 0)
        return fail(path, "header");
    FILE *fp = fopen(path, "wb");
    unsigned char len[8];
    bytes_put_u64(len, head_len);
    int ok = fp && fwrite(len, 1, 8, fp) == 8 && fwrite(head, 1, head_len, fp) == head_len;
    for (size_t i = 0; ok && i < n; i++)
        ok = fwrite(s[i].bytes, 1, s[i].nbytes, fp) == s[i].nbytes;
    free(head);
    if (!fp || fclose(fp) != 0 || !ok)
        return fail(path, strerror(errno));
    return 0;
}

int shf_write_raw_safetensors(const char *path, uint64_t header_len, const char *header,
                              const void *data, size_t data_len)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return fail(path, strerror(errno));
    unsigned char len[8];
    bytes_put_u64(len, header_len);
    int ok = fwrite(len, 1, 8, fp) == 8 && fwrite(header, 1, strlen(header), fp) == strlen(header);
    for (size_t i = 0; ok && i < data_len; i++)
        ok = fputc(data ? ((const unsigned char *)data)[i] : 0, fp) != EOF;
    if (fclose(fp) != 0 || !ok)
        return fail(path, "write failed");
    return 0;
}

static int store_all(const char *path, const shf_options *o, const shf_gpt2 *m)
{
    size_t cap = m->n + 2 * (size_t)o->layers + 3, n = 0;
    stored *s = calloc(cap, sizeof *s);
    float *mask = NULL, masked = -10000.0f;
    int rc = -1;
    if (!s)
        return fail(path, "out of memory");
    const char *dtype = o->dtype ? o->dtype : "F32";
    for (size_t i = 0; i < m->n; i++) {
        const shf_tensor *t = &m->tensors[i];
        if (o->drop && strcmp(o->drop, t->name) == 0)
            continue;
        int tr = o->transpose && strcmp(o->transpose, t->name) == 0;
        stored *x = &s[n++];
        snprintf(x->name, sizeof x->name, "%s%s", o->prefix ? PREFIX : "", t->name);
        x->dtype = o->f64 && strcmp(o->f64, t->name) == 0 ? "F64" : dtype;
        x->ndim = t->ndim;
        x->shape[0] = tr ? t->shape[1] : t->shape[0];
        x->shape[1] = tr ? t->shape[0] : t->shape[1];
        if (encode(x, t->values, t->shape[0], t->shape[1], tr) < 0)
            goto done;
        if (o->lm_head && strcmp(t->name, "wte.weight") == 0) {
            stored *head = &s[n++];
            *head = *x;
            snprintf(head->name, sizeof head->name, "lm_head.weight");
            if (encode(head, t->values, t->shape[0], t->shape[1], 0) < 0)
                goto done;
            if (o->lm_head == 2)
                head->bytes[head->nbytes - 1] ^= 0x01;   /* the last value differs */
        }
    }
    uint64_t T = (uint64_t)o->seq_len;
    if (o->buffers) {
        if (!(mask = calloc(T * T, sizeof *mask)))
            goto done;
        for (uint64_t i = 0; i < T; i++)
            for (uint64_t j = 0; j <= i; j++)
                mask[i * T + j] = 1.0f;
    }
    for (int l = 0; o->buffers && l < o->layers; l++) {
        stored *b = &s[n++], *mb = &s[n++];
        snprintf(b->name, sizeof b->name, "%sh.%d.attn.bias", o->prefix ? PREFIX : "", l);
        b->dtype = "F32";
        b->ndim = 4;
        b->shape[0] = b->shape[1] = 1;
        b->shape[2] = b->shape[3] = T;
        snprintf(mb->name, sizeof mb->name, "%sh.%d.attn.masked_bias", o->prefix ? PREFIX : "", l);
        mb->dtype = "F32";
        mb->ndim = 0;
        if (encode(b, mask, T, T, 0) < 0 || encode(mb, &masked, 1, 1, 0) < 0)
            goto done;
    }
    if (o->extra) {
        stored *x = &s[n++];
        snprintf(x->name, sizeof x->name, "%s", o->extra);
        x->dtype = "F32";
        x->ndim = 1;
        x->shape[0] = (uint64_t)o->channels;
        if (encode(x, m->tensors[m->n - 1].values, x->shape[0], 1, 0) < 0)
            goto done;
    }
    rc = write_safetensors(path, s, n);
done:
    for (size_t i = 0; i < n; i++)
        free(s[i].bytes);
    free(s);
    free(mask);
    return rc;
}

/* ---- config.json, vocab.json, merges.txt ---- */

static int write_json(const char *path, json_t *j)
{
    int rc = j && json_dump_file(j, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0 ? 0 : -1;
    json_decref(j);
    return rc < 0 ? fail(path, "cannot write JSON") : 0;
}

/* GPT-2's byte-to-unicode table: the printable bytes stand for themselves,
 * the others for 256, 257, ... in byte order; ids follow the printable bytes
 * first. order[id] = byte, code[byte] = its code point. */
static void byte_table(int order[256], unsigned code[256])
{
    int n = 0, extra = 0;
    for (int b = 0; b < 256; b++)
        if ((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)) {
            order[n++] = b;
            code[b] = (unsigned)b;
        }
    for (int b = 0; b < 256; b++)
        if (!((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff))) {
            order[n++] = b;
            code[b] = 256u + (unsigned)extra++;
        }
}

static void utf8(unsigned cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = 0;
    }
}

static const char *const merges[SHF_MERGES][2] = {
    {"\xc4\xa0", "t"}, {"h", "e"}, {"\xc4\xa0", "a"}, {"i", "n"},
    {"\xc4\xa0t", "he"}, {"r", "e"}, {"o", "n"}, {"e", "r"},
};

static int write_tokenizer(const char *dir)
{
    int order[256];
    unsigned code[256];
    byte_table(order, code);
    json_t *vocab = json_object();
    char path[4096], tok[16];
    for (int id = 0; vocab && id < 256; id++) {
        utf8(code[order[id]], tok);
        if (json_object_set_new(vocab, tok, json_integer(id)) < 0)
            return fail(dir, "vocab.json");
    }
    for (int i = 0; vocab && i < SHF_MERGES; i++) {
        char joined[32];
        snprintf(joined, sizeof joined, "%s%s", merges[i][0], merges[i][1]);
        if (json_object_set_new(vocab, joined, json_integer(256 + i)) < 0)
            return fail(dir, "vocab.json");
    }
    if (vocab && json_object_set_new(vocab, "<|endoftext|>", json_integer(256 + SHF_MERGES)) < 0)
        return fail(dir, "vocab.json");
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    if (write_json(path, vocab) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return fail(path, strerror(errno));
    fputs("#version: 0.2\n", fp);
    for (int i = 0; i < SHF_MERGES; i++)
        fprintf(fp, "%s %s\n", merges[i][0], merges[i][1]);
    return fclose(fp) == 0 ? 0 : fail(path, "write failed");
}

int shf_write_gpt2(const char *dir, const shf_options *o, shf_gpt2 *out)
{
    shf_gpt2 m = {0};
    char path[4096];
    int rc = -1;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return fail(dir, strerror(errno));
    if (make_tensors(o, &m) < 0)
        goto done;
    json_t *config = json_pack(
        "{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:s, s:f, s:i, s:i}",
        "architectures", "GPT2LMHeadModel", "model_type", o->model_type ? o->model_type : "gpt2",
        "vocab_size", SHF_VOCAB, "n_positions", o->seq_len, "n_ctx", o->seq_len, "n_embd",
        o->channels, "n_layer", o->layers, "n_head", o->heads, "layer_norm_epsilon", 1e-5,
        "activation_function", o->activation ? o->activation : "gelu_new", "attn_pdrop", 0.1,
        "bos_token_id", SHF_VOCAB - 1, "eos_token_id", SHF_VOCAB - 1);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (write_json(path, config) < 0)
        goto done;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (store_all(path, o, &m) < 0 || write_tokenizer(dir) < 0)
        goto done;
    rc = 0;
done:
    if (rc == 0 && out)
        *out = m;
    else
        shf_free(&m);
    return rc;
}
