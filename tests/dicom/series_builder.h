// Test-data factory: writes small DICOM series with DCMTK, with known voxel
// values and geometry, in any orientation, order, pixel format and transfer
// syntax, so loader tests do not depend on any other module.
#ifndef MEDINFER_TESTS_SERIES_BUILDER_H
#define MEDINFER_TESTS_SERIES_BUILDER_H

#include <string>
#include <vector>

#include "medinfer/geometry.h"

namespace testdata {

struct Spec {
  int cols = 24, rows = 20, slices = 10;
  double col_spacing = 0.75, row_spacing = 0.6, slice_spacing = 2.5;
  double iop[6] = {1, 0, 0, 0, 1, 0};
  double origin[3] = {-10.25, 20.5, -33.125};
  double tilt_deg = 0;     // shifts each slice along the column direction
  bool reverse = false;    // file/instance numbering runs against the normal
  bool enhanced = false;   // one Enhanced CT file with functional groups
  std::string sop_class;   // enhanced: SOP Class UID override (MR, Legacy Converted)
  bool per_frame_rescale = false;  // enhanced: slope per frame, 1 + k % 3 times slope
  std::string transfer_syntax = "1.2.840.10008.1.2.1";
  int bits_allocated = 16, bits_stored = 12, pixel_representation = 0;
  bool garbage_high_bits = false;  // set bits above HighBit (must be ignored)
  double slope = 1, intercept = -1024;
  std::string photometric = "MONOCHROME2";
  std::string modality = "CT";
  std::string series_uid;  // generated if empty
  std::string study_uid;   // generated if empty
  unsigned seed = 1;
};

struct Series {
  std::vector<std::string> files;    // as written (shuffled names)
  std::vector<float> values;         // expected real values, slices ascending along the normal
  mi_geometry geometry{};            // expected geometry
  std::vector<std::string> sop_uids; // per ascending slice
  std::vector<int> frames;           // per ascending slice: 1-based frame (enhanced) or 0
  std::vector<std::vector<double>> positions;  // IPP per ascending slice
  std::string series_uid, study_uid;
};

// Writes the series into dir (created).  Returns "" or an error.
std::string write_series(const Spec &spec, const std::string &dir, Series &out);

}  // namespace testdata
#endif
