#!/usr/bin/env bash
# ctest OpenAiSdk.NodeClientAgainstTheDefaultModel: starts `adak serve` on the project's default model on a
# free port, installs the official OpenAI SDK from the npm registry (tests/sdk/package-lock.json) when it is
# not installed yet, and runs openai_sdk_check.mjs against it. Exits 77 (skipped) without node/npm or when
# the registry cannot be reached.
#   bash tests/sdk/run.sh [build dir]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-$root/build}/bin/adak"
command -v node >/dev/null && command -v npm >/dev/null || { echo "skip: node and npm are needed"; exit 77; }
if [[ ! -d "$here/node_modules/openai" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) || { echo "skip: npm ci failed (no registry?)"; exit 77; }
fi
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="$(mktemp)"
"$bin" serve --model "$root/models/stories-moe-small" --grpc-port -1 --http-port "$port" --threads 1 >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; echo "adak serve exited"; exit 1; }
  sleep 0.2
done
node "$here/openai_sdk_check.mjs" "http://127.0.0.1:$port/v1"
