/* The engine's process-wide worker threads, shared by the GEMM driver and the
 * operators' parallel loops: one set of threads serves a whole inference, and
 * between the many short jobs of a network the workers spin briefly before
 * sleeping, so a job starts without a futex wake-up (which costs tens of
 * microseconds on a virtual machine, per job).
 *
 * Use: if (mi_pool_acquire()) { nt = mi_pool_threads(want); mi_pool_run(nt,
 * fn, ctx); mi_pool_release(); } else { do the work on this thread }.
 * The pool serves one caller at a time; a concurrent or nested caller finds
 * it busy and works alone. */
#ifndef MEDINFER_POOL_H
#define MEDINFER_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*mi_pool_fn)(void *ctx, int tid, int nt);

/* Takes the pool if no one holds it (never blocks). */
bool mi_pool_acquire(void);
/* With the pool held: starts workers so that up to `want` threads (the
 * caller included) can run; returns how many can (>= 1). */
int mi_pool_threads(int want);
/* With the pool held: fn(ctx, t, nt) for every t in [0, nt), t = 0 on the
 * calling thread; returns when all have returned. */
void mi_pool_run(int nt, mi_pool_fn fn, void *ctx);
void mi_pool_release(void);

/* Guided self-scheduling of [0, total) among nt threads, *next (0 before
 * the job) the first unclaimed unit: claims [*b, *e), half of an even share
 * of what is left and at least grain units, or returns false when nothing
 * is left.  Long claims first, short ones last: a thread that falls behind
 * (another process on its core) leaves the others at most a short claim to
 * wait for, where equal shares could leave them idle for most of one. */
bool mi_pool_claim(atomic_llong *next, int64_t total, int64_t grain, int nt, int64_t *b, int64_t *e);

#ifdef __cplusplus
}
#endif

#endif
