// The adak.v1.Generation gRPC service end to end, in process: a real ServerApp (the project's own
// models/stories-moe-small with its trained Ada-K allocator, gRPC on an ephemeral 127.0.0.1 port, HTTP off)
// called over the network through the generated stubs. Covers every method, validation errors, deadlines,
// cancellation (KV blocks freed), admission control, usage accounting against the model's reference
// outputs, and health checking. Needs nothing outside the repository.
#include <atomic>
#include <cmath>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/server_app.h"
#include "tests/grpc_client.h"
#include "tests/test_util.h"

namespace adak::server {
namespace {

using ::adak::testing::DefaultAllocator;
using ::adak::testing::DefaultModelDir;
using ::adak::testing::GenerationStub;
using ::adak::testing::GreedyRequest;
using ::adak::testing::HealthCheck;
using ::adak::testing::RunStream;
using ::adak::testing::StreamResult;
using ::adak::testing::WaitFor;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

ServerAppOptions TestOptions() {
  ServerAppOptions o;
  o.model_dir = DefaultModelDir();
  o.allocators = {engine::AllocatorFile{"", DefaultAllocator()},
                  engine::AllocatorFile{"", ::adak::testing::EcoAllocator()}};
  o.grpc_port = 0;
  o.http_port = -1;
  o.threads = 1;
  o.drain_timeout = absl::Seconds(10);
  return o;
}

// stories-moe-small's reference prompt (models/stories-moe-small/reference.json, "Once upon a time, there
// was a little dog named"): its 11 token ids.
const std::vector<int32_t> kReferencePromptIds = {504, 458, 258, 421, 11, 405, 288, 258, 388, 816, 666};

// The 48 greedy tokens after kReferencePromptIds (ignore_eos), as `adak generate --max-tokens 48
// --ignore-eos` prints them with native top-2 and with Ada-K (the shipped "eco" profile,
// allocator-eco.safetensors; ids and text as Generate returned them when the profile was made). The first is
// reference.json's fp32 PyTorch top-1, 1046 " Max".
struct GreedyContinuation {
  const char* policy;
  const char* profile;
  std::vector<int32_t> ids;
  const char* text;
};
const GreedyContinuation kGreedyTopK = {
    "topk",
    "",
    {1046, 13,  1046, 651, 270,  417,  340, 331, 896, 13,  645, 384, 11,   1046, 479, 270,
     261,  767, 340,  331, 469,  11,   258, 388, 527, 666, 543, 13,  543,  288,  413, 481,
     13,   198, 2793, 267, 1576, 1011, 672, 406, 384, 684, 13,  377, 1011, 672,  267, 351},
    " Max. Max loved to play with his ball. One day, Max went to the park with his friend, a little boy named "
    "Tim. Tim was very happy.\nMax and Sue played together all day long. They played together and had"};
const GreedyContinuation kGreedyAdaK = {
    "adak",
    "eco",
    {1046, 13,  1046, 651, 270,  417, 340, 331, 896, 13,  645, 384,  11,  1046, 479, 270,
     261,  767, 340,  331, 469,  11,  258, 388, 527, 666, 543, 11,   537, 270,  417, 267,
     461,  331, 469,  11,  1046, 11,  537, 267, 335, 11,  344, 2598, 11,  1571, 0,   314},
    " Max. Max loved to play with his ball. One day, Max went to the park with his friend, a little boy "
    "named Tim, came to play and saw his friend, Max, came and said, \"Hi, Spot! I"};

// Expert activations of kReferencePromptIds alone (11 tokens x 4 MoE layers): native top-2 runs 2 experts
// everywhere; the shipped eco profile picks 54 (`adak generate --max-tokens 1` and `adak logits --trace`).
constexpr int64_t kPromptActivationsTopK = 88;
constexpr int64_t kPromptActivationsAdaK = 54;

// A request that runs while a test checks deadlines, cancellation, admission or draining: as long as the
// 512-token context allows after "Once upon a time" (4 tokens), about a quarter of a second on one thread.
constexpr int kLongTokens = 480;

class GrpcServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<ServerApp>> app = ServerApp::Create(TestOptions());
    if (!app.ok()) {
      *error_ = app.status().ToString();
      return;
    }
    if (absl::Status s = (*app)->Start(); !s.ok()) {
      *error_ = s.ToString();
      return;
    }
    *app_ = *std::move(app);
  }
  static void TearDownTestSuite() { app_->reset(); }

  void SetUp() override {
    ASSERT_NE(*app_, nullptr) << *error_;
    stub_ = GenerationStub(app()->grpc_port());
  }

  static ServerApp* app() { return app_->get(); }

  grpc::Status Generate(const adak::v1::GenerateRequest& request, adak::v1::GenerateResponse* response,
                        absl::Duration deadline = absl::Seconds(60)) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    return stub_->Generate(&context, request, response);
  }

  static inline std::unique_ptr<ServerApp>* app_ = new std::unique_ptr<ServerApp>();
  static inline std::string* error_ = new std::string();
  std::unique_ptr<adak::v1::Generation::Stub> stub_;
};

TEST_F(GrpcServiceTest, GetModelInfoDescribesTheModelAndItsPolicies) {
  grpc::ClientContext context;
  adak::v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(&context, {}, &info).ok());
  EXPECT_EQ(info.name(), "stories-moe-small");
  EXPECT_EQ(info.architecture(), "MixtralForCausalLM");
  EXPECT_EQ(info.num_layers(), 4);
  EXPECT_EQ(info.num_moe_layers(), 4);
  EXPECT_EQ(info.num_experts(), 8);
  EXPECT_EQ(info.num_experts_per_tok(), 2);
  EXPECT_EQ(info.hidden_size(), 192);
  EXPECT_EQ(info.vocab_size(), 4096);
  EXPECT_EQ(info.max_context(), 512);
  EXPECT_EQ(info.default_routing(), "topk");
  EXPECT_THAT(info.routing_policies(), ::testing::ElementsAre("topk", "adak", "topp", "threshold"));
  EXPECT_THAT(info.eos_token_ids(), ::testing::ElementsAre(4095));
  EXPECT_EQ(info.total_parameters(), 7'872'192);
  // The two shipped allocator profiles, the default first, with what `adak eval --record` measured.
  ASSERT_EQ(info.allocator_profiles_size(), 2);
  EXPECT_EQ(info.allocator_profiles(0).name(), "balanced");
  EXPECT_EQ(info.allocator_profiles(1).name(), "eco");
  for (const adak::v1::AllocatorProfile& profile : info.allocator_profiles()) {
    ASSERT_TRUE(profile.has_measured_mean_k()) << profile.name();
    ASSERT_TRUE(profile.has_measured_ppl_delta()) << profile.name();
    EXPECT_GT(profile.measured_mean_k(), 1.0);
    EXPECT_LT(profile.measured_mean_k(), 2.0);
    EXPECT_THAT(profile.measured_on(), HasSubstr("valid.txt"));
  }
  EXPECT_LE(info.allocator_profiles(0).measured_ppl_delta(), 0.02);
}

// A request picks a profile by name: naming it alone selects Ada-K; the default profile is what policy adak
// runs; an unknown profile, or one with another policy, is InvalidArgument naming routing.profile.
TEST_F(GrpcServiceTest, RoutingProfilePicksTheAllocator) {
  auto activations = [&](const std::string& policy, const std::string& profile) {
    adak::v1::GenerateRequest request = GreedyRequest("", 1, policy);
    request.mutable_routing()->set_profile(profile);
    for (int32_t id : kReferencePromptIds) request.add_token_ids(id);
    adak::v1::GenerateResponse response;
    const grpc::Status status = Generate(request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.usage().expert_activations();
  };
  EXPECT_EQ(activations("", "eco"), kPromptActivationsAdaK);
  EXPECT_EQ(activations("adak", "balanced"), activations("adak", ""));
  EXPECT_NE(activations("adak", "balanced"), kPromptActivationsAdaK);
  for (const auto& [policy, profile, message] :
       {std::tuple{"adak", "nope", "routing.profile 'nope' is not loaded (profiles: balanced, eco)"},
        std::tuple{"topk", "eco", "routing.profile applies to routing.policy 'adak' only, not 'topk'"}}) {
    adak::v1::GenerateRequest request = GreedyRequest("hi", 1, policy);
    request.mutable_routing()->set_profile(profile);
    adak::v1::GenerateResponse response;
    const grpc::Status status = Generate(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr(message));
  }
}

// stories-moe-small's tokenizer.json is stories-mixtral's, byte for byte: the ids and tokens are those HF
// tokenizers gives for stories-mixtral's reference/topk.json prompt 1.
TEST_F(GrpcServiceTest, TokenizeMatchesTheReferenceIds) {
  grpc::ClientContext context;
  adak::v1::TokenizeRequest request;
  request.set_text("Once upon a time, there was a little girl who loved fashion.");
  adak::v1::TokenizeResponse response;
  ASSERT_TRUE(stub_->Tokenize(&context, request, &response).ok());
  EXPECT_EQ(std::vector<int32_t>(response.token_ids().begin(), response.token_ids().end()),
            std::vector<int32_t>({504, 458, 258, 421, 11, 405, 288, 258, 388, 509, 477, 651, 272, 1483, 494, 13}));
  EXPECT_EQ(std::vector<std::string>(response.tokens().begin(), response.tokens().end()),
            std::vector<std::string>({"Once", "\u0120upon", "\u0120a", "\u0120time", ",", "\u0120there", "\u0120was",
                                      "\u0120a", "\u0120little", "\u0120girl", "\u0120who", "\u0120loved", "\u0120f",
                                      "ash", "ion", "."}));
}

// (Invalid UTF-8 never reaches the service: proto3 strings are refused by the parser.)
TEST_F(GrpcServiceTest, TokenizeEmptyTextIsNoTokens) {
  grpc::ClientContext context;
  adak::v1::TokenizeResponse response;
  ASSERT_TRUE(stub_->Tokenize(&context, adak::v1::TokenizeRequest(), &response).ok());
  EXPECT_EQ(response.token_ids_size(), 0);
}

// Greedy output through the service equals the model's greedy continuation for both top-k and Ada-K
// routing, and its first token is the independent reference's (fp32 PyTorch) top-1.
TEST_F(GrpcServiceTest, GreedyGenerateMatchesTheReferenceContinuations) {
  std::ifstream in(DefaultModelDir() / "reference.json");
  const nlohmann::json ref = nlohmann::json::parse(in);
  ASSERT_EQ(ref["input_ids"].get<std::vector<int32_t>>(), kReferencePromptIds);
  EXPECT_EQ(kGreedyTopK.ids[0], ref["last_position_top10"][0][0].get<int32_t>());
  for (const GreedyContinuation* want : {&kGreedyTopK, &kGreedyAdaK}) {
    const std::string policy = want->policy;
    ASSERT_EQ(want->ids.size(), 48u) << policy;
    adak::v1::GenerateRequest request = GreedyRequest("", static_cast<int>(want->ids.size()), policy);
    request.mutable_routing()->set_profile(want->profile);
    for (int32_t id : kReferencePromptIds) request.add_token_ids(id);
    adak::v1::GenerateResponse response;
    const grpc::Status status = Generate(request, &response);
    ASSERT_TRUE(status.ok()) << policy << ": " << status.error_message();
    EXPECT_EQ(std::vector<int32_t>(response.token_ids().begin(), response.token_ids().end()), want->ids) << policy;
    EXPECT_EQ(response.text(), want->text) << policy;
    EXPECT_EQ(response.finish_reason(), "length");
    EXPECT_EQ(response.usage().prompt_tokens(), 11);
    EXPECT_EQ(response.usage().completion_tokens(), static_cast<int64_t>(want->ids.size()));
  }
}

TEST_F(GrpcServiceTest, StreamAndUnaryAgree) {
  const adak::v1::GenerateRequest request = GreedyRequest("Once upon a time", 24);
  adak::v1::GenerateResponse unary;
  ASSERT_TRUE(Generate(request, &unary).ok());
  const StreamResult stream = RunStream(stub_.get(), request);
  ASSERT_TRUE(stream.status.ok()) << stream.status.error_message();
  EXPECT_EQ(stream.text, unary.text());
  EXPECT_EQ(stream.token_ids, std::vector<int32_t>(unary.token_ids().begin(), unary.token_ids().end()));
  EXPECT_GE(stream.messages, 2);  // pieces, then the final message
  EXPECT_EQ(stream.last.finish_reason(), "length");
  EXPECT_EQ(stream.last.usage().completion_tokens(), 24);
  EXPECT_EQ(stream.last.usage().prompt_tokens(), unary.usage().prompt_tokens());
}

// The prompt's expert activations equal the reference's totals (max_tokens 1: only the prompt runs
// through the model), and Ada-K clamped to k = 1 saves exactly half of native top-2's expert FLOPs.
TEST_F(GrpcServiceTest, UsageCountsExpertActivationsAndFlopsSaved) {
  for (const auto& [policy, want] :
       {std::pair{"topk", kPromptActivationsTopK}, std::pair{"adak", kPromptActivationsAdaK}}) {
    adak::v1::GenerateRequest request = GreedyRequest("", 1, policy);
    if (std::string(policy) == "adak") request.mutable_routing()->set_profile("eco");
    for (int32_t id : kReferencePromptIds) request.add_token_ids(id);
    request.set_return_routing_stats(true);
    adak::v1::GenerateResponse response;
    ASSERT_TRUE(Generate(request, &response).ok());
    EXPECT_EQ(response.usage().expert_activations(), want) << policy;
    EXPECT_GT(response.usage().expert_flops(), 0.0) << policy;
    EXPECT_EQ(response.usage().mean_k_per_layer_size(), 4) << policy;
    EXPECT_NEAR(response.usage().mean_k(), static_cast<double>(want) / (11 * 4), 1e-9) << policy;
  }

  adak::v1::GenerateRequest request = GreedyRequest("Once upon a time", 8, "adak");
  request.mutable_routing()->set_max_k(1);
  adak::v1::GenerateResponse response;
  ASSERT_TRUE(Generate(request, &response).ok());
  const adak::v1::Usage& usage = response.usage();
  EXPECT_GT(usage.expert_flops_saved(), 0.0);
  EXPECT_DOUBLE_EQ(usage.expert_flops_saved(), usage.expert_flops());  // k = 1 against native K = 2
  EXPECT_DOUBLE_EQ(usage.mean_k(), 1.0);
  EXPECT_EQ(usage.mean_k_per_layer_size(), 0);  // not asked for
}

// The threshold rule over gRPC: t = 1 keeps only the top expert (k = 1 in every layer), t = 0.5 keeps the
// second one for some tokens, and min_k 2 restores native top-2.
TEST_F(GrpcServiceTest, ThresholdRoutingKeepsExpertsWithinAFactorOfTheTopOne) {
  auto mean_k = [&](float t, int min_k) {
    adak::v1::GenerateRequest request = GreedyRequest("Once upon a time", 8, "threshold");
    request.mutable_routing()->set_threshold(t);
    if (min_k > 0) request.mutable_routing()->set_min_k(min_k);
    adak::v1::GenerateResponse response;
    EXPECT_TRUE(Generate(request, &response).ok());
    return response.usage().mean_k();
  };
  EXPECT_DOUBLE_EQ(mean_k(1.0f, 0), 1.0);
  const double half = mean_k(0.5f, 0);
  EXPECT_GT(half, 1.0);
  EXPECT_LT(half, 2.0);
  EXPECT_DOUBLE_EQ(mean_k(1.0f, 2), 2.0);
}

TEST_F(GrpcServiceTest, LogprobsComeWithTheTokens) {
  adak::v1::GenerateRequest request = GreedyRequest("Once upon a time", 6);
  request.set_logprobs(3);
  adak::v1::GenerateResponse response;
  ASSERT_TRUE(Generate(request, &response).ok());
  ASSERT_EQ(response.logprobs_size(), 6);
  for (int i = 0; i < 6; ++i) {
    const adak::v1::TokenLogprob& lp = response.logprobs(i);
    EXPECT_EQ(lp.id(), response.token_ids(i));
    EXPECT_LE(lp.logprob(), 0.0f);
    ASSERT_EQ(lp.top_size(), 3);
    EXPECT_EQ(lp.top(0).id(), lp.id());  // greedy: the chosen token is the most likely one
  }
}

TEST_F(GrpcServiceTest, StopStringEndsGenerationBeforeIt) {
  adak::v1::GenerateResponse full;
  ASSERT_TRUE(Generate(GreedyRequest("Once upon a time", 24), &full).ok());
  // A word from the middle of the greedy text, with its leading space.
  const std::string& text = full.text();
  const size_t start = text.find(' ', text.size() / 2);
  ASSERT_NE(start, std::string::npos) << text;
  const size_t end = text.find(' ', start + 1);
  const std::string stop = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
  adak::v1::GenerateRequest request = GreedyRequest("Once upon a time", 24);
  request.add_stop(stop);
  for (bool streaming : {false, true}) {
    std::string got, reason, matched;
    if (streaming) {
      const StreamResult stream = RunStream(stub_.get(), request);
      ASSERT_TRUE(stream.status.ok());
      got = stream.text;
      reason = stream.last.finish_reason();
      matched = stream.last.matched_stop();
    } else {
      adak::v1::GenerateResponse response;
      ASSERT_TRUE(Generate(request, &response).ok());
      got = response.text();
      reason = response.finish_reason();
      matched = response.matched_stop();
    }
    EXPECT_EQ(reason, "stop") << streaming;
    EXPECT_EQ(matched, stop) << streaming;
    EXPECT_EQ(got, text.substr(0, text.find(stop))) << "stop " << stop << " streaming " << streaming;
  }
}

struct BadRequest {
  const char* name;
  std::function<void(adak::v1::GenerateRequest*)> edit;
  const char* field;
};

TEST_F(GrpcServiceTest, MalformedRequestsAreInvalidArgumentNamingTheField) {
  const std::vector<BadRequest> cases = {
      {"empty prompt", [](adak::v1::GenerateRequest* r) { r->clear_text(); }, "prompt"},
      {"text and ids", [](adak::v1::GenerateRequest* r) { r->add_token_ids(5); }, "prompt"},
      {"max_tokens 0", [](adak::v1::GenerateRequest* r) { r->set_max_tokens(0); }, "max_tokens"},
      {"max_tokens -3", [](adak::v1::GenerateRequest* r) { r->set_max_tokens(-3); }, "max_tokens"},
      {"max_tokens over the limit", [](adak::v1::GenerateRequest* r) { r->set_max_tokens(100000); }, "max_tokens"},
      {"prompt + max_tokens over the context", [](adak::v1::GenerateRequest* r) { r->set_max_tokens(510); },
       "prompt + max_tokens"},
      {"temperature < 0", [](adak::v1::GenerateRequest* r) { r->mutable_sampling()->set_temperature(-0.5f); },
       "temperature"},
      {"top_p 0", [](adak::v1::GenerateRequest* r) { r->mutable_sampling()->set_top_p(0.0f); }, "top_p"},
      {"unknown routing policy", [](adak::v1::GenerateRequest* r) { r->mutable_routing()->set_policy("bogus"); },
       "routing.policy"},
      {"null experts not loaded", [](adak::v1::GenerateRequest* r) { r->mutable_routing()->set_policy("null"); },
       "routing"},
      {"routing.top_k 9", [](adak::v1::GenerateRequest* r) { r->mutable_routing()->set_top_k(9); }, "routing.top_k"},
      {"token id out of range",
       [](adak::v1::GenerateRequest* r) {
         r->clear_text();
         r->add_token_ids(4096);
       },
       "prompt"},
      {"logprobs 21", [](adak::v1::GenerateRequest* r) { r->set_logprobs(21); }, "logprobs"},
      {"empty stop string", [](adak::v1::GenerateRequest* r) { r->add_stop(""); }, "stop"},
  };
  for (const BadRequest& c : cases) {
    adak::v1::GenerateRequest request = GreedyRequest("Once upon a time", 4);
    c.edit(&request);
    adak::v1::GenerateResponse response;
    const grpc::Status unary = Generate(request, &response);
    EXPECT_EQ(unary.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name << ": " << unary.error_message();
    EXPECT_THAT(unary.error_message(), HasSubstr(c.field)) << c.name;
    const StreamResult stream = RunStream(stub_.get(), request);
    EXPECT_EQ(stream.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    EXPECT_THAT(stream.status.error_message(), HasSubstr(c.field)) << c.name;
    EXPECT_EQ(stream.messages, 0) << c.name;
  }
}

TEST_F(GrpcServiceTest, ShortDeadlineIsDeadlineExceededAndFreesTheSequence) {
  const adak::v1::GenerateRequest request = GreedyRequest("Once upon a time", kLongTokens);
  const StreamResult stream = RunStream(stub_.get(), request, absl::Milliseconds(40));
  EXPECT_EQ(stream.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << stream.status.error_message();
  adak::v1::GenerateResponse response;
  EXPECT_EQ(Generate(request, &response, absl::Milliseconds(40)).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(WaitFor("the timed-out requests to be dropped", [] {
    const scheduler::SchedulerStats stats = app()->scheduler()->stats();
    return stats.running == 0 && stats.waiting == 0;
  }));
}

TEST_F(GrpcServiceTest, CancelledStreamFreesItsKvBlocks) {
  ASSERT_TRUE(WaitFor("the scheduler to be idle", [] { return app()->scheduler()->stats().running == 0; }));
  const int64_t baseline = app()->scheduler()->stats().kv_blocks_used;
  grpc::ClientContext context;
  auto reader = stub_->GenerateStream(&context, GreedyRequest("Once upon a time", kLongTokens));
  adak::v1::GenerateStreamResponse message;
  ASSERT_TRUE(reader->Read(&message));  // it runs
  EXPECT_TRUE(
      WaitFor("the stream to hold KV blocks", [&] { return app()->scheduler()->stats().kv_blocks_used > baseline; }));
  context.TryCancel();
  while (reader->Read(&message)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(WaitFor("the cancelled stream's KV blocks to be freed",
                      [&] {
                        const scheduler::SchedulerStats stats = app()->scheduler()->stats();
                        return stats.running == 0 && stats.kv_blocks_used == baseline;
                      }))
      << "kv_blocks_used " << app()->scheduler()->stats().kv_blocks_used << ", baseline " << baseline;
}

// Cancellations racing with token delivery and completion (the sink outlives the call): cancelled
// streams end CANCELLED, the others finish whole, and every KV block comes back.
TEST_F(GrpcServiceTest, ConcurrentCancellationsRaceSafely) {
  ASSERT_TRUE(WaitFor("the scheduler to be idle", [] { return app()->scheduler()->stats().running == 0; }));
  const int64_t baseline = app()->scheduler()->stats().kv_blocks_used;
  constexpr int kClients = 16;
  std::vector<grpc::Status> statuses(kClients);
  std::vector<size_t> tokens(kClients, 0);
  std::vector<std::thread> clients;
  clients.reserve(kClients);
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      grpc::ClientContext context;
      auto reader = stub_->GenerateStream(&context, GreedyRequest(absl::StrCat("Tale ", i), 48));
      const int cancel_after = i % 4 == 3 ? -1 : i % 4;  // -1: read to the end
      adak::v1::GenerateStreamResponse message;
      for (int read = 0; cancel_after < 0 || read < cancel_after; ++read) {
        if (!reader->Read(&message)) break;
        tokens[i] += static_cast<size_t>(message.token_ids_size());
      }
      if (cancel_after >= 0) context.TryCancel();
      while (reader->Read(&message)) tokens[i] += static_cast<size_t>(message.token_ids_size());
      statuses[i] = reader->Finish();
    });
  }
  for (std::thread& t : clients) t.join();
  for (int i = 0; i < kClients; ++i) {
    if (i % 4 == 3) {
      EXPECT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message();
      EXPECT_EQ(tokens[i], 48u) << i;
    } else {
      // A stream may finish before its cancel lands; otherwise it is CANCELLED.
      EXPECT_TRUE(statuses[i].ok() || statuses[i].error_code() == grpc::StatusCode::CANCELLED)
          << i << ": " << statuses[i].error_message();
    }
  }
  EXPECT_TRUE(WaitFor("every request to end and its KV blocks to be freed",
                      [&] {
                        const scheduler::SchedulerStats stats = app()->scheduler()->stats();
                        return stats.running == 0 && stats.waiting == 0 && stats.kv_blocks_used == baseline;
                      }))
      << "kv_blocks_used " << app()->scheduler()->stats().kv_blocks_used << ", baseline " << baseline;
}

// Score agrees with Generate: the greedy continuation is is_greedy and its logprob is the sum of the
// generated tokens' logprobs; a continuation the model does not prefer scores lower.
TEST_F(GrpcServiceTest, ScoreAgreesWithGreedyGeneration) {
  adak::v1::GenerateRequest generate = GreedyRequest("Once upon a time", 5);
  generate.set_logprobs(0);
  adak::v1::GenerateResponse generated;
  ASSERT_TRUE(Generate(generate, &generated).ok());
  double want = 0.0;
  for (const adak::v1::TokenLogprob& lp : generated.logprobs()) want += lp.logprob();

  adak::v1::ScoreRequest request;
  request.set_prompt("Once upon a time");
  adak::v1::TokenIds* greedy = request.add_continuation_token_ids();
  for (int32_t id : generated.token_ids()) greedy->add_ids(id);
  adak::v1::TokenIds* other = request.add_continuation_token_ids();
  other->add_ids(generated.token_ids(0) == 1000 ? 1001 : 1000);
  grpc::ClientContext context;
  adak::v1::ScoreResponse response;
  const grpc::Status status = stub_->Score(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.scores_size(), 2);
  EXPECT_TRUE(response.scores(0).is_greedy());
  EXPECT_NEAR(response.scores(0).logprob(), want, 1e-3);
  EXPECT_EQ(response.scores(0).token_logprobs_size(), 5);
  EXPECT_FALSE(response.scores(1).is_greedy());
  EXPECT_LT(response.scores(1).logprob(), response.scores(0).token_logprobs(0));
  EXPECT_GT(response.usage().expert_activations(), 0);
}

TEST_F(GrpcServiceTest, ScoreTextContinuationsAndValidation) {
  adak::v1::ScoreRequest request;
  request.set_prompt("Once upon a time, there was a little");
  request.add_continuations(" girl");
  request.add_continuations(" xylophone quantum");
  request.mutable_routing()->set_policy("adak");
  grpc::ClientContext context;
  adak::v1::ScoreResponse response;
  ASSERT_TRUE(stub_->Score(&context, request, &response).ok());
  ASSERT_EQ(response.scores_size(), 2);
  EXPECT_GT(response.scores(0).logprob(), response.scores(1).logprob());
  EXPECT_LT(response.scores(1).logprob(), 0.0);

  adak::v1::ScoreRequest no_continuations;
  no_continuations.set_prompt("Once");
  grpc::ClientContext c2;
  const grpc::Status status = stub_->Score(&c2, no_continuations, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("continuations"));
}

TEST_F(GrpcServiceTest, HealthReportsLivenessAndReadiness) {
  HealthCheckResponse::ServingStatus serving = HealthCheckResponse::UNKNOWN;
  ASSERT_TRUE(HealthCheck(app()->grpc_port(), "", &serving).ok());
  EXPECT_EQ(serving, HealthCheckResponse::SERVING);
  ASSERT_TRUE(HealthCheck(app()->grpc_port(), "adak.v1.Generation", &serving).ok());
  EXPECT_EQ(serving, HealthCheckResponse::SERVING);
  EXPECT_EQ(HealthCheck(app()->grpc_port(), "no.such.Service", &serving).error_code(), grpc::StatusCode::NOT_FOUND);
}

// --max-running-requests 1 --max-waiting-requests 1: a third request is RESOURCE_EXHAUSTED while the
// running and the queued ones still finish.
TEST(GrpcAdmissionTest, FullQueueIsResourceExhaustedWhileRunningRequestsFinish) {
  ServerAppOptions options = TestOptions();
  options.max_running_requests = 1;
  options.max_waiting_requests = 1;
  absl::StatusOr<std::unique_ptr<ServerApp>> app = ServerApp::Create(options);
  ASSERT_TRUE(app.ok()) << app.status();
  ASSERT_TRUE((*app)->Start().ok());
  auto stub = GenerationStub((*app)->grpc_port());
  const adak::v1::GenerateRequest long_request = GreedyRequest("Once upon a time", kLongTokens);
  StreamResult first, second;
  std::thread t1([&] { first = RunStream(stub.get(), long_request); });
  ASSERT_TRUE(WaitFor("the long request to run", [&] { return (*app)->scheduler()->stats().running == 1; }));
  std::thread t2([&] { second = RunStream(stub.get(), GreedyRequest("One day", 8)); });
  ASSERT_TRUE(WaitFor("the second request to queue", [&] { return (*app)->scheduler()->stats().waiting == 1; }));
  const StreamResult third = RunStream(stub.get(), GreedyRequest("The cat", 8));
  EXPECT_EQ(third.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << third.status.error_message();
  EXPECT_THAT(third.status.error_message(), HasSubstr("1"));
  t1.join();
  t2.join();
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_EQ(first.last.usage().completion_tokens(), kLongTokens);
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  EXPECT_EQ(second.last.usage().completion_tokens(), 8);
  EXPECT_NE((*app)->metrics()->Serialize().find("resource_exhausted"), std::string::npos);
}

// Drain: readiness off, new calls UNAVAILABLE, the running stream finishes (the drain timeout is far above the
// stream's length even in the sanitizer build, where its 480 tokens take over 30 s).
TEST(GrpcDrainTest, DrainFinishesRunningStreamsAndRefusesNewCalls) {
  absl::StatusOr<std::unique_ptr<ServerApp>> app = ServerApp::Create(TestOptions());
  ASSERT_TRUE(app.ok()) << app.status();
  ASSERT_TRUE((*app)->Start().ok());
  const int port = (*app)->grpc_port();
  auto stub = GenerationStub(port);
  StreamResult running;
  std::atomic<bool> running_done{false};
  std::thread t([&] {
    running = RunStream(stub.get(), GreedyRequest("Once upon a time", kLongTokens));
    running_done = true;
  });
  ASSERT_TRUE(WaitFor("the long request to run", [&] { return (*app)->scheduler()->stats().running == 1; }));
  bool drained = false;
  std::thread drain([&] { drained = (*app)->Drain(absl::Seconds(300)); });
  ASSERT_TRUE(
      WaitFor("the drain to begin", [&] { return (*app)->context()->state->phase() == ServingPhase::kDraining; }));
  HealthCheckResponse::ServingStatus serving = HealthCheckResponse::UNKNOWN;
  ASSERT_TRUE(HealthCheck(port, "adak.v1.Generation", &serving).ok());
  EXPECT_EQ(serving, HealthCheckResponse::NOT_SERVING);
  const StreamResult refused = RunStream(stub.get(), GreedyRequest("The cat", 4));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("draining"));
  EXPECT_FALSE(running_done.load()) << "the stream ended before the checks; make it longer";
  t.join();
  drain.join();
  EXPECT_TRUE(drained);
  ASSERT_TRUE(running.status.ok()) << running.status.error_message();
  EXPECT_EQ(running.last.usage().completion_tokens(), kLongTokens);
}

// A drain that times out cancels what still runs: the stream ends UNAVAILABLE, Drain returns false.
TEST(GrpcDrainTest, DrainTimeoutCancelsTheRest) {
  absl::StatusOr<std::unique_ptr<ServerApp>> app = ServerApp::Create(TestOptions());
  ASSERT_TRUE(app.ok()) << app.status();
  ASSERT_TRUE((*app)->Start().ok());
  auto stub = GenerationStub((*app)->grpc_port());
  StreamResult running;
  std::thread t([&] { running = RunStream(stub.get(), GreedyRequest("Once upon a time", kLongTokens)); });
  ASSERT_TRUE(WaitFor("the long request to run", [&] { return (*app)->scheduler()->stats().running == 1; }));
  EXPECT_FALSE((*app)->Drain(absl::Milliseconds(1)));
  t.join();
  EXPECT_EQ(running.status.error_code(), grpc::StatusCode::UNAVAILABLE) << running.status.error_message();
  EXPECT_LT(running.token_ids.size(), static_cast<size_t>(kLongTokens));
  (*app)->Shutdown();  // idempotent
}

// drain_grace: with nothing running the ports stay open that long, refusing new calls with UNAVAILABLE and
// reporting NOT_SERVING, so balancers see the readiness drop before the port closes.
TEST(GrpcDrainTest, DrainGraceKeepsRefusingUntilItPasses) {
  ServerAppOptions options = TestOptions();
  options.drain_grace = absl::Milliseconds(1500);
  absl::StatusOr<std::unique_ptr<ServerApp>> app = ServerApp::Create(options);
  ASSERT_TRUE(app.ok()) << app.status();
  ASSERT_TRUE((*app)->Start().ok());
  const int port = (*app)->grpc_port();
  auto stub = GenerationStub(port);
  const absl::Time start = absl::Now();
  std::atomic<bool> drained{false};
  std::thread drain([&] { drained = (*app)->Drain(absl::Seconds(60)); });
  ASSERT_TRUE(
      WaitFor("the drain to begin", [&] { return (*app)->context()->state->phase() == ServingPhase::kDraining; }));
  HealthCheckResponse::ServingStatus serving = HealthCheckResponse::UNKNOWN;
  ASSERT_TRUE(HealthCheck(port, "adak.v1.Generation", &serving).ok());
  EXPECT_EQ(serving, HealthCheckResponse::NOT_SERVING);
  const StreamResult refused = RunStream(stub.get(), GreedyRequest("The cat", 4));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_FALSE(drained.load()) << "idle, but the grace has not passed";
  drain.join();
  EXPECT_TRUE(drained.load());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(1500));
  // The grace never outlasts the drain timeout.
  options.drain_grace = absl::Seconds(30);
  absl::StatusOr<std::unique_ptr<ServerApp>> capped = ServerApp::Create(options);
  ASSERT_TRUE(capped.ok()) << capped.status();
  ASSERT_TRUE((*capped)->Start().ok());
  const absl::Time t0 = absl::Now();
  EXPECT_TRUE((*capped)->Drain(absl::Milliseconds(200)));
  EXPECT_LT(absl::Now() - t0, absl::Seconds(10));
}

}  // namespace
}  // namespace adak::server
