/* split: the `distill split` subcommand (deterministic corpus split by
 * content hash into fortune-style part files). */
#ifndef W2S_DISTILL_SPLIT_H
#define W2S_DISTILL_SPLIT_H

/* Runs `distill split` with argv[0] = "split". @return the exit code. */
int distill_split_main(int argc, char **argv);

#endif
