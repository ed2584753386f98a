/* medinfer dicom: series index, volume loading, DICOM SEG and SR writing (DCMTK).
 *
 * Ownership: every handle (mi_dicom_index, mi_dicom_volume) is created by this
 * module, owned by the caller and released with its _free() function.  Strings
 * and arrays returned by accessors are owned by the handle they came from and
 * stay valid until it is freed.  Every fallible call returns NULL on success
 * or an mi_status the caller frees; on error *out is left NULL.
 * All functions are thread-safe on distinct handles. */
#ifndef MEDINFER_DICOM_H
#define MEDINFER_DICOM_H

#include <stddef.h>
#include <stdint.h>

#include "medinfer/geometry.h"
#include "medinfer/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ index */

typedef struct mi_dicom_index mi_dicom_index;

/* One series of the index.  Series are sorted by patient, study, series
 * number, so patients -> studies -> series can be printed in one pass.
 * Texts are UTF-8, converted from the files' SpecificCharacterSet. */
typedef struct mi_dicom_series_info {
  const char *patient_id, *patient_name;
  const char *study_uid, *study_date, *study_description;
  const char *series_uid, *series_description, *modality;
  int series_number;
  int64_t instances;          /* files in the series                        */
  int64_t rows, cols, slices; /* slices: frames over all instances          */
  const char *orientation;    /* "AXIAL", "CORONAL", "SAGITTAL", "OBLIQUE",
                                 "MIXED" or "" (no geometry)                 */
  int loadable;               /* mi_dicom_load_series() would succeed        */
  const char *reason;         /* why not loadable ("" when loadable); notes
                                 such as gantry tilt when loadable          */
} mi_dicom_series_info;

/* Scan `path`: a folder (recursively, any file names; non-DICOM files are
 * recorded in the skipped list, not fatal) or a DICOMDIR file. */
mi_status *mi_dicom_index_scan(const char *path, mi_dicom_index **out);
void mi_dicom_index_free(mi_dicom_index *idx); /* accepts NULL */

size_t mi_dicom_index_series_count(const mi_dicom_index *idx);
/* Fills *info for series i (< series_count); strings owned by idx. */
mi_status *mi_dicom_index_series(const mi_dicom_index *idx, size_t i, mi_dicom_series_info *info);
/* Files of series i in no particular order. */
size_t mi_dicom_index_series_file_count(const mi_dicom_index *idx, size_t i);
const char *mi_dicom_index_series_file(const mi_dicom_index *idx, size_t i, size_t j);
/* Files that are not DICOM or could not be read, with the reason.  DICOM
 * objects that are not image volumes (SEG, SR...) are series that are not
 * loadable, with the reason. */
size_t mi_dicom_index_skipped_count(const mi_dicom_index *idx);
const char *mi_dicom_index_skipped_path(const mi_dicom_index *idx, size_t i);
const char *mi_dicom_index_skipped_reason(const mi_dicom_index *idx, size_t i);

/* ----------------------------------------------------------------- volume */

typedef struct mi_dicom_volume mi_dicom_volume;

/* Issues found while loading; informational unless the load refused them. */
enum {
  MI_DICOM_ISSUE_GANTRY_TILT = 1u << 0,    /* stacking direction not normal to the
                                              image plane; geometry column 2 is
                                              the direction between positions */
  MI_DICOM_ISSUE_MISSING_SLICE = 1u << 1,  /* a gap > 1.5x the median spacing */
  MI_DICOM_ISSUE_UNEVEN_SPACING = 1u << 2, /* spacing varies beyond tolerance */
  MI_DICOM_ISSUE_DUPLICATE = 1u << 3       /* same SOP instance seen twice (dropped) */
};

typedef struct mi_dicom_load_options {
  int threads;          /* 0 = 2 (the typical workstation share); >= 1 */
  int allow_irregular;  /* nonzero: load despite missing slices / uneven
                           spacing, with spacing[2] = median gap (issues set) */
} mi_dicom_load_options;

void mi_dicom_load_options_init(mi_dicom_load_options *o);

/* Load series i of idx (opts may be NULL). */
mi_status *mi_dicom_load_series(const mi_dicom_index *idx, size_t i, const mi_dicom_load_options *opts,
                                mi_dicom_volume **out);
/* Load the given files as one series. */
mi_status *mi_dicom_load_files(const char *const *paths, size_t n, const mi_dicom_load_options *opts,
                               mi_dicom_volume **out);
/* Scan dir and load the series with this SeriesInstanceUID; if series_uid is
 * NULL, the only series, else the only loadable one (error if ambiguous). */
mi_status *mi_dicom_load_dir(const char *dir, const char *series_uid, const mi_dicom_load_options *opts,
                             mi_dicom_volume **out);
void mi_dicom_volume_free(mi_dicom_volume *v); /* accepts NULL */

/* Geometry in LPS (see geometry.h); slices ascend along the stacking direction. */
const mi_geometry *mi_dicom_volume_geometry(const mi_dicom_volume *v);
/* Real values (RescaleSlope/Intercept applied; HU for CT), voxel (i,j,k) at
 * i + cols*(j + rows*k).  MONOCHROME1 is a display convention and does not
 * change the values. */
const float *mi_dicom_volume_data(const mi_dicom_volume *v);
/* Frees the voxels early, keeping everything else (geometry, header, slice
 * references: all a SEG or SR of the series needs); mi_dicom_volume_data is
 * NULL after.  Accepts NULL. */
void mi_dicom_volume_release_data(mi_dicom_volume *v);
unsigned mi_dicom_volume_issues(const mi_dicom_volume *v); /* MI_DICOM_ISSUE_* */
size_t mi_dicom_volume_warning_count(const mi_dicom_volume *v);
const char *mi_dicom_volume_warning(const mi_dicom_volume *v, size_t i);

/* Source of slice k: SOP Class/Instance UID, frame number (1-based for
 * multi-frame instances, 0 for single-frame), file path, and the
 * ImagePositionPatient as read from the file. */
const char *mi_dicom_volume_slice_sop_class_uid(const mi_dicom_volume *v, int64_t k);
const char *mi_dicom_volume_slice_sop_instance_uid(const mi_dicom_volume *v, int64_t k);
int32_t mi_dicom_volume_slice_frame(const mi_dicom_volume *v, int64_t k);
const char *mi_dicom_volume_slice_file(const mi_dicom_volume *v, int64_t k);
void mi_dicom_volume_slice_position(const mi_dicom_volume *v, int64_t k, double ipp[3]);

/* Value of a top-level attribute of the source (patient, study, series,
 * frame of reference...) by DICOM keyword, e.g. "PatientID",
 * "StudyInstanceUID", "FrameOfReferenceUID", "Modality".  "" if absent or
 * the keyword is unknown. */
const char *mi_dicom_volume_attribute(const mi_dicom_volume *v, const char *keyword);

/* -------------------------------------------------------------------- SEG */

typedef enum mi_seg_algorithm_type {
  MI_SEG_ALGO_AUTOMATIC = 0,
  MI_SEG_ALGO_SEMIAUTOMATIC = 1,
  MI_SEG_ALGO_MANUAL = 2
} mi_seg_algorithm_type;

/* One segment.  Codes are (scheme designator, value, meaning), e.g. category
 * ("SCT", "123037004", "Anatomical Structure"), type ("SCT", "10200004",
 * "Liver"). */
typedef struct mi_seg_segment {
  const char *label;
  const char *description;     /* may be NULL */
  const char *category_scheme, *category_value, *category_meaning;
  const char *type_scheme, *type_value, *type_meaning;
  mi_seg_algorithm_type algorithm_type;
  const char *algorithm_name;  /* required unless MANUAL */
  uint8_t rgb[3];              /* recommended display colour (sRGB) */
} mi_seg_segment;

typedef struct mi_seg_options {
  int fractional;                 /* 0: BINARY; 1: FRACTIONAL PROBABILITY;
                                     2: FRACTIONAL OCCUPANCY                  */
  const char *series_description; /* default "Segmentation"                   */
  int series_number;              /* default 300                              */
  const char *content_label;      /* default "MEDINFER" (CS: A-Z 0-9 _)       */
  const char *content_creator;    /* default "medinfer^" (PN)                 */
} mi_seg_options;

void mi_seg_options_init(mi_seg_options *o);

/* Write a SEG for `source` from a label map on the source grid (one uint8 per
 * voxel, same layout as mi_dicom_volume_data): value s in 1..n_segments marks
 * segment s, 0 is background, other values are an error.  `out_path` is the
 * file to create (written to a temporary file in the same folder and renamed;
 * never one of the source files).  Frames are written only where a segment
 * is present; a segment empty everywhere is still described.  FRACTIONAL
 * from a label map gives 0 or the maximum (255). */
mi_status *mi_dicom_write_seg_labelmap(const mi_dicom_volume *source, const uint8_t *labels,
                                       const mi_seg_segment *segments, size_t n_segments,
                                       const mi_seg_options *opts, const char *out_path);

/* Same from one mask per segment, masks[s][voxel] in [0, 1] (probability or
 * occupancy).  BINARY sets a voxel where the value is >= 0.5; FRACTIONAL
 * stores round(value * 255).  Segments may overlap. */
mi_status *mi_dicom_write_seg_masks(const mi_dicom_volume *source, const float *const *masks,
                                    const mi_seg_segment *segments, size_t n_segments,
                                    const mi_seg_options *opts, const char *out_path);

/* DICOM CIELab (0..65535 each) of an sRGB colour, as DCMTK computes it. */
void mi_seg_rgb_to_dicom_lab(const uint8_t rgb[3], uint16_t lab[3]);


/* --------------------------------------------------------------------- SR */

/* One finding of a detector, for a TID 1500 measurement report.  Codes are
 * (scheme designator, value, meaning), e.g. type ("SCT", "52988006",
 * "Lesion").  The box is center +- half_axes[0] +- half_axes[1] +-
 * half_axes[2] (its 8 corners); the three half-axes must be nonzero and
 * mutually perpendicular (a box on the voxel axes of any non-tilted series). */
typedef struct mi_sr_finding {
  const char *type_scheme, *type_value, *type_meaning;  /* required          */
  const char *category_scheme, *category_value, *category_meaning; /* all NULL:
                                    no finding category                       */
  const char *tracking_id;   /* required, e.g. "Lesion 1" (at most 64 chars)   */
  const char *tracking_uid;  /* NULL: a new UID is generated                   */
  double score;              /* detector score in [0, 1]                       */
  double center[3];          /* LPS mm                                         */
  double half_axes[3][3];    /* three half-extent vectors, LPS mm              */
  int64_t center_slice;      /* index k (into the source volume's slices) of
                                the slice through the centre                   */
} mi_sr_finding;

typedef struct mi_sr_options {
  const char *series_description; /* default "Detections"                     */
  int series_number;              /* default 400                              */
  const char *algorithm_name;     /* default "medinfer"                       */
  const char *algorithm_version;  /* default the library version             */
  const char *content_label;      /* default "MEDINFER": the Device Observer
                                     Name of the report's observer context     */
} mi_sr_options;

void mi_sr_options_init(mi_sr_options *o);

/* Write a Comprehensive 3D SR measurement report (TID 1500) of n findings
 * (findings may be NULL when n is 0: a report that found nothing, with an
 * empty Imaging Measurements container) on `source`: same patient and study,
 * a new series, one Volumetric ROI measurement group (TID 1411) per finding
 * with its tracking identifier/UID, finding type (and category), the box as
 * a Volume Surface (SCOORD3D ELLIPSOID with the box's half-axes, in the
 * source's frame of reference), the source images the box crosses (always
 * the centre slice) and the score as Certainty of Finding (percent).
 * `out_path` as for the SEG writers: written to a temporary file and renamed,
 * never one of the source files; on error nothing is written. */
mi_status *mi_dicom_write_sr_findings(const mi_dicom_volume *source, const mi_sr_finding *findings, size_t n,
                                      const mi_sr_options *opts, const char *out_path);

#ifdef __cplusplus
}
#endif
#endif
