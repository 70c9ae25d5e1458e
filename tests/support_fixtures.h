/* support_fixtures: in-process fixtures shared by tests and benches -- the
 * fortune files as one training text, a teacher's top-k soft labels from a
 * logits row, the SQLite integrity check of a database file, the golden
 * files of tests/golden, and the benchmarks' figures in $BUILD/bench.jsonl.
 *
 * Linked into every test and bench binary, so nothing here uses cmocka:
 * functions return 0 / a pointer on success and -1 / NULL on failure with a
 * message on stderr, and a test asserts on that. */
#ifndef W2S_SUPPORT_FIXTURES_H
#define W2S_SUPPORT_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"

/* The plain fortune files of /usr/share/games/fortunes (no suffix, so not the
 * .dat/.u8 indexes) concatenated in sorted name order. @return a malloc'ed
 * buffer of *len bytes, or NULL with *len = 0 when there are none (or memory
 * ran out): the caller then generates text instead. */
unsigned char *sfix_load_fortunes(size_t *len);

/* Top-k of one logits row z (V entries) in rank order (descending, ties to
 * the lower id) into ids (k), with their log-softmax in lp (k), computed in
 * double as z - *mx - log(sum exp(z - *mx)) (*mx = max z; mx may be NULL).
 * used: V bytes of scratch.
 * @return log(sum exp(z - *mx)), so a target's log-prob is z[y] - *mx - it. */
double sfix_topk_row(const float *z, int V, int k, unsigned char *used, int32_t *ids, float *lp,
                     double *mx);

/* A random teacher for the KD tests: logits spread * N(0, 1) on V <= 4096
 * ids drawn from rng, their top-k as sfix_topk_row gives it, and the tail
 * mass max(0, 1 - sum exp(lp)). */
void sfix_kd_teacher(rng_state *rng, int V, int k, double spread, int32_t *ids, float *lp, float *tail);

/* Opens path with sqlite3 open flags (SQLITE_OPEN_READONLY or _READWRITE),
 * runs PRAGMA integrity_check and closes it. @return 0 when it says "ok" and
 * the close succeeds, else -1 with the problem on stderr. */
int sfix_db_integrity(const char *path, int flags);

/* Feeds decode every strict prefix of a valid blob (each copied into a buffer
 * of exactly that size, so ASan sees any overread) and the blob with one
 * trailing byte. @return 0 when decode refused all of them with a message and
 * the trailing-byte message holds "after the payload", else -1 naming the
 * case on stderr. */
/* The synthetic teacher's log-prior over vocab tokens: Zipf with exponent
 * 2.2 over a rank order that is the identity shuffled locally (BPE numbers
 * frequent tokens low, but not in exact order). perm: vocab scratch entries.
 * Draws from rng, so a caller's later draws depend on it. */
void sfix_zipf_prior(rng_state *rng, uint32_t vocab, uint32_t *perm, float *prior);

int sfix_blob_cuts_rejected(const unsigned char *blob, size_t len,
                            int (*decode)(const unsigned char *blob, size_t len));

/* One hostile header: the byte at offset at set to value, which decode must
 * refuse with a message holding message. */
typedef struct sfix_patch {
    int at;
    unsigned char value;
    const char *message;
} sfix_patch;

/* Applies each patch to blob in turn (restoring the byte after) and decodes.
 * @return 0 when every patched blob was refused with its message, else -1
 * naming the case on stderr. */
int sfix_patches_rejected(unsigned char *blob, size_t len, const sfix_patch *patches, size_t n,
                          int (*decode)(const unsigned char *blob, size_t len));

/* The patches of the vocabulary field every wide blob (codec versions 4 and
 * 5) of vocab 150,001 = 0x249f1 must refuse, decoded for that vocabulary. */
#define SFIX_WIDE_VOCAB_PATCHES 3
extern const sfix_patch sfix_wide_vocab_patches[SFIX_WIDE_VOCAB_PATCHES];

/* Golden files of the formats, tests/golden/NAME (relative to the repository
 * root, where the tests run). sfix_golden_read: a malloc'ed copy of the file,
 * or NULL (said on stderr). sfix_golden_matches: 0 when the file holds
 * exactly bytes[0..len), else -1 (said on stderr); with W2S_WRITE_GOLDEN=1 in
 * the environment it first (re)writes the file from bytes, which is how the
 * committed files were made. */
unsigned char *sfix_golden_read(const char *name, size_t *len);
int sfix_golden_matches(const char *name, const unsigned char *bytes, size_t len);

/* Benchmarks: appends {"bench": name, "value": value, "unit": unit} as one
 * line to $BUILD/bench.jsonl (BUILD defaults to build); a file that cannot
 * be opened is said on stderr, and the figure is still printed by
 * sfix_bench_emit. */
void sfix_bench_record(const char *name, double value, const char *unit);
/* Prints "  name value unit" on stdout, then sfix_bench_record. */
void sfix_bench_emit(const char *name, double value, const char *unit);

#endif
