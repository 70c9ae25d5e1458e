/* distill_collect: from corpus records to the windows of a batch (see
 * distill_job.h). Each record of this shard is looked up in labels.db
 * (through the reader's own connection), becomes [EOT] + its tokens, and is
 * cut into windows (common/text/window.h) that are packed into the current
 * slot; a window that does not fit has the slot labeled first
 * (distill_label_batch) and opens the next one.
 *
 * Stored windows are packed too, only marked not to store, so every batch
 * holds what it held in an uninterrupted run (distill_internal.h says why
 * that matters). A record may be stored in part (the writer commits between
 * its windows): its windows from the first one missing on are stored. A
 * record stored with another content hash is an error. */
#include "distill_job.h"

#include "base/err.h"
#include "base/mem.h"

#include <inttypes.h>

/* Places one window in the current slot, labeling the slot first when it is
 * full; the record gets an entry in the slot with its first window to store
 * there. */
static int place_window(distill_job *j, const corpus_record *rec, bool store, int window,
                        const int32_t *tokens, int len, bool last)
{
    distill_slot *s = &j->slots[j->cur];
    long offset = packer_place(&s->pk, tokens, len);
    if (offset < 0) {
        TRY(distill_label_batch(j));
        j->cur_record = -1;   /* the new slot holds no entry of this record yet */
        s = &j->slots[j->cur];
        offset = packer_place(&s->pk, tokens, len);
    }
    if (store && j->cur_record < 0) {
        distill_record *d = &s->records[s->n_records];
        TRY(distill_slot_add_string(s, rec->source, &d->source));
        TRY(distill_slot_add_string(s, rec->member, &d->member));
        d->index = rec->index;
        d->hash = rec->hash;
        j->cur_record = s->n_records++;
    }
    s->windows[s->n_windows++] = (distill_window){
        .store = store, .record = j->cur_record, .window = window, .offset = offset, .len = len,
        .last = last,
    };
    s->n_store += store;
    return 0;
}

int distill_collect_record(void *ctx, const corpus_record *rec)
{
    distill_job *j = ctx;
    const distill_options *o = j->opt;
    j->bytes_read += rec->len;
    if (o->shard_count > 1 && rec->hash % (uint64_t)o->shard_count != (uint64_t)o->shard_index) {
        j->other_shard++;
        return 0;
    }
    int64_t stored;
    TRY(labels_db_stored_windows(j->lookup_db, rec->source, rec->member, rec->index, rec->hash,
                                 &stored));
    TRY(mem_reserve((void **)&j->seq, &j->seq_cap, rec->len + 1, sizeof *j->seq, "record tokens"));
    j->seq[0] = j->eot;
    size_t n = 1 + tok_encode(j->tok, rec->data, rec->len, j->seq + 1);
    size_t count = window_count(n, j->T);
    j->cur_record = -1;
    if (count > (size_t)INT32_MAX)
        return err_set("%s: record %" PRIu64 " has too many windows", rec->source, rec->index);
    for (size_t w = 0; w < count; w++) {
        size_t start, len;
        window_span(w, n, j->T, &start, &len);
        TRY(place_window(j, rec, (int64_t)w >= stored, (int)w, j->seq + start, (int)len,
                         w + 1 == count));
    }
    bool complete = (uint64_t)stored >= count;
    j->skipped += complete;
    j->queued += !complete;
    return 0;
}
