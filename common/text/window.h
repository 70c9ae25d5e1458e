/* window: how token sequences become fixed-size model inputs, shared by
 * distill, train and eval so that every stage cuts text identically.
 *
 * A record becomes the sequence [EOT] + encode(record). A sequence of n >= 2
 * tokens is cut into windows of at most T tokens that start every T - 1
 * tokens: consecutive windows share one token, and every token after the
 * leading EOT is the prediction target of exactly one window position
 * (positions 0 .. len-2 of a window predict its tokens 1 .. len-1).
 *
 * A packer lays several windows side by side in rows of T positions (next
 * fit). pos[] restarts at 0 at each window start: the model uses it both as
 * the position-embedding index and as the attention bound (position i sees
 * i - pos[i] .. i), so a packed window is computed exactly as if alone.
 * Unused slots hold token 0 at pos 0 and carry no loss. */
#ifndef W2S_WINDOW_H
#define W2S_WINDOW_H

#include <stddef.h>
#include <stdint.h>

/* Number of windows of a sequence of n_tokens (0 when n_tokens < 2). */
size_t window_count(size_t n_tokens, int T);
/* Start offset and length of window index of a sequence of n_tokens. */
void window_span(size_t index, size_t n_tokens, int T, size_t *start, size_t *len);

typedef struct packer {
    int rows;        /* rows available */
    int T;           /* positions per row */
    int32_t *tokens; /* (rows, T), caller-owned */
    int32_t *pos;    /* (rows, T), caller-owned */
    int row;         /* current row */
    int col;         /* next free column in the current row */
} packer;

/* Starts an empty batch over caller-owned (rows, T) arrays. */
void packer_reset(packer *p, int rows, int T, int32_t *tokens, int32_t *pos);
/* Places len (1 <= len <= T) tokens. @return the flat offset row*T + col of
 * its first token, or -1 (not an error) when the batch has no room left. */
long packer_place(packer *p, const int32_t *tokens, int len);
/* Rows holding at least one token. */
int packer_rows_used(const packer *p);

#endif
