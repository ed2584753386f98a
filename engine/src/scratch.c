/* Kernels' scratch buffers, kept by the model between calls.
 *
 * A network asks for the same few sizes on every run.  Handed back to the C
 * library, a block above its mmap threshold (or one trimmed off the top of the
 * heap) returns to the system and is faulted in again, page by page, on the
 * next call: a 64-channel 3x3 layer at 56x56 on a graph input ran 3.4 ms a
 * call against 0.67 with the memory kept.
 *
 * A planned node's requests are stacked: each block starts where the last one
 * still held ends.  A plan's first run records the most each node stacks; the
 * plan then places that much room for the node in the arena, alive only while
 * the node runs (plan.c), so the scratch shares memory with the activations
 * instead of being held beside them between its uses.  A later request that
 * its room cannot hold takes a kept block. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "medinfer/hugepages.h"
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

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

static size_t stack_top(const mi_exec *ex) { return ex->n_stack ? ex->stack[ex->n_stack - 1].end : 0; }

/* While recording, a large block is mapped from the system and unmapped on
 * release.  From the C library it would raise its mmap threshold when freed
 * (glibc: to the block's size), after which such blocks, and the model's
 * other allocations of up to that size, come from its heap and stay resident
 * when freed: peak memory then hangs on the order of requests.
 *
 * The largest block given back is kept mapped as the spare, for the next
 * request it holds (a network's layers ask for their input copies one after
 * another): each fresh mapping was faulted in again, and a 4 KB page's first
 * touch costs about 10 us on these machines (the demo model's first run took
 * a third of its page faults in its padded copies).  A request the spare
 * cannot hold unmaps it first, so the two are never held at once; between
 * requests the spare stays resident (the 3D U-Net's first-run peak 478 ->
 * 495 MB, its first run's page faults 15.9k -> 15.7k, the demo model's 6.6k
 * -> 5.4k).  Blocks of 2 MB or more are mapped 2 MB-aligned and whole 2 MB
 * pages, all of them advised huge (the U-Net's first run 25k -> 15.9k page
 * faults). */
#define MAP_MIN ((size_t)128 << 10)

static void drop_spare(mi_exec *ex) {
  if (ex->spare) munmap(ex->spare, ex->spare_bytes);
  ex->spare = NULL, ex->spare_bytes = 0;
}

static size_t mapped_size(size_t bytes) {
  return bytes >= MI_HUGE_PAGE_BYTES ? (bytes + MI_HUGE_PAGE_BYTES - 1) & ~(MI_HUGE_PAGE_BYTES - 1) : bytes;
}

static void *map_block(size_t size) {
  const size_t extra = size >= MI_HUGE_PAGE_BYTES ? MI_HUGE_PAGE_BYTES : 0;
  char *p = mmap(NULL, size + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  if (extra) { /* trim to a 2 MB-aligned block */
    const size_t head = (MI_HUGE_PAGE_BYTES - (uintptr_t)p % MI_HUGE_PAGE_BYTES) % MI_HUGE_PAGE_BYTES;
    if (head) munmap(p, head);
    if (extra - head) munmap(p + head + size, extra - head);
    p += head;
  }
  mi_advise_huge(p, size);
  return p;
}

/* A block of bytes for the recording run; *mapped: the allocation's size. */
static void *recorded_alloc(mi_exec *ex, size_t bytes, size_t *mapped) {
  *mapped = bytes;
  if (bytes < MAP_MIN) return aligned_alloc(ALIGN, bytes);
  if (ex->spare && ex->spare_bytes >= bytes) {
    void *p = ex->spare;
    *mapped = ex->spare_bytes;
    ex->spare = NULL;
    return p;
  }
  drop_spare(ex);
  *mapped = mapped_size(bytes);
  return map_block(*mapped);
}

static void recorded_free(mi_exec *ex, void *p, size_t mapped) {
  if (mapped < MAP_MIN) {
    free(p);
    return;
  }
  if (ex->spare && ex->spare_bytes >= mapped) { /* keep the larger */
    munmap(p, mapped);
    return;
  }
  drop_spare(ex);
  ex->spare = p, ex->spare_bytes = mapped;
}

void mi_exec_scratch_recorded(mi_exec *ex) { drop_spare(ex); }

/* A block of the running node's stack (recorded or in its room): false when
 * p is none of them. */
static bool release_stacked(mi_exec *ex, void *p) {
  int i = ex->n_stack - 1;
  while (i >= 0 && !(ex->stack[i].busy && ex->stack[i].p == p)) i--;
  if (i < 0) return false;
  if (ex->stack[i].owned) recorded_free(ex, p, ex->stack[i].mapped);
  ex->stack[i].busy = false;
  while (ex->n_stack > 0 && !ex->stack[ex->n_stack - 1].busy) ex->n_stack--;
  return true;
}

void mi_exec_scratch_node(mi_exec *ex, size_t *need, void *room, size_t room_bytes) {
  /* a kernel releases its blocks before it returns; what one kept is not reused */
  ex->n_stack = 0;
  ex->need = KEEP ? need : NULL;
  ex->room = KEEP ? room : NULL;
  ex->room_bytes = ex->room ? room_bytes : 0;
}

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
  if (ex && (ex->need || ex->room)) {
    const size_t end = stack_top(ex) + bytes;
    if (ex->need && ex->n_stack < MI_SCRATCH_STACK) { /* recording */
      size_t mapped;
      void *p = recorded_alloc(ex, bytes, &mapped);
      if (!p) return NULL;
      ex->stack[ex->n_stack++] = (mi_scratch_stacked){p, bytes, end, mapped, true, true};
      if (end > *ex->need) *ex->need = end;
      return p;
    }
    if (ex->need) *ex->need = SIZE_MAX; /* more blocks at once than the stack holds: no room */
    else if (end <= ex->room_bytes && end >= bytes && ex->n_stack < MI_SCRATCH_STACK) {
      ex->stack[ex->n_stack++] = (mi_scratch_stacked){ex->room + end - bytes, bytes, end, bytes, true, false};
      return ex->room + end - bytes;
    }
  }
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
  if (ex && release_stacked(ex, p)) return;
  if (ex)
    for (int i = 0; i < ex->n_scratch; i++)
      if (ex->scratch[i].p == p) {
        ex->scratch[i].busy = false;
        return;
      }
  free(p);
}

void mi_exec_scratch_free(mi_exec *ex) {
  drop_spare(ex);
  for (int i = 0; i < ex->n_scratch; i++) free(ex->scratch[i].p);
  free(ex->scratch);
  ex->scratch = NULL;
  ex->n_scratch = ex->cap_scratch = 0;
}
