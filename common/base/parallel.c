/* parallel: persistent worker pool with passive waiting; see parallel.h.
 * A region is announced by bumping a generation counter under the mutex and
 * broadcasting; workers sleep on the condition variable between regions. */
#include "base/parallel.h"

#include "base/err.h"
#include "base/mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct parallel_pool {
    int threads;
    pthread_t *workers;
    int started;               /* workers successfully created */
    pthread_mutex_t lock;
    pthread_cond_t wake;       /* a new region or shutdown */
    pthread_cond_t done;       /* the last worker finished the region */
    pthread_barrier_t barrier;
    unsigned long generation;
    int pending;               /* workers still running the current region */
    int stop;
    parallel_fn fn;
    void *ctx;
};

typedef struct worker_arg {
    parallel_pool *pool;
    int tid;
} worker_arg;

int parallel_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (int)n : 1;
}

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    parallel_pool *p = wa->pool;
    int tid = wa->tid;
    free(wa);
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (p->generation == seen && !p->stop)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->stop) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        seen = p->generation;
        parallel_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->lock);

        fn(ctx, tid, p->threads);

        pthread_mutex_lock(&p->lock);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->lock);
    }
}

parallel_pool *parallel_create(int threads)
{
    if (threads <= 0)
        threads = parallel_cores();
    parallel_pool *p = mem_calloc(1, sizeof *p, "thread pool");
    if (!p)
        return NULL;
    p->threads = threads;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    pthread_barrier_init(&p->barrier, NULL, (unsigned)threads);
    p->workers = mem_calloc((size_t)threads, sizeof *p->workers, "thread pool");
    if (!p->workers)
        goto fail;
    for (int t = 1; t < threads; t++) {
        worker_arg *wa = mem_alloc(sizeof *wa, "thread pool");
        if (!wa)
            goto fail;
        wa->pool = p;
        wa->tid = t;
        if (pthread_create(&p->workers[t], NULL, worker_main, wa) != 0) {
            free(wa);
            err_set("thread pool: cannot start thread %d of %d", t + 1, threads);
            goto fail;
        }
        p->started = t;
    }
    return p;
fail:
    parallel_free(p);
    return NULL;
}

void parallel_free(parallel_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int t = 1; t <= p->started; t++)
        pthread_join(p->workers[t], NULL);
    pthread_barrier_destroy(&p->barrier);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p);
}

int parallel_threads(const parallel_pool *p)
{
    return p->threads;
}

void parallel_run(parallel_pool *p, parallel_fn fn, void *ctx)
{
    if (p->threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->ctx = ctx;
    p->pending = p->threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);

    fn(ctx, 0, p->threads);

    pthread_mutex_lock(&p->lock);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

void parallel_barrier(parallel_pool *p)
{
    if (p->threads > 1)
        pthread_barrier_wait(&p->barrier);
}

void parallel_split(long n, int tid, int nthreads, long *begin, long *end)
{
    long base = n / nthreads, extra = n % nthreads;
    *begin = tid * base + (tid < extra ? tid : extra);
    *end = *begin + base + (tid < extra ? 1 : 0);
}
