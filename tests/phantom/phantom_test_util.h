// Helpers for the phantom tests: generation with defaults, reading DICOM back
// with DCMTK (scratch folders: TempDir, tests/common/temp_dir.h).
#ifndef MI_PHANTOM_TEST_UTIL_H
#define MI_PHANTOM_TEST_UTIL_H

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

#include <memory>
#include <string>
#include <vector>

#include "../common/temp_dir.h"
#include "medinfer/phantom.h"

struct PhantomDeleter {
  void operator()(mi_phantom *p) const { mi_phantom_free(p); }
};
using PhantomPtr = std::unique_ptr<mi_phantom, PhantomDeleter>;

// Small, fast options: 64x56x24 voxels.
mi_phantom_options small_options(uint64_t seed = 7);
// Generate or fail the current test (returns null after ADD_FAILURE).
PhantomPtr make_phantom(const mi_phantom_options &o);


std::vector<std::string> list_dir(const std::string &dir);  // sorted names, no "." or ".."

// Read a file fully (decompressing pixel data to little-endian explicit).
struct DicomFile {
  DcmFileFormat ff;
  std::string path;
  bool ok = false;
  DcmDataset *ds() { return ff.getDataset(); }
  std::string str(const DcmTagKey &tag, unsigned long pos = 0);
  std::vector<double> ds_values(const DcmTagKey &tag);  // all DS values, in item ds or nested item
  std::string transfer_syntax();
  std::vector<uint16_t> pixels();  // decoded
};
std::unique_ptr<DicomFile> read_dicom(const std::string &path);
std::vector<double> ds_values_of(DcmItem *item, const DcmTagKey &tag);

// dciodvfy output lines that contain "Error" (deflated files are first inflated).
std::vector<std::string> dciodvfy_errors(const std::string &path);

#endif
