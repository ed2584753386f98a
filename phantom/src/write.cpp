// Public writers: DICOM series, ground truth, or both.
#include "internal.h"

mi_status *phantom_write_classic(const mi_phantom *p, const std::string &dir, int64_t *written);
mi_status *phantom_write_enhanced(const mi_phantom *p, const std::string &dir, int64_t *written);
mi_status *phantom_write_truth_files(const mi_phantom *p, const std::string &dir);

static mi_status *check(const mi_phantom *p, const char *dir) {
  if (!p || !p->values || !p->labels) return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: no phantom to write");
  if (!dir || !*dir) return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: output folder is empty");
  return nullptr;
}

extern "C" mi_status *mi_phantom_write_dicom(const mi_phantom *p, const char *dir, int64_t *written_count) {
  MI_TRY(check(p, dir));
  if (written_count) *written_count = 0;
  MI_TRY(phantom_mkdirs(dir));
  try {
    return p->options.enhanced ? phantom_write_enhanced(p, dir, written_count)
                               : phantom_write_classic(p, dir, written_count);
  } catch (const std::bad_alloc &) {
    return mi_error(MI_ERR_NO_MEMORY, "%s: out of memory while writing the DICOM series", dir);
  }
}

extern "C" mi_status *mi_phantom_write_truth(const mi_phantom *p, const char *dir) {
  MI_TRY(check(p, dir));
  MI_TRY(phantom_mkdirs(dir));
  try {
    return phantom_write_truth_files(p, dir);
  } catch (const std::bad_alloc &) {
    return mi_error(MI_ERR_NO_MEMORY, "%s: out of memory while writing the ground truth", dir);
  }
}

extern "C" mi_status *mi_phantom_write_study(const mi_phantom *p, const char *out_dir) {
  MI_TRY(check(p, out_dir));
  const std::string out = out_dir;
  MI_TRY(mi_phantom_write_dicom(p, (out + "/dicom").c_str(), nullptr));
  return mi_phantom_write_truth(p, (out + "/truth").c_str());
}
