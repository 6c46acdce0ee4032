#include "kernels/cuda/elementwise.h"

#include <math.h>

#include "kernels/cuda/device_math.cuh"

namespace adak::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void EmbeddingKernel(const void* table, DType dtype, int64_t cols, int64_t vocab, const int32_t* ids,
                                float* out, int64_t out_stride) {
  const int64_t t = blockIdx.x;
  const int64_t id = ids[t];
  float* o = out + t * out_stride;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    o[c] = id >= 0 && id < vocab ? LoadAsF32(table, dtype, id * cols + c) : 0.0f;
  }
}

__global__ void RmsNormKernel(const float* x, int64_t dim, int64_t x_stride, const void* w, DType w_dtype, float eps,
                              float* out, int64_t out_stride) {
  __shared__ float shared[32];
  const float* xr = x + blockIdx.x * x_stride;
  float* o = out + blockIdx.x * out_stride;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum += xr[i] * xr[i];
  sum = BlockReduce<false>(sum, shared);
  const float inv = 1.0f / sqrtf(sum / static_cast<float>(dim) + eps);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) o[i] = (xr[i] * inv) * LoadAsF32(w, w_dtype, i);
}

__global__ void RopeKernel(float* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t stride,
                           const int32_t* positions, float theta) {
  const int64_t half = head_dim / 2;
  const int64_t n = rows * heads * half;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx % half;
    const int64_t h = (idx / half) % heads;
    const int64_t t = idx / (half * heads);
    // As kernels/cpu/rope.cc: inv_freq in fp32 as HF computes it, angle = position * inv_freq.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float inv_freq = 1.0f / powf(theta, exponent);
    const float angle = static_cast<float>(positions[t]) * inv_freq;
    const float c = cosf(angle);
    const float s = sinf(angle);
    float* xh = x + t * stride + h * head_dim;
    const float x1 = xh[i];
    const float x2 = xh[i + half];
    xh[i] = x1 * c - x2 * s;
    xh[i + half] = x2 * c + x1 * s;
  }
}

__global__ void ClampKernel(float* x, int64_t rows, int64_t cols, int64_t stride, float limit) {
  const int64_t n = rows * cols;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float* p = x + (idx / cols) * stride + idx % cols;
    *p = fminf(fmaxf(*p, -limit), limit);
  }
}

template <class T>
__global__ void GatherKernel(const T* x, int64_t x_stride, int64_t cols, const int32_t* rows, T* out,
                             int64_t out_stride) {
  const T* src = x + static_cast<int64_t>(rows[blockIdx.x]) * x_stride;
  T* dst = out + blockIdx.x * out_stride;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = src[c];
}

__global__ void SigmoidKernel(float* x, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // As kernels::Sigmoid: the form that never overflows.
    const float v = x[i];
    if (v >= 0.0f) {
      x[i] = 1.0f / (1.0f + expf(-v));
    } else {
      const float e = expf(v);
      x[i] = e / (1.0f + e);
    }
  }
}

__global__ void AddBiasKernel(float* out, int64_t rows, int64_t cols, int64_t stride, const void* bias, DType dtype) {
  const int64_t n = rows * cols;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[(idx / cols) * stride + idx % cols] += LoadAsF32(bias, dtype, idx % cols);
  }
}

__global__ void ToBf16Kernel(const float* x, int64_t rows, int64_t cols, int64_t stride, uint16_t* out) {
  const int64_t n = rows * cols;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[idx] = F32ToBf16Bits(x[(idx / cols) * stride + idx % cols]);
  }
}

}  // namespace

void LaunchEmbedding(const void* table, DType dtype, int64_t cols, int64_t vocab, const int32_t* ids, int64_t rows,
                     float* out, int64_t out_stride, cudaStream_t stream) {
  if (rows <= 0) return;
  EmbeddingKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(table, dtype, cols, vocab, ids, out,
                                                                        out_stride);
}

void LaunchRmsNorm(const float* x, int64_t rows, int64_t dim, int64_t x_stride, const void* w, DType w_dtype, float eps,
                   float* out, int64_t out_stride, cudaStream_t stream) {
  if (rows <= 0) return;
  RmsNormKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, dim, x_stride, w, w_dtype, eps, out,
                                                                      out_stride);
}

void LaunchRope(float* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t stride, const int32_t* positions,
                double theta, cudaStream_t stream) {
  const int64_t n = rows * heads * (head_dim / 2);
  if (n <= 0) return;
  RopeKernel<<<GridFor(n, kThreads), kThreads, 0, stream>>>(x, rows, heads, head_dim, stride, positions,
                                                            static_cast<float>(theta));
}

void LaunchClamp(float* x, int64_t rows, int64_t cols, int64_t stride, float limit, cudaStream_t stream) {
  if (rows * cols <= 0) return;
  ClampKernel<<<GridFor(rows * cols, kThreads), kThreads, 0, stream>>>(x, rows, cols, stride, limit);
}

void LaunchGatherRows(const void* x, int64_t x_stride, size_t elem_bytes, int64_t cols, const int32_t* rows, int64_t n,
                      void* out, int64_t out_stride, cudaStream_t stream) {
  if (n <= 0) return;
  if (elem_bytes == 2) {
    GatherKernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(static_cast<const uint16_t*>(x), x_stride, cols,
                                                                    rows, static_cast<uint16_t*>(out), out_stride);
  } else {
    GatherKernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(static_cast<const uint32_t*>(x), x_stride, cols,
                                                                    rows, static_cast<uint32_t*>(out), out_stride);
  }
}

void LaunchSigmoid(float* x, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  SigmoidKernel<<<GridFor(n, kThreads), kThreads, 0, stream>>>(x, n);
}

void LaunchAddBias(float* out, int64_t rows, int64_t cols, int64_t stride, const void* bias, DType dtype,
                   cudaStream_t stream) {
  if (rows * cols <= 0) return;
  AddBiasKernel<<<GridFor(rows * cols, kThreads), kThreads, 0, stream>>>(out, rows, cols, stride, bias, dtype);
}

void LaunchToBf16(const float* x, int64_t rows, int64_t cols, int64_t stride, uint16_t* out, cudaStream_t stream) {
  if (rows * cols <= 0) return;
  ToBf16Kernel<<<GridFor(rows * cols, kThreads), kThreads, 0, stream>>>(x, rows, cols, stride, out);
}

}  // namespace adak::kernels::cuda
