// What adak-loadtest sends and when: the prompts and output lengths of each request, the A/B arm it
// belongs to, and the open-loop arrival times.
//
// Arms (`--mix`): `NAME[=VALUE]:WEIGHT,...`, NAME a routing policy the server knows (topk, adak, null, topp,
// threshold) or `default` (the server's --default-routing); VALUE is the policy's parameter where it has one
// (topk: top_k, topp: top_p, threshold: t). Request i belongs to arm ArmOf(i), a deterministic draw with the
// arms' weights, so two runs with the same seed send the same requests to the same arms.
//
// Arrivals (`--rate R --burstiness B`): the gaps between requests are i.i.d. Gamma(shape B, mean 1/R), as
// `vllm bench serve` draws them: B = 1 is a Poisson process, B < 1 burstier, B > 1 more regular (the gaps'
// coefficient of variation is 1 / sqrt(B)).
//
// Lengths: `N` (fixed) or `LO:HI` (uniform integers in [LO, HI]), per request from the seed. Prompts come
// from a text file (its stories, separated by blank lines or `<|endoftext|>`, cut to the drawn number of
// words) or, without a file, from a fixed word list. Value types; thread-compatible.
#ifndef ADAK_LOADTEST_WORKLOAD_H_
#define ADAK_LOADTEST_WORKLOAD_H_

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace adak::loadtest {

struct Arm {
  std::string name{};             // as given, e.g. "threshold=0.3"
  std::string policy{};           // "" = the server's default routing
  std::optional<double> value{};  // top_k, top_p or threshold
  double weight = 1.0;
};

// Parses `--mix`. InvalidArgument naming the bad entry: unknown policy, a value where the policy has none
// or out of its range, a weight that is not a positive number, a repeated name.
[[nodiscard]] absl::StatusOr<std::vector<Arm>> ParseMix(std::string_view spec);

// An inclusive integer range; `N` is [N, N].
struct Range {
  int64_t lo = 0;
  int64_t hi = 0;
};
// Parses `N` or `LO:HI` with min_value <= LO <= HI. InvalidArgument naming `flag`.
[[nodiscard]] absl::StatusOr<Range> ParseRange(std::string_view text, std::string_view flag, int64_t min_value);

// Service-level objectives of `--slo ttft=MS,itl=MS,tpot=MS,e2e=MS` (milliseconds; unset = no bound).
struct Slo {
  std::optional<double> ttft_ms{}, itl_ms{}, tpot_ms{}, e2e_ms{};
  [[nodiscard]] bool empty() const { return !ttft_ms && !itl_ms && !tpot_ms && !e2e_ms; }
};
[[nodiscard]] absl::StatusOr<Slo> ParseSlo(std::string_view spec);

// One request of the run.
struct RequestSpec {
  int64_t index = 0;
  std::string prompt;
  int64_t max_tokens = 0;
  size_t arm = 0;
  uint64_t seed = 0;  // sampling seed
};

class Workload {
 public:
  // `prompts_file` empty = generated prompts. Errors: NotFound / InvalidArgument for an unreadable file or
  // one without text.
  static absl::StatusOr<Workload> Create(const std::string& prompts_file, Range prompt_words, Range max_tokens,
                                         std::vector<Arm> arms, uint64_t seed);

  // The i-th request (deterministic in i and the seed).
  [[nodiscard]] RequestSpec Request(int64_t i) const;
  [[nodiscard]] const std::vector<Arm>& arms() const { return arms_; }

 private:
  Workload() = default;
  std::vector<std::string> stories_;  // word lists joined by single spaces
  Range prompt_words_, max_tokens_;
  std::vector<Arm> arms_;
  std::vector<double> cumulative_;  // arm weights, cumulative, normalised to end at 1
  uint64_t seed_ = 0;
};

// Open-loop arrival times: offsets in seconds from the start, ascending, each Gamma gap (mean 1/rate, shape
// `burstiness`) after the previous one (the first after 0). Deterministic in the seed.
class ArrivalProcess {
 public:
  // REQUIRES: rate > 0, burstiness > 0.
  ArrivalProcess(double rate, double burstiness, uint64_t seed);
  [[nodiscard]] double Next();

 private:
  std::mt19937_64 rng_;
  std::gamma_distribution<double> gap_;
  double t_ = 0.0;
};

}  // namespace adak::loadtest

#endif  // ADAK_LOADTEST_WORKLOAD_H_
