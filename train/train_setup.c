/* train_setup: resolves a training run's options into a ready train_run;
 * see trainer.h. Order matters: the resume checkpoint, --init, --tokenizer
 * and labels.db are read first, so the tokenizer can be chosen and checked
 * before any text is tokenized. */
#include "trainer.h"

#include "base/err.h"
#include "base/fileio.h"
#include "gt_batch.h"
#include "base/mem.h"
#include "base/output_path.h"
#include "metrics.h"
#include "train_settings.h"
#include "base/mpi_comm.h"
#include "labels/softlabel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

/* Tokenizer hash of a checkpoint's (or database's) blob, named by path. */
static int blob_tok_hash(const unsigned char *blob, size_t len, const char *path, uint64_t *hash)
{
    tokenizer *t = tok_deserialize(blob, len);
    if (!t)
        return err_wrap("%s: tokenizer", path);
    *hash = tok_hash(t);
    tok_free(t);
    return 0;
}

static int check_same_tokenizer(const checkpoint *ck, const char *path, uint64_t want,
                                const char *want_from)
{
    uint64_t h = 0;
    TRY(blob_tok_hash(ck->tokenizer, ck->tokenizer_len, path, &h));
    if (h != want)
        return err_set("%s: its tokenizer (hash %016llx) differs from the one in %s (hash %016llx)",
                       path, (unsigned long long)h, want_from, (unsigned long long)want);
    return 0;
}

static int learn_tokenizer(train_run *r, const gt_texts *t)
{
    byte_span *spans = mem_calloc(t->n, sizeof *spans, "record list");
    if (!spans)
        return -1;
    for (size_t i = 0; i < t->n; i++) {
        size_t begin = i ? t->ends[i - 1] : 0;
        spans[i] = (byte_span){t->bytes + begin, t->ends[i] - begin};
    }
    int vocab = r->o->vocab ? r->o->vocab : TOK_DEFAULT_VOCAB;
    r->tok = tok_train(spans, t->n, vocab);
    free(spans);
    if (!r->tok)
        return err_wrap("learning the tokenizer from --gt");
    return tok_serialize(r->tok, &r->tok_blob, &r->tok_blob_len);
}

static int use_tokenizer(train_run *r, const unsigned char *blob, size_t len, const char *path)
{
    r->tok = tok_deserialize(blob, len);
    if (!r->tok)
        return err_wrap("%s: tokenizer", path);
    r->tok_blob = mem_alloc(len ? len : 1, "tokenizer");
    if (!r->tok_blob)
        return -1;
    memcpy(r->tok_blob, blob, len);
    r->tok_blob_len = len;
    return 0;
}

/* The shape of a model from --init is its checkpoint's: shape options given
 * with it are accepted only when they ask for that same shape. */
static int check_init_shape(const train_options *o, const model_config *have)
{
    model_config want = *have;
    if (o->preset && model_config_preset(o->preset, &want) < 0)
        return err_wrap("--preset");
    want.layers = o->layers ? o->layers : want.layers;
    want.heads = o->heads ? o->heads : want.heads;
    want.channels = o->channels ? o->channels : want.channels;
    want.seq_len = o->seq ? o->seq : want.seq_len;
    if (memcmp(&want, have, sizeof want) != 0)
        return err_set("%s: the checkpoint is L%d H%d C%d T%d, the shape options ask for L%d H%d C%d "
                       "T%d; --init keeps the checkpoint's shape (drop --preset/--layers/--heads/"
                       "--channels/--seq or make them match)", o->init, have->layers, have->heads,
                       have->channels, have->seq_len, want.layers, want.heads, want.channels,
                       want.seq_len);
    return 0;
}

static int resolve_config(train_run *r, const checkpoint *init_ck)
{
    const train_options *o = r->o;
    const char *from = "the options";
    if (r->resumed) {
        r->cfg = r->resume_ck.config;
        from = r->resume_path;
    } else if (o->init) {
        r->cfg = init_ck->config;
        from = o->init;
        TRY(check_init_shape(o, &r->cfg));
    } else {
        memset(&r->cfg, 0, sizeof r->cfg);
        if (model_config_preset(o->preset ? o->preset : "small", &r->cfg) < 0)
            return err_wrap("--preset");
        if (o->layers)
            r->cfg.layers = o->layers;
        if (o->heads)
            r->cfg.heads = o->heads;
        if (o->channels)
            r->cfg.channels = o->channels;
        if (o->seq)
            r->cfg.seq_len = o->seq;
        r->cfg.vocab = tok_vocab_size(r->tok);
    }
    if (r->cfg.vocab != tok_vocab_size(r->tok))
        return err_set("%s: model vocabulary %d differs from its tokenizer's %d", from, r->cfg.vocab,
                       tok_vocab_size(r->tok));
    if (model_config_check(&r->cfg) < 0)
        return err_wrap("%s: model config", from);
    return 0;
}

/* Opens --labels, refusing a database distill is still writing and, unless
 * --allow-partial-labels, one an interrupted distill left unfinished. */
static int open_labels(train_run *r)
{
    const char *path = r->o->labels;
    pid_t writer = filelock_holder(path);
    if (writer < 0)
        return -1;
    if (writer > 0)
        return err_set("%s is being written by distill (pid %ld); wait for it to finish", path,
                       (long)writer);
    if (!(r->labels = label_reader_open(path, r->o->labels_where, r->o->labels_where_seconds)))
        return -1;
    if (!label_reader_meta(r->labels)->complete && !r->o->allow_partial_labels)
        return err_set("%s: left unfinished by an interrupted distill (rerun that distill to finish "
                       "it, or pass --allow-partial-labels to train on what it holds)", path);
    return 0;
}

static int check_labels(train_run *r)
{
    const labels_meta *meta = label_reader_meta(r->labels);
    const char *path = r->o->labels;
    if (meta->teacher_config.seq_len > r->cfg.seq_len)
        return err_set("%s: the teacher's sequence length %d exceeds the student's %d (use --seq >= %d)",
                       path, meta->teacher_config.seq_len, r->cfg.seq_len, meta->teacher_config.seq_len);
    if (meta->teacher_config.vocab != r->cfg.vocab)
        return err_set("%s: the teacher's vocabulary %d differs from the student's %d", path,
                       meta->teacher_config.vocab, r->cfg.vocab);
    if (meta->k > KD_MAX_K)
        return err_set("%s: k = %d exceeds the largest supported (%d)", path, meta->k, KD_MAX_K);
    softlabel_kind kind;
    int n;
    if (softlabel_kind_parse(meta->label_kind, &kind, &n) < 0)
        return err_wrap("%s: meta", path);
    if (n && n != meta->k)
        return err_set("%s: label kind '%s' disagrees with k = %d", path, meta->label_kind, meta->k);
    /* sampled labels are an empirical distribution with no tail: only the
     * bucket form is their unbiased estimate (kd_loss.h) */
    if (kind == SOFTLABEL_KIND_SAMPLED && r->o->kd_tail == KD_TAIL_RENORM && !r->o->labels_hard)
        return err_set("%s: holds sampled labels (%s): their KD is the bucket form with tail 0; "
                       "drop --kd-tail renorm", path, meta->label_kind);
    /* a sample gives no teacher probability where it has no draws, which
     * every divergence but forward KL needs (kd_divergence.h) */
    if (kind == SOFTLABEL_KIND_SAMPLED && !kd_loss_kind_sampled_ok(r->o->kd_loss.kind))
        return err_set("%s: holds sampled labels (%s): only --kd-loss fkl is defined for them (the "
                       "sample's cross-entropy estimates forward KL; %s needs the teacher's "
                       "probabilities on the student's support)",
                       path, meta->label_kind, kd_loss_kind_name(r->o->kd_loss.kind));
    return 0;
}

/* Loads every --gt path into t, one after the other, with the content hash
 * of each path's records in r->gt_content (README, "Determinism and resume"). */
static int load_gt_hashed(train_run *r, gt_texts *t)
{
    const train_options *o = r->o;
    if (!(r->gt_content = mem_calloc((size_t)o->n_gt, sizeof *r->gt_content, "GT hashes")))
        return -1;
    for (int i = 0; i < o->n_gt; i++) {
        size_t len0 = t->len, n0 = t->n;
        TRY(gt_texts_load(t, &o->gt[i], 1, &o->records));
        const unsigned char *added = t->len > len0 ? t->bytes + len0 : (const unsigned char *)"";
        r->gt_content[i] = XXH3_64bits_withSeed(added, t->len - len0, t->n - n0);
    }
    return 0;
}

static int load_windows(train_run *r, gt_windows *w, const char *const *paths, int n, const char *opt)
{
    gt_texts t = {0};
    int rc = gt_texts_load(&t, paths, n, &r->o->records);
    if (rc == 0)
        rc = gt_windows_build(w, &t, r->tok, r->cfg.seq_len);
    if (rc == 0 && w->n == 0)
        rc = err_set("%s %s%s: no text (empty set of records)", opt, paths[0], n > 1 ? " ..." : "");
    gt_texts_free(&t);
    return rc;
}

/* The refusals of base/output_path.h for every file the run writes. */
static int check_outputs(const train_run *r)
{
    const train_options *o = r->o;
    const char *outs[] = {o->out, r->resume_path, o->metrics};
    const char *out_opts[] = {"--out", "--out's .resume", "--metrics"};
    const char *ins[] = {o->labels, o->init, o->tokenizer};
    const char *in_opts[] = {"--labels", "--init", "--tokenizer"};
    for (int i = 0; i < 3; i++) {
        if (!outs[i])
            continue;
        for (int j = 0; j < o->n_gt; j++)
            TRY(output_path_distinct(outs[i], out_opts[i], o->gt[j], "--gt"));
        for (int j = 0; j < o->n_eval_input; j++)
            TRY(output_path_distinct(outs[i], out_opts[i], o->eval_input[j], "--eval-input"));
        for (int j = 0; j < 3; j++)
            TRY(output_path_distinct(outs[i], out_opts[i], ins[j], in_opts[j]));
        for (int j = 0; j < i; j++)
            TRY(output_path_distinct(outs[i], out_opts[i], outs[j], out_opts[j]));
    }
    TRY(output_path_check(o->out, "w2s checkpoint", checkpoint_has_magic));
    TRY(output_path_check(r->resume_path, "w2s checkpoint", checkpoint_has_magic));
    if (o->metrics)
        TRY(output_path_check(o->metrics, "w2s metrics file", metrics_file_is_ours));
    return 0;
}

static int count_steps(train_run *r)
{
    const train_options *o = r->o;
    if (o->steps) {
        r->total_steps = o->steps;
    } else if (r->rows_gt) {
        r->total_steps = gt_sampler_count_steps(&r->gt, o->seed, TRAIN_STREAM_GT, r->rows_gt,
                                                r->cfg.seq_len, o->epochs);
        if (r->total_steps < 0)
            return -1;
    } else {
        double tokens = (double)label_reader_tokens(r->labels);
        double steps = ceil(o->epochs * tokens / ((double)r->rows_kd * r->cfg.seq_len));
        r->total_steps = steps < 1 ? 1 : steps > 1e9 ? 1000000000 : (long)steps;
    }
    r->warmup = o->warmup >= 0 ? o->warmup : r->total_steps / 20;
    return 0;
}

static int load_resume(train_run *r)
{
    TRY(checkpoint_read(r->resume_path, &r->resume_ck));
    TRY(train_state_decode(r->resume_ck.train_state, r->resume_ck.train_state_len, r->resume_path,
                           &r->state));
    if (!r->resume_ck.adam_m || !r->resume_ck.adam_v)
        return err_set("%s: no optimiser state (not a resumable checkpoint)", r->resume_path);
    r->resumed = 1;
    return 0;
}

static int init_weights(train_run *r, const checkpoint *init_ck)
{
    size_t n = model_num_params(r->m);
    if (r->resumed) {
        memcpy(model_params(r->m), r->resume_ck.params, n * sizeof(float));
        memcpy(model_adam_m(r->m), r->resume_ck.adam_m, n * sizeof(float));
        memcpy(model_adam_v(r->m), r->resume_ck.adam_v, n * sizeof(float));
        r->start_step = r->resume_ck.step;
        if (r->start_step < 0 || r->start_step > r->total_steps)
            return err_set("%s: step %ld is beyond the run's %ld steps", r->resume_path,
                           r->start_step, r->total_steps);
    } else if (r->o->init) {
        memcpy(model_params(r->m), init_ck->params, n * sizeof(float));
    } else {
        model_init_gpt2(r->m, r->o->seed);
    }
    return 0;
}

static void print_settings(const train_run *r)
{
    const train_options *o = r->o;
    const model_config *c = &r->cfg;
    char precision[96];
    model_precision_describe(model_get_precision(r->m), precision, sizeof precision);
    fprintf(stderr, "train: model L%d H%d C%d T%d V%d, %zu parameters, %d threads, %s products%s\n",
            c->layers, c->heads, c->channels, c->seq_len, c->vocab, model_num_params(r->m),
            model_threads(r->m), precision,
            r->resumed ? "" : o->init ? " (weights from --init)" : "");
    if (mpi_comm_size() > 1)
        fprintf(stderr, "train: %d MPI ranks, each up to %d of the %d rows per step\n",
                mpi_comm_size(), r->max_rows, r->rows_gt + r->rows_kd);
    if (r->rows_gt)
        fprintf(stderr, "train: GT %zu windows, %llu tokens to predict, batch %d rows of %d\n",
                r->gt.n, (unsigned long long)r->gt.targets, r->rows_gt, c->seq_len);
    if (r->labels) {
        const labels_meta *m = label_reader_meta(r->labels);
        fprintf(stderr, "train: labels %s: %zu sequences%s%s, %s k %d, teacher L%d H%d C%d T%d%s\n",
                o->labels, label_reader_rows(r->labels), o->labels_where ? " where " : "",
                o->labels_where ? o->labels_where : "", m->label_kind, m->k, m->teacher_config.layers,
                m->teacher_config.heads, m->teacher_config.channels, m->teacher_config.seq_len,
                r->rows_kd ? "" : " (not read: alpha 1)");
        if (r->rows_kd)
            fprintf(stderr, "train: kd-batch %d rows, %s\n", r->rows_kd,
                    o->labels_hard ? "hard labels (LM loss on the stored tokens)" : "soft labels");
    }
    fprintf(stderr, "train: alpha %g, tau %g, kd-tail %s, kd-loss %s", o->alpha, o->tau,
            kd_tail_name(o->kd_tail), kd_loss_kind_name(o->kd_loss.kind));
    if (o->kd_loss.kind == KD_LOSS_GJSD)
        fprintf(stderr, " beta %g", o->kd_loss.beta);
    if (o->kd_loss.kind == KD_LOSS_SKL || o->kd_loss.kind == KD_LOSS_SRKL)
        fprintf(stderr, " skew %g", o->kd_loss.skew);
    fprintf(stderr, ", kd-weight %s, kd-min-conf %g\n", kd_weight_name(o->kd_weight), o->kd_min_conf);
    if (o->aux_conf > 0)
        fprintf(stderr, "train: aux-conf %g, ramped linearly over %ld steps\n", o->aux_conf,
                o->aux_warmup >= 0 ? o->aux_warmup : r->total_steps / 5);
    fprintf(stderr, "train: %ld steps (warm-up %ld), lr %g cosine to 10%%, weight decay %g, clip %g, seed %llu\n",
            r->total_steps, r->warmup, o->lr, o->weight_decay, o->clip, (unsigned long long)o->seed);
    if (r->eval.n)
        fprintf(stderr, "train: held-out %zu windows, %llu tokens, evaluated every %ld steps\n",
                r->eval.n, (unsigned long long)r->eval.targets, o->eval_every);
    if (o->checkpoint_every)
        fprintf(stderr, "train: out %s, resume state %s every %ld steps and at the end\n", o->out,
                r->resume_path, o->checkpoint_every);
    else
        fprintf(stderr, "train: out %s, resume state %s at the end\n", o->out, r->resume_path);
    if (r->resumed)
        fprintf(stderr, "train: resuming from %s at step %ld\n", r->resume_path, r->start_step);
}

int train_setup(train_run *r, const train_options *o)
{
    checkpoint init_ck = {0}, tok_ck = {0};
    gt_texts gt_text = {0};
    int rc = -1;
    r->o = o;
    r->out_lock.fd = -1;
    r->state.best_eval = INFINITY;
    size_t out_len = strlen(o->out);
    r->resume_path = mem_alloc(out_len + 8, "path");
    if (!r->resume_path)
        return -1;
    memcpy(r->resume_path, o->out, out_len);
    memcpy(r->resume_path + out_len, ".resume", 8);
    if (check_outputs(r) < 0)
        return -1;
    if (mpi_comm_rank() == 0 && !o->labels_only &&
        filelock_acquire_output(&r->out_lock, o->out, "train", &r->out_created) < 0)
        return -1;

    if (o->resume && file_exists(r->resume_path) && load_resume(r) < 0)
        goto done;
    if (o->resume && !r->resumed && !o->quiet)
        fprintf(stderr, "train: %s not found, starting from scratch\n", r->resume_path);
    if (o->init && checkpoint_read(o->init, &init_ck) < 0)
        goto done;
    r->init_hash = init_ck.hash;
    if (o->tokenizer && checkpoint_read(o->tokenizer, &tok_ck) < 0)
        goto done;
    if (o->labels && open_labels(r) < 0)
        goto done;
    r->rows_gt = o->alpha > 0.0 && !o->labels_only ? o->batch : 0;
    r->rows_kd = o->labels && (o->alpha < 1.0 || o->labels_only) ? o->kd_batch : 0;

    /* the tokenizer: resumed > labels.db > --init > --tokenizer > learned */
    int learn = !r->resumed && !o->labels && !o->init && !o->tokenizer;
    if (r->rows_gt || learn) {
        if (load_gt_hashed(r, &gt_text) < 0)
            goto done;
        if (gt_text.n == 0) {
            err_set("--gt %s%s: empty GT set (no records)", o->gt[0], o->n_gt > 1 ? " ..." : "");
            goto done;
        }
    }
    if (r->resumed)
        rc = use_tokenizer(r, r->resume_ck.tokenizer, r->resume_ck.tokenizer_len, r->resume_path);
    else if (o->labels)
        rc = use_tokenizer(r, label_reader_meta(r->labels)->tokenizer,
                           label_reader_meta(r->labels)->tokenizer_len, o->labels);
    else if (o->init)
        rc = use_tokenizer(r, init_ck.tokenizer, init_ck.tokenizer_len, o->init);
    else if (o->tokenizer)
        rc = use_tokenizer(r, tok_ck.tokenizer, tok_ck.tokenizer_len, o->tokenizer);
    else
        rc = learn_tokenizer(r, &gt_text);
    if (rc < 0)
        goto done;
    rc = -1;
    uint64_t h = tok_hash(r->tok);
    const char *h_from = r->resumed ? r->resume_path : o->labels ? o->labels
                       : o->init ? o->init : o->tokenizer ? o->tokenizer : "--gt";
    if (o->labels && label_reader_meta(r->labels)->tokenizer_hash != h) {
        err_set("%s: stored tokenizer hash does not match its tokenizer blob", o->labels);
        goto done;
    }
    if ((o->init && check_same_tokenizer(&init_ck, o->init, h, h_from) < 0) ||
        (o->tokenizer && check_same_tokenizer(&tok_ck, o->tokenizer, h, h_from) < 0))
        goto done;
    if (r->resumed && o->labels) {
        uint64_t lh = label_reader_meta(r->labels)->tokenizer_hash;
        if (lh != h) {
            err_set("%s: its tokenizer differs from the one in %s", o->labels, r->resume_path);
            goto done;
        }
    }

    if (resolve_config(r, &init_ck) < 0 || (o->labels && check_labels(r) < 0))
        goto done;
    if (r->rows_gt) {
        if (gt_windows_build(&r->gt, &gt_text, r->tok, r->cfg.seq_len) < 0)
            goto done;
        if (r->gt.n == 0) {
            err_set("--gt %s: empty GT set (no windows)", o->gt[0]);
            goto done;
        }
    }
    gt_texts_free(&gt_text);
    if (o->n_eval_input && load_windows(r, &r->eval, o->eval_input, o->n_eval_input, "--eval-input") < 0)
        goto done;
    if (count_steps(r) < 0)
        goto done;
    uint64_t hash = 0;
    char *settings = NULL;
    if (train_settings_hash(r, &hash) < 0 || train_settings_text(r, &settings) < 0)
        goto done;
    if (r->resumed && train_settings_check_resume(r, settings, hash) < 0) {
        free(settings);
        goto done;
    }
    train_state_free(&r->state);
    r->state.settings = settings;
    r->state.settings_hash = hash;

    /* Rank i of n takes rows [rows * i / n, rows * (i + 1) / n). */
    int rows = r->rows_gt + r->rows_kd, rank = mpi_comm_rank(), ranks = mpi_comm_size();
    r->row_lo = (int)((long)rows * rank / ranks);
    r->row_hi = (int)((long)rows * (rank + 1) / ranks);
    r->max_rows = (rows + ranks - 1) / ranks;
    if (r->max_rows < 1)
        r->max_rows = 1;
    if (!o->labels_only) {
        r->m = model_create(&r->cfg, r->max_rows, o->threads);
        if (!r->m || model_set_precision(r->m, o->precision) < 0 || init_weights(r, &init_ck) < 0)
            goto done;
        r->obj = objective_create(model_threads(r->m));
        if (!r->obj)
            goto done;
    }
    checkpoint_free(&r->resume_ck);
    if (r->rows_kd && label_reader_start(r->labels, r->rows_kd, r->cfg.seq_len, r->cfg.vocab,
                                         !o->labels_hard, o->seed, r->state.kd) < 0)
        goto done;
    if (!o->quiet && !o->labels_only)
        print_settings(r);
    rc = 0;
done:
    checkpoint_free(&init_ck);
    checkpoint_free(&tok_ck);
    gt_texts_free(&gt_text);
    return rc;
}

void train_run_free(train_run *r)
{
    struct stat st;
    if (r->out_created && filelock_holds(&r->out_lock, r->o->out) && stat(r->o->out, &st) == 0 &&
        st.st_size == 0)
        remove(r->o->out);   /* the lock's file, never written: as if the run never started */
    filelock_release(&r->out_lock);
    label_reader_close(r->labels);
    objective_free(r->obj);
    model_free(r->m);
    gt_windows_free(&r->gt);
    gt_windows_free(&r->eval);
    tok_free(r->tok);
    free(r->tok_blob);
    checkpoint_free(&r->resume_ck);
    free(r->resume_path);
    free(r->gt_content);
    train_state_free(&r->state);
    memset(r, 0, sizeof *r);
}
