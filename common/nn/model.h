/* model: the GPT-2 decoder (README, "The model") -- forward, exact backward, AdamW.
 *
 * A model owns five contiguous buffers sized once from its config: parameters,
 * gradients, AdamW first and second moments (all in the parameter order), and
 * activations for up to max_rows rows of seq_len tokens (an inference model:
 * parameters and one layer's activations only). Every page is touched
 * at creation; forward, backward and the optimiser step never allocate. Inputs
 * are packed rows (common/window.h): pos[] is both the position-embedding index
 * and the attention bound, so several windows share a row without seeing each
 * other. Matrix products go through cblas_sgemm (or bfloat16, model_set_precision); element-wise passes are split
 * across the model's thread pool by row with a fixed partition, so results are
 * bit-identical for the same seed and thread count. A model is not
 * thread-safe: one caller at a time. */
#ifndef W2S_MODEL_H
#define W2S_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct model_config { int vocab, layers, heads, channels, seq_len; } model_config;

/* Fills layers/heads/channels/seq_len of a named preset: "tiny" (L2 H4 C128
 * T128) or "small" (L6 H6 C384 T256); leaves vocab untouched.
 * @return 0, or -1 with a message for an unknown name. */
int model_config_preset(const char *name, model_config *cfg);
/* @return 0 if every size is positive, channels divides by heads and the
 * parameter count fits; else -1 with a message naming the bad field. */
int model_config_check(const model_config *cfg);
/* Number of float parameters of a (valid) config. */
size_t model_config_num_params(const model_config *cfg);

typedef struct model model;

/* Allocates params, grads, AdamW m and v, activations for up to max_rows rows
 * of cfg->seq_len tokens, all touched now; no allocation later. Parameters
 * start at zero (call model_init_gpt2 or copy into model_params). threads:
 * <= 0 = all online cores. The model splits each batch by rows over its own
 * pool of `threads` threads (a batch of fewer rows uses that many), each
 * calling OpenBLAS single-threaded: creation sets OpenBLAS to 1 thread
 * process-wide (openblas_set_num_threads(1)) so the two never compete.
 * Memory: besides the buffers, threads - 1 extra gradient copies.
 * @return the model, or NULL with a message (invalid config, out of memory). */
model *model_create(const model_config *cfg, int max_rows, int threads);
/* A model that is only run forward (a teacher, an evaluation): parameters
 * and one layer's activations, reused by every layer; no gradients or AdamW
 * moments (model_grads, model_adam_m and model_adam_v are NULL,
 * model_backward does nothing). Logits are bit-identical to model_create's. */
model *model_create_inference(const model_config *cfg, int max_rows, int threads);
void model_free(model *m);
const model_config *model_get_config(const model *m);
size_t model_num_params(const model *m);
/* Flat buffers of model_num_params floats in the parameter order, owned by m. */
float *model_params(model *m);
float *model_grads(model *m);
float *model_adam_m(model *m);
float *model_adam_v(model *m);
/* Number of threads the model's own loops and OpenBLAS use. */
int model_threads(const model *m);

/* Precision of the matrix products (README, "Memory and speed"): MODEL_FP32
 * (the default, OpenBLAS sgemm) or MODEL_BF16: the weight matrices and the
 * activations and gradients entering a product are rounded to bfloat16, the
 * products accumulate in fp32 (common/nn/matmul_bf16.h); the parameters,
 * their gradients, the AdamW moments, attention's per-head products and
 * every element-wise pass stay fp32. The bfloat16 weights are converted by
 * the first forward after the parameters may have changed: after
 * model_init_gpt2, model_adamw_step, or a model_params call (the caller may
 * write through it), so once per training step and once per inference run.
 * Results stay bit-identical for a fixed thread count. */
typedef enum model_precision { MODEL_FP32, MODEL_BF16 } model_precision;
/* Parses "fp32", "bf16" or "auto" (bf16 where the CPU runs it natively,
 * matmul_bf16_native, else fp32) into *out. @return 0, or -1 with a message
 * (unknown name; "bf16" where oneDNN cannot run it). */
int model_precision_parse(const char *name, model_precision *out);
const char *model_precision_name(model_precision p);
/* For a start-up line: "fp32 (OpenBLAS)" or "bf16 (oneDNN, avx512_core,
 * emulated)" / "..., native)". */
void model_precision_describe(model_precision p, char *buf, size_t size);
/* Switches m's products; allocates the bfloat16 copy and contexts, once.
 * @return 0, or -1 with a message (oneDNN unavailable, out of memory). */
int model_set_precision(model *m, model_precision p);
model_precision model_get_precision(const model *m);

/* GPT-2 initialisation from seed: weights N(0, 0.02), attn_proj.w and
 * fc_proj.w N(0, 0.02/sqrt(2L)), biases 0, LayerNorm weight 1 / bias 0.
 * Resets the AdamW moments to zero. */
void model_init_gpt2(model *m, uint64_t seed);

/* tokens, pos: (rows, t) with 1 <= rows <= max_rows, 1 <= t <= seq_len; pos
 * as in window.h: position i of a row attends to i - pos[i] .. i and uses
 * wpe row pos[i]. Returns logits (rows, t, vocab) owned by the model, valid
 * until the next call; NULL with a message naming row and position when a
 * size, a token (outside 0..vocab-1) or a pos (outside 0..i) is invalid.
 * A window's logits do not depend on the other windows of the batch, but
 * may differ in the last bits with its row and offset (OpenBLAS edge
 * kernels). */
float *model_forward(model *m, const int32_t *tokens, const int32_t *pos, int rows, int t);
/* After a loss overwrote the logits buffer with dLoss/dlogits: computes the
 * gradients of all parameters into model_grads (overwrites, does not
 * accumulate). No-op before the first successful model_forward. */
void model_backward(model *m);

/* loss_cross_entropy (common/loss.h) over the logits of the last forward,
 * split across the model's threads: targets (rows, t), target < 0 masked,
 * every target < vocab. Overwrites the logits with scale * dloss/dlogits,
 * ready for model_backward. @return the sum of the losses (the partial sums
 * of the threads added in thread order: deterministic for a thread count). */
double model_loss_cross_entropy(model *m, const int32_t *targets, float scale);

typedef struct adamw_config { float lr, beta1, beta2, eps, weight_decay, clip; } adamw_config;
/* Clips (if clip > 0: gradients scaled so their global L2 norm is at most
 * clip) and applies one AdamW step (step is 1-based, lr already scheduled).
 * Decoupled weight decay applies to the 2-D weight matrices only: wte, wpe
 * (GPT-2 practice: embeddings decay like the other matrices), qkv.w,
 * attn_proj.w, fc.w, fc_proj.w; never to biases or LayerNorm parameters.
 * @return the global gradient L2 norm before clipping (0 and nothing done
 * on an inference model). */
float model_adamw_step(model *m, const adamw_config *cfg, long step);
/* Learning rate of 1-based step: linear warm-up from peak/warmup to peak over
 * warmup steps, then cosine decay to 10% of peak at step total (held there
 * after). */
float model_lr_schedule(float peak, long step, long warmup, long total);

#endif
