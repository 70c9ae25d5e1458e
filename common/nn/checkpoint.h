/* checkpoint: the on-disk model file of schemas/checkpoint.md -- magic,
 * version, config, tokenizer blob, float32 parameters, optional AdamW state
 * and step, optional opaque trainer state, XXH3-64 checksum. Written through
 * atomic_file so a crash never leaves a torn file; read with every size
 * validated against the file length before anything is allocated. */
#ifndef W2S_CHECKPOINT_H
#define W2S_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include "base/filelock.h"
#include "nn/model.h"

typedef struct checkpoint {
    model_config config;
    unsigned char *tokenizer; size_t tokenizer_len;  /* serialized tokenizer blob */
    float *params;                                  /* model_config_num_params floats */
    float *adam_m, *adam_v;                         /* NULL when absent */
    long step;                                      /* 0 when absent */
    unsigned char *train_state; size_t train_state_len; /* opaque bytes for train (NULL/0) */
    uint64_t hash;                                  /* set by read: XXH3 of config+params (teacher identity) */
} checkpoint;

/* Writes ck to path atomically; pointers are borrowed. adam_m and adam_v are
 * stored only when both are non-NULL. @return 0, or -1 with a message naming
 * path (invalid config, I/O error). */
int checkpoint_write(const char *path, const checkpoint *ck);
/* checkpoint_write of an output whose writer lock (base/filelock.h) lock
 * holds: the lock moves to the new file as it replaces the old one
 * (atomic_file_commit_locked); NULL = no lock. */
int checkpoint_write_locked(const char *path, const checkpoint *ck, filelock *lock);
/* Reads path into *ck (zeroed first), allocating its arrays; sets ck->hash.
 * @return 0, or -1 with a message naming path and the reason (bad magic,
 * unsupported version, truncated, checksum mismatch, invalid config); on
 * failure nothing stays allocated. */
int checkpoint_read(const char *path, checkpoint *ck);
/* The is_kind test of base/output_path.h for checkpoints: 1 when path starts
 * with the checkpoint magic, 0 when not, -1 + message when unreadable. */
int checkpoint_has_magic(const char *path);
/* Frees what read allocated and zeroes *ck. Safe on a zeroed checkpoint. */
void checkpoint_free(checkpoint *ck);
/* The teacher identity: XXH3-64 of the config (5 int32 LE: V, L, H, C, T)
 * followed by the float32 LE parameters. */
uint64_t checkpoint_hash(const model_config *cfg, const float *params);

#endif
