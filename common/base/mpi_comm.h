/* mpi_comm: the programs' thin view of MPI (README, "Scale beyond one
 * machine") -- rank, size, the
 * few collectives data-parallel training and sharded distillation need, and
 * abort. Built with -DW2S_MPI (`make MPI=1`, compiled with mpicc) it calls
 * Open MPI on MPI_COMM_WORLD; in the plain build every function is a no-op
 * for a single process (rank 0 of 1), so callers need no #ifdef and the plain
 * build has no MPI dependency. All collectives must be called by every rank
 * in the same order. */
#ifndef W2S_MPI_COMM_H
#define W2S_MPI_COMM_H

#include <stddef.h>
#include <stdint.h>

/* Initialises MPI (idempotent; a process not started by mpirun is a world of
 * one). The plain build refuses to run as one of several processes started
 * by mpirun (each would do the whole job and write the same files).
 * @return 0, or -1 + message. */
int mpi_comm_init(int *argc, char ***argv);
/* Finalises MPI if mpi_comm_init started it. */
void mpi_comm_finalize(void);
/* This process's rank (0 before init and in the plain build). */
int mpi_comm_rank(void);
/* Number of ranks (1 before init and in the plain build). */
int mpi_comm_size(void);
/* Number of ranks on this machine (1 in the plain build), for dividing the
 * cores among them. */
int mpi_comm_local_size(void);
/* In-place sum of n floats / doubles over all ranks (the same result on every
 * rank). @return 0, or -1 + message. */
int mpi_comm_sum_floats(float *buf, size_t n);
int mpi_comm_sum_doubles(double *buf, size_t n);
/* @return 1 when ok is nonzero on every rank, else 0 (0 also when the
 * reduction itself fails). */
int mpi_comm_all_ok(int ok);
/* @return 1 when v is the same on every rank, else 0 (0 also when the
 * reduction fails). */
int mpi_comm_all_equal(uint64_t v);
/* Blocks until every rank has called it. @return 0, or -1 + message. */
int mpi_comm_barrier(void);
/* Ends every rank of the job with status code (a rank that failed alone
 * would otherwise leave the others waiting in a collective). Returns only
 * in a world of one. */
void mpi_comm_abort(int code);
/* Seconds spent in mpi_comm_sum_* since start: transferring and adding
 * (reduce), and before that waiting for the slowest rank to arrive (wait),
 * for the allreduce share of step time. */
double mpi_comm_reduce_seconds(void);
double mpi_comm_wait_seconds(void);

#endif
