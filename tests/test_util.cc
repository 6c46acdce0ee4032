#include "tests/test_util.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string_view>

namespace adak::testing {

std::filesystem::path SourceDir() { return ADAK_SOURCE_DIR; }

std::optional<std::filesystem::path> SharedDir() {
  const char* env = std::getenv("ADAK_SHARED_DIR");
  std::filesystem::path p(env != nullptr ? env : ADAK_SHARED_DIR_DEFAULT);
  if (p.empty()) return std::nullopt;
  std::error_code ec;
  if (!std::filesystem::is_directory(p / "models", ec)) return std::nullopt;
  return p;
}

std::filesystem::path DefaultModelDir() { return SourceDir() / "models" / "stories-moe-small"; }

std::filesystem::path DefaultAllocator() { return DefaultModelDir() / "allocator.safetensors"; }

std::filesystem::path EcoAllocator() { return DefaultModelDir() / "allocator-eco.safetensors"; }

std::filesystem::path BinDir() {
  const char* env = std::getenv("ADAK_BIN_DIR");
  return env != nullptr && *env != '\0' ? std::filesystem::path(env) : std::filesystem::path(ADAK_BIN_DIR_DEFAULT);
}

TempDir::TempDir() {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate = std::filesystem::temp_directory_path() /
                     ("adak-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::error_code ec;
    if (std::filesystem::create_directory(candidate, ec)) {
      path_ = candidate;
      return;
    }
  }
  ADD_FAILURE() << "could not create a temporary directory";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

void WriteFile(const std::filesystem::path& path, const std::string& content) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string AdakBinary() { return (BinDir() / "adak").string(); }

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string RunCommand(const std::string& command, int* exit_code) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    *exit_code = -1;
    return out;
  }
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

double MetricValue(const std::string& metrics, const std::string& series) {
  size_t at = 0;
  while (at < metrics.size()) {
    size_t end = metrics.find('\n', at);
    if (end == std::string::npos) end = metrics.size();
    const std::string_view line(metrics.data() + at, end - at);
    if (line.size() > series.size() && line.substr(0, series.size()) == series && line[series.size()] == ' ') {
      const std::string value(line.substr(series.size() + 1));
      char* parsed_end = nullptr;
      const double v = std::strtod(value.c_str(), &parsed_end);
      if (parsed_end != value.c_str()) return v;
    }
    at = end + 1;
  }
  return 0;
}

}  // namespace adak::testing
