#!/usr/bin/env bash
# Runs every libFuzzer target of fuzz/ from its seed corpus (fuzz/corpus/<name>, copied into a scratch corpus
# so the checkout stays clean), one after another, and prints a table: runs, executions per second, final
# corpus size, result. Each target runs FUZZ_SECONDS (default 30) or, when FUZZ_RUNS is set, exactly that many
# inputs from the fixed seed FUZZ_SEED (default 1): CI uses FUZZ_RUNS so that one commit always explores the
# same inputs and a red run is reproducible, not a matter of timing. Any crash, leak, sanitizer report or
# per-input timeout (FUZZ_INPUT_TIMEOUT, default 10 s) fails the script; the input that did it is kept in
# $BUILD_DIR/fuzz-artifacts/ and its reproduction command printed. Make it a regression test before fixing.
#
# The targets come from a clang build with -DADAK_FUZZ=ON and fuzzer-no-link in ADAK_SANITIZE (CI's
# sanitizer build): BUILD_DIR (default build-clang) must hold them, or this script builds them there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD="${BUILD_DIR:-build-clang}"
SECONDS_EACH="${FUZZ_SECONDS:-30}"
RUNS="${FUZZ_RUNS:-}"
SEED="${FUZZ_SEED:-1}"
if [ -n "$RUNS" ]; then budget=(-runs="$RUNS" -seed="$SEED"); else budget=(-max_total_time="$SECONDS_EACH"); fi
INPUT_TIMEOUT="${FUZZ_INPUT_TIMEOUT:-10}"
FUZZERS=(http_completion_request http_chat_request grpc_generate_request model_config safetensors tokenizer_json
  jinja_template)

targets=()
for f in "${FUZZERS[@]}"; do targets+=("${f}_fuzzer"); done
cmake --build "$BUILD" --target "${targets[@]}" >/dev/null

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
artifacts="$BUILD/fuzz-artifacts"
mkdir -p "$artifacts"
failed=0
printf '%-26s %10s %10s %8s  %s\n' fuzzer runs exec/s corpus result
for f in "${FUZZERS[@]}"; do
  corpus="$scratch/$f"
  mkdir -p "$corpus"
  cp fuzz/corpus/"$f"/* "$corpus"/
  dict=()
  case "$f" in
    http_completion_request | http_chat_request | model_config | tokenizer_json) dict=(-dict=fuzz/json.dict) ;;
    jinja_template) dict=(-dict=fuzz/jinja.dict) ;;
  esac
  log="$scratch/$f.log"
  rc=0
  # ASan's leak check stays on: a parser that leaks on a bad input fails here too.
  "$BUILD/fuzz/${f}_fuzzer" "$corpus" "${dict[@]}" "${budget[@]}" -timeout="$INPUT_TIMEOUT" \
    -rss_limit_mb=4096 -max_len=16384 -print_final_stats=1 -artifact_prefix="$artifacts/${f}-" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  size=$(find "$corpus" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then
    result=ok
  else
    result="FAILED (exit $rc)"
    failed=1
  fi
  printf '%-26s %10s %10s %8s  %s\n' "$f" "${runs:-?}" "${eps:-?}" "$size" "$result"
  if [ "$rc" -ne 0 ]; then
    grep -E "ERROR|SUMMARY|Test unit written|==[0-9]+==" "$log" | head -20 || tail -30 "$log"
    echo "reproduce: $BUILD/fuzz/${f}_fuzzer <the artifact above>"
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "run-fuzzers: FAILED"
  exit 1
fi
if [ -n "$RUNS" ]; then each="$RUNS runs (seed $SEED)"; else each="${SECONDS_EACH}s"; fi
echo "run-fuzzers: ${#FUZZERS[@]} fuzzers, $each each, no finding"
