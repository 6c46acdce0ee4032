// Stop conditions of one request: stop strings matched across token boundaries, and stop tokens (the
// request's stop_token_ids plus the model's eos ids unless ignore_eos).
//
// Text is fed as the incremental detokenizer releases it. The checker holds back the longest tail of the
// text that could still be the start of a stop string, so no text that ends up part of a match is ever
// released; on a match everything before the match is released and generation ends (the stop string is
// not in the output). Flush() releases what is held when generation ends for another reason.
// One instance per sequence; not thread-safe.
#ifndef ADAK_SCHEDULER_STOP_CHECKER_H_
#define ADAK_SCHEDULER_STOP_CHECKER_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace adak::scheduler {

struct StopResult {
  std::string text;          // newly releasable text (complete UTF-8 when the input is)
  bool stopped = false;      // a stop string matched
  std::string matched_stop;  // which one (the earliest match; the longest when several end there)
};

class StopChecker {
 public:
  // `eos_ids` are ignored when `ignore_eos`. Empty stop strings are ignored (ValidateRequest refuses them).
  StopChecker(std::vector<std::string> stop, std::span<const int32_t> stop_token_ids, std::span<const int32_t> eos_ids,
              bool ignore_eos);

  // True when `id` ends generation without being part of the output.
  [[nodiscard]] bool IsStopToken(int32_t id) const;

  // Appends `text` and returns what can be released. After a match (stopped), nothing more may be fed.
  [[nodiscard]] StopResult Feed(std::string_view text);

  // Releases the held-back text (generation ended without a stop-string match).
  [[nodiscard]] std::string Flush();

  [[nodiscard]] bool has_stop_strings() const { return !stop_.empty(); }

 private:
  std::vector<std::string> stop_;
  std::vector<int32_t> stop_tokens_;
  std::string held_;
};

}  // namespace adak::scheduler

#endif  // ADAK_SCHEDULER_STOP_CHECKER_H_
