/* vecmath: the row reductions of vecmath.h. The GCC pragma lets the
 * vectoriser handle loops of unknown trip count at -O2 (GCC 12's default
 * "very cheap" cost model refuses them); the lanes are explicit, so the
 * result does not depend on whether it does. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif
#include "nn/vecmath.h"

float vec_sum(const float *x, int n)
{
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int u = 0; u < 16; u++)
            acc[u] += x[i + u];
    float s = 0.0f;
    for (int u = 0; u < 16; u++)
        s += acc[u];
    for (; i < n; i++)
        s += x[i];
    return s;
}

float vec_dot(const float *a, const float *b, int n)
{
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int u = 0; u < 16; u++)
            acc[u] += a[i + u] * b[i + u];
    float s = 0.0f;
    for (int u = 0; u < 16; u++)
        s += acc[u];
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

float vec_max(const float *x, int n)
{
    float lane[16];
    for (int u = 0; u < 16; u++)
        lane[u] = x[0];
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int u = 0; u < 16; u++)
            lane[u] = x[i + u] > lane[u] ? x[i + u] : lane[u];
    float m = x[0];
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    for (int u = 0; u < 16; u++)
        m = lane[u] > m ? lane[u] : m;
    return m;
}

float vec_exp_sub_max(float *x, int n, float *max_out)
{
    float mx = vec_max(x, n);
    float acc[16] = {0};
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int u = 0; u < 16; u++) {
            float e = vec_expf(x[j + u] - mx);
            x[j + u] = e;
            acc[u] += e;
        }
    float sum = 0.0f;
    for (int u = 0; u < 16; u++)
        sum += acc[u];
    for (; j < n; j++) {
        float e = vec_expf(x[j] - mx);
        x[j] = e;
        sum += e;
    }
    *max_out = mx;
    return sum;
}
