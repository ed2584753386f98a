/* medinfer phantom: synthetic CT/MR torso studies with ground-truth labels.
 *
 * A test-data factory and the demo's input.  mi_phantom_generate() builds the
 * image and label volumes in memory (deterministic for a given seed: the same
 * options give bit-identical volumes); the writers turn them into a real DICOM
 * series (DCMTK) and the ground truth (NRRD + JSON).
 *
 * Anatomy lives in patient coordinates (LPS, mm) centred on (0,0,0): +x is
 * patient left, +y posterior, +z superior.  The sampling grid is centred on
 * the same point, so every orientation samples the same anatomy.
 *
 * Volume layout (what a correct loader must reproduce voxel for voxel):
 *   voxel (i, j, k) is at index i + cols*(j + rows*k) and at the patient point
 *   given by `geometry` (see medinfer/geometry.h).  Slices are in ascending
 *   order along the stacking direction geometry.direction column 2, which is
 *   row x col of ImageOrientationPatient -- except under gantry tilt, where
 *   column 2 is the (table) direction between consecutive ImagePositionPatient
 *   values, not perpendicular to the image plane, and spacing[2] is the
 *   distance between consecutive positions.  `reverse_slices` only changes
 *   the order in which slices are numbered/stored in DICOM (InstanceNumber 1,
 *   frame 1 = slice k = slices-1), never this in-memory layout.
 *   `missing_slice` only drops that slice from the DICOM output; the volumes
 *   still hold it.
 *
 * Ownership: mi_phantom and everything it points to is owned by the library
 * and released with mi_phantom_free().  Label strings are static. */
#ifndef MEDINFER_PHANTOM_H
#define MEDINFER_PHANTOM_H

#include <stddef.h>
#include <stdint.h>

#include "medinfer/geometry.h"
#include "medinfer/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mi_phantom_orientation {
  MI_PHANTOM_AXIAL = 0,   /* IOP 1\0\0\0\1\0, slices towards +z (superior)     */
  MI_PHANTOM_CORONAL = 1, /* IOP 1\0\0\0\0\-1, slices towards +y (posterior)   */
  MI_PHANTOM_SAGITTAL = 2,/* IOP 0\1\0\0\0\-1, slices towards -x (right)       */
  MI_PHANTOM_OBLIQUE = 3  /* axial rotated by oblique_deg[0] about x, then
                             oblique_deg[1] about z                           */
} mi_phantom_orientation;

typedef enum mi_phantom_modality {
  MI_PHANTOM_CT = 0, /* CT Image Storage; values in HU, stored = HU + 1024,
                        RescaleIntercept -1024, BitsStored 12, unsigned        */
  MI_PHANTOM_MR = 1  /* MR Image Storage; T1-like signal 0..4095, no rescale   */
} mi_phantom_modality;

typedef enum mi_phantom_transfer_syntax {
  MI_PHANTOM_TS_EXPLICIT_LE = 0, /* 1.2.840.10008.1.2.1 (default)        */
  MI_PHANTOM_TS_IMPLICIT_LE,     /* 1.2.840.10008.1.2                    */
  MI_PHANTOM_TS_EXPLICIT_BE,     /* 1.2.840.10008.1.2.2                  */
  MI_PHANTOM_TS_DEFLATED,        /* 1.2.840.10008.1.2.1.99               */
  MI_PHANTOM_TS_RLE,             /* 1.2.840.10008.1.2.5                  */
  MI_PHANTOM_TS_JPEG_LOSSLESS,   /* 1.2.840.10008.1.2.4.70 (process 14, SV1) */
  MI_PHANTOM_TS_JPEGLS_LOSSLESS  /* 1.2.840.10008.1.2.4.80               */
} mi_phantom_transfer_syntax;

/* The DICOM Transfer Syntax UID a value stands for (static string). */
const char *mi_phantom_transfer_syntax_uid(mi_phantom_transfer_syntax ts);

typedef struct mi_phantom_options {
  uint64_t seed;              /* shape variation, texture and noise             */
  int64_t size[3];            /* columns, rows, slices; each 1..2048            */
  double spacing[3];          /* mm; 0 = auto (grid covers ~400 x 400 x 360 mm) */
  mi_phantom_orientation orientation;
  double oblique_deg[2];      /* used by MI_PHANTOM_OBLIQUE; default 20, 15     */
  double gantry_tilt_deg;     /* 0 = none; |tilt| < 45; image column axis
                                 tilted towards the stacking direction         */
  int reverse_slices;         /* nonzero: InstanceNumber/frame 1 = last slice   */
  int64_t missing_slice;      /* -1 = none; else a slice index 1..slices-2 that
                                 is left out of the DICOM output               */
  int enhanced;               /* nonzero: one Enhanced CT Image Storage file
                                 with shared/per-frame functional groups (CT only) */
  mi_phantom_transfer_syntax transfer_syntax;
  mi_phantom_modality modality;
  int contrast;               /* CT: contrast-enhanced aorta (~200 HU)          */
  int lesions;                /* number of spherical lesions, 0..64             */
  double noise_sigma;         /* Gaussian noise SD (HU or MR units); <0 = default
                                 (CT 12 HU, MR 15); 0 = no noise               */
  int threads;                /* 0 = all hardware threads                      */
} mi_phantom_options;

/* Fill with defaults: seed 1, 256x256x120, auto spacing, axial, explicit LE,
 * CT, no lesions, default noise, no missing slice. */
void mi_phantom_options_init(mi_phantom_options *o);

/* One entry of the label table. */
typedef struct mi_phantom_label {
  uint8_t value;                 /* voxel value in the label volume (1..)     */
  const char *name;              /* "Liver"                                  */
  const char *category_scheme;   /* "SCT"                                    */
  const char *category_code;     /* "123037004"                              */
  const char *category_meaning;  /* "Anatomical Structure"                   */
  const char *type_scheme;       /* "SCT"                                    */
  const char *type_code;         /* "10200004"                               */
  const char *type_meaning;      /* "Liver"                                  */
  uint8_t rgb[3];                /* display colour                           */
  double nominal_value;          /* mean HU (CT) or signal (MR) before texture/noise */
} mi_phantom_label;

/* Label values (stable across seeds and options). 0 = outside the body. */
enum {
  MI_PHANTOM_LABEL_BODY = 1, /* everything inside the skin not listed below */
  MI_PHANTOM_LABEL_RIGHT_LUNG = 2,
  MI_PHANTOM_LABEL_LEFT_LUNG = 3,
  MI_PHANTOM_LABEL_HEART = 4,
  MI_PHANTOM_LABEL_LIVER = 5,
  MI_PHANTOM_LABEL_SPLEEN = 6,
  MI_PHANTOM_LABEL_RIGHT_KIDNEY = 7,
  MI_PHANTOM_LABEL_LEFT_KIDNEY = 8,
  MI_PHANTOM_LABEL_SPINE = 9,
  MI_PHANTOM_LABEL_AORTA = 10,
  MI_PHANTOM_LABEL_LESION = 11, /* present only when options.lesions > 0 */
  MI_PHANTOM_LABEL_COUNT = 11
};

typedef struct mi_phantom_lesion {
  double center[3]; /* LPS mm */
  double radius;    /* mm */
  uint8_t host;     /* label of the organ it sits in */
} mi_phantom_lesion;

typedef struct mi_phantom {
  mi_phantom_options options; /* as used (defaults and auto spacing resolved) */
  mi_geometry geometry;       /* see the layout note at the top              */
  int16_t *values;            /* cols*rows*slices: HU (CT) or signal (MR)     */
  uint8_t *labels;            /* cols*rows*slices: label values               */
  const mi_phantom_label *label_table; /* static; label_count entries       */
  int label_count;            /* 10, or 11 with lesions                        */
  mi_phantom_lesion *lesions; /* options.lesions entries                       */
  int lesion_count;
  /* Identity written to DICOM (fresh UIDs from dcmGenerateUniqueIdentifier at
   * generation; not part of the determinism guarantee). */
  char patient_id[65];
  char patient_name[65];
  char study_uid[65];
  char series_uid[65];
  char frame_of_reference_uid[65];
  char (*sop_instance_uids)[65]; /* per slice k (classic) ; index 0 only for
                                    enhanced (one instance)                  */
  double rescale_intercept;      /* CT -1024, MR 0 */
  double rescale_slope;          /* 1 */
} mi_phantom;

/* Build a phantom.  *out is NULL on error. */
mi_status *mi_phantom_generate(const mi_phantom_options *opts, mi_phantom **out);
void mi_phantom_free(mi_phantom *p); /* accepts NULL */

/* ImagePositionPatient of slice k (for the tests and the SEG writer). */
void mi_phantom_slice_position(const mi_phantom *p, int64_t k, double ipp[3]);
/* ImageOrientationPatient (row direction, then column direction). */
void mi_phantom_orientation_patient(const mi_phantom *p, double iop[6]);

/* Write the DICOM series into dir (created if missing; existing files of the
 * same name are replaced).  Classic: one file per written slice, named
 * "IM<number>.dcm" with numbers shuffled so that name order is not spatial
 * order.  Enhanced: one file "ENHANCED.dcm".  Every file is written to a
 * temporary name and renamed; on error, files already written by this call
 * are removed.  If written_count is not NULL it receives the number of files. */
mi_status *mi_phantom_write_dicom(const mi_phantom *p, const char *dir, int64_t *written_count);

/* Write ground truth into dir (created if missing): labels.nrrd (uint8),
 * image.nrrd (int16, HU or MR signal), labels.json (label table with codes and
 * colours, lesions, geometry, seed).  Atomic per file. */
mi_status *mi_phantom_write_truth(const mi_phantom *p, const char *dir);

/* Both: <out>/dicom/ and <out>/truth/. */
mi_status *mi_phantom_write_study(const mi_phantom *p, const char *out_dir);

#ifdef __cplusplus
}
#endif
#endif
