#include "engine/op_params.h"

namespace adak::engine {
namespace {

kernels::KvCacheLayout Layout(const AttentionArgs& a) {
  return kernels::KvCacheLayout{a.num_blocks, a.block_size, a.kv_heads, a.head_dim};
}

}  // namespace

kernels::WriteKvParams KvWriteParams(const AttentionArgs& a) {
  kernels::WriteKvParams w;
  w.k = a.k.f32();
  w.v = a.v.f32();
  w.stride = a.k.stride;
  w.rows = a.batch.num_tokens;
  w.slots = a.batch.slots;
  w.layout = Layout(a);
  w.k_cache = a.k_cache;
  w.v_cache = a.v_cache;
  w.cache_dtype = a.cache_dtype;
  return w;
}

kernels::PagedAttentionParams PagedAttentionParamsOf(const AttentionArgs& a) {
  kernels::PagedAttentionParams p;
  p.q = a.q.f32();
  p.q_stride = a.q.stride;
  p.rows = a.batch.num_tokens;
  p.heads = a.heads;
  p.layout = Layout(a);
  p.k_cache = a.k_cache;
  p.v_cache = a.v_cache;
  p.cache_dtype = a.cache_dtype;
  p.token_seq = a.batch.token_seq;
  p.positions = a.batch.positions;
  p.block_tables = a.batch.block_tables;
  p.max_blocks_per_seq = a.batch.max_blocks_per_seq;
  p.scale = a.scale;
  p.out = a.out.f32();
  p.out_stride = a.out.stride;
  return p;
}

kernels::RouteParams RouteParamsOf(const MoeArgs& a, const float* logits, int64_t stride,
                                   const kernels::AllocatorExtras* allocator_extras, int32_t* ids, float* weights) {
  kernels::RouteParams r;
  r.logits = logits;
  r.stride = stride;
  r.rows = a.x.rows;
  r.num_experts = a.num_experts;
  r.allocator_cols = a.allocator_rows;
  r.allocator_present = a.allocator_present;
  r.allocator_extras = allocator_extras;
  r.null_cols = a.null_rows;
  r.renormalize = a.renormalize;
  r.layer = a.layer;
  r.routes = a.routes;
  r.k = a.k_out;
  r.expert_ids = ids;
  r.weights = weights;
  return r;
}

}  // namespace adak::engine
