// The OpenAI-compatible HTTP gateway against a real in-process server (ServerApp) on the project's own
// models/stories-moe-small with its trained allocator: completions (plain, streamed, echo + logprobs
// scoring), the adak routing extension, errors, models, health, readiness, metrics, keep-alive and client
// disconnects. Needs nothing outside the repository.
#include "server/http/gateway.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/server_app.h"
#include "tests/http_client.h"
#include "tests/server/http/gateway_fixture.h"
#include "tests/test_util.h"

namespace adak::server {
namespace {

using ::adak::testing::DefaultAllocator;
using ::adak::testing::DefaultModelDir;
using ::adak::testing::HttpConnection;
using ::adak::testing::HttpRequest;
using ::adak::testing::HttpResponse;
using ::adak::testing::SseData;
using ::adak::testing::WaitFor;
using ::testing::HasSubstr;
using Json = nlohmann::json;

using HttpGatewayTest = GatewayFixture;

TEST_F(HttpGatewayTest, CompletionReturnsTextAndUsage) {
  Json request = Greedy("Once upon a time", 8);
  request["model"] = app_->context()->model_name;
  const HttpResponse response = Post(request);
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_THAT(response.Header("content-type"), HasSubstr("application/json"));
  const Json json = Parse(response);
  EXPECT_EQ(json["object"], "text_completion");
  EXPECT_THAT(json["id"].get<std::string>(), ::testing::StartsWith("cmpl-"));
  EXPECT_EQ(json["model"], app_->context()->model_name);
  EXPECT_GT(json["created"].get<int64_t>(), 1700000000);
  ASSERT_EQ(json["choices"].size(), 1u);
  const Json& choice = json["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_FALSE(choice["text"].get<std::string>().empty());
  EXPECT_EQ(choice["finish_reason"], "length");
  EXPECT_TRUE(choice["logprobs"].is_null());
  const Json& usage = json["usage"];
  EXPECT_EQ(usage["completion_tokens"], 8);
  EXPECT_GT(usage["prompt_tokens"].get<int>(), 1);
  EXPECT_EQ(usage["total_tokens"], usage["prompt_tokens"].get<int>() + 8);
  // Native top-2 on 4 MoE layers: k = 2 everywhere, nothing saved.
  EXPECT_GT(usage["adak"]["expert_activations"].get<int64_t>(), 0);
  EXPECT_EQ(usage["adak"]["expert_activations"].get<int64_t>() % 8, 0);
  EXPECT_DOUBLE_EQ(usage["adak"]["mean_k"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(usage["adak"]["expert_flops_saved"].get<double>(), 0.0);
  EXPECT_FALSE(usage["adak"].contains("mean_k_per_layer"));
  EXPECT_GE(usage["prompt_tokens_details"]["cached_tokens"].get<int>(), 0);
}

TEST_F(HttpGatewayTest, RepeatedLongPromptReportsCachedTokens) {
  // 40 prompt tokens span full KV blocks (16 tokens each); the second call finds them in the prefix cache.
  std::vector<int32_t> ids = {4095};
  for (int i = 0; i < 40; ++i) ids.push_back(300 + i);
  const Json request = {{"prompt", ids}, {"max_tokens", 2}, {"temperature", 0}, {"ignore_eos", true}};
  const HttpResponse first = Post(request);
  const HttpResponse second = Post(request);
  ASSERT_EQ(first.status, 200) << first.body;
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_GT(Parse(second)["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 0) << second.body;
  EXPECT_EQ(Parse(first)["choices"][0]["text"], Parse(second)["choices"][0]["text"]);
}

TEST_F(HttpGatewayTest, StreamSendsServerSentEventsEndingWithDone) {
  const HttpResponse plain = Post(Greedy("The little dog", 12));
  ASSERT_EQ(plain.status, 200) << plain.body;
  Json request = Greedy("The little dog", 12);
  request["stream"] = true;
  const HttpResponse response = Post(request);
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_THAT(response.Header("content-type"), HasSubstr("text/event-stream"));
  EXPECT_EQ(response.Header("transfer-encoding"), "chunked");
  EXPECT_THAT(response.body, ::testing::EndsWith("data: [DONE]\n\n"));
  const std::vector<std::string> events = SseData(response.body);
  ASSERT_GE(events.size(), 3u) << response.body;
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const Json chunk = Json::parse(events[i], nullptr, false);
    ASSERT_FALSE(chunk.is_discarded()) << events[i];
    EXPECT_EQ(chunk["object"], "text_completion");
    text += chunk["choices"][0]["text"].get<std::string>();
    const bool last = i + 2 == events.size();
    EXPECT_EQ(chunk["choices"][0]["finish_reason"].is_null(), !last) << events[i];
    EXPECT_EQ(chunk.contains("usage"), last) << events[i];
  }
  const Json final_chunk = Json::parse(events[events.size() - 2]);
  EXPECT_EQ(final_chunk["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(final_chunk["usage"]["completion_tokens"], 12);
  // Greedy: the stream says exactly what the plain call says.
  EXPECT_EQ(text, Parse(plain)["choices"][0]["text"]);
}

TEST_F(HttpGatewayTest, ConcurrentStreamsGetTheTextTheyGetAlone) {
  const std::vector<std::string> prompts = {"Once upon a time", "The little dog", "Tom and Sue went", "A big red ball"};
  std::vector<std::string> alone;
  for (const std::string& prompt : prompts) {
    const HttpResponse response = Post(Greedy(prompt, 16));
    ASSERT_EQ(response.status, 200) << response.body;
    alone.push_back(Parse(response)["choices"][0]["text"]);
  }
  constexpr int kClients = 16;
  std::vector<std::string> texts(kClients);
  std::vector<std::string> errors(kClients);
  std::vector<std::thread> threads;
  threads.reserve(kClients);
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      Json request = Greedy(prompts[c % prompts.size()], 16);
      request["stream"] = true;
      absl::StatusOr<HttpResponse> response = HttpRequest(port_, "POST", "/v1/completions", request.dump());
      if (!response.ok() || response->status != 200) {
        errors[c] = response.ok() ? response->body : response.status().ToString();
        return;
      }
      const std::vector<std::string> events = SseData(response->body);
      if (events.empty() || events.back() != "[DONE]") errors[c] = "no [DONE]: " + response->body;
      for (size_t i = 0; i + 1 < events.size(); ++i) {
        texts[c] += Json::parse(events[i])["choices"][0]["text"].get<std::string>();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int c = 0; c < kClients; ++c) {
    EXPECT_EQ(errors[c], "") << "client " << c;
    EXPECT_EQ(texts[c], alone[c % prompts.size()]) << "client " << c;
  }
}

TEST_F(HttpGatewayTest, StopStringEndsTheCompletionInBothModes) {
  Json request = {{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 0}, {"stop", {"Lily", "zzz"}}};
  const HttpResponse plain = Post(request);
  ASSERT_EQ(plain.status, 200) << plain.body;
  const Json choice = Parse(plain)["choices"][0];
  ASSERT_EQ(choice["finish_reason"], "stop") << plain.body;  // greedy: "..., there was a little girl named Lily."
  EXPECT_EQ(choice["stop_reason"], "Lily");
  EXPECT_THAT(choice["text"].get<std::string>(), ::testing::Not(HasSubstr("Lily")));
  request["stream"] = true;
  const HttpResponse streamed = Post(request);
  ASSERT_EQ(streamed.status, 200);
  std::string text;
  const std::vector<std::string> events = SseData(streamed.body);
  ASSERT_GE(events.size(), 2u);
  for (size_t i = 0; i + 1 < events.size(); ++i)
    text += Json::parse(events[i])["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(text, choice["text"]);
  EXPECT_EQ(Json::parse(events[events.size() - 2])["choices"][0]["stop_reason"], "Lily");
}

TEST_F(HttpGatewayTest, EchoLogprobsScoresThePromptLikeLmEvaluationHarness) {
  const Json request = {
      {"prompt", "The cat sat on the mat."}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 1}, {"temperature", 0}};
  const HttpResponse first = Post(request);
  ASSERT_EQ(first.status, 200) << first.body;
  const HttpResponse second = Post(request);
  ASSERT_EQ(second.status, 200) << second.body;
  const Json a = Parse(first);
  const Json b = Parse(second);
  const Json& choice = a["choices"][0];
  EXPECT_EQ(choice["text"], "The cat sat on the mat.");
  const Json& logprobs = choice["logprobs"];
  const size_t prompt_tokens = a["usage"]["prompt_tokens"].get<size_t>();
  EXPECT_EQ(a["usage"]["completion_tokens"], 0);
  ASSERT_EQ(logprobs["tokens"].size(), prompt_tokens);
  ASSERT_EQ(logprobs["token_logprobs"].size(), prompt_tokens);
  ASSERT_EQ(logprobs["top_logprobs"].size(), prompt_tokens);
  ASSERT_EQ(logprobs["text_offset"].size(), prompt_tokens);
  // Nothing precedes the first token: its logprob is null, as OpenAI and vLLM report it.
  EXPECT_TRUE(logprobs["token_logprobs"][0].is_null());
  EXPECT_TRUE(logprobs["top_logprobs"][0].is_null());
  double sum = 0.0;
  for (size_t i = 1; i < prompt_tokens; ++i) {
    const double lp = logprobs["token_logprobs"][i].get<double>();
    EXPECT_LE(lp, 0.0);
    sum += lp;
    // The top-1 alternative is at least as likely as the token itself (lm-eval's is_greedy check).
    double best = -1e30;
    for (const auto& [token, value] : logprobs["top_logprobs"][i].items()) best = std::max(best, value.get<double>());
    EXPECT_GE(best, lp - 1e-6);
  }
  EXPECT_LT(sum, 0.0);
  // Scoring is deterministic.
  EXPECT_EQ(logprobs["token_logprobs"], b["choices"][0]["logprobs"]["token_logprobs"]);
}

TEST_F(HttpGatewayTest, TokenIdPromptsAndABatchOfOne) {
  const Json ids = {{"prompt", {4095, 300, 301, 302}}, {"max_tokens", 2}, {"temperature", 0}, {"ignore_eos", true}};
  const HttpResponse response = Post(ids);
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(Parse(response)["usage"]["prompt_tokens"], 4);
  // lm-evaluation-harness sends a batch: a list holding one token list, with max_tokens 1.
  const Json batch = {{"prompt", Json::array({Json::array({4095, 300, 301, 302})})},
                      {"max_tokens", 1},
                      {"echo", true},
                      {"logprobs", 1},
                      {"temperature", 0}};
  const HttpResponse scored = Post(batch);
  ASSERT_EQ(scored.status, 200) << scored.body;
  const Json json = Parse(scored);
  EXPECT_EQ(json["choices"][0]["logprobs"]["token_logprobs"].size(), 5u);  // 4 prompt + 1 generated
  EXPECT_TRUE(json["choices"][0]["logprobs"]["token_logprobs"][0].is_null());
}

TEST_F(HttpGatewayTest, AdakRoutingExtensionChangesExpertActivations) {
  Json topk = Greedy("Once upon a time there was", 6);
  topk["adak"] = {{"routing", {{"policy", "topk"}}}, {"return_routing_stats", true}};
  Json adak = topk;
  adak["adak"]["routing"]["policy"] = "adak";
  const HttpResponse native_response = Post(topk);
  const HttpResponse adak_response = Post(adak);
  ASSERT_EQ(native_response.status, 200) << native_response.body;
  ASSERT_EQ(adak_response.status, 200) << adak_response.body;
  const Json native = Parse(native_response)["usage"]["adak"];
  const Json adaptive = Parse(adak_response)["usage"]["adak"];
  EXPECT_NE(native["expert_activations"], adaptive["expert_activations"]);
  EXPECT_DOUBLE_EQ(native["expert_flops_saved"].get<double>(), 0.0);
  // Same tokens, so both policies have the same native cost: flops + saved is the top-K flops.
  EXPECT_NEAR(adaptive["expert_flops"].get<double>() + adaptive["expert_flops_saved"].get<double>(),
              native["expert_flops"].get<double>(), 1e-6 * native["expert_flops"].get<double>());
  // The FLOPs follow the activations.
  EXPECT_NEAR(adaptive["expert_flops"].get<double>() / native["expert_flops"].get<double>(),
              adaptive["expert_activations"].get<double>() / native["expert_activations"].get<double>(), 1e-9);
  ASSERT_EQ(adaptive["mean_k_per_layer"].size(), 4u);
  ASSERT_EQ(native["mean_k_per_layer"].size(), 4u);
  for (const Json& k : native["mean_k_per_layer"]) EXPECT_DOUBLE_EQ(k.get<double>(), 2.0);
}

// Allocator profiles: /v1/models lists each as "<model>:<profile>" with its parent and what was measured for
// it; a request picks one by that model name or by adak.routing.profile (the same routing either way), the
// default profile is what policy adak alone runs, and the eco profile runs fewer experts.
TEST_F(HttpGatewayTest, AllocatorProfilesAreListedAndChosenPerRequest) {
  const std::string name = app_->context()->model_name;
  const Json list = Parse(Get("/v1/models"));
  ASSERT_EQ(list["data"].size(), 3u) << list.dump();
  const Json& balanced = list["data"][1];
  const Json& eco = list["data"][2];
  EXPECT_EQ(balanced["id"], name + ":balanced");
  EXPECT_EQ(eco["id"], name + ":eco");
  for (const Json* profile : {&balanced, &eco}) {
    EXPECT_EQ((*profile)["parent"], name);
    EXPECT_EQ((*profile)["root"], name);
    EXPECT_EQ((*profile)["adak"]["routing"], "adak");
    EXPECT_TRUE((*profile)["adak"]["measured_mean_k"].is_number()) << profile->dump();
    EXPECT_TRUE((*profile)["adak"]["measured_ppl_delta"].is_number()) << profile->dump();
    EXPECT_THAT((*profile)["adak"]["measured_on"].get<std::string>(), HasSubstr("valid.txt"));
  }
  EXPECT_EQ(balanced["adak"]["default_profile"], true);
  EXPECT_EQ(eco["adak"]["default_profile"], false);
  // The shipped default costs at most 2% perplexity; eco saves more experts for more perplexity.
  EXPECT_LE(balanced["adak"]["measured_ppl_delta"].get<double>(), 0.02);
  EXPECT_LT(eco["adak"]["measured_mean_k"].get<double>(), balanced["adak"]["measured_mean_k"].get<double>());
  EXPECT_GT(eco["adak"]["measured_ppl_delta"].get<double>(), balanced["adak"]["measured_ppl_delta"].get<double>());
  EXPECT_EQ(Parse(Get("/v1/models/" + name + ":eco"))["id"], name + ":eco");
  ExpectError(Get("/v1/models/" + name + ":nope"), 404, "model");

  auto run = [&](const std::string& model, const Json& routing) {
    Json request = Greedy("Once upon a time there was a little", 16);
    request["model"] = model;
    request["adak"] = {{"routing", routing}, {"return_routing_stats", true}};
    const HttpResponse response = Post(request);
    EXPECT_EQ(response.status, 200) << response.body;
    const Json json = Parse(response);
    return std::make_pair(json["choices"][0]["text"], json["usage"]["adak"]["expert_activations"]);
  };
  const auto by_model = run(name + ":eco", Json::object());
  EXPECT_EQ(run(name, {{"profile", "eco"}}), by_model);
  EXPECT_EQ(run(name, {{"policy", "adak"}, {"profile", "eco"}}), by_model);
  EXPECT_EQ(run(name + ":eco", {{"profile", "eco"}}), by_model);
  const auto plain_adak = run(name, {{"policy", "adak"}});
  EXPECT_EQ(run(name + ":balanced", Json::object()), plain_adak);
  EXPECT_LT(by_model.second.get<int64_t>(), plain_adak.second.get<int64_t>());
  // Chat completions take the profile's model name too.
  Json chat = {{"model", name + ":eco"},
               {"messages", Json::array({{{"role", "user"}, {"content", "A cat"}}})},
               {"max_tokens", 4},
               {"temperature", 0}};
  EXPECT_EQ(Post(chat, "/v1/chat/completions").status, 200);

  Json bad = Greedy("hi", 2);
  bad["model"] = name + ":nope";
  ExpectError(Post(bad), 404, "model");
  EXPECT_THAT(Post(bad).body, HasSubstr("balanced, eco"));
  bad["model"] = name + ":eco";
  bad["adak"] = {{"routing", {{"profile", "balanced"}}}};
  ExpectError(Post(bad), 400, "adak.routing.profile");
  bad["model"] = name;
  bad["adak"] = {{"routing", {{"policy", "topk"}, {"profile", "eco"}}}};
  ExpectError(Post(bad), 400, "adak.routing.profile");
  bad["adak"] = {{"routing", {{"profile", "nope"}}}};
  ExpectError(Post(bad), 400, "adak.routing.profile");
  EXPECT_THAT(Post(bad).body, HasSubstr("not loaded (profiles: balanced, eco)"));
  bad["adak"] = {{"routing", {{"profile", 3}}}};
  ExpectError(Post(bad), 400, "adak.routing.profile");

  // The metrics carry the profile.
  const std::string metrics = Get("/metrics").body;
  EXPECT_THAT(metrics, HasSubstr("adak_routing_tokens_total{policy=\"adak\",profile=\"eco\"}"));
  EXPECT_THAT(metrics, HasSubstr("adak_routing_expert_assignments_total{policy=\"adak\",profile=\"balanced\"}"));
  EXPECT_THAT(metrics, HasSubstr("adak_routing_tokens_total{policy=\"topk\"}"));
}

// The training-free rules over HTTP: on this top-2 model the threshold rule at t and top-p with the model's
// weighting at p = 1 / (1 + t) keep the second expert for the same tokens, so they run the same experts and
// write the same text; both run fewer experts than native top-2, and raw top-p is a different rule.
TEST_F(HttpGatewayTest, ThresholdAndModelWeightedTopPAreTheSameRuleOnATopTwoModel) {
  auto run = [&](const Json& routing) {
    Json request = Greedy("Once upon a time there was a little", 12);
    request["adak"] = {{"routing", routing}, {"return_routing_stats", true}};
    const HttpResponse response = Post(request);
    EXPECT_EQ(response.status, 200) << response.body;
    return Parse(response);
  };
  const Json native = run({{"policy", "topk"}});
  const Json threshold = run({{"policy", "threshold"}, {"threshold", 0.5}});
  const Json topp = run({{"policy", "topp"}, {"top_p", 1.0 / 1.5}});
  const Json raw = run({{"policy", "topp"}, {"top_p", 1.0 / 1.5}, {"top_p_weighting", "raw"}});
  const auto activations = [](const Json& j) { return j["usage"]["adak"]["expert_activations"].get<int64_t>(); };
  EXPECT_LT(activations(threshold), activations(native));
  EXPECT_GT(activations(threshold), activations(native) / 2);  // some tokens keep both experts
  EXPECT_EQ(activations(topp), activations(threshold));
  EXPECT_EQ(topp["choices"][0]["text"], threshold["choices"][0]["text"]);
  EXPECT_NE(activations(raw), activations(topp));
  // t = 0 keeps the whole native top-2; t = 1 keeps one expert (ties aside).
  EXPECT_EQ(activations(run({{"policy", "threshold"}, {"threshold", 0.0}})), activations(native));
  EXPECT_EQ(activations(run({{"policy", "threshold"}, {"threshold", 1.0}})) * 2, activations(native));
  ExpectError(Post(Json{{"prompt", "hi"}, {"adak", {{"routing", {{"policy", "threshold"}}}}}}), 400,
              "adak.routing.threshold");
  ExpectError(Post(Json{{"prompt", "hi"},
                        {"adak", {{"routing", {{"policy", "topp"}, {"top_p", 0.5}, {"top_p_weighting", 1}}}}}}),
              400, "adak.routing.top_p_weighting");
}

// OpenAI's frequency and presence penalties reach the sampler: a strong frequency penalty makes greedy
// decoding avoid the tokens it already generated, so the text changes and repeats less.
TEST_F(HttpGatewayTest, FrequencyPenaltyReducesRepeatedTokens) {
  Json plain = Greedy("Once upon a time there was a little", 48);
  plain["logprobs"] = 0;
  Json penalised = plain;
  penalised["frequency_penalty"] = 2.0;
  penalised["presence_penalty"] = 1.0;
  const HttpResponse a = Post(plain);
  const HttpResponse b = Post(penalised);
  ASSERT_EQ(a.status, 200) << a.body;
  ASSERT_EQ(b.status, 200) << b.body;
  const auto max_repeats = [](const Json& response) {
    std::map<std::string, int> counts;
    int most = 0;
    for (const Json& token : response["choices"][0]["logprobs"]["tokens"]) {
      most = std::max(most, ++counts[token.get<std::string>()]);
    }
    return most;
  };
  const Json plain_json = Parse(a), penalised_json = Parse(b);
  EXPECT_NE(plain_json["choices"][0]["text"], penalised_json["choices"][0]["text"]);
  EXPECT_LT(max_repeats(penalised_json), max_repeats(plain_json));
}

TEST_F(HttpGatewayTest, BadFieldsAre400NamingTheParam) {
  const std::string name = app_->context()->model_name;
  ExpectError(Post(Json{{"prompt", "hi"}, {"max_tokens", -1}}), 400, "max_tokens");
  ExpectError(Post(Json{{"prompt", "hi"}, {"max_tokens", 100000}}), 400, "max_tokens");
  const HttpResponse too_long = Post(Json{{"prompt", "hi"}, {"max_tokens", 512}});  // prompt + 512 > context
  ExpectError(too_long, 400, "max_tokens");
  EXPECT_THAT(too_long.body, HasSubstr("512"));
  ExpectError(Post(Json{{"prompt", "hi"}, {"max_tokens", "ten"}}), 400, "max_tokens");
  ExpectError(Post(Json{{"prompt", "hi"}, {"temperature", -0.5}}), 400, "temperature");
  ExpectError(Post(Json{{"prompt", "hi"}, {"top_p", 0}}), 400, "top_p");
  ExpectError(Post(Json{{"prompt", "hi"}, {"n", 0}}), 400, "n");
  ExpectError(Post(Json{{"prompt", "hi"}, {"n", 65}}), 400, "n");
  ExpectError(Post(Json{{"prompt", "hi"}, {"n", 2}, {"best_of", 1}}), 400, "best_of");
  ExpectError(Post(Json{{"prompt", "hi"}, {"n", 1}, {"best_of", 2}, {"stream", true}}), 400, "best_of");
  ExpectError(Post(Json{{"prompt", Json::array({"a", "b", "c"})}, {"n", 30}}), 400, "prompt");
  ExpectError(Post(Json{{"prompt", "hi"}, {"logit_bias", {{"99999", 1}}}}), 400, "logit_bias");
  ExpectError(Post(Json{{"prompt", "hi"}, {"logit_bias", {{"5", 101}}}}), 400, "logit_bias");
  ExpectError(Post(Json{{"prompt", "hi"}, {"logit_bias", {{"x", 1}}}}), 400, "logit_bias");
  ExpectError(Post(Json{{"prompt", "hi"}, {"presence_penalty", 2.5}}), 400, "presence_penalty");
  ExpectError(Post(Json{{"prompt", "hi"}, {"frequency_penalty", "high"}}), 400, "frequency_penalty");
  ExpectError(Post(Json{{"prompt", "hi"}, {"logprobs", 99}}), 400, "logprobs");
  ExpectError(Post(Json{{"prompt", ""}}), 400, "prompt");
  ExpectError(Post(Json{{"max_tokens", 3}}), 400, "prompt");
  ExpectError(Post(Json{{"prompt", {"one", 2}}}), 400, "prompt");
  ExpectError(Post(Json{{"prompt", {1, 999999}}}), 400, "prompt");
  ExpectError(Post(Json{{"prompt", "hi"}, {"stop", {"a", 3}}}), 400, "stop");
  ExpectError(Post(Json{{"prompt", "hi"}, {"adak", {{"routing", {{"policy", "bogus"}}}}}}), 400, "adak.routing.policy");
  ExpectError(Post(Json{{"prompt", "hi"}, {"adak", {{"routing", {{"policy", "adak"}, {"max_k", 99}}}}}}), 400,
              "adak.routing.max_k");
  ExpectError(Post(Json{{"prompt", "hi"}, {"adak", {{"routing", {{"policy", "null"}}}}}}), 400, "adak.routing");
  ExpectError(Post(Json{{"prompt", "hi"}, {"adak", {{"colour", 1}}}}), 400, "adak.colour");
  ExpectError(Post(Json{{"prompt", "hi"}, {"model", "gpt-4"}}), 404, "model");
  // Not JSON at all.
  absl::StatusOr<HttpResponse> garbage = HttpRequest(port_, "POST", "/v1/completions", "{not json");
  ASSERT_TRUE(garbage.ok());
  ExpectError(*garbage, 400, "");
  const Json error = Parse(Post(Json{{"prompt", "hi"}, {"temperature", -1}}))["error"];
  EXPECT_EQ(error["type"], "invalid_request_error");
  EXPECT_EQ(error["code"], "invalid_argument");
  EXPECT_THAT(error["message"].get<std::string>(), HasSubstr("temperature"));
}

TEST_F(HttpGatewayTest, UnknownPathsAndWrongMethods) {
  ExpectError(Get("/v1/chat/completions"), 405, "");
  ExpectError(Get("/v1/embeddings"), 404, "");
  ExpectError(Get("/nope"), 404, "");
  const HttpResponse get_completions = Get("/v1/completions");
  ExpectError(get_completions, 405, "");
  EXPECT_EQ(get_completions.Header("allow"), "POST");
  absl::StatusOr<HttpResponse> post_health = HttpRequest(port_, "POST", "/healthz", "{}");
  ASSERT_TRUE(post_health.ok());
  EXPECT_EQ(post_health->status, 405);
  EXPECT_EQ(post_health->Header("allow"), "GET");
}

TEST_F(HttpGatewayTest, BodyOverTheLimitIs413) {
  absl::StatusOr<std::unique_ptr<HttpConnection>> connection = HttpConnection::Connect(port_);
  ASSERT_TRUE(connection.ok()) << connection.status();
  ASSERT_TRUE((*connection)
                  ->WriteRaw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             "Content-Length: 100000000\r\n\r\n{")
                  .ok());
  const std::string reply = (*connection)->ReadRawUntil("}}");
  EXPECT_THAT(reply, ::testing::StartsWith("HTTP/1.1 413"));
  EXPECT_THAT(reply, HasSubstr("exceeds the limit"));
}

TEST_F(HttpGatewayTest, ModelsHealthAndReadiness) {
  const std::string name = app_->context()->model_name;
  const HttpResponse models = Get("/v1/models");
  ASSERT_EQ(models.status, 200);
  const Json list = Parse(models);
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 3u);  // the model and its two allocator profiles
  EXPECT_EQ(list["data"][0]["id"], name);
  EXPECT_EQ(list["data"][0]["object"], "model");
  EXPECT_EQ(list["data"][0]["max_model_len"], 512);
  EXPECT_FALSE(list["data"][0].contains("parent"));
  EXPECT_EQ(Get("/v1/models/" + name).status, 200);
  ExpectError(Get("/v1/models/other"), 404, "model");

  EXPECT_EQ(Get("/healthz").status, 200);
  EXPECT_EQ(Get("/readyz").status, 200);
  // While draining: not ready, and new completions are refused with 503 (health stays 200).
  ServingState* state = app_->context()->state;
  state->SetPhase(ServingPhase::kDraining);
  const HttpResponse ready = Get("/readyz");
  const HttpResponse refused = Post(Greedy("hi", 2));
  const HttpResponse health = Get("/healthz");
  state->SetPhase(ServingPhase::kServing);
  EXPECT_EQ(ready.status, 503);
  EXPECT_THAT(ready.body, HasSubstr("draining"));
  ExpectError(refused, 503, "");
  EXPECT_EQ(Parse(refused)["error"]["type"], "service_unavailable");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(Get("/readyz").status, 200);
}

TEST_F(HttpGatewayTest, MetricsShowPerLayerHistogramsAfterTraffic) {
  ASSERT_EQ(Post(Greedy("A bird", 4)).status, 200);
  ExpectError(Post(Json{{"prompt", "hi"}, {"n", 0}}), 400, "n");
  const HttpResponse metrics = Get("/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.Header("content-type"), HasSubstr("text/plain; version=0.0.4"));
  for (int layer = 0; layer < 4; ++layer) {
    EXPECT_THAT(metrics.body,
                HasSubstr(absl::StrCat("adak_layer_activated_experts_bucket{layer=\"", layer, "\",le=\"2\"}")));
  }
  EXPECT_THAT(metrics.body, ::testing::ContainsRegex("adak_layer_activated_experts_count\\{layer=\"0\"\\} [1-9]"));
  EXPECT_THAT(metrics.body, ::testing::ContainsRegex("\nadak_expert_flops_total [1-9]"));
  EXPECT_THAT(metrics.body, ::testing::ContainsRegex("adak_requests_total\\{finished_reason=\"length\"\\} [1-9]"));
  EXPECT_THAT(metrics.body, ::testing::ContainsRegex("adak_request_errors_total\\{code=\"invalid_argument\"\\} [1-9]"));
  EXPECT_THAT(metrics.body, HasSubstr("adak_requests_running "));
  EXPECT_THAT(metrics.body, HasSubstr("adak_kv_cache_usage_ratio "));
}

TEST_F(HttpGatewayTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  absl::StatusOr<std::unique_ptr<HttpConnection>> connection = HttpConnection::Connect(port_);
  ASSERT_TRUE(connection.ok()) << connection.status();
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<HttpResponse> response = (*connection)->Request("POST", "/v1/completions", Greedy("Hi", 2).dump());
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->status, 200) << response->body;
    Json stream = Greedy("Hi", 2);
    stream["stream"] = true;
    response = (*connection)->Request("POST", "/v1/completions", stream.dump());
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_THAT(response->body, ::testing::EndsWith("data: [DONE]\n\n"));
    response = (*connection)->Request("GET", "/healthz");
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->status, 200);
  }
}

TEST_F(HttpGatewayTest, ClientDisconnectCancelsTheRequest) {
  // The baseline is the published snapshot of an idle scheduler (earlier tests' requests all ended).
  ASSERT_TRUE(WaitFor("the scheduler's published stats to show it idle", [&] {
    const scheduler::SchedulerStats stats = app_->scheduler()->stats();
    return stats.running == 0 && stats.waiting == 0;
  }));
  const int64_t baseline_blocks = app_->scheduler()->stats().kv_blocks_used;
  absl::StatusOr<std::unique_ptr<HttpConnection>> connection = HttpConnection::Connect(port_);
  ASSERT_TRUE(connection.ok()) << connection.status();
  Json request = Greedy("Once", 500);
  request["stream"] = true;
  const std::string body = request.dump();
  ASSERT_TRUE((*connection)
                  ->WriteRaw(absl::StrCat("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                          "application/json\r\nContent-Length: ",
                                          body.size(), "\r\n\r\n", body))
                  .ok());
  // Wait for the first token, then hang up.
  EXPECT_THAT((*connection)->ReadRawUntil("\"text\""), HasSubstr("text/event-stream"));
  (*connection)->Close();
  // The scheduler drops the request within a few steps (400 tokens would take far longer).
  scheduler::SchedulerStats stats;
  EXPECT_TRUE(WaitFor("the disconnected request to end and free its KV blocks", [&] {
    stats = app_->scheduler()->stats();
    return stats.running == 0 && stats.waiting == 0 && stats.kv_blocks_used == baseline_blocks;
  }));
  EXPECT_EQ(stats.running, 0);
  EXPECT_EQ(stats.waiting, 0);
  EXPECT_EQ(stats.kv_blocks_used, baseline_blocks);
  EXPECT_THAT(Get("/metrics").body,
              ::testing::ContainsRegex("adak_requests_total\\{finished_reason=\"cancelled\"\\} [1-9]"));
}

TEST_F(HttpGatewayTest, DeadlineIs504) {
  Json request = Greedy("Once", 500);
  request["adak"] = {{"timeout_seconds", 0.02}};
  const HttpResponse response = Post(request);
  ExpectError(response, 504, "");
  EXPECT_EQ(Parse(response)["error"]["type"], "timeout");
}

// A server of its own with one running and one waiting slot: the third request is refused with 429
// while the first two go on.
TEST(HttpGatewayQueue, FullQueueIs429) {
  ServerAppOptions options;
  options.model_dir = DefaultModelDir();
  options.grpc_port = -1;
  options.http_port = 0;
  options.threads = 1;
  options.max_running_requests = 1;
  options.max_waiting_requests = 1;
  options.kv_cache_mib = 16;
  absl::StatusOr<std::unique_ptr<ServerApp>> app = ServerApp::Create(options);
  ASSERT_TRUE(app.ok()) << app.status();
  ASSERT_TRUE((*app)->Start().ok());
  const int port = (*app)->http_port();
  const std::string body = Json{{"prompt", "Once"}, {"max_tokens", 500}, {"ignore_eos", true}, {"stream", true}}.dump();
  const std::string raw = absl::StrCat(
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ", body.size(),
      "\r\n\r\n", body);
  absl::StatusOr<std::unique_ptr<HttpConnection>> running = HttpConnection::Connect(port);
  ASSERT_TRUE(running.ok());
  ASSERT_TRUE((*running)->WriteRaw(raw).ok());
  ASSERT_THAT((*running)->ReadRawUntil("\"text\""), HasSubstr("200 OK"));
  // The scheduler's snapshot says it runs (it counts as waiting until the step that admitted it is published).
  const auto await = [&](int64_t running_count, int64_t waiting_count) {
    return WaitFor(absl::StrCat(running_count, " running and ", waiting_count, " waiting"), [&] {
      const scheduler::SchedulerStats stats = (*app)->scheduler()->stats();
      return stats.running == running_count && stats.waiting == waiting_count;
    });
  };
  ASSERT_TRUE(await(1, 0));
  absl::StatusOr<std::unique_ptr<HttpConnection>> waiting = HttpConnection::Connect(port);
  ASSERT_TRUE(waiting.ok());
  ASSERT_TRUE((*waiting)->WriteRaw(raw).ok());
  ASSERT_TRUE(await(1, 1));
  absl::StatusOr<HttpResponse> refused = HttpRequest(port, "POST", "/v1/completions", body);
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->status, 429) << refused->body;
  const Json error = Json::parse(refused->body)["error"];
  EXPECT_EQ(error["type"], "rate_limit_exceeded");
  EXPECT_EQ(error["code"], "resource_exhausted");
  EXPECT_THAT((*app)->metrics()->Serialize(), HasSubstr("adak_request_errors_total{code=\"resource_exhausted\"} 1\n"));
  // The running request still streams on.
  EXPECT_THAT((*running)->ReadRawUntil("\"text\""), HasSubstr("data: "));
  (*running)->Close();
  (*waiting)->Close();
}

}  // namespace
}  // namespace adak::server
