// Pixel decoding for one file (internal).
#ifndef MEDINFER_DICOM_PIXELS_H
#define MEDINFER_DICOM_PIXELS_H

#include "internal.h"

namespace mi_dicom {

struct FrameTarget {
  const Plane *plane;  // which frame of the file
  int64_t slice;       // where it goes in the volume
};

// Reads h.path in full, decompresses if needed and writes each target frame
// as float into volume + slice * plane_size.  Returns "" or "<file>: reason".
std::string decode_file(const FileHeader &h, const std::vector<FrameTarget> &targets, float *volume,
                        size_t plane_size);

}  // namespace mi_dicom
#endif
