/* Shared by the detection output writers: argument checks, finding names
 * and tracking UIDs, so findings.json, findings.csv, the markups file and
 * the review page describe each finding the same way. */
#ifndef MEDINFER_SEG_FINDINGS_UTIL_H
#define MEDINFER_SEG_FINDINGS_UTIL_H

#include <stddef.h>

#include "medinfer/segmentation.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Checks the arguments every writer shares: card, path (what names it in
 * messages: "path", "dir"), f when n > 0, and each finding's label index,
 * score and finite coordinates.  Errors start with `path` when it is known. */
mi_status *mi_findings_check(const mi_card *card, const mi_finding *f, size_t n, const char *path,
                             const char *path_what);

/* "<label name> <index>" with index = i + 1. */
void mi_finding_name(const mi_card *card, const mi_finding *f, size_t i, char *buf, size_t size);

/* Tracking UID of finding i: "2.25." followed by a UUID (version 8, RFC 9562)
 * hashed from the card, the index and the finding's label, score, centre and
 * size.  Derived, not random, so every file written for one detection names
 * a finding with the same UID and a rerun on the same data reproduces it. */
void mi_finding_tracking_uid(const mi_card *card, const mi_finding *f, size_t i, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
