/* train_options: getopt_long parsing of the train command line; see
 * train_options.h. Options that take several paths (--gt, --eval-input,
 * --input) collect the plain arguments that follow them. */
#include "train_options.h"

#include "base/cli.h"
#include "base/err.h"
#include "base/mem.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: train --gt PATH... --out MODEL.ckpt [options]\n"
    "       train --eval --model MODEL.ckpt --input PATH... [--records MODE]\n"
    "                    [--positions FILE] [--json]\n"
    "       train import --hf DIR --out MODEL.ckpt    (see train import --help)\n"
    "       train export --model MODEL.ckpt --out DIR (Hugging Face GPT-2 directories)\n"
    "\n"
    "Trains a GPT-2 style model on ground-truth text (LM loss), optionally plus a\n"
    "teacher's stored soft labels (KD loss), or evaluates a model.\n"
    "\n"
    "Data:\n"
    "  --gt PATH...           ground-truth text: files, archives, directories or -\n"
    "  --records MODE         how inputs split into records: file (default), line,\n"
    "                         paragraph, fortune, jsonl:FIELD\n"
    "  --allow-binary         read members that do not look like text; without it a\n"
    "                         member whose first 64 KiB hold a NUL byte, or more\n"
    "                         than a quarter control bytes (not tab, newline, CR,\n"
    "                         FF, VT, ESC, BEL, BS) or invalid UTF-8, is an error\n"
    "                         (some invalid UTF-8 is fine). A file whose name\n"
    "                         says .gz, .tar, .zip, .zst, .xz, .bz2, .7z ... but\n"
    "                         whose content is not that is always an error\n"
    "  --labels DB            labels.db written by distill (opened read-only); the\n"
    "                         student then uses the tokenizer stored in it\n"
    "  --labels-where SQL     only rows matching this SQL condition over the labels\n"
    "                         table, e.g. 'mean_entropy < 2.5'; the extension's\n"
    "                         functions work too, e.g. 'topk_entropy(topk) < 1.5'\n"
    "  --labels-where-seconds S  stop a condition still running after S seconds\n"
    "                         (default 60; 0 = no limit)\n"
    "  --allow-partial-labels train on a labels.db that an interrupted distill left\n"
    "                         unfinished (refused otherwise; one that distill is\n"
    "                         still writing is always refused)\n"
    "  --labels-hard          the labeled batch gets the LM loss on the stored token\n"
    "                         ids (the real next tokens) instead of KD: the\n"
    "                         'ceiling' run; same --alpha weighting\n"
    "Objective:\n"
    "  --alpha A              loss = A * LM + (1 - A) * KD, A in [0, 1]; default 0.5\n"
    "                         with --labels, else 1 (A = 1 never reads the labels,\n"
    "                         A = 0 never reads the GT batch)\n"
    "  --tau T                KD temperature (default 1)\n"
    "  --kd-tail MODE         bucket (default: top-k + one tail bucket, exact at\n"
    "                         tau 1) or renorm (both renormalised over the top-k).\n"
    "                         Sampled labels (distill --labels sample:N) always use\n"
    "                         bucket with tail 0: renorm is refused for them\n"
    "  --kd-loss NAME         the divergence on that partition (kd_divergence.h):\n"
    "                         fkl (default) KL(teacher || student), rkl the\n"
    "                         reverse KL, gjsd generalised JSD (--kd-beta), skl /\n"
    "                         srkl DistiLLM's skew KL / skew reverse KL\n"
    "                         (--kd-skew), tvd total variation. Sampled labels\n"
    "                         take fkl only\n"
    "  --kd-beta B            gjsd: beta KL(q||m) + (1-beta) KL(p||m), m = beta q +\n"
    "                         (1-beta) p, q the teacher; B in (0, 1), default 0.5\n"
    "  --kd-skew A            skl: KL(q || A q + (1-A) p); srkl: KL(p || A p +\n"
    "                         (1-A) q); A in [0, 1), default 0.1\n"
    "  --kd-weight MODE       per-position trust: none (default), conf (the\n"
    "                         teacher's top-1 probability) or entropy (1 - the\n"
    "                         stored partition's entropy / log(k + 1)); weights\n"
    "                         are normalised to mean 1 over the step's positions\n"
    "  --kd-min-conf P        skip KD positions whose teacher top-1 probability is\n"
    "                         below P (default 0); the others are reweighted so the\n"
    "                         mean weight stays 1\n"
    "  --aux-conf BETA        auxiliary confidence loss (Burns et al. 2023): the KD\n"
    "                         target becomes (1 - b) * teacher + b * onehot(the\n"
    "                         student's own argmax, detached), b ramped linearly\n"
    "                         from 0 to BETA in [0, 1] (default 0: off)\n"
    "  --aux-warmup N         steps of that ramp: b = BETA * min(1, step / N)\n"
    "                         (default 20% of the steps)\n"
    "Model:\n"
    "  --preset NAME          tiny (L2 H4 C128 T128) or small (L6 H6 C384 T256,\n"
    "                         default); --layers/--heads/--channels/--seq override\n"
    "  --layers L --heads H --channels C --seq T\n"
    "  --init CKPT            start from this checkpoint's weights, config and\n"
    "                         tokenizer with a fresh optimiser (e.g. a GPT-2 from\n"
    "                         `train import`); shape options given with it must\n"
    "                         match the checkpoint's shape\n"
    "  --tokenizer CKPT       use this checkpoint's tokenizer\n"
    "  --vocab N              vocabulary of the tokenizer learned from --gt when no\n"
    "                         other tokenizer is given (default 4096)\n"
    "Optimisation:\n"
    "  --steps N | --epochs E number of steps, or passes over the GT windows\n"
    "                         (over the labeled tokens, estimated, when A = 0);\n"
    "                         default --epochs 1\n"
    "  --batch B              GT rows of T tokens per step (default 16)\n"
    "  --kd-batch B           labeled rows of T tokens per step (default 16)\n"
    "  --lr LR                peak learning rate (default 1e-3)\n"
    "  --warmup N             warm-up steps (default 5% of the steps), then cosine\n"
    "                         decay to 10% of the peak\n"
    "  --weight-decay W       AdamW decoupled weight decay on matrices (default 0.1)\n"
    "  --clip G               gradient norm clipping, 0 = off (default 1)\n"
    "  --seed S               initialisation and data order (default 1)\n"
    "  --threads N            threads (default: all cores); results are\n"
    "                         bit-identical for the same seed and thread count\n"
    "                         Under mpirun (make MPI=1) every rank takes its share\n"
    "                         of each step's rows, gradients are summed, rank 0\n"
    "                         writes; --threads defaults to the cores / ranks\n"
    "  --precision P          matrix products in fp32 (default; OpenBLAS), bf16\n"
    "                         (bfloat16 with fp32 accumulation, oneDNN; weights,\n"
    "                         optimiser and element-wise passes stay fp32) or auto\n"
    "                         (bf16 where the CPU has native bfloat16, else fp32)\n"
    "Evaluation, checkpoints, output:\n"
    "  --out MODEL.ckpt       the trained model (parameters + tokenizer); with\n"
    "                         --eval-input the best held-out checkpoint, else the\n"
    "                         final one. The resumable state (with AdamW moments)\n"
    "                         goes to MODEL.ckpt.resume. Outputs only replace w2s's\n"
    "                         own files of their kind, never an input; one train\n"
    "                         per MODEL.ckpt at a time\n"
    "  --eval-input PATH...   held-out text evaluated every --eval-every steps and\n"
    "                         at the end\n"
    "  --eval-every N         (default 100)\n"
    "  --checkpoint-every N   write MODEL.ckpt.resume every N steps and at the end\n"
    "                         (default 100, 0 = only at the end)\n"
    "  --resume               continue from MODEL.ckpt.resume (same options); the\n"
    "                         result is bit-identical to an uninterrupted run. A\n"
    "                         missing MODEL.ckpt.resume starts from scratch; other\n"
    "                         options or changed --gt, --init or --labels content\n"
    "                         are refused, naming each difference\n"
    "  --stop-at N            stop after step N with a checkpoint, as if\n"
    "                         interrupted (continue later with --resume)\n"
    "  --metrics FILE         JSON lines per step: step, lm_loss, kd_loss, loss, lr,\n"
    "                         grad_norm, tokens_per_s (+ eval_loss when evaluated);\n"
    "                         appended to with --resume\n"
    "  --labels-only          no model: only stream the labeled batches (read, decode,\n"
    "                         pack) for the run's steps and report their tokens/s\n"
    "  --quiet                no settings or progress on stderr\n"
    "  --json                 a final summary object on stdout\n"
    "Evaluation mode:\n"
    "  --eval --model CKPT --input PATH...\n"
    "                         mean cross-entropy (nats per token) of every token\n"
    "                         after each record's start, perplexity and bits per\n"
    "                         byte (total nats / (ln 2 * record bytes)); --json\n"
    "                         prints {\"tokens\", \"loss\", \"ppl\", \"bits_per_byte\"}\n"
    "  --positions FILE       also write FILE: a header line, then one tab-separated\n"
    "                         line per predicted token in evaluation order: window,\n"
    "                         position, target, nll, top1, top1_prob, entropy\n"
    "                         (schemas/positions.md; nats); the nll column's mean\n"
    "                         is the loss. Replaces only an earlier positions file,\n"
    "                         atomically; not under mpirun\n"
    "  --help, --version\n";

enum {
    OPT_GT = 256, OPT_RECORDS, OPT_OUT, OPT_LABELS, OPT_LABELS_WHERE, OPT_LABELS_WHERE_SECONDS,
    OPT_LABELS_HARD, OPT_ALLOW_PARTIAL,
    OPT_ALPHA, OPT_TAU, OPT_KD_TAIL, OPT_KD_LOSS, OPT_KD_BETA, OPT_KD_SKEW,
    OPT_KD_WEIGHT, OPT_KD_MIN_CONF, OPT_AUX_CONF, OPT_AUX_WARMUP, OPT_PRESET, OPT_LAYERS,
    OPT_HEADS, OPT_CHANNELS, OPT_SEQ, OPT_INIT, OPT_TOKENIZER, OPT_VOCAB, OPT_STEPS, OPT_EPOCHS,
    OPT_BATCH, OPT_KD_BATCH, OPT_LR, OPT_WARMUP, OPT_WEIGHT_DECAY, OPT_CLIP, OPT_SEED, OPT_THREADS,
    OPT_PRECISION, OPT_EVAL_INPUT, OPT_EVAL_EVERY, OPT_CHECKPOINT_EVERY, OPT_RESUME, OPT_STOP_AT,
    OPT_METRICS, OPT_LABELS_ONLY, OPT_ALLOW_BINARY, OPT_QUIET, OPT_JSON, OPT_EVAL, OPT_MODEL, OPT_INPUT,
    OPT_POSITIONS, OPT_HELP, OPT_VERSION
};

static const struct option long_options[] = {
    {"gt", required_argument, NULL, OPT_GT},
    {"records", required_argument, NULL, OPT_RECORDS},
    {"allow-binary", no_argument, NULL, OPT_ALLOW_BINARY},
    {"out", required_argument, NULL, OPT_OUT},
    {"labels", required_argument, NULL, OPT_LABELS},
    {"labels-where", required_argument, NULL, OPT_LABELS_WHERE},
    {"labels-where-seconds", required_argument, NULL, OPT_LABELS_WHERE_SECONDS},
    {"labels-hard", no_argument, NULL, OPT_LABELS_HARD},
    {"allow-partial-labels", no_argument, NULL, OPT_ALLOW_PARTIAL},
    {"alpha", required_argument, NULL, OPT_ALPHA},
    {"tau", required_argument, NULL, OPT_TAU},
    {"kd-tail", required_argument, NULL, OPT_KD_TAIL},
    {"kd-loss", required_argument, NULL, OPT_KD_LOSS},
    {"kd-beta", required_argument, NULL, OPT_KD_BETA},
    {"kd-skew", required_argument, NULL, OPT_KD_SKEW},
    {"kd-weight", required_argument, NULL, OPT_KD_WEIGHT},
    {"kd-min-conf", required_argument, NULL, OPT_KD_MIN_CONF},
    {"aux-conf", required_argument, NULL, OPT_AUX_CONF},
    {"aux-warmup", required_argument, NULL, OPT_AUX_WARMUP},
    {"preset", required_argument, NULL, OPT_PRESET},
    {"layers", required_argument, NULL, OPT_LAYERS},
    {"heads", required_argument, NULL, OPT_HEADS},
    {"channels", required_argument, NULL, OPT_CHANNELS},
    {"seq", required_argument, NULL, OPT_SEQ},
    {"init", required_argument, NULL, OPT_INIT},
    {"tokenizer", required_argument, NULL, OPT_TOKENIZER},
    {"vocab", required_argument, NULL, OPT_VOCAB},
    {"steps", required_argument, NULL, OPT_STEPS},
    {"epochs", required_argument, NULL, OPT_EPOCHS},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"kd-batch", required_argument, NULL, OPT_KD_BATCH},
    {"lr", required_argument, NULL, OPT_LR},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"weight-decay", required_argument, NULL, OPT_WEIGHT_DECAY},
    {"clip", required_argument, NULL, OPT_CLIP},
    {"seed", required_argument, NULL, OPT_SEED},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"precision", required_argument, NULL, OPT_PRECISION},
    {"eval-input", required_argument, NULL, OPT_EVAL_INPUT},
    {"eval-every", required_argument, NULL, OPT_EVAL_EVERY},
    {"checkpoint-every", required_argument, NULL, OPT_CHECKPOINT_EVERY},
    {"resume", no_argument, NULL, OPT_RESUME},
    {"stop-at", required_argument, NULL, OPT_STOP_AT},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"labels-only", no_argument, NULL, OPT_LABELS_ONLY},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"json", no_argument, NULL, OPT_JSON},
    {"eval", no_argument, NULL, OPT_EVAL},
    {"model", required_argument, NULL, OPT_MODEL},
    {"input", required_argument, NULL, OPT_INPUT},
    {"positions", required_argument, NULL, OPT_POSITIONS},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static const char *const prog = "train";

_Noreturn static void usage_die(const char *message)
{
    cli_die(prog, EXIT_USAGE, message);
}

static void add_path(const char ***list, int *n, const char *path)
{
    const char **grown = mem_realloc((void *)*list, sizeof **list * (size_t)(*n + 1), "paths");
    if (!grown)
        usage_die(err_message());
    grown[(*n)++] = path;
    *list = grown;
}

static void check_eval_mode(const train_options *o, int trained_only)
{
    if (!o->model_path)
        usage_die("--eval needs --model CKPT");
    if (o->n_eval_input == 0)
        usage_die("--eval needs --input PATH...");
    if (trained_only)
        usage_die("--eval takes only --model, --input, --records, --allow-binary, --batch, --threads, "
                  "--precision, --positions, --json, --quiet");
}

/* The KD options beyond --tau and --kd-tail; beta_given, skew_given: whether
 * --kd-beta, --kd-skew were on the command line. */
static void check_kd_options(const train_options *o, int beta_given, int skew_given)
{
    const kd_loss_kind kind = o->kd_loss.kind;
    const int trust = o->kd_weight != KD_WEIGHT_NONE || o->kd_min_conf > 0;
    if (beta_given && kind != KD_LOSS_GJSD)
        usage_die("--kd-beta is the parameter of --kd-loss gjsd");
    if (skew_given && kind != KD_LOSS_SKL && kind != KD_LOSS_SRKL)
        usage_die("--kd-skew is the parameter of --kd-loss skl or srkl");
    if (!(o->kd_loss.beta > 0.0 && o->kd_loss.beta < 1.0))
        usage_die("--kd-beta must lie strictly between 0 and 1 (at the ends gjsd vanishes; use "
                  "--kd-loss fkl or rkl)");
    if (!(o->kd_loss.skew < 1.0))
        usage_die("--kd-skew must be below 1 (at 1 the skew divergences vanish)");
    if ((kind != KD_LOSS_FKL || trust) && (!o->labels || o->labels_hard))
        usage_die("--kd-loss, --kd-weight and --kd-min-conf shape the soft KD loss: they need "
                  "--labels and no --labels-hard");
    if (kind != KD_LOSS_FKL && o->aux_conf > 0)
        usage_die("--aux-conf mixes the forward-KL target; it takes --kd-loss fkl");
}

static void check_train_mode(train_options *o, int alpha_given)
{
    if (o->model_path)
        usage_die("--model is for --eval (use --init to start from a checkpoint)");
    if (o->positions)
        usage_die("--positions is for --eval (the per-token losses of an evaluation)");
    if (o->n_gt == 0)
        usage_die("--gt PATH... is required (the ground-truth text)");
    if (!o->out)
        usage_die("--out MODEL.ckpt is required");
    if (!o->labels) {
        if (o->labels_where || o->labels_hard || o->labels_only || o->aux_conf > 0 ||
            o->allow_partial_labels)
            usage_die("--labels-where, --labels-hard, --labels-only, --aux-conf and "
                      "--allow-partial-labels need --labels");
        if (alpha_given && o->alpha != 1.0)
            usage_die("--alpha below 1 needs --labels");
        o->alpha = 1.0;
    } else if (!alpha_given) {
        o->alpha = 0.5;
    }
    if (o->aux_conf > 0 && o->labels_hard)
        usage_die("--aux-conf mixes the soft KD target; it does not apply to --labels-hard");
    if (o->vocab && (o->labels || o->tokenizer || o->init))
        usage_die("--vocab applies only when a tokenizer is learned from --gt (no --labels, --tokenizer or --init)");
    if (o->steps && o->epochs > 0)
        usage_die("give --steps or --epochs, not both");
    if (!o->steps && o->epochs <= 0)
        o->epochs = 1.0;
    if (o->eval_every && o->n_eval_input == 0)
        o->eval_every = 0;
}

void train_options_parse(train_options *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->records.mode = RECORDS_FILE;
    o->alpha = 1.0;
    o->tau = 1.0;
    o->kd_tail = KD_TAIL_BUCKET;
    o->kd_loss = (kd_divergence){.kind = KD_LOSS_FKL, .beta = 0.5, .skew = 0.1};
    o->kd_weight = KD_WEIGHT_NONE;
    o->batch = 16;
    o->kd_batch = 16;
    o->lr = 1e-3;
    o->warmup = -1;
    o->aux_warmup = -1;
    o->weight_decay = 0.1;
    o->clip = 1.0;
    o->seed = 1;
    o->eval_every = 100;
    o->checkpoint_every = 100;
    o->labels_where_seconds = 60;
    int beta_given = 0, skew_given = 0;
    int alpha_given = 0, train_only = 0, allow_binary = 0, *list_n = NULL;
    const char ***list = NULL;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "-", long_options, NULL)) != -1) {
        if (c != 1 && c != '?' && c != ':')
            list = NULL;
        if (c != 1 && c != OPT_EVAL && c != OPT_MODEL && c != OPT_INPUT && c != OPT_RECORDS &&
            c != OPT_ALLOW_BINARY && c != OPT_BATCH && c != OPT_THREADS && c != OPT_PRECISION &&
            c != OPT_POSITIONS && c != OPT_JSON && c != OPT_QUIET && c != OPT_HELP && c != OPT_VERSION)
            train_only = 1;
        switch (c) {
        case 1:
            if (!list) {
                char msg[600];
                snprintf(msg, sizeof msg, "unexpected argument '%s'", optarg);
                usage_die(msg);
            }
            add_path(list, list_n, optarg);
            break;
        case OPT_GT: add_path(&o->gt, &o->n_gt, optarg); list = &o->gt; list_n = &o->n_gt; break;
        case OPT_EVAL_INPUT:
        case OPT_INPUT:
            add_path(&o->eval_input, &o->n_eval_input, optarg);
            list = &o->eval_input;
            list_n = &o->n_eval_input;
            break;
        case OPT_RECORDS:
            if (corpus_parse_mode(optarg, &o->records) < 0)
                usage_die(err_message());
            break;
        case OPT_ALLOW_BINARY: allow_binary = 1; break;
        case OPT_OUT: o->out = optarg; break;
        case OPT_LABELS: o->labels = optarg; break;
        case OPT_LABELS_WHERE: o->labels_where = optarg; break;
        case OPT_LABELS_WHERE_SECONDS:
            o->labels_where_seconds = cli_double_arg(prog, "--labels-where-seconds", optarg, 0.0, 1e9);
            break;
        case OPT_LABELS_HARD: o->labels_hard = 1; break;
        case OPT_ALLOW_PARTIAL: o->allow_partial_labels = 1; break;
        case OPT_ALPHA: o->alpha = cli_double_arg(prog, "--alpha", optarg, 0.0, 1.0); alpha_given = 1; break;
        case OPT_TAU: o->tau = cli_double_arg(prog, "--tau", optarg, 0.01, 100.0); break;
        case OPT_KD_TAIL:
            if (kd_tail_parse(optarg, &o->kd_tail) < 0) {
                err_wrap("--kd-tail");
                usage_die(err_message());
            }
            break;
        case OPT_KD_LOSS:
            if (kd_loss_kind_parse(optarg, &o->kd_loss.kind) < 0) {
                err_wrap("--kd-loss");
                usage_die(err_message());
            }
            break;
        case OPT_KD_BETA:
            o->kd_loss.beta = cli_double_arg(prog, "--kd-beta", optarg, 0.0, 1.0);
            beta_given = 1;
            break;
        case OPT_KD_SKEW:
            o->kd_loss.skew = cli_double_arg(prog, "--kd-skew", optarg, 0.0, 1.0);
            skew_given = 1;
            break;
        case OPT_KD_WEIGHT:
            if (kd_weight_parse(optarg, &o->kd_weight) < 0) {
                err_wrap("--kd-weight");
                usage_die(err_message());
            }
            break;
        case OPT_KD_MIN_CONF: o->kd_min_conf = cli_double_arg(prog, "--kd-min-conf", optarg, 0.0, 1.0); break;
        case OPT_AUX_CONF: o->aux_conf = cli_double_arg(prog, "--aux-conf", optarg, 0.0, 1.0); break;
        case OPT_AUX_WARMUP: o->aux_warmup = (long)cli_int_arg(prog, "--aux-warmup", optarg, 0, 1000000000); break;
        case OPT_PRESET: o->preset = optarg; break;
        case OPT_LAYERS: o->layers = (int)cli_int_arg(prog, "--layers", optarg, 1, 256); break;
        case OPT_HEADS: o->heads = (int)cli_int_arg(prog, "--heads", optarg, 1, 256); break;
        case OPT_CHANNELS: o->channels = (int)cli_int_arg(prog, "--channels", optarg, 1, 16384); break;
        case OPT_SEQ: o->seq = (int)cli_int_arg(prog, "--seq", optarg, 2, 65536); break;
        case OPT_INIT: o->init = optarg; break;
        case OPT_TOKENIZER: o->tokenizer = optarg; break;
        case OPT_VOCAB: o->vocab = (int)cli_int_arg(prog, "--vocab", optarg, 258, 65536); break;
        case OPT_STEPS: o->steps = (long)cli_int_arg(prog, "--steps", optarg, 1, 1000000000); break;
        case OPT_EPOCHS: o->epochs = cli_double_arg(prog, "--epochs", optarg, 1e-6, 1e6); break;
        case OPT_BATCH: o->batch = (int)cli_int_arg(prog, "--batch", optarg, 1, 4096); break;
        case OPT_KD_BATCH: o->kd_batch = (int)cli_int_arg(prog, "--kd-batch", optarg, 1, 4096); break;
        case OPT_LR: o->lr = cli_double_arg(prog, "--lr", optarg, 0.0, 10.0); break;
        case OPT_WARMUP: o->warmup = (long)cli_int_arg(prog, "--warmup", optarg, 0, 1000000000); break;
        case OPT_WEIGHT_DECAY: o->weight_decay = cli_double_arg(prog, "--weight-decay", optarg, 0.0, 10.0); break;
        case OPT_CLIP: o->clip = cli_double_arg(prog, "--clip", optarg, 0.0, 1e9); break;
        case OPT_SEED: o->seed = (uint64_t)cli_int_arg(prog, "--seed", optarg, 0, INT64_MAX); break;
        case OPT_THREADS: o->threads = (int)cli_int_arg(prog, "--threads", optarg, 1, 1024); break;
        case OPT_PRECISION:
            if (model_precision_parse(optarg, &o->precision) < 0) {
                err_wrap("--precision");
                usage_die(err_message());
            }
            break;
        case OPT_EVAL_EVERY: o->eval_every = (long)cli_int_arg(prog, "--eval-every", optarg, 1, 1000000000); break;
        case OPT_CHECKPOINT_EVERY:
            o->checkpoint_every = (long)cli_int_arg(prog, "--checkpoint-every", optarg, 0, 1000000000);
            break;
        case OPT_RESUME: o->resume = 1; break;
        case OPT_STOP_AT: o->stop_at = (long)cli_int_arg(prog, "--stop-at", optarg, 1, 1000000000); break;
        case OPT_METRICS: o->metrics = optarg; break;
        case OPT_LABELS_ONLY: o->labels_only = 1; break;
        case OPT_QUIET: o->quiet = 1; break;
        case OPT_JSON: o->json = 1; break;
        case OPT_EVAL: o->eval_mode = 1; break;
        case OPT_MODEL: o->model_path = optarg; break;
        case OPT_POSITIONS: o->positions = optarg; break;
        case OPT_HELP:
            fputs(usage_text, stdout);
            exit(0);
        case OPT_VERSION:
            printf("w2s %s\n", W2S_VERSION);
            exit(0);
        default: {
            char msg[600];
            if (optopt)
                snprintf(msg, sizeof msg, "option '%s' needs a value (see --help)",
                         argv[optind - 1]);
            else
                snprintf(msg, sizeof msg, "unknown option '%s' (see --help)", argv[optind - 1]);
            usage_die(msg);
        }
        }
    }
    o->records.allow_binary = allow_binary;   /* --records may come after it */
    if (o->eval_mode)
        check_eval_mode(o, train_only);
    else {
        check_train_mode(o, alpha_given);
        check_kd_options(o, beta_given, skew_given);
    }
}

void train_options_free(train_options *o)
{
    free((void *)o->gt);
    free((void *)o->eval_input);
    o->gt = o->eval_input = NULL;
}
