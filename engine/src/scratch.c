/* Kernels' scratch buffers, kept by the model between calls.
 *
 * A network asks for the same few sizes on every run.  Handed back to the C
 * library, a block above its mmap threshold (or one trimmed off the top of the
 * heap) returns to the system and is faulted in again, page by page, on the
 * next call: a 64-channel 3x3 layer at 56x56 on a graph input ran 3.4 ms a
 * call against 0.67 with the memory kept. */
#include "internal.h"

#include <stdlib.h>

#define ALIGN 64
#ifdef __SANITIZE_ADDRESS__
#define KEEP false /* each block freed, so that a read after release is caught */
#else
#define KEEP true
#endif

struct mi_scratch_block {
  void *p;
  size_t bytes;
  bool busy;
};

/* The idle blocks are all too small for a request: give them back, so that
 * blocks no request fits do not pile up (a network's sizes settle after a
 * run: what is kept is then about the most it has in use at one time). */
static void drop_idle(mi_exec *ex) {
  int keep = 0;
  for (int i = 0; i < ex->n_scratch; i++) {
    if (ex->scratch[i].busy) ex->scratch[keep++] = ex->scratch[i];
    else free(ex->scratch[i].p);
  }
  ex->n_scratch = keep;
}

void *mi_exec_scratch(mi_exec *ex, size_t bytes) {
  if (bytes > SIZE_MAX - ALIGN) return NULL;
  bytes = (bytes + ALIGN - 1) & ~(size_t)(ALIGN - 1);
  if (!ex || !KEEP || !ex->keep_scratch) return aligned_alloc(ALIGN, bytes);
  int best = -1; /* the smallest idle block that holds bytes */
  for (int i = 0; i < ex->n_scratch; i++)
    if (!ex->scratch[i].busy && ex->scratch[i].bytes >= bytes &&
        (best < 0 || ex->scratch[i].bytes < ex->scratch[best].bytes))
      best = i;
  if (best >= 0) {
    ex->scratch[best].busy = true;
    return ex->scratch[best].p;
  }
  drop_idle(ex);
  if (ex->n_scratch == ex->cap_scratch) {
    const int cap = ex->cap_scratch ? 2 * ex->cap_scratch : 8;
    mi_scratch_block *b = realloc(ex->scratch, (size_t)cap * sizeof *b);
    if (!b) return NULL;
    ex->scratch = b;
    ex->cap_scratch = cap;
  }
  void *p = aligned_alloc(ALIGN, bytes);
  if (!p) return NULL;
  ex->scratch[ex->n_scratch++] = (mi_scratch_block){p, bytes, true};
  return p;
}

void mi_exec_scratch_release(mi_exec *ex, void *p) {
  if (!p) return;
  if (ex)
    for (int i = 0; i < ex->n_scratch; i++)
      if (ex->scratch[i].p == p) {
        ex->scratch[i].busy = false;
        return;
      }
  free(p);
}

void mi_exec_scratch_free(mi_exec *ex) {
  for (int i = 0; i < ex->n_scratch; i++) free(ex->scratch[i].p);
  free(ex->scratch);
  ex->scratch = NULL;
  ex->n_scratch = ex->cap_scratch = 0;
}
