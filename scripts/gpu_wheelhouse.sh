#!/usr/bin/env bash
# Fills .gpu-wheels/ with the project's pure dependencies and test tools as manylinux wheels for
# CPython 3.10-3.13, so that benchmarks/gpu_check.sh can install them on a GPU host that cannot
# reach a registry (the device tool carries ignored paths up to 64 MiB: pass .gpu-wheels in
# "carry"). torch is not among them: the GPU host's own CUDA build is used.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEST=.gpu-wheels
mkdir -p "$DEST"
pkgs=("grpcio>=1.85,<2" "grpcio-health-checking>=1.85,<2" "grpcio-reflection>=1.85,<2" "grpcio-status>=1.85,<2"
      "protobuf>=7.35.1,<8" "googleapis-common-protos>=1.60,<2" "sqlalchemy>=2.0,<3" "orjson>=3.9,<4"
      platformdirs pytest pytest-timeout "hypothesis>=6.90" setuptools wheel)
for v in ${GPU_PYTHONS:-310 311 312 313}; do
  "$PY" -m pip download -q -d "$DEST" --only-binary=:all: --python-version "$v" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    "${pkgs[@]}"
done
du -sh "$DEST"
