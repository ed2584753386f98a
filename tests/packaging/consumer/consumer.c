/* A program built against an installed medinfer (pkg-config or CMake
 * package): loads a network with the engine, prints its first input, and
 * reports a failed load through the status API. */
#include <stdio.h>

#include <medinfer/engine.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: consumer MODEL.onnx\n");
    return 2;
  }
  printf("engine %s\n", mi_engine_version());
  mi_model *m = NULL;
  mi_status *st = mi_model_load_file(argv[1], NULL, &m);
  if (st) {
    fprintf(stderr, "consumer: %s\n", mi_status_message(st));
    mi_status_free(st);
    return 1;
  }
  mi_io_info in;
  st = mi_model_input_info(m, 0, &in);
  if (st) {
    fprintf(stderr, "consumer: %s\n", mi_status_message(st));
    mi_status_free(st);
    mi_model_free(m);
    return 1;
  }
  printf("inputs %d outputs %d first %s rank %d\n", mi_model_num_inputs(m), mi_model_num_outputs(m), in.name,
         in.ndim);
  mi_model_free(m);
  /* The status API comes with the engine. */
  st = mi_model_load_file("/nonexistent/model.onnx", NULL, &m);
  if (!st || mi_status_code(st) == MI_OK) return 1;
  printf("missing file: code %d\n", (int)mi_status_code(st));
  mi_status_free(st);
  return 0;
}
