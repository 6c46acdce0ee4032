// `adak serve` as a real process (tests/server_process.h) on the project's own models/stories-moe-small
// (with its trained allocator), on 127.0.0.1 with ephemeral ports: the ready line, 32 concurrent greedy
// streams that each get exactly their solo text, SIGTERM draining in-flight streams (new calls
// UNAVAILABLE, readiness NOT_SERVING, exit 0), and refused flags.
#include <signal.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/backend.h"
#include "tests/grpc_client.h"
#include "tests/server_process.h"
#include "tests/test_util.h"

namespace adak::testing {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

// The project's own model with its trained Ada-K allocator (in the repository: these tests never skip).
std::vector<std::string> ModelArgs() {
  return {"--model", DefaultModelDir().string(), "--allocator", DefaultAllocator().string(), "--threads", "1"};
}

TEST(ServeProcessTest, ReadyLineNamesTheModelAndBothPorts) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(ModelArgs());
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_GT((*server)->grpc_port(), 0);
  EXPECT_GT((*server)->http_port(), 0);
  EXPECT_NE((*server)->grpc_port(), (*server)->http_port());
  EXPECT_THAT((*server)->Log(), HasSubstr("adak serve: ready model=stories-moe-small grpc=127.0.0.1:"));
  // The default cache: 64 running requests x 512 positions, bf16 (4 layers x 2 x 64 KV values x 2 bytes a token).
  EXPECT_THAT((*server)->Log(),
              HasSubstr("adak serve: kv cache 2048 blocks of 16 tokens (32768 tokens), bf16, 32.0 MiB"));
  // bf16 dot products by default (exact where the CPU has no AVX512_BF16, and the line says so).
  EXPECT_THAT((*server)->Log(), HasSubstr("adak serve: matmul precision bf16 ("));
  // The CPU backend by default, logged beside the precision.
  EXPECT_THAT((*server)->Log(), HasSubstr("adak serve: device cpu"));
  HealthCheckResponse::ServingStatus serving = HealthCheckResponse::UNKNOWN;
  ASSERT_TRUE(HealthCheck((*server)->grpc_port(), "adak.v1.Generation", &serving).ok());
  EXPECT_EQ(serving, HealthCheckResponse::SERVING);
  (*server)->Signal(SIGINT);
  absl::StatusOr<int> code = (*server)->WaitExit(absl::Seconds(20));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << (*server)->Log();
}

// Continuous batching must not change greedy output: 32 concurrent streams (8 prompts x top-k/Ada-K x 2)
// each finish with exactly the text the same request gets alone.
TEST(ServeProcessTest, ConcurrentStreamsGetTheirSoloText) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(ModelArgs());
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = GenerationStub((*server)->grpc_port());
  const std::vector<std::string> prompts = {
      "Once upon a time",           "The little dog", "Tom and Sue went to",     "One day, a big bird",
      "She was very happy because", "The sun was",    "Lily liked to play with", "In the park there was"};
  std::vector<adak::v1::GenerateRequest> requests;
  for (const std::string& prompt : prompts) {
    for (const char* policy : {"topk", "adak"}) requests.push_back(GreedyRequest(prompt, 20, policy));
  }
  std::vector<StreamResult> solo;
  for (const adak::v1::GenerateRequest& request : requests) {
    solo.push_back(RunStream(stub.get(), request));
    ASSERT_TRUE(solo.back().status.ok()) << solo.back().status.error_message() << "\n" << (*server)->Log();
    ASSERT_EQ(solo.back().token_ids.size(), 20u);
  }

  constexpr int kClients = 32;
  std::vector<StreamResult> results(kClients);
  std::vector<std::thread> clients;
  clients.reserve(kClients);
  std::atomic<int> ready{0};
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      auto own = GenerationStub((*server)->grpc_port());  // its own channel, like a separate client
      ++ready;
      while (ready.load() < kClients) std::this_thread::yield();
      results[i] = RunStream(own.get(), requests[i % requests.size()]);
    });
  }
  for (std::thread& t : clients) t.join();
  for (int i = 0; i < kClients; ++i) {
    const StreamResult& want = solo[i % solo.size()];
    ASSERT_TRUE(results[i].status.ok()) << i << ": " << results[i].status.error_message();
    EXPECT_EQ(results[i].text, want.text) << "client " << i;
    EXPECT_EQ(results[i].token_ids, want.token_ids) << "client " << i;
    EXPECT_EQ(results[i].last.finish_reason(), "length");
    EXPECT_EQ(results[i].last.usage().completion_tokens(), 20);
  }
}

// SIGTERM while streams run: readiness goes NOT_SERVING, new calls get UNAVAILABLE, the running streams
// finish completely, and the process exits 0.
TEST(ServeProcessTest, SigtermDrainsInFlightStreamsAndExitsZero) {
  std::vector<std::string> args = ModelArgs();
  // The drain must outlast the streams even in the sanitizer build on a loaded 2-core machine (4 x 300 tokens
  // took over 60 s there); the test asserts that the drain finished, which a long timeout does not weaken.
  args.insert(args.end(), {"--drain-timeout", "600"});
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(args);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->grpc_port();
  auto stub = GenerationStub(port);
  constexpr int kStreams = 4;
  constexpr int kTokens = 300;
  std::vector<StreamResult> results(kStreams);
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  std::vector<std::thread> streams;
  streams.reserve(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    streams.emplace_back([&, i] {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(600)));
      auto reader = stub->GenerateStream(&context, GreedyRequest(absl::StrCat("Story number ", i), kTokens));
      adak::v1::GenerateStreamResponse message;
      bool first = true;
      while (reader->Read(&message)) {
        if (first) ++started;
        first = false;
        results[i].text += message.text();
        results[i].token_ids.insert(results[i].token_ids.end(), message.token_ids().begin(), message.token_ids().end());
        results[i].last = message;
      }
      results[i].status = reader->Finish();
      ++finished;
    });
  }
  ASSERT_TRUE(WaitFor("every stream's first message", [&] { return started.load() == kStreams; })) << (*server)->Log();
  (*server)->Signal(SIGTERM);

  HealthCheckResponse::ServingStatus serving = HealthCheckResponse::SERVING;
  EXPECT_TRUE(WaitFor("readiness NOT_SERVING", [&] {
    return HealthCheck(port, "adak.v1.Generation", &serving).ok() && serving == HealthCheckResponse::NOT_SERVING;
  })) << (*server)->Log();
  const StreamResult refused = RunStream(stub.get(), GreedyRequest("Another story", 4));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("draining"));
  EXPECT_LT(finished.load(), kStreams) << "the streams ended before the drain checks ran; make them longer";

  for (std::thread& t : streams) t.join();
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(results[i].status.ok()) << i << ": " << results[i].status.error_message() << "\n" << (*server)->Log();
    EXPECT_EQ(results[i].token_ids.size(), static_cast<size_t>(kTokens)) << i;
    EXPECT_EQ(results[i].last.finish_reason(), "length") << i;
  }
  absl::StatusOr<int> code = (*server)->WaitExit(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status() << "\n" << (*server)->Log();
  EXPECT_EQ(*code, 0) << (*server)->Log();
  EXPECT_THAT((*server)->Log(), HasSubstr("drained"));
}

TEST(ServeProcessTest, BadFlagsExitTwoNamingTheFlag) {
  const std::string model = DefaultModelDir().string();
  // stories-moe-small's full context needs 0.5 MiB of (bf16, the default) KV cache, so the smallest
  // --kv-cache-mib is enough for it; a generated Mixtral with 2048 positions needs 4 MiB, and 1 MiB is refused.
  TempDir tmp;
  const std::string long_context = (tmp.path() / "mixtral-2048").string();
  int make_code = 0;
  const std::string made =
      RunCommand(AdakBinary() + " make-model --arch mixtral --out " + ShellQuote(long_context) + " 2>&1", &make_code);
  ASSERT_EQ(make_code, 0) << made;
  struct Case {
    std::string args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"--model " + ShellQuote(model) + " --default-routing adak", "--allocator"},
      {"--model " + ShellQuote(model) + " --default-routing bogus", "--default-routing"},
      {"--model " + ShellQuote(long_context) + " --kv-cache-mib 1", "--kv-cache-mib"},
      {"--model " + ShellQuote(model) + " --kv-cache-dtype fp8",
       "--kv-cache-dtype: kv cache dtype 'fp8' is not one of"},
      {"--model " + ShellQuote(model) + " --matmul-precision fp8",
       "--matmul-precision: matmul precision 'fp8' is not one of fp32, bf16"},
      {"--model " + ShellQuote(model) + " --device tpu",
       "--device: device 'tpu' names no known backend; accepted: cpu, cuda, cuda:N (N an integer in 0..63)"},
      {"--model " + ShellQuote(model) + " --device cuda:99", "--device: device 'cuda:99' has an invalid device index"},
      {"--model " + ShellQuote(model) + " --device cpu:0", "--device: device 'cpu:0' has an index"},
      {"--model " + ShellQuote(model) + " --grpc-port 70000", "grpc-port"},
      {"--model " + ShellQuote(model) + " --max-running-requests 0", "max-running-requests"},
      {"--model /nonexistent/model", "/nonexistent/model"},
      {"--grpc-port 0", "--model"},
  };
  for (const Case& c : cases) {
    // Loopback and ephemeral ports, and a time limit: a flag that is wrongly accepted starts a server,
    // which must neither take a fixed port nor hang the test (it then fails with exit code 124).
    std::string args = c.args + " --host 127.0.0.1 --http-port 0";
    if (c.args.find("--grpc-port") == std::string::npos) args += " --grpc-port 0";
    int exit_code = 0;
    const std::string out = RunCommand("timeout 60 " + AdakBinary() + " serve " + args + " 2>&1", &exit_code);
    EXPECT_EQ(exit_code, 2) << args << ": " << out;
    EXPECT_THAT(out, HasSubstr(c.message)) << args;
  }
}

// Without a GPU (or without the CUDA backend in this build) `serve --device cuda` exits nonzero with
// CreateBackend's message, before loading the model (a missing model directory is not reached).
TEST(ServeProcessTest, CudaDeviceWithoutAGpuFailsCleanly) {
  if (engine::BackendAvailable("cuda")) GTEST_SKIP() << "a CUDA device is present: --device cuda serves here";
  for (const std::string& model : {DefaultModelDir().string(), std::string("/nonexistent/model")}) {
    int exit_code = 0;
    const std::string out = RunCommand("timeout 60 " + AdakBinary() + " serve --model " + ShellQuote(model) +
                                           " --device cuda --host 127.0.0.1 --grpc-port 0 --http-port 0 2>&1",
                                       &exit_code);
    EXPECT_TRUE(exit_code == 1 || exit_code == 2) << "exit " << exit_code << ": " << out;
    EXPECT_THAT(out, HasSubstr("adak serve: backend 'cuda'"));
    EXPECT_THAT(out, ::testing::AnyOf(HasSubstr("has no device on this machine"), HasSubstr("is not registered")));
    EXPECT_THAT(out, ::testing::Not(HasSubstr("/nonexistent/model")));
  }
}

}  // namespace
}  // namespace adak::testing
