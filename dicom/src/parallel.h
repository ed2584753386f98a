// A minimal parallel loop for file-level work (I/O plus decoding).
#ifndef MEDINFER_DICOM_PARALLEL_H
#define MEDINFER_DICOM_PARALLEL_H

#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace mi_dicom {

// Calls fn(i) for i in [0, n) on up to `threads` threads (dynamic scheduling:
// files differ widely in cost).
template <typename Fn>
void parallel_for(size_t n, int threads, Fn fn) {
  if (threads < 1) threads = 1;
  if ((size_t)threads > n) threads = (int)n;
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) fn(i);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto &th : pool) th.join();
}

}  // namespace mi_dicom
#endif
