// Helpers shared by every test binary: locating the project's own model and ../shared, temporary
// directories, running commands, waiting on a condition, Status matchers. Thread-compatible: the free
// functions keep no state; WaitFor calls its condition on the calling thread only.
#ifndef ADAK_TESTS_TEST_UTIL_H_
#define ADAK_TESTS_TEST_UTIL_H_

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace adak::testing {

// The repository root.
std::filesystem::path SourceDir();

// The ../shared folder (env ADAK_SHARED_DIR, else the build's default), or nullopt when it is absent:
// when the path is empty or has no `models` directory (e.g. ADAK_SHARED_DIR=/nonexistent).
std::optional<std::filesystem::path> SharedDir();

// The project's own model, models/stories-moe-small, which is in the repository: tests that only need "a
// real model" (servers, CLI runs) use it and never skip. Golden tests against ../shared's fp32 references
// use SharedDir() instead.
[[nodiscard]] std::filesystem::path DefaultModelDir();
// Its trained Ada-K allocator, DefaultModelDir() / "allocator.safetensors".
[[nodiscard]] std::filesystem::path DefaultAllocator();
// The default model's second allocator profile, "eco" (fewer experts, more perplexity than the default's).
[[nodiscard]] std::filesystem::path EcoAllocator();

// Directory of the built binaries (env ADAK_BIN_DIR, else the build's), e.g. for running `adak`.
std::filesystem::path BinDir();

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Writes `content` to `path`, creating parent directories.
void WriteFile(const std::filesystem::path& path, const std::string& content);
[[nodiscard]] std::string ReadFile(const std::filesystem::path& path);

// The built `adak` binary (BinDir() / "adak").
[[nodiscard]] std::string AdakBinary();

// `s` single-quoted for /bin/sh.
[[nodiscard]] std::string ShellQuote(const std::string& s);

// The value of the Prometheus sample `series` in a text-format scrape (e.g.
// `adak_requests_total{finished_reason="deadline"}`, labels as the server writes them), 0 when absent.
[[nodiscard]] double MetricValue(const std::string& metrics, const std::string& series);

// Runs a shell command, capturing stdout; returns the exit status in `exit_code`.
[[nodiscard]] std::string RunCommand(const std::string& command, int* exit_code);

// Calls `condition` until it returns true, every `poll`, for up to `timeout`. Success as soon as it holds;
// otherwise a failure naming `what` and the timeout, for ASSERT_TRUE / EXPECT_TRUE:
//   ASSERT_TRUE(WaitFor("the request to run", [&] { return stats().running == 1; }));
// Use it instead of sleeping a fixed time and hoping the condition holds by then.
template <typename Condition>
[[nodiscard]] ::testing::AssertionResult WaitFor(std::string_view what, Condition condition,
                                                 absl::Duration timeout = absl::Seconds(10),
                                                 absl::Duration poll = absl::Milliseconds(2)) {
  const absl::Time give_up = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > give_up) {
      return ::testing::AssertionFailure()
             << "timed out after " << absl::FormatDuration(timeout) << " waiting for " << what;
    }
    absl::SleepFor(poll);
  }
  return ::testing::AssertionSuccess();
}

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// EXPECT_THAT(result, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tensor")))
MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& s = ::adak::testing::GetStatus(arg);
  if (s.code() != code) {
    *result_listener << "status is " << s;
    return false;
  }
  return ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

MATCHER(IsOk, "") {
  const absl::Status& s = ::adak::testing::GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s;
  return s.ok();
}

}  // namespace adak::testing

// Skips the current test with a clear message when ../shared is absent.
#define ADAK_REQUIRE_SHARED(var)                                                         \
  auto var##_opt = ::adak::testing::SharedDir();                                         \
  if (!var##_opt) GTEST_SKIP() << "../shared is absent (set ADAK_SHARED_DIR); skipping"; \
  const std::filesystem::path var = *var##_opt

#endif  // ADAK_TESTS_TEST_UTIL_H_
