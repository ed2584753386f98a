/* medinfer models: the installed model cards. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

#ifdef MEDINFER_HAVE_SEGMENTATION
#include "medinfer/segmentation.h"
#endif

static void models_usage(FILE *to) {
  fprintf(to,
          "usage: medinfer models [-v]\n"
          "\n"
          "List the installed model cards: share/medinfer/models/*/ of the installation\n"
          "(the source tree's models/*/ when run from a build tree), and the folders of\n"
          "$MEDINFER_MODEL_PATH (colon-separated, searched first).\n"
          "\n"
          "  -v, --verbose  also print each card's labels and file paths\n"
          "  --help         this text\n"
          "\n"
          "Exit status: 0 listed (also when there are none), 2 usage, 3 built without\n"
          "the segmentation module.\n");
}

int mi_cmd_models(int argc, char **argv) {
  int verbose = 0;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      models_usage(stdout);
      return MI_EXIT_OK;
    } else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
      verbose = 1;
    } else {
      fprintf(stderr, "medinfer models: unexpected argument '%s'\n", argv[i]);
      models_usage(stderr);
      return MI_EXIT_USAGE;
    }
  }
#ifndef MEDINFER_HAVE_SEGMENTATION
  fprintf(stderr, "medinfer models: this build has no segmentation module\n");
  return MI_EXIT_UNAVAILABLE;
#else
  mi_card_list *l = NULL;
  mi_status *st = mi_card_list_installed(&l);
  if (st) return mi_cli_fail("models", st);
  size_t n = mi_card_list_count(l);
  if (n) printf("%-20s %-9s %-12s %-4s %-10s %-16s %-7s %s\n", "NAME", "VERSION", "TASK", "MODE", "MODALITY",
                "SPACING (mm)", "LABELS", "DESCRIPTION");
  for (size_t i = 0; i < n; ++i) {
    const mi_card *c = mi_card_list_at(l, i);
    const double *s = mi_card_spacing(c);
    char sp[48];
    snprintf(sp, sizeof sp, "%gx%gx%g", s[0], s[1], s[2]);
    printf("%-20s %-9s %-12s %-4s %-10s %-16s %-7zu %s\n", mi_card_name(c), mi_card_version(c), mi_card_task(c),
           mi_card_mode(c),
           mi_card_modalities(c), sp, mi_card_label_count(c), mi_card_description(c));
    if (verbose) {
      printf("    card  %s\n    model %s\n", mi_card_path(c), mi_card_model_path(c));
      for (size_t k = 0; k < mi_card_label_count(c); ++k) {
        const mi_card_label *lb = mi_card_label_at(c, k);
        printf("    %3d %-24s %s %s (%s)\n", lb->value, lb->name, lb->type_scheme, lb->type_value, lb->type_meaning);
      }
    }
  }
  printf("%zu model(s) installed\n", n);
  for (size_t i = 0; i < mi_card_list_problem_count(l); ++i)
    fprintf(stderr, "medinfer models: warning: %s\n", mi_card_list_problem(l, i));
  mi_card_list_free(l);
  return MI_EXIT_OK;
#endif
}
