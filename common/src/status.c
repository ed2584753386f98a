#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>

#include "medinfer/status.h"

struct mi_status {
  mi_code code;
  char *msg;
};

static char *vformat(const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) n = 0;
  char *s = malloc((size_t)n + 1);
  if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

/* Returned when even the error cannot be allocated. */
static mi_status oom_status = {MI_ERR_NO_MEMORY, "out of memory"};

mi_status *mi_error(mi_code code, const char *fmt, ...) {
  mi_status *st = malloc(sizeof *st);
  if (!st) return &oom_status;
  va_list ap;
  va_start(ap, fmt);
  st->msg = vformat(fmt, ap);
  va_end(ap);
  st->code = code;
  if (!st->msg) {
    free(st);
    return &oom_status;
  }
  return st;
}

mi_status *mi_error_prefix(mi_status *st, const char *fmt, ...) {
  if (!st || st == &oom_status) return st;
  va_list ap;
  va_start(ap, fmt);
  char *pre = vformat(fmt, ap);
  va_end(ap);
  if (!pre) return st;
  size_t n = strlen(pre) + strlen(st->msg) + 3;
  char *m = malloc(n);
  if (m) {
    snprintf(m, n, "%s: %s", pre, st->msg);
    free(st->msg);
    st->msg = m;
  }
  free(pre);
  return st;
}

mi_code mi_status_code(const mi_status *st) { return st ? st->code : MI_OK; }
const char *mi_status_message(const mi_status *st) { return st ? st->msg : ""; }
void mi_status_free(mi_status *st) {
  if (!st || st == &oom_status) return;
  free(st->msg);
  free(st);
}
