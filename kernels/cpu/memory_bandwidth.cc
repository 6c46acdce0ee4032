#include "kernels/cpu/memory_bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace adak::kernels {
namespace {

constexpr int kRepetitions = 5;
constexpr int64_t kChunkBytes = 1 << 20;  // ParallelFor item

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2"))) uint64_t SumAvx2(const uint64_t* p, int64_t words) {
  __m256i a0 = _mm256_setzero_si256();
  __m256i a1 = _mm256_setzero_si256();
  __m256i a2 = _mm256_setzero_si256();
  __m256i a3 = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 16 <= words; i += 16) {
    const auto* v = reinterpret_cast<const __m256i*>(p + i);
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(v));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(v + 1));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(v + 2));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(v + 3));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes),
                     _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
  uint64_t sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < words; ++i) sum += p[i];
  return sum;
}
#endif

uint64_t SumGeneric(const uint64_t* p, int64_t words) {
  uint64_t s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= words; i += 4) {
    for (int j = 0; j < 4; ++j) s[j] += p[i + j];
  }
  for (; i < words; ++i) s[0] += p[i];
  return s[0] + s[1] + s[2] + s[3];
}

uint64_t Sum(const uint64_t* p, int64_t words) {
#if defined(__x86_64__) || defined(__i386__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) return SumAvx2(p, words);
#endif
  return SumGeneric(p, words);
}

}  // namespace

double MeasureMemoryReadBandwidth(ThreadPool* pool, size_t bytes) {
  const int64_t chunks = std::max<int64_t>(1, static_cast<int64_t>(bytes) / kChunkBytes);
  const int64_t total = chunks * kChunkBytes;
  constexpr int64_t kWordsPerChunk = kChunkBytes / sizeof(uint64_t);
  struct Deleter {
    void operator()(uint64_t* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::unique_ptr<uint64_t[], Deleter> buffer(new (std::align_val_t{64}, std::nothrow)
                                                  uint64_t[static_cast<size_t>(total) / sizeof(uint64_t)]);
  if (buffer == nullptr) return 0.0;
  uint64_t* data = buffer.get();
  auto for_chunks = [&](auto&& body) {
    if (pool == nullptr) {
      body(0, chunks);
    } else {
      pool->ParallelFor(chunks, 1, body);
    }
  };
  // First touch from the threads that read, so pages are faulted in (and placed) before timing.
  for_chunks([&](int64_t c0, int64_t c1) {
    std::memset(data + c0 * kWordsPerChunk, 1, static_cast<size_t>((c1 - c0) * kChunkBytes));
  });
  std::atomic<uint64_t> sink{0};
  double best = 0.0;
  for (int rep = 0; rep < kRepetitions; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    for_chunks([&](int64_t c0, int64_t c1) {
      sink.fetch_add(Sum(data + c0 * kWordsPerChunk, (c1 - c0) * kWordsPerChunk), std::memory_order_relaxed);
    });
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    if (elapsed.count() > 0) best = std::max(best, static_cast<double>(total) / elapsed.count());
  }
  return best;
}

}  // namespace adak::kernels
