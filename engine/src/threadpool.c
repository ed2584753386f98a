/* A fixed pool of worker threads running parallel-for ranges. The calling
 * thread takes part, so a pool of N threads starts N-1 workers. */
#include <pthread.h>
#include <stdlib.h>

#include "internal.h"

struct mi_threadpool {
  int n;
  pthread_t *workers;
  pthread_mutex_t mu;
  pthread_cond_t work_cv, done_cv;
  /* current job */
  mi_range_fn fn;
  void *ctx;
  int64_t total, chunk, next;
  int active;        /* workers still inside the current job */
  unsigned long gen; /* job generation, bumps per job */
  int quit;
};

static void run_chunks(mi_threadpool *p) {
  for (;;) {
    pthread_mutex_lock(&p->mu);
    int64_t b = p->next;
    if (b >= p->total) {
      pthread_mutex_unlock(&p->mu);
      return;
    }
    int64_t e = b + p->chunk < p->total ? b + p->chunk : p->total;
    p->next = e;
    mi_range_fn fn = p->fn;
    void *ctx = p->ctx;
    pthread_mutex_unlock(&p->mu);
    fn(ctx, b, e);
  }
}

static void *worker(void *arg) {
  mi_threadpool *p = arg;
  unsigned long seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->quit && p->gen == seen) pthread_cond_wait(&p->work_cv, &p->mu);
    if (p->quit) break;
    seen = p->gen;
    pthread_mutex_unlock(&p->mu);
    run_chunks(p);
    pthread_mutex_lock(&p->mu);
    if (--p->active == 0) pthread_cond_signal(&p->done_cv);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

mi_threadpool *mi_threadpool_create(int threads) {
  if (threads < 1) threads = 1;
  mi_threadpool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->n = threads;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work_cv, NULL);
  pthread_cond_init(&p->done_cv, NULL);
  if (threads > 1) {
    p->workers = calloc((size_t)threads - 1, sizeof *p->workers);
    if (!p->workers) {
      p->n = 1;
      return p;
    }
    for (int i = 0; i < threads - 1; i++) {
      if (pthread_create(&p->workers[i], NULL, worker, p) != 0) {
        p->n = i + 1; /* run with the workers we got */
        break;
      }
    }
  }
  return p;
}

void mi_threadpool_free(mi_threadpool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->quit = 1;
  pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->n - 1; i++) pthread_join(p->workers[i], NULL);
  free(p->workers);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->work_cv);
  pthread_cond_destroy(&p->done_cv);
  free(p);
}

int mi_threadpool_size(const mi_threadpool *p) { return p ? p->n : 1; }

void mi_threadpool_run(mi_threadpool *p, int64_t n, int64_t grain, mi_range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int nt = p ? p->n : 1;
  if (nt <= 1 || n <= grain) {
    fn(ctx, 0, n);
    return;
  }
  /* A few chunks per thread balance uneven work without much locking. */
  int64_t chunk = (n + (int64_t)nt * 4 - 1) / ((int64_t)nt * 4);
  if (chunk < grain) chunk = grain;
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->ctx = ctx;
  p->total = n;
  p->chunk = chunk;
  p->next = 0;
  p->active = p->n - 1;
  p->gen++;
  pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->mu);
  run_chunks(p);
  pthread_mutex_lock(&p->mu);
  while (p->active > 0) pthread_cond_wait(&p->done_cv, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

void mi_parallel_for(mi_exec *ex, int64_t n, int64_t grain, mi_range_fn fn, void *ctx) {
  mi_threadpool_run(ex ? ex->pool : NULL, n, grain, fn, ctx);
}

void *mi_exec_scratch(mi_exec *ex, size_t bytes) {
  (void)ex;
  return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}
void mi_exec_scratch_release(mi_exec *ex, void *p) {
  (void)ex;
  free(p);
}
