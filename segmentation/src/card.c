/* Model card parsing and validation (models/CARD.md) with json-c.  Every
 * error names the card file and the field at fault. */
#include <ctype.h>
#include <errno.h>
#include <json.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "card_internal.h"

typedef struct ctx {
  const char *file;
} ctx;

static mi_status *bad(const ctx *c, const char *field, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return mi_error(MI_ERR_PARSE, "%s: %s: %s", c->file, field, msg);
}

static char *dup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* Member `key` of obj; *v NULL when absent. */
static json_object *member(json_object *obj, const char *key) {
  json_object *v = NULL;
  return obj && json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

static mi_status *get_string(const ctx *c, json_object *obj, const char *key, const char *field, int required,
                             char **out) {
  json_object *v = member(obj, key);
  *out = NULL;
  if (!v || json_object_is_type(v, json_type_null)) {
    if (required) return bad(c, field, "missing (expected a string)");
    return NULL;
  }
  if (!json_object_is_type(v, json_type_string)) return bad(c, field, "expected a string");
  if (required && !json_object_get_string_len(v)) return bad(c, field, "must not be empty");
  if (!(*out = dup(json_object_get_string(v)))) return mi_error(MI_ERR_NO_MEMORY, "%s: out of memory", c->file);
  return NULL;
}

static int is_number(json_object *v) {
  return v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double));
}

static mi_status *get_number(const ctx *c, json_object *obj, const char *key, const char *field, double def,
                             double lo, double hi, const char *range, double *out) {
  json_object *v = member(obj, key);
  if (!v) return *out = def, NULL;
  if (!is_number(v)) return bad(c, field, "expected a number");
  double d = json_object_get_double(v);
  if (!isfinite(d) || d < lo || d > hi) return bad(c, field, "expected a number %s, got %g", range, d);
  return *out = d, NULL;
}

static mi_status *get_bool(const ctx *c, json_object *obj, const char *key, const char *field, int def, int *out) {
  json_object *v = member(obj, key);
  if (!v) return *out = def, NULL;
  if (!json_object_is_type(v, json_type_boolean)) return bad(c, field, "expected true or false");
  return *out = json_object_get_boolean(v), NULL;
}

/* A fixed-length array of numbers (positive or non-negative integers). */
static mi_status *get_vec(const ctx *c, json_object *v, const char *field, int n, int integer, int positive,
                          double *out) {
  const char *what = integer ? (positive ? "positive integers" : "non-negative integers")
                             : (positive ? "positive numbers" : "numbers");
  if (!v || !json_object_is_type(v, json_type_array) || (int)json_object_array_length(v) != n)
    return bad(c, field, "expected %d %s", n, what);
  for (int i = 0; i < n; ++i) {
    json_object *e = json_object_array_get_idx(v, i);
    double d = is_number(e) ? json_object_get_double(e) : NAN;
    if (!isfinite(d) || (positive && d <= 0) || (!positive && d < 0) || (integer && d != floor(d)) ||
        (integer && d > 1e9))
      return bad(c, field, "expected %d %s", n, what);
    out[i] = d;
  }
  return NULL;
}

static mi_status *get_string_list(const ctx *c, json_object *obj, const char *key, const char *field, char ***out,
                                  size_t *n) {
  json_object *v = member(obj, key);
  *out = NULL, *n = 0;
  if (!v) return NULL;
  if (!json_object_is_type(v, json_type_array)) return bad(c, field, "expected a list of strings");
  size_t len = json_object_array_length(v);
  if (!len) return NULL;
  if (!(*out = calloc(len, sizeof **out))) return mi_error(MI_ERR_NO_MEMORY, "%s: out of memory", c->file);
  for (size_t i = 0; i < len; ++i) {
    json_object *e = json_object_array_get_idx(v, i);
    if (!json_object_is_type(e, json_type_string) || !json_object_get_string_len(e))
      return bad(c, field, "expected a list of non-empty strings (item %zu)", i);
    if (!((*out)[i] = dup(json_object_get_string(e)))) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
    ++*n;
  }
  return NULL;
}

static mi_status *parse_applies(const ctx *c, json_object *root, mi_card *k) {
  json_object *a = member(root, "applies_to");
  if (!a || !json_object_is_type(a, json_type_object)) return bad(c, "applies_to", "missing (expected an object)");
  MI_TRY(get_string_list(c, a, "modality", "applies_to.modality", &k->modality, &k->n_modality));
  MI_TRY(get_string_list(c, a, "body_part", "applies_to.body_part", &k->body_part, &k->n_body_part));
  json_object *m = member(a, "min_size");
  if (m) {
    double v[3];
    MI_TRY(get_vec(c, m, "applies_to.min_size", 3, 1, 0, v));
    for (int i = 0; i < 3; ++i) k->min_size[i] = (int64_t)v[i];
  }
  size_t len = 4;
  for (size_t i = 0; i < k->n_modality; ++i) len += strlen(k->modality[i]) + 2;
  if (!(k->modality_text = malloc(len))) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  strcpy(k->modality_text, k->n_modality ? "" : "any");
  for (size_t i = 0; i < k->n_modality; ++i) {
    if (i) strcat(k->modality_text, ", ");
    strcat(k->modality_text, k->modality[i]);
  }
  return NULL;
}

static mi_status *parse_step(const ctx *c, json_object *s, int i, mi_card *k) {
  char field[96];
  snprintf(field, sizeof field, "input.preprocessing[%d]", i);
  if (!json_object_is_type(s, json_type_object)) return bad(c, field, "expected an object");
  mi_card_step *st = &k->steps[i];
  json_object *t = member(s, "type");
  const char *type = t && json_object_is_type(t, json_type_string) ? json_object_get_string(t) : NULL;
  char f[128];
  if (!type) {
    snprintf(f, sizeof f, "%s.type", field);
    return bad(c, f, "missing (expected \"ct_window\", \"zscore\" or \"mean_subtract\")");
  }
  if (!strcmp(type, "ct_window")) {
    st->type = MI_STEP_CT_WINDOW;
    snprintf(f, sizeof f, "%s.center", field);
    if (!is_number(member(s, "center"))) return bad(c, f, "missing (expected a number)");
    MI_TRY(get_number(c, s, "center", f, 0, -1e9, 1e9, "", &st->a));
    snprintf(f, sizeof f, "%s.width", field);
    if (!is_number(member(s, "width"))) return bad(c, f, "missing (expected a positive number)");
    MI_TRY(get_number(c, s, "width", f, 0, 1e-9, 1e9, "> 0", &st->b));
  } else if (!strcmp(type, "zscore")) {
    st->type = MI_STEP_ZSCORE;
    int hm = member(s, "mean") != NULL, hs = member(s, "std") != NULL;
    if (hm != hs) {
      snprintf(f, sizeof f, "%s.%s", field, hm ? "std" : "mean");
      return bad(c, f, "give both mean and std, or neither");
    }
    st->has_stats = hm;
    snprintf(f, sizeof f, "%s.mean", field);
    MI_TRY(get_number(c, s, "mean", f, 0, -1e12, 1e12, "", &st->a));
    snprintf(f, sizeof f, "%s.std", field);
    MI_TRY(get_number(c, s, "std", f, 1, 1e-12, 1e12, "> 0", &st->b));
  } else if (!strcmp(type, "mean_subtract")) {
    st->type = MI_STEP_MEAN_SUBTRACT;
    json_object *m = member(s, "means"), *sc = member(s, "scale");
    snprintf(f, sizeof f, "%s.means", field);
    int n = m && json_object_is_type(m, json_type_array) ? (int)json_object_array_length(m) : 0;
    if (n != k->channels) return bad(c, f, "expected %d numbers (one per input channel)", k->channels);
    MI_TRY(get_vec(c, m, f, n, 0, 0, st->means));
    for (int j = 0; j < n; ++j) st->scale[j] = 1;
    if (sc) {
      snprintf(f, sizeof f, "%s.scale", field);
      MI_TRY(get_vec(c, sc, f, n, 0, 0, st->scale));
    }
    st->n_means = n;
  } else {
    snprintf(f, sizeof f, "%s.type", field);
    return bad(c, f, "unknown step \"%s\" (expected ct_window, zscore or mean_subtract)", type);
  }
  return NULL;
}

static mi_status *parse_input(const ctx *c, json_object *root, mi_card *k) {
  json_object *in = member(root, "input");
  if (!in || !json_object_is_type(in, json_type_object)) return bad(c, "input", "missing (expected an object)");
  double ch;
  if (!member(in, "channels")) return bad(c, "input.channels", "missing (expected 1)");
  MI_TRY(get_number(c, in, "channels", "input.channels", 1, 1, MI_CARD_MAX_CHANNELS, "from 1 to 8", &ch));
  if (ch != floor(ch)) return bad(c, "input.channels", "expected an integer");
  k->channels = (int)ch;
  if (k->channels != 1)
    return bad(c, "input.channels", "%d channels need a multi-series model, not supported yet (expected 1)",
               k->channels);
  MI_TRY(get_vec(c, member(in, "spacing"), "input.spacing", 3, 0, 1, k->spacing));
  char *orient = NULL;
  MI_TRY(get_string(c, in, "orientation", "input.orientation", 0, &orient));
  k->lps = 1;
  if (orient) {
    int lps = !strcmp(orient, "LPS"), native = !strcmp(orient, "native");
    free(orient);
    if (!lps && !native) return bad(c, "input.orientation", "expected \"LPS\" or \"native\"");
    k->lps = lps;
  }
  json_object *pre = member(in, "preprocessing");
  if (pre) {
    if (!json_object_is_type(pre, json_type_array)) return bad(c, "input.preprocessing", "expected a list");
    int n = (int)json_object_array_length(pre);
    if (n > MI_CARD_MAX_STEPS) return bad(c, "input.preprocessing", "at most %d steps", MI_CARD_MAX_STEPS);
    for (int i = 0; i < n; ++i) MI_TRY(parse_step(c, json_object_array_get_idx(pre, i), i, k));
    k->n_steps = n;
  }
  return NULL;
}

static mi_status *parse_inference(const ctx *c, json_object *root, mi_card *k) {
  json_object *inf = member(root, "inference");
  if (!inf || !json_object_is_type(inf, json_type_object))
    return bad(c, "inference", "missing (expected an object)");
  char *mode = NULL;
  MI_TRY(get_string(c, inf, "mode", "inference.mode", 1, &mode));
  int is3 = !strcmp(mode, "3d"), is2 = !strcmp(mode, "2d");
  free(mode);
  if (!is3 && !is2) return bad(c, "inference.mode", "expected \"3d\" or \"2d\"");
  k->mode_2d = is2;
  json_object *ps = member(inf, "patch_size");
  if (ps || is3) {
    double p[3];
    MI_TRY(get_vec(c, ps, "inference.patch_size", 3, 1, 1, p));
    for (int i = 0; i < 3; ++i) k->patch[i] = (int64_t)p[i];
    if (is2 && k->patch[2] != 1) return bad(c, "inference.patch_size", "2d mode needs [x, y, 1]");
  }
  MI_TRY(get_number(c, inf, "overlap", "inference.overlap", 0.5, 0, 0.999999, "in [0, 1)", &k->overlap));
  double b;
  MI_TRY(get_number(c, inf, "batch", "inference.batch", 1, 1, 1024, "from 1 to 1024", &b));
  if (b != floor(b)) return bad(c, "inference.batch", "expected an integer");
  k->batch = (int)b;
  MI_TRY(get_number(c, inf, "gaussian_sigma_scale", "inference.gaussian_sigma_scale", 0.125, 1e-6, 10, "in (0, 10]",
                    &k->sigma_scale));
  MI_TRY(get_bool(c, inf, "mirroring", "inference.mirroring", 0, &k->mirroring));
  return NULL;
}

static mi_status *parse_code(const ctx *c, json_object *l, const char *key, const char *field, const char **scheme,
                             const char **value, const char **meaning) {
  json_object *o = member(l, key);
  if (!o || !json_object_is_type(o, json_type_object))
    return bad(c, field, "missing (expected {\"scheme\", \"value\", \"meaning\"})");
  char f[128], *s[3] = {0};
  static const char *keys[3] = {"scheme", "value", "meaning"};
  for (int i = 0; i < 3; ++i) {
    snprintf(f, sizeof f, "%s.%s", field, keys[i]);
    mi_status *st = get_string(c, o, keys[i], f, 1, &s[i]);
    if (st) {
      for (int j = 0; j < i; ++j) free(s[j]);
      return st;
    }
  }
  *scheme = s[0], *value = s[1], *meaning = s[2];
  return NULL;
}

static mi_status *parse_label(const ctx *c, json_object *l, size_t i, mi_card *k) {
  char field[64], f[96];
  snprintf(field, sizeof field, "output.labels[%zu]", i);
  if (!json_object_is_type(l, json_type_object)) return bad(c, field, "expected an object");
  mi_card_label *lab = &k->labels[i];
  double v;
  snprintf(f, sizeof f, "%s.value", field);
  if (!member(l, "value")) return bad(c, f, "missing (expected an integer 1..255)");
  MI_TRY(get_number(c, l, "value", f, 0, 1, 255, "from 1 to 255", &v));
  if (v != floor(v)) return bad(c, f, "expected an integer 1..255");
  lab->value = (int)v;
  for (size_t j = 0; j < i; ++j)
    if (k->labels[j].value == lab->value) return bad(c, f, "value %d used twice", lab->value);
  snprintf(f, sizeof f, "%s.name", field);
  MI_TRY(get_string(c, l, "name", f, 1, (char **)&lab->name));
  snprintf(f, sizeof f, "%s.color", field);
  double rgb[3];
  MI_TRY(get_vec(c, member(l, "color"), f, 3, 1, 0, rgb));
  for (int j = 0; j < 3; ++j) {
    if (rgb[j] > 255) return bad(c, f, "expected 3 integers 0..255");
    lab->rgb[j] = (uint8_t)rgb[j];
  }
  snprintf(f, sizeof f, "%s.category", field);
  MI_TRY(parse_code(c, l, "category", f, &lab->category_scheme, &lab->category_value, &lab->category_meaning));
  snprintf(f, sizeof f, "%s.type", field);
  MI_TRY(parse_code(c, l, "type", f, &lab->type_scheme, &lab->type_value, &lab->type_meaning));
  return NULL;
}

static mi_status *parse_output(const ctx *c, json_object *root, mi_card *k) {
  json_object *out = member(root, "output");
  if (!out || !json_object_is_type(out, json_type_object)) return bad(c, "output", "missing (expected an object)");
  char *act = NULL;
  MI_TRY(get_string(c, out, "activation", "output.activation", 1, &act));
  int sm = !strcmp(act, "softmax"), sg = !strcmp(act, "sigmoid");
  free(act);
  if (!sm && !sg) return bad(c, "output.activation", "expected \"softmax\" or \"sigmoid\"");
  k->activation = sm ? MI_ACTIVATION_SOFTMAX : MI_ACTIVATION_SIGMOID;
  MI_TRY(get_number(c, out, "threshold", "output.threshold", 0.5, 0, 1, "in [0, 1]", &k->threshold));
  json_object *labels = member(out, "labels");
  if (!labels || !json_object_is_type(labels, json_type_array) || !json_object_array_length(labels))
    return bad(c, "output.labels", "expected a non-empty list of labels");
  size_t n = json_object_array_length(labels);
  if (n > MI_CARD_MAX_LABELS) return bad(c, "output.labels", "at most %d labels", MI_CARD_MAX_LABELS);
  for (size_t i = 0; i < n; ++i) {
    k->n_labels = i + 1; /* so that mi_card_free releases what parse_label set */
    MI_TRY(parse_label(c, json_object_array_get_idx(labels, i), i, k));
  }
  json_object *pp = member(out, "postprocessing");
  if (pp) {
    if (!json_object_is_type(pp, json_type_object))
      return bad(c, "output.postprocessing", "expected an object");
    json_object *lc = member(pp, "largest_component");
    if (lc && json_object_is_type(lc, json_type_boolean)) {
      k->lcc_all = json_object_get_boolean(lc);
    } else if (lc && json_object_is_type(lc, json_type_array)) {
      for (size_t i = 0; i < json_object_array_length(lc); ++i) {
        json_object *e = json_object_array_get_idx(lc, i);
        int v = json_object_is_type(e, json_type_int) ? json_object_get_int(e) : -1;
        int known = 0;
        for (size_t j = 0; j < k->n_labels; ++j) known |= k->labels[j].value == v;
        if (!known)
          return bad(c, "output.postprocessing.largest_component", "item %zu is not a label value of output.labels",
                     i);
        k->lcc[v] = 1;
      }
    } else if (lc) {
      return bad(c, "output.postprocessing.largest_component", "expected true, false or a list of label values");
    }
    MI_TRY(get_bool(c, pp, "fill_holes", "output.postprocessing.fill_holes", 0, &k->fill_holes));
  }
  if (k->lcc_all)
    for (size_t j = 0; j < k->n_labels; ++j) k->lcc[k->labels[j].value] = 1;
  return NULL;
}

static mi_status *parse(const ctx *c, json_object *root, mi_card *k) {
  if (!json_object_is_type(root, json_type_object)) return bad(c, "(top level)", "expected a JSON object");
  MI_TRY(get_string(c, root, "name", "name", 1, &k->name));
  for (const char *p = k->name; *p; ++p)
    if (isspace((unsigned char)*p) || *p == '/') return bad(c, "name", "no spaces or slashes allowed");
  MI_TRY(get_string(c, root, "version", "version", 1, &k->version));
  MI_TRY(get_string(c, root, "task", "task", 1, &k->task));
  if (strcmp(k->task, "segmentation"))
    return bad(c, "task", "\"%s\" is not a segmentation card (expected \"segmentation\")", k->task);
  MI_TRY(get_string(c, root, "description", "description", 0, &k->description));
  if (!k->description && !(k->description = dup(""))) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  char *model = NULL;
  MI_TRY(get_string(c, root, "model", "model", 1, &model));
  /* The ONNX file lives beside the card. */
  const char *slash = strrchr(c->file, '/');
  size_t dirlen = slash ? (size_t)(slash - c->file + 1) : 0;
  k->model_path = model[0] == '/' ? NULL : malloc(dirlen + strlen(model) + 1);
  if (model[0] == '/') {
    k->model_path = model;
  } else {
    if (!k->model_path) return free(model), mi_error(MI_ERR_NO_MEMORY, "out of memory");
    memcpy(k->model_path, c->file, dirlen);
    strcpy(k->model_path + dirlen, model);
    free(model);
  }
  MI_TRY(parse_applies(c, root, k));
  MI_TRY(parse_input(c, root, k));
  MI_TRY(parse_inference(c, root, k));
  MI_TRY(parse_output(c, root, k));
  return NULL;
}

mi_status *mi_card_load(const char *path, mi_card **out) {
  if (!out) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_card_load: out is NULL");
  *out = NULL;
  if (!path || !*path) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_card_load: no path");
  FILE *f = fopen(path, "rb");
  if (!f) return mi_error(MI_ERR_IO, "%s: cannot open model card (%s)", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  if (size < 0 || size > (1 << 24)) {
    fclose(f);
    return mi_error(MI_ERR_PARSE, "%s: not a model card (size %ld bytes)", path, size);
  }
  char *text = malloc((size_t)size + 1);
  size_t got = text ? fread(text, 1, (size_t)size, f) : 0;
  fclose(f);
  if (!text) return mi_error(MI_ERR_NO_MEMORY, "%s: out of memory", path);
  text[got] = 0;
  json_tokener *tok = json_tokener_new();
  if (!tok) {
    free(text);
    return mi_error(MI_ERR_NO_MEMORY, "%s: out of memory", path);
  }
  json_object *root = json_tokener_parse_ex(tok, text, (int)got);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  mi_status *st = NULL;
  if (!root || jerr != json_tokener_success) {
    /* Report the line of the syntax error. */
    size_t off = json_tokener_get_parse_end(tok);
    int line = 1;
    for (size_t i = 0; i < off && i < got; ++i) line += text[i] == '\n';
    st = mi_error(MI_ERR_PARSE, "%s: line %d: invalid JSON (%s)", path, line,
                  jerr == json_tokener_continue ? "unexpected end of file" : json_tokener_error_desc(jerr));
  }
  json_tokener_free(tok);
  free(text);
  if (st) {
    json_object_put(root);
    return st;
  }
  mi_card *k = calloc(1, sizeof *k);
  if (!k || !(k->path = dup(path))) {
    free(k);
    json_object_put(root);
    return mi_error(MI_ERR_NO_MEMORY, "%s: out of memory", path);
  }
  ctx c = {path};
  st = parse(&c, root, k);
  json_object_put(root);
  if (st) {
    mi_card_free(k);
    return st;
  }
  *out = k;
  return NULL;
}

static void free_list(char **l, size_t n) {
  for (size_t i = 0; i < n; ++i) free(l[i]);
  free(l);
}

void mi_card_free(mi_card *k) {
  if (!k) return;
  free(k->path), free(k->model_path), free(k->name), free(k->version), free(k->description), free(k->task);
  free_list(k->modality, k->n_modality);
  free_list(k->body_part, k->n_body_part);
  free(k->modality_text);
  for (size_t i = 0; i < k->n_labels; ++i) {
    mi_card_label *l = &k->labels[i];
    free((char *)l->name);
    free((char *)l->category_scheme), free((char *)l->category_value), free((char *)l->category_meaning);
    free((char *)l->type_scheme), free((char *)l->type_value), free((char *)l->type_meaning);
  }
  free(k);
}

const char *mi_card_name(const mi_card *c) { return c ? c->name : ""; }
const char *mi_card_version(const mi_card *c) { return c ? c->version : ""; }
const char *mi_card_description(const mi_card *c) { return c ? c->description : ""; }
const char *mi_card_path(const mi_card *c) { return c ? c->path : ""; }
const char *mi_card_model_path(const mi_card *c) { return c ? c->model_path : ""; }
const char *mi_card_mode(const mi_card *c) { return c && c->mode_2d ? "2d" : "3d"; }
const double *mi_card_spacing(const mi_card *c) { return c ? c->spacing : NULL; }
const char *mi_card_modalities(const mi_card *c) { return c ? c->modality_text : ""; }
size_t mi_card_label_count(const mi_card *c) { return c ? c->n_labels : 0; }
const mi_card_label *mi_card_label_at(const mi_card *c, size_t i) {
  return c && i < c->n_labels ? &c->labels[i] : NULL;
}
