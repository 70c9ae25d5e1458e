/* gt_data: text sets held in memory (ground truth, held-out and evaluation
 * inputs are small) and their windows under one tokenizer.
 *
 * A text set keeps every record's bytes back to back (the tokenizer may learn
 * from them; bits per byte needs their total). A window set keeps each
 * record's token sequence [EOT] + encode(record) once and describes its
 * windows (common/window.h) as spans into it, so overlapping windows share
 * storage. */
#ifndef W2S_GT_DATA_H
#define W2S_GT_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "text/corpus.h"
#include "text/tokenizer.h"

typedef struct gt_texts {
    unsigned char *bytes;   /* all records, concatenated */
    size_t len, cap;
    size_t *ends;           /* record i is bytes[ends[i-1] .. ends[i]) (ends[-1] = 0) */
    size_t n, ends_cap;
} gt_texts;

/* Reads every path with corpus_read and appends its records to *t (zero it
 * first). @return 0, or -1 with the reader's message (naming the file). */
int gt_texts_load(gt_texts *t, const char *const *paths, int n_paths, const record_spec *spec);
void gt_texts_free(gt_texts *t);

typedef struct gt_windows {
    int32_t *tokens;        /* every record's [EOT] + encode(record) */
    size_t n_tokens;
    size_t *start;          /* window i is tokens[start[i] .. start[i] + len[i]) */
    int *len;
    size_t n;               /* number of windows */
    uint64_t targets;       /* predicted tokens = sum of (len - 1) */
    uint64_t bytes;         /* record bytes (for bits per byte) */
    int T;
} gt_windows;

/* Tokenizes every record of t and cuts it into windows of at most T tokens.
 * @return 0, or -1 + message (out of memory). */
int gt_windows_build(gt_windows *w, const gt_texts *t, tokenizer *tok, int T);
void gt_windows_free(gt_windows *w);

#endif
