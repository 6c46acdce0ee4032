// Device helpers shared by the CUDA kernels: weight loads widened to fp32, block reductions, grid sizing.
// Included only by .cu files.
#ifndef ADAK_KERNELS_CUDA_DEVICE_MATH_CUH_
#define ADAK_KERNELS_CUDA_DEVICE_MATH_CUH_

#include <cuda_fp16.h>
#include <math.h>

#include <cstdint>

#include "base/dtype.h"

namespace adak::kernels::cuda {

// Element types of weights on the device, by storage: raw 16-bit words for bf16/f16, so widening is exact.
struct Bf16W {
  using Storage = uint16_t;
  __device__ static float Load(const Storage* p, int64_t i) {
    return __uint_as_float(static_cast<uint32_t>(p[i]) << 16);
  }
};
struct F16W {
  using Storage = uint16_t;
  __device__ static float Load(const Storage* p, int64_t i) { return __half2float(__ushort_as_half(p[i])); }
};
struct F32W {
  using Storage = float;
  __device__ static float Load(const Storage* p, int64_t i) { return p[i]; }
};

// Element i of a tensor of runtime dtype (F32, F16 or BF16), widened to fp32.
__device__ inline float LoadAsF32(const void* p, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::kBF16: return Bf16W::Load(static_cast<const uint16_t*>(p), i);
    case DType::kF16: return F16W::Load(static_cast<const uint16_t*>(p), i);
    default: return static_cast<const float*>(p)[i];
  }
}

// Round to nearest even (NaN stays NaN), bit-identical to adak::F32ToBf16.
__device__ inline uint16_t F32ToBf16Bits(float f) {
  const uint32_t bits = __float_as_uint(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

__device__ inline float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum (or max) over the block; every thread gets the result. `shared` holds >= 32 floats; blockDim.x is a
// multiple of 32. Ends with a barrier, so `shared` may be reused at once.
template <bool kMax>
__device__ inline float BlockReduce(float v, float* shared) {
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int warps = blockDim.x / 32;
  v = kMax ? WarpMax(v) : WarpSum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float r = lane < warps ? shared[lane] : (kMax ? -INFINITY : 0.0f);
  r = kMax ? WarpMax(r) : WarpSum(r);
  __syncthreads();
  return r;
}

// Blocks of `threads` covering n items, at most `cap`.
inline unsigned GridFor(int64_t n, int threads, int64_t cap = 65535) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks < cap ? blocks : cap);
}

}  // namespace adak::kernels::cuda

#endif  // ADAK_KERNELS_CUDA_DEVICE_MATH_CUH_
