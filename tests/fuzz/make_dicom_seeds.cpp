// Writes fuzz_dicom's seed inputs into a folder: tiny phantom series (8x8,
// two slices) in each transfer syntax the phantom writes, classic CT and MR
// and enhanced CT, each as fuzz_dicom reads its input (a mode byte, the
// split point, then the file or files).
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "medinfer/phantom.h"

namespace {

std::vector<uint8_t> slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<std::string> dicom_files(const std::string &dir) {
  std::vector<std::string> out;
  if (DIR *d = opendir(dir.c_str())) {
    while (dirent *e = readdir(d))
      if (std::string(e->d_name).find(".dcm") != std::string::npos) out.push_back(dir + "/" + e->d_name);
    closedir(d);
  }
  return out;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: make_dicom_seeds OUT_DIR\n");
    return 2;
  }
  const std::string out = argv[1];
  mkdir(out.c_str(), 0755);
  char tmpl[] = "/tmp/medinfer-dicom-seeds-XXXXXX";
  if (!mkdtemp(tmpl)) return 1;
  int written = 0;
  for (int ts = MI_PHANTOM_TS_EXPLICIT_LE; ts <= MI_PHANTOM_TS_JPEGLS_LOSSLESS; ts++)
    for (int kind = 0; kind < 3; kind++) { /* classic CT, classic MR, enhanced CT */
      mi_phantom_options o;
      mi_phantom_options_init(&o);
      o.size[0] = o.size[1] = 8;
      o.size[2] = 2;
      o.transfer_syntax = (mi_phantom_transfer_syntax)ts;
      o.modality = kind == 1 ? MI_PHANTOM_MR : MI_PHANTOM_CT;
      o.enhanced = kind == 2;
      o.threads = 1;
      mi_phantom *p = nullptr;
      const std::string dir = std::string(tmpl) + "/" + std::to_string(ts) + "-" + std::to_string(kind);
      mi_status *st = mi_phantom_generate(&o, &p);
      if (!st) st = mi_phantom_write_dicom(p, dir.c_str(), nullptr);
      mi_phantom_free(p);
      if (st) { /* a combination the phantom does not write */
        mi_status_free(st);
        continue;
      }
      std::vector<std::string> files = dicom_files(dir);
      std::vector<uint8_t> seed = {uint8_t(files.size() > 1), 0, 0}, first = slurp(files[0]);
      seed[1] = uint8_t(first.size() >> 8), seed[2] = uint8_t(first.size());
      for (size_t i = 0; i < files.size() && i < 2; i++) {
        std::vector<uint8_t> f = i ? slurp(files[i]) : first;
        seed.insert(seed.end(), f.begin(), f.end());
        unlink(files[i].c_str());
      }
      for (size_t i = 2; i < files.size(); i++) unlink(files[i].c_str());
      rmdir(dir.c_str());
      std::ofstream(out + "/seed-" + std::to_string(ts) + "-" + std::to_string(kind), std::ios::binary)
          .write(reinterpret_cast<const char *>(seed.data()), std::streamsize(seed.size()));
      written++;
    }
  rmdir(tmpl);
  printf("%d seeds in %s\n", written, out.c_str());
  return written ? 0 : 1;
}
