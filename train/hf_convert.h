/* hf_convert: the `train import` and `train export` subcommands, between
 * Hugging Face GPT-2 model directories and w2s checkpoints (nn/hf_gpt2.h). */
#ifndef W2S_TRAIN_HF_CONVERT_H
#define W2S_TRAIN_HF_CONVERT_H

/* Runs `train import` (argv[0] = "import") or `train export` (argv[0] =
 * "export"). @return the exit code: 0, 1 on failure, EXIT_USAGE on a bad
 * command line. */
int hf_convert_main(int argc, char **argv);

#endif
