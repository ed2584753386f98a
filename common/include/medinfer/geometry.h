/* Voxel grid geometry in DICOM patient coordinates (LPS, millimetres).
 *
 * Voxel (i, j, k) -- i along columns (fastest in memory), j along rows, k
 * along slices -- lies at
 *     p = origin + direction * diag(spacing) * (i, j, k)^T
 * with direction stored row-major: direction[3*r + c] is row r of the 3x3
 * matrix whose columns are the unit vectors of the i, j and k axes (ITK's
 * convention).  For a DICOM series, column 0 is ImageOrientationPatient[0..2]
 * (along a row), column 1 is ImageOrientationPatient[3..5] (down a column),
 * column 2 the slice normal in the order slices are stored. */
#ifndef MEDINFER_GEOMETRY_H
#define MEDINFER_GEOMETRY_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mi_geometry {
  int64_t size[3];     /* columns, rows, slices */
  double origin[3];    /* centre of voxel (0,0,0) */
  double spacing[3];   /* column spacing, row spacing, slice spacing (mm) */
  double direction[9]; /* row-major; columns are the axis unit vectors */
} mi_geometry;

/* Patient-space point of voxel index (i, j, k) (fractional indices allowed). */
void mi_geometry_index_to_point(const mi_geometry *g, double i, double j, double k, double p[3]);
/* Continuous index of a patient-space point (inverse of the above). */
void mi_geometry_point_to_index(const mi_geometry *g, const double p[3], double idx[3]);

#ifdef __cplusplus
}
#endif
#endif
