/* mpi_comm: MPI_COMM_WORLD collectives, or single-process no-ops without
 * W2S_MPI; see mpi_comm.h. */
#include "base/mpi_comm.h"

#include "base/err.h"

#ifdef W2S_MPI

#include "base/progress.h"

#include <limits.h>
#include <mpi.h>

static int inited, world_rank, world_size = 1, local_size = 1;
static double reduce_seconds, wait_seconds;

static int mpi_error(const char *what, int code)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
        len = 0;
    text[len] = '\0';
    return err_set("MPI: %s failed: %s", what, len ? text : "unknown error");
}

int mpi_comm_init(int *argc, char ***argv)
{
    int already = 0;
    if (MPI_Initialized(&already) != MPI_SUCCESS)
        return err_set("MPI: MPI_Initialized failed");
    if (!already) {
        int rc = MPI_Init(argc, argv);
        if (rc != MPI_SUCCESS)
            return mpi_error("MPI_Init", rc);
        inited = 1;
    }
    /* Errors come back as codes so a failed collective gets a message. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_size(node, &local_size);
        MPI_Comm_free(&node);
    }
    return 0;
}

void mpi_comm_finalize(void)
{
    if (inited)
        MPI_Finalize();
    inited = 0;
}

int mpi_comm_rank(void)
{
    return world_rank;
}

int mpi_comm_size(void)
{
    return world_size;
}

int mpi_comm_local_size(void)
{
    return local_size;
}

/* MPI counts are int: large buffers go in chunks. */
static int sum(void *buf, size_t n, size_t elem, MPI_Datatype type)
{
    if (world_size == 1)
        return 0;
    /* The barrier separates waiting for the slowest rank from the transfer
     * (costs microseconds; the allreduce would wait there anyway). */
    double t0 = time_now();
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS)
        return mpi_error("MPI_Barrier", rc);
    double t1 = time_now();
    wait_seconds += t1 - t0;
    for (size_t done = 0; done < n;) {
        size_t chunk = n - done > (size_t)INT_MAX ? (size_t)INT_MAX : n - done;
        rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + done * elem, (int)chunk, type, MPI_SUM,
                               MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_error("MPI_Allreduce", rc);
        done += chunk;
    }
    reduce_seconds += time_now() - t1;
    return 0;
}

int mpi_comm_sum_floats(float *buf, size_t n)
{
    return sum(buf, n, sizeof *buf, MPI_FLOAT);
}

int mpi_comm_sum_doubles(double *buf, size_t n)
{
    return sum(buf, n, sizeof *buf, MPI_DOUBLE);
}

int mpi_comm_all_ok(int ok)
{
    if (world_size == 1)
        return ok != 0;
    int mine = ok != 0, all = 0;
    if (MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS)
        return 0;
    return all;
}

int mpi_comm_all_equal(uint64_t v)
{
    if (world_size == 1)
        return 1;
    /* max(v) and max(~v) = ~min(v) in one reduction */
    uint64_t mine[2] = {v, ~v}, all[2];
    if (MPI_Allreduce(mine, all, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
        return 0;
    return all[0] == ~all[1];
}

int mpi_comm_barrier(void)
{
    int rc = world_size == 1 ? MPI_SUCCESS : MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? 0 : mpi_error("MPI_Barrier", rc);
}

void mpi_comm_abort(int code)
{
    if (world_size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
}

double mpi_comm_reduce_seconds(void)
{
    return reduce_seconds;
}

double mpi_comm_wait_seconds(void)
{
    return wait_seconds;
}

#else /* a world of one */

#include <stdlib.h>

int mpi_comm_init(int *argc, char ***argv)
{
    /* mpirun of a build without MPI starts N independent whole jobs that
     * would write the same files (interleaved metrics, one checkpoint over
     * another): refused, naming the fix. Open MPI and MPICH (Hydra) export
     * the world size to every process they start. */
    static const char *const size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof size_vars / sizeof *size_vars; i++) {
        const char *v = getenv(size_vars[i]);
        if (v && atoi(v) > 1)
            return err_set("started by mpirun as one of %d processes, but this build has no MPI: each "
                           "would run the whole job and write the same files (build with make MPI=1 and "
                           "run build/mpi/...)", atoi(v));
    }
    return 0;
}

void mpi_comm_finalize(void)
{
}

int mpi_comm_rank(void)
{
    return 0;
}

int mpi_comm_size(void)
{
    return 1;
}

int mpi_comm_local_size(void)
{
    return 1;
}

int mpi_comm_sum_floats(float *buf, size_t n)
{
    return 0;
}

int mpi_comm_sum_doubles(double *buf, size_t n)
{
    return 0;
}

int mpi_comm_all_ok(int ok)
{
    return ok != 0;
}

int mpi_comm_all_equal(uint64_t v)
{
    return 1;
}

int mpi_comm_barrier(void)
{
    return 0;
}

void mpi_comm_abort(int code)
{
}

double mpi_comm_reduce_seconds(void)
{
    return 0.0;
}

double mpi_comm_wait_seconds(void)
{
    return 0.0;
}

#endif
