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

}  // namespace

extern "C" mi_status *mi_labels_to_source(const mi_geometry *gm, const float *probs, const uint8_t *model_labels,
                                          const mi_decision *d, const mi_geometry *gs, uint8_t *out,
                                          int threads) {
  const Mapping m = mapping(gm, gs);
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
        for (int r = 0; r < 3; ++r) x[r] = m.a[3 * r] * i + m.a[3 * r + 1] * j + m.a[3 * r + 2] * k + m.b[r];
        if (!cell_index(gm, x, i0, f)) {
          row[i] = 0;
          continue;
        }
        if (i0[0] != cell[0] || i0[1] != cell[1] || i0[2] != cell[2]) {
          std::copy(i0, i0 + 3, cell);
          cell_offsets(gm, i0, off);
          l0 = model_labels[off[0]];
          same = true;
          for (int q = 1; q < 8 && same; ++q) same = model_labels[off[q]] == l0;
        }
        if (same) {
          row[i] = l0;
          continue;
        }
        double w[8];
        cell_weights(f, w);
        for (int ch = 0; ch < C; ++ch) {
          const float *pc = probs + (int64_t)ch * nm;
          double s = 0;
          for (int q = 0; q < 8; ++q) s += w[q] * pc[off[q]];
          p[ch] = (float)s;
        }
        row[i] = mi_decide(d, p.data(), 1);
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
        for (int r = 0; r < 3; ++r) x[r] = m.a[3 * r] * i + m.a[3 * r + 1] * j + m.a[3 * r + 2] * k + m.b[r];
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
