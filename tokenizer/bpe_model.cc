#include "tokenizer/bpe_model.h"

#include <queue>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "tokenizer/utf8.h"

namespace adak::tokenizer {
namespace {

// Largest id accepted in a vocabulary; ids index dense tables.
constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

// A symbol of the word being merged; a doubly linked list over a vector, as in HF's `Word`.
struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool alive;
};

// A candidate merge of symbols[pos] with its successor. The queue pops the lowest rank, then the lowest pos.
struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
};
struct CandidateAfter {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  }
};

absl::StatusOr<std::pair<std::string, std::string>> ParseMerge(const Json& merge, std::string_view where) {
  if (merge.is_string()) {
    const auto& text = merge.get_ref<const std::string&>();
    const size_t space = text.find(' ');
    if (space == std::string::npos) {
      return TokenizerJsonError(where, StrCatStd("merge '", text, "' is not two tokens separated by a space"));
    }
    std::string right = text.substr(space + 1);
    if (right.find(' ') != std::string::npos) {
      return TokenizerJsonError(where, StrCatStd("merge '", text, "' has more than two tokens"));
    }
    return std::make_pair(text.substr(0, space), std::move(right));
  }
  if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
    return std::make_pair(merge[0].get<std::string>(), merge[1].get<std::string>());
  }
  return TokenizerJsonError(where, "expected \"a b\" or [\"a\", \"b\"]");
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const Json& model) {
  if (!model.is_object()) {
    return TokenizerJsonError("model", "expected an object");
  }
  if (const Json* type = JsonMember(model, "type"); type != nullptr) {
    if (!type->is_string()) {
      return TokenizerJsonError("model.type", "expected a string");
    }
    if (type->get_ref<const std::string&>() != "BPE") {
      return TokenizerJsonError(
          "", StrCatStd("model.type '", type->get<std::string>(), "' is not supported (supported: BPE)"));
    }
  }
  auto bpe = std::unique_ptr<BpeModel>(new BpeModel());

  const Json* vocab = JsonMember(model, "vocab");
  if (vocab == nullptr) {
    return TokenizerJsonError("model.vocab", "missing");
  }
  if (!vocab->is_object()) {
    return TokenizerJsonError("model.vocab", "expected an object mapping tokens to ids");
  }
  bpe->vocab_.reserve(vocab->size());
  int64_t max_id = -1;
  for (const auto& [token, id_json] : vocab->items()) {
    if (!id_json.is_number_unsigned() || id_json.get<uint64_t>() > static_cast<uint64_t>(kMaxTokenId)) {
      return TokenizerJsonError(StrCatStd("model.vocab['", token, "']"),
                                StrCatStd("expected an integer id in [0, ", kMaxTokenId, "]"));
    }
    if (!Utf8IsValid(token)) {
      return TokenizerJsonError("model.vocab", "a token is not valid UTF-8");
    }
    const auto id = static_cast<int32_t>(id_json.get<uint64_t>());
    bpe->vocab_.emplace(token, id);
    max_id = std::max<int64_t>(max_id, id);
  }
  bpe->id_to_token_.resize(static_cast<size_t>(max_id + 1));
  bpe->has_id_.resize(static_cast<size_t>(max_id + 1), false);
  for (const auto& [token, id] : bpe->vocab_) {
    if (bpe->has_id_[id]) {
      continue;
    }
    bpe->id_to_token_[id] = token;
    bpe->has_id_[id] = true;
  }

  const Json* merges = JsonMember(model, "merges");
  if (merges == nullptr) {
    // Hugging Face refuses it too (serde: missing field `merges`); without merges every word would be split
    // into characters.
    return TokenizerJsonError("model.merges", "missing (a BPE model needs its merges; [] for none)");
  }
  if (!merges->is_array()) {
    return TokenizerJsonError("model.merges", "expected an array");
  }
  if (merges != nullptr) {
    bpe->merges_.reserve(merges->size());
    for (size_t rank = 0; rank < merges->size(); ++rank) {
      const std::string where = StrCatStd("model.merges[", rank, "]");
      ASSIGN_OR_RETURN(const auto pair, ParseMerge((*merges)[rank], where));
      const auto left = bpe->vocab_.find(pair.first);
      if (left == bpe->vocab_.end()) {
        return TokenizerJsonError(where, StrCatStd("token '", pair.first, "' is not in model.vocab"));
      }
      const auto right = bpe->vocab_.find(pair.second);
      if (right == bpe->vocab_.end()) {
        return TokenizerJsonError(where, StrCatStd("token '", pair.second, "' is not in model.vocab"));
      }
      const auto merged = bpe->vocab_.find(StrCatStd(pair.first, pair.second));
      if (merged == bpe->vocab_.end()) {
        return TokenizerJsonError(where,
                                  StrCatStd("merged token '", pair.first, pair.second, "' is not in model.vocab"));
      }
      // A repeated pair keeps its last rank, as HF's map construction does.
      bpe->merges_[PairKey(left->second, right->second)] = {static_cast<int32_t>(rank), merged->second};
    }
  }

  ASSIGN_OR_RETURN(const std::optional<std::string> unk, JsonOptionalString(model, "unk_token", "model"));
  if (unk.has_value()) {
    const auto it = bpe->vocab_.find(*unk);
    if (it == bpe->vocab_.end()) {
      return TokenizerJsonError("model.unk_token", StrCatStd("'", *unk, "' is not in model.vocab"));
    }
    bpe->unk_id_ = it->second;
  }
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    ASSIGN_OR_RETURN(const std::optional<std::string> value, JsonOptionalString(model, affix, "model"));
    if (value.has_value() && !value->empty()) {
      return TokenizerJsonError(JsonPath("model", affix), "a non-empty value is not supported");
    }
  }
  ASSIGN_OR_RETURN(bpe->fuse_unk_, JsonBool(model, "fuse_unk", false, "model"));
  ASSIGN_OR_RETURN(bpe->byte_fallback_, JsonBool(model, "byte_fallback", false, "model"));
  ASSIGN_OR_RETURN(bpe->ignore_merges_, JsonBool(model, "ignore_merges", false, "model"));
  for (int b = 0; b < 256; ++b) {
    const auto it = bpe->vocab_.find(absl::StrFormat("<0x%02X>", b));
    bpe->byte_ids_[b] = it == bpe->vocab_.end() ? -1 : it->second;
  }
  return bpe;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) {
    return std::nullopt;
  }
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) {
    return nullptr;
  }
  return &id_to_token_[id];
}

void BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) {
    return;
  }
  if (ignore_merges_) {
    if (const auto it = vocab_.find(word); it != vocab_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() < kMaxCachedWordBytes;
  CacheShard& shard = cache_[StringViewHash{}(word) % kCacheShards];
  if (cacheable) {
    absl::ReaderMutexLock lock(&shard.mu);
    if (const auto it = shard.entries.find(word); it != shard.entries.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = ids->size();
  MergeWord(word, ids);
  if (cacheable) {
    absl::MutexLock lock(&shard.mu);
    if (shard.entries.size() < kCacheEntriesPerShard) {
      shard.entries.try_emplace(word, ids->begin() + static_cast<std::ptrdiff_t>(first), ids->end());
    }
  }
}

void BpeModel::MergeWord(std::string_view word, std::vector<int32_t>* ids) const {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&symbols](int32_t id) {
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, true});
  };
  // A pending unknown token (HF adds it lazily so that fuse_unk can extend it).
  // -1: none. (A plain sentinel rather than std::optional: GCC 12 -O3 reports a false maybe-uninitialized.)
  constexpr int32_t kNoUnk = -1;
  int32_t pending_unk = kNoUnk;
  size_t pos = 0;
  while (pos < word.size()) {
    const size_t length = Utf8SequenceLength(static_cast<unsigned char>(word[pos]));
    const std::string_view character = word.substr(pos, length);
    pos += length;
    if (const auto it = vocab_.find(character); it != vocab_.end()) {
      if (pending_unk != kNoUnk) {
        add(pending_unk);
      }
      pending_unk = kNoUnk;
      add(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all_bytes = true;
      for (const char c : character) {
        all_bytes = all_bytes && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      }
      if (all_bytes) {
        // As HF, a pending unknown is not flushed here.
        for (const char c : character) {
          add(byte_ids_[static_cast<unsigned char>(c)]);
        }
        continue;
      }
    }
    if (unk_id_.has_value()) {
      if (pending_unk != kNoUnk && !fuse_unk_) {
        add(pending_unk);
      }
      pending_unk = *unk_id_;
    }
  }
  if (pending_unk != kNoUnk) {
    add(pending_unk);
  }
  if (symbols.empty()) {
    return;
  }
  symbols.back().next = -1;

  std::priority_queue<Candidate, std::vector<Candidate>, CandidateAfter> queue;
  auto lookup = [this](int32_t left, int32_t right) -> const MergeEntry* {
    const auto it = merges_.find(PairKey(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const MergeEntry* m = lookup(symbols[i].id, symbols[i + 1].id); m != nullptr) {
      queue.push({m->rank, static_cast<int32_t>(i), m->new_id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& current = symbols[top.pos];
    if (!current.alive || current.next < 0) {
      continue;
    }
    Symbol& right = symbols[current.next];
    // Skip stale candidates: the pair at this position changed since it was queued.
    const MergeEntry* m = lookup(current.id, right.id);
    if (m == nullptr || m->new_id != top.new_id) {
      continue;
    }
    current.id = top.new_id;
    right.alive = false;
    current.next = right.next;
    if (current.next >= 0) {
      symbols[current.next].prev = top.pos;
    }
    if (current.prev >= 0) {
      if (const MergeEntry* left = lookup(symbols[current.prev].id, current.id); left != nullptr) {
        queue.push({left->rank, current.prev, left->new_id});
      }
    }
    if (current.next >= 0) {
      if (const MergeEntry* next = lookup(current.id, symbols[current.next].id); next != nullptr) {
        queue.push({next->rank, top.pos, next->new_id});
      }
    }
  }
  for (const Symbol& s : symbols) {
    if (s.alive) {
      ids->push_back(s.id);
    }
  }
}

}  // namespace adak::tokenizer
