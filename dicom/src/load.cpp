// Volume loading: headers -> spatial plan -> parallel pixel decoding.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "internal.h"
#include "medinfer/hugepages.h"
#include "parallel.h"
#include "pixels.h"

using namespace mi_dicom;

namespace {

// The top-level attributes a derived object (SEG) copies from its source:
// everything except pixel data and the bulky per-frame groups.
std::unique_ptr<DcmDataset> read_source_header(const std::string &path, std::string &err) {
  DcmFileFormat ff;
  OFCondition c = ff.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 4096, ERM_autoDetect);
  if (c.bad()) {
    err = path + ": cannot read (" + c.text() + ")";
    return nullptr;
  }
  DcmDataset *ds = ff.getAndRemoveDataset();
  delete ds->remove(DCM_PixelData);
  delete ds->remove(DCM_PerFrameFunctionalGroupsSequence);
  ds->loadAllDataIntoMemory();  // detach from the file
  return std::unique_ptr<DcmDataset>(ds);
}

// The volume is written once, page by page; with transparent huge pages the
// first-touch page faults (a large share of load time on VMs) drop 512-fold.
float *alloc_voxels(size_t n) { return static_cast<float *>(mi_alloc_huge(n * sizeof(float))); }

int thread_count(const mi_dicom_load_options *o) { return (o && o->threads > 0) ? o->threads : 2; }

mi_status *load(std::vector<std::string> paths, const mi_dicom_load_options *opts, mi_dicom_volume **out) {
  register_codecs();
  const int threads = thread_count(opts);
  std::vector<FileHeader> files(paths.size());
  std::vector<std::string> errs(paths.size());
  parallel_for(paths.size(), threads, [&](size_t i) { errs[i] = read_header_file(paths[i], files[i]); });
  for (size_t i = 0; i < paths.size(); ++i)
    if (!errs[i].empty()) return mi_error(MI_ERR_PARSE, "dicom: %s: %s", paths[i].c_str(), errs[i].c_str());
  for (size_t i = 1; i < files.size(); ++i)
    if (files[i].series_uid != files[0].series_uid)
      return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s and %s belong to different series (%s, %s)",
                      files[0].path.c_str(), files[i].path.c_str(), files[0].series_uid.c_str(),
                      files[i].series_uid.c_str());

  std::vector<Plane> planes;
  Plan plan;
  std::string why = plan_volume(files, opts && opts->allow_irregular, planes, plan);
  if (!why.empty()) {
    mi_code code = why.find("not supported") != std::string::npos ? MI_ERR_UNSUPPORTED
                   : why.find("disagree") != std::string::npos || why.find("grid") != std::string::npos ||
                           why.find("duplicate") != std::string::npos
                       ? MI_ERR_SHAPE
                       : MI_ERR_PARSE;
    return mi_error(code, "dicom: %s", why.c_str());
  }

  std::unique_ptr<mi_dicom_volume> v(new mi_dicom_volume);
  v->geometry = plan.geometry;
  v->issues = plan.issues;
  v->warnings = plan.warnings;
  const size_t plane_size = (size_t)plan.geometry.size[0] * (size_t)plan.geometry.size[1];
  const size_t total = plane_size * plan.order.size();
  v->data = alloc_voxels(total);
  if (!v->data) return mi_error(MI_ERR_NO_MEMORY, "dicom: cannot allocate %zu voxels", total);

  std::vector<std::vector<FrameTarget>> per_file(files.size());
  v->slices.resize(plan.order.size());
  for (size_t k = 0; k < plan.order.size(); ++k) {
    const Plane &p = planes[plan.order[k]];
    const FileHeader &h = files[p.file];
    per_file[p.file].push_back(FrameTarget{&p, (int64_t)k});
    mi_dicom_volume::Slice &s = v->slices[k];
    s.sop_class_uid = h.sop_class_uid;
    s.sop_instance_uid = h.sop_instance_uid;
    s.file = h.path;
    s.frame = p.frame;
    std::memcpy(s.ipp, p.ipp, sizeof s.ipp);
  }
  std::vector<std::string> decode_errs(files.size());
  parallel_for(files.size(), threads, [&](size_t f) {
    if (!per_file[f].empty()) decode_errs[f] = decode_file(files[f], per_file[f], v->data, plane_size);
  });
  for (const std::string &e : decode_errs)
    if (!e.empty()) {
      mi_code code = e.find("not supported") != std::string::npos ? MI_ERR_UNSUPPORTED : MI_ERR_PARSE;
      return mi_error(code, "dicom: %s", e.c_str());
    }
  std::string err;
  v->header = read_source_header(v->slices[0].file, err);
  if (!v->header) return mi_error(MI_ERR_IO, "dicom: %s", err.c_str());
  *out = v.release();
  return nullptr;
}

}  // namespace

mi_dicom_volume::~mi_dicom_volume() { std::free(data); }

extern "C" {

void mi_dicom_load_options_init(mi_dicom_load_options *o) {
  if (!o) return;
  std::memset(o, 0, sizeof *o);
  o->threads = 2;
}

mi_status *mi_dicom_load_files(const char *const *paths, size_t n, const mi_dicom_load_options *opts,
                               mi_dicom_volume **out) {
  if (!out) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_dicom_load_files: out is NULL");
  *out = nullptr;
  if (!paths || n == 0) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_dicom_load_files: no files given");
  std::vector<std::string> v;
  for (size_t i = 0; i < n; ++i) {
    if (!paths[i]) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_dicom_load_files: path %zu is NULL", i);
    v.emplace_back(paths[i]);
  }
  try {
    return load(std::move(v), opts, out);
  } catch (const std::bad_alloc &) {
    return mi_error(MI_ERR_NO_MEMORY, "dicom: out of memory loading %s", paths[0]);
  }
}

mi_status *mi_dicom_load_series(const mi_dicom_index *idx, size_t i, const mi_dicom_load_options *opts,
                                mi_dicom_volume **out) {
  if (!out) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_dicom_load_series: out is NULL");
  *out = nullptr;
  if (!idx || i >= mi_dicom_index_series_count(idx))
    return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_dicom_load_series: no series %zu", i);
  const std::string broken = index_series_broken(idx, i);
  if (!broken.empty()) return mi_error(MI_ERR_PARSE, "dicom: %s", broken.c_str());
  std::vector<const char *> paths;
  for (size_t j = 0; j < mi_dicom_index_series_file_count(idx, i); ++j)
    paths.push_back(mi_dicom_index_series_file(idx, i, j));
  return mi_dicom_load_files(paths.data(), paths.size(), opts, out);
}

mi_status *mi_dicom_load_dir(const char *dir, const char *series_uid, const mi_dicom_load_options *opts,
                             mi_dicom_volume **out) {
  if (!out) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_dicom_load_dir: out is NULL");
  *out = nullptr;
  mi_dicom_index *idx = nullptr;
  MI_TRY(mi_dicom_index_scan(dir, &idx));
  // Without a UID: the only series, else the only loadable one (a CT next
  // to its SEG loads the CT).
  size_t n = mi_dicom_index_series_count(idx), pick = n, loadable = 0, last_loadable = n;
  for (size_t i = 0; i < n; ++i) {
    mi_dicom_series_info info;
    mi_status_free(mi_dicom_index_series(idx, i, &info));
    if (series_uid ? std::strcmp(info.series_uid, series_uid) == 0 : n == 1) pick = i;
    if (info.loadable) ++loadable, last_loadable = i;
  }
  if (!series_uid && pick == n && loadable == 1) pick = last_loadable;
  mi_status *st = nullptr;
  if (pick == n)
    st = series_uid ? mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: no series %s", dir, series_uid)
         : n == 0   ? mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: no DICOM image series found", dir)
                    : mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: %zu series (%zu loadable) found; name one by its UID",
                             dir, n, loadable);
  else
    st = mi_dicom_load_series(idx, pick, opts, out);
  mi_dicom_index_free(idx);
  return st;
}

}  // extern "C"
