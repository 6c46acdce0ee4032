// GuardedMain: the one place an exception may end a program.
//
// The project reports errors through absl::Status, but the libraries underneath (CLI11, the standard library's
// allocation, Boost) may still throw. GuardedMain runs a program's body and turns an exception that reaches it
// into one line on stderr naming the program and the exception, and exit status 70 (EX_SOFTWARE), instead of
// std::terminate's abort. Every executable's main() is `return adak::GuardedMain("name", [&] { ... });`.
#pragma once

#include <cstdio>
#include <exception>

namespace adak {

inline constexpr int kUncaughtExceptionExitCode = 70;  // EX_SOFTWARE (sysexits.h)

template <class Body>
int GuardedMain(const char* program, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: fatal: uncaught exception: %s\n", program, e.what());
  } catch (...) {
    std::fprintf(stderr, "%s: fatal: uncaught exception of unknown type\n", program);
  }
  return kUncaughtExceptionExitCode;
}

}  // namespace adak
