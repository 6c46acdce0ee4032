#!/usr/bin/env bash
# The whole peer benchmark (issue 15): adak against llama.cpp on the same BF16 weights, one table.
#   1. an OLMoE-shaped random model (`adak make-model`, or --model DIR), converted to GGUF with byte-identical
#      BF16 matrices at native k = 8, 6 and 4 (num_experts_per_tok set in both engines' configs);
#   2. greedy_agreement.sh: both engines give the same greedy tokens;
#   3. REPS rounds, the engine order alternating every round, each round running
#      decode at batch 1, k = 8/6/4 (adak decode_bench, llama-bench tg), 128-token prefill at k = 8
#      (decode_bench's timed prompt, llama-bench pp), and serving at 1, 8 and 32 streams: adak-loadtest
#      --api openai (closed loop, 64 output tokens, a new prompt seed every round) against `adak serve` and
#      `llama-server`, both up for the whole run with the same threads and KV cache bytes;
#   4. the table: per row the median of each engine and adak / llama.cpp as the median of the per-round ratios
#      with their min and max; each engine's k=4-over-k=8 speedup against the ideal from the weight bytes.
#   bash bench/peer/run.sh [--model DIR] [--reps R] [--tokens T] [--threads N] [--precision bf16|fp32] [--out DIR]
# --precision: adak's --matmul-precision (default bf16, as `adak serve`: bf16 dot products as llama.cpp's).
# Needs build/bin/{adak,decode_bench,adak-loadtest}, bench/peer/build_llama_cpp.sh's build (PEER_DIR, default
# /tmp/adak-peer), /usr/bin/python3 with numpy, grpcio and protobuf. Raw outputs go to --out (default: a
# temporary directory, removed at the end). About 10 minutes on 2 cores with the default model and 3 rounds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PEER="${PEER_DIR:-/tmp/adak-peer}"
# shellcheck source=bench/peer/lib.sh
source "$ROOT/bench/peer/lib.sh"
MODEL=""
REPS=3
TOKENS=64
THREADS=2
PRECISION=bf16
OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --tokens) TOKENS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --precision) PRECISION="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BIN="$ROOT/build/bin"
LLAMA="$PEER/llama.cpp/build/bin"
for f in "$BIN/adak" "$BIN/decode_bench" "$BIN/adak-loadtest" "$LLAMA/llama-bench" "$LLAMA/llama-server"; do
  [[ -x "$f" ]] || { echo "missing $f (build adak with scripts/build.sh, llama.cpp with build_llama_cpp.sh)" >&2; exit 2; }
done
work="$(mktemp -d)"
[[ -n "$OUT" ]] || OUT="$work/out"
mkdir -p "$OUT"
pids=()
trap peer_cleanup EXIT

if [[ -z "$MODEL" ]]; then
  MODEL="$work/olmoe"
  "$BIN/adak" make-model --arch olmoe --out "$MODEL" --set hidden_size=1024 --set intermediate_size=512 \
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
echo "model $MODEL: $(/usr/bin/python3 -c "import json, sys; c = json.load(open(sys.argv[1])); \
print(f\"{c['num_hidden_layers']} layers, hidden {c['hidden_size']}, {c['num_experts']} experts of width \
{c['intermediate_size']}, vocab {c['vocab_size']}\")" "$MODEL/config.json")"
echo "$REPS rounds, $TOKENS tokens, $THREADS threads, $(nproc) cores, adak --matmul-precision $PRECISION; raw outputs in $OUT"

echo "== greedy agreement"
bash "$ROOT/bench/peer/greedy_agreement.sh" --model "$work/k8" --gguf "$work/k8.gguf" --tokens 16 | tee "$OUT/greedy.txt"

adak_port="$(free_port)"
llama_port="$(free_port)"
# The same KV bytes for both: llama.cpp's f16 cache of 16384 tokens over 32 slots is what adak's bf16 cache gets.
kv_mib="$(/usr/bin/python3 -c "import json, sys; c = json.load(open(sys.argv[1])); \
print(16384 * c['num_hidden_layers'] * 2 * c['num_key_value_heads'] * (c['hidden_size'] // c['num_attention_heads']) \
* 2 // (1 << 20))" "$MODEL/config.json")"
"$BIN/adak" serve --model "$work/k8" --grpc-port -1 --http-port "$adak_port" --threads "$THREADS" \
  --kv-cache-mib "$kv_mib" --matmul-precision "$PRECISION" >"$OUT/adak-serve.log" 2>&1 &
pids+=($!)
"$LLAMA/llama-server" -m "$work/k8.gguf" --port "$llama_port" -t "$THREADS" -c 16384 -np 32 \
  >"$OUT/llama-server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
  curl -sf "127.0.0.1:$adak_port/readyz" >/dev/null && curl -sf "127.0.0.1:$llama_port/health" >/dev/null && break
  sleep 0.2
done
curl -sf "127.0.0.1:$adak_port/readyz" >/dev/null || { echo "adak serve did not come up" >&2; exit 1; }
curl -sf "127.0.0.1:$llama_port/health" >/dev/null || { echo "llama-server did not come up" >&2; exit 1; }

# Reads files into the page cache before a timed run: all rows' model files (three GGUF copies and the
# safetensors) need not fit in memory together, and no engine's timed run may wait on the disk (decode_bench
# also touches every weight before it times anything; llama-bench's warm-up decodes one token, which reads
# only that token's experts).
page_in() { cat "$@" >/dev/null; }
rows="$OUT/rows.txt"
: >"$rows"
# Each measurement appends "ROW ENGINE VALUE [EXTRA]" to $rows.
ours_decode() {
  page_in "$MODEL"/*.safetensors
  "$BIN/decode_bench" --model "$work/k$1" --tokens "$TOKENS" --threads "$THREADS" --reps 1 \
    --matmul-precision "$PRECISION" >"$OUT/adak-decode-k$1-$2.txt"
  echo "decode$1 adak $(sed -n 's/^decode batch 1 *best \([0-9.]*\) tok\/s.*/\1/p' "$OUT/adak-decode-k$1-$2.txt") \
$(sed -n 's/^weight bytes\/token *\([0-9.]*\) MB.*/\1/p' "$OUT/adak-decode-k$1-$2.txt")" >>"$rows"
}
theirs_decode() {
  page_in "$work/k$1.gguf"
  "$LLAMA/llama-bench" -m "$work/k$1.gguf" -t "$THREADS" -p 0 -n "$TOKENS" -r 1 -o json >"$OUT/llama-decode-k$1-$2.json"
  echo "decode$1 llama $(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["avg_ts"])' \
    "$OUT/llama-decode-k$1-$2.json")" >>"$rows"
}
ours_prefill() {
  page_in "$MODEL"/*.safetensors
  "$BIN/decode_bench" --model "$work/k8" --prompt-tokens 128 --tokens 1 --threads "$THREADS" --reps 1 \
    --matmul-precision "$PRECISION" >"$OUT/adak-prefill-$1.txt"
  echo "prefill adak $(sed -n 's/^prefill *best \([0-9.]*\) tok\/s.*/\1/p' "$OUT/adak-prefill-$1.txt")" >>"$rows"
}
theirs_prefill() {
  page_in "$work/k8.gguf"
  "$LLAMA/llama-bench" -m "$work/k8.gguf" -t "$THREADS" -p 128 -n 0 -r 1 -o json >"$OUT/llama-prefill-$1.json"
  echo "prefill llama $(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["avg_ts"])' \
    "$OUT/llama-prefill-$1.json")" >>"$rows"
}
serve() {  # ENGINE PORT STREAMS ROUND
  local json="$OUT/$1-serve-c$3-$4.json"
  page_in "$MODEL"/*.safetensors "$work/k8.gguf"  # both servers' weights, mapped since start-up
  "$BIN/adak-loadtest" --api openai --target "http://127.0.0.1:$2" --concurrency "$3" \
    --requests $(($3 > 4 ? 2 * $3 : 8)) --warmup "$3" --max-tokens 64 --seed "$4" --no-progress --json "$json" \
    >/dev/null
  echo "serve$3 $1 $(/usr/bin/python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["overall"]; \
assert r["errors"] == 0, r["errors_by_code"]; \
print(r["output_throughput"], r["ttft_ms"]["p50"], r["itl_ms"]["p50"])' "$json")" >>"$rows"
}
for rep in $(seq 1 "$REPS"); do
  echo "== round $rep of $REPS ($(if ((rep % 2)); then echo "adak first"; else echo "llama.cpp first"; fi))"
  pairs=()
  for k in 8 6 4; do pairs+=("ours_decode $k $rep|theirs_decode $k $rep"); done
  pairs+=("ours_prefill $rep|theirs_prefill $rep")
  for c in 1 8 32; do pairs+=("serve adak $adak_port $c $rep|serve llama $llama_port $c $rep"); done
  for pair in "${pairs[@]}"; do
    a="${pair%%|*}"
    b="${pair##*|}"
    if ((rep % 2)); then $a; $b; else $b; $a; fi
  done
  tail -n 14 "$rows" | sed 's/^/  /'
done

/usr/bin/python3 - "$rows" <<'PY'
import statistics, sys
data = {}
for line in open(sys.argv[1]):
    row, engine, *values = line.split()
    data.setdefault(row, {}).setdefault(engine, []).append([float(v) for v in values])

def med(row, engine, i=0):
    return statistics.median(v[i] for v in data[row][engine])

def ratio(row):
    r = [a[0] / b[0] for a, b in zip(data[row]["adak"], data[row]["llama"])]
    return f"{statistics.median(r):.2f} ({min(r):.2f}, {max(r):.2f})"

print()
print("| | adak | llama.cpp | adak / llama.cpp (min, max) |")
print("|---|---|---|---|")
for k in (8, 6, 4):
    row = f"decode{k}"
    print(f"| decode B=1, k={k} | {med(row, 'adak'):.1f} tok/s | {med(row, 'llama'):.1f} | {ratio(row)} |")
ideal = med("decode8", "adak", 1) / med("decode4", "adak", 1)
ours = med("decode4", "adak") / med("decode8", "adak")
theirs = med("decode4", "llama") / med("decode8", "llama")
print(f"| speedup k=4 over k=8 (ideal from bytes {ideal:.3f}) | {ours:.2f} ({100 * ours / ideal:.0f}% of ideal) "
      f"| {theirs:.2f} ({100 * theirs / ideal:.0f}%) | |")
print(f"| prefill 128 tokens | {med('prefill', 'adak'):.0f} tok/s | {med('prefill', 'llama'):.0f} | {ratio('prefill')} |")
for c in (1, 8, 32):
    row = f"serve{c}"
    what, i = ("ITL p50", 2) if c == 1 else ("TTFT p50", 1)
    print(f"| server, {c} stream{'s' if c > 1 else ''}, 64 tokens: tok/s / {what} | {med(row, 'adak'):.1f} / "
          f"{med(row, 'adak', i):.1f} ms | {med(row, 'llama'):.1f} / {med(row, 'llama', i):.1f} ms | {ratio(row)} |")
PY
