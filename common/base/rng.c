/* rng: xoshiro256** (Blackman and Vigna); see rng.h. */
#include "base/rng.h"

#include <math.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void rng_seed(rng_state *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

uint64_t rng_next(rng_state *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t rng_below(rng_state *rng, uint64_t n)
{
    /* Rejection from the top of the range keeps every value equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = rng_next(rng);
    while (x >= limit);
    return x % n;
}

float rng_uniform(rng_state *rng)
{
    return (float)(rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

float rng_normal(rng_state *rng)
{
    /* 1 - u lies in (0, 1], so the logarithm is finite. */
    float u1 = 1.0f - rng_uniform(rng);
    float u2 = rng_uniform(rng);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

void rng_shuffle_u32(rng_state *rng, uint32_t *values, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(rng, i);
        uint32_t t = values[i - 1];
        values[i - 1] = values[j];
        values[j] = t;
    }
}

int rng_draw_counts(rng_state *rng, const double *cdf, int V, int n, int32_t *ids, uint8_t *counts,
                    double *mass)
{
    double total = cdf[V - 1];
    memset(counts, 0, (size_t)n);
    int d = 0;
    *mass = 0.0;
    for (int s = 0; s < n; s++) {
        double u = (double)(rng_next(rng) >> 11) * 0x1p-53 * total;
        int lo = 0, hi = V - 1;
        while (lo < hi) {   /* the first v with cdf[v] > u */
            int mid = lo + (hi - lo) / 2;
            if (cdf[mid] > u)
                hi = mid;
            else
                lo = mid + 1;
        }
        int at = 0;
        while (at < d && ids[at] != lo)
            at++;
        if (at == d) {
            ids[d++] = lo;
            *mass += (lo ? cdf[lo] - cdf[lo - 1] : cdf[0]) / total;
        }
        counts[at]++;
    }
    return d;
}
