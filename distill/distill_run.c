/* distill_run: the distill job from start to end -- set up, start the
 * writer thread, collect every input's records into batches that are
 * labeled as they fill up, label the last one, let the writer finish, seal
 * the database and print the summary. distill_job.h names the file of each
 * step; distill_internal.h describes the slots, labelers and writer.
 *
 * Resume: for each record the reader asks labels.db (through a connection of
 * its own that never writes) how many of its windows are stored with the
 * same content hash; a changed record is an error. Stored windows are still
 * tokenised and packed, so every batch holds what it held in an
 * uninterrupted run, but their rows are not computed again and a batch of
 * stored windows only is not run at all. The writer commits after every
 * batch, inside records too, and a record's windows go in order, so a run
 * killed any number of times loses at most the batches in flight and ends
 * with exactly the rows of an uninterrupted run. */
#include "distill_job.h"

#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>

/* Removes a database this run created and never stored a row in, with its
 * WAL and shared-memory files, so a failed first run leaves nothing behind. */
static void remove_database(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        char name[4096];
        snprintf(name, sizeof name, "%s%s", path, suffixes[i]);
        remove(name);
    }
}

/* Reads every input, labeling each batch that fills up, then the last one. */
static int label_inputs(distill_job *j)
{
    const distill_options *opt = j->opt;
    for (int i = 0; i < opt->n_inputs; i++)
        TRY(corpus_read(opt->inputs[i], &opt->records, distill_collect_record, j));
    if (j->queued + j->skipped + j->other_shard == 0)
        return err_set("%s%s: no records (empty corpus)", opt->inputs[0], opt->n_inputs > 1 ? " ..." : "");
    return distill_label_batch(j);
}

/* Stops the writer after it stored and committed what it was given, also
 * after a reader error, whose message is kept. */
static int finish_writer(distill_job *j, int rc)
{
    char reader_error[1024];
    snprintf(reader_error, sizeof reader_error, "%s", err_message());
    int wrc = distill_writer_finish(&j->writer);
    if (rc == 0)
        rc = wrc;
    else
        err_set("%s", reader_error);
    progress_finish(&j->prog);
    return rc;
}

/* 'complete' is cleared with the first rows (the writer) and set after the
 * last (schemas/labels.sql), so train can tell an interrupted run's output;
 * a run that stored nothing leaves a complete database untouched. */
static int mark_complete(distill_job *j)
{
    labels_meta meta;
    TRY(labels_db_meta(j->db, &meta));
    int complete = meta.complete;
    labels_meta_free(&meta);
    return complete && !j->writer.wrote ? 0 : labels_db_set_complete(j->db, 1);
}

int distill_run(const distill_options *opt)
{
    distill_job j = {.opt = opt, .B = opt->batch, .cur_record = -1};
    bool writer_started = false;
    int rc = -1;
    j.start = time_now();
    if (distill_setup(&j) < 0 || distill_writer_init(&j.writer, j.db, j.slots) < 0 ||
        distill_writer_start(&j.writer) < 0)
        goto done;
    writer_started = true;
    j.setup_seconds = time_now() - j.start;
    progress_start(&j.prog, "distill", distill_input_bytes(opt->inputs, opt->n_inputs), "bytes",
                   opt->quiet);
    rc = label_inputs(&j);
done:
    if (writer_started)
        rc = finish_writer(&j, rc);
    if (rc == 0)
        rc = mark_complete(&j);
    distill_writer_free(&j.writer);
    labels_db_close(j.lookup_db);
    /* Failed runs too: what they stored stays, as one file again. */
    if (j.db && labels_db_seal(j.db) < 0 && rc == 0)
        rc = -1;
    /* Removed before the close releases the writer lock, so no other
     * distill can have opened it in between. */
    if (rc < 0 && j.created_db && j.writer.records == 0)
        remove_database(opt->db);
    if (labels_db_close(j.db) < 0 && rc == 0)
        rc = -1;
    if (rc == 0)
        rc = distill_summary_print(&j, time_now() - j.start);
    distill_setup_free(&j);
    free(j.seq);
    return rc;
}
