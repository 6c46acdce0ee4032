#include "engine/session.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/cpu_backend.h"

namespace adak::engine {

absl::StatusOr<std::unique_ptr<Session>> Session::Create(const Model& model, const SessionOptions& options,
                                                         RoutingWeights routing) {
  if (options.block_size <= 0 || options.prefill_chunk <= 0 || options.max_context < 0) {
    return absl::InvalidArgumentError("session: block_size and prefill_chunk must be positive, max_context >= 0");
  }
  std::unique_ptr<Session> s(new Session(model, options, std::move(routing)));
  const int64_t model_max = model.config.max_position_embeddings;
  s->max_context_ = options.max_context == 0 ? model_max : std::min(options.max_context, model_max);
  ASSIGN_OR_RETURN(s->backend_, CreateBackend("cpu", {.num_threads = options.num_threads}));
  const int64_t blocks = BlocksFor(s->max_context_, options.block_size);
  ASSIGN_OR_RETURN(s->cache_, KvCache::Create(s->backend_.get(), model.config, blocks, options.block_size));
  ASSIGN_OR_RETURN(s->runner_, ModelRunner::Create(model.config, model.weights, s->routing_, s->backend_.get(),
                                                   s->cache_.get()));
  s->blocks_ = std::make_unique<BlockAllocator>(blocks);
  return s;
}

void Session::Reset() {
  for (int32_t b : block_table_) blocks_->Free(b);
  block_table_.clear();
  length_ = 0;
}

absl::Status Session::Append(std::span<const int32_t> tokens, bool all_logits, std::vector<float>* logits) {
  AppendOptions options;
  options.all_logits = all_logits;
  AppendResult result;
  RETURN_IF_ERROR(Append(tokens, options, &result));
  *logits = std::move(result.logits);
  return absl::OkStatus();
}

absl::Status Session::Append(std::span<const int32_t> tokens, const AppendOptions& options, AppendResult* out) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return absl::InvalidArgumentError("session: no tokens to append");
  if (length_ + n > max_context_) {
    return absl::InvalidArgumentError(absl::StrCat("sequence of ", length_ + n,
                                                   " tokens exceeds the context length ", max_context_));
  }
  const size_t layers = static_cast<size_t>(model_.config.num_layers);
  out->logits.clear();
  out->routed_k.assign(layers, {});
  out->routed_ids.assign(options.record_routing ? layers : 0, {});
  out->routed_weights.assign(options.record_routing ? layers : 0, {});
  ForwardOptions fopts;
  fopts.record_routing = options.record_routing;
  ForwardResult& result = forward_;  // reused across calls: decode steps allocate nothing
  auto append = [](auto& dst, const auto& src) { dst.insert(dst.end(), src.begin(), src.end()); };
  for (int64_t begin = 0; begin < n; begin += options_.prefill_chunk) {
    const int64_t count = std::min(options_.prefill_chunk, n - begin);
    const int64_t need = BlocksFor(length_ + count, options_.block_size);
    while (static_cast<int64_t>(block_table_.size()) < need) {
      auto b = blocks_->Allocate();
      if (!b) return absl::ResourceExhaustedError("session: KV cache is full");
      block_table_.push_back(*b);
    }
    SequenceInput in;
    in.tokens = tokens.subspan(static_cast<size_t>(begin), static_cast<size_t>(count));
    in.start_position = length_;
    in.block_table = block_table_;
    in.all_logits = options.all_logits;
    in.routing = options.routing;
    RETURN_IF_ERROR(runner_->Forward(std::span<const SequenceInput>(&in, 1), fopts, &result));
    length_ += count;
    if (options.all_logits) {
      append(out->logits, result.logits);
    } else if (begin + count == n) {
      // A copy, not a move: both buffers keep their capacity, so a decode step allocates nothing.
      out->logits.assign(result.logits.begin(), result.logits.end());
    }
    for (size_t l = 0; l < layers; ++l) {
      append(out->routed_k[l], result.routed_k[l]);
      if (options.record_routing) {
        append(out->routed_ids[l], result.routed_ids[l]);
        append(out->routed_weights[l], result.routed_weights[l]);
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<GenerateResult> Generate(Session& session, std::span<const int32_t> prompt_ids,
                                        const GenerateOptions& options,
                                        const std::function<void(std::string_view)>& on_text) {
  if (prompt_ids.empty()) return absl::InvalidArgumentError("prompt is empty");
  if (options.max_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens must be >= 1, got ", options.max_tokens));
  }
  RETURN_IF_ERROR(ValidateSamplingParams(options.sampling));
  RETURN_IF_ERROR(ValidateRoutingParams(options.routing, session.model().config, session.routing_weights()));
  const int64_t prompt_len = static_cast<int64_t>(prompt_ids.size());
  if (prompt_len + options.max_tokens > session.max_context()) {
    return absl::InvalidArgumentError(absl::StrCat("prompt (", prompt_len, " tokens) + max_tokens (",
                                                   options.max_tokens, ") exceeds the context length ",
                                                   session.max_context()));
  }
  session.Reset();
  const Model& model = session.model();
  const std::vector<int32_t>& eos = model.tokenizer->eos_token_ids();
  GenerateResult result;
  result.prompt_ids.assign(prompt_ids.begin(), prompt_ids.end());
  std::vector<int32_t> context(prompt_ids.begin(), prompt_ids.end());
  Sampler sampler(options.sampling);
  tokenizer::IncrementalDetokenizer detok(*model.tokenizer, prompt_ids, /*skip_special_tokens=*/false);
  AppendOptions append;
  append.routing = options.routing;
  AppendResult step;
  result.flops.emplace(model.config);
  auto run = [&](std::span<const int32_t> tokens) -> absl::Status {
    RETURN_IF_ERROR(session.Append(tokens, append, &step));
    result.flops->Add(step.routed_k);
    return absl::OkStatus();
  };
  const std::vector<float>& logits = step.logits;

  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  RETURN_IF_ERROR(run(prompt_ids));
  auto t1 = Clock::now();
  result.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  result.finish_reason = "length";
  for (int64_t i = 0; i < options.max_tokens; ++i) {
    const int32_t next = sampler.Sample(logits, context);
    const bool is_eos = std::find(eos.begin(), eos.end(), next) != eos.end();
    if (options.stop_at_eos && is_eos) {
      result.finish_reason = "stop";
      break;
    }
    result.output_ids.push_back(next);
    context.push_back(next);
    std::string piece = detok.Push(next);
    if (!piece.empty()) {
      result.text += piece;
      if (on_text) on_text(piece);
    }
    if (i + 1 == options.max_tokens) break;
    RETURN_IF_ERROR(run(std::span<const int32_t>(&next, 1)));
  }
  std::string rest = detok.Flush();
  if (!rest.empty()) {
    result.text += rest;
    if (on_text) on_text(rest);
  }
  result.decode_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return result;
}

}  // namespace adak::engine
