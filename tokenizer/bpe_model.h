// The BPE model of a tokenizer.json ("model": {"type": "BPE", ...}): vocabulary, ranked merges, and the
// encoding of one pre-tokenized word into ids, exactly as the Rust `tokenizers` crate does it:
//   - the word is split into characters; a character missing from the vocabulary becomes its <0xNN> byte
//     tokens (byte_fallback), else `unk_token` (consecutive unknowns fused with fuse_unk), else is dropped;
//   - then the adjacent pair with the lowest merge rank (position in "merges"; leftmost on ties) is merged,
//     repeatedly, until no adjacent pair has a merge;
//   - with ignore_merges, a word that is itself in the vocabulary is emitted directly.
// Merges may be written "a b" or ["a", "b"]. `dropout` is ignored (inference never drops merges);
// continuing_subword_prefix / end_of_word_suffix must be empty.
//
// Thread-safety: immutable after FromJson except for an internal, mutex-sharded word cache; Tokenize may be
// called from many threads at once.
#ifndef ADAK_TOKENIZER_BPE_MODEL_H_
#define ADAK_TOKENIZER_BPE_MODEL_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "base/strings.h"
#include "tokenizer/json.h"

namespace adak::tokenizer {

class BpeModel {
 public:
  // Builds the model from the "model" object of tokenizer.json. Errors: InvalidArgument naming the problem,
  // e.g. "tokenizer.json: model.vocab: missing", "tokenizer.json: model.merges: missing (...)", "tokenizer.json:
  // model.merges[3]: token 'xy' is not in model.vocab", an unsupported model type, or an unk_token that is not in the
  // vocabulary.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const Json& model);

  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // Appends the ids of one pre-tokenized word to `ids`. REQUIRES: `word` is valid UTF-8.
  void Tokenize(std::string_view word, std::vector<int32_t>* ids) const;

  [[nodiscard]] std::optional<int32_t> TokenToId(std::string_view token) const;
  // The vocabulary string of `id`, or nullptr when no token has that id.
  [[nodiscard]] const std::string* IdToToken(int32_t id) const;
  // The largest id in the vocabulary (-1 when empty).
  [[nodiscard]] int32_t max_id() const { return static_cast<int32_t>(id_to_token_.size()) - 1; }

 private:
  BpeModel() = default;

  struct MergeEntry {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  // The merged ids of `word`, before caching.
  void MergeWord(std::string_view word, std::vector<int32_t>* ids) const;

  StringMap<int32_t> vocab_;
  std::vector<std::string> id_to_token_;  // index = id
  std::vector<bool> has_id_;              // whether id_to_token_[id] is a real token
  absl::flat_hash_map<uint64_t, MergeEntry> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::array<int32_t, 256> byte_ids_{};  // <0xNN> token ids, -1 when absent

  // Word -> ids cache, sharded to keep lock contention low. Insertion stops when a shard is full.
  static constexpr size_t kCacheShards = 16;
  static constexpr size_t kCacheEntriesPerShard = 4096;
  static constexpr size_t kMaxCachedWordBytes = 256;
  struct CacheShard {
    mutable absl::Mutex mu;
    StringMap<std::vector<int32_t>> entries ABSL_GUARDED_BY(mu);
  };
  mutable std::array<CacheShard, kCacheShards> cache_;
};

}  // namespace adak::tokenizer

#endif  // ADAK_TOKENIZER_BPE_MODEL_H_
