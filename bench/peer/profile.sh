#!/usr/bin/env bash
# Where a decode step's time goes: `perf record` of decode_bench at batch 1 (the model load, weight touch and
# bandwidth measurement skipped with perf's start delay), the samples grouped by what the function does.
#   bash bench/peer/profile.sh MODEL_DIR [DECODE_BENCH] [--tokens T] [--threads N]
# DECODE_BENCH defaults to build/bin/decode_bench (pass another build's binary to compare before and after).
# Prints decode tok/s and one line per group: share of samples and ms per token. Needs perf (Debian
# linux-perf) and perf_event_paranoid <= 2.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODEL="$1"
shift
BENCH="$ROOT/build/bin/decode_bench"
if [[ $# -gt 0 && "$1" != --* ]]; then BENCH="$1"; shift; fi
TOKENS=256
THREADS=2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tokens) TOKENS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The delay skips start-up: decode_bench loads, touches the weights and measures bandwidth in about 3 s here.
perf record -q -D 4000 -o "$work/perf.data" "$BENCH" --model "$MODEL" --tokens "$TOKENS" --threads "$THREADS" \
  --reps 4 >"$work/bench.txt" 2>/dev/null
rate="$(sed -n 's/^decode batch 1 *best [0-9.]* tok\/s, median \([0-9.]*\) tok\/s.*/\1/p' "$work/bench.txt")"
perf report -i "$work/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' \
  >"$work/symbols.txt"
RATE="$rate" THREADS="$THREADS" /usr/bin/python3 - "$work/symbols.txt" <<'PY'
import os, re, sys
groups = [  # first match wins
    ("expert FFN (gate/up, SwiGLU, down)", r"GateUpTokens|DownTokens|DotTile<|SwiGlu|RunFused|MoeExperts"),
    ("dense GEMV (QKV, O, router, LM head)", r"DotRowRange|DotTileStream|GemvPath|MatMul|ReduceStore|Reduce16|PackRow|"
     r"Epilogue|BiasAt|sgemm|Widen"),
    ("attention (KV write, paged attention)", r"Attend|WriteKv|PagedAttention"),
    ("thread pool (hand-off, waiting)", r"ThreadPool|sched_yield|futex|pthread_cond|Mutex"),
    ("norms, RoPE, routing, elementwise", r"RmsNorm|Rope|Routing|Route|TopK|Softmax|Sum|Add|Silu|Elementwise|exp|Argmax"),
    ("kernel (page faults, scheduler)", r"\[k\]"),
]
totals = {name: 0.0 for name, _ in groups}
other = 0.0
for line in open(sys.argv[1]):
    m = re.match(r"\s*([0-9.]+)%\s+(.*)", line)
    if not m:
        continue
    share, symbol = float(m.group(1)), m.group(2)
    for name, pattern in groups:
        if re.search(pattern, symbol):
            totals[name] += share
            break
    else:
        other += share
rate = float(os.environ["RATE"])
ms = 1e3 / rate
print(f"decode {rate:.1f} tok/s (median of 4 reps) = {ms:.2f} ms/token, {os.environ['THREADS']} threads")
print("| where | share of samples | ms per token |")
print("|---|---|---|")
for name, _ in groups:
    print(f"| {name} | {totals[name]:.1f}% | {totals[name] / 100 * ms:.2f} |")
print(f"| other | {other:.1f}% | {other / 100 * ms:.2f} |")
PY
