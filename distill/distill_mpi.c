/* distill_mpi: one shard per MPI rank, merged by rank 0; see distill_mpi.h. */
#include "distill_mpi.h"

#include "base/err.h"
#include "base/mem.h"
#include "base/mpi_comm.h"
#include "base/parallel.h"

#include <stdio.h>
#include <stdlib.h>

/* DB.shard-r-of-N (malloc'ed), or NULL + message. */
static char *shard_path(const char *db, int rank, int ranks)
{
    int n = snprintf(NULL, 0, "%s.shard-%d-of-%d", db, rank, ranks);
    char *path = n < 0 ? NULL : mem_alloc((size_t)n + 1, "shard path");
    if (path)
        snprintf(path, (size_t)n + 1, "%s.shard-%d-of-%d", db, rank, ranks);
    return path;
}

static int merge_shards(const distill_options *opt, int ranks)
{
    char **paths = mem_calloc((size_t)ranks, sizeof *paths, "shard paths");
    int rc = paths ? 0 : -1;
    for (int r = 0; r < ranks && rc == 0; r++)
        if (!(paths[r] = shard_path(opt->db, r, ranks)))
            rc = -1;
    if (rc == 0)
        rc = distill_merge(opt->db, (const char *const *)paths, ranks, opt->quiet, opt->json);
    for (int r = 0; paths && r < ranks; r++)
        free(paths[r]);
    free(paths);
    return rc;
}

int distill_mpi_run(const distill_options *opt)
{
    TRY(mpi_comm_init(NULL, NULL));
    const int rank = mpi_comm_rank(), ranks = mpi_comm_size();
    if (ranks == 1) {
        int rc = distill_run(opt);
        mpi_comm_finalize();
        return rc;
    }
    distill_options o = *opt;
    o.shard_index = opt->shard_index + opt->shard_count * rank;
    o.shard_count = opt->shard_count * ranks;
    o.quiet = opt->quiet || rank != 0;
    o.json = false;   /* the summary is the merge's */
    /* Ranks sharing a machine share its cores. */
    if (o.threads <= 0 && mpi_comm_local_size() > 1) {
        o.threads = parallel_cores() / mpi_comm_local_size();
        if (o.threads < 1)
            o.threads = 1;
    }
    char *path = shard_path(opt->db, rank, ranks);
    int rc = -1;
    if (path) {
        o.db = path;
        rc = distill_run(&o);
    }
    if (!mpi_comm_all_ok(rc == 0)) {
        if (rc == 0)
            rc = err_set("%s: another MPI rank failed (see its message); rerun to resume", opt->db);
        else
            err_wrap("rank %d", rank);
        rc = -1;
    } else if (rank == 0) {
        rc = merge_shards(opt, ranks);
    }
    free(path);
    mpi_comm_finalize();
    return rc;
}
