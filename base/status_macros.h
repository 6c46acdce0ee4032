// Status propagation shims.
//
// Debian's Abseil (20220623) predates absl's own RETURN_IF_ERROR / ASSIGN_OR_RETURN macros, so this header
// provides the two we use everywhere. They are the only macros in the project that return from the calling
// function. Thread-safety: stateless.
#ifndef ADAK_BASE_STATUS_MACROS_H_
#define ADAK_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ADAK_STATUS_CONCAT_INNER_(a, b) a##b
#define ADAK_STATUS_CONCAT_(a, b) ADAK_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status); returns it from the enclosing function when not OK.
#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status adak_status_ = (expr);        \
    if (!adak_status_.ok()) return adak_status_; \
  } while (0)

// `lhs` = value of `rexpr` (an absl::StatusOr<T>), or returns its status from the enclosing function.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ADAK_ASSIGN_OR_RETURN_IMPL_(ADAK_STATUS_CONCAT_(adak_statusor_, __LINE__), lhs, rexpr)

// `statusor` is a fresh identifier and `lhs` may be a declaration ("auto x"), so neither can be
// parenthesised.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define ADAK_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr)  \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
// NOLINTEND(bugprone-macro-parentheses)

#endif  // ADAK_BASE_STATUS_MACROS_H_
