/* distill: command line of the distill program -- options, checks, and
 * dispatch to the run, merge and info jobs (distill.h) and to the corpus
 * splitter (split.h, owned by the pipeline). Usage errors exit 2
 * with one line on stderr; job failures exit 1 with the job's message. */
#include "distill.h"
#include "distill_mpi.h"
#include "split.h"

#include "base/cli.h"
#include "base/err.h"
#include "base/mem.h"
#include "base/output_path.h"
#include "labels/labels_db.h"
#include "labels/softlabel.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: distill --teacher TEACHER.ckpt --db labels.db --input PATH... [options]\n"
    "       distill merge --db OUT.db SHARD.db...\n"
    "       distill info labels.db [--json]\n"
    "       distill split --input PATH... --out DIR --parts NAME:PERCENT,... (see split --help)\n"
    "\n"
    "Runs the teacher over a corpus and stores its next-token distribution at\n"
    "every position in labels.db (SQLite): the top-k ids and log-probs, or N\n"
    "draws from it (ids with counts). Killed at any moment, the same\n"
    "command resumes where it stopped, inside a record too; windows already\n"
    "stored are skipped.\n"
    "\n"
    "options:\n"
    "  --teacher PATH    teacher checkpoint (its tokenizer is used)\n"
    "  --db PATH         labels database, created if missing; an existing one\n"
    "                    must come from the same teacher, tokenizer and labels\n"
    "  --input PATH...   corpus inputs: plain or compressed files, archives\n"
    "                    (any libarchive format), directories, '-' = stdin;\n"
    "                    repeat --input or list several paths after it\n"
    "  --records MODE    how records are cut: file, line, paragraph, fortune,\n"
    "                    jsonl:FIELD (default file)\n"
    "  --allow-binary    read members that do not look like text; without it a\n"
    "                    member whose first 64 KiB hold a NUL byte, or more than\n"
    "                    a quarter control bytes (not tab, newline, CR, FF, VT,\n"
    "                    ESC, BEL, BS) or invalid UTF-8, is an error\n"
    "                    (some invalid UTF-8 is fine). A file whose name says\n"
    "                    .gz, .tar, .zip, .zst, .xz, .bz2, .7z ... but whose\n"
    "                    content is not that is always an error. Compressed\n"
    "                    files and archives inside archives are opened too\n"
    "  --labels KIND     topk:K: the K most probable ids per position (default\n"
    "                    topk:32, K 1..min(V, 1024)); sample:N: N tokens drawn\n"
    "                    with replacement from the teacher's softmax per position\n"
    "                    (N 1..255), stored as the distinct ids with counts\n"
    "  --topk K          the same as --labels topk:K\n"
    "  --seed S          seed of the sample:N draws (default 1); each position's\n"
    "                    draws depend only on S, the record's content, the window\n"
    "                    and the position (not on --batch, --threads or resume)\n"
    "  --batch B         rows of T tokens per teacher forward (default 16)\n"
    "  --threads N       threads (default: all cores)\n"
    "  --precision P     the teacher's matrix products in fp32 (default; OpenBLAS),\n"
    "                    bf16 (bfloat16 with fp32 accumulation, oneDNN) or auto\n"
    "                    (bf16 where the CPU has native bfloat16, else fp32)\n"
    "  --shard I/N       only records whose content hash mod N == I\n"
    "  --quiet           no settings, progress or summary on stderr\n"
    "  --json            print a summary object on stdout at the end:\n"
    "                    records, sequences, tokens, seconds, blob_bytes, skipped\n"
    "  --help            this text\n"
    "  --version         print the version\n"
    "\n"
    "merge: copies the rows of every SHARD.db into OUT.db (created with the\n"
    "first shard's meta data); shards of another teacher are refused.\n"
    "  --db PATH         the output database\n"
    "  --quiet, --json   as above\n"
    "\n"
    "info: prints the teacher, tokenizer, k, codec, counts of sequences and\n"
    "tokens, blob bytes per position of a labels database, and whether the\n"
    "distill that wrote it finished.\n"
    "  --json            one JSON object instead of text\n"
    "\n"
    "Records become [EOT] + tokens, cut into windows of at most T tokens that\n"
    "overlap by one token (common/window.h). Exit status: 0 ok, 1 error, 2 usage.\n";

static const char *prog = "distill";

static _Noreturn W2S_PRINTF(1, 2) void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see --help)\n");
    va_end(ap);
    exit(EXIT_USAGE);
}

/* getopt prints its own message for unknown options; this keeps it to one
 * line of ours. */
static _Noreturn void bad_option(char **argv)
{
    usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
}

enum { OPT_HELP = 256, OPT_VERSION, OPT_QUIET, OPT_JSON, OPT_TEACHER, OPT_DB, OPT_INPUT,
       OPT_RECORDS, OPT_TOPK, OPT_BATCH, OPT_THREADS, OPT_PRECISION, OPT_LABELS, OPT_SEED,
       OPT_ALLOW_BINARY, OPT_SHARD };

static const struct option long_options[] = {
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"json", no_argument, NULL, OPT_JSON},
    {"teacher", required_argument, NULL, OPT_TEACHER},
    {"db", required_argument, NULL, OPT_DB},
    {"input", required_argument, NULL, OPT_INPUT},
    {"records", required_argument, NULL, OPT_RECORDS},
    {"topk", required_argument, NULL, OPT_TOPK},
    {"labels", required_argument, NULL, OPT_LABELS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"allow-binary", no_argument, NULL, OPT_ALLOW_BINARY},
    {"precision", required_argument, NULL, OPT_PRECISION},
    {"shard", required_argument, NULL, OPT_SHARD},
    {NULL, 0, NULL, 0},
};

/* Options every job accepts; others are refused per job below. */
typedef struct parsed {
    distill_options run;
    bool seen[OPT_SHARD + 1];
} parsed;

static void parse(int argc, char **argv, parsed *p)
{
    distill_options *o = &p->run;
    o->inputs = mem_calloc((size_t)argc, sizeof *o->inputs, "input list");
    if (!o->inputs)
        cli_die(prog, 1, err_message());
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        if (c >= OPT_HELP && c <= OPT_SHARD)
            p->seen[c] = true;
        switch (c) {
        case OPT_HELP: fputs(usage_text, stdout); exit(0);
        case OPT_VERSION: printf("w2s %s\n", W2S_VERSION); exit(0);
        case OPT_QUIET: o->quiet = true; break;
        case OPT_JSON: o->json = true; break;
        case OPT_TEACHER: o->teacher = optarg; break;
        case OPT_DB: o->db = optarg; break;
        case OPT_INPUT: o->inputs[o->n_inputs++] = optarg; break;
        case OPT_RECORDS:
            if (corpus_parse_mode(optarg, &o->records) < 0)
                usage_error("--records: %s", err_message());
            o->records_text = optarg;
            break;
        case OPT_TOPK: o->k = (int)cli_int_arg(prog, "--topk", optarg, 1, SOFTLABEL_MAX_K); break;
        case OPT_LABELS: {
            softlabel_kind kind;
            if (softlabel_kind_parse(optarg, &kind, &o->k) < 0)
                usage_error("--labels: %s", err_message());
            o->sampled = kind == SOFTLABEL_KIND_SAMPLED;
            if (o->k == 0)
                o->k = DISTILL_DEFAULT_K;
            break;
        }
        case OPT_SEED: o->seed = (uint64_t)cli_int_arg(prog, "--seed", optarg, 0, INT64_MAX); break;
        case OPT_BATCH: o->batch = (int)cli_int_arg(prog, "--batch", optarg, 1, 4096); break;
        case OPT_THREADS: o->threads = (int)cli_int_arg(prog, "--threads", optarg, 1, 1024); break;
        case OPT_ALLOW_BINARY: break;   /* applied after the loop: --records resets it */
        case OPT_PRECISION:
            if (model_precision_parse(optarg, &o->precision) < 0)
                usage_error("--precision: %s", err_message());
            break;
        case OPT_SHARD:
            if (cli_parse_shard("--shard", optarg, &o->shard_index, &o->shard_count) < 0)
                cli_die(prog, EXIT_USAGE, err_message());
            break;
        default: bad_option(argv);
        }
    }
}

/* Exits with a usage error when any of the n options opts was given to job. */
static void refuse(const parsed *p, const char *job, const int *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!p->seen[opts[i]])
            continue;
        const struct option *o = long_options;
        while (o->val != opts[i])
            o++;
        fprintf(stderr, "%s: %s does not take --%s (see --help)\n", prog, job, o->name);
        exit(EXIT_USAGE);
    }
}

/* The refusals of base/output_path.h for the database a job writes: never
 * one of its inputs, never a file that is not SQLite. Exits 1 on refusal. */
static void check_db_output(const char *db, const char *const *inputs, int n, const char *in_opt,
                            const char *teacher)
{
    for (int i = 0; i < n; i++)
        if (output_path_distinct(db, "--db", inputs[i], in_opt) < 0)
            cli_die(prog, 1, err_message());
    if (output_path_distinct(db, "--db", teacher, "--teacher") < 0 ||
        output_path_check(db, "w2s labels database", labels_db_file_is_sqlite) < 0)
        cli_die(prog, 1, err_message());
}

static int run_merge(int argc, char **argv)
{
    parsed p = {0};
    parse(argc, argv, &p);
    static const int refused[] = {OPT_TEACHER, OPT_INPUT, OPT_RECORDS, OPT_TOPK, OPT_BATCH,
                                  OPT_THREADS, OPT_PRECISION, OPT_SHARD, OPT_LABELS, OPT_SEED,
                                  OPT_ALLOW_BINARY};
    refuse(&p, "merge", refused, sizeof refused / sizeof *refused);
    if (!p.run.db)
        usage_error("merge needs --db OUT.db");
    if (optind >= argc)
        usage_error("merge needs at least one SHARD.db");
    check_db_output(p.run.db, (const char *const *)argv + optind, argc - optind, "a SHARD.db", NULL);
    int rc = distill_merge(p.run.db, (const char *const *)argv + optind, argc - optind,
                           p.run.quiet, p.run.json);
    free(p.run.inputs);
    return rc;
}

static int run_info(int argc, char **argv)
{
    parsed p = {0};
    parse(argc, argv, &p);
    static const int refused[] = {OPT_TEACHER, OPT_DB, OPT_INPUT, OPT_RECORDS, OPT_TOPK, OPT_BATCH,
                                  OPT_THREADS, OPT_PRECISION, OPT_SHARD, OPT_QUIET, OPT_LABELS,
                                  OPT_SEED, OPT_ALLOW_BINARY};
    refuse(&p, "info", refused, sizeof refused / sizeof *refused);
    if (argc - optind != 1)
        usage_error("info needs exactly one labels.db");
    int rc = distill_info(argv[optind], p.run.json);
    free(p.run.inputs);
    return rc;
}

static int run_distill(int argc, char **argv)
{
    parsed p = {0};
    distill_options *o = &p.run;
    o->records.mode = RECORDS_FILE;
    o->records_text = "file";
    o->k = DISTILL_DEFAULT_K;
    o->seed = 1;
    o->batch = DISTILL_DEFAULT_BATCH;
    o->shard_count = 1;
    parse(argc, argv, &p);
    for (int i = optind; i < argc; i++) {
        if (!p.seen[OPT_INPUT])
            usage_error("unexpected argument '%s' (inputs follow --input)", argv[i]);
        o->inputs[o->n_inputs++] = argv[i];
    }
    if (p.seen[OPT_LABELS] && p.seen[OPT_TOPK])
        usage_error("give --labels or --topk, not both");
    if (!o->teacher)
        usage_error("missing --teacher");
    if (!o->db)
        usage_error("missing --db");
    if (o->n_inputs == 0)
        usage_error("missing --input");
    for (int i = 0; i < o->n_inputs; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(o->inputs[i], o->inputs[j]) == 0)
                usage_error("input '%s' given twice", o->inputs[i]);
    o->records.allow_binary = p.seen[OPT_ALLOW_BINARY];
    check_db_output(o->db, o->inputs, o->n_inputs, "--input", o->teacher);
    int rc = distill_mpi_run(o);   /* distill_run, one shard per rank under mpirun */
    free(o->inputs);
    return rc;
}

int main(int argc, char **argv)
{
    int rc;
    if (argc > 1 && strcmp(argv[1], "merge") == 0)
        rc = run_merge(argc - 1, argv + 1);
    else if (argc > 1 && strcmp(argv[1], "info") == 0)
        rc = run_info(argc - 1, argv + 1);
    else if (argc > 1 && strcmp(argv[1], "split") == 0)
        return distill_split_main(argc - 1, argv + 1);
    else
        rc = run_distill(argc, argv);
    if (rc < 0)
        cli_die(prog, 1, err_message());
    return 0;
}
