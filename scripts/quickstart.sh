#!/usr/bin/env bash
# Install, then build a small FRet dataset from the Python docs with the offline default models.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
python examples/quickstart.py "$@"
