/* label_reader: prefetching, deterministic reader of labels.db; see
 * label_reader.h. One producer thread fills a ring of RING_SLOTS batches;
 * the trainer consumes them in order. The producer owns the database handle
 * and the codec after start; the consumer only touches ready slots. */
#include "label_reader.h"

#include "base/err.h"
#include "base/mem.h"
#include "labels/softlabel.h"
#include "targets.h"
#include "text/window.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RING_SLOTS = 3 };

typedef struct slot {
    label_batch b;
    int failed;
    char error[512];
} slot;

struct label_reader {
    char *path;
    labels_db *db;
    labels_meta meta;
    int64_t *ids;
    size_t n;
    uint64_t est_tokens;
    /* set by start */
    int rows, T, V, decode, k;
    uint64_t seed;
    uint32_t *perm;
    train_cursor cur;
    softlabel_codec *codec;
    int32_t *row_tokens;       /* the row read but not yet placed */
    int row_len;               /* 0 when no row is pending */
    unsigned char *blob;
    size_t blob_cap, blob_len;
    slot ring[RING_SLOTS];
    int head, tail, ready;     /* producer writes ring[head], consumer reads ring[tail] */
    int stop, started;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

label_reader *label_reader_open(const char *path, const char *where, double where_seconds)
{
    label_reader *r = mem_calloc(1, sizeof *r, "label reader");
    if (!r)
        return NULL;
    r->path = mem_strdup(path);
    if (!r->path)
        goto fail;
    r->db = labels_db_open_read(path);
    if (!r->db || labels_db_meta(r->db, &r->meta) < 0)
        goto fail;
    if (r->meta.k < 1 || r->meta.k > SOFTLABEL_MAX_K) {
        err_set("%s: k = %d is out of range", path, r->meta.k);
        goto fail;
    }
    if (labels_db_select_ids(r->db, where, where_seconds, &r->ids, &r->n) < 0) {
        if (where)
            err_wrap("--labels-where");
        goto fail;
    }
    if (r->n == 0) {
        err_set("%s: no labeled sequences%s%s", path, where ? " match " : "", where ? where : "");
        goto fail;
    }
    if (r->n > UINT32_MAX) {
        err_set("%s: more than 2^32 sequences selected", path);
        goto fail;
    }
    int64_t sequences, tokens;
    if (labels_db_count(r->db, &sequences, &tokens) < 0)
        goto fail;
    r->est_tokens = sequences > 0 ? (uint64_t)((double)tokens * (double)r->n / (double)sequences) : 0;
    return r;
fail:
    label_reader_close(r);
    return NULL;
}

const labels_meta *label_reader_meta(const label_reader *r)
{
    return &r->meta;
}

size_t label_reader_rows(const label_reader *r)
{
    return r->n;
}

uint64_t label_reader_tokens(const label_reader *r)
{
    return r->est_tokens;
}

static void advance(label_reader *r)
{
    train_cursor_advance(&r->cur, r->perm, r->n, r->seed, TRAIN_STREAM_KD);
}

/* Reads the row at the cursor into row_tokens / blob (skipping rows too short
 * to predict anything). */
static int read_pending(label_reader *r)
{
    while (r->row_len == 0) {
        int64_t id = r->ids[r->perm[r->cur.index]];
        int n;
        TRY(labels_db_read(r->db, id, r->row_tokens, r->T, &n, &r->blob, &r->blob_cap, &r->blob_len));
        for (int i = 0; i < n; i++)
            if (r->row_tokens[i] < 0 || r->row_tokens[i] >= r->V)
                return err_set("%s: seq_id %lld: token %d outside the vocabulary of %d", r->path,
                               (long long)id, r->row_tokens[i], r->V);
        if (n >= 2)
            r->row_len = n;
        else
            advance(r);
    }
    return 0;
}

static int place_pending(label_reader *r, label_batch *b, packer *p, int *placed)
{
    long off = targets_place_window(p, b->targets, r->row_tokens, r->row_len);
    *placed = off >= 0;
    if (off < 0)
        return 0;
    int n_pos = r->row_len - 1;
    if (r->decode) {
        int got_pos, got_k;
        int64_t id = r->ids[r->perm[r->cur.index]];
        if (softlabel_decode(r->codec, r->blob, r->blob_len, r->V, n_pos, r->k,
                             b->ids + off * r->k, b->logprobs + off * r->k, b->tail + off,
                             &got_pos, &got_k) < 0)
            return err_wrap("%s: seq_id %lld", r->path, (long long)id);
        if (got_pos != n_pos || got_k != r->k)
            return err_set("%s: seq_id %lld: soft labels hold %d positions of k = %d, expected %d of k = %d",
                           r->path, (long long)id, got_pos, got_k, n_pos, r->k);
    }
    b->n_positions += n_pos;
    b->n_tokens += r->row_len;
    r->row_len = 0;
    advance(r);
    return 0;
}

static int fill(label_reader *r, label_batch *b)
{
    packer p;
    long cells = (long)r->rows * r->T;
    packer_reset(&p, r->rows, r->T, b->tokens, b->pos);
    targets_clear(b->targets, cells);
    b->n_positions = b->n_tokens = 0;
    for (;;) {
        int placed;
        TRY(read_pending(r));
        TRY(place_pending(r, b, &p, &placed));
        if (!placed)
            break;
    }
    b->after = r->cur;
    return 0;
}

static void *producer(void *arg)
{
    label_reader *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        while (!r->stop && r->ready == RING_SLOTS)
            pthread_cond_wait(&r->cond, &r->lock);
        int stop = r->stop;
        slot *s = &r->ring[r->head];
        pthread_mutex_unlock(&r->lock);
        if (stop)
            break;
        s->failed = fill(r, &s->b) < 0;
        if (s->failed)
            snprintf(s->error, sizeof s->error, "%s", err_message());
        pthread_mutex_lock(&r->lock);
        r->head = (r->head + 1) % RING_SLOTS;
        r->ready++;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
        if (s->failed)
            break;
    }
    return NULL;
}

static int alloc_slot(label_reader *r, label_batch *b)
{
    size_t cells = (size_t)r->rows * (size_t)r->T;
    b->tokens = mem_alloc_big(sizeof *b->tokens * cells * 3, "label batch");
    if (!b->tokens)
        return -1;
    b->pos = b->tokens + cells;
    b->targets = b->tokens + 2 * cells;
    if (!r->decode)
        return 0;
    b->ids = mem_alloc_big(sizeof *b->ids * cells * (size_t)r->k, "label batch top-k ids");
    b->logprobs = mem_alloc_big(sizeof *b->logprobs * cells * (size_t)r->k, "label batch log-probs");
    b->tail = mem_alloc_big(sizeof *b->tail * cells, "label batch tails");
    return b->ids && b->logprobs && b->tail ? 0 : -1;
}

int label_reader_start(label_reader *r, int rows, int T, int V, int decode, uint64_t seed,
                       train_cursor start)
{
    r->rows = rows;
    r->T = T;
    r->V = V;
    r->decode = decode;
    r->k = r->meta.k;
    r->seed = seed;
    if (start.index >= r->n)
        return err_set("%s: resume position %llu is beyond the %zu selected rows (database changed?)",
                       r->path, (unsigned long long)start.index, r->n);
    r->cur = start;
    r->perm = mem_calloc(r->n, sizeof *r->perm, "label order");
    r->row_tokens = mem_calloc((size_t)T, sizeof *r->row_tokens, "label row");
    r->codec = decode ? softlabel_codec_create() : NULL;
    if (!r->perm || !r->row_tokens || (decode && !r->codec))
        return -1;
    for (int i = 0; i < RING_SLOTS; i++)
        TRY(alloc_slot(r, &r->ring[i].b));
    train_stream_permutation(r->perm, r->n, seed, TRAIN_STREAM_KD, start.epoch);
    if (pthread_mutex_init(&r->lock, NULL) || pthread_cond_init(&r->cond, NULL))
        return err_set("%s: cannot create the reader's lock", r->path);
    if (pthread_create(&r->thread, NULL, producer, r)) {
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        return err_set("%s: cannot start the reader thread", r->path);
    }
    r->started = 1;
    return 0;
}

const label_batch *label_reader_next(label_reader *r)
{
    pthread_mutex_lock(&r->lock);
    while (r->ready == 0)
        pthread_cond_wait(&r->cond, &r->lock);
    slot *s = &r->ring[r->tail];
    pthread_mutex_unlock(&r->lock);
    if (s->failed) {
        err_set("%s", s->error);
        return NULL;
    }
    return &s->b;
}

void label_reader_release(label_reader *r)
{
    pthread_mutex_lock(&r->lock);
    r->tail = (r->tail + 1) % RING_SLOTS;
    r->ready--;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

void label_reader_close(label_reader *r)
{
    if (!r)
        return;
    if (r->started) {
        pthread_mutex_lock(&r->lock);
        r->stop = 1;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->thread, NULL);
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
    }
    for (int i = 0; i < RING_SLOTS; i++) {
        mem_free_big(r->ring[i].b.tokens);
        mem_free_big(r->ring[i].b.ids);
        mem_free_big(r->ring[i].b.logprobs);
        mem_free_big(r->ring[i].b.tail);
    }
    softlabel_codec_free(r->codec);
    labels_db_close(r->db);
    labels_meta_free(&r->meta);
    free(r->ids);
    free(r->perm);
    free(r->row_tokens);
    free(r->blob);
    free(r->path);
    free(r);
}
