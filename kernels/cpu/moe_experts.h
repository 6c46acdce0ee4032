// The routed-expert FFNs of one MoE layer, executed over a DispatchPlan, and the dense SwiGLU MLP.
//
// For each expert e with rows: h = silu(x_rows · gate_e^T) * (x_rows · up_e^T); y = h · down_e^T;
// out[token] += weight * y. Experts without rows are skipped; tokens with k = 0 are untouched.
//
// Fused path (the default for every expert on AVX-512 and AVX2): each active expert's weights are read from
// memory exactly once per call, all of its rows computed from registers, in two ParallelFor passes per call
// whatever the number of experts:
//   1. gate/up: items are ranges of the intermediate dimension I, each covering every active expert. Per
//      block of 48 rows, the gate rows are dotted with up to 4 of the expert's x rows at a time (g parked in
//      h), then the same up rows, and h = silu(g) * u is written at once (SwiGLU fused, no gate/up buffers).
//   2. down: items are ranges of the hidden dimension H, each covering every active expert in ascending order;
//      each down row is dotted with the expert's h rows and out[token][n] += weight * y added in place. Every
//      out element is accumulated by one thread in a fixed order, so results do not depend on thread count.
// Register tiles are 2-4 consecutive weight rows x up to 4 activation rows; each tile prefetches the next
// one's rows in address order, so memory sees one sequential stream per thread (this CPU's prefetchers follow
// several rows side by side poorly). On AVX-512, rows that start off a cache line (mmapped checkpoints are
// 8-byte aligned) are read with aligned loads and a permute. Experts with more than 4 rows run in groups of 4
// over blocks of weight rows that stay in L2, so weights still come from memory once (prefill). Weights stay
// in their dtype (BF16/F16/F32) and are widened exactly in registers; activations and accumulation stay fp32,
// and the SIMD paths' vector exp is within ~1 ulp of expf (agrees with the fp32 reference to ~1e-5). With
// MoeExpertsOptions::precision = kBf16 (BF16 weights, a CPU with AVX512_BF16), x and h are instead rounded to
// bf16 as the tiles load them and dotted with vdpbf16ps (DotPrecision in matmul.h).
// Measured on 2 Zen 5 cores (bench/moe_experts_bench.cc, OLMoE shape, bf16, experts 8 bytes off a cache line):
// decode at batch 1 reads the active experts at ~85-90% of a plain streaming read of the same bytes (batch 16:
// ~80-90%), vs ~60-75% for three MatMul calls per expert; prefill at T = 256 runs ~375 GFLOP/s, 1.5x that path. Runtime
// ISA dispatch as MatMul (AVX-512, AVX2+FMA+F16C, scalar). Experts with at least `matmul_min_rows` rows instead gather
// their rows, go through MatMul (3 calls) and are combined after the fused experts, in expert order (the default for
// scalar CPUs, where MatMul's sgemm is faster).
//
// Scratch memory is owned by the caller's MoeScratch (reused across calls; one MoeScratch per concurrent
// caller). Functions are otherwise stateless; calls sharing a pool serialise on it.
//
// Shape legend: T tokens, H hidden, I expert intermediate, E experts, R rows of the plan (sum_t k_t).
#ifndef ADAK_KERNELS_CPU_MOE_EXPERTS_H_
#define ADAK_KERNELS_CPU_MOE_EXPERTS_H_

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/dtype.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/moe_dispatch.h"
#include "kernels/cpu/thread_pool.h"

namespace adak::kernels {

struct ExpertWeightPtrs {
  const void* gate = nullptr;  // [I, H]
  const void* up = nullptr;    // [I, H]
  const void* down = nullptr;  // [H, I]
};

struct MoeExpertsParams {
  const float* x = nullptr;                   // [T, H] input (the post-attention norm output)
  int64_t hidden = 0;                         // H
  int64_t intermediate = 0;                   // I
  DType dtype = DType::kBF16;                 // of every expert weight
  const ExpertWeightPtrs* experts = nullptr;  // [E]
  const DispatchPlan* plan = nullptr;
  float* out = nullptr;  // [T, H], accumulated into
};

// A growable 64-byte aligned float buffer (scratch; contents are not preserved when it grows).
class AlignedFloats {
 public:
  AlignedFloats() = default;
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
  AlignedFloats(AlignedFloats&&) = default;
  AlignedFloats& operator=(AlignedFloats&&) = default;
  // REQUIRES: count >= 0. Returns a buffer of at least `count` floats.
  [[nodiscard]] float* Get(int64_t count);

 private:
  struct Deleter {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], Deleter> data_;
  int64_t capacity_ = 0;
};

namespace internal {
// One expert of the fused path: its weights and its rows [row_begin, row_begin + rows) of the row tables.
struct MoeFusedTask {
  ExpertWeightPtrs w;
  int64_t row_begin = 0;
  int64_t rows = 0;
};
}  // namespace internal

struct MoeScratch {
  // MatMul path: gathered rows and per-expert gate/up/down outputs.
  std::vector<float> gathered, gate, up, down;
  // Fused path: activations packed for the kernels ([T] rows of x, [R] rows of h) and per-row tables ([R]).
  AlignedFloats packed_x, packed_h;
  std::vector<const float*> row_x;
  std::vector<float*> row_h, row_out;
  std::vector<float> row_scale;
  std::vector<uint8_t> token_packed;  // [T]
  std::vector<int32_t> fused_experts, matmul_experts;
  std::vector<internal::MoeFusedTask> tasks;
};

// ---- Options (tests and benchmarks pin the path; the defaults are what MoeExperts uses). ----

struct MoeExpertsOptions {
  MatMulIsaKind isa = DetectedMatMulIsa();  // of the fused kernels and of the MatMul calls
  // Experts with >= this many rows go through MatMul instead of the fused kernels; 0 = the default for isa.
  int64_t matmul_min_rows = 0;
  // Of the fused kernels and of the MatMul calls (as MatMulOptions::precision).
  DotPrecision precision = DotPrecision::kFp32;
};

// Rows at or above which an expert runs through MatMul on `isa` (measured; INT64_MAX = never).
[[nodiscard]] int64_t DefaultMoeMatMulMinRows(MatMulIsaKind isa);

// REQUIRES: p.plan built for p.x's T tokens and E = plan->num_experts entries of p.experts (the ones with rows
// non-null, [I, H] / [I, H] / [H, I] in p.dtype, which is kBF16, kF16 or kF32); out and x do not overlap.
// `pool` may be nullptr (single-threaded). An empty plan is a no-op.
void MoeExperts(const MoeExpertsParams& p, MoeScratch* scratch, ThreadPool* pool);
// REQUIRES: as MoeExperts, and MatMulIsaSupported(options.isa).
void MoeExpertsWithOptions(const MoeExpertsParams& p, MoeScratch* scratch, ThreadPool* pool,
                           const MoeExpertsOptions& options);
// Per-token, per-expert loop with MatMulReference; the oracle.
void MoeExpertsReference(const MoeExpertsParams& p);

// A dense SwiGLU MLP over all T rows (shared experts and dense layers): out (=|+=) down(silu(gate x) * up x) * scale.
struct DenseMlpParams {
  const float* x = nullptr;  // [T, H]
  int64_t rows = 0;
  int64_t hidden = 0;
  int64_t intermediate = 0;
  DType dtype = DType::kBF16;
  ExpertWeightPtrs w;
  const float* row_scale = nullptr;  // [T] optional per-row scale of the output (sigmoid shared-expert gate)
  float* out = nullptr;              // [T, H]
  bool accumulate = true;
};
// The fused path over one "expert" with all T rows (or MatMul, as MoeExperts decides by rows).
// REQUIRES: weights as for MoeExperts; out may alias x. `pool` may be nullptr.
void DenseMlp(const DenseMlpParams& p, MoeScratch* scratch, ThreadPool* pool);
void DenseMlpWithOptions(const DenseMlpParams& p, MoeScratch* scratch, ThreadPool* pool,
                         const MoeExpertsOptions& options);
// Three MatMulReference calls; the oracle.
void DenseMlpReference(const DenseMlpParams& p);

namespace internal {

// The fused kernels behind MoeExperts (moe_experts_avx512.cc, moe_experts_avx2.cc, scalar in moe_experts.cc);
// not for direct use. Activation rows are packed by moe_experts.cc: on the SIMD paths zero-padded to a
// multiple of the kernel's block (32 elements on AVX-512, 16 on AVX2) and, for BF16 weights on the exact path,
// each block de-interleaved as [even elements, odd elements] (MoePackedIndex); natural order on the scalar
// path and on the bf16 dot-product path.

// Where element i of an activation row lives in its packed row.
[[nodiscard]] inline int64_t MoePackedIndex(int64_t i, int block, bool deinterleave) {
  if (!deinterleave) return i;
  const int64_t base = i - i % block;
  const int64_t j = i - base;
  return base + (j % 2) * (block / 2) + j / 2;
}

// SwiGLU of one element, the same expression as SiluMul (the scalar path; the SIMD paths evaluate it with a
// vector exp within ~1 ulp of std::exp).
[[nodiscard]] inline float MoeSwiGlu(float g, float u) { return g / (1.0f + std::exp(-g)) * u; }

// Pass 1 for one expert: for i in [n_begin, n_end) and every row r < rows,
// h[r][MoePackedIndex(i)] = silu(dot(gate[i], x[r])) * dot(up[i], x[r]). Each dot product is the same whatever
// [n_begin, n_end) is (the kernels reduce every accumulator on its own).
struct MoeGateUpArgs {
  const void* gate = nullptr;  // [I, H]
  const void* up = nullptr;    // [I, H]
  DType dtype = DType::kBF16;
  int64_t hidden = 0;               // H (the dot length)
  int64_t rows = 0;                 // rows of this expert
  const float* const* x = nullptr;  // [rows] packed x rows
  float* const* h = nullptr;        // [rows] packed h rows
};

// Pass 2 for one expert: for n in [n_begin, n_end) and every row r < rows,
// out[r][n] += scale[r] * dot(down[n], h[r]).
struct MoeDownArgs {
  const void* down = nullptr;  // [H, I]
  DType dtype = DType::kBF16;
  int64_t inter = 0;  // I (the dot length)
  int64_t rows = 0;
  const float* const* h = nullptr;  // [rows] packed h rows
  float* const* out = nullptr;      // [rows] output rows (the token's row of out)
  const float* scale = nullptr;     // [rows]
};

void MoeGateUpAvx512(const MoeGateUpArgs& a, int64_t n_begin, int64_t n_end);
void MoeDownAvx512(const MoeDownArgs& a, int64_t n_begin, int64_t n_end);
// The DotPrecision::kBf16 path for BF16 weights (activation rows packed in natural order). REQUIRES:
// Bf16DotSupported().
void MoeGateUpAvx512Bf16(const MoeGateUpArgs& a, int64_t n_begin, int64_t n_end);
void MoeDownAvx512Bf16(const MoeDownArgs& a, int64_t n_begin, int64_t n_end);
void MoeGateUpAvx2(const MoeGateUpArgs& a, int64_t n_begin, int64_t n_end);
void MoeDownAvx2(const MoeDownArgs& a, int64_t n_begin, int64_t n_end);

}  // namespace internal

}  // namespace adak::kernels

#endif  // ADAK_KERNELS_CPU_MOE_EXPERTS_H_
