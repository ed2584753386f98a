// Where SEG frame bytes come from: a label map or one float mask per segment.
// present() decides which frames exist (only slices where a segment is set).
#ifndef MEDINFER_DICOM_SEG_FRAMES_H
#define MEDINFER_DICOM_SEG_FRAMES_H

#include <cmath>
#include <cstring>
#include <string>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "internal.h"

namespace mi_dicom {

class FrameSource {
 public:
  virtual ~FrameSource() = default;
  virtual mi_status *validate(size_t n_segments, const std::string &out) const = 0;
  virtual bool present(size_t segment, int64_t slice) const = 0;
  // A FRACTIONAL frame's pixels, 0..255.
  virtual void fill(size_t segment, int64_t slice, uint8_t *frame) const = 0;
  // A BINARY frame's pixels as bits, pixel i at bit i % 64 of words[i / 64]
  // (the bits past the frame's end zero).
  virtual void bits(size_t segment, int64_t slice, uint64_t *words) const = 0;
};

// Bit i of the result: p[i] == v, for 64 bytes.
inline uint64_t equal_bits64(const uint8_t *p, uint8_t v) {
  uint64_t m = 0;
#if defined(__SSE2__)
  const __m128i want = _mm_set1_epi8((char)v);
  for (int j = 0; j < 4; ++j) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p + 16 * j));
    m |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(x, want)) << (16 * j);
  }
#else
  for (int i = 0; i < 64; ++i) m |= (uint64_t)(p[i] == v) << i;
#endif
  return m;
}

class LabelmapFrames : public FrameSource {
 public:
  LabelmapFrames(const mi_geometry &g, const uint8_t *labels)
      : labels_(labels), plane_((size_t)g.size[0] * (size_t)g.size[1]),
        seen_((size_t)g.size[2] * 256, 0) {
    // One pass records which labels each slice holds.
    for (int64_t k = 0; k < g.size[2]; ++k) {
      const uint8_t *p = labels + (size_t)k * plane_;
      uint8_t *s = &seen_[(size_t)k * 256];
      for (size_t i = 0; i < plane_; ++i) s[p[i]] = 1;
    }
    slices_ = g.size[2];
  }
  mi_status *validate(size_t n, const std::string &out) const override {
    for (int64_t k = 0; k < slices_; ++k)
      for (size_t v = n + 1; v < 256; ++v)
        if (seen_[(size_t)k * 256 + v])
          return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: label value %zu in slice %lld but only %zu segments",
                          out.c_str(), v, (long long)k, n);
    return nullptr;
  }
  bool present(size_t s, int64_t k) const override { return s < 256 && seen_[(size_t)k * 256 + s]; }
  void fill(size_t s, int64_t k, uint8_t *f) const override {
    const uint8_t *p = labels_ + (size_t)k * plane_;
    const uint8_t want = (uint8_t)s;
    for (size_t i = 0; i < plane_; ++i) f[i] = p[i] == want ? 255 : 0;
  }
  void bits(size_t s, int64_t k, uint64_t *w) const override {
    const uint8_t *p = labels_ + (size_t)k * plane_;
    const uint8_t want = (uint8_t)s;
    const size_t full = plane_ / 64;
    for (size_t j = 0; j < full; ++j) w[j] = equal_bits64(p + 64 * j, want);
    if (plane_ % 64) {
      uint64_t m = 0;
      for (size_t i = 64 * full; i < plane_; ++i) m |= (uint64_t)(p[i] == want) << (i % 64);
      w[full] = m;
    }
  }

 private:
  const uint8_t *labels_;
  size_t plane_;
  std::vector<uint8_t> seen_;
  int64_t slices_ = 0;
};

class MaskFrames : public FrameSource {
 public:
  MaskFrames(const mi_geometry &g, const float *const *masks, bool fractional)
      : masks_(masks), plane_((size_t)g.size[0] * (size_t)g.size[1]), slices_(g.size[2]), fractional_(fractional) {}
  mi_status *validate(size_t n, const std::string &out) const override {
    for (size_t s = 0; s < n; ++s)
      if (!masks_[s]) return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: mask of segment %zu is NULL", out.c_str(), s + 1);
    n_ = n;
    return nullptr;
  }
  bool present(size_t s, int64_t k) const override {
    const float *p = masks_[s - 1] + (size_t)k * plane_;
    for (size_t i = 0; i < plane_; ++i)
      if (value(p[i])) return true;
    return false;
  }
  void fill(size_t s, int64_t k, uint8_t *f) const override {
    const float *p = masks_[s - 1] + (size_t)k * plane_;
    for (size_t i = 0; i < plane_; ++i) f[i] = value(p[i]);
  }
  void bits(size_t s, int64_t k, uint64_t *w) const override {
    const float *p = masks_[s - 1] + (size_t)k * plane_;
    std::memset(w, 0, (plane_ + 63) / 64 * sizeof *w);
    for (size_t i = 0; i < plane_; ++i) w[i / 64] |= (uint64_t)(p[i] >= 0.5f) << (i % 64);  // NaN: 0
  }

 private:
  uint8_t value(float v) const {
    if (!(v > 0)) return 0;  // also NaN
    if (!fractional_) return v >= 0.5f ? 1 : 0;
    return (uint8_t)std::lround(std::fmin(v, 1.0f) * 255.0f);
  }
  const float *const *masks_;
  size_t plane_;
  int64_t slices_;
  bool fractional_;
  mutable size_t n_ = 0;
};

}  // namespace mi_dicom
#endif
