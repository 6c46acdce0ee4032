#!/usr/bin/env bash
# From a clean clone to a running server: installs dependencies, builds `adak`, and serves the project's
# own default model (models/stories-moe-small, a small MoE trained by tools/train_demo_model.py, with its
# two Ada-K allocator profiles, "balanced" (the default) and "eco") over gRPC on 127.0.0.1:50051 and OpenAI-compatible HTTP on 127.0.0.1:8080 until
# Ctrl-C / SIGTERM (which drains). Extra arguments go to `adak serve` (e.g. --host 0.0.0.0 --http-port 9000);
# ADAK_MODEL=DIR serves another model directory. A model directory's allocators are loaded as profiles:
# allocator.safetensors first (the default profile), then allocator-*.safetensors; each is named by its
# metadata `profile` (else "default" / the file's suffix).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install-deps.sh
TARGETS=adak bash scripts/build.sh
ADAK="${BUILD_DIR:-build}/bin/adak"
MODEL="${ADAK_MODEL:-models/stories-moe-small}"
ARGS=(--model "$MODEL")
if [ -f "$MODEL/allocator.safetensors" ]; then
  ARGS+=(--allocator "$MODEL/allocator.safetensors" --default-routing adak)
  for extra in "$MODEL"/allocator-*.safetensors; do
    [ -f "$extra" ] || continue
    ARGS+=(--allocator "$extra")
  done
fi
exec "$ADAK" serve "${ARGS[@]}" "$@"
