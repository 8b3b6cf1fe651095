#!/usr/bin/env bash
# The one prepared run on a lent GPU host (issue 17), in under 8 minutes:
#   1. what the GPU is (nvidia-smi: SKU, driver, clocks, power limit);
#   2. a Python with a CUDA build of torch: the host's own when it has one (a venv over its site
#      packages), else one installed from the registry (COST_ORACLE_TORCH, default the CUDA 12.6
#      build); the project and its test tools beside it, from the registry or, on a host without
#      one, from a wheelhouse carried in .gpu-wheels/ (scripts/gpu_wheelhouse.sh fills it);
#   3. every GPU-marked test (pytest -m gpu), which must all pass;
#   4. the figures: benchmarks/gpu_figures.py (5 sessions per model and setting).
# Everything it prints is also kept under $OUT (default /tmp/gpu_check). Run from anywhere:
#   benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
t0=$(date +%s)
say() { echo "[gpu_check +$(( $(date +%s) - t0 ))s] $*"; }

say "1. the GPU"
if ! nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit,clocks_throttle_reasons.active \
     --format=csv; then
  say "no nvidia-smi: this is not a GPU host"; exit 3
fi

say "2. python with a CUDA torch"
has_cuda_torch() { "$1" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; }
VENV=.venv-gpu
if has_cuda_torch python3; then
  [ -x "$VENV/bin/python" ] || python3 -m venv --system-site-packages "$VENV"
else
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  if ! has_cuda_torch "$VENV/bin/python"; then
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip install -q ${COST_ORACLE_TORCH:-torch --index-url https://download.pytorch.org/whl/cu126} \
      || { say "cannot install a CUDA torch here (no registry?); nothing else can run"; exit 2; }
  fi
fi
PY="$VENV/bin/python"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn",
          torch.backends.cudnn.version(), "gpus", torch.cuda.device_count())'
# the project without its torch pin (the host's CUDA build may be newer than the CPU range),
# then what it and its tests import
wheels=()
[ -d .gpu-wheels ] && wheels=(--no-index --find-links .gpu-wheels)
"$PY" -m pip install -q "${wheels[@]}" --no-deps -e . || { say "cannot install the project"; exit 2; }
"$PY" -m pip install -q "${wheels[@]}" "grpcio>=1.85,<2" "grpcio-health-checking>=1.85,<2" \
  "grpcio-reflection>=1.85,<2" "grpcio-status>=1.85,<2" "protobuf>=7.35.1,<8" "googleapis-common-protos>=1.60,<2" \
  "sqlalchemy>=2.0,<3" "orjson>=3.9,<4" platformdirs numpy pytest pytest-timeout "hypothesis>=6.90" \
  || { say "cannot install the dependencies"; exit 2; }

say "3. the GPU-marked tests"
"$PY" -m pytest -q -p no:cacheprovider -m gpu tests/ 2>&1 | tail -30
tests_rc=${PIPESTATUS[0]}
say "GPU tests exit status: $tests_rc"

say "4. the figures"
"$PY" benchmarks/gpu_figures.py --sessions "${SESSIONS:-5}" --json "$OUT/gpu_figures.json"
figures_rc=$?
say "done: tests $tests_rc, figures $figures_rc; log and JSON under $OUT"
[ "$tests_rc" -eq 0 ] && [ "$figures_rc" -eq 0 ]
