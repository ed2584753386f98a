// Voxelisation.  For each image row the shapes' implicit functions are
// quadratic/linear in the column index, so the interval of columns each shape
// can cover is solved in closed form and only those columns are tested: this
// keeps a 512x512x300 phantom at about a second on two cores.  Every voxel's
// value depends only on its index and the seed, so the result is identical
// for any thread count.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

#include "internal.h"

namespace {

// Smooth value noise: random values on a coarse lattice, trilinearly interpolated.
struct Lattice {
  double lo[3], inv_cell;
  int64_t n[3];
  std::vector<float> v;

  Lattice(const mi_geometry &g, double cell, uint64_t seed) : inv_cell(1 / cell) {
    double mn[3] = {1e300, 1e300, 1e300}, mx[3] = {-1e300, -1e300, -1e300};
    for (int c = 0; c < 8; c++) {
      double p[3];
      mi_geometry_index_to_point(&g, (c & 1) ? g.size[0] - 1 : 0, (c & 2) ? g.size[1] - 1 : 0,
                                 (c & 4) ? g.size[2] - 1 : 0, p);
      for (int a = 0; a < 3; a++) mn[a] = std::min(mn[a], p[a]), mx[a] = std::max(mx[a], p[a]);
    }
    for (int a = 0; a < 3; a++) {
      lo[a] = mn[a] - 2 * cell;
      n[a] = (int64_t)std::ceil((mx[a] - lo[a]) / cell) + 3;
    }
    v.resize((size_t)(n[0] * n[1] * n[2]));
    // Keyed by lattice point in patient space, so the texture is the same
    // anatomy-fixed pattern whatever the grid orientation.
    for (int64_t z = 0; z < n[2]; z++)
      for (int64_t y = 0; y < n[1]; y++)
        for (int64_t x = 0; x < n[0]; x++) {
          int64_t gx = (int64_t)std::floor(lo[0] / cell) + x, gy = (int64_t)std::floor(lo[1] / cell) + y,
                  gz = (int64_t)std::floor(lo[2] / cell) + z;
          uint64_t h = phantom_mix(seed ^ phantom_mix((uint64_t)gx * 73856093ull ^ (uint64_t)gy * 19349663ull ^
                                                      (uint64_t)gz * 83492791ull));
          v[(size_t)(x + n[0] * (y + n[1] * z))] = (float)((h >> 11) * 0x1.0p-53 * 2 - 1);
        }
    // Align the lattice to multiples of the cell so keys above match positions.
    for (int a = 0; a < 3; a++) lo[a] = std::floor(lo[a] / cell) * cell;
  }

  float at(const double p[3]) const {
    double f[3];
    int64_t i[3];
    for (int a = 0; a < 3; a++) {
      double x = (p[a] - lo[a]) * inv_cell;
      double fl = std::floor(x);
      i[a] = std::min<int64_t>(std::max<int64_t>((int64_t)fl, 0), n[a] - 2);
      f[a] = std::min(std::max(x - (double)i[a], 0.0), 1.0);
    }
    const float *b = &v[(size_t)(i[0] + n[0] * (i[1] + n[1] * i[2]))];
    const int64_t sy = n[0], sz = n[0] * n[1];
    float c00 = b[0] + (float)f[0] * (b[1] - b[0]), c10 = b[sy] + (float)f[0] * (b[sy + 1] - b[sy]);
    float c01 = b[sz] + (float)f[0] * (b[sz + 1] - b[sz]),
          c11 = b[sz + sy] + (float)f[0] * (b[sz + sy + 1] - b[sz + sy]);
    float c0 = c00 + (float)f[1] * (c10 - c00), c1 = c01 + (float)f[1] * (c11 - c01);
    return c0 + (float)f[2] * (c1 - c0);
  }
};

// Columns i with |a + i b| <= 1, intersected into [lo, hi].
void clip_linear(double a, double b, double &lo, double &hi) {
  if (std::fabs(b) < 1e-15) {
    if (std::fabs(a) > 1) lo = 1, hi = 0;
    return;
  }
  double x0 = (-1 - a) / b, x1 = (1 - a) / b;
  if (x0 > x1) std::swap(x0, x1);
  lo = std::max(lo, x0), hi = std::min(hi, x1);
}

// Columns i with sum over axes (a + i b)^2 <= r^2.
void clip_quadratic(const double *a, const double *b, int axes, double r, double &lo, double &hi) {
  double A = 0, B = 0, C = -r * r;
  for (int k = 0; k < axes; k++) A += b[k] * b[k], B += 2 * a[k] * b[k], C += a[k] * a[k];
  if (A < 1e-30) {
    if (C > 0) lo = 1, hi = 0;
    return;
  }
  double disc = B * B - 4 * A * C;
  if (disc < 0) {
    lo = 1, hi = 0;
    return;
  }
  double s = std::sqrt(disc);
  lo = std::max(lo, (-B - s) / (2 * A)), hi = std::min(hi, (-B + s) / (2 * A));
}

struct Active {
  const PhantomShape *s;
  int64_t lo, hi;
  double a[3], b[3];
};

inline bool inside(const Active &t, double i, const double p[3]) {
  const PhantomShape &s = *t.s;
  double u[3] = {t.a[0] + i * t.b[0], t.a[1] + i * t.b[1], t.a[2] + i * t.b[2]};
  double q;
  switch (s.kind) {
    case PhantomShape::BOX:
      return std::fabs(u[0]) <= 1 && std::fabs(u[1]) <= 1 && std::fabs(u[2]) <= 1;
    case PhantomShape::CYLINDER:
      if (std::fabs(u[2]) > 1) return false;
      q = u[0] * u[0] + u[1] * u[1];
      break;
    default:
      q = u[0] * u[0] + u[1] * u[1] + u[2] * u[2];
  }
  const double inner = 1 - s.pert, outer = 1 + s.pert;
  if (q <= inner * inner) return true;
  if (q > outer * outer) return false;
  double r = 0;
  for (int k = 0; k < 3; k++) r += std::sin(s.w[k][0] * p[0] + s.w[k][1] * p[1] + s.w[k][2] * p[2] + s.phi[k]);
  r = 1 + s.pert * r / 3;
  return q <= r * r;
}

// Approximately standard normal from a 64-bit hash (Irwin-Hall of 4 uniforms):
// cheap, deterministic, bounded at +-3.5 sigma.
inline double gauss(uint64_t h) {
  double s = (double)(h & 0xFFFF) + (double)((h >> 16) & 0xFFFF) + (double)((h >> 32) & 0xFFFF) + (double)(h >> 48);
  return (s - 4 * 32767.5) * (1.7320508075688772 / 65536.0);
}

}  // namespace

void phantom_rasterize(const PhantomAnatomy &an, const mi_phantom_options &o, const mi_geometry &g,
                       int16_t *values, uint8_t *labels) {
  const int64_t nx = g.size[0], ny = g.size[1], nz = g.size[2];
  const Lattice fine(g, 6.0, phantom_mix(o.seed ^ 0x7E47ull)), coarse(g, 22.0, phantom_mix(o.seed ^ 0xFA7ull));
  const bool mr = o.modality == MI_PHANTOM_MR;
  const double air = mr ? 0 : -1000, fat = phantom_tissue_value(o.modality, TISSUE_FAT);
  const double lo_clamp = mr ? 0 : -1024, hi_clamp = mr ? 4095 : 3071;
  const uint64_t noise_key = phantom_mix(o.seed ^ 0x40153ull);
  const double sigma = o.noise_sigma;

  std::atomic<int64_t> next{0};
  auto work = [&]() {
    std::vector<Active> act;
    act.reserve(an.shapes.size());
    for (int64_t k; (k = next.fetch_add(1)) < nz;) {
      for (int64_t j = 0; j < ny; j++) {
        double p0[3], d[3];
        mi_geometry_index_to_point(&g, 0, (double)j, (double)k, p0);
        for (int r = 0; r < 3; r++) d[r] = g.direction[3 * r] * g.spacing[0];
        act.clear();
        for (const auto &s : an.shapes) {
          Active t;
          t.s = &s;
          for (int r = 0; r < 3; r++) {
            t.a[r] = s.m[3 * r] * (p0[0] - s.c[0]) + s.m[3 * r + 1] * (p0[1] - s.c[1]) + s.m[3 * r + 2] * (p0[2] - s.c[2]);
            t.b[r] = s.m[3 * r] * d[0] + s.m[3 * r + 1] * d[1] + s.m[3 * r + 2] * d[2];
          }
          double lo = 0, hi = (double)(nx - 1);
          if (s.kind == PhantomShape::BOX) {
            for (int r = 0; r < 3; r++) clip_linear(t.a[r], t.b[r], lo, hi);
          } else {
            if (s.kind == PhantomShape::CYLINDER) clip_linear(t.a[2], t.b[2], lo, hi);
            clip_quadratic(t.a, t.b, s.kind == PhantomShape::CYLINDER ? 2 : 3, 1 + s.pert, lo, hi);
          }
          if (lo > hi) continue;
          // Widen by a column: the exact test below decides the boundary voxels.
          t.lo = std::max<int64_t>(0, (int64_t)std::floor(lo) - 1);
          t.hi = std::min<int64_t>(nx - 1, (int64_t)std::ceil(hi) + 1);
          act.push_back(t);
        }
        const size_t row = (size_t)(nx * (j + ny * k));
        for (int64_t i = 0; i < nx; i++) {
          const double p[3] = {p0[0] + (double)i * d[0], p0[1] + (double)i * d[1], p0[2] + (double)i * d[2]};
          const PhantomShape *hit = nullptr;
          for (const auto &t : act)
            if (i >= t.lo && i <= t.hi && inside(t, (double)i, p)) {
              hit = t.s;
              break;
            }
          double v = air;
          uint8_t lab = 0;
          if (hit) {
            lab = hit->label;
            const double tf = fine.at(p);
            v = hit->value + hit->texture * tf;
            if (hit->fat_mixing && coarse.at(p) > 0.35) v = fat + hit->texture * tf;
          }
          if (sigma > 0) {
            v += sigma * gauss(phantom_mix(noise_key + row + (uint64_t)i));
            if (mr) v = std::fabs(v);  // magnitude images: noise is Rician-like near zero
          }
          v = std::min(std::max(std::nearbyint(v), lo_clamp), hi_clamp);
          values[row + (size_t)i] = (int16_t)v;
          labels[row + (size_t)i] = lab;
        }
      }
    }
  };
  int nt = o.threads > 0 ? o.threads : (int)std::max(1u, std::thread::hardware_concurrency());
  nt = (int)std::min<int64_t>(nt, nz);
  std::vector<std::thread> pool;
  for (int t = 1; t < nt; t++) pool.emplace_back(work);
  work();
  for (auto &t : pool) t.join();
}
