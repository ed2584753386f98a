// A BINARY SEG's Pixel Data, packed as DCMTK writes the file.
//
// BINARY frames are one continuous bit stream (PS3.5 8.1.1), pixel i of the
// stream at bit i % 8 of byte i / 8.  dcmseg 3.6.7 misaligns frames after the
// first when rows*columns is not a multiple of 8, packs a frame a pixel at a
// time, keeps an unpacked copy of each, and encodes Pixel Data through two
// whole-length buffers (on a 512x512x300 CT, 1577 frames: 52 MB each, written
// once).  So the writer hands dcmseg one-pixel frames and gives the encoded
// Pixel Data element a stream instead of a value (DcmElement::
// createValueFromTempFile): DCMTK reads it block by block while it writes the
// file, and each block (about 1 MB, or 8 frames where that is more) is packed
// from the frame sources' bits on demand.
#ifndef MEDINFER_DICOM_SEG_BITS_H
#define MEDINFER_DICOM_SEG_BITS_H

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcerror.h>
#include <dcmtk/dcmdata/dcistrma.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "seg_frames.h"

namespace mi_dicom {

// One SEG frame: segment s at source slice k (k < 0: an empty segment's blank frame).
struct FrameRef {
  size_t s;
  int64_t k;
};

// Pixel Data's length for n frames of `plane` pixels: the bits rounded up to
// bytes, then to an even length.
size_t binary_pixel_data_bytes(size_t n_frames, size_t plane);

// A new factory of streams over the frames' packed bits (owned by the caller
// until createValueFromTempFile succeeds, which then owns it).  frames and
// order are read while the file is written: they must outlive the write.  A
// failure while packing (out of memory, a frame source that throws) is the
// stream's status, and fails DCMTK's write instead of unwinding through it.
DcmInputStreamFactory *binary_pixel_data_stream(const FrameSource &frames, const std::vector<FrameRef> &order,
                                                size_t plane);

}  // namespace mi_dicom

#endif
