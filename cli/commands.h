/* The medinfer command's subcommands.  Each lives in its own cmd_<name>.c and
 * is listed in the table in main.c; colleagues add segment, models, detect
 * the same way.  A subcommand receives argv with argv[0] = its own name and
 * returns one of the MI_EXIT_* codes. */
#ifndef MEDINFER_CLI_COMMANDS_H
#define MEDINFER_CLI_COMMANDS_H

#include <stdio.h>

enum {
  MI_EXIT_OK = 0,      /* success                                          */
  MI_EXIT_FAILURE = 1, /* the work failed (unreadable input, write error)  */
  MI_EXIT_USAGE = 2,   /* wrong command line                               */
  MI_EXIT_UNAVAILABLE = 3 /* this build lacks the module the command needs */
};

typedef struct mi_command {
  const char *name;
  const char *summary; /* one line for `medinfer --help` */
  int (*run)(int argc, char **argv);
} mi_command;

int mi_cmd_list(int argc, char **argv);
int mi_cmd_phantom(int argc, char **argv);
int mi_cmd_segment(int argc, char **argv);
int mi_cmd_detect(int argc, char **argv);
int mi_cmd_models(int argc, char **argv);
int mi_cmd_devices(int argc, char **argv);

/* Prints "medinfer <cmd>: <message>" to stderr; frees st; returns MI_EXIT_FAILURE. */
struct mi_status;
int mi_cli_fail(const char *cmd, struct mi_status *st);

#endif
