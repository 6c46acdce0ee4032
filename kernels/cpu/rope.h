// Rotary position embedding, rotate_half (GPT-NeoX / HF Llama) convention, applied in place.
//
// For each row t and head h, with d = head_dim and i < d/2: inv_freq_i = theta^(-2i/d) (fp32, as HF computes
// it), a = position_t * inv_freq_i, and (x_i, x_{i+d/2}) <- (x_i cos a - x_{i+d/2} sin a,
// x_{i+d/2} cos a + x_i sin a). Stateless.
#ifndef ADAK_KERNELS_CPU_ROPE_H_
#define ADAK_KERNELS_CPU_ROPE_H_

#include <cstdint>

#include "kernels/cpu/thread_pool.h"

namespace adak::kernels {

struct RopeParams {
  float* x = nullptr;  // [rows, heads, head_dim] with row stride `stride` (elements)
  int64_t rows = 0;    // T
  int64_t heads = 0;
  int64_t head_dim = 0;                // even
  int64_t stride = 0;                  // >= heads * head_dim
  const int32_t* positions = nullptr;  // [rows]
  double theta = 10000.0;
};

void ApplyRope(const RopeParams& p, ThreadPool* pool);
void ApplyRopeReference(const RopeParams& p);

}  // namespace adak::kernels

#endif  // ADAK_KERNELS_CPU_ROPE_H_
