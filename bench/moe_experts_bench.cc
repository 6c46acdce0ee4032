// MoeExperts benchmarks on the OLMoE shape: H = 2048, I = 1024, 64 bf16 experts (12 MiB each, 768 MiB in all).
//
// Decode (T = 1, 4, 16 with top-8, and T = 16 with k_t uniform in 4..8, mean 6) reports the bytes of the active
// experts' weights per second ("weight_bw", GiB/s) and that as a fraction of the machine's streaming read
// bandwidth ("of_mem_bw"), measured at start-up with MeasureMemoryReadBandwidth (2 threads, best of 5) and
// printed (and again at exit, to show drift on a shared machine). The cores of this machine are shared, so each
// case also reports its fastest iteration ("best_bw", "best_of_mem_bw"), which approximates an idle machine as
// the best-of-5 bandwidth figure does. BM_StreamActiveExperts reads exactly the active experts' bytes of the
// same routings with a plain streaming loop: the ceiling under the same conditions.
//
// Routings are precomputed and cycled; at T = 1 consecutive iterations use disjoint expert sets, so the 768 MiB
// working set never fits in the last-level cache. Experts start 8 bytes past a cache line by default, as tensors
// in an mmapped safetensors file do (its data section is only 8-byte aligned; "offset" = 0 shows the aligned
// case). Prefill (T = 64..512, top-8: 8..64 rows per expert) reports GFLOP/s (2 * 3 * H * I per routed row).
// Cases run on the fused path ("fused", the default) and, for comparison, with every expert through MatMul
// ("matmul": three MatMul calls per expert, the previous implementation).
//
// Run: build-moe/bin/moe_experts_bench --benchmark_min_time=1
#include <benchmark/benchmark.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <new>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/moe_dispatch.h"
#include "kernels/cpu/moe_experts.h"
#include "kernels/cpu/thread_pool.h"

namespace adak::kernels {
namespace {

constexpr int64_t kHidden = 2048;
constexpr int64_t kInter = 1024;
constexpr int64_t kExperts = 64;
constexpr int64_t kMatrix = kHidden * kInter;      // elements per projection
constexpr int64_t kExpertBytes = 3 * kMatrix * 2;  // bf16
constexpr int kRoutings = 64;                      // precomputed routings cycled per case

ThreadPool& Pool() {
  static ThreadPool pool(0);
  return pool;
}

ThreadPool* PoolFor(int threads) {
  static ThreadPool single(1);
  return threads == 1 ? &single : &Pool();
}

double g_memory_bandwidth = 0.0;  // bytes/s, measured once in main

// The 64 experts' weights, contiguous (expert e's gate, up, down at (3e, 3e+1, 3e+2) * kMatrix elements), in a
// 2 MiB-aligned buffer with a spare cache line so they can start at any offset within the first line.
class Weights {
 public:
  Weights() {
    const int64_t count = 3 * kMatrix * kExperts + 32;
    data_.reset(new (std::align_val_t{1 << 21}) uint16_t[static_cast<size_t>(count)]);
    // Filled in parallel so the pages are faulted in by the threads that will read them; small values keep the
    // activations finite (weights in [-0.02, 0.02)).
    uint16_t* d = data_.get();
    Pool().ParallelFor((count + 0xffff) >> 16, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b << 16; i < std::min(count, e << 16); ++i) {
        d[i] = F32ToBf16(0.00004f * static_cast<float>(i % 1000) - 0.02f);
      }
    });
  }
  // Pointers to the experts placed `offset_bytes` (even, < 64) past the buffer's start.
  [[nodiscard]] std::vector<ExpertWeightPtrs> Ptrs(int64_t offset_bytes) const {
    std::vector<ExpertWeightPtrs> ptrs;
    for (int64_t e = 0; e < kExperts; ++e) {
      const uint16_t* base = data_.get() + offset_bytes / 2 + 3 * e * kMatrix;
      ptrs.push_back({base, base + kMatrix, base + 2 * kMatrix});
    }
    return ptrs;
  }
  [[nodiscard]] const uint16_t* Expert(int64_t e) const { return data_.get() + 3 * e * kMatrix; }

 private:
  struct Deleter {
    void operator()(uint16_t* p) const { ::operator delete[](p, std::align_val_t{1 << 21}); }
  };
  std::unique_ptr<uint16_t[], Deleter> data_;
};

const Weights& TheWeights() {
  static const Weights* w = new Weights();
  return *w;
}

// Precomputed plans for T tokens. var_k = false: every token top-k; true: k_t uniform in [4, 8] (mean 6).
struct Routings {
  std::vector<DispatchPlan> plans;
  std::vector<int64_t> active_experts;  // per plan
  Routings(int64_t t, int64_t k, bool var_k) {
    std::mt19937 rng(12345);
    std::vector<int32_t> perm(kExperts);
    std::iota(perm.begin(), perm.end(), 0);
    int64_t cursor = kExperts;  // position in the current permutation: T = 1 walks disjoint sets
    for (int i = 0; i < kRoutings; ++i) {
      std::vector<int32_t> ks(static_cast<size_t>(t));
      std::uniform_int_distribution<int32_t> kd(4, 8);
      for (int32_t& v : ks) v = var_k ? kd(rng) : static_cast<int32_t>(k);
      const int64_t max_k = *std::max_element(ks.begin(), ks.end());
      std::vector<int32_t> ids(static_cast<size_t>(t * max_k), -1);
      std::vector<float> weights(static_cast<size_t>(t * max_k), 0.0f);
      for (int64_t tok = 0; tok < t; ++tok) {
        const int32_t kt = ks[static_cast<size_t>(tok)];
        if (t > 1 || cursor + kt > kExperts) {
          std::shuffle(perm.begin(), perm.end(), rng);
          cursor = 0;
        }
        for (int64_t j = 0; j < kt; ++j) {
          ids[static_cast<size_t>(tok * max_k + j)] = perm[static_cast<size_t>(cursor + j)];
          weights[static_cast<size_t>(tok * max_k + j)] = 1.0f / static_cast<float>(kt);
        }
        cursor += kt;
      }
      DispatchPlan plan;
      BuildDispatchPlan(ks.data(), ids.data(), weights.data(), t, max_k, kExperts, &plan);
      int64_t active = 0;
      for (int64_t e = 0; e < kExperts; ++e) {
        active += plan.expert_offsets[static_cast<size_t>(e) + 1] > plan.expert_offsets[static_cast<size_t>(e)];
      }
      active_experts.push_back(active);
      plans.push_back(std::move(plan));
    }
  }
};

// The fastest iteration's rates: on a shared machine the mean includes time the threads were descheduled.
class BestRate {
 public:
  void Add(std::chrono::steady_clock::time_point start, double bytes, double flops) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double work = bytes > 0 ? bytes : flops;
    if (seconds_ == 0.0 || s * work_ < seconds_ * work) {
      seconds_ = s;
      work_ = work;
      bytes_ = bytes;
      flops_ = flops;
    }
  }
  void SetCounters(benchmark::State& state, double bytes, double flops) const {
    using benchmark::Counter;
    if (bytes > 0) {
      state.counters["weight_bw"] = Counter(bytes / (1 << 30), Counter::kIsRate);
      if (seconds_ > 0) state.counters["best_bw"] = bytes_ / seconds_ / (1 << 30);
      if (g_memory_bandwidth > 0) {
        state.counters["of_mem_bw"] = Counter(bytes / g_memory_bandwidth, Counter::kIsRate);
        if (seconds_ > 0) state.counters["best_of_mem_bw"] = bytes_ / seconds_ / g_memory_bandwidth;
      }
    }
    if (flops > 0) {
      state.counters["GFLOP/s"] = Counter(1e-9 * flops, Counter::kIsRate);
      if (seconds_ > 0) state.counters["best_GFLOP/s"] = 1e-9 * flops_ / seconds_;
    }
  }

 private:
  double seconds_ = 0.0, work_ = 0.0, bytes_ = 0.0, flops_ = 0.0;
};

#if defined(__x86_64__)
// REQUIRES: words % 8 == 0.
__attribute__((target("avx2"), noinline)) uint64_t SumWords(const uint64_t* p, int64_t words) {
  __m256i a0 = _mm256_setzero_si256();
  __m256i a1 = _mm256_setzero_si256();
  for (int64_t i = 0; i < words; i += 8) {
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 4)));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_add_epi64(a0, a1));
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}
#else
uint64_t SumWords(const uint64_t* p, int64_t words) { return std::accumulate(p, p + words, uint64_t{0}); }
#endif

// The ceiling for decode under the same conditions: a plain streaming read (ParallelFor over 1 MiB chunks) of
// exactly the weights of the active experts of the same routings. args: T, threads (0 = all, 1 = one)
void BM_StreamActiveExperts(benchmark::State& state) {
  const int64_t t = state.range(0);
  ThreadPool* pool = PoolFor(static_cast<int>(state.range(1)));
  const Weights& w = TheWeights();
  const Routings routings(t, 8, false);
  constexpr int64_t kChunkWords = (1 << 20) / 8;
  constexpr int64_t kExpertWords = kExpertBytes / 8;
  std::vector<const uint64_t*> chunks;
  std::atomic<uint64_t> sink{0};
  double bytes = 0.0;
  BestRate best;
  size_t i = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    const DispatchPlan& plan = routings.plans[i];
    chunks.clear();
    for (int64_t e = 0; e < kExperts; ++e) {
      if (plan.expert_offsets[static_cast<size_t>(e) + 1] == plan.expert_offsets[static_cast<size_t>(e)]) continue;
      const auto* base = reinterpret_cast<const uint64_t*>(w.Expert(e));
      for (int64_t c = 0; c < kExpertWords; c += kChunkWords) chunks.push_back(base + c);
    }
    pool->ParallelFor(static_cast<int64_t>(chunks.size()), 1, [&](int64_t b, int64_t e) {
      uint64_t s = 0;
      for (int64_t c = b; c < e; ++c) s += SumWords(chunks[static_cast<size_t>(c)], kChunkWords);
      sink.fetch_add(s, std::memory_order_relaxed);
    });
    const double b = static_cast<double>(routings.active_experts[i] * kExpertBytes);
    best.Add(start, b, 0.0);
    bytes += b;
    i = (i + 1) % routings.plans.size();
  }
  benchmark::DoNotOptimize(sink.load());
  best.SetCounters(state, bytes, 0.0);
}
BENCHMARK(BM_StreamActiveExperts)->ArgNames({"T", "threads"})->ArgsProduct({{1, 16}, {0, 1}})->UseRealTime();

// args: T, k (top-k), var_k (k_t uniform in 4..8), matmul (1: every expert through MatMul), isa (-1: detected,
// else a MatMulIsaKind), threads (0 = all, 1 = one), offset (bytes past a cache line where the experts start),
// dots (0 = exact fp32 activations, 1 = DotPrecision::kBf16)
void BM_MoeExperts(benchmark::State& state) {
  const int64_t t = state.range(0);
  const int64_t k = state.range(1);
  const bool var_k = state.range(2) != 0;
  const bool matmul = state.range(3) != 0;
  MoeExpertsOptions options;
  if (state.range(4) >= 0) options.isa = static_cast<MatMulIsaKind>(state.range(4));
  if (!MatMulIsaSupported(options.isa)) {
    state.SkipWithError("ISA not supported by this CPU");
    return;
  }
  if (matmul) options.matmul_min_rows = 1;
  if (state.range(7) != 0) {
    if (!Bf16DotSupported()) {
      state.SkipWithError("no AVX512_BF16 on this CPU");
      return;
    }
    options.precision = DotPrecision::kBf16;
  }
  ThreadPool* pool = PoolFor(static_cast<int>(state.range(5)));
  state.SetLabel(std::string(MatMulIsaName(options.isa)) + (matmul ? " matmul" : " fused") +
                 (options.precision == DotPrecision::kBf16 ? " bf16-dots" : ""));
  const std::vector<ExpertWeightPtrs> experts = TheWeights().Ptrs(state.range(6));
  const Routings routings(t, k, var_k);
  std::vector<float> x(static_cast<size_t>(t * kHidden));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (float& v : x) v = uniform(rng);
  std::vector<float> out(static_cast<size_t>(t * kHidden), 0.0f);
  MoeScratch scratch;
  MoeExpertsParams p;
  p.x = x.data();
  p.hidden = kHidden;
  p.intermediate = kInter;
  p.dtype = DType::kBF16;
  p.experts = experts.data();
  p.out = out.data();

  const bool decode = t <= 16;
  double bytes = 0.0;
  double flops = 0.0;
  BestRate best;
  size_t i = 0;
  for (auto _ : state) {
    const DispatchPlan& plan = routings.plans[i];
    p.plan = &plan;
    const auto start = std::chrono::steady_clock::now();
    MoeExpertsWithOptions(p, &scratch, pool, options);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
    const double b = decode ? static_cast<double>(routings.active_experts[i] * kExpertBytes) : 0.0;
    const double f = 6.0 * static_cast<double>(kMatrix) * static_cast<double>(plan.num_rows());
    best.Add(start, b, f);
    bytes += b;
    flops += f;
    i = (i + 1) % routings.plans.size();
  }
  best.SetCounters(state, bytes, flops);
  double active = 0;
  for (int64_t a : routings.active_experts) active += static_cast<double>(a);
  state.counters["experts"] = active / static_cast<double>(routings.active_experts.size());
}

constexpr int64_t kDetected = -1;
constexpr auto kAvx2 = static_cast<int64_t>(MatMulIsaKind::kAvx2);

// Decode: T = 1, 4, 16 top-8 and T = 16 with variable k, fused vs every expert through MatMul; then T = 1 on
// one thread, with aligned experts, and the AVX2 path.
BENCHMARK(BM_MoeExperts)
    ->Name("BM_MoeDecode")
    ->ArgNames({"T", "k", "var_k", "matmul", "isa", "threads", "offset", "dots"})
    ->ArgsProduct({{1, 4, 16}, {8}, {0}, {0, 1}, {kDetected}, {0}, {8}, {0}})
    ->Args({16, 8, 1, 0, kDetected, 0, 8, 0})
    ->Args({16, 8, 1, 1, kDetected, 0, 8, 0})
    ->Args({1, 8, 0, 0, kDetected, 1, 8, 0})
    ->Args({1, 8, 0, 0, kDetected, 0, 0, 0})
    ->Args({1, 8, 0, 0, kAvx2, 0, 8, 0})
    ->Args({16, 8, 0, 0, kAvx2, 0, 8, 0})
    ->UseRealTime();

// Prefill: top-8 over T = 64, 256, 512 tokens, fused vs MatMul, on the detected ISA and AVX2 (these pick
// DefaultMoeMatMulMinRows).
BENCHMARK(BM_MoeExperts)
    ->Name("BM_MoePrefill")
    ->ArgNames({"T", "k", "var_k", "matmul", "isa", "threads", "offset", "dots"})
    ->ArgsProduct({{64, 256, 512}, {8}, {0}, {0, 1}, {kDetected}, {0}, {8}, {0}})
    ->ArgsProduct({{256, 512}, {8}, {0}, {0, 1}, {kAvx2}, {0}, {8}, {0}})
    ->UseRealTime();

// Exact fp32 activations vs bf16 dot products (DotPrecision), fused path: decode and prefill.
BENCHMARK(BM_MoeExperts)
    ->Name("BM_MoeBf16Dots")
    ->ArgNames({"T", "k", "var_k", "matmul", "isa", "threads", "offset", "dots"})
    ->ArgsProduct({{1, 4, 16, 64, 256}, {8}, {0}, {0}, {kDetected}, {0}, {8}, {0, 1}})
    ->UseRealTime();

}  // namespace
}  // namespace adak::kernels

int main(int argc, char** argv) {
  using adak::kernels::MeasureMemoryReadBandwidth;
  using adak::kernels::Pool;
  std::printf("MatMulIsa: %s, threads: %d\n", adak::kernels::MatMulIsa(), Pool().num_threads());
  adak::kernels::g_memory_bandwidth = MeasureMemoryReadBandwidth(&Pool());
  std::printf("Measured memory read bandwidth (%d threads, 1 GiB, best of 5): %.2f GiB/s\n", Pool().num_threads(),
              adak::kernels::g_memory_bandwidth / (1 << 30));
  std::fflush(stdout);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::printf("Memory read bandwidth at exit: %.2f GiB/s\n", MeasureMemoryReadBandwidth(&Pool()) / (1 << 30));
  return 0;
}
