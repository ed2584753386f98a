/* medinfer list DIR: the series table, grouped patient -> study -> series. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"

#ifdef MEDINFER_HAVE_DICOM
#include "medinfer/dicom.h"
#endif
#ifdef MEDINFER_HAVE_SEGMENTATION
#include "medinfer/segmentation.h"
#endif

/* Installed models that apply to a series (by modality and size), or "-". */
static void applicable_models(const void *cards, const char *modality, const int64_t size[3], char *out, size_t n) {
  snprintf(out, n, "-");
#ifdef MEDINFER_HAVE_SEGMENTATION
  const mi_card_list *l = cards;
  size_t used = 0;
  for (size_t i = 0; i < mi_card_list_count(l); ++i) {
    const mi_card *c = mi_card_list_at(l, i);
    if (!mi_card_applies(c, modality, NULL, size, NULL, 0)) continue;
    int w = snprintf(out + used, n - used, "%s%s", used ? "," : "", mi_card_name(c));
    if (w < 0 || (size_t)w >= n - used) break;
    used += (size_t)w;
  }
#else
  (void)cards, (void)modality, (void)size;
#endif
}

static void list_usage(FILE *to) {
  fprintf(to,
          "usage: medinfer list [--skipped] PATH\n"
          "\n"
          "Print the DICOM series found under the folder PATH (recursively, any\n"
          "file names) or listed in the DICOMDIR file PATH.\n"
          "\n"
          "  --skipped  also list the files that were not DICOM images, with why\n"
          "  --help     this text\n"
          "\n"
          "Exit status: 0 listed, 1 PATH unreadable, 2 usage, 3 built without DICOM.\n");
}

int mi_cmd_list(int argc, char **argv) {
  const char *path = NULL;
  int show_skipped = 0;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      list_usage(stdout);
      return MI_EXIT_OK;
    } else if (!strcmp(argv[i], "--skipped")) {
      show_skipped = 1;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      fprintf(stderr, "medinfer list: unknown option '%s'\n", argv[i]);
      list_usage(stderr);
      return MI_EXIT_USAGE;
    } else if (path) {
      fprintf(stderr, "medinfer list: only one PATH\n");
      return MI_EXIT_USAGE;
    } else {
      path = argv[i];
    }
  }
  if (!path) {
    list_usage(stderr);
    return MI_EXIT_USAGE;
  }
#ifndef MEDINFER_HAVE_DICOM
  fprintf(stderr, "medinfer list: this build has no DICOM module\n");
  return MI_EXIT_UNAVAILABLE;
#else
  mi_dicom_index *idx = NULL;
  mi_status *st = mi_dicom_index_scan(path, &idx);
  if (st) return mi_cli_fail("list", st);
  void *cards = NULL;
#ifdef MEDINFER_HAVE_SEGMENTATION
  mi_card_list *installed = NULL;
  mi_status_free(mi_card_list_installed(&installed)); /* no cards: the column shows "-" */
  cards = installed;
#endif
  const char *patient = NULL, *study = NULL;
  size_t n = mi_dicom_index_series_count(idx);
  for (size_t i = 0; i < n; ++i) {
    mi_dicom_series_info s;
    st = mi_dicom_index_series(idx, i, &s);
    if (st) {
      mi_dicom_index_free(idx);
#ifdef MEDINFER_HAVE_SEGMENTATION
      mi_card_list_free(installed);
#endif
      return mi_cli_fail("list", st);
    }
    if (!patient || strcmp(patient, s.patient_id)) {
      printf("Patient %s  %s\n", s.patient_id, s.patient_name);
      patient = s.patient_id;
      study = NULL;
    }
    if (!study || strcmp(study, s.study_uid)) {
      printf("  Study %s  %s  %s\n", s.study_date, s.study_description, s.study_uid);
      study = s.study_uid;
      printf("    %-5s %-4s %-32s %-16s %6s %-17s %-8s %s\n", "#", "MOD", "DESCRIPTION", "MODELS", "FILES",
             "COLSxROWSxSLICES", "ORIENT", "LOADABLE");
    }
    char dims[64];
    snprintf(dims, sizeof dims, "%lldx%lldx%lld", (long long)s.cols, (long long)s.rows, (long long)s.slices);
    char models[256];
    const int64_t size[3] = {s.cols, s.rows, s.slices};
    applicable_models(cards, s.modality, size, models, sizeof models);
    printf("    %-5d %-4s %-32.32s %-16s %6lld %-17s %-8s %s%s%s\n", s.series_number, s.modality, s.series_description,
           models, (long long)s.instances, dims, s.orientation[0] ? s.orientation : "-", s.loadable ? "yes" : "no",
           s.reason[0] ? ": " : "", s.reason);
    printf("          series %s\n", s.series_uid);
  }
  size_t skipped = mi_dicom_index_skipped_count(idx);
  printf("%zu series; %zu file(s) skipped%s\n", n, skipped, skipped && !show_skipped ? " (--skipped lists them)" : "");
  if (show_skipped)
    for (size_t i = 0; i < skipped; ++i)
      printf("  skipped %s: %s\n", mi_dicom_index_skipped_path(idx, i), mi_dicom_index_skipped_reason(idx, i));
  mi_dicom_index_free(idx);
#ifdef MEDINFER_HAVE_SEGMENTATION
  mi_card_list_free(installed);
#endif
  return MI_EXIT_OK;
#endif
}
