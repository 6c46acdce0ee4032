// tokenizer.json post-processors: add the special tokens around an encoded single sequence when the caller
// asks for special tokens (e.g. a prepended BOS).
//
// Supported types: TemplateProcessing (the `single` template: SpecialToken and Sequence items, or the string
// form "<s> $A", with the `special_tokens` id map), BertProcessing / RobertaProcessing (cls A sep),
// ByteLevel (offsets only: a no-op for ids), Sequence {processors}. Immutable after construction; safe to
// use from many threads.
#ifndef ADAK_TOKENIZER_POST_PROCESSOR_H_
#define ADAK_TOKENIZER_POST_PROCESSOR_H_

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tokenizer/json.h"

namespace adak::tokenizer {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Rewrites the ids of one encoded sequence to include its special tokens.
  virtual void ProcessSingle(std::vector<int32_t>* ids) const = 0;
};

// Builds the post-processor described by `json` (not null). `where` is its JSON path for error messages.
// Errors: InvalidArgument naming the unsupported type or malformed field (e.g. a template token missing
// from `special_tokens`).
[[nodiscard]] absl::StatusOr<std::unique_ptr<PostProcessor>> PostProcessorFromJson(const Json& json,
                                                                                   std::string_view where);

}  // namespace adak::tokenizer

#endif  // ADAK_TOKENIZER_POST_PROCESSOR_H_
