#!/usr/bin/env bash
# The quality/compute frontier as a PNG: perplexity against mean k, one line per routing family, from
# `adak eval --json` outputs (their top-level row and every "sweep" row; rows are grouped by family: topk,
# topp, topp-raw, threshold, and each other label, e.g. the Ada-K allocators, as given on the command line).
# The y axis spans native top-K's perplexity to 18% above it, the x axis mean k up to native K; rows beyond
# either (e.g. raw top-p, which on a fine-grained router can pick more than K experts) are off the frame.
#
# usage: tools/plot_frontier.sh OUT.png [LABEL=]EVAL.json [...]
#   LABEL names the file's top-level row (e.g. "Ada-K lambda 0.015=eval.json"); without it the row's own label.
# Needs python3 and gnuplot (Debian: gnuplot-nox).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,8p' "$0" >&2
  exit 2
fi
out="$1"
shift
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

python3 - "$tmp" "$@" <<'PY' >"$tmp/plot.gp"
import json, sys
tmp, args = sys.argv[1], sys.argv[2:]
families = {}  # family -> {(mean_k, ppl)}
native_ppl = None
native_k = None
def family(row):
    if row["routing"] == "topp":
        return "top-p (raw weights)" if row.get("top_p_weighting") == "raw" else "top-p (model weights)"
    return {"topk": "static top-k", "threshold": "threshold (SER)"}.get(row["routing"])
for arg in args:
    label, sep, path = arg.rpartition("=")
    if not sep:
        label, path = "", arg
    with open(path) as f:
        doc = json.load(f)
    rows = [(doc, label)] + [(r, "") for r in doc.get("sweep", [])]
    for row, name in rows:
        fam = family(row) if not name else name
        if fam is None:
            fam = row["label"]
        families.setdefault(fam, set()).add((row["mean_k"], row["perplexity"]))
        if row["routing"] == "topk" and row.get("top_k") == round(row["mean_k"]) and \
           abs(row.get("savings_ratio", 1.0)) < 1e-12:
            native_ppl = row["perplexity"]
            native_k = row["top_k"]
clauses = []
for i, (fam, points) in enumerate(families.items()):
    with open(f"{tmp}/{i}.dat", "w") as d:
        for k, ppl in sorted(points):
            d.write(f"{k} {ppl}\n")
    style = "points pt 7 ps 1.6" if len(points) == 1 else "linespoints lw 2 pt 7"
    clauses.append(f'"{tmp}/{i}.dat" using 1:2 with {style} title "{fam}"')
print("set xlabel 'mean experts per token (k), all MoE layers'")
print("set ylabel 'perplexity'")
print("set grid")
print("set key top right")
print("set title 'Routing frontier: perplexity vs mean k (same tokens)'")
if native_ppl:
    # Frame the interesting region: up to 18% above native (points beyond, e.g. raw top-p, are off the frame).
    print(f"set yrange [{native_ppl * 0.99}:{native_ppl * 1.18}]")
    print(f"set arrow from graph 0, first {native_ppl * 1.02} to graph 1, first {native_ppl * 1.02} nohead dt 2 lc rgb 'gray40'")
    print(f"set label 'native top-K +2%' at graph 0.02, first {native_ppl * 1.02} offset 0,0.6 tc rgb 'gray40'")
if native_k:
    print(f"set xrange [0.9:{native_k + 0.1}]")
print("plot " + ", \\\n     ".join(clauses))
PY
{
  echo "set terminal pngcairo size 960,600 font 'sans,11'"
  echo "set output '$out'"
  cat "$tmp/plot.gp"
} >"$tmp/run.gp"
gnuplot "$tmp/run.gp"
echo "wrote $out"
