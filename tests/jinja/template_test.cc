#include "jinja/template.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace adak::jinja {
namespace {

using ::testing::HasSubstr;

std::string Render(const std::string& source,
                   const nlohmann::ordered_json& context = nlohmann::ordered_json::object()) {
  absl::StatusOr<Template> t = Template::Parse(source);
  if (!t.ok()) return "PARSE ERROR: " + std::string(t.status().message());
  absl::StatusOr<std::string> out = t->Render(Value::FromJson(context));
  if (!out.ok()) return "RENDER ERROR: " + std::string(out.status().message());
  return *out;
}

TEST(TemplateTest, TextAndOutput) {
  EXPECT_EQ(Render("a{{ 1 + 2 }}b"), "a3b");
  EXPECT_EQ(Render("{{ 'x' ~ 1 ~ none }}"), "x1None");
  EXPECT_EQ(Render("{{ true }} {{ 1.0 }} {{ 2.5 }} {{ [1, 'a'] }} {{ {'k': 1} }}"), "True 1.0 2.5 [1, 'a'] {'k': 1}");
  EXPECT_EQ(Render("{{ x }}|{{ x is defined }}"), "|False");
}

TEST(TemplateTest, PythonArithmetic) {
  EXPECT_EQ(Render("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }}"), "3 -4 2 3.5 1024");
  EXPECT_EQ(Render("{{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1] + [2] }}"), "True True [1, 2]");
}

TEST(TemplateTest, WhitespaceControl) {
  // trim_blocks and lstrip_blocks as Hugging Face sets them.
  EXPECT_EQ(Render("{% if true %}\n  a\n  {% endif %}\nb"), "  a\nb");
  EXPECT_EQ(Render("x  {%- if true -%}  y  {%- endif %}"), "xy");
  EXPECT_EQ(Render("a {{- ' b ' -}} c"), "a b c");
  EXPECT_EQ(Render("{# comment #}\nz\n"), "z");
}

TEST(TemplateTest, LoopsAndScopes) {
  EXPECT_EQ(Render("{% for x in [1,2,3] %}{{ loop.index }}{{ '.' if not loop.last }}{% endfor %}"), "1.2.3");
  EXPECT_EQ(Render("{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}"), "2242");
  EXPECT_EQ(Render("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  // A set inside a loop does not leak out; a namespace carries values out.
  EXPECT_EQ(Render("{% set y = 0 %}{% for x in [1] %}{% set y = 5 %}{% endfor %}{{ y }}"), "0");
  EXPECT_EQ(Render("{% set ns = namespace(y=0) %}{% for x in [1,2] %}{% set ns.y = ns.y + x %}{% endfor %}{{ ns.y }}"),
            "3");
  EXPECT_EQ(Render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {{"d", {{"b", 1}, {"a", 2}}}}),
            "b=1;a=2;");
  EXPECT_EQ(Render("{% for x in [1,2,3] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}"
                   "{% endif %}{{ x }}{% endfor %}"),
            "1");
}

TEST(TemplateTest, StringsSlicesAndFilters) {
  EXPECT_EQ(Render("{{ 'a</think>b'.split('</think>')[-1] }}"), "b");
  EXPECT_EQ(Render("{{ '\\n\\nx\\n'.strip('\\n') }}|{{ '  y '.lstrip() }}|{{ 'abc'[::-1] }}|{{ [1,2,3][1:] }}"),
            "x|y |cba|[2, 3]");
  EXPECT_EQ(Render("{{ ' a '|trim }}{{ [3,1]|sort|first }}{{ 'ab'|length }}{{ ['a','b']|join(',') }}"), "a12a,b");
  EXPECT_EQ(Render("{{ {'a': [1, 'x'], 'b': none}|tojson }}"), R"({"a": [1, "x"], "b": null})");
  EXPECT_EQ(Render("{{ {'a': 1}|tojson(indent=2) }}"), "{\n  \"a\": 1\n}");
  EXPECT_EQ(Render("{{ x|default('d') }}{{ 'A'|lower }}{{ 'hi there'|title }}"), "daHi There");
  EXPECT_EQ(Render("{{ m.get('k', 'no') }}{{ m.k }}{{ m['z'] is defined }}", {{"m", {{"k", "v"}}}}), "vvFalse");
  EXPECT_EQ(Render("{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='c')|join }}",
                   {{"msgs", {{{"role", "user"}, {"c", "1"}}, {{"role", "x"}, {"c", "2"}}}}}),
            "1");
}

TEST(TemplateTest, MacrosAndSetBlocks) {
  EXPECT_EQ(Render("{% macro f(a, b='B') %}[{{ a }}{{ b }}]{% endmacro %}{{ f(1) }}{{ f(2, b=3) }}"), "[1B][23]");
  EXPECT_EQ(Render("{% set s %}in{{ 1 }}{% endset %}{{ s }}!"), "in1!");
}

TEST(TemplateTest, ErrorsNameTheLineAndTheCause) {
  EXPECT_THAT(Render("a\n{{ raise_exception('bad roles') }}"), HasSubstr("line 2: bad roles"));
  EXPECT_THAT(Render("{% if x %}"), HasSubstr("expected 'elif' or 'else' or 'endif'"));
  EXPECT_THAT(Render("{% include 'x' %}"), HasSubstr("unsupported tag 'include'"));
  EXPECT_THAT(Render("{{ x.y }}"), HasSubstr("cannot read attribute 'y' of an undefined value"));
  EXPECT_THAT(Render("{{ 'a' + 1 }}"), HasSubstr("unsupported operand types for +: string and int"));
}

TEST(TemplateTest, LimitsBoundWorkAndOutput) {
  EXPECT_THAT(Render("{% for i in range(100000000) %}{% endfor %}"), HasSubstr("over the limit"));
  EXPECT_THAT(Render("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"),
              HasSubstr("over the limit"));
  EXPECT_THAT(Render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"), HasSubstr("deeper than the limit"));
  // Values the template builds nest at most max_value_depth deep, and a namespace cannot hold a namespace
  // (no cycles).
  EXPECT_THAT(Render("{% set ns = namespace(x=[]) %}{% for i in range(1000) %}{% set ns.x = [ns.x] %}{% endfor %}"
                     "{{ ns.x|tojson }}"),
              HasSubstr("nested deeper than the limit of 64"));
  EXPECT_THAT(Render("{% set ns = namespace(x=1) %}{% set ns.x = ns %}{{ ns }}"),
              HasSubstr("cannot store a namespace"));
  EXPECT_THAT(Render("{% set ns = namespace(x=1) %}{% set l = [ns] %}{% set ns.x = l %}"),
              HasSubstr("cannot store a namespace"));
  // Chains nest too: a + a + ... and a.b.c... build trees as deep as they are long.
  std::string sum = "{{ 1";
  std::string attrs = "{{ x";
  for (int i = 0; i < 200000; ++i) {
    sum += " + 1";
    attrs += ".y";
  }
  EXPECT_THAT(Render(sum + " }}"), HasSubstr("deeper than the limit"));
  EXPECT_THAT(Render(attrs + " }}"), HasSubstr("deeper than the limit"));
  EXPECT_EQ(Render("{{ " + std::string("1 + ") + "1 + 1 + 1 }}"), "4");
  EXPECT_THAT(Render("{{ " + std::string(1000, '(') + "1" + std::string(1000, ')') + " }}"),
              HasSubstr("deeper than the limit"));
}

}  // namespace
}  // namespace adak::jinja
