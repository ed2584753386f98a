/* Loads every model of the given conformance folders edited in one place at
 * a time, and runs those that load.  Passes when nothing crashes and every
 * error says why.  Run under AddressSanitizer and UBSan in CI.
 *   omit: each node input's name made empty (ONNX's "omitted") in turn: an
 *         omitted required input must be refused at load, naming the node,
 *         not reach a kernel as NULL;
 *   attrs: each numeric attribute set to extremes in turn (0, -1, 2^31,
 *         2^62, INT64_MIN; NaN, inf, -inf, 1e30, -1; lists with every value
 *         so, and emptied): hostile shapes, counts and axes;
 *   consts: each small integer or float value (up to 8, an initializer or
 *         a graph input of known shape: shapes, axes, pads, scales) made a
 *         constant holding such extremes in turn.
 * EDIT_NODES_VERBOSE=1 prints each refusal's message. */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "medinfer/engine.h"
#include "onnx.pb-c.h"
#include "run_any_model.h"

typedef struct {
  long tried, loaded, refused, failed;
} tally;

/* The edit being tried, named by the crash handler (a crash is the finding). */
static const char *g_label = "";
static void on_crash(int sig) {
  static const char what[] = "edit_nodes: crashed on ";
  if (write(2, what, sizeof what - 1) < 0 || write(2, g_label, strlen(g_label)) < 0 || write(2, "\n", 1) < 0) {
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

/* One mode (0 exact, 1 fast: the Winograd path, 2 bf16); false on an error
 * without a message. */
static bool try_mode(const uint8_t *buf, size_t len, const char *dir, const char *label, int mode, tally *t) {
  mi_options opt;
  mi_options_default(&opt);
  opt.threads = 1;
  opt.max_tensor_bytes = (size_t)256 << 20;
  opt.fast_math = mode == 1;
  opt.bf16 = mode == 2;
  mi_model *m = NULL;
  g_label = label;
  mi_status *st = mi_model_load_buffer(buf, len, dir, label, &opt, &m);
  t->tried++;
  if (st) {
    bool said = mi_status_message(st)[0] != 0;
    if (getenv("EDIT_NODES_VERBOSE")) fprintf(stderr, "%s: %s\n", label, mi_status_message(st));
    if (!said) fprintf(stderr, "edit_nodes: %s: a load error without a message\n", label);
    mi_status_free(st);
    t->refused++;
    return said;
  }
  t->loaded++;
  bool ok = mi_test_run_any(m, (int64_t)1 << 22);
  if (!ok) fprintf(stderr, "edit_nodes: %s: a run error without a message\n", label);
  mi_model_free(m);
  return ok;
}

/* The edited model in each mode; the failures counted in t. */
static void try_model(const Onnx__ModelProto *mp, const char *dir, const char *label, tally *t) {
  size_t len = onnx__model_proto__get_packed_size(mp);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf) {
    t->failed++;
    return;
  }
  onnx__model_proto__pack(mp, buf);
  for (int mode = 0; mode < 3; mode++)
    if (!try_mode(buf, len, dir, label, mode, t)) t->failed++;
  free(buf);
}

static void omit_each(Onnx__ModelProto *mp, const char *dir, const char *path, tally *t) {
  static char empty[] = "";
  for (size_t k = 0; k < mp->graph->n_node; k++) {
    Onnx__NodeProto *n = mp->graph->node[k];
    for (size_t j = 0; j < n->n_input; j++) {
      char *name = n->input[j];
      if (!name[0]) continue;
      n->input[j] = empty;
      char label[4400];
      snprintf(label, sizeof label, "%s (node %zu %s, input %zu omitted)", path, k, n->op_type, j);
      try_model(mp, dir, label, t);
      n->input[j] = name;
    }
  }
}

#define N_EXTREMES 5
static const int64_t int_extremes[N_EXTREMES] = {0, -1, (int64_t)1 << 31, (int64_t)1 << 62, INT64_MIN};
static const int32_t int32_extremes[N_EXTREMES] = {0, -1, INT32_MAX, INT32_MIN, 1 << 16};
#define FLOAT_EXTREMES {NAN, INFINITY, -INFINITY, 1e30f, -1.f}

static void attrs_each(Onnx__ModelProto *mp, const char *dir, const char *path, tally *t) {
  const float float_extremes[N_EXTREMES] = FLOAT_EXTREMES;
  for (size_t k = 0; k < mp->graph->n_node; k++) {
    Onnx__NodeProto *n = mp->graph->node[k];
    for (size_t a = 0; a < n->n_attribute; a++) {
      Onnx__AttributeProto *at = n->attribute[a];
      const bool list = at->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS ||
                        at->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
      if (at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT &&
          at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT && !list)
        continue;
      const int64_t i0 = at->i;
      const float f0 = at->f;
      const size_t ni = at->n_ints, nf = at->n_floats;
      int64_t *ints = at->ints;
      float *floats = at->floats;
      int64_t iv[8];
      float fv[8];
      /* each extreme, and (lists) the list emptied */
      for (int e = 0; e < N_EXTREMES + (list ? 1 : 0); e++) {
        const bool emptied = e == N_EXTREMES;
        if (at->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) at->i = int_extremes[e];
        if (at->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT) at->f = float_extremes[e];
        if (at->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS) {
          at->n_ints = emptied ? 0 : ni < 8 ? ni : 8;
          for (size_t i = 0; i < at->n_ints; i++) iv[i] = int_extremes[e];
          at->ints = iv;
        }
        if (at->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS) {
          at->n_floats = emptied ? 0 : nf < 8 ? nf : 8;
          for (size_t i = 0; i < at->n_floats; i++) fv[i] = float_extremes[e];
          at->floats = fv;
        }
        char label[4400];
        snprintf(label, sizeof label, "%s (node %zu %s, attribute %s, %s %d)", path, k, n->op_type, at->name,
                 emptied ? "emptied" : "extreme", e);
        try_model(mp, dir, label, t);
      }
      at->i = i0, at->f = f0, at->n_ints = ni, at->ints = ints, at->n_floats = nf, at->floats = floats;
    }
  }
}

/* The tensor's values set to extreme e (n of them, of its data type). */
static void fill_extreme(Onnx__TensorProto *tp, size_t n, int e, int64_t *i64, int32_t *i32, float *f32) {
  const float fe[N_EXTREMES] = FLOAT_EXTREMES;
  tp->n_int64_data = tp->n_int32_data = tp->n_float_data = 0;
  for (size_t i = 0; i < n; i++) i64[i] = int_extremes[e], i32[i] = int32_extremes[e], f32[i] = fe[e];
  if (tp->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) tp->n_int64_data = n, tp->int64_data = i64;
  if (tp->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT32) tp->n_int32_data = n, tp->int32_data = i32;
  if (tp->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) tp->n_float_data = n, tp->float_data = f32;
}

static bool small_numeric(int32_t type, size_t ndim, const int64_t *dims, size_t *n) {
  if (type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && type != ONNX__TENSOR_PROTO__DATA_TYPE__INT32 &&
      type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
    return false;
  if (ndim > 2) return false;
  *n = 1;
  for (size_t d = 0; d < ndim; d++) {
    if (dims[d] < 1 || dims[d] > 8) return false;
    *n *= (size_t)dims[d];
  }
  return *n <= 8;
}

/* Small integer and float values of the graph (up to 8 of known shape: the
 * shapes, axes, counts, pads and scales operators read), initializers or
 * graph inputs, each made a constant holding extremes in turn. */
static void consts_each(Onnx__ModelProto *mp, const char *dir, const char *path, tally *t) {
  Onnx__GraphProto *g = mp->graph;
  const size_t n_in = g->n_input, n_init = g->n_initializer;
  Onnx__ValueInfoProto **inputs = g->input;
  Onnx__TensorProto **inits = g->initializer;
  Onnx__ValueInfoProto **fewer = malloc((n_in ? n_in : 1) * sizeof *fewer);
  Onnx__TensorProto **more = malloc((n_init + 1) * sizeof *more);
  if (!fewer || !more) {
    free(fewer), free(more);
    t->failed++;
    return;
  }
  if (n_init) memcpy(more, inits, n_init * sizeof *more);
  for (size_t v = 0; v < n_in + n_init; v++) {
    Onnx__TensorProto tp;
    onnx__tensor_proto__init(&tp);
    int64_t dims[2];
    size_t ndim = 0, n = 0;
    if (v < n_in) { /* a graph input (not also an initializer) of known shape */
      const Onnx__ValueInfoProto *vi = inputs[v];
      bool init = false;
      for (size_t j = 0; j < n_init && !init; j++) init = !strcmp(inits[j]->name, vi->name);
      if (init || !vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
          !vi->type->tensor_type->shape || vi->type->tensor_type->shape->n_dim > 2)
        continue;
      const Onnx__TensorShapeProto *sh = vi->type->tensor_type->shape;
      bool known = true;
      for (size_t d = 0; d < sh->n_dim && known; d++) {
        known = sh->dim[d]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        if (known) dims[d] = sh->dim[d]->dim_value;
      }
      ndim = sh->n_dim;
      if (!known || !small_numeric(vi->type->tensor_type->elem_type, ndim, dims, &n)) continue;
      tp.name = vi->name, tp.data_type = vi->type->tensor_type->elem_type, tp.has_data_type = 1;
    } else {
      const Onnx__TensorProto *old = inits[v - n_in];
      if (old->n_dims > 2) continue;
      for (size_t d = 0; d < old->n_dims; d++) dims[d] = old->dims[d];
      ndim = old->n_dims;
      if (!small_numeric(old->data_type, ndim, dims, &n)) continue;
      tp.name = old->name, tp.data_type = old->data_type, tp.has_data_type = 1;
    }
    tp.n_dims = ndim, tp.dims = dims;
    if (v < n_in) { /* the input goes, the constant joins the initializers */
      memcpy(fewer, inputs, v * sizeof *fewer);
      memcpy(fewer + v, inputs + v + 1, (n_in - v - 1) * sizeof *fewer);
      g->input = fewer, g->n_input = n_in - 1;
      more[n_init] = &tp;
      g->initializer = more, g->n_initializer = n_init + 1;
    } else {
      more[v - n_in] = &tp;
      g->initializer = more;
    }
    int64_t i64[8];
    int32_t i32[8];
    float f32[8];
    for (int e = 0; e < N_EXTREMES; e++) {
      fill_extreme(&tp, n, e, i64, i32, f32);
      char label[4400];
      snprintf(label, sizeof label, "%s (%s %s, extreme %d)", path, v < n_in ? "input" : "initializer", tp.name, e);
      try_model(mp, dir, label, t);
    }
    if (v >= n_in) more[v - n_in] = inits[v - n_in];
    g->input = inputs, g->n_input = n_in, g->initializer = inits, g->n_initializer = n_init;
  }
  free(fewer);
  free(more);
}

/* false when the folder's model cannot be parsed */
static bool edit_model(const char *dir, int mode, tally *t) {
  char path[4200];
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  size_t len;
  uint8_t *b = mi_test_read_file(path, &len);
  if (!b) return true; /* a folder without a model */
  Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, b);
  free(b);
  if (!mp || !mp->graph) {
    fprintf(stderr, "edit_nodes: cannot parse %s\n", path);
    if (mp) onnx__model_proto__free_unpacked(mp, NULL);
    return false;
  }
  if (mode == 1) attrs_each(mp, dir, path, t);
  else if (mode == 2) consts_each(mp, dir, path, t);
  else omit_each(mp, dir, path, t);
  onnx__model_proto__free_unpacked(mp, NULL);
  return true;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
  const int mode = argc < 3 ? -1 : !strcmp(argv[1], "omit") ? 0 : !strcmp(argv[1], "attrs") ? 1 : !strcmp(argv[1], "consts") ? 2 : -1;
  if (mode < 0) {
    fprintf(stderr, "usage: edit_nodes omit|attrs|consts SUITE_FOLDER...\n");
    return 2;
  }
  signal(SIGSEGV, on_crash);
  signal(SIGFPE, on_crash);
  signal(SIGBUS, on_crash);
  signal(SIGABRT, on_crash);
  tally t = {0};
  int unreadable = 0;
  for (int a = 2; a < argc; a++) {
    DIR *d = opendir(argv[a]);
    if (!d) {
      fprintf(stderr, "edit_nodes: cannot open %s\n", argv[a]);
      return 2;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
      if (e->d_name[0] == '.') continue;
      if (n == cap && !(names = realloc(names, (cap = cap ? 2 * cap : 256) * sizeof *names))) return 2;
      names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
      char dir[4096];
      snprintf(dir, sizeof dir, "%s/%s", argv[a], names[i]);
      if (!edit_model(dir, mode, &t)) unreadable++;
      free(names[i]);
    }
    free(names);
  }
  printf("%ld model runs (exact, fast, bf16) with %s: %ld loaded and ran, %ld refused with a message\n", t.tried,
         mode == 1 ? "one attribute at an extreme" : mode == 2 ? "one small value made an extreme constant" : "one input omitted",
         t.loaded, t.refused);
  if (unreadable) fprintf(stderr, "edit_nodes: %d model files could not be parsed\n", unreadable);
  printf("%ld passed, %ld failed\n", t.tried - t.failed, t.failed);
  return t.failed || unreadable ? 1 : 0;
}
