/* vecmath: the float row primitives the layer kernels and both losses share,
 * written so the compiler vectorises them and so every caller rounds the
 * same way (the attention softmax and the CE loss use one exp-and-sum).
 *
 * Contract: no call into libm; every reduction keeps 16 independent partial
 * sums in lanes u = i mod 16, adds the lanes in order 0..15, then the
 * remaining n mod 16 elements in index order. That order is fixed, so a
 * result depends only on the input values (deterministic across calls,
 * threads and compilers that do not reassociate), and differs from a plain
 * left-to-right sum in the last bits only. n may be any count >= 0 unless
 * stated; sums of n = 0 floats are 0. */
#ifndef W2S_VECMATH_H
#define W2S_VECMATH_H

#include <stdint.h>
#include <string.h>

/* exp(x) to about 2 ulp for x in [-87.3, 88.3] (clamped outside; NaN stays
 * NaN): Cephes' range reduction and degree-6 polynomial, written without
 * branches or float->int conversion so loops calling it vectorise. Inline
 * in the header because it must be inlined into its callers' element loops
 * for them to vectorise. */
static inline float vec_expf(float x)
{
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    float r = x * 1.44269504088896341f + 12582912.0f; /* round(x/ln2) in the low mantissa bits */
    uint32_t rbits;
    memcpy(&rbits, &r, sizeof rbits);
    float n = r - 12582912.0f;
    float f = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * f + 1.3981999507e-3f;
    p = p * f + 8.3334519073e-3f;
    p = p * f + 4.1665795894e-2f;
    p = p * f + 1.6666665459e-1f;
    p = p * f + 5.0000001201e-1f;
    float y = p * f * f + f + 1.0f;
    uint32_t sbits = (rbits - 0x4B400000u + 127u) << 23;
    float s;
    memcpy(&s, &sbits, sizeof s);
    return y * s;
}

/* Sum of x[0..n). */
float vec_sum(const float *x, int n);

/* Dot product of a[0..n) and b[0..n). */
float vec_dot(const float *a, const float *b, int n);
/* max x[i] for n >= 1, over 16 lanes like the sums (a single running
 * maximum is a chain of dependent instructions and never vectorises; the
 * maximum itself does not depend on the order). NaN at x[0] gives NaN;
 * NaN elsewhere is skipped. */
float vec_max(const float *x, int n);

/* The unnormalised softmax in place: replaces x[0..n) (n >= 1) by
 * vec_expf(x - max), stores the max in *max_out and @return the sum of the
 * new values (summed as above, each exp added to its lane as it is made). */
float vec_exp_sub_max(float *x, int n, float *max_out);

#endif
