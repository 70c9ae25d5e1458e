/* softlabel_ext: SQLite loadable extension (build/softlabel.so) giving SQL
 * access to the soft labels of a labels.db (schemas/labels.sql).
 *
 *   .load build/softlabel.so
 *   SELECT token_text, prob FROM topk WHERE seq_id = 7 AND pos = 3;
 *   SELECT topk_json(topk), topk_entropy(topk), detokenize(tokens) FROM sequences;
 *
 * `topk` is an eponymous virtual table with one row per (seq_id, pos, rank)
 * of main.sequences: (seq_id, pos, rank, token_id, token_text, logprob, prob,
 * count); an equality on seq_id (and on pos) is used to read one sequence
 * (position), otherwise every sequence is scanned. Sampled labels (kind
 * sample:N) show one row per distinct id drawn, with its count, prob =
 * count / N and logprob = log(prob); count is NULL for top-k labels.
 * topk_kind(blob) names a blob's kind: 'topk:K' or 'sample:N'. token_text is
 * the token's bytes as the tokenizer gives them (a token may hold part of a
 * UTF-8 character); detokenize(tokens) joins the bytes of a tokens blob and
 * returns valid UTF-8 of the exact length (NUL bytes included): each
 * ill-formed or incomplete sequence, as where a window edge splits a
 * character, becomes U+FFFD, one per maximal subpart (Unicode's recommended
 * practice). Token text needs the tokenizer stored in meta and detokenize the
 * width of the ids (meta token_bytes, 2 in schema version 1); both are loaded
 * from the calling connection on first use and cached for the connection's
 * life. Bad blobs raise an SQL error, never a crash.
 *
 * The extension links the codec and tokenizer from libw2s.a but reaches
 * SQLite only through the sqlite3_api routines (sqlite3ext.h), so it can be
 * loaded into any SQLite host. */
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/err.h"
#include "base/mem.h"
#include "labels/ext/softlabel_ext.h"
#include "labels/softlabel.h"
#include "text/tokenizer.h"

int sqlite3_softlabel_init(sqlite3 *db, char **err_msg, const sqlite3_api_routines *api);

/* One decoded blob. Scalar functions share one per connection; each topk
 * cursor has its own, so nested queries do not overwrite each other. A
 * sampled blob fills counts too: a row's entries of count 0 are padding. */
typedef struct decoded {
    int32_t *ids;    size_t ids_cap;
    float *lp;       size_t lp_cap;
    float *tail;     size_t tail_cap;
    uint8_t *counts; size_t counts_cap;
    int sampled;                  /* the blob is of kind sample:N (N = k) */
} decoded;

static void decoded_free(decoded *d)
{
    free(d->ids);
    free(d->lp);
    free(d->tail);
    free(d->counts);
}

/* Per-connection state shared by the functions and the virtual table. */
typedef struct ext_conn {
    softlabel_codec *codec;       /* scratch only: no state between calls */
    tokenizer *tok;               /* NULL until first needed */
    int token_bytes;              /* width of a tokens blob's ids; 0 until first needed */
    decoded fn;                   /* buffers of the scalar functions */
} ext_conn;

static void conn_free(void *p)
{
    ext_conn *c = p;
    if (!c)
        return;
    softlabel_codec_free(c->codec);
    tok_free(c->tok);
    decoded_free(&c->fn);
    free(c);
}

/* Loads the tokenizer of meta on db into c (once). @return 0, or -1 with
 * *msg an sqlite3_mprintf'ed message. */
static int conn_tokenizer(ext_conn *c, sqlite3 *db, char **msg)
{
    if (c->tok)
        return 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT value FROM main.meta WHERE key = 'tokenizer'", -1, &st, NULL) != SQLITE_OK) {
        *msg = sqlite3_mprintf("softlabel: cannot read the tokenizer from meta: %s", sqlite3_errmsg(db));
        return -1;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *blob = sqlite3_column_blob(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        c->tok = blob && n > 0 ? tok_deserialize(blob, (size_t)n) : NULL;
        if (!c->tok)
            *msg = sqlite3_mprintf("softlabel: tokenizer in meta: %s",
                                   blob && n > 0 ? err_message() : "empty");
    } else {
        *msg = sqlite3_mprintf("softlabel: no tokenizer in meta");
    }
    sqlite3_finalize(st);
    return c->tok ? 0 : -1;
}

/* Sampled blobs: the counts exactly, log-probs log(count / N), tail 0. */
static int decode_sampled(ext_conn *c, decoded *d, const unsigned char *blob, size_t len,
                          const softlabel_info *info, int *n_pos, int *k)
{
    size_t n = (size_t)info->n_pos * info->k;
    TRY(mem_reserve((void **)&d->counts, &d->counts_cap, n, sizeof *d->counts, "counts"));
    TRY(softlabel_decode_sampled(c->codec, blob, len, info->vocab, info->n_pos, info->k, d->ids, d->counts,
                                 n_pos, k));
    for (size_t i = 0; i < n; i++)
        d->lp[i] = d->counts[i] ? (float)log((double)d->counts[i] / info->k) : -INFINITY;
    memset(d->tail, 0, sizeof *d->tail * (size_t)info->n_pos);
    return 0;
}

/* Decodes blob into d with c's codec. @return 0, or -1 with *msg set. */
static int conn_decode(ext_conn *c, decoded *d, const unsigned char *blob, size_t len, int *n_pos, int *k,
                       char **msg)
{
    softlabel_info info;
    int rc = softlabel_peek_info(blob, len, &info);
    size_t n = rc < 0 ? 0 : (size_t)info.n_pos * info.k;
    if (rc == 0)
        rc = mem_reserve((void **)&d->ids, &d->ids_cap, n, sizeof *d->ids, "ids");
    if (rc == 0)
        rc = mem_reserve((void **)&d->lp, &d->lp_cap, n, sizeof *d->lp, "log-probs");
    if (rc == 0)
        rc = mem_reserve((void **)&d->tail, &d->tail_cap, (size_t)info.n_pos, sizeof *d->tail, "tail");
    if (rc == 0) {
        d->sampled = info.kind == SOFTLABEL_KIND_SAMPLED;
        rc = d->sampled ? decode_sampled(c, d, blob, len, &info, n_pos, k)
                        : softlabel_decode(c->codec, blob, len, info.vocab, info.n_pos, info.k, d->ids,
                                           d->lp, d->tail, n_pos, k);
    }
    if (rc < 0) {
        *msg = sqlite3_mprintf("%s", err_message());
        return -1;
    }
    return 0;
}

/* Raises msg (an sqlite3_mprintf'ed message, NULL when that ran out of
 * memory) as the SQL error of ctx and frees it. */
static void result_error_msg(sqlite3_context *ctx, char *msg)
{
    sqlite3_result_error(ctx, msg ? msg : "softlabel: out of memory", -1);
    sqlite3_free(msg);
}

/* Makes the text built in s the result of ctx (s is consumed). @return 0, or
 * -1 after raising out-of-memory. */
static int result_str(sqlite3_context *ctx, sqlite3_str *s)
{
    int len = sqlite3_str_length(s);
    char *text = sqlite3_str_finish(s);
    if (!text && len > 0) {
        sqlite3_result_error_nomem(ctx);
        return -1;
    }
    sqlite3_result_text(ctx, text ? text : "", len, text ? sqlite3_free : SQLITE_TRANSIENT);
    return 0;
}

/* Decodes the blob argument of a scalar function into the connection's
 * buffers. @return the connection, or NULL when there is nothing to show:
 * the argument is NULL (so is the result) or bad (the SQL error is raised). */
static ext_conn *arg_decode(sqlite3_context *ctx, sqlite3_value *arg, int *n_pos, int *k)
{
    if (sqlite3_value_type(arg) == SQLITE_NULL)
        return NULL;
    ext_conn *c = sqlite3_user_data(ctx);
    const unsigned char *blob = sqlite3_value_blob(arg);
    int len = sqlite3_value_bytes(arg);
    char *msg = NULL;
    if (conn_decode(c, &c->fn, blob ? blob : (const unsigned char *)"", (size_t)len, n_pos, k, &msg) < 0) {
        result_error_msg(ctx, msg);
        return NULL;
    }
    return c;
}

/* topk_json(blob): [[[id, logprob], ...k], ...n_pos]; sampled blobs:
 * [[[id, logprob, count], ...distinct ids], ...n_pos]. */
static void fn_topk_json(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    int n_pos, k;
    ext_conn *c = arg_decode(ctx, argv[0], &n_pos, &k);
    if (!c)
        return;
    sqlite3_str *s = sqlite3_str_new(sqlite3_context_db_handle(ctx));
    sqlite3_str_appendchar(s, 1, '[');
    for (int i = 0; i < n_pos; i++) {
        sqlite3_str_appendall(s, i ? ",[" : "[");
        for (int r = 0; r < k; r++) {
            size_t at = (size_t)i * k + r;
            if (!c->fn.sampled)
                sqlite3_str_appendf(s, "%s[%d,%.9g]", r ? "," : "", (int)c->fn.ids[at], (double)c->fn.lp[at]);
            else if (c->fn.counts[at])
                sqlite3_str_appendf(s, "%s[%d,%.9g,%d]", r ? "," : "", (int)c->fn.ids[at],
                                    log((double)c->fn.counts[at] / k), (int)c->fn.counts[at]);
        }
        sqlite3_str_appendchar(s, 1, ']');
    }
    sqlite3_str_appendchar(s, 1, ']');
    if (result_str(ctx, s) == 0)
        sqlite3_result_subtype(ctx, 'J');
}

/* Entropy (nats) of one position's top-k plus the tail as one bucket (of a
 * sampled position: of the empirical distribution; pads have no mass). */
static double position_entropy(const float *lp, int k, float tail)
{
    double h = 0.0;
    for (int r = 0; r < k; r++) {
        double q = exp((double)lp[r]);
        if (q > 0.0)
            h -= q * (double)lp[r];
    }
    if (tail > 0)
        h -= (double)tail * log((double)tail);
    return h;
}

static void fn_topk_entropy(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    int n_pos, k;
    ext_conn *c = arg_decode(ctx, argv[0], &n_pos, &k);
    if (!c)
        return;
    double sum = 0.0;
    for (int i = 0; i < n_pos; i++)
        sum += position_entropy(c->fn.lp + (size_t)i * k, k, c->fn.tail[i]);
    sqlite3_result_double(ctx, sum / n_pos);
}

/* topk_kind(blob): 'topk:K' or 'sample:N' from the blob's header. */
static void fn_topk_kind(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
        return;
    const unsigned char *blob = sqlite3_value_blob(argv[0]);
    softlabel_info info;
    if (softlabel_peek_info(blob ? blob : (const unsigned char *)"", (size_t)sqlite3_value_bytes(argv[0]),
                            &info) < 0) {
        sqlite3_result_error(ctx, err_message(), -1);
        return;
    }
    char text[32];
    snprintf(text, sizeof text, "%s:%d", info.kind == SOFTLABEL_KIND_SAMPLED ? "sample" : "topk", info.k);
    sqlite3_result_text(ctx, text, -1, SQLITE_TRANSIENT);
}

/* Loads the width of the ids of the tokens blobs of db's labels.db (meta
 * token_bytes; a database of schema version 1 has none and 2-byte ids) into c
 * (once). @return 0, or -1 with *msg an sqlite3_mprintf'ed message. */
static int conn_token_bytes(ext_conn *c, sqlite3 *db, char **msg)
{
    if (c->token_bytes)
        return 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT value FROM main.meta WHERE key = 'token_bytes'", -1, &st, NULL) !=
        SQLITE_OK) {
        *msg = sqlite3_mprintf("softlabel: cannot read token_bytes from meta: %s", sqlite3_errmsg(db));
        return -1;
    }
    int rc = sqlite3_step(st);
    sqlite3_int64 w = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 2;
    sqlite3_finalize(st);
    if ((rc != SQLITE_ROW && rc != SQLITE_DONE) || (w != 2 && w != 4)) {
        *msg = sqlite3_mprintf("softlabel: meta token_bytes is not 2 or 4");
        return -1;
    }
    c->token_bytes = (int)w;
    return 0;
}

/* Length of the well-formed UTF-8 sequence at b[0 .. n) (1..4), or 0 when it
 * is ill-formed or cut short; *subpart then gets the length of its maximal
 * subpart (the lead byte and the continuation bytes that could still have
 * made it well-formed, at least 1). Ranges of the Unicode Standard, table
 * 3-7: no overlong forms, surrogates or code points above U+10FFFF. */
static size_t utf8_sequence(const unsigned char *b, size_t n, size_t *subpart)
{
    unsigned char c = b[0], lo = 0x80, hi = 0xbf;
    size_t need;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 1;
    else if (c >= 0xe0 && c <= 0xef)
        need = 2, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 3, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        need = 0, lo = 1, hi = 0;   /* not a lead byte */
    size_t j = 1;
    for (; j <= need && j < n && b[j] >= lo && b[j] <= hi; j++)
        lo = 0x80, hi = 0xbf;
    if (need && j == need + 1)
        return j;
    *subpart = j;
    return 0;
}

/* Appends b[0 .. n) to s as valid UTF-8: well-formed runs as they are, each
 * maximal subpart of an ill-formed sequence as U+FFFD. */
static void append_utf8(sqlite3_str *s, const unsigned char *b, size_t n)
{
    size_t run = 0, i = 0;   /* b[run .. i) is well-formed and not yet appended */
    while (i < n) {
        size_t subpart = 1, len = utf8_sequence(b + i, n - i, &subpart);
        if (len) {
            i += len;
            continue;
        }
        sqlite3_str_append(s, (const char *)b + run, (int)(i - run));
        sqlite3_str_append(s, "\xef\xbf\xbd", 3);
        i += subpart;
        run = i;
    }
    sqlite3_str_append(s, (const char *)b + run, (int)(i - run));
}

/* detokenize(tokens): the text of the ids of a tokens blob (meta token_bytes
 * per id, little-endian), EOT as nothing, as valid UTF-8 (append_utf8). */
static void fn_detokenize(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
        return;
    ext_conn *c = sqlite3_user_data(ctx);
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    char *msg = NULL;
    if (conn_tokenizer(c, db, &msg) < 0 || conn_token_bytes(c, db, &msg) < 0) {
        result_error_msg(ctx, msg);
        return;
    }
    const unsigned char *t = sqlite3_value_blob(argv[0]);
    int len = sqlite3_value_bytes(argv[0]), w = c->token_bytes;
    if (len % w) {
        result_error_msg(ctx, sqlite3_mprintf("detokenize: token blob of %d bytes is not whole %d-byte ids",
                                              len, w));
        return;
    }
    int vocab = tok_vocab_size(c->tok);
    sqlite3_str *raw = sqlite3_str_new(db);
    for (int i = 0; i < len; i += w) {
        uint32_t id = w == 2 ? bytes_get_u16(t + i) : bytes_get_u32(t + i);
        if (id >= (uint32_t)vocab) {
            sqlite3_free(sqlite3_str_finish(raw));
            result_error_msg(ctx, sqlite3_mprintf("detokenize: token %u at %d outside the vocabulary of %d",
                                                  id, i / w, vocab));
            return;
        }
        size_t n;
        const unsigned char *bytes = tok_token_bytes(c->tok, (int32_t)id, &n);
        sqlite3_str_append(raw, (const char *)bytes, (int)n);
    }
    int raw_len = sqlite3_str_length(raw);
    char *joined = sqlite3_str_finish(raw);
    if (!joined && raw_len > 0) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_str *s = sqlite3_str_new(db);
    append_utf8(s, (const unsigned char *)(joined ? joined : ""), (size_t)raw_len);
    sqlite3_free(joined);
    result_str(ctx, s);
}

/* ---- the topk virtual table ---- */

enum { COL_SEQ, COL_POS, COL_RANK, COL_TOKEN, COL_TEXT, COL_LOGPROB, COL_PROB, COL_COUNT };
enum { PLAN_SEQ = 1, PLAN_POS = 2 };

typedef struct topk_vtab {
    sqlite3_vtab base;
    sqlite3 *db;
    ext_conn *conn;
} topk_vtab;

typedef struct topk_cursor {
    sqlite3_vtab_cursor base;
    sqlite3_stmt *rows;           /* seq_id, topk of the sequences to show */
    decoded cur;                  /* the current sequence */
    int64_t seq_id;
    int n_pos, k, pos, rank;
    int pos_only;                 /* >= 0: show only this position */
    int eof;
} topk_cursor;

static int topk_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
                        char **err)
{
    (void)argc; (void)argv; (void)err;
    int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(seq_id INTEGER, pos INTEGER, rank INTEGER, "
                                      "token_id INTEGER, token_text TEXT, logprob REAL, prob REAL, "
                                      "count INTEGER)");
    if (rc != SQLITE_OK)
        return rc;
    topk_vtab *v = sqlite3_malloc(sizeof *v);
    if (!v)
        return SQLITE_NOMEM;
    memset(v, 0, sizeof *v);
    v->db = db;
    v->conn = aux;
    *out = &v->base;
    return SQLITE_OK;
}

static int topk_disconnect(sqlite3_vtab *v)
{
    sqlite3_free(v);
    return SQLITE_OK;
}

static int topk_best_index(sqlite3_vtab *v, sqlite3_index_info *info)
{
    (void)v;
    int seq = -1, pos = -1;
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *c = &info->aConstraint[i];
        if (!c->usable || c->op != SQLITE_INDEX_CONSTRAINT_EQ)
            continue;
        if (c->iColumn == COL_SEQ)
            seq = i;
        else if (c->iColumn == COL_POS)
            pos = i;
    }
    int plan = 0, arg = 0;
    if (seq >= 0) {
        plan |= PLAN_SEQ;
        info->aConstraintUsage[seq].argvIndex = ++arg;
        info->aConstraintUsage[seq].omit = 1;
    }
    if (pos >= 0) {
        plan |= PLAN_POS;
        info->aConstraintUsage[pos].argvIndex = ++arg;
        info->aConstraintUsage[pos].omit = 1;
    }
    info->idxNum = plan;
    info->estimatedCost = plan & PLAN_SEQ ? (plan & PLAN_POS ? 10.0 : 1000.0) : 1e9;
    info->estimatedRows = plan & PLAN_SEQ ? (plan & PLAN_POS ? 32 : 4096) : 100000000;
    if (info->nOrderBy == 1 && info->aOrderBy[0].iColumn == COL_SEQ && !info->aOrderBy[0].desc)
        info->orderByConsumed = 1;
    return SQLITE_OK;
}

static int topk_open(sqlite3_vtab *v, sqlite3_vtab_cursor **out)
{
    (void)v;
    topk_cursor *cur = sqlite3_malloc(sizeof *cur);
    if (!cur)
        return SQLITE_NOMEM;
    memset(cur, 0, sizeof *cur);
    cur->eof = 1;
    *out = &cur->base;
    return SQLITE_OK;
}

static int topk_close(sqlite3_vtab_cursor *base)
{
    topk_cursor *cur = (topk_cursor *)base;
    sqlite3_finalize(cur->rows);
    decoded_free(&cur->cur);
    sqlite3_free(cur);
    return SQLITE_OK;
}

static int cursor_error(topk_cursor *cur, char *msg)
{
    sqlite3_vtab *v = cur->base.pVtab;
    sqlite3_free(v->zErrMsg);
    v->zErrMsg = msg;
    return SQLITE_ERROR;
}

/* Steps to the next sequence with at least one row to show and decodes it. */
static int cursor_next_sequence(topk_cursor *cur)
{
    topk_vtab *v = (topk_vtab *)cur->base.pVtab;
    for (;;) {
        int rc = sqlite3_step(cur->rows);
        if (rc == SQLITE_DONE) {
            cur->eof = 1;
            return SQLITE_OK;
        }
        if (rc != SQLITE_ROW)
            return cursor_error(cur, sqlite3_mprintf("topk: %s", sqlite3_errmsg(v->db)));
        cur->seq_id = sqlite3_column_int64(cur->rows, 0);
        const unsigned char *blob = sqlite3_column_blob(cur->rows, 1);
        int len = sqlite3_column_bytes(cur->rows, 1);
        char *msg = NULL;
        if (conn_decode(v->conn, &cur->cur, blob ? blob : (const unsigned char *)"", (size_t)len, &cur->n_pos,
                        &cur->k, &msg) < 0)
            return cursor_error(cur, sqlite3_mprintf("topk: seq_id %lld: %s", (long long)cur->seq_id,
                                                     msg ? msg : "out of memory"));
        if (cur->pos_only >= cur->n_pos)
            continue;
        cur->pos = cur->pos_only >= 0 ? cur->pos_only : 0;
        cur->rank = 0;
        cur->eof = 0;
        return SQLITE_OK;
    }
}

static int topk_filter(sqlite3_vtab_cursor *base, int plan, const char *idx_str, int argc, sqlite3_value **argv)
{
    (void)idx_str; (void)argc;
    topk_cursor *cur = (topk_cursor *)base;
    topk_vtab *v = (topk_vtab *)base->pVtab;
    sqlite3_finalize(cur->rows);
    cur->rows = NULL;
    cur->eof = 1;
    cur->pos_only = -1;
    int arg = 0;
    const char *sql = plan & PLAN_SEQ ? "SELECT seq_id, topk FROM main.sequences WHERE seq_id = ?"
                                      : "SELECT seq_id, topk FROM main.sequences ORDER BY seq_id";
    if (sqlite3_prepare_v2(v->db, sql, -1, &cur->rows, NULL) != SQLITE_OK)
        return cursor_error(cur, sqlite3_mprintf("topk: %s", sqlite3_errmsg(v->db)));
    if (plan & PLAN_SEQ)
        sqlite3_bind_value(cur->rows, 1, argv[arg++]);
    if (plan & PLAN_POS) {
        sqlite3_value *p = argv[arg++];
        if (sqlite3_value_numeric_type(p) != SQLITE_INTEGER)
            return SQLITE_OK;                   /* no integer position matches */
        sqlite3_int64 want = sqlite3_value_int64(p);
        if (want < 0 || want > SOFTLABEL_MAX_POS)
            return SQLITE_OK;
        cur->pos_only = (int)want;
    }
    return cursor_next_sequence(cur);
}

static int topk_next(sqlite3_vtab_cursor *base)
{
    topk_cursor *cur = (topk_cursor *)base;
    /* a sampled position ends at its first pad (count 0) */
    if (++cur->rank < cur->k && (!cur->cur.sampled || cur->cur.counts[(size_t)cur->pos * cur->k + cur->rank]))
        return SQLITE_OK;
    cur->rank = 0;
    if (cur->pos_only < 0 && ++cur->pos < cur->n_pos)
        return SQLITE_OK;
    return cursor_next_sequence(cur);
}

static int topk_eof(sqlite3_vtab_cursor *base)
{
    return ((topk_cursor *)base)->eof;
}

static int topk_column(sqlite3_vtab_cursor *base, sqlite3_context *ctx, int col)
{
    topk_cursor *cur = (topk_cursor *)base;
    topk_vtab *v = (topk_vtab *)base->pVtab;
    ext_conn *c = v->conn;
    size_t at = (size_t)cur->pos * cur->k + cur->rank;
    switch (col) {
    case COL_SEQ: sqlite3_result_int64(ctx, cur->seq_id); break;
    case COL_POS: sqlite3_result_int(ctx, cur->pos); break;
    case COL_RANK: sqlite3_result_int(ctx, cur->rank); break;
    case COL_TOKEN: sqlite3_result_int(ctx, cur->cur.ids[at]); break;
    case COL_LOGPROB:
        if (cur->cur.sampled)
            sqlite3_result_double(ctx, log((double)cur->cur.counts[at] / cur->k));
        else
            sqlite3_result_double(ctx, cur->cur.lp[at]);
        break;
    case COL_PROB:
        if (cur->cur.sampled)
            sqlite3_result_double(ctx, (double)cur->cur.counts[at] / cur->k);
        else
            sqlite3_result_double(ctx, exp((double)cur->cur.lp[at]));
        break;
    case COL_COUNT:
        if (cur->cur.sampled)
            sqlite3_result_int(ctx, cur->cur.counts[at]);
        else
            sqlite3_result_null(ctx);
        break;
    case COL_TEXT: {
        char *msg = NULL;
        if (conn_tokenizer(c, v->db, &msg) < 0) {
            result_error_msg(ctx, msg);
            break;
        }
        int32_t id = cur->cur.ids[at];
        if (id >= tok_vocab_size(c->tok)) {
            sqlite3_result_null(ctx);
            break;
        }
        size_t n;
        const unsigned char *bytes = tok_token_bytes(c->tok, id, &n);
        sqlite3_result_text(ctx, (const char *)bytes, (int)n, SQLITE_TRANSIENT);
        break;
    }
    default: break;
    }
    return SQLITE_OK;
}

static int topk_rowid(sqlite3_vtab_cursor *base, sqlite3_int64 *rowid)
{
    topk_cursor *cur = (topk_cursor *)base;
    *rowid = (cur->seq_id * SOFTLABEL_MAX_POS + cur->pos) * SOFTLABEL_MAX_K + cur->rank;
    return SQLITE_OK;
}

static sqlite3_module topk_module = {
    .iVersion = 0,
    .xCreate = NULL,                /* eponymous-only: exists as `topk` in every schema */
    .xConnect = topk_connect,
    .xBestIndex = topk_best_index,
    .xDisconnect = topk_disconnect,
    .xDestroy = topk_disconnect,
    .xOpen = topk_open,
    .xClose = topk_close,
    .xFilter = topk_filter,
    .xNext = topk_next,
    .xEof = topk_eof,
    .xColumn = topk_column,
    .xRowid = topk_rowid,
};

int sqlite3_softlabel_init(sqlite3 *db, char **err_msg, const sqlite3_api_routines *api)
{
    SQLITE_EXTENSION_INIT2(api);
    ext_conn *c = calloc(1, sizeof *c);
    if (!c || !(c->codec = softlabel_codec_create())) {
        free(c);
        *err_msg = sqlite3_mprintf("softlabel: out of memory");
        return SQLITE_NOMEM;
    }
    /* The module owns c: SQLite frees it when the connection closes. */
    int rc = sqlite3_create_module_v2(db, "topk", &topk_module, c, conn_free);
    const int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "topk_json", 1, flags, c, fn_topk_json, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "topk_entropy", 1, flags, c, fn_topk_entropy, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "topk_kind", 1, flags, c, fn_topk_kind, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "detokenize", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, c,
                                     fn_detokenize, NULL, NULL);
    if (rc != SQLITE_OK)
        *err_msg = sqlite3_mprintf("softlabel: cannot register: %s", sqlite3_errmsg(db));
    return rc;
}

#ifdef SQLITE_CORE
int softlabel_ext_register(sqlite3 *db, char **err_msg)
{
    return sqlite3_softlabel_init(db, err_msg, NULL);
}
#endif
