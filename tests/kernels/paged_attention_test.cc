#include "kernels/cpu/paged_attention.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace adak::kernels {
namespace {

struct Case {
  int64_t heads, kv_heads, head_dim, block_size;
  std::vector<int64_t> seq_lens;  // tokens per sequence, all of them queries
};

// Fills a cache of `dtype` through WriteKvCache for sequences whose blocks are scattered in reverse order,
// checks what it stored (the rows, rounded to bf16 for a bf16 cache), then PagedAttention against the
// double-precision reference over the same cache.
void RunCase(const Case& c, uint32_t seed, DType dtype) {
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " heads " << c.heads << "/" << c.kv_heads << " hd "
                                    << c.head_dim << " bs " << c.block_size << " " << DTypeName(dtype));
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const int64_t kv_dim = c.kv_heads * c.head_dim, q_dim = c.heads * c.head_dim;
  int64_t total = 0, max_blocks = 0;
  for (int64_t n : c.seq_lens) {
    total += n;
    max_blocks = std::max(max_blocks, (n + c.block_size - 1) / c.block_size);
  }
  const int64_t num_seqs = static_cast<int64_t>(c.seq_lens.size());
  const int64_t num_blocks = num_seqs * max_blocks + 3;
  std::vector<int32_t> tables(static_cast<size_t>(num_seqs * max_blocks), 0);
  int32_t next = static_cast<int32_t>(num_blocks - 1);
  for (int64_t s = 0; s < num_seqs; ++s) {
    for (int64_t b = 0; b < max_blocks; ++b) tables[static_cast<size_t>(s * max_blocks + b)] = next--;
  }
  std::vector<float> q(static_cast<size_t>(total * q_dim)), k(static_cast<size_t>(total * kv_dim)),
      v(static_cast<size_t>(total * kv_dim));
  for (float& x : q) x = dist(rng);
  for (float& x : k) x = dist(rng);
  for (float& x : v) x = dist(rng);
  std::vector<int32_t> seq, pos, slots;
  for (int64_t s = 0; s < num_seqs; ++s) {
    for (int64_t p = 0; p < c.seq_lens[static_cast<size_t>(s)]; ++p) {
      seq.push_back(static_cast<int32_t>(s));
      pos.push_back(static_cast<int32_t>(p));
      slots.push_back(static_cast<int32_t>(
          tables[static_cast<size_t>(s * max_blocks + p / c.block_size)] * c.block_size + p % c.block_size));
    }
  }
  const KvCacheLayout layout{num_blocks, c.block_size, c.kv_heads, c.head_dim};
  // Raw cache bytes, NaN-filled (0xffff is a NaN in both types).
  const auto cache_bytes = static_cast<size_t>(num_blocks * c.block_size * kv_dim) * DTypeSize(dtype);
  std::vector<uint16_t> kc(cache_bytes / 2, 0xffff), vc(cache_bytes / 2, 0xffff);
  ThreadPool pool(2);
  WriteKvParams w{k.data(), v.data(), kv_dim, total, slots.data(), layout, kc.data(), vc.data(), dtype};
  WriteKvCache(w, &pool);
  for (int64_t t = 0; t < total; ++t) {
    for (int64_t i = 0; i < kv_dim; ++i) {
      const auto src = static_cast<size_t>(t * kv_dim + i);
      const auto dst = static_cast<size_t>(slots[static_cast<size_t>(t)] * kv_dim + i);
      if (dtype == DType::kBF16) {
        ASSERT_EQ(kc[dst], F32ToBf16(k[src])) << "k token " << t << " element " << i;
        ASSERT_EQ(vc[dst], F32ToBf16(v[src])) << "v token " << t << " element " << i;
      } else {
        ASSERT_EQ(reinterpret_cast<const float*>(kc.data())[dst], k[src]) << "k token " << t << " element " << i;
        ASSERT_EQ(reinterpret_cast<const float*>(vc.data())[dst], v[src]) << "v token " << t << " element " << i;
      }
    }
  }

  PagedAttentionParams p;
  p.q = q.data();
  p.q_stride = q_dim;
  p.rows = total;
  p.heads = c.heads;
  p.layout = layout;
  p.k_cache = kc.data();
  p.v_cache = vc.data();
  p.cache_dtype = dtype;
  p.token_seq = seq.data();
  p.positions = pos.data();
  p.block_tables = tables.data();
  p.max_blocks_per_seq = max_blocks;
  p.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  std::vector<float> got(static_cast<size_t>(total * q_dim)), want(got.size());
  p.out = got.data();
  p.out_stride = q_dim;
  PagedAttention(p, &pool);
  p.out = want.data();
  PagedAttentionReference(p);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << "NaN at " << i;
    ASSERT_NEAR(got[i], want[i], 1e-5f * (1.0f + std::fabs(want[i]))) << "element " << i;
  }
}

TEST(PagedAttention, MatchesReferenceAcrossShapes) {
  const Case cases[] = {
      {4, 2, 64, 16, {16}},            // stories-mixtral shape (AVX-512 where the CPU has it)
      {1, 1, 8, 1, {1}},               // one token, block of one
      {8, 1, 32, 4, {5, 1, 9}},        // MQA, partial blocks
      {6, 3, 24, 3, {7, 7}},           // head_dim not a multiple of 8 (the portable loop)
      {4, 4, 16, 16, {33, 2, 17, 1}},  // no GQA, many sequences
  };
  uint32_t seed = 1;
  for (const Case& c : cases) RunCase(c, seed++, DType::kF32);
}

TEST(PagedAttention, Bf16CacheMatchesReferenceAcrossShapes) {
  const Case cases[] = {
      {4, 2, 64, 16, {16}},
      {8, 1, 32, 4, {5, 1, 9}},
      {6, 3, 24, 3, {7, 7}},
      {4, 4, 16, 16, {33, 2, 17, 1}},
  };
  uint32_t seed = 11;
  for (const Case& c : cases) RunCase(c, seed++, DType::kBF16);
}

// Writes one key (k, v of head_dim 4) into slot 4 (block 1) of a cache of `dtype` and attends to it from one
// query: the softmax over a single position is one-hot, so the output is the value the cache holds.
std::vector<float> AttendToSingleKey(DType dtype, const std::vector<float>& k, const std::vector<float>& v) {
  const KvCacheLayout layout{2, 4, 1, 4};
  std::vector<float> kc(size_t{2} * 4 * 4, 0.0f), vc(size_t{2} * 4 * 4, 0.0f);  // room for either dtype
  const std::vector<float> q = {1, 2, 3, 4};
  const int32_t slot = 1 * 4 + 0, seq = 0, pos = 0, table = 1;
  ThreadPool pool(1);
  WriteKvCache({k.data(), v.data(), 4, 1, &slot, layout, kc.data(), vc.data(), dtype}, &pool);
  std::vector<float> out(4);
  PagedAttentionParams p;
  p.q = q.data();
  p.q_stride = 4;
  p.rows = 1;
  p.heads = 1;
  p.layout = layout;
  p.k_cache = kc.data();
  p.v_cache = vc.data();
  p.cache_dtype = dtype;
  p.token_seq = &seq;
  p.positions = &pos;
  p.block_tables = &table;
  p.max_blocks_per_seq = 1;
  p.scale = 0.5f;
  p.out = out.data();
  p.out_stride = 4;
  PagedAttention(p, &pool);
  return out;
}

TEST(PagedAttention, Bf16CacheRoundsKAndVButNotQ) {
  // One key: the output is v rounded to bf16, whatever q is.
  const std::vector<float> k = {0.5f, -1, 2, 0}, v = {1.00390625f, -3.1415927f, 1e-3f, 65504.7f};
  const std::vector<float> out = AttendToSingleKey(DType::kBF16, k, v);
  for (size_t d = 0; d < 4; ++d) {
    EXPECT_EQ(out[d], Bf16ToF32(F32ToBf16(v[d]))) << d;
  }
  EXPECT_NE(out[0], v[0]);  // 1 + 2^-8 is not a bf16 value: the cache rounded it
}

TEST(PagedAttention, SingleKeyReturnsItsValue) {
  // With only position 0, the softmax is one-hot: the output is v exactly.
  const std::vector<float> v = {7, -8, 9, 10};
  EXPECT_EQ(AttendToSingleKey(DType::kF32, {0.5f, -1, 2, 0}, v), v);
}

}  // namespace
}  // namespace adak::kernels
