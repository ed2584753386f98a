/* The study-level job: every applicable series of the inputs -> the card's
 * task (one SEG, or a detection folder) each, with report.json rewritten after every series.  A bad series is
 * reported and skipped over; only problems that stop everything (no inputs,
 * model load failure, unwritable output) end the job early. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "card_internal.h"
#include "medinfer/dicom.h"
#include "pipeline_internal.h"
#include "job_internal.h"
#include "report.h"

#ifndef MEDINFER_VERSION
#define MEDINFER_VERSION "0.0.0"
#endif

void mi_seg_job_options_init(mi_seg_job_options *o) {
  if (o) memset(o, 0, sizeof *o);
}


/* ------------------------------------------------------------- inputs */

typedef struct input_set {
  mi_dicom_index **idx;
  size_t n;
  char *link_dir; /* temporary folder of links to loose files (removed at the end) */
} input_set;

static void inputs_free(input_set *in) {
  for (size_t i = 0; i < in->n; ++i) mi_dicom_index_free(in->idx[i]);
  free(in->idx);
  if (in->link_dir) {
    /* Only the numbered links we created live there. */
    char path[4300];
    for (int k = 0;; ++k) {
      snprintf(path, sizeof path, "%s/%d", in->link_dir, k);
      if (unlink(path) != 0) break;
    }
    rmdir(in->link_dir);
    free(in->link_dir);
  }
}

static int is_dir(const char *p) {
  struct stat s;
  return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static int is_dicomdir(const char *p) {
  const char *b = strrchr(p, '/');
  b = b ? b + 1 : p;
  return !strcasecmp(b, "DICOMDIR");
}

static mi_status *scan_one(input_set *in, const char *path) {
  mi_dicom_index **a = realloc(in->idx, (in->n + 1) * sizeof *a);
  if (!a) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  in->idx = a;
  MI_TRY(mi_dicom_index_scan(path, &in->idx[in->n]));
  ++in->n;
  return NULL;
}

/* Folders and DICOMDIRs are scanned as they are; loose files are grouped
 * into series by scanning a temporary folder of links to them. */
static mi_status *gather_inputs(const mi_seg_job_options *o, input_set *in) {
  int k = 0;
  for (size_t i = 0; i < o->n_inputs; ++i) {
    const char *p = o->inputs[i];
    struct stat s;
    if (stat(p, &s) != 0) return mi_error(MI_ERR_IO, "%s: no such file or folder", p);
    if (S_ISDIR(s.st_mode) || is_dicomdir(p)) {
      MI_TRY(scan_one(in, p));
      continue;
    }
    if (!in->link_dir) {
      const char *tmp = getenv("TMPDIR");
      char tmpl[4096];
      snprintf(tmpl, sizeof tmpl, "%s/medinfer-files-XXXXXX", tmp && *tmp ? tmp : "/tmp");
      if (!mkdtemp(tmpl)) return mi_error(MI_ERR_IO, "%s: cannot create a temporary folder (%s)", tmpl, strerror(errno));
      in->link_dir = strdup(tmpl);
    }
    char abs[PATH_MAX], link[4300];
    if (!realpath(p, abs)) return mi_error(MI_ERR_IO, "%s: %s", p, strerror(errno));
    snprintf(link, sizeof link, "%s/%d", in->link_dir, k++);
    if (symlink(abs, link) != 0) return mi_error(MI_ERR_IO, "%s: cannot link (%s)", link, strerror(errno));
  }
  if (in->link_dir) MI_TRY(scan_one(in, in->link_dir));
  return NULL;
}

/* The absolute path a folder has or will have once made: its deepest
 * existing ancestor resolved (symbolic links included), then the rest of
 * its components, which do not exist yet (so are no links), taken as
 * written.  false: too long, or no ancestor resolves. */
static bool resolve_to_be(const char *path, char out[PATH_MAX]) {
  char buf[PATH_MAX], prefix[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return false;
  size_t end = strlen(buf); /* buf[0, end): the prefix tried */
  while (end > 1 && buf[end - 1] == '/') buf[--end] = 0;
  const char *rest; /* the components after the prefix that resolved */
  for (;;) {
    if (end == 0) { /* relative, and none of it exists */
      if (!getcwd(out, PATH_MAX)) return false;
      rest = buf;
      break;
    }
    memcpy(prefix, buf, end);
    prefix[end] = 0;
    if (realpath(prefix, out)) {
      rest = buf + end;
      break;
    }
    size_t k = end; /* the start of the prefix's last component */
    while (k > 0 && buf[k - 1] != '/') --k;
    if (k == 1) { /* a component right under the root */
      snprintf(out, PATH_MAX, "/");
      rest = buf + 1;
      break;
    }
    end = k > 0 ? k - 1 : 0;
  }
  char tmp[PATH_MAX], *save = NULL;
  snprintf(tmp, sizeof tmp, "%s", rest);
  for (char *c = strtok_r(tmp, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
    if (!strcmp(c, ".")) continue;
    if (!strcmp(c, "..")) { /* of a folder still to be made: no link, so its parent as written */
      char *up = strrchr(out, '/');
      if (up && up != out) *up = 0;
      else snprintf(out, PATH_MAX, "/");
      continue;
    }
    size_t len = strlen(out);
    if (len + 1 + strlen(c) + 1 > PATH_MAX) return false;
    if (len > 1) out[len++] = '/';
    strcpy(out + len, c);
  }
  return true;
}

/* The output folder must not be an input folder or inside one: checked
 * before anything is made, so that a refusal leaves no folder behind in the
 * input. */
static mi_status *check_output(const mi_seg_job_options *o) {
  char out[PATH_MAX];
  if (!resolve_to_be(o->output_dir, out)) return mi_error(MI_ERR_IO, "%s: cannot resolve the path", o->output_dir);
  for (size_t i = 0; i < o->n_inputs; ++i) {
    char in[PATH_MAX];
    if (!is_dir(o->inputs[i]) || !realpath(o->inputs[i], in)) continue;
    size_t n = strlen(in);
    if (!strncmp(out, in, n) && (out[n] == 0 || out[n] == '/'))
      return mi_error(MI_ERR_INVALID_ARGUMENT,
                      "%s: the output folder is inside the input %s (SEGs would be mixed with the source series)",
                      o->output_dir, o->inputs[i]);
  }
  return NULL;
}

static mi_status *make_dirs(const char *path) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; ++p)
    if (*p == '/') {
      *p = 0;
      if (mkdir(buf, 0755) != 0 && errno != EEXIST) return mi_error(MI_ERR_IO, "%s: cannot create (%s)", buf, strerror(errno));
      *p = '/';
    }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST) return mi_error(MI_ERR_IO, "%s: cannot create (%s)", buf, strerror(errno));
  if (!is_dir(buf)) return mi_error(MI_ERR_IO, "%s: not a folder", buf);
  return NULL;
}

/* ------------------------------------------------------------- report */

typedef mi_job job;

json_object *mi_job_string(const char *s) { return json_object_new_string(s ? s : ""); }
#define jstr mi_job_string

void mi_job_add_seconds(json_object *e, double read, double pre, double inf, double post, double write) {
  json_object *t = json_object_new_object();
  json_object_object_add(t, "read", json_object_new_double(read));
  json_object_object_add(t, "preprocess", json_object_new_double(pre));
  json_object_object_add(t, "inference", json_object_new_double(inf));
  json_object_object_add(t, "postprocess", json_object_new_double(post));
  json_object_object_add(t, "write", json_object_new_double(write));
  json_object_object_add(t, "total", json_object_new_double(read + pre + inf + post + write));
  json_object_object_add(e, "seconds", t);
}

static mi_status *write_report(job *j) {
  json_object *s = json_object_new_object();
  json_object_object_add(s, "ok", json_object_new_int64((int64_t)j->sum->ok));
  json_object_object_add(s, "existing", json_object_new_int64((int64_t)j->sum->existing));
  json_object_object_add(s, "skipped", json_object_new_int64((int64_t)j->sum->skipped));
  json_object_object_add(s, "error", json_object_new_int64((int64_t)j->sum->failed));
  json_object_object_add(s, "cancelled", json_object_new_boolean(j->cancelled));
  json_object_object_add(j->report, "summary", s);
  return mi_write_json_atomic(j->report_path, j->report, "report");
}

static json_object *series_entry(const mi_dicom_series_info *s) {
  json_object *e = json_object_new_object();
  json_object_object_add(e, "series_uid", jstr(s->series_uid));
  json_object_object_add(e, "study_uid", jstr(s->study_uid));
  json_object_object_add(e, "patient_id", jstr(s->patient_id));
  json_object_object_add(e, "series_number", json_object_new_int(s->series_number));
  json_object_object_add(e, "description", jstr(s->series_description));
  json_object_object_add(e, "modality", jstr(s->modality));
  char dims[64];
  snprintf(dims, sizeof dims, "%lldx%lldx%lld", (long long)s->cols, (long long)s->rows, (long long)s->slices);
  json_object_object_add(e, "size", jstr(dims));
  return e;
}

static void set_status(json_object *e, const char *status, const char *reason) {
  json_object_object_add(e, "status", jstr(status));
  if (reason && *reason) json_object_object_add(e, "reason", jstr(reason));
}

int mi_job_emit(job *j, const char *status, const char *reason, double f, const char *msg) {
  if (!j->o->on_event) return 0;
  j->ev.status = status, j->ev.reason = reason, j->ev.fraction = f, j->ev.message = msg;
  return j->o->on_event(j->o->user, &j->ev);
}

/* Progress of the segmenter mapped into the series (read 0-0.1, run 0.1-0.9,
 * write 0.9-1). */
mi_segmenter_options mi_job_pipeline_options(mi_job *j) {
  mi_segmenter_options so = j->o->seg;
  so.progress = mi_job_progress, so.progress_user = j;
  return so;
}

void mi_job_uid_stem(const char *uid, char *buf, size_t size) {
  if (!size) return;
  if (!uid || !*uid) uid = "unknown";
  size_t i = 0;
  for (; uid[i] && i + 1 < size; ++i) {
    const char ch = uid[i];
    const bool keep = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '.' ||
                      ch == '-' || ch == '_';
    buf[i] = keep ? ch : '_';
  }
  buf[i] = 0;
}

int mi_job_progress(void *u, double f, const char *msg) {
  job *j = u;
  if (mi_job_emit(j, NULL, NULL, 0.1 + 0.8 * f, msg)) j->cancelled = 1;
  return j->cancelled;
}

/* Returns a status only for job-stopping failures (model load). */
static mi_status *do_series(job *j, const mi_dicom_index *idx, size_t si, const mi_dicom_series_info *s,
                            json_object *e) {
  const mi_seg_job_options *o = j->o;
  const mi_job_task *t = j->task;
  char why[512], name[256], path[4400];
  const int64_t size[3] = {s->cols, s->rows, s->slices};
  t->output_name(s->series_uid, name, sizeof name);
  snprintf(path, sizeof path, "%s/%s", o->output_dir, name);
  if (!mi_card_applies(j->card, s->modality, NULL, size, why, sizeof why)) {
    ++j->sum->skipped;
    set_status(e, "skipped", why);
    mi_job_emit(j, "skipped", why, 1, NULL);
    return NULL;
  }
  json_object_object_add(e, t->output_key, jstr(name));
  if (!o->force && access(path, F_OK) == 0) {
    char msg[128];
    ++j->sum->existing;
    snprintf(msg, sizeof msg, "%s already exists (--force rewrites it)", t->what);
    set_status(e, "skipped", msg);
    json_object_object_add(e, "existing", json_object_new_boolean(1));
    snprintf(msg, sizeof msg, "%s already exists", t->what);
    mi_job_emit(j, "skipped", msg, 1, NULL);
    return NULL;
  }
  if (!s->loadable) {
    ++j->sum->failed;
    set_status(e, "error", s->reason);
    mi_job_emit(j, "error", s->reason, 1, NULL);
    return NULL;
  }
  if (!j->state) {
    mi_job_emit(j, NULL, NULL, 0, "loading the model");
    mi_status *ms = t->open(j);
    if (ms) { /* the job stops here: the series says why, as does the report's "error" */
      ++j->sum->failed;
      set_status(e, "error", mi_status_message(ms));
      json_object_object_del(e, t->output_key);
      return ms;
    }
    if (j->device) {
      char msg[300];
      snprintf(msg, sizeof msg, "device: %s", j->device);
      mi_job_emit(j, NULL, NULL, 0, msg);
      if (j->report) json_object_object_add(j->report, "device", jstr(j->device));
    }
  }
  if (mi_job_emit(j, NULL, NULL, 0, "read")) return j->cancelled = 1, NULL;
  double t0 = mi_now_seconds();
  mi_dicom_load_options lo;
  mi_dicom_load_options_init(&lo);
  lo.threads = o->seg.threads > 0 ? o->seg.threads : 2;
  mi_dicom_volume *v = NULL;
  mi_status *st = mi_dicom_load_series(idx, si, &lo, &v);
  double t_read = mi_now_seconds() - t0;
  const char *body = v ? mi_dicom_volume_attribute(v, "BodyPartExamined") : NULL;
  if (!st && !mi_card_applies(j->card, s->modality, body, size, why, sizeof why)) {
    ++j->sum->skipped;
    set_status(e, "skipped", why);
    json_object_object_del(e, t->output_key);
    mi_job_emit(j, "skipped", why, 1, NULL);
    mi_dicom_volume_free(v);
    return NULL;
  }
  if (!st) st = t->process(j, v, path, e, t_read);
  if (j->cancelled || mi_status_code(st) == MI_ERR_CANCELLED) {
    j->cancelled = 1;
    set_status(e, "error", "cancelled");
    json_object_object_del(e, t->output_key);
    ++j->sum->failed;
  } else if (st) {
    ++j->sum->failed;
    set_status(e, "error", mi_status_message(st));
    json_object_object_del(e, t->output_key);
    mi_job_emit(j, "error", mi_status_message(st), 1, NULL);
  } else {
    ++j->sum->ok;
    set_status(e, "ok", NULL);
    for (size_t w = 0; w < mi_dicom_volume_warning_count(v); ++w) {
      json_object *ws = NULL;
      if (!json_object_object_get_ex(e, "warnings", &ws)) {
        ws = json_object_new_array();
        json_object_object_add(e, "warnings", ws);
      }
      json_object_array_add(ws, jstr(mi_dicom_volume_warning(v, w)));
    }
    mi_job_emit(j, "ok", NULL, 1, NULL);
  }
  mi_status_free(st);
  mi_dicom_volume_free(v);
  return NULL;
}

/* ---------------------------------------------------------------- job */

static json_object *job_header(const mi_card *c, const mi_seg_job_options *o) {
  json_object *r = json_object_new_object();
  json_object_object_add(r, "medinfer", jstr(MEDINFER_VERSION));
  json_object *m = json_object_new_object();
  json_object_object_add(m, "name", jstr(c->name));
  json_object_object_add(m, "version", jstr(c->version));
  json_object_object_add(m, "card", jstr(c->path));
  json_object_object_add(r, "model", m);
  char when[64];
  time_t now = time(NULL);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  json_object_object_add(r, "started", jstr(when));
  json_object *ins = json_object_new_array();
  for (size_t i = 0; i < o->n_inputs; ++i) json_object_array_add(ins, jstr(o->inputs[i]));
  json_object_object_add(r, "inputs", ins);
  json_object_object_add(r, "output", jstr(o->output_dir));
  json_object_object_add(r, "device", jstr(o->seg.device == MI_SEG_DEVICE_CUDA ? "cuda" : o->seg.device == MI_SEG_DEVICE_AUTO ? "auto" : "cpu"));
  json_object_object_add(r, "threads", json_object_new_int(o->seg.threads));
  json_object_object_add(r, "task", jstr(c->task));
  if (!c->is_detection) json_object_object_add(r, "fractional", json_object_new_boolean(o->seg.fractional));
  return r;
}

/* Files the index could not use (non-image objects, unreadable files). */
static void add_skipped_files(json_object *report, const input_set *in) {
  json_object *a = json_object_new_array();
  for (size_t k = 0; k < in->n; ++k)
    for (size_t i = 0; i < mi_dicom_index_skipped_count(in->idx[k]); ++i) {
      json_object *f = json_object_new_object();
      const char *p = mi_dicom_index_skipped_path(in->idx[k], i);
      char real[PATH_MAX];
      /* Loose files were indexed through links: report the real path. */
      json_object_object_add(f, "file", jstr(in->link_dir && realpath(p, real) ? real : p));
      json_object_object_add(f, "reason", jstr(mi_dicom_index_skipped_reason(in->idx[k], i)));
      json_object_array_add(a, f);
    }
  json_object_object_add(report, "skipped_files", a);
}

mi_status *mi_seg_job_run(const mi_card *card, const mi_seg_job_options *o, mi_seg_job_summary *summary) {
  mi_seg_job_summary local;
  if (!summary) summary = &local;
  memset(summary, 0, sizeof *summary);
  if (!card || !o) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_seg_job_run: NULL argument");
  if (!o->n_inputs || !o->inputs) return mi_error(MI_ERR_INVALID_ARGUMENT, "no input given");
  if (!o->output_dir || !*o->output_dir) return mi_error(MI_ERR_INVALID_ARGUMENT, "no output folder given");
  for (size_t i = 0; i < o->n_inputs; ++i) { /* a mistyped input leaves no output folder behind */
    struct stat s;
    if (stat(o->inputs[i], &s) != 0) return mi_error(MI_ERR_IO, "%s: no such file or folder", o->inputs[i]);
  }
  MI_TRY(check_output(o));
  MI_TRY(make_dirs(o->output_dir));
  mi_remove_stale_temp_files(o->output_dir);
  input_set in = {0};
  mi_status *st = gather_inputs(o, &in);
  if (st) {
    inputs_free(&in);
    return st;
  }
  job j = {.card = card, .o = o, .sum = summary,
           .task = card->is_detection ? &mi_job_detect_task : &mi_job_segment_task};
  snprintf(j.report_path, sizeof j.report_path, "%s/report.json", o->output_dir);
  j.report = job_header(card, o);
  j.series = json_object_new_array();
  json_object_object_add(j.report, "series", j.series);
  add_skipped_files(j.report, &in);

  size_t total = 0, found = 0;
  for (size_t k = 0; k < in.n; ++k) total += mi_dicom_index_series_count(in.idx[k]);
  j.ev.count = o->series_uid ? 1 : total;
  for (size_t k = 0; k < in.n && !st && !j.cancelled; ++k)
    for (size_t i = 0; i < mi_dicom_index_series_count(in.idx[k]) && !st && !j.cancelled; ++i) {
      mi_dicom_series_info s;
      if ((st = mi_dicom_index_series(in.idx[k], i, &s))) break;
      if (o->series_uid && strcmp(o->series_uid, s.series_uid)) continue;
      j.ev.series_uid = s.series_uid, j.ev.description = s.series_description;
      json_object *e = series_entry(&s);
      json_object_array_add(j.series, e);
      st = do_series(&j, in.idx[k], i, &s, e);
      ++found;
      ++j.ev.index;
      if (st) json_object_object_add(j.report, "error", jstr(mi_status_message(st)));
      mi_status *ws = write_report(&j);
      if (ws && !st) st = ws;
      else mi_status_free(ws);
    }
  if (!st && o->series_uid && !found)
    st = mi_error(MI_ERR_INVALID_ARGUMENT, "series %s is not in the input", o->series_uid);
  summary->cancelled = j.cancelled;
  if (!st) st = write_report(&j);
  json_object_put(j.report);
  if (j.state) j.task->close(&j);
  inputs_free(&in);
  return st;
}
