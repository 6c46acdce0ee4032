// The batch planner: which tokens the next step runs (Orca / vLLM iteration-level scheduling, FCFS).
//
// Given the running sequences (oldest first), the waiting queue (FCFS, preempted sequences at its front),
// the free KV blocks and the step limits, Plan decides in this order:
//   1. decodes: every running sequence with exactly one token to run, oldest first. When the KV blocks
//      run out, the newest running sequence is preempted (its blocks counted free again; possibly the
//      sequence itself), so old requests always make progress;
//   2. prefill chunks of running sequences still prefilling (at most prefill_chunk tokens each, shrunk to
//      the free blocks); they preempt the newest only when the step would otherwise be empty;
//   3. admissions from the waiting queue, in order, while a running slot, tokens, expert budget and
//      blocks for the whole first chunk remain; the first one that does not fit stops admission (no
//      overtaking).
// Every chunk also counts against the expert budget (tokens x expected activations per token). So a long
// prompt never stalls decodes, and at least one token is planned whenever anything is runnable.
// Pure function of plain structs; thread-compatible.
#ifndef ADAK_SCHEDULER_BATCH_PLANNER_H_
#define ADAK_SCHEDULER_BATCH_PLANNER_H_

#include <cstdint>
#include <span>
#include <vector>

namespace adak::scheduler {

struct PlannerLimits {
  int64_t max_batch_tokens = 512;
  int64_t max_running_requests = 64;
  int64_t prefill_chunk = 256;
  double max_expert_activations = 0.0;  // <= 0: unlimited
  int64_t block_size = 16;
};

// One sequence as the planner sees it.
struct PlanSequence {
  uint64_t id = 0;
  int64_t computed = 0;                // positions already in the KV cache
  int64_t pending = 0;                 // tokens still to run (>= 1): 1 = decode, more = prefill / recompute
  int64_t blocks_held = 0;             // physical blocks in its table
  double activations_per_token = 0.0;  // expected expert activations of one of its tokens
  // Waiting sequences with a cached prefix: `computed` and `blocks_held` already count the cached blocks
  // it would share on admission; this many of them are evictable, i.e. counted in the free blocks now.
  int64_t reclaimed_blocks = 0;
};

struct PlanInput {
  std::span<const PlanSequence> running;  // oldest first
  std::span<const PlanSequence> waiting;  // in admission order
  int64_t free_blocks = 0;
};

struct PlannedChunk {
  bool from_waiting = false;  // index into PlanInput::waiting (an admission), else into running
  size_t index = 0;
  int64_t tokens = 0;      // tokens to run: [computed, computed + tokens)
  int64_t new_blocks = 0;  // blocks to allocate for them
};

struct Plan {
  std::vector<PlannedChunk> chunks;  // decodes, then running prefills, then admissions
  std::vector<size_t> preempted;     // indices into running, newest first
  int64_t tokens = 0;
  double expert_activations = 0.0;
  int64_t blocks_after = 0;  // free blocks once the plan is applied
};

[[nodiscard]] Plan PlanStep(const PlanInput& input, const PlannerLimits& limits);

}  // namespace adak::scheduler

#endif  // ADAK_SCHEDULER_BATCH_PLANNER_H_
