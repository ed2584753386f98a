// Back onto the source grid: trilinear interpolation of model-grid
// probabilities at every source voxel centre, then argmax / thresholds.
// Where the 8 surrounding model voxels share a label the interpolated vector
// keeps it (a convex combination of vectors whose largest entry is the same
// channel keeps that channel largest, and likewise for thresholds), so only
// voxels near label boundaries pay for the full interpolation.
#include <algorithm>
#include <cmath>
#include <vector>

#include "parallel.h"
#include "pipeline_internal.h"

namespace {

struct Mapping {
  double a[9], b[3];  // model continuous index = a * (i, j, k) + b
};

Mapping mapping(const mi_geometry *gm, const mi_geometry *gs) {
  Mapping m;
  double p0[3], idx0[3];
  mi_geometry_index_to_point(gs, 0, 0, 0, p0);
  mi_geometry_point_to_index(gm, p0, idx0);
  for (int c = 0; c < 3; ++c) {
    double p[3], idx[3];
    mi_geometry_index_to_point(gs, c == 0, c == 1, c == 2, p);
    mi_geometry_point_to_index(gm, p, idx);
    for (int r = 0; r < 3; ++r) m.a[3 * r + c] = idx[r] - idx0[r];
  }
  for (int r = 0; r < 3; ++r) m.b[r] = idx0[r];
  return m;
}

// Model continuous index r of source voxel (i, j, k), always this one
// expression (the axis-aligned walk's tables then hold the same doubles).
inline double coord(const Mapping &m, int r, int64_t i, int64_t j, int64_t k) {
  return m.a[3 * r] * i + m.a[3 * r + 1] * j + m.a[3 * r + 2] * k + m.b[r];
}

// The cell holding a continuous index: its lower corner i0 and the fractions
// f past it; false outside the grid (beyond half a voxel from the outermost
// centres, as ITK).
inline bool cell_index(const mi_geometry *gm, const double x[3], int64_t i0[3], double f[3]) {
  for (int a = 0; a < 3; ++a) {
    const int64_t n = gm->size[a];
    if (!(x[a] >= -0.5 && x[a] <= n - 0.5)) return false;
    double v = std::min(std::max(x[a], 0.0), (double)(n - 1));
    int64_t lo = (int64_t)v; /* v >= 0: the floor, without a libm call */
    if (lo > n - 1) lo = n - 1;
    i0[a] = lo;
    f[a] = v - lo;
  }
  return true;
}

// Offsets of the cell's 8 corners (the upper ones clamped to the grid).
inline void cell_offsets(const mi_geometry *gm, const int64_t i0[3], int64_t off[8]) {
  int64_t i1[3];
  for (int a = 0; a < 3; ++a) i1[a] = std::min(i0[a] + 1, gm->size[a] - 1);
  const int64_t sx = 1, sy = gm->size[0], sz = gm->size[0] * gm->size[1];
  for (int q = 0; q < 8; ++q) {
    const int64_t ix = (q & 1) ? i1[0] : i0[0], iy = (q & 2) ? i1[1] : i0[1], iz = (q & 4) ? i1[2] : i0[2];
    off[q] = ix * sx + iy * sy + iz * sz;
  }
}

inline void cell_weights(const double f[3], double w[8]) {
  for (int q = 0; q < 8; ++q)
    w[q] = ((q & 1) ? f[0] : 1 - f[0]) * ((q & 2) ? f[1] : 1 - f[1]) * ((q & 4) ? f[2] : 1 - f[2]);
}

// Whether the cell's 8 corners share one label, *l: the first corner's.
inline bool corners_agree(const uint8_t *model_labels, const int64_t off[8], uint8_t *l) {
  *l = model_labels[off[0]];
  for (int q = 1; q < 8; ++q)
    if (model_labels[off[q]] != *l) return false;
  return true;
}

// The decision on the C channels interpolated with weights w at the cell's
// corners (p: C floats of room).
inline uint8_t decide_interpolated(const mi_decision *d, const float *probs, int64_t nm, const int64_t off[8],
                                   const double w[8], float *p) {
  for (int ch = 0; ch < d->channels; ++ch) {
    const float *pc = probs + (int64_t)ch * nm;
    double s = 0;
    for (int q = 0; q < 8; ++q) s += w[q] * pc[off[q]];
    p[ch] = (float)s;
  }
  return mi_decide(d, p, 1);
}

// body(k) for every slice k on `threads` threads (0: all cores), the slices
// dealt round-robin into (at most 64) strides, so that each thread gets
// slices from the whole volume.
template <typename F>
void for_slices(int64_t slices, int threads, F body) {
  struct Ctx {
    F *body;
    int64_t slices, stride;
  };
  const int64_t strides = threads > 0 && threads < 64 ? threads : 64;
  Ctx c{&body, slices, strides};
  mi_seg_for_range(threads, strides, 1, [](void *vc, int64_t b, int64_t e) {
    const Ctx *c = static_cast<const Ctx *>(vc);
    for (int64_t w = b; w < e; ++w)
      for (int64_t k = w; k < c->slices; k += c->stride) (*c->body)(k);
  }, &c);
}

// An axis-aligned mapping: each model axis r follows one source axis
// perm[r] (the same or permuted: a coronal or sagittal series on the LPS
// model grid).  coord(r) then depends on that source index alone: the other
// terms are zeros whatever their index.
bool axis_aligned(const Mapping &m, int perm[3]) {
  int used = 0;
  for (int r = 0; r < 3; ++r) {
    perm[r] = -1;
    for (int c = 0; c < 3; ++c)
      if (m.a[3 * r + c] != 0) {
        if (perm[r] >= 0 || (used & (1 << c))) return false;
        perm[r] = c, used |= 1 << c;
      }
    if (perm[r] < 0) return false;
  }
  return true;
}

// Along source axis perm[r] of an axis-aligned mapping: each index's cell
// and fraction on model axis r (cell_index's), in runs of one cell.
struct AxisCells {
  std::vector<int64_t> lo;
  std::vector<double> f;
  std::vector<uint8_t> inside;
  std::vector<int64_t> run_end;  // per index: where its run of one cell (and insideness) ends
};

AxisCells axis_cells(const mi_geometry *gm, const Mapping &m, int r, int c, int64_t n) {
  AxisCells a;
  a.lo.resize((size_t)n), a.f.resize((size_t)n), a.inside.resize((size_t)n), a.run_end.resize((size_t)n);
  const int64_t size = gm->size[r];
  for (int64_t t = 0; t < n; ++t) {
    int64_t idx[3] = {0, 0, 0};
    idx[c] = t;
    const double x = coord(m, r, idx[0], idx[1], idx[2]);
    a.inside[t] = x >= -0.5 && x <= size - 0.5;
    const double v = a.inside[t] ? std::min(std::max(x, 0.0), (double)(size - 1)) : 0;
    const int64_t lo = std::min((int64_t)v, size - 1);
    a.lo[t] = lo, a.f[t] = v - lo;
  }
  for (int64_t t = n - 1; t >= 0; --t)
    a.run_end[t] = t + 1 < n && a.inside[t + 1] == a.inside[t] && a.lo[t + 1] == a.lo[t] ? a.run_end[t + 1] : t + 1;
  return a;
}

constexpr int16_t kMixed = -1;

// Per model cell (lower corner), the label its 8 corners share, or kMixed.
std::vector<int16_t> cell_labels(const mi_geometry *gm, const uint8_t *model_labels, int threads) {
  std::vector<int16_t> out((size_t)(gm->size[0] * gm->size[1] * gm->size[2]));
  for_slices(gm->size[2], threads, [&](int64_t z) {
    for (int64_t y = 0; y < gm->size[1]; ++y)
      for (int64_t x = 0; x < gm->size[0]; ++x) {
        const int64_t i0[3] = {x, y, z};
        int64_t off[8];
        cell_offsets(gm, i0, off);
        uint8_t l0;
        out[(size_t)off[0]] = corners_agree(model_labels, off, &l0) ? l0 : kMixed;
      }
  });
  return out;
}

// mi_labels_to_source on an axis-aligned mapping: cells found per axis
// once, and each row's runs of a cell whose corners agree filled with their
// label without a voxel's arithmetic (the general walk evaluated the mapping
// at every one of the source's voxels: 0.5 s of a 512x512x300 study's job).
void labels_aligned(const mi_geometry *gm, const Mapping &m, const int perm[3], const float *probs,
                    const uint8_t *model_labels, const mi_decision *d, const mi_geometry *gs, uint8_t *out,
                    int threads) {
  int model_axis[3]; /* of each source axis */
  for (int r = 0; r < 3; ++r) model_axis[perm[r]] = r;
  const AxisCells ax = axis_cells(gm, m, model_axis[0], 0, gs->size[0]),
                  ay = axis_cells(gm, m, model_axis[1], 1, gs->size[1]),
                  az = axis_cells(gm, m, model_axis[2], 2, gs->size[2]);
  const std::vector<int16_t> cells = cell_labels(gm, model_labels, threads);
  const int64_t nm = gm->size[0] * gm->size[1] * gm->size[2];
  const int64_t stride[3] = {1, gm->size[0], gm->size[0] * gm->size[1]}; /* model voxels per step on each axis */
  const int64_t sx = stride[model_axis[0]], sy = stride[model_axis[1]], sz = stride[model_axis[2]];
  const int C = d->channels;
  for_slices(gs->size[2], threads, [&](int64_t k) {
    std::vector<float> p(C);
    for (int64_t j = 0; j < gs->size[1]; ++j) {
      uint8_t *row = out + (k * gs->size[1] + j) * gs->size[0];
      if (!ay.inside[j] || !az.inside[k]) {
        std::fill(row, row + gs->size[0], 0);
        continue;
      }
      const int64_t base = az.lo[k] * sz + ay.lo[j] * sy;
      for (int64_t i = 0, e; i < gs->size[0]; i = e) {
        e = ax.run_end[i];
        if (!ax.inside[i]) {
          std::fill(row + i, row + e, 0);
          continue;
        }
        const int16_t l = cells[(size_t)(base + ax.lo[i] * sx)];
        if (l != kMixed) {
          std::fill(row + i, row + e, (uint8_t)l);
          continue;
        }
        int64_t i0[3], off[8];
        i0[model_axis[0]] = ax.lo[i], i0[model_axis[1]] = ay.lo[j], i0[model_axis[2]] = az.lo[k];
        cell_offsets(gm, i0, off);
        for (int64_t t = i; t < e; ++t) {
          double f[3], w[8];
          f[model_axis[0]] = ax.f[t], f[model_axis[1]] = ay.f[j], f[model_axis[2]] = az.f[k];
          cell_weights(f, w);
          row[t] = decide_interpolated(d, probs, nm, off, w, p.data());
        }
      }
    }
  });
}

}  // namespace

extern "C" mi_status *mi_labels_to_source(const mi_geometry *gm, const float *probs, const uint8_t *model_labels,
                                          const mi_decision *d, const mi_geometry *gs, uint8_t *out,
                                          int threads) {
  const Mapping m = mapping(gm, gs);
  int perm[3];
  if (axis_aligned(m, perm)) {
    labels_aligned(gm, m, perm, probs, model_labels, d, gs, out, threads);
    return nullptr;
  }
  const int64_t nm = gm->size[0] * gm->size[1] * gm->size[2];
  const int C = d->channels;
  for_slices(gs->size[2], threads, [&](int64_t k) {
    std::vector<float> p(C);
    for (int64_t j = 0; j < gs->size[1]; ++j) {
      uint8_t *row = out + (k * gs->size[1] + j) * gs->size[0];
      /* The source grid is finer than the model's: neighbours along a row
       * mostly share a cell, and with it whether its corners agree. */
      int64_t cell[3] = {-1, -1, -1}, off[8] = {0};
      bool same = false;
      uint8_t l0 = 0;
      for (int64_t i = 0; i < gs->size[0]; ++i) {
        double x[3], f[3];
        int64_t i0[3];
        for (int r = 0; r < 3; ++r) x[r] = coord(m, r, i, j, k);
        if (!cell_index(gm, x, i0, f)) {
          row[i] = 0;
          continue;
        }
        if (i0[0] != cell[0] || i0[1] != cell[1] || i0[2] != cell[2]) {
          std::copy(i0, i0 + 3, cell);
          cell_offsets(gm, i0, off);
          same = corners_agree(model_labels, off, &l0);
        }
        if (same) {
          row[i] = l0;
          continue;
        }
        double w[8];
        cell_weights(f, w);
        row[i] = decide_interpolated(d, probs, nm, off, w, p.data());
      }
    }
  });
  return nullptr;
}

extern "C" mi_status *mi_channel_to_source(const mi_geometry *gm, const float *channel, const mi_geometry *gs,
                                           float *out, int threads) {
  const Mapping m = mapping(gm, gs);
  for_slices(gs->size[2], threads, [&](int64_t k) {
    for (int64_t j = 0; j < gs->size[1]; ++j) {
      float *row = out + (k * gs->size[1] + j) * gs->size[0];
      for (int64_t i = 0; i < gs->size[0]; ++i) {
        double x[3], f[3], w[8];
        int64_t i0[3], off[8];
        for (int r = 0; r < 3; ++r) x[r] = coord(m, r, i, j, k);
        if (!cell_index(gm, x, i0, f)) {
          row[i] = 0;
          continue;
        }
        cell_offsets(gm, i0, off);
        cell_weights(f, w);
        double s = 0;
        for (int q = 0; q < 8; ++q) s += w[q] * channel[off[q]];
        row[i] = (float)s;
      }
    }
  });
  return nullptr;
}
