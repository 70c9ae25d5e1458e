/* distill_summary: the end of a successful distill run (see distill_job.h):
 * one line of counts and speeds on stderr (or "nothing to do" when every
 * record was stored already) unless quiet, and with --json one object on
 * stdout with the writer's counts and where the time went. */
#include "distill_job.h"

#include "base/json_out.h"

#include <inttypes.h>
#include <stdio.h>

int distill_summary_print(const distill_job *j, double seconds)
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
    if (!o->json)
        return 0;
    json_out out;
    json_out_begin(&out);
    json_out_int(&out, "records", (int64_t)w->records);
    json_out_int(&out, "sequences", (int64_t)w->sequences);
    json_out_int(&out, "tokens", (int64_t)w->tokens);
    json_out_real(&out, "seconds", seconds);
    json_out_string(&out, "precision", model_precision_name(model_get_precision(j->teacher)));
    json_out_int(&out, "blob_bytes", (int64_t)w->blob_bytes);
    json_out_int(&out, "skipped", (int64_t)j->skipped);
    json_out_int(&out, "other_shard", (int64_t)j->other_shard);
    json_out_real(&out, "setup_seconds", j->setup_seconds);
    json_out_real(&out, "forward_seconds", j->forward_seconds);
    json_out_real(&out, "label_seconds", j->label_seconds);
    json_out_real(&out, "writer_wait_seconds", j->wait_seconds);
    return json_out_write(&out, stdout, "stdout", "cannot write the summary");
}
