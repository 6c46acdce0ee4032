// The dispatch plan of an MoE layer: which rows each expert computes, padding-free.
//
// BuildDispatchPlan takes each token's chosen experts (kernels/cpu/moe_routing.h) and groups the
// (token, expert) pairs by expert with CSR offsets so each expert runs once over exactly its rows: the plan
// has sum_t k_t rows in total. Stateless; the plan is plain data the caller owns.
//
// Shape legend: T tokens, E experts, KM = max k slots per token.
#ifndef ADAK_KERNELS_CPU_MOE_DISPATCH_H_
#define ADAK_KERNELS_CPU_MOE_DISPATCH_H_

#include <cstdint>
#include <vector>

namespace adak::kernels {

// The padding-free plan of one MoE layer for one step (docs/architecture.md, "The dispatch plan"):
//  1. tokens are bucketed by k with a stable counting sort, so each token's (token, expert) pairs occupy a
//     contiguous slot range (prefix sum over k in bucket order); tokens with k = 0 get no slots;
//  2. the pairs are grouped by expert (CSR offsets [E+1]), in token order within an expert, so each
//     expert's FFN runs once over exactly its rows. Rows in total: R = sum_t k_t; nothing is padded.
// slot_row maps a slot to its row and row_slot back: the two are inverse bijections on [0, R).
struct DispatchPlan {
  int64_t num_tokens = 0;
  int64_t num_experts = 0;
  std::vector<int32_t> token_order;     // [T] tokens sorted by k ascending (stable)
  std::vector<int32_t> k_offsets;       // [KM+2] tokens with k = j: token_order[k_offsets[j] .. k_offsets[j+1])
  std::vector<int32_t> slot_offsets;    // [T+1] slots of token_order[i]: [slot_offsets[i], slot_offsets[i+1])
  std::vector<int32_t> slot_row;        // [R] slot -> row
  std::vector<int32_t> row_slot;        // [R] row -> slot
  std::vector<int32_t> expert_offsets;  // [E+1] rows of expert e are [offsets[e], offsets[e+1])
  std::vector<int32_t> row_token;       // [R] token of each row, grouped by expert
  std::vector<float> row_weight;        // [R] combine weight of each row
  [[nodiscard]] int64_t num_rows() const { return static_cast<int64_t>(row_token.size()); }
};

// Builds the plan from per-token choices: k_t valid slots of expert_ids / weights rows of width max_k
// (k may be nullptr: every token uses max_k). REQUIRES: 0 <= k_t <= max_k, ids in [0, E), distinct per token.
void BuildDispatchPlan(const int32_t* k, const int32_t* expert_ids, const float* weights, int64_t rows, int64_t max_k,
                       int64_t num_experts, DispatchPlan* plan);

}  // namespace adak::kernels

#endif  // ADAK_KERNELS_CPU_MOE_DISPATCH_H_
