/* distill_batch: the batch slots of a distill run and what happens to a
 * full one (see distill_job.h): the teacher forward over its packed rows,
 * the labelers on the logits, the hand-over to the writer thread, and the
 * wait for the other slot, which the writer may still be inserting. The
 * time of each part is added up for the summary. */
#include "distill_job.h"

#include "base/err.h"
#include "base/mem.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int distill_slot_init(distill_slot *s, int B, int T)
{
    size_t cells = (size_t)B * (size_t)T, room = cells / 2 + 1;
    s->tokens = mem_alloc_big(cells * sizeof *s->tokens, "batch tokens");
    s->pos = mem_alloc_big(cells * sizeof *s->pos, "batch positions");
    s->windows = mem_alloc_big(room * sizeof *s->windows, "batch windows");
    s->records = mem_alloc_big(room * sizeof *s->records, "batch records");
    if (!s->tokens || !s->pos || !s->windows || !s->records ||
        mem_reserve((void **)&s->strings, &s->strings_cap, 4096, 1, "batch names") < 0)
        return -1;
    packer_reset(&s->pk, B, T, s->tokens, s->pos);
    return 0;
}

void distill_slot_free(distill_slot *s)
{
    for (int i = 0; i < DISTILL_MAX_LABELERS; i++)
        free(s->blobs[i]);
    mem_free_big(s->tokens);
    mem_free_big(s->pos);
    mem_free_big(s->windows);
    mem_free_big(s->records);
    free(s->strings);
}

int distill_slot_add_string(distill_slot *s, const char *text, size_t *offset)
{
    size_t len = strlen(text) + 1;
    TRY(mem_reserve((void **)&s->strings, &s->strings_cap, s->strings_len + len, 1, "batch names"));
    memcpy(s->strings + s->strings_len, text, len);
    *offset = s->strings_len;
    s->strings_len += len;
    return 0;
}

static void slot_empty(distill_slot *s, int B, int T)
{
    packer_reset(&s->pk, B, T, s->tokens, s->pos);
    s->n_windows = 0;
    s->n_store = 0;
    s->n_records = 0;
    s->strings_len = 0;
}

/* The teacher's logits (rows, T, V) of the slot's packed rows. */
static const float *run_teacher_on_batch(distill_job *j, const distill_slot *s)
{
    double t0 = time_now();
    const float *logits = model_forward(j->teacher, s->tokens, s->pos, packer_rows_used(&s->pk), j->T);
    if (!logits) {
        err_wrap("%s: teacher forward", j->opt->teacher);
        return NULL;
    }
    j->forward_seconds += time_now() - t0;
    for (int i = 0; i < s->n_windows; i++)
        j->forward_positions += (uint64_t)s->windows[i].len - 1;
    return logits;
}

/* Progress counts input bytes (the only total known up front, and only for
 * plain files); the line also shows records and tokens labeled. */
static void show_progress(distill_job *j)
{
    uint64_t records, tokens;
    distill_writer_counts(&j->writer, &records, &tokens);
    double dt = time_now() - j->start;
    char extra[128];
    snprintf(extra, sizeof extra, "- %" PRIu64 " records, %" PRIu64 " tokens labeled, %.0f tokens/s",
             records, tokens, dt > 0 ? (double)tokens / dt : 0.0);
    progress_update(&j->prog, j->bytes_read, extra);
}

int distill_label_batch(distill_job *j)
{
    distill_slot *s = &j->slots[j->cur];
    if (s->n_store == 0) {
        slot_empty(s, j->B, j->T);
        return 0;
    }
    const float *logits = run_teacher_on_batch(j, s);
    if (!logits)
        return -1;
    double t1 = time_now();
    TRY(distill_labelers_run(&j->labelers, s, logits));
    double t2 = time_now();
    j->label_seconds += t2 - t1;
    distill_writer_submit(&j->writer, s);
    j->cur = (j->cur + 1) % DISTILL_SLOTS;
    TRY(distill_writer_wait_free(&j->writer, &j->slots[j->cur]));
    j->wait_seconds += time_now() - t2;
    slot_empty(&j->slots[j->cur], j->B, j->T);
    show_progress(j);
    return 0;
}
