#include "kernels/cuda/grouped_gemm.h"

#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/row_gemm_tiles.cuh"

namespace adak::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTileK = 16;
constexpr int kPerThread = 4;  // 4 x 4 outputs per thread: 16 x 16 threads cover 64 x 64
static_assert(kThreads == (kGemmTileM / kPerThread) * (kGemmTileN / kPerThread));

// One 64 x 64 output tile: rows [row_begin, row_end) of the output, columns [col_begin, col_begin + 64) with
// group weights w (and w_up under SwiGLU).
template <class W, bool kSwiGlu>
__device__ void GemmTile(const RowGemmParams& p, int32_t row_begin, int32_t row_end, int32_t col_begin,
                         const typename W::Storage* w, const typename W::Storage* w_up, float (&as)[kTileK][kGemmTileM],
                         float (&bs)[kTileK][kGemmTileN], float (&us)[kTileK][kGemmTileN]) {
  const int tx = static_cast<int>(threadIdx.x % (kGemmTileN / kPerThread));
  const int ty = static_cast<int>(threadIdx.x / (kGemmTileN / kPerThread));
  const bool active = row_begin + ty * kPerThread < row_end;
  float acc[kPerThread][kPerThread] = {};
  float acc_up[kPerThread][kPerThread] = {};
  for (int64_t k0 = 0; k0 < p.k; k0 += kTileK) {
    // Load A (gathered rows) and the weight tiles, transposed to [k][row]: 1024 elements each, 4 per thread.
    for (int e = static_cast<int>(threadIdx.x); e < kTileK * kGemmTileM; e += kThreads) {
      const int m = e / kTileK;
      const int kk = e % kTileK;
      const int64_t kidx = k0 + kk;
      as[kk][m] = row_gemm::LoadActivation(p, row_begin + m, row_end, kidx);
      const int64_t col = col_begin + m;
      const bool in = col < p.n && kidx < p.k;
      bs[kk][m] = in ? W::Load(w, col * p.k + kidx) : 0.0f;
      if constexpr (kSwiGlu) us[kk][m] = in ? W::Load(w_up, col * p.k + kidx) : 0.0f;
    }
    __syncthreads();
    // Threads whose 4 rows all lie past the tile's last row skip the FMAs (decode tiles hold a row or two).
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      if (!active) break;
      float a[kPerThread], b[kPerThread], u[kPerThread];
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) {
        a[i] = as[kk][ty * kPerThread + i];
        b[i] = bs[kk][tx * kPerThread + i];
        if constexpr (kSwiGlu) u[i] = us[kk][tx * kPerThread + i];
      }
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) {
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) {
          acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
          if constexpr (kSwiGlu) acc_up[i][j] = fmaf(a[i], u[j], acc_up[i][j]);
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int64_t r = row_begin + ty * kPerThread + i;
    if (r >= row_end) continue;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      const int64_t col = col_begin + tx * kPerThread + j;
      if (col < p.n) row_gemm::Store<kSwiGlu>(p, r, col, acc[i][j], acc_up[i][j]);
    }
  }
}

template <class W, bool kSwiGlu>
__global__ void __launch_bounds__(kThreads) RowGemmKernel(RowGemmParams p) {
  using S = typename W::Storage;
  __shared__ float as[kTileK][kGemmTileM];
  __shared__ float bs[kTileK][kGemmTileN];
  __shared__ float us[kSwiGlu ? kTileK : 1][kSwiGlu ? kGemmTileN : 1];
  auto& up = reinterpret_cast<float(&)[kTileK][kGemmTileN]>(us);
  row_gemm::ForEachTile<kSwiGlu>(
      p, [&](int32_t row_begin, int32_t row_end, int32_t col_begin, const void* w, const void* w_up) {
        GemmTile<W, kSwiGlu>(p, row_begin, row_end, col_begin, static_cast<const S*>(w), static_cast<const S*>(w_up),
                             as, bs, up);
      });
}

template <class W>
void Launch(const RowGemmParams& p, unsigned grid, cudaStream_t stream) {
  if (p.swiglu) {
    RowGemmKernel<W, true><<<grid, kThreads, 0, stream>>>(p);
  } else {
    RowGemmKernel<W, false><<<grid, kThreads, 0, stream>>>(p);
  }
}

}  // namespace

ExpertGemms MakeExpertGemms(const PlanArrays& plan, const float* x, int64_t x_stride, int64_t h, int64_t inter,
                            const ExpertWeights& w, float* hidden, float* y, bool tensor_cores) {
  ExpertGemms g;
  RowGemmParams& up = g.gate_up;
  up.a = x;
  up.lda = x_stride;
  up.gather = plan.row_token;
  up.k = h;
  up.n = inter;
  up.w_dtype = w.dtype;
  up.group_w = w.gate;
  up.group_w_up = w.up;
  up.groups = plan.num_experts;
  up.expert_offsets = plan.expert_offsets;
  up.tile_offsets = plan.tile_offsets;
  up.swiglu = true;
  up.out = hidden;
  up.ldo = inter;
  up.bf16_tensor_cores = tensor_cores;
  RowGemmParams& down = g.down;
  down = up;
  down.a = hidden;
  down.lda = inter;
  down.gather = nullptr;
  down.k = inter;
  down.n = h;
  down.group_w = w.down;
  down.group_w_up = nullptr;
  down.swiglu = false;
  down.out = y;
  down.ldo = h;
  return g;
}

void LaunchRowGemm(const RowGemmParams& p, int64_t max_rows, cudaStream_t stream) {
  const int64_t rows = p.group_w == nullptr ? p.rows : max_rows;
  if (rows <= 0 || p.n <= 0) return;
  // Row tiles: at most ceil(rows / 64) plus one partial tile per group; the grid-stride loop covers the rest.
  const int64_t row_tiles = (rows + kGemmTileM - 1) / kGemmTileM + (p.group_w == nullptr ? 0 : p.groups);
  const int64_t items = row_tiles * ColTiles(p.n, kGemmTileN);
  const unsigned grid = GridFor(items, 1, 1 << 16);
  if (p.bf16_tensor_cores && p.w_dtype == DType::kBF16) {
    internal::LaunchRowGemmMma(p, grid, stream);
    return;
  }
  switch (p.w_dtype) {
    case DType::kBF16: Launch<Bf16W>(p, grid, stream); break;
    case DType::kF16: Launch<F16W>(p, grid, stream); break;
    default: Launch<F32W>(p, grid, stream); break;
  }
}

}  // namespace adak::kernels::cuda
