// The engine's runtime services: the parallel-for's work split, the huge
// page advice on long-lived buffers and the scratch blocks kept between runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

extern "C" {
#include "medinfer/hugepages.h"
#include "internal.h"
#include "model.h"
}
#include "gemm/gemm.h"
#include "medinfer/engine.h"
#include "onnx_builder.h"

using onnxb::random_floats;

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

// A child forked after the parent's workers started has none of them: its
// first parallel loop must start its own (and in its child likewise), not
// wait for threads that do not exist.  A hang is ended by an alarm.
TEST(ParallelFor, ForkedChildStartsItsOwnWorkers) {
  mi_threadpool *p = mi_threadpool_create(2);
  ASSERT_NE(p, nullptr);
  Cover c(1000);
  mi_threadpool_run(p, 1000, 1, record, &c);
  auto child = [p]() -> int {
    alarm(20);
    Cover cc(1000);
    mi_threadpool_run(p, 1000, 1, record, &cc);
    for (int i = 0; i < 1000; i++)
      if (cc.hits[size_t(i)].load() != 1) return 1;
    return 0;
  };
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int rc = child();
    if (!rc) { /* and a grandchild */
      const pid_t g = fork();
      if (g == 0) _exit(child());
      int st = 0;
      rc = g > 0 && waitpid(g, &st, 0) == g && WIFEXITED(st) ? WEXITSTATUS(st) : 2;
    }
    _exit(rc);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFEXITED(st)) << "the child hung or crashed";
  EXPECT_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
  Cover after(1000); /* the parent's workers still serve it */
  mi_threadpool_run(p, 1000, 1, record, &after);
  for (int i = 0; i < 1000; i++) EXPECT_EQ(after.hits[size_t(i)].load(), 1);
  mi_threadpool_free(p);
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
  mi_gemm_packed_a *p = mi_gemm_pack_a(mi_isa_level(), false, 1024, 2048, w.data(), 2048);
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

bool aligned64(const void *p) { return (reinterpret_cast<uintptr_t>(p) & 63) == 0; }

// A released block is kept and handed to the next request it holds (the
// smallest such); a request no idle block holds gives the idle ones back, so
// what is kept is at most what was in use at once.  With keep_scratch off (a
// plan's first run) or no exec, blocks are plain allocations.
TEST(Scratch, ReleasedBlocksAreKeptAndReused) {
#ifdef __SANITIZE_ADDRESS__
  GTEST_SKIP() << "under ASan every block is freed, so that reads after release are caught";
#endif
  mi_exec ex{};
  ex.keep_scratch = true;
  void *a = mi_exec_scratch(&ex, 1000), *b = mi_exec_scratch(&ex, 4000);
  ASSERT_TRUE(a && b);
  EXPECT_NE(a, b);
  EXPECT_TRUE(aligned64(a) && aligned64(b));
  std::memset(a, 1, 1000);
  std::memset(b, 2, 4000);
  mi_exec_scratch_release(&ex, b);
  mi_exec_scratch_release(&ex, a);
  EXPECT_EQ(mi_exec_scratch(&ex, 900), a) << "not the smallest idle block that holds the request";
  EXPECT_EQ(mi_exec_scratch(&ex, 900), b) << "the next one, while the first is in use";
  mi_exec_scratch_release(&ex, a);
  mi_exec_scratch_release(&ex, b);
  void *c = mi_exec_scratch(&ex, 8000);
  ASSERT_NE(c, nullptr);
  std::memset(c, 3, 8000);
  EXPECT_EQ(ex.n_scratch, 1) << "idle blocks too small for a request are kept";
  mi_exec_scratch_release(&ex, c);

  ex.keep_scratch = false;
  void *d = mi_exec_scratch(&ex, 100);
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d, c);
  mi_exec_scratch_release(&ex, d);
  EXPECT_EQ(ex.n_scratch, 1) << "a block made with keep_scratch off is kept";
  mi_exec_scratch_free(&ex);
  EXPECT_EQ(ex.n_scratch, 0);
  EXPECT_EQ(ex.scratch, nullptr);

  void *e = mi_exec_scratch(nullptr, 64);
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(aligned64(e));
  mi_exec_scratch_release(nullptr, e);
}

// While recording (a plan's first run), a large block given back stays
// mapped as the spare and serves the next request it holds, in this node or
// a later one (each fresh mapping is faulted in again); the spare is the
// largest block given back, a request it cannot hold unmaps it first, and
// the recording's end unmaps it.  Blocks of 2 MB or more are 2 MB-aligned.
TEST(Scratch, RecordingReusesItsLargestBlock) {
#ifdef __SANITIZE_ADDRESS__
  GTEST_SKIP() << "under ASan nothing is recorded: every block is allocated and freed";
#endif
  const size_t MB = size_t(1) << 20;
  mi_exec ex{};
  size_t need = 0;
  mi_exec_scratch_node(&ex, &need, nullptr, 0);
  char *big = static_cast<char *>(mi_exec_scratch(&ex, 3 * MB));
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big) % (2 * MB), 0u) << "not 2 MB-aligned";
  std::memset(big, 1, 3 * MB);
  mi_exec_scratch_release(&ex, big);
  mi_exec_scratch_node(&ex, nullptr, nullptr, 0);
  EXPECT_EQ(ex.spare, big) << "the block given back is not kept as the spare";

  mi_exec_scratch_node(&ex, &need, nullptr, 0);
  char *s = static_cast<char *>(mi_exec_scratch(&ex, MB));
  EXPECT_EQ(s, big) << "the spare does not serve a request it holds";
  EXPECT_EQ(ex.spare, nullptr);
  char *t = static_cast<char *>(mi_exec_scratch(&ex, MB / 2));
  ASSERT_NE(t, nullptr);
  EXPECT_NE(t, big);
  std::memset(s, 2, MB);
  std::memset(t, 3, MB / 2);
  mi_exec_scratch_release(&ex, t);
  EXPECT_EQ(ex.spare, t);
  mi_exec_scratch_release(&ex, s);
  EXPECT_EQ(ex.spare, s) << "the spare is not the largest block given back";
  char *u = static_cast<char *>(mi_exec_scratch(&ex, 5 * MB));
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(ex.spare, nullptr) << "a request the spare cannot hold keeps it mapped";
  std::memset(u, 4, 5 * MB);
  mi_exec_scratch_release(&ex, u);
  mi_exec_scratch_node(&ex, nullptr, nullptr, 0);
  EXPECT_EQ(ex.spare, u);
  EXPECT_EQ(need, 5 * MB) << "the most stacked at once";
  mi_exec_scratch_recorded(&ex);
  EXPECT_EQ(ex.spare, nullptr);
  EXPECT_EQ(ex.spare_bytes, 0u);
  EXPECT_EQ(ex.n_scratch, 0) << "recording keeps blocks";
  mi_exec_scratch_free(&ex);
}

// Inside a node, blocks are stacked: each starts where the last one still
// held ends, and releasing the top one pops every released block under it.
// Recording keeps the most the node stacked; with a room, requests come from
// it while they fit, else from kept blocks.  More blocks at once than the
// stack holds: no room (the need reads SIZE_MAX).
TEST(Scratch, NodesStackTheirBlocksInTheirRooms) {
#ifdef __SANITIZE_ADDRESS__
  GTEST_SKIP() << "under ASan every block is allocated and freed, so that reads after release are caught";
#endif
  mi_exec ex{};
  ex.keep_scratch = true;
  size_t need = 0;
  mi_exec_scratch_node(&ex, &need, nullptr, 0);
  void *a = mi_exec_scratch(&ex, 1000), *b = mi_exec_scratch(&ex, 100); /* 1024 + 128 */
  ASSERT_TRUE(a && b);
  std::memset(a, 1, 1000);
  mi_exec_scratch_release(&ex, a); /* under b: stays on the stack */
  void *c = mi_exec_scratch(&ex, 64);
  ASSERT_NE(c, nullptr);
  mi_exec_scratch_release(&ex, c);
  mi_exec_scratch_release(&ex, b);
  void *big = mi_exec_scratch(&ex, size_t(1) << 20); /* mapped from the system while recording */
  ASSERT_NE(big, nullptr);
  std::memset(big, 2, size_t(1) << 20);
  mi_exec_scratch_release(&ex, big);
  mi_exec_scratch_node(&ex, nullptr, nullptr, 0);
  EXPECT_EQ(need, size_t(1) << 20) << "the most stacked at once";
  EXPECT_EQ(ex.n_scratch, 0) << "recording keeps blocks";

  need = 0;
  mi_exec_scratch_node(&ex, &need, nullptr, 0);
  a = mi_exec_scratch(&ex, 1000), b = mi_exec_scratch(&ex, 100);
  mi_exec_scratch_release(&ex, a);
  c = mi_exec_scratch(&ex, 64);
  mi_exec_scratch_release(&ex, b);
  mi_exec_scratch_release(&ex, c);
  mi_exec_scratch_node(&ex, nullptr, nullptr, 0);
  EXPECT_EQ(need, size_t(1024 + 128 + 64)) << "a block released under a held one still counts";

  char *room = static_cast<char *>(aligned_alloc(64, 4096));
  ASSERT_NE(room, nullptr);
  mi_exec_scratch_node(&ex, nullptr, room, 1216);
  a = mi_exec_scratch(&ex, 1000);
  b = mi_exec_scratch(&ex, 100);
  EXPECT_EQ(a, room);
  EXPECT_EQ(b, room + 1024);
  mi_exec_scratch_release(&ex, b);
  EXPECT_EQ(mi_exec_scratch(&ex, 100), room + 1024) << "the released top block is not popped";
  mi_exec_scratch_release(&ex, a);
  EXPECT_EQ(mi_exec_scratch(&ex, 64), room + 1152) << "a block released under a held one was reused";
  void *over = mi_exec_scratch(&ex, 64); /* past the room's end */
  ASSERT_NE(over, nullptr);
  EXPECT_TRUE(static_cast<char *>(over) < room || static_cast<char *>(over) >= room + 4096);
  mi_exec_scratch_release(&ex, over);
  EXPECT_EQ(ex.n_scratch, 1) << "a request the room does not hold takes a kept block";
  mi_exec_scratch_release(&ex, room + 1152);
  mi_exec_scratch_release(&ex, room + 1024);
  EXPECT_EQ(ex.n_stack, 0) << "releasing the top block pops the released ones under it";
  mi_exec_scratch_node(&ex, nullptr, nullptr, 0);
  EXPECT_NE(mi_exec_scratch(&ex, 64), room) << "outside a node, a room serves";
  mi_exec_scratch_release(&ex, over);

  need = 0;
  mi_exec_scratch_node(&ex, &need, nullptr, 0);
  std::vector<void *> held;
  for (int i = 0; i <= MI_SCRATCH_STACK; i++) held.push_back(mi_exec_scratch(&ex, 64));
  for (void *p : held) {
    EXPECT_NE(p, nullptr);
    mi_exec_scratch_release(&ex, p);
  }
  mi_exec_scratch_node(&ex, nullptr, nullptr, 0);
  EXPECT_EQ(need, SIZE_MAX) << "more blocks at once than the stack holds";
  mi_exec_scratch_free(&ex);
  free(room);
}

std::vector<float> run_once(mi_model *m, const std::vector<int64_t> &dims, std::vector<float> x) {
  mi_tensor *in = nullptr, *out = nullptr;
  std::vector<float> y;
  mi_status *st = mi_tensor_wrap(MI_FLOAT, int(dims.size()), dims.data(), x.data(), &in);
  if (!st) st = mi_model_run(m, &in, 1, &out, 1);
  if (st) {
    ADD_FAILURE() << mi_status_message(st);
    mi_status_free(st);
  } else {
    const float *p = static_cast<const float *>(mi_tensor_cdata(out));
    y.assign(p, p + mi_tensor_numel(out));
  }
  mi_tensor_free(in);
  mi_tensor_free(out);
  return y;
}

// Runs after a plan's first one take their scratch from the nodes' rooms in
// the arena, which other nodes' tensors and earlier runs left dirty: each
// input's output must be what a fresh model, whose first run this is,
// computes (padded copies, Winograd's tiles, bf16's pairs, the GEMM's packs
// of a layer on the graph's input and a strided one).  Every request of a
// later run fits its room (the first run recorded them).  With a memory limit
// the rooms would pass, the plan keeps its arena and the requests take kept
// blocks.
TEST(Scratch, KeptBlocksLeaveResultsUnchanged) {
  const int64_t C = 64, M = 32, H = 30;
  onnxb::Model md;
  md.inputs.push_back({"x", 1, {1, C, H, H}});
  md.outputs.push_back({"y", 1, {}});
  md.inits.push_back(onnxb::float_tensor("w1", {C, C, 3, 3}, random_floats(size_t(C * C * 9), 1)));
  md.inits.push_back(onnxb::float_tensor("w2", {M, C, 3, 3}, random_floats(size_t(M * C * 9), 2)));
  md.inits.push_back(onnxb::float_tensor("w3", {M, M, 1, 1}, random_floats(size_t(M * M), 3)));
  md.nodes.push_back({"Conv", "c1", {"x", "w1"}, {"a"}, {onnxb::attr_ints("pads", {1, 1, 1, 1})}});
  md.nodes.push_back({"Relu", "r1", {"a"}, {"b"}, {}});
  md.nodes.push_back({"Conv", "c2", {"b", "w2"}, {"c"},
                      {onnxb::attr_ints("pads", {1, 1, 1, 1}), onnxb::attr_ints("strides", {2, 2})}});
  md.nodes.push_back({"Conv", "c3", {"c", "w3"}, {"y"}, {}});
  const auto buf = md.serialize();
  const std::vector<int64_t> dims = {1, C, H, H};
  const auto xa = random_floats(size_t(C * H * H), 4), xb = random_floats(size_t(C * H * H), 5);
  for (int mode = 0; mode < 3; mode++) {
    SCOPED_TRACE(mode == 0 ? "exact" : mode == 1 ? "fast" : "bf16");
    if (mode == 2 && !mi_bf16_available()) continue;
    mi_options opt;
    mi_options_default(&opt);
    opt.threads = 2;
    opt.fast_math = mode == 1;
    opt.bf16 = mode == 2;
    auto load = [&] {
      mi_model *m = nullptr;
      mi_status *st = mi_model_load_buffer(buf.data(), buf.size(), nullptr, "scratch.onnx", &opt, &m);
      if (st) ADD_FAILURE() << mi_status_message(st);
      mi_status_free(st);
      return m;
    };
    mi_model *kept = load(), *fresh_a = load(), *fresh_b = load();
    ASSERT_TRUE(kept && fresh_a && fresh_b);
    const auto ra = run_once(fresh_a, dims, xa), rb = run_once(fresh_b, dims, xb);
    ASSERT_EQ(ra.size(), size_t(M * 15 * 15));
    run_once(kept, dims, xa); /* the plan's first run */
    [[maybe_unused]] const size_t tensors = mi_model_arena_bytes(kept);
    for (int round = 0; round < 2; round++) {
      EXPECT_EQ(run_once(kept, dims, xb), rb) << "round " << round;
      EXPECT_EQ(run_once(kept, dims, xa), ra) << "round " << round;
    }
#ifndef __SANITIZE_ADDRESS__
    const size_t arena = mi_model_arena_bytes(kept);
    EXPECT_GT(arena, tensors) << "the rooms took no memory";
    int rooms = 0;
    for (int k = 0; k < kept->g.n_nodes; k++) {
      const mi_node &n = kept->g.nodes[k];
      if (n.room_off < 0) continue;
      rooms++;
      EXPECT_LE(size_t(n.room_off) + n.scratch_need, arena) << n.name;
    }
    EXPECT_GT(rooms, 0) << "no node got a room: the test checks nothing";
    EXPECT_EQ(kept->ex.n_scratch, 0) << "a later run asked for more than its first";

    opt.max_tensor_bytes = arena - 1;
    mi_model *limited = load();
    ASSERT_NE(limited, nullptr);
    for (int round = 0; round < 2; round++) {
      EXPECT_EQ(run_once(limited, dims, xb), rb) << "limited, round " << round;
      EXPECT_EQ(run_once(limited, dims, xa), ra) << "limited, round " << round;
    }
    EXPECT_LT(mi_model_arena_bytes(limited), arena);
    for (int k = 0; k < limited->g.n_nodes; k++) EXPECT_LT(limited->g.nodes[k].room_off, 0);
    EXPECT_GT(limited->ex.n_scratch, 0) << "without rooms, no block kept";
    mi_model_free(limited);
#endif
    mi_model_free(kept);
    mi_model_free(fresh_a);
    mi_model_free(fresh_b);
  }
}

} // namespace
