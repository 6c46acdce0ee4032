#include "testing/greedy_decode.h"

#include <algorithm>

#include "base/status_macros.h"
#include "base/strings.h"
#include "engine/sampler.h"
#include "tokenizer/tokenizer.h"

namespace adak::testing {

absl::StatusOr<GreedyDecodeResult> GreedyDecode(engine::Session& session, std::span<const int32_t> prompt_ids,
                                                const GreedyDecodeParams& params) {
  if (prompt_ids.empty()) return absl::InvalidArgumentError("prompt is empty");
  if (params.max_tokens < 1) {
    return absl::InvalidArgumentError(StrCatStd("max_tokens must be >= 1, got ", params.max_tokens));
  }
  const int64_t prompt_len = static_cast<int64_t>(prompt_ids.size());
  if (prompt_len + params.max_tokens > session.max_context()) {
    return absl::InvalidArgumentError(StrCatStd("prompt (", prompt_len, " tokens) + max_tokens (", params.max_tokens,
                                                ") exceeds the context length ", session.max_context()));
  }
  session.Reset();
  const tokenizer::Tokenizer& tokenizer = *session.model().tokenizer;
  const std::vector<int32_t>& eos = tokenizer.eos_token_ids();
  engine::Sampler sampler(engine::SamplingParams{});  // temperature 0: argmax
  tokenizer::IncrementalDetokenizer detok(tokenizer, prompt_ids, /*skip_special_tokens=*/false);
  std::vector<int32_t> context(prompt_ids.begin(), prompt_ids.end());
  engine::AppendOptions append;
  append.routing = params.routing;
  engine::AppendResult step;
  RETURN_IF_ERROR(session.Append(prompt_ids, append, &step));
  GreedyDecodeResult result;
  for (int64_t i = 0; i < params.max_tokens; ++i) {
    const int32_t next = sampler.Sample(step.logits, context);
    if (params.stop_at_eos && std::find(eos.begin(), eos.end(), next) != eos.end()) break;
    result.output_ids.push_back(next);
    context.push_back(next);
    result.text += detok.Push(next);
    if (i + 1 == params.max_tokens) break;
    RETURN_IF_ERROR(session.Append(std::span<const int32_t>(&next, 1), append, &step));
  }
  result.text += detok.Flush();
  return result;
}

}  // namespace adak::testing
