#!/usr/bin/env bash
# Step 1 of the peer benchmark: the same weights give the same greedy tokens in adak and in llama.cpp.
# Writes an OLMoE-shaped random model with `adak make-model` (or takes --model DIR), converts it to GGUF with
# byte-identical BF16 matrices (safetensors_to_gguf.py, gguf-py from the llama.cpp tree), serves it with both
# engines and compares the greedy continuation of a token-id prompt (adak over gRPC, llama-server /completion):
# exactly, up to the first near tie of llama.cpp's top two tokens (random weights have flat distributions).
#   bash bench/peer/greedy_agreement.sh [--model DIR [--gguf FILE]] [--tokens N]
# --gguf: the model already converted (safetensors_to_gguf.py at its native k), so it is not converted again.
# Needs build/bin/adak, bench/peer/build_llama_cpp.sh's build (run first), /usr/bin/python3 with numpy,
# grpcio and protobuf (Debian python3-numpy python3-grpcio python3-protobuf). Exit 1 when they differ.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PEER="${PEER_DIR:-/tmp/adak-peer}"
# shellcheck source=bench/peer/lib.sh
source "$ROOT/bench/peer/lib.sh"
MODEL=""
GGUF=""
TOKENS=16
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --gguf) GGUF="$2"; shift 2 ;;
    --tokens) TOKENS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
work="$(mktemp -d)"
pids=()
trap peer_cleanup EXIT
if [[ -z "$MODEL" ]]; then
  MODEL="$work/olmoe"
  "$ROOT/build/bin/adak" make-model --arch olmoe --out "$MODEL" --set hidden_size=512 --set intermediate_size=256 \
    --set num_hidden_layers=4 --set num_experts=32 --set num_experts_per_tok=8 --set num_attention_heads=8 \
    --set num_key_value_heads=8 >/dev/null
fi
if [[ -z "$GGUF" ]]; then
  GGUF="$work/model.gguf"
  /usr/bin/python3 "$ROOT/bench/peer/safetensors_to_gguf.py" "$MODEL" "$GGUF" "$PEER/llama.cpp" >/dev/null
fi
grpc_port="$(free_port)"
llama_port="$(free_port)"
"$ROOT/build/bin/adak" serve --model "$MODEL" --grpc-port "$grpc_port" --http-port -1 --threads 2 >"$work/adak.log" 2>&1 &
pids+=($!)
"$PEER/llama.cpp/build/bin/llama-server" -m "$GGUF" --port "$llama_port" -t 2 -c 1024 >"$work/llama.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -sf "127.0.0.1:$llama_port/health" >/dev/null && grep -q "ready" "$work/adak.log" && break
  sleep 0.2
done
prompt="[$(/usr/bin/python3 -c "print(', '.join(str(1 + (i * 37) % 250) for i in range(24)))")]"
ours="$(/usr/bin/python3 "$ROOT/tools/grpc_call.py" --target "127.0.0.1:$grpc_port" adak.v1.Generation/Generate \
  "{\"token_ids\": $prompt, \"max_tokens\": $TOKENS, \"sampling\": {\"temperature\": 0}, \"ignore_eos\": true}" |
  /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["token_ids"])')"
curl -sf "127.0.0.1:$llama_port/completion" -d "{\"prompt\": $prompt, \"n_predict\": $TOKENS, \
  \"temperature\": 0, \"return_tokens\": true, \"cache_prompt\": false, \"ignore_eos\": true, \"n_probs\": 2}" \
  >"$work/llama.json"
# Random weights give flat distributions: where llama.cpp's top two are within NEAR_TIE nats, either pick is
# right and the continuations may part there; every position before that must agree exactly.
OURS="$ours" NEAR_TIE="${NEAR_TIE:-0.01}" /usr/bin/python3 - "$work/llama.json" <<'PY'
import ast, json, os, sys
ours = ast.literal_eval(os.environ["OURS"])
reply = json.load(open(sys.argv[1]))
theirs = reply["tokens"]
# One entry per token, except that llama-server merges the entries of a token that ends inside a UTF-8
# character with the next: then the per-position gaps are not aligned and no near tie is claimed.
steps = reply["completion_probabilities"] if len(reply["completion_probabilities"]) == len(theirs) else None
print("adak:     ", ours)
print("llama.cpp:", theirs)
for i, (a, b) in enumerate(zip(ours, theirs)):
    if a == b:
        continue
    if steps is None:
        print(f"differ at token {i}: adak {a}, llama.cpp {b}")
        sys.exit(1)
    top = steps[i]["top_logprobs"]
    gap = top[0]["logprob"] - top[1]["logprob"]
    if gap < float(os.environ["NEAR_TIE"]) and a in (top[0]["id"], top[1]["id"]):
        print(f"agree on {i} tokens, then a near tie at token {i} ({top[0]['id']} vs {top[1]['id']}: {gap:.4f} nats apart)")
        sys.exit(0)
    print(f"differ at token {i}: adak {a}, llama.cpp {b} (llama.cpp's top two {gap:.4f} nats apart)")
    sys.exit(1)
print(f"greedy tokens agree ({len(ours)} tokens)")
PY
