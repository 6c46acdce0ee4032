// Test doubles for the scheduler: a fake engine with a real paged "KV cache", a fake clock, a recording
// sink and observer, and a 32-token character tokenizer. Header-only so every tests/scheduler binary can
// include it.
//
// The fake model: the next-token logits at position p are a deterministic function of the whole context
// (tokens 0..p), read back through the block table from the fake KV cache the forward wrote. So a wrong
// block table, a lost block or a wrong recompute after preemption changes the output, exactly as with the
// real engine. Routed k per token: native K for top-K (or top_k), `adak_k` for Ada-K.
#ifndef ADAK_TESTS_SCHEDULER_FAKE_ENGINE_H_
#define ADAK_TESTS_SCHEDULER_FAKE_ENGINE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/model_config.h"
#include "engine/routing_weights.h"
#include "gtest/gtest.h"
#include "scheduler/clock.h"
#include "scheduler/executor.h"
#include "scheduler/observer.h"
#include "scheduler/request.h"
#include "tokenizer/tokenizer.h"

namespace adak::scheduler::testing {

inline constexpr int64_t kVocab = 32;
inline constexpr int64_t kLayers = 2;
inline constexpr int64_t kExperts = 4;
inline constexpr int64_t kNativeK = 2;

// "a".."z" = 0..25, " " = 26, "." = 27, "!" = 28, "?" = 29, "\n" = 30, "X" = 31.
inline std::string TokenText(int32_t id) {
  static const char* kExtra[] = {" ", ".", "!", "?", "\n", "X"};
  return id < 26 ? std::string(1, static_cast<char>('a' + id)) : std::string(kExtra[id - 26]);
}

inline std::unique_ptr<tokenizer::Tokenizer> MakeTestTokenizer() {
  std::string vocab;
  for (int32_t id = 0; id < kVocab; ++id) {
    std::string t = TokenText(id);
    if (t == "\n") t = "\\n";
    absl::StrAppend(&vocab, id ? ", " : "", "\"", t, "\": ", id);
  }
  auto tokenizer = tokenizer::Tokenizer::FromJson(absl::StrCat(R"({"model": {"type": "BPE", "vocab": {)", vocab,
                                                               R"(}, "merges": []}, "decoder": {"type": "Fuse"}})"));
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

inline engine::ModelConfig MakeTestConfig(int64_t max_context = 256) {
  engine::ModelConfig c;
  c.vocab_size = kVocab;
  c.hidden_size = 8;
  c.num_layers = kLayers;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.max_position_embeddings = max_context;
  c.num_experts = kExperts;
  c.num_experts_per_tok = kNativeK;
  c.moe_intermediate_size = 16;
  c.norm_topk_prob = true;
  c.moe_layers.assign(kLayers, true);
  return c;
}

// The fake model's logits after `context` (FNV hash of the ids): a peak at hash % V, falling off with the
// circular distance, plus a small hash-dependent wobble so logprobs are not symmetric.
inline std::vector<float> FakeLogits(std::span<const int32_t> context) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t id : context) {
    h ^= static_cast<uint64_t>(id) + 0x9e3779b9u;
    h *= 1099511628211ull;
  }
  h ^= h >> 33;  // mix the high bits down: FNV's low bits only see the inputs' low bits
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 29;
  const int64_t peak = static_cast<int64_t>(h % kVocab);
  std::vector<float> logits(kVocab);
  for (int64_t v = 0; v < kVocab; ++v) {
    const int64_t d = std::min((v - peak + kVocab) % kVocab, (peak - v + kVocab) % kVocab);
    logits[static_cast<size_t>(v)] = -0.5f * static_cast<float>(d) + 0.01f * static_cast<float>((h >> (v % 48)) & 7);
  }
  return logits;
}

// Greedy continuation of `prompt` under the fake model (no stop conditions).
inline std::vector<int32_t> ReferenceGreedy(std::vector<int32_t> prompt, int64_t n) {
  std::vector<int32_t> out;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<float> logits = FakeLogits(prompt);
    const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(next);
    prompt.push_back(next);
  }
  return out;
}

inline std::string TextOf(std::span<const int32_t> ids) {
  std::string s;
  for (int32_t id : ids) s += TokenText(id);
  return s;
}

class FakeExecutor final : public StepExecutor {
 public:
  FakeExecutor(int64_t num_blocks, int64_t block_size, int64_t max_context = 256)
      : config_(MakeTestConfig(max_context)),
        num_blocks_(num_blocks),
        block_size_(block_size),
        kv_(static_cast<size_t>(num_blocks * block_size), -1) {
    // A (zero) allocator for every layer, so the adak policy validates.
    routing_.allocators.resize(1);
    routing_.allocators[0].layers.assign(kLayers, std::vector<float>(static_cast<size_t>(kExperts * 8), 0.0f));
  }

  [[nodiscard]] const engine::ModelConfig& config() const override { return config_; }
  [[nodiscard]] const engine::RoutingWeights& routing_weights() const override { return routing_; }
  [[nodiscard]] int64_t num_kv_blocks() const override { return num_blocks_; }
  [[nodiscard]] int64_t block_size() const override { return block_size_; }

  absl::Status Forward(std::span<const engine::SequenceInput> batch, engine::ForwardResult* result) override {
    {
      absl::MutexLock lock(&mu_);
      ++blocked_;
      mu_.Await(absl::Condition(this, &FakeExecutor::Ready));
      --blocked_;
      if (gated_) --permits_;
      ++forwards_;
      if (fail_next_) {
        fail_next_ = false;
        return absl::Status(fail_code_, "injected device failure");
      }
    }
    if (batch.empty()) return absl::InvalidArgumentError("empty batch");
    std::set<int64_t> written;  // KV slots this batch writes: never twice (shared prefix blocks are read-only)
    int64_t total = 0;
    for (const engine::SequenceInput& s : batch) {
      if (s.tokens.empty()) return absl::InvalidArgumentError("empty sequence");
      const int64_t end = s.start_position + static_cast<int64_t>(s.tokens.size());
      if (end > config_.max_position_embeddings) return absl::InvalidArgumentError("position beyond the context");
      if (static_cast<int64_t>(s.block_table.size()) * block_size_ < end) {
        return absl::InvalidArgumentError("block table too short");
      }
      for (int32_t b : s.block_table) {
        if (b < 0 || b >= num_blocks_) return absl::InvalidArgumentError("block outside the cache");
      }
      for (int64_t pos = s.start_position; pos < end; ++pos) {
        if (!written.insert(Slot(s.block_table, pos)).second) {
          return absl::InvalidArgumentError("two sequences of one batch write the same KV slot");
        }
      }
      total += static_cast<int64_t>(s.tokens.size());
    }
    result->vocab_size = kVocab;
    result->logits.clear();
    result->logits_offset.assign(1, 0);
    result->routed_k.assign(kLayers, {});
    result->routed_ids.assign(kLayers, {});
    std::vector<int32_t> context;
    for (const engine::SequenceInput& s : batch) {
      const int64_t n = static_cast<int64_t>(s.tokens.size());
      for (int64_t i = 0; i < n; ++i) {
        const int64_t pos = s.start_position + i;
        kv_[static_cast<size_t>(Slot(s.block_table, pos))] = s.tokens[static_cast<size_t>(i)];
      }
      int64_t rows = 0;
      for (int64_t i = s.all_logits ? 0 : n - 1; i < n; ++i, ++rows) {
        const int64_t pos = s.start_position + i;
        context.clear();
        for (int64_t p = 0; p <= pos; ++p) context.push_back(kv_[static_cast<size_t>(Slot(s.block_table, p))]);
        std::vector<float> logits = FakeLogits(context);
        result->logits.insert(result->logits.end(), logits.begin(), logits.end());
      }
      result->logits_offset.push_back(result->logits_offset.back() + rows);
      int32_t k = static_cast<int32_t>(kNativeK);
      if (s.routing.policy == engine::RoutingPolicy::kTopK && s.routing.top_k > 0)
        k = static_cast<int32_t>(s.routing.top_k);
      if (s.routing.policy == engine::RoutingPolicy::kAdaK) k = adak_k_;
      for (int64_t l = 0; l < kLayers; ++l) {
        for (int64_t i = 0; i < n; ++i) {
          result->routed_k[static_cast<size_t>(l)].push_back(k);
          for (int64_t e = 0; e < kExperts; ++e)
            result->routed_ids[static_cast<size_t>(l)].push_back(e < k ? static_cast<int32_t>(e) : -1);
        }
      }
    }
    absl::MutexLock lock(&mu_);
    batch_tokens_.push_back(total);
    return absl::OkStatus();
  }

  // Step gating: while gated, each Forward consumes one permit (waits for one).
  void Gate() {
    absl::MutexLock lock(&mu_);
    gated_ = true;
  }
  void Allow(int64_t steps) {
    absl::MutexLock lock(&mu_);
    permits_ += steps;
  }
  void Ungate() {
    absl::MutexLock lock(&mu_);
    gated_ = false;
  }
  // The next Forward fails with `code` (a device failure by default).
  void FailNext(absl::StatusCode code = absl::StatusCode::kInternal) {
    absl::MutexLock lock(&mu_);
    fail_next_ = true;
    fail_code_ = code;
  }
  void set_adak_k(int32_t k) { adak_k_ = k; }  // before Start
  [[nodiscard]] int64_t forwards() {
    absl::MutexLock lock(&mu_);
    return forwards_;
  }
  // True when a Forward waits at the gate (its step is planned).
  [[nodiscard]] bool blocked() {
    absl::MutexLock lock(&mu_);
    return blocked_ > 0;
  }
  // Waits until `n` forwards ran and the next one waits at the gate.
  void WaitBlockedAfter(int64_t n) {
    absl::MutexLock lock(&mu_);
    auto ready = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return forwards_ >= n && blocked_ > 0; };
    EXPECT_TRUE(mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(20)));
  }
  [[nodiscard]] std::vector<int64_t> batch_tokens() {
    absl::MutexLock lock(&mu_);
    return batch_tokens_;
  }

 private:
  bool Ready() const { return !gated_ || permits_ > 0; }
  int64_t Slot(std::span<const int32_t> table, int64_t pos) const {
    return table[static_cast<size_t>(pos / block_size_)] * block_size_ + pos % block_size_;
  }

  engine::ModelConfig config_;
  engine::RoutingWeights routing_;
  int64_t num_blocks_, block_size_;
  std::vector<int32_t> kv_;
  int32_t adak_k_ = 1;
  absl::Mutex mu_;
  bool gated_ = false;
  int64_t blocked_ = 0;
  int64_t permits_ = 0;
  bool fail_next_ = false;
  absl::StatusCode fail_code_ = absl::StatusCode::kInternal;
  int64_t forwards_ = 0;
  std::vector<int64_t> batch_tokens_;
};

class FakeClock final : public Clock {
 public:
  [[nodiscard]] absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
};

// Records everything a request streams; Wait() blocks until OnFinish (with a timeout).
class RecordingSink final : public RequestSink {
 public:
  void OnTokens(std::vector<TokenOutput> tokens) override {
    absl::MutexLock lock(&mu_);
    EXPECT_FALSE(finished_) << "OnTokens after OnFinish";
    ++calls_;
    for (TokenOutput& t : tokens) {
      text_ += t.text;
      pieces_.push_back(t.text);
      ids_.push_back(t.id);
      outputs_.push_back(std::move(t));
    }
  }
  void OnFinish(FinalOutput final) override {
    absl::MutexLock lock(&mu_);
    EXPECT_FALSE(finished_) << "OnFinish twice";
    finished_ = true;
    final_ = std::move(final);
  }
  // True when finished within `timeout`.
  bool Wait(absl::Duration timeout = absl::Seconds(20)) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&finished_), timeout);
  }
  bool finished() {
    absl::MutexLock lock(&mu_);
    return finished_;
  }
  std::vector<int32_t> ids() {
    absl::MutexLock lock(&mu_);
    return ids_;
  }
  std::string text() {
    absl::MutexLock lock(&mu_);
    return text_;
  }
  std::vector<std::string> pieces() {
    absl::MutexLock lock(&mu_);
    return pieces_;
  }
  std::vector<TokenOutput> outputs() {
    absl::MutexLock lock(&mu_);
    return outputs_;
  }
  FinalOutput final() {
    absl::MutexLock lock(&mu_);
    return final_;
  }

 private:
  absl::Mutex mu_;
  bool finished_ = false;
  int64_t calls_ = 0;
  std::string text_;
  std::vector<std::string> pieces_;
  std::vector<int32_t> ids_;
  std::vector<TokenOutput> outputs_;
  FinalOutput final_;
};

class RecordingObserver final : public SchedulerObserver {
 public:
  void OnStep(const StepStats& step) override {
    absl::MutexLock lock(&mu_);
    StepStats copy = step;
    copy.forward = nullptr;
    copy.token_policy = {};
    EXPECT_EQ(step.token_policy.size(), static_cast<size_t>(step.batch_tokens));
    ASSERT_NE(step.forward, nullptr);
    EXPECT_EQ(step.forward->routed_k[0].size(), static_cast<size_t>(step.batch_tokens));
    steps_.push_back(copy);
  }
  void OnFirstToken(absl::Duration) override {
    absl::MutexLock lock(&mu_);
    ++first_tokens_;
  }
  void OnInterToken(absl::Duration) override {
    absl::MutexLock lock(&mu_);
    ++inter_tokens_;
  }
  void OnRequestFinished(const RequestStats& request) override {
    absl::MutexLock lock(&mu_);
    finished_.push_back(request);
  }
  std::vector<StepStats> steps() {
    absl::MutexLock lock(&mu_);
    return steps_;
  }
  std::vector<RequestStats> finished() {
    absl::MutexLock lock(&mu_);
    return finished_;
  }
  int64_t first_tokens() {
    absl::MutexLock lock(&mu_);
    return first_tokens_;
  }
  int64_t inter_tokens() {
    absl::MutexLock lock(&mu_);
    return inter_tokens_;
  }

 private:
  absl::Mutex mu_;
  std::vector<StepStats> steps_;
  std::vector<RequestStats> finished_;
  int64_t first_tokens_ = 0, inter_tokens_ = 0;
};

// `n` prompt tokens starting at `seed` (distinct prompts for distinct seeds).
inline std::vector<int32_t> Prompt(int64_t n, int32_t seed) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(static_cast<int32_t>((int64_t{seed} * 7 + i * 3) % 26));
  return p;
}

inline GenerationRequest Greedy(std::vector<int32_t> prompt, int64_t max_tokens) {
  GenerationRequest r;
  r.prompt_ids = std::move(prompt);
  r.max_tokens = max_tokens;
  return r;
}

}  // namespace adak::scheduler::testing

#endif  // ADAK_TESTS_SCHEDULER_FAKE_ENGINE_H_
