#include "loadtest/workload.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <utility>

#include "base/random.h"
#include "base/strings.h"

namespace adak::loadtest {
namespace {

// Splits on `sep`, keeping empty pieces.
std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    const size_t at = text.find(sep);
    out.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return out;
    text.remove_prefix(at + 1);
  }
}

std::optional<double> ParseDouble(std::string_view text) {
  if (text.empty()) return std::nullopt;
  const std::string copy(text);
  char* end = nullptr;
  const double v = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<int64_t> ParseInt(std::string_view text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

// Words of the generated prompts (stories-like, so any of our tokenizers splits them into few tokens).
constexpr std::string_view kWords[] = {"once",  "upon", "a",     "time", "there", "was",   "little", "girl", "named",
                                       "lily",  "she",  "liked", "to",   "play",  "in",    "the",    "park", "with",
                                       "her",   "big",  "red",   "ball", "one",   "day",   "saw",    "dog",  "who",
                                       "happy", "and",  "they",  "ran",  "under", "tree",  "sun",    "was",  "warm",
                                       "mom",   "said", "come",  "home", "for",   "lunch", "after",  "that"};

// One story per paragraph (blank line or a `<|endoftext|>` line ends it), whitespace-normalised.
std::vector<std::string> ReadStories(std::istream& in) {
  std::vector<std::string> stories;
  std::string line, story;
  auto flush = [&] {
    if (!story.empty()) stories.push_back(std::move(story));
    story.clear();
  };
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos || line.find("<|endoftext|>") != std::string::npos) {
      flush();
      continue;
    }
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
      if (!story.empty()) story += ' ';
      story += word;
    }
  }
  flush();
  return stories;
}

int64_t Draw(Range r, uint64_t key) {
  if (r.hi <= r.lo) return r.lo;
  const uint64_t span = static_cast<uint64_t>(r.hi - r.lo) + 1;
  return r.lo + static_cast<int64_t>(SplitMix64(key) % span);
}

double Uniform(uint64_t key) { return static_cast<double>(SplitMix64(key) >> 11) * 0x1.0p-53; }

}  // namespace

absl::StatusOr<std::vector<Arm>> ParseMix(std::string_view spec) {
  std::vector<Arm> arms;
  for (std::string_view entry : Split(spec, ',')) {
    const size_t colon = entry.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(
          StrCatStd("--mix entry '", entry, "' must be NAME[=VALUE]:WEIGHT, e.g. topk:0.5,adak:0.5"));
    }
    Arm arm;
    arm.name = std::string(entry.substr(0, colon));
    const std::optional<double> weight = ParseDouble(entry.substr(colon + 1));
    if (!weight || *weight <= 0.0) {
      return absl::InvalidArgumentError(StrCatStd(
          "--mix entry '", entry, "': the weight must be a positive number, got '", entry.substr(colon + 1), "'"));
    }
    arm.weight = *weight;
    const std::string_view name = entry.substr(0, colon);
    const size_t eq = name.find('=');
    const std::string_view policy = name.substr(0, eq);
    if (policy != "default" && policy != "topk" && policy != "adak" && policy != "null" && policy != "topp" &&
        policy != "threshold") {
      return absl::InvalidArgumentError(StrCatStd("--mix entry '", entry, "': unknown policy '", policy,
                                                  "' (accepted: default, topk, adak, null, topp, threshold)"));
    }
    arm.policy = policy == "default" ? "" : std::string(policy);
    if (eq != std::string_view::npos) {
      const std::optional<double> value = ParseDouble(name.substr(eq + 1));
      bool ok = value.has_value();
      if (policy == "topk") ok = ok && *value >= 1 && *value == std::floor(*value);
      if (policy == "topp") ok = ok && *value > 0 && *value <= 1;
      if (policy == "threshold") ok = ok && *value >= 0 && *value <= 1;
      if (policy != "topk" && policy != "topp" && policy != "threshold") {
        return absl::InvalidArgumentError(
            StrCatStd("--mix entry '", entry, "': policy '", policy, "' takes no value (topk, topp, threshold do)"));
      }
      if (!ok) {
        return absl::InvalidArgumentError(StrCatStd("--mix entry '", entry, "': bad value '", name.substr(eq + 1),
                                                    "' (topk: an integer >= 1, topp: (0, 1], threshold: [0, 1])"));
      }
      arm.value = value;
    } else if (policy == "topp" || policy == "threshold") {
      return absl::InvalidArgumentError(
          StrCatStd("--mix entry '", entry, "': policy '", policy, "' needs its value, e.g. ", policy, "=0.5:1"));
    }
    for (const Arm& other : arms) {
      if (other.name == arm.name) {
        return absl::InvalidArgumentError(StrCatStd("--mix names '", arm.name, "' twice"));
      }
    }
    arms.push_back(std::move(arm));
  }
  return arms;
}

absl::StatusOr<Range> ParseRange(std::string_view text, std::string_view flag, int64_t min_value) {
  const size_t colon = text.find(':');
  const std::optional<int64_t> lo = ParseInt(text.substr(0, colon));
  const std::optional<int64_t> hi = colon == std::string_view::npos ? lo : ParseInt(text.substr(colon + 1));
  if (!lo || !hi || *lo < min_value || *hi < *lo) {
    return absl::InvalidArgumentError(
        StrCatStd("--", flag, " must be N or LO:HI with ", min_value, " <= LO <= HI, got '", text, "'"));
  }
  return Range{*lo, *hi};
}

absl::StatusOr<Slo> ParseSlo(std::string_view spec) {
  Slo slo;
  for (std::string_view entry : Split(spec, ',')) {
    const size_t eq = entry.find('=');
    const std::string_view key = entry.substr(0, eq);
    const double ms = eq == std::string_view::npos ? -1.0 : ParseDouble(entry.substr(eq + 1)).value_or(-1.0);
    std::optional<double>* field = key == "ttft"   ? &slo.ttft_ms
                                   : key == "itl"  ? &slo.itl_ms
                                   : key == "tpot" ? &slo.tpot_ms
                                   : key == "e2e"  ? &slo.e2e_ms
                                                   : nullptr;
    if (field == nullptr || ms <= 0.0) {
      return absl::InvalidArgumentError(StrCatStd(
          "--slo entry '", entry, "' must be ttft=MS, itl=MS, tpot=MS or e2e=MS with MS > 0, e.g. ttft=500,itl=100"));
    }
    *field = ms;
  }
  return slo;
}

absl::StatusOr<Workload> Workload::Create(const std::string& prompts_file, Range prompt_words, Range max_tokens,
                                          std::vector<Arm> arms, uint64_t seed) {
  Workload w;
  if (!prompts_file.empty()) {
    std::ifstream in(prompts_file);
    if (!in) return absl::NotFoundError(StrCatStd("--prompts ", prompts_file, ": cannot open"));
    w.stories_ = ReadStories(in);
    if (w.stories_.empty()) return absl::InvalidArgumentError(StrCatStd("--prompts ", prompts_file, " has no text"));
  }
  if (arms.empty()) arms.push_back(Arm{.name = "default"});
  double total = 0.0;
  for (const Arm& a : arms) total += a.weight;
  double acc = 0.0;
  for (const Arm& a : arms) w.cumulative_.push_back((acc += a.weight) / total);
  w.cumulative_.back() = 1.0;
  w.arms_ = std::move(arms);
  w.prompt_words_ = prompt_words;
  w.max_tokens_ = max_tokens;
  w.seed_ = seed;
  return w;
}

RequestSpec Workload::Request(int64_t i) const {
  const uint64_t key = SplitMix64(seed_ ^ SplitMix64(static_cast<uint64_t>(i)));
  RequestSpec r;
  r.index = i;
  r.seed = key;
  r.max_tokens = Draw(max_tokens_, key + 1);
  const int64_t words = Draw(prompt_words_, key + 2);
  const double u = Uniform(key + 3);
  r.arm = static_cast<size_t>(std::upper_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin());
  r.arm = std::min(r.arm, arms_.size() - 1);
  if (!stories_.empty()) {
    // Successive stories, so requests differ; cut to `words` words (a short story gives all it has).
    const std::string& story = stories_[static_cast<size_t>(i) % stories_.size()];
    size_t end = 0;
    for (int64_t n = 0; n < words && end != std::string::npos; ++n) end = story.find(' ', end + (n > 0 ? 1 : 0));
    r.prompt = story.substr(0, end);
  } else {
    uint64_t state = key + 4;
    for (int64_t n = 0; n < words; ++n) {
      if (n > 0) r.prompt += ' ';
      r.prompt += kWords[SplitMix64Next(state) % std::size(kWords)];
    }
  }
  return r;
}

ArrivalProcess::ArrivalProcess(double rate, double burstiness, uint64_t seed)
    : rng_(SplitMix64(seed)), gap_(burstiness, 1.0 / (rate * burstiness)) {}

double ArrivalProcess::Next() { return t_ += gap_(rng_); }

}  // namespace adak::loadtest
