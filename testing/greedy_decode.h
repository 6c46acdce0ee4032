// Greedy decoding of one sequence on an engine::Session: the scheduler-independent reference that golden
// tests and the scheduler-vs-engine tests compare against (production generation runs through
// scheduler::Scheduler; see cli/cmd_generate.cc and server/).
//
// Stateless functions; the Session they drive is not thread-safe.
#ifndef ADAK_TESTING_GREEDY_DECODE_H_
#define ADAK_TESTING_GREEDY_DECODE_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/routing.h"
#include "engine/session.h"

namespace adak::testing {

struct GreedyDecodeParams {
  int64_t max_tokens = 16;
  engine::RoutingParams routing;
  bool stop_at_eos = true;  // the model's eos ends decoding (and is not part of the output)
};

struct GreedyDecodeResult {
  std::vector<int32_t> output_ids;  // without the eos that stopped decoding
  std::string text;                 // detokenized output (special tokens kept)
};

// Resets `session`, runs `prompt_ids`, then takes the argmax token (ties to the lower id) up to
// max_tokens times. Errors: InvalidArgument for an empty prompt or max_tokens < 1, and Session::Append's
// (prompt + max_tokens beyond the session's max_context names both numbers).
[[nodiscard]] absl::StatusOr<GreedyDecodeResult> GreedyDecode(engine::Session& session,
                                                              std::span<const int32_t> prompt_ids,
                                                              const GreedyDecodeParams& params);

}  // namespace adak::testing

#endif  // ADAK_TESTING_GREEDY_DECODE_H_
