// Per-token routing of an MoE layer under the adaptive policies: native top-K, Ada-K, null experts, top-p.
//
// Input is one GEMM's output per token, the fused gate logits [T, E + Ea + M]: columns [0, E) are the
// router's, [E, E + Ea) the Ada-K allocators' (Ea = P * E for P allocator profiles when any profile has an
// allocator in the layer, else 0; profile p's E columns start at E + p * E), and the last M the null
// experts' (AdaMoE). Each token carries its own policy, so one batch mixes policies.
// Output: k_t and the chosen experts in descending router probability (ties: lower index) with their
// combine weights, in [T, KM] slots (KM = E). The rules, exactly (docs/architecture.md):
//   kTopK:  k = the token's k; top-k of softmax over E; renormalised iff `renormalize` (the model's rule).
//   kAdaK:  k = argmax(the token's profile's allocator logits, + U f + b for a version-2 allocator) + 1
//           (ties: lower index), clamped to
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

#include "base/random.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/host_device.h"

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
[[nodiscard]] ADAK_HD inline bool SamplesLayer(const TokenRoute& route, int64_t layer) {
  if (route.sample == 0 || layer < 0 || layer >= kMaxSampleMaskLayers) return false;
  return ((route.sample_layers[layer / 64] >> (layer % 64)) & 1u) != 0;
}

// The router-confidence part of a version-2 allocator (engine/routing_weights.h): its action logits add
// U f + b, where f_j = max(log p_(j), kRouterFeatureFloor) is the log of the token's j-th largest router
// probability (j < E). With U and b zero it is a version-1 allocator; with W = 0 it can be exactly the
// threshold rule (see the trainer's rule initialisation).
struct AllocatorExtras {
  const float* router_weight = nullptr;  // [E, E] U (row a: action a); nullptr: a version-1 allocator
  const float* bias = nullptr;           // [E] b
};
inline constexpr float kRouterFeatureFloor = -20.0f;

// f [E] of one token from its router probabilities [E] (any order).
void RouterFeatures(const float* probs, int64_t e, float* out);

// The U [E, E] and b [E] that make a version-2 allocator with W = 0 the threshold rule at t over the native
// top-`native_k`: action a < native_k (k = a + 1) scores sum_{j=1..a} (f_j - f_0 - log t), whose increments
// fall with a (f is sorted), so the argmax is the last a with p_(a) >= t p_(0), as the rule keeps experts
// (ties between equal scores go to the lower k); actions a >= native_k score -30.
void ThresholdRuleExtras(int64_t e, int64_t native_k, double t, float* router_weight, float* bias);

struct RouteParams {
  const float* logits = nullptr;  // [T, E + Ea + M], row stride `stride`
  int64_t stride = 0;
  int64_t rows = 0;                  // T
  int64_t num_experts = 0;           // E
  int64_t allocator_cols = 0;        // Ea: P * E or 0
  uint32_t allocator_present = ~0u;  // bit p: profile p has an allocator in this layer
  // [P] per profile, or nullptr (every profile version 1): the version-2 terms of each profile's allocator.
  const AllocatorExtras* allocator_extras = nullptr;
  int64_t null_cols = 0;               // M
  bool renormalize = false;            // the model's native top-K rule (norm_topk_prob)
  int64_t layer = 0;                   // model layer index (keys sampled draws)
  const TokenRoute* routes = nullptr;  // [T]
  int32_t* k = nullptr;                // [T] out
  int32_t* expert_ids = nullptr;       // [T, E] out; slots past k are -1
  float* weights = nullptr;            // [T, E] out; slots past k are 0
};

void RouteTokens(const RouteParams& p, ThreadPool* pool);

// The uniform in [0, 1) that a sampled draw of (seed, layer) uses (SplitMix64 of the pair). Host and device
// (kernels/cuda/route_rule.h) draw the same number.
[[nodiscard]] ADAK_HD inline double RouteUniform(uint64_t seed, int64_t layer) {
  const uint64_t bits = SplitMix64(SplitMix64(seed) ^ static_cast<uint64_t>(layer + 1) * 0xd1b54a32d192ed03ull);
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

}  // namespace adak::kernels

#endif  // ADAK_KERNELS_CPU_MOE_ROUTING_H_
