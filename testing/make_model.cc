#include "testing/make_model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <future>
#include <memory>
#include <random>
#include <span>
#include <system_error>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/dtype.h"
#include "base/random.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "engine/safetensors.h"
#include "nlohmann/json.hpp"
#include "tokenizer/byte_level.h"

namespace adak::testing {
namespace {

using OrderedJson = nlohmann::ordered_json;

constexpr double kInitStd = 0.02;
constexpr size_t kBufferBytes = size_t{16} << 20;    // per write buffer (two of them)
constexpr uint64_t kChunkElems = uint64_t{1} << 20;  // each chunk of a tensor has its own generator seed
// Shards at least this big bypass the page cache (SafetensorsWriteOptions::direct_io).
constexpr uint64_t kDirectIoMinBytes = uint64_t{64} << 20;

// ------------------------------------------------------------------------------------------ defaults

engine::ModelConfig DefaultConfig(engine::Architecture arch) {
  engine::ModelConfig c;
  c.arch = arch;
  c.model_type = std::string(ArchitectureModelType(arch));
  c.vocab_size = 512;
  c.hidden_size = 256;
  c.num_layers = 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.max_position_embeddings = 2048;
  c.rope_theta = 1e6;
  c.rms_norm_eps = 1e-6f;
  c.num_experts = 8;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 128;
  c.intermediate_size = 512;
  c.moe_layers.assign(4, true);
  c.bos_token_id = kMakeModelEndOfTextId;
  c.eos_token_ids = {kMakeModelEndOfTextId};
  c.torch_dtype = DType::kBF16;
  switch (arch) {
    case engine::Architecture::kMixtral:
      c.rms_norm_eps = 1e-5f;
      c.moe_intermediate_size = c.intermediate_size = 512;
      c.norm_topk_prob = true;
      break;
    case engine::Architecture::kQwen2Moe:
      c.attention_bias = true;
      c.num_shared_experts = 1;
      c.shared_expert_intermediate_size = 512;
      c.shared_expert_gate = true;
      break;
    case engine::Architecture::kDeepseek:
      c.rope_theta = 10000.0;
      c.num_shared_experts = 2;
      c.shared_expert_intermediate_size = 2 * c.moe_intermediate_size;
      c.moe_layers[0] = false;  // first_k_dense_replace = 1, as DeepSeek-MoE-16B
      break;
    case engine::Architecture::kOlmoe:
      c.rope_theta = 10000.0;
      c.rms_norm_eps = 1e-5f;
      c.num_key_value_heads = 4;
      c.moe_intermediate_size = c.intermediate_size = 256;
      c.qk_norm = engine::QkNorm::kFull;
      break;
    case engine::Architecture::kQwen3Moe:
      c.qk_norm = engine::QkNorm::kPerHead;
      c.norm_topk_prob = true;
      break;
  }
  return c;
}

bool HonoursHeadDim(engine::Architecture arch) {
  return arch != engine::Architecture::kDeepseek && arch != engine::Architecture::kOlmoe;
}

// Generic override spellings -> the architecture's key.
std::string ResolveKey(engine::Architecture arch, const std::string& key, const OrderedJson& defaults) {
  if (defaults.contains(key)) return key;
  if (key == "num_experts") {
    if (arch == engine::Architecture::kMixtral) return "num_local_experts";
    if (arch == engine::Architecture::kDeepseek) return "n_routed_experts";
  }
  if (key == "moe_intermediate_size" &&
      (arch == engine::Architecture::kMixtral || arch == engine::Architecture::kOlmoe)) {
    return "intermediate_size";
  }
  if (key == "num_shared_experts" && arch == engine::Architecture::kDeepseek) return "n_shared_experts";
  if (key == "dtype") return "torch_dtype";
  return key;
}

absl::StatusOr<OrderedJson> ParseOverrideValue(const std::string& key, const std::string& value,
                                               const OrderedJson* existing) {
  OrderedJson parsed = OrderedJson::parse(value, nullptr, /*allow_exceptions=*/false);
  const bool is_json = !parsed.is_discarded();
  auto bad = [&](std::string_view expected) {
    return absl::InvalidArgumentError(StrCatStd("override '", key, "=", value, "': expected ", expected));
  };
  if (is_json && parsed.is_null()) return parsed;
  if (existing == nullptr || existing->is_null() || existing->is_array()) {
    if (!is_json) return OrderedJson(value);
    return parsed;
  }
  if (existing->is_number_integer()) {
    if (!is_json || !parsed.is_number_integer()) return bad("an integer");
    return parsed;
  }
  if (existing->is_number()) {
    if (!is_json || !parsed.is_number()) return bad("a number");
    return parsed;
  }
  if (existing->is_boolean()) {
    if (!is_json || !parsed.is_boolean()) return bad("true or false");
    return parsed;
  }
  if (existing->is_string()) {
    if (is_json && parsed.is_string()) return parsed;
    if (is_json && !parsed.is_string()) return bad("a string");
    return OrderedJson(value);
  }
  return bad("a value of the default's type");
}

// The config.json MakeModel writes, as JSON.
absl::StatusOr<OrderedJson> MakeConfigJson(const MakeModelParams& params) {
  engine::ModelConfig c = DefaultConfig(params.arch);
  const OrderedJson base = OrderedJson::parse(ModelConfigToJson(c));

  // Resolve keys first so the head rescaling below sees the architecture's spelling.
  std::vector<std::pair<std::string, std::string>> overrides;
  for (const auto& [key, value] : params.overrides) {
    const std::string k = ResolveKey(params.arch, key, base);
    const bool known = (base.contains(k) || (k == "head_dim" && HonoursHeadDim(params.arch))) && k != "architectures";
    if (!known) {
      std::vector<std::string> keys;
      for (auto it = base.begin(); it != base.end(); ++it) {
        if (it.key() != "architectures") keys.push_back(it.key());
      }
      if (HonoursHeadDim(params.arch)) keys.push_back("head_dim");
      return absl::InvalidArgumentError(StrCatStd("unknown config key '", key, "' for ", ArchitectureName(params.arch),
                                                  " (known: ", absl::StrJoin(keys, ", "), ")"));
    }
    overrides.emplace_back(k, value);
  }
  auto given = [&overrides](std::string_view key) {
    return std::any_of(overrides.begin(), overrides.end(), [key](const auto& kv) { return kv.first == key; });
  };
  int64_t hidden = 0;
  for (const auto& [k, v] : overrides) {
    if (k == "hidden_size" && absl::SimpleAtoi(v, &hidden) && hidden > 0 && !given("num_attention_heads") &&
        !given("head_dim") && hidden % 64 == 0) {
      const int64_t heads = hidden / 64;
      c.num_key_value_heads = std::max<int64_t>(1, heads * c.num_key_value_heads / c.num_attention_heads);
      c.num_attention_heads = heads;
      c.hidden_size = hidden;
      c.head_dim = 64;
    }
  }
  OrderedJson j = OrderedJson::parse(ModelConfigToJson(c));
  j.erase("head_dim");  // derived from hidden / heads unless overridden
  for (const auto& [k, v] : overrides) {
    auto it = j.find(k);
    ASSIGN_OR_RETURN(j[k], ParseOverrideValue(k, v, it == j.end() ? nullptr : &*it));
  }
  return j;
}

// ------------------------------------------------------------------------------------------ tensors

enum class Init { kNormal, kOnes };

struct PlannedTensor {
  engine::SafetensorsTensorSpec spec;
  Init init = Init::kNormal;
};

std::vector<PlannedTensor> PlanTensors(const engine::ModelConfig& c) {
  std::vector<PlannedTensor> out;
  const DType t = c.torch_dtype;
  auto add = [&](std::string name, std::vector<int64_t> shape, Init init = Init::kNormal) {
    out.push_back({{std::move(name), t, std::move(shape)}, init});
  };
  auto mlp = [&](const std::string& prefix, int64_t inter, bool mixtral) {
    add(prefix + (mixtral ? "w1.weight" : "gate_proj.weight"), {inter, c.hidden_size});
    add(prefix + (mixtral ? "w3.weight" : "up_proj.weight"), {inter, c.hidden_size});
    add(prefix + (mixtral ? "w2.weight" : "down_proj.weight"), {c.hidden_size, inter});
  };
  const int64_t h = c.hidden_size;
  add("model.embed_tokens.weight", {c.vocab_size, h});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = StrCatStd("model.layers.", i, ".");
    add(p + "input_layernorm.weight", {h}, Init::kOnes);
    add(p + "self_attn.q_proj.weight", {c.q_dim(), h});
    add(p + "self_attn.k_proj.weight", {c.kv_dim(), h});
    add(p + "self_attn.v_proj.weight", {c.kv_dim(), h});
    if (c.attention_bias) {
      add(p + "self_attn.q_proj.bias", {c.q_dim()});
      add(p + "self_attn.k_proj.bias", {c.kv_dim()});
      add(p + "self_attn.v_proj.bias", {c.kv_dim()});
    }
    add(p + "self_attn.o_proj.weight", {h, c.q_dim()});
    if (c.qk_norm == engine::QkNorm::kPerHead) {
      add(p + "self_attn.q_norm.weight", {c.head_dim}, Init::kOnes);
      add(p + "self_attn.k_norm.weight", {c.head_dim}, Init::kOnes);
    } else if (c.qk_norm == engine::QkNorm::kFull) {
      add(p + "self_attn.q_norm.weight", {c.q_dim()}, Init::kOnes);
      add(p + "self_attn.k_norm.weight", {c.kv_dim()}, Init::kOnes);
    }
    add(p + "post_attention_layernorm.weight", {h}, Init::kOnes);
    if (!c.moe_layers[static_cast<size_t>(i)]) {
      mlp(p + "mlp.", c.intermediate_size, false);
      continue;
    }
    const bool mixtral = c.arch == engine::Architecture::kMixtral;
    const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
    add(moe + "gate.weight", {c.num_experts, h});
    for (int64_t e = 0; e < c.num_experts; ++e)
      mlp(StrCatStd(moe, "experts.", e, "."), c.moe_intermediate_size, mixtral);
    if (c.num_shared_experts > 0) {
      mlp(moe + (c.arch == engine::Architecture::kDeepseek ? "shared_experts." : "shared_expert."),
          c.shared_expert_intermediate_size, false);
    }
    if (c.shared_expert_gate) add(moe + "shared_expert_gate.weight", {1, h});
  }
  add("model.norm.weight", {h}, Init::kOnes);
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, h});
  return out;
}

// ------------------------------------------------------------------------------------------ random numbers

// xoshiro256++ (Blackman & Vigna): fast, all 64 output bits usable.
class Xoshiro {
 public:
  explicit Xoshiro(uint64_t seed) {
    for (uint64_t& w : s_) w = SplitMix64Next(seed);
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[0] + s_[3], 23) + s_[0];
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<uint64_t, 4> s_;
};

// Inverse of the standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9).
double NormalQuantile(double p) {
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                                 1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                 6.680131188771972e+01, -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                 -2.549671010446583e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                 3.754408661907416e+00};
  constexpr double kLow = 0.02425;
  if (p < kLow) {
    const double q = std::sqrt(-2 * std::log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - kLow) return -NormalQuantile(1 - p);
  const double q = p - 0.5;
  const double r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

// Draws N(0, kInitStd) by inverse-CDF lookup: 16 random bits pick one of 65536 equiprobable quantiles
// (finer than BF16/F16 can represent; tails cut at 4.2 sigma), four draws per 64-bit random word.
class NormalSampler {
 public:
  explicit NormalSampler(DType dtype) : dtype_(dtype), elem_(DTypeSize(dtype)) {
    table_.resize(65536 * elem_);
    for (size_t i = 0; i < 65536; ++i) {
      const float v = static_cast<float>(kInitStd * NormalQuantile((static_cast<double>(i) + 0.5) / 65536.0));
      Store(v, &table_[i * elem_]);
    }
  }

  size_t elem_size() const { return elem_; }

  void StoreOne(std::byte* out) const { Store(1.0f, out); }

  // Fills `n` elements at `out` from `rng`, carrying unused 16-bit lanes in `lanes`/`num_lanes`, so the sequence
  // does not depend on how a chunk is split across calls.
  void Fill(Xoshiro& rng, uint64_t& lanes, int& num_lanes, std::byte* out, uint64_t n) const {
    uint64_t i = 0;
    for (; i < n && num_lanes > 0; ++i, --num_lanes, lanes >>= 16) Put(lanes & 0xffff, out + i * elem_);
    if (elem_ == 2) {
      const uint16_t* table = reinterpret_cast<const uint16_t*>(table_.data());
      for (; i + 4 <= n; i += 4) {
        const uint64_t r = rng.Next();
        const uint16_t v[4] = {table[r & 0xffff], table[(r >> 16) & 0xffff], table[(r >> 32) & 0xffff], table[r >> 48]};
        std::memcpy(out + i * 2, v, sizeof(v));
      }
    } else {
      const float* table = reinterpret_cast<const float*>(table_.data());
      for (; i + 4 <= n; i += 4) {
        const uint64_t r = rng.Next();
        const float v[4] = {table[r & 0xffff], table[(r >> 16) & 0xffff], table[(r >> 32) & 0xffff], table[r >> 48]};
        std::memcpy(out + i * 4, v, sizeof(v));
      }
    }
    for (; i < n; ++i) {
      if (num_lanes == 0) {
        lanes = rng.Next();
        num_lanes = 4;
      }
      Put(lanes & 0xffff, out + i * elem_);
      lanes >>= 16;
      --num_lanes;
    }
  }

 private:
  void Put(uint64_t index, std::byte* out) const { std::memcpy(out, &table_[index * elem_], elem_); }

  void Store(float v, std::byte* out) const {
    switch (dtype_) {
      case DType::kBF16: {
        const uint16_t b = F32ToBf16(v);
        std::memcpy(out, &b, 2);
        break;
      }
      case DType::kF16: {
        const uint16_t b = F32ToF16(v);
        std::memcpy(out, &b, 2);
        break;
      }
      default: std::memcpy(out, &v, 4); break;
    }
  }

  DType dtype_;
  size_t elem_;
  std::vector<std::byte> table_;  // 65536 quantiles in dtype_
};

// Double-buffered output: the caller fills one buffer while a background task writes the other.
class BufferedWriter {
 public:
  // REQUIRES: every piece the caller produces is a multiple of some element size dividing `capacity`.
  BufferedWriter(engine::SafetensorsWriter* writer, size_t capacity) : writer_(writer), capacity_(capacity) {
    for (auto& b : buffers_) b.resize(capacity_);
  }
  ~BufferedWriter() {
    if (pending_.valid()) pending_.wait();
  }

  std::span<std::byte> Space() { return std::span<std::byte>(buffers_[current_]).subspan(fill_); }

  absl::Status Advance(size_t n) {
    fill_ += n;
    return fill_ == capacity_ ? Flush() : absl::OkStatus();
  }

  absl::Status Flush() {
    if (pending_.valid()) RETURN_IF_ERROR(pending_.get());
    if (fill_ == 0) return absl::OkStatus();
    std::span<const std::byte> data(buffers_[current_].data(), fill_);
    pending_ = std::async(std::launch::async, [this, data] { return writer_->Append(data); });
    current_ ^= 1;
    fill_ = 0;
    return absl::OkStatus();
  }

  absl::Status Finish() {
    RETURN_IF_ERROR(Flush());
    if (pending_.valid()) RETURN_IF_ERROR(pending_.get());
    return writer_->Finish();
  }

 private:
  engine::SafetensorsWriter* writer_;
  size_t capacity_;
  std::array<std::vector<std::byte>, 2> buffers_;
  int current_ = 0;
  size_t fill_ = 0;
  std::future<absl::Status> pending_;
};

struct ProgressState {
  const std::function<void(uint64_t, uint64_t)>* callback;
  uint64_t done = 0;
  uint64_t total = 0;
  uint64_t reported = 0;
  void Add(uint64_t n) {
    done += n;
    if (*callback && (done - reported >= (uint64_t{256} << 20) || done == total)) {
      reported = done;
      (*callback)(done, total);
    }
  }
};

absl::Status WriteShard(const std::filesystem::path& path, std::span<const PlannedTensor> tensors,
                        std::span<const size_t> global_index, uint64_t base_seed, const NormalSampler& sampler,
                        ProgressState& progress) {
  std::vector<engine::SafetensorsTensorSpec> specs;
  for (const PlannedTensor& t : tensors) specs.push_back(t.spec);
  uint64_t shard_bytes = 0;
  for (const engine::SafetensorsTensorSpec& s : specs) shard_bytes += s.nbytes();
  engine::SafetensorsWriteOptions options;
  options.direct_io = shard_bytes >= kDirectIoMinBytes;
  ASSIGN_OR_RETURN(std::unique_ptr<engine::SafetensorsWriter> writer,
                   engine::SafetensorsWriter::Create(path, std::move(specs), {{"format", "pt"}}, options));
  // Small shards get small buffers; 8-byte granularity keeps every element size dividing the capacity.
  const size_t capacity = static_cast<size_t>(std::min<uint64_t>(kBufferBytes, (writer->data_size() + 7) / 8 * 8));
  BufferedWriter out(writer.get(), std::max<size_t>(capacity, 8));
  const size_t elem = sampler.elem_size();
  for (size_t k = 0; k < tensors.size(); ++k) {
    const PlannedTensor& t = tensors[k];
    const uint64_t numel = t.spec.nbytes() / elem;
    uint64_t tensor_seed = base_seed ^ (0xD1B54A32D192ED03ull * (global_index[k] + 1));
    tensor_seed = SplitMix64Next(tensor_seed);
    for (uint64_t chunk_begin = 0; chunk_begin < numel; chunk_begin += kChunkElems) {
      const uint64_t chunk_len = std::min(kChunkElems, numel - chunk_begin);
      uint64_t chunk_seed = tensor_seed + chunk_begin / kChunkElems;
      Xoshiro rng(SplitMix64Next(chunk_seed));
      uint64_t lanes = 0;
      int num_lanes = 0;
      for (uint64_t left = chunk_len; left > 0;) {
        std::span<std::byte> space = out.Space();
        const uint64_t n = std::min<uint64_t>(left, space.size() / elem);
        if (t.init == Init::kOnes) {
          for (uint64_t i = 0; i < n; ++i) sampler.StoreOne(space.data() + i * elem);
        } else {
          sampler.Fill(rng, lanes, num_lanes, space.data(), n);
        }
        left -= n;
        RETURN_IF_ERROR(out.Advance(n * elem));
        progress.Add(n * elem);
      }
    }
  }
  return out.Finish();
}

// ------------------------------------------------------------------------------------------ tokenizer

constexpr std::array<const char*, 8> kMerges = {"Ġ t", "h e", "Ġ a", "i n", "Ġt he", "e r", "o n", "Ġ s"};
static_assert(256 + kMerges.size() + 1 == kMakeModelTokenizerSize);

constexpr const char* kEndOfText = "<|endoftext|>";

std::string TokenizerJson() {
  OrderedJson vocab = OrderedJson::object();
  int64_t id = 0;
  for (const std::string& t : tokenizer::ByteLevelVocabulary()) vocab[t] = id++;
  OrderedJson merges = OrderedJson::array();
  for (const char* m : kMerges) {
    std::string merged(m);
    merged.erase(merged.find(' '), 1);
    vocab[merged] = id++;
    merges.push_back(m);
  }
  vocab[kEndOfText] = id;
  OrderedJson j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = OrderedJson::array({OrderedJson{{"id", kMakeModelEndOfTextId},
                                                      {"content", kEndOfText},
                                                      {"single_word", false},
                                                      {"lstrip", false},
                                                      {"rstrip", false},
                                                      {"normalized", false},
                                                      {"special", true}}});
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  j["post_processor"] = nullptr;
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", merges}};
  return j.dump(2) + "\n";
}

std::string TokenizerConfigJson(const engine::ModelConfig& c) {
  OrderedJson j;
  j["add_bos_token"] = false;
  j["add_prefix_space"] = false;
  j["added_tokens_decoder"] = {{std::to_string(kMakeModelEndOfTextId),
                                {{"content", kEndOfText},
                                 {"lstrip", false},
                                 {"normalized", false},
                                 {"rstrip", false},
                                 {"single_word", false},
                                 {"special", true}}}};
  j["bos_token"] = nullptr;
  j["clean_up_tokenization_spaces"] = false;
  j["eos_token"] = kEndOfText;
  j["errors"] = "replace";
  j["model_max_length"] = c.max_position_embeddings;
  j["pad_token"] = kEndOfText;
  j["tokenizer_class"] = "PreTrainedTokenizerFast";
  j["unk_token"] = nullptr;
  return j.dump(2) + "\n";
}

std::string GenerationConfigJson(const engine::ModelConfig& c) {
  OrderedJson j;
  j["bos_token_id"] = c.bos_token_id >= 0 ? OrderedJson(c.bos_token_id) : OrderedJson(nullptr);
  if (c.eos_token_ids.size() == 1) {
    j["eos_token_id"] = c.eos_token_ids[0];
  } else if (c.eos_token_ids.empty()) {
    j["eos_token_id"] = nullptr;
  } else {
    j["eos_token_id"] = c.eos_token_ids;
  }
  j["do_sample"] = false;
  return j.dump(2) + "\n";
}

absl::Status WriteTextFile(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::path partial = path;
  partial += ".partial";
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) return absl::InternalError(StrCatStd("cannot write ", partial.string()));
  }
  std::error_code ec;
  std::filesystem::rename(partial, path, ec);
  if (ec) return absl::InternalError(StrCatStd("cannot rename ", partial.string(), ": ", ec.message()));
  return absl::OkStatus();
}

void RemoveIfExists(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
}

}  // namespace

absl::StatusOr<engine::ModelConfig> MakeModelConfig(const MakeModelParams& params) {
  try {
    ASSIGN_OR_RETURN(OrderedJson j, MakeConfigJson(params));
    ASSIGN_OR_RETURN(engine::ModelConfig c, engine::ParseModelConfig(j.dump()));
    if (c.vocab_size < kMakeModelTokenizerSize) {
      return absl::InvalidArgumentError(StrCatStd("vocab_size ", c.vocab_size, " is smaller than the ",
                                                  kMakeModelTokenizerSize, " ids of the generated tokenizer"));
    }
    return c;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(StrCatStd("make-model config: ", e.what()));
  }
}

absl::Status MakeModel(const MakeModelParams& params, const std::filesystem::path& out_dir) {
  ASSIGN_OR_RETURN(engine::ModelConfig config, MakeModelConfig(params));
  std::string config_text;
  try {
    ASSIGN_OR_RETURN(OrderedJson j, MakeConfigJson(params));
    config_text = j.dump(2) + "\n";
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(StrCatStd("make-model config: ", e.what()));
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return absl::InternalError(StrCatStd("cannot create ", out_dir.string(), ": ", ec.message()));

  const std::vector<PlannedTensor> tensors = PlanTensors(config);
  uint64_t total = 0;
  for (const PlannedTensor& t : tensors) total += t.spec.nbytes();
  const NormalSampler sampler(config.torch_dtype);
  std::mt19937_64 seeder(params.seed);
  const uint64_t base_seed = seeder();
  ProgressState progress{&params.progress, 0, total, 0};
  std::vector<size_t> index(tensors.size());
  for (size_t i = 0; i < index.size(); ++i) index[i] = i;

  const std::filesystem::path index_path = out_dir / "model.safetensors.index.json";
  if (params.max_shard_bytes == 0 || total <= params.max_shard_bytes) {
    RemoveIfExists(index_path);
    RETURN_IF_ERROR(WriteShard(out_dir / "model.safetensors", tensors, index, base_seed, sampler, progress));
  } else {
    // Greedy, in order: a new shard when the next tensor would overflow a non-empty one.
    std::vector<std::pair<size_t, size_t>> shards;  // [begin, end) into tensors
    uint64_t shard_bytes = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      const uint64_t n = tensors[i].spec.nbytes();
      if (shards.empty() || (shard_bytes > 0 && shard_bytes + n > params.max_shard_bytes)) {
        shards.emplace_back(i, i);
        shard_bytes = 0;
      }
      shards.back().second = i + 1;
      shard_bytes += n;
    }
    RemoveIfExists(out_dir / "model.safetensors");
    RemoveIfExists(index_path);  // rewritten last: a half-written checkpoint has no index
    OrderedJson weight_map = OrderedJson::object();
    for (size_t s = 0; s < shards.size(); ++s) {
      const std::string name = absl::StrFormat("model-%05d-of-%05d.safetensors", s + 1, shards.size());
      const auto [begin, end] = shards[s];
      RETURN_IF_ERROR(WriteShard(out_dir / name, std::span(tensors).subspan(begin, end - begin),
                                 std::span(index).subspan(begin, end - begin), base_seed, sampler, progress));
      for (size_t i = begin; i < end; ++i) weight_map[tensors[i].spec.name] = name;
    }
    OrderedJson index_json;
    index_json["metadata"] = {{"total_size", total}};
    index_json["weight_map"] = std::move(weight_map);
    RETURN_IF_ERROR(WriteTextFile(index_path, index_json.dump(2) + "\n"));
  }
  RETURN_IF_ERROR(WriteTextFile(out_dir / "tokenizer.json", TokenizerJson()));
  RETURN_IF_ERROR(WriteTextFile(out_dir / "tokenizer_config.json", TokenizerConfigJson(config)));
  RETURN_IF_ERROR(WriteTextFile(out_dir / "generation_config.json", GenerationConfigJson(config)));
  return WriteTextFile(out_dir / "config.json", config_text);
}

}  // namespace adak::testing
