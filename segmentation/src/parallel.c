#define _DEFAULT_SOURCE /* sysconf's _SC_NPROCESSORS_ONLN */
#include "parallel.h"

#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

typedef struct range_part {
  mi_range_part_fn fn;
  void *ctx;
  int64_t b, e;
} range_part;

static void *range_main(void *arg) {
  range_part *r = arg;
  r->fn(r->ctx, r->b, r->e);
  return NULL;
}

void mi_seg_for_range(int threads, int64_t n, int64_t grain, mi_range_part_fn fn, void *ctx) {
  enum { MAX_PARTS = 64 };
  int t = threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (t < 1) t = 1;
  if (t > MAX_PARTS) t = MAX_PARTS;
  if (grain < 1) grain = 1;
  if (t > n / grain) t = (int)(n / grain > 0 ? n / grain : 1);
  range_part part[MAX_PARTS];
  pthread_t th[MAX_PARTS];
  bool started[MAX_PARTS] = {false};
  for (int i = 0; i < t; ++i) part[i] = (range_part){fn, ctx, n * i / t, n * (i + 1) / t};
  for (int i = 1; i < t; ++i) started[i] = pthread_create(&th[i], NULL, range_main, &part[i]) == 0;
  fn(ctx, part[0].b, part[0].e);
  for (int i = 1; i < t; ++i) {
    if (started[i]) pthread_join(th[i], NULL);
    else fn(ctx, part[i].b, part[i].e); /* no thread: this one does it */
  }
}
