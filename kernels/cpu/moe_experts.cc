// MoeExperts / DenseMlp: splits experts between the fused kernels and MatMul, packs the activations, runs the
// two fused passes on the pool, and holds the scalar fused kernels and the references. The SIMD kernels live
// in moe_experts_avx512.cc and moe_experts_avx2.cc.
#include "kernels/cpu/moe_experts.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>

#include "base/check.h"
#include "kernels/cpu/elementwise.h"

namespace adak::kernels {

float* AlignedFloats::Get(int64_t count) {
  if (count > capacity_ || data_ == nullptr) {
    capacity_ = std::max<int64_t>({count, 2 * capacity_, 16});
    data_.reset(new (std::align_val_t{64}) float[static_cast<size_t>(capacity_)]);
  }
  return data_.get();
}

void AlignedFloats::Deleter::operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }

namespace {

// ---- Packed activation rows (see internal:: in the header). ----

struct Layout {
  int block = 1;              // elements per kernel block (1: scalar, natural order)
  bool deinterleave = false;  // BF16 on a SIMD path: [even, odd] halves per block
  int64_t stride = 0;         // floats per packed row; a multiple of 16 on SIMD paths (rows stay 64-byte aligned)
};

// Which fused kernels run: the ISA's, or (pair_dot) the AVX-512 bf16 dot-product ones.
struct FusedKernels {
  MatMulIsaKind isa = MatMulIsaKind::kScalar;
  bool pair_dot = false;
};

FusedKernels KernelsFor(const MoeExpertsOptions& o, DType dtype) {
  return FusedKernels{o.isa, o.precision == DotPrecision::kBf16 && dtype == DType::kBF16 &&
                                 o.isa == MatMulIsaKind::kAvx512 && Bf16DotSupported()};
}

Layout LayoutFor(FusedKernels kernels, DType dtype, int64_t k) {
  Layout l;
  switch (kernels.isa) {
    case MatMulIsaKind::kAvx512: l.block = 32; break;
    case MatMulIsaKind::kAvx2: l.block = 16; break;
    case MatMulIsaKind::kScalar: l.block = 1; break;
  }
  if (l.block == 1) {
    l.stride = std::max<int64_t>(k, 1);
    return l;
  }
  l.deinterleave = dtype == DType::kBF16 && !kernels.pair_dot;
  // +16 floats: rows whose stride is a multiple of 4 KiB would all map to the same L1 sets.
  l.stride = (k + l.block - 1) / l.block * l.block + 16;
  return l;
}

// dst[0, stride) = x[0, k) in packed order, zeros elsewhere.
void PackRow(const float* x, int64_t k, const Layout& l, float* dst) {
  if (!l.deinterleave) {
    std::memcpy(dst, x, sizeof(float) * static_cast<size_t>(k));
    std::fill(dst + k, dst + l.stride, 0.0f);
    return;
  }
  std::fill(dst + (k - k % l.block), dst + l.stride, 0.0f);
  for (int64_t i = 0; i < k; ++i) dst[internal::MoePackedIndex(i, l.block, true)] = x[i];
}

// Zeroes what the gate/up pass does not write in a packed h row of length k: the padding.
void ZeroPadding(int64_t k, const Layout& l, float* dst) {
  if (l.block == 1) return;
  std::fill(dst + (k - k % l.block), dst + l.stride, 0.0f);
}

// ---- Scalar fused kernels. ----

// Four partial sums in K order, as MatMul's scalar path.
float Dot(const float* w, const float* x, int64_t k) {
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  int64_t i = 0;
  for (; i + 4 <= k; i += 4) {
    for (int j = 0; j < 4; ++j) acc[j] += w[i + j] * x[i + j];
  }
  for (; i < k; ++i) acc[0] += w[i] * x[i];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

const void* RowOf(const void* w, DType dtype, int64_t row, int64_t k) {
  return static_cast<const char*>(w) + static_cast<size_t>(row * k) * DTypeSize(dtype);
}

void GateUpScalar(const internal::MoeGateUpArgs& a, int64_t n_begin, int64_t n_end) {
  thread_local AlignedFloats buffer;
  float* g = buffer.Get(2 * std::max<int64_t>(a.hidden, 1));
  float* u = g + a.hidden;
  for (int64_t n = n_begin; n < n_end; ++n) {
    WidenToF32(RowOf(a.gate, a.dtype, n, a.hidden), a.dtype, a.hidden, g, MatMulIsaKind::kScalar);
    WidenToF32(RowOf(a.up, a.dtype, n, a.hidden), a.dtype, a.hidden, u, MatMulIsaKind::kScalar);
    for (int64_t r = 0; r < a.rows; ++r) {
      a.h[r][n] = internal::MoeSwiGlu(Dot(g, a.x[r], a.hidden), Dot(u, a.x[r], a.hidden));
    }
  }
}

void DownScalar(const internal::MoeDownArgs& a, int64_t n_begin, int64_t n_end) {
  thread_local AlignedFloats buffer;
  float* d = buffer.Get(std::max<int64_t>(a.inter, 1));
  for (int64_t n = n_begin; n < n_end; ++n) {
    WidenToF32(RowOf(a.down, a.dtype, n, a.inter), a.dtype, a.inter, d, MatMulIsaKind::kScalar);
    for (int64_t r = 0; r < a.rows; ++r) a.out[r][n] += a.scale[r] * Dot(d, a.h[r], a.inter);
  }
}

// ---- The fused passes. ----

// Rows of W per ParallelFor item. Small, so the pool's few chunks per thread come out equal (I = 1024 and
// H = 2048 make 64 and 128 items, 8 and 16 per chunk on 2 threads; 48-row items left one chunk a third short and
// cost ~15% at decode); a multiple of the tiles' row counts (2 and 4), so tiles rarely straddle items. Where
// items end changes only the order rows are computed in, never a result.
constexpr int64_t kRowUnit = 16;
constexpr int64_t kMinBytesPerChunk = 256 << 10;  // smaller chunks are not worth waking a worker

struct FusedJob {
  int64_t hidden = 0;
  int64_t inter = 0;
  DType dtype = DType::kBF16;
  const internal::MoeFusedTask* tasks = nullptr;
  int64_t num_tasks = 0;
  const float* const* row_x = nullptr;  // [R] packed x rows
  float* const* row_h = nullptr;        // [R] packed h rows
  float* const* row_out = nullptr;      // [R] out rows
  const float* row_scale = nullptr;     // [R]
};

void GateUp(FusedKernels kernels, const internal::MoeGateUpArgs& a, int64_t n0, int64_t n1) {
  switch (kernels.isa) {
    case MatMulIsaKind::kAvx512:
      return kernels.pair_dot ? internal::MoeGateUpAvx512Bf16(a, n0, n1) : internal::MoeGateUpAvx512(a, n0, n1);
    case MatMulIsaKind::kAvx2: return internal::MoeGateUpAvx2(a, n0, n1);
    case MatMulIsaKind::kScalar: return GateUpScalar(a, n0, n1);
  }
}

void Down(FusedKernels kernels, const internal::MoeDownArgs& a, int64_t n0, int64_t n1) {
  switch (kernels.isa) {
    case MatMulIsaKind::kAvx512:
      return kernels.pair_dot ? internal::MoeDownAvx512Bf16(a, n0, n1) : internal::MoeDownAvx512(a, n0, n1);
    case MatMulIsaKind::kAvx2: return internal::MoeDownAvx2(a, n0, n1);
    case MatMulIsaKind::kScalar: return DownScalar(a, n0, n1);
  }
}

// Runs fn(begin, end) over [0, n) items of `item_bytes` weight bytes each, on the pool when worth it.
template <class Fn>
void ForItems(ThreadPool* pool, int64_t n, int64_t item_bytes, const Fn& fn) {
  if (n <= 0) return;
  if (pool == nullptr) {
    fn(0, n);
    return;
  }
  const int64_t grain = std::max<int64_t>(1, kMinBytesPerChunk / std::max<int64_t>(item_bytes, 1));
  pool->ParallelFor(n, grain, fn);
}

void RunFused(const FusedJob& job, ThreadPool* pool, FusedKernels kernels) {
  const auto elem = static_cast<int64_t>(DTypeSize(job.dtype));
  // Pass 1: gate/up over ranges of I, every expert per range.
  if (job.inter > 0) {
    const int64_t items = (job.inter + kRowUnit - 1) / kRowUnit;
    ForItems(pool, items, 2 * kRowUnit * job.hidden * elem * job.num_tasks, [&](int64_t b, int64_t e) {
      const int64_t n0 = b * kRowUnit;
      const int64_t n1 = std::min(job.inter, e * kRowUnit);
      for (int64_t i = 0; i < job.num_tasks; ++i) {
        const internal::MoeFusedTask& t = job.tasks[i];
        internal::MoeGateUpArgs a;
        a.gate = t.w.gate;
        a.up = t.w.up;
        a.dtype = job.dtype;
        a.hidden = job.hidden;
        a.rows = t.rows;
        a.x = job.row_x + t.row_begin;
        a.h = job.row_h + t.row_begin;
        GateUp(kernels, a, n0, n1);
      }
    });
  }
  // Pass 2: down over ranges of H, experts in ascending order per range (so each out element is summed in a
  // fixed order by one thread).
  const int64_t items = (job.hidden + kRowUnit - 1) / kRowUnit;
  ForItems(pool, items, kRowUnit * job.inter * elem * job.num_tasks, [&](int64_t b, int64_t e) {
    const int64_t n0 = b * kRowUnit;
    const int64_t n1 = std::min(job.hidden, e * kRowUnit);
    for (int64_t i = 0; i < job.num_tasks; ++i) {
      const internal::MoeFusedTask& t = job.tasks[i];
      internal::MoeDownArgs a;
      a.down = t.w.down;
      a.dtype = job.dtype;
      a.inter = job.inter;
      a.rows = t.rows;
      a.h = job.row_h + t.row_begin;
      a.out = job.row_out + t.row_begin;
      a.scale = job.row_scale + t.row_begin;
      Down(kernels, a, n0, n1);
    }
  });
}

// ---- The MatMul path. ----

MatMulParams Linear(const float* x, int64_t rows, int64_t k, const void* w, DType dtype, int64_t n, float* out) {
  MatMulParams m;
  m.x = x;
  m.rows = rows;
  m.k = k;
  m.x_stride = k;
  m.w = w;
  m.w_dtype = dtype;
  m.n = n;
  m.out = out;
  m.out_stride = n;
  return m;
}

// down(silu(gate x) * up x) for `rows` contiguous rows of x into scratch->down.
void SwiGluMatMul(const float* x, int64_t rows, int64_t hidden, int64_t inter, DType dtype, const ExpertWeightPtrs& w,
                  MoeScratch* s, ThreadPool* pool, const MoeExpertsOptions& options) {
  const auto ri = static_cast<size_t>(rows * inter);
  if (s->gate.size() < ri) s->gate.resize(ri);
  if (s->up.size() < ri) s->up.resize(ri);
  if (s->down.size() < static_cast<size_t>(rows * hidden)) s->down.resize(static_cast<size_t>(rows * hidden));
  MatMulOptions o;
  o.isa = options.isa;
  o.precision = options.precision;
  MatMulWithOptions(Linear(x, rows, hidden, w.gate, dtype, inter, s->gate.data()), pool, o);
  MatMulWithOptions(Linear(x, rows, hidden, w.up, dtype, inter, s->up.data()), pool, o);
  SiluMul(s->gate.data(), s->up.data(), s->gate.data(), rows, inter, inter);
  MatMulWithOptions(Linear(s->gate.data(), rows, inter, w.down, dtype, hidden, s->down.data()), pool, o);
}

void CheckArgs(DType dtype, MatMulIsaKind isa) {
  ADAK_CHECK(dtype == DType::kBF16 || dtype == DType::kF16 || dtype == DType::kF32,
             "MoeExperts: unsupported weight dtype ", std::string(DTypeName(dtype)));
  ADAK_CHECK(MatMulIsaSupported(isa), "MoeExperts: ISA not supported by this CPU");
}

}  // namespace

int64_t DefaultMoeMatMulMinRows(MatMulIsaKind isa) {
  // Measured with bench/moe_experts_bench.cc (BM_MoePrefill, OLMoE shape, top-8, 2 Zen 5 cores): the fused path
  // beat three MatMul calls per expert at every size tried, 8 to 64 rows per expert, on AVX-512 (~350 vs ~250
  // GFLOP/s at 32 rows) and on AVX2 (~185 vs ~150-175); the scalar kernels lose to MatMul's sgemm from 2 rows.
  switch (isa) {
    case MatMulIsaKind::kAvx512: return std::numeric_limits<int64_t>::max();
    case MatMulIsaKind::kAvx2: return std::numeric_limits<int64_t>::max();
    case MatMulIsaKind::kScalar: return 2;
  }
  return std::numeric_limits<int64_t>::max();
}

void MoeExpertsWithOptions(const MoeExpertsParams& p, MoeScratch* s, ThreadPool* pool,
                           const MoeExpertsOptions& options) {
  const DispatchPlan& plan = *p.plan;
  const int64_t h = p.hidden;
  const int64_t inter = p.intermediate;
  if (plan.num_rows() == 0 || h == 0) return;
  CheckArgs(p.dtype, options.isa);
  const int64_t min_rows = options.matmul_min_rows > 0 ? options.matmul_min_rows : DefaultMoeMatMulMinRows(options.isa);

  s->fused_experts.clear();
  s->matmul_experts.clear();
  for (int64_t e = 0; e < plan.num_experts; ++e) {
    const int64_t rows = plan.expert_offsets[static_cast<size_t>(e) + 1] - plan.expert_offsets[static_cast<size_t>(e)];
    if (rows == 0) continue;
    (rows >= min_rows ? s->matmul_experts : s->fused_experts).push_back(static_cast<int32_t>(e));
  }

  if (!s->fused_experts.empty()) {
    const Layout lx = LayoutFor(KernelsFor(options, p.dtype), p.dtype, h);
    const Layout lh = LayoutFor(KernelsFor(options, p.dtype), p.dtype, inter);
    const int64_t num_rows = plan.num_rows();
    float* xp = s->packed_x.Get(plan.num_tokens * lx.stride);
    float* hp = s->packed_h.Get(num_rows * lh.stride);
    // Pack only the tokens some fused row reads.
    s->row_x.assign(static_cast<size_t>(num_rows), nullptr);
    s->row_h.assign(static_cast<size_t>(num_rows), nullptr);
    s->row_out.assign(static_cast<size_t>(num_rows), nullptr);
    s->row_scale.assign(static_cast<size_t>(num_rows), 0.0f);
    std::vector<internal::MoeFusedTask>& tasks = s->tasks;
    tasks.clear();
    std::vector<uint8_t>& packed = s->token_packed;
    packed.assign(static_cast<size_t>(plan.num_tokens), 0);
    for (const int32_t e : s->fused_experts) {
      const int64_t begin = plan.expert_offsets[static_cast<size_t>(e)];
      const int64_t end = plan.expert_offsets[static_cast<size_t>(e) + 1];
      tasks.push_back(internal::MoeFusedTask{p.experts[e], begin, end - begin});
      for (int64_t r = begin; r < end; ++r) {
        const int64_t token = plan.row_token[static_cast<size_t>(r)];
        float* x_row = xp + token * lx.stride;
        if (packed[static_cast<size_t>(token)] == 0) {
          PackRow(p.x + token * h, h, lx, x_row);
          packed[static_cast<size_t>(token)] = 1;
        }
        s->row_x[static_cast<size_t>(r)] = x_row;
        s->row_h[static_cast<size_t>(r)] = hp + r * lh.stride;
        ZeroPadding(inter, lh, hp + r * lh.stride);
        s->row_out[static_cast<size_t>(r)] = p.out + token * h;
        s->row_scale[static_cast<size_t>(r)] = plan.row_weight[static_cast<size_t>(r)];
      }
    }
    FusedJob job;
    job.hidden = h;
    job.inter = inter;
    job.dtype = p.dtype;
    job.tasks = tasks.data();
    job.num_tasks = static_cast<int64_t>(tasks.size());
    job.row_x = s->row_x.data();
    job.row_h = s->row_h.data();
    job.row_out = s->row_out.data();
    job.row_scale = s->row_scale.data();
    RunFused(job, pool, KernelsFor(options, p.dtype));
  }

  // Experts with many rows: gather, three MatMuls, combine; after the fused experts, in expert order.
  for (const int32_t e : s->matmul_experts) {
    const int32_t begin = plan.expert_offsets[static_cast<size_t>(e)];
    const int64_t rows = plan.expert_offsets[static_cast<size_t>(e) + 1] - begin;
    if (s->gathered.size() < static_cast<size_t>(rows * h)) s->gathered.resize(static_cast<size_t>(rows * h));
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(s->gathered.data() + r * h, p.x + static_cast<int64_t>(plan.row_token[begin + r]) * h,
                  sizeof(float) * static_cast<size_t>(h));
    }
    SwiGluMatMul(s->gathered.data(), rows, h, inter, p.dtype, p.experts[e], s, pool, options);
    for (int64_t r = 0; r < rows; ++r) {
      float* o = p.out + static_cast<int64_t>(plan.row_token[begin + r]) * h;
      const float w = plan.row_weight[begin + r];
      const float* y = s->down.data() + r * h;
      for (int64_t i = 0; i < h; ++i) o[i] += w * y[i];
    }
  }
}

void MoeExperts(const MoeExpertsParams& p, MoeScratch* s, ThreadPool* pool) {
  MoeExpertsWithOptions(p, s, pool, MoeExpertsOptions{});
}

void MoeExpertsReference(const MoeExpertsParams& p) {
  const DispatchPlan& plan = *p.plan;
  const int64_t h = p.hidden, inter = p.intermediate;
  std::vector<float> gate(static_cast<size_t>(inter)), up(static_cast<size_t>(inter)), y(static_cast<size_t>(h));
  for (int64_t e = 0; e < plan.num_experts; ++e) {
    for (int32_t r = plan.expert_offsets[static_cast<size_t>(e)]; r < plan.expert_offsets[static_cast<size_t>(e) + 1];
         ++r) {
      const float* x = p.x + static_cast<int64_t>(plan.row_token[static_cast<size_t>(r)]) * h;
      MatMulReference(Linear(x, 1, h, p.experts[e].gate, p.dtype, inter, gate.data()));
      MatMulReference(Linear(x, 1, h, p.experts[e].up, p.dtype, inter, up.data()));
      SiluMul(gate.data(), up.data(), gate.data(), 1, inter, inter);
      MatMulReference(Linear(gate.data(), 1, inter, p.experts[e].down, p.dtype, h, y.data()));
      float* o = p.out + static_cast<int64_t>(plan.row_token[static_cast<size_t>(r)]) * h;
      for (int64_t i = 0; i < h; ++i) o[i] += plan.row_weight[static_cast<size_t>(r)] * y[static_cast<size_t>(i)];
    }
  }
}

void DenseMlpWithOptions(const DenseMlpParams& p, MoeScratch* s, ThreadPool* pool, const MoeExpertsOptions& options) {
  const int64_t h = p.hidden;
  const int64_t inter = p.intermediate;
  if (p.rows == 0 || h == 0) return;
  CheckArgs(p.dtype, options.isa);
  const int64_t min_rows = options.matmul_min_rows > 0 ? options.matmul_min_rows : DefaultMoeMatMulMinRows(options.isa);
  if (p.rows >= min_rows) {
    SwiGluMatMul(p.x, p.rows, h, inter, p.dtype, p.w, s, pool, options);
    for (int64_t r = 0; r < p.rows; ++r) {
      const float scale = p.row_scale != nullptr ? p.row_scale[r] : 1.0f;
      float* o = p.out + r * h;
      const float* y = s->down.data() + r * h;
      for (int64_t i = 0; i < h; ++i) o[i] = (p.accumulate ? o[i] : 0.0f) + scale * y[i];
    }
    return;
  }
  const Layout lx = LayoutFor(KernelsFor(options, p.dtype), p.dtype, h);
  const Layout lh = LayoutFor(KernelsFor(options, p.dtype), p.dtype, inter);
  float* xp = s->packed_x.Get(p.rows * lx.stride);
  float* hp = s->packed_h.Get(p.rows * lh.stride);
  const auto rows = static_cast<size_t>(p.rows);
  s->row_x.resize(rows);
  s->row_h.resize(rows);
  s->row_out.resize(rows);
  s->row_scale.resize(rows);
  for (int64_t r = 0; r < p.rows; ++r) {
    PackRow(p.x + r * h, h, lx, xp + r * lx.stride);
    ZeroPadding(inter, lh, hp + r * lh.stride);
    s->row_x[static_cast<size_t>(r)] = xp + r * lx.stride;
    s->row_h[static_cast<size_t>(r)] = hp + r * lh.stride;
    s->row_out[static_cast<size_t>(r)] = p.out + r * h;
    s->row_scale[static_cast<size_t>(r)] = p.row_scale != nullptr ? p.row_scale[r] : 1.0f;
  }
  // x is packed, so out may alias it from here on.
  if (!p.accumulate) std::fill(p.out, p.out + p.rows * h, 0.0f);
  const internal::MoeFusedTask task{p.w, 0, p.rows};
  FusedJob job;
  job.hidden = h;
  job.inter = inter;
  job.dtype = p.dtype;
  job.tasks = &task;
  job.num_tasks = 1;
  job.row_x = s->row_x.data();
  job.row_h = s->row_h.data();
  job.row_out = s->row_out.data();
  job.row_scale = s->row_scale.data();
  RunFused(job, pool, KernelsFor(options, p.dtype));
}

void DenseMlp(const DenseMlpParams& p, MoeScratch* s, ThreadPool* pool) {
  DenseMlpWithOptions(p, s, pool, MoeExpertsOptions{});
}

void DenseMlpReference(const DenseMlpParams& p) {
  const int64_t h = p.hidden, inter = p.intermediate;
  std::vector<float> gate(static_cast<size_t>(inter)), up(static_cast<size_t>(inter)), y(static_cast<size_t>(h));
  for (int64_t r = 0; r < p.rows; ++r) {
    const float* x = p.x + r * h;
    MatMulReference(Linear(x, 1, h, p.w.gate, p.dtype, inter, gate.data()));
    MatMulReference(Linear(x, 1, h, p.w.up, p.dtype, inter, up.data()));
    SiluMul(gate.data(), up.data(), gate.data(), 1, inter, inter);
    MatMulReference(Linear(gate.data(), 1, inter, p.w.down, p.dtype, h, y.data()));
    const float scale = p.row_scale != nullptr ? p.row_scale[r] : 1.0f;
    float* o = p.out + r * h;
    for (int64_t i = 0; i < h; ++i) o[i] = (p.accumulate ? o[i] : 0.0f) + scale * y[static_cast<size_t>(i)];
  }
}

}  // namespace adak::kernels
