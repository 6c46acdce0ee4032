// The dispatch plan of the CUDA backend, built on the device with no host sync, in three steps that run on
// the host too (the CPU tests run them and compare with kernels::BuildDispatchPlan).
//
// The plan is kernels/cpu/moe_dispatch.h's (read its contract) over raw arrays, plus what the device needs:
//  1. PlanCount, per token: the k histogram and the per-expert row counts (atomic adds on the device);
//  2. PlanScan, once: prefix sums: k_offsets (counting sort by k), each k bucket's first slot, the expert CSR
//     offsets [E+1], and the grouped GEMM's row-tile offsets [E+1] (kernels/cuda/tile_schedule.h);
//  3. PlanPlace, per token: its place in its k bucket, its slots, and one row per chosen expert (fetch-adds
//     on the bucket and expert cursors), with the inverse maps slot_row / row_slot and token_slot.
// Run in token order on one thread (the host), the fetch-adds hand out places in token order, so the plan equals
// kernels::BuildDispatchPlan's exactly. On the device, tokens race for places: the plan is the same up to
// the order of tokens inside a k bucket and of rows inside an expert. Nothing downstream depends on that
// order: each row's GEMM result depends only on its own inputs, and the combine sums each token's rows in slot
// order (descending router probability), so outputs are deterministic.
//
// Shape legend: T tokens, E experts, KM = max k slots per token (the routing's E), R = sum_t k_t rows.
#ifndef ADAK_KERNELS_CUDA_DISPATCH_PLAN_H_
#define ADAK_KERNELS_CUDA_DISPATCH_PLAN_H_

#include <cstdint>

#include "kernels/host_device.h"

namespace adak::kernels::cuda {

// Raw arrays of one plan (device or host memory). Sizes below; PlanWords gives them all.
struct PlanArrays {
  int64_t num_tokens = 0;   // T
  int64_t num_experts = 0;  // E
  int64_t max_k = 0;        // KM
  int64_t tile_m = 1;       // rows per grouped-GEMM tile
  // Zeroed before PlanCount (PlanZero): the histograms.
  int32_t* k_counts = nullptr;        // [KM + 1] tokens with k = j
  int32_t* expert_offsets = nullptr;  // [E + 1] counts in [1..E] after PlanCount; CSR offsets after PlanScan
  // Written by PlanScan.
  int32_t* k_offsets = nullptr;      // [KM + 2] tokens with k = j: token_order[k_offsets[j] .. k_offsets[j+1])
  int32_t* slot_base = nullptr;      // [KM + 1] first slot of bucket j
  int32_t* bucket_cursor = nullptr;  // [KM + 1] next free place of bucket j
  int32_t* expert_cursor = nullptr;  // [E] next free row of expert e
  int32_t* tile_offsets = nullptr;   // [E + 1] row tiles of expert e: [tile_offsets[e], tile_offsets[e+1])
  // Written by PlanPlace.
  int32_t* token_order = nullptr;  // [T]
  int32_t* token_slot = nullptr;   // [T] first slot of token t; its slots are token_slot[t] + j, j < k_t
  int32_t* slot_row = nullptr;     // [T * KM] slot -> row (first R used)
  int32_t* row_slot = nullptr;     // [T * KM] row -> slot
  int32_t* row_token = nullptr;    // [T * KM] token of each row, grouped by expert
  float* row_weight = nullptr;     // [T * KM] combine weight of each row
};

// 4-byte words of all of a plan's arrays (CarvePlan lays them out in this order).
[[nodiscard]] ADAK_HD inline int64_t PlanWords(int64_t t, int64_t e, int64_t km) {
  return (km + 1) + (e + 1) + (km + 2) + 2 * (km + 1) + e + (e + 1) + 2 * t + 4 * t * km;
}

// The arrays of a plan carved from `words` (PlanWords(t, e, km) 4-byte words, any memory).
[[nodiscard]] ADAK_HD inline PlanArrays CarvePlan(int32_t* words, int64_t t, int64_t e, int64_t km, int64_t tile_m) {
  PlanArrays p;
  p.num_tokens = t;
  p.num_experts = e;
  p.max_k = km;
  p.tile_m = tile_m;
  int32_t* w = words;
  auto take = [&w](int64_t n) {
    int32_t* r = w;
    w += n;
    return r;
  };
  p.k_counts = take(km + 1);
  p.expert_offsets = take(e + 1);
  p.k_offsets = take(km + 2);
  p.slot_base = take(km + 1);
  p.bucket_cursor = take(km + 1);
  p.expert_cursor = take(e);
  p.tile_offsets = take(e + 1);
  p.token_order = take(t);
  p.token_slot = take(t);
  p.slot_row = take(t * km);
  p.row_slot = take(t * km);
  p.row_token = take(t * km);
  p.row_weight = reinterpret_cast<float*>(take(t * km));
  return p;
}

// Words [0, PlanZeroWords) of a carved plan are the histograms PlanCount adds into: zero them first.
[[nodiscard]] ADAK_HD inline int64_t PlanZeroWords(int64_t e, int64_t km) { return (km + 1) + (e + 1); }

// Step 1 for token t with k_t = k[t] (or max_k when k is null) and its ids [T, KM].
// add(int32_t* where, int32_t v) adds atomically on the device, plainly on the host.
template <class Add>
ADAK_HD inline void PlanCount(const PlanArrays& p, int64_t t, const int32_t* k, const int32_t* ids, Add add) {
  const int32_t kt = k != nullptr ? k[t] : static_cast<int32_t>(p.max_k);
  add(&p.k_counts[kt], 1);
  for (int32_t j = 0; j < kt; ++j) add(&p.expert_offsets[ids[t * p.max_k + j] + 1], 1);
}

// Step 2, once, after every PlanCount.
ADAK_HD inline void PlanScan(const PlanArrays& p) {
  p.k_offsets[0] = 0;
  int32_t slots = 0;
  for (int64_t j = 0; j <= p.max_k; ++j) {
    p.k_offsets[j + 1] = p.k_offsets[j] + p.k_counts[j];
    p.slot_base[j] = slots;
    p.bucket_cursor[j] = p.k_offsets[j];
    slots += p.k_counts[j] * static_cast<int32_t>(j);
  }
  p.expert_offsets[0] = 0;
  p.tile_offsets[0] = 0;
  for (int64_t e = 0; e < p.num_experts; ++e) {
    const int32_t rows = p.expert_offsets[e + 1];
    p.expert_offsets[e + 1] = p.expert_offsets[e] + rows;
    p.expert_cursor[e] = p.expert_offsets[e];
    p.tile_offsets[e + 1] = p.tile_offsets[e] + static_cast<int32_t>((rows + p.tile_m - 1) / p.tile_m);
  }
}

// Step 3 for token t. fetch_add(int32_t* where, int32_t v) returns the old value (atomicAdd on the device).
template <class FetchAdd>
ADAK_HD inline void PlanPlace(const PlanArrays& p, int64_t t, const int32_t* k, const int32_t* ids,
                              const float* weights, FetchAdd fetch_add) {
  const int32_t kt = k != nullptr ? k[t] : static_cast<int32_t>(p.max_k);
  const int32_t pos = fetch_add(&p.bucket_cursor[kt], 1);
  p.token_order[pos] = static_cast<int32_t>(t);
  const int32_t first_slot = p.slot_base[kt] + (pos - p.k_offsets[kt]) * kt;
  p.token_slot[t] = first_slot;
  for (int32_t j = 0; j < kt; ++j) {
    const int32_t row = fetch_add(&p.expert_cursor[ids[t * p.max_k + j]], 1);
    const int32_t slot = first_slot + j;
    p.row_token[row] = static_cast<int32_t>(t);
    p.row_weight[row] = weights[t * p.max_k + j];
    p.slot_row[slot] = row;
    p.row_slot[row] = slot;
  }
}

// Total rows R of a scanned plan.
[[nodiscard]] ADAK_HD inline int32_t PlanRows(const PlanArrays& p) { return p.expert_offsets[p.num_experts]; }

// The three steps in token order on the calling thread (the host twin of the device kernels). REQUIRES: p's
// histogram words zeroed; 0 <= k_t <= max_k; ids in [0, E), distinct per token.
inline void BuildPlanSequential(const PlanArrays& p, const int32_t* k, const int32_t* ids, const float* weights) {
  auto add = [](int32_t* where, int32_t v) { *where += v; };
  auto fetch_add = [](int32_t* where, int32_t v) {
    const int32_t old = *where;
    *where += v;
    return old;
  };
  for (int64_t t = 0; t < p.num_tokens; ++t) PlanCount(p, t, k, ids, add);
  PlanScan(p);
  for (int64_t t = 0; t < p.num_tokens; ++t) PlanPlace(p, t, k, ids, weights, fetch_add);
}

}  // namespace adak::kernels::cuda

#endif  // ADAK_KERNELS_CUDA_DISPATCH_PLAN_H_
