#include "engine/session.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace adak::engine {

absl::StatusOr<std::unique_ptr<Session>> Session::Create(const Model& model, const SessionOptions& options,
                                                         RoutingWeights routing) {
  if (options.block_size <= 0 || options.prefill_chunk <= 0 || options.max_context < 0) {
    return absl::InvalidArgumentError("session: block_size and prefill_chunk must be positive, max_context >= 0");
  }
  std::unique_ptr<Session> s(new Session(model, options, std::move(routing)));
  const int64_t model_max = model.config.max_position_embeddings;
  s->max_context_ = options.max_context == 0 ? model_max : std::min(options.max_context, model_max);
  ASSIGN_OR_RETURN(s->backend_, CreateBackend(options.device.backend, {.num_threads = options.num_threads,
                                                                       .dot_precision = options.dot_precision,
                                                                       .device_index = options.device.index}));
  const int64_t blocks = BlocksFor(s->max_context_, options.block_size);
  ASSIGN_OR_RETURN(
      s->cache_, KvCache::Create(s->backend_.get(), model.config, blocks, options.block_size, options.kv_cache_dtype));
  ASSIGN_OR_RETURN(s->runner_,
                   ModelRunner::Create(model.config, model.weights, s->routing_, s->backend_.get(), s->cache_.get()));
  return s;
}

void Session::Reset() {
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
    return absl::InvalidArgumentError(
        absl::StrCat("sequence of ", length_ + n, " tokens exceeds the context length ", max_context_));
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
    // One sequence owns the whole cache: its block j is cache block j (max_context fits by construction).
    while (static_cast<int64_t>(block_table_.size()) < need) {
      block_table_.push_back(static_cast<int32_t>(block_table_.size()));
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

}  // namespace adak::engine
