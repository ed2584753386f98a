#include "medinfer/geometry.h"

void mi_geometry_index_to_point(const mi_geometry *g, double i, double j, double k, double p[3]) {
  const double v[3] = {i * g->spacing[0], j * g->spacing[1], k * g->spacing[2]};
  for (int r = 0; r < 3; r++)
    p[r] = g->origin[r] + g->direction[3 * r] * v[0] + g->direction[3 * r + 1] * v[1] +
           g->direction[3 * r + 2] * v[2];
}

void mi_geometry_point_to_index(const mi_geometry *g, const double p[3], double idx[3]) {
  const double *d = g->direction;
  const double a[3] = {p[0] - g->origin[0], p[1] - g->origin[1], p[2] - g->origin[2]};
  /* General inverse: the direction need not be orthonormal (gantry tilt). */
  double det = d[0] * (d[4] * d[8] - d[5] * d[7]) - d[1] * (d[3] * d[8] - d[5] * d[6]) +
               d[2] * (d[3] * d[7] - d[4] * d[6]);
  double inv[9] = {
      (d[4] * d[8] - d[5] * d[7]) / det, (d[2] * d[7] - d[1] * d[8]) / det, (d[1] * d[5] - d[2] * d[4]) / det,
      (d[5] * d[6] - d[3] * d[8]) / det, (d[0] * d[8] - d[2] * d[6]) / det, (d[2] * d[3] - d[0] * d[5]) / det,
      (d[3] * d[7] - d[4] * d[6]) / det, (d[1] * d[6] - d[0] * d[7]) / det, (d[0] * d[4] - d[1] * d[3]) / det};
  for (int r = 0; r < 3; r++)
    idx[r] = (inv[3 * r] * a[0] + inv[3 * r + 1] * a[1] + inv[3 * r + 2] * a[2]) / g->spacing[r];
}
