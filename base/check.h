// ADAK_CHECK: the one assertion for programmer errors (a broken invariant, a REQUIRES violated by the caller),
// never for runtime or device errors, which return absl::Status (STYLE.md "Errors: one channel").
//
//   ADAK_CHECK(dtype == DType::kBF16, "MoeExperts: unsupported weight dtype ", DTypeName(dtype));
//
// On failure it logs one error line "file:line: check failed: <condition>: <message>" (the message is the
// absl::StrCat of the remaining arguments, evaluated only on failure; this Abseil's StrCat takes no
// std::string_view, so wrap one in std::string) and aborts the process. Active in every
// build type. Thread-safe (one log line per failure).
#ifndef ADAK_BASE_CHECK_H_
#define ADAK_BASE_CHECK_H_

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/log.h"

namespace adak::internal {

[[noreturn]] inline void CheckFailed(const char* file, int line, const char* condition, const std::string& message) {
  LogError(absl::StrCat(file, ":", line, ": check failed: ", condition, message.empty() ? "" : ": ", message));
  std::abort();
}

}  // namespace adak::internal

#define ADAK_CHECK(condition, ...)                                                                \
  do {                                                                                            \
    if (!(condition)) [[unlikely]] {                                                              \
      ::adak::internal::CheckFailed(__FILE__, __LINE__, #condition, ::absl::StrCat(__VA_ARGS__)); \
    }                                                                                             \
  } while (false)

#endif  // ADAK_BASE_CHECK_H_
