#!/usr/bin/env bash
# n siblings of one prompt sharing its KV blocks, against the same n requests sent apart.
#
# One `adak serve` (default: ../shared/models/stories-mixtral when present, else the project's model). Per
# round, alternating, both arms generate n x MAX_TOKENS tokens (sampling, ignore_eos) from one PROMPT_TOKENS-
# token prompt:
#   siblings  one /v1/completions request with "n": N (the later siblings start once the first has computed the
#             prompt and take its full KV blocks from the prefix cache: usage.adak.shared_prompt_tokens);
#   separate  N concurrent requests with the same prompt, n = 1 (admitted together, so each computes it).
# Prints each round's wall time, the prompt tokens the siblings took from the cache, and the ratio of the
# medians (separate / siblings).
#
#   bash bench/siblings.sh [--n N] [--prompt-tokens P] [--max-tokens T] [--rounds R] [--model DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN:-$ROOT/build/bin}"
MODEL="$ROOT/../shared/models/stories-mixtral"
[[ -d "$MODEL" ]] || MODEL="$ROOT/models/stories-moe-small"
N=8
PROMPT_TOKENS=400
MAX_TOKENS=16
ROUNDS=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --n) N="$2"; shift 2 ;;
    --prompt-tokens) PROMPT_TOKENS="$2"; shift 2 ;;
    --max-tokens) MAX_TOKENS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="$(mktemp)"
"$BIN/adak" serve --model "$MODEL" --grpc-port -1 --http-port "$port" --max-running-requests "$N" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 300); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
ids="$(python3 -c "print(','.join(str(300 + i % 3000) for i in range($PROMPT_TOKENS)))")"
body() { echo "{\"prompt\": [$ids], \"max_tokens\": $MAX_TOKENS, \"n\": $1, \"temperature\": 1, \"ignore_eos\": true}"; }
url="127.0.0.1:$port/v1/completions"
now() { date +%s.%N; }
echo "model $(basename "$MODEL"), n $N, prompt $PROMPT_TOKENS tokens, $MAX_TOKENS tokens per sibling, $(nproc) cores"
curl -sf "$url" -H 'Content-Type: application/json' -d "$(body 1)" >/dev/null  # warm up
sib=()
sep=()
for r in $(seq 1 "$ROUNDS"); do
  t0=$(now)
  shared="$(curl -sf "$url" -H 'Content-Type: application/json' -d "$(body "$N")" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["usage"]["adak"]["shared_prompt_tokens"])')"
  t1=$(now)
  for _ in $(seq 1 "$N"); do curl -sf "$url" -H 'Content-Type: application/json' -d "$(body 1)" >/dev/null & done
  wait $(jobs -p | grep -v "^$server$") 2>/dev/null || true
  t2=$(now)
  s=$(python3 -c "print($t1 - $t0)")
  p=$(python3 -c "print($t2 - $t1)")
  sib+=("$s")
  sep+=("$p")
  printf 'round %d: siblings %.3f s (shared_prompt_tokens %s), separate %.3f s\n' "$r" "$s" "$shared" "$p"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ms=$(median "${sib[@]}")
mp=$(median "${sep[@]}")
printf 'median: siblings %.3f s, separate %.3f s, separate/siblings %.2f (min %.3f / max %.3f vs min %.3f / max %.3f)\n' \
  "$ms" "$mp" "$(python3 -c "print($mp / $ms)")" "$(printf '%s\n' "${sib[@]}" | sort -g | head -1)" \
  "$(printf '%s\n' "${sib[@]}" | sort -g | tail -1)" "$(printf '%s\n' "${sep[@]}" | sort -g | head -1)" \
  "$(printf '%s\n' "${sep[@]}" | sort -g | tail -1)"
