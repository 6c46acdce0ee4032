// The OpenAI API as clients use it, against a real in-process server over loopback HTTP on the project's
// own model: /v1/chat/completions with the model's chat template (plain, streamed, logprobs, refusals),
// batched prompts, n > 1 and best_of (siblings sharing the prompt's KV blocks), logit_bias, streamed echo
// with prompt logprobs, and an lm-evaluation-harness loglikelihood batch.
#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "engine/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/http_client.h"
#include "tests/server/http/gateway_fixture.h"

namespace adak::server {
namespace {

using ::adak::testing::HttpResponse;
using ::adak::testing::SseData;
using ::testing::HasSubstr;
using Json = nlohmann::json;

using OpenAiApiTest = GatewayFixture;

Json Chat(const Json& messages, int max_tokens) {
  return Json{{"messages", messages}, {"max_tokens", max_tokens}, {"temperature", 0}, {"ignore_eos", true}};
}

// The data events of an SSE body, parsed, without the final [DONE].
std::vector<Json> Events(const HttpResponse& response) {
  std::vector<Json> events;
  const std::vector<std::string> data = SseData(response.body);
  EXPECT_FALSE(data.empty()) << response.body;
  if (data.empty()) return events;
  EXPECT_EQ(data.back(), "[DONE]") << response.body;
  EXPECT_EQ(std::count(data.begin(), data.end(), "[DONE]"), 1) << response.body;
  for (const std::string& d : data) {
    if (d != "[DONE]") events.push_back(Json::parse(d));
  }
  return events;
}

TEST_F(OpenAiApiTest, ChatRendersTheTemplateAndContinuesLikeTheSamePromptAsACompletion) {
  const Json messages = Json::array({Json{{"role", "system"}, {"content", "A story."}},
                                     Json{{"role", "user"}, {"content", "Once upon a time, a cat"}}});
  const HttpResponse chat = Post(Chat(messages, 12), "/v1/chat/completions");
  ASSERT_EQ(chat.status, 200) << chat.body;
  const Json json = Parse(chat);
  EXPECT_EQ(json["object"], "chat.completion");
  EXPECT_THAT(json["id"].get<std::string>(), ::testing::StartsWith("chatcmpl-"));
  ASSERT_EQ(json["choices"].size(), 1u);
  const Json& choice = json["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["message"]["role"], "assistant");
  EXPECT_EQ(choice["finish_reason"], "length");
  EXPECT_TRUE(choice["logprobs"].is_null());
  // models/stories-moe-small/chat_template.jinja: the system message and a newline, then the user's words.
  const HttpResponse completion = Post(Greedy("A story.\nOnce upon a time, a cat", 12));
  ASSERT_EQ(completion.status, 200) << completion.body;
  const Json expected = Parse(completion);
  EXPECT_EQ(choice["message"]["content"], expected["choices"][0]["text"]);
  EXPECT_EQ(json["usage"]["prompt_tokens"], expected["usage"]["prompt_tokens"]);
  EXPECT_EQ(json["usage"]["completion_tokens"], 12);
  EXPECT_GT(json["usage"]["adak"]["expert_flops"].get<double>(), 0.0);
}

TEST_F(OpenAiApiTest, ChatStreamsDeltasWithTheRoleFirstAndUsageLast) {
  const Json messages = Json::array({Json{{"role", "user"}, {"content", "The dog ran"}}});
  const Json plain = Parse(Post(Chat(messages, 10), "/v1/chat/completions"));
  Json request = Chat(messages, 10);
  request["stream"] = true;
  const HttpResponse response = Post(request, "/v1/chat/completions");
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_THAT(response.Header("content-type"), HasSubstr("text/event-stream"));
  const std::vector<Json> events = Events(response);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.front()["object"], "chat.completion.chunk");
  EXPECT_EQ(events.front()["choices"][0]["delta"]["role"], "assistant");
  std::string content;
  for (size_t i = 0; i < events.size(); ++i) {
    const Json& choice = events[i]["choices"][0];
    if (i > 0) {
      EXPECT_FALSE(choice["delta"].contains("role"));
    }
    if (choice["delta"].contains("content")) content += choice["delta"]["content"].get<std::string>();
    EXPECT_EQ(choice["finish_reason"].is_null(), i + 1 < events.size());
  }
  EXPECT_EQ(content, plain["choices"][0]["message"]["content"]);
  EXPECT_EQ(events.back()["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(events.back()["usage"]["completion_tokens"], 10);
}

TEST_F(OpenAiApiTest, ChatLogprobsCarryTokensBytesAndAlternatives) {
  Json request = Chat(Json::array({Json{{"role", "user"}, {"content", "Tom had a red ball"}}}), 4);
  request["logprobs"] = true;
  request["top_logprobs"] = 2;
  const Json json = Parse(Post(request, "/v1/chat/completions"));
  const Json& content = json["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 4u) << json.dump();
  std::string joined;
  for (const Json& entry : content) {
    EXPECT_LE(entry["logprob"].get<double>(), 0.0);
    ASSERT_EQ(entry["top_logprobs"].size(), 2u);
    // Greedy: the chosen token is the most likely one.
    EXPECT_EQ(entry["top_logprobs"][0]["token"], entry["token"]);
    EXPECT_FLOAT_EQ(entry["top_logprobs"][0]["logprob"].get<float>(), entry["logprob"].get<float>());
    std::string from_bytes;
    for (const Json& b : entry["bytes"]) from_bytes.push_back(static_cast<char>(b.get<int>()));
    EXPECT_EQ(from_bytes, entry["token"].get<std::string>());
    joined += entry["token"].get<std::string>();
  }
  EXPECT_EQ(joined, json["choices"][0]["message"]["content"]);
}

TEST_F(OpenAiApiTest, ChatRefusalsNameMessagesOrTheField) {
  // The template's own raise_exception message.
  const HttpResponse tool =
      Post(Chat(Json::array({Json{{"role", "tool"}, {"content", "x"}}}), 2), "/v1/chat/completions");
  ExpectError(tool, 400, "messages");
  EXPECT_THAT(tool.body, HasSubstr("knows the roles system, user and assistant, not 'tool'"));
  ExpectError(Post(Chat(Json::array(), 2), "/v1/chat/completions"), 400, "messages");
  ExpectError(Post(Json{{"max_tokens", 2}}, "/v1/chat/completions"), 400, "messages");
  ExpectError(Post(Chat(Json::array({Json{{"content", "no role"}}}), 2), "/v1/chat/completions"), 400, "messages");
  const Json image = Json::array(
      {Json{{"role", "user"}, {"content", Json::array({Json{{"type", "image_url"}, {"image_url", {{"url", "x"}}}}})}}});
  ExpectError(Post(Chat(image, 2), "/v1/chat/completions"), 400, "messages");
  Json json_format = Chat(Json::array({Json{{"role", "user"}, {"content", "hi"}}}), 2);
  json_format["response_format"] = {{"type", "json_object"}};
  ExpectError(Post(json_format, "/v1/chat/completions"), 400, "response_format");
  Json tool_choice = Chat(Json::array({Json{{"role", "user"}, {"content", "hi"}}}), 2);
  tool_choice["tool_choice"] = "required";
  ExpectError(Post(tool_choice, "/v1/chat/completions"), 400, "tool_choice");
  Json top = Chat(Json::array({Json{{"role", "user"}, {"content", "hi"}}}), 2);
  top["top_logprobs"] = 2;
  ExpectError(Post(top, "/v1/chat/completions"), 400, "top_logprobs");
  // A conversation longer than the context can hold: rendering stops at that size, refused naming messages.
  Json many = Json::array();
  for (int i = 0; i < 2000; ++i) many.push_back(Json{{"role", "user"}, {"content", "A long story goes on and on."}});
  const HttpResponse too_long = Post(Chat(many, 2), "/v1/chat/completions");
  ExpectError(too_long, 400, "messages");
  EXPECT_THAT(too_long.body, HasSubstr("the model's context of 512 tokens holds at most"));
  // Content given as text parts is joined.
  const Json parts = Json::array({Json{{"role", "user"},
                                       {"content", Json::array({Json{{"type", "text"}, {"text", "Once upon"}},
                                                                Json{{"type", "text"}, {"text", "a time"}}})}}});
  EXPECT_EQ(Post(Chat(parts, 2), "/v1/chat/completions").status, 200);
}

TEST_F(OpenAiApiTest, BatchedPromptsGetOneChoiceEachInOrder) {
  const std::vector<std::string> prompts = {"The sun", "A little girl named", "Once there was"};
  Json batch = Greedy("", 6);
  batch["prompt"] = prompts;
  const Json json = Parse(Post(batch));
  ASSERT_EQ(json["choices"].size(), prompts.size()) << json.dump();
  int64_t prompt_tokens = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Json single = Parse(Post(Greedy(prompts[i], 6)));
    EXPECT_EQ(json["choices"][i]["index"], i);
    EXPECT_EQ(json["choices"][i]["text"], single["choices"][0]["text"]) << prompts[i];
    prompt_tokens += single["usage"]["prompt_tokens"].get<int64_t>();
  }
  EXPECT_EQ(json["usage"]["prompt_tokens"], prompt_tokens);
  EXPECT_EQ(json["usage"]["completion_tokens"], 18);
}

TEST_F(OpenAiApiTest, SiblingsOfNShareThePromptsKvBlocks) {
  // 40 prompt tokens: two full 16-token blocks the later siblings take from the prefix cache.
  std::vector<int> ids(40);
  std::iota(ids.begin(), ids.end(), 300);
  const Json request = {{"prompt", ids}, {"max_tokens", 5},    {"n", 3},
                        {"seed", 11},    {"temperature", 1.0}, {"ignore_eos", true}};
  const Json json = Parse(Post(request));
  ASSERT_EQ(json["choices"].size(), 3u) << json.dump();
  std::set<int64_t> indices;
  std::set<std::string> texts;
  for (const Json& choice : json["choices"]) {
    indices.insert(choice["index"].get<int64_t>());
    texts.insert(choice["text"].get<std::string>());
  }
  EXPECT_EQ(indices, (std::set<int64_t>{0, 1, 2}));
  EXPECT_GT(texts.size(), 1u);                    // seed + j per sibling: not three copies of one sample
  EXPECT_EQ(json["usage"]["prompt_tokens"], 40);  // once per prompt, as OpenAI counts it
  EXPECT_EQ(json["usage"]["completion_tokens"], 15);
  EXPECT_EQ(json["usage"]["adak"]["shared_prompt_tokens"], 2 * 32) << json.dump();
  // The same request again: the same choices (seeded).
  EXPECT_EQ(Parse(Post(request))["choices"], json["choices"]);
}

TEST_F(OpenAiApiTest, AFailedCandidateFailsTheRequestWithoutWaitingForUnstartedSiblings) {
  // The first candidate misses its deadline before its siblings start: the request answers 504 at once
  // (the siblings are never submitted), streamed or not.
  for (const bool stream : {false, true}) {
    const Json request = {
        {"prompt", "Once upon a time"}, {"n", 3},           {"max_tokens", 400},
        {"ignore_eos", true},           {"stream", stream}, {"adak", {{"timeout_seconds", 0.000001}}}};
    const HttpResponse response = Post(request);
    if (!stream) {
      ExpectError(response, 504, "");
    } else {
      EXPECT_THAT(response.body, HasSubstr("deadline"));
    }
  }
  // The server is still serving.
  EXPECT_EQ(Post(Greedy("Hi", 2)).status, 200);
}

TEST_F(OpenAiApiTest, BestOfReturnsTheMostLikelyCandidates) {
  const Json request = {{"prompt", "One day"}, {"max_tokens", 6},    {"n", 1},       {"best_of", 4}, {"seed", 3},
                        {"temperature", 1.5},  {"ignore_eos", true}, {"logprobs", 0}};
  const Json json = Parse(Post(request));
  ASSERT_EQ(json["choices"].size(), 1u) << json.dump();
  EXPECT_EQ(json["usage"]["completion_tokens"], 24);  // every candidate ran
  double best = 0.0;
  ASSERT_EQ(json["choices"][0]["logprobs"]["token_logprobs"].size(), 6u);
  for (const Json& lp : json["choices"][0]["logprobs"]["token_logprobs"]) best += lp.get<double>();
  // Each candidate alone (seed + j): none is more likely than the one returned.
  for (int j = 0; j < 4; ++j) {
    Json single = request;
    single["best_of"] = 1;
    single["seed"] = 3 + j;
    const Json alone = Parse(Post(single));
    ASSERT_EQ(alone["choices"][0]["logprobs"]["token_logprobs"].size(), 6u) << alone.dump();
    double total = 0.0;
    for (const Json& lp : alone["choices"][0]["logprobs"]["token_logprobs"]) total += lp.get<double>();
    EXPECT_LE(total, best + 1e-4) << "candidate " << j;
  }
}

TEST_F(OpenAiApiTest, StreamedChoicesOfNEachEndOnce) {
  const Json request = {{"prompt", "Sam saw"}, {"max_tokens", 4}, {"n", 2}, {"stream", true}, {"ignore_eos", true}};
  const std::vector<Json> events = Events(Post(request));
  std::map<int64_t, int> finishes;
  std::map<int64_t, std::string> texts;
  for (const Json& event : events) {
    for (const Json& choice : event["choices"]) {
      texts[choice["index"].get<int64_t>()] += choice["text"].get<std::string>();
      if (!choice["finish_reason"].is_null()) ++finishes[choice["index"].get<int64_t>()];
    }
  }
  EXPECT_EQ(finishes, (std::map<int64_t, int>{{0, 1}, {1, 1}}));
  EXPECT_EQ(texts.size(), 2u);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["usage"]["completion_tokens"], 8);
}

TEST_F(OpenAiApiTest, LogitBiasBansAndForcesTokens) {
  // Forcing: +100 on token 300 makes every greedy step pick it.
  Json forced = Greedy("The cat sat on the", 3);
  forced["logit_bias"] = {{"300", 100}};
  const Json three = Parse(Post(Json{{"prompt", {300, 300, 300}}, {"max_tokens", 0}, {"echo", true}}));
  EXPECT_EQ(Parse(Post(forced))["choices"][0]["text"], three["choices"][0]["text"]);
  // Banning: -100 on the greedy next token makes the greedy step pick another one.
  const std::string first = Parse(Post(Greedy("The cat sat on the", 1)))["choices"][0]["text"];
  absl::StatusOr<std::vector<int32_t>> id = app_->context()->model->tokenizer->Encode(first, false);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_EQ(id->size(), 1u) << first;
  Json banned = Greedy("The cat sat on the", 1);
  banned["logit_bias"] = {{std::to_string((*id)[0]), -100}};
  const std::string second = Parse(Post(banned))["choices"][0]["text"];
  EXPECT_NE(second, first);
  EXPECT_FALSE(second.empty());
}

TEST_F(OpenAiApiTest, StreamedEchoCarriesThePromptLogprobsFirst) {
  const Json base = {{"prompt", "The big dog"}, {"max_tokens", 3}, {"temperature", 0}, {"echo", true}, {"logprobs", 1}};
  const Json plain = Parse(Post(base));
  Json streamed_request = base;
  streamed_request["stream"] = true;
  const std::vector<Json> events = Events(Post(streamed_request));
  ASSERT_GE(events.size(), 2u);
  const Json& echo = events.front()["choices"][0];
  EXPECT_EQ(echo["text"], "The big dog");
  const Json& lp = echo["logprobs"];
  const Json& expected = plain["choices"][0]["logprobs"];
  const size_t prompt_tokens = plain["usage"]["prompt_tokens"].get<size_t>();
  ASSERT_EQ(lp["token_logprobs"].size(), prompt_tokens);
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  for (size_t i = 1; i < prompt_tokens; ++i) {
    EXPECT_FLOAT_EQ(lp["token_logprobs"][i].get<float>(), expected["token_logprobs"][i].get<float>());
  }
  std::string text;
  for (const Json& event : events) text += event["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(text, plain["choices"][0]["text"]);
}

TEST_F(OpenAiApiTest, LoglikelihoodBatchLikeLmEvaluationHarness) {
  // lm-evaluation-harness: token-id prompts (context + continuation), echo, logprobs, max_tokens 0.
  const Json request = {{"prompt", Json::array({Json::array({300, 301, 302, 303}), Json::array({400, 401})})},
                        {"max_tokens", 0},
                        {"echo", true},
                        {"logprobs", 1},
                        {"temperature", 0}};
  const Json json = Parse(Post(request));
  ASSERT_EQ(json["choices"].size(), 2u) << json.dump();
  EXPECT_EQ(json["choices"][0]["logprobs"]["token_logprobs"].size(), 4u);
  EXPECT_EQ(json["choices"][1]["logprobs"]["token_logprobs"].size(), 2u);
  for (const Json& choice : json["choices"]) {
    EXPECT_TRUE(choice["logprobs"]["token_logprobs"][0].is_null());
    EXPECT_LT(choice["logprobs"]["token_logprobs"][1].get<double>(), 0.0);
    EXPECT_EQ(choice["finish_reason"], "length");
  }
  EXPECT_EQ(json["usage"]["completion_tokens"], 0);
}

}  // namespace
}  // namespace adak::server
