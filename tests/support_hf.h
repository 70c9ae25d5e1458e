/* support_hf: a small GPT-2 in Hugging Face layout, written the way the hub's
 * files are (independently of common/nn/safetensors.c and hf_gpt2.c, which
 * it tests): config.json, model.safetensors with the Conv1D weights stored
 * (in, out) and tensors in name order, a GPT-2-style vocab.json (the 256
 * byte tokens in GPT-2's byte-to-unicode order, SHF_MERGES merges,
 * <|endoftext|> last) and merges.txt.
 *
 * Weights are seeded random values on a grid that F32, F16 and BF16 all hold
 * exactly (multiples of 2^-8 below 0.25 in magnitude; LayerNorm weights
 * 1 + multiples of 2^-7), so every dtype variant imports to the same floats.
 * The values stay in memory, by Hugging Face name and layout, for reference
 * computations. Options spoil one part of the directory for refusal tests.
 *
 * Functions return 0 on success and -1 with a message on stderr. */
#ifndef W2S_SUPPORT_HF_H
#define W2S_SUPPORT_HF_H

#include <stddef.h>
#include <stdint.h>

#define SHF_MERGES 8
#define SHF_VOCAB (256 + SHF_MERGES + 1)

typedef struct shf_options {
    int layers, heads, channels, seq_len;
    const char *dtype;        /* "F32" (NULL), "F16" or "BF16", for every parameter */
    int prefix;               /* names start with "transformer." */
    int buffers;              /* add h.{i}.attn.bias (1, 1, T, T) and the scalar
                               * h.{i}.attn.masked_bias, as the hub's gpt2 has */
    int lm_head;              /* 1: add lm_head.weight = wte; 2: wte with one value changed */
    const char *drop;         /* leave out this tensor (name without prefix) */
    const char *transpose;    /* store this 2-D tensor with its dimensions swapped */
    const char *extra;        /* add a tensor of this name, shape (C) */
    const char *f64;          /* store this tensor as F64 */
    const char *model_type;   /* NULL: "gpt2" */
    const char *activation;   /* NULL: "gelu_new" */
    uint64_t seed;
} shf_options;

/* One tensor in Hugging Face layout, as stored (before any spoiling). */
typedef struct shf_tensor {
    char name[64];            /* without prefix */
    int ndim;
    uint64_t shape[2];
    float *values;
} shf_tensor;

typedef struct shf_gpt2 {
    int vocab;
    shf_tensor *tensors;
    size_t n;
} shf_gpt2;

/* Writes the directory dir (created if missing) from o; fills *m (if not
 * NULL) with the tensors. @return 0 or -1. */
int shf_write_gpt2(const char *dir, const shf_options *o, shf_gpt2 *m);
/* The values of tensor name (without prefix), or NULL. */
const float *shf_get(const shf_gpt2 *m, const char *name);
void shf_free(shf_gpt2 *m);

/* Writes a safetensors file from a header text and data_len data bytes
 * (data may be NULL: zeros), with the 8-byte length header_len (use
 * strlen(header) for a consistent file). @return 0 or -1. */
int shf_write_raw_safetensors(const char *path, uint64_t header_len, const char *header,
                              const void *data, size_t data_len);

#endif
