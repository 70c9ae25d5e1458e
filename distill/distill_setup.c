/* distill_setup: everything a distill run needs before the first record is
 * read (see distill_job.h), in the order a failure should be found: the
 * teacher checkpoint and its tokenizer (checked against the options before
 * any file is created), labels.db with the run's meta data, the teacher's
 * inference model, then the labelers and the batch slots. Ends with the
 * settings line on stderr. */
#include "distill_job.h"

#include "base/cli.h"
#include "base/err.h"
#include "nn/checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The tokenizer of the checkpoint, checked against the teacher's vocabulary
 * and the requested k. */
static int load_tokenizer(distill_job *j, const checkpoint *ck)
{
    const distill_options *o = j->opt;
    j->cfg = ck->config;
    j->T = ck->config.seq_len;
    j->V = ck->config.vocab;
    j->tok = tok_deserialize(ck->tokenizer, ck->tokenizer_len);
    if (!j->tok)
        return err_wrap("%s: tokenizer", o->teacher);
    if (tok_vocab_size(j->tok) != j->V)
        return err_set("%s: tokenizer has %d tokens but the model's vocabulary is %d", o->teacher,
                       tok_vocab_size(j->tok), j->V);
    if (!o->sampled && o->k > j->V)
        return err_set("--topk %d exceeds the teacher's vocabulary of %d tokens", o->k, j->V);
    j->eot = tok_eot(j->tok);
    return 0;
}

/* What labels.db records about this run; an existing database must agree. */
static void describe_run(const distill_job *j, const checkpoint *ck, labels_meta *meta)
{
    const distill_options *o = j->opt;
    *meta = (labels_meta){
        .teacher_hash = ck->hash, .teacher_config = ck->config, .tokenizer = ck->tokenizer,
        .tokenizer_len = ck->tokenizer_len, .tokenizer_hash = tok_hash(j->tok), .k = o->k,
        .codec_version = softlabel_version_for(o->sampled ? SOFTLABEL_KIND_SAMPLED : SOFTLABEL_KIND_TOPK,
                                               j->V),
    };
    snprintf(meta->tool_version, sizeof meta->tool_version, "%s", W2S_VERSION);
    if (o->sampled) {
        snprintf(meta->label_kind, sizeof meta->label_kind, "sample:%d", o->k);
        snprintf(meta->sample_seed, sizeof meta->sample_seed, "%" PRIu64, o->seed);
    } else
        snprintf(meta->label_kind, sizeof meta->label_kind, "topk");
    snprintf(meta->teacher_precision, sizeof meta->teacher_precision, "%s",
             model_precision_name(o->precision));
}

/* Opens (or creates) labels.db with meta. The writer thread and the reader
 * each need a connection, since a labels_db handle is not thread-safe; the
 * reader's is read-only and only looks records up. */
static int open_database(distill_job *j, const labels_meta *meta)
{
    const char *path = j->opt->db;
    j->db = labels_db_open_write(path, meta);
    if (!j->db)
        return -1;
    j->created_db = labels_db_created(j->db);
    j->lookup_db = labels_db_open_read(path);
    return j->lookup_db ? 0 : -1;
}

static int create_teacher(distill_job *j, const checkpoint *ck)
{
    j->teacher = model_create_inference(&j->cfg, j->B, j->opt->threads);
    if (!j->teacher || model_set_precision(j->teacher, j->opt->precision) < 0)
        return -1;
    memcpy(model_params(j->teacher), ck->params, model_num_params(j->teacher) * sizeof(float));
    return 0;
}

static int build_labelers_and_slots(distill_job *j)
{
    const distill_options *o = j->opt;
    TRY(distill_labelers_init(&j->labelers, model_threads(j->teacher), j->V, o->k, j->T, o->sampled,
                              o->seed));
    for (int i = 0; i < DISTILL_SLOTS; i++)
        TRY(distill_slot_init(&j->slots[i], j->B, j->T));
    return 0;
}

static void print_settings(const distill_job *j, const checkpoint *ck, const labels_meta *meta)
{
    const distill_options *o = j->opt;
    char precision[96];
    model_precision_describe(model_get_precision(j->teacher), precision, sizeof precision);
    fprintf(stderr,
            "distill: teacher %s (V=%d L=%d H=%d C=%d T=%d, hash %016" PRIx64 "), "
            "tokenizer %016" PRIx64 ", db %s, labels %s:%d, batch=%d, threads=%d, %s products, "
            "records=%s, shard %d/%d, %d input%s\n",
            o->teacher, j->V, j->cfg.layers, j->cfg.heads, j->cfg.channels, j->T, ck->hash,
            meta->tokenizer_hash, o->db, o->sampled ? "sample" : "topk", o->k, j->B,
            model_threads(j->teacher), precision, o->records_text, o->shard_index,
            o->shard_count, o->n_inputs, o->n_inputs == 1 ? "" : "s");
}

int distill_setup(distill_job *j)
{
    checkpoint ck;
    labels_meta meta;
    if (checkpoint_read(j->opt->teacher, &ck) < 0)
        return -1;
    int rc = -1;
    if (load_tokenizer(j, &ck) < 0)
        goto done;
    describe_run(j, &ck, &meta);
    if (open_database(j, &meta) < 0 || create_teacher(j, &ck) < 0 || build_labelers_and_slots(j) < 0)
        goto done;
    if (!j->opt->quiet)
        print_settings(j, &ck, &meta);
    rc = 0;
done:
    checkpoint_free(&ck);
    return rc;
}

void distill_setup_free(distill_job *j)
{
    for (int i = 0; i < DISTILL_SLOTS; i++)
        distill_slot_free(&j->slots[i]);
    distill_labelers_free(&j->labelers);
    model_free(j->teacher);
    tok_free(j->tok);
}
