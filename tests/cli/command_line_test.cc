// The `adak` and `adak-server` command lines as a user runs them: --version, --help generated from the flag
// declarations, usage errors (exit 2 naming the flag), the routing policy the allocator / null-experts
// files imply (eval and serve, on the project's own models/stories-moe-small), and the serving binary's
// independence from training/.
#include <signal.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/grpc_client.h"
#include "tests/server_process.h"
#include "tests/test_util.h"

namespace adak::testing {
namespace {

using ::testing::HasSubstr;

std::string Adak() { return AdakBinary(); }
std::string AdakServer() { return ShellQuote((BinDir() / "adak-server").string()); }
std::filesystem::path SmallModel() { return SourceDir() / "models/stories-moe-small"; }
std::string Allocator() { return ShellQuote((SmallModel() / "allocator.safetensors").string()); }

struct FlagHelp {
  const char* flag;
  const char* description;  // a fragment of its description
};

void ExpectHelpLists(const std::string& help, const std::vector<FlagHelp>& flags) {
  for (const FlagHelp& f : flags) {
    SCOPED_TRACE(f.flag);
    // The flag and its description on the same line (CLI11 does not wrap descriptions).
    const size_t at = help.find(std::string("  ") + f.flag + " ");
    ASSERT_NE(at, std::string::npos) << help;
    const size_t end = help.find('\n', help.find(f.description, at));
    EXPECT_THAT(help.substr(at, end - at), HasSubstr(f.description));
  }
}

TEST(AdakCommandLine, VersionIsTheProjectVersion) {
  int code = -1;
  const std::string out = RunCommand(Adak() + " --version 2>&1", &code);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, ::testing::MatchesRegex("adak [0-9]+\\.[0-9]+\\.[0-9]+\n"));
  EXPECT_EQ(RunCommand(AdakServer() + " --version 2>&1", &code), out);
  EXPECT_EQ(code, 0);
}

TEST(AdakCommandLine, HelpListsTheNineCommands) {
  int code = -1;
  const std::string out = RunCommand(Adak() + " --help", &code);
  EXPECT_EQ(code, 0);
  for (const char* command :
       {"generate", "logits", "perplexity", "eval", "train-allocator", "serve", "inspect", "tokenize", "make-model"}) {
    EXPECT_THAT(out, ::testing::ContainsRegex(std::string("\n  ") + command + " +[a-z]")) << command;
  }
}

const std::vector<FlagHelp> kServeFlags = {
    {"--model", "Hugging Face model directory"},
    {"--allocator", "selects --default-routing adak unless --default-routing is given"},
    {"--null-experts", "selects --default-routing null unless --default-routing is given"},
    {"--default-routing", "routing of requests that name none"},
    {"--default-top-p", "threshold of --default-routing topp"},
    {"--default-threshold", "t of --default-routing threshold"},
    {"--host", "address to listen on"},
    {"--grpc-port", "gRPC port; 0 = ephemeral, -1 = no gRPC server"},
    {"--http-port", "HTTP port; 0 = ephemeral, -1 = no HTTP gateway"},
    {"--http-threads", "HTTP gateway threads"},
    {"--threads", "engine worker threads"},
    {"--max-batch-tokens", "tokens per forward"},
    {"--max-running-requests", "sequences holding KV blocks"},
    {"--max-waiting-requests", "admitted but not yet running"},
    {"--prefill-chunk", "prompt tokens of one request per step"},
    {"--max-batch-expert-activations", "expert-compute budget per step"},
    {"--kv-cache-mib", "KV cache budget in MiB"},
    {"--kv-cache-dtype", "KV cache element type"},
    {"--matmul-precision", "dot products with BF16 weights: bf16 (activations rounded to bf16"},
    {"--device", "compute backend: cpu, cuda (the first GPU) or cuda:N (GPU N)"},
    {"--drain-timeout", "seconds running requests may take to finish"},
    {"--drain-grace", "seconds the ports stay open after SIGTERM/SIGINT"},
};

TEST(AdakCommandLine, ServeHelpListsEveryFlagWithItsDescriptionAndDefault) {
  int code = -1;
  const std::string help = RunCommand(Adak() + " serve --help", &code);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(help, HasSubstr("the inference server"));
  ExpectHelpLists(help, kServeFlags);
  EXPECT_THAT(help, HasSubstr("--grpc-port INT=50051"));
  EXPECT_THAT(help, HasSubstr("--max-batch-tokens INT=512"));
  EXPECT_THAT(help, HasSubstr("--matmul-precision PRECISION=bf16"));
  EXPECT_THAT(help, HasSubstr("--device DEVICE=cpu"));
  // adak-server is `adak serve` alone: the same flags, same descriptions.
  const std::string server_help = RunCommand(AdakServer() + " --help", &code);
  EXPECT_EQ(code, 0);
  ExpectHelpLists(server_help, kServeFlags);
  EXPECT_EQ(server_help.substr(server_help.find("  --model ")), help.substr(help.find("  --model ")));
}

TEST(AdakCommandLine, EvalHelpListsEveryFlagWithItsDescriptionAndDefault) {
  int code = -1;
  const std::string help = RunCommand(Adak() + " eval --help", &code);
  EXPECT_EQ(code, 0);
  ExpectHelpLists(help, {
                            {"--model", "Hugging Face model directory"},
                            {"--threads", "engine worker threads"},
                            {"--kv-cache-dtype", "KV cache element type"},
                            {"--matmul-precision", "dot products with BF16 weights: fp32 (exact)"},
                            {"--device", "compute backend: cpu, cuda (the first GPU) or cuda:N (GPU N)"},
                            {"--routing", "routing policy: topk, adak, null, topp or threshold"},
                            {"--allocator", "selects --routing adak unless --routing is given"},
                            {"--null-experts", "selects --routing null unless --routing is given"},
                            {"--top-k", "experts per token"},
                            {"--top-p", "smallest expert set with probability >= P"},
                            {"--top-p-weighting", "model (the native top-K's share and weights) or raw"},
                            {"--threshold", "keep expert i of the native top-K while p_i >= T * p_1"},
                            {"--min-k", "at least this many experts"},
                            {"--max-k", "at most this many experts"},
                            {"--data", "text file to score"},
                            {"--max-tokens", "score the first N tokens of --data"},
                            {"--context", "window length L"},
                            {"--json", "print one JSON object"},
                            {"--sweep", "a comma list of topk, topp, topp-raw, threshold, or all"},
                            {"--sweep-topk", "short for --sweep topk,topp-raw"},
                        });
  EXPECT_THAT(help, HasSubstr("--max-tokens INT=4096"));
  EXPECT_THAT(help, HasSubstr("--model DIR REQUIRED"));
  // The scoring commands compute exactly by default.
  EXPECT_THAT(help, HasSubstr("--kv-cache-dtype TYPE=f32"));
  EXPECT_THAT(help, HasSubstr("--matmul-precision PRECISION=fp32"));
  EXPECT_THAT(help, HasSubstr("--device DEVICE=cpu"));
}

// Every command that runs the model takes --device, the CPU by default.
TEST(AdakCommandLine, ModelCommandsTakeDeviceDefaultingToTheCpu) {
  for (const char* command : {"serve", "generate", "logits", "perplexity", "eval", "train-allocator"}) {
    int code = -1;
    const std::string help = RunCommand(Adak() + " " + command + " --help", &code);
    EXPECT_EQ(code, 0) << command;
    ExpectHelpLists(help, {{"--device", "compute backend: cpu, cuda (the first GPU) or cuda:N (GPU N)"}});
    EXPECT_THAT(help, HasSubstr("--device DEVICE=cpu")) << command;
  }
}

// `adak generate` runs the serving path, with `adak serve`'s defaults.
TEST(AdakCommandLine, GenerateDefaultsToTheServingPrecisions) {
  int code = -1;
  const std::string help = RunCommand(Adak() + " generate --help", &code);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(help, HasSubstr("--kv-cache-dtype TYPE=bf16"));
  EXPECT_THAT(help, HasSubstr("--matmul-precision PRECISION=bf16"));
}

TEST(AdakCommandLine, UsageErrorsExitTwoNamingTheFlag) {
  struct Case {
    std::string command;
    std::string message;
  };
  const std::string model = ShellQuote(SmallModel().string());
  const std::vector<Case> cases = {
      {Adak() + " serve --model " + model + " --bogus 1", "adak serve: unknown flag --bogus"},
      {AdakServer() + " --model " + model + " --bogus 1", "adak serve: unknown flag --bogus"},
      {Adak() + " eval --model " + model + " --data x --frobnicate", "adak eval: unknown flag --frobnicate"},
      {Adak() + " serve --grpc-port 0", "adak serve: missing required flag --model"},
      {AdakServer() + " --grpc-port 0", "adak serve: missing required flag --model"},
      {Adak() + " eval --data x", "adak eval: missing required flag --model"},
      {Adak() + " serve --model " + model + " --http-threads 0", "--http-threads must be an integer in [1, 256]"},
      {Adak() + " generate --model " + model + " --prompt", "flag --prompt needs a value"},
  };
  for (const Case& c : cases) {
    int code = -1;
    const std::string out = RunCommand(c.command + " 2>&1", &code);
    EXPECT_EQ(code, 2) << c.command << ": " << out;
    EXPECT_THAT(out, HasSubstr(c.message)) << c.command;
  }
}

// `adak eval` on stories-moe-small with its own allocator: 600 tokens of valid.txt.
nlohmann::json EvalSmall(const std::filesystem::path& shared, const std::string& flags) {
  int code = -1;
  const std::string out = RunCommand(Adak() + " eval --model " + ShellQuote(SmallModel().string()) + " --data " +
                                         ShellQuote((shared / "data/stories/valid.txt").string()) +
                                         " --max-tokens 600 --context 200 --threads 2 --json " + flags + " 2>&1",
                                     &code);
  EXPECT_EQ(code, 0) << out;
  if (code != 0) return nlohmann::json::object();
  return nlohmann::json::parse(out);
}

TEST(AdakCommandLine, AllocatorImpliesAdaKRouting) {
  ADAK_REQUIRE_SHARED(shared);
  const nlohmann::json adak = EvalSmall(shared, "--allocator " + Allocator());
  ASSERT_TRUE(adak.contains("routing")) << adak.dump();
  EXPECT_EQ(adak["routing"], "adak");
  EXPECT_LT(adak["mean_k"].get<double>(), 2.0);  // native K is 2
  EXPECT_GT(adak["savings_ratio"].get<double>(), 0.0);
}

TEST(AdakCommandLine, ExplicitTopKRoutingKeepsTopKWithAnAllocator) {
  ADAK_REQUIRE_SHARED(shared);
  const nlohmann::json topk = EvalSmall(shared, "--routing topk --allocator " + Allocator());
  ASSERT_TRUE(topk.contains("routing")) << topk.dump();
  EXPECT_EQ(topk["routing"], "topk");
  EXPECT_EQ(topk["mean_k"].get<double>(), 2.0);
  EXPECT_EQ(topk["savings_ratio"].get<double>(), 0.0);
}

TEST(AdakCommandLine, AllocatorAndNullExpertsWithoutRoutingIsAUsageError) {
  const std::string model = ShellQuote(SmallModel().string());
  int code = -1;
  std::string out = RunCommand(Adak() + " logits --model " + model + " --prompt hi --allocator " + Allocator() +
                                   " --null-experts n.safetensors 2>&1",
                               &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_THAT(out, HasSubstr("--allocator and --null-experts were both given without --routing"));
  out = RunCommand(
      Adak() + " eval --model " + model + " --data x --allocator " + Allocator() + " --null-experts n.safetensors 2>&1",
      &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_THAT(out, HasSubstr("--allocator and --null-experts were both given without --routing"));
  out = RunCommand(Adak() + " serve --model " + model + " --grpc-port 0 --http-port -1 --allocator " + Allocator() +
                       " --null-experts n.safetensors 2>&1",
                   &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_THAT(out, HasSubstr("--allocator and --null-experts were both given without --default-routing"));
}

// The mean k of a greedy request that names no routing policy, from `adak serve <args>`.
double DefaultRoutingMeanK(const std::vector<std::string>& args) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(args);
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return -1.0;
  auto stub = GenerationStub((*server)->grpc_port());
  const StreamResult result = RunStream(stub.get(), GreedyRequest("Once upon a time", 16));
  EXPECT_TRUE(result.status.ok()) << result.status.error_message() << "\n" << (*server)->Log();
  (*server)->Signal(SIGTERM);
  EXPECT_TRUE((*server)->WaitExit(absl::Seconds(30)).ok());
  return result.last.usage().mean_k();
}

// The metadata of a safetensors file (its JSON header's __metadata__).
nlohmann::json SafetensorsMetadata(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t size = 0;
  in.read(reinterpret_cast<char*>(&size), sizeof(size));
  std::string header(size, '\0');
  in.read(header.data(), static_cast<std::streamsize>(size));
  return nlohmann::json::parse(header).value("__metadata__", nlohmann::json::object());
}

// `adak eval --record` writes the profile's measured mean k and perplexity change against native top-K (on the
// same tokens) and the NAME of NAME=FILE into the allocator file, which then loads under that name.
TEST(AdakCommandLine, EvalRecordWritesTheProfilesMeasurementIntoItsFile) {
  TempDir tmp;
  const std::filesystem::path allocator = tmp.path() / "a.safetensors";
  std::filesystem::copy_file(SmallModel() / "allocator-eco.safetensors", allocator);
  const std::filesystem::path text = tmp.path() / "story.txt";
  {
    std::ofstream out(text);
    for (int i = 0; i < 6; ++i) {
      out << "Once upon a time, there was a little dog named Max. He liked to run in the park with his friend "
             "Sue. One day, they found a big red ball under a tree, and they played until the sun went down.\n";
    }
  }
  const std::string common = Adak() + " eval --model " + ShellQuote(SmallModel().string()) + " --data " +
                             ShellQuote(text.string()) + " --max-tokens 0 --context 64 --threads 2 --json ";
  int code = -1;
  const std::string recorded =
      RunCommand(common + "--allocator fast=" + ShellQuote(allocator.string()) + " --record 2>/dev/null", &code);
  ASSERT_EQ(code, 0) << recorded;
  const nlohmann::json adak = nlohmann::json::parse(recorded);
  const nlohmann::json native = nlohmann::json::parse(RunCommand(common + "2>/dev/null", &code));
  ASSERT_EQ(code, 0);
  const nlohmann::json meta = SafetensorsMetadata(allocator);
  EXPECT_EQ(meta["profile"], "fast");
  EXPECT_EQ(meta["lambda"], SafetensorsMetadata(SmallModel() / "allocator-eco.safetensors")["lambda"]);  // kept
  EXPECT_NEAR(std::stod(meta["measured_mean_k"].get<std::string>()), adak["mean_k"].get<double>(), 1e-6);
  EXPECT_NEAR(std::stod(meta["measured_ppl_delta"].get<std::string>()),
              adak["perplexity"].get<double>() / native["perplexity"].get<double>() - 1.0, 1e-6);
  EXPECT_THAT(meta["measured_on"].get<std::string>(), HasSubstr("story.txt"));
  // --record is for an allocator profile only.
  const std::string refused = RunCommand(common + "--record 2>&1", &code);
  EXPECT_EQ(code, 2) << refused;
  EXPECT_THAT(refused, HasSubstr("--record needs --routing adak"));
}

TEST(AdakCommandLine, ServeDefaultRoutingFollowsTheAllocator) {
  const std::string model = SmallModel().string();
  const std::string allocator = (SmallModel() / "allocator.safetensors").string();
  EXPECT_LT(DefaultRoutingMeanK({"--model", model, "--allocator", allocator, "--threads", "2"}), 2.0);
  EXPECT_EQ(
      DefaultRoutingMeanK({"--model", model, "--allocator", allocator, "--default-routing", "topk", "--threads", "2"}),
      2.0);
}

// adak-server links nothing of training/ (nor testing/); `adak` does, so the check can fail.
TEST(AdakServer, LinksNoTrainingCode) {
  int code = -1;
  const std::string server = RunCommand("nm -C " + AdakServer() + " | grep -c 'adak::training' 2>&1", &code);
  EXPECT_EQ(server, "0\n");
  const std::string testing = RunCommand("nm -C " + AdakServer() + " | grep -c 'adak::testing::' 2>&1", &code);
  EXPECT_EQ(testing, "0\n");
  const std::string adak = RunCommand("nm -C " + Adak() + " | grep -c 'adak::training' 2>&1", &code);
  EXPECT_GT(std::stoi(adak), 0) << "adak itself contains training code";
}

}  // namespace
}  // namespace adak::testing
