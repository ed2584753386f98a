/* Argument checks, names and tracking UIDs shared by the finding writers. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "findings_util.h"

static int finite3(const double v[3]) { return isfinite(v[0]) && isfinite(v[1]) && isfinite(v[2]); }

mi_status *mi_findings_check(const mi_card *card, const mi_finding *f, size_t n, const char *path,
                             const char *path_what) {
  if (!path || !*path) return mi_error(MI_ERR_INVALID_ARGUMENT, "findings: no output %s given", path_what);
  if (!card) return mi_error(MI_ERR_INVALID_ARGUMENT, "%s: no model card given", path);
  if (n > 0 && !f) return mi_error(MI_ERR_INVALID_ARGUMENT, "%s: %zu findings announced but none given", path, n);
  size_t labels = mi_card_label_count(card);
  for (size_t i = 0; i < n; ++i) {
    const mi_finding *x = &f[i];
    if (x->label_index >= labels)
      return mi_error(MI_ERR_INVALID_ARGUMENT, "%s: finding %zu: label index %zu but the card has %zu labels", path,
                      i + 1, x->label_index, labels);
    if (!(x->score >= 0.0f && x->score <= 1.0f))
      return mi_error(MI_ERR_INVALID_ARGUMENT, "%s: finding %zu: score %g outside [0, 1]", path, i + 1,
                      (double)x->score);
    if (!finite3(x->center) || !finite3(x->size_mm) || !finite3(x->axes[0]) || !finite3(x->axes[1]) ||
        !finite3(x->axes[2]) || !finite3(x->center_index))
      return mi_error(MI_ERR_INVALID_ARGUMENT, "%s: finding %zu: centre, axes or size not finite", path, i + 1);
  }
  return NULL;
}

void mi_finding_name(const mi_card *card, const mi_finding *f, size_t i, char *buf, size_t size) {
  snprintf(buf, size, "%s %zu", mi_card_label_at(card, f->label_index)->name, i + 1);
}

/* 128-bit FNV-1a: small, well-known, and plenty for telling findings apart. */
typedef unsigned __int128 u128;
static u128 fnv1a128(u128 h, const void *data, size_t len) {
  const u128 prime = ((u128)1 << 88) + ((u128)1 << 8) + 0x3b;
  const unsigned char *p = data;
  for (size_t i = 0; i < len; ++i) h = (h ^ p[i]) * prime;
  return h;
}

void mi_finding_tracking_uid(const mi_card *card, const mi_finding *f, size_t i, char *buf, size_t size) {
  const u128 offset = ((u128)0x6c62272e07bb0142ULL << 64) | 0x62b821756295c58dULL;
  /* Hash the printed values, not the doubles' bytes, so -0.0 and 0.0 (or
   * noise below the printed precision) give the same UID. */
  char text[1024];
  int len = snprintf(text, sizeof text, "%s|%s|%zu|%d|%.6f|%.3f,%.3f,%.3f|%.3f,%.3f,%.3f", mi_card_name(card),
                     mi_card_version(card), i + 1, f->label, (double)f->score, f->center[0] + 0.0,
                     f->center[1] + 0.0, f->center[2] + 0.0, f->size_mm[0] + 0.0, f->size_mm[1] + 0.0,
                     f->size_mm[2] + 0.0);
  if (len < 0) len = 0;
  if ((size_t)len >= sizeof text) len = (int)sizeof text - 1;
  u128 h = fnv1a128(offset, text, (size_t)len);
  /* UUID version 8 (custom) and the RFC 4122 variant: bits 76..79 and 62..63. */
  h &= ~((u128)0xF << 76);
  h |= (u128)0x8 << 76;
  h &= ~((u128)0x3 << 62);
  h |= (u128)0x2 << 62;
  char digits[48];
  int nd = 0;
  do {
    digits[nd++] = (char)('0' + (int)(h % 10));
    h /= 10;
  } while (h);
  char out[64] = "2.25.";
  int o = 5;
  while (nd > 0) out[o++] = digits[--nd];
  out[o] = 0;
  snprintf(buf, size, "%s", out);
}
