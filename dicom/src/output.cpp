// What every writer of derived objects (SEG, SR) shares: DS formatting, new
// UIDs, checks on the output path and the atomic save.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unistd.h>

#include "internal.h"

namespace fs = std::filesystem;

namespace mi_dicom {

// DS values hold at most 16 characters; use the most precision that fits.
std::string format_ds(double v) {
  char buf[64];
  if (std::fabs(v) < 1e-12) v = 0;
  for (int prec = 15; prec > 1; --prec) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strlen(buf) <= 16) break;
  }
  return buf;
}

std::string new_uid() {
  char buf[100];
  dcmGenerateUniqueIdentifier(buf, SITE_INSTANCE_UID_ROOT);
  return buf;
}

mi_status *check_output(const mi_dicom_volume *src, const std::string &out, const char *kind) {
  std::error_code ec;
  if (fs::is_directory(out, ec)) return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s is a folder, not a file name", out.c_str());
  fs::path o = fs::weakly_canonical(fs::absolute(out, ec), ec);
  for (const auto &s : src->slices) {
    std::error_code e2;
    if (fs::equivalent(fs::path(s.file), fs::path(out), e2) || fs::weakly_canonical(s.file, e2) == o)
      return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s is a source image of the %s; refusing to overwrite it",
                      out.c_str(), kind);
  }
  fs::path dir = fs::path(out).parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir, ec))
    return mi_error(MI_ERR_IO, "dicom: %s: output folder %s does not exist", out.c_str(), dir.string().c_str());
  return nullptr;
}

std::string temp_path_for(const std::string &path) {
  char suffix[64];
  static std::atomic<unsigned> counter{0};
  snprintf(suffix, sizeof suffix, ".tmp-%ld-%u", (long)getpid(), counter++);
  return path + suffix;
}

// Atomic: a reader never sees a half-written file, a failure leaves nothing.
mi_status *save_atomic(DcmFileFormat &ff, const std::string &out) {
  const std::string tmp = temp_path_for(out);
  OFCondition c;
  try {
    c = ff.saveFile(tmp.c_str(), EXS_LittleEndianExplicit);
  } catch (...) {  // DCMTK's own allocations: its stream stays open, but nothing is left on disk
    std::remove(tmp.c_str());
    throw;
  }
  if (c.bad()) {
    std::remove(tmp.c_str());
    return mi_error(MI_ERR_IO, "dicom: %s: cannot write (%s)", out.c_str(), c.text());
  }
  if (std::rename(tmp.c_str(), out.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    return mi_error(MI_ERR_IO, "dicom: %s: cannot rename the temporary file into place (%s)", out.c_str(), strerror(e));
  }
  return nullptr;
}

}  // namespace mi_dicom
