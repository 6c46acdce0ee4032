#include "tokenizer/added_tokens.h"

#include <algorithm>
#include <cctype>
#include <memory>
#include <utility>

#include "base/status_macros.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace adak::tokenizer {
namespace {

// Rust regex's Unicode `\w` (letters, marks, decimal digits, connector punctuation), for single_word.
bool IsWordChar(std::string_view character) {
  const auto first = static_cast<unsigned char>(character[0]);
  if (first < 0x80) {
    return std::isalnum(first) || first == '_';
  }
  static const TokenizerRegex* const word = [] {
    auto compiled = TokenizerRegex::Compile(R"(^[\p{L}\p{M}\p{Nd}\p{Pc}])");
    return compiled.ok() ? compiled.value().release() : nullptr;
  }();
  if (word == nullptr) {
    return false;
  }
  const auto matches = word->FindAll(character);
  return matches.ok() && !matches->empty();
}

// The last character of `text` (empty when `text` is empty).
std::string_view LastChar(std::string_view text) {
  if (text.empty()) {
    return text;
  }
  size_t start = text.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) {
    --start;
  }
  return text.substr(start);
}

std::string_view FirstChar(std::string_view text) {
  if (text.empty()) {
    return text;
  }
  return text.substr(0, Utf8SequenceLength(static_cast<unsigned char>(text[0])));
}

bool IsWhitespaceChar(std::string_view character) {
  size_t length = 0;
  return !character.empty() && IsUnicodeWhitespace(Utf8DecodeAt(character, 0, &length));
}

}  // namespace

absl::StatusOr<AddedVocabulary> AddedVocabulary::Build(std::vector<AddedToken> tokens, const Normalizer* normalizer) {
  AddedVocabulary vocab;
  vocab.raw_.nodes.emplace_back();
  vocab.normalized_.nodes.emplace_back();
  for (AddedToken& token : tokens) {
    if (token.content.empty() || vocab.by_content_.contains(token.content)) {
      continue;
    }
    const size_t index = vocab.tokens_.size();
    vocab.by_content_.emplace(token.content, index);
    vocab.by_id_.try_emplace(token.id, index);
    vocab.max_id_ = std::max(vocab.max_id_, token.id);
    if (token.normalized) {
      std::string pattern = token.content;
      if (normalizer != nullptr) {
        ASSIGN_OR_RETURN(pattern, normalizer->Normalize(token.content));
      }
      AddPattern(&vocab.normalized_, pattern, static_cast<int32_t>(index));
    } else {
      AddPattern(&vocab.raw_, token.content, static_cast<int32_t>(index));
    }
    vocab.tokens_.push_back(std::move(token));
  }
  return vocab;
}

void AddedVocabulary::AddPattern(Matcher* matcher, const std::string& pattern, int32_t token) {
  if (pattern.empty()) {
    return;
  }
  matcher->patterns.push_back(pattern);
  matcher->first_byte[static_cast<unsigned char>(pattern[0])] = true;
  int32_t node = 0;
  for (const char c : pattern) {
    const auto byte = static_cast<unsigned char>(c);
    const auto it = matcher->nodes[node].children.find(byte);
    if (it != matcher->nodes[node].children.end()) {
      node = it->second;
    } else {
      const auto child = static_cast<int32_t>(matcher->nodes.size());
      matcher->nodes[node].children.emplace(byte, child);
      matcher->nodes.emplace_back();
      node = child;
    }
  }
  if (matcher->nodes[node].token < 0) {
    matcher->nodes[node].token = token;
  }
}

std::pair<size_t, int32_t> AddedVocabulary::LongestAt(const Matcher& matcher, std::string_view text, size_t pos) {
  std::pair<size_t, int32_t> best{pos, -1};
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto& children = matcher.nodes[node].children;
    const auto it = children.find(static_cast<unsigned char>(text[i]));
    if (it == children.end()) {
      break;
    }
    node = it->second;
    if (matcher.nodes[node].token >= 0) {
      best = {i + 1, matcher.nodes[node].token};
    }
  }
  return best;
}

std::vector<AddedVocabulary::Segment> AddedVocabulary::Split(std::string_view text, const Matcher& matcher) const {
  std::vector<Segment> segments;
  size_t start_offset = 0;  // end of the last emitted segment
  if (!matcher.patterns.empty()) {
    size_t pos = 0;
    while (pos < text.size()) {
      if (!matcher.first_byte[static_cast<unsigned char>(text[pos])]) {
        ++pos;
        continue;
      }
      const auto [match_end, index] = LongestAt(matcher, text, pos);
      if (index < 0) {
        ++pos;
        continue;
      }
      size_t start = pos;
      size_t stop = match_end;
      pos = match_end;  // the scan resumes after the raw match, as HF's Aho-Corasick iterator does
      if (start < start_offset) {
        continue;  // inside whitespace an rstrip token already took
      }
      const AddedToken& token = tokens_[index];
      if (token.single_word) {
        const bool space_before = start == 0 || !IsWordChar(LastChar(text.substr(0, start)));
        const bool space_after = stop == text.size() || !IsWordChar(FirstChar(text.substr(stop)));
        if (!space_before || !space_after) {
          continue;
        }
      }
      if (token.lstrip) {
        size_t new_start = start;
        while (new_start > 0) {
          const std::string_view last = LastChar(text.substr(0, new_start));
          if (!IsWhitespaceChar(last)) {
            break;
          }
          new_start -= last.size();
        }
        start = std::max(new_start, start_offset);
      }
      if (token.rstrip) {
        while (stop < text.size()) {
          const std::string_view next = FirstChar(text.substr(stop));
          if (!IsWhitespaceChar(next)) {
            break;
          }
          stop += next.size();
        }
      }
      if (start_offset < start) {
        segments.push_back({start_offset, start, -1});
      }
      segments.push_back({start, stop, token.id});
      start_offset = stop;
    }
  }
  if (start_offset < text.size()) {
    segments.push_back({start_offset, text.size(), -1});
  }
  return segments;
}

const AddedToken* AddedVocabulary::FindById(int32_t id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocabulary::FindByContent(std::string_view content) const {
  const auto it = by_content_.find(content);
  if (it == by_content_.end()) {
    return std::nullopt;
  }
  return tokens_[it->second].id;
}

}  // namespace adak::tokenizer
