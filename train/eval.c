/* eval: cross-entropy, perplexity and bits per byte of packed windows; see
 * eval.h. Under MPI every rank packs every batch (cheap) but runs only the
 * batches b with b % ranks == rank; the sums are then added over the ranks. */
#include "eval.h"

#include "base/err.h"
#include "base/mem.h"
#include "base/mpi_comm.h"
#include "base/progress.h"
#include "positions.h"
#include "targets.h"
#include "text/window.h"

#include <math.h>
#include <stdlib.h>

/* The --positions lines of the batch's windows first .. next - 1, placed at
 * the cells offsets[0 ..], from the logits before objective_ce overwrites
 * them. */
static int write_positions(positions_writer *pw, const gt_windows *w, size_t first, size_t next,
                           const long *offsets, const float *logits, const int32_t *targets, int V)
{
    for (size_t i = first; i < next; i++) {
        long off = offsets[i - first];
        TRY(positions_write_window(pw, i, logits + (size_t)off * (size_t)V, targets + off, w->len[i]));
    }
    return 0;
}

int eval_windows(model *m, objective *obj, int rows, const gt_windows *w, bool quiet,
                 const char *positions_path, eval_result *out)
{
    if (w->n == 0 || w->targets == 0)
        return err_set("evaluation set: no tokens to predict");
    const int T = model_get_config(m)->seq_len, V = model_get_config(m)->vocab;
    size_t cells = (size_t)rows * (size_t)T;
    int32_t *buf = mem_alloc(sizeof *buf * cells * 3, "evaluation batch");
    if (!buf)
        return -1;
    /* A window takes at least one cell, so a batch holds at most cells windows. */
    long *offsets = NULL;
    positions_writer pw = {0};
    if (positions_path && (!(offsets = mem_alloc(sizeof *offsets * cells, "evaluation window offsets")) ||
                           positions_open(&pw, positions_path, V) < 0)) {
        free(offsets);
        free(buf);
        return -1;
    }
    int32_t *tokens = buf, *pos = buf + cells, *targets = buf + 2 * cells;
    double nats = 0.0;
    size_t next = 0;
    int rc = 0;
    const int rank = mpi_comm_rank(), ranks = mpi_comm_size();
    progress pg;
    progress_start(&pg, "eval", w->n, "windows", quiet || rank != 0);
    for (long batch = 0; rc == 0 && next < w->n; batch++) {
        packer p;
        packer_reset(&p, rows, T, tokens, pos);
        targets_clear(targets, (long)cells);
        const size_t first = next;
        long off;
        while (next < w->n &&
               (off = targets_place_window(&p, targets, w->tokens + w->start[next], w->len[next])) >= 0) {
            if (offsets)
                offsets[next - first] = off;
            next++;
        }
        if (batch % ranks != rank)
            continue;
        int used = packer_rows_used(&p);
        float *logits = model_forward(m, tokens, pos, used, T);
        if (offsets && write_positions(&pw, w, first, next, offsets, logits, targets, V) < 0)
            rc = -1;
        else
            nats += objective_ce(obj, logits, targets, (long)used * T, V, 0.0f);
        progress_update(&pg, next, NULL);
    }
    progress_finish(&pg);
    free(offsets);
    free(buf);
    if (positions_path) {
        if (rc < 0)
            positions_abort(&pw);
        else
            rc = positions_commit(&pw);
    }
    TRY(rc);
    TRY(mpi_comm_sum_doubles(&nats, 1));
    out->tokens = w->targets;
    out->bytes = w->bytes;
    out->nats = nats;
    out->loss = nats / (double)w->targets;
    out->ppl = exp(out->loss);
    out->bits_per_byte = w->bytes ? nats / (log(2.0) * (double)w->bytes) : 0.0;
    return 0;
}
