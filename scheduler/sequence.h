// One request inside the scheduler: its tokens, how far its KV cache is computed, its block table, and
// the per-request machinery (sampler, detokenizer, stop checker, usage and timing).
//
// State machine: kWaiting -> kRunning (prefill chunks until every token is computed, then one decode per
// step) -> finished (the scheduler drops it). Preemption sends a running sequence back to kWaiting with its
// blocks freed and computed = 0, but keeps `tokens` (prompt and everything generated), so the recompute
// prefill rebuilds exactly the same cache and generation resumes where it stopped. Owned and touched by
// the scheduler thread only.
#ifndef ADAK_SCHEDULER_SEQUENCE_H_
#define ADAK_SCHEDULER_SEQUENCE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "engine/flops.h"
#include "engine/sampler.h"
#include "scheduler/request.h"
#include "scheduler/stop_checker.h"
#include "tokenizer/tokenizer.h"

namespace adak::scheduler {

enum class SequenceState { kWaiting, kRunning };

struct Sequence {
  // REQUIRES: `tokenizer` and `config` outlive the sequence; `eos_ids` are the model's.
  Sequence(uint64_t id, GenerationRequest request, std::shared_ptr<RequestSink> sink,
           const tokenizer::Tokenizer& tokenizer, const engine::ModelConfig& config, std::span<const int32_t> eos_ids,
           absl::Time submitted);

  [[nodiscard]] int64_t length() const { return static_cast<int64_t>(tokens.size()); }
  [[nodiscard]] int64_t pending() const { return length() - computed; }
  [[nodiscard]] int64_t generated() const { return length() - prompt_len; }
  // Whether the rows of a chunk over positions [computed, computed + n) must all come back (prompt
  // logprobs still missing for one of them).
  [[nodiscard]] bool WantsAllLogits(int64_t n) const;

  const uint64_t id;
  GenerationRequest request;
  std::shared_ptr<RequestSink> sink;
  SequenceState state = SequenceState::kWaiting;

  std::vector<int32_t> tokens;  // prompt, then every generated token
  const int64_t prompt_len;
  int64_t computed = 0;  // positions [0, computed) are in the KV cache
  int64_t counted = 0;   // positions whose routed k is in `flops` (recompute is not counted twice)
  std::vector<int32_t> block_table;
  // Prefix caching: the salt of this request's routing, the hashes of its published or shared full blocks
  // (block_hashes[j] for logical block j), and the routed k of every computed position [positions, L].
  uint64_t salt = 0;
  std::vector<uint64_t> block_hashes;
  std::vector<uint16_t> position_k;
  int64_t cached_tokens = 0;  // prompt tokens served from the prefix cache

  engine::Sampler sampler;
  tokenizer::IncrementalDetokenizer detokenizer;
  StopChecker stop;
  engine::FlopCounter flops;
  FinalOutput final;  // prompt logprobs accumulate here

  absl::Time submitted;
  absl::Time first_scheduled = absl::InfinitePast();  // InfinitePast: not yet
  absl::Time last_token = absl::InfinitePast();       // InfinitePast: no token yet
  int64_t emitted = 0;  // TokenOutputs sent (generated tokens, a final stop token included)
  int64_t preemptions = 0;
  bool finished = false;  // OnFinish was called; the scheduler drops it
};

}  // namespace adak::scheduler

#endif  // ADAK_SCHEDULER_SEQUENCE_H_
