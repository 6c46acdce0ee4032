#include "scheduler/scheduler.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "engine/flops.h"
#include "scheduler/batch_planner.h"
#include "scheduler/block_manager.h"
#include "scheduler/expert_budget.h"
#include "scheduler/logprobs.h"
#include "scheduler/sequence.h"

namespace adak::scheduler {

class Scheduler::Impl {
 public:
  struct CancelEntry {  // one Cancel call
    uint64_t id = 0;
    CancelReason reason = CancelReason::kClient;
  };
  Impl(StepExecutor* executor, const tokenizer::Tokenizer* tokenizer, const SchedulerOptions& options,
       const Clock* clock, SchedulerObserver* observer)
      : executor_(executor),
        tokenizer_(tokenizer),
        options_(options),
        clock_(clock != nullptr ? clock : RealClock::Get()),
        observer_(observer),
        config_(executor->config()),
        blocks_(executor->num_kv_blocks(), executor->block_size(), config_.num_layers),
        budget_(config_, options.max_batch_expert_activations, options.max_batch_tokens) {
    planner_limits_.max_batch_tokens = options_.max_batch_tokens;
    planner_limits_.max_running_requests = options_.max_running_requests;
    planner_limits_.prefill_chunk = options_.prefill_chunk;
    planner_limits_.max_expert_activations = budget_.limit();
    planner_limits_.block_size = blocks_.block_size();
    published_.kv_blocks_total = blocks_.num_blocks();
  }

  ~Impl() { Shutdown(); }

  void Start() {
    absl::MutexLock lock(&mu_);
    if (started_ || stopping_) return;
    started_ = true;
    thread_ = std::thread([this] { Loop(); });
  }

  absl::StatusOr<uint64_t> Submit(GenerationRequest request, std::shared_ptr<RequestSink> sink) {
    RETURN_IF_ERROR(ValidateRequest(request, options_.limits, config_, executor_->routing_weights()));
    // Built outside the lock (sampler seeding, detokenizer); a refused request's id is never used again.
    const uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
    auto seq = std::make_unique<Sequence>(id, std::move(request), std::move(sink), *tokenizer_, config_,
                                          tokenizer_->eos_token_ids(), clock_->Now());
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("the scheduler is shut down");
    if (draining_) return absl::UnavailableError("the server is draining and accepts no new requests");
    if (static_cast<int64_t>(inbox_.size()) + published_.waiting >= options_.max_waiting_requests) {
      return absl::ResourceExhaustedError(
          StrCatStd("the waiting queue is full (max_waiting_requests = ", options_.max_waiting_requests,
                    " requests already waiting); retry later"));
    }
    inbox_.push_back(std::move(seq));
    return id;
  }

  void Cancel(uint64_t id, CancelReason reason) {
    absl::MutexLock lock(&mu_);
    if (id == 0 || id >= next_id_.load(std::memory_order_relaxed) || stopping_) return;
    cancels_.push_back({id, reason});
  }

  void BeginDrain() {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    published_.draining = true;
  }

  bool WaitIdle(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return inbox_.empty() && live_ == 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
  }

  void Shutdown() {
    absl::MutexLock join(&join_mu_);
    std::vector<std::unique_ptr<Sequence>> orphans;
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      if (!started_) orphans.swap(inbox_);
    }
    if (thread_.joinable()) thread_.join();
    for (auto& seq : orphans) Finish(*seq, absl::UnavailableError("server shutting down"), FinishReason::kCancelled);
  }

  SchedulerStats stats() const {
    absl::MutexLock lock(&mu_);
    return published_;
  }

  const SchedulerOptions& options() const { return options_; }

 private:
  // A waiting sequence's cached prefix found while planning.
  struct Match {
    std::vector<int32_t> blocks;
    std::vector<uint64_t> hashes;
  };

  // One scheduled chunk of a step.
  struct Scheduled {
    Sequence* seq = nullptr;
    int64_t tokens = 0;
    int64_t token_offset = 0;  // first token of the chunk in the batch
    bool decode = false;
    bool all_logits = false;
  };

  void Loop() {
    for (;;) {
      std::vector<std::unique_ptr<Sequence>> incoming;
      std::vector<CancelEntry> cancels;
      {
        absl::MutexLock lock(&mu_);
        auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || !inbox_.empty() || !cancels_.empty() || (live_ > 0 && !stalled_);
        };
        if (stalled_) {
          // Nothing could be planned last step (should not happen): retry soon, without spinning.
          mu_.AwaitWithTimeout(absl::Condition(&has_work), absl::Milliseconds(5));
          stalled_ = false;
        } else {
          mu_.Await(absl::Condition(&has_work));
        }
        if (stopping_) {
          incoming.swap(inbox_);
          for (auto& seq : incoming) waiting_.push_back(std::move(seq));
          break;
        }
        incoming.swap(inbox_);
        cancels.swap(cancels_);
        // Until the next Publish they count as waiting (admission control) and keep WaitIdle waiting.
        live_ += static_cast<int64_t>(incoming.size());
        published_.waiting += static_cast<int64_t>(incoming.size());
      }
      for (auto& seq : incoming) waiting_.push_back(std::move(seq));
      const bool planned = Step(cancels);
      Publish(!planned);
    }
    // Shutdown: end everything still here.
    for (auto& seq : running_) Finish(*seq, absl::UnavailableError("server shutting down"), FinishReason::kCancelled);
    for (auto& seq : waiting_) Finish(*seq, absl::UnavailableError("server shutting down"), FinishReason::kCancelled);
    running_.clear();
    waiting_.clear();
    Publish(false);
  }

  void Publish(bool stalled) {
    absl::MutexLock lock(&mu_);
    published_.running = static_cast<int64_t>(running_.size());
    published_.waiting = static_cast<int64_t>(waiting_.size());
    published_.kv_blocks_used = blocks_.num_used();
    published_.preemptions = preemptions_;
    published_.prefix_cache_hit_tokens = prefix_hit_tokens_;
    published_.kv_blocks_cached = blocks_.num_cached();
    published_.steps = steps_;
    live_ = published_.running + published_.waiting;
    stalled_ = stalled && live_ > 0;
  }

  // Ends `seq` (it must then be dropped by the caller): frees its blocks, fills usage, reports.
  void Finish(Sequence& seq, absl::Status status, FinishReason reason) {
    blocks_.Release(&seq.block_table);
    const absl::Time now = clock_->Now();
    FinalOutput& final = seq.final;
    final.status = std::move(status);
    final.reason = reason;
    Usage& usage = final.usage;
    usage.prompt_tokens = seq.prompt_len;
    usage.completion_tokens = seq.emitted;
    usage.cached_prompt_tokens = seq.cached_tokens;
    usage.expert_activations = seq.flops.expert_activations();
    usage.expert_flops = static_cast<double>(seq.flops.expert_flops());
    usage.expert_flops_saved = static_cast<double>(seq.flops.expert_flops_saved());
    if (seq.request.return_routing_stats) {
      usage.mean_k_per_layer.resize(static_cast<size_t>(config_.num_layers));
      for (int64_t l = 0; l < config_.num_layers; ++l)
        usage.mean_k_per_layer[static_cast<size_t>(l)] = seq.flops.mean_k(l);
    }
    if (observer_ != nullptr) {
      RequestStats stats;
      stats.reason = reason;
      stats.code = final.status.code();
      stats.prompt_tokens = seq.prompt_len;
      stats.generation_tokens = seq.emitted;
      stats.queue_time = (seq.first_scheduled == absl::InfinitePast() ? now : seq.first_scheduled) - seq.submitted;
      stats.e2e = now - seq.submitted;
      observer_->OnRequestFinished(stats);
    }
    if (seq.sink != nullptr) seq.sink->OnFinish(std::move(final));
    seq.finished = true;
  }

  // Drops finished sequences from the queues.
  void Sweep() {
    std::erase_if(running_, [](const std::unique_ptr<Sequence>& s) { return s->finished; });
    std::erase_if(waiting_, [](const std::unique_ptr<Sequence>& s) { return s->finished; });
  }

  void ApplyCancelsAndDeadlines(const std::vector<CancelEntry>& cancels) {
    const absl::Time now = clock_->Now();
    auto visit = [&](Sequence& seq) {
      if (seq.finished) return;
      auto cancel = std::find_if(cancels.begin(), cancels.end(), [&](const CancelEntry& c) { return c.id == seq.id; });
      // A deadline that passed wins over a cancel: the front end may notice the deadline first (gRPC cancels
      // the call when it expires) and it must still count as a deadline.
      const bool expired =
          seq.request.deadline <= now || (cancel != cancels.end() && cancel->reason == CancelReason::kDeadline);
      if (cancel != cancels.end() && !expired) {
        Finish(seq, absl::CancelledError("request cancelled"), FinishReason::kCancelled);
      } else if (expired) {
        Finish(seq,
               absl::DeadlineExceededError(StrCatStd("deadline exceeded after ", seq.emitted, " generated tokens")),
               FinishReason::kDeadline);
      }
    };
    for (auto& seq : running_) visit(*seq);
    for (auto& seq : waiting_) visit(*seq);
    Sweep();
  }

  // One step. False when sequences are live but nothing could be planned.
  bool Step(const std::vector<CancelEntry>& cancels) {
    ApplyCancelsAndDeadlines(cancels);
    if (running_.empty() && waiting_.empty()) return true;
    const absl::Time start = clock_->Now();
    const Plan plan = PlanBatch();
    ApplyPlan(plan);
    if (scheduled_.empty()) {
      ++steps_;
      return false;
    }
    if (!BuildBatch()) {
      // Every chunk lacked blocks: the plan counted a preempted sequence's blocks as the cached prefix of an
      // admission too. Planning the same way again would preempt and fail forever (seen under KV pressure
      // with cancels); the next plan matches no prefixes, so what it counts is there.
      skip_prefix_match_ = true;
      return false;
    }
    skip_prefix_match_ = false;
    absl::Status status = executor_->Forward(batch_, &forward_);
    ++steps_;
    if (!status.ok()) {
      // The engine's code is kept: Internal (a device failure) turns the server's health off, others do not.
      FailStep(absl::Status(status.code(), StrCatStd("engine step failed: ", ToStd(status.message()))));
      return true;
    }
    budget_.Observe(forward_.routed_k, token_routing_);
    // Per sequence: usage, prompt logprobs, sampling, detokenization, stop conditions, output.
    StepStats step;
    for (const Scheduled& s : scheduled_) ProcessOutput(s, batch_index(s), &step);
    Sweep();
    if (observer_ != nullptr) ReportStep(start, &step);
    return true;
  }

  // What the planner sees of a sequence (a waiting one before its cached prefix is matched).
  PlanSequence Describe(const Sequence& s) const {
    PlanSequence p;
    p.id = s.id;
    p.computed = s.computed;
    p.pending = s.pending();
    p.blocks_held = static_cast<int64_t>(s.block_table.size());
    p.activations_per_token = budget_.PerToken(s.request.routing);
    return p;
  }

  // Plans this step over the running sequences and the waiting ones (those that could be admitted now
  // see their cached prefix, kept in matches_).
  Plan PlanBatch() {
    plan_running_.clear();
    plan_waiting_.clear();
    for (const auto& s : running_) plan_running_.push_back(Describe(*s));
    const int64_t bs = blocks_.block_size();
    const size_t candidates = static_cast<size_t>(
        std::max<int64_t>(0, options_.max_running_requests - static_cast<int64_t>(running_.size())));
    matches_.resize(std::max(matches_.size(), waiting_.size()));
    for (size_t i = 0; i < waiting_.size(); ++i) {
      const Sequence& seq = *waiting_[i];
      PlanSequence p = Describe(seq);
      Match& m = matches_[i];
      m.blocks.clear();
      m.hashes.clear();
      if (options_.enable_prefix_caching && !skip_prefix_match_ && i < candidates && seq.computed == 0 &&
          !seq.request.prompt_logprobs) {
        // At least the last token runs (its logits are needed) in a block of its own.
        blocks_.MatchPrefix(seq.tokens, seq.salt, (seq.length() - 1) / bs, &m.blocks, &m.hashes);
        const int64_t cached = static_cast<int64_t>(m.blocks.size());
        p.computed = cached * bs;
        p.pending = seq.length() - p.computed;
        p.blocks_held = cached;
        p.reclaimed_blocks = blocks_.CountEvictable(m.blocks);
      }
      plan_waiting_.push_back(p);
    }
    PlanInput input;
    input.running = plan_running_;
    input.waiting = plan_waiting_;
    input.free_blocks = blocks_.num_free();
    return PlanStep(input, planner_limits_);
  }

  // Applies the plan: chunks into scheduled_ (pointers first, the queues change below), preemptions,
  // admissions.
  void ApplyPlan(const Plan& plan) {
    scheduled_.clear();
    size_t admitted = 0;
    for (const PlannedChunk& c : plan.chunks) {
      Sequence* seq = c.from_waiting ? waiting_[c.index].get() : running_[c.index].get();
      Scheduled s;
      s.seq = seq;
      s.tokens = c.tokens;
      s.decode = seq->pending() == 1 && seq->generated() > 0;
      scheduled_.push_back(s);
      if (c.from_waiting) ++admitted;
    }
    std::vector<std::unique_ptr<Sequence>> back_to_waiting = Preempt(plan.preempted);
    Admit(admitted);
    for (auto& seq : back_to_waiting) {
      auto pos = std::lower_bound(waiting_.begin(), waiting_.end(), seq->id,
                                  [](const std::unique_ptr<Sequence>& s, uint64_t id) { return s->id < id; });
      waiting_.insert(pos, std::move(seq));
    }
    std::sort(running_.begin(), running_.end(),
              [](const std::unique_ptr<Sequence>& a, const std::unique_ptr<Sequence>& b) { return a->id < b->id; });
  }

  // Takes the running sequences at `indices` out of running_, their blocks freed, to wait again.
  std::vector<std::unique_ptr<Sequence>> Preempt(const std::vector<size_t>& indices) {
    std::vector<std::unique_ptr<Sequence>> preempted;
    for (size_t index : indices) {
      Sequence& seq = *running_[index];
      blocks_.Release(&seq.block_table);
      seq.computed = 0;
      seq.block_hashes.clear();
      seq.state = SequenceState::kWaiting;
      ++seq.preemptions;
      preempted.push_back(std::move(running_[index]));
    }
    std::erase_if(running_, [](const std::unique_ptr<Sequence>& s) { return s == nullptr; });
    preemptions_ += static_cast<int64_t>(preempted.size());
    unreported_preemptions_ += static_cast<int64_t>(preempted.size());  // to the observer with the next step that runs
    return preempted;
  }

  // Moves the first `count` waiting sequences to running_, sharing their matched cached prefix.
  void Admit(size_t count) {
    const absl::Time now = clock_->Now();
    for (size_t i = 0; i < count; ++i) {
      std::unique_ptr<Sequence> seq = std::move(waiting_.front());
      waiting_.pop_front();
      // Shared before any allocation below, so nothing evicts the matched blocks.
      if (!matches_[i].blocks.empty()) ShareCachedPrefix(*seq, matches_[i]);
      seq->state = SequenceState::kRunning;
      if (seq->first_scheduled == absl::InfinitePast()) seq->first_scheduled = now;
      running_.push_back(std::move(seq));
    }
  }

  // Allocates the scheduled chunks' blocks and lays out batch_ and the per-token routing. False when no
  // chunk is left to run.
  bool BuildBatch() {
    batch_.clear();
    token_routing_.clear();
    token_policy_.clear();
    token_profile_.clear();
    int64_t offset = 0;
    size_t kept = 0;
    for (Scheduled& s : scheduled_) {
      Sequence& seq = *s.seq;
      if (!blocks_.EnsureCapacity(&seq.block_table, seq.computed + s.tokens)) {
        // Only when a preempted sequence's blocks were also the cached prefix of an admission in the same
        // step (the plan counted them twice): this chunk waits for the next step.
        continue;
      }
      s.token_offset = offset;
      offset += s.tokens;
      s.all_logits = seq.WantsAllLogits(s.tokens);
      engine::SequenceInput in;
      in.tokens = std::span<const int32_t>(seq.tokens)
                      .subspan(static_cast<size_t>(seq.computed), static_cast<size_t>(s.tokens));
      in.start_position = seq.computed;
      in.block_table = seq.block_table;
      in.all_logits = s.all_logits;
      in.routing = seq.request.routing;
      batch_.push_back(in);
      for (int64_t t = 0; t < s.tokens; ++t) {
        token_routing_.push_back(&seq.request.routing);
        token_policy_.push_back(seq.request.routing.policy);
        token_profile_.push_back(seq.request.routing.profile);
      }
      scheduled_[kept++] = s;
    }
    scheduled_.resize(kept);
    return !scheduled_.empty();
  }

  // Completes `step` (token counts come from ProcessOutput) and hands it to the observer.
  void ReportStep(absl::Time start, StepStats* step) {
    engine::FlopCounter flops(config_);
    flops.Add(forward_.routed_k);
    step->num_sequences = static_cast<int64_t>(scheduled_.size());
    step->batch_tokens = step->prefill_tokens + step->decode_tokens;
    step->duration = clock_->Now() - start;
    step->forward = &forward_;
    step->token_policy = token_policy_;
    step->token_profile = token_profile_;
    step->expert_flops = static_cast<double>(flops.expert_flops());
    step->expert_flops_saved = static_cast<double>(flops.expert_flops_saved());
    step->running = static_cast<int64_t>(running_.size());
    step->waiting = static_cast<int64_t>(waiting_.size());
    step->kv_cache_usage = blocks_.usage();
    step->preempted = unreported_preemptions_;
    unreported_preemptions_ = 0;
    observer_->OnStep(*step);
  }

  size_t batch_index(const Scheduled& s) const { return static_cast<size_t>(&s - scheduled_.data()); }

  void FailStep(const absl::Status& status) {
    for (const Scheduled& s : scheduled_) {
      if (!s.seq->finished) Finish(*s.seq, status, FinishReason::kError);
    }
    Sweep();
  }

  // Takes the forward's output for one scheduled chunk (batch entry `b`): routed k, usage, the prefix
  // cache, prompt logprobs; once the sequence is fully computed, its next token.
  void ProcessOutput(const Scheduled& s, size_t b, StepStats* step) {
    Sequence& seq = *s.seq;
    (s.decode ? step->decode_tokens : step->prefill_tokens) += s.tokens;
    const int64_t end = seq.computed + s.tokens;
    RecordRoutedK(seq, s, end);
    CountUsage(seq, end);
    if (options_.enable_prefix_caching) PublishFullBlocks(seq, end);
    if (s.all_logits) RecordPromptLogprobs(seq, b);
    seq.computed = end;
    if (seq.computed < seq.length()) return;  // more prompt (or recompute) to run

    // Every token is computed: the last row gives the next token.
    if (seq.emitted >= seq.request.max_tokens) {  // scoring only (max_tokens = 0)
      Finish(seq, absl::OkStatus(), FinishReason::kLength);
      return;
    }
    EmitNextToken(seq, LogitsRow(forward_.logits_offset[b + 1] - 1));
  }

  // Row `r` [V] of the forward's logits.
  std::span<const float> LogitsRow(int64_t r) const {
    const int64_t vocab = forward_.vocab_size;
    return std::span<const float>(forward_.logits).subspan(static_cast<size_t>(r * vocab), static_cast<size_t>(vocab));
  }

  // Copies the routed k of the chunk's positions [seq.computed, end) into seq.position_k ([position, layer]).
  void RecordRoutedK(Sequence& seq, const Scheduled& s, int64_t end) {
    const size_t layers = static_cast<size_t>(config_.num_layers);
    seq.position_k.resize(std::max(seq.position_k.size(), static_cast<size_t>(end) * layers));
    for (size_t l = 0; l < layers && l < forward_.routed_k.size(); ++l) {
      const auto& layer = forward_.routed_k[l];
      for (int64_t p = seq.computed; p < end; ++p) {
        seq.position_k[static_cast<size_t>(p) * layers + l] =
            static_cast<uint16_t>(layer[static_cast<size_t>(s.token_offset + p - seq.computed)]);
      }
    }
  }

  // The logprob of each next prompt token the chunk's rows predict, each position once (rows of batch entry
  // `b`, starting at position seq.computed).
  void RecordPromptLogprobs(Sequence& seq, size_t b) {
    const int64_t row_begin = forward_.logits_offset[b];
    const int64_t row_end = forward_.logits_offset[b + 1];
    for (int64_t r = row_begin; r < row_end; ++r) {
      const int64_t p = seq.computed + (r - row_begin);
      if (p != static_cast<int64_t>(seq.final.prompt_logprobs.size()) || p + 1 >= seq.prompt_len) continue;
      logprobs_.Row(LogitsRow(r));
      seq.final.prompt_logprobs.push_back(logprobs_.Logprob(seq.tokens[static_cast<size_t>(p + 1)]));
      if (seq.request.logprobs > 0) seq.final.prompt_top_logprobs.push_back(logprobs_.Top(seq.request.logprobs));
      if (static_cast<int64_t>(seq.final.prompt_logprobs.size()) == seq.prompt_len - 1 && seq.sink != nullptr) {
        seq.sink->OnPromptLogprobs(seq.final.prompt_logprobs, seq.final.prompt_top_logprobs);
      }
    }
  }

  // Samples the next token from `logits` [V], streams it and finishes the sequence when a stop condition
  // or max_tokens is met.
  void EmitNextToken(Sequence& seq, std::span<const float> logits) {
    const int32_t id = seq.sampler.Sample(logits, seq.tokens, static_cast<size_t>(seq.prompt_len));
    ReportTokenLatency(seq);
    ++seq.emitted;
    std::vector<TokenOutput> out(1);
    TokenOutput& token = out[0];
    token.id = id;
    if (seq.request.logprobs >= 0) {
      logprobs_.Row(logits);
      token.logprob = logprobs_.Logprob(id);
      if (seq.request.logprobs > 0) token.top = logprobs_.Top(seq.request.logprobs);
    }
    const std::optional<FinishReason> reason = AppendToken(seq, id, &token.text);
    if (seq.sink != nullptr) seq.sink->OnTokens(std::move(out));
    if (reason) Finish(seq, absl::OkStatus(), *reason);
  }

  // Time to the first token, or since the previous one, to the observer.
  void ReportTokenLatency(Sequence& seq) {
    const absl::Time now = clock_->Now();
    if (observer_ != nullptr) {
      if (seq.emitted == 0) {
        observer_->OnFirstToken(now - seq.submitted);
      } else {
        observer_->OnInterToken(now - seq.last_token);
      }
    }
    seq.last_token = now;
  }

  // Appends sampled token `id` to `seq` and its text to `text`; the finish reason when it ends the sequence.
  std::optional<FinishReason> AppendToken(Sequence& seq, int32_t id, std::string* text) {
    std::optional<FinishReason> reason;
    if (seq.stop.IsStopToken(id)) {
      // The stop token is reported (id, logprob) but adds no text; held-back text is released.
      *text = ReleaseRest(seq, &reason);
      if (!reason) {
        reason = FinishReason::kStop;
        seq.final.stop_token = id;
      }
      return reason;
    }
    seq.tokens.push_back(id);
    StopResult r = seq.stop.Feed(seq.detokenizer.Push(id));
    *text = std::move(r.text);
    if (r.stopped) {
      reason = FinishReason::kStop;
      seq.final.matched_stop = std::move(r.matched_stop);
    } else if (seq.emitted >= seq.request.max_tokens) {
      *text += ReleaseRest(seq, &reason);
      if (!reason) reason = FinishReason::kLength;
    }
    return reason;
  }

  // Adds the routed k of positions [seq.counted, end) to the request's usage (a recompute after preemption
  // or a cached prefix is counted once).
  void CountUsage(Sequence& seq, int64_t end) {
    if (end <= seq.counted) return;
    const size_t layers = static_cast<size_t>(config_.num_layers);
    seq_routed_k_.resize(layers);
    for (size_t l = 0; l < layers; ++l) {
      seq_routed_k_[l].clear();
      for (int64_t p = seq.counted; p < end; ++p)
        seq_routed_k_[l].push_back(seq.position_k[static_cast<size_t>(p) * layers + l]);
    }
    seq.flops.Add(seq_routed_k_);
    seq.counted = end;
  }

  // Publishes every block of `seq` that became full with positions below `end`.
  void PublishFullBlocks(Sequence& seq, int64_t end) {
    const int64_t bs = blocks_.block_size();
    const size_t layers = static_cast<size_t>(config_.num_layers);
    for (size_t j = seq.block_hashes.size(); static_cast<int64_t>(j + 1) * bs <= end; j = seq.block_hashes.size()) {
      const uint64_t parent = j == 0 ? 0 : seq.block_hashes[j - 1];
      const auto tokens =
          std::span<const int32_t>(seq.tokens).subspan(j * static_cast<size_t>(bs), static_cast<size_t>(bs));
      const uint64_t hash = BlockManager::BlockHash(parent, seq.salt, tokens);
      const auto k = std::span<const uint16_t>(seq.position_k)
                         .subspan(j * static_cast<size_t>(bs) * layers, static_cast<size_t>(bs) * layers);
      blocks_.Publish(seq.block_table[j], hash, parent, seq.salt, tokens, k);
      seq.block_hashes.push_back(hash);
    }
  }

  // Admission with a cached prefix: share the matched blocks and take their routed k for usage.
  void ShareCachedPrefix(Sequence& seq, const Match& match) {
    const int64_t bs = blocks_.block_size();
    const size_t layers = static_cast<size_t>(config_.num_layers);
    blocks_.Share(&seq.block_table, match.blocks);
    seq.block_hashes = match.hashes;
    const int64_t cached = static_cast<int64_t>(match.blocks.size()) * bs;
    seq.position_k.resize(std::max(seq.position_k.size(), static_cast<size_t>(cached) * layers));
    for (size_t j = 0; j < match.blocks.size(); ++j) {
      const std::span<const uint16_t> k = blocks_.routed_k(match.blocks[j]);
      std::copy(k.begin(), k.end(),
                seq.position_k.begin() + static_cast<std::ptrdiff_t>(j * static_cast<size_t>(bs) * layers));
    }
    seq.computed = cached;
    CountUsage(seq, cached);
    if (seq.first_scheduled == absl::InfinitePast()) seq.cached_tokens = std::min(cached, seq.prompt_len);
    prefix_hit_tokens_ += cached;
  }

  // Flushes the detokenizer through the stop checker; sets `reason` to kStop when that completes a match.
  std::string ReleaseRest(Sequence& seq, std::optional<FinishReason>* reason) {
    StopResult r = seq.stop.Feed(seq.detokenizer.Flush());
    if (r.stopped) {
      *reason = FinishReason::kStop;
      seq.final.matched_stop = std::move(r.matched_stop);
      return std::move(r.text);
    }
    std::string text = std::move(r.text);
    text += seq.stop.Flush();
    return text;
  }

  StepExecutor* const executor_;
  const tokenizer::Tokenizer* const tokenizer_;
  const SchedulerOptions options_;
  const Clock* const clock_;
  SchedulerObserver* const observer_;
  const engine::ModelConfig& config_;

  absl::Mutex join_mu_;  // serialises Shutdown
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Sequence>> inbox_ ABSL_GUARDED_BY(mu_);
  std::vector<CancelEntry> cancels_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> next_id_{1};
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stalled_ ABSL_GUARDED_BY(mu_) = false;
  int64_t live_ ABSL_GUARDED_BY(mu_) = 0;  // running + waiting on the thread
  SchedulerStats published_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;

  // Owned by the scheduler thread.
  std::vector<std::unique_ptr<Sequence>> running_;  // by id (oldest first)
  std::deque<std::unique_ptr<Sequence>> waiting_;   // by id
  BlockManager blocks_;
  ExpertBudget budget_;
  PlannerLimits planner_limits_;
  int64_t preemptions_ = 0;
  int64_t steps_ = 0;
  int64_t prefix_hit_tokens_ = 0;
  int64_t unreported_preemptions_ = 0;
  bool skip_prefix_match_ = false;  // the last step could build no batch: plan without prefix matches
  // Per-step scratch.
  std::vector<PlanSequence> plan_running_, plan_waiting_;
  std::vector<Scheduled> scheduled_;
  std::vector<Match> matches_;  // [waiting index] of this step's plan
  std::vector<engine::SequenceInput> batch_;
  std::vector<const engine::RoutingParams*> token_routing_;
  std::vector<engine::RoutingPolicy> token_policy_;
  std::vector<int32_t> token_profile_;
  std::vector<std::vector<int32_t>> seq_routed_k_;
  engine::ForwardResult forward_;
  LogprobCalculator logprobs_;
};

namespace {

absl::Status CheckOptions(const StepExecutor& executor, SchedulerOptions* options) {
  const engine::ModelConfig& config = executor.config();
  auto positive = [](const char* name, int64_t value) -> absl::Status {
    if (value < 1) return absl::InvalidArgumentError(StrCatStd(name, " must be >= 1, got ", value));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(positive("max_batch_tokens", options->max_batch_tokens));
  RETURN_IF_ERROR(positive("max_running_requests", options->max_running_requests));
  RETURN_IF_ERROR(positive("max_waiting_requests", options->max_waiting_requests));
  RETURN_IF_ERROR(positive("prefill_chunk", options->prefill_chunk));
  if (!(options->max_batch_expert_activations >= 0.0)) {
    return absl::InvalidArgumentError(
        StrCatStd("max_batch_expert_activations must be >= 0, got ", options->max_batch_expert_activations));
  }
  RequestLimits& limits = options->limits;
  if (limits.max_context == 0) limits.max_context = config.max_position_embeddings;
  if (limits.vocab_size == 0) limits.vocab_size = config.vocab_size;
  if (limits.max_context < 1 || limits.max_context > config.max_position_embeddings) {
    return absl::InvalidArgumentError(StrCatStd("max_context must be in [1, ", config.max_position_embeddings,
                                                "] (the model's max_position_embeddings), got ", limits.max_context));
  }
  if (limits.vocab_size < 1 || limits.vocab_size > config.vocab_size) {
    return absl::InvalidArgumentError(
        StrCatStd("vocab_size must be in [1, ", config.vocab_size, "], got ", limits.vocab_size));
  }
  if (executor.block_size() < 1) {
    return absl::InvalidArgumentError(StrCatStd("KV block size must be >= 1, got ", executor.block_size()));
  }
  const int64_t need = (limits.max_context + executor.block_size() - 1) / executor.block_size();
  if (executor.num_kv_blocks() < need) {
    return absl::InvalidArgumentError(StrCatStd("the KV cache holds ", executor.num_kv_blocks(), " blocks of ",
                                                executor.block_size(), " tokens, fewer than the ", need,
                                                " one sequence of max_context = ", limits.max_context,
                                                " tokens needs; give it more memory or lower the context length"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(StepExecutor* executor,
                                                             const tokenizer::Tokenizer* tokenizer,
                                                             const SchedulerOptions& options, const Clock* clock,
                                                             SchedulerObserver* observer) {
  if (executor == nullptr || tokenizer == nullptr) {
    return absl::InvalidArgumentError("scheduler: executor and tokenizer are required");
  }
  SchedulerOptions resolved = options;
  RETURN_IF_ERROR(CheckOptions(*executor, &resolved));
  return std::unique_ptr<Scheduler>(
      new Scheduler(std::make_unique<Impl>(executor, tokenizer, resolved, clock, observer)));
}

Scheduler::Scheduler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Scheduler::~Scheduler() { impl_->Shutdown(); }
void Scheduler::Start() { impl_->Start(); }
absl::StatusOr<uint64_t> Scheduler::Submit(GenerationRequest request, std::shared_ptr<RequestSink> sink) {
  return impl_->Submit(std::move(request), std::move(sink));
}
void Scheduler::Cancel(uint64_t id, CancelReason reason) { impl_->Cancel(id, reason); }
void Scheduler::BeginDrain() { impl_->BeginDrain(); }
bool Scheduler::WaitIdle(absl::Duration timeout) { return impl_->WaitIdle(timeout); }
void Scheduler::Shutdown() { impl_->Shutdown(); }
SchedulerStats Scheduler::stats() const { return impl_->stats(); }
const SchedulerOptions& Scheduler::options() const { return impl_->options(); }

}  // namespace adak::scheduler
