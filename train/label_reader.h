/* label_reader: streams a labels.db into packed labeled batches.
 *
 * The database is opened read-only; the selected seq_ids (an optional SQL
 * condition) are visited once per epoch in a permutation drawn from
 * (seed, epoch). A prefetch thread reads each row, decodes its top-k blob
 * straight into a batch slot and packs windows next-fit into rows of T
 * positions (common/window.h), filling a small ring of ready batches ahead of
 * the trainer. Memory is the ring plus 12 bytes per selected row, whatever
 * the database size. The batch sequence is a pure function of (seed, cursor):
 * the thread only changes when a batch is ready, never what it holds.
 *
 * Window position j (0 .. n_tokens-2) predicts token j+1 and carries decoded
 * position j of the row's blob. */
#ifndef W2S_LABEL_READER_H
#define W2S_LABEL_READER_H

#include <stddef.h>
#include <stdint.h>

#include "labels/labels_db.h"
#include "train_state.h"

typedef struct label_batch {
    int32_t *tokens, *pos;   /* (rows, T) as from a packer */
    int32_t *targets;        /* (rows * T): next token where labeled, else -1 */
    int32_t *ids;            /* (rows * T, k) teacher top-k; NULL without decoding */
    float *logprobs;         /* (rows * T, k) */
    float *tail;             /* (rows * T) */
    long n_positions;        /* labeled positions (targets >= 0) */
    long n_tokens;           /* tokens placed */
    train_cursor after;      /* stream position after this batch */
} label_batch;

typedef struct label_reader label_reader;

/* Opens path read-only, reads its meta data and the seq_ids matching where
 * (NULL = all; it may use the extension's SQL functions), giving the
 * condition at most where_seconds (0 = no limit). @return a reader, or NULL +
 * message naming path (missing file, other schema version, condition rejected
 * by SQLite or out of time, no rows). */
label_reader *label_reader_open(const char *path, const char *where, double where_seconds);
/* The database's meta data (owned by the reader). */
const labels_meta *label_reader_meta(const label_reader *r);
/* Number of selected rows. */
size_t label_reader_rows(const label_reader *r);

/* Estimated tokens of the selected rows (the database's tokens per row times
 * the selected rows), for turning --epochs into steps. */
uint64_t label_reader_tokens(const label_reader *r);

/* Starts the prefetch thread: batches of rows x T positions for a model of
 * vocabulary V; decode = 0 skips the top-k blobs (hard labels). The stream
 * starts at cursor start. @return 0, or -1 + message. */
int label_reader_start(label_reader *r, int rows, int T, int V, int decode, uint64_t seed,
                       train_cursor start);
/* The next batch, blocking until it is ready; valid until
 * label_reader_release. @return NULL + message naming the file and seq_id
 * when the thread hit a bad row or a read error. */
const label_batch *label_reader_next(label_reader *r);
/* Hands the batch returned by label_reader_next back to the thread. */
void label_reader_release(label_reader *r);
/* Stops the thread, closes the database and frees r (NULL is fine). */
void label_reader_close(label_reader *r);

#endif
