// Checks of a NIfTI file before ITK's reader sees it (nifti_check.h).
#include "nifti_check.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include <nifti1_io.h>
#include <znzlib.h>

namespace {

// ITK's reader takes the SVD of the sform's 3x3 part in float: below 1e18
// mm every product and sum of squares there stays finite, and the bound is
// far beyond any scanner's grid.
constexpr float kMaxSformStep = 1e18f;

bool sform_safe(const mat44 &m) {
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c)
      if (!std::isfinite(m.m[r][c]) || (c < 3 && std::fabs(m.m[r][c]) > kMaxSformStep)) return false;
  return true;
}

// Bytes of data after `offset` in `data_file`, counted up to `need` (a
// compressed file is decompressed to count them).  -1 if it cannot be opened.
int64_t data_bytes(const char *data_file, int64_t offset, int64_t need) {
  if (!nifti_is_gzfile(data_file)) {
    struct stat sb;
    if (stat(data_file, &sb) != 0) return -1;
    return sb.st_size > offset ? sb.st_size - offset : 0;
  }
  znzFile f = znzopen(data_file, "rb", 1);
  if (znz_isnull(f)) return -1;
  std::vector<char> buf(1 << 20);
  int64_t skipped = 0, got = 0;
  for (size_t n; skipped < offset && (n = znzread(buf.data(), 1, (size_t)std::min<int64_t>(offset - skipped, buf.size()), f)) > 0;)
    skipped += (int64_t)n;
  for (size_t n; skipped == offset && got < need &&
                 (n = znzread(buf.data(), 1, (size_t)std::min<int64_t>(need - got, buf.size()), f)) > 0;)
    got += (int64_t)n;
  Xznzclose(&f);
  return got;
}

using NiftiHeader = std::unique_ptr<nifti_image, void (*)(nifti_image *)>;

NiftiHeader read_header(const std::string &path) { return NiftiHeader(nifti_image_read(path.c_str(), 0), nifti_image_free); }

}  // namespace

bool nifti_check_header(const std::string &path, std::string &err) {
  NiftiHeader nim = read_header(path);
  if (nim && nim->sform_code > 0 && !sform_safe(nim->sto_xyz)) {
    err = "input volume " + path +
          ": its NIfTI sform (srow_x, srow_y, srow_z) holds NaN, infinite or absurdly large (over 1e18 mm) values";
    return false;
  }
  return true;
}

bool nifti_check_data(const std::string &path, std::string &err) {
  NiftiHeader nim = read_header(path);
  if (!nim) return true;
  int64_t need;  // what niftilib reads: nvox values of nbyper bytes
  if (nim->nvox > (size_t)INT64_MAX || __builtin_mul_overflow((int64_t)nim->nvox, (int64_t)nim->nbyper, &need)) {
    err = "input volume " + path + ": its NIfTI dimensions claim more than 2^63 bytes of voxels";
    return false;
  }
  const char *data_file = nim->iname ? nim->iname : path.c_str();
  if (nim->iname_offset < 0) {
    err = "input volume " + path + ": its NIfTI vox_offset is negative";
    return false;
  }
  const int64_t have = data_bytes(data_file, nim->iname_offset, need);
  if (have < 0) {
    err = "input volume " + path + ": cannot open its voxel data " + data_file;
    return false;
  }
  if (have < need) {
    err = "input volume " + path + " is truncated: its header needs " + std::to_string(need) +
          " bytes of voxels from byte " + std::to_string(nim->iname_offset) + " of " + data_file + ", which holds " +
          std::to_string(have);
    return false;
  }
  return true;
}
