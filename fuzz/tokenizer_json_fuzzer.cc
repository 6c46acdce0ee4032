// libFuzzer target: tokenizer.json of a downloaded checkpoint (Tokenizer::FromJson: the model, normalizer,
// pre-tokenizer with its regexes, decoder, post-processor, added tokens), then what serving does with an
// accepted tokenizer: encode a fixed mixed-script text (bounded in tokens, as admission bounds it), decode
// the result in one piece and token by token. Any input must come back as a value or an error Status.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

constexpr std::string_view kText =
    "Once upon a time, Ünïcödé e\xcc\x81 \xe6\x97\xa5\xe6\x9c\xac 123  tabs\tand\nnewlines!";
constexpr size_t kMaxTokens = 256;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<std::unique_ptr<adak::tokenizer::Tokenizer>> tokenizer =
      adak::tokenizer::Tokenizer::FromJson(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!tokenizer.ok()) return 0;
  absl::StatusOr<std::vector<int32_t>> ids = (*tokenizer)->Encode(kText, /*add_special_tokens=*/true, kMaxTokens);
  if (!ids.ok()) return 0;
  (void)(*tokenizer)->Decode(*ids);
  adak::tokenizer::IncrementalDetokenizer detokenizer(**tokenizer);
  for (int32_t id : *ids) (void)detokenizer.Push(id);
  (void)detokenizer.Flush();
  return 0;
}
