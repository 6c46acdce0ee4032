#include "tokenizer/post_processor.h"

#include <string>
#include <utility>

#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace adak::tokenizer {
namespace {

class NoOpPostProcessor final : public PostProcessor {
 public:
  void ProcessSingle(std::vector<int32_t>* /*ids*/) const override {}
};

class SequencePostProcessor final : public PostProcessor {
 public:
  explicit SequencePostProcessor(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  void ProcessSingle(std::vector<int32_t>* ids) const override {
    for (const auto& step : steps_) {
      step->ProcessSingle(ids);
    }
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

// A single template flattened to ids: kSequence marks where the input goes.
class TemplatePostProcessor final : public PostProcessor {
 public:
  static constexpr int32_t kSequence = -1;
  explicit TemplatePostProcessor(std::vector<int32_t> pieces) : pieces_(std::move(pieces)) {}
  void ProcessSingle(std::vector<int32_t>* ids) const override {
    std::vector<int32_t> out;
    out.reserve(ids->size() + pieces_.size());
    for (const int32_t piece : pieces_) {
      if (piece == kSequence) {
        out.insert(out.end(), ids->begin(), ids->end());
      } else {
        out.push_back(piece);
      }
    }
    *ids = std::move(out);
  }

 private:
  std::vector<int32_t> pieces_;
};

// The ids of special token `name` from TemplateProcessing's `special_tokens`.
absl::StatusOr<std::vector<int32_t>> SpecialTokenIds(const Json& json, const std::string& name,
                                                     std::string_view where) {
  const Json* specials = JsonMember(json, "special_tokens");
  const Json* entry = specials == nullptr ? nullptr : JsonMember(*specials, name);
  if (entry == nullptr) {
    return TokenizerJsonError(JsonPath(where, "single"),
                              StrCatStd("special token '", name, "' is missing from special_tokens"));
  }
  const std::string entry_where = StrCatStd(JsonPath(where, "special_tokens"), "['", name, "'].ids");
  const Json* ids = JsonMember(*entry, "ids");
  if (ids == nullptr || !ids->is_array()) {
    return TokenizerJsonError(entry_where, "expected an array of ids");
  }
  std::vector<int32_t> result;
  for (const Json& id : *ids) {
    if (!id.is_number_unsigned() || id.get<uint64_t>() > INT32_MAX) {
      return TokenizerJsonError(entry_where, "expected an array of ids");
    }
    result.push_back(static_cast<int32_t>(id.get<uint64_t>()));
  }
  return result;
}

absl::StatusOr<std::unique_ptr<PostProcessor>> TemplateFromJson(const Json& json, std::string_view where) {
  const Json* single = JsonMember(json, "single");
  if (single == nullptr) {
    return TokenizerJsonError(JsonPath(where, "single"), "missing");
  }
  // Normalise the string form ("<s> $A") to a list of item strings.
  std::vector<Json> items;
  if (single->is_string()) {
    for (const auto part : absl::StrSplit(single->get<std::string>(), ' ', absl::SkipEmpty())) {
      items.emplace_back(std::string(part));
    }
  } else if (single->is_array()) {
    items.assign(single->begin(), single->end());
  } else {
    return TokenizerJsonError(JsonPath(where, "single"), "expected an array or a string");
  }
  std::vector<int32_t> pieces;
  for (size_t i = 0; i < items.size(); ++i) {
    const Json& item = items[i];
    const std::string item_where = StrCatStd(JsonPath(where, "single"), "[", i, "]");
    std::string special_name;
    if (item.is_string()) {
      std::string text = item.get<std::string>();
      if (const size_t colon = text.rfind(':'); colon != std::string::npos && colon > 0) {
        text.resize(colon);
      }
      if (!text.empty() && text[0] == '$') {
        pieces.push_back(TemplatePostProcessor::kSequence);
        continue;
      }
      special_name = text;
    } else if (JsonMember(item, "Sequence") != nullptr) {
      pieces.push_back(TemplatePostProcessor::kSequence);
      continue;
    } else if (const Json* special = JsonMember(item, "SpecialToken"); special != nullptr) {
      ASSIGN_OR_RETURN(special_name, JsonString(*special, "id", StrCatStd(item_where, ".SpecialToken")));
    } else {
      return TokenizerJsonError(item_where, "expected a SpecialToken or Sequence item");
    }
    ASSIGN_OR_RETURN(const std::vector<int32_t> ids, SpecialTokenIds(json, special_name, where));
    pieces.insert(pieces.end(), ids.begin(), ids.end());
  }
  return std::make_unique<TemplatePostProcessor>(std::move(pieces));
}

// Bert/Roberta: "cls": ["<s>", 0], "sep": ["</s>", 2].
absl::StatusOr<int32_t> PairId(const Json& json, std::string_view key, std::string_view where) {
  const Json* pair = JsonMember(json, key);
  if (pair == nullptr || !pair->is_array() || pair->size() != 2 || !(*pair)[1].is_number_unsigned() ||
      (*pair)[1].get<uint64_t>() > INT32_MAX) {
    return TokenizerJsonError(JsonPath(where, key), "expected [token, id]");
  }
  return static_cast<int32_t>((*pair)[1].get<uint64_t>());
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostProcessor>> PostProcessorFromJson(const Json& json, std::string_view where) {
  if (!json.is_object()) {
    return TokenizerJsonError(where, "expected an object");
  }
  ASSIGN_OR_RETURN(const std::string type, JsonString(json, "type", where));
  if (type == "TemplateProcessing") {
    return TemplateFromJson(json, where);
  }
  if (type == "ByteLevel") {
    return std::make_unique<NoOpPostProcessor>();
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    ASSIGN_OR_RETURN(const int32_t cls, PairId(json, "cls", where));
    ASSIGN_OR_RETURN(const int32_t sep, PairId(json, "sep", where));
    return std::make_unique<TemplatePostProcessor>(std::vector<int32_t>{cls, TemplatePostProcessor::kSequence, sep});
  }
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(auto steps, ParseJsonSequence<PostProcessor>(json, "processors", where,
                                                                  [](const Json& step, std::string_view at) {
                                                                    return PostProcessorFromJson(step, at);
                                                                  }));
    return std::make_unique<SequencePostProcessor>(std::move(steps));
  }
  return TokenizerJsonError(JsonPath(where, "type"),
                            StrCatStd("post_processor type '", type,
                                      "' is not supported (supported: TemplateProcessing, ByteLevel, "
                                      "BertProcessing, RobertaProcessing, Sequence)"));
}

}  // namespace adak::tokenizer
