/* gt_batch: epoch-shuffled, next-fit packed batches of in-memory windows;
 * see gt_batch.h. */
#include "gt_batch.h"

#include "base/mem.h"
#include "targets.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int gt_sampler_init(gt_sampler *s, const gt_windows *w, uint64_t seed, int stream, train_cursor start)
{
    memset(s, 0, sizeof *s);
    s->w = w;
    s->seed = seed;
    s->stream = stream;
    s->cur = start;
    s->perm = mem_calloc(w->n, sizeof *s->perm, "window order");
    if (!s->perm)
        return -1;
    train_stream_permutation(s->perm, w->n, seed, stream, start.epoch);
    return 0;
}

void gt_sampler_free(gt_sampler *s)
{
    free(s->perm);
    s->perm = NULL;
}

long gt_sampler_fill(gt_sampler *s, packer *p, int32_t *targets, long *n_tokens)
{
    const gt_windows *w = s->w;
    long n_targets = 0;
    *n_tokens = 0;
    targets_clear(targets, (long)p->rows * p->T);
    for (;;) {
        uint32_t win = s->perm[s->cur.index];
        int len = w->len[win];
        if (targets_place_window(p, targets, w->tokens + w->start[win], len) < 0)
            break;
        n_targets += len - 1;
        *n_tokens += len;
        train_cursor_advance(&s->cur, s->perm, w->n, s->seed, s->stream);
    }
    return n_targets;
}

long gt_sampler_count_steps(const gt_windows *w, uint64_t seed, int stream, int rows, int T,
                            double epochs)
{
    gt_sampler s;
    long steps = -1;
    size_t cells = (size_t)rows * (size_t)T;
    int32_t *tokens = mem_alloc(3 * cells * sizeof *tokens, "batch");
    if (!tokens)
        return -1;
    if (gt_sampler_init(&s, w, seed, stream, (train_cursor){0, 0}) < 0)
        goto done;
    double want = ceil(epochs * (double)w->n);
    steps = 0;
    while ((double)(s.cur.epoch * w->n + s.cur.index) < want || steps == 0) {
        packer p;
        long n_tokens;
        packer_reset(&p, rows, T, tokens, tokens + cells);
        gt_sampler_fill(&s, &p, tokens + 2 * cells, &n_tokens);
        steps++;
    }
    gt_sampler_free(&s);
done:
    free(tokens);
    return steps;
}
