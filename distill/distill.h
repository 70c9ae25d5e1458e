/* distill: the jobs of the distill program (README, "Data flow").
 *
 *   distill_run    teacher inference over a corpus into labels.db (resumable)
 *   distill_merge  shard databases into one
 *   distill_info   what a labels.db holds
 *
 * main.c parses the command line into these calls; each job returns 0, or -1
 * with err_message() naming the file and the problem, and never exits. */
#ifndef W2S_DISTILL_H
#define W2S_DISTILL_H

#include <stdbool.h>
#include <stdint.h>

#include "text/corpus.h"
#include "nn/model.h"

#define DISTILL_DEFAULT_K 32
#define DISTILL_DEFAULT_BATCH 16

typedef struct distill_options {
    const char *teacher;       /* checkpoint path */
    const char *db;            /* labels.db path */
    const char **inputs;       /* corpus paths, n_inputs of them */
    int n_inputs;
    record_spec records;
    const char *records_text;  /* as given, for the settings line */
    bool sampled;              /* --labels sample:N, else top-k */
    int k;                     /* top-k K, or N draws per position when sampled */
    uint64_t seed;             /* --seed: the draws of sample:N (default 1) */
    int batch;                 /* rows of seq_len tokens per forward */
    int threads;               /* <= 0: all cores */
    model_precision precision; /* of the teacher's products (default fp32) */
    int shard_index, shard_count;
    bool quiet;                /* no settings line, progress or summary on stderr */
    bool json;                 /* final summary object on stdout */
} distill_options;

/* Labels every record of the inputs that is in this shard and not yet
 * stored. @return 0 (also when there was nothing to do), or -1 + message;
 * every transaction committed before a failure stays. */
int distill_run(const distill_options *opt);

/* Creates (or extends) out with the rows of n shard databases, refusing
 * shards of another teacher, tokenizer, k or codec. @return 0 / -1 + message. */
int distill_merge(const char *out, const char *const *shards, int n, bool quiet, bool json);

/* Prints the meta data and counts of path (human lines, or one JSON object).
 * @return 0 / -1 + message. */
int distill_info(const char *path, bool json);

#endif
