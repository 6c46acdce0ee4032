// Decode throughput at batch 1 against the memory-bandwidth floor.
//
//   decode_bench --model DIR [--tokens N] [--prompt-tokens P] [--threads T] [--reps R] [--kv-cache-dtype D]
//                [--matmul-precision bf16|fp32]
//
// Loads the model, touches every weight once (so the page cache holds the checkpoint and no page fault is
// timed), measures the machine's memory read bandwidth in the same run, then, R times, times the P-token
// prompt (prefill, one forward pass over all P tokens) and N greedy decode steps after it. Prints prefill and
// decode tok/s (best and median rep), the weight bytes one token touches with native top-K, and the floor:
// bytes / bandwidth seconds per token (the best a memory-bound decoder can do), with the achieved fraction of
// it. The KV cache and the dot products with BF16 weights (--matmul-precision) are bf16 by default, as
// `adak serve` has them.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/guarded_main.h"
#include "cli/app.h"
#include "cli/flags.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/safetensors.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/thread_pool.h"

namespace {

// Reads every byte of every mapped checkpoint file once.
uint64_t TouchWeights(const adak::engine::Model& model) {
  uint64_t sum = 0;
  for (const auto& file : model.weights.store->files()) {
    for (const auto& [name, view] : file->tensors()) {
      const auto* p = reinterpret_cast<const uint64_t*>(view.data);
      const size_t words = view.nbytes() / sizeof(uint64_t);
      for (size_t i = 0; i < words; i += 512) sum += p[i];  // one read per 4 KiB page
    }
  }
  return sum;
}

int Run(int argc, char** argv) {
  CLI::App app("decode_bench: decode throughput at batch 1 against the memory-bandwidth floor", "decode_bench");
  adak::cli::ConfigureApp(&app);
  std::string model_dir;
  int64_t tokens = 32, prompt_tokens = 16, threads = 0, reps = 3;
  std::string kv_cache_dtype = "bf16";
  std::string matmul_precision = "bf16";
  adak::cli::AddString(&app, "model", &model_dir, "Hugging Face model directory")->required();
  adak::cli::AddInt(&app, "tokens", &tokens, "greedy decode steps timed per rep", 1, 100000);
  adak::cli::AddInt(&app, "prompt-tokens", &prompt_tokens, "prompt length before the timed steps", 1, 100000);
  adak::cli::AddInt(&app, "threads", &threads, "worker threads; 0 = all hardware threads", 0, 1024);
  adak::cli::AddInt(&app, "reps", &reps, "repetitions", 1, 100);
  adak::cli::AddString(&app, "kv-cache-dtype", &kv_cache_dtype, "KV cache element type: bf16 or f32");
  adak::cli::AddString(&app, "matmul-precision", &matmul_precision,
                       "dot products with BF16 weights: bf16 (activations rounded to bf16, vdpbf16ps, where the CPU "
                       "has AVX512_BF16) or fp32 (exact)");
  if (std::optional<int> exit_code = adak::cli::ParseOrExit(&app, argc, argv)) return *exit_code;
  auto kv_dtype = adak::engine::ParseKvCacheDType(kv_cache_dtype);
  if (!kv_dtype.ok()) {
    std::fprintf(stderr, "decode_bench: --kv-cache-dtype: %s\n", std::string(kv_dtype.status().message()).c_str());
    return 2;
  }
  auto precision = adak::engine::ParseDotPrecision(matmul_precision);
  if (!precision.ok()) {
    std::fprintf(stderr, "decode_bench: --matmul-precision: %s\n", std::string(precision.status().message()).c_str());
    return 2;
  }
  auto model = adak::engine::LoadModel(model_dir);
  if (!model.ok()) {
    std::fprintf(stderr, "decode_bench: %s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  const auto& config = (*model)->config;
  adak::engine::SessionOptions options;
  options.num_threads = static_cast<int>(threads);
  options.max_context = prompt_tokens + tokens + 1;
  options.kv_cache_dtype = *kv_dtype;
  options.dot_precision = *precision;
  auto session = adak::engine::Session::Create(**model, options);
  if (!session.ok()) {
    std::fprintf(stderr, "decode_bench: %s\n", std::string(session.status().message()).c_str());
    return 1;
  }
  const auto t_touch = std::chrono::steady_clock::now();
  const uint64_t checksum = TouchWeights(**model);
  const double touch_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_touch).count();

  adak::kernels::ThreadPool pool(static_cast<int>(threads));
  const double bandwidth = adak::kernels::MeasureMemoryReadBandwidth(&pool);
  const double bytes = static_cast<double>(adak::engine::WeightBytesPerToken(config));

  std::mt19937 rng(1);
  std::vector<int32_t> prompt(static_cast<size_t>(prompt_tokens));
  const int64_t vocab = std::min<int64_t>(config.vocab_size, (*model)->tokenizer->vocab_size());
  for (auto& t : prompt) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));

  std::vector<double> rates, prefill_rates;
  std::vector<float> logits;
  for (int64_t rep = 0; rep < reps; ++rep) {
    (*session)->Reset();
    const auto t_prefill = std::chrono::steady_clock::now();
    if (auto s = (*session)->Append(prompt, false, &logits); !s.ok()) {
      std::fprintf(stderr, "decode_bench: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    prefill_rates.push_back(static_cast<double>(prompt_tokens) /
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - t_prefill).count());
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < tokens; ++i) {
      const int32_t next = adak::engine::Argmax(logits);
      if (auto s = (*session)->Append(std::span<const int32_t>(&next, 1), false, &logits); !s.ok()) {
        std::fprintf(stderr, "decode_bench: %s\n", std::string(s.message()).c_str());
        return 1;
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(static_cast<double>(tokens) / secs);
  }
  std::vector<double> sorted = rates;
  std::sort(sorted.begin(), sorted.end());
  const double best = sorted.back(), median = sorted[sorted.size() / 2];
  std::sort(prefill_rates.begin(), prefill_rates.end());
  const double prefill_best = prefill_rates.back(), prefill_median = prefill_rates[prefill_rates.size() / 2];
  const double floor_s = bytes / bandwidth;
  std::printf("%s", absl::StrFormat(
                        "model                 %s (%s, %d layers, %d experts top-%d, %s)\n"
                        "threads               %d   matmul isa %s   matmul precision %s%s   kv cache %s\n"
                        "weights touched once  %.1f s (checksum %x)\n"
                        "memory read bandwidth %.2f GB/s (measured in this run)\n"
                        "weight bytes/token    %.1f MB (native top-K)\n"
                        "floor                 %.2f ms/token = %.2f tok/s\n"
                        "decode batch 1        best %.2f tok/s, median %.2f tok/s over %d reps of %d "
                        "tokens after a %d-token prompt\n"
                        "achieved / floor      %.1f%% (best), %.1f%% (median)\n"
                        "achieved bandwidth    %.2f GB/s (best)\n"
                        "prefill               best %.2f tok/s, median %.2f tok/s over %d reps of a "
                        "%d-token prompt\n",
                        model_dir, adak::engine::ArchitectureName(config.arch), config.num_layers, config.num_experts,
                        config.num_experts_per_tok, DTypeName(config.torch_dtype), pool.num_threads(),
                        adak::kernels::MatMulIsa(), adak::engine::DotPrecisionName(*precision),
                        *precision == adak::kernels::DotPrecision::kBf16 && !adak::kernels::Bf16DotSupported()
                            ? " (no AVX512_BF16: exact)"
                            : "",
                        adak::engine::KvCacheDTypeName(*kv_dtype), touch_s, checksum, bandwidth / 1e9, bytes / 1e6,
                        floor_s * 1e3, 1.0 / floor_s, best, median, reps, tokens, prompt_tokens, 100.0 * best * floor_s,
                        100.0 * median * floor_s, best * bytes / 1e9, prefill_best, prefill_median, reps, prompt_tokens)
                        .c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return adak::GuardedMain("decode_bench", [&] { return Run(argc, argv); });
}
