// Finding pictures of the review folder: render the slice, its neighbours
// and the box outline into an RGB image (layout in review.h) and write it as
// PNG with ITK.
#include "review.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "itkImage.h"
#include "itkImageFileWriter.h"
#include "itkPNGImageIO.h"
#include "itkRGBPixel.h"

namespace {

using Pixel = itk::RGBPixel<unsigned char>;
using Image = itk::Image<Pixel, 2>;

const unsigned char kBackground = 24, kEmptyTile = 48, kFrame = 200;

struct Canvas {
  int w, h;
  Pixel *p;
  void set(int x, int y, const uint8_t rgb[3]) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    Pixel &q = p[(size_t)y * w + x];
    q[0] = rgb[0], q[1] = rgb[1], q[2] = rgb[2];
  }
  void fill(int x0, int y0, int x1, int y1, const uint8_t rgb[3]) {
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) set(x, y, rgb);
  }
};

// Slice k of the volume into the panel at (x0, y0) of size pw x ph, voxels
// shown nearest-neighbour, grey from the window.
void draw_slice(Canvas &c, const mi_geometry *g, const float *vol, int64_t k, int x0, int y0, int pw, int ph,
                double lo, double width) {
  const int64_t cols = g->size[0], rows = g->size[1];
  const float *s = vol + (size_t)(k * rows * cols);
  for (int v = 0; v < ph; ++v) {
    int64_t j = std::min<int64_t>(rows - 1, (int64_t)v * rows / ph);
    for (int u = 0; u < pw; ++u) {
      int64_t i = std::min<int64_t>(cols - 1, (int64_t)u * cols / pw);
      double t = (s[j * cols + i] - lo) / width;
      uint8_t grey = (uint8_t)std::lround(255.0 * std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0));
      const uint8_t rgb[3] = {grey, grey, grey};
      c.set(x0 + u, y0 + v, rgb);
    }
  }
}

// Outline of the index rectangle [lo, hi] just outside it, `line` pixels
// wide, clipped to the panel.
void draw_box(Canvas &c, const mi_geometry *g, const double lo[2], const double hi[2], int x0, int y0, int pw,
              int ph, int line, const uint8_t rgb[3]) {
  const double cols = (double)g->size[0], rows = (double)g->size[1];
  // Pixel u shows voxel floor(u * cols / pw), so the pixels inside an edge at
  // display coordinate e start at ceil(e).  Limited so huge boxes stay
  // drawable; the 1e-6 absorbs the rounding of the index-to-LPS round trip.
  auto px = [](double e, int n) { return (int)std::ceil(std::clamp(e, -8.0, n + 8.0) - 1e-6); };
  const int l = px((lo[0] + 0.5) * pw / cols, pw), r = px((hi[0] + 0.5) * pw / cols, pw);
  const int t = px((lo[1] + 0.5) * ph / rows, ph), b = px((hi[1] + 0.5) * ph / rows, ph);
  for (int y = t - line; y < b + line; ++y)
    for (int x = l - line; x < r + line; ++x) {
      if (x >= l && x < r && y >= t && y < b) continue;  // inside the box
      if (x < 0 || y < 0 || x >= pw || y >= ph) continue;
      c.set(x0 + x, y0 + y, rgb);
    }
}

mi_status *write_png(const Image::Pointer &img, const char *path) {
  static unsigned counter;
  char tmp[4200];
  std::snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%u", path, (long)getpid(), counter++);
  try {
    auto writer = itk::ImageFileWriter<Image>::New();
    writer->SetImageIO(itk::PNGImageIO::New());  // the temporary name has no .png extension
    writer->SetFileName(tmp);
    writer->SetInput(img);
    writer->Update();
  } catch (const itk::ExceptionObject &e) {
    unlink(tmp);
    return mi_error(MI_ERR_IO, "%s: cannot write the PNG (%s)", path, e.GetDescription());
  }
  // Durable before it replaces the old picture, as mi_write_file_atomic does.
  int fd = open(tmp, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    return mi_error(MI_ERR_IO, "%s: cannot write (%s)", path, std::strerror(e));
  }
  close(fd);
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return mi_error(MI_ERR_IO, "%s: cannot rename the temporary file into place (%s)", path, std::strerror(e));
  }
  return nullptr;
}

}  // namespace

extern "C" void mi_review_layout_for(const mi_geometry *g, mi_review_layout *o) {
  const double wmm = g->size[0] * g->spacing[0], hmm = g->size[1] * g->spacing[1];
  const double ppm = MI_REVIEW_MAIN_PX / std::max(wmm, hmm);
  o->main_w = std::max(1, (int)std::lround(wmm * ppm));
  o->main_h = std::max(1, (int)std::lround(hmm * ppm));
  o->thumb_w = std::max(8, (o->main_w - (MI_REVIEW_THUMBS - 1) * MI_REVIEW_GAP) / MI_REVIEW_THUMBS);
  o->thumb_h = std::max(1, (int)std::lround((double)o->thumb_w * o->main_h / o->main_w));
  o->width = std::max(o->main_w, MI_REVIEW_THUMBS * o->thumb_w + (MI_REVIEW_THUMBS - 1) * MI_REVIEW_GAP);
  o->height = o->main_h + MI_REVIEW_GAP + o->thumb_h;
}

extern "C" int mi_review_box_on_slice(const mi_geometry *g, const mi_finding *f, double k, double lo[2],
                                      double hi[2]) {
  double klo = INFINITY, khi = -INFINITY;
  lo[0] = lo[1] = INFINITY;
  hi[0] = hi[1] = -INFINITY;
  for (int corner = 0; corner < 8; ++corner) {
    double p[3], idx[3];
    for (int r = 0; r < 3; ++r) {
      p[r] = f->center[r];
      for (int a = 0; a < 3; ++a) p[r] += ((corner >> a) & 1 ? 1.0 : -1.0) * f->axes[a][r];
    }
    mi_geometry_point_to_index(g, p, idx);
    for (int d = 0; d < 2; ++d) lo[d] = std::min(lo[d], idx[d]), hi[d] = std::max(hi[d], idx[d]);
    klo = std::min(klo, idx[2]), khi = std::max(khi, idx[2]);
  }
  const double eps = 1e-6;  // a flat (2D) box lies exactly on its slice
  return k >= klo - eps && k <= khi + eps;
}

extern "C" mi_status *mi_review_write_png(const mi_geometry *g, const float *volume, const mi_finding *f,
                                          const uint8_t rgb[3], double window_center, double window_width,
                                          const char *path) {
  const int64_t slices = g->size[2];
  if (f->slice < 0 || f->slice >= slices)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "%s: slice %d is outside the volume (0..%lld)", path, f->slice,
                    (long long)slices - 1);
  mi_review_layout L;
  mi_review_layout_for(g, &L);

  auto img = Image::New();
  Image::RegionType region;
  region.SetSize(0, (itk::SizeValueType)L.width);
  region.SetSize(1, (itk::SizeValueType)L.height);
  try {
    img->SetRegions(region);
    img->Allocate();
  } catch (const itk::ExceptionObject &e) {
    return mi_error(MI_ERR_NO_MEMORY, "%s: cannot allocate a %dx%d picture", path, L.width, L.height);
  }
  Canvas c{L.width, L.height, img->GetBufferPointer()};
  const uint8_t bg[3] = {kBackground, kBackground, kBackground}, empty[3] = {kEmptyTile, kEmptyTile, kEmptyTile},
                frame[3] = {kFrame, kFrame, kFrame};
  c.fill(0, 0, L.width, L.height, bg);

  const double lo_grey = window_center - window_width / 2;
  double lo[2], hi[2];
  draw_slice(c, g, volume, f->slice, 0, 0, L.main_w, L.main_h, lo_grey, window_width);
  mi_review_box_on_slice(g, f, f->slice, lo, hi);  // the main panel shows the projection whatever its k range
  draw_box(c, g, lo, hi, 0, 0, L.main_w, L.main_h, MI_REVIEW_LINE, rgb);

  const int y0 = L.main_h + MI_REVIEW_GAP;
  for (int t = 0; t < MI_REVIEW_THUMBS; ++t) {
    const int64_t k = f->slice + t - MI_REVIEW_THUMBS / 2;
    const int x0 = t * (L.thumb_w + MI_REVIEW_GAP);
    if (k == f->slice) c.fill(x0 - 1, y0 - 1, x0 + L.thumb_w + 1, y0 + L.thumb_h + 1, frame);  // this slice
    if (k < 0 || k >= slices) {
      c.fill(x0, y0, x0 + L.thumb_w, y0 + L.thumb_h, empty);
      continue;
    }
    draw_slice(c, g, volume, k, x0, y0, L.thumb_w, L.thumb_h, lo_grey, window_width);
    if (mi_review_box_on_slice(g, f, (double)k, lo, hi)) draw_box(c, g, lo, hi, x0, y0, L.thumb_w, L.thumb_h, 1, rgb);
  }
  return write_png(img, path);
}
