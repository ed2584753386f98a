/* medinfer: command dispatcher.  Global options, then a subcommand from the
 * table below, which parses the rest of the command line itself. */
#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

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

/* A job allocates and frees buffers of tens to hundreds of MB in turn (the
 * source volume, the model grid's probabilities, the SEG's frames).  glibc
 * maps each afresh and unmaps it when freed, so every one is faulted in and
 * zeroed by the kernel again: on the 512x512x300 phantom 110k page faults, a
 * fifth of the job's CPU time.  From the heap and kept there, later buffers
 * reuse pages already in (79k faults; the job 3.06-3.75 -> 2.73-2.91 s,
 * runs alternating; peak 611 -> 622 MB).  The process's choice, not the
 * libraries': a host such as Slicer keeps its own. */
static void keep_freed_memory(void) {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

int main(int argc, char **argv) {
  keep_freed_memory();
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
