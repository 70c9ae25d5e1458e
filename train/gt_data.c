/* gt_data: in-memory text sets and their windows; see gt_data.h. */
#include "gt_data.h"

#include "base/err.h"
#include "base/mem.h"
#include "text/window.h"

#include <stdlib.h>
#include <string.h>

static int append_record(void *ctx, const corpus_record *rec)
{
    gt_texts *t = ctx;
    TRY(mem_reserve((void **)&t->bytes, &t->cap, t->len + rec->len, 1, "text records"));
    TRY(mem_reserve((void **)&t->ends, &t->ends_cap, t->n + 1, sizeof *t->ends, "record list"));
    memcpy(t->bytes + t->len, rec->data, rec->len);
    t->len += rec->len;
    t->ends[t->n++] = t->len;
    return 0;
}

int gt_texts_load(gt_texts *t, const char *const *paths, int n_paths, const record_spec *spec)
{
    for (int i = 0; i < n_paths; i++)
        TRY(corpus_read(paths[i], spec, append_record, t));
    return 0;
}

void gt_texts_free(gt_texts *t)
{
    free(t->bytes);
    free(t->ends);
    memset(t, 0, sizeof *t);
}

int gt_windows_build(gt_windows *w, const gt_texts *t, tokenizer *tok, int T)
{
    memset(w, 0, sizeof *w);
    w->T = T;
    w->bytes = t->len;
    /* encode() emits at most one id per byte: one EOT per record on top */
    w->tokens = mem_calloc(t->len + t->n + 1, sizeof *w->tokens, "tokens");
    if (!w->tokens)
        return -1;
    size_t start_cap = 0, len_cap = 0;
    for (size_t r = 0; r < t->n; r++) {
        size_t begin = r ? t->ends[r - 1] : 0, first = w->n_tokens;
        w->tokens[w->n_tokens++] = tok_eot(tok);
        w->n_tokens += tok_encode(tok, t->bytes + begin, t->ends[r] - begin, w->tokens + w->n_tokens);
        size_t count = window_count(w->n_tokens - first, T);
        if (mem_reserve((void **)&w->start, &start_cap, w->n + count, sizeof *w->start, "windows") < 0 ||
            mem_reserve((void **)&w->len, &len_cap, w->n + count, sizeof *w->len, "windows") < 0)
            goto fail;
        for (size_t i = 0; i < count; i++) {
            size_t s, l;
            window_span(i, w->n_tokens - first, T, &s, &l);
            w->start[w->n] = first + s;
            w->len[w->n] = (int)l;
            w->targets += l - 1;
            w->n++;
        }
    }
    return 0;
fail:
    gt_windows_free(w);
    return -1;
}

void gt_windows_free(gt_windows *w)
{
    free(w->tokens);
    free(w->start);
    free(w->len);
    memset(w, 0, sizeof *w);
}
