#!/usr/bin/env python3
"""Checks gpu_logits' output (our all-position logits on each backend) against Hugging Face transformers.

For each JSON file written by `gpu_logits` (bench/gpu/gpu_logits.cc), loads the checkpoint it names with
transformers in fp32 (the BF16 weights upcast: the same values our engine multiplies), runs the same token ids,
and compares every backend's logits [n, vocab]: the largest absolute difference relative to the largest
reference logit must be <= --tol (1e-3: fp32 on both sides, only the summation order differs), and the
argmax must agree at every position whose top two reference logits are more than --tie apart.

    python3 bench/gpu/compare_transformers.py /tmp/olmoe.json /tmp/qwen3_moe.json /tmp/mixtral.json

Prints one line per (file, backend); exits 1 on any mismatch, 2 when transformers cannot load a model.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--tie", type=float, default=1e-3)
    args = ap.parse_args()

    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"compare_transformers: needs PyTorch and transformers: {e}")
        return 2

    failed = False
    for path in args.files:
        with open(path) as f:
            got = json.load(f)
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(got["dir"], dtype=torch.float32)
        except TypeError:  # transformers < 4.56 spells it torch_dtype
            model = transformers.AutoModelForCausalLM.from_pretrained(got["dir"], torch_dtype=torch.float32)
        except Exception as e:  # noqa: BLE001 -- report any loader failure and stop
            print(f"{path}: transformers cannot load {got['dir']}: {e}")
            return 2
        model.eval()
        ids = got["ids"]
        with torch.no_grad():
            ref = model(torch.tensor([ids])).logits[0].double()
        n, vocab = ref.shape
        top2 = ref.topk(2, dim=-1).values
        decided = (top2[:, 0] - top2[:, 1]) > args.tie
        for backend in [k for k in got if isinstance(got[k], list) and k not in ("ids",) and not k.endswith("_k")]:
            ours = torch.tensor(got[backend], dtype=torch.float64).view(n, -1)[:, :vocab]
            rel = ((ours - ref).abs().max() / ref.abs().max()).item()
            argmax_ok = bool((ours.argmax(-1) == ref.argmax(-1))[decided].all())
            ok = rel <= args.tol and argmax_ok
            failed |= not ok
            print(f"{'ok  ' if ok else 'FAIL'} {got['arch']:<10} backend={backend:<6} positions={n} vocab={vocab} "
                  f"max_rel_diff={rel:.2e} (tol {args.tol:g}) argmax_agrees={argmax_ok}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
