// Files: folder creation and atomic writes, with errors that name the path.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "internal.h"

mi_status *phantom_mkdirs(const std::string &dir) {
  if (dir.empty()) return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: output folder is empty");
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    partial = dir.substr(0, pos);
    if (partial.empty() || partial == "/") continue;
    if (mkdir(partial.c_str(), 0777) != 0 && errno != EEXIST)
      return mi_error(MI_ERR_IO, "%s: cannot create folder: %s", partial.c_str(), std::strerror(errno));
  }
  struct stat sb;
  if (stat(dir.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode))
    return mi_error(MI_ERR_IO, "%s: not a folder", dir.c_str());
  if (access(dir.c_str(), W_OK | X_OK) != 0)
    return mi_error(MI_ERR_IO, "%s: folder is not writable: %s", dir.c_str(), std::strerror(errno));
  return nullptr;
}

std::string phantom_temp_name(const std::string &path) {
  // Hidden, unique per process and call, in the same folder so rename() is atomic.
  static std::atomic<unsigned> counter{0};
  const size_t slash = path.rfind('/');
  const std::string folder = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  return folder + "." + base + ".tmp" + std::to_string((long)getpid()) + "-" + std::to_string(counter++);
}

mi_status *phantom_write_file_atomic(const std::string &path, const std::vector<PhantomChunk> &chunks) {
  const std::string tmp = phantom_temp_name(path);
  FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f) return mi_error(MI_ERR_IO, "%s: cannot write: %s", path.c_str(), std::strerror(errno));
  bool ok = true;
  for (const auto &c : chunks) ok = ok && std::fwrite(c.data, 1, c.size, f) == c.size;
  const int err = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    return mi_error(MI_ERR_IO, "%s: write failed: %s", path.c_str(), std::strerror(err ? err : EIO));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return mi_error(MI_ERR_IO, "%s: cannot rename into place: %s", path.c_str(), std::strerror(e));
  }
  return nullptr;
}

std::string phantom_ds(double v) {
  if (std::fabs(v) < 1e-12) return "0";  // no "-0" or 6e-17 noise from trigonometry
  char buf[40];
  for (int prec = 16; prec > 0; prec--) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strlen(buf) <= 16) return buf;
  }
  return "0";
}
