/* medinfer devices: where networks can run (the CPU, and the CUDA GPUs this
 * build and machine can use, or why none). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "medinfer/engine.h"

static void devices_usage(FILE *to) {
  fprintf(to,
          "usage: medinfer devices\n"
          "\n"
          "Print the devices 'segment' and 'detect' can run a network on: 'cpu', and\n"
          "'cuda:N' for each usable CUDA GPU (or why there is none: no GPU, no driver,\n"
          "or a build without the CUDA backend).\n"
          "\n"
          "Exit status: 0 (also when no GPU is usable), 2 usage.\n");
}

int mi_cmd_devices(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      devices_usage(stdout);
      return MI_EXIT_OK;
    }
    fprintf(stderr, "medinfer devices: unexpected argument: %s\n", argv[i]);
    devices_usage(stderr);
    return MI_EXIT_USAGE;
  }
  const char *bf16 = mi_bf16_unit();
  printf("cpu       %ld cores%s%s%s%s\n", sysconf(_SC_NPROCESSORS_ONLN),
         mi_fast_available() ? ", fast (Winograd: segment/detect --fast)" : "", bf16 ? ", bf16 (" : "",
         bf16 ? bf16 : "", bf16 ? ": segment/detect --bf16)" : "");
  int count = 0;
  mi_status *st = mi_cuda_device_count(&count);
  if (st) {
    printf("cuda      none: %s\n", mi_status_message(st));
    mi_status_free(st);
  }
  for (int i = 0; i < count; ++i) printf("cuda:%d\n", i);
  return MI_EXIT_OK;
}
