// A real Prometheus server (Debian package `prometheus`) scrapes the gateway's /metrics on loopback after
// traffic, and its query API finds the per-layer activated-experts histograms and the FLOP counters with
// non-zero values. Skips only when the prometheus binary is absent.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/server_app.h"
#include "tests/http_client.h"
#include "tests/test_util.h"

extern char** environ;

namespace adak::server {
namespace {

using ::adak::testing::HttpRequest;
using ::adak::testing::HttpResponse;
using Json = nlohmann::json;

// $PROMETHEUS_BIN, else /usr/bin/prometheus, else `prometheus` on $PATH.
std::optional<std::filesystem::path> FindPrometheus() {
  if (const char* env = std::getenv("PROMETHEUS_BIN"); env != nullptr && *env != '\0') {
    if (std::filesystem::exists(env)) return std::filesystem::path(env);
  }
  if (std::filesystem::exists("/usr/bin/prometheus")) return std::filesystem::path("/usr/bin/prometheus");
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::string dirs = path;
    size_t start = 0;
    while (start <= dirs.size()) {
      const size_t end = std::min(dirs.find(':', start), dirs.size());
      const std::filesystem::path candidate = std::filesystem::path(dirs.substr(start, end - start)) / "prometheus";
      if (end > start && access(candidate.c_str(), X_OK) == 0) return candidate;
      start = end + 1;
    }
  }
  return std::nullopt;
}

// A port that was free a moment ago on 127.0.0.1 (Prometheus takes its listen address as a flag).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

std::string UrlEncode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += absl::StrCat("%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

// The Prometheus process: SIGTERM on destruction, SIGKILL if it lingers.
class PrometheusProcess {
 public:
  PrometheusProcess(const std::filesystem::path& binary, const std::filesystem::path& dir, int port, int target_port) {
    config_ = dir / "prometheus.yml";
    log_ = dir / "prometheus.log";
    ::adak::testing::WriteFile(config_, absl::StrCat("global:\n"
                                                     "  scrape_interval: 1s\n"
                                                     "  scrape_timeout: 1s\n"
                                                     "  evaluation_interval: 1s\n"
                                                     "scrape_configs:\n"
                                                     "  - job_name: adak\n"
                                                     "    metrics_path: /metrics\n"
                                                     "    static_configs:\n"
                                                     "      - targets: ['127.0.0.1:",
                                                     target_port, "']\n"));
    std::vector<std::string> args = {binary.string(), "--config.file=" + config_.string(),
                                     "--storage.tsdb.path=" + (dir / "data").string(),
                                     absl::StrCat("--web.listen-address=127.0.0.1:", port), "--log.level=warn"};
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~PrometheusProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    const bool exited = ::adak::testing::WaitFor(
        "prometheus to exit on SIGTERM", [&] { return waitpid(pid_, &status, WNOHANG) != 0; }, absl::Seconds(10),
        absl::Milliseconds(20));
    if (!exited) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
  }
  [[nodiscard]] bool started() const { return pid_ > 0; }
  [[nodiscard]] bool running() const {
    int status = 0;
    return pid_ > 0 && waitpid(pid_, &status, WNOHANG) == 0;
  }
  [[nodiscard]] std::string Log() const { return std::filesystem::exists(log_) ? ::adak::testing::ReadFile(log_) : ""; }

 private:
  std::filesystem::path config_, log_;
  pid_t pid_ = -1;
};

// The instant-query results of `query` (data.result), or an empty array while there are none.
Json Query(int port, const std::string& query) {
  absl::StatusOr<HttpResponse> response =
      HttpRequest(port, "GET", "/api/v1/query?query=" + UrlEncode(query), "", "", absl::Seconds(5));
  if (!response.ok() || response->status != 200) return Json::array();
  Json json = Json::parse(response->body, nullptr, false);
  if (json.is_discarded() || json.value("status", "") != "success") return Json::array();
  return json["data"]["result"];
}

// Whether some series of `results` has a value > 0 (an instant vector: value = [time, "string"]).
bool AnyPositive(const Json& results) {
  for (const Json& series : results) {
    if (std::stod(series["value"][1].get<std::string>()) > 0.0) return true;
  }
  return false;
}

TEST(PrometheusScrape, FindsPerLayerExpertHistogramsAndFlopCounters) {
  const std::optional<std::filesystem::path> prometheus = FindPrometheus();
  if (!prometheus) {
    GTEST_SKIP() << "the prometheus binary is absent (apt-get install prometheus, or set PROMETHEUS_BIN); skipping";
  }
  ServerAppOptions options;
  options.model_dir = ::adak::testing::DefaultModelDir();
  options.allocators = {engine::AllocatorFile{"", ::adak::testing::DefaultAllocator()}};
  options.grpc_port = -1;
  options.http_port = 0;
  options.threads = 1;
  options.kv_cache_mib = 16;
  absl::StatusOr<std::unique_ptr<ServerApp>> app = ServerApp::Create(options);
  ASSERT_TRUE(app.ok()) << app.status();
  ASSERT_TRUE((*app)->Start().ok());
  const int http_port = (*app)->http_port();

  // Traffic: native top-K, and Ada-K clamped to one expert so FLOPs are certainly saved.
  for (const char* routing : {R"({"policy": "topk"})", R"({"policy": "adak", "max_k": 1})"}) {
    const std::string body = absl::StrCat(R"({"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0, )",
                                          R"("ignore_eos": true, "adak": {"routing": )", routing, "}}");
    absl::StatusOr<HttpResponse> response = HttpRequest(http_port, "POST", "/v1/completions", body);
    ASSERT_TRUE(response.ok()) << response.status();
    ASSERT_EQ(response->status, 200) << response->body;
  }

  ::adak::testing::TempDir dir;
  const int prometheus_port = FreePort();
  ASSERT_GT(prometheus_port, 0);
  PrometheusProcess process(*prometheus, dir.path(), prometheus_port, http_port);
  ASSERT_TRUE(process.started()) << "cannot start " << *prometheus;

  // Until Prometheus has scraped the server (or exited): every series there, with a value.
  Json buckets, layers, flops, saved;
  bool exited = false;
  (void)::adak::testing::WaitFor(
      "Prometheus to scrape the adak series",
      [&] {
        exited = !process.running();
        if (exited) return true;
        buckets = Query(prometheus_port, "adak_layer_activated_experts_bucket");
        layers = Query(prometheus_port, "sum by (layer) (adak_layer_activated_experts_count)");
        flops = Query(prometheus_port, "adak_expert_flops_total");
        saved = Query(prometheus_port, "adak_expert_flops_saved_total");
        return AnyPositive(buckets) && layers.size() == 4 && AnyPositive(layers) && AnyPositive(flops) &&
               AnyPositive(saved);
      },
      absl::Seconds(30), absl::Milliseconds(250));
  ASSERT_FALSE(exited) << "prometheus exited:\n" << process.Log();
  ASSERT_TRUE(AnyPositive(buckets)) << "no adak_layer_activated_experts_bucket series with a value > 0 within 30 s\n"
                                    << process.Log();
  // One histogram per MoE layer (stories-moe-small has 4), every one of which saw the traffic.
  ASSERT_EQ(layers.size(), 4u) << layers.dump();
  for (const Json& series : layers) {
    EXPECT_TRUE(series["metric"].contains("layer")) << series.dump();
    EXPECT_GT(std::stod(series["value"][1].get<std::string>()), 0.0) << series.dump();
  }
  // The series carry the scrape job and the per-layer, per-bucket labels.
  EXPECT_EQ(buckets[0]["metric"]["job"], "adak");
  EXPECT_TRUE(buckets[0]["metric"].contains("le"));
  EXPECT_TRUE(AnyPositive(flops)) << flops.dump();
  EXPECT_TRUE(AnyPositive(saved)) << saved.dump();
}

}  // namespace
}  // namespace adak::server
