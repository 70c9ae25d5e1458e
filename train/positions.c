/* positions: the --positions file of train --eval; see positions.h. */
#include "positions.h"

#include "base/err.h"
#include "base/mem.h"
#include "base/output_path.h"
#include "nn/topk.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int positions_format(const positions_line *l, char buf[POSITIONS_LINE_MAX])
{
    return snprintf(buf, POSITIONS_LINE_MAX, "%zu\t%d\t%" PRId32 "\t%.6g\t%" PRId32 "\t%.6g\t%.6g\n",
                    l->window, l->position, l->target, l->nll, l->top1, l->top1_prob, l->entropy);
}

int positions_file_is_ours(const char *path)
{
    return output_path_starts_with(path, POSITIONS_HEADER, sizeof POSITIONS_HEADER - 1);
}

int positions_open(positions_writer *w, const char *path, int V)
{
    memset(w, 0, sizeof *w);
    w->V = V;
    if (!(w->scratch = mem_alloc(topk_scratch_bytes(V), "top-1 scratch")))
        return err_wrap("%s", path);
    if (atomic_file_open(&w->af, path) < 0) {
        positions_abort(w);
        return -1;
    }
    if (atomic_file_write(&w->af, POSITIONS_HEADER, sizeof POSITIONS_HEADER - 1) < 0) {
        positions_abort(w);
        return -1;
    }
    return 0;
}

int positions_write_window(positions_writer *w, size_t window, const float *logits,
                           const int32_t *targets, int len)
{
    for (int j = 0; j < len; j++) {
        if (targets[j] < 0)
            continue;
        positions_line l = {.window = window, .position = j, .target = targets[j]};
        float top1_logprob;
        topk_stats st;
        if (topk_row(logits + (size_t)j * (size_t)w->V, w->V, 1, targets[j], w->scratch, &l.top1,
                     &top1_logprob, &st) < 0)
            return err_wrap("%s: window %zu, position %d", w->af.path, window, j);
        l.nll = st.nll;
        l.top1_prob = st.top1;
        l.entropy = st.entropy;
        char line[POSITIONS_LINE_MAX];
        TRY(atomic_file_write(&w->af, line, (size_t)positions_format(&l, line)));
    }
    return 0;
}

int positions_commit(positions_writer *w)
{
    free(w->scratch);
    w->scratch = NULL;
    return atomic_file_commit(&w->af);
}

void positions_abort(positions_writer *w)
{
    atomic_file_abort(&w->af);
    free(w->scratch);
    w->scratch = NULL;
}
