// Decodes a file's pixel data and writes real values (rescaled) into the slots
// of the volume its frames were assigned to.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

#include <cstring>

#include "pixels.h"

namespace mi_dicom {
namespace {

template <typename T>
void convert(const T *src, size_t n, const FileHeader &h, const Plane &p, float *dst) {
  const float slope = (float)p.slope, icpt = (float)p.intercept;
  const int bits = h.bits_stored, alloc = h.bits_allocated;
  if (bits == alloc) {
    if (h.pixel_representation) {
      typedef typename std::make_signed<T>::type S;
      const S *s = reinterpret_cast<const S *>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = (float)s[i] * slope + icpt;
    } else {
      for (size_t i = 0; i < n; ++i) dst[i] = (float)src[i] * slope + icpt;
    }
    return;
  }
  // BitsStored < BitsAllocated: bits above HighBit are not part of the value
  // (they may hold overlays or garbage); sign-extend from the stored width.
  const uint32_t mask = (uint32_t)((1ull << bits) - 1);
  const int32_t sign = (int32_t)(1u << (bits - 1));
  for (size_t i = 0; i < n; ++i) {
    int32_t v = (int32_t)((uint32_t)src[i] & mask);
    if (h.pixel_representation) v = (v ^ sign) - sign;
    dst[i] = (float)v * slope + icpt;
  }
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
  if ((size_t)el->getLength() < need)
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
