#include "seg_check.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MI_DICOM_TEST_DIR
#error "MI_DICOM_TEST_DIR must name tests/dicom"
#endif

namespace segcheck {

int run(const std::string &cmd, std::string &output) {
  output.clear();
  FILE *p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output.append(buf, n);
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string dciodvfy_errors(const std::string &path) {
  if (access("/usr/bin/dciodvfy", X_OK) != 0) return "dciodvfy not installed (apt-get install dicom3tools)";
  std::string out;
  run("/usr/bin/dciodvfy '" + path + "'", out);
  std::istringstream in(out);
  std::string line, errors;
  while (std::getline(in, line))
    if (line.rfind("Error", 0) == 0) errors += line + "\n";
  return errors;
}

std::string pydicom_check(const mi_dicom_volume *src, const unsigned char *labels, size_t n_segments,
                          const std::string &seg_path, const std::string &work_dir) {
  if (access("/usr/bin/python3", X_OK) != 0) return "/usr/bin/python3 missing";
  const mi_geometry *g = mi_dicom_volume_geometry(src);
  const std::string raw = work_dir + "/labels.raw", manifest = work_dir + "/manifest.txt";
  {
    std::ofstream r(raw, std::ios::binary);
    r.write(reinterpret_cast<const char *>(labels), (std::streamsize)(g->size[0] * g->size[1] * g->size[2]));
    std::ofstream m(manifest);
    m << g->size[0] << " " << g->size[1] << " " << g->size[2] << " " << n_segments << "\n";
    for (int64_t k = 0; k < g->size[2]; ++k)
      m << mi_dicom_volume_slice_sop_instance_uid(src, k) << " " << mi_dicom_volume_slice_frame(src, k) << " "
        << mi_dicom_volume_slice_file(src, k) << "\n";
  }
  std::string out;
  int rc = run("/usr/bin/python3 " MI_DICOM_TEST_DIR "/check_seg.py '" + seg_path + "' '" + raw + "' '" + manifest + "'",
               out);
  return rc == 0 ? "" : out;
}

}  // namespace segcheck
