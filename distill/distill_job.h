/* distill_job: the state of one `distill` run and the steps distill_run
 * (distill_run.c) takes on it, each in a file of its own:
 *
 *   distill_setup.c    opens the teacher checkpoint (tokenizer, inference
 *                      model), opens and prepares labels.db, builds the
 *                      labelers and the batch slots, prints the settings
 *   distill_collect.c  the corpus callback: each record of this shard is
 *                      looked up (resume), tokenised and cut into windows
 *                      that are collected into the current batch slot
 *   distill_batch.c    the batch slots, and labeling a full batch: the
 *                      teacher forward, the labelers, the hand-over to the
 *                      writer thread
 *   distill_summary.c  the final counts (stderr) and the --json object
 *
 * distill_internal.h describes the slots, labelers and writer these share. */
#ifndef W2S_DISTILL_JOB_H
#define W2S_DISTILL_JOB_H

#include "distill.h"
#include "distill_internal.h"

#include "base/progress.h"
#include "nn/model.h"
#include "text/tokenizer.h"

typedef struct distill_job {
    const distill_options *opt;
    /* Set up by distill_setup: */
    model_config cfg;
    int T, V, B;               /* window length, vocabulary, rows per batch */
    tokenizer *tok;
    int32_t eot;
    labels_db *db;             /* the writer thread's connection */
    labels_db *lookup_db;      /* the reader's, for resume lookups only */
    bool created_db;           /* this run created the database (labels_db_created) */
    model *teacher;
    distill_labelers labelers;
    distill_slot slots[DISTILL_SLOTS];
    distill_writer writer;
    /* The batch being collected: */
    int cur;                   /* slot being filled */
    int cur_record;            /* record entry of the record being placed, -1 = none yet */
    int32_t *seq;              /* tokens of the current record */
    size_t seq_cap;
    /* Counts and times, for the progress line and the summary: */
    progress prog;
    uint64_t bytes_read;       /* record bytes, for the progress line */
    uint64_t skipped;          /* records stored by an earlier run */
    uint64_t other_shard;      /* records of another shard */
    uint64_t queued;           /* records this run labels */
    uint64_t forward_positions;   /* positions of the windows run through the teacher */
    double start, setup_seconds, forward_seconds, label_seconds, wait_seconds;
} distill_job;

/* distill_setup.c. Loads the teacher named by j->opt and its tokenizer,
 * opens (or creates) labels.db with the run's meta data, creates the
 * inference model, the labelers and the slots, and prints the settings line
 * unless quiet. j is zeroed but for opt and B. @return 0, or -1 + message;
 * distill_setup_free releases what was built either way. */
int distill_setup(distill_job *j);
/* Releases the model, labelers, slots and tokenizer (not the databases). */
void distill_setup_free(distill_job *j);

/* distill_collect.c. The corpus_read callback (ctx: the job): skips records
 * of other shards, looks the record up in labels.db, and collects its
 * windows into the current slot, labeling each slot that fills up.
 * @return 0 / -1 + message. */
int distill_collect_record(void *ctx, const corpus_record *rec);

/* distill_batch.c. Slot buffers for batches of B rows of T tokens.
 * @return 0 / -1 + message; distill_slot_free also after a failure. */
int distill_slot_init(distill_slot *s, int B, int T);
void distill_slot_free(distill_slot *s);
/* Copies text into the slot's string arena; *offset receives its place.
 * @return 0 / -1 + message. */
int distill_slot_add_string(distill_slot *s, const char *text, size_t *offset);
/* Labels the current slot: runs the teacher on it, then the labelers, hands
 * it to the writer and moves on to the other slot once the writer has
 * released it. A slot without windows to store is only emptied.
 * @return 0, or -1 + message (the teacher, a labeler or the writer). */
int distill_label_batch(distill_job *j);

/* distill_summary.c. Prints the final counts on stderr (unless quiet) and
 * the --json object on stdout. @return 0, or -1 + message (stdout). */
int distill_summary_print(const distill_job *j, double seconds);

#endif
