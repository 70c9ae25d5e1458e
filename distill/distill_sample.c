/* distill_sample: the draws of `distill --labels sample:N` at one position
 * (schemas/softlabel.md): N tokens with replacement from the
 * teacher's softmax at temperature 1.
 *
 * Each position has its own random stream, seeded by XXH3 of (--seed, the
 * record's content hash, window, position), so the draws depend on nothing
 * but the record and the seed: not on the batch, the thread that labels the
 * window, the shard or a resume. (Two identical records draw alike.) A draw
 * is a 53-bit uniform u, scaled to the row's total mass, located by binary
 * search in the running sums of exp(logit - max) kept in double; tokens whose
 * exponential underflows to 0 are never drawn. */
#include "distill_internal.h"

#include <math.h>
#include <string.h>
#include <xxhash.h>

#include "base/rng.h"

uint64_t distill_sample_key(uint64_t seed, uint64_t record_hash, int window, int position)
{
    uint64_t key[3] = {record_hash, (uint64_t)window, (uint64_t)position};
    return XXH3_64bits_withSeed(key, sizeof key, seed);
}

int distill_sample_row(const float *logits, int V, int n, uint64_t key, double *cdf, int32_t *ids,
                       uint8_t *counts, double *mass)
{
    float max = logits[0];
    for (int v = 1; v < V; v++)
        max = logits[v] > max ? logits[v] : max;
    double total = 0.0;
    for (int v = 0; v < V; v++)
        cdf[v] = total += (double)expf(logits[v] - max);
    rng_state rng;
    rng_seed(&rng, key);
    int d = rng_draw_counts(&rng, cdf, V, n, ids, counts, mass);
    for (int r = d; r < n; r++)
        ids[r] = ids[0];
    return d;
}
