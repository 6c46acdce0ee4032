// Tokenizer: ties the tokenizer.json pipeline together (added tokens -> normalizer -> pre-tokenizer -> BPE ->
// post-processor; ids -> decoder), loads BOS/EOS from the model directory, and implements the incremental
// detokenizer.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoder.h"
#include "tokenizer/json.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace adak::tokenizer {

class Tokenizer::Impl {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Impl>> FromJson(std::string_view json_text);
  [[nodiscard]] absl::Status LoadSpecialTokens(const std::filesystem::path& dir);

  [[nodiscard]] absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special_tokens,
                                                            size_t max_tokens) const;
  [[nodiscard]] std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  [[nodiscard]] int64_t vocab_size() const {
    return static_cast<int64_t>(std::max(model_->max_id(), added_.max_id())) + 1;
  }
  [[nodiscard]] std::optional<int32_t> TokenToId(std::string_view token) const {
    if (auto id = added_.FindByContent(token); id.has_value()) {
      return id;
    }
    return model_->TokenToId(token);
  }
  [[nodiscard]] std::string IdToToken(int32_t id) const {
    if (const AddedToken* added = added_.FindById(id); added != nullptr) {
      return added->content;
    }
    const std::string* token = model_->IdToToken(id);
    return token == nullptr ? std::string() : *token;
  }
  // Whether Decode passes a token for `id` to the decoder.
  [[nodiscard]] bool Renders(int32_t id, bool skip_special_tokens) const {
    if (const AddedToken* added = added_.FindById(id); added != nullptr) {
      return !(skip_special_tokens && added->special);
    }
    return model_->IdToToken(id) != nullptr;
  }
  [[nodiscard]] bool IsSpecial(int32_t id) const {
    const AddedToken* added = added_.FindById(id);
    return added != nullptr && added->special;
  }

  [[nodiscard]] std::optional<int32_t> bos_token_id() const { return bos_token_id_; }
  [[nodiscard]] const std::vector<int32_t>& eos_token_ids() const { return eos_token_ids_; }
  [[nodiscard]] std::optional<size_t> max_input_bytes_per_token() const { return max_input_bytes_per_token_; }

 private:
  // Sets max_input_bytes_per_token_ from the loaded parts and the JSON they came from.
  void ComputeInputBytesBound(const Json& root);
  static absl::StatusOr<std::unique_ptr<Impl>> FromParsedJson(const Json& root);
  // Encodes a piece of input that contains no raw added token.
  absl::Status EncodePlain(std::string_view piece, bool at_input_start, size_t max_tokens,
                           std::vector<int32_t>* ids) const;
  // Pre-tokenizes normalized text and runs the model on every word.
  absl::Status EncodeWords(std::string_view text, bool at_input_start, size_t max_tokens,
                           std::vector<int32_t>* ids) const;

  std::unique_ptr<Normalizer> normalizer_;       // may be null
  std::unique_ptr<PreTokenizer> pre_tokenizer_;  // may be null
  std::unique_ptr<BpeModel> model_;
  AddedVocabulary added_;
  std::unique_ptr<PostProcessor> post_processor_;  // may be null
  std::unique_ptr<Decoder> decoder_;               // may be null: tokens are then joined with spaces
  bool add_bos_token_ = false;                     // from tokenizer_config.json, used without post_processor
  bool llama_special_tokens_ = false;              // LlamaTokenizerFast: add_bos/eos_token replace it
  bool add_eos_token_ = false;
  std::optional<int32_t> bos_token_id_;
  std::vector<int32_t> eos_token_ids_;
  std::optional<size_t> max_input_bytes_per_token_;
};

namespace {

absl::Status TooManyTokens(size_t max_tokens) {
  return absl::OutOfRangeError(StrCatStd("the text encodes to more than ", max_tokens, " tokens"));
}

absl::StatusOr<std::vector<AddedToken>> ParseAddedTokens(const Json& root, const BpeModel& model) {
  std::vector<AddedToken> tokens;
  const Json* list = JsonMember(root, "added_tokens");
  if (list == nullptr) {
    return tokens;
  }
  if (!list->is_array()) {
    return TokenizerJsonError("added_tokens", "expected an array");
  }
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& entry = (*list)[i];
    const std::string where = StrCatStd("added_tokens[", i, "]");
    if (!entry.is_object()) {
      return TokenizerJsonError(where, "expected an object");
    }
    AddedToken token;
    ASSIGN_OR_RETURN(token.content, JsonString(entry, "content", where));
    if (!Utf8IsValid(token.content)) {
      return TokenizerJsonError(JsonPath(where, "content"), "not valid UTF-8");
    }
    ASSIGN_OR_RETURN(token.special, JsonBool(entry, "special", false, where));
    ASSIGN_OR_RETURN(token.single_word, JsonBool(entry, "single_word", false, where));
    ASSIGN_OR_RETURN(token.lstrip, JsonBool(entry, "lstrip", false, where));
    ASSIGN_OR_RETURN(token.rstrip, JsonBool(entry, "rstrip", false, where));
    ASSIGN_OR_RETURN(token.normalized, JsonBool(entry, "normalized", !token.special, where));
    // As HF: a token already in the model vocabulary keeps the model's id.
    if (auto model_id = model.TokenToId(token.content); model_id.has_value()) {
      token.id = *model_id;
    } else {
      const Json* id = JsonMember(entry, "id");
      if (id == nullptr || !id->is_number_unsigned() || id->get<uint64_t>() > INT32_MAX) {
        return TokenizerJsonError(JsonPath(where, "id"), "expected a non-negative integer id");
      }
      token.id = static_cast<int32_t>(id->get<uint64_t>());
    }
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// Reads and parses a JSON file. nullopt when the file does not exist. Errors: InvalidArgument naming the
// file when it is not JSON; NotFound/Internal when it cannot be read.
absl::StatusOr<std::optional<Json>> ReadOptionalJsonFile(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return std::optional<Json>();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(StrCatStd("cannot open ", path.string()));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  try {
    return std::optional<Json>(Json::parse(buffer.str()));
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(StrCatStd(path.string(), ": not valid JSON: ", e.what()));
  }
}

// A token given as "content" or {"content": ...} (tokenizer_config.json); nullopt for null/absent.
absl::StatusOr<std::optional<std::string>> ConfigTokenContent(const Json& config, std::string_view key) {
  const Json* value = JsonMember(config, key);
  if (value == nullptr) {
    return std::optional<std::string>();
  }
  if (value->is_string()) {
    return std::optional<std::string>(value->get<std::string>());
  }
  if (const Json* content = JsonMember(*value, "content"); content != nullptr && content->is_string()) {
    return std::optional<std::string>(content->get<std::string>());
  }
  return absl::InvalidArgumentError(
      StrCatStd("tokenizer_config.json: ", key, ": expected a string or an object with \"content\""));
}

// `key` of generation_config.json / config.json: an id, a list of ids, or null.
absl::StatusOr<std::vector<int32_t>> ConfigIds(const Json& config, std::string_view key, std::string_view file) {
  std::vector<int32_t> ids;
  const Json* value = JsonMember(config, key);
  if (value == nullptr) {
    return ids;
  }
  const auto bad = [&] {
    return absl::InvalidArgumentError(
        StrCatStd(file, ": ", key, ": expected a non-negative integer or a list of them"));
  };
  if (value->is_array()) {
    for (const Json& id : *value) {
      if (!id.is_number_unsigned() || id.get<uint64_t>() > INT32_MAX) {
        return bad();
      }
      ids.push_back(static_cast<int32_t>(id.get<uint64_t>()));
    }
    return ids;
  }
  if (!value->is_number_unsigned() || value->get<uint64_t>() > INT32_MAX) {
    return bad();
  }
  ids.push_back(static_cast<int32_t>(value->get<uint64_t>()));
  return ids;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer::Impl>> Tokenizer::Impl::FromJson(std::string_view json_text) {
  Json root;
  try {
    root = Json::parse(json_text);
  } catch (const Json::exception& e) {
    return TokenizerJsonError("", StrCatStd("not valid JSON: ", e.what()));
  }
  if (!root.is_object()) {
    return TokenizerJsonError("", "expected a JSON object at the top level");
  }
  try {
    return FromParsedJson(root);
  } catch (const Json::exception& e) {
    // Every access is type-checked; this only guards against a missed case.
    return TokenizerJsonError("", StrCatStd("malformed: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer::Impl>> Tokenizer::Impl::FromParsedJson(const Json& root) {
  auto impl = std::make_unique<Impl>();
  const Json* model = JsonMember(root, "model");
  if (model == nullptr) {
    return TokenizerJsonError("model", "missing");
  }
  ASSIGN_OR_RETURN(impl->model_, BpeModel::FromJson(*model));
  if (const Json* normalizer = JsonMember(root, "normalizer"); normalizer != nullptr) {
    ASSIGN_OR_RETURN(impl->normalizer_, NormalizerFromJson(*normalizer, "normalizer"));
  }
  if (const Json* pre_tokenizer = JsonMember(root, "pre_tokenizer"); pre_tokenizer != nullptr) {
    ASSIGN_OR_RETURN(impl->pre_tokenizer_, PreTokenizerFromJson(*pre_tokenizer, "pre_tokenizer"));
  }
  if (const Json* post_processor = JsonMember(root, "post_processor"); post_processor != nullptr) {
    ASSIGN_OR_RETURN(impl->post_processor_, PostProcessorFromJson(*post_processor, "post_processor"));
  }
  if (const Json* decoder = JsonMember(root, "decoder"); decoder != nullptr) {
    ASSIGN_OR_RETURN(impl->decoder_, DecoderFromJson(*decoder, "decoder"));
  }
  ASSIGN_OR_RETURN(std::vector<AddedToken> added, ParseAddedTokens(root, *impl->model_));
  const bool strips = std::any_of(added.begin(), added.end(), [](const AddedToken& t) { return t.lstrip || t.rstrip; });
  ASSIGN_OR_RETURN(impl->added_, AddedVocabulary::Build(std::move(added), impl->normalizer_.get()));
  impl->ComputeInputBytesBound(root);

  if (strips) impl->max_input_bytes_per_token_.reset();  // an added token may absorb any run of whitespace
  return impl;
}

namespace {

// Whether any component object ("type": ...) in `json` has one of `types`, or is a Split that removes its
// matches, or a Replace whose content is shorter than its pattern (or whose pattern is a regex).
bool HasShrinkingPart(const Json& json, std::initializer_list<std::string_view> types) {
  if (json.is_array()) {
    return std::any_of(json.begin(), json.end(), [&](const Json& e) { return HasShrinkingPart(e, types); });
  }
  if (!json.is_object()) return false;
  if (auto type = json.find("type"); type != json.end() && type->is_string()) {
    const std::string& name = type->get_ref<const std::string&>();
    if (std::find(types.begin(), types.end(), name) != types.end()) return true;
    const Json* behavior = JsonMember(json, "behavior");
    if (name == "Split" && behavior != nullptr && behavior->is_string() && *behavior == "Removed") return true;
    if (name == "Replace") {
      const Json* pattern = JsonMember(json, "pattern");
      const Json* literal = pattern != nullptr ? JsonMember(*pattern, "String") : nullptr;
      if (literal == nullptr || !literal->is_string()) return true;
      const Json* content = JsonMember(json, "content");
      if (content == nullptr || !content->is_string() ||
          content->get_ref<const std::string&>().size() < literal->get_ref<const std::string&>().size()) {
        return true;
      }
    }
  }
  return std::any_of(json.begin(), json.end(), [&](const Json& e) { return HasShrinkingPart(e, types); });
}

}  // namespace

void Tokenizer::Impl::ComputeInputBytesBound(const Json& root) {
  const Json* model = JsonMember(root, "model");
  const auto flag = [&](const char* key) {
    const Json* value = model != nullptr ? JsonMember(*model, key) : nullptr;
    return value != nullptr && value->is_boolean() && value->get<bool>();
  };
  // One <unk> for any run of unknown text (byte_fallback, when on, replaces <unk> altogether).
  if (flag("fuse_unk") && !flag("byte_fallback")) return;
  const Json* normalizer = JsonMember(root, "normalizer");
  const Json* pre_tokenizer = JsonMember(root, "pre_tokenizer");
  if ((normalizer != nullptr && HasShrinkingPart(*normalizer, {"Strip", "StripAccents"})) ||
      (pre_tokenizer != nullptr &&
       HasShrinkingPart(*pre_tokenizer, {"Whitespace", "WhitespaceSplit", "BertPreTokenizer"}))) {
    return;  // input can vanish before the model sees it
  }
  size_t longest = 4;  // a <unk> or byte-fallback token stands for one character, at most 4 bytes
  for (int32_t id = 0; id < static_cast<int32_t>(vocab_size()); ++id) longest = std::max(longest, IdToToken(id).size());
  // A token's string is at least as long as the input bytes it covers (byte-level: one character per byte;
  // SentencePiece: "▁" for a space). Composition (NFC, NFKC) shrinks text up to 3 times (three Hangul
  // jamo, 9 bytes, into one syllable, 3 bytes).
  const bool composes = normalizer != nullptr && HasShrinkingPart(*normalizer, {"NFC", "NFKC"});
  max_input_bytes_per_token_ = longest * (composes ? 3 : 1);
}

absl::Status Tokenizer::Impl::LoadSpecialTokens(const std::filesystem::path& dir) {
  std::optional<int32_t> config_bos;
  std::optional<int32_t> config_eos;
  ASSIGN_OR_RETURN(const std::optional<Json> tokenizer_config, ReadOptionalJsonFile(dir / "tokenizer_config.json"));
  if (tokenizer_config.has_value()) {
    for (const auto& [key, target] : {std::pair{"bos_token", &config_bos}, std::pair{"eos_token", &config_eos}}) {
      ASSIGN_OR_RETURN(const std::optional<std::string> content, ConfigTokenContent(*tokenizer_config, key));
      if (!content.has_value()) {
        continue;
      }
      *target = TokenToId(*content);
      if (!target->has_value()) {
        return absl::InvalidArgumentError(
            StrCatStd("tokenizer_config.json: ", key, " '", *content, "' is not in the vocabulary"));
      }
    }
    // transformers' LlamaTokenizerFast (and LlamaTokenizer) rebuild the post_processor from add_bos_token
    // (default true) and add_eos_token (default false) whatever tokenizer.json says (update_post_processor).
    if (const Json* tokenizer_class = JsonMember(*tokenizer_config, "tokenizer_class");
        tokenizer_class != nullptr && tokenizer_class->is_string() &&
        (*tokenizer_class == "LlamaTokenizerFast" || *tokenizer_class == "LlamaTokenizer")) {
      llama_special_tokens_ = true;
      add_bos_token_ = true;
      add_eos_token_ = false;
    }
    for (const auto& [key, target] :
         {std::pair{"add_bos_token", &add_bos_token_}, std::pair{"add_eos_token", &add_eos_token_}}) {
      const Json* value = JsonMember(*tokenizer_config, key);
      if (value == nullptr) {
        continue;
      }
      if (!value->is_boolean()) {
        return absl::InvalidArgumentError(StrCatStd("tokenizer_config.json: ", key, ": expected true or false"));
      }
      *target = value->get<bool>();
    }
  }
  std::vector<int32_t> generation_bos;
  std::vector<int32_t> generation_eos;
  ASSIGN_OR_RETURN(const std::optional<Json> generation_config, ReadOptionalJsonFile(dir / "generation_config.json"));
  if (generation_config.has_value()) {
    ASSIGN_OR_RETURN(generation_bos, ConfigIds(*generation_config, "bos_token_id", "generation_config.json"));
    ASSIGN_OR_RETURN(generation_eos, ConfigIds(*generation_config, "eos_token_id", "generation_config.json"));
  }
  std::vector<int32_t> model_bos;
  std::vector<int32_t> model_eos;
  ASSIGN_OR_RETURN(const std::optional<Json> model_config, ReadOptionalJsonFile(dir / "config.json"));
  if (model_config.has_value()) {
    ASSIGN_OR_RETURN(model_bos, ConfigIds(*model_config, "bos_token_id", "config.json"));
    ASSIGN_OR_RETURN(model_eos, ConfigIds(*model_config, "eos_token_id", "config.json"));
  }

  if (config_bos.has_value()) {
    bos_token_id_ = config_bos;
  } else if (!generation_bos.empty()) {
    bos_token_id_ = generation_bos.front();
  } else if (!model_bos.empty()) {
    bos_token_id_ = model_bos.front();
  }
  eos_token_ids_.clear();
  auto add_eos = [this](int32_t id) {
    if (std::find(eos_token_ids_.begin(), eos_token_ids_.end(), id) == eos_token_ids_.end()) {
      eos_token_ids_.push_back(id);
    }
  };
  if (config_eos.has_value()) {
    add_eos(*config_eos);
  }
  for (const int32_t id : generation_eos) {
    add_eos(id);
  }
  if (eos_token_ids_.empty()) {
    for (const int32_t id : model_eos) {
      add_eos(id);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Impl::Encode(std::string_view text, bool add_special_tokens,
                                                             size_t max_tokens) const {
  if (const size_t bad = Utf8FindInvalid(text); bad != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Encode: text is not valid UTF-8 (invalid byte 0x%02X at offset %d)",
                        static_cast<unsigned char>(text[bad]), bad));
  }
  std::vector<int32_t> ids;
  ids.reserve(std::min(text.size() / 3 + 4, max_tokens + 1));
  for (const auto& segment : added_.SplitRaw(text)) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    RETURN_IF_ERROR(
        EncodePlain(text.substr(segment.begin, segment.end - segment.begin), segment.begin == 0, max_tokens, &ids));
    if (ids.size() > max_tokens) return TooManyTokens(max_tokens);
  }
  if (add_special_tokens) {
    if (post_processor_ != nullptr && !llama_special_tokens_) {
      post_processor_->ProcessSingle(&ids);
    } else {
      if (add_bos_token_ && bos_token_id_.has_value()) {
        ids.insert(ids.begin(), *bos_token_id_);
      }
      if (add_eos_token_ && !eos_token_ids_.empty()) {
        ids.push_back(eos_token_ids_.front());
      }
    }
  }
  return ids;
}

absl::Status Tokenizer::Impl::EncodePlain(std::string_view piece, bool at_input_start, size_t max_tokens,
                                          std::vector<int32_t>* ids) const {
  std::string normalized_storage;
  std::string_view normalized = piece;
  if (normalizer_ != nullptr) {
    ASSIGN_OR_RETURN(normalized_storage, normalizer_->Normalize(piece));
    normalized = normalized_storage;
  }
  if (!added_.has_normalized_tokens()) {
    return EncodeWords(normalized, at_input_start, max_tokens, ids);
  }
  for (const auto& segment : added_.SplitNormalized(normalized)) {
    if (segment.id >= 0) {
      ids->push_back(segment.id);
      continue;
    }
    RETURN_IF_ERROR(EncodeWords(normalized.substr(segment.begin, segment.end - segment.begin),
                                at_input_start && segment.begin == 0, max_tokens, ids));
    if (ids->size() > max_tokens) return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status Tokenizer::Impl::EncodeWords(std::string_view text, bool at_input_start, size_t max_tokens,
                                          std::vector<int32_t>* ids) const {
  if (text.empty()) {
    return absl::OkStatus();
  }
  if (pre_tokenizer_ == nullptr) {
    model_->Tokenize(text, ids);
    return absl::OkStatus();
  }
  std::vector<PreToken> words;
  words.push_back({std::string(text), at_input_start});
  RETURN_IF_ERROR(pre_tokenizer_->PreTokenize(&words));
  for (const PreToken& word : words) {
    model_->Tokenize(word.text, ids);
    if (ids->size() > max_tokens) return absl::OkStatus();  // the caller refuses it; the rest is not needed
  }
  return absl::OkStatus();
}

std::string Tokenizer::Impl::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    if (const AddedToken* added = added_.FindById(id); added != nullptr) {
      if (!(skip_special_tokens && added->special)) {
        tokens.push_back(added->content);
      }
      continue;
    }
    if (const std::string* token = model_->IdToToken(id); token != nullptr) {
      tokens.push_back(*token);
    }
  }
  if (decoder_ == nullptr) {
    return absl::StrJoin(tokens, " ");
  }
  decoder_->DecodeChain(&tokens);
  return absl::StrJoin(tokens, "");
}

// ---------------------------------------------------------------------------------------------------------
// Tokenizer

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view json_text) {
  ASSIGN_OR_RETURN(auto impl, Impl::FromJson(json_text));
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromModelDir(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "tokenizer.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(StrCatStd("tokenizer.json not found in ", dir.string()));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(StrCatStd("cannot open ", path.string()));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  auto impl = Impl::FromJson(buffer.str());
  if (!impl.ok()) {
    // Messages start with "tokenizer.json: "; make them name the full path.
    return absl::Status(impl.status().code(), StrCatStd(dir.string(), "/", impl.status().message()));
  }
  RETURN_IF_ERROR((*impl)->LoadSpecialTokens(dir));
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl).value()));
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text, bool add_special_tokens,
                                                       size_t max_tokens) const {
  return impl_->Encode(text, add_special_tokens, max_tokens);
}

std::optional<size_t> Tokenizer::max_input_bytes_per_token() const { return impl_->max_input_bytes_per_token(); }

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  return impl_->Decode(ids, skip_special_tokens);
}

int64_t Tokenizer::vocab_size() const { return impl_->vocab_size(); }
std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const { return impl_->TokenToId(token); }
std::string Tokenizer::IdToToken(int32_t id) const { return impl_->IdToToken(id); }
bool Tokenizer::IsSpecial(int32_t id) const { return impl_->IsSpecial(id); }
std::optional<int32_t> Tokenizer::bos_token_id() const { return impl_->bos_token_id(); }
const std::vector<int32_t>& Tokenizer::eos_token_ids() const { return impl_->eos_token_ids(); }

// ---------------------------------------------------------------------------------------------------------
// IncrementalDetokenizer
//
// The vLLM/TGI scheme: ids_[prefix_offset_, read_offset_) is a short window of already emitted ids decoded
// for context; the text of ids_[prefix_offset_, end) minus the text of that window is what is new. It is
// released only when it does not end in U+FFFD (an incomplete character), and then the window slides.

namespace {
// Prompt ids kept as decoder context (enough for any multi-token character or leading-space rule).
constexpr size_t kPromptContextIds = 5;
// How much further back the window may open to reach a character boundary (a character is at most 4 bytes)
// and a token that is not skipped.
constexpr size_t kMaxExtraContextIds = 16;

bool Utf8StartsWithReplacement(std::string_view text) { return text.starts_with(kUtf8ReplacementString); }
}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, std::span<const int32_t> prompt_ids,
                                               bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens), ids_(prompt_ids.begin(), prompt_ids.end()) {
  const std::span<const int32_t> all(ids_);
  const Tokenizer::Impl& impl = *tokenizer_.impl_;
  auto text = [&](size_t begin, size_t end) {
    return impl.Decode(all.subspan(begin, end - begin), skip_special_tokens_);
  };
  // Whether ids_[begin, end) gives the decoder at least one token, so that first-token rules (Metaspace,
  // Strip) apply to the same token in the window as in the generated text.
  auto has_token = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      if (impl.Renders(ids_[i], skip_special_tokens_)) {
        return true;
      }
    }
    return false;
  };
  const size_t n = ids_.size();
  prefix_offset_ = n > kPromptContextIds ? n - kPromptContextIds : 0;
  // Open the context window on a character boundary (a window starting with the tail bytes of a character
  // decodes to a leading U+FFFD) and on a real token.
  for (size_t extra = 0; extra < kMaxExtraContextIds && prefix_offset_ > 0 &&
                         (!has_token(prefix_offset_, n) || Utf8StartsWithReplacement(text(prefix_offset_, n)));
       ++extra) {
    --prefix_offset_;
  }
  // A prompt that ends inside a character: treat its incomplete tail as not yet emitted, so that the
  // character is released whole once generation completes it.
  read_offset_ = n;
  while (read_offset_ > prefix_offset_ && Utf8EndsWithReplacement(text(prefix_offset_, read_offset_))) {
    --read_offset_;
  }
  for (size_t extra = 0; extra < kMaxExtraContextIds && prefix_offset_ > 0 && !has_token(prefix_offset_, read_offset_);
       ++extra) {
    --prefix_offset_;
  }
}

std::string IncrementalDetokenizer::Push(int32_t id) {
  ids_.push_back(id);

  const std::span<const int32_t> all(ids_);
  const std::string prefix_text =
      tokenizer_.Decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), skip_special_tokens_);
  const std::string new_text = tokenizer_.Decode(all.subspan(prefix_offset_), skip_special_tokens_);
  if (new_text.size() <= prefix_text.size() || Utf8EndsWithReplacement(new_text)) {
    return std::string();
  }
  return Release(prefix_text, new_text);
}

std::string IncrementalDetokenizer::Release(const std::string& prefix_text, const std::string& new_text) {
  const std::span<const int32_t> all(ids_);
  std::string piece;
  if (new_text.compare(0, prefix_text.size(), prefix_text) == 0) {
    piece = new_text.substr(prefix_text.size());
  } else {
    // The text already released decodes differently now (a ByteFallback run that turned invalid: Decode gives
    // one U+FFFD per byte of the whole run). What is released cannot change; slicing new_text at the old
    // length would cut a U+FFFD in the middle. Release the new ids on their own instead: one U+FFFD per
    // invalid byte sequence among them, always valid UTF-8.
    piece = tokenizer_.Decode(all.subspan(read_offset_), skip_special_tokens_);
  }
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  return piece;
}

std::string IncrementalDetokenizer::Flush() {
  if (read_offset_ >= ids_.size()) {
    return std::string();
  }
  const std::span<const int32_t> all(ids_);
  const std::string prefix_text =
      tokenizer_.Decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), skip_special_tokens_);
  const std::string new_text = tokenizer_.Decode(all.subspan(prefix_offset_), skip_special_tokens_);
  return Release(prefix_text, new_text);
}

}  // namespace adak::tokenizer
