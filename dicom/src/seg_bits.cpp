// Streams of a BINARY SEG's packed frames (seg_bits.h).
#include "seg_bits.h"

#include <algorithm>
#include <cstring>
#include <memory>

namespace mi_dicom {
namespace {

// Appends frames' bits to a zeroed buffer, from its first bit.
class BitWriter {
 public:
  BitWriter(Uint8 *out, size_t bytes) : out_(out), bytes_(bytes) {}
  // The first n bits of words (the rest zero) at the stream's end, ORed into
  // zeroed bytes; false past the buffer's end.
  bool append(const uint64_t *words, size_t n) {
    if (n > bytes_ * 8 - bits_) return false;
    for (size_t j = 0; 64 * j < n; ++j) {
      const size_t nb = std::min<size_t>(64, n - 64 * j);
      const uint64_t w = words[j];
      const unsigned shift = (unsigned)(bits_ % 8);
      Uint8 *b = out_ + bits_ / 8;
      const size_t touched = (shift + nb + 7) / 8;  // bytes holding these bits: up to 9
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
      if (shift == 0 && nb == 64) {
        std::memcpy(b, &w, 8);
        bits_ += 64;
        continue;
      }
#endif
      for (size_t i = 0; i < touched && i < 8; ++i) b[i] |= (Uint8)((w << shift) >> (8 * i));
      if (touched > 8) b[8] |= (Uint8)(w >> (64 - shift));
      bits_ += nb;
    }
    return true;
  }

 private:
  Uint8 *out_;
  size_t bytes_, bits_ = 0;
};

// What a stream packs: frames and order outlive the write (seg_bits.h).
struct Frames {
  const FrameSource &source;
  const std::vector<FrameRef> &order;
  size_t plane;
};

// The stream is cut into chunks of whole frames that start on a byte: a
// multiple of the frames after which the bit offset is a whole byte again
// (8 / gcd(plane, 8) of them), about 1 MB each.
class FramesProducer : public DcmProducer {
 public:
  explicit FramesProducer(const Frames &f)
      : frames_(f.source), order_(f.order), plane_(f.plane), len_(binary_pixel_data_bytes(f.order.size(), f.plane)),
        words_((f.plane + 63) / 64) {
    const size_t plane = f.plane;
    const size_t align = plane % 8 == 0 ? 1 : plane % 4 == 0 ? 2 : plane % 2 == 0 ? 4 : 8;
    chunk_frames_ = std::max<size_t>(1, (size_t(8) << 20) / std::max<size_t>(plane, 1) / align) * align;
    chunk_bytes_ = chunk_frames_ * plane / 8;
  }

  OFBool good() const override { return status_.good(); }
  OFCondition status() const override { return status_; }
  OFBool eos() override { return pos_ >= len_; }
  offile_off_t avail() override { return (offile_off_t)(len_ - pos_); }

  // DCMTK calls this inside saveFile, which does not unwind: a failure
  // (out of memory, a frame source that throws) becomes the stream's status,
  // the write fails and the temporary file is removed.
  offile_off_t read(void *buf, offile_off_t buflen) override {
    Uint8 *out = static_cast<Uint8 *>(buf);
    size_t done = 0;
    while (done < (size_t)buflen && pos_ < len_ && status_.good()) {
      const size_t c = pos_ / chunk_bytes_;
      if (c != chunk_) {
        try {
          pack(c);
        } catch (...) {
          status_ = makeOFCondition(OFM_dcmdata, 2, OF_error, "packing SEG frames failed");
        }
        if (status_.bad()) break;
      }
      const size_t off = pos_ - c * chunk_bytes_;
      const size_t n = std::min({(size_t)buflen - done, len_ - pos_, chunk_bytes_ - off});
      std::memcpy(out + done, buf_.data() + off, n);
      done += n;
      pos_ += n;
    }
    return (offile_off_t)done;
  }

  offile_off_t skip(offile_off_t skiplen) override {
    const size_t n = std::min((size_t)std::max<offile_off_t>(skiplen, 0), len_ - pos_);
    pos_ += n;
    return (offile_off_t)n;
  }

  void putback(offile_off_t num) override { pos_ -= std::min((size_t)std::max<offile_off_t>(num, 0), pos_); }

 private:
  // Chunk c's bytes (the last one's pad byte included), zero past the frames.
  void pack(size_t c) {
    const size_t begin = std::min(order_.size(), c * chunk_frames_),
                 end = std::min(order_.size(), (c + 1) * chunk_frames_);
    // Whole chunks but the last, which may hold one frame of 8 (odd frame sizes).
    buf_.assign(std::min(chunk_bytes_, ((end - begin) * plane_ + 7) / 8) + 1, 0);
    BitWriter w(buf_.data(), buf_.size());
    for (size_t f = begin; f < end; ++f) {
      const FrameRef &r = order_[f];
      if (r.k >= 0) frames_.bits(r.s, r.k, words_.data());
      else std::fill(words_.begin(), words_.end(), 0);
      if (!w.append(words_.data(), plane_)) {
        status_ = makeOFCondition(OFM_dcmdata, 1, OF_error, "SEG frames overrun their Pixel Data chunk");
        return;
      }
    }
    chunk_ = c;
  }

  const FrameSource &frames_;
  const std::vector<FrameRef> &order_;
  const size_t plane_, len_;
  size_t chunk_frames_ = 1, chunk_bytes_ = 1, chunk_ = SIZE_MAX, pos_ = 0;
  std::vector<Uint8> buf_;
  std::vector<uint64_t> words_;
  OFCondition status_;
};

class FramesStreamFactory;

class FramesStream : public DcmInputStream {
 public:
  explicit FramesStream(const Frames &f) : DcmInputStream(&producer_), producer_(f), frames_(f) {}
  DcmInputStreamFactory *newFactory() const override;

 private:
  FramesProducer producer_;
  const Frames frames_;
};

class FramesStreamFactory : public DcmInputStreamFactory {
 public:
  explicit FramesStreamFactory(const Frames &f) : frames_(f) {}
  // NULL when out of memory, which DCMTK reports as an invalid stream.
  DcmInputStream *create() const override {
    try {
      return new FramesStream(frames_);
    } catch (...) {
      return nullptr;
    }
  }
  DcmInputStreamFactory *clone() const override { return new FramesStreamFactory(*this); }
  // Not a file: the nearest of the kinds DCMTK names, which it does not consult.
  DcmInputStreamFactoryType ident() const override { return DFT_DcmInputTempFileStreamFactory; }

 private:
  const Frames frames_;
};

DcmInputStreamFactory *FramesStream::newFactory() const { return new FramesStreamFactory(frames_); }

}  // namespace

size_t binary_pixel_data_bytes(size_t n_frames, size_t plane) {
  const size_t bytes = (n_frames * plane + 7) / 8;
  return bytes + (bytes & 1);
}

DcmInputStreamFactory *binary_pixel_data_stream(const FrameSource &frames, const std::vector<FrameRef> &order,
                                                size_t plane) {
  return new FramesStreamFactory(Frames{frames, order, plane});
}

}  // namespace mi_dicom
