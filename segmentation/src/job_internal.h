/* The study-level job (job.c) and the tasks it runs per series: the
 * segmentation task (job_segment.c: one SEG) and the detection task
 * (job_detect.c: a folder of findings, SR, markups and review pages). */
#ifndef MEDINFER_SEG_JOB_INTERNAL_H
#define MEDINFER_SEG_JOB_INTERNAL_H

#include <json.h>

#include "card_internal.h"
#include "medinfer/dicom.h"

typedef struct mi_job mi_job;

/* A series' UID as a file name's stem: UID characters (digits and dots)
 * and letters, '-' and '_' kept, anything else (a '/' of a malformed UID)
 * made '_', so the name stays inside the output folder; "unknown" if empty. */
void mi_job_uid_stem(const char *uid, char *buf, size_t size);

typedef struct mi_job_task {
  const char *output_key; /* report.json member naming the series' output   */
  const char *what;       /* "SEG", "detection folder": for messages          */
  /* Output name under the output folder for a series. */
  void (*output_name)(const char *series_uid, char *buf, size_t size);
  /* Load the network (once, before the first series that needs it). */
  mi_status *(*open)(mi_job *j);
  /* Run on a loaded volume and write the output at `path` (atomically);
   * add results to `e`.  A returned error is the series' error.  The task
   * may release the voxels (mi_dicom_volume_release_data) once it no longer
   * reads them. */
  mi_status *(*process)(mi_job *j, mi_dicom_volume *v, const char *path, json_object *e, double t_read);
  void (*close)(mi_job *j);
} mi_job_task;

struct mi_job {
  const mi_card *card;
  const mi_seg_job_options *o;
  const mi_job_task *task;
  void *state; /* the task's segmenter or detector */
  const char *device; /* where its network runs (the task's open sets it) */
  json_object *report, *series;
  char report_path[4200];
  mi_seg_job_summary *sum;
  mi_seg_job_event ev;
  int cancelled;
};

extern const mi_job_task mi_job_segment_task, mi_job_detect_task;

/* Progress callback for the task's pipeline, mapped into the series
 * (read 0-0.1, run 0.1-0.9, write 0.9-1); returns nonzero to cancel. */
int mi_job_progress(void *job, double fraction, const char *message);
/* The job's pipeline options with progress routed through mi_job_progress. */
mi_segmenter_options mi_job_pipeline_options(mi_job *j);
/* Report a stage to the job's listener; nonzero: cancel. */
int mi_job_emit(mi_job *j, const char *status, const char *reason, double fraction, const char *message);
json_object *mi_job_string(const char *s);
/* Seconds per stage in e["seconds"]. */
void mi_job_add_seconds(json_object *e, double read, double pre, double inf, double post, double write);

#endif
