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

#include "card_json.h"

static mi_status *parse_applies(const mi_cj_ctx *c, json_object *root, mi_card *k) {
  json_object *a = mi_cj_member(root, "applies_to");
  if (!a || !json_object_is_type(a, json_type_object)) return mi_cj_bad(c, "applies_to", "missing (expected an object)");
  MI_TRY(mi_cj_string_list(c, a, "modality", "applies_to.modality", &k->modality, &k->n_modality));
  MI_TRY(mi_cj_string_list(c, a, "body_part", "applies_to.body_part", &k->body_part, &k->n_body_part));
  json_object *m = mi_cj_member(a, "min_size");
  if (m) {
    double v[3];
    MI_TRY(mi_cj_vec(c, m, "applies_to.min_size", 3, 1, 0, v));
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

static mi_status *parse_step(const mi_cj_ctx *c, json_object *s, int i, mi_card *k) {
  char field[96];
  snprintf(field, sizeof field, "input.preprocessing[%d]", i);
  if (!json_object_is_type(s, json_type_object)) return mi_cj_bad(c, field, "expected an object");
  mi_card_step *st = &k->steps[i];
  json_object *t = mi_cj_member(s, "type");
  const char *type = t && json_object_is_type(t, json_type_string) ? json_object_get_string(t) : NULL;
  char f[128];
  if (!type) {
    snprintf(f, sizeof f, "%s.type", field);
    return mi_cj_bad(c, f, "missing (expected \"ct_window\", \"zscore\" or \"mean_subtract\")");
  }
  if (!strcmp(type, "ct_window")) {
    st->type = MI_STEP_CT_WINDOW;
    snprintf(f, sizeof f, "%s.center", field);
    if (!mi_cj_is_number(mi_cj_member(s, "center"))) return mi_cj_bad(c, f, "missing (expected a number)");
    MI_TRY(mi_cj_number(c, s, "center", f, 0, -1e9, 1e9, "", &st->a));
    snprintf(f, sizeof f, "%s.width", field);
    if (!mi_cj_is_number(mi_cj_member(s, "width"))) return mi_cj_bad(c, f, "missing (expected a positive number)");
    MI_TRY(mi_cj_number(c, s, "width", f, 0, 1e-9, 1e9, "> 0", &st->b));
  } else if (!strcmp(type, "zscore")) {
    st->type = MI_STEP_ZSCORE;
    int hm = mi_cj_member(s, "mean") != NULL, hs = mi_cj_member(s, "std") != NULL;
    if (hm != hs) {
      snprintf(f, sizeof f, "%s.%s", field, hm ? "std" : "mean");
      return mi_cj_bad(c, f, "give both mean and std, or neither");
    }
    st->has_stats = hm;
    snprintf(f, sizeof f, "%s.mean", field);
    MI_TRY(mi_cj_number(c, s, "mean", f, 0, -1e12, 1e12, "", &st->a));
    snprintf(f, sizeof f, "%s.std", field);
    MI_TRY(mi_cj_number(c, s, "std", f, 1, 1e-12, 1e12, "> 0", &st->b));
  } else if (!strcmp(type, "mean_subtract")) {
    st->type = MI_STEP_MEAN_SUBTRACT;
    json_object *m = mi_cj_member(s, "means"), *sc = mi_cj_member(s, "scale");
    snprintf(f, sizeof f, "%s.means", field);
    int n = m && json_object_is_type(m, json_type_array) ? (int)json_object_array_length(m) : 0;
    if (n != k->channels) return mi_cj_bad(c, f, "expected %d numbers (one per input channel)", k->channels);
    MI_TRY(mi_cj_vec(c, m, f, n, 0, 0, st->means));
    for (int j = 0; j < n; ++j) st->scale[j] = 1;
    if (sc) {
      snprintf(f, sizeof f, "%s.scale", field);
      MI_TRY(mi_cj_vec(c, sc, f, n, 0, 0, st->scale));
    }
    st->n_means = n;
  } else {
    snprintf(f, sizeof f, "%s.type", field);
    return mi_cj_bad(c, f, "unknown step \"%s\" (expected ct_window, zscore or mean_subtract)", type);
  }
  return NULL;
}

static mi_status *parse_input(const mi_cj_ctx *c, json_object *root, mi_card *k) {
  json_object *in = mi_cj_member(root, "input");
  if (!in || !json_object_is_type(in, json_type_object)) return mi_cj_bad(c, "input", "missing (expected an object)");
  if (!mi_cj_member(in, "channels")) return mi_cj_bad(c, "input.channels", "missing (expected 1)");
  MI_TRY(mi_cj_int(c, in, "channels", "input.channels", 1, 1, MI_CARD_MAX_CHANNELS, "from 1 to 8", &k->channels));
  if (k->channels != 1)
    return mi_cj_bad(c, "input.channels", "%d channels need a multi-series model, not supported yet (expected 1)",
               k->channels);
  MI_TRY(mi_cj_vec(c, mi_cj_member(in, "spacing"), "input.spacing", 3, 0, 1, k->spacing));
  char *orient = NULL;
  MI_TRY(mi_cj_string(c, in, "orientation", "input.orientation", 0, &orient));
  k->lps = 1;
  if (orient) {
    int lps = !strcmp(orient, "LPS"), native = !strcmp(orient, "native");
    free(orient);
    if (!lps && !native) return mi_cj_bad(c, "input.orientation", "expected \"LPS\" or \"native\"");
    k->lps = lps;
  }
  json_object *pre = mi_cj_member(in, "preprocessing");
  if (pre) {
    if (!json_object_is_type(pre, json_type_array)) return mi_cj_bad(c, "input.preprocessing", "expected a list");
    int n = (int)json_object_array_length(pre);
    if (n > MI_CARD_MAX_STEPS) return mi_cj_bad(c, "input.preprocessing", "at most %d steps", MI_CARD_MAX_STEPS);
    for (int i = 0; i < n; ++i) MI_TRY(parse_step(c, json_object_array_get_idx(pre, i), i, k));
    k->n_steps = n;
  }
  return NULL;
}

static mi_status *parse_inference(const mi_cj_ctx *c, json_object *root, mi_card *k) {
  json_object *inf = mi_cj_member(root, "inference");
  if (!inf || !json_object_is_type(inf, json_type_object))
    return mi_cj_bad(c, "inference", "missing (expected an object)");
  char *mode = NULL;
  MI_TRY(mi_cj_string(c, inf, "mode", "inference.mode", 1, &mode));
  int is3 = !strcmp(mode, "3d"), is2 = !strcmp(mode, "2d");
  free(mode);
  if (!is3 && !is2) return mi_cj_bad(c, "inference.mode", "expected \"3d\" or \"2d\"");
  k->mode_2d = is2;
  json_object *ps = mi_cj_member(inf, "patch_size");
  if (ps || is3) {
    double p[3];
    MI_TRY(mi_cj_vec(c, ps, "inference.patch_size", 3, 1, 1, p));
    /* 2^25 voxels (320^3) and more are no patch: a 1024^3 one ran for minutes before failing */
    if (p[0] > 65536 || p[1] > 65536 || p[2] > 65536 || p[0] * p[1] * p[2] > 33554432.0)
      return mi_cj_bad(c, "inference.patch_size", "expected at most 2^25 voxels (320 x 320 x 320), got %g x %g x %g",
                       p[0], p[1], p[2]);
    for (int i = 0; i < 3; ++i) k->patch[i] = (int64_t)p[i];
    if (is2 && k->patch[2] != 1) return mi_cj_bad(c, "inference.patch_size", "2d mode needs [x, y, 1]");
  }
  /* past 0.9 the patches multiply (0.999999: a 1-voxel step, hours for one CT) */
  MI_TRY(mi_cj_number(c, inf, "overlap", "inference.overlap", 0.5, 0, 0.9, "in [0, 0.9]", &k->overlap));
  MI_TRY(mi_cj_int(c, inf, "batch", "inference.batch", 1, 1, 1024, "from 1 to 1024", &k->batch));
  MI_TRY(mi_cj_number(c, inf, "gaussian_sigma_scale", "inference.gaussian_sigma_scale", 0.125, 1e-6, 10, "in (0, 10]",
                    &k->sigma_scale));
  MI_TRY(mi_cj_bool(c, inf, "mirroring", "inference.mirroring", 0, &k->mirroring));
  return NULL;
}

static mi_status *parse_output(const mi_cj_ctx *c, json_object *root, mi_card *k) {
  json_object *out = mi_cj_member(root, "output");
  if (!out || !json_object_is_type(out, json_type_object)) return mi_cj_bad(c, "output", "missing (expected an object)");
  MI_TRY(mi_cj_labels(c, out, k));
  if (k->is_detection) return mi_card_parse_detection(c, out, k);
  char *act = NULL;
  MI_TRY(mi_cj_string(c, out, "activation", "output.activation", 1, &act));
  int sm = !strcmp(act, "softmax"), sg = !strcmp(act, "sigmoid");
  free(act);
  if (!sm && !sg) return mi_cj_bad(c, "output.activation", "expected \"softmax\" or \"sigmoid\"");
  k->activation = sm ? MI_ACTIVATION_SOFTMAX : MI_ACTIVATION_SIGMOID;
  MI_TRY(mi_cj_number(c, out, "threshold", "output.threshold", 0.5, 0, 1, "in [0, 1]", &k->threshold));
  json_object *pp = mi_cj_member(out, "postprocessing");
  if (pp) {
    if (!json_object_is_type(pp, json_type_object))
      return mi_cj_bad(c, "output.postprocessing", "expected an object");
    json_object *lc = mi_cj_member(pp, "largest_component");
    if (lc && json_object_is_type(lc, json_type_boolean)) {
      k->lcc_all = json_object_get_boolean(lc);
    } else if (lc && json_object_is_type(lc, json_type_array)) {
      for (size_t i = 0; i < json_object_array_length(lc); ++i) {
        json_object *e = json_object_array_get_idx(lc, i);
        int v = json_object_is_type(e, json_type_int) ? json_object_get_int(e) : -1;
        int known = 0;
        for (size_t j = 0; j < k->n_labels; ++j) known |= k->labels[j].value == v;
        if (!known)
          return mi_cj_bad(c, "output.postprocessing.largest_component", "item %zu is not a label value of output.labels",
                     i);
        k->lcc[v] = 1;
      }
    } else if (lc) {
      return mi_cj_bad(c, "output.postprocessing.largest_component", "expected true, false or a list of label values");
    }
    MI_TRY(mi_cj_bool(c, pp, "fill_holes", "output.postprocessing.fill_holes", 0, &k->fill_holes));
  }
  if (k->lcc_all)
    for (size_t j = 0; j < k->n_labels; ++j) k->lcc[k->labels[j].value] = 1;
  return NULL;
}

static mi_status *parse(const mi_cj_ctx *c, json_object *root, mi_card *k) {
  if (!json_object_is_type(root, json_type_object)) return mi_cj_bad(c, "(top level)", "expected a JSON object");
  MI_TRY(mi_cj_string(c, root, "name", "name", 1, &k->name));
  for (const char *p = k->name; *p; ++p)
    if (isspace((unsigned char)*p) || *p == '/') return mi_cj_bad(c, "name", "no spaces or slashes allowed");
  MI_TRY(mi_cj_string(c, root, "version", "version", 1, &k->version));
  MI_TRY(mi_cj_string(c, root, "task", "task", 1, &k->task));
  k->is_detection = !strcmp(k->task, "detection");
  if (strcmp(k->task, "segmentation") && !k->is_detection)
    return mi_cj_bad(c, "task", "\"%s\" is not a task medinfer runs (expected \"segmentation\" or \"detection\")",
                     k->task);
  MI_TRY(mi_cj_string(c, root, "description", "description", 0, &k->description));
  if (!k->description && !(k->description = mi_cj_dup(""))) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  char *model = NULL;
  MI_TRY(mi_cj_string(c, root, "model", "model", 1, &model));
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
  if (!k || !(k->path = mi_cj_dup(path))) {
    free(k);
    json_object_put(root);
    return mi_error(MI_ERR_NO_MEMORY, "%s: out of memory", path);
  }
  mi_cj_ctx c = {path};
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
  for (int i = 0; i < k->det.n_outputs; ++i) free(k->det.outputs[i].name);
  free(k->det.boxes_output), free(k->det.scores_output), free(k->det.labels_output);
  free(k);
}

const char *mi_card_name(const mi_card *c) { return c ? c->name : ""; }
const char *mi_card_version(const mi_card *c) { return c ? c->version : ""; }
const char *mi_card_description(const mi_card *c) { return c ? c->description : ""; }
const char *mi_card_path(const mi_card *c) { return c ? c->path : ""; }
const char *mi_card_model_path(const mi_card *c) { return c ? c->model_path : ""; }
const char *mi_card_task(const mi_card *c) { return c ? c->task : ""; }
const char *mi_card_mode(const mi_card *c) { return c && c->mode_2d ? "2d" : "3d"; }
const double *mi_card_spacing(const mi_card *c) { return c ? c->spacing : NULL; }
const char *mi_card_modalities(const mi_card *c) { return c ? c->modality_text : ""; }
size_t mi_card_label_count(const mi_card *c) { return c ? c->n_labels : 0; }
const mi_card_label *mi_card_label_at(const mi_card *c, size_t i) {
  return c && i < c->n_labels ? &c->labels[i] : NULL;
}
