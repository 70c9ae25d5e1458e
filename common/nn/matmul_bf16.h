/* matmul_bf16: matrix products in bfloat16 with fp32 accumulation, through
 * oneDNN (README, "Memory and speed").
 *
 * c (M,N) = [c +] op(a) op(b), with a and b bfloat16 and c fp32, all
 * row-major; op(x) is x or its transpose (expressed as strides, so no
 * reorder is ever made). bfloat16 is the top half of an IEEE fp32: 8
 * significant bits, so each rounded operand carries a relative error of at
 * most 2^-8; the products are summed in fp32, so each term of a dot product
 * is off by at most 2^-7 relative, plus fp32's K * 2^-24 over K terms.
 *
 * A context belongs to one thread at a time and runs every product on
 * `threads` OpenMP threads (oneDNN's runtime here): a model gives each of its
 * pool threads a context of 1 thread, as it does with OpenBLAS. Primitives
 * are created on the first product of each shape and kept (up to a bound,
 * then replaced oldest first), so a steady loop creates none. A product with
 * the same shapes, thread count and inputs gives bit-identical results.
 *
 * Where the CPU has no native bfloat16 (no AVX512_BF16 or AMX-BF16), oneDNN
 * emulates it on AVX-512 at some cost; matmul_bf16_native says which. */
#ifndef W2S_MATMUL_BF16_H
#define W2S_MATMUL_BF16_H

#include <stdint.h>

/* 1 if oneDNN can run a bfloat16 product on this machine (possibly
 * emulated), else 0 with a message saying why. Probes once per process. */
int matmul_bf16_available(void);
/* 1 if the CPU runs bfloat16 natively (oneDNN's effective ISA includes
 * AVX512_BF16 or AMX), else 0. */
int matmul_bf16_native(void);
/* The ISA oneDNN dispatches to, as a short name ("avx512_core", ...). */
const char *matmul_bf16_isa(void);

/* Round-to-nearest-even fp32 -> bfloat16 (NaN stays NaN), and back (exact). */
void matmul_bf16_from_f32(uint16_t *dst, const float *src, long n);
void matmul_bf16_to_f32(float *dst, const uint16_t *src, long n);

typedef struct matmul_bf16 matmul_bf16;

/* A context running products on `threads` (>= 1) OpenMP threads.
 * @return it, or NULL with a message (oneDNN unavailable, out of memory). */
matmul_bf16 *matmul_bf16_create(int threads);
void matmul_bf16_free(matmul_bf16 *ctx);

/* Converts n floats into the context's conversion buffer `slot` (0 or 1),
 * grown as needed, and returns it: valid until the next call for that slot.
 * matmul_bf16_reserve sizes the buffers ahead so a hot loop never allocates.
 * @return the buffer, or NULL with a message (out of memory). */
uint16_t *matmul_bf16_convert(matmul_bf16 *ctx, int slot, const float *x, long n);
int matmul_bf16_reserve(matmul_bf16 *ctx, long n_slot0, long n_slot1);

/* c (M,N) = [c +] op(a) op(b): op(a) (M,K) is a (M,K) or, if trans_a, a
 * (K,M) transposed; op(b) (K,N) likewise; accumulate adds to c's contents.
 * @return 0, or -1 with a message (oneDNN refused the shape). */
int matmul_bf16_gemm(matmul_bf16 *ctx, int trans_a, int trans_b, long M, long N, long K,
                     const uint16_t *a, const uint16_t *b, float *c, int accumulate);

#endif
