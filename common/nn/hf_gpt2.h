/* hf_gpt2: Hugging Face GPT-2 model directories to and from w2s checkpoints.
 *
 * The w2s model is GPT-2's architecture exactly (README, "The model";
 * schemas/checkpoint.md), so a GPT-2 checkpoint maps onto a w2s one tensor
 * for tensor. A directory holds (schemas/safetensors.md, "GPT-2 directories"):
 *   config.json      model_type "gpt2"; n_layer, n_head, n_embd, n_positions
 *                    (or n_ctx), vocab_size; layer_norm_epsilon 1e-5 and
 *                    activation_function gelu_new or gelu_pytorch_tanh when
 *                    given (both are GELU's tanh approximation, which w2s
 *                    computes; "gelu" is the exact erf form and is refused,
 *                    as is any option that changes the architecture:
 *                    n_inner other than 4 * n_embd, unscaled or per-layer
 *                    scaled attention, cross-attention, an untied head);
 *   model.safetensors  wte, wpe, h.{i}.ln_1, attn.c_attn, attn.c_proj, ln_2,
 *                    mlp.c_fc, mlp.c_proj (weight and bias each), ln_f; names
 *                    with or without a "transformer." prefix; F32, F16 or
 *                    BF16. GPT-2's Conv1D weights are stored (in, out) and
 *                    are transposed to w2s's (out, in). lm_head.weight, when
 *                    present, must equal wte (the head is tied); the
 *                    attention mask buffers h.{i}.attn.bias / masked_bias are
 *                    ignored; any other tensor is refused by name;
 *   vocab.json, merges.txt  the tokenizer (text/tok_gpt2.h).
 * The export writes the same files (F32, names without the prefix, no
 * lm_head, no buffers) plus generation_config.json, so importing an export
 * gives back the checkpoint's parameters and tokenizer bit for bit.
 *
 * Memory: an import maps model.safetensors and converts each tensor straight
 * into the checkpoint's parameter buffer (one copy of the weights); an export
 * streams the parameters out, transposing one row at a time. */
#ifndef W2S_HF_GPT2_H
#define W2S_HF_GPT2_H

#include "nn/checkpoint.h"
#include "nn/model.h"

#include <stdint.h>

/* Reads and checks DIR/config.json into *cfg (vocab from vocab_size).
 * @return 0, or -1 with a message naming the file and the key. */
int hf_gpt2_read_config(const char *dir, model_config *cfg);
/* Reads DIR/model.safetensors into params (model_config_num_params(cfg)
 * floats, in the order of schemas/checkpoint.md). @return 0, or -1 with a
 * message naming the file and the tensor: missing, misshaped, of another
 * dtype, unexpected, an untied lm_head; or only pytorch_model.bin / a
 * sharded index present. params is then partly written. */
int hf_gpt2_read_weights(const char *dir, const model_config *cfg, float *params);

/* Writes DIR/config.json and DIR/generation_config.json for cfg, with eot as
 * the bos and eos ids. @return 0 or -1 + message. */
int hf_gpt2_write_config(const char *dir, const model_config *cfg, int32_t eot);
/* Writes DIR/model.safetensors (F32) from params. @return 0 or -1 + message. */
int hf_gpt2_write_weights(const char *dir, const model_config *cfg, const float *params);

/* Imports DIR into *ck (zeroed first): config, parameters and the tokenizer
 * blob, no optimiser state, step 0; free with checkpoint_free. The files
 * are read in the order config.json, model.safetensors, vocab.json +
 * merges.txt. @return 0, or -1 with a message; nothing stays allocated. */
int hf_gpt2_import(const char *dir, checkpoint *ck);
/* Exports ck's parameters and tokenizer to DIR, which must not exist or be
 * an empty directory (an existing file is never overwritten): the files go
 * to DIR.tmp.<pid> first, renamed to DIR when all are written. A tokenizer
 * that GPT-2's files cannot express is refused before any weight is written.
 * @return 0, or -1 with a message; the temporary directory is removed. */
int hf_gpt2_export(const checkpoint *ck, const char *dir);

#endif
