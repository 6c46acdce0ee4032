// The CUDA backend's elementwise and row kernels: embedding, RMSNorm, RoPE, clamp, row gather, sigmoid, bias
// add and the fp32 -> bf16 conversion feeding cuBLAS. Each is the device twin of the CPU op of the same name
// (kernels/cpu/{elementwise,norm,rope}.h; the semantics are those headers'), checked against plain references
// by the backend conformance suite. Launchers enqueue on `stream` and return at once; a launch error is left
// for cudaGetLastError (the backend checks after every launch). All pointers are device memory.
#ifndef ADAK_KERNELS_CUDA_ELEMENTWISE_H_
#define ADAK_KERNELS_CUDA_ELEMENTWISE_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "base/dtype.h"

namespace adak::kernels::cuda {

// out[t] = table[ids[t]] widened to f32 (a row of zeros for an id outside [0, vocab)).
void LaunchEmbedding(const void* table, DType dtype, int64_t cols, int64_t vocab, const int32_t* ids, int64_t rows,
                     float* out, int64_t out_stride, cudaStream_t stream);

// out = (x / sqrt(mean(x^2) + eps)) * w row-wise, fp32 (out may equal x).
void LaunchRmsNorm(const float* x, int64_t rows, int64_t dim, int64_t x_stride, const void* w, DType w_dtype, float eps,
                   float* out, int64_t out_stride, cudaStream_t stream);

// Rotary embedding in place, rotate_half convention (kernels/cpu/rope.h).
void LaunchRope(float* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t stride, const int32_t* positions,
                double theta, cudaStream_t stream);

// x = clamp(x, -limit, limit).
void LaunchClamp(float* x, int64_t rows, int64_t cols, int64_t stride, float limit, cudaStream_t stream);

// out[i] = x[rows[i]] for i < n, elements of elem_bytes (2 or 4) bytes.
void LaunchGatherRows(const void* x, int64_t x_stride, size_t elem_bytes, int64_t cols, const int32_t* rows, int64_t n,
                      void* out, int64_t out_stride, cudaStream_t stream);

// x[i] = sigmoid(x[i]) for i < n.
void LaunchSigmoid(float* x, int64_t n, cudaStream_t stream);

// out[r, c] += bias[c] (bias of `dtype`, [cols]).
void LaunchAddBias(float* out, int64_t rows, int64_t cols, int64_t stride, const void* bias, DType dtype,
                   cudaStream_t stream);

// out [rows, cols] dense bf16 = x rounded to nearest even.
void LaunchToBf16(const float* x, int64_t rows, int64_t cols, int64_t stride, uint16_t* out, cudaStream_t stream);

}  // namespace adak::kernels::cuda

#endif  // ADAK_KERNELS_CUDA_ELEMENTWISE_H_
