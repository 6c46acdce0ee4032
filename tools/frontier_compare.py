#!/usr/bin/env python3
"""Compares allocators with the best training-free rule at equal mean k, from `adak eval --json` outputs.

    tools/frontier_compare.py SWEEP.json ALLOCATOR.json [ALLOCATOR.json ...]

SWEEP.json is an `adak eval --sweep ... --json` output: its "sweep" rows (top-k, top-p with either weighting,
threshold) are the training-free points, and native top-K (the `topk` row at the model's K) is the reference.
For every ALLOCATOR.json (an `adak eval --json` output on the same tokens) it prints the allocator's mean k
and perplexity change against native top-K, and the best rule's perplexity change at the same mean k: the
lower envelope of all rule points, interpolated linearly in mean k between its two neighbours. A negative
"vs rule" means the allocator is better. Exit 1 when the files were not evaluated on the same tokens.
"""
import json
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def envelope(points):
    """The points no cheaper point beats: sorted by mean k, each with a lower perplexity than all before it."""
    points = sorted(points)
    best = []
    for k, ppl, label in points:
        if not best or ppl < best[-1][1]:
            best.append((k, ppl, label))
    return best


def interpolate(curve, k):
    """Perplexity of the envelope at mean k (linear between neighbours); None outside its range."""
    for (k0, p0, _), (k1, p1, _) in zip(curve, curve[1:]):
        if k0 <= k <= k1:
            return p0 + (p1 - p0) * (k - k0) / (k1 - k0) if k1 > k0 else min(p0, p1)
    return None


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    sweep = load(sys.argv[1])
    rows = sweep.get("sweep", [])
    top_k = [r for r in rows if r["routing"] == "topk"]
    reference = max(top_k, key=lambda r: r["mean_k"]) if top_k else None
    if reference is None:
        print("SWEEP.json has no topk rows (run adak eval --sweep topk,...)", file=sys.stderr)
        return 1
    base = reference["perplexity"]
    rules = [(r["mean_k"], r["perplexity"], r["label"]) for r in rows if r["routing"] in ("topk", "topp", "threshold")]
    curve = envelope(rules)
    print(f"native {reference['label']}: perplexity {base:.3f} over {sweep['tokens']} tokens")
    print("| allocator | mean k | ppl | vs native | best rule at that k | vs rule |")
    print("|---|---|---|---|---|---|")
    for path in sys.argv[2:]:
        a = load(path)
        if a["tokens"] != sweep["tokens"]:
            print(f"{path}: {a['tokens']} tokens, the sweep {sweep['tokens']}", file=sys.stderr)
            return 1
        k, ppl = a["mean_k"], a["perplexity"]
        rule = interpolate(curve, k)
        rule_text = f"{100 * (rule / base - 1):+.2f}%" if rule is not None else "n/a"
        gap = f"{100 * (ppl / rule - 1):+.2f}%" if rule is not None else "n/a"
        print(f"| {path} | {k:.3f} | {ppl:.3f} | {100 * (ppl / base - 1):+.2f}% | {rule_text} | {gap} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
