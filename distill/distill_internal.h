/* distill_internal: the stages of a distill run and the batch slots they
 * pass along (distill_collect.c packs records into slots, distill_batch.c
 * runs the teacher on them, distill_label.c turns logits into labels,
 * distill_writer.c stores them; distill_job.h ties them together).
 *
 * Per batch, on the main thread: the reader packs windows of records into a
 * slot; the teacher runs on it; the labelers (a thread pool, one thread per
 * core, run between two forwards so they never compete with BLAS) compute
 * every window's top-k, statistics and blob, each window independently.
 * The slot then goes to the writer thread, which inserts its rows in slot
 * order -- record order, whatever the timing -- and commits after each
 * slot, while the main thread fills and runs the other slot. Every buffer is
 * allocated at start-up or grows to its high-water mark once.
 *
 * Batches are cut from every record of the shard, stored or not, so a
 * resumed run packs each window exactly where an uninterrupted run did: the
 * teacher's logits depend (by a rounding unit) on where a window sits in a
 * batch, since BLAS kernels treat the lanes of a tile differently. Stored
 * windows are only packed; a batch holding nothing new is skipped. */
#ifndef W2S_DISTILL_INTERNAL_H
#define W2S_DISTILL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "labels/labels_db.h"
#include "base/parallel.h"
#include "labels/softlabel.h"
#include "text/window.h"

enum { DISTILL_SLOTS = 2, DISTILL_MAX_LABELERS = 64 };

/* A record with at least one window to store in a slot; strings live in the
 * slot's arena (offsets, since the arena may move while it grows). */
typedef struct distill_record {
    size_t source, member;
    uint64_t index, hash;
} distill_record;

typedef struct distill_window {
    bool store;        /* false: the window is stored already (packed only) */
    int record;        /* index into the slot's records (when store) */
    int window;        /* window index within the record */
    long offset;       /* flat offset of its first token in the slot */
    int len;           /* tokens, >= 2 */
    bool last;         /* last window of its record */
    /* Set by the labelers: */
    int labeler;       /* whose blob arena holds the blob */
    size_t blob, blob_len;
    double mean_nll, mean_entropy, mean_tail, mean_top1;
} distill_window;

typedef struct distill_slot {
    int32_t *tokens, *pos;           /* (batch, T) */
    packer pk;
    distill_window *windows;         /* room for batch * T / 2 */
    int n_windows;
    int n_store;                     /* windows with store set */
    distill_record *records;         /* room for batch * T / 2 */
    int n_records;
    char *strings;
    size_t strings_len, strings_cap;
    unsigned char *blobs[DISTILL_MAX_LABELERS];   /* one arena per labeler */
    size_t blobs_len[DISTILL_MAX_LABELERS], blobs_cap[DISTILL_MAX_LABELERS];
    bool full;                       /* handed to the writer, not yet released */
} distill_slot;

/* One labeler's buffers. */
typedef struct distill_labeler {
    softlabel_codec *codec;
    void *scratch;                   /* topk_scratch_bytes(V) */
    int32_t *ids;                    /* (T - 1, k) */
    float *logprobs;                 /* (T - 1, k) */
    uint8_t *counts;                 /* sampled: (T - 1, N) draws per id */
    double *cdf;                     /* sampled: V running sums */
    unsigned char *blob;
    size_t blob_cap;
    int failed;
    char error[512];
} distill_labeler;

typedef struct distill_labelers {
    parallel_pool *pool;
    int n, V, k, T;
    bool sampled;                    /* k = N draws per position (sample:N) */
    uint64_t seed;                   /* of the draws */
    distill_labeler each[DISTILL_MAX_LABELERS];
    /* The job of the current parallel_run. */
    distill_slot *slot;
    const float *logits;
} distill_labelers;

/* threads <= 0: one per core (at most DISTILL_MAX_LABELERS). sampled: k is
 * the N of sample:N, drawn with seed. @return 0 / -1 + message. */
int distill_labelers_init(distill_labelers *l, int threads, int V, int k, int T, bool sampled,
                          uint64_t seed);

/* distill_sample.c: the random stream of one position of sample:N. */
uint64_t distill_sample_key(uint64_t seed, uint64_t record_hash, int window, int position);
/* Draws n tokens with replacement from softmax(logits) (V finite logits)
 * with the stream of key: the d distinct ids in order of first draw with
 * their counts (summing to n) in ids / counts[0 .. d), then n - d entries of
 * count 0 (id = ids[0]). cdf: scratch of V doubles. @return d, and *mass =
 * the teacher probability of the d ids. */
int distill_sample_row(const float *logits, int V, int n, uint64_t key, double *cdf, int32_t *ids,
                       uint8_t *counts, double *mass);
void distill_labelers_free(distill_labelers *l);
/* Labels every window of s to store, from logits (rows, T, V) of the
 * teacher: blob into the slot's arena of the labeler that made it, means into
 * the window. @return 0, or -1 + the first failing labeler's message. */
int distill_labelers_run(distill_labelers *l, distill_slot *s, const float *logits);

/* The writer thread: inserts the labeled windows of submitted slots. */
typedef struct distill_writer {
    labels_db *db;
    distill_slot *slots;
    int next;                        /* slot the writer takes next */
    bool in_txn;
    bool wrote;                      /* a transaction of this run began (meta complete = 0) */
    int txn_rows;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool sync_ready;                 /* mu and cv initialised */
    bool finished;                   /* the reader hands over no more slots */
    bool failed;
    char error[1024];
    /* Counters, written by the writer under mu. */
    uint64_t records, sequences, tokens, blob_bytes;
} distill_writer;

/* @return 0 / -1 + message. */
int distill_writer_init(distill_writer *w, labels_db *db, distill_slot *slots);
/* Starts the writer thread. @return 0 / -1 + message. */
int distill_writer_start(distill_writer *w);
/* Hands slot s (labeled) to the writer. */
void distill_writer_submit(distill_writer *w, distill_slot *s);
/* Waits until slot s is free again. @return 0, or -1 + the writer's message
 * when it failed. */
int distill_writer_wait_free(distill_writer *w, distill_slot *s);
/* Tells the writer no more slots come, waits until it wrote and committed
 * the submitted ones, and joins it.
 * @return 0, or -1 + the writer's message. */
int distill_writer_finish(distill_writer *w);
/* Releases the lock (after finish, or when never started). */
void distill_writer_free(distill_writer *w);
/* Counters read under the lock. */
void distill_writer_counts(distill_writer *w, uint64_t *records, uint64_t *tokens);

/* Total size of the inputs when every one is a plain (uncompressed, not
 * archived) regular file, else 0 = unknown. For the ETA only. */
uint64_t distill_input_bytes(const char *const *inputs, int n);

#endif
