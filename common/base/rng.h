/* rng: the project's only source of randomness (xoshiro256** seeded through
 * splitmix64). Same seed, same stream on every machine: integer outputs are
 * exact; rng_normal uses libm's logf/cosf and so matches across machines that
 * share a libm. The state is a plain struct that checkpoints store verbatim. */
#ifndef W2S_RNG_H
#define W2S_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct rng_state {
    uint64_t s[4];
} rng_state;

void rng_seed(rng_state *rng, uint64_t seed);
uint64_t rng_next(rng_state *rng);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t rng_below(rng_state *rng, uint64_t n);
/* Uniform float in [0, 1) with 24 random bits. */
float rng_uniform(rng_state *rng);
/* Standard normal (Box-Muller). */
float rng_normal(rng_state *rng);
/* Fisher-Yates shuffle of n 32-bit values. */
void rng_shuffle_u32(rng_state *rng, uint32_t *values, size_t n);
/* n draws with replacement from the weights whose running sums are
 * cdf[0..V-1] (nondecreasing, cdf[V-1] > 0): each a 53-bit uniform scaled to
 * the total, located by binary search (a weight of 0 is never drawn). The
 * distinct ids go to ids[0..d-1] in order of first draw with their counts in
 * counts[0..d-1] (counts has room for n, zeroed here); *mass = their share
 * of the total. @return d. */
int rng_draw_counts(rng_state *rng, const double *cdf, int V, int n, int32_t *ids, uint8_t *counts,
                    double *mass);

#endif
