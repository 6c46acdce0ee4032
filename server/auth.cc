#include "server/auth.h"

#include <algorithm>
#include <fstream>
#include <utility>

#include "base/strings.h"

namespace adak::server {
namespace {

bool IsKeyChar(char c) { return static_cast<unsigned char>(c) > 0x20 && c != 0x7f; }

}  // namespace

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Every byte of the longer one is visited whatever differs; only the lengths show in the time.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

absl::StatusOr<ApiKeys> ApiKeys::Create(std::vector<std::string> keys, bool protect_metrics) {
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string& key = keys[i];
    if (key.empty() || !std::all_of(key.begin(), key.end(), IsKeyChar)) {
      return absl::InvalidArgumentError(
          StrCatStd("API key #", i + 1, " is empty or contains whitespace or control characters"));
    }
  }
  ApiKeys out;
  out.keys_ = std::move(keys);
  out.protect_metrics_ = protect_metrics;
  return out;
}

absl::StatusOr<std::vector<std::string>> ApiKeys::ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(StrCatStd("cannot read the API keys file ", path.string()));
  std::vector<std::string> keys;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    size_t start = 0;
    while (start < line.size() && (line[start] == ' ' || line[start] == '\t')) ++start;
    line.erase(0, start);
    if (line.empty() || line.front() == '#') continue;
    if (!std::all_of(line.begin(), line.end(), IsKeyChar)) {
      return absl::InvalidArgumentError(
          StrCatStd("API keys file ", path.string(), " line ", number, ": a key must not contain whitespace"));
    }
    keys.push_back(line);
  }
  return keys;
}

absl::Status ApiKeys::Check(std::string_view authorization) const {
  if (keys_.empty()) return absl::OkStatus();
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size() || !ConstantTimeEquals(authorization.substr(0, kBearer.size()), kBearer)) {
    return absl::UnauthenticatedError(
        "missing API key: send the header 'Authorization: Bearer <key>' (gRPC: metadata 'authorization')");
  }
  const std::string_view presented = authorization.substr(kBearer.size());
  bool match = false;
  for (const std::string& key : keys_) match |= ConstantTimeEquals(presented, key);  // no early exit
  if (!match) return absl::UnauthenticatedError("invalid API key");
  return absl::OkStatus();
}

}  // namespace adak::server
