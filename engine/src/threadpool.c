/* Worker threads (pool.h) and the operators' parallel-for on top of them.
 *
 * Job hand-off without a lock on the fast path: the caller publishes the job
 * and bumps an atomic generation; workers spin on it for up to SPIN_US
 * (MEDINFER_SPIN_US overrides; 0 = always sleep) before sleeping on a
 * condition variable, and the caller spins on the pending count likewise.
 * A sleeper count tells the caller whether a broadcast is needed at all. */
#define _DEFAULT_SOURCE /* MADV_WIPEONFORK, with POSIX 2008 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "pool.h"

#define MAX_THREADS 64
#define SPIN_US 1000

static pthread_mutex_t g_call_mu = PTHREAD_MUTEX_INITIALIZER; /* the pool's holder */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;      /* sleeping and start-up */
static pthread_cond_t g_work_cv = PTHREAD_COND_INITIALIZER, g_done_cv = PTHREAD_COND_INITIALIZER;
/* Job word: generation << 8 | thread count, so a worker reads which job and
 * whether it takes part in one atomic load; one that does not never touches
 * the job fields, which the next job may be overwriting. */
static atomic_ulong g_gen;
static atomic_int g_pending, g_sleepers, g_main_waiting, g_quit;
static int g_workers; /* guarded by g_call_mu */
static unsigned long g_start_gen[MAX_THREADS];
static pthread_t g_thread[MAX_THREADS]; /* joinable: see pool_shutdown */
static pid_t g_pid;
/* Set to 1 in a page the kernel wipes in a forked child (MADV_WIPEONFORK),
 * so that a job asks the system for its pid only where the page reads 0:
 * getpid is a system call (glibc 2.25 on), about 1 us on a virtual machine,
 * and a network runs hundreds of jobs.  NULL where the advice is refused. */
static volatile unsigned char *g_canary;
/* The current job: written by the holder before g_gen is bumped. */
static mi_pool_fn g_fn;
static void *g_ctx;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static double spin_us(void) {
  static atomic_int v = -1;
  int r = atomic_load(&v);
  if (r < 0) {
    const char *e = getenv("MEDINFER_SPIN_US");
    r = e && *e ? atoi(e) : SPIN_US;
    if (r < 0) r = 0;
    atomic_store(&v, r);
  }
  return (double)r;
}

/* Spins until *v != seen (true) or the spin budget is spent (false). */
static bool spin_until_changed(atomic_ulong *v, unsigned long seen) {
  const double budget = spin_us();
  if (budget <= 0) return atomic_load(v) != seen;
  double t0 = 0;
  for (unsigned i = 0;; i++) {
    if (atomic_load_explicit(v, memory_order_acquire) != seen || atomic_load(&g_quit)) return true;
    cpu_relax();
    if ((i & 255) == 255) {
      const double t = now_us();
      if (t0 == 0) t0 = t;
      else if (t - t0 > budget) return false;
    }
  }
}

static void *worker(void *arg) {
  const int tid = (int)(intptr_t)arg;
  /* The job word when this worker was started (the next job may already be
   * published by the time the thread runs). */
  unsigned long seen = g_start_gen[tid];
  for (;;) {
    if (!spin_until_changed(&g_gen, seen)) {
      pthread_mutex_lock(&g_mu);
      atomic_fetch_add(&g_sleepers, 1);
      while (atomic_load(&g_gen) == seen && !atomic_load(&g_quit)) pthread_cond_wait(&g_work_cv, &g_mu);
      atomic_fetch_sub(&g_sleepers, 1);
      pthread_mutex_unlock(&g_mu);
    }
    if (atomic_load(&g_quit)) break;
    seen = atomic_load_explicit(&g_gen, memory_order_acquire);
    const int nt = (int)(seen & 255);
    if (tid < nt) {
      g_fn(g_ctx, tid, nt);
      if (atomic_fetch_sub(&g_pending, 1) == 1 && atomic_load(&g_main_waiting)) {
        pthread_mutex_lock(&g_mu);
        pthread_cond_signal(&g_done_cv);
        pthread_mutex_unlock(&g_mu);
      }
    }
  }
  return NULL;
}

/* The engine can be dlclose'd (a Slicer module library is): stop the workers
 * and join them, so none is still returning through this library's code when
 * it is unmapped. */
__attribute__((destructor)) static void pool_shutdown(void) {
  if (g_canary) munmap((void *)g_canary, 4096);
  g_canary = NULL;
  if (!g_pid || g_pid != getpid()) return;
  pthread_mutex_lock(&g_mu);
  atomic_store(&g_quit, 1);
  pthread_cond_broadcast(&g_work_cv);
  pthread_mutex_unlock(&g_mu);
  for (int i = 1; i <= g_workers; i++) pthread_join(g_thread[i], NULL);
  g_workers = 0;
}

bool mi_pool_acquire(void) { return pthread_mutex_trylock(&g_call_mu) == 0; }
void mi_pool_release(void) { pthread_mutex_unlock(&g_call_mu); }

static void set_canary(void) {
#ifdef MADV_WIPEONFORK
  if (!g_canary) {
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    if (madvise(p, 4096, MADV_WIPEONFORK)) {
      munmap(p, 4096);
      return;
    }
    g_canary = p;
  }
  *g_canary = 1;
#endif
}

/* A forked child has none of its parent's workers: it notices by the wiped
 * canary and its pid, and starts from scratch (no pthread_atfork handler,
 * which would outlive a dlclose'd engine). */
int mi_pool_threads(int want) {
  if (!(g_canary && *g_canary) && g_pid != getpid()) {
    pthread_mutex_init(&g_mu, NULL);
    pthread_cond_init(&g_work_cv, NULL);
    pthread_cond_init(&g_done_cv, NULL);
    g_workers = 0; /* the parent's threads do not exist here */
    atomic_store(&g_pending, 0);
    atomic_store(&g_sleepers, 0);
    atomic_store(&g_main_waiting, 0);
    g_pid = getpid();
    set_canary();
  }
  if (want > MAX_THREADS) want = MAX_THREADS;
  while (g_workers + 1 < want) {
    g_start_gen[g_workers + 1] = atomic_load(&g_gen);
    if (pthread_create(&g_thread[g_workers + 1], NULL, worker, (void *)(intptr_t)(g_workers + 1))) break;
    g_workers++;
  }
  return want < 1 ? 1 : want < g_workers + 1 ? want : g_workers + 1;
}

void mi_pool_run(int nt, mi_pool_fn fn, void *ctx) {
  if (nt > g_workers + 1) nt = g_workers + 1;
  if (nt <= 1) {
    fn(ctx, 0, 1);
    return;
  }
  g_fn = fn;
  g_ctx = ctx;
  atomic_store(&g_pending, nt - 1);
  atomic_store(&g_gen, ((atomic_load(&g_gen) >> 8) + 1) << 8 | (unsigned long)nt);
  if (atomic_load(&g_sleepers) > 0) {
    pthread_mutex_lock(&g_mu);
    pthread_cond_broadcast(&g_work_cv);
    pthread_mutex_unlock(&g_mu);
  }
  fn(ctx, 0, nt);
  /* Wait for the others: spin, then sleep. */
  const double budget = spin_us();
  double t0 = 0;
  for (unsigned i = 0; atomic_load_explicit(&g_pending, memory_order_acquire) > 0; i++) {
    cpu_relax();
    if ((i & 255) == 255) {
      const double t = now_us();
      if (t0 == 0) t0 = t;
      else if (t - t0 > budget) break;
    }
  }
  if (atomic_load(&g_pending) > 0) {
    pthread_mutex_lock(&g_mu);
    atomic_store(&g_main_waiting, 1);
    while (atomic_load(&g_pending) > 0) pthread_cond_wait(&g_done_cv, &g_mu);
    atomic_store(&g_main_waiting, 0);
    pthread_mutex_unlock(&g_mu);
  }
  atomic_thread_fence(memory_order_acquire);
}

/* ---- the operators' parallel-for ---------------------------------------- */
/* A session's pool is its thread count; the threads are the shared ones. */
struct mi_threadpool {
  int n;
};

mi_threadpool *mi_threadpool_create(int threads) {
  mi_threadpool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->n = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
  return p;
}

void mi_threadpool_free(mi_threadpool *p) { free(p); }

int mi_threadpool_size(const mi_threadpool *p) { return p ? p->n : 1; }

typedef struct range_job {
  mi_range_fn fn;
  void *ctx;
  int64_t total, grain;
  int nt;
  atomic_llong next;
} range_job;

bool mi_pool_claim(atomic_llong *next, int64_t total, int64_t grain, int nt, int64_t *b, int64_t *e) {
  long long at = atomic_load_explicit(next, memory_order_relaxed); /* atomic_llong's type, for the exchange */
  for (;;) {
    if (at >= total) return false;
    long long len = (total - at) / (2 * (long long)nt);
    if (len < grain) len = grain;
    if (len > total - at) len = total - at;
    if (atomic_compare_exchange_weak(next, &at, at + len)) { /* else at now holds the current value */
      *b = at, *e = at + len;
      return true;
    }
  }
}

static void run_chunks(void *vctx, int tid, int nt) {
  (void)tid;
  (void)nt;
  range_job *j = vctx;
  int64_t b, e;
  while (mi_pool_claim(&j->next, j->total, j->grain, j->nt, &b, &e)) j->fn(j->ctx, b, e);
}

void mi_threadpool_run(mi_threadpool *p, int64_t n, int64_t grain, mi_range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int nt = p ? p->n : 1;
  if (nt <= 1 || n <= grain || !mi_pool_acquire()) {
    fn(ctx, 0, n);
    return;
  }
  nt = mi_pool_threads(nt);
  if ((int64_t)nt > (n + grain - 1) / grain) nt = (int)((n + grain - 1) / grain);
  range_job j = {fn, ctx, n, grain, nt, 0};
  mi_pool_run(nt, run_chunks, &j);
  mi_pool_release();
}

void mi_parallel_for(mi_exec *ex, int64_t n, int64_t grain, mi_range_fn fn, void *ctx) {
  mi_threadpool_run(ex ? ex->pool : NULL, n, grain, fn, ctx);
}
