#!/usr/bin/env bash
# From a clean clone to the engine running on the default model: installs dependencies, builds `adak`,
# writes the default model on first run (a small random Mixtral-architecture MoE made by
# `adak make-model`, until the project's trained default model lands), and generates from it.
# Arguments are passed to `adak generate` (e.g. --prompt "..." --max-tokens 64).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install-deps.sh
TARGETS=adak bash scripts/build.sh
ADAK="${BUILD_DIR:-build}/bin/adak"
MODEL="${ADAK_MODEL:-models/default-random}"
if [ ! -f "$MODEL/config.json" ]; then
  "$ADAK" make-model --arch mixtral --out "$MODEL" --seed 1
fi
if [ $# -eq 0 ]; then
  set -- --prompt "Once upon a time" --max-tokens 32
fi
exec "$ADAK" generate --model "$MODEL" "$@"
