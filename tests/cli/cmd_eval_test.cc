// `adak eval` as a user runs it: the real binary on stories-mixtral (JSON parsed back and checked for
// consistency, the top-k/top-p frontier, Ada-K with the reference's random allocator) and its errors.
#include <cmath>
#include <string>

#include "nlohmann/json.hpp"
#include "tests/test_util.h"

namespace adak {
namespace {

using ::adak::testing::RunCommand;
using ::adak::testing::TempDir;
using ::adak::testing::WriteFile;
using ::testing::HasSubstr;

std::string Adak() { return ::adak::testing::AdakBinary(); }
std::string Quote(const std::string& s) { return ::adak::testing::ShellQuote(s); }

std::string EvalCommand(const std::filesystem::path& shared, const std::string& extra) {
  std::string cmd = Adak();
  cmd += " eval --model ";
  cmd += Quote((shared / "models/stories-mixtral").string());
  cmd += " --data ";
  cmd += Quote((shared / "data/stories/valid.txt").string());
  cmd += " --max-tokens 600 --context 200 --threads 2 ";
  cmd += extra;
  return cmd;
}

nlohmann::json RunJson(const std::string& command) {
  int code = 0;
  const std::string out = RunCommand(command + " 2>&1", &code);
  EXPECT_EQ(code, 0) << out;
  if (code != 0) return nlohmann::json::object();
  return nlohmann::json::parse(out);
}

void ExpectRelativeNear(double got, double want, double tolerance) {
  EXPECT_LE(std::fabs(got - want), tolerance * std::fabs(want)) << got << " vs " << want;
}

// The fields a row of the frontier carries, consistent with each other.
void ExpectConsistentRow(const nlohmann::json& row) {
  for (const char* key : {"routing", "label", "perplexity", "nats_per_token", "tokens", "mean_k", "mean_k_per_layer",
                          "expert_flops", "expert_flops_saved", "expert_flops_native", "savings_ratio"}) {
    ASSERT_TRUE(row.contains(key)) << key << " missing in " << row.dump();
  }
  ExpectRelativeNear(row["perplexity"].get<double>(), std::exp(row["nats_per_token"].get<double>()), 1e-6);
  EXPECT_EQ(row["tokens"].get<int64_t>(), 597);  // 3 windows of 200: 199 scored each
  ASSERT_EQ(row["mean_k_per_layer"].size(), 4u);
  double sum = 0.0;
  for (const auto& k : row["mean_k_per_layer"]) sum += k.get<double>();
  ExpectRelativeNear(row["mean_k"].get<double>(), sum / 4.0, 1e-9);
  EXPECT_EQ(row["expert_flops_native"].get<int64_t>() - row["expert_flops"].get<int64_t>(),
            row["expert_flops_saved"].get<int64_t>());
  ExpectRelativeNear(row["savings_ratio"].get<double>() * row["expert_flops_native"].get<double>(),
                     row["expert_flops_saved"].get<double>(), 1e-9);
}

TEST(AdakEval, JsonReportIsConsistentForNativeTopK) {
  ADAK_REQUIRE_SHARED(shared);
  const nlohmann::json doc = RunJson(EvalCommand(shared, "--json"));
  ASSERT_TRUE(doc.is_object());
  ExpectConsistentRow(doc);
  EXPECT_EQ(doc["routing"], "topk");
  EXPECT_EQ(doc["label"], "topk k=2");
  EXPECT_DOUBLE_EQ(doc["mean_k"].get<double>(), 2.0);
  for (const auto& k : doc["mean_k_per_layer"]) EXPECT_DOUBLE_EQ(k.get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(doc["savings_ratio"].get<double>(), 0.0);
  EXPECT_EQ(doc["expert_flops_saved"].get<int64_t>(), 0);
  EXPECT_GT(doc["expert_flops"].get<int64_t>(), 0);
  EXPECT_EQ(doc["tokens_run"].get<int64_t>(), 600);
  EXPECT_EQ(doc["windows"].get<int64_t>(), 3);
  EXPECT_EQ(doc["context"].get<int64_t>(), 200);
  // A trained model on its own domain: far below the vocabulary size.
  EXPECT_GT(doc["perplexity"].get<double>(), 1.0);
  EXPECT_LT(doc["perplexity"].get<double>(), 100.0);
  ASSERT_TRUE(doc.contains("token_classes"));
  int64_t total = 0;
  for (const char* name : {"word", "number", "punctuation", "space/other"}) {
    ASSERT_TRUE(doc["token_classes"].contains(name)) << name;
    const auto& c = doc["token_classes"][name];
    total += c["tokens"].get<int64_t>();
    if (c["tokens"].get<int64_t>() > 0) {
      EXPECT_DOUBLE_EQ(c["mean_k"].get<double>(), 2.0) << name;
    }
  }
  EXPECT_EQ(total, doc["tokens"].get<int64_t>());
  // Stories are mostly words, with some punctuation.
  EXPECT_GT(doc["token_classes"]["word"]["tokens"].get<int64_t>(), 300);
  EXPECT_GT(doc["token_classes"]["punctuation"]["tokens"].get<int64_t>(), 10);
  EXPECT_FALSE(doc.contains("sweep"));
}

TEST(AdakEval, SweepTopKGivesTheFrontierOnTheSameTokens) {
  ADAK_REQUIRE_SHARED(shared);
  const nlohmann::json doc = RunJson(EvalCommand(shared, "--json --sweep-topk"));
  ASSERT_TRUE(doc.contains("sweep"));
  const auto& sweep = doc["sweep"];
  ASSERT_EQ(sweep.size(), 5u);  // top-1, top-2, top-p 0.3 / 0.5 / 0.7
  for (const auto& row : sweep) ExpectConsistentRow(row);
  EXPECT_EQ(sweep[0]["label"], "topk k=1");
  EXPECT_EQ(sweep[0]["top_k"], 1);
  EXPECT_DOUBLE_EQ(sweep[0]["mean_k"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(sweep[0]["savings_ratio"].get<double>(), 0.5);
  EXPECT_EQ(sweep[1]["label"], "topk k=2");
  EXPECT_GT(sweep[0]["perplexity"].get<double>(), sweep[1]["perplexity"].get<double>());
  // Native top-2 is the requested routing: the same numbers.
  EXPECT_DOUBLE_EQ(sweep[1]["perplexity"].get<double>(), doc["perplexity"].get<double>());
  EXPECT_EQ(sweep[1]["expert_flops"], doc["expert_flops"]);
  const double want_p[] = {0.3, 0.5, 0.7};
  double previous_k = 0.0;
  for (size_t i = 0; i < 3; ++i) {
    const auto& row = sweep[2 + i];
    EXPECT_EQ(row["routing"], "topp");
    EXPECT_DOUBLE_EQ(row["top_p"].get<double>(), want_p[i]);
    // A larger threshold never picks fewer experts.
    EXPECT_GE(row["mean_k"].get<double>(), previous_k);
    EXPECT_GE(row["mean_k"].get<double>(), 1.0);
    previous_k = row["mean_k"].get<double>();
  }
}

TEST(AdakEval, RandomAllocatorUsesMoreExperts) {
  ADAK_REQUIRE_SHARED(shared);
  const auto allocator = shared / "models/stories-mixtral/reference/allocator-random.safetensors";
  const nlohmann::json doc =
      RunJson(EvalCommand(shared, "--json --routing adak --allocator " + Quote(allocator.string())));
  ASSERT_TRUE(doc.is_object());
  ExpectConsistentRow(doc);
  EXPECT_EQ(doc["routing"], "adak");
  EXPECT_GT(doc["mean_k"].get<double>(), 2.0);
  EXPECT_LT(doc["savings_ratio"].get<double>(), 0.0);  // more FLOPs than native top-2
  EXPECT_LT(doc["expert_flops_saved"].get<int64_t>(), 0);
  double weighted = 0.0;
  int64_t total = 0;
  for (const auto& [name, c] : doc["token_classes"].items()) {
    weighted += c["mean_k"].get<double>() * c["tokens"].get<double>();
    total += c["tokens"].get<int64_t>();
  }
  ASSERT_EQ(total, 597);
  // The classes cover the scored tokens, the counter every token run: close, not equal.
  EXPECT_NEAR(weighted / static_cast<double>(total), doc["mean_k"].get<double>(), 0.05);
}

TEST(AdakEval, TextReportPrintsTheFrontierTable) {
  ADAK_REQUIRE_SHARED(shared);
  int code = 0;
  const std::string out = RunCommand(EvalCommand(shared, "--sweep-topk --top-k 1 2>&1"), &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("tokens_run=600 scored=597 windows=3 context=200"));
  EXPECT_THAT(out, HasSubstr("routing=topk k=1 nats_per_token="));
  EXPECT_THAT(out, HasSubstr("mean_k=1.0000"));
  EXPECT_THAT(out, HasSubstr("savings=50.00%"));
  EXPECT_THAT(out, HasSubstr("mean_k_per_layer=[1.000 1.000 1.000 1.000]"));
  EXPECT_THAT(out, HasSubstr("token class"));
  EXPECT_THAT(out, HasSubstr("punctuation"));
  EXPECT_THAT(out, HasSubstr("frontier (the same 597 scored tokens; savings against native top-2)"));
  EXPECT_THAT(out, HasSubstr("topk k=1 (requested)"));
  EXPECT_THAT(out, HasSubstr("topp-raw p=0.70"));
}

class AdakEvalErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    int code = 0;
    const std::string out = RunCommand(Adak() + " make-model --arch mixtral --out " + Quote(model_.string()) +
                                           " --set num_hidden_layers=2 --set hidden_size=64 2>&1",
                                       &code);
    ASSERT_EQ(code, 0) << out;
    WriteFile(data_, "Hello world, hello again.\n");
  }

  std::string Run(const std::string& flags, int* code) {
    return RunCommand(Adak() + " eval --model " + Quote(model_.string()) + " " + flags + " 2>&1", code);
  }

  TempDir tmp_;
  std::filesystem::path model_ = tmp_.path() / "model";
  std::filesystem::path data_ = tmp_.path() / "data.txt";
};

TEST_F(AdakEvalErrors, MissingDataFileIsNotFoundNamingThePath) {
  int code = 0;
  const std::string missing = (tmp_.path() / "no-such-file.txt").string();
  const std::string out = Run("--data " + Quote(missing), &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("adak eval: cannot open --data file " + missing));
}

TEST_F(AdakEvalErrors, DataDirectoryIsRefused) {
  int code = 0;
  const std::string out = Run("--data " + Quote(tmp_.path().string()), &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("is a directory"));
}

TEST_F(AdakEvalErrors, DataWithFewerThanTwoTokensIsRefused) {
  int code = 0;
  WriteFile(data_, "a");
  std::string out = Run("--data " + Quote(data_.string()), &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("has 1 tokens; eval needs at least 2"));
  WriteFile(data_, "");
  out = Run("--data " + Quote(data_.string()), &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("has 0 tokens; eval needs at least 2"));
}

TEST_F(AdakEvalErrors, BadFlagsAreUsageErrors) {
  int code = 0;
  std::string out = Run("", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("missing required flag --data"));
  out = Run("--data " + Quote(data_.string()) + " --max-tokens 1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("--max-tokens must be 0 (the whole file) or at least 2, got 1"));
  out = Run("--data " + Quote(data_.string()) + " --context 1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("--context must be an integer in [2, "));
  out = Run("--data " + Quote(data_.string()) + " --routing adak", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("needs an allocator file (--allocator)"));
  out = Run("--data " + Quote(data_.string()) + " --sweep-topk=yes", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("flag --sweep-topk takes no value"));
  out = Run("--data " + Quote(data_.string()) + " --bogus 1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("unknown flag --bogus"));
}

TEST_F(AdakEvalErrors, WholeFileWithMaxTokensZero) {
  int code = 0;
  const std::string out = Run("--data " + Quote(data_.string()) + " --max-tokens 0 --json --sweep-topk", &code);
  ASSERT_EQ(code, 0) << out;
  const auto doc = nlohmann::json::parse(out);
  EXPECT_EQ(doc["windows"].get<int64_t>(), 1);
  EXPECT_EQ(doc["tokens"].get<int64_t>() + 1, doc["tokens_run"].get<int64_t>());
  EXPECT_EQ(doc["mean_k_per_layer"].size(), 2u);
  EXPECT_EQ(doc["sweep"].size(), 5u);
}

}  // namespace
}  // namespace adak
