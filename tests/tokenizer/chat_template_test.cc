// tokenizer/chat_template.h: where a model's template comes from (chat_template.jinja, tokenizer_config.json
// as a string or as named templates), the variables it sees, and the refusals.
#include "tokenizer/chat_template.h"

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"

namespace adak::tokenizer {
namespace {

using ::adak::testing::StatusIs;
using ::testing::HasSubstr;
using Json = nlohmann::ordered_json;

void Write(const std::filesystem::path& path, const std::string& text) { ::adak::testing::WriteFile(path, text); }

const Json kMessages = Json::array({Json{{"role", "user"}, {"content", "hi"}}});

TEST(ChatTemplateTest, TheDefaultModelShipsOne) {
  absl::StatusOr<ChatTemplate> t = ChatTemplate::FromModelDir(::adak::testing::DefaultModelDir());
  ASSERT_TRUE(t.ok()) << t.status();
  const Json messages =
      Json::array({Json{{"role", "system"}, {"content", "S"}}, Json{{"role", "user"}, {"content", "U"}},
                   Json{{"role", "assistant"}, {"content", " A"}}});
  EXPECT_EQ(*t->Apply(messages, true, nullptr, nullptr), "S\nU A");
  EXPECT_THAT(t->Apply(Json::array({Json{{"role", "tool"}, {"content", "x"}}}), true, nullptr, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not 'tool'")));
}

TEST(ChatTemplateTest, ReadsTokenizerConfigStringsListsAndTokens) {
  const ::adak::testing::TempDir temp;
  const std::filesystem::path& dir = temp.path();
  Write(dir / "tokenizer_config.json", Json{{"bos_token", {{"content", "<s>"}}},
                                            {"eos_token", "</s>"},
                                            {"chat_template",
                                             "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}"
                                             "{% if add_generation_prompt %}>{% endif %}{{ extra }}"}}
                                           .dump());
  absl::StatusOr<ChatTemplate> t = ChatTemplate::FromModelDir(dir);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t->Apply(kMessages, true, nullptr, Json{{"extra", "!"}, {"messages", "ignored"}}), "<s>hi</s>>!");
  EXPECT_EQ(*t->Apply(kMessages, false, nullptr, nullptr), "<s>hi</s>");
  // Named templates: "default" is taken.
  Write(dir / "tokenizer_config.json",
        Json{{"chat_template", Json::array({Json{{"name", "tool_use"}, {"template", "T"}},
                                            Json{{"name", "default"}, {"template", "D{{ tools|length }}"}}})}}
            .dump());
  t = ChatTemplate::FromModelDir(dir);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t->Apply(kMessages, true, Json::array({1, 2}), nullptr), "D2");
  // chat_template.jinja wins over the config.
  Write(dir / "chat_template.jinja", "J{{ messages|length }}\n");
  t = ChatTemplate::FromModelDir(dir);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t->Apply(kMessages, true, nullptr, nullptr), "J1");
}

TEST(ChatTemplateTest, RefusesWhatItCannotUse) {
  const ::adak::testing::TempDir temp;
  const std::filesystem::path& dir = temp.path();
  Write(dir / "tokenizer_config.json", Json{{"eos_token", "</s>"}}.dump());
  EXPECT_THAT(ChatTemplate::FromModelDir(dir), StatusIs(absl::StatusCode::kNotFound, HasSubstr("no chat template")));
  Write(dir / "tokenizer_config.json", Json{{"chat_template", "{% for m in messages %}"}}.dump());
  EXPECT_THAT(ChatTemplate::FromModelDir(dir),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("chat template: line 1")));
  Write(dir / "tokenizer_config.json", Json{{"chat_template", 5}}.dump());
  EXPECT_THAT(ChatTemplate::FromModelDir(dir),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected a string or a list")));
  Write(dir / "tokenizer_config.json", "{not json");
  EXPECT_THAT(ChatTemplate::FromModelDir(dir),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not valid JSON")));
}

}  // namespace
}  // namespace adak::tokenizer
