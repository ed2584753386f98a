// The BINARY Pixel Data stream (dicom/src/seg_bits.h) against packing bit by
// bit, over frame sizes of every byte alignment and enough frames to cross
// its chunks, read as DCMTK reads it: in blocks, skipping, putting back.
#include <gtest/gtest.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <new>
#include <vector>

#include "../common/temp_dir.h"
#include "internal.h"
#include "seg_bits.h"

namespace {

using mi_dicom::FrameRef;

// Pixel i of slice k is set by a hash of (k, i); `present` is not consulted by the stream.
class HashFrames : public mi_dicom::FrameSource {
 public:
  explicit HashFrames(size_t plane) : plane_(plane) {}
  mi_status *validate(size_t, const std::string &) const override { return nullptr; }
  bool present(size_t, int64_t) const override { return true; }
  void fill(size_t, int64_t, uint8_t *) const override {}
  void bits(size_t s, int64_t k, uint64_t *words) const override {
    std::fill(words, words + (plane_ + 63) / 64, 0);
    for (size_t i = 0; i < plane_; ++i)
      if (pixel(s, k, i)) words[i / 64] |= uint64_t(1) << (i % 64);
  }
  static bool pixel(size_t s, int64_t k, size_t i) {
    uint64_t h = (uint64_t)k * 0x9E3779B97F4A7C15ull ^ (i + 1) * 0xC2B2AE3D27D4EB4Full ^ s;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return (h >> 40) & 1;
  }

 private:
  size_t plane_;
};

std::vector<uint8_t> naive(const std::vector<FrameRef> &order, size_t plane) {
  std::vector<uint8_t> out(mi_dicom::binary_pixel_data_bytes(order.size(), plane), 0);
  size_t bit = 0;
  for (const FrameRef &f : order)
    for (size_t i = 0; i < plane; ++i, ++bit)
      if (f.k >= 0 && HashFrames::pixel(f.s, f.k, i)) out[bit / 8] |= uint8_t(1u << (bit % 8));
  return out;
}

TEST(DicomSegBits, StreamMatchesBitByBitPackingAcrossChunks) {
  // Odd, 2 mod 4, 4 mod 8 and whole-byte frames; the stream's chunks hold about 8 Mbit.
  for (size_t plane : {size_t(63), size_t(70), size_t(4100), size_t(262144)}) {
    const size_t n = std::max<size_t>(3, (size_t(25) << 20) / plane);  // three chunks or more
    std::vector<FrameRef> order;
    for (size_t f = 0; f < n; ++f) order.push_back({1 + f % 3, f % 97 == 5 ? -1 : (int64_t)f});  // some blank
    HashFrames frames(plane);
    const std::vector<uint8_t> want = naive(order, plane);
    ASSERT_EQ(want.size() % 2, 0u);

    std::unique_ptr<DcmInputStreamFactory> factory(mi_dicom::binary_pixel_data_stream(frames, order, plane));
    std::unique_ptr<DcmInputStream> in(factory->create());
    std::vector<uint8_t> got(want.size() + 16, 0xAB);
    size_t pos = 0, step = 0;
    const size_t blocks[] = {1, 7, 65536, 1000003, 3};
    while (!in->eos()) {
      const size_t b = blocks[step++ % 5];
      if (step % 4 == 0 && pos >= 5) {  // DCMTK's mark and putback
        in->mark();
        ASSERT_EQ((size_t)in->read(got.data() + pos, 5), std::min<size_t>(5, want.size() - pos));
        in->putback();
      }
      if (step % 7 == 0) {  // skipped bytes are not read
        const size_t s = (size_t)in->skip((offile_off_t)b);
        std::copy(want.begin() + pos, want.begin() + pos + s, got.begin() + pos);
        pos += s;
        continue;
      }
      const size_t r = (size_t)in->read(got.data() + pos, (offile_off_t)b);
      ASSERT_GT(r, 0u);
      pos += r;
    }
    EXPECT_EQ(pos, want.size()) << plane;
    EXPECT_EQ(in->tell(), (offile_off_t)want.size());
    EXPECT_TRUE(in->good());
    EXPECT_TRUE(std::equal(want.begin(), want.end(), got.begin())) << "plane " << plane;
    EXPECT_EQ(in->read(got.data(), 1), 0);

    // A stream of the same factory's clone starts over.
    std::unique_ptr<DcmInputStreamFactory> copy(factory->clone());
    std::unique_ptr<DcmInputStream> again(copy->create());
    ASSERT_EQ((size_t)again->skip((offile_off_t)want.size() - 2), want.size() - 2);
    uint8_t tail[2];
    ASSERT_EQ(again->read(tail, 2), 2);
    EXPECT_EQ(tail[0], want[want.size() - 2]);
    EXPECT_EQ(tail[1], want[want.size() - 1]);
  }
}

// A frame source that fails at frame `at` (as an allocation would).
class FailingFrames : public HashFrames {
 public:
  FailingFrames(size_t plane, int64_t at) : HashFrames(plane), at_(at) {}
  void bits(size_t s, int64_t k, uint64_t *words) const override {
    if (k == at_) throw std::bad_alloc();
    HashFrames::bits(s, k, words);
  }

 private:
  int64_t at_;
};

// DCMTK reads the stream inside saveFile, which does not unwind: a failure
// while packing is the stream's status, the write fails naming the file, and
// nothing is left behind.
TEST(DicomSegBits, AFailureWhilePackingFailsTheWriteAndLeavesNothing) {
  const size_t plane = 512 * 512;
  std::vector<FrameRef> order;
  for (int64_t f = 0; f < 100; ++f) order.push_back({1, f});
  FailingFrames frames(plane, 40);  // in the second chunk

  std::unique_ptr<DcmInputStreamFactory> factory(mi_dicom::binary_pixel_data_stream(frames, order, plane));
  std::unique_ptr<DcmInputStream> in(factory->create());
  std::vector<uint8_t> buf(mi_dicom::binary_pixel_data_bytes(order.size(), plane));
  offile_off_t got = 0;
  EXPECT_NO_THROW(got = in->read(buf.data(), (offile_off_t)buf.size()));
  EXPECT_EQ((size_t)got, 32 * plane / 8);  // the first chunk's 32 frames
  EXPECT_FALSE(in->good());

  TempDir dir("seg-bits");
  const std::string out = dir.path() + "/seg.dcm";
  DcmFileFormat ff;
  auto *px = new DcmPixelData(DcmTag(DCM_PixelData, EVR_OB));
  ASSERT_TRUE(px->createValueFromTempFile(factory.release(), (Uint32)buf.size(), EBO_LittleEndian).good());
  ASSERT_TRUE(ff.getDataset()->insert(px).good());
  mi_status *st = nullptr;
  EXPECT_NO_THROW(st = mi_dicom::save_atomic(ff, out));
  EXPECT_NE(st, nullptr);
  EXPECT_NE(std::string(mi_status_message(st)).find(out), std::string::npos) << mi_status_message(st);
  mi_status_free(st);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "a temporary file was left";
}

}  // namespace
