/* hf_gpt2: Hugging Face GPT-2 directories <-> w2s checkpoints; see hf_gpt2.h.
 *
 * One table lists GPT-2's parameter tensors in the w2s order of
 * schemas/checkpoint.md with their Hugging Face names and shapes; the file
 * order (wte, wpe, h.0.*, h.1.*, ..., ln_f) and every tensor's offset in the
 * flat parameter buffer follow from it, for reading and writing alike. */
#include "nn/hf_gpt2.h"

#include "base/err.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "nn/safetensors.h"
#include "text/tok_gpt2.h"
#include "text/tokenizer.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum dim { D_V, D_T, D_C, D_3C, D_4C };

/* GPT-2's parameters in w2s order. name: the Hugging Face name, after
 * "h.{i}." for a per-layer tensor; dims: its Hugging Face shape (conv1d:
 * stored (in, out), the transpose of w2s's (out, in)). */
static const struct hf_spec {
    const char *name;
    int per_layer, ndim;
    enum dim dims[2];
    int conv1d;
} specs[] = {
    {"wte.weight", 0, 2, {D_V, D_C}, 0},
    {"wpe.weight", 0, 2, {D_T, D_C}, 0},
    {"ln_1.weight", 1, 1, {D_C}, 0},
    {"ln_1.bias", 1, 1, {D_C}, 0},
    {"attn.c_attn.weight", 1, 2, {D_C, D_3C}, 1},
    {"attn.c_attn.bias", 1, 1, {D_3C}, 0},
    {"attn.c_proj.weight", 1, 2, {D_C, D_C}, 1},
    {"attn.c_proj.bias", 1, 1, {D_C}, 0},
    {"ln_2.weight", 1, 1, {D_C}, 0},
    {"ln_2.bias", 1, 1, {D_C}, 0},
    {"mlp.c_fc.weight", 1, 2, {D_C, D_4C}, 1},
    {"mlp.c_fc.bias", 1, 1, {D_4C}, 0},
    {"mlp.c_proj.weight", 1, 2, {D_4C, D_C}, 1},
    {"mlp.c_proj.bias", 1, 1, {D_C}, 0},
    {"ln_f.weight", 0, 1, {D_C}, 0},
    {"ln_f.bias", 0, 1, {D_C}, 0},
};
enum { N_SPECS = sizeof specs / sizeof *specs, N_GLOBAL_FIRST = 2, N_PER_LAYER = 12 };

#define HF_PREFIX "transformer."
#define HF_PATH_MAX 4096

/* One tensor of a GPT-2 file, in file order. */
typedef struct hf_entry {
    char name[64];               /* without the prefix */
    int ndim, conv1d;
    uint64_t shape[2];           /* Hugging Face shape */
    size_t offset, count;        /* in the w2s parameter buffer */
} hf_entry;

static uint64_t dim_size(const model_config *c, enum dim d)
{
    switch (d) {
    case D_V: return (uint64_t)c->vocab;
    case D_T: return (uint64_t)c->seq_len;
    case D_C: return (uint64_t)c->channels;
    case D_3C: return 3 * (uint64_t)c->channels;
    default: return 4 * (uint64_t)c->channels;
    }
}

static size_t layout_count(const model_config *c)
{
    return N_SPECS - N_PER_LAYER + (size_t)c->layers * N_PER_LAYER;
}

/* Position in the file order of spec s (of layer l when per layer): the
 * globals before the blocks, the blocks layer by layer, then the rest. */
static size_t file_index(const model_config *c, int s, long l)
{
    if (specs[s].per_layer)
        return N_GLOBAL_FIRST + (size_t)l * N_PER_LAYER + (size_t)(s - N_GLOBAL_FIRST);
    return s < N_GLOBAL_FIRST ? (size_t)s : (size_t)(s - N_PER_LAYER) + (size_t)c->layers * N_PER_LAYER;
}

/* The entries of a file of c, in file order (layout_count(c) of them).
 * @return a malloc'ed array, or NULL + message. */
static hf_entry *layout(const model_config *c)
{
    hf_entry *e = mem_calloc(layout_count(c), sizeof *e, "GPT-2 tensor list");
    if (!e)
        return NULL;
    size_t base = 0;
    for (int s = 0; s < N_SPECS; s++) {
        uint64_t count = dim_size(c, specs[s].dims[0]) *
                         (specs[s].ndim == 2 ? dim_size(c, specs[s].dims[1]) : 1);
        int copies = specs[s].per_layer ? c->layers : 1;
        for (int l = 0; l < copies; l++) {
            hf_entry *x = &e[file_index(c, s, l)];
            if (specs[s].per_layer)
                snprintf(x->name, sizeof x->name, "h.%d.%s", l, specs[s].name);
            else
                snprintf(x->name, sizeof x->name, "%s", specs[s].name);
            x->ndim = specs[s].ndim;
            x->conv1d = specs[s].conv1d;
            for (int d = 0; d < x->ndim; d++)
                x->shape[d] = dim_size(c, specs[s].dims[d]);
            x->count = (size_t)count;
            x->offset = base + (size_t)l * (size_t)count;
        }
        base += (size_t)copies * (size_t)count;
    }
    return e;
}

static int join(char out[HF_PATH_MAX], const char *dir, const char *name)
{
    int n = snprintf(out, HF_PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= HF_PATH_MAX)
        return err_set("%s: path too long", dir);
    return 0;
}

/* ---- config.json ---- */

/* A positive int key of config.json. */
static int config_int(const char *path, json_t *root, const char *key, int *out)
{
    json_t *v = json_object_get(root, key);
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > INT_MAX)
        return err_set("%s: %s is %s (a positive integer is required)", path, key,
                       v ? "not a positive integer" : "missing");
    *out = (int)json_integer_value(v);
    return 0;
}

/* Options of Hugging Face's GPT2Config that change the architecture: w2s
 * computes GPT-2's defaults only. */
static int check_architecture(const char *path, json_t *root, int channels)
{
    static const struct { const char *key; int want; } flags[] = {
        {"scale_attn_weights", 1}, {"scale_attn_by_inverse_layer_idx", 0},
        {"add_cross_attention", 0}, {"tie_word_embeddings", 1},
    };
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        json_t *v = json_object_get(root, flags[i].key);
        if (v && (!json_is_boolean(v) || json_is_true(v) != flags[i].want))
            return err_set("%s: %s must be %s for w2s's GPT-2 (the model computes only that)",
                           path, flags[i].key, flags[i].want ? "true" : "false");
    }
    json_t *inner = json_object_get(root, "n_inner");
    if (inner && !json_is_null(inner) &&
        (!json_is_integer(inner) || json_integer_value(inner) != 4 * (json_int_t)channels))
        return err_set("%s: n_inner must be null or 4 * n_embd = %d (w2s's MLP is 4C wide)", path,
                       4 * channels);
    json_t *eps = json_object_get(root, "layer_norm_epsilon");
    if (eps && (!json_is_number(eps) || json_number_value(eps) != 1e-5))
        return err_set("%s: layer_norm_epsilon %g is not supported (w2s's LayerNorm uses 1e-05)", path,
                       json_is_number(eps) ? json_number_value(eps) : -1.0);
    json_t *act = json_object_get(root, "activation_function");
    const char *a = json_string_value(act);
    if (act && (!a || (strcmp(a, "gelu_new") != 0 && strcmp(a, "gelu_pytorch_tanh") != 0)))
        return err_set("%s: activation_function '%s' is not supported: w2s computes GELU's tanh "
                       "approximation, which is gelu_new or gelu_pytorch_tanh (\"gelu\" is the exact "
                       "erf form)", path, a ? a : "(not a string)");
    return 0;
}

int hf_gpt2_read_config(const char *dir, model_config *cfg)
{
    char path[HF_PATH_MAX];
    TRY(join(path, dir, "config.json"));
    if (!file_exists(path))
        return err_set("%s: missing (a Hugging Face model directory has config.json)", path);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return err_set("%s: not valid JSON: %s (line %d)", path, jerr.text, jerr.line);
    int rc = -1;
    memset(cfg, 0, sizeof *cfg);
    const char *type = json_string_value(json_object_get(root, "model_type"));
    if (!json_is_object(root) || !type) {
        err_set("%s: no model_type (w2s imports model_type \"gpt2\")", path);
        goto done;
    }
    if (strcmp(type, "gpt2") != 0) {
        err_set("%s: model_type '%s' is not supported (w2s imports GPT-2, model_type \"gpt2\")",
                path, type);
        goto done;
    }
    const char *positions = json_object_get(root, "n_positions") ? "n_positions" : "n_ctx";
    if (config_int(path, root, "n_layer", &cfg->layers) < 0 ||
        config_int(path, root, "n_head", &cfg->heads) < 0 ||
        config_int(path, root, "n_embd", &cfg->channels) < 0 ||
        config_int(path, root, positions, &cfg->seq_len) < 0 ||
        config_int(path, root, "vocab_size", &cfg->vocab) < 0 ||
        check_architecture(path, root, cfg->channels) < 0)
        goto done;
    if (model_config_check(cfg) < 0) {
        err_wrap("%s", path);
        goto done;
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

static int write_json(const char *dir, const char *name, json_t *j)
{
    char path[HF_PATH_MAX];
    char *text = NULL;
    int rc = -1;
    if (!j) {
        err_set("%s/%s: out of memory", dir, name);
        goto done;
    }
    if (join(path, dir, name) < 0)
        goto done;
    if (!(text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)))) {
        err_set("%s: out of memory", path);
        goto done;
    }
    size_t len = strlen(text);
    text[len] = '\n';   /* json_dumps's NUL becomes the final newline */
    rc = file_write_atomic(path, text, len + 1);
done:
    free(text);
    json_decref(j);
    return rc;
}

int hf_gpt2_write_config(const char *dir, const model_config *c, int32_t eot)
{
    /* dropout 0: w2s trains without it, so a fine-tune elsewhere starts alike */
    json_t *config = json_pack(
        "{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:n, s:s, s:f, s:f, s:f, s:f, s:f, s:b, "
        "s:b, s:i, s:i, s:s, s:b}",
        "architectures", "GPT2LMHeadModel", "model_type", "gpt2", "vocab_size", c->vocab,
        "n_positions", c->seq_len, "n_ctx", c->seq_len, "n_embd", c->channels, "n_layer", c->layers,
        "n_head", c->heads, "n_inner", "activation_function", "gelu_new", "layer_norm_epsilon", 1e-5,
        "initializer_range", 0.02, "resid_pdrop", 0.0, "embd_pdrop", 0.0, "attn_pdrop", 0.0,
        "scale_attn_weights", 1, "tie_word_embeddings", 1, "bos_token_id", eot, "eos_token_id", eot,
        "torch_dtype", "float32", "use_cache", 1);
    TRY(write_json(dir, "config.json", config));
    return write_json(dir, "generation_config.json",
                      json_pack("{s:i, s:i}", "bos_token_id", eot, "eos_token_id", eot));
}

/* ---- model.safetensors ---- */

/* Which entry a file's tensor name (prefix removed) is; -1 if none. Sets
 * *buffer for the attention mask buffers of an existing layer. */
static long entry_of(const char *name, const model_config *c, int *buffer)
{
    *buffer = 0;
    if (strncmp(name, "h.", 2) != 0) {
        for (int s = 0; s < N_SPECS; s++)
            if (!specs[s].per_layer && strcmp(name, specs[s].name) == 0)
                return (long)file_index(c, s, 0);
        return -1;
    }
    const char *p = name + 2;
    long layer = 0;
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] != '.'))
        return -1;
    for (; *p >= '0' && *p <= '9'; p++)
        if ((layer = layer * 10 + (*p - '0')) >= c->layers)
            return -1;
    if (*p++ != '.')
        return -1;
    if (strcmp(p, "attn.bias") == 0 || strcmp(p, "attn.masked_bias") == 0) {
        *buffer = 1;
        return -1;
    }
    for (int s = 0; s < N_SPECS; s++)
        if (specs[s].per_layer && strcmp(p, specs[s].name) == 0)
            return (long)file_index(c, s, layer);
    return -1;
}

static void shape_text(char *out, size_t size, int ndim, const uint64_t *shape)
{
    size_t at = (size_t)snprintf(out, size, "[");
    for (int d = 0; d < ndim && at < size; d++)
        at += (size_t)snprintf(out + at, size - at, "%s%llu", d ? ", " : "", (unsigned long long)shape[d]);
    if (at < size)
        snprintf(out + at, size - at, "]");
}

static int check_shape(const char *path, const char *name, const safetensors_tensor *t,
                       const hf_entry *e)
{
    int same = t->ndim == e->ndim, transposed = t->ndim == 2 && e->ndim == 2;
    for (int d = 0; d < t->ndim && d < 2; d++) {
        same = same && t->shape[d] == e->shape[d];
        transposed = transposed && t->shape[d] == e->shape[1 - d];
    }
    if (same)
        return 0;
    char got[160], want[64];
    shape_text(got, sizeof got, t->ndim, t->shape);
    shape_text(want, sizeof want, e->ndim, e->shape);
    return err_set("%s: tensor '%s' has shape %s, expected %s from config.json%s", path, name, got,
                   want, transposed && e->conv1d ? " (transposed: GPT-2 stores Conv1D weights as "
                                                   "(in, out))" : "");
}

/* Sorts the file's tensors into found[] by entry; the head, if any, into *head. */
static int classify(const safetensors_file *f, const model_config *c,
                    const safetensors_tensor **found, const safetensors_tensor **head)
{
    const char *path = safetensors_path(f);
    size_t prefix = strlen(HF_PREFIX);
    for (size_t i = 0; i < safetensors_count(f); i++) {
        const safetensors_tensor *t = safetensors_at(f, i);
        const char *name = strncmp(t->name, HF_PREFIX, prefix) == 0 ? t->name + prefix : t->name;
        int buffer;
        long e = entry_of(name, c, &buffer);
        const safetensors_tensor **slot = e >= 0 ? &found[e] : strcmp(name, "lm_head.weight") == 0 ? head : NULL;
        if (buffer)
            continue;
        if (!slot)
            return err_set("%s: unexpected tensor '%s' (not a parameter of GPT-2 with n_layer %d)",
                           path, t->name, c->layers);
        if (*slot)
            return err_set("%s: tensors '%s' and '%s' are the same parameter", path, (*slot)->name,
                           t->name);
        *slot = t;
    }
    return 0;
}

/* The output head must be wte itself (w2s ties them). */
static int check_tied_head(const safetensors_file *f, const safetensors_tensor *head,
                           const model_config *c, const float *wte)
{
    const char *path = safetensors_path(f);
    if (head->ndim != 2 || head->shape[0] != (uint64_t)c->vocab || head->shape[1] != (uint64_t)c->channels)
        return err_set("%s: tensor '%s' is not of wte's shape [%d, %d]", path, head->name, c->vocab,
                       c->channels);
    float chunk[1024];
    for (uint64_t at = 0; at < head->count; at += 1024) {
        uint64_t n = head->count - at < 1024 ? head->count - at : 1024;
        TRY(safetensors_read_f32(f, head, at, n, chunk));
        if (memcmp(chunk, wte + at, n * sizeof *chunk) != 0)
            return err_set("%s: tensor '%s' differs from wte.weight: an untied output head, which "
                           "w2s's GPT-2 does not have", path, head->name);
    }
    return 0;
}

static int weights_file(const char *dir, char path[HF_PATH_MAX])
{
    char other[HF_PATH_MAX];
    TRY(join(path, dir, "model.safetensors"));
    if (file_exists(path))
        return 0;
    TRY(join(other, dir, "model.safetensors.index.json"));
    if (file_exists(other))
        return err_set("%s: sharded weights are not supported (w2s reads one model.safetensors)", other);
    TRY(join(other, dir, "pytorch_model.bin"));
    if (file_exists(other))
        return err_set("%s: only pytorch_model.bin (a PyTorch pickle, which w2s does not read): "
                       "convert it to safetensors (model.safetensors) first", path);
    return err_set("%s: missing", path);
}

int hf_gpt2_read_weights(const char *dir, const model_config *cfg, float *params)
{
    char path[HF_PATH_MAX];
    TRY(weights_file(dir, path));
    safetensors_file *f = safetensors_open(path);
    if (!f)
        return -1;
    size_t n = layout_count(cfg);
    hf_entry *e = layout(cfg);
    const safetensors_tensor **found = mem_calloc(n, sizeof *found, "tensor list"), *head = NULL;
    int rc = -1;
    if (!e || !found || classify(f, cfg, found, &head) < 0)
        goto done;
    for (size_t i = 0; i < n; i++)
        if (!found[i]) {
            err_set("%s: tensor '%s' is missing", path, e[i].name);
            goto done;
        }
    for (size_t i = 0; i < n; i++) {
        const safetensors_tensor *t = found[i];
        if (check_shape(path, t->name, t, &e[i]) < 0 ||
            (e[i].conv1d ? safetensors_read_f32_transposed(f, t, params + e[i].offset)
                         : safetensors_read_f32(f, t, 0, t->count, params + e[i].offset)) < 0)
            goto done;
    }
    rc = head ? check_tied_head(f, head, cfg, params) : 0;   /* wte is entry 0, at offset 0 */
done:
    free(found);
    free(e);
    safetensors_close(f);
    return rc;
}

int hf_gpt2_write_weights(const char *dir, const model_config *cfg, const float *params)
{
    char path[HF_PATH_MAX];
    TRY(join(path, dir, "model.safetensors"));
    size_t n = layout_count(cfg);
    hf_entry *e = layout(cfg);
    safetensors_decl *decl = mem_calloc(n, sizeof *decl, "tensor list");
    float *row = mem_calloc(4 * (size_t)cfg->channels, sizeof *row, "transpose row");
    static const char *const meta[] = {"format", "pt", NULL};   /* transformers requires it */
    safetensors_writer w;
    int rc = -1;
    if (!e || !decl || !row)
        goto done;
    for (size_t i = 0; i < n; i++)
        decl[i] = (safetensors_decl){e[i].name, e[i].ndim, {e[i].shape[0], e[i].shape[1]}};
    if (safetensors_writer_open(&w, path, decl, n, meta) < 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        const float *src = params + e[i].offset;
        if (!e[i].conv1d) {
            if (safetensors_writer_put(&w, src, e[i].count) < 0)
                goto abort;
            continue;
        }
        /* w2s (out, in) -> file (in, out), one file row at a time */
        size_t in = e[i].shape[0], out = e[i].shape[1];
        for (size_t r = 0; r < in; r++) {
            for (size_t o = 0; o < out; o++)
                row[o] = src[o * in + r];
            if (safetensors_writer_put(&w, row, out) < 0)
                goto abort;
        }
    }
    rc = safetensors_writer_commit(&w);
    goto done;
abort:
    safetensors_writer_abort(&w);
done:
    free(row);
    free(decl);
    free(e);
    return rc;
}

/* ---- whole directories ---- */

int hf_gpt2_import(const char *dir, checkpoint *ck)
{
    memset(ck, 0, sizeof *ck);
    char vocab[HF_PATH_MAX], merges[HF_PATH_MAX];
    tokenizer *tok = NULL;
    int rc = -1;
    if (hf_gpt2_read_config(dir, &ck->config) < 0 ||
        !(ck->params = mem_alloc_big(model_config_num_params(&ck->config) * sizeof(float), dir)) ||
        hf_gpt2_read_weights(dir, &ck->config, ck->params) < 0 ||
        join(vocab, dir, "vocab.json") < 0 || join(merges, dir, "merges.txt") < 0 ||
        !(tok = tok_gpt2_load(vocab, merges)))
        goto done;
    if (tok_vocab_size(tok) != ck->config.vocab) {
        err_set("%s: %d tokens, but config.json has vocab_size %d", vocab, tok_vocab_size(tok),
                ck->config.vocab);
        goto done;
    }
    if (tok_serialize(tok, &ck->tokenizer, &ck->tokenizer_len) < 0)
        goto done;
    ck->hash = checkpoint_hash(&ck->config, ck->params);
    rc = 0;
done:
    tok_free(tok);
    if (rc < 0)
        checkpoint_free(ck);
    return rc;
}

/* Removes the files of dir, then dir (only files are created in it). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        char path[HF_PATH_MAX];
        struct dirent *ent;
        while ((ent = readdir(d)))
            if (strcmp(ent->d_name, ".") != 0 && strcmp(ent->d_name, "..") != 0 &&
                join(path, dir, ent->d_name) == 0)
                unlink(path);
        closedir(d);
    }
    rmdir(dir);
}

/* DIR must be absent or an empty directory. */
static int check_target(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return errno == ENOENT ? 0 : err_errno(dir, "cannot stat");
    if (!S_ISDIR(st.st_mode))
        return err_set("%s: exists and is not a directory (export writes a new directory)", dir);
    DIR *d = opendir(dir);
    if (!d)
        return err_errno(dir, "cannot open");
    struct dirent *ent;
    int empty = 1;
    while (empty && (ent = readdir(d)))
        empty = strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0;
    closedir(d);
    if (!empty)
        return err_set("%s: exists and is not empty (export never overwrites files; give a new "
                       "or empty directory)", dir);
    return 0;
}

int hf_gpt2_export(const checkpoint *ck, const char *dir_arg)
{
    char dir[HF_PATH_MAX], tmp[HF_PATH_MAX], vocab[HF_PATH_MAX], merges[HF_PATH_MAX];
    size_t len = strlen(dir_arg);
    while (len > 1 && dir_arg[len - 1] == '/')   /* "out/" names "out" */
        len--;
    int n = snprintf(tmp, sizeof tmp, "%.*s.tmp.%ld", (int)len, dir_arg, (long)getpid());
    if (len >= sizeof dir || n < 0 || n >= (int)sizeof tmp)
        return err_set("%s: path too long", dir_arg);
    memcpy(dir, dir_arg, len);
    dir[len] = '\0';
    TRY(check_target(dir));
    tokenizer *tok = tok_deserialize(ck->tokenizer, ck->tokenizer_len);
    if (!tok)
        return err_wrap("%s: the checkpoint's tokenizer", dir);
    if (mkdir(tmp, 0777) != 0) {
        tok_free(tok);
        return err_errno(tmp, "cannot create the temporary directory");
    }
    int rc = -1;
    if (join(vocab, tmp, "vocab.json") < 0 || join(merges, tmp, "merges.txt") < 0)
        goto done;
    if (tok_gpt2_save(tok, vocab, merges) < 0) {
        err_wrap("%s: the checkpoint's tokenizer cannot be exported as GPT-2 vocab.json + merges.txt",
                 dir);
        goto done;
    }
    if (hf_gpt2_write_config(tmp, &ck->config, tok_eot(tok)) < 0 ||
        hf_gpt2_write_weights(tmp, &ck->config, ck->params) < 0)
        goto done;
    if (rename(tmp, dir) != 0) {
        if (errno == ENOTEMPTY || errno == EEXIST)
            err_set("%s: was filled while exporting; nothing overwritten", dir);
        else
            err_errno(dir, "cannot rename the temporary directory into place");
        goto done;
    }
    rc = 0;
done:
    tok_free(tok);
    if (rc < 0)
        remove_dir(tmp);
    return rc;
}
