#!/usr/bin/env bash
# From a clean clone to passing tests: installs the Debian dependencies, builds, and runs ctest.
# Tests that need ../shared (the trained fixture model and data) skip with a message when it is absent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install-deps.sh
bash scripts/build.sh "$@"
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" --timeout 600
