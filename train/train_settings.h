/* train_settings: what a training run depends on, for its resume state
 * (train_state.h): a hash of the settings that shape the trajectory
 * (version 1 states hold only that) and the settings text of version 2 --
 * one "name<TAB>value" line per option as given, the resolved step counts,
 * the tokenizer hash, and content hashes of the inputs in lines named
 * "... content" (schemas/checkpoint.md, "Train state"). A resume compares
 * the recorded text with this run's and names every difference. */
#ifndef W2S_TRAIN_SETTINGS_H
#define W2S_TRAIN_SETTINGS_H

#include <stdint.h>

#include "trainer.h"

/* XXH3 of every option that shapes the trajectory (not threads, evaluation,
 * checkpoint cadence or output), the tokenizer, and the labels' teacher and
 * row count. Needs r's tokenizer, step counts and labels resolved.
 * @return 0 / -1 + message. */
int train_settings_hash(const train_run *r, uint64_t *hash);

/* The settings text of r into *text (malloc'ed). @return 0 / -1 + message. */
int train_settings_text(const train_run *r, char **text);

/* Refuses resuming r (r->state as read from its resume checkpoint) when the
 * recorded settings text differs from now, or, for a version 1 state, the
 * recorded hash from hash: "<resume path>: the run differs from the one
 * that wrote it: --lr: 0.003 in the run, 0.001 now; ...". @return 0 / -1. */
int train_settings_check_resume(const train_run *r, const char *now, uint64_t hash);

#endif
