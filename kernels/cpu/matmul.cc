// MatMul dispatch: picks the ISA once, packs the activations for the GEMV kernels, splits N over the pool,
// and runs the prefill path (widened W tiles times OpenBLAS sgemm). The SIMD kernels live in
// matmul_avx512.cc and matmul_avx2.cc; the scalar fallback and the reference are here.
#include "kernels/cpu/matmul.h"

#ifdef ADAK_HAVE_OPENBLAS
#include <cblas.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <string>

#include "base/check.h"

namespace adak::kernels {
namespace {

// ---- Small helpers. ----

float BiasAt(const MatMulParams& p, int64_t n) {
  if (p.bias == nullptr) return 0.0f;
  switch (p.bias_dtype) {
    case DType::kBF16: return Bf16ToF32(static_cast<const uint16_t*>(p.bias)[n]);
    case DType::kF16: return F16ToF32(static_cast<const uint16_t*>(p.bias)[n]);
    default: return static_cast<const float*>(p.bias)[n];
  }
}

float WeightAt(const MatMulParams& p, int64_t index) {
  switch (p.w_dtype) {
    case DType::kBF16: return Bf16ToF32(static_cast<const uint16_t*>(p.w)[index]);
    case DType::kF16: return F16ToF32(static_cast<const uint16_t*>(p.w)[index]);
    default: return static_cast<const float*>(p.w)[index];
  }
}

// Validates dtypes and fills in default strides. Aborts on a programmer error.
MatMulParams Normalized(const MatMulParams& in) {
  MatMulParams p = in;
  if (p.x_stride == 0) p.x_stride = p.k;
  if (p.out_stride == 0) p.out_stride = p.n;
  ADAK_CHECK(p.w_dtype == DType::kBF16 || p.w_dtype == DType::kF16 || p.w_dtype == DType::kF32,
             "MatMul: unsupported weight dtype ", std::string(DTypeName(p.w_dtype)));
  ADAK_CHECK(
      p.bias == nullptr || p.bias_dtype == DType::kBF16 || p.bias_dtype == DType::kF16 || p.bias_dtype == DType::kF32,
      "MatMul: unsupported bias dtype ", std::string(DTypeName(p.bias_dtype)));
  ADAK_CHECK(p.rows >= 0 && p.k >= 0 && p.n >= 0 && p.x_stride >= p.k && p.out_stride >= p.n,
             "MatMul: bad shape or stride");
  return p;
}

// A 64-byte aligned float buffer that only grows; one per thread.
class ScratchBuffer {
 public:
  float* Get(int64_t count) {
    if (count > capacity_) {
      capacity_ = std::max<int64_t>(count, 2 * capacity_);
      data_.reset(new (std::align_val_t{64}) float[static_cast<size_t>(capacity_)]);
    }
    return data_.get();
  }

 private:
  struct Deleter {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::unique_ptr<float[], Deleter> data_;
  int64_t capacity_ = 0;
};

// ---- CPU detection. ----

bool CpuHasAvx512() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

bool CpuHasAvx512Bf16() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return CpuHasAvx512() && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

bool CpuHasAvx2() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // Every x86 CPU with AVX2 and FMA also has F16C.
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

// ---- Scalar fallback (and the path for non-x86 builds). ----

void ScalarRows(const MatMulParams& p, int64_t n_begin, int64_t n_end) {
  thread_local ScratchBuffer row_buffer;
  float* row = row_buffer.Get(std::max<int64_t>(p.k, 1));
  for (int64_t n = n_begin; n < n_end; ++n) {
    for (int64_t i = 0; i < p.k; ++i) row[i] = WeightAt(p, n * p.k + i);
    const float bias = BiasAt(p, n);
    for (int64_t t = 0; t < p.rows; ++t) {
      const float* x = p.x + t * p.x_stride;
      float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      int64_t i = 0;
      for (; i + 4 <= p.k; i += 4) {
        for (int j = 0; j < 4; ++j) acc[j] += x[i + j] * row[i + j];
      }
      for (; i < p.k; ++i) acc[0] += x[i] * row[i];
      const float v = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + bias;
      float* o = p.out + t * p.out_stride + n;
      *o = p.accumulate ? *o + v : v;
    }
  }
}

// ---- GEMV path (T small): one pass over W, all T tokens per weight load. ----

struct Packing {
  int block;       // elements per weight block of the kernel
  int64_t stride;  // floats per packed row; a multiple of 16, so rows stay 64-byte aligned
};

Packing PackingFor(MatMulIsaKind isa, int64_t k) {
  const int block = isa == MatMulIsaKind::kAvx512 ? 32 : 16;
  const int64_t padded = (k + block - 1) / block * block;
  // +16 floats: rows whose stride is a multiple of 4 KiB would all map to the same L1 sets.
  return Packing{block, padded + 16};
}

// Copies x into xp (zero-padded rows); with `deinterleave` (BF16 weights on the exact path) each block is
// de-interleaved into [elements 0, 2, 4, ...; elements 1, 3, 5, ...] to match how the kernels widen bf16 pairs.
void PackActivations(const MatMulParams& p, const Packing& packing, bool deinterleave, float* xp) {
  const int64_t half = packing.block / 2;
  for (int64_t t = 0; t < p.rows; ++t) {
    const float* x = p.x + t * p.x_stride;
    float* dst = xp + t * packing.stride;
    std::fill(dst, dst + packing.stride, 0.0f);
    if (!deinterleave) {
      std::copy_n(x, p.k, dst);
      continue;
    }
    const int64_t full = p.k - p.k % packing.block;
    for (int64_t b = 0; b < full; b += packing.block) {
      for (int64_t j = 0; j < half; ++j) {
        dst[b + j] = x[b + 2 * j];
        dst[b + half + j] = x[b + 2 * j + 1];
      }
    }
    for (int64_t i = full; i < p.k; ++i) {
      const int64_t j = i - full;
      dst[full + (j % 2) * half + j / 2] = x[i];
    }
  }
}

constexpr int64_t kRowBlock = 24;  // rows per ParallelFor item: a multiple of every kernel's rows per block
constexpr int64_t kMinBytesPerChunk = 64 << 10;  // smaller chunks are not worth waking a worker

void GemvPath(const MatMulParams& p, ThreadPool* pool, MatMulIsaKind isa, bool stream_decode, bool pair_dot) {
  const int64_t blocks = (p.n + kRowBlock - 1) / kRowBlock;
  const int64_t block_bytes = std::max<int64_t>(1, kRowBlock * p.k * static_cast<int64_t>(DTypeSize(p.w_dtype)));
  const int64_t grain = std::max<int64_t>(1, kMinBytesPerChunk / block_bytes);

  const float* xp = nullptr;
  int64_t xp_stride = 0;
  if (isa != MatMulIsaKind::kScalar) {
    const Packing packing = PackingFor(isa, p.k);
    thread_local ScratchBuffer pack_buffer;
    float* buffer = pack_buffer.Get(p.rows * packing.stride);
    PackActivations(p, packing, p.w_dtype == DType::kBF16 && !pair_dot, buffer);
    xp = buffer;
    xp_stride = packing.stride;
  }
  auto run = [&](int64_t b0, int64_t b1) {
    const int64_t n0 = b0 * kRowBlock;
    const int64_t n1 = std::min(p.n, b1 * kRowBlock);
    switch (isa) {
      case MatMulIsaKind::kAvx512:
        if (pair_dot) {
          internal::MatMulRowsAvx512Bf16(p, xp, xp_stride, n0, n1);
        } else {
          internal::MatMulRowsAvx512(p, xp, xp_stride, n0, n1, stream_decode);
        }
        break;
      case MatMulIsaKind::kAvx2: internal::MatMulRowsAvx2(p, xp, xp_stride, n0, n1); break;
      case MatMulIsaKind::kScalar: ScalarRows(p, n0, n1); break;
    }
  };
  if (pool == nullptr) {
    run(0, blocks);
  } else {
    pool->ParallelFor(blocks, grain, run);
  }
}

// ---- Prefill path (T large): widen W tiles to fp32, multiply with sgemm. ----
#ifdef ADAK_HAVE_OPENBLAS

void EnsureOpenBlasSingleThreaded() {
  // Our pool provides the parallelism; OpenBLAS threads inside it would oversubscribe the cores.
  static const bool done = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)done;
}

constexpr int64_t kSgemmTileRows = 128;

void SgemmPath(const MatMulParams& p, ThreadPool* pool, MatMulIsaKind isa) {
  EnsureOpenBlasSingleThreaded();
  const int threads = pool == nullptr ? 1 : pool->num_threads();
  // Tiles of up to kSgemmTileRows rows, at least two per thread when N allows, multiples of 16 rows.
  const int64_t per_thread_pair = int64_t{2} * threads;
  int64_t tile = (p.n + per_thread_pair - 1) / per_thread_pair;
  tile = std::clamp<int64_t>((tile + 15) / 16 * 16, 16, kSgemmTileRows);
  const int64_t tiles = (p.n + tile - 1) / tile;

  auto run = [&](int64_t i0, int64_t i1) {
    thread_local ScratchBuffer widen_buffer;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t n0 = i * tile;
      const int64_t rows = std::min(tile, p.n - n0);
      const float* w = nullptr;
      if (p.w_dtype == DType::kF32) {
        w = static_cast<const float*>(p.w) + n0 * p.k;
      } else {
        float* buffer = widen_buffer.Get(rows * p.k);
        const auto* src = static_cast<const uint16_t*>(p.w) + n0 * p.k;
        WidenToF32(src, p.w_dtype, rows * p.k, buffer, isa);
        w = buffer;
      }
      float* out = p.out + n0;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(p.rows), static_cast<blasint>(rows),
                  static_cast<blasint>(p.k), 1.0f, p.x, static_cast<blasint>(p.x_stride), w, static_cast<blasint>(p.k),
                  p.accumulate ? 1.0f : 0.0f, out, static_cast<blasint>(p.out_stride));
      if (p.bias != nullptr) {
        for (int64_t t = 0; t < p.rows; ++t) {
          float* o = out + t * p.out_stride;
          for (int64_t r = 0; r < rows; ++r) o[r] += BiasAt(p, n0 + r);
        }
      }
    }
  };
  if (pool == nullptr) {
    run(0, tiles);
  } else {
    pool->ParallelFor(tiles, 1, run);
  }
}
#endif  // ADAK_HAVE_OPENBLAS

}  // namespace

MatMulIsaKind DetectedMatMulIsa() {
  static const MatMulIsaKind isa = [] {
    if (CpuHasAvx512()) return MatMulIsaKind::kAvx512;
    if (CpuHasAvx2()) return MatMulIsaKind::kAvx2;
    return MatMulIsaKind::kScalar;
  }();
  return isa;
}

bool MatMulIsaSupported(MatMulIsaKind isa) {
  switch (isa) {
    case MatMulIsaKind::kAvx512: return CpuHasAvx512();
    case MatMulIsaKind::kAvx2: return CpuHasAvx2();
    case MatMulIsaKind::kScalar: return true;
  }
  return false;
}

const char* MatMulIsaName(MatMulIsaKind isa) {
  switch (isa) {
    case MatMulIsaKind::kAvx512: return "avx512";
    case MatMulIsaKind::kAvx2: return "avx2";
    case MatMulIsaKind::kScalar: return "scalar";
  }
  return "?";
}

const char* MatMulIsa() { return MatMulIsaName(DetectedMatMulIsa()); }

bool Bf16DotSupported() {
  static const bool supported = CpuHasAvx512Bf16();
  return supported;
}

int64_t DefaultSgemmMinRows(MatMulIsaKind isa) {
  // Measured on Zen 5 (bench/matmul_bench.cc, BM_MatMulBf16_Crossover): the AVX-512 kernel beat widen + sgemm
  // at every T up to 1024 (e.g. 320 vs 240 GFLOP/s at T = 256 on 2 cores); AVX2 ties at T = 32; the scalar
  // loop loses from T = 2 on.
  switch (isa) {
    case MatMulIsaKind::kAvx512: return std::numeric_limits<int64_t>::max();
    case MatMulIsaKind::kAvx2: return 32;
    case MatMulIsaKind::kScalar: return 2;
  }
  return 2;
}

void WidenToF32(const void* src, DType dtype, int64_t count, float* dst, MatMulIsaKind isa) {
  if (count <= 0) return;
  switch (isa) {
    case MatMulIsaKind::kAvx512: return internal::WidenToF32Avx512(src, dtype, count, dst);
    case MatMulIsaKind::kAvx2: return internal::WidenToF32Avx2(src, dtype, count, dst);
    case MatMulIsaKind::kScalar: break;
  }
  const auto* s = static_cast<const uint16_t*>(src);
  switch (dtype) {
    case DType::kBF16:
      for (int64_t i = 0; i < count; ++i) dst[i] = Bf16ToF32(s[i]);
      break;
    case DType::kF16:
      for (int64_t i = 0; i < count; ++i) dst[i] = F16ToF32(s[i]);
      break;
    default: std::copy_n(static_cast<const float*>(src), count, dst);
  }
}

void MatMulWithOptions(const MatMulParams& params, ThreadPool* pool, const MatMulOptions& options) {
  const MatMulParams p = Normalized(params);
  if (p.rows == 0 || p.n == 0) return;
  ADAK_CHECK(MatMulIsaSupported(options.isa), "MatMul: ISA not supported by this CPU");
  const int64_t sgemm_min_rows = options.sgemm_min_rows > 0 ? options.sgemm_min_rows : DefaultSgemmMinRows(options.isa);
#ifdef ADAK_HAVE_OPENBLAS
  if (p.rows >= sgemm_min_rows && p.k > 0) {
    SgemmPath(p, pool, options.isa);
    return;
  }
#else
  (void)sgemm_min_rows;  // the CUDA-only build has no OpenBLAS: the packed kernels take every size
#endif
  {
    const bool pair_dot = options.precision == DotPrecision::kBf16 && p.w_dtype == DType::kBF16 &&
                          options.isa == MatMulIsaKind::kAvx512 && Bf16DotSupported();
    GemvPath(p, pool, options.isa, options.stream_decode, pair_dot);
  }
}

void MatMul(const MatMulParams& p, ThreadPool* pool) { MatMulWithOptions(p, pool, MatMulOptions{}); }

void MatMulReference(const MatMulParams& params) {
  const MatMulParams p = Normalized(params);
  for (int64_t t = 0; t < p.rows; ++t) {
    const float* x = p.x + t * p.x_stride;
    for (int64_t n = 0; n < p.n; ++n) {
      float acc = 0.0f;
      for (int64_t i = 0; i < p.k; ++i) acc += x[i] * WeightAt(p, n * p.k + i);
      const float v = acc + BiasAt(p, n);
      float* o = p.out + t * p.out_stride + n;
      *o = p.accumulate ? *o + v : v;
    }
  }
}

}  // namespace adak::kernels
