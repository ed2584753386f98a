// Helpers shared by the segmentation tests.
#ifndef MI_SEG_TEST_UTIL_H
#define MI_SEG_TEST_UTIL_H

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

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

// A fresh directory /tmp/mi-TAG-XXXXXX, removed with all it holds when the
// object goes, so that the tests leave nothing behind in /tmp.  Should
// mkdtemp fail, path() names a directory that does not exist: writing there
// fails the test.
class TempDir {
 public:
  explicit TempDir(const char *tag) : path_(std::string("/tmp/mi-") + tag + "-XXXXXX") {
    made_ = mkdtemp(&path_[0]) != nullptr;
  }
  ~TempDir() {
    std::error_code ec;
    if (made_) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  const std::string &path() const { return path_; }

 private:
  std::string path_;
  bool made_ = false;
};

#endif
