/* JSON reading helpers of the card parser (see card_json.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "card_json.h"

mi_status *mi_cj_bad(const mi_cj_ctx *c, const char *field, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return mi_error(MI_ERR_PARSE, "%s: %s: %s", c->file, field, msg);
}

char *mi_cj_dup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* Member `key` of obj; *v NULL when absent. */
json_object *mi_cj_member(json_object *obj, const char *key) {
  json_object *v = NULL;
  return obj && json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

mi_status *mi_cj_string(const mi_cj_ctx *c, json_object *obj, const char *key, const char *field, int required,
                             char **out) {
  json_object *v = mi_cj_member(obj, key);
  *out = NULL;
  if (!v || json_object_is_type(v, json_type_null)) {
    if (required) return mi_cj_bad(c, field, "missing (expected a string)");
    return NULL;
  }
  if (!json_object_is_type(v, json_type_string)) return mi_cj_bad(c, field, "expected a string");
  if (required && !json_object_get_string_len(v)) return mi_cj_bad(c, field, "must not be empty");
  if (!(*out = mi_cj_dup(json_object_get_string(v)))) return mi_error(MI_ERR_NO_MEMORY, "%s: out of memory", c->file);
  return NULL;
}

int mi_cj_is_number(json_object *v) {
  return v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double));
}

mi_status *mi_cj_number(const mi_cj_ctx *c, json_object *obj, const char *key, const char *field, double def,
                             double lo, double hi, const char *range, double *out) {
  json_object *v = mi_cj_member(obj, key);
  if (!v) return *out = def, NULL;
  if (!mi_cj_is_number(v)) return mi_cj_bad(c, field, "expected a number");
  double d = json_object_get_double(v);
  if (!isfinite(d) || d < lo || d > hi) return mi_cj_bad(c, field, "expected a number %s, got %g", range, d);
  return *out = d, NULL;
}

mi_status *mi_cj_int(const mi_cj_ctx *c, json_object *obj, const char *key, const char *field, double def, double lo,
                     double hi, const char *range, int *out) {
  double d;
  MI_TRY(mi_cj_number(c, obj, key, field, def, lo, hi, range, &d));
  if (d != floor(d)) return mi_cj_bad(c, field, "expected an integer");
  return *out = (int)d, NULL;
}

mi_status *mi_cj_bool(const mi_cj_ctx *c, json_object *obj, const char *key, const char *field, int def, int *out) {
  json_object *v = mi_cj_member(obj, key);
  if (!v) return *out = def, NULL;
  if (!json_object_is_type(v, json_type_boolean)) return mi_cj_bad(c, field, "expected true or false");
  return *out = json_object_get_boolean(v), NULL;
}

/* A fixed-length array of numbers (positive or non-negative integers). */
mi_status *mi_cj_vec(const mi_cj_ctx *c, json_object *v, const char *field, int n, int integer, int positive,
                          double *out) {
  const char *what = integer ? (positive ? "positive integers" : "non-negative integers")
                             : (positive ? "positive numbers" : "numbers");
  if (!v || !json_object_is_type(v, json_type_array) || (int)json_object_array_length(v) != n)
    return mi_cj_bad(c, field, "expected %d %s", n, what);
  for (int i = 0; i < n; ++i) {
    json_object *e = json_object_array_get_idx(v, i);
    double d = mi_cj_is_number(e) ? json_object_get_double(e) : NAN;
    if (!isfinite(d) || (positive && d <= 0) || (!positive && d < 0) || (integer && d != floor(d)) ||
        (integer && d > 1e9))
      return mi_cj_bad(c, field, "expected %d %s", n, what);
    out[i] = d;
  }
  return NULL;
}

mi_status *mi_cj_string_list(const mi_cj_ctx *c, json_object *obj, const char *key, const char *field, char ***out,
                                  size_t *n) {
  json_object *v = mi_cj_member(obj, key);
  *out = NULL, *n = 0;
  if (!v) return NULL;
  if (!json_object_is_type(v, json_type_array)) return mi_cj_bad(c, field, "expected a list of strings");
  size_t len = json_object_array_length(v);
  if (!len) return NULL;
  if (!(*out = calloc(len, sizeof **out))) return mi_error(MI_ERR_NO_MEMORY, "%s: out of memory", c->file);
  for (size_t i = 0; i < len; ++i) {
    json_object *e = json_object_array_get_idx(v, i);
    if (!json_object_is_type(e, json_type_string) || !json_object_get_string_len(e))
      return mi_cj_bad(c, field, "expected a list of non-empty strings (item %zu)", i);
    if (!((*out)[i] = mi_cj_dup(json_object_get_string(e)))) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
    ++*n;
  }
  return NULL;
}

mi_status *mi_cj_code(const mi_cj_ctx *c, json_object *l, const char *key, const char *field, const char **scheme,
                             const char **value, const char **meaning) {
  json_object *o = mi_cj_member(l, key);
  if (!o || !json_object_is_type(o, json_type_object))
    return mi_cj_bad(c, field, "missing (expected {\"scheme\", \"value\", \"meaning\"})");
  char f[128], *s[3] = {0};
  static const char *keys[3] = {"scheme", "value", "meaning"};
  for (int i = 0; i < 3; ++i) {
    snprintf(f, sizeof f, "%s.%s", field, keys[i]);
    mi_status *st = mi_cj_string(c, o, keys[i], f, 1, &s[i]);
    if (st) {
      for (int j = 0; j < i; ++j) free(s[j]);
      return st;
    }
  }
  *scheme = s[0], *value = s[1], *meaning = s[2];
  return NULL;
}

mi_status *mi_cj_label(const mi_cj_ctx *c, json_object *l, size_t i, mi_card *k) {
  char field[64], f[96];
  snprintf(field, sizeof field, "output.labels[%zu]", i);
  if (!json_object_is_type(l, json_type_object)) return mi_cj_bad(c, field, "expected an object");
  mi_card_label *lab = &k->labels[i];
  double v;
  snprintf(f, sizeof f, "%s.value", field);
  if (!mi_cj_member(l, "value")) return mi_cj_bad(c, f, "missing (expected an integer 1..255)");
  MI_TRY(mi_cj_number(c, l, "value", f, 0, 1, 255, "from 1 to 255", &v));
  if (v != floor(v)) return mi_cj_bad(c, f, "expected an integer 1..255");
  lab->value = (int)v;
  for (size_t j = 0; j < i; ++j)
    if (k->labels[j].value == lab->value) return mi_cj_bad(c, f, "value %d used twice", lab->value);
  snprintf(f, sizeof f, "%s.name", field);
  MI_TRY(mi_cj_string(c, l, "name", f, 1, (char **)&lab->name));
  snprintf(f, sizeof f, "%s.color", field);
  double rgb[3];
  MI_TRY(mi_cj_vec(c, mi_cj_member(l, "color"), f, 3, 1, 0, rgb));
  for (int j = 0; j < 3; ++j) {
    if (rgb[j] > 255) return mi_cj_bad(c, f, "expected 3 integers 0..255");
    lab->rgb[j] = (uint8_t)rgb[j];
  }
  snprintf(f, sizeof f, "%s.category", field);
  MI_TRY(mi_cj_code(c, l, "category", f, &lab->category_scheme, &lab->category_value, &lab->category_meaning));
  snprintf(f, sizeof f, "%s.type", field);
  MI_TRY(mi_cj_code(c, l, "type", f, &lab->type_scheme, &lab->type_value, &lab->type_meaning));
  return NULL;
}


mi_status *mi_cj_labels(const mi_cj_ctx *c, json_object *out, mi_card *k) {
  json_object *labels = mi_cj_member(out, "labels");
  if (!labels || !json_object_is_type(labels, json_type_array) || !json_object_array_length(labels))
    return mi_cj_bad(c, "output.labels", "expected a non-empty list of labels");
  size_t n = json_object_array_length(labels);
  if (n > MI_CARD_MAX_LABELS) return mi_cj_bad(c, "output.labels", "at most %d labels", MI_CARD_MAX_LABELS);
  for (size_t i = 0; i < n; ++i) {
    k->n_labels = i + 1; /* so that mi_card_free releases what parse_label set */
    MI_TRY(mi_cj_label(c, json_object_array_get_idx(labels, i), i, k));
  }
  return NULL;
}
