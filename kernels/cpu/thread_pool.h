// A fixed pool of worker threads for data-parallel CPU kernels.
//
// ParallelFor splits [0, n) into contiguous chunks, runs them on the workers and the calling thread, and
// returns when all are done. The pool is owned by the CPU backend; one ParallelFor at a time per pool
// (calls from several threads are serialised). Nested ParallelFor from inside a task runs inline.
//
// Cost: an empty ParallelFor is a few hundred nanoseconds while the workers are awake; after each job they
// poll ~200 us (so back-to-back calls in a decode step find them awake; PAUSE for the first 20 us, then
// sched_yield so an oversubscribed core is not starved), then sleep on a futex (waking one costs a few us).
// Tasks must not throw.
#ifndef ADAK_KERNELS_CPU_THREAD_POOL_H_
#define ADAK_KERNELS_CPU_THREAD_POOL_H_

#include <cstdint>
#include <functional>
#include <memory>

namespace adak::kernels {

class ThreadPool {
 public:
  // `num_threads` counts the caller: 1 means no workers (everything inline). 0 = hardware concurrency.
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  [[nodiscard]] int num_threads() const { return num_threads_; }

  // Calls fn(begin, end) over disjoint chunks covering [0, n), at least `grain` items per chunk
  // (except the last). Blocks until every chunk has run.
  void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

 private:
  struct State;
  int num_threads_;
  std::unique_ptr<State> state_;
};

}  // namespace adak::kernels

#endif  // ADAK_KERNELS_CPU_THREAD_POOL_H_
