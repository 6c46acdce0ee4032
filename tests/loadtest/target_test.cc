// IsTokenEvent: which OpenAI streaming events adak-loadtest counts as generated tokens.
#include "loadtest/target.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace adak::loadtest {
namespace {

using Json = nlohmann::json;

TEST(IsTokenEvent, TextOrANullFinishReasonIsAToken) {
  // A step with text (vLLM, llama.cpp and adak all send finish_reason null until the end).
  EXPECT_TRUE(IsTokenEvent(Json{{"index", 0}, {"text", "ab"}, {"finish_reason", nullptr}}));
  // A step whose text the server holds back (an unfinished UTF-8 character): empty text, still a token.
  EXPECT_TRUE(IsTokenEvent(Json{{"index", 0}, {"text", ""}, {"finish_reason", nullptr}}));
  // A server that omits finish_reason: text alone counts.
  EXPECT_TRUE(IsTokenEvent(Json{{"index", 0}, {"text", "a"}}));
  // Held-back text released with the closing event counts once.
  EXPECT_TRUE(IsTokenEvent(Json{{"index", 0}, {"text", "z"}, {"finish_reason", "length"}}));
}

TEST(IsTokenEvent, TheClosingEventAndMalformedChoicesAreNot) {
  EXPECT_FALSE(IsTokenEvent(Json{{"index", 0}, {"text", ""}, {"finish_reason", "length"}}));
  EXPECT_FALSE(IsTokenEvent(Json{{"index", 0}, {"text", ""}}));
  EXPECT_FALSE(IsTokenEvent(Json{{"index", 0}, {"text", 7}, {"finish_reason", "stop"}}));
  EXPECT_FALSE(IsTokenEvent(Json::array()));
  EXPECT_FALSE(IsTokenEvent(Json("text")));
}

}  // namespace
}  // namespace adak::loadtest
