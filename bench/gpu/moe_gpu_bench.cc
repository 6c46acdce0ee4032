// moe_gpu_bench: the CUDA backend's MoE layer against its memory and compute ceilings (issue: the CUDA backend;
// docs/gpu.md). Prints one line per measurement; needs a GPU (exits 1 without one, naming why).
//
//   moe_gpu_bench [decode|prefill|adak|all] [--iters N]
//
//  decode:  CudaBackend::Moe step time for B = 1..256 tokens on the OLMoE layer (H 2048, 64 experts of I 1024,
//           top-8) and a Mixtral layer (H 4096, 8 experts of I 14336, top-2), BF16 experts, against the HBM
//           floor: (U(B) experts x 3 H I x 2 bytes + the fp32 fused gate) / the bandwidth of a device-to-device
//           copy measured in the same run, U(B) = the distinct experts the step's routing touched.
//  prefill: the grouped gate/up (gather + SwiGLU fused) and down GEMMs over T = 4096 tokens x top-8 rows
//           (OLMoE layer) in TFLOP/s, against cuBLAS's dense bf16 GEMM of the same total size (M = sum k,
//           the same N and K) and against cublasGemmGroupedBatchedEx over the same per-expert groups.
//  adak:    step time with per-token k in 1..8 (mean ~4.5, as Ada-K chooses) against native top-8 for
//           B = 1..64, and the ideal ratio: the bytes of the experts each step touched.
// decode and adak run the serving default, --matmul-precision bf16 (experts on the tensor cores); prefill times
// both GEMM bodies (exact fp32 FMAs and bf16 mma.sync) and compares the faster with the baselines.
// Times: the mean over --iters steps after 3 warm-ups, wall clock around enqueue + Synchronize (decode, adak:
// what the scheduler sees, launch overhead included) or CUDA events (prefill GEMMs).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/dtype.h"
#include "engine/backend.h"
#include "engine/cuda_backend.h"
#include "engine/tensor_view.h"
#include "kernels/cpu/moe_routing.h"
#include "kernels/cuda/cublas_loader.h"
#include "kernels/cuda/dispatch_plan.h"
#include "kernels/cuda/grouped_gemm.h"

namespace adak::bench {
namespace {

using engine::Backend;
using engine::DeviceBuffer;
using engine::MlpTensors;
using engine::Tensor;

#define BENCH_CHECK(expr)                                                                        \
  do {                                                                                           \
    if (const auto& s_ = (expr); !s_.ok()) {                                                     \
      std::fprintf(stderr, "moe_gpu_bench: %s: %s\n", #expr, std::string(s_.message()).c_str()); \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)

struct Shape {
  const char* name;
  int64_t hidden, inter, experts, top_k;
};
constexpr Shape kOlmoe{"olmoe", 2048, 1024, 64, 8};
constexpr Shape kMixtral{"mixtral", 4096, 14336, 8, 2};

double Seconds(std::chrono::steady_clock::time_point a) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
}

// Random bf16 values N(0, 0.02) (one host buffer, reused for every tensor of the same size).
std::vector<uint16_t> RandomBf16(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.02f);
  std::vector<uint16_t> v(n);
  for (uint16_t& x : v) x = F32ToBf16(d(rng));
  return v;
}

// One MoE layer on the device.
struct Layer {
  Shape shape;
  std::vector<MlpTensors> experts;
  Tensor gate;  // [E, H] f32
  std::unique_ptr<DeviceBuffer> gate_storage;
};

Tensor Weight(Backend& b, const std::vector<uint16_t>& host, int64_t rows, int64_t cols) {
  engine::TensorView v;
  v.data = reinterpret_cast<const std::byte*>(host.data());
  v.dtype = DType::kBF16;
  v.shape = {rows, cols};
  v.name = "bench";
  absl::StatusOr<Tensor> t = b.PrepareWeight(v);
  BENCH_CHECK(t.status());
  return *t;
}

Layer MakeLayer(Backend& b, const Shape& s) {
  Layer l{s, {}, {}, nullptr};
  const std::vector<uint16_t> w = RandomBf16(static_cast<size_t>(s.inter * s.hidden), 1);
  for (int64_t e = 0; e < s.experts; ++e) {
    l.experts.push_back(
        {Weight(b, w, s.inter, s.hidden), Weight(b, w, s.inter, s.hidden), Weight(b, w, s.hidden, s.inter)});
  }
  std::mt19937 rng(2);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> gate(static_cast<size_t>(s.experts * s.hidden));
  for (float& x : gate) x = d(rng) * 0.05f;
  absl::StatusOr<std::unique_ptr<DeviceBuffer>> g = b.Allocate(gate.size() * sizeof(float));
  BENCH_CHECK(g.status());
  BENCH_CHECK(b.Upload(gate.data(), gate.size() * sizeof(float), (*g)->data()));
  l.gate = Tensor{(*g)->data(), DType::kF32, s.experts, s.hidden, s.hidden};
  l.gate_storage = *std::move(g);
  return l;
}

struct Step {
  double seconds = 0;  // per step
  int64_t unique_experts = 0;
  double mean_k = 0;
};

// Times Moe over `tokens` tokens whose k is `k_of(t)` (native top-k routing with a per-token k).
template <class KOf>
Step TimeMoe(Backend& b, const Layer& l, int64_t tokens, KOf k_of, int iters) {
  const Shape& s = l.shape;
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(tokens * s.hidden));
  for (float& v : x) v = d(rng);
  std::vector<kernels::TokenRoute> routes(static_cast<size_t>(tokens));
  for (int64_t t = 0; t < tokens; ++t) routes[static_cast<size_t>(t)].k = k_of(t);
  auto alloc = [&](size_t bytes) {
    absl::StatusOr<std::unique_ptr<DeviceBuffer>> buf = b.Allocate(bytes);
    BENCH_CHECK(buf.status());
    return *std::move(buf);
  };
  auto xd = alloc(x.size() * 4), outd = alloc(x.size() * 4), rd = alloc(routes.size() * sizeof(kernels::TokenRoute));
  auto kd = alloc(static_cast<size_t>(tokens) * 4), idsd = alloc(static_cast<size_t>(tokens * s.experts) * 4),
       wd = alloc(static_cast<size_t>(tokens * s.experts) * 4);
  BENCH_CHECK(b.Upload(x.data(), x.size() * 4, xd->data()));
  BENCH_CHECK(b.Upload(routes.data(), routes.size() * sizeof(kernels::TokenRoute), rd->data()));
  engine::MoeArgs m;
  m.x = Tensor{xd->data(), DType::kF32, tokens, s.hidden, s.hidden};
  m.gate = l.gate;
  m.num_experts = s.experts;
  m.renormalize = true;
  m.routes = static_cast<const kernels::TokenRoute*>(rd->data());
  m.experts = l.experts;
  m.out = Tensor{outd->data(), DType::kF32, tokens, s.hidden, s.hidden};
  m.k_out = static_cast<int32_t*>(kd->data());
  m.ids_out = static_cast<int32_t*>(idsd->data());
  m.weights_out = static_cast<float*>(wd->data());
  b.Moe(m);
  BENCH_CHECK(b.Synchronize());
  std::vector<int32_t> k(static_cast<size_t>(tokens)), ids(static_cast<size_t>(tokens * s.experts));
  BENCH_CHECK(b.Download(kd->data(), k.size() * 4, k.data()));
  BENCH_CHECK(b.Download(idsd->data(), ids.size() * 4, ids.data()));
  Step r;
  std::set<int32_t> unique;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int32_t j = 0; j < k[static_cast<size_t>(t)]; ++j) unique.insert(ids[static_cast<size_t>(t * s.experts + j)]);
    r.mean_k += k[static_cast<size_t>(t)];
  }
  r.mean_k /= static_cast<double>(tokens);
  r.unique_experts = static_cast<int64_t>(unique.size());
  m.ids_out = nullptr;
  m.weights_out = nullptr;
  for (int i = 0; i < 3; ++i) b.Moe(m);
  BENCH_CHECK(b.Synchronize());
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) b.Moe(m);
  BENCH_CHECK(b.Synchronize());
  r.seconds = Seconds(start) / iters;
  return r;
}

// Bytes per second of a device-to-device copy of 1 GiB (bytes read + written / time), best of 5.
double MeasureBandwidth() {
  const size_t n = size_t{1} << 30;
  void *a = nullptr, *c = nullptr;
  if (cudaMalloc(&a, n) != cudaSuccess || cudaMalloc(&c, n) != cudaSuccess) return 0;
  cudaMemset(a, 1, n);
  double best = 0;
  for (int i = 0; i < 6; ++i) {
    cudaDeviceSynchronize();
    const auto start = std::chrono::steady_clock::now();
    cudaMemcpy(c, a, n, cudaMemcpyDeviceToDevice);
    cudaDeviceSynchronize();
    if (i > 0) best = std::max(best, 2.0 * static_cast<double>(n) / Seconds(start));
  }
  cudaFree(a);
  cudaFree(c);
  return best;
}

double ExpertBytes(const Shape& s) { return 3.0 * static_cast<double>(s.hidden * s.inter) * 2.0; }

void Decode(Backend& b, int iters, double bandwidth) {
  for (const Shape& s : {kOlmoe, kMixtral}) {
    const Layer l = MakeLayer(b, s);
    for (int64_t batch : {1, 2, 4, 8, 16, 32, 64, 128, 256}) {
      const Step st = TimeMoe(
          b, l, batch, [&](int64_t) { return static_cast<int32_t>(s.top_k); }, iters);
      const double bytes =
          static_cast<double>(st.unique_experts) * ExpertBytes(s) + static_cast<double>(s.experts * s.hidden) * 4.0;
      const double floor = bytes / bandwidth;
      std::printf("decode shape=%s B=%lld U=%lld step_us=%.1f floor_us=%.1f pct_of_floor=%.1f\n", s.name,
                  static_cast<long long>(batch), static_cast<long long>(st.unique_experts), st.seconds * 1e6,
                  floor * 1e6, 100.0 * floor / st.seconds);
    }
  }
}

void Adak(Backend& b, int iters) {
  const Layer l = MakeLayer(b, kOlmoe);
  for (int64_t batch : {1, 2, 4, 8, 16, 32, 64}) {
    const Step top = TimeMoe(
        b, l, batch, [](int64_t) { return 8; }, iters);
    const Step ada = TimeMoe(
        b, l, batch, [](int64_t t) { return static_cast<int32_t>(1 + (t * 5 + 3) % 8); }, iters);
    std::printf(
        "adak shape=olmoe B=%lld mean_k=%.2f topk_us=%.1f adak_us=%.1f time_ratio=%.3f ideal_bytes_ratio=%.3f\n",
        static_cast<long long>(batch), ada.mean_k, top.seconds * 1e6, ada.seconds * 1e6, ada.seconds / top.seconds,
        static_cast<double>(ada.unique_experts) / static_cast<double>(top.unique_experts));
  }
}

// ---- prefill: the grouped GEMMs alone ----

float EventMs(cudaEvent_t a, cudaEvent_t c) {
  float ms = 0;
  cudaEventElapsedTime(&ms, a, c);
  return ms;
}

template <class F>
double TimeMs(F f, int iters) {
  cudaEvent_t a, c;
  cudaEventCreate(&a);
  cudaEventCreate(&c);
  for (int i = 0; i < 3; ++i) f();
  cudaEventRecord(a);
  for (int i = 0; i < iters; ++i) f();
  cudaEventRecord(c);
  cudaEventSynchronize(c);
  const double ms = EventMs(a, c) / iters;
  cudaEventDestroy(a);
  cudaEventDestroy(c);
  return ms;
}

void* DeviceCopy(const void* host, size_t bytes) {
  void* d = nullptr;
  if (cudaMalloc(&d, bytes) != cudaSuccess) return nullptr;
  cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice);
  return d;
}

void Prefill(int iters) {
  const Shape s = kOlmoe;
  const int64_t tokens = 4096, km = s.top_k;
  // Routing: top-8 distinct experts per token, uniformly random (balanced in expectation).
  std::mt19937 rng(4);
  std::vector<int32_t> k(static_cast<size_t>(tokens), static_cast<int32_t>(km)), ids(static_cast<size_t>(tokens * km));
  std::vector<float> w(ids.size(), 0.125f);
  std::vector<int32_t> perm(static_cast<size_t>(s.experts));
  for (int64_t t = 0; t < tokens; ++t) {
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    std::copy(perm.begin(), perm.begin() + km, ids.begin() + t * km);
  }
  std::vector<int32_t> words(static_cast<size_t>(kernels::cuda::PlanWords(tokens, s.experts, km)), 0);
  const kernels::cuda::PlanArrays host_plan =
      kernels::cuda::CarvePlan(words.data(), tokens, s.experts, km, kernels::cuda::kGemmTileM);
  kernels::cuda::BuildPlanSequential(host_plan, k.data(), ids.data(), w.data());
  const int64_t rows = kernels::cuda::PlanRows(host_plan);
  auto* dwords = static_cast<int32_t*>(DeviceCopy(words.data(), words.size() * 4));
  const kernels::cuda::PlanArrays plan =
      kernels::cuda::CarvePlan(dwords, tokens, s.experts, km, kernels::cuda::kGemmTileM);

  const std::vector<uint16_t> wh = RandomBf16(static_cast<size_t>(s.inter * s.hidden), 5);
  std::vector<void*> gate(static_cast<size_t>(s.experts)), up(gate.size()), down(gate.size());
  for (size_t e = 0; e < gate.size(); ++e) {
    gate[e] = DeviceCopy(wh.data(), wh.size() * 2);
    up[e] = DeviceCopy(wh.data(), wh.size() * 2);
    down[e] = DeviceCopy(wh.data(), wh.size() * 2);
  }
  auto* gate_d = static_cast<const void* const*>(DeviceCopy(gate.data(), gate.size() * sizeof(void*)));
  auto* up_d = static_cast<const void* const*>(DeviceCopy(up.data(), up.size() * sizeof(void*)));
  auto* down_d = static_cast<const void* const*>(DeviceCopy(down.data(), down.size() * sizeof(void*)));
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> xh(static_cast<size_t>(tokens * s.hidden));
  for (float& v : xh) v = d(rng);
  auto* x = static_cast<float*>(DeviceCopy(xh.data(), xh.size() * 4));
  void *hv = nullptr, *yv = nullptr;
  cudaMalloc(&hv, static_cast<size_t>(rows * s.inter) * 4);
  cudaMalloc(&yv, static_cast<size_t>(rows * s.hidden) * 4);
  auto* h = static_cast<float*>(hv);
  auto* y = static_cast<float*>(yv);

  kernels::cuda::ExpertGemms gemms =
      kernels::cuda::MakeExpertGemms(plan, x, s.hidden, s.hidden, s.inter,
                                     kernels::cuda::ExpertWeights{gate_d, up_d, down_d, DType::kBF16}, h, y, false);
  kernels::cuda::RowGemmParams& gu = gemms.gate_up;
  kernels::cuda::RowGemmParams& dn = gemms.down;
  const double gu_flops = 2.0 * static_cast<double>(rows) * s.hidden * 2.0 * s.inter;
  const double dn_flops = 2.0 * static_cast<double>(rows) * s.inter * s.hidden;
  double gu_ms = 0, dn_ms = 0;  // the faster of the two variants, for the baselines' ratios
  for (const bool tc : {false, true}) {
    gu.bf16_tensor_cores = tc;
    dn.bf16_tensor_cores = tc;
    const double g = TimeMs([&] { kernels::cuda::LaunchRowGemm(gu, rows, nullptr); }, iters);
    const double dd = TimeMs([&] { kernels::cuda::LaunchRowGemm(dn, rows, nullptr); }, iters);
    const char* name = tc ? "ours_bf16_mma" : "ours_fp32_fma";
    std::printf("prefill %s stage=gate_up rows=%lld ms=%.3f tflops=%.1f\n", name, static_cast<long long>(rows), g,
                gu_flops / g / 1e9);
    std::printf("prefill %s stage=down rows=%lld ms=%.3f tflops=%.1f\n", name, static_cast<long long>(rows), dd,
                dn_flops / dd / 1e9);
    gu_ms = gu_ms == 0 ? g : std::min(gu_ms, g);
    dn_ms = dn_ms == 0 ? dd : std::min(dn_ms, dd);
  }
  if (cudaGetLastError() != cudaSuccess) std::printf("prefill ours: launch error\n");

  const kernels::cuda::CublasApi* api = kernels::cuda::Cublas();
  if (api == nullptr) {
    std::printf("prefill cublas: not loadable (libcublas.so.13), baselines skipped\n");
    return;
  }
  cublasHandle_t handle;
  api->create(&handle);
  // Dense baseline: bf16 A [rows, K] x W^T -> f32, the same M, N, K as each stage.
  void *a16 = nullptr, *wd = nullptr, *c32 = nullptr;
  cudaMalloc(&a16, static_cast<size_t>(rows * std::max(s.hidden, s.inter)) * 2);
  cudaMalloc(&wd, static_cast<size_t>(2 * s.inter * s.hidden) * 2);
  cudaMalloc(&c32, static_cast<size_t>(rows * std::max(2 * s.inter, s.hidden)) * 4);
  cudaMemset(a16, 0x3c, static_cast<size_t>(rows * std::max(s.hidden, s.inter)) * 2);
  cudaMemset(wd, 0x3c, static_cast<size_t>(2 * s.inter * s.hidden) * 2);
  const float one = 1.0f, zero = 0.0f;
  auto dense = [&](int64_t n, int64_t kk) {
    api->gemm_ex(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(rows), static_cast<int>(kk),
                 &one, wd, CUDA_R_16BF, static_cast<int>(kk), a16, CUDA_R_16BF, static_cast<int>(kk), &zero, c32,
                 CUDA_R_32F, static_cast<int>(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  };
  const double dgu = TimeMs([&] { dense(2 * s.inter, s.hidden); }, iters);
  const double ddn = TimeMs([&] { dense(s.hidden, s.inter); }, iters);
  std::printf("prefill cublas_dense stage=gate_up ms=%.3f tflops=%.1f ours_pct=%.1f\n", dgu, gu_flops / dgu / 1e9,
              100.0 * dgu / gu_ms);
  std::printf("prefill cublas_dense stage=down ms=%.3f tflops=%.1f ours_pct=%.1f\n", ddn, dn_flops / ddn / 1e9,
              100.0 * ddn / dn_ms);
  if (api->gemm_grouped_batched_ex == nullptr) {
    std::printf("prefill cublas_grouped: cublasGemmGroupedBatchedEx not in this cuBLAS\n");
    return;
  }
  // Grouped baseline: one group per expert (gate and up as 2E groups), rows contiguous per expert.
  auto grouped = [&](int64_t n, int64_t kk, int copies) {
    const auto groups = static_cast<int>(s.experts * copies);
    std::vector<cublasOperation_t> ta(static_cast<size_t>(groups), CUBLAS_OP_T), tb(ta.size(), CUBLAS_OP_N);
    std::vector<int> m(ta.size()), nn(ta.size()), kv(ta.size(), static_cast<int>(kk)),
        lda(ta.size(), static_cast<int>(kk)), ldb(ta.size(), static_cast<int>(kk)), ldc(ta.size()), size(ta.size(), 1);
    std::vector<float> alpha(ta.size(), 1.0f), beta(ta.size(), 0.0f);
    std::vector<const void*> a(ta.size()), bb(ta.size());
    std::vector<void*> c(ta.size());
    for (int g = 0; g < groups; ++g) {
      const int e = g % static_cast<int>(s.experts);
      const int32_t r0 = host_plan.expert_offsets[e], r1 = host_plan.expert_offsets[e + 1];
      m[static_cast<size_t>(g)] = static_cast<int>(n);
      nn[static_cast<size_t>(g)] = r1 - r0;
      ldc[static_cast<size_t>(g)] = static_cast<int>(n);
      a[static_cast<size_t>(g)] = wd;
      bb[static_cast<size_t>(g)] = static_cast<const uint16_t*>(a16) + static_cast<int64_t>(r0) * kk;
      c[static_cast<size_t>(g)] = static_cast<float*>(c32) + static_cast<int64_t>(r0) * n;
    }
    auto* ad = static_cast<const void* const*>(DeviceCopy(a.data(), a.size() * sizeof(void*)));
    auto* bd = static_cast<const void* const*>(DeviceCopy(bb.data(), bb.size() * sizeof(void*)));
    auto* cd = static_cast<void* const*>(DeviceCopy(c.data(), c.size() * sizeof(void*)));
    const double ms = TimeMs(
        [&] {
          api->gemm_grouped_batched_ex(handle, ta.data(), tb.data(), m.data(), nn.data(), kv.data(), alpha.data(), ad,
                                       CUDA_R_16BF, lda.data(), bd, CUDA_R_16BF, ldb.data(), beta.data(), cd,
                                       CUDA_R_32F, ldc.data(), groups, size.data(), CUBLAS_COMPUTE_32F);
        },
        iters);
    return ms;
  };
  const double ggu = grouped(s.inter, s.hidden, 2);
  const double gdn = grouped(s.hidden, s.inter, 1);
  std::printf("prefill cublas_grouped stage=gate_up ms=%.3f tflops=%.1f ours_pct=%.1f\n", ggu, gu_flops / ggu / 1e9,
              100.0 * ggu / gu_ms);
  std::printf("prefill cublas_grouped stage=down ms=%.3f tflops=%.1f ours_pct=%.1f\n", gdn, dn_flops / gdn / 1e9,
              100.0 * gdn / dn_ms);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) std::printf("prefill: %s\n", cudaGetErrorString(e));
}

}  // namespace
}  // namespace adak::bench

int main(int argc, char** argv) {
  std::string what = argc > 1 ? argv[1] : "all";
  int iters = 20;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--iters") == 0) iters = std::max(1, std::atoi(argv[i + 1]));
  }
  if (!adak::engine::CudaDevicePresent()) {
    std::fprintf(stderr, "moe_gpu_bench: no CUDA device here\n");
    return 1;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  const double bandwidth = adak::bench::MeasureBandwidth();
  std::printf("device name=\"%s\" sms=%d copy_bandwidth_gbs=%.0f\n", prop.name, prop.multiProcessorCount,
              bandwidth / 1e9);
  absl::StatusOr<std::unique_ptr<adak::engine::CudaBackend>> b =
      adak::engine::CudaBackend::Create(0, adak::kernels::DotPrecision::kBf16);  // the serving default
  if (!b.ok()) {
    std::fprintf(stderr, "moe_gpu_bench: %s\n", std::string(b.status().message()).c_str());
    return 1;
  }
  if (what == "decode" || what == "all") adak::bench::Decode(**b, iters, bandwidth);
  if (what == "adak" || what == "all") adak::bench::Adak(**b, iters);
  if (what == "prefill" || what == "all") adak::bench::Prefill(iters);
  return 0;
}
