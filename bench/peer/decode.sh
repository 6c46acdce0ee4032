#!/usr/bin/env bash
# Step 2 of the peer benchmark: decode at batch 1, adak (bench decode_bench) against llama.cpp (llama-bench tg),
# same BF16 weights, native k = 8, 6 and 4 (the model's num_experts_per_tok set in both engines' configs),
# alternating the engine order every rep. Prints per k the median tok/s of each, adak / llama.cpp as the median
# of the per-rep ratios with min and max, and each engine's k=4-over-k=8 speedup.
#   bash bench/peer/decode.sh [--model DIR] [--reps R] [--tokens T] [--threads N]
# Default model: `adak make-model --arch olmoe` with 8 layers, hidden 1024, 64 experts top-8, expert width 512
# (848 M parameters, 1.6 GiB). Needs build/bin/{adak,decode_bench}, bench/peer/build_llama_cpp.sh's build,
# /usr/bin/python3 with numpy.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PEER="${PEER_DIR:-/tmp/adak-peer}"
MODEL=""
REPS=5
TOKENS=64
THREADS=2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --tokens) TOKENS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [[ -z "$MODEL" ]]; then
  MODEL="$work/olmoe"
  "$ROOT/build/bin/adak" make-model --arch olmoe --out "$MODEL" --set hidden_size=1024 --set intermediate_size=512 \
    --set num_hidden_layers=8 --set num_experts=64 --set num_experts_per_tok=8 --set num_attention_heads=16 \
    --set num_key_value_heads=16 --set vocab_size=4096 >/dev/null
fi
for k in 8 6 4; do
  mkdir -p "$work/k$k"
  for f in "$MODEL"/*; do ln -sf "$f" "$work/k$k/"; done
  rm "$work/k$k/config.json"
  /usr/bin/python3 -c "import json, sys; c = json.load(open(sys.argv[1])); c['num_experts_per_tok'] = $k; \
json.dump(c, open(sys.argv[2], 'w'), indent=2)" "$MODEL/config.json" "$work/k$k/config.json"
  /usr/bin/python3 "$ROOT/bench/peer/safetensors_to_gguf.py" "$MODEL" "$work/k$k.gguf" "$PEER/llama.cpp" "$k" >/dev/null
done
ours() { "$ROOT/build/bin/decode_bench" --model "$work/k$1" --tokens "$TOKENS" --threads "$THREADS" --reps 1 |
  sed -n 's/^decode batch 1 *best \([0-9.]*\) tok\/s.*/\1/p'; }
theirs() { "$PEER/llama.cpp/build/bin/llama-bench" -m "$work/k$1.gguf" -t "$THREADS" -p 0 -n "$TOKENS" -r 1 -o json |
  /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["avg_ts"])'; }
echo "model $(basename "$MODEL"), $TOKENS decode tokens per rep, $REPS reps, $THREADS threads, $(nproc) cores"
results="$work/results.txt"
for rep in $(seq 1 "$REPS"); do
  for k in 8 6 4; do
    if (( rep % 2 )); then a="$(ours $k)"; b="$(theirs $k)"; else b="$(theirs $k)"; a="$(ours $k)"; fi
    echo "$k $a $b" >>"$results"
    printf 'rep %d k=%d: adak %.1f tok/s, llama.cpp %.1f tok/s\n' "$rep" "$k" "$a" "$b"
  done
done
/usr/bin/python3 - "$results" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
by_k = {}
for k, a, b in rows:
    by_k.setdefault(int(k), []).append((float(a), float(b)))
print("| k | adak tok/s | llama.cpp tok/s | adak / llama.cpp (min, max) |")
print("|---|---|---|---|")
med = {}
for k in (8, 6, 4):
    a = [x for x, _ in by_k[k]]
    b = [y for _, y in by_k[k]]
    r = [x / y for x, y in by_k[k]]
    med[k] = (statistics.median(a), statistics.median(b))
    print(f"| {k} | {med[k][0]:.1f} | {med[k][1]:.1f} | {statistics.median(r):.2f} ({min(r):.2f}, {max(r):.2f}) |")
print(f"k=4 over k=8: adak {med[4][0] / med[8][0]:.2f}x, llama.cpp {med[4][1] / med[8][1]:.2f}x")
PY
