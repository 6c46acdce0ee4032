#include "kernels/cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace adak::kernels {
namespace {

struct Chunk {
  int64_t begin;
  int64_t end;
};

// Runs ParallelFor and checks: every index exactly once, chunks disjoint and contiguous, each chunk at least
// `grain` items except the one that ends at n.
void CheckCoverage(ThreadPool& pool, int64_t n, int64_t grain) {
  SCOPED_TRACE(testing::Message() << "threads=" << pool.num_threads() << " n=" << n << " grain=" << grain);
  std::vector<std::atomic<int>> hits(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::mutex mu;
  std::vector<Chunk> chunks;
  pool.ParallelFor(n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu);
    chunks.push_back({begin, end});
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "index " << i;
  if (n <= 0) {
    EXPECT_TRUE(chunks.empty());
    return;
  }
  std::sort(chunks.begin(), chunks.end(), [](const Chunk& a, const Chunk& b) { return a.begin < b.begin; });
  int64_t expected_begin = 0;
  for (const Chunk& c : chunks) {
    EXPECT_EQ(c.begin, expected_begin);
    EXPECT_LT(c.begin, c.end);
    if (c.end != n) {
      EXPECT_GE(c.end - c.begin, std::max<int64_t>(grain, 1));
    }
    expected_begin = c.end;
  }
  EXPECT_EQ(expected_begin, n);
}

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 4, 8}) {
    ThreadPool pool(threads);
    ASSERT_EQ(pool.num_threads(), threads);
    for (int64_t n : {0, 1, 2, 3, 5, 7, 16, 31, 100, 1000, 4097}) {
      for (int64_t grain : {0, 1, 2, 3, 7, 64, 5000}) CheckCoverage(pool, n, grain);
    }
  }
}

TEST(ThreadPool, NegativeCountIsANoOp) {
  ThreadPool pool(2);
  bool called = false;
  pool.ParallelFor(-5, 1, [&](int64_t, int64_t) { called = true; });
  EXPECT_FALSE(called);
}

TEST(ThreadPool, ZeroThreadsMeansHardwareConcurrency) {
  ThreadPool pool(0);
  EXPECT_EQ(pool.num_threads(), static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  CheckCoverage(pool, 1000, 1);
}

TEST(ThreadPool, CallerParticipates) {
  ThreadPool pool(4);
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<bool> caller_ran{false};
  // Enough chunks that the caller always claims at least one before the workers drain the job.
  for (int rep = 0; rep < 100 && !caller_ran.load(); ++rep) {
    pool.ParallelFor(16, 1, [&](int64_t, int64_t) {
      if (std::this_thread::get_id() == caller) caller_ran.store(true);
    });
  }
  EXPECT_TRUE(caller_ran.load());
}

TEST(ThreadPool, NestedParallelForRunsInline) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> hits(size_t{64} * 32);
  std::atomic<int> inline_violations{0};
  std::atomic<int> inner_calls{0};
  pool.ParallelFor(64, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const std::thread::id outer = std::this_thread::get_id();
      int calls = 0;
      pool.ParallelFor(32, 1, [&](int64_t b, int64_t e) {
        ++calls;  // not atomic on purpose: inline execution means a single thread
        if (std::this_thread::get_id() != outer) inline_violations.fetch_add(1);
        for (int64_t j = b; j < e; ++j) hits[static_cast<size_t>(i * 32 + j)].fetch_add(1);
      });
      inner_calls.fetch_add(calls);
    }
  });
  EXPECT_EQ(inline_violations.load(), 0);
  EXPECT_EQ(inner_calls.load(), 64);  // one fn(0, n) call per nested ParallelFor
  for (auto& h : hits) ASSERT_EQ(h.load(), 1);
}

TEST(ThreadPool, NestedCallOnAnotherPoolRunsInline) {
  ThreadPool outer(2);
  ThreadPool inner(2);
  std::atomic<int> total{0};
  outer.ParallelFor(8, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      inner.ParallelFor(10, 1, [&](int64_t b, int64_t e) { total.fetch_add(static_cast<int>(e - b)); });
    }
  });
  EXPECT_EQ(total.load(), 80);
}

TEST(ThreadPool, ConcurrentCallersAreSerialisedSafely) {
  ThreadPool pool(3);
  constexpr int kCalls = 2000;
  auto caller = [&pool](int64_t n, int64_t* result) {
    for (int c = 0; c < kCalls; ++c) {
      std::vector<int64_t> values(static_cast<size_t>(n), 0);
      pool.ParallelFor(n, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) values[static_cast<size_t>(i)] = i + c;
      });
      for (int64_t i = 0; i < n; ++i) {
        if (values[static_cast<size_t>(i)] != i + c) {
          *result = -1;
          return;
        }
      }
    }
    *result = 1;
  };
  int64_t a = 0;
  int64_t b = 0;
  std::thread ta(caller, 37, &a);
  std::thread tb(caller, 101, &b);
  ta.join();
  tb.join();
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 1);
}

TEST(ThreadPool, ManyBackToBackJobs) {
  ThreadPool pool(3);
  int64_t expected = 0;
  std::atomic<int64_t> sum{0};
  for (int job = 0; job < 20000; ++job) {
    const int64_t n = 1 + job % 13;
    expected += n * (n - 1) / 2;
    pool.ParallelFor(n, 1, [&](int64_t begin, int64_t end) {
      int64_t local = 0;
      for (int64_t i = begin; i < end; ++i) local += i;
      sum.fetch_add(local, std::memory_order_relaxed);
    });
  }
  EXPECT_EQ(sum.load(), expected);
}

TEST(ThreadPool, JobsAfterWorkersFellAsleep) {
  ThreadPool pool(3);
  for (int rep = 0; rep < 5; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // past the workers' spin budget
    CheckCoverage(pool, 1000, 10);
  }
}

TEST(ThreadPool, CreateAndDestroyRepeatedly) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(1 + i % 4);
    if (i % 2 == 0) CheckCoverage(pool, 100, 3);
  }
}

}  // namespace
}  // namespace adak::kernels
