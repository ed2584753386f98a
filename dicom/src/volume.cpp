// Accessors of mi_dicom_volume.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

#include <cstring>
#include <mutex>

#include "internal.h"

namespace {
std::mutex attribute_mutex;  // guards the lazily filled attribute cache

const mi_dicom_volume::Slice *slice(const mi_dicom_volume *v, int64_t k) {
  if (!v || k < 0 || (size_t)k >= v->slices.size()) return nullptr;
  return &v->slices[(size_t)k];
}
}  // namespace

extern "C" {

void mi_dicom_volume_free(mi_dicom_volume *v) { delete v; }
const mi_geometry *mi_dicom_volume_geometry(const mi_dicom_volume *v) { return v ? &v->geometry : nullptr; }
const float *mi_dicom_volume_data(const mi_dicom_volume *v) { return v ? v->data : nullptr; }
void mi_dicom_volume_release_data(mi_dicom_volume *v) {
  if (!v) return;
  std::free(v->data);
  v->data = nullptr;
}
unsigned mi_dicom_volume_issues(const mi_dicom_volume *v) { return v ? v->issues : 0; }
size_t mi_dicom_volume_warning_count(const mi_dicom_volume *v) { return v ? v->warnings.size() : 0; }
const char *mi_dicom_volume_warning(const mi_dicom_volume *v, size_t i) {
  return v && i < v->warnings.size() ? v->warnings[i].c_str() : "";
}
const char *mi_dicom_volume_slice_sop_class_uid(const mi_dicom_volume *v, int64_t k) {
  const auto *s = slice(v, k);
  return s ? s->sop_class_uid.c_str() : "";
}
const char *mi_dicom_volume_slice_sop_instance_uid(const mi_dicom_volume *v, int64_t k) {
  const auto *s = slice(v, k);
  return s ? s->sop_instance_uid.c_str() : "";
}
int32_t mi_dicom_volume_slice_frame(const mi_dicom_volume *v, int64_t k) {
  const auto *s = slice(v, k);
  return s ? s->frame : 0;
}
const char *mi_dicom_volume_slice_file(const mi_dicom_volume *v, int64_t k) {
  const auto *s = slice(v, k);
  return s ? s->file.c_str() : "";
}
void mi_dicom_volume_slice_position(const mi_dicom_volume *v, int64_t k, double ipp[3]) {
  const auto *s = slice(v, k);
  for (int i = 0; i < 3; ++i) ipp[i] = s ? s->ipp[i] : 0.0;
}

const char *mi_dicom_volume_attribute(const mi_dicom_volume *v, const char *keyword) {
  if (!v || !keyword || !v->header) return "";
  std::lock_guard<std::mutex> lock(attribute_mutex);
  auto &cache = const_cast<mi_dicom_volume *>(v)->attribute_cache;
  auto it = cache.find(keyword);
  if (it != cache.end()) return it->second.c_str();
  std::string value;
  DcmTag tag;
  if (DcmTag::findTagFromName(keyword, tag).good()) {
    OFString s;
    if (v->header->findAndGetOFStringArray(tag, s).good()) value = s.c_str();
  }
  return cache.emplace(keyword, value).first->second.c_str();
}

}  // extern "C"
