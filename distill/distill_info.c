/* distill_info: `distill info` -- what a labels.db holds: the teacher's
 * config and identity, the tokenizer, k, codec and tool version, and counts
 * of sequences, tokens and blob bytes per labeled position, as text or as
 * one JSON object. Opens the database read-only. */
#include "distill.h"

#include "base/err.h"
#include "base/json_out.h"
#include "labels/labels_db.h"
#include "text/tokenizer.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>

/* Sum of the top-k blob sizes: one aggregate over the documented schema
 * (schemas/labels.sql), on a read-only connection of its own. */
static int blob_bytes(const char *path, uint64_t *total)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT COALESCE(SUM(LENGTH(topk)), 0) FROM sequences", -1, &st,
                           NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        err_set("%s: cannot sum the blob sizes: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        goto done;
    }
    *total = (uint64_t)sqlite3_column_int64(st, 0);
    rc = 0;
done:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* What distill info reports, beside the meta data. */
typedef struct db_counts {
    int64_t sequences, tokens, positions;   /* labeled positions: tokens - sequences */
    uint64_t blob_bytes;
    int tokenizer_vocab;
} db_counts;

static int print_json(const char *path, const labels_meta *m, const db_counts *n)
{
    const model_config *c = &m->teacher_config;
    char teacher_hash[17], tokenizer_hash[17];
    snprintf(teacher_hash, sizeof teacher_hash, "%016" PRIx64, m->teacher_hash);
    snprintf(tokenizer_hash, sizeof tokenizer_hash, "%016" PRIx64, m->tokenizer_hash);
    json_out j;
    json_out_begin(&j);
    json_out_string(&j, "path", path);
    json_out_string(&j, "teacher_hash", teacher_hash);
    json_out_begin_object(&j, "teacher");
    json_out_int(&j, "vocab", c->vocab);
    json_out_int(&j, "layers", c->layers);
    json_out_int(&j, "heads", c->heads);
    json_out_int(&j, "channels", c->channels);
    json_out_int(&j, "seq_len", c->seq_len);
    json_out_end_object(&j);
    json_out_string(&j, "tokenizer_hash", tokenizer_hash);
    json_out_int(&j, "tokenizer_vocab", n->tokenizer_vocab);
    json_out_int(&j, "k", m->k);
    json_out_int(&j, "codec_version", m->codec_version);
    json_out_string(&j, "tool_version", m->tool_version);
    json_out_string(&j, "label_kind", m->label_kind);
    json_out_string(&j, "sample_seed", m->sample_seed[0] ? m->sample_seed : NULL);
    json_out_string(&j, "teacher_precision", m->teacher_precision[0] ? m->teacher_precision : NULL);
    json_out_int(&j, "complete", m->complete);
    json_out_int(&j, "sequences", n->sequences);
    json_out_int(&j, "tokens", n->tokens);
    json_out_int(&j, "token_bytes", m->token_bytes);
    json_out_int(&j, "positions", n->positions);
    json_out_int(&j, "blob_bytes", (int64_t)n->blob_bytes);
    json_out_real(&j, "bytes_per_position", n->positions > 0 ? (double)n->blob_bytes / (double)n->positions : 0.0);
    return json_out_write(&j, stdout, "stdout", "cannot write the summary");
}

static void print_text(const char *path, const labels_meta *m, const db_counts *n)
{
    const model_config *c = &m->teacher_config;
    char seed_text[40] = "";
    if (m->sample_seed[0])
        snprintf(seed_text, sizeof seed_text, " (seed %s)", m->sample_seed);
    char precision_text[40] = "";
    if (m->teacher_precision[0])
        snprintf(precision_text, sizeof precision_text, ", teacher in %s", m->teacher_precision);
    printf("%s\n"
           "  teacher     %016" PRIx64 " (V=%d L=%d H=%d C=%d T=%d)\n"
           "  tokenizer   %016" PRIx64 " (%d tokens, %zu bytes)\n"
           "  labels      %s%s, k=%d, codec version %d%s, written by w2s %s\n"
           "  sequences   %" PRId64 "\n"
           "  tokens      %" PRId64 " (%d-byte ids, %" PRId64 " labeled positions)\n"
           "  blob bytes  %" PRIu64 " (%.2f per position)\n"
           "  complete    %s\n",
           path, m->teacher_hash, c->vocab, c->layers, c->heads, c->channels, c->seq_len,
           m->tokenizer_hash, n->tokenizer_vocab, m->tokenizer_len, m->label_kind, seed_text, m->k,
           m->codec_version, precision_text, m->tool_version, n->sequences, n->tokens, m->token_bytes, n->positions,
           n->blob_bytes,
           n->positions > 0 ? (double)n->blob_bytes / (double)n->positions : 0.0,
           m->complete ? "yes" : "no: the distill that wrote it did not finish (rerun it to finish)");
}

/* Vocabulary size of the stored tokenizer blob. */
static int tokenizer_vocab(const char *path, const labels_meta *m, int *vocab)
{
    tokenizer *t = tok_deserialize(m->tokenizer, m->tokenizer_len);
    if (!t)
        return err_wrap("%s: tokenizer", path);
    *vocab = tok_vocab_size(t);
    tok_free(t);
    return 0;
}

int distill_info(const char *path, bool json)
{
    labels_db *db = labels_db_open_read(path);
    if (!db)
        return -1;
    labels_meta m = {0};
    db_counts n = {0};
    int rc = labels_db_meta(db, &m);
    if (rc == 0)
        rc = labels_db_count(db, &n.sequences, &n.tokens);
    if (rc == 0)
        rc = blob_bytes(path, &n.blob_bytes);
    if (rc == 0)
        rc = tokenizer_vocab(path, &m, &n.tokenizer_vocab);
    if (labels_db_close(db) < 0)
        rc = -1;
    n.positions = n.tokens - n.sequences;
    if (rc == 0 && json)
        rc = print_json(path, &m, &n);
    else if (rc == 0)
        print_text(path, &m, &n);
    labels_meta_free(&m);
    return rc;
}
