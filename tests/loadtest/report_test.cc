// adak-loadtest's summary on hand-made records: percentiles, TPOT, goodput against an SLO, errors by code,
// token-weighted mean k and the FLOP savings ratio, per arm.
#include "loadtest/report.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace adak::loadtest {
namespace {

using ::testing::HasSubstr;

RequestRecord Ok(size_t arm, double ttft, double e2e, int64_t tokens, std::vector<double> itl) {
  RequestRecord r;
  r.arm = arm;
  r.ok = true;
  r.ttft_s = ttft;
  r.e2e_s = e2e;
  r.output_tokens = tokens;
  r.itl_s = std::move(itl);
  return r;
}

TEST(Percentile, InterpolatesBetweenOrderStatistics) {
  EXPECT_DOUBLE_EQ(Percentile({}, 50), 0.0);
  EXPECT_DOUBLE_EQ(Percentile({3.0}, 99), 3.0);
  EXPECT_DOUBLE_EQ(Percentile({4.0, 1.0, 3.0, 2.0}, 50), 2.5);
  EXPECT_DOUBLE_EQ(Percentile({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 90), 10.0);
  EXPECT_DOUBLE_EQ(Percentile({1, 2}, 100), 2.0);
  EXPECT_DOUBLE_EQ(Percentile({1, 2}, 0), 1.0);
}

TEST(MeetsSlo, EveryGivenBound) {
  const RequestRecord r = Ok(0, 0.2, 1.2, 11, {0.1, 0.1, 0.3});  // TPOT = (1.2 - 0.2) / 10 = 100 ms
  EXPECT_TRUE(MeetsSlo(r, Slo{}));
  EXPECT_TRUE(MeetsSlo(r, Slo{.ttft_ms = 200.0}));
  EXPECT_FALSE(MeetsSlo(r, Slo{.ttft_ms = 199.0}));
  EXPECT_TRUE(MeetsSlo(r, Slo{.tpot_ms = 100.5}));
  EXPECT_FALSE(MeetsSlo(r, Slo{.tpot_ms = 99.0}));
  EXPECT_FALSE(MeetsSlo(r, Slo{.itl_ms = 250.0}));  // its largest gap is 300 ms
  EXPECT_TRUE(MeetsSlo(r, Slo{.itl_ms = 300.0}));
  EXPECT_FALSE(MeetsSlo(r, Slo{.e2e_ms = 1000.0}));
  RequestRecord failed = r;
  failed.ok = false;
  EXPECT_FALSE(MeetsSlo(failed, Slo{}));
}

TEST(Summarize, LatenciesGoodputErrorsAndTheServersUsage) {
  std::vector<RequestRecord> records = {Ok(0, 0.1, 1.1, 11, {0.1}), Ok(0, 0.3, 2.3, 11, {0.2}), Ok(1, 0.2, 0.2, 1, {})};
  records[0].prompt_tokens = 9;
  records[0].mean_k = 2.0;  // 20 forwarded tokens
  records[0].expert_flops = 300.0;
  records[0].expert_flops_saved = 0.0;
  records[1].prompt_tokens = 29;
  records[1].mean_k = 1.0;  // 40 forwarded tokens
  records[1].expert_flops = 100.0;
  records[1].expert_flops_saved = 100.0;
  RequestRecord deadline;
  deadline.error_code = "deadline_exceeded";
  RequestRecord http;
  http.error_code = "http_503";
  records.push_back(deadline);
  records.push_back(http);
  records.push_back(deadline);
  const nlohmann::json s = Summarize(records, /*wall_s=*/2.0, Slo{.ttft_ms = 250.0});
  EXPECT_EQ(s["requests"], 6);
  EXPECT_EQ(s["succeeded"], 3);
  EXPECT_EQ(s["errors"], 3);
  EXPECT_EQ(s["errors_by_code"]["deadline_exceeded"], 2);
  EXPECT_EQ(s["errors_by_code"]["http_503"], 1);
  EXPECT_DOUBLE_EQ(s["request_throughput"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(s["output_throughput"].get<double>(), 23.0 / 2.0);
  EXPECT_DOUBLE_EQ(s["ttft_ms"]["p50"].get<double>(), 200.0);
  EXPECT_DOUBLE_EQ(s["ttft_ms"]["mean"].get<double>(), 200.0);
  EXPECT_DOUBLE_EQ(s["tpot_ms"]["p50"].get<double>(), 150.0);  // 100 and 200; the 1-token one has none
  EXPECT_EQ(s["tpot_ms"]["count"], 2);
  EXPECT_DOUBLE_EQ(s["itl_ms"]["p50"].get<double>(), 150.0);
  EXPECT_NEAR(s["e2e_ms"]["p99"].get<double>(), 1100.0 + (2300.0 - 1100.0) * 0.98, 1e-9);
  EXPECT_EQ(s["good_requests"], 2);  // ttft 300 ms misses the 250 ms bound
  EXPECT_DOUBLE_EQ(s["goodput"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(s["mean_k"].get<double>(), (2.0 * 20 + 1.0 * 40) / 60.0);
  EXPECT_DOUBLE_EQ(s["flop_savings_ratio"].get<double>(), 100.0 / 500.0);
}

TEST(Report, OneSummaryPerArmAndATable) {
  std::vector<RequestRecord> records = {Ok(0, 0.1, 1.0, 4, {0.3, 0.3, 0.3}), Ok(1, 0.1, 1.0, 4, {0.3, 0.3, 0.3}),
                                        Ok(1, 0.1, 1.0, 4, {0.3, 0.3, 0.3})};
  const std::vector<Arm> arms = {Arm{.name = "topk", .policy = "topk"}, Arm{.name = "adak", .policy = "adak"}};
  const nlohmann::json report = Report(records, arms, 1.0, Slo{}, {{"mode", "closed"}});
  EXPECT_EQ(report["config"]["mode"], "closed");
  EXPECT_EQ(report["overall"]["requests"], 3);
  ASSERT_EQ(report["arms"].size(), 2u);
  EXPECT_EQ(report["arms"][0]["arm"], "topk");
  EXPECT_EQ(report["arms"][0]["requests"], 1);
  EXPECT_EQ(report["arms"][1]["requests"], 2);
  const std::string table = ReportTable(report);
  EXPECT_THAT(table, HasSubstr("topk"));
  EXPECT_THAT(table, HasSubstr("adak"));
  EXPECT_THAT(table, HasSubstr("all"));
  EXPECT_THAT(table, HasSubstr("ttft p50"));
}

}  // namespace
}  // namespace adak::loadtest
