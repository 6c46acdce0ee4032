// Per-token routing of an MoE layer under the adaptive policies: native top-K, Ada-K, null experts, top-p.
//
// Input is one GEMM's output per token, the fused gate logits [T, E + Ea + M]: columns [0, E) are the
// router's, [E, E + Ea) the Ada-K allocators' (Ea = P * E for P allocator profiles when any profile has an
// allocator in the layer, else 0; profile p's E columns start at E + p * E), and the last M the null
// experts' (AdaMoE). Each token carries its own policy, so one batch mixes policies.
// Output: k_t and the chosen experts in descending router probability (ties: lower index) with their
// combine weights, in [T, KM] slots (KM = E). The rules, exactly (docs/architecture.md):
//   kTopK:  k = the token's k; top-k of softmax over E; renormalised iff `renormalize` (the model's rule).
//   kAdaK:  k = argmax(the token's profile's allocator logits) + 1 (ties: lower index), clamped to
//           [min_k, max_k]; then as kTopK. A layer where the token's profile has no allocator (Ea = 0, or the
//           profile's bit clear in `allocator_present`) uses the token's k, as kTopK. With `sample` (training
//           rollouts), in the layers its `sample_layers` mask selects, k - 1 is drawn from
//           softmax(allocator logits) instead, by a counter-based generator keyed by (seed, layer):
//           reproducible, independent across tokens and layers; the other layers take the argmax.
//   kNull:  softmax over all E + M logits, top-k' over E + M (k' = the token's k); only true experts are
//           kept and renormalised over themselves; a token that picks only null experts gets k = 0.
//   kTopP:  with the model's weighting (default): among the token's K candidates (its k: the native top-K),
//           the smallest prefix whose share of the candidates' probability mass is >= p, weighted as kTopK
//           (renormalised iff `renormalize`). For a top-2 model this is "k = 1 when p1 / (p1 + p2) >= p".
//           With `topp_raw`: the smallest set of all E whose sorted probabilities (softmax over E) sum to
//           >= p, with the raw probabilities as weights (never renormalised).
//   kThreshold (SER): among the K candidates, keep expert i while p_i >= threshold * p_1, at least
//           min(min_k, K); weighted as kTopK.
// Stateless.
#ifndef ADAK_KERNELS_CPU_MOE_ROUTING_H_
#define ADAK_KERNELS_CPU_MOE_ROUTING_H_

#include <cstdint>

#include "kernels/cpu/thread_pool.h"

namespace adak::kernels {

enum class RoutePolicy : int32_t { kTopK = 0, kAdaK = 1, kNull = 2, kTopP = 3, kThreshold = 4 };

// Allocator profiles a layer's fused gate can hold (bits of RouteParams::allocator_present).
inline constexpr int64_t kMaxAllocatorProfiles = 16;

// Layers a TokenRoute's sampling mask can name: layers [0, kMaxSampleMaskLayers).
inline constexpr int64_t kMaxSampleMaskLayers = 128;
inline constexpr int64_t kSampleMaskWords = kMaxSampleMaskLayers / 64;

// One token's routing request (plain data, device-copyable).
struct TokenRoute {
  RoutePolicy policy = RoutePolicy::kTopK;
  int32_t k = 0;           // kTopK: experts; kAdaK: fallback for layers without an allocator; kNull: k';
                           // kTopP (model weighting), kThreshold: the candidates K
  float top_p = 0.0f;      // kTopP threshold in (0, 1]
  int32_t topp_raw = 0;    // kTopP: 1 = raw probabilities over all E, 0 = the model's weighting
  float threshold = 0.0f;  // kThreshold: t in [0, 1]
  int32_t min_k = 1;       // kAdaK clamp, 1 <= min_k <= max_k <= E; kThreshold: at least this many
  int32_t max_k = 0;
  int32_t sample = 0;   // kAdaK: 1 = draw k from the allocator's softmax (rollouts) in the layers
                        // sample_layers selects, 0 = argmax in every layer
  uint64_t seed = 0;    // per-token key of the draw
  int32_t profile = 0;  // kAdaK: which allocator profile (index) decides k
  // With `sample`: bit l % 64 of word l / 64 set = layer l draws its k, clear = layer l takes the argmax.
  // Every layer by default.
  uint64_t sample_layers[kSampleMaskWords] = {~uint64_t{0}, ~uint64_t{0}};
};

// True when `route` draws its k in `layer` (sample set and the layer's mask bit set; false for a layer at
// or beyond kMaxSampleMaskLayers).
[[nodiscard]] inline bool SamplesLayer(const TokenRoute& route, int64_t layer) {
  if (route.sample == 0 || layer < 0 || layer >= kMaxSampleMaskLayers) return false;
  return ((route.sample_layers[layer / 64] >> (layer % 64)) & 1u) != 0;
}

struct RouteParams {
  const float* logits = nullptr;  // [T, E + Ea + M], row stride `stride`
  int64_t stride = 0;
  int64_t rows = 0;                    // T
  int64_t num_experts = 0;             // E
  int64_t allocator_cols = 0;          // Ea: P * E or 0
  uint32_t allocator_present = ~0u;    // bit p: profile p has an allocator in this layer
  int64_t null_cols = 0;               // M
  bool renormalize = false;            // the model's native top-K rule (norm_topk_prob)
  int64_t layer = 0;                   // model layer index (keys sampled draws)
  const TokenRoute* routes = nullptr;  // [T]
  int32_t* k = nullptr;                // [T] out
  int32_t* expert_ids = nullptr;       // [T, E] out; slots past k are -1
  float* weights = nullptr;            // [T, E] out; slots past k are 0
};

void RouteTokens(const RouteParams& p, ThreadPool* pool);

// The uniform in [0, 1) that a sampled draw of (seed, layer) uses (SplitMix64 of the pair).
[[nodiscard]] double RouteUniform(uint64_t seed, int64_t layer);

}  // namespace adak::kernels

#endif  // ADAK_KERNELS_CPU_MOE_ROUTING_H_
