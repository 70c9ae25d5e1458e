/* hf_convert: command line of `train import` / `train export`; the format
 * work is in common/nn/hf_gpt2.c. Both read whole models into memory once:
 * import holds the parameters (mapped file aside), export the checkpoint. */
#include "hf_convert.h"

#include "base/cli.h"
#include "base/err.h"
#include "nn/checkpoint.h"
#include "nn/hf_gpt2.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: train import --hf DIR --out MODEL.ckpt [--quiet]\n"
    "       train export --model MODEL.ckpt --out DIR [--quiet]\n"
    "\n"
    "import: reads a Hugging Face GPT-2 directory (config.json with model_type\n"
    "gpt2, model.safetensors in F32, F16 or BF16, vocab.json + merges.txt) into a\n"
    "w2s checkpoint: the same weights and tokenizer, no optimiser state. Start\n"
    "training from it with `train --init MODEL.ckpt`. Another model_type, a\n"
    "missing, misshaped or unexpected tensor, an untied lm_head or\n"
    "pytorch_model.bin alone are refused by name.\n"
    "\n"
    "export: writes a checkpoint as a Hugging Face GPT-2 directory: config.json,\n"
    "generation_config.json, model.safetensors (F32), vocab.json, merges.txt.\n"
    "DIR must not exist or be empty; it appears only when complete. A\n"
    "checkpoint whose tokenizer GPT-2's files cannot express (w2s's own BPE)\n"
    "is refused. Importing an export gives the checkpoint back bit for bit.\n"
    "\n"
    "  --hf DIR          (import) the Hugging Face model directory\n"
    "  --model CKPT      (export) the w2s checkpoint\n"
    "  --out PATH        the checkpoint to write (import) or directory (export)\n"
    "  --quiet           no summary on stderr\n"
    "  --help            this text\n"
    "Exit status: 0 ok, 1 error, 2 usage.\n";

enum { OPT_HF = 256, OPT_MODEL, OPT_OUT, OPT_QUIET, OPT_HELP };

static const struct option long_options[] = {
    {"hf", required_argument, NULL, OPT_HF},
    {"model", required_argument, NULL, OPT_MODEL},
    {"out", required_argument, NULL, OPT_OUT},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static void usage_error(const char *job, const char *what)
{
    fprintf(stderr, "train %s: %s (see train %s --help)\n", job, what, job);
    exit(EXIT_USAGE);
}

static void summary(const char *from, const char *to, const model_config *c)
{
    fprintf(stderr, "train: %s -> %s: GPT-2 L%d H%d C%d T%d V%d, %zu parameters\n", from, to,
            c->layers, c->heads, c->channels, c->seq_len, c->vocab, model_config_num_params(c));
}

int hf_convert_main(int argc, char **argv)
{
    const char *job = argv[0], *hf = NULL, *ckpt = NULL, *out = NULL;
    int quiet = 0, import = strcmp(job, "import") == 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_HF: hf = optarg; break;
        case OPT_MODEL: ckpt = optarg; break;
        case OPT_OUT: out = optarg; break;
        case OPT_QUIET: quiet = 1; break;
        case OPT_HELP: fputs(usage_text, stdout); exit(0);
        default: {
            char msg[600];
            snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", argv[optind - 1]);
            usage_error(job, msg);
        }
        }
    }
    if (optind < argc)
        usage_error(job, "unexpected argument (paths follow --hf, --model, --out)");
    if (import ? !hf || ckpt : !ckpt || hf)
        usage_error(job, import ? "import takes --hf DIR (not --model)" : "export takes --model CKPT (not --hf)");
    if (!out)
        usage_error(job, "missing --out");
    checkpoint ck;
    int rc = import ? hf_gpt2_import(hf, &ck) : checkpoint_read(ckpt, &ck);
    if (rc == 0)
        rc = import ? checkpoint_write(out, &ck) : hf_gpt2_export(&ck, out);
    if (rc == 0 && !quiet)
        summary(import ? hf : ckpt, out, &ck.config);
    checkpoint_free(&ck);
    if (rc < 0)
        cli_die("train", 1, err_message());
    return 0;
}
