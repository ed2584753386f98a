// Back onto the source grid: trilinear interpolation of model-grid
// probabilities at every source voxel centre, then argmax / thresholds.
// Where the 8 surrounding model voxels share a label the interpolated vector
// keeps it (a convex combination of vectors whose largest entry is the same
// channel keeps that channel largest, and likewise for thresholds), so only
// voxels near label boundaries pay for the full interpolation.
#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

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

// Corner offsets and fractions of a continuous index; false outside the grid
// (beyond half a voxel from the outermost centres, as ITK).  The weights are
// computed only where needed: most voxels take their label from 8 equal ones.
struct Cell {
  int64_t off[8];
  double f[3];
  double w[8];
};

inline bool cell_at(const mi_geometry *gm, const double x[3], Cell &c) {
  int64_t i0[3], i1[3];
  for (int a = 0; a < 3; ++a) {
    const int64_t n = gm->size[a];
    if (!(x[a] >= -0.5 && x[a] <= n - 0.5)) return false;
    double v = std::min(std::max(x[a], 0.0), (double)(n - 1));
    int64_t lo = (int64_t)v; /* v >= 0: the floor, without a libm call */
    if (lo > n - 1) lo = n - 1;
    i0[a] = lo;
    i1[a] = std::min(lo + 1, n - 1);
    c.f[a] = v - lo;
  }
  const int64_t sx = 1, sy = gm->size[0], sz = gm->size[0] * gm->size[1];
  for (int q = 0; q < 8; ++q) {
    const int64_t ix = (q & 1) ? i1[0] : i0[0], iy = (q & 2) ? i1[1] : i0[1], iz = (q & 4) ? i1[2] : i0[2];
    c.off[q] = ix * sx + iy * sy + iz * sz;
  }
  return true;
}

inline void cell_weights(Cell &c) {
  const double *f = c.f;
  for (int q = 0; q < 8; ++q)
    c.w[q] = ((q & 1) ? f[0] : 1 - f[0]) * ((q & 2) ? f[1] : 1 - f[1]) * ((q & 4) ? f[2] : 1 - f[2]);
}

template <typename F>
void for_slices(int64_t slices, int threads, F body) {
  const int t = std::max(1, std::min<int>(threads > 0 ? threads : (int)std::thread::hardware_concurrency(), 64));
  std::vector<std::thread> pool;
  for (int w = 1; w < t; ++w)
    pool.emplace_back([&, w] {
      for (int64_t k = w; k < slices; k += t) body(k);
    });
  for (int64_t k = 0; k < slices; k += t) body(k);
  for (auto &th : pool) th.join();
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
    Cell c;
    for (int64_t j = 0; j < gs->size[1]; ++j) {
      uint8_t *row = out + (k * gs->size[1] + j) * gs->size[0];
      for (int64_t i = 0; i < gs->size[0]; ++i) {
        double x[3];
        for (int r = 0; r < 3; ++r) x[r] = m.a[3 * r] * i + m.a[3 * r + 1] * j + m.a[3 * r + 2] * k + m.b[r];
        if (!cell_at(gm, x, c)) {
          row[i] = 0;
          continue;
        }
        const uint8_t l0 = model_labels[c.off[0]];
        bool same = true;
        for (int q = 1; q < 8 && same; ++q) same = model_labels[c.off[q]] == l0;
        if (same) {
          row[i] = l0;
          continue;
        }
        cell_weights(c);
        for (int ch = 0; ch < C; ++ch) {
          const float *pc = probs + (int64_t)ch * nm;
          double s = 0;
          for (int q = 0; q < 8; ++q) s += c.w[q] * pc[c.off[q]];
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
    Cell c;
    for (int64_t j = 0; j < gs->size[1]; ++j) {
      float *row = out + (k * gs->size[1] + j) * gs->size[0];
      for (int64_t i = 0; i < gs->size[0]; ++i) {
        double x[3];
        for (int r = 0; r < 3; ++r) x[r] = m.a[3 * r] * i + m.a[3 * r + 1] * j + m.a[3 * r + 2] * k + m.b[r];
        if (!cell_at(gm, x, c)) {
          row[i] = 0;
          continue;
        }
        cell_weights(c);
        double s = 0;
        for (int q = 0; q < 8; ++q) s += c.w[q] * channel[c.off[q]];
        row[i] = (float)s;
      }
    }
  });
  return nullptr;
}
