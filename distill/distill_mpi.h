/* distill_mpi: `distill` under `mpirun -np N` (README, "Scale beyond one
 * machine"; built with make MPI=1). Rank r labels shard r/N of the
 * records -- composed with --shard
 * i/n as shard i + n*r of n*N, so a job array of MPI jobs still covers every
 * record once -- into its own database DB.shard-r-of-N next to --db; when
 * every rank has finished, rank 0 merges the shards into --db (the merge
 * skips rows already there, so a rerun resumes every shard and merges
 * again). Only rank 0 prints. In a world of one (the plain build, or no
 * mpirun) it is exactly distill_run. */
#ifndef W2S_DISTILL_MPI_H
#define W2S_DISTILL_MPI_H

#include "distill.h"

/* Initialises MPI, runs this rank's shard, merges on rank 0 and finalises
 * MPI. @return 0, or -1 + message (a rank whose own shard succeeded reports
 * that another rank failed). */
int distill_mpi_run(const distill_options *opt);

#endif
