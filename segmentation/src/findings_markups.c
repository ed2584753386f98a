/* Slicer markups (.mrk.json): one ROI per finding, as Slicer's
 * vtkMRMLMarkupsROIJsonStorageNode reads it: roiType "Box", "center" and a
 * row-major 3x3 "orientation" whose columns are the box axes (both in the
 * file's coordinate system, here LPS), and "size" = full edge lengths along
 * those axes.  Slicer loads every markup of the "markups" array as a node.
 * No findings give an empty array: valid by the schema, though Slicer
 * reports such a file as holding no markups when asked to load it. */
#include <json.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "findings_util.h"
#include "report.h"

/* Slicer writes this schema id and accepts any markups-schema-v1.x.y. */
#define MI_MARKUPS_SCHEMA \
  "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#"

static json_object *num(double v) {
  char s[64];
  snprintf(s, sizeof s, "%.10g", v + 0.0);
  return json_object_new_double_s(v, s);
}

static json_object *array(const double *v, int n) {
  json_object *a = json_object_new_array();
  for (int i = 0; i < n; ++i) json_object_array_add(a, num(v[i]));
  return a;
}

/* Unit axes of the box (columns of `rot`, row-major) and the edge lengths.
 * A Box ROI needs an orthonormal, right-handed frame: a zero-length axis
 * (flat box) takes the cross product of the others, and a left-handed set
 * (a grid whose slices run against the row x column normal) has its third
 * axis flipped, which describes the same box. */
static void box_frame(const mi_finding *f, double rot[9], double size[3]) {
  double u[3][3];
  for (int a = 0; a < 3; ++a) {
    double len = sqrt(f->axes[a][0] * f->axes[a][0] + f->axes[a][1] * f->axes[a][1] + f->axes[a][2] * f->axes[a][2]);
    size[a] = 2.0 * len;
    for (int r = 0; r < 3; ++r) u[a][r] = len > 0 ? f->axes[a][r] / len : 0.0;
  }
  for (int a = 0; a < 3; ++a) {
    if (size[a] > 0) continue;
    const double *p = u[(a + 1) % 3], *q = u[(a + 2) % 3];
    double c[3] = {p[1] * q[2] - p[2] * q[1], p[2] * q[0] - p[0] * q[2], p[0] * q[1] - p[1] * q[0]};
    double len = sqrt(c[0] * c[0] + c[1] * c[1] + c[2] * c[2]);
    for (int r = 0; r < 3; ++r) u[a][r] = len > 0 ? c[r] / len : (r == a);
  }
  double det = u[0][0] * (u[1][1] * u[2][2] - u[1][2] * u[2][1]) - u[0][1] * (u[1][0] * u[2][2] - u[1][2] * u[2][0]) +
               u[0][2] * (u[1][0] * u[2][1] - u[1][1] * u[2][0]);
  if (det < 0)
    for (int r = 0; r < 3; ++r) u[2][r] = -u[2][r];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) rot[3 * r + c] = u[c][r];
}

static json_object *roi_json(const mi_card *card, const mi_finding *f, size_t i) {
  const mi_card_label *lab = mi_card_label_at(card, f->label_index);
  char name[512], desc[768], uid[80];
  mi_finding_name(card, f, i, name, sizeof name);
  mi_finding_tracking_uid(card, f, i, uid, sizeof uid);
  snprintf(desc, sizeof desc, "%s: score %.3f, slices %d-%d, tracking UID %s", mi_card_name(card), (double)f->score,
           f->first_slice, f->last_slice, uid);
  double rot[9], size[3];
  box_frame(f, rot, size);

  json_object *m = json_object_new_object();
  json_object_object_add(m, "type", json_object_new_string("ROI"));
  json_object_object_add(m, "name", json_object_new_string(name));
  /* Not read by Slicer (the schema allows extra keys); the score also goes
   * into a measurement, which Slicer shows. */
  json_object_object_add(m, "description", json_object_new_string(desc));
  json_object_object_add(m, "coordinateSystem", json_object_new_string("LPS"));
  json_object_object_add(m, "coordinateUnits", json_object_new_string("mm"));
  json_object_object_add(m, "locked", json_object_new_boolean(1));
  json_object_object_add(m, "fixedNumberOfControlPoints", json_object_new_boolean(0));
  json_object_object_add(m, "labelFormat", json_object_new_string("%N-%d"));
  json_object_object_add(m, "roiType", json_object_new_string("Box"));
  json_object_object_add(m, "center", array(f->center, 3));
  json_object_object_add(m, "orientation", array(rot, 9));
  json_object_object_add(m, "size", array(size, 3));
  json_object_object_add(m, "controlPoints", json_object_new_array());

  json_object *score = json_object_new_object();
  json_object_object_add(score, "name", json_object_new_string("score"));
  json_object_object_add(score, "enabled", json_object_new_boolean(1));
  json_object_object_add(score, "value", num(f->score));
  json_object_object_add(score, "description", json_object_new_string("detector score in [0, 1]"));
  json_object_object_add(score, "printFormat", json_object_new_string("%5.3f"));
  json_object *measurements = json_object_new_array();
  json_object_array_add(measurements, score);
  json_object_object_add(m, "measurements", measurements);

  double rgb[3] = {lab->rgb[0] / 255.0, lab->rgb[1] / 255.0, lab->rgb[2] / 255.0};
  json_object *display = json_object_new_object();
  json_object_object_add(display, "visibility", json_object_new_boolean(1));
  json_object_object_add(display, "opacity", num(1.0));
  /* Slicer draws unselected parts in "color" and selected ones (the default
   * state) in "selectedColor": both get the label colour. */
  json_object_object_add(display, "color", array(rgb, 3));
  json_object_object_add(display, "selectedColor", array(rgb, 3));
  json_object_object_add(display, "propertiesLabelVisibility", json_object_new_boolean(1));
  json_object_object_add(m, "display", display);
  return m;
}

mi_status *mi_findings_write_markups(const mi_card *card, const mi_finding *f, size_t n, const char *path) {
  MI_TRY(mi_findings_check(card, f, n, path, "file"));
  json_object *root = json_object_new_object();
  json_object_object_add(root, "@schema", json_object_new_string(MI_MARKUPS_SCHEMA));
  json_object *list = json_object_new_array();
  for (size_t i = 0; i < n; ++i) json_object_array_add(list, roi_json(card, &f[i], i));
  json_object_object_add(root, "markups", list);
  mi_status *st = mi_write_json_atomic(path, root, "markups");
  json_object_put(root);
  return st;
}
