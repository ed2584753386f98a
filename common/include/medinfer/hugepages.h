/* Transparent huge pages for large buffers.
 *
 * A network's packed weights (ResNet-50: about 100 MB) and its activation
 * arena are read in long streams on every run; on 4 KB pages each page is a
 * TLB miss and a page walk per run, on 2 MB pages one per 2 MB.  The
 * pipeline's volumes (a CT's label map, the sliding window's accumulators)
 * are written once, and on this kind of VM each 4 KB page's first-touch fault
 * is dear.  Kernels set to "madvise" (Debian's default) give huge pages only
 * to memory that asks. */
#ifndef MEDINFER_HUGEPAGES_H
#define MEDINFER_HUGEPAGES_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A transparent huge page (x86-64). */
#define MI_HUGE_PAGE_BYTES ((size_t)2 << 20)

/* Asks for huge pages on the 2 MB-aligned part of [p, p + bytes) (no memory
 * beyond the buffer is claimed; a buffer without a whole aligned 2 MB in it is
 * left alone).  Call before the buffer is first written: pages are chosen when
 * they are first touched.  Advice only: nothing fails; MEDINFER_HUGEPAGES=0
 * turns it off. */
void mi_advise_huge(void *p, size_t bytes);

/* malloc, but 64-byte aligned (a vector kernel's), and a block of 2 MB or
 * more 2 MB-aligned and advised as above, so that its first writer faults it
 * in 2 MB at a time (a last partial 2 MB, beyond the advice, 4 KB at a time).
 * free() releases it; NULL when out of memory. */
void *mi_alloc_huge(size_t bytes);

/* mi_alloc_huge, zeroed by writing: each page is faulted in by that write,
 * not mapped to the shared zero page by a first read and copied on the next
 * write (each copy a TLB flush on every thread of the process). */
void *mi_alloc_huge_zeroed(size_t bytes);

#ifdef __cplusplus
}
#endif

#endif
