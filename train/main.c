/* train: the second stage of w2s (DESIGN §1, §8) -- trains a student on
 * ground-truth text with the LM loss plus a teacher's stored soft labels with
 * the KD loss, or evaluates a model (--eval). This file parses the options
 * and orchestrates; the work is in trainer.c (step loop), train_setup.c,
 * gt_data.c, gt_batch.c, label_reader.c, objective.c, eval.c and metrics.c. */
#include "checkpoint.h"
#include "cli.h"
#include "err.h"
#include "eval.h"
#include "gt_data.h"
#include "model.h"
#include "objective.h"
#include "tokenizer.h"
#include "train_options.h"
#include "trainer.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static int print_eval(const train_options *o, const eval_result *e)
{
    if (!o->json) {
        printf("tokens %llu, loss %.6f nats/token, ppl %.4f, bits/byte %.6f\n",
               (unsigned long long)e->tokens, e->loss, e->ppl, e->bits_per_byte);
        return fflush(stdout) == EOF ? err_errno("stdout", "write failed") : 0;
    }
    json_t *j = json_pack("{s:I, s:f, s:f, s:f}", "tokens", (json_int_t)e->tokens, "loss", e->loss,
                          "ppl", e->ppl, "bits_per_byte", e->bits_per_byte);
    if (!j)
        return err_set("--json: cannot build the result");
    int rc = json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(j);
    if (rc < 0 || puts("") == EOF || fflush(stdout) == EOF)
        return err_errno("stdout", "write failed");
    return 0;
}

/* --eval: the model's cross-entropy, perplexity and bits per byte on --input. */
static int run_eval(const train_options *o)
{
    checkpoint ck = {0};
    tokenizer *tok = NULL;
    model *m = NULL;
    objective *obj = NULL;
    gt_texts texts = {0};
    gt_windows win = {0};
    eval_result e;
    int rc = -1;
    if (checkpoint_read(o->model_path, &ck) < 0)
        goto done;
    if (!(tok = tok_deserialize(ck.tokenizer, ck.tokenizer_len))) {
        err_wrap("%s: tokenizer", o->model_path);
        goto done;
    }
    if (tok_vocab_size(tok) != ck.config.vocab) {
        err_set("%s: model vocabulary %d differs from its tokenizer's %d", o->model_path,
                ck.config.vocab, tok_vocab_size(tok));
        goto done;
    }
    if (gt_texts_load(&texts, o->eval_input, o->n_eval_input, &o->records) < 0 ||
        gt_windows_build(&win, &texts, tok, ck.config.seq_len) < 0)
        goto done;
    if (win.n == 0) {
        err_set("--input %s%s: no text to evaluate", o->eval_input[0], o->n_eval_input > 1 ? " ..." : "");
        goto done;
    }
    if (!(m = model_create(&ck.config, o->batch, o->threads)) ||
        !(obj = objective_create(model_threads(m))))
        goto done;
    memcpy(model_params(m), ck.params, model_num_params(m) * sizeof(float));
    if (eval_windows(m, obj, o->batch, &win, &e) < 0 || print_eval(o, &e) < 0)
        goto done;
    rc = 0;
done:
    objective_free(obj);
    model_free(m);
    gt_windows_free(&win);
    gt_texts_free(&texts);
    tok_free(tok);
    checkpoint_free(&ck);
    return rc;
}

static int run_train(const train_options *o)
{
    train_run r = {0};
    int rc = train_setup(&r, o);
    if (rc == 0)
        rc = o->labels_only ? train_labels_only(&r) : train_loop(&r);
    train_run_free(&r);
    return rc;
}

int main(int argc, char **argv)
{
    train_options o;
    train_options_parse(&o, argc, argv);
    int rc = o.eval_mode ? run_eval(&o) : run_train(&o);
    if (rc < 0)
        fprintf(stderr, "train: %s\n", err_message());
    train_options_free(&o);
    return rc < 0 ? 1 : 0;
}
