#define _DEFAULT_SOURCE
#include "medinfer/hugepages.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_BYTES ((uintptr_t)MI_HUGE_PAGE_BYTES)

static int enabled(void) {
  static atomic_int v = -1;
  int r = atomic_load(&v);
  if (r < 0) {
    const char *e = getenv("MEDINFER_HUGEPAGES");
    r = !(e && !strcmp(e, "0"));
    atomic_store(&v, r);
  }
  return r;
}

void *mi_alloc_huge(size_t bytes) {
  void *p = NULL;
  if (posix_memalign(&p, bytes < HUGE_BYTES ? 64 : HUGE_BYTES, bytes ? bytes : 1)) return NULL;
  mi_advise_huge(p, bytes);
  return p;
}

void *mi_alloc_huge_zeroed(size_t bytes) {
  void *p = mi_alloc_huge(bytes);
  if (p) memset(p, 0, bytes);
  return p;
}

void mi_advise_huge(void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  if (!p || bytes < HUGE_BYTES || !enabled()) return;
  const uintptr_t b = ((uintptr_t)p + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1);
  const uintptr_t e = ((uintptr_t)p + bytes) & ~(HUGE_BYTES - 1);
  if (e > b) (void)madvise((void *)b, e - b, MADV_HUGEPAGE); /* advice: a kernel without THP says EINVAL */
#else
  (void)p;
  (void)bytes;
#endif
}
