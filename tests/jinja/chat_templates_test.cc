// Real chat templates (Mixtral-Instruct, Qwen2-MoE, Qwen3-MoE, OLMoE-Instruct, DeepSeek-MoE-chat; see
// testdata/templates/SOURCES.md) rendered by our Jinja against the renderings of an independent
// implementation, @huggingface/jinja (tools/chat-template-fixtures/render.mjs wrote
// testdata/chat_template_expected.json from testdata/chat_template_cases.json).
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "jinja/template.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"

namespace adak::jinja {
namespace {

using Json = nlohmann::ordered_json;

TEST(ChatTemplatesTest, MatchHuggingFaceJinjaOnEveryCase) {
  const std::filesystem::path dir = testing::SourceDir() / "tests/jinja/testdata";
  const Json cases = Json::parse(::adak::testing::ReadFile(dir / "chat_template_cases.json"));
  const Json expected = Json::parse(::adak::testing::ReadFile(dir / "chat_template_expected.json"));
  ASSERT_GE(cases.size(), 50u);
  int errors = 0;
  for (const Json& c : cases) {
    const std::string name = c["name"].get<std::string>();
    SCOPED_TRACE(name);
    ASSERT_TRUE(expected.contains(name)) << "no rendering for " << name << ": rerun render.mjs";
    absl::StatusOr<Template> t =
        Template::Parse(::adak::testing::ReadFile(dir / "templates" / (c["template"].get<std::string>() + ".jinja")));
    ASSERT_TRUE(t.ok()) << t.status();
    absl::StatusOr<std::string> out = t->Render(Value::FromJson(c["context"]));
    const Json& want = expected[name];
    if (want.contains("error")) {
      ++errors;
      ASSERT_FALSE(out.ok()) << "rendered: " << *out;
      EXPECT_THAT(std::string(out.status().message()), ::testing::HasSubstr(want["error"].get<std::string>()));
    } else {
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_EQ(*out, want["output"].get<std::string>());
    }
  }
  EXPECT_EQ(errors, 2);  // the two role errors Mixtral's template raises
}

}  // namespace
}  // namespace adak::jinja
