// MatMul and ThreadPool benchmarks.
//
// GEMV (decode) numbers are reported as weight bytes per second ("weight_bw") and as a fraction ("of_mem_bw")
// of the streaming read bandwidth ("mem_bw", MeasureMemoryReadBandwidth over 256 MiB with the same threads)
// measured just before each benchmark; the 1 GiB figure is also printed once at start-up. The weight
// sets are cycled so the working set (>= 256 MiB) never fits in the last-level cache: "experts" cycles 64
// OLMoE-sized expert projections [1024, 2048], "large" cycles 8 copies of [8192, 2048]. Prefill reports
// GFLOP/s (2 * T * N * K per call). Pass --benchmark_min_time=0.2 for a quick run.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/dtype.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/thread_pool.h"

namespace adak::kernels {
namespace {

ThreadPool& Pool() {
  static ThreadPool pool(0);
  return pool;
}

// A set of `copies` bf16 weight matrices [n, k] (contiguous), plus activations and outputs for T tokens.
struct Problem {
  int64_t n;
  int64_t k;
  int64_t t;
  int copies;
  int64_t w_offset;  // bytes from a 64-byte boundary to the weights (a multiple of 2)
  std::vector<uint16_t> w_storage;
  uint16_t* w_data = nullptr;  // n * k * copies elements inside w_storage
  std::vector<float> x;
  std::vector<float> out;

  Problem(int64_t n_, int64_t k_, int64_t t_, int copies_, int64_t w_offset_)
      : n(n_), k(k_), t(t_), copies(copies_), w_offset(w_offset_) {
    w_storage.resize(static_cast<size_t>(n * k * copies + 64));
    const auto base = reinterpret_cast<uintptr_t>(w_storage.data());
    w_data = reinterpret_cast<uint16_t*>((base + 63) / 64 * 64 + static_cast<uintptr_t>(w_offset));
    const std::span<uint16_t> w(w_data, static_cast<size_t>(n * k * copies));
    x.resize(static_cast<size_t>(t * k));
    out.resize(static_cast<size_t>(t * n));
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    // Fill in parallel so the pages are faulted in by the threads that will read them.
    Pool().ParallelFor(static_cast<int64_t>(w.size()) >> 16, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b << 16; i < (e << 16); ++i) w[static_cast<size_t>(i)] = F32ToBf16(0.001f * (i % 1000));
    });
    for (float& v : x) v = uniform(rng);
  }

  MatMulParams Params(int copy) const {
    MatMulParams p;
    p.x = x.data();
    p.rows = t;
    p.k = k;
    p.w = w_data + static_cast<size_t>(copy) * static_cast<size_t>(n * k);
    p.w_dtype = DType::kBF16;
    p.n = n;
    p.out = const_cast<float*>(out.data());
    return p;
  }
};

// weight_bw: weight bytes per second; of_mem_bw: that as a fraction of `floor` (bytes/s), the read bandwidth
// measured with the same threads just before the benchmark (the cores are shared, so the bandwidth measured
// once at start-up can be from a quieter moment); mem_bw: that floor.
void SetBandwidthCounters(benchmark::State& state, double bytes_per_iteration, double floor) {
  const double bytes = bytes_per_iteration * static_cast<double>(state.iterations());
  state.counters["weight_bw"] = benchmark::Counter(bytes, benchmark::Counter::kIsRate, benchmark::Counter::kIs1024);
  if (floor > 0) {
    state.counters["of_mem_bw"] = benchmark::Counter(bytes / floor, benchmark::Counter::kIsRate);
    state.counters["mem_bw"] = benchmark::Counter(floor, benchmark::Counter::kDefaults, benchmark::Counter::kIs1024);
  }
}

// args: n, k, T, copies, threads (0 = all), sgemm_min_rows (0 = default), isa (-1 = detected, else a
// MatMulIsaKind), stream_decode (1 = default, 0 = the earlier decode kernel; see MatMulOptions), w_offset (bytes
// from a 64-byte boundary to the weights; mmapped checkpoint tensors are only 8-byte aligned), dots (0 = exact
// fp32 activations, 1 = DotPrecision::kBf16)
void BM_MatMulBf16(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int64_t k = state.range(1);
  const int64_t t = state.range(2);
  const int copies = static_cast<int>(state.range(3));
  const int threads = static_cast<int>(state.range(4));
  MatMulOptions options;
  if (state.range(5) != 0) options.sgemm_min_rows = state.range(5);
  if (state.range(6) >= 0) options.isa = static_cast<MatMulIsaKind>(state.range(6));
  const int64_t w_offset = state.range(8);
  options.stream_decode = state.range(7) != 0;
  if (state.range(9) != 0) options.precision = DotPrecision::kBf16;
  if (!MatMulIsaSupported(options.isa)) {
    state.SkipWithError("ISA not supported by this CPU");
    return;
  }
  if (options.precision == DotPrecision::kBf16 && !Bf16DotSupported()) {
    state.SkipWithError("no AVX512_BF16 on this CPU");
    return;
  }
  state.SetLabel(std::string(MatMulIsaName(options.isa)) + (options.stream_decode ? "" : " old-decode") +
                 (options.precision == DotPrecision::kBf16 ? " bf16-dots" : ""));
  static Problem* problem = nullptr;  // reused across runs with the same shape (allocation is slow)
  if (problem == nullptr || problem->n != n || problem->k != k || problem->t != t || problem->copies != copies ||
      problem->w_offset != w_offset) {
    delete problem;
    problem = new Problem(n, k, t, copies, w_offset);
  }
  ThreadPool single(1);
  ThreadPool* pool = threads == 1 ? &single : &Pool();
  const double floor = MeasureMemoryReadBandwidth(pool, size_t{256} << 20);
  int copy = 0;
  for (auto _ : state) {
    MatMulWithOptions(problem->Params(copy), pool, options);
    benchmark::DoNotOptimize(problem->out.data());
    benchmark::ClobberMemory();
    copy = (copy + 1) % copies;
  }
  SetBandwidthCounters(state, static_cast<double>(n * k * 2), floor);
  state.counters["GFLOP/s"] = benchmark::Counter(
      2e-9 * static_cast<double>(t * n * k) * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

constexpr int64_t kGemv = std::numeric_limits<int64_t>::max();  // never sgemm
constexpr int64_t kSgemm = 1;                                   // always sgemm
constexpr auto kAvx2 = static_cast<int64_t>(MatMulIsaKind::kAvx2);
constexpr auto kScalar = static_cast<int64_t>(MatMulIsaKind::kScalar);

// Decode GEMV: experts [1024, 2048] x 64 and large [8192, 2048] x 8, T = 1, 4, 16, all threads.
BENCHMARK(BM_MatMulBf16)
    ->ArgNames({"n", "k", "T", "copies", "threads", "sgemm_min", "isa", "stream", "w_off", "dots"})
    ->Args({1024, 2048, 1, 64, 0, 0, -1, 1, 0, 0})
    ->Args({1024, 2048, 2, 64, 0, 0, -1, 1, 0, 0})
    ->Args({1024, 2048, 4, 64, 0, 0, -1, 1, 0, 0})
    ->Args({1024, 2048, 16, 64, 0, 0, -1, 1, 0, 0})
    ->Args({8192, 2048, 1, 8, 0, 0, -1, 1, 0, 0})
    ->Args({8192, 2048, 4, 8, 0, 0, -1, 1, 0, 0})
    ->Args({8192, 2048, 16, 8, 0, 0, -1, 1, 0, 0})
    ->Args({8192, 2048, 1, 8, 1, 0, -1, 1, 0, 0})  // one thread
    ->UseRealTime();

// The engine's dense decode projections (OLMoE attention [2048, 2048] and LM head [50304, 2048], T = 1 and 4),
// new vs earlier decode kernel, with weights 64-byte aligned and 8-byte aligned (as mmapped checkpoints).
BENCHMARK(BM_MatMulBf16)
    ->Name("BM_MatMulBf16_DecodeAB")
    ->ArgNames({"n", "k", "T", "copies", "threads", "sgemm_min", "isa", "stream", "w_off", "dots"})
    ->ArgsProduct({{2048}, {2048}, {1, 4}, {32}, {0}, {0}, {-1}, {0, 1}, {0, 8}, {0}})
    ->ArgsProduct({{50304}, {2048}, {1, 4}, {2}, {0}, {0}, {-1}, {0, 1}, {0, 8}, {0}})
    ->UseRealTime();

// Compute-bound view: one thread, W = [128, 2048] bf16 (512 KiB) stays in L2.
BENCHMARK(BM_MatMulBf16)
    ->Name("BM_MatMulBf16_L2Resident")
    ->ArgNames({"n", "k", "T", "copies", "threads", "sgemm_min", "isa", "stream", "w_off", "dots"})
    ->ArgsProduct({{128}, {2048}, {1, 2, 4, 8, 16, 64}, {1}, {1}, {0}, {-1}, {1}, {0}, {0}})
    ->UseRealTime();

// Where the register-blocked kernel and widen + sgemm cross over, per ISA (picks DefaultSgemmMinRows).
BENCHMARK(BM_MatMulBf16)
    ->Name("BM_MatMulBf16_Crossover")
    ->ArgNames({"n", "k", "T", "copies", "threads", "sgemm_min", "isa", "stream", "w_off", "dots"})
    ->ArgsProduct({{1024}, {2048}, {8, 32, 256}, {64}, {0}, {kGemv, kSgemm}, {-1, kAvx2, kScalar}, {1}, {0}, {0}})
    ->UseRealTime();

// Exact fp32 activations vs bf16 dot products (DotPrecision), decode and prefill token counts: an expert-sized
// matrix from memory, and one thread from L2 (the compute-bound view).
BENCHMARK(BM_MatMulBf16)
    ->Name("BM_MatMulBf16_Dots")
    ->ArgNames({"n", "k", "T", "copies", "threads", "sgemm_min", "isa", "stream", "w_off", "dots"})
    ->ArgsProduct({{2048}, {2048}, {1, 4, 64, 256}, {32}, {0}, {0}, {-1}, {1}, {8}, {0, 1}})
    ->ArgsProduct({{128}, {2048}, {4, 64}, {1}, {1}, {0}, {-1}, {1}, {0}, {0, 1}})
    ->UseRealTime();

// The AVX2 path on the same decode shapes (for CPUs without AVX-512).
BENCHMARK(BM_MatMulBf16)
    ->Name("BM_MatMulBf16_Avx2")
    ->ArgNames({"n", "k", "T", "copies", "threads", "sgemm_min", "isa", "stream", "w_off", "dots"})
    ->ArgsProduct({{8192}, {2048}, {1, 4, 16}, {8}, {0}, {0}, {kAvx2}, {1}, {0}, {0}})
    ->UseRealTime();

// Prefill: T = 256 (and 1024) on the default path, and through widen + sgemm for comparison.
BENCHMARK(BM_MatMulBf16)
    ->Name("BM_MatMulBf16_Prefill")
    ->ArgNames({"n", "k", "T", "copies", "threads", "sgemm_min", "isa", "stream", "w_off", "dots"})
    ->Args({1024, 2048, 256, 64, 0, 0, -1, 1, 0, 0})
    ->Args({2048, 1024, 256, 64, 0, 0, -1, 1, 0, 0})
    ->Args({8192, 2048, 256, 8, 0, 0, -1, 1, 0, 0})
    ->Args({1024, 2048, 256, 64, 0, kSgemm, -1, 1, 0, 0})  // widen + OpenBLAS sgemm, for comparison
    ->Args({8192, 2048, 256, 8, 0, kSgemm, -1, 1, 0, 0})
    ->Args({8192, 2048, 1024, 1, 0, kGemv, -1, 1, 0, 0})
    ->Args({8192, 2048, 1024, 1, 0, kSgemm, -1, 1, 0, 0})
    ->UseRealTime();

// ~2 us of dependent arithmetic, the unit of work for the ParallelFor benchmarks below.
float SpinWork(float seed) {
  float v = seed;
  for (int i = 0; i < 2000; ++i) v = v * 0.999999f + 1e-7f;
  return v;
}

// One unit of work on the calling thread: the ideal time of BM_ParallelForBusy.
void BM_SerialUnit(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(SpinWork(1.0f));
}
BENCHMARK(BM_SerialUnit)->UseRealTime();

// One unit per thread: time minus BM_SerialUnit is the ParallelFor overhead when every worker participates.
void BM_ParallelForBusy(benchmark::State& state) {
  ThreadPool& pool = Pool();
  const int64_t n = pool.num_threads();
  for (auto _ : state) {
    pool.ParallelFor(n, 1, [](int64_t b, int64_t) { benchmark::DoNotOptimize(SpinWork(static_cast<float>(b))); });
  }
}
BENCHMARK(BM_ParallelForBusy)->UseRealTime();

// Round trip of a ParallelFor whose chunks do nothing, one chunk per thread (the caller may run them all
// before a worker notices).
void BM_ParallelForEmpty(benchmark::State& state) {
  ThreadPool& pool = Pool();
  const int64_t n = pool.num_threads();
  for (auto _ : state) {
    pool.ParallelFor(n, 1, [](int64_t b, int64_t e) { benchmark::DoNotOptimize(b + e); });
  }
  state.counters["threads"] = static_cast<double>(pool.num_threads());
}
BENCHMARK(BM_ParallelForEmpty)->UseRealTime();

// The same after the workers have gone to sleep (1 ms idle): the futex wake-up path.
void BM_ParallelForAfterIdle(benchmark::State& state) {
  ThreadPool& pool = Pool();
  const int64_t n = pool.num_threads();
  for (auto _ : state) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto start = std::chrono::steady_clock::now();
    pool.ParallelFor(n, 1, [](int64_t b, int64_t e) { benchmark::DoNotOptimize(b + e); });
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
}
BENCHMARK(BM_ParallelForAfterIdle)->UseManualTime()->Iterations(200);

}  // namespace
}  // namespace adak::kernels

int main(int argc, char** argv) {
  using adak::kernels::MeasureMemoryReadBandwidth;
  using adak::kernels::Pool;
  std::printf("MatMulIsa: %s, threads: %d\n", adak::kernels::MatMulIsa(), Pool().num_threads());
  const double bandwidth = MeasureMemoryReadBandwidth(&Pool());
  const double bandwidth_1t = MeasureMemoryReadBandwidth(nullptr);
  std::printf("Measured memory read bandwidth (1 GiB, best of 5): %.2f GiB/s with %d threads, %.2f GiB/s with 1\n",
              bandwidth / (1 << 30), Pool().num_threads(), bandwidth_1t / (1 << 30));
  std::fflush(stdout);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
