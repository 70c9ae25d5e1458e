/* distill_label: from the teacher's logits of a batch slot to each window's
 * labels (see distill_internal.h): per position the top-k ids, their
 * log-probs and the statistics of common/topk.h (the NLL is that of the
 * window's actual next token), then one blob per window (softlabel_encode)
 * and the window's mean statistics. With sample:N, per position N draws
 * (distill_sample.c) stored as ids with counts (softlabel_encode_sampled);
 * the statistics are those of top-1, except the tail mass: the teacher mass
 * outside the distinct ids drawn.
 *
 * The windows to store are split into one contiguous range per labeler with
 * about equal numbers of positions; a window's labels depend only on its own
 * logits, so the split (and the thread count) never changes a stored byte. */
#include "distill_internal.h"

#include "base/err.h"
#include "base/mem.h"
#include "nn/topk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int distill_labelers_init(distill_labelers *l, int threads, int V, int k, int T, bool sampled,
                          uint64_t seed)
{
    memset(l, 0, sizeof *l);
    int n = threads > 0 ? threads : parallel_cores();
    l->n = n < DISTILL_MAX_LABELERS ? n : DISTILL_MAX_LABELERS;
    l->V = V;
    l->k = k;
    l->T = T;
    l->sampled = sampled;
    l->seed = seed;
    size_t entries = (size_t)(T - 1) * (size_t)k;
    for (int i = 0; i < l->n; i++) {
        distill_labeler *b = &l->each[i];
        b->codec = softlabel_codec_create();
        b->scratch = mem_alloc_big(topk_scratch_bytes(V), "top-k scratch");
        b->ids = mem_alloc_big(entries * sizeof *b->ids, "top-k ids");
        b->logprobs = mem_alloc_big(entries * sizeof *b->logprobs, "top-k log-probs");
        if (sampled) {
            b->counts = mem_alloc_big(entries, "draw counts");
            b->cdf = mem_alloc_big((size_t)V * sizeof *b->cdf, "draw sums");
        }
        if (!b->codec || !b->scratch || !b->ids || !b->logprobs || (sampled && (!b->counts || !b->cdf)) ||
            mem_reserve((void **)&b->blob, &b->blob_cap, entries * 8 + 1024, 1, "label blob") < 0) {
            distill_labelers_free(l);
            return -1;
        }
    }
    l->pool = parallel_create(l->n);
    if (!l->pool) {
        distill_labelers_free(l);
        return -1;
    }
    return 0;
}

void distill_labelers_free(distill_labelers *l)
{
    parallel_free(l->pool);
    l->pool = NULL;
    for (int i = 0; i < DISTILL_MAX_LABELERS; i++) {
        distill_labeler *b = &l->each[i];
        softlabel_codec_free(b->codec);
        mem_free_big(b->scratch);
        mem_free_big(b->ids);
        mem_free_big(b->logprobs);
        mem_free_big(b->counts);
        mem_free_big(b->cdf);
        free(b->blob);
        memset(b, 0, sizeof *b);
    }
}

/* Labels one window into labeler `me`'s buffers and the slot's arena. */
static int label_window(distill_labelers *l, int me, distill_window *win)
{
    distill_labeler *b = &l->each[me];
    distill_slot *s = l->slot;
    int n_pos = win->len - 1, k = l->k;
    double nll = 0, entropy = 0, tail = 0, top1 = 0;
    const uint64_t hash = s->records[win->record].hash;
    for (int p = 0; p < n_pos; p++) {
        const float *row = l->logits + (size_t)(win->offset + p) * (size_t)l->V;
        topk_stats st;
        /* sampled: top-1 for the statistics (and the check for non-finite logits) */
        if (topk_row(row, l->V, l->sampled ? 1 : k, s->tokens[win->offset + p + 1], b->scratch,
                     b->ids + (size_t)p * k, b->logprobs + (size_t)p * k, &st) < 0) {
            const distill_record *r = &s->records[win->record];
            const char *member = s->strings + r->member;
            return err_wrap("%s%s%s: record %llu, window %d, position %d: teacher",
                            s->strings + r->source, *member ? ":" : "", member,
                            (unsigned long long)r->index, win->window, p);
        }
        if (l->sampled) {
            double mass;
            distill_sample_row(row, l->V, k, distill_sample_key(l->seed, hash, win->window, p), b->cdf,
                               b->ids + (size_t)p * k, b->counts + (size_t)p * k, &mass);
            st.tail = mass < 1.0 ? 1.0 - mass : 0.0;
        }
        nll += st.nll;
        entropy += st.entropy;
        tail += st.tail;
        top1 += st.top1;
    }
    size_t len;
    if (l->sampled)
        TRY(softlabel_encode_sampled(b->codec, b->ids, b->counts, n_pos, k, l->V, &b->blob, &b->blob_cap,
                                     &len));
    else
        TRY(softlabel_encode(b->codec, b->ids, b->logprobs, n_pos, k, l->V, &b->blob, &b->blob_cap,
                             &len));
    TRY(mem_reserve((void **)&s->blobs[me], &s->blobs_cap[me], s->blobs_len[me] + len, 1,
                    "label blobs"));
    memcpy(s->blobs[me] + s->blobs_len[me], b->blob, len);
    win->labeler = me;
    win->blob = s->blobs_len[me];
    win->blob_len = len;
    s->blobs_len[me] += len;
    win->mean_nll = nll / n_pos;
    win->mean_entropy = entropy / n_pos;
    win->mean_tail = tail / n_pos;
    win->mean_top1 = top1 / n_pos;
    return 0;
}

/* Body of the parallel region: window i goes to the labeler whose share of
 * the positions holds the window's first position. */
static void label_range(void *ctx, int tid, int nthreads)
{
    distill_labelers *l = ctx;
    distill_slot *s = l->slot;
    long total = 0;
    for (int i = 0; i < s->n_windows; i++)
        total += s->windows[i].store ? s->windows[i].len - 1 : 0;
    long before = 0;
    for (int i = 0; i < s->n_windows; i++) {
        distill_window *win = &s->windows[i];
        if (!win->store)
            continue;
        int owner = (int)(before * nthreads / total);
        before += win->len - 1;
        if (owner != tid)
            continue;
        if (label_window(l, tid, win) < 0) {
            distill_labeler *b = &l->each[tid];
            snprintf(b->error, sizeof b->error, "%s", err_message());
            b->failed = 1;
            return;
        }
    }
}

int distill_labelers_run(distill_labelers *l, distill_slot *s, const float *logits)
{
    l->slot = s;
    l->logits = logits;
    for (int i = 0; i < l->n; i++) {
        l->each[i].failed = 0;
        s->blobs_len[i] = 0;
    }
    parallel_run(l->pool, label_range, l);
    for (int i = 0; i < l->n; i++)
        if (l->each[i].failed)
            return err_set("%s", l->each[i].error);
    return 0;
}
