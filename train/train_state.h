/* train_state: what, besides parameters, AdamW moments and the step, a run
 * needs to continue exactly where it stopped. Data order is a pure function
 * of (seed, stream, epoch), so the state is small: the position of each data
 * stream, the best held-out result so far, a fingerprint of the settings
 * that shape the trajectory and (version 2) those settings themselves with
 * content hashes of the data, so a resume with anything else is refused
 * naming what differs.
 *
 * Serialised into the checkpoint's opaque train_state bytes: "W2STRAIN",
 * u32 version, then the eight fields below as little-endian u64 / IEEE
 * doubles (76 bytes: version 1); version 2 appends u32 N and the N bytes of
 * the settings text (schemas/checkpoint.md, "Train state"). */
#ifndef W2S_TRAIN_STATE_H
#define W2S_TRAIN_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"

/* Position in a data stream: the next window to take is perm_epoch[index]. */
typedef struct train_cursor { uint64_t epoch, index; } train_cursor;

typedef struct train_state {
    uint64_t settings_hash;
    train_cursor gt, kd;
    double best_eval;          /* INFINITY when never evaluated */
    int64_t best_step;
    uint64_t tokens_seen;      /* training tokens consumed so far */
    char *settings;            /* what the run depends on: "name\tvalue\n" lines, malloc'ed;
                                * NULL when read from version 1 */
} train_state;

#define TRAIN_STATE_V1_BYTES 76

enum { TRAIN_STREAM_GT = 1, TRAIN_STREAM_KD = 2 };

/* Encodes s as version 2 (s->settings NULL = empty text) into *out, malloc'ed,
 * of *len bytes. @return 0, or -1 + message (out of memory). */
int train_state_encode(const train_state *s, unsigned char **out, size_t *len);
/* Parses a version 1 or 2 train state into *s (s->settings malloc'ed for
 * version 2). @return 0, or -1 + message naming path when the bytes are not
 * a train state of a known version. */
int train_state_decode(const unsigned char *data, size_t len, const char *path, train_state *s);
/* Releases s->settings. */
void train_state_free(train_state *s);

/* The generator that shuffles stream's windows in epoch: independent of every
 * other (stream, epoch) pair and of how the run was interrupted. */
void train_stream_rng(rng_state *rng, uint64_t seed, int stream, uint64_t epoch);

/* Fisher-Yates permutation of 0..n-1 for (seed, stream, epoch) into perm. */
void train_stream_permutation(uint32_t *perm, size_t n, uint64_t seed, int stream, uint64_t epoch);

/* Moves c past one of the stream's n windows; at the end of an epoch, to the
 * start of the next, with perm redrawn for it. */
void train_cursor_advance(train_cursor *c, uint32_t *perm, size_t n, uint64_t seed, int stream);

#endif
