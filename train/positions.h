/* positions: the per-position file of `train --eval --positions FILE`
 * (schemas/positions.md, version 1) -- one tab-separated line per predicted
 * token of the evaluation, in evaluation order, so that two models evaluated
 * on the same input line up line by line (compare them position by
 * position, e.g. a student's loss by its teacher's confidence).
 *
 * The statistics of a position are topk_row's (common/nn/topk.h) on the
 * model's logits row, in double: the NLL of the target, the top-1 id and
 * probability and the entropy of the full softmax; the NLLs of a file add up
 * to the evaluation's total cross-entropy. The file is written through an
 * atomic_file (base/fileio.h): a failed or interrupted run never leaves a
 * partial FILE (at most a "<FILE>.tmp.<pid>" of a killed one), and an old
 * FILE stays until the new one is complete. */
#ifndef W2S_POSITIONS_H
#define W2S_POSITIONS_H

#include <stddef.h>
#include <stdint.h>

#include "base/fileio.h"

/* The first line of every file; it names the columns and tells a file of
 * this writer from any other (positions_file_is_ours). */
#define POSITIONS_HEADER "window\tposition\ttarget\tnll\ttop1\ttop1_prob\tentropy\n"

/* One line's values. */
typedef struct positions_line {
    size_t window;        /* index of the window in the evaluated window set */
    int position;         /* index in the window of the token whose next token is predicted */
    int32_t target;       /* the token predicted */
    double nll;           /* -log p(target), nats */
    int32_t top1;         /* the most probable token */
    double top1_prob;     /* its probability */
    double entropy;       /* of the whole softmax, nats */
} positions_line;

/* Bytes a formatted line needs at most, its NUL included. */
#define POSITIONS_LINE_MAX 160

/* Formats l as one line of the file, newline included, into buf (C locale:
 * "." decimal point). @return its length (without the NUL). */
int positions_format(const positions_line *l, char buf[POSITIONS_LINE_MAX]);

/* The is_kind test of base/output_path.h for --positions: 1 when path
 * starts with POSITIONS_HEADER, 0 when not, -1 + message. */
int positions_file_is_ours(const char *path);

typedef struct positions_writer {
    atomic_file af;
    int V;
    void *scratch;        /* topk_row's */
} positions_writer;

/* Starts the file path (the header written) for logits rows of V entries.
 * @return 0, or -1 + message naming path (*w then needs no abort). */
int positions_open(positions_writer *w, const char *path, int V);

/* Writes a line for every cell j in [0, len) of one packed window whose
 * targets[j] >= 0, from logits row j (logits: len rows of V floats, read
 * only), with position j and window index window. @return 0, or -1 +
 * message naming the file (write error, or a row holding NaN or an
 * infinity); the caller then calls positions_abort. */
int positions_write_window(positions_writer *w, size_t window, const float *logits,
                           const int32_t *targets, int len);

/* Puts the complete file in place. Releases *w either way. @return 0, or
 * -1 + message naming the file (then the old file, if any, stays). */
int positions_commit(positions_writer *w);

/* Removes the unfinished file and releases *w. Safe on a zeroed writer. */
void positions_abort(positions_writer *w);

#endif
