// DICOM module benchmark (not a timed test): indexing 2,000 files, loading a
// 512x512x300 CT series (uncompressed, warm cache) and writing a 7-segment
// BINARY SEG for it.  Prints the median of several runs of each.
//
//   build-dicom/dicom/medinfer_dicom_bench [WORK_DIR] [RUNS]
//
// WORK_DIR (default: a fresh folder under /tmp, removed afterwards) receives
// ~1.1 GB of phantom DICOM files.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "medinfer/dicom.h"
#include "medinfer/phantom.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

void check(mi_status *st, const char *what) {
  if (!st) return;
  fprintf(stderr, "dicom_bench: %s: %s\n", what, mi_status_message(st));
  mi_status_free(st);
  exit(1);
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

mi_phantom *phantom(int64_t c, int64_t r, int64_t s, uint64_t seed) {
  mi_phantom_options o;
  mi_phantom_options_init(&o);
  o.size[0] = c, o.size[1] = r, o.size[2] = s;
  o.seed = seed;
  mi_phantom *p = nullptr;
  check(mi_phantom_generate(&o, &p), "generating a phantom");
  return p;
}

}  // namespace

int main(int argc, char **argv) {
  const bool own_dir = argc < 2;
  std::string work = own_dir ? (fs::temp_directory_path() / "medinfer-dicom-bench").string() : argv[1];
  const int runs = argc > 2 ? std::max(1, atoi(argv[2])) : 5;
  fs::remove_all(work);
  fs::create_directories(work);

  // Data: the 512x512x300 series, plus 1,700 more files for the index.
  printf("preparing data in %s ...\n", work.c_str());
  mi_phantom *big = phantom(512, 512, 300, 1);
  check(mi_phantom_write_dicom(big, (work + "/index/big").c_str(), nullptr), "writing the 512x512x300 series");
  for (int s = 0; s < 5; ++s) {
    mi_phantom *p = phantom(256, 256, 340, 100 + s);
    check(mi_phantom_write_dicom(p, (work + "/index/s" + std::to_string(s)).c_str(), nullptr), "writing a series");
    mi_phantom_free(p);
  }

  std::vector<double> t_index, t_load, t_seg;
  size_t files = 0;
  for (int r = 0; r < runs; ++r) {
    mi_dicom_index *idx = nullptr;
    auto t0 = Clock::now();
    check(mi_dicom_index_scan((work + "/index").c_str(), &idx), "indexing");
    t_index.push_back(seconds_since(t0));
    files = 0;
    for (size_t i = 0; i < mi_dicom_index_series_count(idx); ++i) files += mi_dicom_index_series_file_count(idx, i);
    mi_dicom_index_free(idx);
  }

  const std::string series = work + "/index/big";
  mi_dicom_volume *vol = nullptr;
  check(mi_dicom_load_dir(series.c_str(), nullptr, nullptr, &vol), "warm-up load");
  mi_dicom_volume_free(vol);
  for (int r = 0; r < runs; ++r) {
    auto t0 = Clock::now();
    check(mi_dicom_load_dir(series.c_str(), nullptr, nullptr, &vol), "loading");
    t_load.push_back(seconds_since(t0));
    if (r + 1 < runs) mi_dicom_volume_free(vol);
  }

  // 7 segments: the phantom's first seven organs (others become background).
  const size_t n = (size_t)(512 * 512 * 300);
  std::vector<uint8_t> labels(big->labels, big->labels + n);
  for (uint8_t &l : labels)
    if (l > 7) l = 0;
  std::vector<mi_seg_segment> segs(7);
  for (int i = 0; i < 7; ++i) {
    const mi_phantom_label &l = big->label_table[i];
    segs[i] = mi_seg_segment{l.name, nullptr, l.category_scheme, l.category_code, l.category_meaning, l.type_scheme,
                             l.type_code, l.type_meaning, MI_SEG_ALGO_AUTOMATIC, "medinfer-bench",
                             {l.rgb[0], l.rgb[1], l.rgb[2]}};
  }
  const std::string seg = work + "/seg.dcm";
  for (int r = 0; r < runs; ++r) {
    auto t0 = Clock::now();
    check(mi_dicom_write_seg_labelmap(vol, labels.data(), segs.data(), 7, nullptr, seg.c_str()), "writing the SEG");
    t_seg.push_back(seconds_since(t0));
  }
  printf("index   %zu files            median %.3f s (min %.3f, %d runs)\n", files, median(t_index),
         *std::min_element(t_index.begin(), t_index.end()), runs);
  printf("load    512x512x300 CT        median %.3f s (min %.3f)\n", median(t_load),
         *std::min_element(t_load.begin(), t_load.end()));
  printf("SEG     7 segments BINARY     median %.3f s (min %.3f), %.1f MB\n", median(t_seg),
         *std::min_element(t_seg.begin(), t_seg.end()), fs::file_size(seg) / 1e6);
  mi_dicom_volume_free(vol);
  mi_phantom_free(big);
  if (own_dir) fs::remove_all(work);
  return 0;
}
