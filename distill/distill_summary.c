/* distill_summary: the end of a successful distill run (see distill_job.h):
 * one line of counts and speeds on stderr (or "nothing to do" when every
 * record was stored already) unless quiet, and with --json one object on
 * stdout with the writer's counts and where the time went. */
#include "distill_job.h"

#include <inttypes.h>
#include <stdio.h>

void distill_summary_print(const distill_job *j, double seconds)
{
    const distill_options *o = j->opt;
    const distill_writer *w = &j->writer;
    if (!o->quiet) {
        if (w->records == 0 && j->queued == 0)
            fprintf(stderr, "distill: nothing to do: %" PRIu64 " records already labeled\n",
                    j->skipped);
        else
            fprintf(stderr,
                    "distill: %" PRIu64 " records, %" PRIu64 " sequences, %" PRIu64
                    " tokens in %.1f s (%.0f tokens/s; teacher forward %.0f tokens/s), "
                    "%.1f blob bytes per position; %" PRIu64 " already labeled\n",
                    w->records, w->sequences, w->tokens, seconds,
                    seconds > 0 ? (double)w->tokens / seconds : 0.0,
                    j->forward_seconds > 0 ? (double)j->forward_positions / j->forward_seconds : 0.0,
                    w->tokens ? (double)w->blob_bytes / (double)w->tokens : 0.0, j->skipped);
    }
    if (o->json)
        printf("{\"records\": %" PRIu64 ", \"sequences\": %" PRIu64 ", \"tokens\": %" PRIu64
               ", \"seconds\": %.3f, \"blob_bytes\": %" PRIu64 ", \"skipped\": %" PRIu64
               ", \"other_shard\": %" PRIu64 ", \"setup_seconds\": %.3f, \"forward_seconds\": %.3f"
               ", \"label_seconds\": %.3f, \"writer_wait_seconds\": %.3f}\n",
               w->records, w->sequences, w->tokens, seconds, w->blob_bytes, j->skipped,
               j->other_shard, j->setup_seconds, j->forward_seconds, j->label_seconds,
               j->wait_seconds);
}
