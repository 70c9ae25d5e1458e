/* train: the second stage of w2s (README, "Data flow") -- trains a student on
 * ground-truth text with the LM loss plus a teacher's stored soft labels with
 * the KD loss, or evaluates a model (--eval); `train import` / `train export`
 * convert Hugging Face GPT-2 directories (hf_convert.c). This file parses the
 * options and orchestrates; the work is in trainer.c (step loop),
 * train_setup.c, train_settings.c, gt_data.c, gt_batch.c, label_reader.c,
 * targets.c, objective.c, eval.c and metrics.c.
 *
 * Under mpirun (built with make MPI=1) every rank runs the same command: the
 * trainer splits each step's rows over the ranks, and rank 0 alone prints and
 * writes files. A rank that fails ends the whole job (the others would wait
 * for it in the next collective). */
#include "nn/checkpoint.h"
#include "base/cli.h"
#include "base/err.h"
#include "base/json_out.h"
#include "eval.h"
#include "gt_data.h"
#include "hf_convert.h"
#include "nn/model.h"
#include "base/mpi_comm.h"
#include "base/output_path.h"
#include "objective.h"
#include "base/parallel.h"
#include "positions.h"
#include "text/tokenizer.h"
#include "train_options.h"
#include "trainer.h"

#include <stdio.h>
#include <string.h>

static int print_eval(const train_options *o, const eval_result *e)
{
    if (!o->json) {
        printf("tokens %llu, loss %.6f nats/token, ppl %.4f, bits/byte %.6f\n",
               (unsigned long long)e->tokens, e->loss, e->ppl, e->bits_per_byte);
        return fflush(stdout) == EOF ? err_errno("stdout", "write failed") : 0;
    }
    json_out j;
    json_out_begin(&j);
    json_out_int(&j, "tokens", (int64_t)e->tokens);
    json_out_real(&j, "loss", e->loss);
    json_out_real(&j, "ppl", e->ppl);
    json_out_real(&j, "bits_per_byte", e->bits_per_byte);
    return json_out_write(&j, stdout, "stdout", "write failed");
}

/* Set when every rank left at the same setup check, so nobody waits in a
 * collective and MPI can finish normally; silent on the ranks whose message
 * would repeat rank 0's or who did not fail themselves. */
static int stopped_together, stop_silently;

/* Setup failures are nearly always the same on every rank (they read the same
 * inputs), so the ranks agree there whether to go on. @return rc, or -1 when
 * another rank failed. */
static int agree_setup(int rc)
{
    if (mpi_comm_size() == 1)
        return rc;
    double failed = rc < 0;
    if (mpi_comm_sum_doubles(&failed, 1) < 0)
        return -1;
    if (failed == 0)
        return rc;
    stopped_together = 1;
    stop_silently = rc == 0 || (failed == mpi_comm_size() && mpi_comm_rank() != 0);
    return -1;
}

/* --eval: what the evaluation holds. */
typedef struct eval_job {
    checkpoint ck;
    tokenizer *tok;
    gt_texts texts;
    gt_windows win;
    model *m;
    objective *obj;
} eval_job;

static void eval_job_free(eval_job *j)
{
    objective_free(j->obj);
    model_free(j->m);
    gt_windows_free(&j->win);
    gt_texts_free(&j->texts);
    tok_free(j->tok);
    checkpoint_free(&j->ck);
}

/* The refusals of base/output_path.h for --positions, before anything is
 * loaded. Under MPI each rank evaluates only its share of the batches, so no
 * rank could write the whole file. @return 0, or -1 + message. */
static int check_positions(const train_options *o)
{
    if (!o->positions)
        return 0;
    if (mpi_comm_size() > 1)
        return err_set("--positions %s: not available under mpirun (each rank evaluates only its share "
                       "of the windows); run train --eval as one process", o->positions);
    TRY(output_path_distinct(o->positions, "--positions", o->model_path, "--model"));
    for (int i = 0; i < o->n_eval_input; i++)
        TRY(output_path_distinct(o->positions, "--positions", o->eval_input[i], "--input"));
    return output_path_check(o->positions, "w2s positions file", positions_file_is_ours);
}

/* Loads --model and windows --input into *j (zeroed; eval_job_free also on
 * failure). @return 0, or -1 + message. */
static int eval_setup(eval_job *j, const train_options *o)
{
    TRY(check_positions(o));
    TRY(checkpoint_read(o->model_path, &j->ck));
    if (!(j->tok = tok_deserialize(j->ck.tokenizer, j->ck.tokenizer_len)))
        return err_wrap("%s: tokenizer", o->model_path);
    if (tok_vocab_size(j->tok) != j->ck.config.vocab)
        return err_set("%s: model vocabulary %d differs from its tokenizer's %d", o->model_path,
                       j->ck.config.vocab, tok_vocab_size(j->tok));
    TRY(gt_texts_load(&j->texts, o->eval_input, o->n_eval_input, &o->records));
    TRY(gt_windows_build(&j->win, &j->texts, j->tok, j->ck.config.seq_len));
    if (j->win.n == 0)
        return err_set("--input %s%s: no text to evaluate", o->eval_input[0],
                       o->n_eval_input > 1 ? " ..." : "");
    if (!(j->m = model_create_inference(&j->ck.config, o->batch, o->threads)) ||
        model_set_precision(j->m, o->precision) < 0 ||
        !(j->obj = objective_create(model_threads(j->m))))
        return -1;
    memcpy(model_params(j->m), j->ck.params, model_num_params(j->m) * sizeof(float));
    return 0;
}

/* --eval: the model's cross-entropy, perplexity and bits per byte on --input
 * (and the --positions file). */
static int run_eval(const train_options *o)
{
    eval_job j = {0};
    eval_result e;
    int rc = agree_setup(eval_setup(&j, o));
    if (rc == 0 && (eval_windows(j.m, j.obj, o->batch, &j.win, o->quiet, o->positions, &e) < 0 ||
                    (mpi_comm_rank() == 0 && print_eval(o, &e) < 0)))
        rc = -1;
    eval_job_free(&j);
    return rc;
}

static int run_train(const train_options *o)
{
    train_run r = {0};
    int rc = agree_setup(train_setup(&r, o));
    if (rc == 0)
        rc = o->labels_only ? train_labels_only(&r) : train_loop(&r);
    train_run_free(&r);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "import") == 0 || strcmp(argv[1], "export") == 0))
        return hf_convert_main(argc - 1, argv + 1);
    train_options o;
    train_options_parse(&o, argc, argv);
    if (mpi_comm_init(&argc, &argv) < 0) {
        fprintf(stderr, "train: %s\n", err_message());
        train_options_free(&o);
        return 1;
    }
    if (mpi_comm_rank() != 0) {
        o.quiet = 1;
        o.json = 0;
        o.metrics = NULL;
    }
    /* Ranks sharing a machine share its cores. */
    if (o.threads == 0 && mpi_comm_local_size() > 1) {
        o.threads = parallel_cores() / mpi_comm_local_size();
        if (o.threads < 1)
            o.threads = 1;
    }
    int rc = o.eval_mode ? run_eval(&o) : run_train(&o);
    if (rc < 0 && !stop_silently) {
        if (mpi_comm_size() > 1 && !stopped_together)
            fprintf(stderr, "train: rank %d: %s\n", mpi_comm_rank(), err_message());
        else
            fprintf(stderr, "train: %s\n", err_message());
    }
    if (rc < 0 && !stopped_together)
        mpi_comm_abort(1);
    train_options_free(&o);
    mpi_comm_finalize();
    return rc < 0 ? 1 : 0;
}
