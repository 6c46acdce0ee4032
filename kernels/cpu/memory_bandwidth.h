// Measures the machine's streaming memory read bandwidth: the floor that memory-bound kernels (GEMV over
// weights that do not fit in cache) are judged against in benchmarks.
//
// Thread-safety: safe to call from any thread; it runs ParallelFor on `pool`, so calls serialise with other
// users of that pool, and the result is only meaningful when nothing else is busy.
#ifndef ADAK_KERNELS_CPU_MEMORY_BANDWIDTH_H_
#define ADAK_KERNELS_CPU_MEMORY_BANDWIDTH_H_

#include <cstddef>

#include "kernels/cpu/thread_pool.h"

namespace adak::kernels {

// Returns bytes per second for reading a `bytes`-sized buffer (which should be much larger than the last-level
// cache) with all threads of `pool` (nullptr: the calling thread only), the best of a few repetitions.
// Returns 0 if the buffer cannot be allocated.
[[nodiscard]] double MeasureMemoryReadBandwidth(ThreadPool* pool, size_t bytes = size_t{1} << 30);

}  // namespace adak::kernels

#endif  // ADAK_KERNELS_CPU_MEMORY_BANDWIDTH_H_
