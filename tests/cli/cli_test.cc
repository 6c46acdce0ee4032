// The `adak` command as a user runs it: the real binary, real checkpoints, output parsed back.
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/backend.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"

namespace adak {
namespace {

using ::adak::testing::RunCommand;
using ::testing::HasSubstr;

std::string Adak() { return ::adak::testing::AdakBinary(); }
std::string Quote(const std::string& s) { return ::adak::testing::ShellQuote(s); }

// The ctest form of the check: `adak logits --json` on stories-mixtral equals the fp32 reference
// (same token ids, top-10 ids equal, logits within 1e-3 relative) for every reference prompt.
TEST(AdakLogits, JsonMatchesReferenceOnStoriesMixtral) {
  ADAK_REQUIRE_SHARED(shared);
  const auto dir = shared / "models/stories-mixtral";
  std::ifstream in(dir / "reference/topk.json");
  const auto reference = nlohmann::json::parse(in);
  for (const auto& prompt : reference["prompts"]) {
    int code = 0;
    const std::string out = RunCommand(Adak() + " logits --model " + Quote(dir.string()) + " --prompt " +
                                           Quote(prompt["prompt"].get<std::string>()) + " --top 10 --json",
                                       &code);
    ASSERT_EQ(code, 0) << out;
    const auto got = nlohmann::json::parse(out);
    ASSERT_EQ(got["token_ids"], prompt["input_ids"]);
    ASSERT_EQ(got["positions"].size(), prompt["top10_per_position"].size());
    for (size_t p = 0; p < got["positions"].size(); ++p) {
      const auto& top = got["positions"][p]["top"];
      const auto& want = prompt["top10_per_position"][p];
      ASSERT_EQ(top.size(), 10u);
      for (size_t i = 0; i < 10; ++i) {
        EXPECT_EQ(top[i][0], want[i][0]) << "position " << p << " rank " << i;
        const double g = top[i][1].get<double>(), w = want[i][1].get<double>();
        EXPECT_LE(std::fabs(g - w), 1e-3 * std::max(1.0, std::fabs(w))) << "position " << p << " rank " << i;
      }
    }
  }
}

// `adak logits --routing adak --trace --json` reproduces the reference k and experts of every position and
// layer, and its logits, with the reference's random allocator.
TEST(AdakLogits, AdaKTraceMatchesReference) {
  ADAK_REQUIRE_SHARED(shared);
  const auto dir = shared / "models/stories-mixtral";
  std::ifstream in(dir / "reference/adak.json");
  const auto reference = nlohmann::json::parse(in);
  for (const auto& prompt : reference["prompts"]) {
    int code = 0;
    const std::string out =
        RunCommand(Adak() + " logits --model " + Quote(dir.string()) + " --prompt " +
                       Quote(prompt["prompt"].get<std::string>()) + " --routing adak --allocator " +
                       Quote((dir / "reference/allocator-random.safetensors").string()) + " --trace --json",
                   &code);
    ASSERT_EQ(code, 0) << out;
    const auto got = nlohmann::json::parse(out);
    ASSERT_EQ(got["token_ids"], prompt["input_ids"]);
    for (size_t p = 0; p < got["positions"].size(); ++p) {
      const auto& layers = got["positions"][p]["layers"];
      ASSERT_EQ(layers.size(), 4u);
      for (size_t l = 0; l < 4; ++l) {
        EXPECT_EQ(layers[l]["k"], prompt["routing_per_layer"][l][p]["k"]) << "position " << p << " layer " << l;
        EXPECT_EQ(layers[l]["experts"], prompt["routing_per_layer"][l][p]["experts"])
            << "position " << p << " layer " << l;
      }
      const auto& top = got["positions"][p]["top"];
      const auto& want = prompt["top10_per_position"][p];
      for (size_t i = 0; i < 10; ++i) {
        EXPECT_EQ(top[i][0], want[i][0]) << "position " << p << " rank " << i;
        const double g = top[i][1].get<double>(), w = want[i][1].get<double>();
        EXPECT_LE(std::fabs(g - w), 1e-3 * std::max(1.0, std::fabs(w)));
      }
    }
  }
}

TEST(AdakPerplexity, ReportsRoutingStatsAndSavings) {
  ADAK_REQUIRE_SHARED(shared);
  const auto dir = shared / "models/stories-mixtral";
  int code = 0;
  std::string out = RunCommand(Adak() + " perplexity --model " + Quote(dir.string()) + " --data " +
                                   Quote((shared / "data/stories/valid.txt").string()) +
                                   " --max-tokens 600 --context 200 --routing topk --top-k 1 2>&1",
                               &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("tokens=600 scored=597 context=200"));
  EXPECT_THAT(out, HasSubstr("routing=topk mean_k=1.0000"));
  EXPECT_THAT(out, HasSubstr("savings=50.00%"));
  EXPECT_THAT(out, HasSubstr("mean_k_per_layer=[1.000 1.000 1.000 1.000]"));
}

// Routing flags are checked before the data is read: any real model will do, the project's own one.
TEST(AdakPerplexity, BadRoutingFlagsAreUsageErrors) {
  const std::string dir = ::adak::testing::DefaultModelDir().string();
  int code = 0;
  std::string out = RunCommand(Adak() + " perplexity --model " + Quote(dir) + " --data x --routing topp 2>&1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("--routing topp needs --top-p"));
  out = RunCommand(Adak() + " perplexity --model " + Quote(dir) + " --data x --routing adak 2>&1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("needs an allocator file (--allocator)"));
  out = RunCommand(Adak() + " perplexity --model " + Quote(dir) + " --data x --routing best 2>&1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("unknown routing policy 'best' (accepted: topk, adak, null, topp, threshold)"));
  out = RunCommand(Adak() + " perplexity --model " + Quote(dir) + " --data x --kv-cache-dtype fp16 2>&1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("--kv-cache-dtype: kv cache dtype 'fp16' is not one of f32, bf16"));
  out = RunCommand(Adak() + " perplexity --model " + Quote(dir) + " --data x --matmul-precision int8 2>&1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("--matmul-precision: matmul precision 'int8' is not one of fp32, bf16"));
  out = RunCommand(Adak() + " generate --model " + Quote(dir) + " --prompt hi --matmul-precision fp16 2>&1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("--matmul-precision: matmul precision 'fp16' is not one of fp32, bf16"));
}

// The offline commands that take --device, each with the flags it needs to reach the backend (a data file
// of enough tokens for train-allocator's windows).
std::vector<std::string> DeviceCommands(const std::string& dir, const std::string& data, const std::string& out) {
  const std::string model = " --model " + Quote(dir);
  return {
      Adak() + " generate" + model + " --prompt hi --max-tokens 2", Adak() + " logits" + model + " --prompt hi --top 1",
      Adak() + " perplexity" + model + " --data " + Quote(data), Adak() + " eval" + model + " --data " + Quote(data),
      Adak() + " train-allocator" + model + " --data " + Quote(data) + " --out " + Quote(out) +
          " --steps 1 --batch 1 --seq-len 8 --warm-start-steps 0"};
}

std::string WriteStory(const ::adak::testing::TempDir& tmp) {
  std::string path = (tmp.path() / "story.txt").string();
  std::ofstream out(path);
  out << "Once upon a time, there was a little dog named Max. He liked to run in the park with his friend Sue.\n";
  return path;
}

// --device is parsed before any model is loaded: an unknown spelling is a usage error naming the flag.
TEST(AdakDevice, BadSpellingsAreUsageErrorsNamingTheFlag) {
  ::adak::testing::TempDir tmp;
  const std::string data = WriteStory(tmp);
  const std::string dir = ::adak::testing::DefaultModelDir().string();
  for (const std::string& command : DeviceCommands(dir, data, (tmp.path() / "a.safetensors").string())) {
    int code = 0;
    std::string out = RunCommand(command + " --device tpu 2>&1", &code);
    EXPECT_EQ(code, 2) << command << ": " << out;
    EXPECT_THAT(out, HasSubstr("--device: device 'tpu' names no known backend; accepted: cpu, cuda, cuda:N"))
        << command;
    out = RunCommand(command + " --device cuda:99 2>&1", &code);
    EXPECT_EQ(code, 2) << command << ": " << out;
    EXPECT_THAT(out, HasSubstr("--device: device 'cuda:99' has an invalid device index")) << command;
    out = RunCommand(command + " --device cpu:1 2>&1", &code);
    EXPECT_EQ(code, 2) << command << ": " << out;
    EXPECT_THAT(out, HasSubstr("--device: device 'cpu:1' has an index, but the cpu device takes none")) << command;
  }
}

TEST(AdakDevice, ExplicitCpuRuns) {
  ::adak::testing::TempDir tmp;
  const std::string data = WriteStory(tmp);
  const std::string dir = ::adak::testing::DefaultModelDir().string();
  for (const std::string& command : DeviceCommands(dir, data, (tmp.path() / "a.safetensors").string())) {
    int code = -1;
    const std::string out = RunCommand(command + " --threads 2 --device cpu 2>&1", &code);
    EXPECT_EQ(code, 0) << command << ": " << out;
  }
}

// Without a GPU (or without the CUDA backend in this build), `--device cuda` fails with CreateBackend's message
// and a nonzero exit code, reported as an error: never an abort.
TEST(AdakDevice, CudaWithoutAGpuFailsCleanly) {
  if (engine::BackendAvailable("cuda")) GTEST_SKIP() << "a CUDA device is present: --device cuda runs here";
  ::adak::testing::TempDir tmp;
  const std::string data = WriteStory(tmp);
  const std::string dir = ::adak::testing::DefaultModelDir().string();
  for (const std::string& command : DeviceCommands(dir, data, (tmp.path() / "a.safetensors").string())) {
    for (const char* device : {"cuda", "cuda:1"}) {
      int code = 0;
      const std::string out = RunCommand(command + " --device " + device + " 2>&1", &code);
      EXPECT_TRUE(code == 1 || code == 2) << command << ": exit " << code << ": " << out;
      EXPECT_THAT(out, HasSubstr("backend 'cuda'")) << command;
      EXPECT_THAT(out, ::testing::AnyOf(HasSubstr("has no device on this machine"), HasSubstr("is not registered")))
          << command;
    }
  }
}

TEST(AdakGenerate, GreedyContinuesTheStoryAsTheReference) {
  ADAK_REQUIRE_SHARED(shared);
  const auto dir = shared / "models/stories-mixtral";
  std::ifstream in(dir / "reference/topk.json");
  const auto prompt = nlohmann::json::parse(in)["prompts"][1];
  int code = 0;
  const std::string out = RunCommand(Adak() + " generate --model " + Quote(dir.string()) + " --prompt " +
                                         Quote(prompt["prompt"].get<std::string>()) +
                                         " --max-tokens 48 --ignore-eos --threads 2 2>/dev/null",
                                     &code);
  ASSERT_EQ(code, 0);
  EXPECT_EQ(out, prompt["greedy"]["full_text"].get<std::string>() + "\n");
}

// Any real model will do: the project's own stories-moe-small (its tokenizer is stories-mixtral's).
TEST(AdakGenerate, PrintsStatsLine) {
  int code = 0;
  const std::string model = Quote(::adak::testing::DefaultModelDir().string());
  const std::string out = RunCommand(Adak() + " generate --model " + model +
                                         " --prompt 'Once upon a time' --max-tokens 8 --temperature 0.8 --seed 3 2>&1",
                                     &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("[stats] prompt_tokens=4 "));
  EXPECT_THAT(out, HasSubstr("decode_tok_s="));
}

TEST(AdakCli, BadUsageIsReportedWithExitCode2) {
  int code = 0;
  std::string out = RunCommand(Adak() + " generate --model /nonexistent --prompt hi 2>&1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("/nonexistent"));
  out = RunCommand(Adak() + " generate --bogus 1 2>&1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("unknown flag --bogus"));
  out = RunCommand(Adak() + " logits --model x --prompt hi --top 0 2>&1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("--top must be an integer in [1, "));
  out = RunCommand(Adak() + " frobnicate 2>&1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("unknown command 'frobnicate'"));
}

TEST(AdakCli, MakeModelInspectGenerateRoundTrip) {
  ::adak::testing::TempDir tmp;
  for (const std::string arch : {"mixtral", "qwen2_moe", "deepseek", "olmoe", "qwen3_moe"}) {
    SCOPED_TRACE(arch);
    const std::string dir = (tmp.path() / arch).string();
    int code = 0;
    std::string out = RunCommand(absl::StrCat(Adak(), " make-model --arch ", arch, " --out ", dir,
                                              " --seed 5 --set num_hidden_layers=2 --set hidden_size=64 2>&1"),
                                 &code);
    ASSERT_EQ(code, 0) << out;
    out = RunCommand(Adak() + " inspect --model " + dir + " 2>&1", &code);
    ASSERT_EQ(code, 0) << out;
    EXPECT_THAT(out, HasSubstr("hidden:           64"));
    EXPECT_THAT(out, HasSubstr("active per token"));
    out = RunCommand(Adak() + " generate --model " + dir + " --prompt 'Hello there' --max-tokens 5 --ignore-eos 2>&1",
                     &code);
    ASSERT_EQ(code, 0) << out;
    EXPECT_THAT(out, HasSubstr("generated_tokens=5"));
  }
}

}  // namespace
}  // namespace adak
