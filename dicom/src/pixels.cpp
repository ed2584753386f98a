// Decodes a file's pixel data and writes real values (rescaled) into the slots
// of the volume its frames were assigned to.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dctk.h>

#include <cstring>

#include "pixels.h"

namespace mi_dicom {
namespace {

// Branch-free inner loops so the compiler vectorizes them: this conversion
// touches every voxel of the volume.
template <typename T>
void convert(const T *__restrict src, size_t n, const FileHeader &h, const Plane &p, float *__restrict dst) {
  const float slope = (float)p.slope, icpt = (float)p.intercept;
  const int bits = h.bits_stored;
  if (h.pixel_representation) {
    // Sign-extend from BitsStored: shift the sign bit to bit 31 and back.
    // Bits above HighBit (overlays, garbage) fall off the top.
    const int shift = 32 - bits;
    for (size_t i = 0; i < n; ++i) {
      const int32_t v = (int32_t)((uint32_t)src[i] << shift) >> shift;
      dst[i] = (float)v * slope + icpt;
    }
  } else {
    const uint32_t mask = bits >= 32 ? 0xffffffffu : (uint32_t)((1ull << bits) - 1);
    if (bits >= 32) {
      for (size_t i = 0; i < n; ++i) dst[i] = (float)((uint32_t)src[i]) * slope + icpt;
    } else {
      for (size_t i = 0; i < n; ++i) dst[i] = (float)(int32_t)((uint32_t)src[i] & mask) * slope + icpt;
    }
  }
}

// DCMTK's JPEG decoder (DJCodecDecoder::scanJpegDataForBitDepth: Debian's
// 3.6.7, and a later snapshot of its source) walks a frame's marker segments
// to its SOF for the bit depth and never steps past a TEM marker (FF01): a
// fragment with one before its SOF hangs the load.  The same walk, so that
// such a file is refused instead; true where it would reach a TEM.
bool jpeg_walk_stalls(const uint8_t *d, size_t n) {
  for (size_t off = 0; d && off + 4 < n;) {
    if (d[off] != 0xff) return false; /* DCMTK: an invalid marker, it stops */
    const uint8_t m = d[off + 1];
    const size_t seg = ((size_t)d[off + 2] << 8 | d[off + 3]) + 2; /* a segment's length field, plus the marker */
    if (m == 0x01) return true;
    if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) return false; /* SOFn: found */
    if (m == 0xff) off += 1;                                                         /* fill byte */
    else if ((m >= 0xd0 && m <= 0xd9) || (m > 0x02 && m <= 0xbf)) off += 2;          /* RSTm, SOI, EOI, RES */
    else if (m == 0xc4 || m == 0xc8 || m == 0xcc || m >= 0xda) off += seg;           /* DHT.., SOS.., APPn, COM */
    else return false;                                                               /* FF00, FF02: invalid */
  }
  return false;
}

// Whether a JPEG (process 1 to 29) pixel sequence holds a fragment on which
// DCMTK's decoder would not return (jpeg_walk_stalls).
bool jpeg_fragments_stall(DcmDataset *ds, E_TransferSyntax xs) {
  if (xs < EXS_JPEGProcess1 || xs > EXS_JPEGProcess14SV1) return false;
  DcmElement *el = nullptr;
  DcmPixelSequence *seq = nullptr;
  if (ds->findAndGetElement(DCM_PixelData, el).bad() || !el ||
      static_cast<DcmPixelData *>(el)->getEncapsulatedRepresentation(xs, nullptr, seq).bad() || !seq)
    return false;
  for (unsigned long i = 1; i < seq->card(); ++i) { /* item 0: the offset table */
    DcmPixelItem *item = nullptr;
    Uint8 *d = nullptr;
    if (seq->getItem(item, i).good() && item && item->getUint8Array(d).good() && jpeg_walk_stalls(d, item->getLength()))
      return true;
  }
  return false;
}

}  // namespace

std::string decode_file(const FileHeader &h, const std::vector<FrameTarget> &targets, float *volume, size_t plane_size) {
  DcmFileFormat ff;
  OFCondition c = ff.loadFile(h.path.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect);
  if (c.bad()) return h.path + ": cannot read (" + c.text() + ")";
  DcmDataset *ds = ff.getDataset();
  std::string bad = unsupported_transfer_syntax(h.transfer_syntax);
  if (!bad.empty()) return h.path + ": " + bad;
  DcmXfer xfer(ds->getOriginalXfer());
  if (xfer.isEncapsulated()) {
    if (jpeg_fragments_stall(ds, xfer.getXfer()))
      return h.path + ": corrupt JPEG data (a TEM marker before the frame header, on which DCMTK's decoder "
                      "would not return)";
    c = ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
    if (c.bad() || !ds->canWriteXfer(EXS_LittleEndianExplicit))
      return h.path + ": cannot decode " + xfer.getXferName() + " pixel data (" + c.text() + ")";
  }
  DcmElement *el = nullptr;
  if (ds->findAndGetElement(DCM_PixelData, el).bad() || !el) return h.path + ": no Pixel Data";
  const size_t bytes_per = (size_t)h.bits_allocated / 8;
  const size_t need = plane_size * bytes_per * (size_t)h.frames;
  const void *raw = nullptr;
  if (h.bits_allocated == 8) {
    Uint8 *p8 = nullptr;
    if (el->getUint8Array(p8).bad() || !p8) {
      Uint16 *p16 = nullptr;  // 8-bit data read as OW (implicit VR): same bytes
      if (el->getUint16Array(p16).bad()) p16 = nullptr;
      raw = p16;
    } else {
      raw = p8;
    }
  } else if (h.bits_allocated == 16) {
    Uint16 *p16 = nullptr;
    if (el->getUint16Array(p16).good()) raw = p16;
  } else {
    Uint8 *p8 = nullptr;  // 32-bit: OB/OW storage, reinterpret as 32-bit words
    if (el->getUint8Array(p8).good()) raw = p8;
    else {
      Uint16 *p16 = nullptr;
      if (el->getUint16Array(p16).good()) raw = p16;
    }
  }
  if (!raw) return h.path + ": Pixel Data cannot be read (" + ff.error().text() + ")";
  // Short data is truncated; a row or more to spare means Rows, Columns or
  // NumberOfFrames do not describe it (less is padding, which readers trim).
  const size_t row_bytes = (size_t)h.cols * bytes_per;
  if ((size_t)el->getLength() < need || (size_t)el->getLength() >= need + std::max<size_t>(row_bytes, 2))
    return h.path + ": Pixel Data has " + std::to_string(el->getLength()) + " bytes, " + std::to_string(need) +
           " expected (truncated or inconsistent header)";
  for (const FrameTarget &t : targets) {
    const int fi = t.plane->frame > 0 ? t.plane->frame - 1 : 0;
    float *dst = volume + (size_t)t.slice * plane_size;
    const char *src = static_cast<const char *>(raw) + (size_t)fi * plane_size * bytes_per;
    switch (h.bits_allocated) {
      case 8: convert(reinterpret_cast<const uint8_t *>(src), plane_size, h, *t.plane, dst); break;
      case 16: convert(reinterpret_cast<const uint16_t *>(src), plane_size, h, *t.plane, dst); break;
      default: convert(reinterpret_cast<const uint32_t *>(src), plane_size, h, *t.plane, dst); break;
    }
  }
  return "";
}

}  // namespace mi_dicom
