// The command-line parsing helpers (cli/flags.h, cli/routing_flags.h, cli/app.h) without running a
// binary: our wording of CLI11's errors, the policy the routing files imply, and --help generated from the
// same declarations that parse, for every command.
#include <string>
#include <vector>

#include "cli/app.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/routing_flags.h"
#include "cli/serve_command.h"
#include "engine/model_config.h"
#include "tests/test_util.h"

namespace adak::cli {
namespace {

using ::adak::testing::IsOk;
using ::adak::testing::StatusIs;
using ::testing::HasSubstr;

// Parses `args` (no program name) with `app`; the status RunCommandLine would report.
absl::Status Parse(CLI::App* app, const std::string& args) {
  try {
    app->parse(args, /*program_name_included=*/false);
  } catch (const CLI::ParseError& e) {
    return UsageError(e);
  }
  return CheckNoExtras(*app);
}

class FlagsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ConfigureApp(&app_);
    AddString(&app_, "data", &data_, "text file", "FILE")->required();
    AddInt(&app_, "top", &top_, "how many", 1, 1 << 20);
    AddDouble(&app_, "top-p", &top_p_, "threshold", 0.0, 1.0);
    AddFlag(&app_, "json", &json_, "print JSON");
  }

  CLI::App app_{"test"};
  std::string data_;
  int64_t top_ = 10;
  double top_p_ = 0.5;
  bool json_ = false;
};

TEST_F(FlagsTest, ParsesValuesAndKeepsDefaults) {
  ASSERT_TRUE(Parse(&app_, "--data d.txt --top=7 --json").ok());
  EXPECT_EQ(data_, "d.txt");
  EXPECT_EQ(top_, 7);
  EXPECT_EQ(top_p_, 0.5);
  EXPECT_TRUE(json_);
}

TEST_F(FlagsTest, UnknownFlagIsNamed) {
  EXPECT_THAT(Parse(&app_, "--data d --bogus 1"), StatusIs(absl::StatusCode::kInvalidArgument, "unknown flag --bogus"));
  EXPECT_THAT(Parse(&app_, "--data d --bogus=1"), StatusIs(absl::StatusCode::kInvalidArgument, "unknown flag --bogus"));
}

TEST_F(FlagsTest, StrayArgumentIsNamed) {
  EXPECT_THAT(Parse(&app_, "--data d stray"),
              StatusIs(absl::StatusCode::kInvalidArgument, "unexpected argument 'stray'"));
}

TEST_F(FlagsTest, MissingRequiredFlagIsNamed) {
  EXPECT_THAT(Parse(&app_, "--top 3"), StatusIs(absl::StatusCode::kInvalidArgument, "missing required flag --data"));
}

TEST_F(FlagsTest, MissingValueIsNamed) {
  EXPECT_THAT(Parse(&app_, "--data d --top"), StatusIs(absl::StatusCode::kInvalidArgument, "flag --top needs a value"));
}

TEST_F(FlagsTest, BooleanFlagTakesNoValue) {
  EXPECT_THAT(Parse(&app_, "--data d --json=yes"),
              StatusIs(absl::StatusCode::kInvalidArgument, "flag --json takes no value"));
}

TEST_F(FlagsTest, RepeatedFlagIsRefused) {
  EXPECT_THAT(Parse(&app_, "--data d --top 1 --top 2"),
              StatusIs(absl::StatusCode::kInvalidArgument, "flag --top given more than once"));
}

TEST_F(FlagsTest, OutOfRangeValuesNameFlagRangeAndValue) {
  EXPECT_THAT(Parse(&app_, "--data d --top 0"),
              StatusIs(absl::StatusCode::kInvalidArgument, "--top must be an integer in [1, 1048576], got '0'"));
  EXPECT_THAT(Parse(&app_, "--data d --top 2.5"),
              StatusIs(absl::StatusCode::kInvalidArgument, "--top must be an integer in [1, 1048576], got '2.5'"));
  EXPECT_THAT(Parse(&app_, "--data d --top-p 1.5"),
              StatusIs(absl::StatusCode::kInvalidArgument, "--top-p must be a number in [0, 1], got '1.5'"));
  EXPECT_THAT(Parse(&app_, "--data d --top-p nan"),
              StatusIs(absl::StatusCode::kInvalidArgument, "--top-p must be a number in [0, 1], got 'nan'"));
}

TEST(CheckRange, NamesFlagRangeAndValue) {
  EXPECT_TRUE(CheckRange("context", 2, 2, 512).ok());
  EXPECT_THAT(CheckRange("context", 513, 2, 512),
              StatusIs(absl::StatusCode::kInvalidArgument, "--context must be an integer in [2, 512], got '513'"));
}

TEST(NegativeValues, AreValuesNotFlags) {
  CLI::App app("test");
  ConfigureApp(&app);
  int port = 8080;
  AddInt(&app, "grpc-port", &port, "port", -1, 65535);
  ASSERT_TRUE(Parse(&app, "--grpc-port -1").ok());
  EXPECT_EQ(port, -1);
}

TEST(Version, IsAdakAndTheProjectVersion) {
  EXPECT_THAT(VersionLine(), ::testing::MatchesRegex("adak [0-9]+\\.[0-9]+\\.[0-9]+"));
}

// --- routing flags ---

class RoutingFlagsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ConfigureApp(&app_);
    AddRoutingFlags(&app_, &flags_);
    config_.num_experts = 8;
    config_.num_experts_per_tok = 2;
  }

  absl::StatusOr<engine::RoutingParams> Routing(const std::string& args) {
    absl::Status parsed = Parse(&app_, args);
    if (!parsed.ok()) return parsed;
    return RoutingFromFlags(flags_, config_, weights_);
  }

  CLI::App app_{"test"};
  RoutingFlags flags_;
  engine::ModelConfig config_;
  engine::RoutingWeights weights_;
};

TEST_F(RoutingFlagsTest, NoFlagsIsNativeTopK) {
  auto r = Routing("");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->policy, engine::RoutingPolicy::kTopK);
  EXPECT_EQ(r->top_k, 0);
}

TEST_F(RoutingFlagsTest, AllocatorSelectsAdaK) {
  auto r = Routing("--allocator a.safetensors --max-k 4");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->policy, engine::RoutingPolicy::kAdaK);
  EXPECT_EQ(r->max_k, 4);
}

// --allocator [NAME=]FILE, repeatable: the profiles in order; --profile picks one by name (adak only).
TEST_F(RoutingFlagsTest, AllocatorProfilesAndProfileFlag) {
  ASSERT_THAT(Parse(&app_,
                    "--allocator eco=e.safetensors --allocator dir=x/a.safetensors --allocator plain.st "
                    "--allocator 'no name=f.st'"),
              IsOk());
  const std::vector<engine::AllocatorFile> files = AllocatorFiles(flags_.files);
  ASSERT_EQ(files.size(), 4u);
  EXPECT_EQ(files[0].name, "eco");
  EXPECT_EQ(files[0].path, "e.safetensors");
  EXPECT_EQ(files[1].name, "dir");
  EXPECT_EQ(files[1].path, "x/a.safetensors");
  EXPECT_EQ(files[2].name, "");
  EXPECT_EQ(files[2].path, "plain.st");
  EXPECT_EQ(files[3].name, "");  // not a profile name: all of it is the path
  EXPECT_EQ(files[3].path, "no name=f.st");

  weights_.allocators.resize(2);
  weights_.allocators[0].name = "balanced";
  weights_.allocators[1].name = "eco";
  auto r = Routing("--allocator a.safetensors --profile eco");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->policy, engine::RoutingPolicy::kAdaK);
  EXPECT_EQ(r->profile, 1);
  EXPECT_THAT(Routing("--allocator a.safetensors --profile nope").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--profile 'nope' is not a loaded allocator profile (balanced, eco)")));
  EXPECT_THAT(Routing("--routing topk --allocator a.safetensors --profile eco").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--profile applies to --routing adak only")));
}

TEST_F(RoutingFlagsTest, NullExpertsSelectNullRouting) {
  auto r = Routing("--null-experts n.safetensors");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->policy, engine::RoutingPolicy::kNull);
}

TEST_F(RoutingFlagsTest, RoutingFlagWinsOverTheFiles) {
  auto r = Routing("--routing topk --allocator a.safetensors --top-k 1");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->policy, engine::RoutingPolicy::kTopK);
  EXPECT_EQ(r->top_k, 1);
  r = Routing("--routing null --allocator a.safetensors --null-experts n.safetensors");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->policy, engine::RoutingPolicy::kNull);
}

TEST_F(RoutingFlagsTest, BothFilesWithoutRoutingIsAUsageErrorNamingBoth) {
  auto r = Routing("--allocator a.safetensors --null-experts n.safetensors");
  ASSERT_THAT(r.status(), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("--allocator and --null-experts"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("--routing"));
}

TEST_F(RoutingFlagsTest, PolicyFlagsOnlyWithTheirPolicy) {
  EXPECT_THAT(Routing("--allocator a.safetensors --top-k 1").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "--top-k applies to --routing topk only"));
  EXPECT_THAT(Routing("--min-k 1").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "--min-k applies to --routing adak and threshold only"));
  EXPECT_THAT(Routing("--routing threshold --threshold 0.3 --max-k 2").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "--max-k applies to --routing adak only"));
  EXPECT_THAT(Routing("--routing threshold").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "--routing threshold needs --threshold T with T in [0, 1]"));
  EXPECT_THAT(Routing("--threshold 0.3").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "--threshold applies to --routing threshold only"));
  EXPECT_THAT(Routing("--top-p-weighting raw").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "--top-p-weighting applies to --routing topp only"));
  EXPECT_THAT(Routing("--routing topp --top-p 0.5 --top-p-weighting sum").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown top-p weighting 'sum'")));
  EXPECT_THAT(Routing("--routing topp").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "--routing topp needs --top-p P with P in (0, 1]"));
  EXPECT_THAT(Routing("--routing best").status(), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST_F(RoutingFlagsTest, ThresholdAndTopPWeightingReachTheParams) {
  auto r = Routing("--routing threshold --threshold 0.25 --min-k 2");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->policy, engine::RoutingPolicy::kThreshold);
  EXPECT_FLOAT_EQ(r->threshold, 0.25f);
  EXPECT_EQ(r->min_k, 2);
  r = Routing("--routing topp --top-p 0.8");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->top_p_weighting, engine::TopPWeighting::kModel);
  r = Routing("--routing topp --top-p 0.8 --top-p-weighting raw");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->top_p_weighting, engine::TopPWeighting::kRaw);
}

TEST_F(RoutingFlagsTest, KIsBoundedByTheModelsExperts) {
  EXPECT_THAT(Routing("--top-k 9").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "--top-k must be an integer in [0, 8], got '9'"));
  EXPECT_TRUE(Routing("--top-k 8").ok());
}

TEST(ImpliedRoutingPolicy, ServeDefaultRoutingFollowsTheFiles) {
  auto implied = [](const std::string& args) {
    CLI::App app("test");
    ConfigureApp(&app);
    RoutingFileFlags files;
    std::string policy;
    AddRoutingFileFlags(&app, "default-routing", &files);
    CLI::Option* policy_option = AddString(&app, "default-routing", &policy, "policy");
    EXPECT_TRUE(Parse(&app, args).ok()) << args;
    return ImpliedRoutingPolicy("default-routing", Given(policy_option), policy, files);
  };
  EXPECT_EQ(*implied(""), "topk");
  EXPECT_EQ(*implied("--allocator a"), "adak");
  EXPECT_EQ(*implied("--null-experts n"), "null");
  EXPECT_EQ(*implied("--allocator a --default-routing topk"), "topk");
  const absl::StatusOr<std::string> both = implied("--allocator a --null-experts n");
  ASSERT_THAT(both.status(), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(std::string(both.status().message()),
              HasSubstr("--allocator and --null-experts were both given without --default-routing"));
}

// --- help generated from the declarations ---

struct CommandCase {
  const char* name;
  CommandFn (*set_up)(CLI::App*);
};
void PrintTo(const CommandCase& c, std::ostream* os) { *os << c.name; }

class CommandHelpTest : public ::testing::TestWithParam<CommandCase> {};

TEST_P(CommandHelpTest, ListsEveryFlagWithItsDescription) {
  CLI::App app("adak", "adak");
  ConfigureApp(&app);
  CLI::App* command = app.add_subcommand(GetParam().name);
  ConfigureApp(command);
  const CommandFn run = GetParam().set_up(command);
  ASSERT_TRUE(run != nullptr);
  EXPECT_FALSE(command->get_description().empty());
  const std::string help = command->help();
  EXPECT_THAT(help, HasSubstr(command->get_description()));
  const std::vector<CLI::Option*> options = command->get_options();
  EXPECT_GE(options.size(), 2u);  // --help and at least one flag
  for (const CLI::Option* option : options) {
    SCOPED_TRACE(option->get_name());
    EXPECT_FALSE(option->get_description().empty());
    EXPECT_THAT(help, HasSubstr(option->get_name()));
    EXPECT_THAT(help, HasSubstr(option->get_description()));
  }
}

INSTANTIATE_TEST_SUITE_P(AllCommands, CommandHelpTest,
                         ::testing::Values(CommandCase{"generate", SetUpGenerate}, CommandCase{"logits", SetUpLogits},
                                           CommandCase{"perplexity", SetUpPerplexity}, CommandCase{"eval", SetUpEval},
                                           CommandCase{"train-allocator", SetUpTrainAllocator},
                                           CommandCase{"serve", SetUpServe}, CommandCase{"inspect", SetUpInspect},
                                           CommandCase{"tokenize", SetUpTokenize},
                                           CommandCase{"make-model", SetUpMakeModel}),
                         [](const ::testing::TestParamInfo<CommandCase>& info) {
                           std::string name = info.param.name;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

// Every command that routes shares the same routing flags, with the same descriptions.
TEST(RoutingFlags, AreSharedByEveryRoutingCommand) {
  std::string reference;
  for (CommandFn (*set_up)(CLI::App*) : {SetUpGenerate, SetUpLogits, SetUpPerplexity, SetUpEval}) {
    CLI::App command("command");
    ConfigureApp(&command);
    (void)set_up(&command);
    std::string lines;
    for (const char* flag : {"--routing", "--allocator", "--null-experts", "--top-k", "--top-p", "--top-p-weighting",
                             "--threshold", "--min-k", "--max-k"}) {
      const CLI::Option* option = command.get_option_no_throw(flag);
      ASSERT_NE(option, nullptr) << flag;
      lines += option->get_name() + ": " + option->get_description() + "\n";
    }
    if (reference.empty()) reference = lines;
    EXPECT_EQ(lines, reference);
  }
}

}  // namespace
}  // namespace adak::cli
