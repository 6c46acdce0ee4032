#!/usr/bin/env python3
"""Checks our engine against the PyTorch reference a model directory carries (reference.json).

tools/train_demo_model.py writes reference.json next to the model it trains: the prompt, its token ids, the
last position's top-10 (id, logit) pairs of the PyTorch fp32 forward from the saved BF16 weights, and the
experts every MoE layer routes that position to. This script runs `adak logits --json --trace` on the same
prompt and requires the same token ids, the same top-10 ids in the same order, each logit within 1e-3
relative (both sides compute in fp32 from the same BF16 weights; only the summation order differs), and the
same experts in every layer. tests/engine/default_model_test.cc checks the default model the same way in
the test suite; this script checks a model that is not committed (e.g. the fine-grained fixture).

    /usr/bin/python3 tools/check_model_reference.py /work/fine-train/stories-moe-fine --adak build/bin/adak

Prints one line per check and the largest logit difference; exits 1 on any mismatch.
"""
import argparse
import json
import os
import subprocess
import sys

REL_TOL = 1e-3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("model", help="model directory holding reference.json")
    ap.add_argument("--adak", default=os.path.join(os.path.dirname(here), "build/bin/adak"))
    args = ap.parse_args()

    with open(os.path.join(args.model, "reference.json")) as f:
        ref = json.load(f)
    out = subprocess.run([args.adak, "logits", "--model", args.model, "--prompt", ref["prompt"], "--top", "10",
                          "--json", "--trace", "--threads", "1"], check=True, capture_output=True, text=True).stdout
    got = json.loads(out)
    failures = []
    if got["token_ids"] != ref["input_ids"]:
        failures.append(f"token ids differ: {got['token_ids']} vs {ref['input_ids']}")
    last = got["positions"][-1]
    want_top = ref["last_position_top10"]
    max_diff = 0.0
    for rank, ((gid, glogit), (wid, wlogit)) in enumerate(zip(last["top"], want_top)):
        if gid != wid:
            failures.append(f"rank {rank}: id {gid}, reference {wid}")
        diff = abs(glogit - wlogit)
        max_diff = max(max_diff, diff)
        if diff > REL_TOL * max(1.0, abs(wlogit)):
            failures.append(f"rank {rank} id {wid}: logit {glogit}, reference {wlogit}")
    want_routes = ref["last_position_experts_per_layer"]
    if len(last["layers"]) != len(want_routes):
        failures.append(f"{len(last['layers'])} MoE layers, reference {len(want_routes)}")
    same_routes = 0
    for layer, (g, w) in enumerate(zip(last["layers"], want_routes)):
        if g["experts"] == w:
            same_routes += 1
        else:
            failures.append(f"layer {layer}: experts {g['experts']}, reference {w}")
    print(f"{args.model}: {len(got['token_ids'])} prompt tokens; top-10 ids "
          f"{'identical' if not any(f.startswith('rank') for f in failures) else 'DIFFER'}; "
          f"max |logit - reference| {max_diff:.3g}; routing identical in {same_routes}/{len(want_routes)} layers")
    for f in failures:
        print("MISMATCH", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
