/* Splitting the pipeline's host work between threads (internal). */
#ifndef MEDINFER_SEG_PARALLEL_H
#define MEDINFER_SEG_PARALLEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*mi_range_part_fn)(void *ctx, int64_t begin, int64_t end);

/* fn(ctx, b, e) over [0, n) in up to `threads` (0: all online cores; at most
 * 64) equal parts of at least `grain` items, the first on the calling thread,
 * which returns when all are done.  A thread is started per part and call
 * (about 60 us each on a 2-core VM): give parts enough work.  A part whose
 * thread cannot start runs on the calling thread. */
void mi_seg_for_range(int threads, int64_t n, int64_t grain, mi_range_part_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
