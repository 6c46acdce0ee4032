#!/usr/bin/env bash
# Builds the llama.cpp release that the npm package node-llama-cpp ships (llama/gitRelease.bundle) into a scratch
# directory, for the side-by-side benchmark (bench/peer/README.md). Fetches nothing but that npm package; the
# build has no network features (-DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF, no web UI, no prebuilt UI download). Never
# commit the result.
#   bash bench/peer/build_llama_cpp.sh [DIR]      (default /tmp/adak-peer; prints DIR/llama.cpp/build/bin)
set -euo pipefail
DIR="${1:-/tmp/adak-peer}"
VERSION="${NODE_LLAMA_CPP_VERSION:-3.22.1}"
mkdir -p "$DIR"
cd "$DIR"
if [[ ! -d llama.cpp ]]; then
  npm pack "node-llama-cpp@$VERSION" --silent >/dev/null
  tar xzf "node-llama-cpp-$VERSION.tgz" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json
  git clone -q package/llama/gitRelease.bundle llama.cpp
  cp package/llama/llama.cpp.info.json llama.cpp/NODE_LLAMA_CPP_RELEASE.json
fi
cmake -S llama.cpp -B llama.cpp/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build llama.cpp/build --target llama-bench llama-server llama-cli >/dev/null
echo "$DIR/llama.cpp/build/bin"
