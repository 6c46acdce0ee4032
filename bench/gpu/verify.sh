#!/usr/bin/env bash
# The CUDA backend's whole device check in one script, for any machine with an NVIDIA GPU, CUDA 13 (nvcc),
# cmake, ninja, and python3 with PyTorch and transformers; no Debian libraries (docs/gpu.md).
#
#   bash bench/gpu/pack-deps.sh          # once, on a Debian machine with scripts/install-deps.sh's packages
#   OUT=/tmp/gpu-out bash bench/gpu/verify.sh
#
# Steps (each writes its raw output under $OUT; summary.txt lists every step's exit code):
#  1. machine.txt: nvidia-smi, nvcc, cmake versions;
#  2. the CUDA-only build (-DADAK_CUDA_ONLY=ON) for this GPU's architecture (sm_90a on Hopper), with the
#     libraries from .gpu-deps (or ADAK_GPU_DEPS, or the system's when neither is there);
#  3. the backend conformance suite (every op on cpu and cuda against plain references), the CUDA backend's
#     tests (ctest label gpu) and the host tests of the plan, tile and routing logic;
#  4. compute-sanitizer memcheck over a small slice of the suite (where the sanitizer works);
#  5. logits of make-model OLMoE, Qwen3-MoE and Mixtral checkpoints on cpu and cuda against transformers;
#  6. bench/gpu/moe_gpu_bench: decode vs the HBM floor, prefill grouped GEMM vs cuBLAS, Ada-K vs top-K.
# Exits 0 when steps 2-5 pass (the benchmarks print numbers; they do not pass or fail). Well under 10 minutes
# on an H100/H200 with 16 cores.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 1
OUT="${OUT:-/tmp/adak-gpu-out}"
BUILD="${BUILD:-$ROOT/build-gpu}"
DEPS="${ADAK_GPU_DEPS:-$ROOT/.gpu-deps}"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
export PATH="/usr/local/cuda/bin:$PATH"
START=$SECONDS

# step NAME COMMAND...: runs COMMAND with stdout+stderr in $OUT/NAME.log, records its exit code.
step() {
  local name="$1"
  shift
  local t0=$SECONDS
  "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  printf '%-22s rc=%-3s %4ss\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$SUMMARY"
  return $rc
}

{
  date -u
  nvidia-smi || true
  nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv || true
  nvcc --version
  cmake --version | head -1
  ninja --version
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
  nproc
} >"$OUT/machine.txt" 2>&1

# Architecture: the GPU's own (sm_90a on compute capability 9.0, for wgmma-era code), else sm_80 and 90a.
CAP="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
case "$CAP" in
  90) ARCH="90a" ;;
  "") ARCH="80;90a" ;;
  *) ARCH="$CAP" ;;
esac
PREFIX=()
if [[ -d "$DEPS" ]]; then
  PREFIX=(-DCMAKE_PREFIX_PATH="$DEPS")
  MULTIARCH="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
  export LD_LIBRARY_PATH="$DEPS/lib/$MULTIARCH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

TARGETS=(engine_backend_conformance_test engine_cuda_backend_test kernels_cuda_route_rule_test
         kernels_cuda_dispatch_plan_test kernels_cuda_tile_schedule_test moe_gpu_bench gpu_logits)
step configure cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DADAK_CUDA_ONLY=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$ARCH" "${PREFIX[@]}" || { cat "$OUT/configure.log"; exit 1; }
step build cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]}" || { tail -50 "$OUT/build.log"; exit 1; }

FAILED=0
step host_logic bash -c "for t in route_rule dispatch_plan tile_schedule; do '$BUILD/tests/kernels_cuda_'\$t'_test' || exit 1; done" ||
  FAILED=1
step conformance "$BUILD/tests/engine_backend_conformance_test" --gtest_output="json:$OUT/conformance.json" ||
  FAILED=1
step cuda_backend_test "$BUILD/tests/engine_cuda_backend_test" --gtest_output="json:$OUT/cuda_backend_test.json" ||
  FAILED=1
# Skipped cases mean the device was not seen: a failure here, whatever gtest says.
if grep -q "SKIPPED.*cuda_" "$OUT/conformance.log"; then
  echo "conformance: cuda cases were skipped (no device seen)" | tee -a "$SUMMARY"
  FAILED=1
fi

if command -v compute-sanitizer >/dev/null; then
  # Exit 9: memcheck found an error (a failure). Any other non-zero exit with no "ERROR SUMMARY" line: the tool
  # itself could not run here (gVisor machines), recorded and not held against the code.
  step memcheck compute-sanitizer --tool memcheck --error-exitcode 9 "$BUILD/tests/engine_backend_conformance_test" \
    --gtest_filter='Moe/*cuda_mixed_e60_t17:Attention/*cuda_*:Linear/*cuda_*:Mlp/*cuda_*'
  rc=$?
  if [[ $rc -eq 9 ]] || { [[ $rc -ne 0 ]] && grep -q "ERROR SUMMARY" "$OUT/memcheck.log"; }; then
    FAILED=1
  elif [[ $rc -ne 0 ]]; then
    echo "memcheck               the sanitizer did not run here (rc=$rc); see memcheck.log" | tee -a "$SUMMARY"
  fi
else
  echo "memcheck               skipped: no compute-sanitizer" | tee -a "$SUMMARY"
fi

LOGITS=()
for arch in olmoe qwen3_moe mixtral; do
  # The checkpoint stays out of $OUT (it is regenerated from its seed); the JSON names its folder.
  step "logits_$arch" "$BUILD/bin/gpu_logits" --arch "$arch" --dir "/tmp/adak-model-$arch" \
    --out "$OUT/logits-$arch.json" --devices cpu,cuda || FAILED=1
  LOGITS+=("$OUT/logits-$arch.json")
done
step transformers python3 bench/gpu/compare_transformers.py "${LOGITS[@]}" || FAILED=1

step bench "$BUILD/bin/moe_gpu_bench" all --iters 20
echo "total                  $((SECONDS - START))s, failed=$FAILED" | tee -a "$SUMMARY"
exit "$FAILED"
