#include "kernels/cpu/moe_experts.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "base/dtype.h"
#include "gtest/gtest.h"

namespace adak::kernels {
namespace {

constexpr uint32_t kSeed = 20240607;
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
// Optimised vs reference: |got - want| <= tol * (1 + |want|) with tol = kTol for dot lengths up to 256 and
// growing as sqrt(length) beyond (TolFor). Both accumulate in fp32; only the summation order differs, and the
// reference's sequential sum over K drifts by ~eps * sqrt(K) itself.
constexpr float kTol = 1e-5f;

float TolFor(int64_t h, int64_t inter) {
  return kTol * std::max(1.0f, std::sqrt(static_cast<float>(std::max(h, inter)) / 256.0f));
}

// Random weights [n, k] of `dtype` (normal, std 1/sqrt(k) as in trained layers, so activations stay O(1)),
// stored as raw bytes.
std::vector<uint8_t> RandomWeights(int64_t n, int64_t k, DType dtype, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f / std::sqrt(static_cast<float>(std::max<int64_t>(k, 1))));
  n *= k;
  std::vector<uint8_t> bytes(static_cast<size_t>(n) * DTypeSize(dtype));
  for (int64_t i = 0; i < n; ++i) {
    const float v = d(rng);
    switch (dtype) {
      case DType::kBF16: reinterpret_cast<uint16_t*>(bytes.data())[i] = F32ToBf16(v); break;
      case DType::kF16: reinterpret_cast<uint16_t*>(bytes.data())[i] = F32ToF16(v); break;
      default: reinterpret_cast<float*>(bytes.data())[i] = v; break;
    }
  }
  return bytes;
}

std::vector<float> RandomFloats(int64_t n, float stddev, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = d(rng);
  return v;
}

struct Experts {
  std::vector<std::vector<uint8_t>> gate, up, down;
  std::vector<ExpertWeightPtrs> ptrs;
};

Experts RandomExperts(int64_t e, int64_t h, int64_t inter, DType dtype, std::mt19937& rng) {
  Experts x;
  for (int64_t i = 0; i < e; ++i) {
    x.gate.push_back(RandomWeights(inter, h, dtype, rng));
    x.up.push_back(RandomWeights(inter, h, dtype, rng));
    x.down.push_back(RandomWeights(h, inter, dtype, rng));
  }
  for (int64_t i = 0; i < e; ++i) x.ptrs.push_back({x.gate[i].data(), x.up[i].data(), x.down[i].data()});
  return x;
}

// A routing: per token k_t distinct experts (random, never `excluded`) and positive weights.
struct Routing {
  int64_t max_k = 0;
  std::vector<int32_t> k, ids;
  std::vector<float> weights;
};

Routing RandomRouting(int64_t t, int64_t e, const std::vector<int32_t>& k, std::mt19937& rng, int64_t excluded = -1) {
  Routing r;
  r.k = k;
  r.max_k = std::max<int64_t>(1, *std::max_element(k.begin(), k.end()));
  r.ids.assign(static_cast<size_t>(t * r.max_k), -1);
  r.weights.assign(static_cast<size_t>(t * r.max_k), 0.0f);
  std::uniform_real_distribution<float> w(0.05f, 1.0f);
  std::vector<int32_t> perm;
  for (int64_t i = 0; i < t; ++i) {
    perm.clear();
    for (int32_t j = 0; j < e; ++j) {
      if (j != excluded) perm.push_back(j);
    }
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int64_t j = 0; j < k[static_cast<size_t>(i)]; ++j) {
      r.ids[static_cast<size_t>(i * r.max_k + j)] = perm[static_cast<size_t>(j)];
      r.weights[static_cast<size_t>(i * r.max_k + j)] = w(rng);
    }
  }
  return r;
}

DispatchPlan PlanOf(const Routing& r, int64_t t, int64_t e) {
  DispatchPlan plan;
  BuildDispatchPlan(r.k.data(), r.ids.data(), r.weights.data(), t, r.max_k, e, &plan);
  return plan;
}

std::vector<MatMulIsaKind> AllIsas() { return {MatMulIsaKind::kScalar, MatMulIsaKind::kAvx2, MatMulIsaKind::kAvx512}; }

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, const std::string& what,
                 float tol = kTol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(want[i])) << what << " reference NaN at " << i;
    ASSERT_FALSE(std::isnan(got[i])) << what << " NaN at " << i;
    ASSERT_NEAR(got[i], want[i], tol * (1.0f + std::fabs(want[i]))) << what << " at " << i;
  }
}

struct Case {
  int64_t t = 1, h = 40, inter = 24, e = 4;
  DType dtype = DType::kBF16;
  std::vector<int32_t> k;  // [T]
  int64_t excluded = -1;   // an expert no token picks (so it has no rows), or -1
  uint32_t seed = 0;
};

std::string Describe(const Case& c, const MoeExpertsOptions& o) {
  std::ostringstream s;
  s << "isa=" << MatMulIsaName(o.isa) << " matmul_min_rows=" << o.matmul_min_rows << " dtype=" << DTypeName(c.dtype)
    << " T=" << c.t << " H=" << c.h << " I=" << c.inter << " E=" << c.e << " seed=" << c.seed << " k=[";
  for (size_t i = 0; i < c.k.size() && i < 16; ++i) s << (i ? "," : "") << c.k[i];
  s << (c.k.size() > 16 ? ",...]" : "]");
  return s.str();
}

// Runs MoeExpertsWithOptions and the reference on random data for case c; compares, and checks that tokens
// with k = 0 are untouched.
void CheckCase(const Case& c, const MoeExpertsOptions& o, ThreadPool* pool) {
  const std::string what = Describe(c, o);
  SCOPED_TRACE(what);
  std::mt19937 rng(c.seed);
  const Experts experts = RandomExperts(c.e, c.h, c.inter, c.dtype, rng);
  const std::vector<float> x = RandomFloats(c.t * c.h, 1.0f, rng);
  const Routing routing = RandomRouting(c.t, c.e, c.k, rng, c.excluded);
  const DispatchPlan plan = PlanOf(routing, c.t, c.e);
  if (c.excluded >= 0) {
    ASSERT_EQ(plan.expert_offsets[static_cast<size_t>(c.excluded)],
              plan.expert_offsets[static_cast<size_t>(c.excluded) + 1]);
  }
  const std::vector<float> init = RandomFloats(c.t * c.h, 1.0f, rng);

  MoeExpertsParams p;
  p.x = x.data();
  p.hidden = c.h;
  p.intermediate = c.inter;
  p.dtype = c.dtype;
  p.experts = experts.ptrs.data();
  p.plan = &plan;
  std::vector<float> got = init, want = init;
  p.out = got.data();
  MoeScratch scratch;
  MoeExpertsWithOptions(p, &scratch, pool, o);
  p.out = want.data();
  MoeExpertsReference(p);
  const float tol = TolFor(c.h, c.inter);
  ExpectClose(got, want, what, tol);
  for (int64_t i = 0; i < c.t; ++i) {
    if (c.k[static_cast<size_t>(i)] != 0) continue;
    for (int64_t j = 0; j < c.h; ++j) {
      ASSERT_EQ(got[static_cast<size_t>(i * c.h + j)], init[static_cast<size_t>(i * c.h + j)]) << "k=0 token " << i;
    }
  }
  // The scratch is reused across calls: a second call adds the same again.
  std::vector<float> again = got;
  p.out = again.data();
  MoeExpertsWithOptions(p, &scratch, pool, o);
  p.out = want.data();
  MoeExpertsReference(p);
  ExpectClose(again, want, what + " (second call)", tol);
}

// Mixed k in [0, max_k] per token.
std::vector<int32_t> MixedK(int64_t t, int64_t max_k, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(max_k));
  std::vector<int32_t> k(static_cast<size_t>(t));
  for (int32_t& v : k) v = d(rng);
  return k;
}

class MoeExpertsSweepTest : public ::testing::TestWithParam<std::tuple<MatMulIsaKind, DType>> {};

// Fused kernels (MatMul path off) on every ISA and weight dtype: T in {1, 2, 3, 7, 16, 64}, H and I not
// multiples of the SIMD blocks, k from 0 to every usable expert mixed, and an expert without rows (k = E and
// other degenerate routings: DegenerateRoutings).
TEST_P(MoeExpertsSweepTest, FusedMatchesReference) {
  const auto [isa, dtype] = GetParam();
  if (!MatMulIsaSupported(isa)) GTEST_SKIP() << MatMulIsaName(isa) << " is not supported by this CPU";
  std::cout << "seed " << kSeed << "\n";
  RecordProperty("seed", static_cast<int>(kSeed));
  std::mt19937 seeds(kSeed + static_cast<uint32_t>(isa) * 16 + static_cast<uint32_t>(dtype));
  ThreadPool pool(2);
  MoeExpertsOptions o;
  o.isa = isa;
  o.matmul_min_rows = kNever;
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{40, 24}, {130, 66}, {64, 32}, {17, 5}, {96, 49}};
  for (const auto& [h, inter] : shapes) {
    for (int64_t t : {1, 2, 3, 7, 16, 64}) {
      Case c;
      c.t = t;
      c.h = h;
      c.inter = inter;
      c.e = 9;
      c.excluded = 4;
      c.dtype = dtype;
      c.seed = seeds();
      std::mt19937 krng(c.seed);
      c.k = MixedK(t, c.e - 1, krng);
      CheckCase(c, o, &pool);
      if (HasFatalFailure()) return;
    }
  }
}

// The MatMul path (every expert, and a threshold that splits experts between the two paths).
TEST_P(MoeExpertsSweepTest, MatMulPathMatchesReference) {
  const auto [isa, dtype] = GetParam();
  if (!MatMulIsaSupported(isa)) GTEST_SKIP() << MatMulIsaName(isa) << " is not supported by this CPU";
  std::mt19937 seeds(kSeed + 1000 + static_cast<uint32_t>(isa) * 16 + static_cast<uint32_t>(dtype));
  ThreadPool pool(2);
  for (int64_t min_rows : {1, 3}) {
    MoeExpertsOptions o;
    o.isa = isa;
    o.matmul_min_rows = min_rows;
    for (int64_t t : {1, 7, 16}) {
      Case c;
      c.t = t;
      c.h = 130;
      c.inter = 66;
      c.e = 5;
      c.dtype = dtype;
      c.seed = seeds();
      std::mt19937 krng(c.seed);
      c.k = MixedK(t, c.e, krng);
      CheckCase(c, o, &pool);
      if (HasFatalFailure()) return;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(IsasAndDtypes, MoeExpertsSweepTest,
                         ::testing::Combine(::testing::Values(MatMulIsaKind::kScalar, MatMulIsaKind::kAvx2,
                                                              MatMulIsaKind::kAvx512),
                                            ::testing::Values(DType::kBF16, DType::kF16, DType::kF32)),
                         [](const auto& info) {
                           return std::string(MatMulIsaName(std::get<0>(info.param))) + "_" +
                                  std::string(DTypeName(std::get<1>(info.param)));
                         });

// The reference of the bf16 dot-product path: MoeExpertsReference with x and h rounded to bf16 before the
// dot products that read them.
void Bf16ActivationReference(const MoeExpertsParams& p) {
  const DispatchPlan& plan = *p.plan;
  const int64_t h = p.hidden, inter = p.intermediate;
  auto rounded = [](std::vector<float> v) {
    for (float& f : v) f = Bf16ToF32(F32ToBf16(f));
    return v;
  };
  auto linear = [&](const std::vector<float>& x, int64_t k, const void* w, int64_t n, float* out) {
    MatMulParams m;
    m.x = x.data();
    m.rows = 1;
    m.k = k;
    m.w = w;
    m.w_dtype = p.dtype;
    m.n = n;
    m.out = out;
    MatMulReference(m);
  };
  std::vector<float> gate(static_cast<size_t>(inter)), up(static_cast<size_t>(inter)), y(static_cast<size_t>(h));
  for (int64_t e = 0; e < plan.num_experts; ++e) {
    for (int32_t r = plan.expert_offsets[static_cast<size_t>(e)]; r < plan.expert_offsets[static_cast<size_t>(e) + 1];
         ++r) {
      const int64_t token = plan.row_token[static_cast<size_t>(r)];
      const std::vector<float> x = rounded(std::vector<float>(p.x + token * h, p.x + (token + 1) * h));
      linear(x, h, p.experts[e].gate, inter, gate.data());
      linear(x, h, p.experts[e].up, inter, up.data());
      for (int64_t i = 0; i < inter; ++i) {
        gate[static_cast<size_t>(i)] = internal::MoeSwiGlu(gate[static_cast<size_t>(i)], up[static_cast<size_t>(i)]);
      }
      linear(rounded(gate), inter, p.experts[e].down, h, y.data());
      float* o = p.out + token * h;
      for (int64_t i = 0; i < h; ++i) o[i] += plan.row_weight[static_cast<size_t>(r)] * y[static_cast<size_t>(i)];
    }
  }
}

// DotPrecision::kBf16 on BF16 weights (an AVX512_BF16 CPU): the fused kernels and the MatMul path match the
// reference on bf16-rounded x and h, and differ from the exact path (so a path not taken would show). The
// tolerance is 1e-3: where the kernel's h and the reference's h fall on either side of a bf16 rounding
// boundary, that element differs by one bf16 ulp (2^-8 relative). F16 weights ignore the precision.
TEST(MoeExperts, Bf16DotsMatchReferenceOnRoundedActivations) {
  if (!Bf16DotSupported()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  std::mt19937 seeds(kSeed + 77);
  ThreadPool pool(2);
  for (int64_t min_rows : {kNever, int64_t{3}}) {
    MoeExpertsOptions exact;
    exact.isa = MatMulIsaKind::kAvx512;
    exact.matmul_min_rows = min_rows;
    MoeExpertsOptions pairs = exact;
    pairs.precision = DotPrecision::kBf16;
    for (const auto& [h, inter] : std::vector<std::pair<int64_t, int64_t>>{{40, 24}, {130, 66}, {256, 128}, {17, 5}}) {
      for (int64_t t : {1, 2, 3, 7, 16, 64}) {
        for (DType dtype : {DType::kBF16, DType::kF16}) {
          Case c;
          c.t = t;
          c.h = h;
          c.inter = inter;
          c.e = 9;
          c.dtype = dtype;
          c.seed = seeds();
          std::mt19937 rng(c.seed);
          c.k = MixedK(t, c.e, rng);
          const std::string what = Describe(c, pairs) + " bf16-dots";
          const Experts experts = RandomExperts(c.e, h, inter, dtype, rng);
          const std::vector<float> x = RandomFloats(t * h, 1.0f, rng);
          const Routing routing = RandomRouting(t, c.e, c.k, rng);
          const DispatchPlan plan = PlanOf(routing, t, c.e);
          MoeExpertsParams p;
          p.x = x.data();
          p.hidden = h;
          p.intermediate = inter;
          p.dtype = dtype;
          p.experts = experts.ptrs.data();
          p.plan = &plan;
          std::vector<float> got(static_cast<size_t>(t * h)), want(got.size()), exact_out(got.size());
          MoeScratch scratch;
          p.out = got.data();
          MoeExpertsWithOptions(p, &scratch, &pool, pairs);
          p.out = exact_out.data();
          MoeExpertsWithOptions(p, &scratch, &pool, exact);
          p.out = want.data();
          if (dtype == DType::kBF16) {
            Bf16ActivationReference(p);
            ExpectClose(got, want, what, 1e-3f);
            if (plan.num_rows() > 0) {
              EXPECT_NE(got, exact_out) << what << ": the pair path was not taken";
            }
          } else {
            EXPECT_EQ(got, exact_out) << what << ": F16 weights must take the exact path";
          }
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

// Degenerate routings on every ISA: every token on one expert (many rows for one expert, the others empty),
// k = E for every token, k = 0 for every token, and one token with k = 1.
TEST(MoeExperts, DegenerateRoutings) {
  ThreadPool pool(2);
  uint32_t seed = kSeed + 2000;
  for (MatMulIsaKind isa : AllIsas()) {
    if (!MatMulIsaSupported(isa)) continue;
    MoeExpertsOptions o;
    o.isa = isa;
    o.matmul_min_rows = kNever;
    for (DType dtype : {DType::kBF16, DType::kF32}) {
      for (int64_t t : {1, 7, 64}) {
        Case c;
        c.t = t;
        c.h = 130;
        c.inter = 66;
        c.e = 6;
        c.dtype = dtype;
        // Every token to the same single expert: RandomRouting with k = 1 picks at random, so fix it below.
        c.k.assign(static_cast<size_t>(t), 1);
        c.seed = ++seed;
        {
          SCOPED_TRACE("all tokens on one expert");
          std::mt19937 rng(c.seed);
          const Experts experts = RandomExperts(c.e, c.h, c.inter, c.dtype, rng);
          const std::vector<float> x = RandomFloats(c.t * c.h, 1.0f, rng);
          Routing r;
          r.max_k = 1;
          r.k = c.k;
          r.ids.assign(static_cast<size_t>(t), 3);
          r.weights = RandomFloats(t, 1.0f, rng);
          const DispatchPlan plan = PlanOf(r, c.t, c.e);
          ASSERT_EQ(plan.expert_offsets[4] - plan.expert_offsets[3], t);
          MoeExpertsParams p;
          p.x = x.data();
          p.hidden = c.h;
          p.intermediate = c.inter;
          p.dtype = dtype;
          p.experts = experts.ptrs.data();
          p.plan = &plan;
          std::vector<float> got(static_cast<size_t>(t * c.h), 0.25f), want = got;
          p.out = got.data();
          MoeScratch scratch;
          MoeExpertsWithOptions(p, &scratch, &pool, o);
          p.out = want.data();
          MoeExpertsReference(p);
          ExpectClose(got, want, Describe(c, o));
        }
        c.k.assign(static_cast<size_t>(t), static_cast<int32_t>(c.e));  // k = E
        c.seed = ++seed;
        CheckCase(c, o, &pool);
        c.k.assign(static_cast<size_t>(t), 0);  // nothing routed: a no-op
        c.seed = ++seed;
        CheckCase(c, o, &pool);
        c.k.assign(static_cast<size_t>(t), 0);
        c.k[static_cast<size_t>(t / 2)] = 1;
        c.seed = ++seed;
        CheckCase(c, o, &pool);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// A hidden size whose gate/up rows do not fit many to an L2 block, so experts with more than 4 rows walk the
// weights in several L2 blocks; and an intermediate size of 0.
TEST(MoeExperts, LargeHiddenAndEmptyIntermediate) {
  ThreadPool pool(2);
  uint32_t seed = kSeed + 3000;
  for (MatMulIsaKind isa : AllIsas()) {
    if (!MatMulIsaSupported(isa)) continue;
    MoeExpertsOptions o;
    o.isa = isa;
    o.matmul_min_rows = kNever;
    Case c;
    c.t = 9;
    c.h = 4100;
    c.inter = 150;
    c.e = 3;
    c.k = {3, 2, 3, 1, 3, 3, 0, 3, 2};
    c.seed = ++seed;
    CheckCase(c, o, &pool);
    c.h = 40;
    c.inter = 0;
    c.seed = ++seed;
    CheckCase(c, o, &pool);
    if (HasFatalFailure()) return;
  }
}

// Weights that start at any byte offset from a cache line (mmapped checkpoints are only 8-byte aligned), with
// NaN bytes right before and after each matrix in the same cache lines: the kernels must neither lose the
// offset nor let the neighbouring bytes in. Rows are whole cache lines here (H = 96, I = 64 for 16-bit
// weights; H = 96, I = 32 for fp32), which is when the AVX-512 kernel assembles rows from aligned loads.
TEST(MoeExperts, MisalignedWeightsBetweenNanBytes) {
  ThreadPool pool(2);
  uint32_t seed = kSeed + 7000;
  struct Buffer {
    std::vector<uint8_t> bytes;
    const void* data = nullptr;
  };
  // A copy of `w` at `offset` bytes past a 64-byte boundary, surrounded by 0xff bytes.
  auto place = [](const std::vector<uint8_t>& w, size_t offset) {
    Buffer b;
    b.bytes.assign(w.size() + 256, 0xff);
    const auto base = reinterpret_cast<uintptr_t>(b.bytes.data());
    const size_t start = (64 - base % 64) % 64 + 64 + offset;
    std::copy(w.begin(), w.end(), b.bytes.begin() + static_cast<std::ptrdiff_t>(start));
    b.data = b.bytes.data() + start;
    return b;
  };
  for (MatMulIsaKind isa : AllIsas()) {
    if (!MatMulIsaSupported(isa)) continue;
    MoeExpertsOptions o;
    o.isa = isa;
    o.matmul_min_rows = kNever;
    for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
      for (size_t offset : {0, 2, 4, 8, 16, 36, 60}) {
        const int64_t t = 7, h = 96, inter = dtype == DType::kF32 ? 32 : 64, e = 3;
        std::mt19937 rng(++seed);
        SCOPED_TRACE(::testing::Message() << "isa=" << MatMulIsaName(isa) << " dtype=" << DTypeName(dtype)
                                          << " offset=" << offset << " seed=" << seed);
        const Experts experts = RandomExperts(e, h, inter, dtype, rng);
        std::vector<Buffer> buffers;
        std::vector<ExpertWeightPtrs> ptrs;
        for (int64_t i = 0; i < e; ++i) {
          // A different offset per matrix: gate at `offset`, up and down shifted further.
          buffers.push_back(place(experts.gate[static_cast<size_t>(i)], offset));
          buffers.push_back(place(experts.up[static_cast<size_t>(i)], (offset + 8) % 64));
          buffers.push_back(place(experts.down[static_cast<size_t>(i)], (offset + 20) % 64));
          ptrs.push_back(
              {buffers[buffers.size() - 3].data, buffers[buffers.size() - 2].data, buffers[buffers.size() - 1].data});
        }
        const std::vector<float> x = RandomFloats(t * h, 1.0f, rng);
        const Routing routing = RandomRouting(t, e, {1, 2, 3, 3, 2, 1, 3}, rng);
        const DispatchPlan plan = PlanOf(routing, t, e);
        MoeExpertsParams p;
        p.x = x.data();
        p.hidden = h;
        p.intermediate = inter;
        p.dtype = dtype;
        p.experts = ptrs.data();
        p.plan = &plan;
        std::vector<float> got(static_cast<size_t>(t * h), 0.0f), want = got;
        p.out = got.data();
        MoeScratch scratch;
        MoeExpertsWithOptions(p, &scratch, &pool, o);
        p.experts = experts.ptrs.data();  // the reference reads the original copies
        p.out = want.data();
        MoeExpertsReference(p);
        ExpectClose(got, want, "misaligned");
        if (HasFatalFailure()) return;
      }
    }
  }
}

// The result does not depend on the number of threads (or on having a pool): bit for bit.
TEST(MoeExperts, DeterministicAcrossThreadCounts) {
  ThreadPool one(1), two(2), three(3);
  uint32_t seed = kSeed + 4000;
  for (MatMulIsaKind isa : AllIsas()) {
    if (!MatMulIsaSupported(isa)) continue;
    for (int64_t min_rows : {kNever, int64_t{0}, int64_t{4}}) {
      MoeExpertsOptions o;
      o.isa = isa;
      o.matmul_min_rows = min_rows;
      const int64_t t = 16, h = 520, inter = 200, e = 12;
      std::mt19937 rng(++seed);
      SCOPED_TRACE(::testing::Message() << "isa=" << MatMulIsaName(isa) << " min_rows=" << min_rows
                                        << " seed=" << seed);
      const Experts experts = RandomExperts(e, h, inter, DType::kBF16, rng);
      const std::vector<float> x = RandomFloats(t * h, 1.0f, rng);
      const Routing routing = RandomRouting(t, e, MixedK(t, 8, rng), rng);
      const DispatchPlan plan = PlanOf(routing, t, e);
      MoeExpertsParams p;
      p.x = x.data();
      p.hidden = h;
      p.intermediate = inter;
      p.dtype = DType::kBF16;
      p.experts = experts.ptrs.data();
      p.plan = &plan;
      std::vector<std::vector<float>> outs;
      for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &one, &two, &three}) {
        std::vector<float> out(static_cast<size_t>(t * h), 0.0f);
        p.out = out.data();
        MoeScratch scratch;
        MoeExpertsWithOptions(p, &scratch, pool, o);
        outs.push_back(out);
      }
      for (size_t i = 1; i < outs.size(); ++i) {
        for (size_t j = 0; j < outs[0].size(); ++j) ASSERT_EQ(outs[i][j], outs[0][j]) << "pool " << i << " at " << j;
      }
    }
  }
}

// The default entry point on the detected ISA.
TEST(MoeExperts, MatchesReference) {
  const uint32_t seed = 7;
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  const int64_t t = 5, h = 40, inter = 24, e = 4;
  const Experts experts = RandomExperts(e, h, inter, DType::kBF16, rng);
  const std::vector<float> x = RandomFloats(t * h, 1.0f, rng);
  // Expert 3 gets no rows; token 4 has k = 0.
  const std::vector<int32_t> k = {2, 1, 3, 1, 0};
  const std::vector<int32_t> ids = {0, 1, -1, 2, -1, -1, 1, 0, 2, 0, -1, -1, -1, -1, -1};
  const std::vector<float> w = {0.6f, 0.4f, 0, 1.0f, 0, 0, 0.5f, 0.3f, 0.2f, 1.0f, 0, 0, 0, 0, 0};
  DispatchPlan plan;
  BuildDispatchPlan(k.data(), ids.data(), w.data(), t, 3, e, &plan);
  ASSERT_EQ(plan.num_rows(), 7);

  MoeExpertsParams p;
  p.x = x.data();
  p.hidden = h;
  p.intermediate = inter;
  p.dtype = DType::kBF16;
  p.experts = experts.ptrs.data();
  p.plan = &plan;
  std::vector<float> got(static_cast<size_t>(t * h), 0.5f), want(got.size(), 0.5f);
  p.out = got.data();
  MoeScratch scratch;
  ThreadPool pool(2);
  MoeExperts(p, &scratch, &pool);
  p.out = want.data();
  MoeExpertsReference(p);
  ExpectClose(got, want, "default path");
  // Token 4 (k = 0) is untouched.
  for (int64_t i = 0; i < h; ++i) EXPECT_EQ(got[static_cast<size_t>(4 * h + i)], 0.5f);
}

// A NaN in a token's activations reaches that token's output (and only it), as in the reference.
TEST(MoeExperts, NanPropagatesToItsToken) {
  ThreadPool pool(2);
  for (MatMulIsaKind isa : AllIsas()) {
    if (!MatMulIsaSupported(isa)) continue;
    MoeExpertsOptions o;
    o.isa = isa;
    o.matmul_min_rows = kNever;
    std::mt19937 rng(kSeed + 5000);
    const int64_t t = 3, h = 40, inter = 24, e = 4;
    const Experts experts = RandomExperts(e, h, inter, DType::kBF16, rng);
    std::vector<float> x = RandomFloats(t * h, 1.0f, rng);
    x[static_cast<size_t>(1 * h + 7)] = std::numeric_limits<float>::quiet_NaN();
    const Routing routing = RandomRouting(t, e, {2, 2, 2}, rng);
    const DispatchPlan plan = PlanOf(routing, t, e);
    MoeExpertsParams p;
    p.x = x.data();
    p.hidden = h;
    p.intermediate = inter;
    p.dtype = DType::kBF16;
    p.experts = experts.ptrs.data();
    p.plan = &plan;
    std::vector<float> out(static_cast<size_t>(t * h), 0.0f);
    p.out = out.data();
    MoeScratch scratch;
    MoeExpertsWithOptions(p, &scratch, &pool, o);
    for (int64_t i = 0; i < t; ++i) {
      for (int64_t j = 0; j < h; ++j) {
        EXPECT_EQ(std::isnan(out[static_cast<size_t>(i * h + j)]), i == 1)
            << MatMulIsaName(isa) << " " << i << "," << j;
      }
    }
  }
}

// Activations large enough that gate values reach |g| ~ 1000, where exp(-g) overflows or underflows (the SIMD
// paths use their own vector exp): silu still matches the reference, no inf or NaN.
TEST(MoeExperts, LargeGateValues) {
  ThreadPool pool(2);
  for (MatMulIsaKind isa : AllIsas()) {
    if (!MatMulIsaSupported(isa)) continue;
    MoeExpertsOptions o;
    o.isa = isa;
    o.matmul_min_rows = kNever;
    const uint32_t seed = kSeed + 8000;
    std::mt19937 rng(seed);
    SCOPED_TRACE(::testing::Message() << "isa=" << MatMulIsaName(isa) << " seed=" << seed);
    const int64_t t = 6, h = 64, inter = 40, e = 3;
    const Experts experts = RandomExperts(e, h, inter, DType::kF32, rng);
    const std::vector<float> x = RandomFloats(t * h, 150.0f, rng);
    const Routing routing = RandomRouting(t, e, {1, 2, 3, 1, 2, 3}, rng);
    const DispatchPlan plan = PlanOf(routing, t, e);
    MoeExpertsParams p;
    p.x = x.data();
    p.hidden = h;
    p.intermediate = inter;
    p.dtype = DType::kF32;
    p.experts = experts.ptrs.data();
    p.plan = &plan;
    std::vector<float> got(static_cast<size_t>(t * h), 0.0f), want = got;
    p.out = got.data();
    MoeScratch scratch;
    MoeExpertsWithOptions(p, &scratch, &pool, o);
    p.out = want.data();
    MoeExpertsReference(p);
    // Products of ~1e4 cancel to outputs anywhere down to ~1, so the summation order moves an output by ~1e-6 of
    // the largest products: compare against the scale of the output rather than each element.
    float scale = 0.0f;
    for (float v : want) scale = std::max(scale, std::fabs(v));
    ASSERT_GT(scale, 100.0f);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_FALSE(std::isnan(got[i]) || std::isinf(got[i])) << i;
      ASSERT_NEAR(got[i], want[i], kTol * scale) << i;
    }
  }
}

// DenseMlp (fused and MatMul paths) against its reference: overwrite and accumulate, with and without a
// per-row scale, on every ISA and dtype; output aliasing the input is allowed.
TEST(DenseMlp, MatchesReference) {
  ThreadPool pool(2);
  uint32_t seed = kSeed + 6000;
  for (MatMulIsaKind isa : AllIsas()) {
    if (!MatMulIsaSupported(isa)) continue;
    for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
      for (int64_t min_rows : {kNever, int64_t{1}}) {
        for (int64_t rows : {1, 5, 64}) {
          for (bool accumulate : {false, true}) {
            for (bool scaled : {false, true}) {
              const int64_t h = 130, inter = 66;
              std::mt19937 rng(++seed);
              MoeExpertsOptions o;
              o.isa = isa;
              o.matmul_min_rows = min_rows;
              SCOPED_TRACE(::testing::Message() << "isa=" << MatMulIsaName(isa) << " dtype=" << DTypeName(dtype)
                                                << " min_rows=" << min_rows << " rows=" << rows << " accumulate="
                                                << accumulate << " scaled=" << scaled << " seed=" << seed);
              const std::vector<uint8_t> gate = RandomWeights(inter, h, dtype, rng);
              const std::vector<uint8_t> up = RandomWeights(inter, h, dtype, rng);
              const std::vector<uint8_t> down = RandomWeights(h, inter, dtype, rng);
              const std::vector<float> x = RandomFloats(rows * h, 1.0f, rng);
              const std::vector<float> scale = RandomFloats(rows, 1.0f, rng);
              const std::vector<float> init = RandomFloats(rows * h, 1.0f, rng);
              DenseMlpParams p;
              p.x = x.data();
              p.rows = rows;
              p.hidden = h;
              p.intermediate = inter;
              p.dtype = dtype;
              p.w = {gate.data(), up.data(), down.data()};
              p.row_scale = scaled ? scale.data() : nullptr;
              p.accumulate = accumulate;
              std::vector<float> got = init, want = init;
              p.out = got.data();
              MoeScratch scratch;
              DenseMlpWithOptions(p, &scratch, &pool, o);
              p.out = want.data();
              DenseMlpReference(p);
              ExpectClose(got, want, "DenseMlp");
              if (!accumulate) {
                std::vector<float> in_place = x;  // out aliases x
                p.x = in_place.data();
                p.out = in_place.data();
                DenseMlpWithOptions(p, &scratch, &pool, o);
                ExpectClose(in_place, want, "DenseMlp in place");
              }
              if (HasFatalFailure()) return;
            }
          }
        }
      }
    }
  }
}

TEST(MoeExperts, DefaultMatMulMinRowsIsPositive) {
  for (MatMulIsaKind isa : AllIsas()) EXPECT_GT(DefaultMoeMatMulMinRows(isa), 0) << MatMulIsaName(isa);
}

}  // namespace
}  // namespace adak::kernels
