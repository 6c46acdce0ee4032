#!/usr/bin/env bash
# Serving throughput and inter-token latency at 1, 8 and 32 concurrent streams, native top-K vs Ada-K, on
# one `adak serve` process (the two policies alternate at each concurrency, so they see the same machine).
#
#   bash bench/serve_bench.sh [--model DIR] [--allocator FILE] [--max-tokens N] [--requests-per-stream N]
#
# Needs build/bin/adak and build/bin/adak-loadtest (`bash scripts/build.sh`). Prints one line per run and
# writes the loadtest reports as JSON lines to $OUT (default bench/results/serve_bench.jsonl). Each run has
# at least 32 requests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN:-$ROOT/build/bin}"
MODEL="$ROOT/../shared/models/stories-mixtral"
ALLOCATOR=""
MAX_TOKENS=64
PER_STREAM=4
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --allocator) ALLOCATOR="$2"; shift 2 ;;
    --max-tokens) MAX_TOKENS="$2"; shift 2 ;;
    --requests-per-stream) PER_STREAM="$2"; shift 2 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done
if [ -z "$ALLOCATOR" ]; then
  ALLOCATOR="$(ls "$ROOT"/docs/results/allocator-lambda-*.safetensors 2>/dev/null | head -1 || true)"
fi
[ -n "$ALLOCATOR" ] || ALLOCATOR="$MODEL/reference/allocator-random.safetensors"
OUT="${OUT:-$ROOT/bench/results/serve_bench.jsonl}"
LOG="$(mktemp)"
"$BIN/adak" serve --model "$MODEL" --allocator "$ALLOCATOR" --grpc-port 0 --http-port -1 \
    --max-running-requests 64 --max-waiting-requests 1024 "${EXTRA[@]}" 2>"$LOG" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 600); do
  grep -q "ready" "$LOG" && break
  kill -0 $SERVER 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 0.1
done
PORT="$(grep -o 'grpc=[0-9.]*:[0-9]*' "$LOG" | head -1 | sed 's/.*://')"
[ -n "$PORT" ] || { echo "no grpc port in: $(cat "$LOG")"; exit 1; }
echo "# $(date -u +%FT%TZ) model=$(basename "$MODEL") allocator=$ALLOCATOR max_tokens=$MAX_TOKENS" \
     "cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\" cores=$(nproc)"
: > "$OUT.tmp"
for c in 1 8 32; do
  for policy in topk adak; do
    "$BIN/adak-loadtest" --target "127.0.0.1:$PORT" --prompts "$ROOT/../shared/data/stories/valid.txt" \
        --concurrency "$c" --requests $(( c * PER_STREAM > 32 ? c * PER_STREAM : 32 )) --warmup "$c" \
        --max-tokens "$MAX_TOKENS" --mix "$policy:1" --no-progress --json - | tee -a "$OUT.tmp" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
c, a = r["config"], r["overall"]
print("{:5s} streams={:3d} {:8.1f} tok/s  ITL p50 {:7.2f} ms  p99 {:7.2f} ms  TTFT p50 {:7.1f} ms  mean k {:.3f}"
      "  errors {}".format(c["mix"].split(":")[0], c["concurrency"], a["output_throughput"], a["itl_ms"]["p50"],
      a["itl_ms"]["p99"], a["ttft_ms"]["p50"], a["mean_k"], a["errors"]))'
  done
done
mv "$OUT.tmp" "$OUT"
