/* parallel: a fixed pool of worker threads that run one function on every
 * thread at once (the caller is thread 0), for the model's row-parallel
 * passes. Waiting is passive (mutex + condition variables, pthread
 * barriers), never a spin, so the pool never competes with OpenBLAS or other
 * processes for the cores while it is idle. Work is split by the thread index
 * and count the function receives, never by shared counters, so a fixed
 * thread count gives a fixed partition and bit-identical results. */
#ifndef W2S_PARALLEL_H
#define W2S_PARALLEL_H

typedef struct parallel_pool parallel_pool;
/* Body of a parallel region: called once on each of nthreads threads. */
typedef void (*parallel_fn)(void *ctx, int tid, int nthreads);

/* Number of online cores (at least 1). */
int parallel_cores(void);
/* Starts threads - 1 workers (threads <= 0: parallel_cores()).
 * @return the pool, or NULL with a message if a thread cannot be started. */
parallel_pool *parallel_create(int threads);
/* Stops and joins the workers. Safe on NULL. */
void parallel_free(parallel_pool *p);
int parallel_threads(const parallel_pool *p);
/* Runs fn(ctx, tid, n) on every thread, the caller as tid 0, and returns when
 * all have returned. Not reentrant: one region at a time per pool. */
void parallel_run(parallel_pool *p, parallel_fn fn, void *ctx);
/* Inside a region: returns when every thread of the pool has called it. */
void parallel_barrier(parallel_pool *p);
/* Splits n items into nthreads contiguous ranges as evenly as possible;
 * sets [*begin, *end) of range tid. */
void parallel_split(long n, int tid, int nthreads, long *begin, long *end);

#endif
