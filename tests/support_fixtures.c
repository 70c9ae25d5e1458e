/* support_fixtures: shared in-process fixtures for tests and benches (see
 * support_fixtures.h). */
#include "support_fixtures.h"

#include <dirent.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/fileio.h"

#define FORTUNE_DIR "/usr/share/games/fortunes"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

unsigned char *sfix_load_fortunes(size_t *len)
{
    unsigned char *text = NULL;
    *len = 0;
    DIR *d = opendir(FORTUNE_DIR);
    if (!d)
        return NULL;
    char *names[512];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512)
        if (e->d_name[0] != '.' && !strchr(e->d_name, '.') && (names[n] = strdup(e->d_name)))
            n++;
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    int oom = 0;   /* then the rest is skipped and NULL returned */
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        unsigned char *data;
        size_t dlen;
        if (!oom && snprintf(path, sizeof path, "%s/%s", FORTUNE_DIR, names[i]) > 0 &&
            file_read_all(path, &data, &dlen) == 0) {
            unsigned char *grown = realloc(text, *len + dlen);
            if (grown) {
                memcpy(grown + *len, data, dlen);
                *len += dlen;
            } else {
                free(text);
                *len = 0;
                oom = 1;
            }
            text = grown;
            free(data);
        }
        free(names[i]);
    }
    return text;
}

double sfix_topk_row(const float *z, int V, int k, unsigned char *used, int32_t *ids, float *lp,
                     double *mx)
{
    double m = z[0], sum = 0.0;
    for (int j = 1; j < V; j++)
        m = fmax(m, z[j]);
    for (int j = 0; j < V; j++)
        sum += exp(z[j] - m);
    double log_sum = log(sum);
    memset(used, 0, (size_t)V);
    for (int q = 0; q < k && q < V; q++) {
        int best = -1;
        for (int j = 0; j < V; j++)
            if (!used[j] && (best < 0 || z[j] > z[best]))
                best = j;
        used[best] = 1;
        ids[q] = best;
        lp[q] = (float)(z[best] - m - log_sum);
    }
    if (mx)
        *mx = m;
    return log_sum;
}

void sfix_kd_teacher(rng_state *rng, int V, int k, double spread, int32_t *ids, float *lp, float *tail)
{
    float z[4096];
    unsigned char used[4096];
    for (int j = 0; j < V; j++)
        z[j] = (float)(spread * rng_normal(rng));
    sfix_topk_row(z, V, k, used, ids, lp, NULL);
    double top = 0.0;
    for (int r = 0; r < k; r++)
        top += exp((double)lp[r]);
    *tail = (float)fmax(0.0, 1.0 - top);
}

int sfix_db_integrity(const char *path, int flags)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s: %s (code %d)\n", path, db ? sqlite3_errmsg(db) : "cannot open", db ? sqlite3_extended_errcode(db) : -1);
        goto done;
    }
    if (sqlite3_step(st) != SQLITE_ROW) {
        fprintf(stderr, "%s: integrity_check: %s (code %d)\n", path, sqlite3_errmsg(db), sqlite3_extended_errcode(db));
        goto done;
    }
    const char *res = (const char *)sqlite3_column_text(st, 0);
    if (!res || strcmp(res, "ok") != 0) {
        fprintf(stderr, "%s: integrity_check: %s\n", path, res ? res : "(null)");
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    if (sqlite3_close(db) != SQLITE_OK) {
        fprintf(stderr, "%s: close: %s\n", path, sqlite3_errmsg(db));
        rc = -1;
    }
    return rc;
}

int sfix_blob_cuts_rejected(const unsigned char *blob, size_t len,
                            int (*decode)(const unsigned char *blob, size_t len))
{
    for (size_t cut = 0; cut <= len; cut++) {
        size_t n = cut < len ? cut : len + 1;
        unsigned char *copy = malloc(n ? n : 1);
        if (!copy) {
            fprintf(stderr, "sfix_blob_cuts_rejected: out of memory\n");
            return -1;
        }
        memcpy(copy, blob, cut);
        if (cut == len)
            copy[len] = 0;
        int rc = decode(copy, n);
        free(copy);
        const char *msg = err_message();
        if (rc != -1 || !*msg || (cut == len && !strstr(msg, "after the payload"))) {
            fprintf(stderr, "blob of %zu bytes: %s accepted or refused without the right "
                    "message (%s)\n", len, cut < len ? "a prefix" : "a trailing byte", msg);
            return -1;
        }
    }
    return 0;
}

void sfix_zipf_prior(rng_state *rng, uint32_t vocab, uint32_t *perm, float *prior)
{
    for (uint32_t v = 0; v < vocab; v++)
        perm[v] = v;
    for (uint32_t v = 0; v + 1 < vocab; v++) {
        uint32_t j = v + (uint32_t)rng_below(rng, v < 64 ? 64 : 512);
        j = j < vocab ? j : vocab - 1;
        uint32_t t = perm[v];
        perm[v] = perm[j];
        perm[j] = t;
    }
    for (uint32_t r = 0; r < vocab; r++)
        prior[perm[r]] = -2.2f * logf((float)r + 8.0f);
}

void sfix_bench_record(const char *name, double value, const char *unit)
{
    const char *build = getenv("BUILD");
    char path[4096];
    snprintf(path, sizeof path, "%s/bench.jsonl", build && *build ? build : "build");
    FILE *f = fopen(path, "a");
    if (!f) {
        fprintf(stderr, "bench: cannot append to %s\n", path);
        return;
    }
    fprintf(f, "{\"bench\": \"%s\", \"value\": %.9g, \"unit\": \"%s\"}\n", name, value, unit);
    fclose(f);
}

void sfix_bench_emit(const char *name, double value, const char *unit)
{
    printf("  %-40s %12.6g %s\n", name, value, unit);
    sfix_bench_record(name, value, unit);
}

unsigned char *sfix_golden_read(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, "tests/golden/%s", name);
    unsigned char *data = NULL;
    if (file_read_all(path, &data, len) < 0) {
        fprintf(stderr, "golden file %s: %s (tests run from the repository root)\n", path, err_message());
        return NULL;
    }
    return data;
}

int sfix_golden_matches(const char *name, const unsigned char *bytes, size_t len)
{
    const char *write = getenv("W2S_WRITE_GOLDEN");
    if (write && !strcmp(write, "1")) {
        char path[256];
        snprintf(path, sizeof path, "tests/golden/%s", name);
        if (file_write_atomic(path, bytes, len) < 0) {
            fprintf(stderr, "golden file %s: %s\n", path, err_message());
            return -1;
        }
    }
    size_t have_len;
    unsigned char *have = sfix_golden_read(name, &have_len);
    if (!have)
        return -1;
    int same = have_len == len && memcmp(have, bytes, len) == 0;
    if (!same)
        fprintf(stderr, "golden file tests/golden/%s: %zu bytes differ from the %zu encoded now\n", name,
                have_len, len);
    free(have);
    return same ? 0 : -1;
}

int sfix_patches_rejected(unsigned char *blob, size_t len, const sfix_patch *patches, size_t n,
                          int (*decode)(const unsigned char *blob, size_t len))
{
    for (size_t i = 0; i < n; i++) {
        unsigned char saved = blob[patches[i].at];
        blob[patches[i].at] = patches[i].value;
        int rc = decode(blob, len);
        blob[patches[i].at] = saved;
        if (rc != -1 || !strstr(err_message(), patches[i].message)) {
            fprintf(stderr, "patch %zu (byte %d = %#x): decode %d, message \"%s\" lacks \"%s\"\n", i,
                    patches[i].at, patches[i].value, rc, rc < 0 ? err_message() : "", patches[i].message);
            return -1;
        }
    }
    return 0;
}

const sfix_patch sfix_wide_vocab_patches[SFIX_WIDE_VOCAB_PATCHES] = {
    {13, 1, "vocab"},                              /* vocab above 2^24 */
    {12, 0, "outside vocab"},                      /* vocab 0x49f1: an index is too big */
    {12, 0x0f, "larger than the expected"},        /* vocab 0xf49f1 */
};
