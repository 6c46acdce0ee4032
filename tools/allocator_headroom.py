#!/usr/bin/python3
"""How far can a per-token expert allocator go on a model? Measures the headroom behind docs/results.md.

PPO allocators on stories-mixtral all land on one perplexity/mean-k curve (docs/results.md). This script asks
whether that curve is the training's limit or the allocator's, without PPO:

1. Counterfactual costs. For windows of the training text, every MoE layer l is run once at k = 1, 3 and 4 for
   all tokens (the other layers at native top-2). A token's cost of action k at layer l is the change of its
   next-token NLL, and for k = 1 also the KL divergence from the top-2 next-token distribution.
2. Supervised allocators. For each allocator form, one per layer, fitted to minimise the expected
   `cost(k) + mu * k` under its softmax (the exact expectation PPO estimates by sampling), then evaluated
   with argmax routing on the validation text:
   - `linear`: `argmax(W x)`, `W [E, H]`, no bias: the form of ARCHITECTURE.md, the one `adak` serves;
   - `linear+margin`: x plus a bias, the router's three largest probabilities and p2 / (p1 + p2);
   - `mlp`: a 256-64-4 ReLU MLP of x (with biases);
   - `mlp-kl`: the MLP fitted to the KL costs of k = 1 vs 2.
   The fitted `linear` allocators are written as allocator safetensors, so `adak eval` can score them too.
3. An oracle that is not an allocator: on the validation text itself, run layer l at k = 1 for every token,
   take each token's KL from top-2, and give k = 1 to the tokens with the smallest KL under one threshold over
   all layers. It needs the model's output to decide, so it bounds what routing alone could do.

The forward is HF Mixtral's (the model classes of tools/train_demo_model.py, weights in fp32), with top-k
routing of a variable k per token and renormalised weights, as `adak` routes (ties to the lower index). It
scores the validation text exactly as `adak eval` does: windows of --context tokens, each on a fresh context,
the last one partial. Needs python3-torch from Debian; nothing is downloaded. About 50 minutes on 2 cores.

    /usr/bin/python3 tools/allocator_headroom.py --json /tmp/headroom.json --save-dir /tmp/headroom
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_demo_model as tdm  # noqa: E402  (model classes, safetensors reader)

KS = (1, 2, 3, 4)  # actions of the fitted allocators; k = 2 is the reference (cost 0)


class Routed:
    """stories-mixtral in fp32 with a per-token k at every MoE layer."""

    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            hf = json.load(f)
        keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "num_local_experts", "num_experts_per_tok", "rms_norm_eps",
                "rope_theta", "max_position_embeddings")
        self.cfg = tdm.Config(**{k: hf[k] for k in keys if k in hf})
        self.model = tdm.MixtralForCausalLM(self.cfg)
        self.model.load_state_dict(tdm.load_safetensors_bf16(os.path.join(model_dir, "model.safetensors")))
        self.model.eval()
        self.layers = self.cfg.num_hidden_layers
        self.experts = self.cfg.num_local_experts

    def route_weights(self, probs, k):
        """[N, E] router probabilities, [N] k -> the top-k weights renormalised, zeros elsewhere."""
        sp, si = torch.sort(probs, dim=-1, descending=True, stable=True)
        keep = torch.arange(self.experts).unsqueeze(0) < k.unsqueeze(1)
        w = torch.where(keep, sp, torch.zeros_like(sp))
        return torch.zeros_like(probs).scatter_(1, si, w / w.sum(-1, keepdim=True))

    @torch.no_grad()
    def forward(self, ids, choose=None):
        """ids [B, T]. choose(layer, x [N, H], probs [N, E]) -> k [N] or None for native top-2.
        Returns the logits [B, T, V] and, per layer, the router input x [N, H] and the k used [N]."""
        b, t = ids.shape
        cos, sin = tdm.rope_cos_sin(self.cfg, t)
        mask = torch.full((t, t), float("-inf")).triu(1)
        x = self.model.model.embed_tokens(ids)
        seen = []
        for i, layer in enumerate(self.model.model.layers):
            x = x + layer.self_attn(layer.input_layernorm(x), cos, sin, mask)
            h = layer.post_attention_layernorm(x).reshape(-1, self.cfg.hidden_size)
            moe = layer.block_sparse_moe
            probs = torch.softmax(moe.gate(h), dim=-1)
            k = choose(i, h, probs) if choose is not None else None
            if k is None:
                k = torch.full((h.shape[0],), self.cfg.num_experts_per_tok)
            weights = self.route_weights(probs, k)
            y = torch.zeros_like(h)
            for e, expert in enumerate(moe.experts):
                rows = torch.nonzero(weights[:, e] > 0).squeeze(1)
                if rows.numel():
                    y.index_add_(0, rows, expert(h[rows]) * weights[rows, e, None])
            seen.append((h, k))
            x = x + y.view(b, t, -1)
        return self.model.lm_head(self.model.model.norm(x)), seen


def next_token_nll(logits, ids):
    """[B, T-1]: -log p(ids[t+1] | ids[..t])."""
    lp = torch.log_softmax(logits[:, :-1], -1)
    return -lp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def kl_from(ref_logits, logits):
    """[B, T-1] KL(ref || other) of the next-token distributions."""
    ref = torch.log_softmax(ref_logits[:, :-1], -1)
    other = torch.log_softmax(logits[:, :-1], -1)
    return (ref.exp() * (ref - other)).sum(-1)


def eval_batches(ids, context, batch):
    """`adak eval`'s windows: consecutive, each a fresh context, the last one partial; batched by length."""
    n_full = len(ids) // context
    full = torch.from_numpy(ids[: n_full * context].reshape(n_full, context))
    out = [full[s : s + batch] for s in range(0, n_full, batch)]
    if len(ids) - n_full * context >= 2:
        out.append(torch.from_numpy(ids[n_full * context :]).unsqueeze(0))
    return out


def single_layer_k(net, layer, k):
    return lambda i, h, probs: torch.full((h.shape[0],), k) if i == layer else None


def evaluate(net, batches, choose=None):
    """Perplexity, mean k and mean k per layer over the scored tokens of `batches`."""
    total, count = 0.0, 0
    k_sum = torch.zeros(net.layers)
    k_count = 0
    for ids in batches:
        logits, seen = net.forward(ids, choose)
        total += next_token_nll(logits, ids).sum().item()
        count += ids.shape[0] * (ids.shape[1] - 1)
        k_sum += torch.stack([k.float().sum() for _, k in seen])
        k_count += ids.numel()
    per_layer = (k_sum / k_count).tolist()
    return {"perplexity": math.exp(total / count), "mean_k": sum(per_layer) / len(per_layer),
            "mean_k_per_layer": per_layer}


def kl_oracle(net, batches, targets):
    """Per layer, every token's KL from top-2 when that layer alone runs k = 1; then one threshold over all
    layers per target mean k, evaluated with those k."""
    kls = []  # per batch [L, B, T] (the last position has no next token: KL 0, it never matters)
    for ids in batches:
        ref, _ = net.forward(ids)
        per_layer = []
        for layer in range(net.layers):
            logits, _ = net.forward(ids, single_layer_k(net, layer, 1))
            kl = F.pad(kl_from(ref, logits), (0, 1))
            per_layer.append(kl)
        kls.append(torch.stack(per_layer))
    flat = torch.cat([k.reshape(net.layers, -1) for k in kls], 1)
    rows = []
    for target in targets:
        # A fraction (2 - target) of the (token, layer) decisions take k = 1.
        tau = torch.quantile(flat.reshape(-1)[:: max(1, flat.numel() // 1_000_000)], 2.0 - target).item()
        batch_of = {id(ids): kl for ids, kl in zip(batches, kls)}

        def make(ids):
            kl = batch_of[id(ids)]
            return lambda i, h, probs: torch.where(kl[i].reshape(-1) < tau, 1, 2)

        total, count, k_sum, k_count = 0.0, 0, torch.zeros(net.layers), 0
        for ids in batches:
            logits, seen = net.forward(ids, make(ids))
            total += next_token_nll(logits, ids).sum().item()
            count += ids.shape[0] * (ids.shape[1] - 1)
            k_sum += torch.stack([k.float().sum() for _, k in seen])
            k_count += ids.numel()
        per_layer = (k_sum / k_count).tolist()
        rows.append({"target_k": target, "perplexity": math.exp(total / count),
                     "mean_k": sum(per_layer) / len(per_layer), "mean_k_per_layer": per_layer})
    return rows


def counterfactual_costs(net, ids, seq_len, windows, seed, batch):
    """Training windows -> per layer: router inputs x [N, H], NLL cost of k = 1..4 [N, 4] (k = 2 is 0), and the
    KL of k = 1 [N]. Only positions with a next token count."""
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(len(ids) - seq_len - 1, (windows,), generator=gen).tolist()
    data = torch.stack([torch.from_numpy(ids[s : s + seq_len]) for s in starts])
    xs, costs, kls = [[] for _ in range(net.layers)], [[] for _ in range(net.layers)], [[] for _ in range(net.layers)]
    for b0 in range(0, windows, batch):
        w = data[b0 : b0 + batch]
        ref, seen = net.forward(w)
        ref_nll = next_token_nll(ref, w)
        for layer in range(net.layers):
            h = seen[layer][0].view(w.shape[0], seq_len, -1)[:, :-1].reshape(-1, net.cfg.hidden_size)
            xs[layer].append(h)
            cost = torch.zeros(h.shape[0], len(KS))
            for col, k in enumerate(KS):
                if k == 2:
                    continue
                logits, _ = net.forward(w, single_layer_k(net, layer, k))
                cost[:, col] = (next_token_nll(logits, w) - ref_nll).reshape(-1)
                if k == 1:
                    kls[layer].append(kl_from(ref, logits).reshape(-1))
            costs[layer].append(cost)
    return ([torch.cat(v) for v in xs], [torch.cat(v) for v in costs], [torch.cat(v) for v in kls])


class Form(torch.nn.Module):
    """One layer's allocator candidate: logits over KS from (x, router probs)."""

    def __init__(self, kind, hidden):
        super().__init__()
        self.kind = kind
        if kind == "linear":
            self.net = torch.nn.Linear(hidden, len(KS), bias=False)
        elif kind == "linear+margin":
            self.net = torch.nn.Linear(hidden + 4, len(KS))
        else:
            self.net = torch.nn.Sequential(torch.nn.Linear(hidden, 64), torch.nn.ReLU(), torch.nn.Linear(64, len(KS)))
        if kind.startswith("linear"):
            torch.nn.init.zeros_(self.net.weight)

    def forward(self, x, probs):
        if self.kind == "linear+margin":
            top = probs.sort(-1, descending=True).values
            x = torch.cat([x, top[:, :3], (top[:, 1] / (top[:, 0] + top[:, 1])).unsqueeze(1)], 1)
        return self.net(x)


def fit(kind, x, probs, cost, mu, steps, seed):
    """Minimises mean_n sum_k softmax(form(x_n))_k (cost_nk + mu k) with Adam: the expected objective."""
    torch.manual_seed(seed)
    form = Form(kind, x.shape[1])
    target = cost + mu * torch.tensor(KS, dtype=torch.float)
    opt = torch.optim.Adam(form.parameters(), lr=0.05 if kind.startswith("linear") else 0.01)
    for _ in range(steps):
        opt.zero_grad()
        loss = (torch.softmax(form(x, probs), -1) * target).sum(-1).mean() * 100.0
        loss.backward()
        opt.step()
    form.requires_grad_(False)
    return form


def linear_as_allocator(form, experts):
    """[E, H] of ARCHITECTURE.md: rows 0..3 are k = 1..4; rows for k >= 5 copy row 0, so they only tie with
    it and the tie goes to the smaller k."""
    w = form.net.weight
    out = torch.zeros(experts, w.shape[1])
    out[: len(KS)] = w
    out[len(KS) :] = w[0]
    return out


def save_allocator(path, mats, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for i, w in enumerate(mats):
        data = w.float().contiguous().numpy().astype("<f4").tobytes()
        header[f"layers.{i}.allocator.weight"] = {"dtype": "F32", "shape": list(w.shape),
                                                  "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def tokenize(adak, model_dir, path, workdir):
    out = os.path.join(workdir, os.path.basename(path) + ".ids")
    subprocess.run([adak, "tokenize", "--model", model_dir, "--file", path, "--out", out], check=True,
                   stderr=subprocess.DEVNULL)
    ids = np.fromfile(out, dtype="<u4").astype(np.int64)
    if ids.size == 0:
        raise SystemExit(f"allocator_headroom: `adak tokenize` gave no ids for {path}")
    return ids


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    shared = os.path.join(os.path.dirname(root), "shared")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adak", default=os.path.join(root, "build/bin/adak"))
    ap.add_argument("--model", default=os.path.join(shared, "models/stories-mixtral"))
    ap.add_argument("--train", default=os.path.join(shared, "data/stories/train.txt"))
    ap.add_argument("--valid", default=os.path.join(shared, "data/stories/valid.txt"))
    ap.add_argument("--windows", type=int, default=320, help="training windows for the counterfactual costs")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--valid-tokens", type=int, default=0, help="score only the first N tokens (0: all)")
    ap.add_argument("--context", type=int, default=256, help="evaluation window, as adak eval --context")
    ap.add_argument("--mu", default="0.02,0.025", help="FLOP prices for the NLL-cost fits")
    ap.add_argument("--mu-kl", default="0.015,0.02", help="FLOP prices for the KL-cost fit")
    ap.add_argument("--fit-steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write every row as JSON here")
    ap.add_argument("--save-dir", help="write the fitted linear allocators here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()

    def log(msg):
        print(f"[{time.time() - started:6.0f} s] {msg}", file=sys.stderr, flush=True)

    net = Routed(args.model)
    with tempfile.TemporaryDirectory() as work:
        train = tokenize(args.adak, args.model, args.train, work)
        valid = tokenize(args.adak, args.model, args.valid, work)
    if args.valid_tokens > 0:
        valid = valid[: args.valid_tokens]
    batches = eval_batches(valid, args.context, 32)
    rows = []

    def add(name, result, **extra):
        row = {"allocator": name, **extra, **result}
        rows.append(row)
        log(f"{name} {extra}: ppl {result['perplexity']:.3f} k {result['mean_k']:.3f}")

    add("top-2", evaluate(net, batches))
    add("top-1", evaluate(net, batches, lambda i, h, p: torch.ones(h.shape[0], dtype=torch.long)))
    for row in kl_oracle(net, batches, (1.5, 1.4)):
        add("kl-oracle", {k: v for k, v in row.items() if k != "target_k"}, target_k=row["target_k"])

    xs, costs, kls = counterfactual_costs(net, train, args.seq_len, args.windows, args.seed, 32)
    with torch.no_grad():
        probs = [torch.softmax(net.model.model.layers[i].block_sparse_moe.gate(xs[i]), -1) for i in range(net.layers)]
    log(f"costs of {xs[0].shape[0]} training tokens per layer; mean NLL cost of k=1 per layer: "
        + " ".join(f"{c[:, 0].mean():.4f}" for c in costs))
    plans = [(kind, float(mu), "nll") for kind in ("linear", "linear+margin", "mlp") for mu in args.mu.split(",")]
    plans += [("mlp", float(mu), "kl") for mu in args.mu_kl.split(",")]
    for kind, mu, cost_kind in plans:
        forms = []
        for i in range(net.layers):
            if cost_kind == "kl":  # k = 1 vs 2 only: k = 3, 4 priced out
                cost = torch.zeros_like(costs[i])
                cost[:, 0] = kls[i]
                cost[:, 2:] = 10.0
            else:
                cost = costs[i]
            forms.append(fit(kind, xs[i], probs[i], cost, mu, args.fit_steps, args.seed + i))
        name = kind if cost_kind == "nll" else kind + "-kl"
        add(name, evaluate(net, batches, lambda i, h, p: forms[i](h, p).argmax(-1) + 1), mu=mu)
        if kind == "linear" and args.save_dir:
            os.makedirs(args.save_dir, exist_ok=True)
            path = os.path.join(args.save_dir, f"linear-mu{mu}.safetensors")
            save_allocator(path, [linear_as_allocator(f, net.experts) for f in forms],
                           {"format": "adak-allocator", "version": "1", "trainer": "tools/allocator_headroom.py",
                            "mu": str(mu)})
            log(f"wrote {path}")

    top2 = rows[0]["perplexity"]
    print("| allocator | mu | perplexity | vs top-2 | mean k | per layer |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        mu = r.get("mu", r.get("target_k", ""))
        layers = " ".join(f"{k:.2f}" for k in r["mean_k_per_layer"])
        print(f"| {r['allocator']} | {mu} | {r['perplexity']:.2f} | {100 * (r['perplexity'] / top2 - 1):+.2f}% "
              f"| {r['mean_k']:.3f} | {layers} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "args": vars(args), "seconds": time.time() - started}, f, indent=1)


if __name__ == "__main__":
    main()
