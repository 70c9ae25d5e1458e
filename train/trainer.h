/* trainer: one training run of the train program -- everything the options
 * resolve to (tokenizer, model, data streams, schedule, resumed state) and the
 * step loop that combines the LM loss on the GT batch with the KD loss on the
 * labeled batch (README, "The objective") in one forward and one backward pass.
 *
 * train_setup (train_setup.c) resolves and validates everything before the
 * first step, so a bad input fails before any file is written; train_loop
 * (trainer.c) runs the steps, evaluates, and writes OUT and OUT.resume.
 *
 * Data parallel over MPI (common/mpi_comm.h): every rank builds the same
 * global batch (GT rows, then labeled rows), runs forward and backward on its
 * contiguous block of those rows only, and the gradients and loss sums are
 * summed over the ranks before the AdamW step. The losses are scaled by the
 * global target counts, so the sum is the gradient of the whole batch and
 * every rank takes the same step; rank 0 alone writes files. */
#ifndef W2S_TRAINER_H
#define W2S_TRAINER_H

#include <stdint.h>

#include "base/filelock.h"
#include "nn/checkpoint.h"
#include "eval.h"
#include "gt_data.h"
#include "label_reader.h"
#include "nn/model.h"
#include "objective.h"
#include "text/tokenizer.h"
#include "train_options.h"
#include "train_state.h"

typedef struct train_run {
    const train_options *o;
    char *resume_path;               /* OUT.resume */
    filelock out_lock;               /* rank 0: one train per OUT (fd -1 when not held) */
    int out_created;                 /* OUT was created empty as the lock's file */
    int resumed;                     /* state loaded from resume_path */
    checkpoint resume_ck;            /* while setting up */
    tokenizer *tok;
    unsigned char *tok_blob;
    size_t tok_blob_len;
    model_config cfg;
    model *m;
    objective *obj;
    int rows_gt, rows_kd;            /* 0 when alpha is 1 (no KD rows) or 0 (no GT rows) */
    int row_lo, row_hi;              /* this rank's rows of the rows_gt + rows_kd */
    int max_rows;                    /* the model's rows: the largest rank's share */
    gt_windows gt, eval;
    label_reader *labels;            /* NULL without --labels */
    long total_steps, warmup, start_step;
    uint64_t *gt_content;            /* per --gt path when loaded: XXH3 of its records, else NULL */
    uint64_t init_hash;              /* --init's identity hash (checkpoint.hash) */
    train_state state;
} train_run;

/* Resolves o into *r (zero it first): reads the resume checkpoint, opens the
 * labels, chooses and checks the tokenizer, loads and windows the texts,
 * builds the model and its initial weights, counts the steps. Prints the
 * settings to stderr unless o->quiet. @return 0, or -1 + message naming the
 * file at fault. Refuses outputs that would overwrite an input or a file w2s
 * did not make (base/output_path.h), and takes OUT's writer lock (created
 * empty when missing, removed again by train_run_free if still empty), so a
 * second train on the same OUT is refused; writes nothing else. */
int train_setup(train_run *r, const train_options *o);

/* Runs the steps from r->start_step to the end (or --stop-at), writing
 * checkpoints, metrics and the summary. @return 0, or -1 + message (a
 * non-finite loss names the step; files written before stay). */
int train_loop(train_run *r);

/* --labels-only: streams r->total_steps labeled batches without a model and
 * reports the reader's tokens/s (stderr, and --json on stdout).
 * @return 0, or -1 + message (a bad row). */
int train_labels_only(train_run *r);

void train_run_free(train_run *r);

#endif
