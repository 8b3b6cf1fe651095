#!/usr/bin/env bash
# One command to install everything the tests need and run the whole suite (slow, PostgreSQL
# and GPU-marked tests included; GPU tests skip cleanly without a CUDA device, PostgreSQL tests
# start and stop a private cluster themselves). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --dev
exec .venv/bin/python -m pytest -q "$@"
