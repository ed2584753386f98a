/* The review folder: finding-<n>.png per finding (review.cpp) and index.html,
 * a self-contained page (inline style, relative links, no scripts) listing
 * every finding.  The pictures are written first and the page last, so the
 * page never names a picture that is not there yet. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "findings_util.h"
#include "report.h"
#include "review.h"

typedef struct page {
  char *p;
  size_t len, cap;
  int failed;
} page;

static void add(page *b, const char *fmt, ...) {
  if (b->failed) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->failed = 1;
    return;
  }
  if (b->len + (size_t)n + 1 > b->cap) {
    size_t cap = 2 * (b->len + (size_t)n + 1);
    char *p = realloc(b->p, cap);
    if (!p) {
      b->failed = 1;
      return;
    }
    b->p = p, b->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Text into HTML (element content and quoted attributes). */
static void add_text(page *b, const char *s) {
  for (; s && *s; ++s) switch (*s) {
      case '&': add(b, "&amp;"); break;
      case '<': add(b, "&lt;"); break;
      case '>': add(b, "&gt;"); break;
      case '"': add(b, "&quot;"); break;
      case '\'': add(b, "&#39;"); break;
      default: add(b, "%c", *s);
    }
}

static const char *kStyle =
    "body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}"
    "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.4em .6em;text-align:left;"
    "vertical-align:top}th{background:#eee}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "td,th{white-space:nowrap}"
    "img{max-width:100%;height:auto;display:block}"
    ".swatch{display:inline-block;width:.9em;height:.9em;margin-right:.4em;border:1px solid #444;"
    "vertical-align:middle}p.none{font-size:1.2em}";

static void add_finding_row(page *b, const mi_card *card, const mi_finding *f, size_t i, int img_w, int img_h) {
  const mi_card_label *lab = mi_card_label_at(card, f->label_index);
  char name[512];
  mi_finding_name(card, f, i, name, sizeof name);
  add(b, "<tr id=\"finding-%zu\"><td class=\"num\">%zu</td>", i + 1, i + 1);
  add(b, "<td><a href=\"finding-%zu.png\"><img src=\"finding-%zu.png\" width=\"%d\" height=\"%d\" alt=\"", i + 1,
      i + 1, img_w, img_h);
  add_text(b, name);
  add(b, "\"></a></td><td><span class=\"swatch\" style=\"background:rgb(%d,%d,%d)\"></span>", lab->rgb[0],
      lab->rgb[1], lab->rgb[2]);
  add_text(b, name);
  add(b, "</td><td class=\"num\">%.3f</td>", (double)f->score);
  add(b, "<td class=\"num\">%.1f, %.1f, %.1f</td>", f->center[0] + 0.0, f->center[1] + 0.0, f->center[2] + 0.0);
  add(b, "<td class=\"num\">%.1f &times; %.1f &times; %.1f</td>", f->size_mm[0], f->size_mm[1], f->size_mm[2]);
  add(b, "<td class=\"num\">%d (%d&ndash;%d)</td></tr>\n", f->slice, f->first_slice, f->last_slice);
}

static char *page_html(const mi_card *card, const mi_finding *f, size_t n, const mi_geometry *g, double wc,
                       double ww, const char *title) {
  page b = {0};
  const char *t = title && *title ? title : "Findings";
  add(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
  add_text(&b, t);
  add(&b, "</title><style>%s</style></head><body>\n<h1>", kStyle);
  add_text(&b, t);
  add(&b, "</h1>\n<p>Model ");
  add_text(&b, mi_card_name(card));
  add(&b, " ");
  add_text(&b, mi_card_version(card));
  add(&b, "; %zu finding%s; window centre %g, width %g. Centres are LPS patient coordinates; slices are indices "
          "k of the series (0 = first), the box spans the range in brackets. Each picture shows the slice through "
          "the centre and, below, slices k&minus;2 to k+2.</p>\n",
      n, n == 1 ? "" : "s", wc, ww);
  if (n == 0) {
    add(&b, "<p class=\"none\">No findings.</p>\n");
  } else {
    mi_review_layout L;
    mi_review_layout_for(g, &L);
    add(&b, "<table>\n<thead><tr><th>#</th><th>Picture</th><th>Label</th><th>Score</th><th>Centre (mm)</th>"
            "<th>Size (mm)</th><th>Slice (range)</th></tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < n; ++i) add_finding_row(&b, card, &f[i], i, L.width, L.height);
    add(&b, "</tbody></table>\n");
  }
  add(&b, "</body></html>\n");
  if (b.failed) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

static mi_status *make_dirs(const char *path) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "%s: path too long", path);
  for (char *p = buf + 1; *p; ++p)
    if (*p == '/') {
      *p = 0;
      if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return mi_error(MI_ERR_IO, "%s: cannot create (%s)", buf, strerror(errno));
      *p = '/';
    }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST)
    return mi_error(MI_ERR_IO, "%s: cannot create (%s)", buf, strerror(errno));
  struct stat s;
  if (stat(buf, &s) != 0 || !S_ISDIR(s.st_mode)) return mi_error(MI_ERR_IO, "%s: not a folder", buf);
  return NULL;
}

/* Pictures of an earlier review with more findings would otherwise linger
 * beside a page that no longer lists them. */
static void remove_extra_pictures(const char *dir, size_t n) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    unsigned long m = 0;
    int end = 0;
    if (sscanf(e->d_name, "finding-%lu.png%n", &m, &end) != 1 || e->d_name[end] != 0 || m <= n) continue;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
}

static mi_status *check_volume(const mi_finding *f, size_t n, const mi_geometry *g, const float *volume, double wc,
                               double ww, const char *dir) {
  if (!g) return mi_error(MI_ERR_INVALID_ARGUMENT, "%s: no geometry given", dir);
  if (!volume) return mi_error(MI_ERR_INVALID_ARGUMENT, "%s: no volume given", dir);
  for (int a = 0; a < 3; ++a) {
    if (g->size[a] < 1)
      return mi_error(MI_ERR_SHAPE, "%s: volume size %lld x %lld x %lld is empty", dir, (long long)g->size[0],
                      (long long)g->size[1], (long long)g->size[2]);
    if (!(g->spacing[a] > 0) || !isfinite(g->spacing[a]))
      return mi_error(MI_ERR_SHAPE, "%s: spacing %g, %g, %g: expected positive values", dir, g->spacing[0],
                      g->spacing[1], g->spacing[2]);
  }
  if (!isfinite(wc) || !isfinite(ww) || !(ww > 0))
    return mi_error(MI_ERR_INVALID_ARGUMENT, "%s: window centre %g, width %g: the width must be positive", dir, wc,
                    ww);
  for (size_t i = 0; i < n; ++i)
    if (f[i].slice < 0 || f[i].slice >= g->size[2])
      return mi_error(MI_ERR_INVALID_ARGUMENT, "%s: finding %zu: slice %d is outside the volume (0..%lld)", dir,
                      i + 1, f[i].slice, (long long)g->size[2] - 1);
  return NULL;
}

mi_status *mi_findings_write_review(const mi_card *card, const mi_finding *f, size_t n, const mi_geometry *g,
                                    const float *volume, double window_center, double window_width,
                                    const char *title, const char *dir) {
  MI_TRY(mi_findings_check(card, f, n, dir, "folder"));
  /* Everything is checked before the first file is written: a bad finding
   * must not leave a half-updated folder. */
  MI_TRY(check_volume(f, n, g, volume, window_center, window_width, dir));
  MI_TRY(make_dirs(dir));
  char path[4400];
  for (size_t i = 0; i < n; ++i) {
    snprintf(path, sizeof path, "%s/finding-%zu.png", dir, i + 1);
    MI_TRY(mi_review_write_png(g, volume, &f[i], mi_card_label_at(card, f[i].label_index)->rgb, window_center,
                               window_width, path));
  }
  snprintf(path, sizeof path, "%s/index.html", dir);
  char *html = page_html(card, f, n, g, window_center, window_width, title);
  if (!html) return mi_error(MI_ERR_NO_MEMORY, "%s: out of memory formatting the page", path);
  mi_status *st = mi_write_file_atomic(path, html, strlen(html));
  free(html);
  if (!st) remove_extra_pictures(dir, n);
  return st;
}
