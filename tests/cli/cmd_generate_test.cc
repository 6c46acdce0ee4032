// `adak generate` and `adak serve` share one generation loop (scheduler::Scheduler): on the project's own
// models/stories-moe-small, the greedy text `adak generate` prints equals the HTTP server's greedy
// /v1/completions text for the same prompt, under native top-K and under Ada-K (the allocator implying the
// policy on both sides), with and without stopping at eos.
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tests/http_client.h"
#include "tests/server_process.h"
#include "tests/test_util.h"

namespace adak::testing {
namespace {

using ::testing::HasSubstr;

std::filesystem::path SmallModel() { return SourceDir() / "models/stories-moe-small"; }

struct Case {
  std::string prompt;
  int max_tokens = 0;
  bool ignore_eos = false;
};

const std::vector<Case> kCases = {
    {"Once upon a time", 40, true},
    {"The little dog was sad because", 32, false},
    {"Once upon a time", 300, false},  // ends at eos (after 148 tokens under top-K)
};

// The text `adak generate` prints after the prompt (its stdout is prompt + text + "\n").
std::string GenerateText(const Case& c, const std::vector<std::string>& routing_args, std::string* stats) {
  std::string command =
      absl::StrCat(AdakBinary(), " generate --model ", ShellQuote(SmallModel().string()), " --prompt ",
                   ShellQuote(c.prompt), " --max-tokens ", c.max_tokens, " --threads 2");
  if (c.ignore_eos) absl::StrAppend(&command, " --ignore-eos");
  for (const std::string& arg : routing_args) absl::StrAppend(&command, " ", ShellQuote(arg));
  TempDir tmp;
  const std::filesystem::path err = tmp.path() / "stderr.txt";
  int code = -1;
  const std::string out = RunCommand(absl::StrCat(command, " 2>", ShellQuote(err.string())), &code);
  *stats = ReadFile(err);
  EXPECT_EQ(code, 0) << out << *stats;
  EXPECT_EQ(out.substr(0, c.prompt.size()), c.prompt);
  EXPECT_FALSE(out.empty());
  if (out.size() < c.prompt.size() + 1 || out.back() != '\n') return absl::StrCat("<bad output: ", out, ">");
  return out.substr(c.prompt.size(), out.size() - c.prompt.size() - 1);
}

void ExpectGenerateMatchesServer(const std::vector<std::string>& routing_args, const std::string& routing_name) {
  std::vector<std::string> serve_args = {"--model", SmallModel().string(), "--threads", "2", "--grpc-port", "-1"};
  serve_args.insert(serve_args.end(), routing_args.begin(), routing_args.end());
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(serve_args);
  ASSERT_TRUE(server.ok()) << server.status();
  bool some_stopped_at_eos = false;
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.prompt);
    const nlohmann::json request = {
        {"prompt", c.prompt}, {"max_tokens", c.max_tokens}, {"temperature", 0}, {"ignore_eos", c.ignore_eos}};
    absl::StatusOr<HttpResponse> response =
        HttpRequest((*server)->http_port(), "POST", "/v1/completions", request.dump());
    ASSERT_TRUE(response.ok()) << response.status();
    ASSERT_EQ(response->status, 200) << response->body;
    const nlohmann::json choice = nlohmann::json::parse(response->body)["choices"][0];
    const std::string served = choice["text"].get<std::string>();
    ASSERT_FALSE(served.empty());
    std::string stats;
    EXPECT_EQ(GenerateText(c, routing_args, &stats), served);
    EXPECT_THAT(stats, HasSubstr("[stats] prompt_tokens="));
    EXPECT_THAT(stats, HasSubstr(absl::StrCat("finish_reason=", choice["finish_reason"].get<std::string>())));
    EXPECT_THAT(stats, HasSubstr(absl::StrCat("routing=", routing_name)));
    some_stopped_at_eos |= choice["finish_reason"] == "stop";
  }
  EXPECT_TRUE(some_stopped_at_eos) << "no case ended at eos; make the last one longer";
  (*server)->Signal(SIGTERM);
  EXPECT_TRUE((*server)->WaitExit(absl::Seconds(30)).ok());
}

TEST(AdakGenerate, GreedyTextEqualsTheServersCompletionTopK) { ExpectGenerateMatchesServer({}, "topk"); }

TEST(AdakGenerate, GreedyTextEqualsTheServersCompletionAdaK) {
  ExpectGenerateMatchesServer({"--allocator", (SmallModel() / "allocator.safetensors").string()}, "adak");
}

}  // namespace
}  // namespace adak::testing
