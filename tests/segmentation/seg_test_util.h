// Helpers shared by the segmentation tests.
#ifndef MI_SEG_TEST_UTIL_H
#define MI_SEG_TEST_UTIL_H

#include <cstdint>
#include <vector>

#include "../common/temp_dir.h"
#include "medinfer/geometry.h"

// Voxels of `a` whose 26-neighbourhood holds a single value (interior of a
// region): where resampling must reproduce the value exactly.
inline std::vector<char> interior_mask(const mi_geometry &g, const std::vector<uint8_t> &a) {
  const int64_t nx = g.size[0], ny = g.size[1], nz = g.size[2];
  std::vector<char> m(a.size(), 0);
  for (int64_t z = 1; z + 1 < nz; ++z)
    for (int64_t y = 1; y + 1 < ny; ++y)
      for (int64_t x = 1; x + 1 < nx; ++x) {
        const uint8_t v = a[(size_t)((z * ny + y) * nx + x)];
        bool same = true;
        for (int dz = -1; dz <= 1 && same; ++dz)
          for (int dy = -1; dy <= 1 && same; ++dy)
            for (int dx = -1; dx <= 1 && same; ++dx) same = a[(size_t)(((z + dz) * ny + y + dy) * nx + x + dx)] == v;
        m[(size_t)((z * ny + y) * nx + x)] = same;
      }
  return m;
}

#endif
