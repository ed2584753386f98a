// The engine's runtime services: the parallel-for's work split and the huge
// page advice on long-lived buffers.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "hugepages.h"
#include "internal.h"
}
#include "gemm/gemm.h"

namespace {

struct Cover {
  std::vector<std::atomic<int>> hits;
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  explicit Cover(int64_t n) : hits(size_t(n)) {}
};

void record(void *ctx, int64_t b, int64_t e) {
  auto *c = static_cast<Cover *>(ctx);
  for (int64_t i = b; i < e; i++) c->hits[size_t(i)]++;
  std::lock_guard<std::mutex> l(c->mu);
  c->chunks.emplace_back(b, e);
}

// Every index exactly once, chunks no shorter than the grain (but the last),
// and, with more than one thread, shrinking chunks: the last ones are short, so
// a thread held up by another process leaves the others little to wait for.
TEST(ParallelFor, GuidedChunksCoverEveryIndexOnce) {
  for (int threads : {1, 2, 3, 8})
    for (int64_t n : {1, 2, 7, 64, 1000, 100003})
      for (int64_t grain : {1, 4, 100}) {
        mi_threadpool *p = mi_threadpool_create(threads);
        ASSERT_NE(p, nullptr);
        Cover c(n);
        mi_threadpool_run(p, n, grain, record, &c);
        mi_threadpool_free(p);
        SCOPED_TRACE(testing::Message() << "threads " << threads << " n " << n << " grain " << grain);
        for (int64_t i = 0; i < n; i++) ASSERT_EQ(c.hits[size_t(i)].load(), 1) << "index " << i;
        std::sort(c.chunks.begin(), c.chunks.end());
        for (size_t k = 0; k + 1 < c.chunks.size(); k++) EXPECT_GE(c.chunks[k].second - c.chunks[k].first, grain);
        if (threads > 1 && n >= 1000 && grain == 1 && c.chunks.size() > 1) {
          EXPECT_LE(c.chunks.back().second - c.chunks.back().first, n / 64) << "the last chunk is long";
          EXPECT_LE(c.chunks.front().second - c.chunks.front().first, n / 2) << "one chunk took half the work";
        }
      }
}

// The THP state of the mapping that holds address a ("THPeligible" in
// /proc/self/smaps: 1 where the kernel may back it with huge pages).
int thp_eligible(const void *a) {
  std::ifstream f("/proc/self/smaps");
  std::string line;
  bool in = false;
  const auto x = reinterpret_cast<uintptr_t>(a);
  while (std::getline(f, line)) {
    unsigned long lo, hi;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      in = x >= lo && x < hi;
      continue;
    }
    if (in && line.rfind("THPeligible:", 0) == 0) return std::atoi(line.c_str() + 12);
  }
  return -1;
}

std::string thp_mode() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s;
  std::getline(f, s);
  return s;
}

// Packed weights of 8 MB ask for huge pages on their aligned interior; a
// buffer under 2 MB, or a null one, is left alone without complaint.
TEST(HugePages, PackedWeightsAreAdvised) {
  const std::string mode = thp_mode();
  if (mode.find("[madvise]") == std::string::npos)
    GTEST_SKIP() << "transparent huge pages are not in madvise mode here ('" << mode << "')";
  std::vector<float> w(size_t(1024) * 2048, 0.5f);
  mi_gemm_packed_a *p = mi_gemm_pack_a(mi_gemm_isa(), false, 1024, 2048, w.data(), 2048);
  ASSERT_NE(p, nullptr);
  const mi_gemm_packed_view v = mi_gemm_packed_a_view(p);
  const uintptr_t huge = uintptr_t(2) << 20;
  const auto inner = reinterpret_cast<const void *>((reinterpret_cast<uintptr_t>(v.data) + huge - 1) & ~(huge - 1));
  EXPECT_EQ(thp_eligible(inner), 1);
  mi_gemm_packed_a_free(p);

  std::vector<char> small(1 << 20);
  mi_advise_huge(small.data(), small.size());
  mi_advise_huge(nullptr, size_t(64) << 20);
  mi_advise_huge(small.data(), 0);
}

} // namespace
