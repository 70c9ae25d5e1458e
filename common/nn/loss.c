/* loss: fused, numerically stable softmax cross-entropy; see loss.h.
 * Per row: max, then exp(x - max) stored in place while summing (16
 * partial sums, vectorisable), then the gradient softmax - onehot scaled.
 * The row loss is log(sum) + max - x[target], added in double. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif
#include "nn/loss.h"

#include "nn/vecmath.h"

#include <math.h>
#include <string.h>

double loss_cross_entropy(float *logits, const int32_t *targets, long n, int V, float scale)
{
    double total = 0.0;
    for (long r = 0; r < n; r++) {
        float *x = logits + r * V;
        int32_t y = targets[r];
        if (y < 0 || y >= V) {
            memset(x, 0, (size_t)V * sizeof *x);
            if (y >= V)
                total += NAN; /* a caller bug must not pass silently */
            continue;
        }
        float xy = x[y], mx;
        float sum = vec_exp_sub_max(x, V, &mx);
        total += log((double)sum) + (double)mx - (double)xy;
        float k = scale / sum;
        for (int j = 0; j < V; j++)
            x[j] *= k;
        x[y] -= scale;
    }
    return total;
}
