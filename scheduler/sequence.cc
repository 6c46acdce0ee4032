#include "scheduler/sequence.h"

#include <cstring>
#include <utility>

namespace adak::scheduler {
namespace {

// Everything in the routing that changes the KV cache contents (the MoE output feeds later layers).
uint64_t RoutingSalt(const engine::RoutingParams& r) {
  uint32_t top_p_bits = 0;
  uint32_t threshold_bits = 0;
  static_assert(sizeof(top_p_bits) == sizeof(r.top_p) && sizeof(threshold_bits) == sizeof(r.threshold));
  std::memcpy(&top_p_bits, &r.top_p, sizeof(top_p_bits));
  std::memcpy(&threshold_bits, &r.threshold, sizeof(threshold_bits));
  const uint64_t parts[] = {static_cast<uint64_t>(r.policy) + 1,
                            static_cast<uint64_t>(r.top_k),
                            top_p_bits,
                            static_cast<uint64_t>(r.top_p_weighting),
                            threshold_bits,
                            static_cast<uint64_t>(r.min_k),
                            static_cast<uint64_t>(r.max_k),
                            static_cast<uint64_t>(r.profile)};
  uint64_t h = 0x243f6a8885a308d3ull;
  for (uint64_t v : parts) h = (h ^ v) * 0x100000001b3ull + (h >> 29);
  return h;
}

}  // namespace

Sequence::Sequence(uint64_t id_in, GenerationRequest request_in, std::shared_ptr<RequestSink> sink_in,
                   const tokenizer::Tokenizer& tokenizer, const engine::ModelConfig& config,
                   std::span<const int32_t> eos_ids, absl::Time submitted_in)
    : id(id_in),
      request(std::move(request_in)),
      sink(std::move(sink_in)),
      tokens(request.prompt_ids),
      prompt_len(static_cast<int64_t>(request.prompt_ids.size())),
      sampler(request.sampling),
      detokenizer(tokenizer, request.prompt_ids),
      stop(request.stop, request.stop_token_ids, eos_ids, request.ignore_eos),
      flops(config),
      submitted(submitted_in) {
  salt = RoutingSalt(request.routing);
  tokens.reserve(static_cast<size_t>(prompt_len + request.max_tokens));
}

bool Sequence::WantsAllLogits(int64_t n) const {
  if (!request.prompt_logprobs) return false;
  // Row p predicts token p + 1; prompt logprobs cover p in [0, prompt_len - 1).
  const int64_t have = static_cast<int64_t>(final.prompt_logprobs.size());
  return have < prompt_len - 1 && computed + n > have && computed <= have;
}

}  // namespace adak::scheduler
