/* train_state: byte layout of the resumable trainer state and the
 * deterministic data-order generators; see train_state.h. */
#include "train_state.h"

#include "base/bytes.h"
#include "base/err.h"

#include <string.h>

static const char state_magic[8] = {'W', '2', 'S', 'T', 'R', 'A', 'I', 'N'};
enum { STATE_VERSION = 1 };

static uint64_t double_bits(double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    return v;
}

static double bits_double(uint64_t v)
{
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

void train_state_encode(const train_state *s, unsigned char out[TRAIN_STATE_BYTES])
{
    memcpy(out, state_magic, 8);
    bytes_put_u32(out + 8, STATE_VERSION);
    const uint64_t fields[8] = {s->settings_hash, s->gt.epoch, s->gt.index, s->kd.epoch,
                                s->kd.index, double_bits(s->best_eval), (uint64_t)s->best_step,
                                s->tokens_seen};
    for (int i = 0; i < 8; i++)
        bytes_put_u64(out + 12 + 8 * i, fields[i]);
}

int train_state_decode(const unsigned char *data, size_t len, const char *path, train_state *s)
{
    if (!data || len != TRAIN_STATE_BYTES || memcmp(data, state_magic, 8))
        return err_set("%s: no train state (not a resumable checkpoint written by train)", path);
    uint32_t version = bytes_get_u32(data + 8);
    if (version != STATE_VERSION)
        return err_set("%s: train state version %u not supported", path, version);
    uint64_t f[8];
    for (int i = 0; i < 8; i++)
        f[i] = bytes_get_u64(data + 12 + 8 * i);
    s->settings_hash = f[0];
    s->gt.epoch = f[1];
    s->gt.index = f[2];
    s->kd.epoch = f[3];
    s->kd.index = f[4];
    s->best_eval = bits_double(f[5]);
    s->best_step = (int64_t)f[6];
    s->tokens_seen = f[7];
    return 0;
}

void train_stream_rng(rng_state *rng, uint64_t seed, int stream, uint64_t epoch)
{
    /* splitmix-style mixing so nearby (seed, stream, epoch) triples diverge */
    uint64_t x = seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)stream);
    x ^= (epoch + 1) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 31)) * 0x94D049BB133111EBull;
    rng_seed(rng, x ^ (x >> 29));
}

void train_stream_permutation(uint32_t *perm, size_t n, uint64_t seed, int stream, uint64_t epoch)
{
    rng_state rng;
    train_stream_rng(&rng, seed, stream, epoch);
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    rng_shuffle_u32(&rng, perm, n);
}

void train_cursor_advance(train_cursor *c, uint32_t *perm, size_t n, uint64_t seed, int stream)
{
    if (++c->index == n) {
        c->epoch++;
        c->index = 0;
        train_stream_permutation(perm, n, seed, stream, c->epoch);
    }
}
