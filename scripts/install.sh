#!/usr/bin/env bash
# Creates ./.venv (once) and installs the oracle into it.
#   scripts/install.sh          runtime only (serve, client, CLI)
#   scripts/install.sh --dev    plus test and lint tools (pytest, hypothesis, ruff, fvcore, thop, ptflops, psycopg)
# torch is pinned to the CPU build 2.13.0 first, because the project's looser range would
# otherwise pull a multi-GB CUDA build. GPU users: set COST_ORACLE_TORCH, e.g.
#   COST_ORACLE_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126" scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${COST_ORACLE_TORCH:-torch==2.13.0}
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# a stamp of what was installed, so repeated runs are instant
stamp=".venv/.installed$(echo "$extras" | tr -d '[]')"
want="$(cat pyproject.toml | sha256sum | cut -c1-16) $TORCH_SPEC"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
# the first install takes a minute or two: say what is happening (on stderr, so output stays clean)
say() { echo "install: $*" >&2; }
say "setting up ./.venv (first run only; later runs start at once)"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
say "installing $TORCH_SPEC"
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q $TORCH_SPEC
say "installing the oracle${extras:+ with its $extras tools} and its dependencies"
.venv/bin/python -m pip install -q -e ".$extras"
echo "$want" > "$stamp"
say "done"
