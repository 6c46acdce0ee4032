// Decode step time under native top-K vs an Ada-K allocator whose k varies per token, at batch 1 and B.
//
//   adaptive_decode_bench --model DIR [--batch 16] [--steps 16] [--target-mean-k 6] [--threads T] [--reps 3]
//
// The allocator is built here (BuildAllocator below): in every MoE layer, rows for k in a window
// [K_lo, K_hi] (up to 5 values) centred on --target-mean-k get random N(0, 1/sqrt(H)) entries and the other rows zero,
// so a token's k is the argmax of a few random projections of its hidden state: it varies per token, with a mean near
// the target. For each batch size the bench runs `steps` decode steps (after a short prompt per sequence) with each
// policy, alternating policies rep by rep, and prints:
//   - the step time of each policy (median over reps) and their ratio (the realised speedup);
//   - the ideal ratio from the weight bytes each step touches: the non-expert weights plus one read of
//     every distinct expert the step's tokens chose in each layer (counted from the recorded routing);
//   - realised / ideal, and at batch 1 the achieved weight bandwidth (bytes touched / step time) against
//     the memory read bandwidth measured in the same run.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/guarded_main.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "cli/app.h"
#include "cli/flags.h"
#include "engine/cpu_backend.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/model_runner.h"
#include "engine/routing.h"
#include "engine/routing_weights.h"
#include "engine/sampler.h"
#include "kernels/cpu/memory_bandwidth.h"

namespace adak::engine {
namespace {

RoutingWeights BuildAllocator(const ModelConfig& c, double target_mean_k, uint64_t seed) {
  RoutingWeights w;
  w.allocators.resize(1);
  w.allocators[0].layers.assign(static_cast<size_t>(c.num_layers), {});
  const int64_t e = c.num_experts, h = c.hidden_size;
  // A window of up to 5 values of k centred on the target.
  const int64_t lo = std::max<int64_t>(1, std::lround(target_mean_k - 2.0));
  const int64_t hi = std::min<int64_t>(e, std::lround(2.0 * target_mean_k) - lo);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f / std::sqrt(static_cast<float>(h)));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    if (!c.moe_layers[static_cast<size_t>(l)]) continue;
    auto& rows = w.allocators[0].layers[static_cast<size_t>(l)];
    rows.assign(static_cast<size_t>(e * h), 0.0f);
    for (int64_t k = lo; k <= hi; ++k) {
      for (int64_t i = 0; i < h; ++i) rows[static_cast<size_t>((k - 1) * h + i)] = d(rng);
    }
  }
  return w;
}

struct StepStats {
  double seconds = 0.0;  // median step time
  double bytes = 0.0;    // mean weight bytes touched per step
  double mean_k = 0.0;
};

class Bench {
 public:
  Bench(const Model& model, int threads, RoutingWeights routing)
      : model_(model), routing_(std::move(routing)), backend_(threads) {}

  absl::Status Init(int64_t max_batch, int64_t max_len) {
    block_size_ = 16;
    blocks_per_seq_ = BlocksFor(max_len, block_size_);
    ASSIGN_OR_RETURN(cache_, KvCache::Create(&backend_, model_.config, max_batch * blocks_per_seq_, block_size_));
    ASSIGN_OR_RETURN(runner_, ModelRunner::Create(model_.config, model_.weights, routing_, &backend_, cache_.get()));
    return absl::OkStatus();
  }

  // Runs `steps` greedy decode steps for `batch` sequences after an 8-token prompt each.
  absl::StatusOr<StepStats> Run(int64_t batch, int64_t steps, const RoutingParams& routing, uint64_t seed) {
    const ModelConfig& c = model_.config;
    const int64_t vocab = std::min<int64_t>(c.vocab_size, model_.tokenizer->vocab_size());
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::vector<std::vector<int32_t>> tokens(static_cast<size_t>(batch)), tables(static_cast<size_t>(batch));
    for (int64_t s = 0; s < batch; ++s) {
      for (int i = 0; i < 8; ++i) tokens[static_cast<size_t>(s)].push_back(static_cast<int32_t>(rng() % vocab));
      for (int64_t b = 0; b < blocks_per_seq_; ++b) {
        tables[static_cast<size_t>(s)].push_back(static_cast<int32_t>(s * blocks_per_seq_ + b));
      }
    }
    ForwardOptions opts;
    opts.record_routing = true;
    ForwardResult result;
    std::vector<SequenceInput> in(static_cast<size_t>(batch));
    for (int64_t s = 0; s < batch; ++s) {
      in[static_cast<size_t>(s)].tokens = tokens[static_cast<size_t>(s)];
      in[static_cast<size_t>(s)].block_table = tables[static_cast<size_t>(s)];
      in[static_cast<size_t>(s)].routing = routing;
    }
    RETURN_IF_ERROR(runner_->Forward(in, opts, &result));  // prefill
    std::vector<double> times;
    double bytes = 0.0, sum_k = 0.0, tokens_seen = 0.0;
    std::vector<int32_t> next(static_cast<size_t>(batch));
    for (int64_t step = 0; step < steps; ++step) {
      for (int64_t s = 0; s < batch; ++s) {
        const std::span<const float> row(result.logits.data() + s * c.vocab_size, static_cast<size_t>(c.vocab_size));
        next[static_cast<size_t>(s)] = Argmax(row);
        in[static_cast<size_t>(s)].start_position = static_cast<int64_t>(tokens[static_cast<size_t>(s)].size());
        tokens[static_cast<size_t>(s)].push_back(next[static_cast<size_t>(s)]);
        in[static_cast<size_t>(s)].tokens = std::span<const int32_t>(&next[static_cast<size_t>(s)], 1);
      }
      const auto t0 = std::chrono::steady_clock::now();
      RETURN_IF_ERROR(runner_->Forward(in, opts, &result));
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      bytes += StepBytes(result, batch);
      for (size_t l = 0; l < result.routed_k.size(); ++l) {
        if (!c.moe_layers[l]) continue;
        for (int32_t k : result.routed_k[l]) sum_k += k;
      }
      tokens_seen += static_cast<double>(batch * c.num_moe_layers());
    }
    std::sort(times.begin(), times.end());
    return StepStats{times[times.size() / 2], bytes / static_cast<double>(steps), sum_k / tokens_seen};
  }

 private:
  // Weight bytes one step touches: everything but the routed experts once, plus each distinct chosen expert.
  double StepBytes(const ForwardResult& r, int64_t batch) const {
    const ModelConfig& c = model_.config;
    const double dtype = static_cast<double>(DTypeSize(c.torch_dtype));
    const ParameterCounts p = CountParameters(c);
    const double expert = 3.0 * static_cast<double>(c.hidden_size * c.moe_intermediate_size) * dtype;
    double bytes = static_cast<double>(p.active_per_token - c.num_moe_layers() * c.num_experts_per_tok * 3 *
                                                                c.hidden_size * c.moe_intermediate_size) *
                   dtype;
    for (size_t l = 0; l < r.routed_ids.size(); ++l) {
      if (!c.moe_layers[l]) continue;
      std::set<int32_t> distinct;
      for (int64_t t = 0; t < batch; ++t) {
        for (int64_t j = 0; j < r.routed_k[l][static_cast<size_t>(t)]; ++j) {
          distinct.insert(r.routed_ids[l][static_cast<size_t>(t * c.num_experts + j)]);
        }
      }
      bytes += expert * static_cast<double>(distinct.size());
    }
    return bytes;
  }

  const Model& model_;
  RoutingWeights routing_;
  CpuBackend backend_;
  int64_t block_size_ = 16, blocks_per_seq_ = 0;
  std::unique_ptr<KvCache> cache_;
  std::unique_ptr<ModelRunner> runner_;
};

int Main(int argc, char** argv) {
  CLI::App app("adaptive_decode_bench: decode step time under native top-K vs a per-token-k Ada-K allocator",
               "adaptive_decode_bench");
  cli::ConfigureApp(&app);
  std::string dir;
  int64_t batch = 16, steps = 16, threads = 0, reps = 3, seed = 1;
  double target = 6.0;
  cli::AddString(&app, "model", &dir, "Hugging Face model directory")->required();
  cli::AddInt(&app, "batch", &batch, "the larger batch size (batch 1 always runs)", 1, 256);
  cli::AddInt(&app, "steps", &steps, "decode steps timed per rep", 1, 1000);
  cli::AddDouble(&app, "target-mean-k", &target, "centre of the allocator's k window", 1.0, 1024.0);
  cli::AddInt(&app, "threads", &threads, "worker threads; 0 = all hardware threads", 0, 1024);
  cli::AddInt(&app, "reps", &reps, "repetitions (policies alternate rep by rep)", 1, 100);
  cli::AddInt(&app, "seed", &seed, "allocator seed", 0, 1 << 30);
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "adaptive_decode_bench: %s\n", std::string(ToStd(s.message())).c_str());
    return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  };
  if (std::optional<int> exit_code = cli::ParseOrExit(&app, argc, argv)) return *exit_code;
  auto model = LoadModel(dir);
  if (!model.ok()) return fail(model.status());
  const ModelConfig& c = (*model)->config;
  Bench bench(**model, static_cast<int>(threads), BuildAllocator(c, target, static_cast<uint64_t>(seed)));
  if (auto s = bench.Init(batch, 8 + steps + 1); !s.ok()) return fail(s);

  kernels::ThreadPool pool(static_cast<int>(threads));
  const double bandwidth = kernels::MeasureMemoryReadBandwidth(&pool);
  std::printf("%s", absl::StrFormat("model %s: %s, %d layers, %d experts top-%d, H %d, I %d, %s; threads %d\n"
                                    "memory read bandwidth (measured in this run): %.2f GB/s\n",
                                    dir, ArchitectureName(c.arch), c.num_layers, c.num_experts, c.num_experts_per_tok,
                                    c.hidden_size, c.moe_intermediate_size, DTypeName(c.torch_dtype),
                                    pool.num_threads(), bandwidth / 1e9)
                        .c_str());
  RoutingParams topk, adak;
  adak.policy = RoutingPolicy::kAdaK;
  for (int64_t b : {int64_t{1}, batch}) {
    std::vector<double> t_topk, t_adak;
    StepStats s_topk, s_adak;
    for (int64_t rep = 0; rep < reps; ++rep) {  // alternate so drift hits both alike
      auto a = bench.Run(b, steps, topk, static_cast<uint64_t>(rep + 1));
      if (!a.ok()) return fail(a.status());
      auto d = bench.Run(b, steps, adak, static_cast<uint64_t>(rep + 1));
      if (!d.ok()) return fail(d.status());
      t_topk.push_back(a->seconds);
      t_adak.push_back(d->seconds);
      s_topk = *a;
      s_adak = *d;
    }
    std::sort(t_topk.begin(), t_topk.end());
    std::sort(t_adak.begin(), t_adak.end());
    const double st = t_topk[t_topk.size() / 2], sa = t_adak[t_adak.size() / 2];
    const double realised = st / sa, ideal = s_topk.bytes / s_adak.bytes;
    std::printf("%s", absl::StrFormat(
                          "batch %3d | top-%d: %8.2f ms/step, mean k %.2f, %7.1f MB/step | ada-k: %8.2f ms/step, "
                          "mean k %.2f, %7.1f MB/step | speedup %.3fx, ideal %.3fx, realised/ideal %.1f%% (of the gain "
                          "%.1f%%)\n",
                          b, c.num_experts_per_tok, st * 1e3, s_topk.mean_k, s_topk.bytes / 1e6, sa * 1e3,
                          s_adak.mean_k, s_adak.bytes / 1e6, realised, ideal, 100.0 * realised / ideal,
                          ideal > 1.0 ? 100.0 * (realised - 1.0) / (ideal - 1.0) : 0.0)
                          .c_str());
    if (b == 1) {
      std::printf("%s", absl::StrFormat("batch   1 | achieved weight bandwidth: top-k %.2f GB/s (%.1f%%), ada-k %.2f "
                                        "GB/s (%.1f%%) of %.2f GB/s measured\n",
                                        s_topk.bytes / st / 1e9, 100.0 * s_topk.bytes / st / bandwidth,
                                        s_adak.bytes / sa / 1e9, 100.0 * s_adak.bytes / sa / bandwidth, bandwidth / 1e9)
                            .c_str());
    }
  }
  return 0;
}

}  // namespace
}  // namespace adak::engine

int main(int argc, char** argv) {
  return adak::GuardedMain("adaptive_decode_bench", [&] { return adak::engine::Main(argc, argv); });
}
