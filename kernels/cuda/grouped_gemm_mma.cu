// The row GEMM on tensor cores (RowGemmParams::bf16_tensor_cores): BF16 weights, activations rounded to bf16
// (nearest even) as they are staged, mma.sync m16n8k16 with fp32 accumulation. Same tiles (64 x 64 outputs),
// tile schedule, gather and epilogues as the CUDA-core kernel of grouped_gemm.cu; 4 warps of 32 x 32.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 .bf16; g = lane / 4, q = lane % 4): A (row-major 16 x 16) registers
// {row g, k 2q..2q+1}, {row g+8, k 2q..}, {row g, k 2q+8..}, {row g+8, k 2q+8..}; B (16 x 8, "col": our weight
// rows W[n][k] as they lie) {k 2q.., n g}, {k 2q+8.., n g}; C {row g, n 2q..2q+1}, {row g+8, n 2q..}.
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/grouped_gemm.h"
#include "kernels/cuda/row_gemm_tiles.cuh"

namespace adak::kernels::cuda::internal {
namespace {

constexpr int kThreads = 128;  // 4 warps, 2 x 2 over the 64 x 64 tile
constexpr int kTileK = 32;
constexpr int kPad = 8;              // bf16 elements of padding per shared row (bank spread)
constexpr int kRow = kTileK + kPad;  // shared row stride in bf16 elements (80 bytes: 4-byte aligned pairs)

__device__ inline uint32_t Pair(const uint16_t* row, int k) { return *reinterpret_cast<const uint32_t*>(row + k); }

__device__ inline void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <bool kSwiGlu>
__device__ void MmaTile(const RowGemmParams& p, int32_t row_begin, int32_t row_end, int32_t col_begin,
                        const uint16_t* w, const uint16_t* w_up, uint16_t (&as)[kGemmTileM][kRow],
                        uint16_t (&bs)[kGemmTileN][kRow], uint16_t (&us)[kGemmTileN][kRow]) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int g = lane / 4;
  const int q = lane % 4;
  const int warp_m = (warp / 2) * 32;
  const int warp_n = (warp % 2) * 32;
  const bool warp_active = row_begin + warp_m < row_end;
  const bool second_half = row_begin + warp_m + 16 < row_end;
  float acc[2][4][4] = {};
  float acc_up[2][4][4] = {};
  for (int64_t k0 = 0; k0 < p.k; k0 += kTileK) {
    // Stage A (gathered fp32 rows -> bf16) and the weight tiles: 64 x 32 each, 16 elements per thread.
    for (int e = static_cast<int>(threadIdx.x); e < kGemmTileM * kTileK; e += kThreads) {
      const int m = e / kTileK;
      const int kk = e % kTileK;
      const int64_t kidx = k0 + kk;
      as[m][kk] = F32ToBf16Bits(row_gemm::LoadActivation(p, row_begin + m, row_end, kidx));
      const int64_t col = col_begin + m;
      const bool in = col < p.n && kidx < p.k;
      bs[m][kk] = in ? w[col * p.k + kidx] : uint16_t{0};
      if constexpr (kSwiGlu) us[m][kk] = in ? w_up[col * p.k + kidx] : uint16_t{0};
    }
    __syncthreads();
    // Warps whose 32 rows all lie past the tile's last row skip the MMAs (warp-uniform: decode tiles hold a row
    // or two), and the second 16-row half is skipped the same way.
#pragma unroll
    for (int kk = 0; kk < kTileK; kk += 16) {
      if (!warp_active) break;
      uint32_t a[2][4];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
        const uint16_t* r0 = as[warp_m + mi * 16 + g];
        const uint16_t* r1 = as[warp_m + mi * 16 + g + 8];
        a[mi][0] = Pair(r0, kk + 2 * q);
        a[mi][1] = Pair(r1, kk + 2 * q);
        a[mi][2] = Pair(r0, kk + 2 * q + 8);
        a[mi][3] = Pair(r1, kk + 2 * q + 8);
      }
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        const uint16_t* wb = bs[warp_n + ni * 8 + g];
        const uint32_t b0 = Pair(wb, kk + 2 * q);
        const uint32_t b1 = Pair(wb, kk + 2 * q + 8);
        Mma(acc[0][ni], a[0], b0, b1);
        if (second_half) Mma(acc[1][ni], a[1], b0, b1);
        if constexpr (kSwiGlu) {
          const uint16_t* ub = us[warp_n + ni * 8 + g];
          const uint32_t u0 = Pair(ub, kk + 2 * q);
          const uint32_t u1 = Pair(ub, kk + 2 * q + 8);
          Mma(acc_up[0][ni], a[0], u0, u1);
          if (second_half) Mma(acc_up[1][ni], a[1], u0, u1);
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t r = row_begin + warp_m + mi * 16 + g + (i >= 2 ? 8 : 0);
        const int64_t col = col_begin + warp_n + ni * 8 + 2 * q + (i % 2);
        if (r < row_end && col < p.n) row_gemm::Store<kSwiGlu>(p, r, col, acc[mi][ni][i], acc_up[mi][ni][i]);
      }
    }
  }
}

template <bool kSwiGlu>
__global__ void __launch_bounds__(kThreads) RowGemmMmaKernel(RowGemmParams p) {
  __shared__ __align__(16) uint16_t as[kGemmTileM][kRow];
  __shared__ __align__(16) uint16_t bs[kGemmTileN][kRow];
  __shared__ __align__(16) uint16_t us[kSwiGlu ? kGemmTileN : 1][kSwiGlu ? kRow : 1];
  auto& up = reinterpret_cast<uint16_t(&)[kGemmTileN][kRow]>(us);
  row_gemm::ForEachTile<kSwiGlu>(
      p, [&](int32_t row_begin, int32_t row_end, int32_t col_begin, const void* w, const void* w_up) {
        MmaTile<kSwiGlu>(p, row_begin, row_end, col_begin, static_cast<const uint16_t*>(w),
                         static_cast<const uint16_t*>(w_up), as, bs, up);
      });
}

}  // namespace

void LaunchRowGemmMma(const RowGemmParams& p, unsigned grid, cudaStream_t stream) {
  if (p.swiglu) {
    RowGemmMmaKernel<true><<<grid, kThreads, 0, stream>>>(p);
  } else {
    RowGemmMmaKernel<false><<<grid, kThreads, 0, stream>>>(p);
  }
}

}  // namespace adak::kernels::cuda::internal
