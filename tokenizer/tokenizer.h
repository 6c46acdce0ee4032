// Hugging Face `tokenizer.json` BPE tokenizers, for every MoE model we serve.
//
// Supported model: BPE (with `byte_fallback`, `ignore_merges`, `unk_token`, `continuing_subword_prefix`/
// `end_of_word_suffix` empty). Two pre-tokenizer families:
//   - byte-level (GPT-2 / Qwen / OLMoE / DeepSeek): a `ByteLevel` pre-tokenizer, possibly inside a `Sequence`
//     with `Split` regex steps (PCRE2 with Unicode properties), `ByteLevel` decoder;
//   - SentencePiece style (Mixtral / Llama): `Metaspace` pre-tokenizer or a `Prepend("▁")` + `Replace(" ", "▁")`
//     normalizer, `byte_fallback` (<0xNN> tokens), decoders `Replace`/`ByteFallback`/`Fuse`/`Strip`/`Metaspace`.
// Added tokens are matched first (longest match, `special`, `lstrip`/`rstrip`/`single_word` honoured; `normalized`
// tokens are matched on normalized text), exactly as HF's added-token splitting does. The post_processor
// (`TemplateProcessing` single template, `ByteLevel` no-op, `Sequence`) is applied when
// `add_special_tokens` is true. Immutable after construction; safe to use from many threads.
//
// Clarifications (see the tokenizer/*.h, pre_tokenizer.h and bpe_model.h headers for each part):
// normalizers Sequence/Prepend/Replace/Strip/NFC/NFD/NFKC/NFKD are supported (the normal forms through
// utf8proc); pre-tokenizers ByteLevel/Split/Metaspace/Digits/Whitespace/WhitespaceSplit/
// Sequence; BPE `dropout` is ignored. Anything else is refused at load time with InvalidArgument.
#ifndef ADAK_TOKENIZER_TOKENIZER_H_
#define ADAK_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace adak::tokenizer {

class Tokenizer {
 public:
  // Parses the text of a tokenizer.json. Errors: InvalidArgument naming the unsupported or malformed part
  // (e.g. "tokenizer.json: model.type 'WordPiece' is not supported (supported: BPE)").
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view json_text);

  // Loads `dir/tokenizer.json`, then takes BOS/EOS from `tokenizer_config.json` (bos_token, eos_token,
  // add_bos_token, add_eos_token), `generation_config.json` and `config.json` (bos_token_id, eos_token_id: int
  // or list), in that order of precedence for the ids. Missing optional files are fine; a missing
  // tokenizer.json is NotFound. BOS is the first one found in that order. EOS ids (all of which end
  // generation) are tokenizer_config's eos_token followed by generation_config's ids, without duplicates;
  // config.json's only when neither file gives one. Errors: InvalidArgument naming the file for malformed
  // JSON, a wrong field type, or a bos_token/eos_token that is not in the vocabulary.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Tokenizer>> FromModelDir(const std::filesystem::path& dir);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Text -> ids. With add_special_tokens the post_processor runs (e.g. a prepended BOS), and, when the
  // tokenizer has no post_processor, `add_bos_token` from tokenizer_config.json is honoured. With
  // tokenizer_class LlamaTokenizerFast (or LlamaTokenizer) in tokenizer_config.json, add_bos_token (default
  // true) and add_eos_token (default false) decide instead of the post_processor, as in transformers.
  // Encoding stops as soon as more than `max_tokens` ids were produced (before the post_processor), so an
  // oversized text costs only the pre-tokenization and the first max_tokens tokens.
  // Errors: InvalidArgument when the text is not valid UTF-8; OutOfRange ("the text encodes to more than N
  // tokens") past max_tokens.
  [[nodiscard]] absl::StatusOr<std::vector<int32_t>> Encode(
      std::string_view text, bool add_special_tokens = true,
      size_t max_tokens = std::numeric_limits<size_t>::max()) const;

  // An upper bound on the input bytes one token can stand for: a text of more than N x this many bytes
  // encodes to more than N tokens, so it can be refused by its size before encoding. nullopt when no bound
  // holds: the normalizer strips (Strip, a shrinking Replace), the pre-tokenizer drops text (Whitespace,
  // a removing Split), unknown runs fuse into one <unk> (fuse_unk), or an added token strips whitespace.
  // (The longest token's bytes, at least 4, times 3 under NFC/NFKC.)
  [[nodiscard]] std::optional<size_t> max_input_bytes_per_token() const;

  // Ids -> text through the decoder chain. Ids outside the vocabulary are skipped. Invalid UTF-8 produced by
  // a byte-level decode is replaced with U+FFFD, as HF does.
  [[nodiscard]] std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // Number of ids (the largest id + 1, added tokens included).
  [[nodiscard]] int64_t vocab_size() const;
  [[nodiscard]] std::optional<int32_t> TokenToId(std::string_view token) const;
  // The vocabulary string of `id` ("" when out of range).
  [[nodiscard]] std::string IdToToken(int32_t id) const;
  [[nodiscard]] bool IsSpecial(int32_t id) const;

  [[nodiscard]] std::optional<int32_t> bos_token_id() const;
  [[nodiscard]] const std::vector<int32_t>& eos_token_ids() const;

  class Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend class IncrementalDetokenizer;
};

// Turns a stream of ids into text pieces without ever emitting half a UTF-8 character: a piece is released
// only once it decodes to complete characters, and decoder context (e.g. the SentencePiece leading space
// strip) is applied as if the whole sequence were decoded at once. Concatenating every Push() and the final
// Flush() equals Decode(all ids). (One exception, for invalid output only: with a ByteFallback decoder a run
// of <0xNN> tokens that becomes invalid UTF-8 only after a complete character of it was released decodes, in
// Decode, to one U+FFFD per byte of the whole run; the stream keeps the character it already released and
// releases the rest on its own, one U+FFFD per invalid byte sequence. Every piece is valid UTF-8.)
// One instance per sequence; not thread-safe.
class IncrementalDetokenizer {
 public:
  // `prompt_ids` give decoder context (not emitted; an incomplete character at their end is completed and
  // emitted by the generated ids). REQUIRES: `tokenizer` outlives this object.
  explicit IncrementalDetokenizer(const Tokenizer& tokenizer, std::span<const int32_t> prompt_ids = {},
                                  bool skip_special_tokens = false);
  // New text made complete by `id` (possibly empty).
  [[nodiscard]] std::string Push(int32_t id);
  // Whatever is still held back (incomplete UTF-8 becomes U+FFFD).
  [[nodiscard]] std::string Flush();

 private:
  // The text of ids_[read_offset_, end) given the decodes of [prefix_offset_, read_offset_) and
  // [prefix_offset_, end); advances the offsets.
  std::string Release(const std::string& prefix_text, const std::string& new_text);

  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  std::vector<int32_t> ids_;
  size_t prefix_offset_ = 0;  // ids_[prefix_offset_, read_offset_) decode to already-emitted text context
  size_t read_offset_ = 0;    // ids_ from here on have not been emitted
};

}  // namespace adak::tokenizer

#endif  // ADAK_TOKENIZER_TOKENIZER_H_
