#include "engine/model_runner.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "kernels/cpu/norm.h"

namespace adak::engine {
namespace {

absl::StatusOr<Tensor> Prepare(Backend* backend, const TensorView& w) {
  if (!w.present()) return Tensor{};
  return backend->PrepareWeight(w);
}

absl::StatusOr<MlpTensors> PrepareMlp(Backend* backend, const MlpWeights& m) {
  MlpTensors t;
  ASSIGN_OR_RETURN(t.gate, Prepare(backend, m.gate));
  ASSIGN_OR_RETURN(t.up, Prepare(backend, m.up));
  ASSIGN_OR_RETURN(t.down, Prepare(backend, m.down));
  return t;
}

// A [rows, cols] f32 view over the start of `buf`.
Tensor F32(const std::unique_ptr<DeviceBuffer>& buf, int64_t rows, int64_t cols) {
  return buf->View(DType::kF32, rows, cols);
}

}  // namespace

absl::Status ModelRunner::PrepareGate(const LayerWeights& lw, size_t layer, Layer* l) {
  const int64_t h = config_.hidden_size, e = config_.num_experts;
  const auto profiles = static_cast<int64_t>(routing_.allocators.size());
  for (int64_t p = 0; p < profiles; ++p) {
    const auto& rows = routing_.allocators[static_cast<size_t>(p)].layers;
    if (layer < rows.size() && !rows[layer].empty()) l->allocator_present |= 1u << p;
  }
  const std::vector<float>* null_gate =
      layer < routing_.null_gate.size() && !routing_.null_gate[layer].empty() ? &routing_.null_gate[layer] : nullptr;
  if (l->allocator_present == 0 && null_gate == nullptr) {  // the checkpoint's router as it is
    ASSIGN_OR_RETURN(l->gate, Prepare(backend_, lw.router));
    return absl::OkStatus();
  }
  // One fp32 matrix [E + Ea + M, H]: router rows widened, then every profile's allocator rows (zeros for a
  // profile without this layer), then null rows.
  l->allocator_rows = l->allocator_present != 0 ? profiles * e : 0;
  l->null_rows = null_gate != nullptr ? routing_.num_null : 0;
  const int64_t rows = e + l->allocator_rows + l->null_rows;
  std::vector<float> host(static_cast<size_t>(rows * h), 0.0f);
  for (int64_t i = 0; i < e * h; ++i)
    host[static_cast<size_t>(i)] = kernels::LoadAsF32(lw.router.data, lw.router.dtype, i);
  for (int64_t p = 0; p < profiles && l->allocator_rows > 0; ++p) {
    if (((l->allocator_present >> p) & 1u) == 0) continue;
    const std::vector<float>& alloc = routing_.allocators[static_cast<size_t>(p)].layers[layer];
    std::copy(alloc.begin(), alloc.end(), host.begin() + (e + p * e) * h);
  }
  if (null_gate != nullptr) std::copy(null_gate->begin(), null_gate->end(), host.begin() + (e + l->allocator_rows) * h);
  ASSIGN_OR_RETURN(l->gate_storage, backend_->Allocate(host.size() * sizeof(float)));
  RETURN_IF_ERROR(backend_->Upload(host.data(), host.size() * sizeof(float), l->gate_storage->data()));
  l->gate = l->gate_storage->View(DType::kF32, rows, h);
  // Version-2 profiles: U and b, one buffer each profile.
  for (int64_t p = 0; p < profiles; ++p) {
    const AllocatorProfile& profile = routing_.allocators[static_cast<size_t>(p)];
    if (((l->allocator_present >> p) & 1u) == 0 || profile.version < 2) continue;
    l->allocator_extras.resize(static_cast<size_t>(profiles));
    l->extras_storage.resize(static_cast<size_t>(profiles));
    std::vector<float> extras = profile.router_weight[layer];
    extras.insert(extras.end(), profile.bias[layer].begin(), profile.bias[layer].end());
    std::unique_ptr<DeviceBuffer>& buffer = l->extras_storage[static_cast<size_t>(p)];
    ASSIGN_OR_RETURN(buffer, backend_->Allocate(extras.size() * sizeof(float)));
    RETURN_IF_ERROR(backend_->Upload(extras.data(), extras.size() * sizeof(float), buffer->data()));
    const auto* u = static_cast<const float*>(buffer->data());
    l->allocator_extras[static_cast<size_t>(p)] = {u, u + e * e};
  }
  return absl::OkStatus();
}

absl::Status ModelRunner::SetAllocatorExtras(int64_t profile, int64_t layer, std::span<const float> router_weight,
                                             std::span<const float> bias) {
  const int64_t e = config_.num_experts;
  if (layer < 0 || layer >= static_cast<int64_t>(layers_.size()) || profile < 0 ||
      static_cast<size_t>(profile) >= layers_[static_cast<size_t>(layer)].extras_storage.size() ||
      layers_[static_cast<size_t>(layer)].extras_storage[static_cast<size_t>(profile)] == nullptr) {
    return absl::FailedPreconditionError(
        StrCatStd("set allocator extras: layer ", layer, " has no version-2 allocator of profile ", profile));
  }
  if (static_cast<int64_t>(router_weight.size()) != e * e || static_cast<int64_t>(bias.size()) != e) {
    return absl::InvalidArgumentError(StrCatStd("set allocator extras: layer ", layer, " needs ", e * e, " + ", e,
                                                " values, got ", router_weight.size(), " + ", bias.size()));
  }
  auto* dst =
      static_cast<float*>(layers_[static_cast<size_t>(layer)].extras_storage[static_cast<size_t>(profile)]->data());
  RETURN_IF_ERROR(backend_->Upload(router_weight.data(), router_weight.size() * sizeof(float), dst));
  return backend_->Upload(bias.data(), bias.size() * sizeof(float), dst + e * e);
}

absl::Status ModelRunner::SetAllocator(int64_t profile, int64_t layer, std::span<const float> rows) {
  const int64_t e = config_.num_experts, h = config_.hidden_size;
  if (layer < 0 || layer >= static_cast<int64_t>(layers_.size()) || profile < 0 ||
      profile >= kernels::kMaxAllocatorProfiles ||
      ((layers_[static_cast<size_t>(layer)].allocator_present >> profile) & 1u) == 0) {
    return absl::FailedPreconditionError(
        StrCatStd("set allocator: layer ", layer, " has no allocator of profile ", profile, " in this runner"));
  }
  if (static_cast<int64_t>(rows.size()) != e * h) {
    return absl::InvalidArgumentError(
        StrCatStd("set allocator: layer ", layer, " needs ", e * h, " values ([", e, ", ", h, "]), got ", rows.size()));
  }
  Layer& l = layers_[static_cast<size_t>(layer)];
  return backend_->Upload(rows.data(), rows.size() * sizeof(float),
                          static_cast<float*>(l.gate_storage->data()) + (e + profile * e) * h);
}

absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Create(const ModelConfig& config, const ModelWeights& weights,
                                                                 const RoutingWeights& routing, Backend* backend,
                                                                 KvCache* cache) {
  std::unique_ptr<ModelRunner> r(new ModelRunner(config, routing, backend, cache));
  ASSIGN_OR_RETURN(r->embed_tokens_, Prepare(backend, weights.embed_tokens));
  ASSIGN_OR_RETURN(r->final_norm_, Prepare(backend, weights.final_norm));
  ASSIGN_OR_RETURN(r->lm_head_, Prepare(backend, weights.lm_head));
  for (size_t li = 0; li < weights.layers.size(); ++li) {
    const LayerWeights& lw = weights.layers[li];
    Layer l;
    ASSIGN_OR_RETURN(l.input_norm, Prepare(backend, lw.input_norm));
    ASSIGN_OR_RETURN(l.post_attention_norm, Prepare(backend, lw.post_attention_norm));
    ASSIGN_OR_RETURN(l.q_proj, Prepare(backend, lw.q_proj));
    ASSIGN_OR_RETURN(l.k_proj, Prepare(backend, lw.k_proj));
    ASSIGN_OR_RETURN(l.v_proj, Prepare(backend, lw.v_proj));
    ASSIGN_OR_RETURN(l.o_proj, Prepare(backend, lw.o_proj));
    ASSIGN_OR_RETURN(l.q_bias, Prepare(backend, lw.q_bias));
    ASSIGN_OR_RETURN(l.k_bias, Prepare(backend, lw.k_bias));
    ASSIGN_OR_RETURN(l.v_bias, Prepare(backend, lw.v_bias));
    ASSIGN_OR_RETURN(l.q_norm, Prepare(backend, lw.q_norm));
    ASSIGN_OR_RETURN(l.k_norm, Prepare(backend, lw.k_norm));
    l.is_moe = lw.is_moe;
    if (lw.is_moe) {
      RETURN_IF_ERROR(r->PrepareGate(lw, li, &l));
      ASSIGN_OR_RETURN(l.shared_gate, Prepare(backend, lw.shared_expert_gate));
      for (const MlpWeights& e : lw.experts) {
        ASSIGN_OR_RETURN(MlpTensors t, PrepareMlp(backend, e));
        l.experts.push_back(t);
      }
      if (lw.shared_expert.present()) {
        ASSIGN_OR_RETURN(l.shared, PrepareMlp(backend, lw.shared_expert));
      }
    } else {
      ASSIGN_OR_RETURN(l.mlp, PrepareMlp(backend, lw.mlp));
    }
    r->layers_.push_back(std::move(l));
  }
  return r;
}

absl::Status ModelRunner::EnsureWorkspace(int64_t tokens, int64_t logit_rows, int64_t int_words) {
  auto alloc = [&](std::unique_ptr<DeviceBuffer>& buf, int64_t elems, size_t elem_size) -> absl::Status {
    ASSIGN_OR_RETURN(buf, backend_->Allocate(static_cast<size_t>(elems) * elem_size));
    return absl::OkStatus();
  };
  if (tokens > ws_tokens_) {
    const int64_t h = config_.hidden_size;
    RETURN_IF_ERROR(alloc(residual_, tokens * h, sizeof(float)));
    RETURN_IF_ERROR(alloc(normed_, tokens * h, sizeof(float)));
    RETURN_IF_ERROR(alloc(q_, tokens * config_.q_dim(), sizeof(float)));
    RETURN_IF_ERROR(alloc(k_, tokens * config_.kv_dim(), sizeof(float)));
    RETURN_IF_ERROR(alloc(v_, tokens * config_.kv_dim(), sizeof(float)));
    RETURN_IF_ERROR(alloc(attn_, tokens * config_.q_dim(), sizeof(float)));
    RETURN_IF_ERROR(alloc(routes_, tokens, sizeof(kernels::TokenRoute)));
    RETURN_IF_ERROR(alloc(routed_k_, tokens, sizeof(int32_t)));
    RETURN_IF_ERROR(alloc(routed_ids_, tokens * config_.num_experts, sizeof(int32_t)));
    RETURN_IF_ERROR(alloc(routed_weights_, tokens * config_.num_experts, sizeof(float)));
    ws_tokens_ = tokens;
  }
  if (logit_rows > ws_logit_rows_) {
    RETURN_IF_ERROR(alloc(final_, logit_rows * config_.hidden_size, sizeof(float)));
    RETURN_IF_ERROR(alloc(logits_, logit_rows * config_.vocab_size, sizeof(float)));
    ws_logit_rows_ = logit_rows;
  }
  if (int_words > ws_int_words_) {
    RETURN_IF_ERROR(alloc(ints_, int_words, sizeof(int32_t)));
    ws_int_words_ = int_words;
  }
  return absl::OkStatus();
}

// The batch's sizes, from ValidateBatch.
struct ModelRunner::BatchShape {
  int64_t num_seqs = 0;
  int64_t num_tokens = 0;  // T
  int64_t logit_rows = 0;  // R
  int64_t max_blocks = 1;  // the longest block table
  // Host int32 words: ids, positions, token_seq, slots [T each], logit rows [R], block tables [S, max_blocks].
  [[nodiscard]] int64_t int_words() const { return 4 * num_tokens + logit_rows + num_seqs * max_blocks; }
  [[nodiscard]] int64_t rows_offset() const { return 4 * num_tokens; }
  [[nodiscard]] int64_t tables_offset() const { return 4 * num_tokens + logit_rows; }
};

// The batch laid out on the host as the device reads it (word layout: BatchShape::int_words).
struct ModelRunner::HostBatch {
  std::vector<int32_t> ints;
  std::vector<kernels::TokenRoute> routes;  // [T]
};

absl::Status ModelRunner::ValidateSequence(const SequenceInput& in, size_t s) const {
  if (in.tokens.empty()) return absl::InvalidArgumentError(absl::StrCat("forward: sequence ", s, " has no tokens"));
  const int64_t block_size = cache_->block_size();
  const int64_t end = in.start_position + static_cast<int64_t>(in.tokens.size());
  if (in.start_position < 0 || end > config_.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("forward: sequence ", s, " reaches position ", end,
                                                   ", beyond max_position_embeddings ",
                                                   config_.max_position_embeddings));
  }
  if (static_cast<int64_t>(in.block_table.size()) < BlocksFor(end, block_size)) {
    return absl::InvalidArgumentError(absl::StrCat("forward: sequence ", s, " block table has ", in.block_table.size(),
                                                   " blocks, needs ", BlocksFor(end, block_size), " for ", end,
                                                   " positions"));
  }
  for (int32_t b : in.block_table) {
    if (b < 0 || b >= cache_->num_blocks()) {
      return absl::InvalidArgumentError(
          absl::StrCat("forward: sequence ", s, " names KV block ", b, ", outside [0, ", cache_->num_blocks(), ")"));
    }
  }
  for (int32_t id : in.tokens) {
    if (id < 0 || id >= config_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("forward: token id ", id, " is outside the vocabulary [0, ", config_.vocab_size, ")"));
    }
  }
  if (absl::Status st = ValidateRoutingParams(in.routing, config_, routing_); !st.ok()) {
    return absl::InvalidArgumentError(StrCatStd("forward: sequence ", s, ": ", st.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelRunner::BatchShape> ModelRunner::ValidateBatch(std::span<const SequenceInput> batch) const {
  if (batch.empty()) return absl::InvalidArgumentError("forward: empty batch");
  BatchShape shape;
  shape.num_seqs = static_cast<int64_t>(batch.size());
  for (size_t s = 0; s < batch.size(); ++s) {
    const SequenceInput& in = batch[s];
    RETURN_IF_ERROR(ValidateSequence(in, s));
    shape.num_tokens += static_cast<int64_t>(in.tokens.size());
    shape.logit_rows += in.all_logits ? static_cast<int64_t>(in.tokens.size()) : 1;
    shape.max_blocks = std::max<int64_t>(shape.max_blocks, static_cast<int64_t>(in.block_table.size()));
  }
  return shape;
}

ModelRunner::HostBatch ModelRunner::LayOutBatch(std::span<const SequenceInput> batch, const BatchShape& shape,
                                                ForwardResult* result) const {
  const int64_t block_size = cache_->block_size(), num_tokens = shape.num_tokens;
  HostBatch host;
  host.ints.assign(static_cast<size_t>(shape.int_words()), 0);
  host.routes.resize(static_cast<size_t>(num_tokens));
  int32_t* ids = host.ints.data();
  int32_t* positions = ids + num_tokens;
  int32_t* token_seq = positions + num_tokens;
  int32_t* slots = token_seq + num_tokens;
  int32_t* rows = ids + shape.rows_offset();
  int32_t* tables = ids + shape.tables_offset();
  result->logits_offset.assign(1, 0);
  int64_t t = 0, r = 0;
  for (int64_t s = 0; s < shape.num_seqs; ++s) {
    const SequenceInput& in = batch[static_cast<size_t>(s)];
    std::copy(in.block_table.begin(), in.block_table.end(), tables + s * shape.max_blocks);
    const int64_t n = static_cast<int64_t>(in.tokens.size());
    kernels::TokenRoute route = ToTokenRoute(in.routing, config_, routing_);
    for (int64_t i = 0; i < n; ++i) {  // sampled draws are keyed by position
      route.seed = in.routing.seed + static_cast<uint64_t>(in.start_position + i) * 0x9e3779b97f4a7c15ull;
      host.routes[static_cast<size_t>(t + i)] = route;
    }
    for (int64_t i = 0; i < n; ++i, ++t) {
      const int64_t pos = in.start_position + i;
      ids[t] = in.tokens[static_cast<size_t>(i)];
      positions[t] = static_cast<int32_t>(pos);
      token_seq[t] = static_cast<int32_t>(s);
      slots[t] =
          static_cast<int32_t>(in.block_table[static_cast<size_t>(pos / block_size)] * block_size + pos % block_size);
      if (in.all_logits || i == n - 1) rows[r++] = static_cast<int32_t>(t);
    }
    result->logits_offset.push_back(r);
  }
  return host;
}

absl::StatusOr<AttentionBatch> ModelRunner::UploadBatch(const HostBatch& host, const BatchShape& shape) {
  RETURN_IF_ERROR(EnsureWorkspace(shape.num_tokens, shape.logit_rows, shape.int_words()));
  RETURN_IF_ERROR(backend_->Upload(host.ints.data(), host.ints.size() * sizeof(int32_t), ints_->data()));
  RETURN_IF_ERROR(
      backend_->Upload(host.routes.data(), host.routes.size() * sizeof(kernels::TokenRoute), routes_->data()));
  const int32_t* d_ints = static_cast<const int32_t*>(ints_->data());
  AttentionBatch ab;
  ab.num_tokens = shape.num_tokens;
  ab.positions = d_ints + shape.num_tokens;
  ab.token_seq = d_ints + 2 * shape.num_tokens;
  ab.slots = d_ints + 3 * shape.num_tokens;
  ab.block_tables = d_ints + shape.tables_offset();
  ab.max_blocks_per_seq = shape.max_blocks;
  return ab;
}

void ModelRunner::ResetRoutingRecords(int64_t num_tokens, const ForwardOptions& options, ForwardResult* result) const {
  const size_t num_layers = static_cast<size_t>(config_.num_layers);
  const size_t record = options.record_routing ? num_layers : 0;
  const size_t slots = static_cast<size_t>(num_tokens * config_.num_experts);
  result->routed_k.assign(num_layers, std::vector<int32_t>(static_cast<size_t>(num_tokens), 0));
  result->routed_ids.assign(record, std::vector<int32_t>(slots, -1));
  result->routed_weights.assign(record, std::vector<float>(slots, 0.0f));
  result->router_inputs.assign(options.record_router_inputs ? num_layers : 0, {});
}

void ModelRunner::ProjectQkv(const Layer& l, const AttentionBatch& ab) {
  const ModelConfig& c = config_;
  const int64_t num_tokens = ab.num_tokens;
  const Tensor normed = F32(normed_, num_tokens, c.hidden_size);
  const Tensor q = F32(q_, num_tokens, c.q_dim());
  const Tensor k = F32(k_, num_tokens, c.kv_dim());
  const Tensor v = F32(v_, num_tokens, c.kv_dim());
  backend_->Linear(normed, l.q_proj, l.q_bias, q, false);
  backend_->Linear(normed, l.k_proj, l.k_bias, k, false);
  backend_->Linear(normed, l.v_proj, l.v_bias, v, false);
  if (c.qk_norm == QkNorm::kFull) {
    backend_->RmsNorm(q, l.q_norm, c.rms_norm_eps, q);
    backend_->RmsNorm(k, l.k_norm, c.rms_norm_eps, k);
  }
  if (c.clip_qkv > 0.0f) {
    backend_->Clamp(q, c.clip_qkv);
    backend_->Clamp(k, c.clip_qkv);
    backend_->Clamp(v, c.clip_qkv);
  }
  if (c.qk_norm == QkNorm::kPerHead) {
    const Tensor qh{q.data, DType::kF32, num_tokens * c.num_attention_heads, c.head_dim, c.head_dim};
    const Tensor kh{k.data, DType::kF32, num_tokens * c.num_key_value_heads, c.head_dim, c.head_dim};
    backend_->RmsNorm(qh, l.q_norm, c.rms_norm_eps, qh);
    backend_->RmsNorm(kh, l.k_norm, c.rms_norm_eps, kh);
  }
  backend_->Rope(q, c.num_attention_heads, c.head_dim, ab.positions, c.rope_theta);
  backend_->Rope(k, c.num_key_value_heads, c.head_dim, ab.positions, c.rope_theta);
}

void ModelRunner::RunAttention(size_t li, const Layer& l, const AttentionBatch& ab) {
  const ModelConfig& c = config_;
  const int64_t num_tokens = ab.num_tokens;
  backend_->RmsNorm(F32(residual_, num_tokens, c.hidden_size), l.input_norm, c.rms_norm_eps,
                    F32(normed_, num_tokens, c.hidden_size));
  ProjectQkv(l, ab);
  AttentionArgs a;
  a.q = F32(q_, num_tokens, c.q_dim());
  a.k = F32(k_, num_tokens, c.kv_dim());
  a.v = F32(v_, num_tokens, c.kv_dim());
  a.heads = c.num_attention_heads;
  a.kv_heads = c.num_key_value_heads;
  a.head_dim = c.head_dim;
  a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  a.k_cache = cache_->k(static_cast<int64_t>(li));
  a.v_cache = cache_->v(static_cast<int64_t>(li));
  a.cache_dtype = cache_->dtype();
  a.num_blocks = cache_->num_blocks();
  a.block_size = cache_->block_size();
  a.batch = ab;
  a.out = F32(attn_, num_tokens, c.q_dim());
  backend_->Attention(a);
  backend_->Linear(a.out, l.o_proj, Tensor{}, F32(residual_, num_tokens, c.hidden_size), /*accumulate=*/true);
}

absl::Status ModelRunner::RunMoe(size_t li, const Layer& l, int64_t num_tokens, const ForwardOptions& options,
                                 ForwardResult* result) {
  const ModelConfig& c = config_;
  MoeArgs m;
  m.x = F32(normed_, num_tokens, c.hidden_size);
  m.gate = l.gate;
  m.num_experts = c.num_experts;
  m.allocator_rows = l.allocator_rows;
  m.allocator_present = l.allocator_present;
  m.allocator_extras = l.allocator_extras;
  m.null_rows = l.null_rows;
  m.renormalize = c.norm_topk_prob;
  m.layer = static_cast<int64_t>(li);
  m.routes = static_cast<const kernels::TokenRoute*>(routes_->data());
  m.experts = l.experts;
  m.shared = l.shared;
  m.shared_gate = l.shared_gate;
  m.out = F32(residual_, num_tokens, c.hidden_size);
  m.k_out = static_cast<int32_t*>(routed_k_->data());
  if (options.record_routing) {
    m.ids_out = static_cast<int32_t*>(routed_ids_->data());
    m.weights_out = static_cast<float*>(routed_weights_->data());
  }
  if (options.record_router_inputs) {
    auto& x = result->router_inputs[li];
    x.resize(static_cast<size_t>(num_tokens * c.hidden_size));
    RETURN_IF_ERROR(backend_->Download(m.x.data, x.size() * sizeof(float), x.data()));
  }
  backend_->Moe(m);
  return DownloadRouting(li, m, options, result);
}

absl::Status ModelRunner::DownloadRouting(size_t li, const MoeArgs& m, const ForwardOptions& options,
                                          ForwardResult* result) {
  auto& k_out = result->routed_k[li];
  RETURN_IF_ERROR(backend_->Download(m.k_out, k_out.size() * sizeof(int32_t), k_out.data()));
  if (options.record_routing) {
    auto& ids_out = result->routed_ids[li];
    auto& w_out = result->routed_weights[li];
    RETURN_IF_ERROR(backend_->Download(m.ids_out, ids_out.size() * sizeof(int32_t), ids_out.data()));
    RETURN_IF_ERROR(backend_->Download(m.weights_out, w_out.size() * sizeof(float), w_out.data()));
  }
  return absl::OkStatus();
}

absl::Status ModelRunner::RunLayer(size_t li, const AttentionBatch& ab, const ForwardOptions& options,
                                   ForwardResult* result) {
  const Layer& l = layers_[li];
  const int64_t num_tokens = ab.num_tokens, h = config_.hidden_size;
  RunAttention(li, l, ab);
  const Tensor residual = F32(residual_, num_tokens, h);
  const Tensor normed = F32(normed_, num_tokens, h);
  backend_->RmsNorm(residual, l.post_attention_norm, config_.rms_norm_eps, normed);
  if (l.is_moe) return RunMoe(li, l, num_tokens, options, result);
  backend_->Mlp(normed, l.mlp, residual);
  return absl::OkStatus();
}

absl::Status ModelRunner::ComputeLogits(const BatchShape& shape, ForwardResult* result) {
  const ModelConfig& c = config_;
  const Tensor final_rows = F32(final_, shape.logit_rows, c.hidden_size);
  const Tensor logits = F32(logits_, shape.logit_rows, c.vocab_size);
  const int32_t* d_rows = static_cast<const int32_t*>(ints_->data()) + shape.rows_offset();
  backend_->GatherRows(F32(residual_, shape.num_tokens, c.hidden_size), d_rows, final_rows);
  backend_->RmsNorm(final_rows, final_norm_, c.rms_norm_eps, final_rows);
  backend_->Linear(final_rows, lm_head_, Tensor{}, logits, false);
  RETURN_IF_ERROR(backend_->Synchronize());
  result->vocab_size = c.vocab_size;
  result->logits.resize(static_cast<size_t>(shape.logit_rows * c.vocab_size));
  return backend_->Download(logits.data, result->logits.size() * sizeof(float), result->logits.data());
}

absl::Status ModelRunner::Forward(std::span<const SequenceInput> batch, const ForwardOptions& options,
                                  ForwardResult* result) {
  ASSIGN_OR_RETURN(const BatchShape shape, ValidateBatch(batch));
  const HostBatch host = LayOutBatch(batch, shape, result);
  ASSIGN_OR_RETURN(const AttentionBatch ab, UploadBatch(host, shape));
  ResetRoutingRecords(shape.num_tokens, options, result);
  const int32_t* d_ids = static_cast<const int32_t*>(ints_->data());
  backend_->Embedding(embed_tokens_, d_ids, F32(residual_, shape.num_tokens, config_.hidden_size));
  for (size_t li = 0; li < layers_.size(); ++li) RETURN_IF_ERROR(RunLayer(li, ab, options, result));
  return ComputeLogits(shape, result);
}

}  // namespace adak::engine
