// API keys: who may call the generation endpoints of both front ends.
//
// A server started with keys (`--api-key`, repeatable, and/or the file named by ADAK_API_KEYS_FILE, one key a
// line, blank lines and lines starting with '#' ignored) requires `Authorization: Bearer <key>` on HTTP
// /v1/* and the gRPC metadata `authorization: Bearer <key>` on adak.v1.Generation; health (grpc.health.v1,
// /healthz, /readyz), reflection and /metrics stay open (ApiKeys::protect_metrics closes /metrics too).
// Refusals are Unauthenticated (HTTP 401, gRPC UNAUTHENTICATED) and never contain a key; presented keys are
// compared with every configured key in time independent of where they differ. Without keys everything is
// open. Immutable after construction; thread-safe.
#ifndef ADAK_SERVER_AUTH_H_
#define ADAK_SERVER_AUTH_H_

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace adak::server {

class ApiKeys {
 public:
  ApiKeys() = default;  // no keys: everything open
  // Errors: InvalidArgument for an empty key or one with whitespace or control characters (names its
  // position, never the key).
  [[nodiscard]] static absl::StatusOr<ApiKeys> Create(std::vector<std::string> keys, bool protect_metrics = false);
  // The keys of `path` (see the top of this file). Errors: NotFound / InvalidArgument naming the file and
  // the line.
  [[nodiscard]] static absl::StatusOr<std::vector<std::string>> ReadFile(const std::filesystem::path& path);

  [[nodiscard]] bool enabled() const { return !keys_.empty(); }
  [[nodiscard]] size_t size() const { return keys_.size(); }
  [[nodiscard]] bool protect_metrics() const { return protect_metrics_; }

  // OK when auth is off or `authorization` (the header / metadata value) is "Bearer <a configured key>";
  // Unauthenticated otherwise.
  [[nodiscard]] absl::Status Check(std::string_view authorization) const;

 private:
  std::vector<std::string> keys_;
  bool protect_metrics_ = false;
};

// Equality of `a` and `b` in time that depends on their lengths only, not on where they differ.
[[nodiscard]] bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace adak::server

#endif  // ADAK_SERVER_AUTH_H_
