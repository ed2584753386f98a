// Series index: reads headers of every file under a folder (or listed in a
// DICOMDIR), groups them into series and asks the planner whether each
// series is a loadable volume.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "internal.h"
#include "parallel.h"

using namespace mi_dicom;
namespace fs = std::filesystem;

struct mi_dicom_index {
  struct Series {
    std::vector<FileHeader> files;
    std::vector<std::string> broken;  // "<path>: <reason>" of unreadable files naming this series
    std::string orientation, reason;
    int64_t slices = 0;
    bool loadable = false;
  };
  std::vector<Series> series;
  std::vector<std::pair<std::string, std::string>> skipped;  // path, reason
};

namespace {

// Files referenced by a DICOMDIR (ReferencedFileID is relative to its folder).
mi_status *dicomdir_files(const std::string &path, std::vector<std::string> &files,
                          std::vector<std::pair<std::string, std::string>> &skipped) {
  DcmDicomDir dir(path.c_str());
  if (dir.error().bad())
    return mi_error(MI_ERR_PARSE, "dicom: %s: cannot read DICOMDIR (%s)", path.c_str(), dir.error().text());
  fs::path base = fs::path(path).parent_path();
  std::vector<DcmDirectoryRecord *> stack{&dir.getRootRecord()};
  while (!stack.empty()) {
    DcmDirectoryRecord *rec = stack.back();
    stack.pop_back();
    for (unsigned long i = 0; i < rec->cardSub(); ++i) stack.push_back(rec->getSub(i));
    OFString id;
    if (rec->findAndGetOFStringArray(DCM_ReferencedFileID, id).good() && !id.empty()) {
      std::string rel = id.c_str();
      std::replace(rel.begin(), rel.end(), '\\', '/');
      fs::path p = base / rel;
      std::error_code ec;
      if (!fs::exists(p, ec)) {
        // ISO 9660 media often change the case of names.
        std::string lower = rel;
        std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
        if (fs::exists(base / lower, ec)) p = base / lower;
      }
      if (fs::exists(p, ec)) files.push_back(p.string());
      else skipped.emplace_back(p.string(), "referenced by DICOMDIR but missing");
    }
  }
  return nullptr;
}

mi_status *folder_files(const std::string &path, std::vector<std::string> &files) {
  std::error_code ec;
  fs::recursive_directory_iterator it(path, fs::directory_options::skip_permission_denied, ec), end;
  if (ec) return mi_error(MI_ERR_IO, "dicom: %s: cannot list folder (%s)", path.c_str(), ec.message().c_str());
  for (; it != end; it.increment(ec)) {
    if (ec) return mi_error(MI_ERR_IO, "dicom: %s: cannot list folder (%s)", path.c_str(), ec.message().c_str());
    if (it->is_regular_file(ec)) files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());  // deterministic file order in the index
  return nullptr;
}

void assess(mi_dicom_index::Series &s) {
  std::vector<Plane> planes;
  Plan plan;
  std::string why = plan_volume(s.files, false, planes, plan);
  for (const FileHeader &h : s.files) s.slices += (int64_t)h.planes.size();
  if (!planes.empty() && planes[0].has_iop) s.orientation = orientation_label(planes[0].iop);
  for (const Plane &p : planes)
    if (p.has_iop && orientation_label(p.iop) != s.orientation) s.orientation = "MIXED";
  if (why.empty() && !s.broken.empty()) why = s.broken[0];
  s.loadable = why.empty();
  if (s.loadable) {
    s.slices = plan.geometry.size[2];
    for (const std::string &w : plan.warnings) s.reason += (s.reason.empty() ? "" : "; ") + w;
  } else {
    s.reason = why;
  }
}

}  // namespace

std::string mi_dicom::index_series_broken(const mi_dicom_index *idx, size_t i) {
  return idx && i < idx->series.size() && !idx->series[i].broken.empty() ? idx->series[i].broken[0] : "";
}

extern "C" {

mi_status *mi_dicom_index_scan(const char *path, mi_dicom_index **out) {
  if (!out) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_dicom_index_scan: out is NULL");
  *out = nullptr;
  if (!path || !*path) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_dicom_index_scan: no path");
  register_codecs();
  std::unique_ptr<mi_dicom_index> idx(new mi_dicom_index);
  std::vector<std::string> paths;
  std::error_code ec;
  try {
    if (fs::is_directory(path, ec)) {
      MI_TRY(folder_files(path, paths));
    } else if (fs::is_regular_file(path, ec)) {
      MI_TRY(dicomdir_files(path, paths, idx->skipped));
    } else {
      return mi_error(MI_ERR_IO, "dicom: %s: no such file or folder", path);
    }
    std::vector<FileHeader> headers(paths.size());
    std::vector<std::string> errs(paths.size());
    parallel_for(paths.size(), 2, [&](size_t i) { errs[i] = read_header_file(paths[i], headers[i]); });

    std::map<std::string, size_t> by_uid;
    for (size_t i = 0; i < paths.size(); ++i) {
      if (!errs[i].empty()) idx->skipped.emplace_back(paths[i], errs[i]);
      if (!errs[i].empty() && headers[i].series_uid.empty()) continue;
      auto ins = by_uid.emplace(headers[i].series_uid, idx->series.size());
      if (ins.second) idx->series.emplace_back();
      if (errs[i].empty()) idx->series[ins.first->second].files.push_back(std::move(headers[i]));
      else idx->series[ins.first->second].broken.push_back(paths[i] + ": " + errs[i]);
    }
    // A series seen only through broken files has nothing to show.
    idx->series.erase(std::remove_if(idx->series.begin(), idx->series.end(),
                                     [](const mi_dicom_index::Series &s) { return s.files.empty(); }),
                      idx->series.end());
    parallel_for(idx->series.size(), 2, [&](size_t i) { assess(idx->series[i]); });
    std::stable_sort(idx->series.begin(), idx->series.end(), [](const auto &a, const auto &b) {
      const FileHeader &x = a.files[0], &y = b.files[0];
      return std::tie(x.patient_id, x.study_date, x.study_uid, x.series_number, x.series_uid) <
             std::tie(y.patient_id, y.study_date, y.study_uid, y.series_number, y.series_uid);
    });
  } catch (const std::bad_alloc &) {
    return mi_error(MI_ERR_NO_MEMORY, "dicom: out of memory indexing %s", path);
  } catch (const std::exception &e) {
    return mi_error(MI_ERR_IO, "dicom: %s: %s", path, e.what());
  }
  *out = idx.release();
  return nullptr;
}

void mi_dicom_index_free(mi_dicom_index *idx) { delete idx; }

size_t mi_dicom_index_series_count(const mi_dicom_index *idx) { return idx ? idx->series.size() : 0; }

mi_status *mi_dicom_index_series(const mi_dicom_index *idx, size_t i, mi_dicom_series_info *info) {
  if (!idx || !info || i >= idx->series.size())
    return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_dicom_index_series: no series %zu", i);
  const auto &s = idx->series[i];
  const FileHeader &h = s.files[0];
  info->patient_id = h.patient_id.c_str();
  info->patient_name = h.patient_name.c_str();
  info->study_uid = h.study_uid.c_str();
  info->study_date = h.study_date.c_str();
  info->study_description = h.study_description.c_str();
  info->series_uid = h.series_uid.c_str();
  info->series_description = h.series_description.c_str();
  info->modality = h.modality.c_str();
  info->series_number = h.series_number;
  info->instances = (int64_t)s.files.size();
  info->rows = h.rows;
  info->cols = h.cols;
  info->slices = s.slices;
  info->orientation = s.orientation.c_str();
  info->loadable = s.loadable;
  info->reason = s.reason.c_str();
  return nullptr;
}

size_t mi_dicom_index_series_file_count(const mi_dicom_index *idx, size_t i) {
  return idx && i < idx->series.size() ? idx->series[i].files.size() : 0;
}
const char *mi_dicom_index_series_file(const mi_dicom_index *idx, size_t i, size_t j) {
  if (!idx || i >= idx->series.size() || j >= idx->series[i].files.size()) return "";
  return idx->series[i].files[j].path.c_str();
}
size_t mi_dicom_index_skipped_count(const mi_dicom_index *idx) { return idx ? idx->skipped.size() : 0; }
const char *mi_dicom_index_skipped_path(const mi_dicom_index *idx, size_t i) {
  return idx && i < idx->skipped.size() ? idx->skipped[i].first.c_str() : "";
}
const char *mi_dicom_index_skipped_reason(const mi_dicom_index *idx, size_t i) {
  return idx && i < idx->skipped.size() ? idx->skipped[i].second.c_str() : "";
}

}  // extern "C"
