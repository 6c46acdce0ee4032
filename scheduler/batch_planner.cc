#include "scheduler/batch_planner.h"

#include <algorithm>
#include <cmath>

namespace adak::scheduler {
namespace {

int64_t BlocksFor(int64_t tokens, int64_t block_size) { return (tokens + block_size - 1) / block_size; }

int64_t MissingBlocks(const PlanSequence& s, int64_t tokens, int64_t block_size) {
  return std::max<int64_t>(0, BlocksFor(s.computed + tokens, block_size) - s.blocks_held);
}

// The largest chunk <= want whose new blocks fit in `free_blocks`.
int64_t FitBlocks(const PlanSequence& s, int64_t want, int64_t free_blocks, int64_t block_size) {
  const int64_t capacity = (s.blocks_held + free_blocks) * block_size - s.computed;
  return std::clamp<int64_t>(capacity, 0, want);
}

}  // namespace

Plan PlanStep(const PlanInput& input, const PlannerLimits& limits) {
  Plan plan;
  const int64_t bs = std::max<int64_t>(limits.block_size, 1);
  const bool expert_limited = limits.max_expert_activations > 0.0;
  int64_t free_blocks = input.free_blocks;
  int64_t tokens_left = limits.max_batch_tokens;
  double experts_left = limits.max_expert_activations;
  std::vector<bool> gone(input.running.size(), false);  // preempted
  size_t newest = input.running.size();                 // running[newest..) are preempted
  int64_t running = static_cast<int64_t>(input.running.size());

  // Tokens of `s` the step can still take: the token and expert budgets, at least one token overall.
  auto budget = [&](const PlanSequence& s, int64_t want) {
    int64_t n = std::min(want, tokens_left);
    if (expert_limited && s.activations_per_token > 0.0) {
      const double fit = std::floor(experts_left / s.activations_per_token + 1e-9);
      int64_t by_experts = fit >= static_cast<double>(n) ? n : static_cast<int64_t>(std::max(fit, 0.0));
      if (by_experts == 0 && plan.tokens == 0 && n > 0) by_experts = 1;  // never plan an empty step
      n = std::min(n, by_experts);
    }
    return std::max<int64_t>(n, 0);
  };
  auto take = [&](bool from_waiting, size_t index, const PlanSequence& s, int64_t n) {
    const int64_t blocks = MissingBlocks(s, n, bs);
    free_blocks -= blocks + (from_waiting ? s.reclaimed_blocks : 0);
    tokens_left -= n;
    experts_left -= static_cast<double>(n) * s.activations_per_token;
    plan.tokens += n;
    plan.expert_activations += static_cast<double>(n) * s.activations_per_token;
    plan.chunks.push_back({from_waiting, index, n, blocks});
  };

  // 1. Decodes, oldest first; preempt the newest when blocks run out.
  for (size_t i = 0; i < input.running.size(); ++i) {
    if (gone[i]) break;  // everything from here on was preempted
    const PlanSequence& s = input.running[i];
    if (s.pending != 1) continue;
    if (budget(s, 1) < 1) continue;
    while (MissingBlocks(s, 1, bs) > free_blocks) {
      // Preempt the newest running sequence still here (maybe `s` itself).
      --newest;
      gone[newest] = true;
      --running;
      free_blocks += input.running[newest].blocks_held;
      plan.preempted.push_back(newest);
      if (newest == i) break;
    }
    if (gone[i]) break;
    take(false, i, s, 1);
  }
  // 2. Prefill chunks of running sequences, shrunk to the free blocks. They preempt only to guarantee
  //    progress: when nothing else is planned, the oldest takes blocks from the newest.
  for (size_t i = 0; i < newest; ++i) {
    const PlanSequence& s = input.running[i];
    if (s.pending <= 1) continue;
    const int64_t want = budget(s, std::min(s.pending, limits.prefill_chunk));
    int64_t n = FitBlocks(s, want, free_blocks, bs);
    while (n < 1 && want > 0 && plan.tokens == 0 && newest > i + 1) {
      --newest;
      gone[newest] = true;
      --running;
      free_blocks += input.running[newest].blocks_held;
      plan.preempted.push_back(newest);
      n = FitBlocks(s, want, free_blocks, bs);
    }
    if (n > 0) take(false, i, s, n);
  }
  // 3. Admissions, in order, none overtaking; a request is admitted only when its whole first chunk gets
  //    its blocks (a partial admission would only be preempted again).
  for (size_t i = 0; i < input.waiting.size(); ++i) {
    if (running >= limits.max_running_requests || tokens_left <= 0) break;
    const PlanSequence& s = input.waiting[i];
    const int64_t n = budget(s, std::min(s.pending, limits.prefill_chunk));
    if (n < 1 || MissingBlocks(s, n, bs) + s.reclaimed_blocks > free_blocks) break;
    take(true, i, s, n);
    ++running;
  }
  plan.blocks_after = free_blocks;
  return plan;
}

}  // namespace adak::scheduler
