#include "kernels/cpu/moe_dispatch.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace adak::kernels {

void SoftmaxTopK(const SoftmaxTopKParams& p) {
  const int64_t e_count = p.num_experts;
  std::vector<float> prob(static_cast<size_t>(e_count));
  std::vector<int32_t> order(static_cast<size_t>(e_count));
  for (int64_t t = 0; t < p.rows; ++t) {
    const float* logit = p.logits + t * e_count;
    const float mx = *std::max_element(logit, logit + e_count);
    float sum = 0.0f;
    for (int64_t e = 0; e < e_count; ++e) sum += (prob[static_cast<size_t>(e)] = std::exp(logit[e] - mx));
    for (float& v : prob) v /= sum;
    if (p.probs != nullptr) std::copy(prob.begin(), prob.end(), p.probs + t * e_count);

    const int64_t k = p.k != nullptr ? p.k[t] : p.max_k;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
      const float pa = prob[static_cast<size_t>(a)], pb = prob[static_cast<size_t>(b)];
      return pa != pb ? pa > pb : a < b;
    });
    float chosen = 0.0f;
    for (int64_t j = 0; j < k; ++j) chosen += prob[static_cast<size_t>(order[static_cast<size_t>(j)])];
    const float scale = (p.renormalize && chosen > 0.0f) ? 1.0f / chosen : 1.0f;
    for (int64_t j = 0; j < p.max_k; ++j) {
      const bool used = j < k;
      p.expert_ids[t * p.max_k + j] = used ? order[static_cast<size_t>(j)] : -1;
      p.weights[t * p.max_k + j] = used ? prob[static_cast<size_t>(order[static_cast<size_t>(j)])] * scale : 0.0f;
    }
  }
}

void BuildDispatchPlan(const int32_t* k, const int32_t* expert_ids, const float* weights, int64_t rows,
                       int64_t max_k, int64_t num_experts, DispatchPlan* plan) {
  plan->num_tokens = rows;
  plan->num_experts = num_experts;
  plan->expert_offsets.assign(static_cast<size_t>(num_experts + 1), 0);
  // Count rows per expert.
  for (int64_t t = 0; t < rows; ++t) {
    const int64_t kt = k != nullptr ? k[t] : max_k;
    for (int64_t j = 0; j < kt; ++j) ++plan->expert_offsets[static_cast<size_t>(expert_ids[t * max_k + j]) + 1];
  }
  std::partial_sum(plan->expert_offsets.begin(), plan->expert_offsets.end(), plan->expert_offsets.begin());
  const int64_t total = plan->expert_offsets.back();
  plan->row_token.resize(static_cast<size_t>(total));
  plan->row_weight.resize(static_cast<size_t>(total));
  std::vector<int32_t> cursor(plan->expert_offsets.begin(), plan->expert_offsets.end() - 1);
  for (int64_t t = 0; t < rows; ++t) {
    const int64_t kt = k != nullptr ? k[t] : max_k;
    for (int64_t j = 0; j < kt; ++j) {
      const int32_t row = cursor[static_cast<size_t>(expert_ids[t * max_k + j])]++;
      plan->row_token[static_cast<size_t>(row)] = static_cast<int32_t>(t);
      plan->row_weight[static_cast<size_t>(row)] = weights[t * max_k + j];
    }
  }
}

}  // namespace adak::kernels
