/* distill_run: the distill job -- teacher and database set-up, the main
 * loop (records -> tokens -> windows -> packed batches -> teacher forward ->
 * labels -> writer), progress and the final summary. distill_internal.h
 * describes the stages; labels are made in distill_label.c and stored by
 * distill_writer.c.
 *
 * Resume: for each record the reader asks labels.db (through a connection of
 * its own that never writes) whether it is stored with the same content
 * hash; a changed one is an error. Stored records are still tokenised and
 * packed, so every batch holds what it held in an uninterrupted run, but
 * their rows are not computed again and a batch of stored records only is
 * not run at all. Since the writer commits whole records only, a run killed
 * any number of times ends with exactly the rows of an uninterrupted run. */
#include "distill.h"
#include "distill_internal.h"

#include "nn/checkpoint.h"
#include "base/cli.h"
#include "base/err.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "base/progress.h"
#include "text/tokenizer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct run {
    const distill_options *opt;
    model_config cfg;
    int T, V, B;
    tokenizer *tok;
    int32_t eot;
    labels_db *db;         /* the writer's */
    labels_db *check_db;   /* the reader's, used for lookups only */
    model *m;
    distill_labelers labelers;
    distill_slot slots[DISTILL_SLOTS];
    int cur;               /* slot being filled */
    int cur_record;        /* record entry of the record being placed, -1 = none yet */
    int32_t *seq;          /* tokens of the current record */
    size_t seq_cap;
    distill_writer w;
    bool writer_started;
    progress prog;
    double start, forward_seconds, label_seconds, wait_seconds, setup_seconds;
    uint64_t forward_positions;   /* positions of the windows run through the teacher */
    uint64_t skipped, other_shard, queued;
    bool created_db;    /* the database did not exist before this run */
    uint64_t bytes_read;   /* record bytes, for the progress line */
} run;

static int slot_init(distill_slot *s, int B, int T)
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

static void slot_free(distill_slot *s)
{
    for (int i = 0; i < DISTILL_MAX_LABELERS; i++)
        free(s->blobs[i]);
    mem_free_big(s->tokens);
    mem_free_big(s->pos);
    mem_free_big(s->windows);
    mem_free_big(s->records);
    free(s->strings);
}

static void slot_reset(distill_slot *s, int B, int T)
{
    packer_reset(&s->pk, B, T, s->tokens, s->pos);
    s->n_windows = 0;
    s->n_store = 0;
    s->n_records = 0;
    s->strings_len = 0;
}

static int arena_add(distill_slot *s, const char *text, size_t *offset)
{
    size_t len = strlen(text) + 1;
    TRY(mem_reserve((void **)&s->strings, &s->strings_cap, s->strings_len + len, 1, "batch names"));
    memcpy(s->strings + s->strings_len, text, len);
    *offset = s->strings_len;
    s->strings_len += len;
    return 0;
}

/* Progress counts input bytes (the only total known up front, and only for
 * plain files); the line also shows records and tokens labeled. */
static void show_progress(run *r)
{
    uint64_t records, tokens;
    distill_writer_counts(&r->w, &records, &tokens);
    double dt = time_now() - r->start;
    char extra[128];
    snprintf(extra, sizeof extra, "- %" PRIu64 " records, %" PRIu64 " tokens labeled, %.0f tokens/s",
             records, tokens, dt > 0 ? (double)tokens / dt : 0.0);
    progress_update(&r->prog, r->bytes_read, extra);
}

/* Runs the teacher and the labelers on the current slot, hands it to the
 * writer and moves to the other slot once the writer has released it. */
static int flush(run *r)
{
    distill_slot *s = &r->slots[r->cur];
    if (s->n_store == 0) {
        slot_reset(s, r->B, r->T);
        r->cur_record = -1;
        return 0;
    }
    int rows = packer_rows_used(&s->pk);
    double t0 = time_now();
    const float *logits = model_forward(r->m, s->tokens, s->pos, rows, r->T);
    if (!logits)
        return err_wrap("%s: teacher forward", r->opt->teacher);
    r->forward_seconds += time_now() - t0;
    for (int i = 0; i < s->n_windows; i++)
        r->forward_positions += (uint64_t)s->windows[i].len - 1;
    double t1 = time_now();
    TRY(distill_labelers_run(&r->labelers, s, logits));
    double t2 = time_now();
    r->label_seconds += t2 - t1;
    distill_writer_submit(&r->w, s);
    r->cur = (r->cur + 1) % DISTILL_SLOTS;
    r->cur_record = -1;
    TRY(distill_writer_wait_free(&r->w, &r->slots[r->cur]));
    r->wait_seconds += time_now() - t2;
    slot_reset(&r->slots[r->cur], r->B, r->T);
    show_progress(r);
    return 0;
}

static int place_window(run *r, const corpus_record *rec, bool store, int window,
                        const int32_t *tokens, int len, bool last)
{
    distill_slot *s = &r->slots[r->cur];
    long offset = packer_place(&s->pk, tokens, len);
    if (offset < 0) {
        TRY(flush(r));
        s = &r->slots[r->cur];
        offset = packer_place(&s->pk, tokens, len);
    }
    if (store && r->cur_record < 0) {
        distill_record *d = &s->records[s->n_records];
        TRY(arena_add(s, rec->source, &d->source));
        TRY(arena_add(s, rec->member, &d->member));
        d->index = rec->index;
        d->hash = rec->hash;
        r->cur_record = s->n_records++;
    }
    s->windows[s->n_windows++] = (distill_window){
        .store = store, .record = r->cur_record, .window = window, .offset = offset, .len = len,
        .last = last,
    };
    s->n_store += store;
    return 0;
}

static int on_record(void *ctx, const corpus_record *rec)
{
    run *r = ctx;
    r->bytes_read += rec->len;
    if (r->opt->shard_count > 1 &&
        rec->hash % (uint64_t)r->opt->shard_count != (uint64_t)r->opt->shard_index) {
        r->other_shard++;
        return 0;
    }
    int present;
    TRY(labels_db_has_record(r->check_db, rec->source, rec->member, rec->index, rec->hash,
                             &present));
    r->skipped += (uint64_t)present;
    TRY(mem_reserve((void **)&r->seq, &r->seq_cap, rec->len + 1, sizeof *r->seq, "record tokens"));
    r->seq[0] = r->eot;
    size_t n = 1 + tok_encode(r->tok, rec->data, rec->len, r->seq + 1);
    size_t count = window_count(n, r->T);
    r->cur_record = -1;
    if (count > (size_t)INT32_MAX)
        return err_set("%s: record %" PRIu64 " has too many windows", rec->source, rec->index);
    for (size_t w = 0; w < count; w++) {
        size_t start, len;
        window_span(w, n, r->T, &start, &len);
        TRY(place_window(r, rec, !present, (int)w, r->seq + start, (int)len, w + 1 == count));
    }
    r->queued += (uint64_t)!present;
    return 0;
}

/* Loads the teacher and its tokenizer, opens (or creates) labels.db with the
 * run's meta data, and allocates the model, labelers and slots. */
static int open_teacher(run *r)
{
    const distill_options *o = r->opt;
    labels_meta meta = {0};
    checkpoint ck;
    if (checkpoint_read(o->teacher, &ck) < 0)
        return -1;
    int rc = -1;
    r->cfg = ck.config;
    r->T = ck.config.seq_len;
    r->V = ck.config.vocab;
    r->tok = tok_deserialize(ck.tokenizer, ck.tokenizer_len);
    if (!r->tok) {
        err_wrap("%s: tokenizer", o->teacher);
        goto done;
    }
    if (tok_vocab_size(r->tok) != r->V) {
        err_set("%s: tokenizer has %d tokens but the model's vocabulary is %d", o->teacher,
                tok_vocab_size(r->tok), r->V);
        goto done;
    }
    if (!o->sampled && o->k > r->V) {
        err_set("--topk %d exceeds the teacher's vocabulary of %d tokens", o->k, r->V);
        goto done;
    }
    r->eot = tok_eot(r->tok);
    meta.teacher_hash = ck.hash;
    meta.teacher_config = ck.config;
    meta.tokenizer = ck.tokenizer;
    meta.tokenizer_len = ck.tokenizer_len;
    meta.tokenizer_hash = tok_hash(r->tok);
    meta.k = o->k;
    meta.codec_version =
        softlabel_version_for(o->sampled ? SOFTLABEL_KIND_SAMPLED : SOFTLABEL_KIND_TOPK, r->V);
    snprintf(meta.tool_version, sizeof meta.tool_version, "%s", W2S_VERSION);
    if (o->sampled) {
        snprintf(meta.label_kind, sizeof meta.label_kind, "sample:%d", o->k);
        snprintf(meta.sample_seed, sizeof meta.sample_seed, "%" PRIu64, o->seed);
    } else
        snprintf(meta.label_kind, sizeof meta.label_kind, "topk");
    r->created_db = !file_exists(o->db);
    r->db = labels_db_open_write(o->db, &meta);
    if (!r->db)
        goto done;
    /* labels_db_has_record needs a write handle; this one only reads. */
    r->check_db = labels_db_open_write(o->db, &meta);
    if (!r->check_db)
        goto done;
    r->m = model_create_inference(&r->cfg, r->B, o->threads);
    if (!r->m)
        goto done;
    memcpy(model_params(r->m), ck.params, model_num_params(r->m) * sizeof(float));
    if (distill_labelers_init(&r->labelers, model_threads(r->m), r->V, o->k, r->T, o->sampled,
                              o->seed) < 0)
        goto done;
    for (int i = 0; i < DISTILL_SLOTS; i++)
        if (slot_init(&r->slots[i], r->B, r->T) < 0)
            goto done;
    if (!o->quiet)
        fprintf(stderr,
                "distill: teacher %s (V=%d L=%d H=%d C=%d T=%d, hash %016" PRIx64 "), "
                "tokenizer %016" PRIx64 ", db %s, labels %s:%d, batch=%d, threads=%d, records=%s, "
                "shard %d/%d, %d input%s\n",
                o->teacher, r->V, r->cfg.layers, r->cfg.heads, r->cfg.channels, r->T,
                ck.hash, meta.tokenizer_hash, o->db, o->sampled ? "sample" : "topk", o->k, r->B,
                model_threads(r->m),
                o->records_text, o->shard_index, o->shard_count, o->n_inputs,
                o->n_inputs == 1 ? "" : "s");
    rc = 0;
done:
    checkpoint_free(&ck);
    return rc;
}

static void print_summary(run *r, double seconds)
{
    const distill_options *o = r->opt;
    distill_writer *w = &r->w;
    if (!o->quiet) {
        if (w->records == 0 && r->queued == 0)
            fprintf(stderr, "distill: nothing to do: %" PRIu64 " records already labeled\n",
                    r->skipped);
        else
            fprintf(stderr,
                    "distill: %" PRIu64 " records, %" PRIu64 " sequences, %" PRIu64
                    " tokens in %.1f s (%.0f tokens/s; teacher forward %.0f tokens/s), "
                    "%.1f blob bytes per position; %" PRIu64 " already labeled\n",
                    w->records, w->sequences, w->tokens, seconds,
                    seconds > 0 ? (double)w->tokens / seconds : 0.0,
                    r->forward_seconds > 0 ? (double)r->forward_positions / r->forward_seconds : 0.0,
                    w->tokens ? (double)w->blob_bytes / (double)w->tokens : 0.0, r->skipped);
    }
    if (o->json)
        printf("{\"records\": %" PRIu64 ", \"sequences\": %" PRIu64 ", \"tokens\": %" PRIu64
               ", \"seconds\": %.3f, \"blob_bytes\": %" PRIu64 ", \"skipped\": %" PRIu64
               ", \"other_shard\": %" PRIu64 ", \"setup_seconds\": %.3f, \"forward_seconds\": %.3f"
               ", \"label_seconds\": %.3f, \"writer_wait_seconds\": %.3f}\n",
               w->records, w->sequences, w->tokens, seconds, w->blob_bytes, r->skipped,
               r->other_shard, r->setup_seconds, r->forward_seconds, r->label_seconds,
               r->wait_seconds);
}

/* Removes a database this run created and never stored a row in, with its
 * WAL and shared-memory files, so a failed first run leaves nothing behind. */
static void remove_database(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        char name[4096];
        snprintf(name, sizeof name, "%s%s", path, suffixes[i]);
        remove(name);
    }
}

int distill_run(const distill_options *opt)
{
    run r = {.opt = opt, .B = opt->batch, .cur_record = -1};
    int rc = -1;
    r.start = time_now();
    if (open_teacher(&r) < 0)
        goto done;
    if (distill_writer_init(&r.w, r.db, r.slots) < 0)
        goto done;
    if (distill_writer_start(&r.w) < 0)
        goto done;
    r.writer_started = true;
    r.setup_seconds = time_now() - r.start;
    progress_start(&r.prog, "distill", distill_input_bytes(opt->inputs, opt->n_inputs), "bytes",
                   opt->quiet);
    for (int i = 0; i < opt->n_inputs; i++)
        if (corpus_read(opt->inputs[i], &opt->records, on_record, &r) < 0)
            goto done;
    if (r.queued + r.skipped + r.other_shard == 0) {
        err_set("%s%s: no records (empty corpus)", opt->inputs[0], opt->n_inputs > 1 ? " ..." : "");
        goto done;
    }
    if (flush(&r) < 0)
        goto done;
    rc = 0;
done:
    if (r.writer_started) {
        /* After a reader error the writer still stores the batches it was
         * given; it commits only whole records. */
        char reader_error[1024];
        snprintf(reader_error, sizeof reader_error, "%s", err_message());
        int wrc = distill_writer_finish(&r.w);
        if (rc == 0)
            rc = wrc;
        else
            err_set("%s", reader_error);
        progress_finish(&r.prog);
    }
    distill_writer_free(&r.w);
    labels_db_close(r.check_db);
    /* Failed runs too: what they stored stays, as one file again. */
    if (r.db && labels_db_seal(r.db) < 0 && rc == 0)
        rc = -1;
    if (labels_db_close(r.db) < 0 && rc == 0)
        rc = -1;
    if (rc < 0 && r.created_db && r.w.records == 0)
        remove_database(opt->db);
    if (rc == 0)
        print_summary(&r, time_now() - r.start);
    for (int i = 0; i < DISTILL_SLOTS; i++)
        slot_free(&r.slots[i]);
    distill_labelers_free(&r.labelers);
    model_free(r.m);
    free(r.seq);
    tok_free(r.tok);
    return rc;
}
