/* distill_writer: the last stage of a distill run -- a thread that inserts
 * the labeled windows of each submitted batch slot into labels.db, in slot
 * order (see distill_internal.h), while the main thread works on the other
 * slot.
 *
 * Crash safety and grain: a transaction is committed after every slot (and
 * within a slot after COMMIT_ROWS rows), at any window, also inside a
 * record, so a kill loses at most the batches in flight, even in a record
 * of millions of windows. Rows go in record order and window order, so
 * what a kill leaves of a record is its windows 0 .. m - 1, where a rerun
 * goes on (labels_db_stored_windows). */
#include "distill_internal.h"

#include "base/err.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

enum { COMMIT_ROWS = 512 };

int distill_writer_init(distill_writer *w, labels_db *db, distill_slot *slots)
{
    memset(w, 0, sizeof *w);
    w->db = db;
    w->slots = slots;
    if (pthread_mutex_init(&w->mu, NULL) != 0)
        return err_set("distill: cannot create the writer's lock");
    if (pthread_cond_init(&w->cv, NULL) != 0) {
        pthread_mutex_destroy(&w->mu);
        return err_set("distill: cannot create the writer's lock");
    }
    w->sync_ready = true;
    return 0;
}

void distill_writer_free(distill_writer *w)
{
    if (w->sync_ready) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        w->sync_ready = false;
    }
}

static int commit(distill_writer *w)
{
    if (!w->in_txn)
        return 0;
    TRY(labels_db_commit(w->db));
    w->in_txn = false;
    return 0;
}

static int write_window(distill_writer *w, const distill_slot *s, const distill_window *win)
{
    const distill_record *r = &s->records[win->record];
    labels_row row = {
        .source = s->strings + r->source, .member = s->strings + r->member,
        .record_index = r->index, .window = win->window, .hash = r->hash,
        .n_tokens = win->len, .tokens = s->tokens + win->offset,
        .topk = s->blobs[win->labeler] + win->blob, .topk_len = win->blob_len,
        .mean_nll = win->mean_nll, .mean_entropy = win->mean_entropy,
        .mean_tail = win->mean_tail, .mean_top1 = win->mean_top1,
    };
    if (!w->in_txn) {
        TRY(labels_db_begin(w->db));
        w->in_txn = true;
        w->txn_rows = 0;
        /* with the first rows: the database holds part of the run */
        if (!w->wrote && labels_db_set_complete(w->db, 0) < 0)
            return -1;
        w->wrote = true;
    }
    TRY(labels_db_insert(w->db, &row));
    w->txn_rows++;
    pthread_mutex_lock(&w->mu);
    w->sequences++;
    w->tokens += (uint64_t)win->len - 1;
    w->blob_bytes += win->blob_len;
    w->records += win->last;
    pthread_mutex_unlock(&w->mu);
    return w->txn_rows >= COMMIT_ROWS ? commit(w) : 0;
}

static int write_slot(distill_writer *w, const distill_slot *s)
{
    for (int i = 0; i < s->n_windows; i++)
        if (s->windows[i].store)
            TRY(write_window(w, s, &s->windows[i]));
    return commit(w);
}

static void *writer_main(void *arg)
{
    distill_writer *w = arg;
    int rc = 0;
    for (;;) {
        distill_slot *s = &w->slots[w->next];
        pthread_mutex_lock(&w->mu);
        while (!s->full && !w->finished)
            pthread_cond_wait(&w->cv, &w->mu);
        bool have = s->full;
        pthread_mutex_unlock(&w->mu);
        if (!have)
            break;
        rc = write_slot(w, s);
        if (rc < 0)
            break;
        pthread_mutex_lock(&w->mu);
        s->full = false;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        w->next = (w->next + 1) % DISTILL_SLOTS;
    }
    /* After a failed insert the open transaction rolls back when the
     * database is closed; every slot before it is committed. */
    if (rc < 0) {
        pthread_mutex_lock(&w->mu);
        snprintf(w->error, sizeof w->error, "%s", err_message());
        w->failed = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    return NULL;
}

int distill_writer_start(distill_writer *w)
{
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
        return err_set("distill: cannot start the writer thread");
    pthread_setname_np(w->thread, "distill-writer");
    return 0;
}

void distill_writer_submit(distill_writer *w, distill_slot *s)
{
    pthread_mutex_lock(&w->mu);
    s->full = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int distill_writer_wait_free(distill_writer *w, distill_slot *s)
{
    pthread_mutex_lock(&w->mu);
    while (s->full && !w->failed)
        pthread_cond_wait(&w->cv, &w->mu);
    bool failed = w->failed;
    pthread_mutex_unlock(&w->mu);
    if (failed)
        return err_set("%s", w->error);
    return 0;
}

int distill_writer_finish(distill_writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->finished = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    if (w->failed)
        return err_set("%s", w->error);
    return 0;
}

void distill_writer_counts(distill_writer *w, uint64_t *records, uint64_t *tokens)
{
    pthread_mutex_lock(&w->mu);
    *records = w->records;
    *tokens = w->tokens;
    pthread_mutex_unlock(&w->mu);
}
