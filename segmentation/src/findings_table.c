/* findings.json and findings.csv: one record per finding, in the order
 * given (index 1..n), written atomically. */
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "findings_util.h"
#include "report.h"

/* A number printed with a fixed number of decimals (json-c's default %.17g
 * turns 12.3 into 12.300000000000001). */
static json_object *num(double v, int decimals) {
  char s[64];
  snprintf(s, sizeof s, "%.*f", decimals, v + 0.0);
  return json_object_new_double_s(v, s);
}

static json_object *vec3(const double v[3], int decimals) {
  json_object *a = json_object_new_array();
  for (int i = 0; i < 3; ++i) json_object_array_add(a, num(v[i], decimals));
  return a;
}

static json_object *finding_json(const mi_card *card, const mi_finding *f, size_t i) {
  const mi_card_label *lab = mi_card_label_at(card, f->label_index);
  char name[512], uid[80];
  mi_finding_name(card, f, i, name, sizeof name);
  mi_finding_tracking_uid(card, f, i, uid, sizeof uid);
  json_object *o = json_object_new_object();
  json_object_object_add(o, "index", json_object_new_int64((int64_t)i + 1));
  json_object_object_add(o, "name", json_object_new_string(name));
  json_object_object_add(o, "label", json_object_new_string(lab->name));
  json_object_object_add(o, "label_value", json_object_new_int(f->label));
  json_object *rgb = json_object_new_array();
  for (int c = 0; c < 3; ++c) json_object_array_add(rgb, json_object_new_int(lab->rgb[c]));
  json_object_object_add(o, "label_color", rgb);
  json_object_object_add(o, "score", num(f->score, 6));
  json_object_object_add(o, "center_mm", vec3(f->center, 3));
  json_object_object_add(o, "size_mm", vec3(f->size_mm, 3));
  json_object *axes = json_object_new_array();
  for (int a = 0; a < 3; ++a) json_object_array_add(axes, vec3(f->axes[a], 3));
  json_object_object_add(o, "half_axes_mm", axes);
  json_object_object_add(o, "center_index", vec3(f->center_index, 3));
  json_object_object_add(o, "slice", json_object_new_int(f->slice));
  json_object_object_add(o, "first_slice", json_object_new_int(f->first_slice));
  json_object_object_add(o, "last_slice", json_object_new_int(f->last_slice));
  json_object_object_add(o, "contributing_slices", json_object_new_int(f->contributing_slices));
  json_object_object_add(o, "tracking_uid", json_object_new_string(uid));
  return o;
}

mi_status *mi_findings_write_json(const mi_card *card, const mi_finding *f, size_t n, const char *series_uid,
                                  const char *path) {
  MI_TRY(mi_findings_check(card, f, n, path, "file"));
  json_object *root = json_object_new_object();
  json_object_object_add(root, "series_uid", json_object_new_string(series_uid ? series_uid : ""));
  json_object_object_add(root, "model", json_object_new_string(mi_card_name(card)));
  json_object_object_add(root, "model_version", json_object_new_string(mi_card_version(card)));
  json_object_object_add(root, "coordinate_system", json_object_new_string("LPS"));
  json_object_object_add(root, "count", json_object_new_int64((int64_t)n));
  json_object *list = json_object_new_array();
  for (size_t i = 0; i < n; ++i) json_object_array_add(list, finding_json(card, &f[i], i));
  json_object_object_add(root, "findings", list);
  mi_status *st = mi_write_json_atomic(path, root, "findings");
  json_object_put(root);
  return st;
}

/* ------------------------------------------------------------------ CSV */

typedef struct buf {
  char *p;
  size_t len, cap;
  int failed;
} buf;

static void put(buf *b, const char *s, size_t n) {
  if (b->failed) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (b->len + n + 1 > cap) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->failed = 1;
      return;
    }
    b->p = p, b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

/* RFC 4180: quote a field holding a comma, a quote or a line break, and
 * double the quotes inside. */
static void field(buf *b, const char *s) {
  if (!strpbrk(s, ",\"\r\n")) {
    puts_(b, s);
    return;
  }
  put(b, "\"", 1);
  for (const char *q = s; *q; ++q) {
    put(b, q, 1);
    if (*q == '"') put(b, "\"", 1);
  }
  put(b, "\"", 1);
}

static void numf(buf *b, double v, int decimals) {
  char s[64];
  snprintf(s, sizeof s, ",%.*f", decimals, v + 0.0);
  puts_(b, s);
}

static void intf(buf *b, long long v) {
  char s[32];
  snprintf(s, sizeof s, ",%lld", v);
  puts_(b, s);
}

static const char *kCsvHeader =
    "index,name,label,label_value,score,center_x_mm,center_y_mm,center_z_mm,size_x_mm,size_y_mm,size_z_mm,"
    "slice,first_slice,last_slice,contributing_slices,tracking_uid\r\n";

mi_status *mi_findings_write_csv(const mi_card *card, const mi_finding *f, size_t n, const char *path) {
  MI_TRY(mi_findings_check(card, f, n, path, "file"));
  buf b = {0};
  puts_(&b, kCsvHeader);
  for (size_t i = 0; i < n; ++i) {
    char name[512], uid[80], idx[32];
    mi_finding_name(card, &f[i], i, name, sizeof name);
    mi_finding_tracking_uid(card, &f[i], i, uid, sizeof uid);
    snprintf(idx, sizeof idx, "%zu,", i + 1);
    puts_(&b, idx);
    field(&b, name);
    put(&b, ",", 1);
    field(&b, mi_card_label_at(card, f[i].label_index)->name);
    intf(&b, f[i].label);
    numf(&b, f[i].score, 6);
    for (int a = 0; a < 3; ++a) numf(&b, f[i].center[a], 3);
    for (int a = 0; a < 3; ++a) numf(&b, f[i].size_mm[a], 3);
    intf(&b, f[i].slice);
    intf(&b, f[i].first_slice);
    intf(&b, f[i].last_slice);
    intf(&b, f[i].contributing_slices);
    put(&b, ",", 1);
    field(&b, uid);
    puts_(&b, "\r\n");
  }
  mi_status *st = b.failed ? mi_error(MI_ERR_NO_MEMORY, "%s: out of memory formatting the findings", path)
                           : mi_write_file_atomic(path, b.p, b.len);
  free(b.p);
  return st;
}
