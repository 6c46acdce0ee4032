#!/usr/bin/env bash
# The expert-compute budget, measured: with the same --max-batch-expert-activations, how many tokens a
# step packs (adak_batch_tokens_sum / _count from /metrics) and how fast prompts are processed, for native
# top-K and for Ada-K requests. Prefill-heavy load (long prompts, few generated tokens) so the budget binds.
#
#   bash bench/expert_budget_bench.sh [--model DIR] [--allocator FILE] [--budget A] [--concurrency C]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN:-$ROOT/build/bin}"
MODEL="$ROOT/../shared/models/stories-mixtral"
ALLOCATOR=""
BUDGET=256
CONCURRENCY=16
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --allocator) ALLOCATOR="$2"; shift 2 ;;
    --budget) BUDGET="$2"; shift 2 ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    *) echo "unknown flag $1"; exit 2 ;;
  esac
done
if [ -z "$ALLOCATOR" ]; then
  ALLOCATOR="$(ls "$ROOT"/docs/results/allocator-lambda-*.safetensors 2>/dev/null | head -1 || true)"
fi
[ -n "$ALLOCATOR" ] || ALLOCATOR="$MODEL/reference/allocator-random.safetensors"
echo "# $(date -u +%FT%TZ) model=$(basename "$MODEL") allocator=$ALLOCATOR budget=$BUDGET expert activations/step" \
     "max_batch_tokens=2048 concurrency=$CONCURRENCY cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\""
for policy in topk adak; do
  LOG="$(mktemp)"
  "$BIN/adak" serve --model "$MODEL" --allocator "$ALLOCATOR" --grpc-port 0 --http-port 0 \
      --max-batch-tokens 2048 --prefill-chunk 2048 --max-batch-expert-activations "$BUDGET" \
      --max-running-requests 64 --max-waiting-requests 1024 2>"$LOG" &
  SERVER=$!
  for _ in $(seq 1 600); do grep -q "ready" "$LOG" && break; sleep 0.1; done
  GRPC="$(grep -o 'grpc=[0-9.]*:[0-9]*' "$LOG" | head -1 | cut -d= -f2)"
  HTTP="$(grep -o 'http=[0-9.]*:[0-9]*' "$LOG" | head -1 | cut -d= -f2)"
  RESULT="$("$BIN/adak-loadtest" --target "$GRPC" --prompts "$ROOT/../shared/data/stories/valid.txt" \
      --concurrency "$CONCURRENCY" --requests $((CONCURRENCY * 4)) --max-tokens 4 --prompt-words 200 \
      --mix "$policy:1" --no-progress --json -)"
  METRICS="$(curl -s "http://$HTTP/metrics")"
  kill $SERVER; wait $SERVER 2>/dev/null || true
  rm -f "$LOG"
  SUM="$(echo "$METRICS" | awk '/^adak_batch_tokens_sum/ {print $2}')"
  COUNT="$(echo "$METRICS" | awk '/^adak_batch_tokens_count/ {print $2}')"
  echo "$RESULT" | SUM="$SUM" COUNT="$COUNT" python3 -c '
import json, os, sys
r = json.loads(sys.stdin.read())
a = r["overall"]
steps = float(os.environ["COUNT"]); tokens = float(os.environ["SUM"])
rate = (a["prompt_tokens"] + a["output_tokens"]) / r["wall_seconds"]
print("{:5s} steps={:.0f} batch_tokens_mean={:.1f} prompt_tokens={} wall={:.2f}s prompt+gen tok/s={:.0f} "
      "TTFT p50 {:.0f} ms mean_k={:.3f} errors={}".format(r["config"]["mix"].split(":")[0], steps, tokens / steps,
      a["prompt_tokens"], r["wall_seconds"], rate, a["ttft_ms"]["p50"], a["mean_k"], a["errors"]))'
done
