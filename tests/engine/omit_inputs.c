/* Loads every model of the given conformance folders once per node input with
 * that input's name made empty (ONNX's "omitted"), and runs those that load.
 * Passes when nothing crashes and every error says why: an omitted required
 * input must be refused at load, naming the node, not reach a kernel as NULL.
 * Run under AddressSanitizer in CI. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medinfer/engine.h"
#include "onnx.pb-c.h"
#include "run_any_model.h"

static uint8_t *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  *len = n > 0 ? (size_t)n : 0;
  return b;
}

typedef struct {
  long tried, loaded, refused, failed;
} tally;

/* false on an error without a message */
static bool try_model(const Onnx__ModelProto *mp, const char *dir, const char *label, tally *t) {
  size_t len = onnx__model_proto__get_packed_size(mp);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf) return false;
  onnx__model_proto__pack(mp, buf);
  mi_options opt;
  mi_options_default(&opt);
  opt.threads = 1;
  opt.max_tensor_bytes = (size_t)256 << 20;
  mi_model *m = NULL;
  mi_status *st = mi_model_load_buffer(buf, len, dir, label, &opt, &m);
  free(buf);
  t->tried++;
  if (st) {
    bool said = mi_status_message(st)[0] != 0;
    if (!said) fprintf(stderr, "omit_inputs: %s: a load error without a message\n", label);
    mi_status_free(st);
    t->refused++;
    return said;
  }
  t->loaded++;
  bool ok = mi_test_run_any(m, (int64_t)1 << 22);
  if (!ok) fprintf(stderr, "omit_inputs: %s: a run error without a message\n", label);
  mi_model_free(m);
  return ok;
}

static bool omit_each(const char *dir, tally *t) {
  char path[4200];
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  size_t len;
  uint8_t *b = read_all(path, &len);
  if (!b) return true; /* a folder without a model */
  Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, b);
  free(b);
  if (!mp || !mp->graph) {
    fprintf(stderr, "omit_inputs: cannot parse %s\n", path);
    if (mp) onnx__model_proto__free_unpacked(mp, NULL);
    return false;
  }
  static char empty[] = "";
  for (size_t k = 0; k < mp->graph->n_node; k++) {
    Onnx__NodeProto *n = mp->graph->node[k];
    for (size_t j = 0; j < n->n_input; j++) {
      char *name = n->input[j];
      if (!name[0]) continue;
      n->input[j] = empty;
      char label[4400];
      snprintf(label, sizeof label, "%s (node %zu %s, input %zu omitted)", path, k, n->op_type, j);
      if (!try_model(mp, dir, label, t)) t->failed++;
      n->input[j] = name;
    }
  }
  onnx__model_proto__free_unpacked(mp, NULL);
  return true;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: omit_inputs SUITE_FOLDER...\n");
    return 2;
  }
  tally t = {0};
  int unreadable = 0;
  for (int a = 1; a < argc; a++) {
    DIR *d = opendir(argv[a]);
    if (!d) {
      fprintf(stderr, "omit_inputs: cannot open %s\n", argv[a]);
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
      if (!omit_each(dir, &t)) unreadable++;
      free(names[i]);
    }
    free(names);
  }
  printf("%ld models with one input omitted: %ld loaded and ran, %ld refused with a message\n", t.tried,
         t.loaded, t.refused);
  if (unreadable) fprintf(stderr, "omit_inputs: %d model files could not be parsed\n", unreadable);
  printf("%ld passed, %ld failed\n", t.tried - t.failed, t.failed);
  return t.failed || unreadable ? 1 : 0;
}
