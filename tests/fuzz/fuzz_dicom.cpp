// libFuzzer target: any bytes as DICOM files, loaded as one series and
// indexed as a folder.  The first byte picks one file, or two (the rest
// split where the next two bytes say), so that inconsistent series are
// reached too.  Loaded voxels are all read (a short pixel buffer is then a
// sanitizer report).  A crash, a sanitizer report or an error without a
// message is a finding.  Building and running it: tests/fuzz/CMakeLists.txt.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

#include "medinfer/dicom.h"

namespace {

char work[] = "/tmp/medinfer-fuzz-dicom-XXXXXX"; // this process's folder for the files

void remove_work_dir() {
  unlink((std::string(work) + "/a.dcm").c_str());
  unlink((std::string(work) + "/b.dcm").c_str());
  rmdir(work);
}

const char *work_dir() {
  static const bool made = [] {
    if (!mkdtemp(work)) abort();
    atexit(remove_work_dir);
    return true;
  }();
  (void)made;
  return work;
}

void write_file(const std::string &path, const uint8_t *p, size_t n) {
  FILE *f = fopen(path.c_str(), "wb");
  if (!f) abort();
  if (n && fwrite(p, 1, n, f) != n) abort();
  fclose(f);
}

void check(mi_status *st) {
  if (st && !mi_status_message(st)[0]) abort();
  mi_status_free(st);
}

void read_all(mi_dicom_volume *v) {
  const mi_geometry *g = mi_dicom_volume_geometry(v);
  const float *d = mi_dicom_volume_data(v);
  volatile float sink = 0;
  const int64_t n = g->size[0] * g->size[1] * g->size[2];
  for (int64_t i = 0; d && i < n; i++) sink = sink + d[i];
  for (int64_t k = 0; k < g->size[2]; k++) (void)mi_dicom_volume_slice_sop_instance_uid(v, k);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  const std::string a = std::string(work_dir()) + "/a.dcm", b = std::string(work_dir()) + "/b.dcm";
  const bool two = data[0] & 1;
  const size_t body = size - 3, cut = two ? (size_t(data[1]) << 8 | data[2]) % (body + 1) : body;
  write_file(a, data + 3, cut);
  if (two) write_file(b, data + 3 + cut, body - cut);
  else unlink(b.c_str());
  const char *paths[2] = {a.c_str(), b.c_str()};
  mi_dicom_load_options opt;
  mi_dicom_load_options_init(&opt);
  opt.threads = 1;
  opt.allow_irregular = data[0] & 2;
  mi_dicom_volume *v = nullptr;
  mi_status *st = mi_dicom_load_files(paths, two ? 2 : 1, &opt, &v);
  if (!st) read_all(v);
  check(st);
  mi_dicom_volume_free(v);
  mi_dicom_index *idx = nullptr;
  st = mi_dicom_index_scan(work_dir(), &idx);
  for (size_t i = 0; !st && i < mi_dicom_index_series_count(idx); i++) {
    mi_dicom_volume *s = nullptr;
    mi_status *ls = mi_dicom_load_series(idx, i, &opt, &s);
    if (!ls) read_all(s);
    check(ls);
    mi_dicom_volume_free(s);
  }
  check(st);
  mi_dicom_index_free(idx);
  return 0;
}
