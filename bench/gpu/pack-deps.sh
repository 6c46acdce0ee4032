#!/usr/bin/env bash
# Stages the C++ libraries the CUDA-only build needs (Abseil, nlohmann-json, GoogleTest, PCRE2, utf8proc) from
# this machine's Debian packages into .gpu-deps/ (git-ignored), laid out as under /usr, so that a bare GPU
# machine with CUDA, cmake and ninja but no Debian libraries can build with CMAKE_PREFIX_PATH=.gpu-deps
# (bench/gpu/verify.sh; docs/gpu.md). About 10 MB: carry it with the working tree (`run`'s carry: .gpu-deps).
# Nothing is downloaded: it copies installed files (scripts/install-deps.sh installs the packages).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${1:-$ROOT/.gpu-deps}"
MA="$(gcc -print-multiarch)"  # x86_64-linux-gnu
rm -rf "$DEST"
mkdir -p "$DEST/include" "$DEST/lib/$MA/cmake" "$DEST/share/cmake"
cp -a /usr/include/absl /usr/include/nlohmann /usr/include/gtest /usr/include/gmock "$DEST/include/"
cp -a /usr/include/pcre2.h /usr/include/utf8proc.h "$DEST/include/"
cp -a /usr/lib/"$MA"/cmake/absl /usr/lib/"$MA"/cmake/GTest "$DEST/lib/$MA/cmake/"
cp -a /usr/share/cmake/nlohmann_json "$DEST/share/cmake/"
cp -a /usr/lib/"$MA"/libabsl_*.so* /usr/lib/"$MA"/libgtest*.a /usr/lib/"$MA"/libgmock*.a "$DEST/lib/$MA/"
cp -a /usr/lib/"$MA"/libpcre2-8.so* /usr/lib/"$MA"/libutf8proc.so* "$DEST/lib/$MA/"
du -sh "$DEST"
