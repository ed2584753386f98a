/* The detection task of the job: detect on a series and write its folder
 * <SeriesInstanceUID>.findings/ with findings.json, findings.csv,
 * findings.mrk.json (Slicer markups), findings.sr.dcm (TID 1500 SR) and
 * review/ (index.html and pictures).  The folder is assembled under a
 * temporary name and renamed into place, so it is complete or absent. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "findings_util.h"
#include "job_internal.h"
#include "pipeline_internal.h"
#include "report.h"

void mi_det_output_name(const char *series_uid, char *buf, size_t size) {
  char stem[128];
  mi_job_uid_stem(series_uid, stem, sizeof stem);
  snprintf(buf, size, "%s.findings", stem);
}

static mi_status *open_detector(mi_job *j) {
  const mi_segmenter_options so = mi_job_pipeline_options(j);
  mi_detector *d = NULL;
  MI_TRY(mi_detector_create(j->card, &so, &d));
  j->state = d;
  j->device = mi_detector_device(d);
  return NULL;
}

static void close_detector(mi_job *j) {
  mi_detector_free(j->state);
  j->state = NULL;
}

static mi_status *write_sr(const mi_card *c, const mi_dicom_volume *v, const mi_finding *f, size_t n,
                           const char *path) {
  mi_sr_finding *sf = calloc(n ? n : 1, sizeof *sf);
  char(*ids)[64] = calloc(n ? n : 1, sizeof *ids);
  char(*uids)[80] = calloc(n ? n : 1, sizeof *uids);
  mi_status *st = sf && ids && uids ? NULL : mi_error(MI_ERR_NO_MEMORY, "out of memory");
  for (size_t i = 0; !st && i < n; ++i) {
    const mi_card_label *l = &c->labels[f[i].label_index];
    mi_finding_name(c, &f[i], i, ids[i], sizeof ids[i]);
    mi_finding_tracking_uid(c, &f[i], i, uids[i], sizeof uids[i]);
    sf[i] = (mi_sr_finding){.type_scheme = l->type_scheme, .type_value = l->type_value,
                            .type_meaning = l->type_meaning, .category_scheme = l->category_scheme,
                            .category_value = l->category_value, .category_meaning = l->category_meaning,
                            .tracking_id = ids[i], .tracking_uid = uids[i], .score = f[i].score,
                            .center_slice = f[i].slice};
    memcpy(sf[i].center, f[i].center, sizeof sf[i].center);
    memcpy(sf[i].half_axes, f[i].axes, sizeof sf[i].half_axes);
  }
  if (!st) {
    mi_sr_options so;
    mi_sr_options_init(&so);
    char desc[80];
    snprintf(desc, sizeof desc, "%.53s detections", c->name);
    so.series_description = desc;
    so.algorithm_name = c->name;
    so.algorithm_version = c->version;
    st = mi_dicom_write_sr_findings(v, sf, n, &so, path);
  }
  free(sf), free(ids), free(uids);
  return st;
}

static mi_status *write_folder(mi_job *j, const mi_dicom_volume *v, const mi_detections *r, const char *dir) {
  const mi_card *c = j->card;
  const size_t n = mi_detections_count(r);
  const mi_finding *f = n ? mi_detections_at(r, 0) : NULL;
  const char *uid = mi_dicom_volume_attribute(v, "SeriesInstanceUID");
  char path[4700], title[256];
  snprintf(path, sizeof path, "%s/findings.json", dir);
  MI_TRY(mi_findings_write_json(c, f, n, uid, path));
  snprintf(path, sizeof path, "%s/findings.csv", dir);
  MI_TRY(mi_findings_write_csv(c, f, n, path));
  snprintf(path, sizeof path, "%s/findings.mrk.json", dir);
  MI_TRY(mi_findings_write_markups(c, f, n, path));
  snprintf(path, sizeof path, "%s/findings.sr.dcm", dir);
  MI_TRY(write_sr(c, v, f, n, path));
  const char *desc = mi_dicom_volume_attribute(v, "SeriesDescription");
  snprintf(title, sizeof title, "%s: %s", c->name, desc && *desc ? desc : uid ? uid : "series");
  snprintf(path, sizeof path, "%s/review", dir);
  return mi_findings_write_review(c, f, n, mi_dicom_volume_geometry(v), mi_dicom_volume_data(v),
                                  c->det.review_center, c->det.review_width, title, path);
}

/* Put the finished temporary folder in place of `path` (an older result,
 * kept until the new one is in place, when --force). */
static mi_status *swap_in(const char *tmp, const char *path) {
  char old[4600];
  snprintf(old, sizeof old, "%s.tmp-%ld-old", path, (long)getpid());
  int had = rename(path, old) == 0;
  if (rename(tmp, path) != 0) {
    int e = errno;
    if (had) rename(old, path);
    return mi_error(MI_ERR_IO, "%s: cannot rename the temporary folder into place (%s)", path, strerror(e));
  }
  if (had) mi_remove_tree(old);
  return NULL;
}

static void add_results(mi_job *j, json_object *e, const mi_detections *r, double t_read, double t_write) {
  json_object *a = json_object_new_array();
  for (size_t i = 0; i < mi_detections_count(r); ++i) {
    const mi_finding *f = mi_detections_at(r, i);
    char name[256];
    mi_finding_name(j->card, f, i, name, sizeof name);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", mi_job_string(name));
    json_object_object_add(o, "label", mi_job_string(j->card->labels[f->label_index].name));
    json_object_object_add(o, "score", json_object_new_double(f->score));
    json_object *cm = json_object_new_array(), *sz = json_object_new_array();
    for (int k = 0; k < 3; ++k) {
      json_object_array_add(cm, json_object_new_double(f->center[k]));
      json_object_array_add(sz, json_object_new_double(f->size_mm[k]));
    }
    json_object_object_add(o, "center_mm", cm);
    json_object_object_add(o, "size_mm", sz);
    json_object_object_add(o, "slice", json_object_new_int(f->slice));
    json_object_array_add(a, o);
  }
  json_object_object_add(e, "findings", a);
  mi_job_add_seconds(e, t_read, mi_detections_seconds(r, MI_STAGE_PREPROCESS),
                     mi_detections_seconds(r, MI_STAGE_INFERENCE), mi_detections_seconds(r, MI_STAGE_POSTPROCESS),
                     t_write);
}

static mi_status *detect(mi_job *j, mi_dicom_volume *v, const char *path, json_object *e, double t_read) {
  mi_detections *r = NULL;
  MI_TRY(mi_detector_run(j->state, mi_dicom_volume_geometry(v), mi_dicom_volume_data(v), &r));
  if (mi_job_emit(j, NULL, NULL, 0.9, "write")) j->cancelled = 1;
  mi_status *st = NULL;
  double t1 = mi_now_seconds();
  if (!j->cancelled) {
    static unsigned counter;
    char tmp[4600];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%u", path, (long)getpid(), counter++);
    if (mkdir(tmp, 0755) != 0) st = mi_error(MI_ERR_IO, "%s: cannot create (%s)", tmp, strerror(errno));
    if (!st) st = write_folder(j, v, r, tmp);
    if (!st) st = swap_in(tmp, path);
    if (st) mi_remove_tree(tmp);
  }
  if (!st && !j->cancelled) add_results(j, e, r, t_read, mi_now_seconds() - t1);
  mi_detections_free(r);
  return st;
}

const mi_job_task mi_job_detect_task = {
    .output_key = "findings_folder", .what = "detection folder", .output_name = mi_det_output_name,
    .open = open_detector, .process = detect, .close = close_detector};
