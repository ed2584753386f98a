/* JSON reading helpers of the card parser (json-c): every error names the
 * card file and the field, e.g. "x.card.json: input.spacing: expected 3
 * positive numbers". */
#ifndef MEDINFER_SEG_CARD_JSON_H
#define MEDINFER_SEG_CARD_JSON_H

#include <json.h>

#include "card_internal.h"

typedef struct mi_cj_ctx {
  const char *file;
} mi_cj_ctx;

mi_status *mi_cj_bad(const mi_cj_ctx *c, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
char *mi_cj_dup(const char *s);
/* Member `key` of obj, NULL when absent. */
json_object *mi_cj_member(json_object *obj, const char *key);
int mi_cj_is_number(json_object *v);
/* String member; required: must be present and non-empty.  *out malloc'd or NULL. */
mi_status *mi_cj_string(const mi_cj_ctx *c, json_object *obj, const char *key, const char *field, int required,
                        char **out);
/* Number member in [lo, hi] (def when absent); range is the text for errors. */
mi_status *mi_cj_number(const mi_cj_ctx *c, json_object *obj, const char *key, const char *field, double def,
                        double lo, double hi, const char *range, double *out);
/* The same for an integer member (fractions are refused). */
mi_status *mi_cj_int(const mi_cj_ctx *c, json_object *obj, const char *key, const char *field, double def, double lo,
                     double hi, const char *range, int *out);
mi_status *mi_cj_bool(const mi_cj_ctx *c, json_object *obj, const char *key, const char *field, int def, int *out);
/* A fixed-length array of numbers (integers and/or positive when asked). */
mi_status *mi_cj_vec(const mi_cj_ctx *c, json_object *v, const char *field, int n, int integer, int positive,
                     double *out);
mi_status *mi_cj_string_list(const mi_cj_ctx *c, json_object *obj, const char *key, const char *field, char ***out,
                             size_t *n);
/* {"scheme", "value", "meaning"} member; the three strings are malloc'd. */
mi_status *mi_cj_code(const mi_cj_ctx *c, json_object *l, const char *key, const char *field, const char **scheme,
                      const char **value, const char **meaning);
/* output.labels[i] into k->labels[i] (value unique among labels 0..i-1). */
mi_status *mi_cj_label(const mi_cj_ctx *c, json_object *l, size_t i, mi_card *k);
/* output.labels: a non-empty list of labels. */
mi_status *mi_cj_labels(const mi_cj_ctx *c, json_object *out, mi_card *k);

/* The "detection" part of a detector card's output (card_detection.c). */
mi_status *mi_card_parse_detection(const mi_cj_ctx *c, json_object *out, mi_card *k);

#endif
