#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>

#include "absl/status/status.h"
#include "base/strings.h"
#include "tokenizer/utf8.h"

namespace adak::tokenizer {
namespace {

// Oniguruma accepts `\uXXXX`; PCRE2 spells it `\x{XXXX}`. Other escapes are copied unchanged.
std::string TranslatePattern(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size());
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '\\' || i + 1 >= pattern.size()) {
      out.push_back(pattern[i]);
      continue;
    }
    if (pattern[i + 1] == 'u' && i + 6 <= pattern.size()) {
      bool hex = true;
      for (size_t k = i + 2; k < i + 6; ++k) {
        hex = hex && std::isxdigit(static_cast<unsigned char>(pattern[k]));
      }
      if (hex) {
        out += StrCatStd("\\x{", pattern.substr(i + 2, 4), "}");
        i += 5;
        continue;
      }
    }
    out.push_back(pattern[i]);
    out.push_back(pattern[i + 1]);
    ++i;
  }
  return out;
}

std::string Pcre2ErrorMessage(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof(buffer)) < 0) {
    return StrCatStd("PCRE2 error ", code);
  }
  return std::string(reinterpret_cast<const char*>(buffer));
}

// Per-thread matching state: match data large enough for the overall match (captures beyond it are not
// needed; PCRE2 then returns 0 but still fills the first pair) and a JIT stack larger than the 32 KiB default,
// so long runs of whitespace cannot exhaust it.
class ThreadMatchState {
 public:
  ThreadMatchState()
      : data_(pcre2_match_data_create(16, nullptr)),
        context_(pcre2_match_context_create(nullptr)),
        jit_stack_(pcre2_jit_stack_create(size_t{32} * 1024, size_t{8} * 1024 * 1024, nullptr)) {
    if (context_ != nullptr && jit_stack_ != nullptr) {
      pcre2_jit_stack_assign(context_, nullptr, jit_stack_);
    }
  }
  ~ThreadMatchState() {
    pcre2_jit_stack_free(jit_stack_);
    pcre2_match_context_free(context_);
    pcre2_match_data_free(data_);
  }
  ThreadMatchState(const ThreadMatchState&) = delete;
  ThreadMatchState& operator=(const ThreadMatchState&) = delete;

  pcre2_match_data* data() const { return data_; }
  pcre2_match_context* context() const { return context_; }

 private:
  pcre2_match_data* data_;
  pcre2_match_context* context_;
  pcre2_jit_stack* jit_stack_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TokenizerRegex>> TokenizerRegex::Compile(std::string_view pattern) {
  const std::string translated = TranslatePattern(pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    return absl::InvalidArgumentError(
        StrCatStd("invalid regex '", pattern, "': ", Pcre2ErrorMessage(error_code), " at offset ", error_offset));
  }
  // JIT is an optimisation only: without it pcre2_match interprets the pattern.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  auto regex = std::unique_ptr<TokenizerRegex>(new TokenizerRegex());
  regex->pattern_ = std::string(pattern);
  regex->code_ = code;
  return regex;
}

absl::StatusOr<std::unique_ptr<TokenizerRegex>> TokenizerRegex::Literal(std::string_view literal) {
  std::string escaped;
  for (const char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u)) {
      escaped.push_back('\\');
    }
    escaped.push_back(c);
  }
  return Compile(escaped);
}

TokenizerRegex::~TokenizerRegex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

absl::StatusOr<std::vector<TokenizerRegex::Match>> TokenizerRegex::FindAll(std::string_view text) const {
  thread_local ThreadMatchState state;
  if (state.data() == nullptr) {
    return absl::InternalError("PCRE2: cannot allocate match data");
  }
  auto* code = static_cast<const pcre2_code*>(code_);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::vector<Match> matches;
  size_t offset = 0;
  while (offset <= text.size()) {
    const int rc = pcre2_match(code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK, state.data(), state.context());
    if (rc == PCRE2_ERROR_NOMATCH) {
      break;
    }
    if (rc < 0) {
      return absl::InternalError(StrCatStd("regex '", pattern_, "' failed: ", Pcre2ErrorMessage(rc)));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data());
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    if (end > begin) {
      matches.push_back({begin, end});
      offset = end;
    } else {
      // Empty match: step over one character.
      if (begin >= text.size()) {
        break;
      }
      offset = begin + Utf8SequenceLength(static_cast<unsigned char>(text[begin]));
    }
  }
  return matches;
}

}  // namespace adak::tokenizer
