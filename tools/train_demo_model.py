#!/usr/bin/python3
"""Trains the project's default model: a small Mixtral-style MoE on ../shared/data/stories, on the CPU.
With `--arch qwen3_moe` (or `--preset fine`) it trains and writes a Hugging Face Qwen3-MoE instead (see below).

The model is written as a Hugging Face `MixtralForCausalLM` directory (config.json, generation_config.json,
model.safetensors in BF16, tokenizer.json, tokenizer_config.json) that `adak` serves as it is. The semantics are
exactly HF Mixtral's: RMSNorm in fp32, rotate_half RoPE, GQA attention without biases, SwiGLU experts
`w2(silu(w1 x) * w3 x)`, router `block_sparse_moe.gate` with a softmax over all experts in fp32, top-2, the two
weights renormalised. A Switch/Mixtral load-balancing loss keeps every expert in use.

The tokenizer is stories-mixtral's (byte-level BPE, 4096 ids, `<|endoftext|>` = 4095); the text is tokenized by
`adak tokenize`, so the ids are exactly the ones the server will see. Documents are joined with one
`<|endoftext|>` after each, as for stories-mixtral.

Needs only python3-torch (Debian 1.13, CPU) and numpy; nothing is downloaded. Safetensors are written by hand.

    /usr/bin/python3 tools/train_demo_model.py --adak build/bin/adak --out models/stories-moe-small --steps 1500

`--bench N` times N training steps and exits (to size --steps to the time you have). On a machine shared with
other jobs use `--threads 1`: with 2 intra-op threads every op waits for the busy second core (6x slower here).
The fp32 training state is saved to --checkpoint every --eval-every steps and resumed from when present.
models/stories-moe-small/README.md records how the shipped model was made.

`--arch qwen3_moe` writes a `Qwen3MoeForCausalLM` directory with exactly HF Qwen3-MoE's semantics instead: the same
norms, RoPE and GQA attention as above plus a per-head RMSNorm `self_attn.q_norm` / `self_attn.k_norm` over
head_dim applied to q and k before RoPE; the MoE block is `mlp` with router `mlp.gate` (softmax over all
experts in fp32, top-k, the k weights renormalised iff norm_topk_prob, always true here) and SwiGLU experts
`mlp.experts.{e}.down_proj(silu(gate_proj x) * up_proj x)` of width --moe-intermediate-size; no shared expert,
every layer MoE (decoder_sparse_step 1, mlp_only_layers []). --num-local-experts (alias --num-experts) sets the
number of experts for either architecture. `--preset fine` is a fine-grained Qwen3-MoE of the same budget:
hidden 192, 6 layers, 32 experts of width 48, top-4, 6 query / 2 KV heads of 32, 7,510,848 parameters
(15,021,696 bytes = 14.33 MiB in BF16; embeddings untied); explicit flags override the preset's values:

    /usr/bin/python3 tools/train_demo_model.py --preset fine --adak build/bin/adak --out models/stories-moe-fine \
        --steps 1500 --threads 1
"""

import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHITECTURES = ("mixtral", "qwen3_moe")

# --preset NAME: defaults for the architecture and shape flags (explicit flags still win).
PRESETS = {
    "fine": {  # fine-grained Qwen3-MoE within the 16 MiB budget: 7,510,848 parameters, 14.33 MiB in BF16
        "arch": "qwen3_moe",
        "hidden_size": 192,
        "num_hidden_layers": 6,
        "num_attention_heads": 6,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "num_local_experts": 32,
        "num_experts_per_tok": 4,
        "moe_intermediate_size": 48,
        "intermediate_size": 192,  # config.json's dense-MLP width; no layer is dense (mlp_only_layers [])
        "rms_norm_eps": 1e-6,
    },
}

EOS_ID = 4095
EOS_TEXT = "<|endoftext|>"
DOC_SEPARATOR = "\n" + EOS_TEXT + "\n"  # ../shared/data/stories/SOURCES.md: each document ends with it

# The model's chat_template.jinja (transformers reads it beside tokenizer_config.json): a story model is not an
# instruction model, so the messages simply open the story and the reply continues it.
CHAT_TEMPLATE = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "stories-moe-small",
                                  "chat_template.jinja")).read()


# ----------------------------------------------------------------------------------------------- the model


class Config:
    def __init__(self, **kw):
        self.vocab_size = 4096
        self.hidden_size = 192
        self.intermediate_size = 320
        self.num_hidden_layers = 4
        self.num_attention_heads = 6
        self.num_key_value_heads = 2
        self.head_dim = 32
        self.num_local_experts = 8
        self.num_experts_per_tok = 2
        self.max_position_embeddings = 512
        self.rms_norm_eps = 1e-5
        self.rope_theta = 10000.0
        self.router_aux_loss_coef = 0.01
        self.__dict__.update(kw)

    @property
    def arch(self):
        return self.__dict__.get("arch", "mixtral")

    def hf_json(self):
        if self.arch == "qwen3_moe":
            return self.qwen3_moe_json()
        return {
            "architectures": ["MixtralForCausalLM"],
            "model_type": "mixtral",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": self.max_position_embeddings,
            "initializer_range": 0.02,
            "rms_norm_eps": self.rms_norm_eps,
            "use_cache": True,
            "rope_theta": self.rope_theta,
            "sliding_window": None,
            "attention_dropout": 0.0,
            "num_experts_per_tok": self.num_experts_per_tok,
            "num_local_experts": self.num_local_experts,
            "output_router_logits": False,
            "router_aux_loss_coef": self.router_aux_loss_coef,
            "router_jitter_noise": 0.0,
            "tie_word_embeddings": False,
            "bos_token_id": EOS_ID,
            "eos_token_id": EOS_ID,
            "torch_dtype": "bfloat16",
            "transformers_version": "4.46.0",
        }

    def qwen3_moe_json(self):
        """HF `Qwen3MoeConfig` (transformers >= 4.51)."""
        return {
            "architectures": ["Qwen3MoeForCausalLM"],
            "model_type": "qwen3_moe",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "moe_intermediate_size": self.moe_intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": self.max_position_embeddings,
            "initializer_range": 0.02,
            "rms_norm_eps": self.rms_norm_eps,
            "use_cache": True,
            "rope_theta": self.rope_theta,
            "rope_scaling": None,
            "attention_bias": False,
            "use_sliding_window": False,
            "sliding_window": None,
            "max_window_layers": self.num_hidden_layers,
            "attention_dropout": 0.0,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "num_experts": self.num_local_experts,
            "num_experts_per_tok": self.num_experts_per_tok,
            "norm_topk_prob": True,
            "output_router_logits": False,
            "router_aux_loss_coef": self.router_aux_loss_coef,
            "tie_word_embeddings": False,
            "bos_token_id": EOS_ID,
            "eos_token_id": EOS_ID,
            "torch_dtype": "bfloat16",
            "transformers_version": "4.51.0",
        }


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_cos_sin(cfg, seq_len):
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.int64).float() / cfg.head_dim))
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()  # [T, head_dim]


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        h, d = cfg.hidden_size, cfg.head_dim
        self.q_proj = nn.Linear(h, cfg.num_attention_heads * d, bias=False)
        self.k_proj = nn.Linear(h, cfg.num_key_value_heads * d, bias=False)
        self.v_proj = nn.Linear(h, cfg.num_key_value_heads * d, bias=False)
        self.o_proj = nn.Linear(cfg.num_attention_heads * d, h, bias=False)
        self.qk_norm = cfg.arch == "qwen3_moe"
        if self.qk_norm:  # Qwen3: RMSNorm over each head's head_dim, before RoPE
            self.q_norm = RMSNorm(d, cfg.rms_norm_eps)
            self.k_norm = RMSNorm(d, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, mask):
        cfg = self.cfg
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, cfg.num_attention_heads, cfg.head_dim)
        k = self.k_proj(x).view(b, t, cfg.num_key_value_heads, cfg.head_dim)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        v = self.v_proj(x).view(b, t, cfg.num_key_value_heads, cfg.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        groups = cfg.num_attention_heads // cfg.num_key_value_heads
        k = k.repeat_interleave(groups, dim=1)  # query head i reads kv head i // groups, as HF repeat_kv
        v = v.repeat_interleave(groups, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(cfg.head_dim) + mask
        probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        out = (probs @ v).transpose(1, 2).reshape(b, t, -1)
        return self.o_proj(out)


class Expert(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.w1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.w2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)
        self.w3 = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Qwen3MoeExpert(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.moe_intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.moe_intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.moe_intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class SparseMoe(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.norm_topk_prob = True  # Mixtral always; Qwen3-MoE config norm_topk_prob true
        self.gate = nn.Linear(cfg.hidden_size, cfg.num_local_experts, bias=False)
        expert = Qwen3MoeExpert if cfg.arch == "qwen3_moe" else Expert
        self.experts = nn.ModuleList([expert(cfg) for _ in range(cfg.num_local_experts)])

    def forward(self, x):
        b, t, h = x.shape
        x = x.reshape(-1, h)
        router_logits = self.gate(x)  # [N, E]
        probs = torch.softmax(router_logits, dim=-1, dtype=torch.float)
        weights, chosen = torch.topk(probs, self.cfg.num_experts_per_tok, dim=-1)  # [N, K]
        if self.norm_topk_prob:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        weights = weights.to(x.dtype)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            token, slot = torch.where(chosen == e)
            if token.numel() == 0:
                continue
            y = expert(x[token]) * weights[token, slot, None]
            out.index_add_(0, token, y)
        # Switch / HF Mixtral load balancing: E * sum_e f_e P_e with f_e the fraction of (token, slot) picks
        # per slot; K is perfect balance for top-K (Qwen3-MoE uses the same loss).
        mask = F.one_hot(chosen, self.cfg.num_local_experts).float()  # [N, K, E]
        aux = (mask.mean(dim=0) * probs.mean(dim=0).unsqueeze(0)).sum() * self.cfg.num_local_experts
        return out.view(b, t, h), aux, chosen


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.moe_name = "mlp" if cfg.arch == "qwen3_moe" else "block_sparse_moe"  # HF's module name
        setattr(self, self.moe_name, SparseMoe(cfg))

    @property
    def moe(self):
        return getattr(self, self.moe_name)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        moe_out, aux, chosen = self.moe(self.post_attention_layernorm(x))
        return x + moe_out, aux, chosen


class Inner(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class MixtralForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = Inner(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def init_weights(self, generator):
        residual_scale = 1.0 / math.sqrt(2 * self.cfg.num_hidden_layers)
        for name, p in self.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("_norm.weight") or name == "model.norm.weight":
                continue  # RMSNorm weights (incl. Qwen3's q_norm / k_norm) start at 1
            std = 0.02
            if name.endswith("o_proj.weight") or name.endswith("w2.weight") or name.endswith("down_proj.weight"):
                std *= residual_scale
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=generator) * std)

    def forward(self, ids):
        t = ids.shape[1]
        cos, sin = rope_cos_sin(self.cfg, t)
        mask = torch.full((t, t), float("-inf")).triu(1)
        x = self.model.embed_tokens(ids)
        aux_total, routes = 0.0, []
        for layer in self.model.layers:
            x, aux, chosen = layer(x, cos, sin, mask)
            aux_total = aux_total + aux
            routes.append(chosen)
        logits = self.lm_head(self.model.norm(x))
        return logits, aux_total / len(self.model.layers), routes


# ------------------------------------------------------------------------------------------ safetensors


def save_safetensors(path, tensors, metadata):
    """Writes {name: fp32 tensor} as BF16 safetensors: u64 LE header size, JSON header padded with spaces to
    8 bytes, then the raw little-endian data in header order."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        data = tensors[name].detach().to(torch.bfloat16).contiguous().view(torch.int16).numpy().astype("<i2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def load_safetensors_bf16(path):
    """Reads back a file written by save_safetensors as {name: fp32 tensor}."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            assert info["dtype"] == "BF16"
            start, end = info["data_offsets"]
            f.seek(base + start)
            raw = np.frombuffer(f.read(end - start), dtype="<i2").copy()
            out[name] = torch.from_numpy(raw).view(torch.bfloat16).float().reshape(info["shape"])
        return out


# ------------------------------------------------------------------------------------------------- data


def tokenize_documents(adak, tokenizer_dir, text_path, workdir):
    """Ids of every document of `text_path` followed by one <|endoftext|>, via `adak tokenize`."""
    with open(text_path, encoding="utf-8") as f:
        text = f.read()
    docs = [d.strip("\n") for d in text.split(DOC_SEPARATOR)]
    docs = [d for d in docs if d.strip()]
    joined = "".join(d + EOS_TEXT for d in docs)  # added tokens split first: same ids as per-document encoding
    src = os.path.join(workdir, os.path.basename(text_path) + ".joined")
    out = os.path.join(workdir, os.path.basename(text_path) + ".ids")
    with open(src, "w", encoding="utf-8") as f:
        f.write(joined)
    subprocess.run([adak, "tokenize", "--model", tokenizer_dir, "--file", src, "--out", out], check=True)
    ids = np.fromfile(out, dtype="<u4").astype(np.int64)
    assert int((ids == EOS_ID).sum()) == len(docs), "every document must end with exactly one <|endoftext|>"
    return ids, len(docs)


class Batches:
    """seq_len+1 token windows: half start at a document start, half anywhere."""

    def __init__(self, ids, seq_len, batch, seed):
        self.ids = torch.from_numpy(ids)
        self.seq_len, self.batch = seq_len, batch
        starts = np.concatenate([[0], np.nonzero(ids == EOS_ID)[0] + 1])
        self.doc_starts = torch.from_numpy(starts[starts + seq_len + 1 <= len(ids)])
        self.gen = torch.Generator().manual_seed(seed)

    def next(self):
        n_doc = self.batch // 2
        doc = self.doc_starts[torch.randint(len(self.doc_starts), (n_doc,), generator=self.gen)]
        anywhere = torch.randint(len(self.ids) - self.seq_len - 1, (self.batch - n_doc,), generator=self.gen)
        starts = torch.cat([doc, anywhere])
        window = torch.stack([self.ids[s : s + self.seq_len + 1] for s in starts.tolist()])
        return window[:, :-1], window[:, 1:]


@torch.no_grad()
def evaluate(model, ids, seq_len, max_windows=None, batch=16):
    """Mean next-token NLL (nats) over consecutive seq_len windows, each with a fresh context."""
    model.eval()
    ids = torch.from_numpy(ids)
    n_windows = (len(ids) - 1) // seq_len
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    total, count = 0.0, 0
    for w0 in range(0, n_windows, batch):
        ws = range(w0, min(n_windows, w0 + batch))
        x = torch.stack([ids[w * seq_len : (w + 1) * seq_len] for w in ws])
        y = torch.stack([ids[w * seq_len + 1 : (w + 1) * seq_len + 1] for w in ws])
        logits, _, _ = model(x)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
        count += y.numel()
    model.train()
    return total / count, count


@torch.no_grad()
def expert_usage(model, ids, seq_len, windows=32):
    model.eval()
    x = torch.from_numpy(ids[: windows * seq_len]).view(windows, seq_len)
    _, _, routes = model(x)
    model.train()
    e = model.cfg.num_local_experts
    return [np.bincount(r.reshape(-1).numpy(), minlength=e) / r.numel() for r in routes]


# ---------------------------------------------------------------------------------------------- training


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress))


def write_model_dir(out, cfg, model, tokenizer_dir):
    os.makedirs(out, exist_ok=True)
    tensors = {k: v for k, v in model.state_dict().items()}
    save_safetensors(os.path.join(out, "model.safetensors"), tensors, {"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg.hf_json(), f, indent=2)
        f.write("\n")
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": EOS_ID, "eos_token_id": EOS_ID, "do_sample": False,
                   "transformers_version": "4.46.0"}, f, indent=2)
        f.write("\n")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(tokenizer_dir, name), os.path.join(out, name))
    with open(os.path.join(out, "chat_template.jinja"), "w") as f:
        f.write(CHAT_TEMPLATE)


@torch.no_grad()
def write_reference(out, model, adak, prompt):
    """fp32 logits of the BF16 weights at the prompt's last position: top-10 [id, logit]."""
    ids = subprocess.run([adak, "tokenize", "--model", out, "--text", prompt], check=True, capture_output=True,
                         text=True).stdout.split()
    ids = [int(i) for i in ids]
    model.eval()
    logits, _, routes = model(torch.tensor([ids]))
    last = logits[0, -1]
    values, top = torch.topk(last, 10)
    ref = {
        "description": "PyTorch fp32 reference (tools/train_demo_model.py) from the BF16 weights of model.safetensors",
        "prompt": prompt,
        "input_ids": ids,
        "last_position_top10": [[int(i), float(v)] for i, v in zip(top, values)],
        "last_position_experts_per_layer": [r.view(-1, r.shape[-1])[-1].tolist() for r in routes],
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    return ref


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    shared = os.path.join(os.path.dirname(root), "shared")
    ap.add_argument("--adak", default=os.path.join(root, "build/bin/adak"), help="the adak binary (for tokenize)")
    ap.add_argument("--data-dir", default=os.path.join(shared, "data/stories"))
    ap.add_argument("--tokenizer-dir", default=os.path.join(shared, "models/stories-mixtral"))
    ap.add_argument("--out", default=None, help="the model directory to write (default: models/stories-moe-small "
                    "for mixtral, models/stories-moe-fine for --preset fine; required otherwise)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--checkpoint", default=None,
                    help="fp32 training state, saved every --eval-every steps; resumed from when present (default: "
                    "stories-moe-small.ckpt for mixtral, stories-moe-<preset or arch>.ckpt otherwise, in the temp dir)")
    ap.add_argument("--bench", type=int, default=0, help="time this many steps and exit")
    ap.add_argument("--reference-prompt", default="Once upon a time, there was a little dog named")
    ap.add_argument("--arch", choices=ARCHITECTURES, default="mixtral",
                    help="mixtral: MixtralForCausalLM (the default model); qwen3_moe: Qwen3MoeForCausalLM")
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None,
                    help="defaults for --arch and the shape flags: " + "; ".join(
                        f"{name}: " + " ".join(f"{k}={v}" for k, v in values.items())
                        for name, values in PRESETS.items()))
    ap.add_argument("--moe-intermediate-size", type=int, default=None,
                    help="qwen3_moe: each expert's width (default: --intermediate-size)")
    for key, value in Config().__dict__.items():
        names = ["--" + key.replace("_", "-")] + (["--num-experts"] if key == "num_local_experts" else [])
        ap.add_argument(*names, dest=key, type=type(value), default=value)
    known, _ = ap.parse_known_args()
    if known.preset:
        ap.set_defaults(**PRESETS[known.preset])
    args = ap.parse_args()
    extra = {}
    if args.arch == "mixtral":
        if args.moe_intermediate_size is not None:
            ap.error("--moe-intermediate-size is for --arch qwen3_moe (Mixtral's experts use --intermediate-size)")
    else:
        if args.moe_intermediate_size is None:
            args.moe_intermediate_size = args.intermediate_size
        extra = {"arch": args.arch, "moe_intermediate_size": args.moe_intermediate_size}
    name = "stories-moe-small" if args.arch == "mixtral" else f"stories-moe-{args.preset or args.arch}"
    if args.out is None:
        if args.arch != "mixtral" and args.preset is None:
            ap.error("--out is required with --arch " + args.arch)
        args.out = os.path.join(root, "models", name)
    if args.checkpoint is None:
        args.checkpoint = os.path.join(tempfile.gettempdir(), name + ".ckpt")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    cfg = Config(**{k: getattr(args, k) for k in Config().__dict__}, **extra)

    with tempfile.TemporaryDirectory() as work:
        train_ids, train_docs = tokenize_documents(args.adak, args.tokenizer_dir,
                                                   os.path.join(args.data_dir, "train.txt"), work)
        valid_ids, valid_docs = tokenize_documents(args.adak, args.tokenizer_dir,
                                                   os.path.join(args.data_dir, "valid.txt"), work)
    print(f"data: train {train_docs} documents {len(train_ids)} tokens, valid {valid_docs} documents "
          f"{len(valid_ids)} tokens", flush=True)

    model = MixtralForCausalLM(cfg)
    model.init_weights(torch.Generator().manual_seed(args.seed))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters ({2 * n_params / 2**20:.2f} MiB in BF16); {json.dumps(cfg.__dict__)}",
          flush=True)
    if cfg.arch != "mixtral":
        expert = sum(p.numel() for p in model.model.layers[0].moe.experts[0].parameters())
        active = n_params - cfg.num_hidden_layers * (cfg.num_local_experts - cfg.num_experts_per_tok) * expert
        print(f"{cfg.arch}: {2 * n_params} bytes in BF16; {active} parameters active per token "
              f"(top-{cfg.num_experts_per_tok} of {cfg.num_local_experts} experts of {expert})", flush=True)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    batches = Batches(train_ids, args.seq_len, args.batch, args.seed)
    start_step, elapsed_before = 0, 0.0
    if not args.bench and os.path.exists(args.checkpoint):
        state = torch.load(args.checkpoint)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        batches.gen.set_state(state["gen"])
        start_step, elapsed_before = state["step"], state["elapsed"]
        print(f"resumed from {args.checkpoint} at step {start_step}", flush=True)

    steps = args.bench if args.bench else args.steps
    t0 = time.time()
    ema = None
    model.train()
    for step in range(start_step, steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        x, y = batches.next()
        logits, aux, _ = model(x)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss = ce + cfg.router_aux_loss_coef * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = ce.item() if ema is None else 0.95 * ema + 0.05 * ce.item()
        done = step + 1
        if done % 10 == 0 or done == steps:
            elapsed = elapsed_before + time.time() - t0
            tok_s = (done - start_step) * args.batch * args.seq_len / (time.time() - t0)
            eta = (steps - done) * (time.time() - t0) / (done - start_step)
            print(f"step {done}/{steps} loss {ce.item():.3f} ema {ema:.3f} aux {aux.item():.3f} "
                  f"lr {lr_at(step, args):.2e} {tok_s:.0f} tok/s elapsed {elapsed / 60:.1f} min "
                  f"eta {eta / 60:.1f} min", flush=True)
        if not args.bench and (done % args.eval_every == 0 or done == steps):
            val, _ = evaluate(model, valid_ids, args.seq_len, max_windows=64)
            usage = expert_usage(model, valid_ids, args.seq_len)
            print(f"step {done}: valid loss (first 64 windows) {val:.3f}; expert usage min/max per layer "
                  + " ".join(f"{u.min():.3f}/{u.max():.3f}" for u in usage), flush=True)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "gen": batches.gen.get_state(),
                        "step": done, "elapsed": elapsed_before + time.time() - t0}, args.checkpoint)
    train_seconds = elapsed_before + time.time() - t0
    if args.bench:
        return

    write_model_dir(args.out, cfg, model, args.tokenizer_dir)
    # Everything below uses the weights as saved (BF16, widened to fp32), like the engine.
    model.load_state_dict(load_safetensors_bf16(os.path.join(args.out, "model.safetensors")))
    val, n_tokens = evaluate(model, valid_ids, args.seq_len)
    usage = expert_usage(model, valid_ids, args.seq_len, windows=min(128, (len(valid_ids) - 1) // args.seq_len))
    ref = write_reference(args.out, model, args.adak, args.reference_prompt)
    tokens_seen = args.steps * args.batch * args.seq_len
    print(f"done: {args.steps} steps, {tokens_seen} tokens seen ({tokens_seen / len(train_ids):.2f} epochs), "
          f"{train_seconds / 60:.1f} min of training", flush=True)
    print(f"final valid loss (BF16 weights, fp32 compute, {args.seq_len}-token windows, {n_tokens} tokens): "
          f"{val:.4f} nats/token (ppl {math.exp(val):.2f})", flush=True)
    for layer, u in enumerate(usage):
        print(f"expert usage layer {layer}: " + " ".join(f"{v:.3f}" for v in u), flush=True)
    print(f"reference: {ref['prompt']!r} -> top-10 {ref['last_position_top10'][:3]}...", flush=True)
    print(f"wrote {args.out}", flush=True)
    # Our engine against the reference just written (tools/check_model_reference.py; exits 1 on a mismatch).
    subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "check_model_reference.py"), args.out, "--adak", args.adak],
                   check=True)


if __name__ == "__main__":
    sys.exit(main())
