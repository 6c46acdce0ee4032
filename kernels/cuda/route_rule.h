// The per-token routing rule of the CUDA backend, as plain code that runs on the host and on the device.
//
// RouteToken(p, t, ws) routes token t of kernels::RouteParams `p` (kernels/cpu/moe_routing.h states the rules of
// every policy: kTopK, kAdaK with version-1/2 allocators and sampled draws, kNull, kTopP both weightings,
// kThreshold) and writes p.k[t] and row t of p.expert_ids / p.weights ([T, E]; -1 and 0 past k). It computes
// what kernels::RouteTokens computes, in the same order of fp32 operations, so on the host the two agree
// bit for bit (tests/kernels/cuda_route_rule_test.cc checks every policy); on the device expf/logf may differ
// from the host's by an ulp, which the conformance suite's routing cases are built to absorb.
//
// The device kernel (kernels/cuda/moe.cu) runs one thread per token over a workspace in global memory: no
// per-thread local arrays, so the router's width E + M has no fixed limit. Ties go to the lower index.
#ifndef ADAK_KERNELS_CUDA_ROUTE_RULE_H_
#define ADAK_KERNELS_CUDA_ROUTE_RULE_H_

#include <math.h>

#include <cstdint>

#include "kernels/cpu/moe_routing.h"
#include "kernels/host_device.h"

namespace adak::kernels::cuda {

// Per-token scratch: probs and order hold E + M entries, work (router features) and scores (allocator
// scores) E each.
struct RouteWorkspace {
  float* probs = nullptr;
  float* work = nullptr;
  float* scores = nullptr;
  int32_t* order = nullptr;
};

// 4-byte words per token of a RouteWorkspace for a router of width e + m.
[[nodiscard]] ADAK_HD inline int64_t RouteWorkspaceWords(int64_t e, int64_t m) { return 2 * (e + m) + 2 * e; }

// The workspace of token t inside a buffer of RouteWorkspaceWords(e, m) words per token.
[[nodiscard]] ADAK_HD inline RouteWorkspace TokenWorkspace(float* base, int64_t e, int64_t m, int64_t t) {
  float* w = base + t * RouteWorkspaceWords(e, m);
  return RouteWorkspace{w, w + (e + m), w + (e + m) + e, reinterpret_cast<int32_t*>(w + (e + m) + 2 * e)};
}

namespace route_detail {

ADAK_HD inline int64_t Clamp(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

// probs = softmax(logits) over n, in fp32 (as torch.softmax(dtype=float) and kernels::RouteTokens).
ADAK_HD inline void Softmax(const float* logits, int64_t n, float* probs) {
  float mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = logits[i] > mx ? logits[i] : mx;
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += (probs[i] = expf(logits[i] - mx));
  for (int64_t i = 0; i < n; ++i) probs[i] /= sum;
}

// True when entry a goes before b: higher probability, ties to the lower index.
ADAK_HD inline bool Before(const float* probs, int32_t a, int32_t b) {
  return probs[a] != probs[b] ? probs[a] > probs[b] : a < b;
}

// order[0..k) = the k most probable of probs[0..n) in descending order (selection; the rest unordered).
ADAK_HD inline void TopOrder(const float* probs, int64_t n, int64_t k, int32_t* order) {
  for (int64_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = j;
    for (int64_t i = j + 1; i < n; ++i) {
      if (Before(probs, order[i], order[best])) best = i;
    }
    const int32_t tmp = order[j];
    order[j] = order[best];
    order[best] = tmp;
  }
}

// As kernels::RouteTokens' TopPPrefix: orders the `candidates` most probable and returns the shortest prefix
// reaching p times their mass.
ADAK_HD inline int64_t TopPPrefix(const float* probs, int64_t e, int64_t candidates, float p, int32_t* order) {
  TopOrder(probs, e, candidates, order);
  float total = 0.0f;
  for (int64_t j = 0; j < candidates; ++j) total += probs[order[j]];
  const float target = p * total;
  float mass = 0.0f;
  for (int64_t j = 0; j < candidates; ++j) {
    mass += probs[order[j]];
    if (mass >= target) return j + 1;
  }
  return candidates;
}

// Index drawn from softmax(logits[0..n)) with uniform u, in double.
ADAK_HD inline int64_t SampleSoftmax(const float* logits, int64_t n, double u) {
  double mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = static_cast<double>(logits[i]) > mx ? static_cast<double>(logits[i]) : mx;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += exp(logits[i] - mx);
  double acc = 0.0;
  const double target = u * sum;
  for (int64_t i = 0; i < n; ++i) {
    acc += exp(logits[i] - mx);
    if (target < acc) return i;
  }
  return n - 1;
}

// f_j = max(log p_(j), floor) of the router probabilities sorted descending (kernels::RouterFeatures), using
// `order` (>= e entries) for the sort.
ADAK_HD inline void RouterFeatures(const float* probs, int64_t e, int32_t* order, float* out) {
  TopOrder(probs, e, e, order);
  for (int64_t j = 0; j < e; ++j) {
    const float v = probs[order[j]];
    const float l = v > 0.0f ? logf(v) : kRouterFeatureFloor;
    out[j] = l > kRouterFeatureFloor ? l : kRouterFeatureFloor;
  }
}

ADAK_HD inline bool HasAllocator(const RouteParams& p, const TokenRoute& r) {
  return r.profile >= 0 && r.profile < kMaxAllocatorProfiles &&
         (static_cast<int64_t>(r.profile) + 1) * p.num_experts <= p.allocator_cols &&
         ((p.allocator_present >> r.profile) & 1u) != 0;
}

// k of an Ada-K token whose profile has an allocator here (version 2 adds U f + b over ws.work).
ADAK_HD inline int64_t AdaK(const RouteParams& p, const float* row, const TokenRoute& r, RouteWorkspace ws) {
  const int64_t e = p.num_experts;
  const float* alloc = row + e + static_cast<int64_t>(r.profile) * e;
  const AllocatorExtras* extras = p.allocator_extras != nullptr ? &p.allocator_extras[r.profile] : nullptr;
  if (extras != nullptr && extras->router_weight != nullptr) {  // version 2: + U f + b
    RouterFeatures(ws.probs, e, ws.order, ws.work);
    for (int64_t a = 0; a < e; ++a) {
      const float* u = extras->router_weight + a * e;
      float z = extras->bias[a];
      for (int64_t j = 0; j < e; ++j) z += u[j] * ws.work[j];
      ws.scores[a] = alloc[a] + z;
    }
    alloc = ws.scores;
  }
  int64_t a = 0;
  if (SamplesLayer(r, p.layer)) {
    a = SampleSoftmax(alloc, e, RouteUniform(r.seed, p.layer));
  } else {
    for (int64_t i = 1; i < e; ++i) {
      if (alloc[i] > alloc[a]) a = i;  // ties: lower
    }
  }
  return Clamp(a + 1, r.min_k, r.max_k);
}

}  // namespace route_detail

// Routes token t (see the file comment). ws: this token's workspace.
ADAK_HD inline void RouteToken(const RouteParams& p, int64_t t, RouteWorkspace ws) {
  namespace d = route_detail;
  const int64_t e = p.num_experts;
  const float* row = p.logits + t * p.stride;
  const TokenRoute& r = p.routes[t];
  int32_t* ids = p.expert_ids + t * e;
  float* w = p.weights + t * e;
  for (int64_t i = 0; i < e; ++i) {
    ids[i] = -1;
    w[i] = 0.0f;
  }
  int64_t k = 0;

  if (r.policy == RoutePolicy::kNull && p.null_cols > 0) {
    // Router logits and null logits share one softmax (work: the joined logits, then probs).
    const int64_t n = e + p.null_cols;
    float* joined = ws.probs;  // E + M
    for (int64_t i = 0; i < e; ++i) joined[i] = row[i];
    for (int64_t i = 0; i < p.null_cols; ++i) joined[e + i] = row[e + p.allocator_cols + i];
    d::Softmax(joined, n, ws.probs);  // in place: Softmax reads each entry before writing it
    const int64_t kk = d::Clamp(r.k, 0, n);
    d::TopOrder(ws.probs, n, kk, ws.order);
    float sum = 0.0f;
    for (int64_t j = 0; j < kk; ++j) {
      const int32_t id = ws.order[j];
      if (id >= e) continue;  // a null expert: costs nothing
      ids[k] = id;
      w[k] = ws.probs[id];
      sum += w[k];
      ++k;
    }
    for (int64_t j = 0; j < k; ++j) w[j] /= sum;
    p.k[t] = static_cast<int32_t>(k);
    return;
  }

  d::Softmax(row, e, ws.probs);
  bool renormalize = p.renormalize;
  bool ordered = false;  // kTopP and kThreshold order (at least) their candidates themselves
  switch (r.policy) {
    case RoutePolicy::kAdaK: k = d::HasAllocator(p, r) ? d::AdaK(p, row, r, ws) : r.k; break;
    case RoutePolicy::kTopP:
      ordered = true;
      if (r.topp_raw != 0) {
        k = d::TopPPrefix(ws.probs, e, e, r.top_p, ws.order);
        renormalize = false;
      } else {
        k = d::TopPPrefix(ws.probs, e, d::Clamp(r.k, 0, e), r.top_p, ws.order);
      }
      break;
    case RoutePolicy::kThreshold: {
      ordered = true;
      const int64_t candidates = d::Clamp(r.k, 0, e);
      d::TopOrder(ws.probs, e, candidates, ws.order);
      k = candidates < 1 ? candidates : 1;
      const float bar = candidates > 0 ? r.threshold * ws.probs[ws.order[0]] : 0.0f;
      while (k < candidates && ws.probs[ws.order[k]] >= bar) ++k;
      const int64_t floor_k = r.min_k < candidates ? r.min_k : candidates;
      k = k > floor_k ? k : floor_k;
      break;
    }
    case RoutePolicy::kNull:  // a layer without null experts routes natively
    case RoutePolicy::kTopK: k = r.k; break;
  }
  k = d::Clamp(k, 0, e);
  if (!ordered) d::TopOrder(ws.probs, e, k, ws.order);
  float sum = 0.0f;
  for (int64_t j = 0; j < k; ++j) sum += ws.probs[ws.order[j]];
  const float scale = renormalize && sum > 0.0f ? 1.0f / sum : 1.0f;
  for (int64_t j = 0; j < k; ++j) {
    ids[j] = ws.order[j];
    w[j] = ws.probs[ids[j]] * scale;
  }
  p.k[t] = static_cast<int32_t>(k);
}

}  // namespace adak::kernels::cuda

#endif  // ADAK_KERNELS_CUDA_ROUTE_RULE_H_
