/* libFuzzer target: any bytes as a model card (*.card.json), parsed and
 * validated, and where it loads every accessor read and a series matched
 * against it.  A crash, a sanitizer report or an error without a message is
 * a finding.  Building and running it: tests/fuzz/CMakeLists.txt. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "medinfer/segmentation.h"

static char work[] = "/tmp/medinfer-fuzz-card-XXXXXX"; /* this process's folder, removed at exit */
static char card[sizeof work + 16];

static void remove_work_dir(void) {
  unlink(card);
  rmdir(work);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!card[0]) {
    if (!mkdtemp(work)) abort();
    snprintf(card, sizeof card, "%s/x.card.json", work);
    atexit(remove_work_dir);
  }
  FILE *f = fopen(card, "wb");
  if (!f || (size && fwrite(data, 1, size, f) != size)) abort();
  fclose(f);
  mi_card *c = NULL;
  mi_status *st = mi_card_load(card, &c);
  if (st) {
    if (!mi_status_message(st)[0]) abort();
    mi_status_free(st);
    return 0;
  }
  volatile size_t sink = strlen(mi_card_name(c)) + strlen(mi_card_version(c)) + strlen(mi_card_description(c)) +
                         strlen(mi_card_model_path(c)) + strlen(mi_card_task(c)) + strlen(mi_card_mode(c)) +
                         strlen(mi_card_modalities(c)) + (size_t)mi_card_spacing(c)[2];
  for (size_t i = 0; i < mi_card_label_count(c); i++) {
    const mi_card_label *l = mi_card_label_at(c, i);
    sink = sink + strlen(l->name) + strlen(l->category_meaning) + strlen(l->type_meaning) + l->rgb[2];
  }
  const int64_t sizes[3] = {64, 64, 32};
  char why[256];
  sink = sink + (size_t)mi_card_applies(c, "CT", "ABDOMEN", sizes, why, sizeof why);
  (void)sink;
  mi_card_free(c);
  return 0;
}
