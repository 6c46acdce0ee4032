// The OpenAI /v1/completions JSON mapping without a running server: request parsing (every field, the
// refusals and the params they name) and the response objects and SSE chunks built from scheduler output,
// for the project's own models/stories-moe-small (its tokenizer and limits).
#include "server/http/completions.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "base/error_field.h"
#include "engine/model.h"
#include "engine/routing_weights.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/http/chat_completions.h"
#include "server/http/completion_builder.h"
#include "server/status_mapping.h"
#include "tests/test_util.h"

namespace adak::server {
namespace {

using ::adak::testing::StatusIs;
using ::testing::HasSubstr;
using Json = nlohmann::json;

class HttpCompletionsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<engine::Model>> model = engine::LoadModel(::adak::testing::DefaultModelDir());
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = model->release();
    weights_ = new engine::RoutingWeights();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete weights_;
  }
  void SetUp() override {
    ASSERT_NE(model_, nullptr);
    context_.model = model_;
    context_.routing_weights = weights_;
    context_.model_name = "stories-moe-small";
  }

  absl::StatusOr<CompletionCall> Parse(const Json& body) { return ParseCompletionRequest(body.dump(), context_); }

  static engine::Model* model_;
  static engine::RoutingWeights* weights_;
  ServiceContext context_;
};

engine::Model* HttpCompletionsTest::model_ = nullptr;
engine::RoutingWeights* HttpCompletionsTest::weights_ = nullptr;

TEST_F(HttpCompletionsTest, ParsesOpenAiFieldsAndExtensions) {
  absl::StatusOr<CompletionCall> call =
      Parse(Json{{"model", "stories-moe-small"},
                 {"prompt", "Hello"},
                 {"max_tokens", 7},
                 {"temperature", 0.5},
                 {"top_p", 0.9},
                 {"top_k", -1},
                 {"min_p", 0.1},
                 {"repetition_penalty", 1.1},
                 {"seed", 42},
                 {"stop", "\n"},
                 {"stop_token_ids", {5, 6}},
                 {"ignore_eos", true},
                 {"stream", true},
                 {"logprobs", 2},
                 {"n", 1},
                 {"presence_penalty", 0.25},
                 {"frequency_penalty", -0.5},
                 {"user", "me"},
                 {"unknown_field", 1},
                 {"adak", {{"routing", {{"policy", "topk"}, {"top_k", 3}}}, {"return_routing_stats", true}}}});
  ASSERT_TRUE(call.ok()) << call.status();
  const ApiRequest& api = call->api;
  ASSERT_EQ(call->prompts.size(), 1u);
  EXPECT_EQ(call->prompts[0].text, "Hello");
  EXPECT_EQ(call->n, 1);
  EXPECT_EQ(call->best_of, 1);
  EXPECT_EQ(api.max_tokens, 7);
  EXPECT_EQ(api.temperature, 0.5);
  EXPECT_EQ(api.top_p, 0.9);
  EXPECT_EQ(api.top_k, 0);  // vLLM's -1 = off
  EXPECT_EQ(api.seed, 42u);
  EXPECT_EQ(api.presence_penalty, 0.25);
  EXPECT_EQ(api.frequency_penalty, -0.5);
  EXPECT_THAT(api.stop, ::testing::ElementsAre("\n"));
  EXPECT_THAT(api.stop_token_ids, ::testing::ElementsAre(5, 6));
  EXPECT_TRUE(api.ignore_eos);
  EXPECT_EQ(api.logprobs, 2);
  EXPECT_TRUE(call->stream);
  EXPECT_TRUE(call->logprobs);
  EXPECT_FALSE(call->echo);
  EXPECT_FALSE(api.prompt_logprobs);
  EXPECT_EQ(api.routing.policy, "topk");
  EXPECT_EQ(api.routing.top_k, 3);
  EXPECT_TRUE(api.return_routing_stats);
}

TEST_F(HttpCompletionsTest, PromptForms) {
  absl::StatusOr<CompletionCall> ids = Parse(Json{{"prompt", {1, 2, 3}}});
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_EQ(ids->prompts.size(), 1u);
  EXPECT_THAT(*ids->prompts[0].token_ids, ::testing::ElementsAre(1, 2, 3));
  absl::StatusOr<CompletionCall> one_text = Parse(Json{{"prompt", Json::array({"Hi"})}});
  ASSERT_TRUE(one_text.ok()) << one_text.status();
  EXPECT_EQ(one_text->prompts[0].text, "Hi");
  absl::StatusOr<CompletionCall> one_ids = Parse(Json{{"prompt", Json::array({Json::array({7, 8})})}});
  ASSERT_TRUE(one_ids.ok()) << one_ids.status();
  EXPECT_THAT(*one_ids->prompts[0].token_ids, ::testing::ElementsAre(7, 8));
  // Batches, as lm-evaluation-harness sends them: strings or token-id arrays, one candidate each.
  absl::StatusOr<CompletionCall> texts = Parse(Json{{"prompt", {"a", "b", "c"}}});
  ASSERT_TRUE(texts.ok()) << texts.status();
  ASSERT_EQ(texts->prompts.size(), 3u);
  EXPECT_EQ(texts->prompts[2].text, "c");
  EXPECT_EQ(texts->candidates(), 3);
  absl::StatusOr<CompletionCall> id_lists =
      Parse(Json{{"prompt", Json::array({Json::array({1}), Json::array({2, 3})})}});
  ASSERT_TRUE(id_lists.ok()) << id_lists.status();
  EXPECT_THAT(*id_lists->prompts[1].token_ids, ::testing::ElementsAre(2, 3));
  EXPECT_THAT(Parse(Json{{"prompt", Json::array({"a", Json::array()})}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at index 1 of the batch")));
  EXPECT_THAT(Parse(Json{{"prompt", Json(std::vector<std::string>(65, "x"))}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("over the limit of 64")));
  EXPECT_THAT(Parse(Json{{"prompt", Json::array()}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prompt")));
  EXPECT_THAT(Parse(Json{{"prompt", 5}}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prompt")));
  EXPECT_THAT(Parse(Json{{"prompt", {1, 5000000000LL}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of range")));
  EXPECT_THAT(Parse(Json{{"max_tokens", 1}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prompt is required")));
}

TEST_F(HttpCompletionsTest, EchoWithLogprobsScoresThePrompt) {
  absl::StatusOr<CompletionCall> scoring = Parse(Json{{"prompt", "Hi"}, {"echo", true}, {"logprobs", 0}});
  ASSERT_TRUE(scoring.ok()) << scoring.status();
  EXPECT_TRUE(scoring->api.prompt_logprobs);
  EXPECT_TRUE(scoring->api.allow_zero_max_tokens);
  EXPECT_EQ(scoring->api.max_tokens, 16);  // OpenAI's default even when scoring
  absl::StatusOr<CompletionCall> echo_only = Parse(Json{{"prompt", "Hi"}, {"echo", true}, {"max_tokens", 0}});
  ASSERT_TRUE(echo_only.ok()) << echo_only.status();
  EXPECT_TRUE(echo_only->api.prompt_logprobs);
  EXPECT_FALSE(echo_only->logprobs);
  absl::StatusOr<CompletionCall> plain = Parse(Json{{"prompt", "Hi"}, {"max_tokens", 0}});
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->api.allow_zero_max_tokens);  // BuildRequest refuses max_tokens 0 then
  // Streamed prompt scoring: the prompt logprobs come in the first (echo) chunk.
  absl::StatusOr<CompletionCall> streamed =
      Parse(Json{{"prompt", "Hi"}, {"echo", true}, {"logprobs", 1}, {"stream", true}});
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  EXPECT_TRUE(streamed->api.prompt_logprobs);
}

TEST_F(HttpCompletionsTest, ChoicesSeedsAndLogitBias) {
  absl::StatusOr<CompletionCall> call = Parse(
      Json{{"prompt", {"a", "b"}}, {"n", 2}, {"best_of", 3}, {"seed", 7}, {"logit_bias", {{"5", -100}, {"9", 2.5}}}});
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->candidates(), 6);
  EXPECT_EQ(call->api.logprobs, 0);  // best_of > n ranks by cumulative logprob
  EXPECT_FALSE(call->logprobs);      // ... without returning logprobs
  EXPECT_THAT(call->api.logit_bias,
              ::testing::ElementsAre(std::pair<int64_t, double>{5, -100.0}, std::pair<int64_t, double>{9, 2.5}));
  // Candidate c: prompt c / best_of, seed + c % best_of.
  const ApiRequest fifth = CandidateRequest(*call, 4);
  EXPECT_EQ(fifth.text, "b");
  EXPECT_EQ(fifth.seed, 8u);
  EXPECT_EQ(CandidateRequest(*call, 0).text, "a");
  EXPECT_EQ(CandidateRequest(*call, 0).seed, 7u);
  // Admission refuses ids outside the vocabulary and biases outside [-100, 100], naming logit_bias.
  ApiRequest bad = CandidateRequest(*call, 0);
  bad.logit_bias = {{4096, 1.0}};
  EXPECT_THAT(BuildRequest(bad, context_), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("vocabulary")));
  bad.logit_bias = {{5, -100.5}};
  EXPECT_THAT(BuildRequest(bad, context_), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[-100, 100]")));
  EXPECT_EQ(ErrorParam(BuildRequest(bad, context_).status()), "logit_bias");
}

TEST_F(HttpCompletionsTest, RefusalsNameTheirParam) {
  struct Case {
    Json body;
    absl::StatusCode code;
    std::string param;
  };
  const std::vector<Case> cases = {
      {Json{{"prompt", "a"}, {"n", 0}}, absl::StatusCode::kInvalidArgument, "n"},
      {Json{{"prompt", "a"}, {"n", 3}, {"best_of", 2}}, absl::StatusCode::kInvalidArgument, "best_of"},
      {Json{{"prompt", "a"}, {"best_of", 2}, {"stream", true}}, absl::StatusCode::kInvalidArgument, "best_of"},
      {Json{{"prompt", "a"}, {"frequency_penalty", "1"}}, absl::StatusCode::kInvalidArgument, "frequency_penalty"},
      {Json{{"prompt", "a"}, {"logit_bias", {{"5", "1"}}}}, absl::StatusCode::kInvalidArgument, "logit_bias"},
      {Json{{"prompt", "a"}, {"logit_bias", {1, 2}}}, absl::StatusCode::kInvalidArgument, "logit_bias"},
      {Json{{"prompt", "a"}, {"suffix", "x"}}, absl::StatusCode::kInvalidArgument, "suffix"},
      {Json{{"prompt", "a"}, {"max_tokens", 1.5}}, absl::StatusCode::kInvalidArgument, "max_tokens"},
      {Json{{"prompt", "a"}, {"temperature", "hot"}}, absl::StatusCode::kInvalidArgument, "temperature"},
      {Json{{"prompt", "a"}, {"seed", -1}}, absl::StatusCode::kInvalidArgument, "seed"},
      {Json{{"prompt", "a"}, {"logprobs", true}}, absl::StatusCode::kInvalidArgument, "logprobs"},
      {Json{{"prompt", "a"}, {"stream", "yes"}}, absl::StatusCode::kInvalidArgument, "stream"},
      {Json{{"prompt", "a"}, {"stop", 3}}, absl::StatusCode::kInvalidArgument, "stop"},
      {Json{{"prompt", "a"}, {"stop_token_ids", "x"}}, absl::StatusCode::kInvalidArgument, "stop_token_ids"},
      {Json{{"prompt", "a"}, {"adak", 1}}, absl::StatusCode::kInvalidArgument, "adak"},
      {Json{{"prompt", "a"}, {"adak", {{"routing", {{"policy", 3}}}}}}, absl::StatusCode::kInvalidArgument,
       "adak.routing.policy"},
      {Json{{"prompt", "a"}, {"adak", {{"routing", {{"min_k", "one"}}}}}}, absl::StatusCode::kInvalidArgument,
       "adak.routing.min_k"},
      {Json{{"prompt", "a"}, {"adak", {{"routing", {{"k", 1}}}}}}, absl::StatusCode::kInvalidArgument,
       "adak.routing.k"},
      {Json{{"prompt", "a"}, {"adak", {{"timeout_seconds", -1}}}}, absl::StatusCode::kInvalidArgument,
       "adak.timeout_seconds"},
      {Json{{"prompt", "a"}, {"model", "llama"}}, absl::StatusCode::kNotFound, "model"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<CompletionCall> call = Parse(c.body);
    EXPECT_THAT(call, StatusIs(c.code, ::testing::_)) << c.body.dump();
    EXPECT_EQ(ErrorParam(call.status()), c.param) << c.body.dump() << " -> " << call.status();
  }
  EXPECT_THAT(ParseCompletionRequest("[1, 2]", context_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("JSON object")));
  EXPECT_THAT(ParseCompletionRequest("{\"prompt\": ", context_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not valid JSON")));
}

TEST_F(HttpCompletionsTest, ChatRendersTheTemplateIntoOnePrompt) {
  const Json body = {{"messages", {{{"role", "system"}, {"content", "S"}}, {{"role", "user"}, {"content", "U"}}}},
                     {"max_completion_tokens", 5},
                     {"logprobs", true},
                     {"top_logprobs", 3},
                     {"n", 2},
                     {"temperature", 0.7}};
  absl::StatusOr<CompletionCall> call = ParseChatRequest(body.dump(), context_);
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->endpoint, CompletionCall::Endpoint::kChat);
  ASSERT_EQ(call->prompts.size(), 1u);
  EXPECT_EQ(call->prompts[0].text, "S\nU");    // models/stories-moe-small/chat_template.jinja
  EXPECT_FALSE(call->api.add_special_tokens);  // the template writes its own special tokens
  EXPECT_EQ(call->api.max_tokens, 5);
  EXPECT_TRUE(call->logprobs);
  EXPECT_EQ(call->api.logprobs, 3);
  EXPECT_EQ(call->n, 2);
  EXPECT_EQ(call->api.temperature, 0.7);
}

TEST_F(HttpCompletionsTest, ChatWithoutATemplateIsRefusedNamingWhy) {
  const absl::StatusOr<tokenizer::ChatTemplate> saved = model_->chat_template;
  model_->chat_template =
      absl::NotFoundError("the model has no chat template (no chat_template in tokenizer_config.json)");
  absl::StatusOr<CompletionCall> call =
      ParseChatRequest(Json{{"messages", {{{"role", "user"}, {"content", "hi"}}}}}.dump(), context_);
  model_->chat_template = saved;
  EXPECT_THAT(call, StatusIs(absl::StatusCode::kInvalidArgument,
                             HasSubstr("this model cannot serve chat requests: the model has no chat template")));
  EXPECT_EQ(ErrorParam(call.status()), "messages");
}

TEST(ErrorParam, MapsScheduledValidationMessagesToRequestFields) {
  // The param is the field the validation attached (base/error_field.h), in the JSON spelling.
  const auto with = [](absl::Status status, const char* field) { return WithErrorField(std::move(status), field); };
  EXPECT_EQ(ErrorParam(with(absl::InvalidArgumentError("max_tokens must be in [1, 512], got 0"), "max_tokens")),
            "max_tokens");
  EXPECT_EQ(ErrorParam(with(absl::InvalidArgumentError("prompt + max_tokens = 3 + 512 = 515 exceeds"), "max_tokens")),
            "max_tokens");
  EXPECT_EQ(
      ErrorParam(with(absl::InvalidArgumentError("prompt token id 9999 at index 1 is outside [0, 4096)"), "prompt")),
      "prompt");
  EXPECT_EQ(ErrorParam(with(absl::InvalidArgumentError("prompt: empty (set text or token_ids)"), "prompt")), "prompt");
  EXPECT_EQ(ErrorParam(with(absl::InvalidArgumentError("top_k must be >= 0 (0 = off), got -3"), "top_k")), "top_k");
  EXPECT_EQ(ErrorParam(with(absl::InvalidArgumentError("routing.policy: unknown 'x'"), "routing.policy")),
            "adak.routing.policy");
  EXPECT_EQ(ErrorParam(with(absl::InvalidArgumentError("routing: null experts need --null-experts"), "routing")),
            "adak.routing");
  EXPECT_EQ(ErrorParam(with(absl::InvalidArgumentError("stop: at most 16 strings, got 17"), "stop")), "stop");
  EXPECT_EQ(ErrorParam(absl::ResourceExhaustedError("waiting queue is full (max_waiting_requests = 4)")), "");
  EXPECT_EQ(ErrorParam(absl::UnavailableError("the server is draining")), "");
}

TEST_F(HttpCompletionsTest, ResponseWithEchoAndLogprobs) {
  absl::StatusOr<CompletionCall> call =
      Parse(Json{{"prompt", "Hi"}, {"echo", true}, {"logprobs", 1}, {"max_tokens", 2}});
  ASSERT_TRUE(call.ok());
  // <|endoftext|> (special), then the text's two tokens.
  absl::StatusOr<std::vector<int32_t>> text_ids = model_->tokenizer->Encode("Hi there");
  ASSERT_TRUE(text_ids.ok());
  ASSERT_EQ(text_ids->size(), 2u);
  std::vector<int32_t> prompt = {4095};
  prompt.insert(prompt.end(), text_ids->begin(), text_ids->end());
  CompletionBuilder builder(context_, *call, prompt, "Hi there", "cmpl-test", 1700000000);
  scheduler::TokenOutput a{.id = 302, .text = "x", .logprob = -0.5f, .top = {{302, -0.5f}}};
  scheduler::TokenOutput b{.id = 303, .text = "y", .logprob = -2.0f, .top = {{17, -0.1f}}};
  builder.AddTokens({a, b});
  scheduler::FinalOutput final;
  final.reason = scheduler::FinishReason::kLength;
  final.usage = {.prompt_tokens = 3,
                 .completion_tokens = 2,
                 .expert_activations = 30,
                 .expert_flops = 300.0,
                 .expert_flops_saved = 100.0,
                 .mean_k_per_layer = {}};
  final.prompt_logprobs = {-1.0f, -3.0f};
  final.prompt_top_logprobs = {{{300, -1.0f}}, {{9, -0.2f}}};
  const Json response = Json::parse(builder.Response(final));
  EXPECT_EQ(response["id"], "cmpl-test");
  EXPECT_EQ(response["created"], 1700000000);
  const Json& choice = response["choices"][0];
  EXPECT_EQ(choice["text"], "Hi therexy");
  EXPECT_EQ(choice["finish_reason"], "length");
  const Json& lp = choice["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 5u);
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  EXPECT_FLOAT_EQ(lp["token_logprobs"][1].get<float>(), -1.0f);
  EXPECT_FLOAT_EQ(lp["token_logprobs"][2].get<float>(), -3.0f);
  EXPECT_FLOAT_EQ(lp["token_logprobs"][3].get<float>(), -0.5f);
  EXPECT_FLOAT_EQ(lp["token_logprobs"][4].get<float>(), -2.0f);
  // top_logprobs holds the chosen token and the alternatives: the better alternative shows up.
  EXPECT_EQ(lp["top_logprobs"][2].size(), 2u);
  EXPECT_EQ(lp["top_logprobs"][4].size(), 2u);
  // The prompt's pieces add up to its text (the special token reads as ""); completion offsets follow.
  EXPECT_EQ(lp["tokens"][0], "");
  EXPECT_EQ(lp["tokens"][1].get<std::string>() + lp["tokens"][2].get<std::string>(), "Hi there");
  EXPECT_EQ(lp["text_offset"][3], 8);
  for (size_t i = 1; i < 5; ++i) EXPECT_GE(lp["text_offset"][i].get<int>(), lp["text_offset"][i - 1].get<int>());
  const Json& usage = response["usage"];
  EXPECT_EQ(usage["total_tokens"], 5);
  EXPECT_EQ(usage["adak"]["expert_activations"], 30);
  EXPECT_DOUBLE_EQ(usage["adak"]["mean_k"].get<double>(), 2.0 * 300.0 / 400.0);
}

TEST_F(HttpCompletionsTest, StreamChunksAndDone) {
  absl::StatusOr<CompletionCall> call = Parse(Json{{"prompt", "Hi"}, {"stream", true}, {"echo", true}});
  ASSERT_TRUE(call.ok());
  CompletionBuilder builder(context_, *call, {4095, 300}, "Hi", "cmpl-s", 1);
  EXPECT_EQ(builder.StreamChunk(), "");  // nothing yet
  const std::string echo = builder.EchoChunk();
  ASSERT_THAT(echo, ::testing::StartsWith("data: {"));
  EXPECT_EQ(Json::parse(echo.substr(6))["choices"][0]["text"], "Hi");
  builder.AddTokens({scheduler::TokenOutput{.id = 5, .text = "", .logprob = 0.0f, .top = {}}});
  // Held-back text: the step still gets a chunk, with empty text (as vLLM sends it), and only one.
  const std::string held = builder.StreamChunk();
  ASSERT_THAT(held, ::testing::StartsWith("data: {"));
  EXPECT_EQ(Json::parse(held.substr(6))["choices"][0]["text"], "");
  EXPECT_EQ(builder.StreamChunk(), "");  // no token since
  builder.AddTokens({scheduler::TokenOutput{.id = 6, .text = "ab", .logprob = 0.0f, .top = {}}});
  const std::string chunk = builder.StreamChunk();
  ASSERT_THAT(chunk, ::testing::EndsWith("\n\n"));
  const Json json = Json::parse(chunk.substr(6));
  EXPECT_EQ(json["object"], "text_completion");
  EXPECT_EQ(json["choices"][0]["text"], "ab");
  EXPECT_TRUE(json["choices"][0]["finish_reason"].is_null());
  scheduler::FinalOutput final;
  final.reason = scheduler::FinishReason::kStop;
  final.matched_stop = "\n";
  const std::string last = builder.FinalChunks(final);
  EXPECT_THAT(last, ::testing::EndsWith("\n\ndata: [DONE]\n\n"));
  const Json final_json = Json::parse(last.substr(6, last.find("\n\n") - 6));
  EXPECT_EQ(final_json["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(final_json["choices"][0]["stop_reason"], "\n");
  EXPECT_TRUE(final_json.contains("usage"));
  scheduler::FinalOutput failed;
  failed.status = absl::DeadlineExceededError("deadline passed");
  const std::string error = builder.FinalChunks(failed);
  EXPECT_THAT(error, HasSubstr("\"error\""));
  EXPECT_THAT(error, HasSubstr("deadline passed"));
  EXPECT_THAT(error, ::testing::EndsWith("data: [DONE]\n\n"));
}

}  // namespace
}  // namespace adak::server
