/* medinfer list DIR: the series table, grouped patient -> study -> series. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

#ifdef MEDINFER_HAVE_DICOM
#include "medinfer/dicom.h"
#endif

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
  const char *patient = NULL, *study = NULL;
  size_t n = mi_dicom_index_series_count(idx);
  for (size_t i = 0; i < n; ++i) {
    mi_dicom_series_info s;
    st = mi_dicom_index_series(idx, i, &s);
    if (st) {
      mi_dicom_index_free(idx);
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
      printf("    %-5s %-4s %-32s %6s %-17s %-8s %s\n", "#", "MOD", "DESCRIPTION", "FILES", "COLSxROWSxSLICES",
             "ORIENT", "LOADABLE");
    }
    char dims[64];
    snprintf(dims, sizeof dims, "%lldx%lldx%lld", (long long)s.cols, (long long)s.rows, (long long)s.slices);
    printf("    %-5d %-4s %-32.32s %6lld %-17s %-8s %s%s%s\n", s.series_number, s.modality, s.series_description,
           (long long)s.instances, dims, s.orientation[0] ? s.orientation : "-", s.loadable ? "yes" : "no",
           s.reason[0] ? ": " : "", s.reason);
    printf("          series %s\n", s.series_uid);
  }
  size_t skipped = mi_dicom_index_skipped_count(idx);
  printf("%zu series; %zu file(s) skipped%s\n", n, skipped, skipped && !show_skipped ? " (--skipped lists them)" : "");
  if (show_skipped)
    for (size_t i = 0; i < skipped; ++i)
      printf("  skipped %s: %s\n", mi_dicom_index_skipped_path(idx, i), mi_dicom_index_skipped_reason(idx, i));
  mi_dicom_index_free(idx);
  return MI_EXIT_OK;
#endif
}
