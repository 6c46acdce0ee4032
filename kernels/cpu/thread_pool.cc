// ThreadPool: workers spin briefly on an epoch counter after each job, then sleep on it (futex via
// std::atomic::wait), so back-to-back ParallelFor calls (a decode step issues ~10 per layer) cost a cache-line
// round trip rather than a syscall, while an idle pool costs no CPU.
//
// A job is published as one 64-bit `claim` word: generation | chunk count | index of the next unclaimed chunk.
// Workers and the caller claim chunks with a compare-and-swap on that word. Because the word alone says whether
// a chunk is left, a worker that wakes late can never run a chunk of a finished job or of a job still being
// written (its CAS fails against the newer word), and the caller never waits for sleeping workers to notice a
// job: it only waits for chunks that were actually claimed.
#include "kernels/cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace adak::kernels {
namespace {

// True while this thread runs a ParallelFor chunk (and always on pool workers): nested calls run inline.
thread_local bool tls_in_parallel_for = false;

// Chunks per thread: a little dynamic load balancing (cores are shared) without many claims per job.
constexpr int64_t kChunksPerThread = 4;
// Bits of the claim word for the chunk count and the next chunk index.
constexpr int kChunkBits = 16;
constexpr uint64_t kChunkMask = (uint64_t{1} << kChunkBits) - 1;
// An idle worker spins with PAUSE (~20 ns each on Zen 5) for kWorkerPauseSpin, then keeps polling with
// sched_yield (giving the core to anything else runnable, e.g. the caller when cores are oversubscribed)
// until kWorkerSpin, then sleeps on the futex. The caller waiting for the last chunks pauses
// kCallerPausesBeforeYield times (~5 us), then yields: the worker holding a chunk may share its core.
constexpr auto kWorkerPauseSpin = std::chrono::microseconds(20);
constexpr auto kWorkerSpin = std::chrono::microseconds(200);
constexpr int kCallerPausesBeforeYield = 256;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

using Fn = std::function<void(int64_t, int64_t)>;

}  // namespace

struct ThreadPool::State {
  // The current job. Written by the caller (under call_mu) before `claim` publishes it; read by whoever claims
  // a chunk. Atomics because a late worker may read them while the next job is being written (it then fails
  // its claim and discards what it read).
  std::atomic<const Fn*> fn{nullptr};
  std::atomic<int64_t> n{0};
  std::atomic<int64_t> chunk{0};

  // generation << 32 | num_chunks << 16 | next chunk index. Starts as an exhausted job (0 of 0 chunks).
  alignas(64) std::atomic<uint64_t> claim{0};
  alignas(64) std::atomic<uint32_t> done{0};   // chunks of the current generation that have finished
  alignas(64) std::atomic<uint32_t> epoch{0};  // bumped per job (and at shutdown); workers wait on it
  std::atomic<int> sleepers{0};                // workers blocked in epoch.wait()
  std::atomic<bool> stop{false};

  // Serialises ParallelFor callers: one job in flight. It guards the job fields and `done` above, which are
  // atomics only for the benefit of late workers (and of TSan, which cannot see into Debian's absl::Mutex).
  absl::Mutex call_mu;
  std::vector<std::thread> workers;

  // Claims and runs chunks of the current job until none is left. Returns when no unclaimed chunk remains.
  void RunChunks() {
    uint64_t c = claim.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t index = c & kChunkMask;
      if (index >= ((c >> kChunkBits) & kChunkMask)) return;
      // Read the job before claiming: a successful CAS proves that chunk `index` of this job was still
      // unclaimed, so the job was live and the caller could not yet be overwriting these fields.
      const Fn* f = fn.load(std::memory_order_relaxed);
      const int64_t total = n.load(std::memory_order_relaxed);
      const int64_t size = chunk.load(std::memory_order_relaxed);
      if (!claim.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        continue;
      }
      const int64_t begin = static_cast<int64_t>(index) * size;
      (*f)(begin, std::min(total, begin + size));
      done.fetch_add(1, std::memory_order_release);
      c = claim.load(std::memory_order_acquire);
    }
  }

  void WorkerLoop() {
    tls_in_parallel_for = true;
    uint32_t seen = 0;
    for (;;) {
      // Spin, then poll with yields, then sleep until the epoch moves.
      const auto start = std::chrono::steady_clock::now();
      bool yielding = false;
      int spins = 0;
      while (epoch.load(std::memory_order_acquire) == seen) {
        if (yielding) {
          std::this_thread::yield();
        } else {
          CpuRelax();
        }
        if (++spins < (yielding ? 16 : 256)) continue;
        spins = 0;
        const auto idle = std::chrono::steady_clock::now() - start;
        yielding = idle >= kWorkerPauseSpin;
        if (idle < kWorkerSpin) continue;
        sleepers.fetch_add(1, std::memory_order_seq_cst);
        // seq_cst pairs with the caller's epoch store / sleepers load: either it sees us sleeping and
        // notifies, or we see its new epoch here.
        while (epoch.load(std::memory_order_seq_cst) == seen) epoch.wait(seen, std::memory_order_seq_cst);
        sleepers.fetch_sub(1, std::memory_order_relaxed);
      }
      seen = epoch.load(std::memory_order_acquire);
      if (stop.load(std::memory_order_acquire)) return;
      RunChunks();
    }
  }

  void Wake() {
    if (sleepers.load(std::memory_order_seq_cst) > 0) epoch.notify_all();
  }
};

ThreadPool::ThreadPool(int num_threads) : state_(std::make_unique<State>()) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  num_threads_ = num_threads;
  state_->workers.reserve(static_cast<size_t>(num_threads_ - 1));
  for (int i = 1; i < num_threads_; ++i) state_->workers.emplace_back([s = state_.get()] { s->WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  state_->stop.store(true, std::memory_order_release);
  state_->epoch.fetch_add(1, std::memory_order_seq_cst);
  state_->epoch.notify_all();
  for (std::thread& t : state_->workers) t.join();
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain, const Fn& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  // Chunks of at least `grain` items, at most kChunksPerThread per thread.
  const int64_t max_chunks =
      std::min<int64_t>({n / grain, kChunksPerThread * num_threads_, static_cast<int64_t>(kChunkMask)});
  if (num_threads_ == 1 || tls_in_parallel_for || max_chunks <= 1) {
    fn(0, n);
    return;
  }
  const int64_t chunk = (n + max_chunks - 1) / max_chunks;  // >= grain since max_chunks <= n / grain
  const auto num_chunks = static_cast<uint64_t>((n + chunk - 1) / chunk);

  State& s = *state_;
  absl::MutexLock lock(&s.call_mu);
  s.fn.store(&fn, std::memory_order_relaxed);
  s.n.store(n, std::memory_order_relaxed);
  s.chunk.store(chunk, std::memory_order_relaxed);
  s.done.store(0, std::memory_order_relaxed);
  // Only callers (serialised) change the generation; it wraps, and only distinctness from recent jobs matters.
  const uint64_t generation = (s.claim.load(std::memory_order_relaxed) >> 32) + 1;
  s.claim.store(generation << 32 | num_chunks << kChunkBits, std::memory_order_release);
  s.epoch.fetch_add(1, std::memory_order_seq_cst);
  s.Wake();

  tls_in_parallel_for = true;
  s.RunChunks();
  tls_in_parallel_for = false;

  int spins = 0;
  while (s.done.load(std::memory_order_acquire) != num_chunks) {
    if (++spins < kCallerPausesBeforeYield) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
}

}  // namespace adak::kernels
