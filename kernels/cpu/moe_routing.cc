#include "kernels/cpu/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <vector>

namespace adak::kernels {
namespace {

// probs[i] = softmax(logits)[i] over n entries, in fp32 (as torch.softmax(dtype=float)).
void Softmax(const float* logits, int64_t n, float* probs) {
  const float mx = *std::max_element(logits, logits + n);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += (probs[i] = std::exp(logits[i] - mx));
  for (int64_t i = 0; i < n; ++i) probs[i] /= sum;
}

// order[0..n) sorted by descending prob, ties to the lower index; only the first `k` are guaranteed sorted.
void TopOrder(const float* probs, int64_t n, int64_t k, std::vector<int32_t>& order) {
  order.resize(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int32_t a, int32_t b) { return probs[a] != probs[b] ? probs[a] > probs[b] : a < b; });
}

// Orders the `candidates` most probable of probs[0..e) (as TopOrder) and returns the length of the shortest
// prefix whose probability reaches p times the candidates' total mass (all of them if rounding never
// reaches it).
int64_t TopPPrefix(const float* probs, int64_t e, int64_t candidates, float p, std::vector<int32_t>& order) {
  TopOrder(probs, e, candidates, order);
  float total = 0.0f;
  for (int64_t j = 0; j < candidates; ++j) total += probs[static_cast<size_t>(order[static_cast<size_t>(j)])];
  const float target = p * total;
  float mass = 0.0f;
  for (int64_t j = 0; j < candidates; ++j) {
    mass += probs[static_cast<size_t>(order[static_cast<size_t>(j)])];
    if (mass >= target) return j + 1;
  }
  return candidates;
}

// Index drawn from softmax(logits[0..n)) with uniform u, in double.
int64_t SampleSoftmax(const float* logits, int64_t n, double u) {
  double mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(logits[i] - mx);
  double acc = 0.0;
  const double target = u * sum;
  for (int64_t i = 0; i < n; ++i) {
    acc += std::exp(logits[i] - mx);
    if (target < acc) return i;
  }
  return n - 1;
}

struct Scratch {
  std::vector<float> probs, joined, features, alloc;
  std::vector<int32_t> order;
};

// True when the token's allocator profile has rows in this layer's gate.
bool HasAllocator(const RouteParams& p, const TokenRoute& r) {
  return r.profile >= 0 && r.profile < kMaxAllocatorProfiles &&
         (static_cast<int64_t>(r.profile) + 1) * p.num_experts <= p.allocator_cols &&
         ((p.allocator_present >> r.profile) & 1u) != 0;
}

void RouteOne(const RouteParams& p, int64_t t, Scratch& s) {
  const int64_t e = p.num_experts;
  const float* row = p.logits + t * p.stride;
  const TokenRoute& r = p.routes[t];
  int32_t* ids = p.expert_ids + t * e;
  float* w = p.weights + t * e;
  std::fill(ids, ids + e, -1);
  std::fill(w, w + e, 0.0f);
  int64_t k = 0;

  if (r.policy == RoutePolicy::kNull && p.null_cols > 0) {
    // Router logits and null logits share one softmax.
    const int64_t n = e + p.null_cols;
    s.probs.resize(static_cast<size_t>(n));
    s.joined.resize(static_cast<size_t>(n));
    std::copy(row, row + e, s.joined.begin());
    std::copy(row + e + p.allocator_cols, row + e + p.allocator_cols + p.null_cols, s.joined.begin() + e);
    Softmax(s.joined.data(), n, s.probs.data());
    const int64_t kk = std::clamp<int64_t>(r.k, 0, n);
    TopOrder(s.probs.data(), n, kk, s.order);
    float sum = 0.0f;
    for (int64_t j = 0; j < kk; ++j) {
      const int32_t id = s.order[static_cast<size_t>(j)];
      if (id >= e) continue;  // a null expert: costs nothing
      ids[k] = id;
      w[k] = s.probs[static_cast<size_t>(id)];
      sum += w[k];
      ++k;
    }
    for (int64_t j = 0; j < k; ++j) w[j] /= sum;
    p.k[t] = static_cast<int32_t>(k);
    return;
  }

  s.probs.resize(static_cast<size_t>(e));
  Softmax(row, e, s.probs.data());
  bool renormalize = p.renormalize;
  switch (r.policy) {
    case RoutePolicy::kAdaK:
      if (HasAllocator(p, r)) {
        const float* alloc = row + e + static_cast<int64_t>(r.profile) * e;
        const AllocatorExtras* extras = p.allocator_extras != nullptr ? &p.allocator_extras[r.profile] : nullptr;
        if (extras != nullptr && extras->router_weight != nullptr) {  // version 2: + U f + b
          s.features.resize(static_cast<size_t>(e));
          RouterFeatures(s.probs.data(), e, s.features.data());
          s.alloc.assign(alloc, alloc + e);
          for (int64_t a = 0; a < e; ++a) {
            const float* u = extras->router_weight + a * e;
            float z = extras->bias[a];
            for (int64_t j = 0; j < e; ++j) z += u[j] * s.features[static_cast<size_t>(j)];
            s.alloc[static_cast<size_t>(a)] += z;
          }
          alloc = s.alloc.data();
        }
        const int64_t a = SamplesLayer(r, p.layer) ? SampleSoftmax(alloc, e, RouteUniform(r.seed, p.layer))
                                                   : std::max_element(alloc, alloc + e) - alloc;  // ties: lower
        k = std::clamp<int64_t>(a + 1, r.min_k, r.max_k);
      } else {
        k = r.k;
      }
      break;
    case RoutePolicy::kTopP:
      if (r.topp_raw != 0) {
        k = TopPPrefix(s.probs.data(), e, e, r.top_p, s.order);
        renormalize = false;
      } else {
        k = TopPPrefix(s.probs.data(), e, std::clamp<int64_t>(r.k, 0, e), r.top_p, s.order);
      }
      break;
    case RoutePolicy::kThreshold: {
      const int64_t candidates = std::clamp<int64_t>(r.k, 0, e);
      TopOrder(s.probs.data(), e, candidates, s.order);
      k = std::min<int64_t>(candidates, 1);
      const float bar = candidates > 0 ? r.threshold * s.probs[static_cast<size_t>(s.order[0])] : 0.0f;
      while (k < candidates && s.probs[static_cast<size_t>(s.order[static_cast<size_t>(k)])] >= bar) ++k;
      k = std::max<int64_t>(k, std::min<int64_t>(r.min_k, candidates));
      break;
    }
    case RoutePolicy::kNull:  // a layer without null experts routes natively
    case RoutePolicy::kTopK: k = r.k; break;
  }
  k = std::clamp<int64_t>(k, 0, e);
  // kTopP and kThreshold have ordered (at least) their candidates already.
  if (r.policy != RoutePolicy::kTopP && r.policy != RoutePolicy::kThreshold) TopOrder(s.probs.data(), e, k, s.order);
  float sum = 0.0f;
  for (int64_t j = 0; j < k; ++j) sum += s.probs[static_cast<size_t>(s.order[static_cast<size_t>(j)])];
  const float scale = renormalize && sum > 0.0f ? 1.0f / sum : 1.0f;
  for (int64_t j = 0; j < k; ++j) {
    ids[j] = s.order[static_cast<size_t>(j)];
    w[j] = s.probs[static_cast<size_t>(ids[j])] * scale;
  }
  p.k[t] = static_cast<int32_t>(k);
}

}  // namespace

void RouterFeatures(const float* probs, int64_t e, float* out) {
  std::copy(probs, probs + e, out);
  std::sort(out, out + e, std::greater<>());
  for (int64_t j = 0; j < e; ++j)
    out[j] = out[j] > 0.0f ? std::max(std::log(out[j]), kRouterFeatureFloor) : kRouterFeatureFloor;
}

void ThresholdRuleExtras(int64_t e, int64_t native_k, double t, float* router_weight, float* bias) {
  const double log_t = std::log(std::max(t, 1e-6));
  std::fill(router_weight, router_weight + e * e, 0.0f);
  for (int64_t a = 0; a < e; ++a) {
    if (a >= native_k) {
      bias[a] = -30.0f;
      continue;
    }
    float* u = router_weight + a * e;
    u[0] = -static_cast<float>(a);
    for (int64_t j = 1; j <= a; ++j) u[j] = 1.0f;
    bias[a] = -static_cast<float>(static_cast<double>(a) * log_t);
  }
}

void RouteTokens(const RouteParams& p, ThreadPool* pool) {
  pool->ParallelFor(p.rows, 32, [&](int64_t begin, int64_t end) {
    Scratch s;
    for (int64_t t = begin; t < end; ++t) RouteOne(p, t, s);
  });
}

}  // namespace adak::kernels
