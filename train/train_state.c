/* train_state: byte layout of the resumable trainer state and the
 * deterministic data-order generators; see train_state.h. */
#include "train_state.h"

#include "base/bytes.h"
#include "base/err.h"
#include "base/mem.h"

#include <stdlib.h>

#include <string.h>

static const char state_magic[8] = {'W', '2', 'S', 'T', 'R', 'A', 'I', 'N'};
enum { STATE_VERSION = 2 };

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

int train_state_encode(const train_state *s, unsigned char **out, size_t *len)
{
    size_t text_len = s->settings ? strlen(s->settings) : 0;
    if (text_len > UINT32_MAX)
        return err_set("train state: settings text too long");
    *len = TRAIN_STATE_V1_BYTES + 4 + text_len;
    if (!(*out = mem_alloc(*len, "train state")))
        return -1;
    memcpy(*out, state_magic, 8);
    bytes_put_u32(*out + 8, STATE_VERSION);
    const uint64_t fields[8] = {s->settings_hash, s->gt.epoch, s->gt.index, s->kd.epoch,
                                s->kd.index, double_bits(s->best_eval), (uint64_t)s->best_step,
                                s->tokens_seen};
    for (int i = 0; i < 8; i++)
        bytes_put_u64(*out + 12 + 8 * i, fields[i]);
    bytes_put_u32(*out + TRAIN_STATE_V1_BYTES, (uint32_t)text_len);
    if (text_len)
        memcpy(*out + TRAIN_STATE_V1_BYTES + 4, s->settings, text_len);
    return 0;
}

int train_state_decode(const unsigned char *data, size_t len, const char *path, train_state *s)
{
    memset(s, 0, sizeof *s);
    if (!data || len < TRAIN_STATE_V1_BYTES || memcmp(data, state_magic, 8))
        return err_set("%s: no train state (not a resumable checkpoint written by train)", path);
    uint32_t version = bytes_get_u32(data + 8);
    if (version != 1 && version != STATE_VERSION)
        return err_set("%s: train state version %u not supported", path, version);
    size_t text_len = version == 1 || len < TRAIN_STATE_V1_BYTES + 4
                          ? 0 : bytes_get_u32(data + TRAIN_STATE_V1_BYTES);
    size_t want = version == 1 ? TRAIN_STATE_V1_BYTES : TRAIN_STATE_V1_BYTES + 4 + text_len;
    if (len != want)
        return err_set("%s: train state version %u of %zu bytes, expected %zu", path, version, len, want);
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
    if (version == 1)
        return 0;
    if (!(s->settings = mem_alloc(text_len + 1, "train state settings")))
        return -1;
    memcpy(s->settings, data + TRAIN_STATE_V1_BYTES + 4, text_len);
    s->settings[text_len] = '\0';
    if (strlen(s->settings) != text_len) {
        train_state_free(s);
        return err_set("%s: train state settings hold a NUL byte", path);
    }
    return 0;
}

void train_state_free(train_state *s)
{
    free(s->settings);
    s->settings = NULL;
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
