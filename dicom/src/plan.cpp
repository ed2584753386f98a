// Puts a series' image planes in spatial order and derives its geometry.
// Order is by projection of ImagePositionPatient on the slice normal, never by
// file name or InstanceNumber; everything a voxel grid cannot represent is
// detected here so that the index and the loader agree on loadability.
#include <algorithm>
#include <map>
#include <cmath>
#include <cstdarg>
#include <cstdio>

#include "internal.h"

namespace mi_dicom {
namespace {

std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char *f, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

double dot(const double *a, const double *b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
void cross(const double *a, const double *b, double *o) {
  o[0] = a[1] * b[2] - a[2] * b[1];
  o[1] = a[2] * b[0] - a[0] * b[2];
  o[2] = a[0] * b[1] - a[1] * b[0];
}
bool normalize(double *v) {
  double n = std::sqrt(dot(v, v));
  if (n < 1e-9) return false;
  v[0] /= n, v[1] /= n, v[2] /= n;
  return true;
}

// Finite geometry and rescale; pixel spacing between 0.1 um and 10 m; a
// rescale that keeps 32-bit stored values inside float's range.
// "" or which number no image has, with its value.
std::string unusable_number(const Plane &p) {
  bool ok = true;
  for (double v : p.ipp) ok = ok && std::isfinite(v) && std::fabs(v) <= 1e9;
  if (!ok) return fmt("ImagePositionPatient %g\\%g\\%g", p.ipp[0], p.ipp[1], p.ipp[2]);
  for (double v : p.iop) ok = ok && std::isfinite(v);
  if (!ok)
    return fmt("ImageOrientationPatient %g\\%g\\%g\\%g\\%g\\%g", p.iop[0], p.iop[1], p.iop[2], p.iop[3], p.iop[4],
               p.iop[5]);
  for (double v : p.spacing) ok = ok && (v == 0 || (v >= 1e-4 && v <= 1e4));  // 0: absent, reported later
  if (!ok) return fmt("PixelSpacing %g\\%g mm", p.spacing[0], p.spacing[1]);
  if (!std::isfinite(p.slope) || std::fabs(p.slope) > 1e20) return fmt("RescaleSlope %g", p.slope);
  if (!std::isfinite(p.intercept) || std::fabs(p.intercept) > 1e30) return fmt("RescaleIntercept %g", p.intercept);
  return "";
}

std::string where(const std::vector<FileHeader> &files, const Plane &p) {
  const std::string &f = files[p.file].path;
  return p.frame > 0 ? fmt("%s frame %d", f.c_str(), p.frame) : f;
}

// Header checks that make a file unusable regardless of the others.
std::string check_file(const FileHeader &h) {
  if (h.sop_class_uid == "1.2.840.10008.5.1.4.1.1.66.4") return h.path + ": a segmentation (SEG), not an image volume";
  if (!h.has_pixel_data) return h.path + ": no Pixel Data";
  std::string ts = unsupported_transfer_syntax(h.transfer_syntax);
  if (!ts.empty()) return h.path + ": " + ts;
  if (h.samples != 1) return fmt("%s: %d samples per pixel (%s); only grayscale is supported", h.path.c_str(), h.samples,
                                 h.photometric.c_str());
  if (h.photometric != "MONOCHROME1" && h.photometric != "MONOCHROME2")
    return h.path + ": photometric interpretation '" + h.photometric + "' is not grayscale";
  if (h.bits_allocated != 8 && h.bits_allocated != 16 && h.bits_allocated != 32)
    return fmt("%s: BitsAllocated %d is not supported", h.path.c_str(), h.bits_allocated);
  if (h.bits_stored < 1 || h.bits_stored > h.bits_allocated || h.high_bit != h.bits_stored - 1)
    return fmt("%s: inconsistent BitsStored %d / HighBit %d for BitsAllocated %d", h.path.c_str(), h.bits_stored,
               h.high_bit, h.bits_allocated);
  if (h.rows < 1 || h.cols < 1) return fmt("%s: image size %d x %d", h.path.c_str(), h.rows, h.cols);
  return "";
}

}  // namespace

std::string orientation_label(const double iop[6]) {
  double r[3] = {iop[0], iop[1], iop[2]}, c[3] = {iop[3], iop[4], iop[5]}, n[3];
  cross(r, c, n);
  if (!normalize(n)) return "";
  static const char *names[3] = {"SAGITTAL", "CORONAL", "AXIAL"};
  for (int a = 0; a < 3; ++a)
    if (std::fabs(n[a]) > 1 - 1e-4) return names[a];
  return "OBLIQUE";
}

std::string plan_volume(const std::vector<FileHeader> &files, bool allow_irregular, std::vector<Plane> &planes,
                        Plan &plan) {
  planes.clear();
  for (size_t f = 0; f < files.size(); ++f) {
    std::string bad = check_file(files[f]);
    if (!bad.empty()) return bad;
    for (Plane p : files[f].planes) {
      p.file = (int)f;
      planes.push_back(p);
    }
  }
  if (planes.empty()) return "no image planes";
  const Plane &ref = planes[0];
  const FileHeader &rh = files[ref.file];
  for (const Plane &p : planes) {
    if (!p.has_ipp || !p.has_iop)
      return where(files, p) + ": no ImagePositionPatient / ImageOrientationPatient (not a volume)";
    const FileHeader &h = files[p.file];
    if (h.rows != rh.rows || h.cols != rh.cols)
      return fmt("slices disagree in size: %s is %d x %d, %s is %d x %d", where(files, ref).c_str(), rh.cols, rh.rows,
                 where(files, p).c_str(), h.cols, h.rows);
    for (int i = 0; i < 6; ++i)
      if (std::fabs(p.iop[i] - ref.iop[i]) > 1e-4)
        return fmt("slices disagree in orientation: %s has %g\\%g\\%g\\%g\\%g\\%g, %s has %g\\%g\\%g\\%g\\%g\\%g",
                   where(files, ref).c_str(), ref.iop[0], ref.iop[1], ref.iop[2], ref.iop[3], ref.iop[4], ref.iop[5],
                   where(files, p).c_str(), p.iop[0], p.iop[1], p.iop[2], p.iop[3], p.iop[4], p.iop[5]);
    const std::string bad = unusable_number(p);
    if (!bad.empty()) return where(files, p) + ": " + bad + " is not a usable number";
    for (int i = 0; i < 2; ++i)
      if (std::fabs(p.spacing[i] - ref.spacing[i]) > 1e-4 * std::max(1.0, ref.spacing[i]))
        return fmt("slices disagree in pixel spacing: %s has %g\\%g, %s has %g\\%g", where(files, ref).c_str(),
                   ref.spacing[0], ref.spacing[1], where(files, p).c_str(), p.spacing[0], p.spacing[1]);
  }
  if (ref.spacing[0] <= 0 || ref.spacing[1] <= 0) return where(files, ref) + ": no PixelSpacing";

  double r[3] = {ref.iop[0], ref.iop[1], ref.iop[2]}, c[3] = {ref.iop[3], ref.iop[4], ref.iop[5]}, n[3];
  if (!normalize(r) || !normalize(c)) return where(files, ref) + ": degenerate ImageOrientationPatient";
  cross(r, c, n);
  if (!normalize(n) || std::fabs(dot(r, c)) > 1e-3)
    return where(files, ref) + ": ImageOrientationPatient rows and columns are not orthogonal";
  plan.orientation = orientation_label(ref.iop);

  std::vector<double> d(planes.size());
  for (size_t i = 0; i < planes.size(); ++i) d[i] = dot(planes[i].ipp, n);
  std::vector<int> order(planes.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = (int)i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return d[a] < d[b]; });

  // Duplicate positions: the same instance twice is harmless, two different
  // images at one place is a mixed series.
  std::vector<int> kept;
  for (int idx : order) {
    if (!kept.empty() && std::fabs(d[idx] - d[kept.back()]) < 1e-3) {
      const Plane &a = planes[kept.back()], &b = planes[idx];
      if (files[a.file].sop_instance_uid == files[b.file].sop_instance_uid && a.frame == b.frame) {
        plan.issues |= MI_DICOM_ISSUE_DUPLICATE;
        plan.warnings.push_back("duplicate of the same instance ignored: " + where(files, b));
        continue;
      }
      return fmt("duplicate slice position (%.4f mm along the normal): %s and %s", d[idx], where(files, a).c_str(),
                 where(files, b).c_str());
    }
    kept.push_back(idx);
  }
  // One instance (frame) at two positions: the SEG could not say which it means.
  std::map<std::pair<std::string, int32_t>, int> seen;
  for (int idx : kept) {
    const Plane &b = planes[idx];
    auto it = seen.emplace(std::make_pair(files[b.file].sop_instance_uid, b.frame), idx);
    if (!it.second)
      return fmt("two images at different positions share SOPInstanceUID %.80s: %s and %s",
                 files[b.file].sop_instance_uid.c_str(), where(files, planes[it.first->second]).c_str(),
                 where(files, b).c_str());
  }
  order.swap(kept);
  const size_t N = order.size();

  mi_geometry &g = plan.geometry;
  g.size[0] = rh.cols, g.size[1] = rh.rows, g.size[2] = (int64_t)N;
  const Plane &first = planes[order[0]];
  for (int i = 0; i < 3; ++i) g.origin[i] = first.ipp[i];
  g.spacing[0] = ref.spacing[1];  // PixelSpacing is row spacing \ column spacing
  g.spacing[1] = ref.spacing[0];
  double u[3] = {n[0], n[1], n[2]};
  double slice_spacing = rh.spacing_between_slices > 0 ? rh.spacing_between_slices
                         : rh.slice_thickness > 0       ? rh.slice_thickness
                                                        : 1.0;
  if (N > 1) {
    std::vector<double> gaps(N - 1);
    for (size_t k = 0; k + 1 < N; ++k) gaps[k] = d[order[k + 1]] - d[order[k]];
    std::vector<double> sorted = gaps;
    std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
    const double median = sorted[sorted.size() / 2];

    // Stacking direction: from the first to the last position.  If it leaves
    // the normal, the gantry was tilted; the grid is then sheared.
    const Plane &last = planes[order[N - 1]];
    double span[3] = {last.ipp[0] - first.ipp[0], last.ipp[1] - first.ipp[1], last.ipp[2] - first.ipp[2]};
    double along = dot(span, n);
    double inplane[3] = {span[0] - along * n[0], span[1] - along * n[1], span[2] - along * n[2]};
    if (std::sqrt(dot(inplane, inplane)) > 1e-3 * std::max(1.0, along / 100.0)) {
      u[0] = span[0], u[1] = span[1], u[2] = span[2];
      normalize(u);
      double deg = std::acos(std::min(1.0, dot(u, n))) * 180.0 / M_PI;
      plan.issues |= MI_DICOM_ISSUE_GANTRY_TILT;
      plan.warnings.push_back(fmt("gantry tilt: slices stack %.3f degrees off the image normal (sheared grid)", deg));
    }
    const double un = dot(u, n);
    slice_spacing = median / un;

    const double tol = std::max(0.01, 0.01 * median);
    for (size_t k = 0; k < gaps.size(); ++k) {
      const Plane &a = planes[order[k]], &b = planes[order[k + 1]];
      if (gaps[k] > 1.5 * median) {
        plan.issues |= MI_DICOM_ISSUE_MISSING_SLICE;
        plan.warnings.push_back(fmt("missing slice(s): gap of %.4f mm (median %.4f mm) between %s and %s", gaps[k],
                                    median, where(files, a).c_str(), where(files, b).c_str()));
      } else if (std::fabs(gaps[k] - median) > tol) {
        plan.issues |= MI_DICOM_ISSUE_UNEVEN_SPACING;
        plan.warnings.push_back(fmt("uneven slice spacing: %.4f mm (median %.4f mm) between %s and %s", gaps[k], median,
                                    where(files, a).c_str(), where(files, b).c_str()));
      }
    }
    // Every position must lie on the stacking line, else it is no grid at all.
    for (size_t k = 1; k < N; ++k) {
      const Plane &p = planes[order[k]];
      double t = (d[order[k]] - d[order[0]]) / un;
      double dev = 0;
      for (int i = 0; i < 3; ++i) dev += std::pow(p.ipp[i] - (first.ipp[i] + t * u[i]), 2);
      if (std::sqrt(dev) > tol) {
        plan.issues |= MI_DICOM_ISSUE_UNEVEN_SPACING;
        plan.warnings.push_back(
            fmt("%s is %.4f mm off the line through the other slice positions", where(files, p).c_str(), std::sqrt(dev)));
        break;
      }
    }
    if ((plan.issues & (MI_DICOM_ISSUE_MISSING_SLICE | MI_DICOM_ISSUE_UNEVEN_SPACING)) && !allow_irregular) {
      std::string msg = "not a regular grid: ";
      for (const std::string &w : plan.warnings)
        if (w.rfind("gantry", 0) != 0 && w.rfind("duplicate", 0) != 0) {
          msg += w;
          break;
        }
      return msg;
    }
  }
  g.spacing[2] = slice_spacing;
  for (int i = 0; i < 3; ++i) {
    g.direction[3 * i + 0] = r[i];
    g.direction[3 * i + 1] = c[i];
    g.direction[3 * i + 2] = u[i];
  }
  plan.order = order;
  return "";
}

}  // namespace mi_dicom
