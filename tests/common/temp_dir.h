// The tests' scratch directories: one helper for every test suite.
#ifndef MI_TEST_TEMP_DIR_H
#define MI_TEST_TEMP_DIR_H

#include <stdlib.h>

#include <filesystem>
#include <string>

// A fresh directory TMPDIR/mi-TAG-XXXXXX, removed with all it holds when the
// object goes (a failed assertion included), so that the tests leave nothing
// behind.  Should mkdtemp fail, path() names a directory that does not
// exist: writing there fails the test.
class TempDir {
 public:
  explicit TempDir(const std::string &tag)
      : path_((std::filesystem::temp_directory_path() / ("mi-" + tag + "-XXXXXX")).string()) {
    made_ = mkdtemp(&path_[0]) != nullptr;
  }
  ~TempDir() {
    std::error_code ec;
    if (made_) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  const std::string &path() const { return path_; }

 private:
  std::string path_;
  bool made_ = false;
};

#endif
