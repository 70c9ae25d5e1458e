/* trainer: the step loop of a training run; see trainer.h.
 *
 * A step packs the GT batch (rows_gt rows) and takes the next labeled batch
 * from the prefetch thread (rows_kd rows) into one input, runs one forward,
 * writes the loss gradients into the logits in place (CE scaled by
 * alpha / GT targets, KD by (1 - alpha) / labeled positions), one backward and
 * one AdamW step. With alpha = 1 the labeled rows do not exist at all, so the
 * run is exactly plain LM training. All buffers are allocated before the
 * first step. Under MPI each rank passes only its rows through the model and
 * the gradients are summed before the step (trainer.h). */
#include "trainer.h"

#include "base/err.h"
#include "base/json_out.h"
#include "gt_batch.h"
#include "base/mem.h"
#include "metrics.h"
#include "base/mpi_comm.h"
#include "base/progress.h"
#include "text/window.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct step_out {
    double lm, kd, loss;     /* means */
    float lr, grad_norm;
    long tokens;
    double seconds;
    double reduce_seconds;   /* in the MPI sums: transfer */
    double wait_seconds;     /* and waiting for the slowest rank */
} step_out;

typedef struct loop {
    train_run *r;
    int32_t *tokens, *pos, *targets;
    float *kd_weights;       /* (rows_kd * T) per-position trust, NULL when off */
    gt_sampler gs;
    adamw_config adamw;
} loop;

/* The model as a checkpoint at step: config, tokenizer and parameters. */
static checkpoint model_checkpoint(const train_run *r, long step)
{
    return (checkpoint){.config = r->cfg, .tokenizer = r->tok_blob,
                        .tokenizer_len = r->tok_blob_len, .params = model_params(r->m),
                        .step = step};
}

/* Rank 0 alone writes files; the other ranks hold the same model. */
static int write_model(train_run *r, long step)
{
    if (mpi_comm_rank() != 0)
        return 0;
    checkpoint ck = model_checkpoint(r, step);
    return checkpoint_write_locked(r->o->out, &ck, &r->out_lock);
}

/* Every rank calls it at the same steps. Under MPI it first checks that the
 * ranks still hold the same parameters: they take identical steps only if
 * the allreduce gives every rank the same bits, which MPI advises but does
 * not promise. */
static int write_resume(const train_run *r, long step)
{
    if (mpi_comm_size() > 1 &&
        !mpi_comm_all_equal(XXH3_64bits(model_params(r->m), model_num_params(r->m) * sizeof(float))))
        return err_set("step %ld: the MPI ranks' parameters differ (the allreduce did not give every "
                       "rank the same sums); stopped, the last checkpoint %s stays", step, r->resume_path);
    if (mpi_comm_rank() != 0)
        return 0;
    checkpoint ck = model_checkpoint(r, step);
    ck.adam_m = model_adam_m(r->m);
    ck.adam_v = model_adam_v(r->m);
    TRY(train_state_encode(&r->state, &ck.train_state, &ck.train_state_len));
    int rc = checkpoint_write(r->resume_path, &ck);
    free(ck.train_state);
    return rc;
}

/* Forward, losses and backward of this rank's rows [row_lo, row_hi) of the
 * batch; sums[0] and sums[1] receive its CE and KD sums. The scales use the
 * global counts n_gt and b->n_positions, so the ranks' gradients add up to
 * the whole batch's. A rank without rows contributes zeros. aux: the step's
 * auxiliary-confidence weight of the KD target (0 = off). */
static void local_pass(loop *l, const label_batch *b, long n_gt, float aux, double sums[2])
{
    train_run *r = l->r;
    const train_options *o = r->o;
    const int T = r->cfg.seq_len, V = r->cfg.vocab;
    const int lo = r->row_lo, hi = r->row_hi;
    const int gt_hi = hi < r->rows_gt ? hi : r->rows_gt;
    const int kd_lo = lo > r->rows_gt ? lo : r->rows_gt;
    sums[0] = sums[1] = 0.0;
    if (hi <= lo) {
        memset(model_grads(r->m), 0, sizeof(float) * model_num_params(r->m));
        return;
    }
    float *logits = model_forward(r->m, l->tokens + (long)lo * T, l->pos + (long)lo * T, hi - lo, T);
    if (gt_hi > lo)
        sums[0] = objective_ce(r->obj, logits, l->targets + (long)lo * T, (long)(gt_hi - lo) * T, V,
                               (float)(o->alpha / (double)n_gt));
    if (b && hi > kd_lo) {
        const int k = label_reader_meta(r->labels)->k;
        const long first = (long)(kd_lo - r->rows_gt) * T, n = (long)(hi - kd_lo) * T;
        float *kd_logits = logits + (long)(kd_lo - lo) * T * V;
        float scale = (float)((1.0 - o->alpha) / (double)b->n_positions);
        if (o->labels_hard)
            sums[1] = objective_ce(r->obj, kd_logits, b->targets + first, n, V, scale);
        else {
            /* weights over the whole labeled batch, the same on every rank */
            if (l->kd_weights)
                kd_trust_weights(l->kd_weights, b->targets, b->logprobs, b->tail, k,
                                 (long)r->rows_kd * T, o->kd_weight, o->kd_min_conf);
            objective_kd_spec spec = {.tau = (float)o->tau, .mode = o->kd_tail, .div = o->kd_loss,
                                      .aux = aux, .weights = l->kd_weights ? l->kd_weights + first : NULL};
            sums[1] = objective_kd(r->obj, kd_logits, b->targets + first, b->ids + first * k,
                                   b->logprobs + first * k, b->tail + first, k, n, V, &spec, scale);
        }
    }
    model_backward(r->m);
}

/* Packs the step's GT rows and copies the next labeled batch behind them;
 * *b is that batch (NULL without labeled rows), to release after the step.
 * @return the GT targets, or -1 + message (a bad labeled row). */
static long pack_batch(loop *l, const label_batch **b, long *gt_tokens)
{
    train_run *r = l->r;
    const int T = r->cfg.seq_len;
    const long gt_cells = (long)r->rows_gt * T, kd_cells = (long)r->rows_kd * T;
    long n_gt = 0;
    *gt_tokens = 0;
    if (r->rows_gt) {
        packer p;
        packer_reset(&p, r->rows_gt, T, l->tokens, l->pos);
        n_gt = gt_sampler_fill(&l->gs, &p, l->targets, gt_tokens);
    }
    if (r->rows_kd) {
        if (!(*b = label_reader_next(r->labels)))
            return -1;
        memcpy(l->tokens + gt_cells, (*b)->tokens, sizeof *l->tokens * (size_t)kd_cells);
        memcpy(l->pos + gt_cells, (*b)->pos, sizeof *l->pos * (size_t)kd_cells);
    }
    return n_gt;
}

/* One training step: pack, forward and backward of this rank's rows, the
 * sums over the ranks, AdamW. The labeled batch is released on every path.
 * @return 0, or -1 + message naming the step (a non-finite loss or
 * gradient stops the run before anything of this step is written). */
static int run_step(loop *l, long step, step_out *out)
{
    train_run *r = l->r;
    const train_options *o = r->o;
    const label_batch *b = NULL;
    double t0 = time_now();
    int rc = -1;
    long gt_tokens;
    long n_gt = pack_batch(l, &b, &gt_tokens);
    if (n_gt < 0) {
        err_wrap("step %ld", step);
        goto done;
    }
    double sums[2];
    float aux = objective_aux_weight(o->aux_conf, o->aux_warmup, r->total_steps, step);
    local_pass(l, b, n_gt, aux, sums);
    double r0 = mpi_comm_reduce_seconds(), w0 = mpi_comm_wait_seconds();
    if (mpi_comm_sum_doubles(sums, 2) < 0 ||
        mpi_comm_sum_floats(model_grads(r->m), model_num_params(r->m)) < 0) {
        err_wrap("step %ld", step);
        goto done;
    }
    out->reduce_seconds = mpi_comm_reduce_seconds() - r0;
    out->wait_seconds = mpi_comm_wait_seconds() - w0;
    out->lm = r->rows_gt ? sums[0] / (double)n_gt : 0.0;
    out->kd = b ? sums[1] / (double)b->n_positions : 0.0;
    out->loss = (r->rows_gt ? o->alpha * out->lm : 0.0) + (b ? (1.0 - o->alpha) * out->kd : 0.0);
    if (!isfinite(out->loss)) {
        err_set("step %ld: the loss is not finite (LM %g, KD %g); stopped, the last checkpoint %s "
                "stays", step, out->lm, out->kd, r->resume_path);
        goto done;
    }
    out->lr = model_lr_schedule((float)o->lr, step, r->warmup, r->total_steps);
    l->adamw.lr = out->lr;
    out->grad_norm = model_adamw_step(r->m, &l->adamw, step);
    out->tokens = gt_tokens + (b ? b->n_tokens : 0);
    if (b)
        r->state.kd = b->after;
    if (r->rows_gt)
        r->state.gt = l->gs.cur;
    r->state.tokens_seen += (uint64_t)out->tokens;
    out->seconds = time_now() - t0;
    if (!isfinite(out->grad_norm)) {
        err_set("step %ld: the gradient is not finite; stopped, the last checkpoint %s stays", step,
                r->resume_path);
        goto done;
    }
    rc = 0;
done:
    if (b)
        label_reader_release(r->labels);
    return rc;
}

static int print_summary(const train_run *r, long last_step, const step_out *last, double seconds,
                         uint64_t tokens, double reduce_seconds, double wait_seconds)
{
    json_out j;
    json_out_begin(&j);
    json_out_string(&j, "out", r->o->out);
    json_out_int(&j, "steps", last_step);
    json_out_int(&j, "total_steps", r->total_steps);
    json_out_int(&j, "params", (int64_t)model_num_params(r->m));
    json_out_string(&j, "precision", model_precision_name(model_get_precision(r->m)));
    if (last) {
        if (r->rows_gt)
            json_out_real(&j, "lm_loss", last->lm);
        if (r->rows_kd)
            json_out_real(&j, "kd_loss", last->kd);
        json_out_real(&j, "loss", last->loss);
    }
    if (isfinite(r->state.best_eval)) {
        json_out_real(&j, "eval_loss", r->state.best_eval);
        json_out_int(&j, "best_step", r->state.best_step);
    }
    json_out_int(&j, "tokens", (int64_t)tokens);
    json_out_real(&j, "tokens_per_s", seconds > 0 ? (double)tokens / seconds : 0.0);
    json_out_real(&j, "seconds", seconds);
    if (mpi_comm_size() > 1) {
        json_out_int(&j, "ranks", mpi_comm_size());
        json_out_real(&j, "allreduce_seconds", reduce_seconds);
        json_out_real(&j, "allreduce_wait_seconds", wait_seconds);
    }
    return json_out_write(&j, stdout, "stdout", "cannot write the summary");
}

/* Evaluates when due and keeps the best model in OUT. */
static int maybe_eval(train_run *r, long step, metrics_step *ms)
{
    const train_options *o = r->o;
    if (!r->eval.n || (step % o->eval_every && step != r->total_steps))
        return 0;
    eval_result e;
    TRY(eval_windows(r->m, r->obj, r->max_rows, &r->eval, true, NULL, &e));
    ms->has_eval = 1;
    ms->eval_loss = e.loss;
    if (!isfinite(e.loss))
        return err_set("step %ld: the held-out loss is not finite; stopped, the last checkpoint %s stays",
                       step, r->resume_path);
    if (e.loss < r->state.best_eval) {
        r->state.best_eval = e.loss;
        r->state.best_step = step;
        TRY(write_model(r, step));
    }
    return 0;
}

int train_loop(train_run *r)
{
    const train_options *o = r->o;
    const size_t cells = (size_t)(r->rows_gt + r->rows_kd) * (size_t)r->cfg.seq_len;
    loop l = {.r = r, .adamw = {.lr = (float)o->lr, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                                .weight_decay = (float)o->weight_decay, .clip = (float)o->clip}};
    metrics *mt = NULL;
    progress pg;
    int rc = -1, started = 0;
    step_out s = {0};
    long step = r->start_step;
    double busy = 0.0, reduce = 0.0, wait = 0.0, held_out = NAN;   /* the last held-out loss */
    uint64_t tokens = 0;
    l.tokens = mem_alloc_big(sizeof *l.tokens * cells * 3, "batch");
    if (!l.tokens)
        return -1;
    l.pos = l.tokens + cells;
    l.targets = l.tokens + 2 * cells;
    if (r->rows_kd && !o->labels_hard && (o->kd_weight != KD_WEIGHT_NONE || o->kd_min_conf > 0) &&
        !(l.kd_weights = mem_alloc(sizeof *l.kd_weights * (size_t)r->rows_kd * (size_t)r->cfg.seq_len,
                                   "KD weights")))
        goto done;
    if (r->rows_gt && gt_sampler_init(&l.gs, &r->gt, o->seed, TRAIN_STREAM_GT, r->state.gt) < 0)
        goto done;
    if (o->metrics && !(mt = metrics_open(o->metrics, r->resumed)))
        goto done;
    progress_start(&pg, "train", (uint64_t)r->total_steps, "steps", o->quiet);
    started = 1;
    while (step < r->total_steps && !(o->stop_at && step >= o->stop_at)) {
        step++;
        if (run_step(&l, step, &s) < 0)
            goto done;
        busy += s.seconds;
        reduce += s.reduce_seconds;
        wait += s.wait_seconds;
        tokens += (uint64_t)s.tokens;
        metrics_step ms = {.step = step, .has_lm = r->rows_gt > 0, .has_kd = r->rows_kd > 0,
                           .lm_loss = s.lm, .kd_loss = s.kd, .loss = s.loss, .lr = s.lr,
                           .grad_norm = s.grad_norm,
                           .tokens_per_s = s.seconds > 0 ? (double)s.tokens / s.seconds : 0.0};
        if (maybe_eval(r, step, &ms) < 0)
            goto done;
        if (step == r->total_steps && !r->eval.n && write_model(r, step) < 0)
            goto done;
        if (((o->checkpoint_every && step % o->checkpoint_every == 0) || step == r->total_steps ||
             step == o->stop_at) && write_resume(r, step) < 0)
            goto done;
        if (mt && metrics_write(mt, &ms) < 0)
            goto done;
        if (ms.has_eval)
            held_out = ms.eval_loss;
        char extra[200];
        int n = snprintf(extra, sizeof extra, "loss %.4f", s.loss);
        if (r->rows_gt && r->rows_kd)
            n += snprintf(extra + n, sizeof extra - (size_t)n, " (lm %.4f kd %.4f)", s.lm, s.kd);
        if (isfinite(held_out))
            n += snprintf(extra + n, sizeof extra - (size_t)n, ", held-out %.4f", held_out);
        snprintf(extra + n, sizeof extra - (size_t)n, ", %.0f tok/s", ms.tokens_per_s);
        progress_update(&pg, (uint64_t)step, extra);
    }
    progress_finish(&pg);
    started = 0;
    if (!o->quiet) {
        if (step < r->total_steps)
            fprintf(stderr, "train: stopped after step %ld of %ld; continue with --resume\n", step,
                    r->total_steps);
        else
            fprintf(stderr, "train: done, %ld steps, %s%s\n", step, o->out,
                    r->eval.n ? " (best held-out checkpoint)" : "");
        if (isfinite(r->state.best_eval))
            fprintf(stderr, "train: best held-out loss %.4f at step %lld\n", r->state.best_eval,
                    (long long)r->state.best_step);
    }
    if (o->json && print_summary(r, step, tokens ? &s : NULL, busy, tokens, reduce, wait) < 0)
        goto done;
    rc = 0;
done:
    if (started)
        progress_finish(&pg);
    if (metrics_close(mt) < 0 && rc == 0)
        rc = -1;
    if (r->rows_gt)
        gt_sampler_free(&l.gs);
    free(l.kd_weights);
    mem_free_big(l.tokens);
    return rc;
}

int train_labels_only(train_run *r)
{
    double t0 = time_now();
    uint64_t tokens = 0, positions = 0;
    for (long step = 1; step <= r->total_steps; step++) {
        const label_batch *b = label_reader_next(r->labels);
        if (!b)
            return err_wrap("batch %ld", step);
        tokens += (uint64_t)b->n_tokens;
        positions += (uint64_t)b->n_positions;
        label_reader_release(r->labels);
    }
    double seconds = time_now() - t0, rate = seconds > 0 ? (double)tokens / seconds : 0.0;
    if (!r->o->quiet)
        fprintf(stderr, "train: %ld labeled batches, %llu tokens in %.3f s: %.0f tokens/s\n",
                r->total_steps, (unsigned long long)tokens, seconds, rate);
    if (!r->o->json)
        return 0;
    json_out j;
    json_out_begin(&j);
    json_out_int(&j, "batches", r->total_steps);
    json_out_int(&j, "tokens", (int64_t)tokens);
    json_out_int(&j, "positions", (int64_t)positions);
    json_out_real(&j, "seconds", seconds);
    json_out_real(&j, "tokens_per_s", rate);
    return json_out_write(&j, stdout, "stdout", "cannot write the summary");
}
