/* labels_db: labels.db through the SQLite C API.
 *
 * One handle wraps one connection and its cached prepared statements. Writers
 * use WAL with synchronous=NORMAL: a committed transaction survives the death
 * of the process at any instant (kill -9) and the file never corrupts; after a
 * power loss the last transactions may be missing but the database still opens
 * (out of scope: distill then relabels those records). A finished database
 * leaves WAL mode (labels_db_seal) so it is one file again. Readers open the file
 * read-only; user conditions for train --labels-where are compiled under an
 * authorizer that allows only reading, may call the extension's functions
 * (registered on the connection first) and run under a time budget. */
#include "labels/labels_db.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/err.h"
#include "base/filelock.h"
#include "base/output_path.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "base/progress.h"
#include "labels/ext/softlabel_ext.h"

#define BUSY_TIMEOUT_MS 10000

struct labels_db {
    sqlite3 *db;
    char *path;
    int writable;
    int wal;             /* switched to WAL by this handle's first transaction */
    int created;         /* this handle's open put the file at path */
    filelock lock;       /* writers only: one writer per database */
    int version;         /* PRAGMA user_version: 1 or 2 */
    int token_bytes;     /* bytes per id of the tokens blobs: 2 or 4 */
    sqlite3_stmt *begin, *commit, *has, *insert, *read;
    unsigned char *tok_blob; size_t tok_blob_cap;    /* tokens blob staging for inserts */
    int ext_registered;  /* the extension's SQL functions are on db */
};

/* Records "<path>: <what>: <sqlite message>". @return -1. */
static int db_fail(const labels_db *d, const char *what)
{
    int code = sqlite3_errcode(d->db);
    if (code == SQLITE_NOTADB)
        return err_set("%s: not an SQLite database", d->path);
    return err_set("%s: %s: %s", d->path, what, sqlite3_errmsg(d->db));
}

static int prepare(labels_db *d, const char *sql, sqlite3_stmt **stmt)
{
    if (sqlite3_prepare_v3(d->db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, NULL) != SQLITE_OK)
        return db_fail(d, "preparing a statement");
    return 0;
}

static int exec(labels_db *d, const char *sql, const char *what)
{
    if (sqlite3_exec(d->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(d, what);
    return 0;
}

/* Runs a statement that returns one integer row. */
static int query_int(labels_db *d, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(d, "reading the database header");
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return db_fail(d, "reading the database header");
    return 0;
}

/* Closes d after a failed open without letting the close replace the
 * message of the failure. @return NULL. */
static labels_db *close_keeping_error(labels_db *d)
{
    char *msg = mem_strdup(err_message());
    labels_db_close(d);
    if (msg) {
        err_set("%s", msg);
        free(msg);
    }
    return NULL;
}

static labels_db *open_handle(const char *path, int flags)
{
    labels_db *d = mem_calloc(1, sizeof *d, "labels.db handle");
    if (!d)
        return NULL;
    d->lock.fd = -1;
    d->path = mem_strdup(path);
    if (!d->path) {
        free(d);
        return NULL;
    }
    if (sqlite3_open_v2(path, &d->db, flags | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
        if (d->db)
            db_fail(d, "cannot open");
        else
            err_set("%s: cannot open: out of memory", path);
        return close_keeping_error(d);
    }
    sqlite3_extended_result_codes(d->db, 1);
    sqlite3_busy_timeout(d->db, BUSY_TIMEOUT_MS);
    return d;
}

/* Refuses a database whose user_version is not one we read (0 with no tables
 * means "empty": only a writer may create the schema in it). Version 1
 * differs from 2 only in having no token_bytes in meta (its tokens blobs are
 * always 16-bit), so a writer extends a version 1 database as it is. */
static int check_version(labels_db *d, int *empty)
{
    int64_t version, tables;
    TRY(query_int(d, "PRAGMA user_version", &version));
    TRY(query_int(d, "SELECT COUNT(*) FROM sqlite_master", &tables));
    *empty = version == 0 && tables == 0;
    if (*empty)
        return 0;
    if (version != LABELS_SCHEMA_VERSION && version != LABELS_SCHEMA_V1)
        return err_set("%s: labels.db schema version %" PRId64 ", this program reads versions %d and %d",
                       d->path, version, LABELS_SCHEMA_V1, LABELS_SCHEMA_VERSION);
    d->version = (int)version;
    return 0;
}

int labels_token_bytes(int vocab)
{
    return vocab <= 65536 ? 2 : 4;
}

/* d->token_bytes from meta (schema version 2) or 2 (version 1). */
static int read_token_bytes(labels_db *d)
{
    d->token_bytes = 2;
    if (d->version == LABELS_SCHEMA_V1)
        return 0;
    int64_t v = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "SELECT value FROM meta WHERE key = 'token_bytes'", -1, &st, NULL) != SQLITE_OK)
        return db_fail(d, "reading meta");
    int rc = sqlite3_step(st);
    int is_int = rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER;
    if (is_int)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(d, "reading meta");
    if (!is_int || (v != 2 && v != 4))
        return err_set("%s: meta token_bytes missing or not 2 or 4", d->path);
    d->token_bytes = (int)v;
    return 0;
}

static int put_meta_text(labels_db *d, sqlite3_stmt *st, const char *key, const char *value)
{
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_fail(d, "writing meta");
}

static int put_meta_int(labels_db *d, sqlite3_stmt *st, const char *key, int64_t value)
{
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, value);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_fail(d, "writing meta");
}

static int put_meta_blob(labels_db *d, sqlite3_stmt *st, const char *key, const void *blob, size_t len)
{
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 2, blob ? blob : "", len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_fail(d, "writing meta");
}

static void hex64(uint64_t v, char out[17])
{
    snprintf(out, 17, "%016" PRIx64, v);
}

static int write_meta(labels_db *d, const labels_meta *m)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "INSERT INTO meta(key, value) VALUES (?, ?)", -1, &st, NULL) != SQLITE_OK)
        return db_fail(d, "writing meta");
    char teacher[17], tokenizer[17], created[32];
    hex64(m->teacher_hash, teacher);
    hex64(m->tokenizer_hash, tokenizer);
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &utc);
    const model_config *c = &m->teacher_config;
    int rc = put_meta_int(d, st, "schema_version", LABELS_SCHEMA_VERSION);
    if (!rc) rc = put_meta_int(d, st, "token_bytes", labels_token_bytes(c->vocab));
    if (!rc) rc = put_meta_text(d, st, "teacher_hash", teacher);
    if (!rc) rc = put_meta_int(d, st, "teacher_vocab", c->vocab);
    if (!rc) rc = put_meta_int(d, st, "teacher_layers", c->layers);
    if (!rc) rc = put_meta_int(d, st, "teacher_heads", c->heads);
    if (!rc) rc = put_meta_int(d, st, "teacher_channels", c->channels);
    if (!rc) rc = put_meta_int(d, st, "teacher_seq_len", c->seq_len);
    if (!rc) rc = put_meta_blob(d, st, "tokenizer", m->tokenizer, m->tokenizer_len);
    if (!rc) rc = put_meta_text(d, st, "tokenizer_hash", tokenizer);
    if (!rc) rc = put_meta_int(d, st, "k", m->k);
    if (!rc) rc = put_meta_int(d, st, "codec_version", m->codec_version);
    if (!rc) rc = put_meta_text(d, st, "label_kind", m->label_kind);
    if (!rc && m->sample_seed[0])
        rc = put_meta_text(d, st, "sample_seed", m->sample_seed);
    if (!rc && m->teacher_precision[0])
        rc = put_meta_text(d, st, "teacher_precision", m->teacher_precision);
    if (!rc) rc = put_meta_text(d, st, "quantisation",
                                "schemas/softlabel.md: ranks >= 1 on a 1/1024-nat grid with "
                                "probability-dependent steps; tail : rank-0 log-odds in 1/64 nat");
    if (!rc) rc = put_meta_text(d, st, "tool_version", m->tool_version);
    if (!rc) rc = put_meta_text(d, st, "created_at", created);
    sqlite3_finalize(st);
    return rc;
}

static int create_schema(labels_db *d, const labels_meta *m)
{
    TRY(exec(d, labels_schema_sql, "creating the schema"));
    return write_meta(d, m);
}

/* The settings that must match for rows to be mixed, as one message. */
static int compare_meta(const char *path, const labels_meta *have, const labels_meta *want)
{
    if (have->teacher_hash != want->teacher_hash)
        return err_set("%s: labels from teacher %016" PRIx64 ", not from this teacher (%016" PRIx64 ")",
                       path, have->teacher_hash, want->teacher_hash);
    if (have->tokenizer_hash != want->tokenizer_hash)
        return err_set("%s: labels made with tokenizer %016" PRIx64 ", not with this one (%016" PRIx64 ")",
                       path, have->tokenizer_hash, want->tokenizer_hash);
    if (have->k != want->k)
        return err_set("%s: labels hold the top %d, not the top %d", path, have->k, want->k);
    if (want->token_bytes && have->token_bytes != want->token_bytes)
        return err_set("%s: token ids of %d bytes, not %d", path, have->token_bytes, want->token_bytes);
    if (have->codec_version != want->codec_version)
        return err_set("%s: soft-label codec version %d, not %d", path, have->codec_version,
                       want->codec_version);
    if (strcmp(have->label_kind, want->label_kind) != 0)
        return err_set("%s: label kind '%s', not '%s'", path, have->label_kind, want->label_kind);
    /* Draws of two seeds would mix; databases of 0.1.0 did not record it. */
    if (have->sample_seed[0] && want->sample_seed[0] && strcmp(have->sample_seed, want->sample_seed) != 0)
        return err_set("%s: labels drawn with --seed %s, not %s", path, have->sample_seed,
                       want->sample_seed);
    /* bf16 and fp32 labels differ slightly (README, "Memory and speed"); one
     * database holds one kind. Databases before the key existed are fp32. */
    const char *had = have->teacher_precision[0] ? have->teacher_precision : "fp32";
    if (want->teacher_precision[0] && strcmp(had, want->teacher_precision) != 0)
        return err_set("%s: labels made with the teacher's products in %s, not %s (--precision)", path,
                       had, want->teacher_precision);
    return 0;
}

static int prepare_lookup(labels_db *d)
{
    return prepare(d, "SELECT COUNT(*), MIN(content_hash), MAX(content_hash), MAX(window) "
                      "FROM sequences WHERE source = ? AND member = ? AND record_index = ?", &d->has);
}

static int prepare_writer(labels_db *d)
{
    TRY(prepare(d, "BEGIN IMMEDIATE", &d->begin));
    TRY(prepare(d, "COMMIT", &d->commit));
    TRY(prepare_lookup(d));
    TRY(prepare(d, "INSERT INTO sequences(source, member, record_index, window, content_hash, n_tokens, "
                   "tokens, topk, mean_nll, mean_entropy, mean_tail_mass, mean_top1_prob) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &d->insert));
    return 0;
}

/* Creates the schema under one write transaction, so two writers starting
 * together cannot both create it. */
static int open_or_create(labels_db *d, const labels_meta *meta)
{
    TRY(exec(d, "PRAGMA synchronous = NORMAL", "setting synchronous mode"));
    TRY(exec(d, "BEGIN IMMEDIATE", "locking for creation"));
    int empty;
    int rc = check_version(d, &empty);
    if (rc == 0 && empty) {
        rc = create_schema(d, meta);
        d->version = LABELS_SCHEMA_VERSION;
    }
    if (rc == 0)
        rc = read_token_bytes(d);
    if (rc == 0)
        rc = exec(d, "COMMIT", "creating the schema");
    if (rc < 0) {
        sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    labels_meta have;
    TRY(labels_db_meta(d, &have));
    rc = compare_meta(d->path, &have, meta);
    labels_meta_free(&have);
    return rc;
}

/* Removes what creations of path by processes that no longer exist left
 * behind: "<path>.new-<pid>" and its "-journal", "-wal" and "-shm" (a kill
 * during create_whole). Files of a living pid are another creator's, and
 * anything else is not ours: both are left alone. Best effort: a directory
 * that cannot be read is skipped, since the creation itself reports errors. */
static void remove_stale_creations(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char dir[4096];
    int dir_len = slash ? (int)(slash - path) : 1;
    if (dir_len >= (int)sizeof dir)
        return;
    memcpy(dir, slash ? path : ".", (size_t)dir_len);
    dir[dir_len] = '\0';
    if (slash && dir_len == 0)
        snprintf(dir, sizeof dir, "/");
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t base_len = strlen(base);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (strncmp(name, base, base_len) != 0 || strncmp(name + base_len, ".new-", 5) != 0)
            continue;
        char *end;
        errno = 0;
        long pid = strtol(name + base_len + 5, &end, 10);
        if (errno || pid <= 0 || end == name + base_len + 5 ||
            (*end && strcmp(end, "-journal") != 0 && strcmp(end, "-wal") != 0 && strcmp(end, "-shm") != 0))
            continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char stale[8192];
        if (snprintf(stale, sizeof stale, "%s/%s", dir, name) < (int)sizeof stale)
            remove(stale);
    }
    closedir(d);
}

/* Creates a new database whole: the schema and meta are committed in a file
 * of this process's own ("<path>.new-<pid>"), which is locked and then linked
 * to path. So path never shows a half-created database (a kill during
 * creation leaves only the temporary file, which the next creation removes),
 * and a concurrent creator that
 * loses the race finds a complete database held by the winner's lock.
 * @return 0 with *created = 1 and *lock held, or *created = 0 when another
 * process created path first; -1 + message. */
static int create_whole(const char *path, const labels_meta *meta, filelock *lock, int *created)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.new-%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return err_set("%s: path too long", path);
    *created = 0;
    remove_stale_creations(path);
    remove(tmp);
    labels_db *d = open_handle(tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (!d)
        return -1;
    int rc = exec(d, "BEGIN IMMEDIATE", "creating the schema");
    if (rc == 0)
        rc = create_schema(d, meta);
    if (rc == 0)
        rc = exec(d, "COMMIT", "creating the schema");
    if (rc < 0)
        err_wrap("%s", path);
    if (labels_db_close(d) < 0 && rc == 0)
        rc = -1;
    if (rc == 0)
        rc = filelock_acquire(lock, tmp, "distill");
    if (rc == 0) {
        if (link(tmp, path) == 0)
            *created = 1;
        else if (errno == EEXIST)
            filelock_release(lock);
        else
            rc = err_errno(path, "creating");
    }
    if (rc < 0)
        filelock_release(lock);
    remove(tmp);
    return rc;
}

/* 0 when the lock's descriptor still names the file at path (a writer that
 * removed its empty database may have unlinked it since this one opened it). */
static int check_same_file(const filelock *lock, const char *path)
{
    struct stat held, now;
    if (fstat(lock->fd, &held) < 0)
        return err_errno(path, "checking");
    if (stat(path, &now) < 0)
        return err_errno(path, "opening");
    if (held.st_dev != now.st_dev || held.st_ino != now.st_ino)
        return err_set("%s: was replaced while opening it", path);
    return 0;
}

int labels_db_file_is_sqlite(const char *path)
{
    static const char header[16] = "SQLite format 3";
    return output_path_starts_with(path, header, sizeof header);
}

labels_db *labels_db_open_write(const char *path, const labels_meta *meta)
{
    filelock lock = {-1};
    int created = 0;
    if (!file_exists(path) && create_whole(path, meta, &lock, &created) < 0)
        return NULL;
    if (!created && filelock_acquire(&lock, path, "distill") < 0)
        return NULL;
    if (check_same_file(&lock, path) < 0) {
        filelock_release(&lock);
        return NULL;
    }
    labels_db *d = open_handle(path, SQLITE_OPEN_READWRITE);
    if (!d) {
        filelock_release(&lock);
        return NULL;
    }
    d->lock = lock;
    d->created = created;
    d->writable = 1;
    if (open_or_create(d, meta) < 0 || prepare_writer(d) < 0) {
        return close_keeping_error(d);
    }
    return d;
}

int labels_db_created(const labels_db *d)
{
    return d->created;
}

labels_db *labels_db_open_read(const char *path)
{
    labels_db *d = open_handle(path, SQLITE_OPEN_READONLY);
    if (!d)
        return NULL;
    int empty;
    if (check_version(d, &empty) < 0 || (empty && err_set("%s: empty database, not a labels.db", path)) ||
        read_token_bytes(d) < 0 ||
        prepare(d, "SELECT n_tokens, tokens, topk FROM sequences WHERE seq_id = ?", &d->read) < 0 ||
        prepare_lookup(d) < 0) {
        return close_keeping_error(d);
    }
    return d;
}

static int parse_hex64(const char *path, const char *key, const unsigned char *text, uint64_t *out)
{
    if (!text || strlen((const char *)text) != 16 ||
        strspn((const char *)text, "0123456789abcdefABCDEF") != 16)
        return err_set("%s: meta %s is not 16 hex digits", path, key);
    *out = strtoull((const char *)text, NULL, 16);
    return 0;
}

static int meta_int(const char *path, const char *key, sqlite3_stmt *st, int *out)
{
    if (sqlite3_column_type(st, 1) != SQLITE_INTEGER)
        return err_set("%s: meta %s is not an integer", path, key);
    int64_t v = sqlite3_column_int64(st, 1);
    if (v < 0 || v > INT32_MAX)
        return err_set("%s: meta %s = %" PRId64 " out of range", path, key, v);
    *out = (int)v;
    return 0;
}

static int meta_text(const char *path, const char *key, sqlite3_stmt *st, char *out, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, 1);
    if (!t || strlen((const char *)t) >= size)
        return err_set("%s: meta %s missing or longer than %zu bytes", path, key, size - 1);
    memcpy(out, t, strlen((const char *)t) + 1);
    return 0;
}

/* Stores one meta row into *m; unknown keys are ignored (newer writers may add
 * informative ones). Sets bit `seen` for each required key found. */
static int meta_row(labels_db *d, sqlite3_stmt *st, labels_meta *m, unsigned *seen)
{
    const char *key = (const char *)sqlite3_column_text(st, 0);
    const char *p = d->path;
    model_config *c = &m->teacher_config;
    if (!key)
        return 0;
    if (!strcmp(key, "teacher_hash")) {
        *seen |= 1;
        return parse_hex64(p, key, sqlite3_column_text(st, 1), &m->teacher_hash);
    }
    if (!strcmp(key, "tokenizer_hash")) {
        *seen |= 2;
        return parse_hex64(p, key, sqlite3_column_text(st, 1), &m->tokenizer_hash);
    }
    if (!strcmp(key, "tokenizer")) {
        *seen |= 4;
        int n = sqlite3_column_bytes(st, 1);
        const void *b = sqlite3_column_blob(st, 1);
        free(m->tokenizer);
        m->tokenizer = mem_alloc(n > 0 ? (size_t)n : 1, "tokenizer blob");
        if (!m->tokenizer)
            return -1;
        if (n > 0)
            memcpy(m->tokenizer, b, (size_t)n);
        m->tokenizer_len = (size_t)n;
        return 0;
    }
    static const char *const int_keys[] = {"k", "codec_version", "teacher_vocab", "teacher_layers",
                                           "teacher_heads", "teacher_channels", "teacher_seq_len"};
    int *const int_dst[] = {&m->k, &m->codec_version, &c->vocab, &c->layers, &c->heads,
                            &c->channels, &c->seq_len};
    for (int i = 0; i < 7; i++) {
        if (!strcmp(key, int_keys[i])) {
            *seen |= 8u << i;
            return meta_int(p, key, st, int_dst[i]);
        }
    }
    if (!strcmp(key, "tool_version")) {
        *seen |= 1u << 15;
        return meta_text(p, key, st, m->tool_version, sizeof m->tool_version);
    }
    if (!strcmp(key, "label_kind")) {
        *seen |= 1u << 16;
        return meta_text(p, key, st, m->label_kind, sizeof m->label_kind);
    }
    if (!strcmp(key, "sample_seed"))
        return meta_text(p, key, st, m->sample_seed, sizeof m->sample_seed);
    if (!strcmp(key, "teacher_precision"))
        return meta_text(p, key, st, m->teacher_precision, sizeof m->teacher_precision);
    if (!strcmp(key, "complete"))
        return meta_int(p, key, st, &m->complete);
    return 0;
}

int labels_db_meta(labels_db *d, labels_meta *out)
{
    memset(out, 0, sizeof *out);
    out->complete = 1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "SELECT key, value FROM meta", -1, &st, NULL) != SQLITE_OK)
        return db_fail(d, "reading meta");
    unsigned seen = 0;
    int rc, bad = 0;
    while (!bad && (rc = sqlite3_step(st)) == SQLITE_ROW)
        bad = meta_row(d, st, out, &seen) < 0;
    if (!bad && rc != SQLITE_DONE)
        bad = db_fail(d, "reading meta") < 0;
    sqlite3_finalize(st);
    const unsigned all = 0x3ff | 1u << 15 | 1u << 16;
    if (!bad && seen != all)
        bad = err_set("%s: meta table incomplete (key set %#x, expected %#x)", d->path, seen, all) < 0;
    out->token_bytes = d->token_bytes;
    if (bad) {
        labels_meta_free(out);
        return -1;
    }
    return 0;
}

void labels_meta_free(labels_meta *m)
{
    free(m->tokenizer);
    m->tokenizer = NULL;
    m->tokenizer_len = 0;
}

static int step_done(labels_db *d, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_fail(d, what);
}

/* WAL from the first write on, not at open: a run that fails before storing
 * anything leaves a sealed database byte for byte as it was. The switch
 * rewrites two bytes of page 1 in one write; it goes through MEMORY mode so
 * that no rollback journal file exists at any instant: a process killed
 * during the switch would leave a hot journal, which read-only openers
 * (train, `sqlite3 -readonly`) cannot roll back ("attempt to write a readonly
 * database"). */
static int use_wal(labels_db *d)
{
    if (d->wal)
        return 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "PRAGMA main.journal_mode", -1, &st, NULL) != SQLITE_OK)
        return db_fail(d, "reading the journal mode");
    int rc = sqlite3_step(st);
    int is_wal = rc == SQLITE_ROW && sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return db_fail(d, "reading the journal mode");
    /* Already WAL (a resumed run): leaving it, even for a moment, would need
     * every other connection closed. */
    d->wal = is_wal;
    if (d->wal)
        return 0;
    TRY(exec(d, "PRAGMA main.journal_mode = MEMORY", "setting WAL mode"));
    TRY(exec(d, "PRAGMA main.journal_mode = WAL", "setting WAL mode"));
    d->wal = 1;
    return 0;
}

int labels_db_begin(labels_db *d)
{
    if (!d->writable)
        return err_set("%s: opened read-only", d->path);
    TRY(use_wal(d));
    return step_done(d, d->begin, "beginning a transaction");
}

int labels_db_commit(labels_db *d)
{
    if (!d->writable)
        return err_set("%s: opened read-only", d->path);
    return step_done(d, d->commit, "committing");
}

int labels_db_set_complete(labels_db *d, int complete)
{
    if (!d->writable)
        return err_set("%s: opened read-only", d->path);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(d, "writing meta");
    int own = sqlite3_get_autocommit(d->db);   /* not inside labels_db_begin: a transaction of its own */
    int rc = own ? labels_db_begin(d) : 0;
    if (rc == 0)
        rc = put_meta_int(d, st, "complete", complete != 0);
    sqlite3_finalize(st);
    if (own && rc < 0 && !sqlite3_get_autocommit(d->db))
        exec(d, "ROLLBACK", "rolling back");
    if (own && rc == 0)
        rc = labels_db_commit(d);
    return rc;
}

int labels_db_stored_windows(labels_db *d, const char *source, const char *member,
                             uint64_t index, uint64_t hash, int64_t *windows)
{
    sqlite3_stmt *st = d->has;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, member, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)index);
    int rc = sqlite3_step(st);
    int64_t count = 0, last = -1;
    uint64_t lo = hash, hi = hash;
    if (rc == SQLITE_ROW && (count = sqlite3_column_int64(st, 0)) > 0) {
        lo = (uint64_t)sqlite3_column_int64(st, 1);
        hi = (uint64_t)sqlite3_column_int64(st, 2);
        last = sqlite3_column_int64(st, 3);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW)
        return db_fail(d, "looking up a record");
    if (lo != hash || hi != hash)
        return err_set("%s: input changed: record %" PRIu64 " of %s%s%s was labeled with content hash "
                       "%016" PRIx64 ", now it hashes to %016" PRIx64 " (use a new database)",
                       d->path, index, source, *member ? ":" : "", member, lo != hash ? lo : hi, hash);
    if (count > 0 && last != count - 1)
        return err_set("%s: record %" PRIu64 " of %s%s%s has %" PRId64 " windows stored but not "
                       "windows 0 to %" PRId64 " (not written by distill?)", d->path, index, source,
                       *member ? ":" : "", member, count, count - 1);
    *windows = count;
    return 0;
}

int labels_db_insert(labels_db *d, const labels_row *row)
{
    if (!d->writable)
        return err_set("%s: opened read-only", d->path);
    if (row->n_tokens < 1)
        return err_set("%s: inserting a sequence of %d tokens", d->path, row->n_tokens);
    size_t n = (size_t)row->n_tokens, w = (size_t)d->token_bytes;
    TRY(mem_reserve((void **)&d->tok_blob, &d->tok_blob_cap, w * n, 1, "token blob"));
    for (size_t i = 0; i < n; i++) {
        int32_t t = row->tokens[i];
        if (t < 0 || (w == 2 && t > 65535))
            return err_set("%s: token %d at %zu does not fit %zu bytes", d->path, (int)t, i, w);
        if (w == 2)
            bytes_put_u16(d->tok_blob + 2 * i, (uint32_t)t);
        else
            bytes_put_u32(d->tok_blob + 4 * i, (uint32_t)t);
    }
    sqlite3_stmt *st = d->insert;
    sqlite3_bind_text(st, 1, row->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, row->member, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)row->record_index);
    sqlite3_bind_int(st, 4, row->window);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)row->hash);
    sqlite3_bind_int(st, 6, row->n_tokens);
    sqlite3_bind_blob64(st, 7, d->tok_blob, w * n, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 8, row->topk ? (const void *)row->topk : "", row->topk_len, SQLITE_STATIC);
    sqlite3_bind_double(st, 9, row->mean_nll);
    sqlite3_bind_double(st, 10, row->mean_entropy);
    sqlite3_bind_double(st, 11, row->mean_tail);
    sqlite3_bind_double(st, 12, row->mean_top1);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE)
        return err_set("%s: inserting record %" PRIu64 " window %d of %s%s%s: %s", d->path,
                       row->record_index, row->window, row->source, *row->member ? ":" : "",
                       row->member, sqlite3_errmsg(d->db));
    return 0;
}

/* Lets a user condition read and call functions, nothing else. */
static int read_only_authorizer(void *ctx, int action, const char *a, const char *b,
                                const char *db_name, const char *trigger)
{
    (void)ctx; (void)a; (void)db_name; (void)trigger;
    if (action == SQLITE_FUNCTION)
        return b && !sqlite3_stricmp(b, "load_extension") ? SQLITE_DENY : SQLITE_OK;
    if (action == SQLITE_SELECT || action == SQLITE_READ || action == SQLITE_RECURSIVE)
        return SQLITE_OK;
    return SQLITE_DENY;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Compiles the selection with the user's condition between line breaks, so
 * a trailing `--` comment cannot swallow the closing parenthesis. */
static int prepare_selection(labels_db *d, const char *where, sqlite3_stmt **st)
{
    char *sql = NULL;
    if (asprintf(&sql, "SELECT seq_id FROM sequences WHERE (\n%s\n) ORDER BY seq_id",
                 where && *where ? where : "1") < 0)
        return err_set("%s: out of memory building the selection", d->path);
    if (!d->ext_registered) {
        char *msg = NULL;
        if (softlabel_ext_register(d->db, &msg) != SQLITE_OK) {
            err_set("%s: cannot register the SQL functions: %s", d->path, msg ? msg : "?");
            sqlite3_free(msg);
            free(sql);
            return -1;
        }
        d->ext_registered = 1;
    }
    const char *tail = NULL;
    sqlite3_set_authorizer(d->db, read_only_authorizer, NULL);
    int rc = sqlite3_prepare_v2(d->db, sql, -1, st, &tail);
    sqlite3_set_authorizer(d->db, NULL, NULL);
    int bad = 0;
    if (rc != SQLITE_OK)
        bad = err_set("%s: condition \"%s\" rejected: %s", d->path, where, sqlite3_errmsg(d->db));
    else if (tail && tail[strspn(tail, " \t\r\n")] != '\0')
        bad = err_set("%s: condition \"%s\" holds more than one statement", d->path, where);
    else if (!sqlite3_stmt_readonly(*st) || sqlite3_column_count(*st) != 1)
        bad = err_set("%s: condition \"%s\" is not a plain read-only condition", d->path, where);
    free(sql);
    if (bad) {
        sqlite3_finalize(*st);
        *st = NULL;
        return -1;
    }
    return 0;
}

/* sqlite3_progress_handler callback: stops the statement once the deadline
 * (monotonic seconds) has passed. */
static int past_deadline(void *deadline)
{
    return time_now() > *(const double *)deadline;
}

int labels_db_select_ids(labels_db *d, const char *where, double seconds, int64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *st;
    TRY(prepare_selection(d, where, &st));
    size_t cap = 0;
    int rc;
    double deadline = time_now() + seconds;
    if (seconds > 0)
        sqlite3_progress_handler(d->db, 1000, past_deadline, &deadline);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (mem_reserve((void **)ids, &cap, *n + 1, sizeof **ids, "sequence ids") < 0) {
            rc = SQLITE_NOMEM;
            break;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_progress_handler(d->db, 0, NULL, NULL);
    int fail = rc == SQLITE_NOMEM ? -1
             : rc == SQLITE_INTERRUPT && seconds > 0
                 ? err_set("%s: the condition \"%s\" did not finish within %g s", d->path, where, seconds)
             : rc != SQLITE_DONE ? db_fail(d, "selecting sequences") : 0;
    sqlite3_finalize(st);
    if (fail < 0) {
        free(*ids);
        *ids = NULL;
        *n = 0;
        return -1;
    }
    /* A condition ending in an open comment drops the ORDER BY. */
    if (*n)
        qsort(*ids, *n, sizeof **ids, cmp_i64);
    return 0;
}

int labels_db_read(labels_db *d, int64_t seq_id, int32_t *tokens, int max_tokens, int *n_tokens,
                   unsigned char **blob, size_t *blob_cap, size_t *blob_len)
{
    if (!d->read && prepare(d, "SELECT n_tokens, tokens, topk FROM sequences WHERE seq_id = ?", &d->read) < 0)
        return -1;
    sqlite3_stmt *st = d->read;
    sqlite3_bind_int64(st, 1, seq_id);
    int rc = sqlite3_step(st), fail = 0;
    if (rc == SQLITE_DONE) {
        fail = err_set("%s: no sequence with seq_id %" PRId64, d->path, seq_id);
    } else if (rc != SQLITE_ROW) {
        fail = db_fail(d, "reading a sequence");
    } else {
        int64_t n = sqlite3_column_int64(st, 0);
        const unsigned char *t = sqlite3_column_blob(st, 1);
        int t_len = sqlite3_column_bytes(st, 1);
        const void *b = sqlite3_column_blob(st, 2);
        size_t b_len = (size_t)sqlite3_column_bytes(st, 2);
        if (n < 1 || n > max_tokens)
            fail = err_set("%s: seq_id %" PRId64 ": n_tokens %" PRId64 " outside 1..%d", d->path, seq_id, n,
                           max_tokens);
        else if (!t || (int64_t)t_len != d->token_bytes * n)
            fail = err_set("%s: seq_id %" PRId64 ": tokens blob of %d bytes for %" PRId64 " tokens of %d bytes",
                           d->path, seq_id, t_len, n, d->token_bytes);
        else if (mem_reserve((void **)blob, blob_cap, b_len ? b_len : 1, 1, "soft-label blob") < 0)
            fail = -1;
        for (int64_t i = 0; i < n && !fail; i++) {
            uint32_t id = d->token_bytes == 2 ? bytes_get_u16(t + 2 * i) : bytes_get_u32(t + 4 * i);
            if (id > INT32_MAX)
                fail = err_set("%s: seq_id %" PRId64 ": token %" PRIu32 " at %" PRId64 " beyond 31 bits", d->path,
                               seq_id, id, i);
            tokens[i] = (int32_t)id;
        }
        if (!fail) {
            if (b_len)
                memcpy(*blob, b, b_len);
            *blob_len = b_len;
            *n_tokens = (int)n;
        }
    }
    sqlite3_reset(st);
    return fail;
}

int labels_db_count(labels_db *d, int64_t *sequences, int64_t *tokens)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "SELECT COUNT(*), COALESCE(SUM(n_tokens), 0) FROM sequences", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(d, "counting sequences");
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *sequences = sqlite3_column_int64(st, 0);
        *tokens = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_fail(d, "counting sequences");
}

/* "file:" URI of a path for a read-only ATTACH, percent-encoding every byte
 * that is not unreserved or '/'. malloc'ed. */
static char *readonly_uri(const char *path)
{
    size_t n = strlen(path);
    char *uri = mem_alloc(5 + 3 * n + 10, "shard URI");
    if (!uri)
        return NULL;
    char *o = uri + sprintf(uri, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~/", *p))
            *o++ = (char)*p;
        else
            o += sprintf(o, "%%%02X", *p);
    }
    strcpy(o, "?mode=ro");
    return uri;
}

static int shard_conflicts(labels_db *d, const char *shard_path)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db,
                           "SELECT s.source, s.member, s.record_index FROM shard.sequences s "
                           "JOIN main.sequences m USING (source, member, record_index, window) "
                           "WHERE s.content_hash != m.content_hash LIMIT 1", -1, &st, NULL) != SQLITE_OK)
        return db_fail(d, "comparing with the shard");
    int rc = sqlite3_step(st), fail = 0;
    if (rc == SQLITE_ROW)
        fail = err_set("%s: record %lld of %s:%s differs from the one already in %s (another input)",
                       shard_path, (long long)sqlite3_column_int64(st, 2), sqlite3_column_text(st, 0),
                       sqlite3_column_text(st, 1), d->path);
    else if (rc != SQLITE_DONE)
        fail = db_fail(d, "comparing with the shard");
    sqlite3_finalize(st);
    return fail;
}

int labels_db_merge_from(labels_db *d, const char *shard_path)
{
    if (!d->writable)
        return err_set("%s: opened read-only", d->path);
    labels_db *shard = labels_db_open_read(shard_path);
    if (!shard)
        return -1;
    labels_meta want, have;
    if (labels_db_meta(d, &want) < 0) {
        labels_db_close(shard);
        return -1;
    }
    int rc = labels_db_meta(shard, &have);
    labels_db_close(shard);
    if (rc == 0) {
        rc = compare_meta(shard_path, &have, &want);
        labels_meta_free(&have);
    }
    labels_meta_free(&want);
    TRY(rc);

    char *uri = readonly_uri(shard_path);
    if (!uri)
        return -1;
    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(d->db, "ATTACH DATABASE ? AS shard", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_finalize(st);
    }
    free(uri);
    if (rc != SQLITE_OK)
        return err_set("%s: cannot attach to %s: %s", shard_path, d->path, sqlite3_errmsg(d->db));
    int fail = use_wal(d);
    if (!fail)
        fail = exec(d, "BEGIN IMMEDIATE", "merging");
    if (!fail)
        fail = shard_conflicts(d, shard_path);
    if (!fail && sqlite3_exec(d->db,
                              "INSERT OR IGNORE INTO main.sequences(source, member, record_index, window, "
                              "content_hash, n_tokens, tokens, topk, mean_nll, mean_entropy, mean_tail_mass, "
                              "mean_top1_prob) SELECT source, member, record_index, window, content_hash, "
                              "n_tokens, tokens, topk, mean_nll, mean_entropy, mean_tail_mass, mean_top1_prob "
                              "FROM shard.sequences ORDER BY seq_id", NULL, NULL, NULL) != SQLITE_OK)
        fail = err_set("%s: copying into %s: %s", shard_path, d->path, sqlite3_errmsg(d->db));
    if (!fail)
        fail = exec(d, "COMMIT", "committing the merge");
    if (fail)
        sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
    if (sqlite3_exec(d->db, "DETACH DATABASE shard", NULL, NULL, NULL) != SQLITE_OK && !fail)
        fail = db_fail(d, "detaching the shard");
    return fail;
}

/* Runs a journal_mode pragma; a busy database (another connection open)
 * counts as done: it stays in WAL mode, which is as safe. */
static int set_journal_mode(labels_db *d, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
        return db_fail(d, "leaving WAL mode");
    return 0;
}

int labels_db_seal(labels_db *d)
{
    /* Not waiting for other connections: they would hold it for as long as
     * they are open. Through MEMORY mode, as in use_wal: leaving WAL rewrites
     * page 1 and no rollback journal file may exist while it does. */
    sqlite3_busy_timeout(d->db, 0);
    int rc = set_journal_mode(d, "PRAGMA main.journal_mode = MEMORY");
    if (rc == 0)
        rc = set_journal_mode(d, "PRAGMA main.journal_mode = DELETE");
    sqlite3_busy_timeout(d->db, BUSY_TIMEOUT_MS);
    return rc;
}

int labels_db_close(labels_db *d)
{
    if (!d)
        return 0;
    int fail = 0;
    sqlite3_stmt *stmts[] = {d->begin, d->commit, d->has, d->insert, d->read};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
        sqlite3_finalize(stmts[i]);
    if (d->db) {
        if (d->writable && sqlite3_get_autocommit(d->db) == 0)
            sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
        if (d->writable && sqlite3_wal_checkpoint_v2(d->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) != SQLITE_OK)
            fail = db_fail(d, "checkpointing the WAL");
        if (sqlite3_close(d->db) != SQLITE_OK)
            fail = err_set("%s: closing: %s", d->path, sqlite3_errmsg(d->db));
    }
    filelock_release(&d->lock);
    free(d->path);
    free(d->tok_blob);
    free(d);
    return fail;
}
