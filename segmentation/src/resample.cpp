// Resampling between a series' grid and a model's grid (ITK), and the fused
// "interpolate class probabilities, then decide" step back onto the source.
#include <itkIdentityTransform.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>

#include "itk_util.h"
#include "medinfer/hugepages.h"
#include "medinfer/segmentation.h"

namespace {

mi_status *check_geometry(const mi_geometry *g, const char *what) {
  for (int a = 0; a < 3; ++a)
    if (g->size[a] < 1 || !(g->spacing[a] > 0) || !std::isfinite(g->spacing[a]))
      return mi_error(MI_ERR_SHAPE, "%s grid: size %lld and spacing %g along axis %d", what, (long long)g->size[a],
                      g->spacing[a], a);
  const double *d = g->direction;
  double det = d[0] * (d[4] * d[8] - d[5] * d[7]) - d[1] * (d[3] * d[8] - d[5] * d[6]) +
               d[2] * (d[3] * d[7] - d[4] * d[6]);
  if (!(std::fabs(det) > 1e-6)) return mi_error(MI_ERR_SHAPE, "%s grid: singular direction matrix", what);
  return nullptr;
}

}  // namespace

// A model grid of at most 2^31 voxels (8 GB as floats, before the network's
// channels): a series whose slices lie kilometres apart is refused here, by
// its extent, rather than by a failed allocation.
static mi_status *check_grid_size(const double n[3], const double spacing[3]) {
  const double most = 2147483648.0;
  if (std::isfinite(n[0]) && std::isfinite(n[1]) && std::isfinite(n[2]) &&
      std::max(n[0], 1.0) * std::max(n[1], 1.0) * std::max(n[2], 1.0) <= most)
    return nullptr;
  return mi_error(MI_ERR_SHAPE,
                  "the series spans %.6g x %.6g x %.6g mm: at the model's spacing (%g x %g x %g mm) that is "
                  "more than 2^31 voxels",
                  n[0] * spacing[0], n[1] * spacing[1], n[2] * spacing[2], spacing[0], spacing[1], spacing[2]);
}

extern "C" mi_status *mi_grid_for(const mi_geometry *g, const double spacing[3], int lps, mi_geometry *out) {
  if (!g || !spacing || !out) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_grid_for: NULL argument");
  MI_TRY(check_geometry(g, "source"));
  mi_geometry r;
  std::memset(&r, 0, sizeof r);
  double centre[3];
  mi_geometry_index_to_point(g, (g->size[0] - 1) / 2.0, (g->size[1] - 1) / 2.0, (g->size[2] - 1) / 2.0, centre);
  if (lps) {
    // Axis-aligned box around the voxel edges of the source.
    double lo[3] = {INFINITY, INFINITY, INFINITY}, hi[3] = {-INFINITY, -INFINITY, -INFINITY};
    for (int c = 0; c < 8; ++c) {
      double p[3];
      mi_geometry_index_to_point(g, (c & 1) ? g->size[0] - 0.5 : -0.5, (c & 2) ? g->size[1] - 0.5 : -0.5,
                                 (c & 4) ? g->size[2] - 0.5 : -0.5, p);
      for (int a = 0; a < 3; ++a) lo[a] = std::min(lo[a], p[a]), hi[a] = std::max(hi[a], p[a]);
    }
    double n[3];
    for (int a = 0; a < 3; ++a) n[a] = std::ceil((hi[a] - lo[a]) / spacing[a] - 1e-6);
    MI_TRY(check_grid_size(n, spacing));
    for (int a = 0; a < 3; ++a) {
      r.size[a] = std::max<int64_t>(1, (int64_t)n[a]);
      r.spacing[a] = spacing[a];
      r.direction[4 * a] = 1;
      centre[a] = (lo[a] + hi[a]) / 2;
    }
  } else {
    // The series' own axes; same extent, new spacing.
    double n[3];
    for (int a = 0; a < 3; ++a) n[a] = std::ceil(g->size[a] * g->spacing[a] / spacing[a] - 1e-6);
    MI_TRY(check_grid_size(n, spacing));
    for (int a = 0; a < 3; ++a) {
      r.size[a] = std::max<int64_t>(1, (int64_t)n[a]);
      r.spacing[a] = spacing[a];
    }
    std::memcpy(r.direction, g->direction, sizeof r.direction);
  }
  for (int a = 0; a < 3; ++a) {
    r.origin[a] = centre[a];
    for (int c = 0; c < 3; ++c) r.origin[a] -= r.direction[3 * a + c] * r.spacing[c] * (r.size[c] - 1) / 2.0;
  }
  *out = r;
  return nullptr;
}

extern "C" mi_status *mi_resample(const mi_geometry *gs, const float *src, const mi_geometry *gd, int nearest,
                                  float outside, int threads, float **out) {
  if (!out) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_resample: out is NULL");
  *out = nullptr;
  if (!gs || !src || !gd) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_resample: NULL argument");
  MI_TRY(check_geometry(gs, "source"));
  MI_TRY(check_geometry(gd, "target"));
  using Image = itk::Image<float, 3>;
  try {
    Image::Pointer in = mi_seg::wrap_image<float>(*gs, src);
    auto rs = itk::ResampleImageFilter<Image, Image>::New();
    rs->SetInput(in);
    rs->SetTransform(itk::IdentityTransform<double, 3>::New());
    if (nearest)
      rs->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<Image, double>::New());
    else
      rs->SetInterpolator(itk::LinearInterpolateImageFunction<Image, double>::New());
    Image::SizeType size;
    Image::PointType origin;
    Image::SpacingType spacing;
    Image::DirectionType dir;
    for (int a = 0; a < 3; ++a) {
      size[a] = (itk::SizeValueType)gd->size[a];
      origin[a] = gd->origin[a];
      spacing[a] = gd->spacing[a];
      for (int c = 0; c < 3; ++c) dir(a, c) = gd->direction[3 * a + c];
    }
    rs->SetSize(size);
    rs->SetOutputOrigin(origin);
    rs->SetOutputSpacing(spacing);
    rs->SetOutputDirection(dir);
    rs->SetDefaultPixelValue(outside);
    if (threads > 0) rs->SetNumberOfWorkUnits((itk::ThreadIdType)threads);
    // ITK writes into the caller's buffer: an image container holding an
    // imported buffer of the right size keeps it when the filter allocates
    // its output (ImportImageContainer::Reserve), which spares a copy and
    // first-touch page faults on a second buffer.
    const size_t n = (size_t)(gd->size[0] * gd->size[1] * gd->size[2]);
    std::unique_ptr<float, void (*)(void *)> buf(static_cast<float *>(mi_alloc_huge(n * sizeof(float))), std::free);
    if (!buf) return mi_error(MI_ERR_NO_MEMORY, "resample: cannot allocate %zu voxels", n);
    rs->GetOutput()->GetPixelContainer()->SetImportPointer(buf.get(), n, false);
    rs->Update();
    const float *res = rs->GetOutput()->GetBufferPointer();
    if (res != buf.get()) std::memcpy(buf.get(), res, n * sizeof(float));  // an ITK that reallocated after all
    *out = buf.release();
    return nullptr;
  } catch (const std::bad_alloc &) {
    return mi_error(MI_ERR_NO_MEMORY, "resample: out of memory (%lldx%lldx%lld grid)", (long long)gd->size[0],
                    (long long)gd->size[1], (long long)gd->size[2]);
  } catch (const std::exception &e) {
    return mi_error(MI_ERR_INTERNAL, "resample (ITK): %s", e.what());
  }
}
