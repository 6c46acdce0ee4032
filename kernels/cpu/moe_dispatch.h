// Routing and the dispatch plan of an MoE layer: which rows each expert computes, padding-free.
//
// SoftmaxTopK turns router logits into each token's k chosen experts (descending probability, ties to the
// lower index) and their combine weights. BuildDispatchPlan groups the (token, expert) pairs by expert
// with CSR offsets so each expert runs once over exactly its rows: the plan has sum_t k_t rows in total.
// Stateless; the plan is plain data the caller owns.
//
// Shape legend: T tokens, E experts, KM = max k slots per token.
#ifndef ADAK_KERNELS_CPU_MOE_DISPATCH_H_
#define ADAK_KERNELS_CPU_MOE_DISPATCH_H_

#include <cstdint>
#include <vector>

namespace adak::kernels {

struct SoftmaxTopKParams {
  const float* logits = nullptr;   // [T, E] router logits
  int64_t rows = 0;                // T
  int64_t num_experts = 0;         // E
  int64_t max_k = 0;               // KM: row stride of expert_ids / weights
  const int32_t* k = nullptr;      // [T] experts per token (0..KM); nullptr: every token uses max_k
  bool renormalize = false;        // divide the chosen weights by their sum
  int32_t* expert_ids = nullptr;   // [T, KM] out; slots past k_t are -1
  float* weights = nullptr;        // [T, KM] out; slots past k_t are 0
  float* probs = nullptr;          // [T, E] optional out: the fp32 softmax
};

void SoftmaxTopK(const SoftmaxTopKParams& p);

struct DispatchPlan {
  int64_t num_tokens = 0;
  int64_t num_experts = 0;
  std::vector<int32_t> expert_offsets;  // [E+1] rows of expert e are [offsets[e], offsets[e+1])
  std::vector<int32_t> row_token;       // [R] token of each row, R = sum_t k_t, grouped by expert
  std::vector<float> row_weight;        // [R] combine weight of each row
  [[nodiscard]] int64_t num_rows() const { return static_cast<int64_t>(row_token.size()); }
};

// Builds the plan from SoftmaxTopK's outputs (k_t valid slots per token; k may be nullptr = max_k).
// Within an expert, rows are in token order.
void BuildDispatchPlan(const int32_t* k, const int32_t* expert_ids, const float* weights, int64_t rows,
                       int64_t max_k, int64_t num_experts, DispatchPlan* plan);

}  // namespace adak::kernels

#endif  // ADAK_KERNELS_CPU_MOE_DISPATCH_H_
