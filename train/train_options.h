/* train_options: the command line of the train program -- parsing, defaults,
 * consistency checks and --help. Nothing here touches a file; main() and the
 * trainer resolve what the options name. */
#ifndef W2S_TRAIN_OPTIONS_H
#define W2S_TRAIN_OPTIONS_H

#include <stdint.h>

#include "text/corpus.h"
#include "nn/kd_divergence.h"
#include "nn/kd_loss.h"
#include "nn/model.h"
#include "nn/kd_trust.h"

typedef struct train_options {
    int eval_mode;                 /* --eval */
    const char **gt;               /* --gt paths */
    int n_gt;
    const char **eval_input;       /* --eval-input (training) or --input (--eval) */
    int n_eval_input;
    record_spec records;           /* --records, default "file" */
    const char *out;               /* --out MODEL.ckpt */
    const char *model_path;        /* --model (with --eval) */
    const char *positions;         /* --positions FILE (with --eval), NULL = none */
    const char *labels, *labels_where;
    double labels_where_seconds;   /* --labels-where-seconds, default 60 */
    int labels_hard;
    int allow_partial_labels;      /* accept a labels.db an interrupted distill left unfinished */
    double alpha;                  /* default 0.5 with --labels, 1 without */
    double tau;
    kd_tail_mode kd_tail;
    kd_divergence kd_loss;         /* --kd-loss, --kd-beta (default 0.5), --kd-skew (default 0.1) */
    kd_weight_mode kd_weight;      /* --kd-weight, default none */
    double kd_min_conf;            /* --kd-min-conf P in [0, 1], 0 = keep every position */
    double aux_conf;               /* --aux-conf BETA in [0, 1], 0 = off */
    long aux_warmup;               /* --aux-warmup: steps of the 0 -> BETA ramp; -1 = 20% of steps */
    const char *preset;            /* NULL: "small" unless --init */
    int layers, heads, channels, seq;   /* 0 = from the preset */
    const char *init, *tokenizer;
    int vocab;                     /* 0 = default (only when learning a tokenizer) */
    long steps;                    /* 0 = from epochs */
    double epochs;                 /* used when steps == 0 */
    int batch, kd_batch;
    double lr;
    long warmup;                   /* -1 = 5% of steps */
    double weight_decay, clip;
    uint64_t seed;
    int threads;                   /* 0 = all cores */
    model_precision precision;     /* --precision, default fp32 */
    long eval_every, checkpoint_every;
    long stop_at;                  /* 0 = run to the end */
    int resume, quiet, json;
    int labels_only;               /* --labels-only: time the label reader alone */
    const char *metrics;
} train_options;

/* Parses argv into *o (allocating the path arrays; train_options_free).
 * --help and --version print to stdout and exit 0 here; a bad option or value
 * prints one line "train: <problem>" to stderr and exits EXIT_USAGE. */
void train_options_parse(train_options *o, int argc, char **argv);
void train_options_free(train_options *o);

#endif
