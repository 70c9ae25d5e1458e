/* distill_merge: `distill merge` -- combines the databases of a sharded run
 * into one. The output is created with the first shard's meta data (or, when
 * it exists, must agree with it); labels_db_merge_from verifies each shard's
 * teacher, tokenizer, k and codec and copies its rows in one transaction, so
 * an interrupted merge can simply be run again. */
#include "distill.h"

#include "base/err.h"
#include "base/json_out.h"
#include "base/progress.h"
#include "labels/labels_db.h"

#include <inttypes.h>
#include <stdio.h>

/* The meta data of the database at path (release with labels_meta_free). */
static int read_meta(const char *path, labels_meta *meta)
{
    labels_db *d = labels_db_open_read(path);
    if (!d)
        return -1;
    int rc = labels_db_meta(d, meta);
    labels_db_close(d);
    return rc;
}

/* Clears *all when shard was left unfinished by its distill. */
static int shard_complete(const char *shard, int *all)
{
    labels_meta meta;
    TRY(read_meta(shard, &meta));
    *all &= meta.complete;
    labels_meta_free(&meta);
    return 0;
}

int distill_merge(const char *out, const char *const *shards, int n, bool quiet, bool json)
{
    labels_meta meta = {0};
    int rc;
    TRY(read_meta(shards[0], &meta));
    double start = time_now();
    labels_db *db = labels_db_open_write(out, &meta);
    labels_meta_free(&meta);
    if (!db)
        return -1;
    /* complete when every shard is (schemas/labels.sql) */
    int all_complete = 1;
    rc = labels_db_set_complete(db, 0);
    for (int i = 0; i < n && rc == 0; i++) {
        rc = shard_complete(shards[i], &all_complete);
        if (rc == 0)
            rc = labels_db_merge_from(db, shards[i]);
        if (rc == 0 && !quiet)
            fprintf(stderr, "distill merge: %s merged (%d/%d)\n", shards[i], i + 1, n);
    }
    int64_t sequences = 0, tokens = 0;
    if (rc == 0)
        rc = labels_db_count(db, &sequences, &tokens);
    if (rc == 0 && all_complete)
        rc = labels_db_set_complete(db, 1);
    if (rc == 0 && !all_complete && !quiet)
        fprintf(stderr, "distill merge: %s stays marked unfinished: a shard is (its distill was "
                "interrupted)\n", out);
    if (rc == 0)
        rc = labels_db_seal(db);
    if (labels_db_close(db) < 0)
        rc = -1;
    if (rc < 0)
        return -1;
    double seconds = time_now() - start;
    if (!quiet)
        fprintf(stderr, "distill merge: %s holds %" PRId64 " sequences, %" PRId64 " tokens (%.1f s)\n",
                out, sequences, tokens, seconds);
    if (!json)
        return 0;
    json_out j;
    json_out_begin(&j);
    json_out_int(&j, "shards", n);
    json_out_int(&j, "sequences", sequences);
    json_out_int(&j, "tokens", tokens);
    json_out_real(&j, "seconds", seconds);
    return json_out_write(&j, stdout, "stdout", "cannot write the summary");
}
