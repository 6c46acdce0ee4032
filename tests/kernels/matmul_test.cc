// MatMul (every ISA path this CPU supports, both the GEMV and the sgemm path) against MatMulReference.
//
// Tolerance: |optimised - reference| <= 1e-5 * sqrt(K) * scale, where scale = sum_i |x_i * w_i| + |bias| +
// |previous out| (for accumulate). Both sides accumulate in fp32 in different orders, so their difference is
// a few ulps of `scale` times ~sqrt(K); the bound leaves ~100x headroom. A NaN in the output always fails
// (inputs are finite; for accumulate = false the output is pre-filled with NaN to prove it is overwritten),
// and the padding of strided outputs must be untouched.
#include "kernels/cpu/matmul.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "base/dtype.h"
#include "gtest/gtest.h"
#include "kernels/cpu/thread_pool.h"

namespace adak::kernels {
namespace {

constexpr uint32_t kSeed = 20240611;
constexpr float kPadSentinel = 12345.0f;

struct Case {
  DType w_dtype = DType::kBF16;
  int64_t t = 1;
  int64_t k = 1;
  int64_t n = 1;
  bool has_bias = false;
  DType bias_dtype = DType::kF32;
  bool accumulate = false;
  int64_t x_pad = 0;    // x_stride = k + x_pad
  int64_t out_pad = 0;  // out_stride = n + out_pad
  uint32_t seed = 0;
};

std::string Describe(const Case& c, const MatMulOptions& o, const ThreadPool* pool) {
  std::ostringstream s;
  s << "isa=" << MatMulIsaName(o.isa) << (o.precision == DotPrecision::kBf16 ? " bf16-dots" : "")
    << " sgemm_min_rows=" << o.sgemm_min_rows << " w=" << DTypeName(c.w_dtype) << " T=" << c.t << " K=" << c.k
    << " N=" << c.n << " bias=" << (c.has_bias ? std::string(DTypeName(c.bias_dtype)) : std::string("none"))
    << " accumulate=" << c.accumulate << " x_pad=" << c.x_pad << " out_pad=" << c.out_pad
    << " threads=" << (pool ? pool->num_threads() : 0) << " seed=" << c.seed;
  return s.str();
}

// Stores `v` (already representable) in `dtype` at element i of `bytes`.
void StoreAs(DType dtype, float v, std::vector<uint8_t>& bytes, int64_t i) {
  if (dtype == DType::kF32) {
    std::memcpy(bytes.data() + i * 4, &v, 4);
    return;
  }
  const uint16_t h = dtype == DType::kBF16 ? F32ToBf16(v) : F32ToF16(v);
  std::memcpy(bytes.data() + i * 2, &h, 2);
}

float LoadAs(DType dtype, const std::vector<uint8_t>& bytes, int64_t i) {
  if (dtype == DType::kF32) {
    float v;
    std::memcpy(&v, bytes.data() + i * 4, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, bytes.data() + i * 2, 2);
  return dtype == DType::kBF16 ? Bf16ToF32(h) : F16ToF32(h);
}

// `bytes` bytes of `src` copied to `offset` bytes past a 64-byte boundary inside `storage`, with 0xff bytes (NaN
// in every dtype) before and after (as mmapped checkpoint tensors, which are only 8-byte aligned). Returns the copy.
uint8_t* PlaceBetweenNanBytes(const void* src, size_t bytes, int64_t offset, std::vector<uint8_t>& storage) {
  storage.assign(bytes + 256, 0xff);
  const auto base = reinterpret_cast<uintptr_t>(storage.data());
  uint8_t* w = storage.data() + ((base + 63) / 64 * 64 - base) + 64 + offset;
  std::memcpy(w, src, bytes);
  return w;
}

// Whether MatMul takes the bf16 dot-product path for these options and weights.
bool TakesPairPath(const MatMulOptions& o, DType w_dtype) {
  return o.precision == DotPrecision::kBf16 && w_dtype == DType::kBF16 && o.isa == MatMulIsaKind::kAvx512 &&
         Bf16DotSupported();
}

// Runs one case; returns "" on success or a description of the first mismatch.
std::string RunCase(const Case& c, const MatMulOptions& options, ThreadPool* pool) {
  std::mt19937 rng(c.seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const int64_t x_stride = c.k + c.x_pad;
  const int64_t out_stride = c.n + c.out_pad;

  std::vector<float> x(static_cast<size_t>(c.t * x_stride), nan);  // padding is NaN: it must never be read
  for (int64_t t = 0; t < c.t; ++t) {
    for (int64_t i = 0; i < c.k; ++i) x[static_cast<size_t>(t * x_stride + i)] = uniform(rng);
  }
  std::vector<uint8_t> w(static_cast<size_t>(c.n * c.k) * DTypeSize(c.w_dtype) + 1);
  for (int64_t i = 0; i < c.n * c.k; ++i) StoreAs(c.w_dtype, uniform(rng), w, i);
  std::vector<uint8_t> bias(static_cast<size_t>(c.n) * DTypeSize(c.bias_dtype) + 1);
  for (int64_t i = 0; i < c.n; ++i) StoreAs(c.bias_dtype, uniform(rng), bias, i);
  std::vector<float> init(static_cast<size_t>(c.t * out_stride), kPadSentinel);
  for (int64_t t = 0; t < c.t; ++t) {
    for (int64_t n = 0; n < c.n; ++n) init[static_cast<size_t>(t * out_stride + n)] = c.accumulate ? uniform(rng) : nan;
  }

  MatMulParams p;
  p.x = x.data();
  p.rows = c.t;
  p.k = c.k;
  p.x_stride = x_stride;
  p.w = w.data();
  p.w_dtype = c.w_dtype;
  p.n = c.n;
  p.bias = c.has_bias ? bias.data() : nullptr;
  p.bias_dtype = c.bias_dtype;
  p.out_stride = out_stride;
  p.accumulate = c.accumulate;

  // On the bf16 dot-product path the kernel sees the activations rounded to bf16; so does the reference.
  std::vector<float> x_ref = x;
  if (TakesPairPath(options, c.w_dtype)) {
    for (float& v : x_ref) v = std::isnan(v) ? v : Bf16ToF32(F32ToBf16(v));
  }
  std::vector<float> expected = init;
  p.out = expected.data();
  p.x = x_ref.data();
  MatMulReference(p);
  p.x = x.data();
  std::vector<float> actual = init;
  p.out = actual.data();
  MatMulWithOptions(p, pool, options);

  const double tolerance_factor = 1e-5 * std::sqrt(static_cast<double>(std::max<int64_t>(c.k, 1)));
  for (int64_t t = 0; t < c.t; ++t) {
    for (int64_t n = 0; n < out_stride; ++n) {
      const size_t o = static_cast<size_t>(t * out_stride + n);
      std::ostringstream where;
      where << "out[" << t << ", " << n << "]: got " << actual[o] << ", reference " << expected[o];
      if (n >= c.n) {
        if (actual[o] != kPadSentinel) return "padding overwritten at " + where.str();
        continue;
      }
      if (std::isnan(actual[o]) || std::isnan(expected[o])) return "NaN at " + where.str();
      double scale = 0.0;
      for (int64_t i = 0; i < c.k; ++i) {
        scale += std::fabs(static_cast<double>(x[static_cast<size_t>(t * x_stride + i)]) *
                           LoadAs(c.w_dtype, w, n * c.k + i));
      }
      if (c.has_bias) scale += std::fabs(LoadAs(c.bias_dtype, bias, n));
      if (c.accumulate) scale += std::fabs(init[o]);
      const double diff = std::fabs(static_cast<double>(actual[o]) - expected[o]);
      const double tolerance = tolerance_factor * scale + 1e-30;
      if (!(diff <= tolerance)) {
        std::ostringstream s;
        s << where.str() << ", |diff| " << diff << " > tolerance " << tolerance;
        return s.str();
      }
    }
  }
  return "";
}

std::vector<MatMulIsaKind> SupportedIsas() {
  std::vector<MatMulIsaKind> isas;
  for (MatMulIsaKind isa : {MatMulIsaKind::kScalar, MatMulIsaKind::kAvx2, MatMulIsaKind::kAvx512}) {
    if (MatMulIsaSupported(isa)) isas.push_back(isa);
  }
  return isas;
}

class MatMulSweepTest : public ::testing::TestWithParam<std::tuple<MatMulIsaKind, DType>> {};

TEST_P(MatMulSweepTest, MatchesReference) {
  const auto [isa, w_dtype] = GetParam();
  if (!MatMulIsaSupported(isa)) GTEST_SKIP() << MatMulIsaName(isa) << " is not supported by this CPU";
  std::cout << "seed " << kSeed << "\n";
  RecordProperty("seed", static_cast<int>(kSeed));
  std::mt19937 seeds(kSeed + static_cast<uint32_t>(isa) * 16 + static_cast<uint32_t>(w_dtype));
  ThreadPool pool(3);
  const DType bias_dtypes[] = {DType::kF32, DType::kBF16, DType::kF16};
  int variant = 0;
  int cases = 0;
  // Both implementations at every T: the GEMV kernel (sgemm never) and widen + sgemm (always).
  for (int64_t sgemm_min_rows : {std::numeric_limits<int64_t>::max(), int64_t{1}}) {
    MatMulOptions options;
    options.isa = isa;
    options.sgemm_min_rows = sgemm_min_rows;
    for (int64_t t : {1, 2, 3, 5, 8, 9, 17, 64}) {
      for (int64_t k : {1, 7, 64, 100, 257}) {
        for (int64_t n : {1, 3, 33, 130}) {
          for (bool accumulate : {false, true}) {
            ++variant;
            Case c;
            c.w_dtype = w_dtype;
            c.t = t;
            c.k = k;
            c.n = n;
            c.accumulate = accumulate;
            c.has_bias = variant % 4 != 0;
            c.bias_dtype = bias_dtypes[variant % 3];
            c.x_pad = variant % 2 == 0 ? 0 : 5;
            c.out_pad = variant % 3 == 0 ? 0 : 3;
            c.seed = seeds();
            ThreadPool* p = variant % 5 == 0 ? nullptr : &pool;
            const std::string error = RunCase(c, options, p);
            ASSERT_EQ(error, "") << Describe(c, options, p);
            ++cases;
          }
        }
      }
    }
  }
  EXPECT_EQ(cases, 2 * 8 * 5 * 4 * 2);
}

INSTANTIATE_TEST_SUITE_P(AllPaths, MatMulSweepTest,
                         ::testing::Combine(::testing::Values(MatMulIsaKind::kScalar, MatMulIsaKind::kAvx2,
                                                              MatMulIsaKind::kAvx512),
                                            ::testing::Values(DType::kBF16, DType::kF16, DType::kF32)),
                         [](const auto& info) {
                           return std::string(MatMulIsaName(std::get<0>(info.param))) + "_" +
                                  std::string(DTypeName(std::get<1>(info.param)));
                         });

// DotPrecision::kBf16: BF16 weights on an AVX512_BF16 CPU take the pair path, which must match the reference
// on bf16-rounded activations over the sweep's shapes (tails, strides, bias, accumulate, >4 tokens, misaligned
// rows) and must differ from the exact path (so the test would notice the path not being taken); other dtypes
// must come out bit for bit as with kFp32.
TEST(MatMul, Bf16DotsMatchReferenceOnRoundedActivations) {
  if (!Bf16DotSupported()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  std::mt19937 seeds(kSeed);
  ThreadPool pool(2);
  MatMulOptions exact;
  exact.isa = MatMulIsaKind::kAvx512;
  MatMulOptions pairs = exact;
  pairs.precision = DotPrecision::kBf16;
  int variant = 0;
  for (DType w_dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (int64_t t : {1, 2, 3, 4, 5, 9, 64}) {
      for (int64_t k : {1, 31, 64, 100, 2048}) {
        for (int64_t n : {1, 5, 53, 130}) {
          ++variant;
          Case c;
          c.w_dtype = w_dtype;
          c.t = t;
          c.k = k;
          c.n = n;
          c.accumulate = variant % 2 == 0;
          c.has_bias = variant % 3 != 0;
          c.x_pad = variant % 2 == 0 ? 0 : 5;
          c.out_pad = variant % 3 == 0 ? 0 : 3;
          c.seed = seeds();
          ASSERT_EQ(RunCase(c, pairs, &pool), "") << Describe(c, pairs, &pool);
        }
      }
    }
  }
  // The pair path is taken for BF16 weights only: compare the two precisions directly.
  for (DType w_dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    std::mt19937 rng(kSeed);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    const int64_t t = 3, k = 256, n = 48;
    std::vector<float> x(static_cast<size_t>(t * k));
    for (float& v : x) v = uniform(rng);
    std::vector<uint8_t> w(static_cast<size_t>(n * k) * DTypeSize(w_dtype));
    for (int64_t i = 0; i < n * k; ++i) StoreAs(w_dtype, uniform(rng), w, i);
    MatMulParams p;
    p.x = x.data();
    p.rows = t;
    p.k = k;
    p.w = w.data();
    p.w_dtype = w_dtype;
    p.n = n;
    std::vector<float> a(static_cast<size_t>(t * n)), b(a.size());
    p.out = a.data();
    MatMulWithOptions(p, &pool, exact);
    p.out = b.data();
    MatMulWithOptions(p, &pool, pairs);
    const bool same = std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
    EXPECT_EQ(same, w_dtype != DType::kBF16) << DTypeName(w_dtype);
  }
}

// The pair path reads rows that start off a cache line (mmapped checkpoints are 8-byte aligned) through
// aligned loads, as the exact path does: every offset must give the same results as an aligned copy.
TEST(MatMul, Bf16DotsOnMisalignedWeightsMatchAligned) {
  if (!Bf16DotSupported()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  std::mt19937 rng(kSeed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  ThreadPool pool(2);
  MatMulOptions options;
  options.isa = MatMulIsaKind::kAvx512;
  options.precision = DotPrecision::kBf16;
  constexpr int64_t kN = 53;
  for (int64_t k : {64, 96, 100, 2048}) {
    for (int64_t t : {1, 2, 4, 6}) {
      std::vector<uint16_t> values(static_cast<size_t>(kN * k));
      for (uint16_t& v : values) v = F32ToBf16(uniform(rng));
      std::vector<float> x(static_cast<size_t>(t * k));
      for (float& v : x) v = uniform(rng);
      std::vector<float> reference;
      for (int64_t offset : {0, 2, 4, 8, 36, 60}) {
        std::vector<uint8_t> storage;
        uint8_t* w = PlaceBetweenNanBytes(values.data(), values.size() * 2, offset, storage);
        MatMulParams p;
        p.x = x.data();
        p.rows = t;
        p.k = k;
        p.w = w;
        p.n = kN;
        std::vector<float> out(static_cast<size_t>(t * kN));
        p.out = out.data();
        MatMulWithOptions(p, &pool, options);
        for (float v : out) ASSERT_FALSE(std::isnan(v)) << "K=" << k << " T=" << t << " offset=" << offset;
        if (offset == 0) {
          reference = out;
        } else {
          ASSERT_EQ(std::memcmp(out.data(), reference.data(), out.size() * sizeof(float)), 0)
              << "K=" << k << " T=" << t << " offset=" << offset;
        }
      }
    }
  }
}

// Model-sized rows, including K large enough that the AVX-512 kernel walks K in chunks (T * K * 4 bytes over
// 40 KiB: K > 2560 at T = 4, K > 10240 at T = 1), with row counts that leave remainders everywhere.
TEST(MatMul, LargeShapesMatchReference) {
  ThreadPool pool(2);
  uint32_t seed = kSeed;
  struct Shape {
    int64_t t, k, n;
  };
  const Shape shapes[] = {{1, 2053, 301}, {4, 2053, 301}, {8, 2053, 301}, {16, 2053, 301}, {40, 2053, 301},
                          {3, 4101, 99},  {4, 4101, 99},  {9, 4101, 99},  {1, 11003, 53},  {2, 11003, 53}};
  for (MatMulIsaKind isa : SupportedIsas()) {
    MatMulOptions options;
    options.isa = isa;
    for (DType w_dtype : {DType::kBF16, DType::kF16}) {
      for (const Shape& shape : shapes) {
        Case c;
        c.w_dtype = w_dtype;
        c.t = shape.t;
        c.k = shape.k;
        c.n = shape.n;
        c.has_bias = true;
        c.bias_dtype = DType::kBF16;
        c.accumulate = shape.t % 2 == 1;
        c.seed = ++seed;
        const std::string error = RunCase(c, options, &pool);
        ASSERT_EQ(error, "") << Describe(c, options, &pool);
      }
    }
  }
}

// Weights at byte offsets from a 64-byte boundary (mmapped checkpoint tensors are only 8-byte aligned; the
// AVX-512 decode tiles read rows at 4-byte offsets with aligned loads plus a permute), surrounded by NaN bytes
// that must never reach the result. Every path must match the reference, give bit-identical results with 1 and
// 2 threads, and the AVX-512 decode tiles must match the earlier decode kernel bit for bit.
TEST(MatMul, MisalignedWeightsMatchReference) {
  std::cout << "seed " << kSeed << "\n";
  std::mt19937 rng(kSeed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  ThreadPool pool(2);
  constexpr int64_t kN = 53;  // several 24-row work items, interior tiles and a remainder
  for (MatMulIsaKind isa : SupportedIsas()) {
    for (DType w_dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
      const auto elem = static_cast<int64_t>(DTypeSize(w_dtype));
      for (int64_t offset : {0, 2, 4, 8, 16, 36, 60}) {
        if (offset % elem != 0) continue;  // an f32 matrix is at least 4-byte aligned
        for (int64_t k : {64, 96, 100, 2048}) {
          for (int64_t t : {1, 2, 3, 4, 5}) {
            const int64_t bytes = kN * k * elem;
            std::vector<uint8_t> w_values(static_cast<size_t>(bytes));
            for (int64_t i = 0; i < kN * k; ++i) StoreAs(w_dtype, uniform(rng), w_values, i);
            std::vector<uint8_t> storage;
            uint8_t* w = PlaceBetweenNanBytes(w_values.data(), w_values.size(), offset, storage);
            std::vector<float> x(static_cast<size_t>(t * k));
            for (float& v : x) v = uniform(rng);

            MatMulParams p;
            p.x = x.data();
            p.rows = t;
            p.k = k;
            p.w = w;
            p.w_dtype = w_dtype;
            p.n = kN;
            std::vector<float> expected(static_cast<size_t>(t * kN));
            p.out = expected.data();
            MatMulReference(p);
            MatMulOptions options;
            options.isa = isa;
            std::vector<float> one_thread(expected.size());
            p.out = one_thread.data();
            MatMulWithOptions(p, nullptr, options);
            std::vector<float> two_threads(expected.size());
            p.out = two_threads.data();
            MatMulWithOptions(p, &pool, options);
            options.stream_decode = false;
            std::vector<float> old_decode(expected.size());
            p.out = old_decode.data();
            MatMulWithOptions(p, &pool, options);

            const std::string what = std::string(MatMulIsaName(isa)) + " w=" + std::string(DTypeName(w_dtype)) +
                                     " offset=" + std::to_string(offset) + " K=" + std::to_string(k) +
                                     " T=" + std::to_string(t);
            const double tolerance_factor = 1e-5 * std::sqrt(static_cast<double>(k));
            for (int64_t tt = 0; tt < t; ++tt) {
              for (int64_t n = 0; n < kN; ++n) {
                const auto o = static_cast<size_t>(tt * kN + n);
                double scale = 0.0;
                for (int64_t i = 0; i < k; ++i) {
                  scale += std::fabs(static_cast<double>(x[static_cast<size_t>(tt * k + i)]) *
                                     LoadAs(w_dtype, w_values, n * k + i));
                }
                const double diff = std::fabs(static_cast<double>(one_thread[o]) - expected[o]);
                ASSERT_FALSE(std::isnan(one_thread[o])) << what << " out[" << tt << ", " << n << "]";
                ASSERT_LE(diff, tolerance_factor * scale + 1e-30) << what << " out[" << tt << ", " << n << "]";
              }
            }
            ASSERT_EQ(std::memcmp(one_thread.data(), two_threads.data(), one_thread.size() * sizeof(float)), 0)
                << what << ": 1 vs 2 threads differ";
            ASSERT_EQ(std::memcmp(one_thread.data(), old_decode.data(), one_thread.size() * sizeof(float)), 0)
                << what << ": decode tiles differ from the earlier decode kernel";
          }
        }
      }
    }
  }
}

TEST(MatMul, DefaultPathWithDenseStrides) {
  ThreadPool pool(2);
  std::mt19937 rng(kSeed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int64_t t : {1, 6, 32}) {
    const int64_t k = 96;
    const int64_t n = 70;
    std::vector<float> x(static_cast<size_t>(t * k));
    std::vector<uint16_t> w(static_cast<size_t>(n * k));
    for (float& v : x) v = uniform(rng);
    for (uint16_t& v : w) v = F32ToBf16(uniform(rng));
    std::vector<float> expected(static_cast<size_t>(t * n));
    std::vector<float> actual(static_cast<size_t>(t * n));
    MatMulParams p;
    p.x = x.data();
    p.rows = t;
    p.k = k;
    p.w = w.data();
    p.n = n;
    p.out = expected.data();
    MatMulReference(p);
    p.out = actual.data();
    MatMul(p, &pool);
    for (size_t i = 0; i < actual.size(); ++i) {
      ASSERT_FALSE(std::isnan(actual[i]));
      EXPECT_NEAR(actual[i], expected[i], 1e-5 * std::sqrt(k) * k) << "T=" << t << " i=" << i;
    }
  }
}

TEST(MatMul, ZeroKGivesBias) {
  const std::vector<float> bias = {1.5f, -2.0f, 0.25f};
  for (MatMulIsaKind isa : SupportedIsas()) {
    for (bool accumulate : {false, true}) {
      std::vector<float> out(6, 1.0f);
      MatMulParams p;
      float x_dummy = 0.0f;
      uint16_t w_dummy = 0;
      p.x = &x_dummy;
      p.rows = 2;
      p.k = 0;
      p.w = &w_dummy;
      p.n = 3;
      p.bias = bias.data();
      p.out = out.data();
      p.accumulate = accumulate;
      MatMulOptions options;
      options.isa = isa;
      MatMulWithOptions(p, nullptr, options);
      for (int i = 0; i < 6; ++i) EXPECT_EQ(out[i], bias[i % 3] + (accumulate ? 1.0f : 0.0f)) << MatMulIsaName(isa);
    }
  }
}

TEST(MatMul, EmptyShapesAreNoOps) {
  std::vector<float> out(4, 7.0f);
  MatMulParams p;
  p.x = nullptr;
  p.rows = 0;
  p.k = 16;
  p.n = 4;
  p.out = out.data();
  MatMul(p, nullptr);
  p.rows = 2;
  p.n = 0;
  MatMul(p, nullptr);
  for (float v : out) EXPECT_EQ(v, 7.0f);
}

TEST(MatMul, IsaNameIsKnown) {
  const std::string isa = MatMulIsa();
  EXPECT_TRUE(isa == "avx512" || isa == "avx2" || isa == "scalar") << isa;
  EXPECT_EQ(isa, MatMulIsaName(DetectedMatMulIsa()));
  EXPECT_TRUE(MatMulIsaSupported(DetectedMatMulIsa()));
  std::cout << "MatMulIsa() = " << isa << "\n";
}

// The vector widening agrees bit for bit with base/dtype.h for every 16-bit pattern (NaNs: both NaN), also at
// an odd offset and length so the tails are exercised.
TEST(WidenToF32, MatchesScalarConversionsBitForBit) {
  std::vector<uint16_t> all(65536 + 1);
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  for (MatMulIsaKind isa : SupportedIsas()) {
    for (DType dtype : {DType::kBF16, DType::kF16}) {
      for (int64_t offset : {0, 1}) {
        const int64_t count = 65536 - offset;
        std::vector<float> got(static_cast<size_t>(count));
        WidenToF32(all.data() + offset, dtype, count, got.data(), isa);
        for (int64_t i = 0; i < count; ++i) {
          const uint16_t h = all[static_cast<size_t>(i + offset)];
          const float want = dtype == DType::kBF16 ? Bf16ToF32(h) : F16ToF32(h);
          const float have = got[static_cast<size_t>(i)];
          if (std::isnan(want)) {
            ASSERT_TRUE(std::isnan(have)) << MatMulIsaName(isa) << " " << DTypeName(dtype) << " bits " << h;
            continue;
          }
          uint32_t a;
          uint32_t b;
          std::memcpy(&a, &want, 4);
          std::memcpy(&b, &have, 4);
          ASSERT_EQ(a, b) << MatMulIsaName(isa) << " " << DTypeName(dtype) << " bits " << h;
        }
      }
    }
  }
}

}  // namespace
}  // namespace adak::kernels
