/* medinfer: command dispatcher.  Global options, then a subcommand from the
 * table below, which parses the rest of the command line itself. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "medinfer/status.h"

#ifndef MEDINFER_VERSION
#define MEDINFER_VERSION "0.0.0"
#endif

static const mi_command commands[] = {
    {"list", "print the DICOM series table of a folder or DICOMDIR", mi_cmd_list},
    {"phantom", "write a synthetic CT/MR study with ground-truth labels", mi_cmd_phantom},
    {"segment", "segment the series of a study with a model; DICOM SEG out", mi_cmd_segment},
    {"detect", "find lesions in the series of a study; DICOM SR, markups, review pages out", mi_cmd_detect},
    {"models", "list the installed model cards", mi_cmd_models},
    {"devices", "list the devices a network can run on (CPU, CUDA GPUs)", mi_cmd_devices},
};
static const size_t n_commands = sizeof commands / sizeof commands[0];

static void usage(FILE *to) {
  fprintf(to,
          "usage: medinfer [--help] [--version] COMMAND [ARGS]\n"
          "\n"
          "Deep-learning inference for DICOM studies.\n"
          "\n"
          "commands:\n");
  for (size_t i = 0; i < n_commands; ++i) fprintf(to, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(to,
          "\n"
          "Run 'medinfer COMMAND --help' for a command's options.\n"
          "\n"
          "exit status:\n"
          "  0  success\n"
          "  1  the command failed (the message names the file and the reason)\n"
          "  2  usage error\n"
          "  3  this build lacks the module the command needs\n"
          "  4  partial: some items failed, others succeeded (segment, detect)\n");
}

int mi_cli_fail(const char *cmd, struct mi_status *st) {
  fprintf(stderr, "medinfer %s: %s\n", cmd, st ? mi_status_message(st) : "failed");
  mi_status_free(st);
  return MI_EXIT_FAILURE;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return MI_EXIT_USAGE;
  }
  const char *a = argv[1];
  if (!strcmp(a, "--help") || !strcmp(a, "-h") || !strcmp(a, "help")) {
    usage(stdout);
    return MI_EXIT_OK;
  }
  if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
    printf("medinfer %s\n", MEDINFER_VERSION);
    return MI_EXIT_OK;
  }
  for (size_t i = 0; i < n_commands; ++i)
    if (!strcmp(a, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "medinfer: unknown command '%s'\n\n", a);
  usage(stderr);
  return MI_EXIT_USAGE;
}
