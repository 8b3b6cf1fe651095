#!/usr/bin/env bash
# One command to start the oracle on its embedded default: SQLite cache file under the user's
# cache directory, CPU device, loopback. Extra arguments go to `cost-oracle serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/cost-oracle serve "$@"
