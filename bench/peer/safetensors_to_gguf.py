#!/usr/bin/python3
"""An OLMoE model directory (BF16 safetensors, as `adak make-model --arch olmoe` writes it) -> GGUF for llama.cpp.

Matrices are copied byte for byte as BF16 (the experts of a layer stacked into ffn_{gate,up,down}_exps, as
llama.cpp's own converter does); norms and the router are widened exactly to F32, which llama.cpp's CPU ops
need. The tokenizer goes in as GPT-2-style BPE (tokens and merges of tokenizer.json); the benchmark feeds both
engines token ids, so pre-tokenization does not matter. Needs numpy and gguf-py from the llama.cpp tree (no
torch, unlike convert_hf_to_gguf.py).

    /usr/bin/python3 bench/peer/safetensors_to_gguf.py MODEL_DIR OUT.gguf LLAMA_CPP_TREE [EXPERTS_PER_TOKEN]

EXPERTS_PER_TOKEN overrides the model's num_experts_per_tok (the k both engines then run natively).
"""
import json
import struct
import sys

import numpy as np

src, out, tree = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, tree + "/gguf-py")
import gguf  # noqa: E402  (from the llama.cpp tree)
cfg = json.load(open(src + "/config.json"))
f = open(src + "/model.safetensors", "rb")
n = struct.unpack("<Q", f.read(8))[0]
header = json.loads(f.read(n))
base = 8 + n

def raw(name):
    h = header[name]
    a, b = h["data_offsets"]
    f.seek(base + a)
    assert h["dtype"] == "BF16"
    return np.frombuffer(f.read(b - a), dtype=np.uint16).reshape(h["shape"])

w = gguf.GGUFWriter(out, "olmoe")
L, E = cfg["num_hidden_layers"], cfg["num_experts"]
w.add_block_count(L)
w.add_context_length(cfg["max_position_embeddings"])
w.add_embedding_length(cfg["hidden_size"])
w.add_feed_forward_length(cfg["intermediate_size"])
w.add_expert_feed_forward_length(cfg["intermediate_size"])
w.add_head_count(cfg["num_attention_heads"])
w.add_head_count_kv(cfg["num_key_value_heads"])
w.add_rope_freq_base(cfg["rope_theta"])
w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
w.add_expert_count(E)
w.add_expert_used_count(int(sys.argv[4]) if len(sys.argv) > 4 else cfg["num_experts_per_tok"])
w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
tok = json.load(open(src + "/tokenizer.json"))
vocab = tok["model"]["vocab"]
tokens = [None] * cfg["vocab_size"]
for t, i in vocab.items():
    tokens[i] = t
for a in tok.get("added_tokens", []):
    tokens[a["id"]] = a["content"]
tokens = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(tokens)]
w.add_tokenizer_model("gpt2")
w.add_tokenizer_pre("default")
w.add_token_list(tokens)
w.add_token_types([gguf.TokenType.NORMAL] * len(tokens))
merges = tok["model"]["merges"]
w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
w.add_bos_token_id(cfg["bos_token_id"])
w.add_eos_token_id(cfg["eos_token_id"])

def put(name, arr):
    # Norms and the router stay F32 in llama.cpp (its CPU ops multiply f32 by f32): widened exactly.
    if arr.ndim == 1 or name.endswith("ffn_gate_inp.weight"):
        w.add_tensor(name, (arr.astype(np.uint32) << 16).view(np.float32))
    else:
        w.add_tensor(name, arr, raw_dtype=gguf.GGMLQuantizationType.BF16)

put("token_embd.weight", raw("model.embed_tokens.weight"))
put("output_norm.weight", raw("model.norm.weight"))
put("output.weight", raw("lm_head.weight"))
for i in range(L):
    p = f"model.layers.{i}."
    put(f"blk.{i}.attn_norm.weight", raw(p + "input_layernorm.weight"))
    put(f"blk.{i}.attn_q.weight", raw(p + "self_attn.q_proj.weight"))
    put(f"blk.{i}.attn_k.weight", raw(p + "self_attn.k_proj.weight"))
    put(f"blk.{i}.attn_v.weight", raw(p + "self_attn.v_proj.weight"))
    put(f"blk.{i}.attn_output.weight", raw(p + "self_attn.o_proj.weight"))
    put(f"blk.{i}.attn_q_norm.weight", raw(p + "self_attn.q_norm.weight"))
    put(f"blk.{i}.attn_k_norm.weight", raw(p + "self_attn.k_norm.weight"))
    put(f"blk.{i}.ffn_norm.weight", raw(p + "post_attention_layernorm.weight"))
    put(f"blk.{i}.ffn_gate_inp.weight", raw(p + "mlp.gate.weight"))
    for ours, theirs in (("gate_proj", "ffn_gate_exps"), ("up_proj", "ffn_up_exps"), ("down_proj", "ffn_down_exps")):
        put(f"blk.{i}.{theirs}.weight", np.stack([raw(p + f"mlp.experts.{e}.{ours}.weight") for e in range(E)]))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print("wrote", out)
