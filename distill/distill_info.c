/* distill_info: `distill info` -- what a labels.db holds: the teacher's
 * config and identity, the tokenizer, k, codec and tool version, and counts
 * of sequences, tokens and blob bytes per labeled position, as text or as
 * one JSON object. Opens the database read-only. */
#include "distill.h"

#include "base/err.h"
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

int distill_info(const char *path, bool json)
{
    labels_db *db = labels_db_open_read(path);
    if (!db)
        return -1;
    labels_meta m = {0};
    int64_t sequences = 0, tokens = 0;
    uint64_t bytes = 0;
    int vocab = 0;
    int rc = labels_db_meta(db, &m);
    if (rc == 0)
        rc = labels_db_count(db, &sequences, &tokens);
    if (rc == 0)
        rc = blob_bytes(path, &bytes);
    if (rc == 0) {
        tokenizer *t = tok_deserialize(m.tokenizer, m.tokenizer_len);
        if (!t) {
            err_wrap("%s: tokenizer", path);
            rc = -1;
        } else {
            vocab = tok_vocab_size(t);
            tok_free(t);
        }
    }
    if (labels_db_close(db) < 0)
        rc = -1;
    if (rc < 0) {
        labels_meta_free(&m);
        return -1;
    }
    const model_config *c = &m.teacher_config;
    int64_t positions = tokens - sequences;
    double per_pos = positions > 0 ? (double)bytes / (double)positions : 0.0;
    char seed_json[40] = "null", seed_text[40] = "";
    if (m.sample_seed[0]) {
        snprintf(seed_json, sizeof seed_json, "\"%s\"", m.sample_seed);
        snprintf(seed_text, sizeof seed_text, " (seed %s)", m.sample_seed);
    }
    if (json)
        printf("{\"path\": \"%s\", \"teacher_hash\": \"%016" PRIx64 "\", \"teacher\": {\"vocab\": %d, "
               "\"layers\": %d, \"heads\": %d, \"channels\": %d, \"seq_len\": %d}, "
               "\"tokenizer_hash\": \"%016" PRIx64 "\", \"tokenizer_vocab\": %d, \"k\": %d, "
               "\"codec_version\": %d, \"tool_version\": \"%s\", \"label_kind\": \"%s\", \"sample_seed\": %s, "
               "\"sequences\": %" PRId64 ", \"tokens\": %" PRId64 ", \"token_bytes\": %d, "
               "\"positions\": %" PRId64 ", \"blob_bytes\": %" PRIu64 ", \"bytes_per_position\": %.3f}\n",
               path, m.teacher_hash, c->vocab, c->layers, c->heads, c->channels, c->seq_len,
               m.tokenizer_hash, vocab, m.k, m.codec_version, m.tool_version, m.label_kind, seed_json,
               sequences, tokens, m.token_bytes, positions, bytes, per_pos);
    else
        printf("%s\n"
               "  teacher     %016" PRIx64 " (V=%d L=%d H=%d C=%d T=%d)\n"
               "  tokenizer   %016" PRIx64 " (%d tokens, %zu bytes)\n"
               "  labels      %s%s, k=%d, codec version %d, written by w2s %s\n"
               "  sequences   %" PRId64 "\n"
               "  tokens      %" PRId64 " (%d-byte ids, %" PRId64 " labeled positions)\n"
               "  blob bytes  %" PRIu64 " (%.2f per position)\n",
               path, m.teacher_hash, c->vocab, c->layers, c->heads, c->channels, c->seq_len,
               m.tokenizer_hash, vocab, m.tokenizer_len, m.label_kind, seed_text, m.k, m.codec_version,
               m.tool_version, sequences, tokens, m.token_bytes, positions, bytes, per_pos);
    labels_meta_free(&m);
    return 0;
}
