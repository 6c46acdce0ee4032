#include "kernels/cpu/moe_dispatch.h"

#include <algorithm>
#include <numeric>
#include <vector>

namespace adak::kernels {

void BuildDispatchPlan(const int32_t* k, const int32_t* expert_ids, const float* weights, int64_t rows, int64_t max_k,
                       int64_t num_experts, DispatchPlan* plan) {
  auto k_of = [&](int64_t t) -> int64_t { return k != nullptr ? k[t] : max_k; };
  plan->num_tokens = rows;
  plan->num_experts = num_experts;
  // 1. Counting sort of the tokens by k, then slot ranges by prefix sum in that order.
  plan->k_offsets.assign(static_cast<size_t>(max_k + 2), 0);
  for (int64_t t = 0; t < rows; ++t) ++plan->k_offsets[static_cast<size_t>(k_of(t)) + 1];
  std::partial_sum(plan->k_offsets.begin(), plan->k_offsets.end(), plan->k_offsets.begin());
  plan->token_order.resize(static_cast<size_t>(rows));
  std::vector<int32_t> bucket_cursor(plan->k_offsets.begin(), plan->k_offsets.end() - 1);
  std::vector<int32_t> rank(static_cast<size_t>(rows));  // token -> position in token_order
  for (int64_t t = 0; t < rows; ++t) {
    const int32_t pos = bucket_cursor[static_cast<size_t>(k_of(t))]++;
    plan->token_order[static_cast<size_t>(pos)] = static_cast<int32_t>(t);
    rank[static_cast<size_t>(t)] = pos;
  }
  plan->slot_offsets.assign(static_cast<size_t>(rows + 1), 0);
  for (int64_t i = 0; i < rows; ++i) {
    plan->slot_offsets[static_cast<size_t>(i) + 1] =
        plan->slot_offsets[static_cast<size_t>(i)] +
        static_cast<int32_t>(k_of(plan->token_order[static_cast<size_t>(i)]));
  }
  const int64_t total = plan->slot_offsets.back();

  // 2. Group the pairs by expert (CSR), token order within an expert.
  plan->expert_offsets.assign(static_cast<size_t>(num_experts + 1), 0);
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t j = 0; j < k_of(t); ++j) ++plan->expert_offsets[static_cast<size_t>(expert_ids[t * max_k + j]) + 1];
  }
  std::partial_sum(plan->expert_offsets.begin(), plan->expert_offsets.end(), plan->expert_offsets.begin());
  plan->row_token.resize(static_cast<size_t>(total));
  plan->row_weight.resize(static_cast<size_t>(total));
  plan->slot_row.resize(static_cast<size_t>(total));
  plan->row_slot.resize(static_cast<size_t>(total));
  std::vector<int32_t> cursor(plan->expert_offsets.begin(), plan->expert_offsets.end() - 1);
  for (int64_t t = 0; t < rows; ++t) {
    const int32_t first_slot = plan->slot_offsets[static_cast<size_t>(rank[static_cast<size_t>(t)])];
    for (int64_t j = 0; j < k_of(t); ++j) {
      const int32_t row = cursor[static_cast<size_t>(expert_ids[t * max_k + j])]++;
      const int32_t slot = first_slot + static_cast<int32_t>(j);
      plan->row_token[static_cast<size_t>(row)] = static_cast<int32_t>(t);
      plan->row_weight[static_cast<size_t>(row)] = weights[t * max_k + j];
      plan->slot_row[static_cast<size_t>(slot)] = row;
      plan->row_slot[static_cast<size_t>(row)] = slot;
    }
  }
}

}  // namespace adak::kernels
