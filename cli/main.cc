// `adak`: the command-line entry point. One sub-command per file (cmd_*.cc).
#include <cstdio>
#include <cstring>
#include <string_view>

#include "cli/commands.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* usage;
};

constexpr Command kCommands[] = {
    {"generate", adak::cli::RunGenerate,
     "--model DIR --prompt TEXT [--max-tokens N] [--temperature T] [--seed S] [--sample-top-k K] "
     "[--sample-top-p P] [--min-p P] [--repetition-penalty R] [--ignore-eos] ROUTING [--threads N]"},
    {"logits", adak::cli::RunLogits, "--model DIR --prompt TEXT [--top N] [--json] [--trace] ROUTING [--threads N]"},
    {"perplexity", adak::cli::RunPerplexity,
     "--model DIR --data FILE [--max-tokens N] [--context L] ROUTING [--threads N]"},
    {"eval", adak::cli::RunEval,
     "--model DIR --data FILE [--max-tokens N] [--context L] [--json] [--sweep-topk] ROUTING [--threads N]"},
    {"train-allocator", adak::cli::RunTrainAllocator,
     "--model DIR --data FILE --out FILE [--lambda 3e-3] [--steps N] [--batch B] [--seq-len L] [--lr 1e-3] "
     "[--ppo-epochs 2] [--clip 0.2] [--warm-start-p auto|P] [--warm-start-steps N] [--seed S] [--log FILE] "
     "[--resume] [--threads N] [--advantage-norm none|center|standardize] [--lr-schedule constant|cosine] "
     "[--lambda-warmup N] [--rollout joint|per-layer] [--reward-gamma G]"},
    {"serve", adak::cli::RunServe,
     "--model DIR [--allocator FILE] [--null-experts FILE] [--default-routing topk|adak|null|topp] "
     "[--default-top-p P] [--grpc-port 50051] [--http-port 8080] [--host 127.0.0.1] [--max-batch-tokens N] "
     "[--max-running-requests N] [--max-waiting-requests N] [--prefill-chunk N] [--max-batch-expert-activations A] "
     "[--kv-cache-mib N] [--drain-timeout S] [--http-threads N] [--threads N]"},
    {"inspect", adak::cli::RunInspect, "--model DIR"},
    {"tokenize", adak::cli::RunTokenize, "--model DIR (--text S | --file F) [--out FILE] [--add-special-tokens]"},
    {"make-model", adak::cli::RunMakeModel, "--arch ARCH --out DIR [--seed S] [--set key=value ...]"},
};

void Usage(FILE* out) {
  std::fprintf(out, "usage: adak <command> [flags]\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  adak %s %s\n", c.name, c.usage);
  std::fprintf(out,
               "\nROUTING: [--routing topk|adak|null|topp] [--allocator FILE] [--null-experts FILE] [--top-k K]\n"
               "         [--top-p P] [--min-k K] [--max-k K]\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    Usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string_view name = argv[1];
  for (const Command& c : kCommands) {
    if (name == c.name) return c.run(argc, argv);
  }
  std::fprintf(stderr, "adak: unknown command '%s'\n\n", argv[1]);
  Usage(stderr);
  return 2;
}
