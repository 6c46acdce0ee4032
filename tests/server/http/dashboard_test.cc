// The server's own dashboard: GET /dashboard is one self-contained page, GET /dashboard/data holds the same
// observations as /metrics, and a real browser (headless Chromium, Debian `chromium`) renders numbers that
// match /metrics, under load and after it.
#include "server/http/dashboard.h"

#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/server_app.h"
#include "tests/http_client.h"
#include "tests/server/http/gateway_fixture.h"
#include "tests/test_util.h"

namespace adak::server {
namespace {

using ::adak::testing::HttpRequest;
using ::adak::testing::HttpResponse;
using ::adak::testing::MetricValue;
using ::adak::testing::RunCommand;
using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

// One in-process server for the suite (tests/server/http/gateway_fixture.h).
class DashboardTest : public GatewayFixture {
 protected:
  static HttpResponse Get(const std::string& path) {
    absl::StatusOr<HttpResponse> r = HttpRequest(app_->http_port(), "GET", path);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  }
  // One completion with `policy` (greedy, ignore_eos).
  static void Complete(const std::string& policy, int tokens, const std::string& prompt = "Once upon a time") {
    const Json body = {{"prompt", prompt},
                       {"max_tokens", tokens},
                       {"temperature", 0},
                       {"ignore_eos", true},
                       {"adak", {{"routing", {{"policy", policy}}}}}};
    absl::StatusOr<HttpResponse> r = HttpRequest(app_->http_port(), "POST", "/v1/completions", body.dump());
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status, 200) << r->body;
  }

  // /dashboard/data once the last step's observations are in (a response can reach the client before its
  // step's metrics are recorded): two reads with a /metrics scrape between them agree. `metrics` gets the
  // scrape.
  static Json SettledData(std::string* metrics) {
    Json data;
    EXPECT_TRUE(::adak::testing::WaitFor("a settled snapshot", [&] {
      Json before = Json::parse(Get("/dashboard/data").body);
      *metrics = Get("/metrics").body;
      data = Json::parse(Get("/dashboard/data").body);
      // The rates move with the clock: not part of the comparison.
      for (const char* moving : {"time", "rates"}) before.erase(moving);
      Json after = data;
      for (const char* moving : {"time", "rates"}) after.erase(moving);
      return before == after && MetricValue(*metrics, "adak_requests_running") == 0;
    }));
    return data;
  }
};

// Every number of /dashboard/data against the /metrics sample it mirrors.
void ExpectDataMatchesMetrics(const Json& data, const std::string& metrics, int64_t num_experts) {
  ASSERT_FALSE(data["layers"].empty());
  for (const Json& layer : data["layers"]) {
    const std::string l = absl::StrCat("layer=\"", layer["layer"].get<int64_t>(), "\"");
    SCOPED_TRACE(l);
    EXPECT_EQ(layer["tokens"].get<double>(), MetricValue(metrics, "adak_layer_tokens_total{" + l + "}"));
    EXPECT_EQ(layer["sum_k"].get<double>(), MetricValue(metrics, "adak_layer_activated_experts_sum{" + l + "}"));
    int64_t cumulative = 0;
    for (int64_t k = 0; k <= num_experts; ++k) {
      cumulative += layer["k_counts"][k].get<int64_t>();
      EXPECT_EQ(static_cast<double>(cumulative),
                MetricValue(metrics, absl::StrCat("adak_layer_activated_experts_bucket{", l, ",le=\"", k, "\"}")))
          << "k <= " << k;
    }
    for (int64_t e = 0; e < num_experts; ++e) {
      EXPECT_EQ(layer["expert_tokens"][e].get<double>(),
                MetricValue(metrics, absl::StrCat("adak_expert_tokens_total{expert=\"", e, "\",", l, "}")))
          << "expert " << e;
    }
  }
  EXPECT_EQ(data["flops"]["executed"].get<double>(), MetricValue(metrics, "adak_expert_flops_total"));
  EXPECT_EQ(data["flops"]["saved"].get<double>(), MetricValue(metrics, "adak_expert_flops_saved_total"));
  EXPECT_NEAR(data["flops"]["savings_ratio"].get<double>(), MetricValue(metrics, "adak_flop_savings_ratio"), 1e-12);
  EXPECT_EQ(data["tokens"]["generation"].get<double>(), MetricValue(metrics, "adak_generation_tokens_total"));
  // Per policy: adak's series are split by allocator profile, the dashboard shows their sum.
  for (const auto& [policy, tokens] : data["routing_tokens"].items()) {
    const std::string series = "adak_routing_tokens_total{policy=\"" + policy + "\"";
    double sum = 0.0;
    int matched = 0;
    const std::vector<std::string> lines = absl::StrSplit(metrics, '\n');
    for (const std::string& line : lines) {
      if (!line.starts_with(series)) continue;
      sum += MetricValue(metrics, line.substr(0, line.find(' ')));
      ++matched;
    }
    EXPECT_EQ(matched, policy == "adak" ? 2 : 1) << policy;
    EXPECT_EQ(tokens.get<double>(), sum) << policy;
  }
}

TEST_F(DashboardTest, PageIsSelfContainedHtml) {
  const HttpResponse page = Get("/dashboard");
  ASSERT_EQ(page.status, 200);
  EXPECT_THAT(page.Header("content-type"), HasSubstr("text/html"));
  EXPECT_THAT(page.body, HasSubstr("<title>adak serve dashboard</title>"));
  EXPECT_THAT(page.body, HasSubstr("/dashboard/data"));
  // No external assets: nothing is loaded from another origin.
  EXPECT_THAT(page.body, Not(HasSubstr("src=\"http")));
  EXPECT_THAT(page.body, Not(HasSubstr("href=\"http")));
  EXPECT_THAT(page.body, Not(HasSubstr("@import")));
  EXPECT_EQ(page.body, std::string(DashboardPage()));
  const absl::StatusOr<HttpResponse> post = HttpRequest(app_->http_port(), "POST", "/dashboard", "{}");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 405);
}

TEST_F(DashboardTest, DataMatchesMetricsPerLayerAndPolicy) {
  Complete("topk", 8);
  Complete("adak", 8, "The little dog");
  std::string metrics;
  const Json data = SettledData(&metrics);
  EXPECT_EQ(data["model"], app_->context()->model_name);
  EXPECT_EQ(data["num_experts"], 8);
  EXPECT_EQ(data["native_k"], 2);
  EXPECT_EQ(data["layers"].size(), 4u);
  ExpectDataMatchesMetrics(data, metrics, 8);
  bool adak_differs = false;
  for (const Json& layer : data["layers"]) {
    EXPECT_DOUBLE_EQ(layer["mean_k_by_policy"]["topk"].get<double>(), 2.0);  // native top-2, every token
    const double adak = layer["mean_k_by_policy"]["adak"].get<double>();     // the allocator's own k
    EXPECT_GE(adak, 1.0);
    EXPECT_LE(adak, 8.0);
    adak_differs = adak_differs || adak != 2.0;
    EXPECT_FALSE(layer["mean_k_by_policy"].contains("null"));  // never ran
  }
  EXPECT_TRUE(adak_differs);
  // The rates cover the last few seconds of steps: positive right after the requests.
  EXPECT_GT(data["rates"]["forwarded_tokens_per_second"].get<double>(), 0.0);
  EXPECT_GT(data["rates"]["decode_tokens_per_second"].get<double>(), 0.0);
  EXPECT_LE(data["rates"]["decode_tokens_per_second"].get<double>(),
            data["rates"]["forwarded_tokens_per_second"].get<double>());
}

// The numbers a browser renders: each element with id `id` and its text (or data-share) as a number.
std::map<std::string, double> RenderedNumbers(const std::string& dom) {
  std::map<std::string, double> out;
  static const std::regex text(R"re(id="([A-Za-z0-9-]+)"[^>]*>([-0-9.]+)%?<)re");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), text); it != std::sregex_iterator(); ++it) {
    out[(*it)[1]] = std::atof((*it)[2].str().c_str());
  }
  static const std::regex share(R"re(id="(load-L[0-9]+-E[0-9]+)" data-share="([0-9.]+)")re");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), share); it != std::sregex_iterator(); ++it) {
    out[(*it)[1].str() + "/share"] = std::atof((*it)[2].str().c_str());
  }
  return out;
}

// Headless Chromium: the page as the browser renders it after its scripts ran (virtual time lets its fetch
// and first render complete).
std::string RenderInChromium(int port, int* code) {
  const std::string url = absl::StrCat("http://127.0.0.1:", port, "/dashboard");
  return RunCommand(
      "chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run "
      "--user-data-dir=$(mktemp -d) --virtual-time-budget=5000 --dump-dom '" +
          url + "' 2>/dev/null",
      code);
}

TEST_F(DashboardTest, ChromiumRendersTheNumbersOfMetricsUnderLoadAndAfter) {
  int probe = 0;
  (void)RunCommand("command -v chromium >/dev/null", &probe);
  if (probe != 0) GTEST_SKIP() << "chromium is not installed (bash scripts/install-deps.sh installs it)";

  // Under load: two clients keep requests running while the browser renders.
  std::atomic<bool> stop{false};
  std::vector<std::thread> load;
  for (const char* policy : {"topk", "adak"}) {
    load.emplace_back([&, policy] {
      while (!stop.load()) Complete(policy, 16, "One day a cat");
    });
  }
  ASSERT_TRUE(::adak::testing::WaitFor(
      "some tokens", [&] { return MetricValue(Get("/metrics").body, "adak_generation_tokens_total") > 32; }));
  int code = -1;
  const std::string busy = RenderInChromium(app_->http_port(), &code);
  stop = true;
  for (std::thread& t : load) t.join();
  ASSERT_EQ(code, 0) << busy.substr(0, 2000);
  ASSERT_THAT(busy, HasSubstr("data-rendered=")) << busy.substr(0, 4000);
  std::map<std::string, double> numbers = RenderedNumbers(busy);
  ASSERT_TRUE(numbers.contains("mean-k-L0")) << busy.substr(0, 4000);
  EXPECT_GE(numbers["mean-k-L0"], 1.0);
  EXPECT_LE(numbers["mean-k-L0"], 8.0);
  EXPECT_DOUBLE_EQ(numbers["mean-k-L0-topk"], 2.0);
  EXPECT_GT(numbers["tokens-per-second"], 0.0);  // the server is busy

  // Idle: what the browser shows equals /metrics.
  std::string metrics;
  (void)SettledData(&metrics);
  const std::string idle = RenderInChromium(app_->http_port(), &code);
  ASSERT_EQ(code, 0);
  metrics = Get("/metrics").body;
  numbers = RenderedNumbers(idle);
  for (int l = 0; l < 4; ++l) {
    SCOPED_TRACE(l);
    const std::string layer = absl::StrCat("{layer=\"", l, "\"}");
    const double sum = MetricValue(metrics, "adak_layer_activated_experts_sum" + layer);
    const double count = MetricValue(metrics, "adak_layer_activated_experts_count" + layer);
    ASSERT_GT(count, 0.0);
    ASSERT_TRUE(numbers.contains(absl::StrCat("mean-k-L", l)));
    EXPECT_NEAR(numbers[absl::StrCat("mean-k-L", l)], sum / count, 0.0005 + 1e-9);
    double layer_total = 0.0;
    for (int e = 0; e < 8; ++e) {
      layer_total +=
          MetricValue(metrics, absl::StrCat("adak_expert_tokens_total{expert=\"", e, "\",layer=\"", l, "\"}"));
    }
    for (int e = 0; e < 8; ++e) {
      const double tokens =
          MetricValue(metrics, absl::StrCat("adak_expert_tokens_total{expert=\"", e, "\",layer=\"", l, "\"}"));
      EXPECT_NEAR(numbers[absl::StrCat("load-L", l, "-E", e, "/share")], tokens / layer_total, 1e-6) << "expert " << e;
    }
  }
  EXPECT_NEAR(numbers["flop-savings"], 100.0 * MetricValue(metrics, "adak_flop_savings_ratio"), 0.005 + 1e-9);
  EXPECT_EQ(numbers["generation-tokens"], MetricValue(metrics, "adak_generation_tokens_total"));
  EXPECT_EQ(numbers["requests-finished"], MetricValue(metrics, "adak_requests_total{finished_reason=\"length\"}") +
                                              MetricValue(metrics, "adak_requests_total{finished_reason=\"stop\"}"));
}

}  // namespace
}  // namespace adak::server
