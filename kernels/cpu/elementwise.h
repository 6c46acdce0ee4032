// Small element-wise ops of the forward pass: embedding lookup, residual add, SwiGLU, sigmoid gating.
// Stateless; the `pool` overloads split rows over the thread pool.
#ifndef ADAK_KERNELS_CPU_ELEMENTWISE_H_
#define ADAK_KERNELS_CPU_ELEMENTWISE_H_

#include <cstdint>

#include "base/dtype.h"
#include "kernels/cpu/thread_pool.h"

namespace adak::kernels {

// out[t, :] = table[ids[t], :] widened to fp32. REQUIRES: 0 <= ids[t] < table rows.
void EmbeddingLookup(const void* table, DType dtype, int64_t dim, const int32_t* ids, int64_t rows, float* out,
                     ThreadPool* pool);

// x[i] += y[i] for i < n.
void AddInPlace(float* x, const float* y, int64_t n);

// out[r, i] = silu(gate[r, i]) * up[r, i]; rows of width `width` with row stride `stride` for gate/up/out.
// out may alias gate.
void SiluMul(const float* gate, const float* up, float* out, int64_t rows, int64_t width, int64_t stride);

// Numerically stable sigmoid.
[[nodiscard]] float Sigmoid(float x);

}  // namespace adak::kernels

#endif  // ADAK_KERNELS_CPU_ELEMENTWISE_H_
