#include "scheduler/stop_checker.h"

#include <algorithm>

namespace adak::scheduler {

StopChecker::StopChecker(std::vector<std::string> stop, std::span<const int32_t> stop_token_ids,
                         std::span<const int32_t> eos_ids, bool ignore_eos) {
  for (std::string& s : stop) {
    if (!s.empty()) stop_.push_back(std::move(s));
  }
  stop_tokens_.assign(stop_token_ids.begin(), stop_token_ids.end());
  if (!ignore_eos) stop_tokens_.insert(stop_tokens_.end(), eos_ids.begin(), eos_ids.end());
}

bool StopChecker::IsStopToken(int32_t id) const {
  return std::find(stop_tokens_.begin(), stop_tokens_.end(), id) != stop_tokens_.end();
}

StopResult StopChecker::Feed(std::string_view text) {
  StopResult result;
  if (stop_.empty()) {
    result.text.assign(text.data(), text.size());
    return result;
  }
  held_.append(text.data(), text.size());
  // Earliest match; among matches at the same position the longest. Every match starts inside held_:
  // text before it was released only when no stop string could start there.
  size_t best = std::string::npos;
  const std::string* best_stop = nullptr;
  for (const std::string& s : stop_) {
    const size_t pos = held_.find(s);
    if (pos == std::string::npos) continue;
    if (pos < best || (pos == best && s.size() > best_stop->size())) {
      best = pos;
      best_stop = &s;
    }
  }
  if (best_stop != nullptr) {
    result.text = held_.substr(0, best);
    result.stopped = true;
    result.matched_stop = *best_stop;
    held_.clear();
    return result;
  }
  // Hold the longest tail of held_ that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const std::string& s : stop_) {
    const size_t max_len = std::min(s.size() - 1, held_.size());
    for (size_t len = max_len; len > keep; --len) {
      if (std::string_view(held_).substr(held_.size() - len) == std::string_view(s).substr(0, len)) {
        keep = len;
        break;
      }
    }
  }
  result.text = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return result;
}

std::string StopChecker::Flush() {
  std::string out;
  out.swap(held_);
  return out;
}

}  // namespace adak::scheduler
