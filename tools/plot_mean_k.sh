#!/usr/bin/env bash
# Per-layer mean k of Ada-K allocators as a PNG: one line per `adak eval --json` output, layers on x, with
# the native top-K as a dashed reference.
#
# usage: tools/plot_mean_k.sh OUT.png LABEL=EVAL.json [LABEL=EVAL.json ...]
#   e.g. tools/plot_mean_k.sh docs/mean_k_per_layer.png "lambda 0.01=/tmp/eval-0.01.json" ...
# Needs python3 and gnuplot (Debian: gnuplot-nox).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,7p' "$0" >&2
  exit 2
fi
out="$1"
shift
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# One data file per curve ("layer mean_k"), and the gnuplot plot clause naming them.
python3 - "$tmp" "$@" <<'PY' >"$tmp/plot.gp"
import json, sys
tmp, pairs = sys.argv[1], sys.argv[2:]
clauses, native, layers, top = [], None, 0, 0.0
for i, pair in enumerate(pairs):
    label, sep, path = pair.partition("=")
    if not sep:
        sys.exit(f"plot_mean_k.sh: expected LABEL=EVAL.json, got '{pair}'")
    with open(path) as f:
        doc = json.load(f)
    ks = doc["mean_k_per_layer"]
    layers = max(layers, len(ks))
    top = max([top] + ks)
    with open(f"{tmp}/{i}.dat", "w") as d:
        for layer, k in enumerate(ks):
            d.write(f"{layer} {k}\n")
    title = f"{label} (mean {doc['mean_k']:.2f}, ppl {doc['perplexity']:.2f})".replace('"', "'")
    clauses.append(f'"{tmp}/{i}.dat" using 1:2 with linespoints lw 2 pt 7 title "{title}"')
    # Native K from the FLOP ratio: expert FLOPs scale with the number of experts run.
    if doc.get("expert_flops"):
        native = doc["mean_k"] * doc["expert_flops_native"] / doc["expert_flops"]
native_k = round(native) if native else 2
print("set xlabel 'MoE layer'")
print("set ylabel 'mean experts per token (k)'")
print(f"set xrange [-0.2:{layers - 1 + 0.2}]")
print(f"set xtics 0,1,{layers - 1}")
print(f"set yrange [0.8:{max(top, native_k) + 0.4:.2f}]")
print("set grid")
print("set key top right")
print("set title 'Ada-K allocators: mean k per layer'")
print("NATIVE_K = " + str(native_k))
print("plot " + ", \\\n     ".join(clauses + ["NATIVE_K with lines dt 2 lc rgb 'gray40' title 'native top-K'"]))
PY
{
  echo "set terminal pngcairo size 900,560 font 'sans,11'"
  echo "set output '$out'"
  cat "$tmp/plot.gp"
} >"$tmp/run.gp"
gnuplot "$tmp/run.gp"
echo "wrote $out"
